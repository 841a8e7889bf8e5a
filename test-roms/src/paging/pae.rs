//! PAE paging (SDM Vol. 3A §4.4) in 32-bit protected mode: four PDPTEs, 8-byte entries,
//! 4 KiB and 2 MiB pages, accessed/dirty bits, CR0.WP, INVLPG, and execute-disable: with
//! EFER.NXE, fetching from a page whose entry has bit 63 set faults with the
//! instruction-fetch bit in the error code, while an alias without it runs.

use iced_x86::code_asm::*;

use super::{check_entry_bits, load32, phys, store32};
use crate::TestRom;
use crate::asm::boot::{self, CR0_PG, CR0_WP, CR4_PAE, EFER_NXE, MSR_EFER};
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout::{VAR_RIP, VAR_USER};
use crate::asm::tables::{PageTables, Paging, pte};
use crate::asm::*;

const EXPECTED: &str = "\
PAE paging: 8-byte entries, 4 KiB and 2 MiB pages, execute-disable
paging on
wrote 0x55667788 at 0x10000000 (4 KiB page at 0x200000)
read at 0x10001000 (another 4 KiB page at 0x200000) = 0x55667788 ok
read at 0x40200000 (2 MiB page at 0x200000) = 0x55667788 ok
pte 0x10000000 accessed+dirty = 0x60 ok
pte 0x10001000 accessed, not dirty = 0x20 ok
pde 0x40200000 (2 MiB) accessed, not dirty = 0x20 ok
cr0.wp = 1: write to a read-only page: vector = 0xe ok
cr0.wp = 1: write to a read-only page: error code = 0x3 ok
cr0.wp = 1: write to a read-only page: saved rip is the faulting instruction ok
cr0.wp = 1: write to a read-only page: cr2 = 0x10002000 ok
0x10003000 maps 0x202000 = 0xaaaa ok
after the pte change and invlpg = 0xbbbb ok
bytes the call pushed before the fetch faulted = 0x4 ok
call into an execute-disable page: vector = 0xe ok
call into an execute-disable page: error code = 0x11 ok
call into an execute-disable page: cr2 = 0x10004000 ok
saved eip is the execute-disable page = 0x10004000 ok
call into the same code through an executable alias returned = 0x1 ok
all checks passed
";

const V_A: u64 = 0x1000_0000;
const V_B: u64 = 0x1000_1000;
const V_RO: u64 = 0x1000_2000;
const V_SW: u64 = 0x1000_3000;
const V_NX: u64 = 0x1000_4000;
const V_X: u64 = 0x1000_5000;
const V_BIG: u64 = 0x4020_0000;

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("paging/pae");
    let mut pt = PageTables::new(Paging::Pae);
    pt.identity(0, 0x40_0000, 21, pte::RW);
    pt.map(V_A, phys::SHARED, 12, pte::RW);
    pt.map(V_B, phys::SHARED, 12, pte::RW);
    pt.map(V_RO, phys::READ_ONLY, 12, 0);
    pt.map(V_SW, phys::OLD, 12, pte::RW);
    pt.map(V_NX, phys::CODE, 12, pte::XD);
    pt.map(V_X, phys::CODE, 12, 0);
    pt.map(V_BIG, phys::SHARED, 21, pte::RW);
    for r in pt.records() {
        rom.ram(r);
    }
    rom.ram(RamInit::Bytes(phys::OLD, 0xaaaau32.to_le_bytes().to_vec()));
    rom.ram(RamInit::Bytes(phys::NEW, 0xbbbbu32.to_le_bytes().to_vec()));
    // mov eax, 1; ret
    rom.ram(RamInit::Bytes(phys::CODE, vec![0xb8, 1, 0, 0, 0, 0xc3]));
    let root = pt.cr3();
    let (pte_a, pte_b, pte_sw) = (
        pt.entry_of(V_A, 12),
        pt.entry_of(V_B, 12),
        pt.entry_of(V_SW, 12),
    );
    let pde_big = pt.entry_of(V_BIG, 21);

    boot::standard_prot32(&mut rom, "main");
    faults::install32(&mut rom);
    rom.code32("main", move |a| {
        print(
            a,
            "PAE paging: 8-byte entries, 4 KiB and 2 MiB pages, execute-disable\n",
        )?;
        a.mov(ecx, MSR_EFER)?;
        a.rdmsr()?;
        a.or(eax, EFER_NXE)?;
        a.wrmsr()?;
        a.mov(eax, cr4)?;
        a.or(eax, CR4_PAE)?;
        a.mov(cr4, eax)?;
        a.mov(eax, root as u32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, CR0_PG | CR0_WP)?;
        a.mov(cr0, eax)?;
        print(a, "paging on\n")?;

        store32(a, V_A, 0x5566_7788)?;
        print(
            a,
            "wrote 0x55667788 at 0x10000000 (4 KiB page at 0x200000)\n",
        )?;
        load32(a, V_B)?;
        check(
            a,
            "read at 0x10001000 (another 4 KiB page at 0x200000)",
            0x5566_7788,
        )?;
        load32(a, V_BIG)?;
        check(
            a,
            "read at 0x40200000 (2 MiB page at 0x200000)",
            0x5566_7788,
        )?;
        let ad = (pte::A | pte::D) as u32;
        check_entry_bits(a, "pte 0x10000000 accessed+dirty", pte_a, ad, 0x60)?;
        check_entry_bits(a, "pte 0x10001000 accessed, not dirty", pte_b, ad, 0x20)?;
        check_entry_bits(
            a,
            "pde 0x40200000 (2 MiB) accessed, not dirty",
            pde_big,
            ad,
            0x20,
        )?;

        faults::expect_fault(a, |a| store32(a, V_RO, 0x6666))?;
        let what = "cr0.wp = 1: write to a read-only page";
        faults::report(a, what, vector::PF, Some(3), SavedRip::Faulting)?;
        faults::report_cr2(a, what, V_RO)?;

        load32(a, V_SW)?;
        check(a, "0x10003000 maps 0x202000", 0xaaaa)?;
        a.mov(
            dword_ptr(pte_sw as u32),
            (phys::NEW | pte::P | pte::RW) as u32,
        )?;
        a.invlpg(ptr(V_SW as u32))?;
        load32(a, V_SW)?;
        check(a, "after the pte change and invlpg", 0xbbbb)?;

        // The CALL itself completes (it pushes the return address); the fetch at its target
        // faults, so the saved EIP is the target and ESP is 4 lower.
        a.mov(dword_ptr(VAR_USER as u32), esp)?;
        faults::expect_fault(a, |a| a.call(V_NX))?;
        a.mov(eax, dword_ptr(VAR_USER as u32))?;
        a.sub(eax, esp)?;
        a.mov(esp, dword_ptr(VAR_USER as u32))?;
        check(a, "bytes the call pushed before the fetch faulted", 4)?;
        let what = "call into an execute-disable page";
        // P (present) | I (instruction fetch).
        faults::report(a, what, vector::PF, Some(0x11), SavedRip::Unchecked)?;
        faults::report_cr2(a, what, V_NX)?;
        a.mov(eax, dword_ptr(VAR_RIP as u32))?;
        check(a, "saved eip is the execute-disable page", V_NX)?;
        a.xor(eax, eax)?;
        a.call(V_X)?;
        check(
            a,
            "call into the same code through an executable alias returned",
            1,
        )?;
        exit(a)
    });
    rom.build(EXPECTED)
}
