//! Exception handlers for the tests (SDM Vol. 3A §6.12-§6.14): one stub per vector that
//! pushes the vector (and a marker where the CPU pushes no error code), and a common handler
//! that records vector, error code, saved RIP/CS/SS/RSP, CR2 and which stack the CPU used,
//! then resumes where the test asked (`expect_fault`). An exception nobody expected is
//! reported and ends the test with status 2.

use iced_x86::code_asm::*;

use super::layout::*;
use super::rom::{Asm, R, RomBuilder};
use super::rt::{check, check_quiet, hex, print};
use super::tables::{idt32_entry, idt64_entry};

/// Vectors for which the CPU pushes an error code.
pub const WITH_ERROR_CODE: [u8; 8] = [8, 10, 11, 12, 13, 14, 17, 21];

/// Exception vectors.
pub mod vector {
    #![allow(missing_docs)]
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const BP: u8 = 3;
    pub const UD: u8 = 6;
    pub const DF: u8 = 8;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
}

/// Where the test expects the saved instruction pointer to point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SavedRip {
    /// A fault: the instruction that faulted (it can be restarted).
    Faulting,
    /// A trap or INT n: the instruction after it.
    Next,
    /// Not checked (#DF: the SDM leaves it undefined).
    Unchecked,
}

/// Address of the first instruction of the last `expect_fault` body.
const VAR_EXPECT_FAULT_RIP: u64 = VARS + 0x70;
/// Address right after the last `expect_fault` body.
const VAR_EXPECT_NEXT_RIP: u64 = VARS + 0x78;

/// Add 64-bit stubs and the common handler (piece `faults64`) and IDT gates for vectors
/// 0-31 (interrupt gates, DPL 0, no IST). Later `ram` records may replace single gates.
pub fn install64(rom: &mut RomBuilder) {
    rom.code64("faults64", stubs64);
    for v in 0..32u8 {
        rom.ram(idt64_entry(v, &format!("fault64.{v}"), 0, 0));
    }
}

/// Add 32-bit stubs and the common handler (piece `faults32`) and IDT gates for 0-31.
pub fn install32(rom: &mut RomBuilder) {
    rom.code32("faults32", stubs32);
    for v in 0..32u8 {
        rom.ram(idt32_entry(v, &format!("fault32.{v}"), 0));
    }
}

fn stubs64(a: &mut Asm) -> R {
    let mut common = a.create_label();
    for v in 0..32u8 {
        a.export(&format!("fault64.{v}"))?;
        if !WITH_ERROR_CODE.contains(&v) {
            a.push(-1)?;
        }
        a.push(i32::from(v))?;
        a.jmp(common)?;
    }
    // Stack: vector, error code, RIP, CS, RFLAGS, RSP, SS (the CPU always pushes SS:RSP in
    // long mode), and RAX on top once saved.
    a.set_label(&mut common)?;
    a.export_label("fault64.common", common);
    a.push(rax)?;
    for (off, var) in [
        (8, VAR_VECTOR),
        (16, VAR_ERROR),
        (24, VAR_RIP),
        (32, VAR_CS),
        (40, VAR_RFLAGS),
        (48, VAR_RSP),
        (56, VAR_SS),
    ] {
        a.mov(rax, qword_ptr(rsp + off))?;
        a.mov(qword_ptr(var), rax)?;
    }
    a.mov(rax, cr2)?;
    a.mov(qword_ptr(VAR_CR2), rax)?;
    a.lea(rax, qword_ptr(rsp + 24))?;
    a.mov(qword_ptr(VAR_FRAME), rax)?;
    a.inc(qword_ptr(VAR_COUNT))?;
    let mut unexpected = a.create_label();
    a.mov(rax, qword_ptr(VAR_RESUME))?;
    a.test(rax, rax)?;
    a.jz(unexpected)?;
    a.mov(qword_ptr(rsp + 24), rax)?;
    // Resume without single-stepping (a #DB from TF would otherwise repeat forever).
    a.and(qword_ptr(rsp + 40), !0x100)?;
    for (off, var) in [
        (32, VAR_RESUME_CS),
        (56, VAR_RESUME_SS),
        (48, VAR_RESUME_RSP),
    ] {
        let mut keep = a.create_label();
        a.mov(rax, qword_ptr(var))?;
        a.test(rax, rax)?;
        a.jz(keep)?;
        a.mov(qword_ptr(rsp + off), rax)?;
        a.set_label(&mut keep)?;
        a.nop()?;
    }
    // One exception per expect_fault: a second one is unexpected.
    a.xor(eax, eax)?;
    for var in [VAR_RESUME, VAR_RESUME_CS, VAR_RESUME_SS, VAR_RESUME_RSP] {
        a.mov(qword_ptr(var), rax)?;
    }
    a.pop(rax)?;
    a.add(rsp, 16)?;
    a.iretq()?;
    a.set_label(&mut unexpected)?;
    print(a, "unexpected exception: vector ")?;
    a.mov(rax, qword_ptr(VAR_VECTOR))?;
    hex(a)?;
    print(a, " error code ")?;
    a.mov(rax, qword_ptr(VAR_ERROR))?;
    hex(a)?;
    print(a, " rip ")?;
    a.mov(rax, qword_ptr(VAR_RIP))?;
    hex(a)?;
    print(a, " cr2 ")?;
    a.mov(rax, qword_ptr(VAR_CR2))?;
    hex(a)?;
    print(a, "\n")?;
    stop(a)
}

/// Write 2 to the debug-exit port and stop.
fn stop(a: &mut Asm) -> R {
    let mut l = a.create_label();
    a.mov(al, 2)?;
    a.mov(dx, u32::from(DEBUG_EXIT))?;
    a.out(dx, al)?;
    a.set_label(&mut l)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(l)
}

fn stubs32(a: &mut Asm) -> R {
    let mut common = a.create_label();
    for v in 0..32u8 {
        a.export(&format!("fault32.{v}"))?;
        if !WITH_ERROR_CODE.contains(&v) {
            a.push(-1)?;
        }
        a.push(i32::from(v))?;
        a.jmp(common)?;
    }
    // Stack: vector, error code, EIP, CS, EFLAGS, then ESP and SS only if the privilege level
    // changed; EAX on top once saved.
    a.set_label(&mut common)?;
    a.export_label("fault32.common", common);
    a.push(eax)?;
    for (off, var) in [
        (4, VAR_VECTOR),
        (8, VAR_ERROR),
        (12, VAR_RIP),
        (16, VAR_CS),
        (20, VAR_RFLAGS),
        (24, VAR_RSP),
        (28, VAR_SS),
    ] {
        a.mov(eax, dword_ptr(esp + off))?;
        a.mov(dword_ptr(var as u32), eax)?;
        a.mov(dword_ptr(var as u32 + 4), 0)?;
    }
    a.mov(eax, cr2)?;
    a.mov(dword_ptr(VAR_CR2 as u32), eax)?;
    a.lea(eax, dword_ptr(esp + 12))?;
    a.mov(dword_ptr(VAR_FRAME as u32), eax)?;
    a.inc(dword_ptr(VAR_COUNT as u32))?;
    let mut unexpected = a.create_label();
    let mut keep = a.create_label();
    a.mov(eax, dword_ptr(VAR_RESUME as u32))?;
    a.test(eax, eax)?;
    a.jz(unexpected)?;
    a.mov(dword_ptr(esp + 12), eax)?;
    a.and(dword_ptr(esp + 20), !0x100)?;
    a.mov(eax, dword_ptr(VAR_RESUME_CS as u32))?;
    a.test(eax, eax)?;
    a.jz(keep)?;
    a.mov(dword_ptr(esp + 16), eax)?;
    a.set_label(&mut keep)?;
    a.xor(eax, eax)?;
    a.mov(dword_ptr(VAR_RESUME as u32), eax)?;
    a.mov(dword_ptr(VAR_RESUME_CS as u32), eax)?;
    a.pop(eax)?;
    a.add(esp, 8)?;
    a.iretd()?;
    a.set_label(&mut unexpected)?;
    print(a, "unexpected exception: vector ")?;
    a.mov(eax, dword_ptr(VAR_VECTOR as u32))?;
    hex(a)?;
    print(a, " error code ")?;
    a.mov(eax, dword_ptr(VAR_ERROR as u32))?;
    hex(a)?;
    print(a, " eip ")?;
    a.mov(eax, dword_ptr(VAR_RIP as u32))?;
    hex(a)?;
    print(a, " cr2 ")?;
    a.mov(eax, dword_ptr(VAR_CR2 as u32))?;
    hex(a)?;
    print(a, "\n")?;
    stop(a)
}

/// Run `body`, whose first instruction must raise an exception (bodies that set up registers
/// first check the RIP with `report_rip_last`). The handler records it and execution
/// continues right after `body`; the body sees every register as the caller left it (the
/// stack must be usable when this is called). Before `body`, the recorded vector is set to
/// 0xff ("none"), so a missing exception shows up in the vector check.
pub fn expect_fault(a: &mut Asm, body: impl FnOnce(&mut Asm) -> R) -> R {
    let start = a.unique("fault");
    let resume = a.unique("resume");
    let (start_addr, resume_addr) = (a.sym(&start), a.sym(&resume));
    if a.bitness() == 64 {
        // Every register is the body's: RAX is borrowed and given back.
        a.mov(qword_ptr(VAR_VECTOR), 0xff)?;
        a.mov(qword_ptr(VAR_ERROR), 0xff)?;
        a.push(rax)?;
        a.mov(rax, resume_addr)?;
        a.mov(qword_ptr(VAR_RESUME), rax)?;
        a.mov(qword_ptr(VAR_EXPECT_NEXT_RIP), rax)?;
        a.mov(rax, start_addr)?;
        a.mov(qword_ptr(VAR_EXPECT_FAULT_RIP), rax)?;
        a.pop(rax)?;
    } else {
        a.mov(dword_ptr(VAR_VECTOR as u32), 0xff)?;
        a.mov(dword_ptr(VAR_ERROR as u32), 0xff)?;
        a.mov(dword_ptr(VAR_RESUME as u32), resume_addr as u32)?;
        a.mov(dword_ptr(VAR_EXPECT_NEXT_RIP as u32), resume_addr as u32)?;
        a.mov(dword_ptr(VAR_EXPECT_FAULT_RIP as u32), start_addr as u32)?;
    }
    a.export(&start)?;
    body(a)?;
    a.export(&resume)?;
    a.nop()
}

/// Check the exception recorded by the last `expect_fault`: its vector, its error code
/// (None: the CPU pushed none) and the saved instruction pointer. Prints one line each,
/// prefixed with `what`.
pub fn report(a: &mut Asm, what: &str, vec: u8, error: Option<u64>, rip: SavedRip) -> R {
    let wide = a.bitness() == 64;
    let load = |a: &mut Asm, var: u64| -> R {
        if wide {
            a.mov(rax, qword_ptr(var))
        } else {
            a.mov(eax, dword_ptr(var as u32))
        }
    };
    load(a, VAR_VECTOR)?;
    check(a, &format!("{what}: vector"), u64::from(vec))?;
    load(a, VAR_ERROR)?;
    match error {
        Some(e) => check(a, &format!("{what}: error code"), e)?,
        None => check_quiet(a, &format!("{what}: no error code"), NO_ERROR_CODE)?,
    }
    let expect = match rip {
        SavedRip::Faulting => VAR_EXPECT_FAULT_RIP,
        SavedRip::Next => VAR_EXPECT_NEXT_RIP,
        SavedRip::Unchecked => return Ok(()),
    };
    load(a, VAR_RIP)?;
    if wide {
        a.push(rbx)?;
        a.mov(rbx, qword_ptr(expect))?;
    } else {
        a.push(ebx)?;
        a.mov(ebx, dword_ptr(expect as u32))?;
    }
    let text = match rip {
        SavedRip::Faulting => format!("{what}: saved rip is the faulting instruction"),
        _ => format!("{what}: saved rip is the next instruction"),
    };
    super::rt::check_rbx_quiet(a, &text)?;
    if wide { a.pop(rbx) } else { a.pop(ebx) }
}

/// Check CR2 as recorded by the handler.
pub fn report_cr2(a: &mut Asm, what: &str, expected: u64) -> R {
    if a.bitness() == 64 {
        a.mov(rax, qword_ptr(VAR_CR2))?;
    } else {
        a.mov(eax, dword_ptr(VAR_CR2 as u32))?;
    }
    check(a, &format!("{what}: cr2"), expected)
}

/// Check that the saved RIP is the last instruction of the `expect_fault` body, which is
/// `len` bytes long (for bodies that set up registers before the faulting instruction).
pub fn report_rip_last(a: &mut Asm, what: &str, len: i32) -> R {
    let wide = a.bitness() == 64;
    if wide {
        a.mov(rax, qword_ptr(VAR_RIP))?;
        a.add(rax, len)?;
        a.push(rbx)?;
        a.mov(rbx, qword_ptr(VAR_EXPECT_NEXT_RIP))?;
    } else {
        a.mov(eax, dword_ptr(VAR_RIP as u32))?;
        a.add(eax, len)?;
        a.push(ebx)?;
        a.mov(ebx, dword_ptr(VAR_EXPECT_NEXT_RIP as u32))?;
    }
    super::rt::check_rbx_quiet(a, &format!("{what}: saved rip is the faulting instruction"))?;
    if wide { a.pop(rbx) } else { a.pop(ebx) }
}
