//! Back from protected mode to real mode (SDM Vol. 3A §9.9.2): 32-bit protected mode, a far
//! jump to a 16-bit code segment, segment registers loaded with 64 KiB real-mode-like limits,
//! CR0.PE cleared, a far jump to reload CS; then real-mode addressing (segment * 16 + offset)
//! a software interrupt and a divide error through the real-mode interrupt vector table, and
//! a 16-bit stack wrapping around its segment.

use crate::TestRom;
use crate::asm::boot;
use crate::asm::layout::sel;
use crate::asm::*;

const EXPECTED: &str = "\
32-bit protected mode
cs = 0x8 ok
16-bit protected mode
cs = 0x28 ok
real mode again
cr0.pe = 0x0 ok
cs = 0xf000 ok
byte written at 1234:0010, read at 0000:12350 = 0x5a ok
byte written at 1234:0010, read at 1235:0000 = 0x5a ok
int 0x42 through the IVT: handler ran
ax set by the handler = 0x4242 ok
flags.if restored by iret = 0x0 ok
div by zero in real mode: vector 0 handler saw ip = the div instruction ok
push with sp = 0 wraps to 0xfffe = 0xfffe ok
the word went to ss:0xfffe = 0xbeef ok
all checks passed
";

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("modes/prot_to_real");
    boot::standard_prot32(&mut rom, "pm32");

    rom.code32("pm32", |a| {
        print(a, "32-bit protected mode\n")?;
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        check(a, "cs", u64::from(sel::CODE32))?;
        boot::prot32_to_pm16(a, "pm16")
    });

    rom.code16("pm16", |a| {
        a.mov(ax, u32::from(sel::DATA16))?;
        a.mov(ds, ax)?;
        a.mov(ss, ax)?;
        a.mov(esp, crate::asm::layout::REAL_STACK_TOP as u32)?;
        print(a, "16-bit protected mode\n")?;
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        check(a, "cs", u64::from(sel::CODE16))?;
        boot::pm16_to_real(a, "real")
    });

    rom.code16("real", |a| {
        boot::real_reenter(a)?;
        print(a, "real mode again\n")?;
        a.mov(eax, cr0)?;
        a.and(eax, 1)?;
        check(a, "cr0.pe", 0)?;
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        check(a, "cs", 0xf000)?;

        // Real-mode addresses are segment * 16 + offset: 1234:0010 = 0x12350 = 1235:0000.
        a.mov(ax, 0x1234)?;
        a.mov(es, ax)?;
        a.mov(byte_ptr(0x10).es(), 0x5a)?;
        a.xor(eax, eax)?;
        a.mov(ax, 0x1000)?;
        a.mov(fs, ax)?;
        a.mov(al, byte_ptr(0x2350).fs())?;
        a.movzx(eax, al)?;
        check(a, "byte written at 1234:0010, read at 0000:12350", 0x5a)?;
        a.mov(ax, 0x1235)?;
        a.mov(fs, ax)?;
        a.xor(eax, eax)?;
        a.mov(al, byte_ptr(0).fs())?;
        check(a, "byte written at 1234:0010, read at 1235:0000", 0x5a)?;

        // IVT entry 0x42 (at 0x108): offset, then segment.
        let handler = a.sym16("int42");
        let seg = a.syms().rom_segment();
        a.mov(word_ptr(0x42 * 4), u32::from(handler))?;
        a.mov(word_ptr(0x42 * 4 + 2), u32::from(seg))?;
        a.xor(eax, eax)?;
        a.int(0x42)?;
        check(a, "ax set by the handler", 0x4242)?;
        a.pushfd()?;
        a.pop(eax)?;
        a.shr(eax, 9)?;
        a.and(eax, 1)?;
        check(a, "flags.if restored by iret", 0)?;

        // #DE through IVT entry 0: a fault, so the saved IP is the DIV; the handler records
        // it and steps over the 2-byte instruction.
        let de = a.sym16("int0");
        a.mov(word_ptr(0), u32::from(de))?;
        a.mov(word_ptr(2), u32::from(seg))?;
        let div_at = a.unique("div");
        let div_ip = a.sym16(&div_at);
        a.xor(dx, dx)?;
        a.mov(ax, 1)?;
        a.xor(cx, cx)?;
        a.export(&div_at)?;
        a.div(cx)?;
        a.movzx(eax, word_ptr(crate::asm::layout::VAR_USER as u32))?;
        a.mov(ebx, u32::from(div_ip))?;
        crate::asm::rt::check_rbx_quiet(
            a,
            "div by zero in real mode: vector 0 handler saw ip = the div instruction",
        )?;

        // A 16-bit stack wraps around within its 64 KiB segment.
        a.mov(ax, 0x3000)?;
        a.mov(ss, ax)?;
        a.xor(esp, esp)?;
        a.push(0xbeefu32 as i32)?;
        a.movzx(ebx, sp)?;
        a.mov(ax, 0x3000)?;
        a.mov(fs, ax)?;
        a.movzx(ecx, word_ptr(0xfffe).fs())?;
        a.xor(ax, ax)?;
        a.mov(ss, ax)?;
        a.mov(esp, crate::asm::layout::REAL_STACK_TOP as u32)?;
        a.mov(eax, ebx)?;
        check(a, "push with sp = 0 wraps to 0xfffe", 0xfffe)?;
        a.mov(eax, ecx)?;
        check(a, "the word went to ss:0xfffe", 0xbeef)?;
        exit(a)
    });

    rom.code16("int0", |a| {
        a.push(bp)?;
        a.mov(bp, sp)?;
        a.push(ax)?;
        a.mov(ax, word_ptr(bp + 2))?;
        a.mov(word_ptr(crate::asm::layout::VAR_USER as u32), ax)?;
        a.add(word_ptr(bp + 2), 2)?;
        a.pop(ax)?;
        a.pop(bp)?;
        a.iret()
    });

    rom.code16("int42", |a| {
        print(a, "int 0x42 through the IVT: handler ran\n")?;
        a.mov(ax, 0x4242)?;
        a.iret()
    });

    rom.build(EXPECTED)
}
