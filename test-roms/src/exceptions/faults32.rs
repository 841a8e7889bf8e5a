//! Exceptions in 32-bit protected mode (SDM Vol. 3A ch. 6, §5.3-§5.6 for the segment
//! checks): #DE, #UD, #GP for a selector beyond the GDT, for a write through a read-only
//! data segment and for an access beyond a segment limit, #NP, #PF with 32-bit paging,
//! #BP, #OF from INTO, and a double fault: a #GP whose gate is not present raises #NP while
//! delivering it, and #GP then #NP is a double fault.

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot::{self, CR0_PG};
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout::{self, sel};
use crate::asm::tables::{PageTables, Paging, pte};
use crate::asm::*;

const EXPECTED: &str = "\
exceptions in 32-bit protected mode
div by zero: vector = 0x0 ok
div by zero: no error code ok
div by zero: saved rip is the faulting instruction ok
ud2: vector = 0x6 ok
ud2: no error code ok
ud2: saved rip is the faulting instruction ok
mov ds, 0x1230 (beyond the gdt): vector = 0xd ok
mov ds, 0x1230 (beyond the gdt): error code = 0x1230 ok
mov ds, 0x1230 (beyond the gdt): saved rip is the faulting instruction ok
mov es, not-present segment: vector = 0xb ok
mov es, not-present segment: error code = 0x68 ok
mov es, not-present segment: saved rip is the faulting instruction ok
mov ss, null selector: vector = 0xd ok
mov ss, null selector: error code = 0x0 ok
mov ss, null selector: saved rip is the faulting instruction ok
mov ss, data segment with rpl 3 at cpl 0: vector = 0xd ok
mov ss, data segment with rpl 3 at cpl 0: error code = 0x10 ok
mov ss, data segment with rpl 3 at cpl 0: saved rip is the faulting instruction ok
read through a read-only segment = 0x12345678 ok
write through a read-only segment: vector = 0xd ok
write through a read-only segment: error code = 0x0 ok
write through a read-only segment: saved rip is the faulting instruction ok
read beyond a 64 KiB segment limit: vector = 0xd ok
read beyond a 64 KiB segment limit: error code = 0x0 ok
read beyond a 64 KiB segment limit: saved rip is the faulting instruction ok
write of a not-present page: vector = 0xe ok
write of a not-present page: error code = 0x2 ok
write of a not-present page: saved rip is the faulting instruction ok
write of a not-present page: cr2 = 0x8000010 ok
int3: vector = 0x3 ok
int3: no error code ok
int3: saved rip is the next instruction ok
into with OF set: vector = 0x4 ok
into with OF set: no error code ok
into with OF set: saved rip is the next instruction ok
into with OF clear does nothing = 0x4 ok
#GP with its gate not present: vector = 0x8 ok
#GP with its gate not present: error code = 0x0 ok
after restoring the gate, #GP again = 0xd ok
all checks passed
";

/// Not mapped by the page tables.
const UNMAPPED: u64 = 0x0800_0000;

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("exceptions/faults32");
    let mut pt = PageTables::new(Paging::Bits32);
    pt.identity(0, 0x40_0000, 12, pte::RW);
    for r in pt.records() {
        rom.ram(r);
    }
    let root = pt.cr3();
    rom.ram(RamInit::Bytes(
        0x4100,
        0x1234_5678u32.to_le_bytes().to_vec(),
    ));
    boot::standard_prot32(&mut rom, "main");
    faults::install32(&mut rom);
    rom.code32("main", move |a| {
        print(a, "exceptions in 32-bit protected mode\n")?;
        a.mov(eax, root as u32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, CR0_PG)?;
        a.mov(cr0, eax)?;

        faults::expect_fault(a, |a| {
            a.xor(edx, edx)?;
            a.mov(eax, 1)?;
            a.xor(ecx, ecx)?;
            a.div(ecx)
        })?;
        faults::report(a, "div by zero", vector::DE, None, SavedRip::Unchecked)?;
        faults::report_rip_last(a, "div by zero", 2)?;

        faults::expect_fault(a, |a| a.ud2())?;
        faults::report(a, "ud2", vector::UD, None, SavedRip::Faulting)?;

        faults::expect_fault(a, |a| {
            a.mov(ax, 0x1230)?;
            a.mov(ds, ax)
        })?;
        faults::report(
            a,
            "mov ds, 0x1230 (beyond the gdt)",
            vector::GP,
            Some(0x1230),
            SavedRip::Unchecked,
        )?;
        // MOV Sreg, r16 carries an operand-size prefix in 32-bit code: 3 bytes.
        faults::report_rip_last(a, "mov ds, 0x1230 (beyond the gdt)", 3)?;

        faults::expect_fault(a, |a| {
            a.mov(ax, u32::from(sel::NOT_PRESENT))?;
            a.mov(es, ax)
        })?;
        faults::report(
            a,
            "mov es, not-present segment",
            vector::NP,
            Some(u64::from(sel::NOT_PRESENT)),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, "mov es, not-present segment", 3)?;

        // SS must be a writable data segment with RPL = DPL = CPL; a null SS is #GP(0).
        faults::expect_fault(a, |a| {
            a.xor(eax, eax)?;
            a.mov(ss, ax)
        })?;
        faults::report(
            a,
            "mov ss, null selector",
            vector::GP,
            Some(0),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, "mov ss, null selector", 3)?;
        faults::expect_fault(a, |a| {
            a.mov(ax, u32::from(sel::DATA) | 3)?;
            a.mov(ss, ax)
        })?;
        let what = "mov ss, data segment with rpl 3 at cpl 0";
        faults::report(
            a,
            what,
            vector::GP,
            Some(u64::from(sel::DATA)),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, what, 3)?;

        // ES = a read-only data segment: reads work, writes raise #GP(0).
        a.mov(ax, u32::from(sel::DATA_RO))?;
        a.mov(es, ax)?;
        a.mov(eax, dword_ptr(0x4100).es())?;
        check(a, "read through a read-only segment", 0x1234_5678)?;
        faults::expect_fault(a, |a| a.mov(dword_ptr(0x4100).es(), eax))?;
        faults::report(
            a,
            "write through a read-only segment",
            vector::GP,
            Some(0),
            SavedRip::Faulting,
        )?;
        a.mov(ax, u32::from(sel::DATA))?;
        a.mov(es, ax)?;

        // FS = DATA16 (limit 0xffff): offset 0x10000 is beyond it.
        a.mov(ax, u32::from(sel::DATA16))?;
        a.mov(fs, ax)?;
        faults::expect_fault(a, |a| a.mov(eax, dword_ptr(0x1_0000).fs()))?;
        faults::report(
            a,
            "read beyond a 64 KiB segment limit",
            vector::GP,
            Some(0),
            SavedRip::Faulting,
        )?;

        faults::expect_fault(a, |a| a.mov(dword_ptr(UNMAPPED as u32 + 0x10), eax))?;
        faults::report(
            a,
            "write of a not-present page",
            vector::PF,
            Some(2),
            SavedRip::Faulting,
        )?;
        faults::report_cr2(a, "write of a not-present page", UNMAPPED + 0x10)?;

        faults::expect_fault(a, |a| a.int3())?;
        faults::report(a, "int3", vector::BP, None, SavedRip::Next)?;

        // INTO traps (vector 4) when OF is set: 0x7f + 1 overflows.
        a.mov(al, 0x7f)?;
        a.add(al, 1)?;
        faults::expect_fault(a, |a| CodeAssembler::into(a))?;
        faults::report(a, "into with OF set", 4, None, SavedRip::Next)?;
        a.xor(eax, eax)?;
        CodeAssembler::into(a)?;
        a.mov(eax, dword_ptr(layout::VAR_VECTOR as u32))?;
        check(a, "into with OF clear does nothing", 4)?;

        // Double fault: clear the present bit of the #GP gate, raise #GP.
        let gp_gate_access = layout::IDT_ADDR as u32 + u32::from(vector::GP) * 8 + 5;
        a.and(byte_ptr(gp_gate_access), 0x7f)?;
        faults::expect_fault(a, |a| {
            a.mov(ax, 0x1230)?;
            a.mov(ds, ax)
        })?;
        a.or(byte_ptr(gp_gate_access), 0x80)?;
        faults::report(
            a,
            "#GP with its gate not present",
            vector::DF,
            Some(0),
            SavedRip::Unchecked,
        )?;
        faults::expect_fault(a, |a| {
            a.mov(ax, 0x1230)?;
            a.mov(ds, ax)
        })?;
        a.mov(eax, dword_ptr(layout::VAR_VECTOR as u32))?;
        check(
            a,
            "after restoring the gate, #GP again",
            u64::from(vector::GP),
        )?;
        exit(a)
    });
    rom.build(EXPECTED)
}
