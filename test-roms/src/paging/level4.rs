//! 4-level paging in long mode (SDM Vol. 3A §4.5): a 1 GiB page (PDPTE with PS), a 2 MiB
//! page (PDE with PS) and 4 KiB pages all mapping the same physical memory, including a
//! high canonical address (PML4 entry 256); accessed bits at every level and dirty bits in
//! the leaves; CR0.WP; INVLPG; a CR3 reload.

use iced_x86::code_asm::*;

use super::{check_entry_bits, load32, phys, store32};
use crate::TestRom;
use crate::asm::boot::{self, CR0_WP};
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::tables::pte;
use crate::asm::*;

const EXPECTED: &str = "\
4-level paging: 1 GiB, 2 MiB and 4 KiB pages
wrote 0x99aabbcc at 0xc0000000 (4 KiB page at 0x200000)
read at 0xc0001000 (4 KiB page at 0x200000) = 0x99aabbcc ok
read at 0x80000000 (2 MiB page at 0x200000) = 0x99aabbcc ok
read at 0x40200000 (1 GiB page at 0) = 0x99aabbcc ok
read at 0xffff800000000000 (4 KiB page at 0x200000) = 0x99aabbcc ok
pte 0xc0000000 accessed+dirty = 0x60 ok
pte 0xc0001000 accessed, not dirty = 0x20 ok
pde 0x80000000 (2 MiB) accessed, not dirty = 0x20 ok
pdpte 0x40000000 (1 GiB) accessed, not dirty = 0x20 ok
pde above the 0xc0000000 table accessed = 0x20 ok
pdpte above it accessed = 0x20 ok
pml4e 256 accessed = 0x20 ok
cr0.wp = 0: ring-0 write to a read-only page, read back = 0x7777 ok
cr0.wp = 1: write to a read-only page: vector = 0xe ok
cr0.wp = 1: write to a read-only page: error code = 0x3 ok
cr0.wp = 1: write to a read-only page: saved rip is the faulting instruction ok
cr0.wp = 1: write to a read-only page: cr2 = 0xc0002000 ok
0xc0003000 maps 0x202000 = 0xaaaa ok
after the pte change and invlpg = 0xbbbb ok
after the pte change back and a cr3 reload = 0xaaaa ok
all checks passed
";

const V_A: u64 = 0xc000_0000;
const V_B: u64 = 0xc000_1000;
const V_RO: u64 = 0xc000_2000;
const V_SW: u64 = 0xc000_3000;
const V_2M: u64 = 0x8000_0000;
const V_1G: u64 = 0x4000_0000;
const V_HIGH: u64 = 0xffff_8000_0000_0000;

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("paging/level4");
    let mut pt = boot::long_mode_tables();
    pt.map(V_A, phys::SHARED, 12, pte::RW);
    pt.map(V_B, phys::SHARED, 12, pte::RW);
    pt.map(V_RO, phys::READ_ONLY, 12, 0);
    pt.map(V_SW, phys::OLD, 12, pte::RW);
    pt.map(V_2M, phys::SHARED, 21, pte::RW);
    pt.map(V_1G, 0, 30, pte::RW);
    pt.map(V_HIGH, phys::SHARED, 12, pte::RW);
    rom.ram(RamInit::Bytes(phys::OLD, 0xaaaau32.to_le_bytes().to_vec()));
    rom.ram(RamInit::Bytes(phys::NEW, 0xbbbbu32.to_le_bytes().to_vec()));
    let (pte_a, pte_b, pte_sw) = (
        pt.entry_of(V_A, 12),
        pt.entry_of(V_B, 12),
        pt.entry_of(V_SW, 12),
    );
    let (pde_2m, pdpte_1g) = (pt.entry_of(V_2M, 21), pt.entry_of(V_1G, 30));
    let (pde_a, pdpte_a, pml4e_high) = (
        pt.entry_of(V_A, 21),
        pt.entry_of(V_A, 30),
        pt.entry_of(V_HIGH, 39),
    );

    boot::standard_long(&mut rom, &pt, "main", false);
    faults::install64(&mut rom);
    rom.code64("main", move |a| {
        print(a, "4-level paging: 1 GiB, 2 MiB and 4 KiB pages\n")?;
        store32(a, V_A, 0x99aa_bbcc)?;
        print(
            a,
            "wrote 0x99aabbcc at 0xc0000000 (4 KiB page at 0x200000)\n",
        )?;
        for (text, v) in [
            ("read at 0xc0001000 (4 KiB page at 0x200000)", V_B),
            ("read at 0x80000000 (2 MiB page at 0x200000)", V_2M),
            ("read at 0x40200000 (1 GiB page at 0)", V_1G + phys::SHARED),
            (
                "read at 0xffff800000000000 (4 KiB page at 0x200000)",
                V_HIGH,
            ),
        ] {
            load32(a, v)?;
            check(a, text, 0x99aa_bbcc)?;
        }
        let ad = (pte::A | pte::D) as u32;
        let acc = pte::A as u32;
        check_entry_bits(a, "pte 0xc0000000 accessed+dirty", pte_a, ad, 0x60)?;
        check_entry_bits(a, "pte 0xc0001000 accessed, not dirty", pte_b, ad, 0x20)?;
        check_entry_bits(
            a,
            "pde 0x80000000 (2 MiB) accessed, not dirty",
            pde_2m,
            ad,
            0x20,
        )?;
        check_entry_bits(
            a,
            "pdpte 0x40000000 (1 GiB) accessed, not dirty",
            pdpte_1g,
            ad,
            0x20,
        )?;
        check_entry_bits(
            a,
            "pde above the 0xc0000000 table accessed",
            pde_a,
            acc,
            0x20,
        )?;
        check_entry_bits(a, "pdpte above it accessed", pdpte_a, acc, 0x20)?;
        check_entry_bits(a, "pml4e 256 accessed", pml4e_high, acc, 0x20)?;

        store32(a, V_RO, 0x7777)?;
        load32(a, phys::READ_ONLY)?;
        check(
            a,
            "cr0.wp = 0: ring-0 write to a read-only page, read back",
            0x7777,
        )?;
        a.mov(rax, cr0)?;
        a.or(eax, CR0_WP)?;
        a.mov(cr0, rax)?;
        faults::expect_fault(a, |a| store32(a, V_RO, 0x6666))?;
        let what = "cr0.wp = 1: write to a read-only page";
        faults::report(a, what, vector::PF, Some(3), SavedRip::Unchecked)?;
        // store32 is "mov rbx, V; mov [rbx], imm32": the 6-byte store faulted.
        faults::report_rip_last(a, what, 6)?;
        faults::report_cr2(a, what, V_RO)?;

        load32(a, V_SW)?;
        check(a, "0xc0003000 maps 0x202000", 0xaaaa)?;
        a.mov(rax, phys::NEW | pte::P | pte::RW)?;
        a.mov(qword_ptr(pte_sw), rax)?;
        a.mov(rbx, V_SW)?;
        a.invlpg(ptr(rbx))?;
        load32(a, V_SW)?;
        check(a, "after the pte change and invlpg", 0xbbbb)?;
        a.mov(rax, phys::OLD | pte::P | pte::RW)?;
        a.mov(qword_ptr(pte_sw), rax)?;
        a.mov(rax, cr3)?;
        a.mov(cr3, rax)?;
        load32(a, V_SW)?;
        check(a, "after the pte change back and a cr3 reload", 0xaaaa)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
