//! The mode switches (SDM Vol. 3A §9.8 and §9.9): real mode at the reset vector, into 32-bit
//! protected mode, into long mode, and back from protected mode to real mode. Each function
//! emits one step; `standard_long` and `standard_prot32` add the usual boot pieces so a ROM
//! only writes its own code.

use iced_x86::code_asm::*;

use super::layout::{self, sel};
use super::rom::{Asm, R, RomBuilder};
use super::rt::print;
use super::tables::PageTables;

/// CR0.PE: protected mode.
pub const CR0_PE: u32 = 1 << 0;
/// CR0.WP: supervisor writes honour read-only pages.
pub const CR0_WP: u32 = 1 << 16;
/// CR0.PG: paging.
pub const CR0_PG: u32 = 1 << 31;
/// CR4.PSE: 4 MiB pages in 32-bit paging.
pub const CR4_PSE: u32 = 1 << 4;
/// CR4.PAE: 64-bit page-table entries (required for long mode).
pub const CR4_PAE: u32 = 1 << 5;
/// IA32_EFER.
pub const MSR_EFER: u32 = 0xc000_0080;
/// EFER.SCE: SYSCALL/SYSRET.
pub const EFER_SCE: u32 = 1 << 0;
/// EFER.LME: long mode enable.
pub const EFER_LME: u32 = 1 << 8;
/// EFER.NXE: execute-disable bit.
pub const EFER_NXE: u32 = 1 << 11;

/// The first instructions after reset: interrupts off, DF clear, DS = ES = SS = 0, a stack.
pub fn real_start(a: &mut Asm) -> R {
    a.cli()?;
    a.cld()?;
    a.xor(ax, ax)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(esp, layout::REAL_STACK_TOP as u32)
}

/// Real mode to 32-bit protected mode at symbol `target`: load the GDT that sits in the ROM,
/// set CR0.PE, and far-jump to the flat 32-bit code segment (which reloads CS).
pub fn real_to_prot32(a: &mut Asm, target: &str) -> R {
    let gdtr = a.sym16("rom_gdtr");
    a.lgdt(ptr(u64::from(gdtr)).cs())?;
    a.mov(eax, cr0)?;
    a.or(eax, CR0_PE)?;
    a.mov(cr0, eax)?;
    let t = a.sym(target);
    a.jmp_far32(sel::CODE32, t)
}

/// The start of 32-bit protected mode: flat data segments, the ring-0 stack, the RAM-init
/// records (RAM GDT, IDT, TSS, page tables), then the GDT and IDT in RAM.
pub fn prot32_setup(a: &mut Asm) -> R {
    a.mov(ax, u32::from(sel::DATA))?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(fs, ax)?;
    a.mov(gs, ax)?;
    a.mov(esp, layout::STACK_TOP as u32)?;
    let init = a.sym("ram_init");
    a.mov(esi, init as u32)?;
    a.call_sym("rt32.ram_init")?;
    let g = a.sym("ram_gdtr");
    a.lgdt(ptr(g))?;
    let i = a.sym("idtr32");
    a.lidt(ptr(i))
}

/// 32-bit protected mode to long mode at symbol `target`: CR4.PAE, CR3 = the 4-level tables,
/// EFER.LME, then CR0.PG (which activates long mode: EFER.LMA), and a far jump to the
/// 64-bit code segment.
pub fn prot32_to_long(a: &mut Asm, root: u64, target: &str) -> R {
    a.mov(eax, cr4)?;
    a.or(eax, CR4_PAE)?;
    a.mov(cr4, eax)?;
    a.mov(eax, root as u32)?;
    a.mov(cr3, eax)?;
    a.mov(ecx, MSR_EFER)?;
    a.rdmsr()?;
    a.or(eax, EFER_LME)?;
    a.wrmsr()?;
    a.mov(eax, cr0)?;
    a.or(eax, CR0_PG)?;
    a.mov(cr0, eax)?;
    let t = a.sym(target);
    a.jmp_far32(sel::CODE64, t)
}

/// The start of 64-bit mode: data segments, the ring-0 stack, the 64-bit IDT.
pub fn long_setup(a: &mut Asm) -> R {
    a.mov(ax, u32::from(sel::DATA))?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(fs, ax)?;
    a.mov(gs, ax)?;
    a.mov(rsp, layout::STACK_TOP)?;
    let i = a.sym("idtr64");
    a.lidt(ptr(i))
}

/// From 32-bit protected mode (or compatibility mode's cousin, 16-bit protected mode) back to
/// real mode at the 16-bit symbol `target`. Step one: far jump to the 16-bit code segment;
/// the 16-bit piece `pm16_piece` (emitted by `pm16_to_real`) does the rest.
pub fn prot32_to_pm16(a: &mut Asm, pm16_piece: &str) -> R {
    let t = a.sym16(pm16_piece);
    a.jmp_far32(sel::CODE16, u64::from(t))
}

/// In 16-bit protected mode: give every data segment register real-mode-like cached limits
/// (DATA16), clear CR0.PE and far-jump to `target` so CS gets a real-mode value, then load
/// real-mode segments, stack and the real-mode IVT at 0.
pub fn pm16_to_real(a: &mut Asm, target: &str) -> R {
    a.mov(ax, u32::from(sel::DATA16))?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(fs, ax)?;
    a.mov(gs, ax)?;
    a.mov(eax, cr0)?;
    a.and(eax, !(CR0_PE | CR0_PG))?;
    a.mov(cr0, eax)?;
    let seg = a.syms().rom_segment();
    let t = a.sym16(target);
    a.jmp_far16(seg, t)
}

/// The first instructions back in real mode: segments 0, the real-mode stack, IVT at 0.
pub fn real_reenter(a: &mut Asm) -> R {
    a.xor(ax, ax)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(fs, ax)?;
    a.mov(gs, ax)?;
    a.mov(esp, layout::REAL_STACK_TOP as u32)?;
    let ivt = a.sym16("ivt_real");
    a.lidt(ptr(u64::from(ivt)).cs())
}

/// Identity map of the first GiB with 2 MiB pages: what long-mode ROMs start from.
pub fn long_mode_tables() -> PageTables {
    let mut pt = PageTables::new(super::tables::Paging::Level4);
    pt.identity(0, 1 << 30, 21, super::tables::pte::RW);
    pt
}

/// Add the boot pieces that take a ROM from reset to 64-bit mode at the piece `entry`,
/// using (and installing) the page tables `pt`. With `narrate`, each step says so on COM1.
pub fn standard_long(rom: &mut RomBuilder, pt: &PageTables, entry: &str, narrate: bool) {
    for r in pt.records() {
        rom.ram(r);
    }
    let root = pt.cr3();
    rom.code16("boot16", move |a| {
        real_start(a)?;
        if narrate {
            print(a, "real mode: reset vector reached\n")?;
        }
        real_to_prot32(a, "boot32")
    });
    let entry = entry.to_string();
    rom.code32("boot32", move |a| {
        prot32_setup(a)?;
        if narrate {
            print(a, "protected mode: tables written to RAM\n")?;
        }
        prot32_to_long(a, root, "boot64")
    });
    let entry2 = entry.clone();
    rom.code64("boot64", move |a| {
        long_setup(a)?;
        if narrate {
            print(a, "long mode: 64-bit code running\n")?;
        }
        let e = a.sym(&entry2);
        a.jmp(e)
    });
}

/// Add the boot pieces that take a ROM from reset to 32-bit protected mode at `entry`.
pub fn standard_prot32(rom: &mut RomBuilder, entry: &str) {
    let entry = entry.to_string();
    rom.code16("boot16", move |a| {
        real_start(a)?;
        real_to_prot32(a, "boot32")
    });
    rom.code32("boot32", move |a| {
        prot32_setup(a)?;
        let e = a.sym(&entry);
        a.jmp(e)
    });
}
