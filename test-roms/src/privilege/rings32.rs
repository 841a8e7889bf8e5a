//! Privilege levels in 32-bit protected mode (SDM Vol. 3A §5.8, §6.12.1, §7.2): ring 0 drops
//! to ring 3 with IRETD (the frame carries the user CS:EIP and SS:ESP, and IOPL 3 so ring 3
//! may print); ring 3 comes back through an interrupt gate of DPL 3, and the CPU switches to
//! the ring-0 stack named in the TSS; a gate of DPL 0 refuses INT n from ring 3 with #GP; a
//! privileged instruction in ring 3 raises #GP(0).

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot;
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout::{self, sel};
use crate::asm::tables;
use crate::asm::*;

const EXPECTED: &str = "\
ring 0: cs = 0x8 ok
iretd to ring 3 with iopl 3
ring 3: cs = 0x3b ok
ring 3: ss = 0x43 ok
hlt in ring 3: vector = 0xd ok
hlt in ring 3: error code = 0x0 ok
hlt in ring 3: saved rip is the faulting instruction ok
int 0x80 (gate dpl 3): handler cs = 0x8 ok
int 0x80 (gate dpl 3): handler ss (tss.ss0) = 0x10 ok
int 0x80 (gate dpl 3): frame on the tss.esp0 stack = 0x1 ok
int 0x80 (gate dpl 3): saved cs = 0x3b ok
int 0x80 (gate dpl 3): saved ss = 0x43 ok
back in ring 3 after iretd: cs = 0x3b ok
int 0x81 (gate dpl 0): vector = 0xd ok
int 0x81 (gate dpl 0): error code = 0x40a ok
int 0x81 (gate dpl 0): saved rip is the faulting instruction ok
int 0x82: ring 0 again, cs = 0x8 ok
all checks passed
";

/// The ring-0 stack the CPU switches to on entry from ring 3 (TSS.ESP0).
const ESP0: u64 = layout::IST2_TOP;

fn check_sreg(a: &mut Asm, label: &str, s: AsmRegisterSegment, expected: u16) -> R {
    a.xor(eax, eax)?;
    a.mov(ax, s)?;
    check(a, label, u64::from(expected))
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("privilege/rings32");
    boot::standard_prot32(&mut rom, "main");
    faults::install32(&mut rom);
    rom.ram(RamInit::Bytes(
        layout::TSS_ADDR,
        tables::tss32(ESP0 as u32, sel::DATA),
    ));
    rom.ram(tables::idt32_entry(0x80, "sys80", 3));
    rom.ram(tables::idt32_entry(0x81, "fault32.13", 0));
    rom.ram(tables::idt32_entry(0x82, "ring0_again", 3));

    rom.code32("main", |a| {
        check_sreg(a, "ring 0: cs", cs, sel::CODE32)?;
        a.mov(ax, u32::from(sel::TSS))?;
        a.ltr(ax)?;
        print(a, "iretd to ring 3 with iopl 3\n")?;
        // The frame IRETD pops going to an outer level: EIP, CS, EFLAGS, ESP, SS.
        a.push(u32::from(sel::USER_DATA) as i32)?;
        a.push(layout::USER_STACK_TOP as i32)?;
        a.push(0x3002)?;
        a.push(u32::from(sel::USER_CODE32) as i32)?;
        let user = a.sym("user") as i32;
        a.push(user)?;
        a.iretd()
    });

    rom.code32("user", |a| {
        // IRETD to ring 3 nulled DS and ES (their DPL 0 is below the new CPL): load the
        // user data segment.
        a.mov(ax, u32::from(sel::USER_DATA))?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        check_sreg(a, "ring 3: cs", cs, sel::USER_CODE32)?;
        check_sreg(a, "ring 3: ss", ss, sel::USER_DATA)?;

        faults::expect_fault(a, |a| a.hlt())?;
        faults::report(a, "hlt in ring 3", vector::GP, Some(0), SavedRip::Faulting)?;

        a.int(0x80)?;
        let what = "int 0x80 (gate dpl 3)";
        let v = layout::VAR_USER as u32;
        a.mov(eax, dword_ptr(v))?;
        check(a, &format!("{what}: handler cs"), u64::from(sel::CODE32))?;
        a.mov(eax, dword_ptr(v + 16))?;
        check(
            a,
            &format!("{what}: handler ss (tss.ss0)"),
            u64::from(sel::DATA),
        )?;
        a.mov(eax, dword_ptr(v + 12))?;
        a.cmp(eax, (ESP0 - 20) as u32)?;
        a.sete(al)?;
        a.movzx(eax, al)?;
        check(a, &format!("{what}: frame on the tss.esp0 stack"), 1)?;
        a.mov(eax, dword_ptr(v + 4))?;
        check(a, &format!("{what}: saved cs"), u64::from(sel::USER_CODE32))?;
        a.mov(eax, dword_ptr(v + 8))?;
        check(a, &format!("{what}: saved ss"), u64::from(sel::USER_DATA))?;
        check_sreg(a, "back in ring 3 after iretd: cs", cs, sel::USER_CODE32)?;

        faults::expect_fault(a, |a| a.int(0x81))?;
        faults::report(
            a,
            "int 0x81 (gate dpl 0)",
            vector::GP,
            Some((0x81 << 3) | 2),
            SavedRip::Faulting,
        )?;

        a.int(0x82)?;
        a.ud2()
    });

    // INT 0x80 handler: record what the CPU set up, return to ring 3.
    rom.code32("sys80", |a| {
        let v = layout::VAR_USER as u32;
        a.push(eax)?;
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.mov(dword_ptr(v), eax)?;
        // Frame (above the saved EAX): EIP, CS, EFLAGS, ESP, SS.
        a.mov(eax, dword_ptr(esp + 8))?;
        a.mov(dword_ptr(v + 4), eax)?;
        a.mov(eax, dword_ptr(esp + 20))?;
        a.mov(dword_ptr(v + 8), eax)?;
        a.lea(eax, dword_ptr(esp + 4))?;
        a.mov(dword_ptr(v + 12), eax)?;
        a.xor(eax, eax)?;
        a.mov(ax, ss)?;
        a.mov(dword_ptr(v + 16), eax)?;
        a.pop(eax)?;
        a.iretd()
    });

    // INT 0x82 handler: stay in ring 0.
    rom.code32("ring0_again", |a| {
        a.mov(ax, u32::from(sel::DATA))?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(esp, layout::STACK_TOP as u32)?;
        check_sreg(a, "int 0x82: ring 0 again, cs", cs, sel::CODE32)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
