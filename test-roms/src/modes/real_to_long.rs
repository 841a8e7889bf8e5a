//! From the reset vector to 64-bit mode one mode at a time (SDM Vol. 3A §9.8-§9.9): real
//! mode, 16-bit protected mode, 32-bit protected mode, long mode; then out to a
//! compatibility-mode (32-bit) code segment and back, once with a far return and a far jump,
//! once with a far jump through memory and a far return.

use crate::TestRom;
use crate::asm::boot::{self, MSR_EFER};
use crate::asm::layout::sel;
use crate::asm::*;

const EXPECTED: &str = "\
real mode
cs = 0xf000 ok
cr0.pe = 0x0 ok
16-bit protected mode
cs = 0x28 ok
cr0.pe = 0x1 ok
32-bit protected mode
cs = 0x8 ok
0xffffffff + 1 = 0x0 ok
long mode
cs = 0x18 ok
efer.lma = 0x1 ok
2^32 + 2^32 = 0x200000000 ok
compatibility mode (entered with retfq)
cs = 0x8 ok
efer.lma = 0x1 ok
0xffffffff + 1 = 0x0 ok
64-bit mode again (far jump from compatibility mode)
cs = 0x18 ok
compatibility mode (entered with jmp far [m16:32])
cs = 0x8 ok
64-bit mode again (retf from compatibility mode)
cs = 0x18 ok
call far [m16:64] to 64-bit code and retfq back = 0x7 ok
all checks passed
";

/// EFER.LMA: long mode is active.
const EFER_LMA_BIT: u32 = 10;

fn check_cs(a: &mut Asm, expected: u16) -> R {
    a.xor(eax, eax)?;
    a.mov(ax, cs)?;
    check(a, "cs", u64::from(expected))
}

fn check_lma(a: &mut Asm) -> R {
    a.mov(ecx, MSR_EFER)?;
    a.rdmsr()?;
    a.shr(eax, EFER_LMA_BIT)?;
    a.and(eax, 1)?;
    check(a, "efer.lma", 1)
}

fn check_32bit_wrap(a: &mut Asm) -> R {
    a.mov(eax, 0xffff_ffffu32)?;
    a.add(eax, 1)?;
    check(a, "0xffffffff + 1", 0)
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("modes/real_to_long");
    let pt = boot::long_mode_tables();
    for r in pt.records() {
        rom.ram(r);
    }
    let root = pt.cr3();

    rom.code16("real", |a| {
        boot::real_start(a)?;
        print(a, "real mode\n")?;
        check_cs(a, 0xf000)?;
        a.mov(eax, cr0)?;
        a.and(eax, 1)?;
        check(a, "cr0.pe", 0)?;
        // Protected mode with the ROM's GDT, straight into its 16-bit code segment.
        let gdtr = a.sym16("rom_gdtr");
        a.lgdt(ptr(u64::from(gdtr)).cs())?;
        a.mov(eax, cr0)?;
        a.or(eax, boot::CR0_PE)?;
        a.mov(cr0, eax)?;
        let pm16 = a.sym16("pm16");
        a.jmp_far16(sel::CODE16, pm16)
    });

    rom.code16("pm16", |a| {
        // DATA16 has base 0 like the real-mode DS it replaces.
        a.mov(ax, u32::from(sel::DATA16))?;
        a.mov(ds, ax)?;
        a.mov(ss, ax)?;
        print(a, "16-bit protected mode\n")?;
        check_cs(a, sel::CODE16)?;
        a.mov(eax, cr0)?;
        a.and(eax, 1)?;
        check(a, "cr0.pe", 1)?;
        let pm32 = a.sym("pm32");
        a.jmp_far32(sel::CODE32, pm32)
    });

    rom.code32("pm32", move |a| {
        boot::prot32_setup(a)?;
        print(a, "32-bit protected mode\n")?;
        check_cs(a, sel::CODE32)?;
        check_32bit_wrap(a)?;
        boot::prot32_to_long(a, root, "lm64")
    });

    rom.code64("lm64", |a| {
        boot::long_setup(a)?;
        print(a, "long mode\n")?;
        check_cs(a, sel::CODE64)?;
        check_lma(a)?;
        a.mov(rax, 1u64 << 32)?;
        a.add(rax, rax)?;
        check(a, "2^32 + 2^32", 1 << 33)?;
        // A far return "returns" to the compatibility-mode code: push CS, then RIP.
        a.push(i32::from(sel::CODE32))?;
        let compat = a.sym("compat");
        a.mov(rax, compat)?;
        a.push(rax)?;
        a.retfq()?;

        a.export("back64")?;
        print(a, "64-bit mode again (far jump from compatibility mode)\n")?;
        check_cs(a, sel::CODE64)?;
        // A far jump through a 6-byte pointer (offset, selector) in memory.
        let mut ptr_label = a.create_label();
        a.jmp(fword_ptr(ptr_label))?;
        a.set_label(&mut ptr_label)?;
        let compat2 = a.sym("compat2") as u32;
        a.dd(&[compat2])?;
        a.dw(&[sel::CODE32])?;

        a.export("back64_2")?;
        print(a, "64-bit mode again (retf from compatibility mode)\n")?;
        check_cs(a, sel::CODE64)?;
        // A 64-bit far call through a 10-byte pointer (REX.W FF /3) pushes CS and RIP as
        // 8-byte values; RETFQ pops them.
        let mut fptr = a.create_label();
        let mut over = a.create_label();
        a.xor(eax, eax)?;
        a.call(tbyte_ptr(fptr))?;
        a.jmp(over)?;
        a.set_label(&mut fptr)?;
        let t = a.sym("far64");
        a.dq(&[t])?;
        a.dw(&[sel::CODE64])?;
        a.set_label(&mut over)?;
        check(a, "call far [m16:64] to 64-bit code and retfq back", 7)?;
        exit(a)
    });

    rom.code32("compat", |a| {
        print(a, "compatibility mode (entered with retfq)\n")?;
        check_cs(a, sel::CODE32)?;
        check_lma(a)?;
        check_32bit_wrap(a)?;
        let back = a.sym("back64");
        a.jmp_far32(sel::CODE64, back)
    });

    rom.code64("far64", |a| {
        // [rsp] = RIP, [rsp+8] = CS (8 bytes each).
        a.mov(rax, qword_ptr(rsp + 8))?;
        a.sub(eax, u32::from(sel::CODE64) - 7)?;
        a.retfq()
    });

    rom.code32("compat2", |a| {
        print(a, "compatibility mode (entered with jmp far [m16:32])\n")?;
        check_cs(a, sel::CODE32)?;
        // A 32-bit far return pops EIP then CS.
        a.push(i32::from(sel::CODE64))?;
        let back = a.sym("back64_2") as i32;
        a.push(back)?;
        a.retf()
    });

    rom.build(EXPECTED)
}
