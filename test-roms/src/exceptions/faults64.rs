//! Exceptions in long mode (SDM Vol. 3A ch. 6): each test runs one faulting instruction and
//! checks the vector, the error code, the saved RIP (faults point at the instruction, traps
//! after it) and CR2 for page faults. Covers #DE, #UD, #GP (bad selector, non-canonical
//! address), #NP, #PF (not present, read-only), #BP, INT n, a handler on an IST stack, and
//! a double fault: a page fault whose delivery itself page-faults, caught by a #DF handler
//! on its own IST stack; and an exception raised in compatibility mode.

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot::{self, CR0_WP};
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout::{self, sel};
use crate::asm::tables;
use crate::asm::*;

const EXPECTED: &str = "\
exceptions in long mode
div by zero: vector = 0x0 ok
div by zero: no error code ok
div by zero: saved rip is the faulting instruction ok
ud2: vector = 0x6 ok
ud2: no error code ok
ud2: saved rip is the faulting instruction ok
mov ds, 0x1230 (beyond the gdt): vector = 0xd ok
mov ds, 0x1230 (beyond the gdt): error code = 0x1230 ok
mov ds, 0x1230 (beyond the gdt): saved rip is the faulting instruction ok
mov ds, not-present segment: vector = 0xb ok
mov ds, not-present segment: error code = 0x68 ok
mov ds, not-present segment: saved rip is the faulting instruction ok
non-canonical load: vector = 0xd ok
non-canonical load: error code = 0x0 ok
non-canonical load: saved rip is the faulting instruction ok
read of a not-present page: vector = 0xe ok
read of a not-present page: error code = 0x0 ok
read of a not-present page: saved rip is the faulting instruction ok
read of a not-present page: cr2 = 0x50000010 ok
write of a not-present page: vector = 0xe ok
write of a not-present page: error code = 0x2 ok
write of a not-present page: saved rip is the faulting instruction ok
write of a not-present page: cr2 = 0x50000020 ok
write of a read-only page: vector = 0xe ok
write of a read-only page: error code = 0x3 ok
write of a read-only page: saved rip is the faulting instruction ok
write of a read-only page: cr2 = 0xc0000008 ok
int3: vector = 0x3 ok
int3: no error code ok
int3: saved rip is the next instruction ok
int 0x21: vector = 0x21 ok
int 0x21: no error code ok
int 0x21: saved rip is the next instruction ok
int3 through a gate with ist 1: vector = 0x3 ok
int3 through a gate with ist 1: no error code ok
frame pushed on the ist 1 stack = 0x1 ok
double fault: vector = 0x8 ok
double fault: error code = 0x0 ok
frame pushed on the ist 2 stack = 0x1 ok
after the double fault, a page fault is a plain page fault again = 0xe ok
compatibility mode: ud2: vector = 0x6 ok
compatibility mode: ud2: no error code ok
compatibility mode: ud2: saved rip is the faulting instruction ok
compatibility mode: saved cs = 0x8 ok
back in 64-bit mode: cs = 0x18 ok
all checks passed
";

/// Not mapped (above the first GiB, nothing at PDPT entry 1).
const UNMAPPED: u64 = 0x5000_0000;
/// Mapped read-only.
const V_RO: u64 = 0xc000_0000;

/// Gate address of `vector` in the IDT.
fn gate(v: u8) -> u64 {
    layout::IDT_ADDR + u64::from(v) * 16
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("exceptions/faults64");
    let mut pt = boot::long_mode_tables();
    pt.map(V_RO, layout::TEST_PAGES, 12, 0);
    boot::standard_long(&mut rom, &pt, "main", false);
    faults::install64(&mut rom);
    // INT 0x21 goes to a stub too (same handler; the vector is what the stub pushes).
    rom.ram(tables::idt64_entry(0x21, "fault64.int21", 0, 0));
    // IST1 for the IST test, IST2 for #DF, IST3 (set only for the #DF test) is not mapped.
    rom.ram(RamInit::Bytes(
        layout::TSS_ADDR,
        tables::tss64(
            layout::STACK_TOP,
            &[layout::IST1_TOP, layout::IST2_TOP, UNMAPPED],
        ),
    ));
    rom.ram(tables::idt64_entry(vector::DF, "fault64.8", 2, 0));
    rom.code64("int21", |a| {
        a.export("fault64.int21")?;
        a.push(-1)?;
        a.push(0x21)?;
        // Continue in the common handler, right after the vector-3 stub's two pushes.
        let common = a.sym("fault64.common");
        a.jmp(common)
    });
    rom.code64("main", |a| {
        print(a, "exceptions in long mode\n")?;
        a.mov(ax, u32::from(sel::TSS))?;
        a.ltr(ax)?;

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
        faults::report_rip_last(a, "mov ds, 0x1230 (beyond the gdt)", 3)?;

        faults::expect_fault(a, |a| {
            a.mov(ax, u32::from(sel::NOT_PRESENT))?;
            a.mov(ds, ax)
        })?;
        faults::report(
            a,
            "mov ds, not-present segment",
            vector::NP,
            Some(u64::from(sel::NOT_PRESENT)),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, "mov ds, not-present segment", 3)?;

        faults::expect_fault(a, |a| {
            a.mov(rbx, 0x8000_0000_0000_0000u64)?;
            a.mov(rax, qword_ptr(rbx))
        })?;
        faults::report(
            a,
            "non-canonical load",
            vector::GP,
            Some(0),
            SavedRip::Unchecked,
        )?;
        faults::report_rip_last(a, "non-canonical load", 3)?;

        faults::expect_fault(a, |a| a.mov(rax, qword_ptr(UNMAPPED + 0x10)))?;
        faults::report(
            a,
            "read of a not-present page",
            vector::PF,
            Some(0),
            SavedRip::Faulting,
        )?;
        faults::report_cr2(a, "read of a not-present page", UNMAPPED + 0x10)?;

        faults::expect_fault(a, |a| a.mov(qword_ptr(UNMAPPED + 0x20), rax))?;
        faults::report(
            a,
            "write of a not-present page",
            vector::PF,
            Some(2),
            SavedRip::Faulting,
        )?;
        faults::report_cr2(a, "write of a not-present page", UNMAPPED + 0x20)?;

        a.mov(rax, cr0)?;
        a.or(eax, CR0_WP)?;
        a.mov(cr0, rax)?;
        faults::expect_fault(a, |a| a.mov(qword_ptr(V_RO + 8), rax))?;
        faults::report(
            a,
            "write of a read-only page",
            vector::PF,
            Some(3),
            SavedRip::Faulting,
        )?;
        faults::report_cr2(a, "write of a read-only page", V_RO + 8)?;

        faults::expect_fault(a, |a| a.int3())?;
        faults::report(a, "int3", vector::BP, None, SavedRip::Next)?;

        faults::expect_fault(a, |a| a.int(0x21))?;
        faults::report(a, "int 0x21", 0x21, None, SavedRip::Next)?;

        // IST: the #BP gate switches to the IST1 stack whatever RSP was.
        a.mov(byte_ptr(gate(vector::BP) + 4), 1)?;
        faults::expect_fault(a, |a| a.int3())?;
        a.mov(byte_ptr(gate(vector::BP) + 4), 0)?;
        faults::report(
            a,
            "int3 through a gate with ist 1",
            vector::BP,
            None,
            SavedRip::Unchecked,
        )?;
        frame_on(a, layout::IST1_TOP, "frame pushed on the ist 1 stack")?;

        // Double fault: the #PF gate now uses IST3, which points at unmapped memory, so
        // pushing the #PF frame page-faults again: #PF during #PF delivery = #DF, which has
        // its own gate on IST2.
        a.mov(byte_ptr(gate(vector::PF) + 4), 3)?;
        faults::expect_fault(a, |a| a.mov(rax, qword_ptr(UNMAPPED)))?;
        a.mov(byte_ptr(gate(vector::PF) + 4), 0)?;
        faults::report(a, "double fault", vector::DF, Some(0), SavedRip::Unchecked)?;
        frame_on(a, layout::IST2_TOP, "frame pushed on the ist 2 stack")?;
        faults::expect_fault(a, |a| a.mov(rax, qword_ptr(UNMAPPED)))?;
        a.mov(rax, qword_ptr(layout::VAR_VECTOR))?;
        check(
            a,
            "after the double fault, a page fault is a plain page fault again",
            u64::from(vector::PF),
        )?;
        // An exception in compatibility mode goes through the same 64-bit gate; IRETQ
        // returns to the 32-bit code segment.
        let compat = a.sym("compat");
        a.push(i32::from(sel::CODE32))?;
        a.mov(rax, compat)?;
        a.push(rax)?;
        a.retfq()?;
        a.export("back64")?;
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        check(a, "back in 64-bit mode: cs", u64::from(sel::CODE64))?;
        exit(a)
    });
    rom.code32("compat", |a| {
        faults::expect_fault(a, |a| a.ud2())?;
        faults::report(
            a,
            "compatibility mode: ud2",
            vector::UD,
            None,
            SavedRip::Faulting,
        )?;
        a.mov(eax, dword_ptr(layout::VAR_CS as u32))?;
        check(a, "compatibility mode: saved cs", u64::from(sel::CODE32))?;
        let back = a.sym("back64");
        a.jmp_far32(sel::CODE64, back)
    });
    rom.build(EXPECTED)
}

/// Check that the last exception frame's RIP slot was at `top - 40` (five 8-byte slots:
/// SS, RSP, RFLAGS, CS, RIP below a 16-byte-aligned stack top).
fn frame_on(a: &mut Asm, top: u64, label: &str) -> R {
    a.mov(rax, qword_ptr(layout::VAR_FRAME))?;
    a.mov(rbx, top - 40)?;
    a.cmp(rax, rbx)?;
    a.sete(al)?;
    a.movzx(eax, al)?;
    check(a, label, 1)
}
