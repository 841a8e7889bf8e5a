//! Exception corner cases in long mode, where emulators tend to slip (SDM Vol. 3A §4.7,
//! §6.13, §6.15, §17.3.1.4; Vol. 1 §7.3.9): a write that straddles into a not-present page
//! faults before changing either page; an instruction that straddles into a not-present page
//! faults at its first byte with CR2 on the second page; a PUSH to a not-present stack page
//! leaves RSP alone; REP MOVSB faulting midway leaves RCX/RSI/RDI at the faulting element;
//! a reserved bit in a page-table entry, and the XD bit without EFER.NXE, set the RSVD bit of
//! the error code; an RBP-based access to a non-canonical address is #SS, not #GP; setting
//! TF with POPF single-steps the next instruction; faults push RF = 1, traps RF = 0; trap
//! gates keep IF, interrupt gates clear it.

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot;
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout;
use crate::asm::tables::pte;
use crate::asm::*;

const EXPECTED: &str = "\
exception corner cases in long mode
qword write straddling into a not-present page: vector = 0xe ok
qword write straddling into a not-present page: error code = 0x2 ok
qword write straddling into a not-present page: saved rip is the faulting instruction ok
qword write straddling into a not-present page: cr2 = 0xc0001000 ok
the present page is unchanged = 0x1111111111111111 ok
instruction straddling into a not-present page: vector = 0xe ok
instruction straddling into a not-present page: error code = 0x0 ok
instruction straddling into a not-present page: cr2 = 0xc0004000 ok
saved rip is the instruction's first byte = 0xc0003ffe ok
push to a not-present stack page: vector = 0xe ok
push to a not-present stack page: error code = 0x2 ok
push to a not-present stack page: saved rip is the faulting instruction ok
push to a not-present stack page: cr2 = 0xc0001008 ok
rsp unchanged by the faulting push = 0xc0001010 ok
rep movsb faulting on its 5th byte: vector = 0xe ok
rep movsb faulting on its 5th byte: error code = 0x2 ok
rep movsb faulting on its 5th byte: saved rip is the faulting instruction ok
rep movsb faulting on its 5th byte: cr2 = 0xc0001000 ok
rcx = bytes left = 0xc ok
rdi = the faulting byte = 0xc0001000 ok
rsi advanced by 4 = 0x4 ok
bytes copied before the fault = 0x44332211 ok
reserved bit 51 in a pte: vector = 0xe ok
reserved bit 51 in a pte: error code = 0x9 ok
reserved bit 51 in a pte: saved rip is the faulting instruction ok
reserved bit 51 in a pte: cr2 = 0xc0005000 ok
xd bit with efer.nxe = 0: vector = 0xe ok
xd bit with efer.nxe = 0: error code = 0x9 ok
xd bit with efer.nxe = 0: saved rip is the faulting instruction ok
xd bit with efer.nxe = 0: cr2 = 0xc0006000 ok
non-canonical address through rbp: vector = 0xc ok
non-canonical address through rbp: error code = 0x0 ok
non-canonical address through rbp: saved rip is the faulting instruction ok
popf setting tf, then nop: vector = 0x1 ok
popf setting tf, then nop: no error code ok
popf setting tf, then nop: saved rip is the next instruction ok
dr6.bs = 0x1 ok
ud2 (a fault): saved rflags.rf = 0x1 ok
int3 (a trap): saved rflags.rf = 0x0 ok
trap gate: if stays set in the handler = 0x1 ok
interrupt gate: if cleared in the handler = 0x0 ok
all checks passed
";

const V_DATA: u64 = 0xc000_0000;
const V_HOLE: u64 = 0xc000_1000;
const V_CODE: u64 = 0xc000_3000;
const V_RSVD: u64 = 0xc000_5000;
const V_XD: u64 = 0xc000_6000;
const P_DATA: u64 = layout::TEST_PAGES;
const P_CODE: u64 = layout::TEST_PAGES + 0x3000;

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("exceptions/edges64");
    let mut pt = boot::long_mode_tables();
    pt.map(V_DATA, P_DATA, 12, pte::RW);
    pt.map(V_CODE, P_CODE, 12, 0);
    pt.map_raw(
        V_RSVD,
        12,
        (layout::TEST_PAGES + 0x5000) | pte::P | pte::RW | (1 << 51),
    );
    pt.map(V_XD, layout::TEST_PAGES + 0x6000, 12, pte::RW | pte::XD);
    // The last two bytes of the code page: the start of "mov eax, imm32" (5 bytes).
    rom.ram(RamInit::Bytes(P_CODE + 0xffe, vec![0xb8, 0x01]));
    rom.ram(RamInit::Bytes(
        P_DATA + 0xff8,
        0x1111_1111_1111_1111u64.to_le_bytes().to_vec(),
    ));
    rom.ram(RamInit::Bytes(
        P_DATA,
        0x4433_2211u32.to_le_bytes().to_vec(),
    ));
    boot::standard_long(&mut rom, &pt, "main", false);
    faults::install64(&mut rom);
    rom.ram(RamInit::Bytes(
        layout::TSS_ADDR,
        tables::tss64(layout::STACK_TOP, &[layout::IST1_TOP]),
    ));
    let pf_gate_ist = layout::IDT_ADDR + u64::from(vector::PF) * 16 + 4;
    rom.ram(tables::idt64_entry(0x30, "if_probe", 0, 0));
    // INT 0x30: record RFLAGS as the handler sees it, then continue like the other stubs.
    rom.code64("if_probe", |a| {
        a.push(rax)?;
        a.pushfq()?;
        a.pop(rax)?;
        a.mov(qword_ptr(layout::VAR_USER + 0x88), rax)?;
        a.pop(rax)?;
        a.push(-1)?;
        a.push(0x30)?;
        let common = a.sym("fault64.common");
        a.jmp(common)
    });

    rom.code64("main", move |a| {
        print(a, "exception corner cases in long mode\n")?;
        a.mov(ax, u32::from(layout::sel::TSS))?;
        a.ltr(ax)?;

        let what = "qword write straddling into a not-present page";
        a.mov(rbx, V_HOLE - 4)?;
        faults::expect_fault(a, |a| a.mov(qword_ptr(rbx), rbx))?;
        faults::report(a, what, vector::PF, Some(2), SavedRip::Faulting)?;
        faults::report_cr2(a, what, V_HOLE)?;
        a.mov(rbx, V_HOLE - 8)?;
        a.mov(rax, qword_ptr(rbx))?;
        check(a, "the present page is unchanged", 0x1111_1111_1111_1111)?;

        let what = "instruction straddling into a not-present page";
        a.mov(rax, V_CODE + 0xffe)?;
        faults::expect_fault(a, |a| a.jmp(rax))?;
        // Not present, a read, supervisor: 0. (The instruction-fetch bit is only reported
        // with EFER.NXE or CR4.SMEP set, neither of which is.)
        faults::report(a, what, vector::PF, Some(0), SavedRip::Unchecked)?;
        faults::report_cr2(a, what, V_CODE + 0x1000)?;
        a.mov(rax, qword_ptr(layout::VAR_RIP))?;
        check(
            a,
            "saved rip is the instruction's first byte",
            V_CODE + 0xffe,
        )?;

        // The #PF gate switches to IST1 so the CPU has a stack to report this one on.
        let what = "push to a not-present stack page";
        a.mov(byte_ptr(pf_gate_ist), 1)?;
        a.mov(r12, rsp)?;
        faults::expect_fault(a, |a| {
            a.mov(rsp, V_HOLE + 0x10)?;
            a.push(rax)
        })?;
        a.mov(rsp, r12)?;
        a.mov(byte_ptr(pf_gate_ist), 0)?;
        faults::report(a, what, vector::PF, Some(2), SavedRip::Unchecked)?;
        faults::report_rip_last(a, what, 1)?;
        faults::report_cr2(a, what, V_HOLE + 8)?;
        a.mov(rax, qword_ptr(layout::VAR_RSP))?;
        check(a, "rsp unchanged by the faulting push", V_HOLE + 0x10)?;

        let what = "rep movsb faulting on its 5th byte";
        a.mov(rsi, V_DATA)?;
        a.mov(rdi, V_HOLE - 4)?;
        a.mov(ecx, 16)?;
        faults::expect_fault(a, |a| a.rep().movsb())?;
        faults::report(a, what, vector::PF, Some(2), SavedRip::Faulting)?;
        faults::report_cr2(a, what, V_HOLE)?;
        a.mov(rax, rcx)?;
        check(a, "rcx = bytes left", 12)?;
        a.mov(rax, rdi)?;
        check(a, "rdi = the faulting byte", V_HOLE)?;
        a.mov(rax, rsi)?;
        a.mov(rbx, V_DATA)?;
        a.sub(rax, rbx)?;
        check(a, "rsi advanced by 4", 4)?;
        a.mov(rbx, V_HOLE - 4)?;
        a.mov(eax, dword_ptr(rbx))?;
        check(a, "bytes copied before the fault", 0x4433_2211)?;

        for (what, v) in [
            ("reserved bit 51 in a pte", V_RSVD),
            ("xd bit with efer.nxe = 0", V_XD),
        ] {
            a.mov(rbx, v)?;
            faults::expect_fault(a, |a| a.mov(rax, qword_ptr(rbx)))?;
            // P (the entry is present) | RSVD.
            faults::report(a, what, vector::PF, Some(9), SavedRip::Faulting)?;
            faults::report_cr2(a, what, v)?;
        }

        let what = "non-canonical address through rbp";
        a.mov(r12, rbp)?;
        a.mov(rbp, 0x8000_0000_0000_0000u64)?;
        faults::expect_fault(a, |a| a.mov(rax, qword_ptr(rbp + 8)))?;
        a.mov(rbp, r12)?;
        faults::report(a, what, vector::SS, Some(0), SavedRip::Faulting)?;

        // POPF sets TF: the instruction after it (NOP) runs, then #DB (a trap).
        let what = "popf setting tf, then nop";
        faults::expect_fault(a, |a| {
            a.pushfq()?;
            a.or(qword_ptr(rsp), 0x100)?;
            a.popfq()?;
            a.nop()
        })?;
        faults::report(a, what, vector::DB, None, SavedRip::Next)?;
        a.mov(rax, dr6)?;
        a.shr(eax, 14)?;
        a.and(eax, 1)?;
        check(a, "dr6.bs", 1)?;

        // Faults push RF = 1 (so the restarted instruction does not re-trigger an
        // instruction breakpoint); traps push RF = 0 (SDM Vol. 3A §17.3.1.1).
        for (what, trap) in [
            ("ud2 (a fault): saved rflags.rf", false),
            ("int3 (a trap): saved rflags.rf", true),
        ] {
            faults::expect_fault(a, |a| if trap { a.int3() } else { a.ud2() })?;
            a.mov(rax, qword_ptr(layout::VAR_RFLAGS))?;
            a.shr(eax, 16)?;
            a.and(eax, 1)?;
            check(a, what, u64::from(!trap))?;
        }

        // Trap gates leave IF alone; interrupt gates clear it (SDM Vol. 3A §6.12.1.3).
        for (gate_type, what, v) in [
            (0x8fu8, "trap gate: if stays set in the handler", 1u64),
            (0x8e, "interrupt gate: if cleared in the handler", 0),
        ] {
            a.mov(
                byte_ptr(layout::IDT_ADDR + 0x30 * 16 + 5),
                u32::from(gate_type),
            )?;
            a.sti()?;
            faults::expect_fault(a, |a| a.int(0x30))?;
            a.cli()?;
            a.mov(rax, qword_ptr(layout::VAR_USER + 0x88))?;
            a.shr(eax, 9)?;
            a.and(eax, 1)?;
            check(a, what, v)?;
        }
        exit(a)
    });
    rom.build(EXPECTED)
}
