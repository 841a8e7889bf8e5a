//! Privilege levels in long mode (SDM Vol. 3A §5.8.8, §6.14, §7.7; Vol. 2B SYSCALL/SYSRET):
//! IRETQ to ring 3; page protection seen from ring 3 (#PF with the user bit for a
//! supervisor page, and for a write to a read-only user page); INT n through a DPL-3 gate,
//! with the stack switch to TSS.RSP0 and a null SS; #GP for a DPL-0 gate; SYSCALL and
//! SYSRETQ with the selectors from STAR, RCX/R11 holding RIP/RFLAGS and FMASK clearing DF.

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot::{self, EFER_SCE, MSR_EFER};
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout::{self, sel};
use crate::asm::tables::{self, PageTables, Paging, pte};
use crate::asm::*;

const EXPECTED: &str = "\
ring 0: cs = 0x18 ok
iretq to ring 3 with iopl 3
ring 3: cs = 0x4b ok
ring 3: ss = 0x43 ok
read of a supervisor page from ring 3: vector = 0xe ok
read of a supervisor page from ring 3: error code = 0x5 ok
read of a supervisor page from ring 3: saved rip is the faulting instruction ok
read of a supervisor page from ring 3: cr2 = 0xc0000000 ok
write of a read-only user page from ring 3: vector = 0xe ok
write of a read-only user page from ring 3: error code = 0x7 ok
write of a read-only user page from ring 3: saved rip is the faulting instruction ok
write of a read-only user page from ring 3: cr2 = 0xc0001008 ok
read of the read-only user page = 0x42 ok
int 0x80 (gate dpl 3): handler cs = 0x18 ok
int 0x80 (gate dpl 3): handler ss (null in long mode) = 0x0 ok
int 0x80 (gate dpl 3): frame on the tss.rsp0 stack = 0x1 ok
int 0x80 (gate dpl 3): saved cs = 0x4b ok
int 0x80 (gate dpl 3): saved ss = 0x43 ok
back in ring 3 after iretq: cs = 0x4b ok
int 0x81 (gate dpl 0): vector = 0xd ok
int 0x81 (gate dpl 0): error code = 0x40a ok
int 0x81 (gate dpl 0): saved rip is the faulting instruction ok
syscall: kernel cs (star[47:32]) = 0x18 ok
syscall: kernel ss (star[47:32] + 8) = 0x20 ok
syscall: rcx is the return address ok
syscall: r11 holds the user rflags, df = 0x1 ok
syscall: fmask cleared df in the kernel = 0x0 ok
sysretq: cs (star[63:48] + 16) = 0x4b ok
sysretq: ss (star[63:48] + 8) = 0x43 ok
sysretq: rflags from r11, df = 0x1 ok
int 0x82: ring 0 again, cs = 0x18 ok
all checks passed
";

/// The ring-0 stack the CPU switches to on entry from ring 3 (TSS.RSP0).
const RSP0: u64 = layout::IST2_TOP;
/// A supervisor-only page.
const V_SUP: u64 = 0xc000_0000;
/// A read-only user page.
const V_URO: u64 = 0xc000_1000;
/// Syscall scratch variables.
const SV: u64 = layout::VAR_USER + 0x40;

fn check_sreg(a: &mut Asm, label: &str, s: AsmRegisterSegment, expected: u16) -> R {
    a.xor(eax, eax)?;
    a.mov(ax, s)?;
    check(a, label, u64::from(expected))
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("privilege/rings64");
    let mut pt = PageTables::new(Paging::Level4);
    pt.identity(0, 1 << 30, 21, pte::RW | pte::US);
    pt.map(V_SUP, layout::TEST_PAGES, 12, pte::RW);
    pt.map(V_URO, layout::TEST_PAGES + 0x1000, 12, pte::US);
    rom.ram(RamInit::Bytes(layout::TEST_PAGES + 0x1000, vec![0x42]));
    boot::standard_long(&mut rom, &pt, "main", false);
    faults::install64(&mut rom);
    rom.ram(RamInit::Bytes(layout::TSS_ADDR, tables::tss64(RSP0, &[])));
    rom.ram(tables::idt64_entry(0x80, "sys80", 0, 3));
    rom.ram(tables::idt64_entry(0x81, "fault64.13", 0, 0));
    rom.ram(tables::idt64_entry(0x82, "ring0_again", 0, 3));

    rom.code64("main", |a| {
        check_sreg(a, "ring 0: cs", cs, sel::CODE64)?;
        a.mov(ax, u32::from(sel::TSS))?;
        a.ltr(ax)?;
        // SYSCALL/SYSRET setup: EFER.SCE, STAR selectors, LSTAR entry, FMASK = IF | DF.
        a.mov(ecx, MSR_EFER)?;
        a.rdmsr()?;
        a.or(eax, EFER_SCE)?;
        a.wrmsr()?;
        a.mov(ecx, 0xc000_0081u32)?;
        a.xor(eax, eax)?;
        a.mov(
            edx,
            (u32::from(sel::USER_CODE32 & !3) << 16) | u32::from(sel::CODE64),
        )?;
        a.wrmsr()?;
        let entry = a.sym("syscall_entry");
        a.mov(ecx, 0xc000_0082u32)?;
        a.mov(eax, entry as u32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.mov(ecx, 0xc000_0084u32)?;
        a.mov(eax, 0x600)?;
        a.wrmsr()?;
        print(a, "iretq to ring 3 with iopl 3\n")?;
        a.push(i32::from(sel::USER_DATA))?;
        a.push(layout::USER_STACK_TOP as i32)?;
        a.push(0x3002)?;
        a.push(i32::from(sel::USER_CODE64))?;
        let user = a.sym("user") as i32;
        a.push(user)?;
        a.iretq()
    });

    rom.code64("user", |a| {
        check_sreg(a, "ring 3: cs", cs, sel::USER_CODE64)?;
        check_sreg(a, "ring 3: ss", ss, sel::USER_DATA)?;

        faults::expect_fault(a, |a| a.mov(rax, qword_ptr(V_SUP)))?;
        let what = "read of a supervisor page from ring 3";
        faults::report(a, what, vector::PF, Some(5), SavedRip::Faulting)?;
        faults::report_cr2(a, what, V_SUP)?;
        faults::expect_fault(a, |a| a.mov(qword_ptr(V_URO + 8), rax))?;
        let what = "write of a read-only user page from ring 3";
        faults::report(a, what, vector::PF, Some(7), SavedRip::Faulting)?;
        faults::report_cr2(a, what, V_URO + 8)?;
        a.mov(rbx, V_URO)?;
        a.movzx(eax, byte_ptr(rbx))?;
        check(a, "read of the read-only user page", 0x42)?;

        a.int(0x80)?;
        let what = "int 0x80 (gate dpl 3)";
        let v = layout::VAR_USER;
        a.mov(rax, qword_ptr(v))?;
        check(a, &format!("{what}: handler cs"), u64::from(sel::CODE64))?;
        a.mov(rax, qword_ptr(v + 32))?;
        check(a, &format!("{what}: handler ss (null in long mode)"), 0)?;
        a.mov(rax, qword_ptr(v + 24))?;
        a.mov(rbx, RSP0 - 40)?;
        a.cmp(rax, rbx)?;
        a.sete(al)?;
        a.movzx(eax, al)?;
        check(a, &format!("{what}: frame on the tss.rsp0 stack"), 1)?;
        a.mov(rax, qword_ptr(v + 8))?;
        check(a, &format!("{what}: saved cs"), u64::from(sel::USER_CODE64))?;
        a.mov(rax, qword_ptr(v + 16))?;
        check(a, &format!("{what}: saved ss"), u64::from(sel::USER_DATA))?;
        check_sreg(a, "back in ring 3 after iretq: cs", cs, sel::USER_CODE64)?;

        faults::expect_fault(a, |a| a.int(0x81))?;
        faults::report(
            a,
            "int 0x81 (gate dpl 0)",
            vector::GP,
            Some((0x81 << 3) | 2),
            SavedRip::Faulting,
        )?;

        // SYSCALL with DF set: the kernel sees DF clear (FMASK), R11 keeps the user's.
        let back = a.unique("after_syscall");
        a.std()?;
        a.syscall()?;
        a.export(&back)?;
        a.pushfq()?;
        a.pop(r12)?;
        a.cld()?;
        a.mov(rax, qword_ptr(SV))?;
        check(
            a,
            "syscall: kernel cs (star[47:32])",
            u64::from(sel::CODE64),
        )?;
        a.mov(rax, qword_ptr(SV + 8))?;
        check(
            a,
            "syscall: kernel ss (star[47:32] + 8)",
            u64::from(sel::DATA_SYSCALL),
        )?;
        a.mov(rax, qword_ptr(SV + 16))?;
        let back_addr = a.sym(&back);
        a.mov(rbx, back_addr)?;
        rt::check_rbx_quiet(a, "syscall: rcx is the return address")?;
        a.mov(rax, qword_ptr(SV + 24))?;
        a.shr(eax, 10)?;
        a.and(eax, 1)?;
        check(a, "syscall: r11 holds the user rflags, df", 1)?;
        a.mov(rax, qword_ptr(SV + 32))?;
        a.shr(eax, 10)?;
        a.and(eax, 1)?;
        check(a, "syscall: fmask cleared df in the kernel", 0)?;
        check_sreg(a, "sysretq: cs (star[63:48] + 16)", cs, sel::USER_CODE64)?;
        check_sreg(a, "sysretq: ss (star[63:48] + 8)", ss, sel::USER_DATA)?;
        a.mov(rax, r12)?;
        a.shr(eax, 10)?;
        a.and(eax, 1)?;
        check(a, "sysretq: rflags from r11, df", 1)?;

        a.int(0x82)?;
        a.ud2()
    });

    // SYSCALL entry (ring 0, still on the user stack): record and return.
    rom.code64("syscall_entry", |a| {
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.mov(qword_ptr(SV), rax)?;
        a.mov(ax, ss)?;
        a.mov(qword_ptr(SV + 8), rax)?;
        a.mov(qword_ptr(SV + 16), rcx)?;
        a.mov(qword_ptr(SV + 24), r11)?;
        a.pushfq()?;
        a.pop(rax)?;
        a.mov(qword_ptr(SV + 32), rax)?;
        a.sysretq()
    });

    // INT 0x80 handler: record what the CPU set up, return to ring 3.
    rom.code64("sys80", |a| {
        let v = layout::VAR_USER;
        a.push(rax)?;
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.mov(qword_ptr(v), rax)?;
        // Frame (above the saved RAX): RIP, CS, RFLAGS, RSP, SS.
        a.mov(rax, qword_ptr(rsp + 16))?;
        a.mov(qword_ptr(v + 8), rax)?;
        a.mov(rax, qword_ptr(rsp + 40))?;
        a.mov(qword_ptr(v + 16), rax)?;
        a.lea(rax, qword_ptr(rsp + 8))?;
        a.mov(qword_ptr(v + 24), rax)?;
        a.xor(eax, eax)?;
        a.mov(ax, ss)?;
        a.mov(qword_ptr(v + 32), rax)?;
        a.pop(rax)?;
        a.iretq()
    });

    rom.code64("ring0_again", |a| {
        a.mov(rsp, layout::STACK_TOP)?;
        check_sreg(a, "int 0x82: ring 0 again, cs", cs, sel::CODE64)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
