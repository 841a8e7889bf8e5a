//! Segmentation beyond flat segments (SDM Vol. 3A §3.4-§3.5, §5.3): a segment base other than
//! zero, a local descriptor table (LLDT/SLDT, selectors with TI = 1), LFS/LGS/LSS loading a
//! selector and an offset from memory, #GP for a selector into an LDT that is not loaded and
//! for an offset beyond an LDT segment's limit; then in real mode LDS/LES, and "unreal mode":
//! a 4 GiB segment limit loaded in protected mode survives the return to real mode.

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot;
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout::{self, sel};
use crate::asm::tables::{self, access, dflags};
use crate::asm::*;

const EXPECTED: &str = "\
gs = DATA_4000 (base 0x4000): gs:[0x110] = 0x600d ok
mov fs, 0x0c before lldt: vector = 0xd ok
mov fs, 0x0c before lldt: error code = 0xc ok
mov fs, 0x0c before lldt: saved rip is the faulting instruction ok
sldt after lldt = 0x70 ok
fs = ldt entry 1 (base 0x4100): fs:[0x10] = 0x600d ok
fs:[0x100] beyond its limit 0xff: vector = 0xd ok
fs:[0x100] beyond its limit 0xff: error code = 0x0 ok
fs:[0x100] beyond its limit 0xff: saved rip is the faulting instruction ok
lfs: offset = 0x10 ok
lfs: fs = 0xc ok
lfs: fs:[eax] = 0x600d ok
lgs: gs = 0x78 ok
lss: ss = 0x10 ok
lss: esp = 0x8fff0 ok
push gs; pop es: es = 0x78 ok
call far 0x08:target, retf 8: returned with eax = 0x5 ok
esp back where it was = 0x0 ok
real mode
les di: es = 0x1234 ok
les di: di = 0x5678 ok
lds si: ds = 0x2345 ok
lds si: si = 0x6789 ok
unreal mode: fs:[0x200000] above 1 MiB = 0xabcd1234 ok
all checks passed
";

/// A marker at 0x4110: seen as gs:[0x110] (base 0x4000) and fs:[0x10] (base 0x4100).
const MARKER: u32 = 0x600d;

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("modes/segments");
    boot::standard_prot32(&mut rom, "pm32");
    faults::install32(&mut rom);
    // LDT entry 1 (selector 0x0c = index 1, TI = 1, RPL 0): data, base 0x4100, limit 0xff.
    let ldt_data = tables::descriptor(
        0x4100,
        0xff,
        access::P | access::S | access::RW | access::A,
        dflags::DB,
    );
    rom.ram(RamInit::Bytes(
        layout::LDT_ADDR + 8,
        ldt_data.to_le_bytes().to_vec(),
    ));
    rom.ram(RamInit::Bytes(0x4110, MARKER.to_le_bytes().to_vec()));
    rom.ram(RamInit::Bytes(
        layout::TEST_PAGES,
        0xabcd_1234u32.to_le_bytes().to_vec(),
    ));
    // Far pointers: m16:32 for LFS/LGS/LSS.
    let mut ptrs = Vec::new();
    ptrs.extend_from_slice(&0x10u32.to_le_bytes());
    ptrs.extend_from_slice(&0x0cu16.to_le_bytes());
    ptrs.extend_from_slice(&0x20u32.to_le_bytes());
    ptrs.extend_from_slice(&sel::DATA_4000.to_le_bytes());
    ptrs.extend_from_slice(&0x8_fff0u32.to_le_bytes());
    ptrs.extend_from_slice(&sel::DATA.to_le_bytes());
    rom.ram(RamInit::Bytes(0x4400, ptrs));
    // m16:16 pointers for LES/LDS in real mode: offset, then segment.
    rom.ram(RamInit::Bytes(
        0x4480,
        vec![0x78, 0x56, 0x34, 0x12, 0x89, 0x67, 0x45, 0x23],
    ));

    rom.code32("pm32", |a| {
        a.mov(ax, u32::from(sel::DATA_4000))?;
        a.mov(gs, ax)?;
        a.mov(eax, dword_ptr(0x110).gs())?;
        check(
            a,
            "gs = DATA_4000 (base 0x4000): gs:[0x110]",
            u64::from(MARKER),
        )?;

        faults::expect_fault(a, |a| {
            a.mov(ax, 0x0c)?;
            a.mov(fs, ax)
        })?;
        faults::report(
            a,
            "mov fs, 0x0c before lldt",
            vector::GP,
            Some(0x0c),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, "mov fs, 0x0c before lldt", 3)?;

        a.mov(ax, u32::from(sel::LDT))?;
        a.lldt(ax)?;
        a.xor(eax, eax)?;
        a.sldt(ax)?;
        check(a, "sldt after lldt", u64::from(sel::LDT))?;
        a.mov(ax, 0x0c)?;
        a.mov(fs, ax)?;
        a.mov(eax, dword_ptr(0x10).fs())?;
        check(
            a,
            "fs = ldt entry 1 (base 0x4100): fs:[0x10]",
            u64::from(MARKER),
        )?;
        faults::expect_fault(a, |a| a.mov(eax, dword_ptr(0x100).fs()))?;
        faults::report(
            a,
            "fs:[0x100] beyond its limit 0xff",
            vector::GP,
            Some(0),
            SavedRip::Faulting,
        )?;

        a.xor(eax, eax)?;
        a.lfs(eax, fword_ptr(0x4400))?;
        check(a, "lfs: offset", 0x10)?;
        a.xor(eax, eax)?;
        a.mov(ax, fs)?;
        check(a, "lfs: fs", 0x0c)?;
        a.mov(ebx, 0x10)?;
        a.mov(eax, dword_ptr(ebx).fs())?;
        check(a, "lfs: fs:[eax]", u64::from(MARKER))?;
        a.lgs(ebx, fword_ptr(0x4406))?;
        a.xor(eax, eax)?;
        a.mov(ax, gs)?;
        check(a, "lgs: gs", u64::from(sel::DATA_4000))?;
        a.lss(esp, fword_ptr(0x440c))?;
        a.xor(eax, eax)?;
        a.mov(ax, ss)?;
        check(a, "lss: ss", u64::from(sel::DATA))?;
        a.mov(eax, esp)?;
        check(a, "lss: esp", 0x8_fff0)?;
        a.mov(esp, layout::STACK_TOP as u32)?;
        a.push(gs)?;
        a.pop(es)?;
        a.xor(eax, eax)?;
        a.mov(ax, es)?;
        check(a, "push gs; pop es: es", u64::from(sel::DATA_4000))?;
        a.mov(ax, u32::from(sel::DATA))?;
        a.mov(es, ax)?;
        // A far call pushes CS and EIP; RETF 8 pops them and two argument dwords.
        a.mov(ebx, esp)?;
        a.push(2)?;
        a.push(3)?;
        let target = a.sym("far_target") as u32;
        a.call_far(sel::CODE32, target)?;
        check(a, "call far 0x08:target, retf 8: returned with eax", 5)?;
        a.mov(eax, esp)?;
        a.sub(eax, ebx)?;
        check(a, "esp back where it was", 0)?;
        boot::prot32_to_pm16(a, "pm16")
    });

    rom.code32("far_target", |a| {
        // [esp] = EIP, [esp+4] = CS, then the two arguments.
        a.mov(eax, dword_ptr(esp + 8))?;
        a.add(eax, dword_ptr(esp + 12))?;
        a.retf_1(8)
    });

    rom.code16("pm16", |a| {
        // FS gets the flat 4 GiB segment; the other data registers real-mode-like limits.
        a.mov(ax, u32::from(sel::DATA))?;
        a.mov(fs, ax)?;
        a.mov(ax, u32::from(sel::DATA16))?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(ss, ax)?;
        a.mov(gs, ax)?;
        a.mov(eax, cr0)?;
        a.and(eax, !boot::CR0_PE)?;
        a.mov(cr0, eax)?;
        let seg = a.syms().rom_segment();
        let t = a.sym16("real");
        a.jmp_far16(seg, t)
    });

    rom.code16("real", |a| {
        // Real-mode segments, but FS only gets a new base: its cached 4 GiB limit stays.
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(ss, ax)?;
        a.mov(fs, ax)?;
        a.mov(esp, layout::REAL_STACK_TOP as u32)?;
        let ivt = a.sym16("ivt_real");
        a.lidt(ptr(u64::from(ivt)).cs())?;
        print(a, "real mode\n")?;
        a.les(di, dword_ptr(0x4480))?;
        a.xor(eax, eax)?;
        a.mov(ax, es)?;
        check(a, "les di: es", 0x1234)?;
        a.movzx(eax, di)?;
        check(a, "les di: di", 0x5678)?;
        a.push(ds)?;
        a.lds(si, dword_ptr(0x4484))?;
        a.xor(eax, eax)?;
        a.mov(ax, ds)?;
        a.movzx(ebx, si)?;
        a.pop(ds)?;
        check(a, "lds si: ds", 0x2345)?;
        a.mov(eax, ebx)?;
        check(a, "lds si: si", 0x6789)?;
        a.mov(esi, layout::TEST_PAGES as u32)?;
        a.mov(eax, dword_ptr(esi).fs())?;
        check(a, "unreal mode: fs:[0x200000] above 1 MiB", 0xabcd_1234)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
