//! 32-bit paging (SDM Vol. 3A §4.3): a page directory and page tables of 4-byte entries,
//! 4 KiB pages and, with CR4.PSE, 4 MiB pages. Two virtual pages alias one physical page;
//! the accessed and dirty bits appear in the entries; a read-only page takes ring-0 writes
//! until CR0.WP is set, then faults with error code 3; INVLPG and a CR3 reload make a
//! changed entry take effect.

use iced_x86::code_asm::*;

use super::{check_entry_bits, load32, phys, store32};
use crate::TestRom;
use crate::asm::boot::{self, CR0_PG, CR0_WP, CR4_PSE};
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::tables::{PageTables, Paging, pte};
use crate::asm::*;

const EXPECTED: &str = "\
32-bit paging: 4 KiB pages, and 4 MiB pages with CR4.PSE
paging on
wrote 0x11223344 at 0x08000000 (4 KiB page at 0x200000)
read at 0x08001000 (another 4 KiB page at 0x200000) = 0x11223344 ok
read at 0x0c200000 (4 MiB page at 0) = 0x11223344 ok
read at 0x00200000 (identity) = 0x11223344 ok
pte 0x08000000 accessed+dirty = 0x60 ok
pte 0x08001000 accessed, not dirty = 0x20 ok
pde 0x0c000000 (4 MiB) accessed, not dirty = 0x20 ok
pde 0x0c000000 (4 MiB) after a write = 0x60 ok
pde above the 0x08000000 table accessed = 0x20 ok
cr0.wp = 0: ring-0 write to a read-only page, read back = 0x5555 ok
cr0.wp = 1: write to a read-only page: vector = 0xe ok
cr0.wp = 1: write to a read-only page: error code = 0x3 ok
cr0.wp = 1: write to a read-only page: saved rip is the faulting instruction ok
cr0.wp = 1: write to a read-only page: cr2 = 0x8002000 ok
the page still holds = 0x5555 ok
0x08003000 maps 0x202000 = 0xaaaa ok
after the pte change and invlpg = 0xbbbb ok
after the pte change back and a cr3 reload = 0xaaaa ok
all checks passed
";

const V_A: u64 = 0x0800_0000;
const V_B: u64 = 0x0800_1000;
const V_RO: u64 = 0x0800_2000;
const V_SW: u64 = 0x0800_3000;
const V_BIG: u64 = 0x0c00_0000;

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("paging/paging32");
    let mut pt = PageTables::new(Paging::Bits32);
    pt.identity(0, 0x40_0000, 12, pte::RW);
    pt.map(V_A, phys::SHARED, 12, pte::RW);
    pt.map(V_B, phys::SHARED, 12, pte::RW);
    pt.map(V_RO, phys::READ_ONLY, 12, 0);
    pt.map(V_SW, phys::OLD, 12, pte::RW);
    pt.map(V_BIG, 0, 22, pte::RW);
    for r in pt.records() {
        rom.ram(r);
    }
    rom.ram(RamInit::Bytes(phys::OLD, 0xaaaau32.to_le_bytes().to_vec()));
    rom.ram(RamInit::Bytes(phys::NEW, 0xbbbbu32.to_le_bytes().to_vec()));
    let root = pt.cr3();
    let (pte_a, pte_b, pte_sw) = (
        pt.entry_of(V_A, 12),
        pt.entry_of(V_B, 12),
        pt.entry_of(V_SW, 12),
    );
    let (pde_big, pde_a) = (pt.entry_of(V_BIG, 22), pt.entry_of(V_A, 22));

    boot::standard_prot32(&mut rom, "main");
    faults::install32(&mut rom);
    rom.code32("main", move |a| {
        print(
            a,
            "32-bit paging: 4 KiB pages, and 4 MiB pages with CR4.PSE\n",
        )?;
        a.mov(eax, cr4)?;
        a.or(eax, CR4_PSE)?;
        a.mov(cr4, eax)?;
        a.mov(eax, root as u32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, CR0_PG)?;
        a.mov(cr0, eax)?;
        print(a, "paging on\n")?;

        store32(a, V_A, 0x1122_3344)?;
        print(
            a,
            "wrote 0x11223344 at 0x08000000 (4 KiB page at 0x200000)\n",
        )?;
        load32(a, V_B)?;
        check(
            a,
            "read at 0x08001000 (another 4 KiB page at 0x200000)",
            0x1122_3344,
        )?;
        load32(a, V_BIG + phys::SHARED)?;
        check(a, "read at 0x0c200000 (4 MiB page at 0)", 0x1122_3344)?;
        load32(a, phys::SHARED)?;
        check(a, "read at 0x00200000 (identity)", 0x1122_3344)?;

        let ad = (pte::A | pte::D) as u32;
        check_entry_bits(a, "pte 0x08000000 accessed+dirty", pte_a, ad, 0x60)?;
        check_entry_bits(a, "pte 0x08001000 accessed, not dirty", pte_b, ad, 0x20)?;
        check_entry_bits(
            a,
            "pde 0x0c000000 (4 MiB) accessed, not dirty",
            pde_big,
            ad,
            0x20,
        )?;
        store32(a, V_BIG + phys::SHARED + 4, 5)?;
        check_entry_bits(a, "pde 0x0c000000 (4 MiB) after a write", pde_big, ad, 0x60)?;
        check_entry_bits(
            a,
            "pde above the 0x08000000 table accessed",
            pde_a,
            pte::A as u32,
            0x20,
        )?;

        store32(a, V_RO, 0x5555)?;
        load32(a, phys::READ_ONLY)?;
        check(
            a,
            "cr0.wp = 0: ring-0 write to a read-only page, read back",
            0x5555,
        )?;
        a.mov(eax, cr0)?;
        a.or(eax, CR0_WP)?;
        a.mov(cr0, eax)?;
        faults::expect_fault(a, |a| store32(a, V_RO, 0x6666))?;
        let what = "cr0.wp = 1: write to a read-only page";
        faults::report(a, what, vector::PF, Some(3), SavedRip::Faulting)?;
        faults::report_cr2(a, what, V_RO)?;
        load32(a, phys::READ_ONLY)?;
        check(a, "the page still holds", 0x5555)?;

        load32(a, V_SW)?;
        check(a, "0x08003000 maps 0x202000", 0xaaaa)?;
        a.mov(
            dword_ptr(pte_sw as u32),
            (phys::NEW | pte::P | pte::RW) as u32,
        )?;
        a.invlpg(ptr(V_SW as u32))?;
        load32(a, V_SW)?;
        check(a, "after the pte change and invlpg", 0xbbbb)?;
        a.mov(
            dword_ptr(pte_sw as u32),
            (phys::OLD | pte::P | pte::RW) as u32,
        )?;
        a.mov(eax, cr3)?;
        a.mov(cr3, eax)?;
        load32(a, V_SW)?;
        check(a, "after the pte change back and a cr3 reload", 0xaaaa)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
