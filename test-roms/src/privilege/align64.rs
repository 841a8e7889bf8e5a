//! Alignment checking (SDM Vol. 3A §6.15 "Interrupt 17—Alignment Check Exception"): with
//! CR0.AM set, a misaligned data access at CPL 3 with RFLAGS.AC set raises #AC(0); aligned
//! accesses, ring 0, and AC clear are not checked.

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot;
use crate::asm::faults::{self, SavedRip};
use crate::asm::layout::{self, sel};
use crate::asm::tables::{self, PageTables, Paging, pte};
use crate::asm::*;

const EXPECTED: &str = "\
ring 0, cr0.am and rflags.ac set: a misaligned read works = 0x1 ok
ring 3, ac clear: a misaligned read works = 0x1 ok
ring 3, ac set: an aligned read works = 0x1 ok
ring 3, ac set, misaligned dword read: vector = 0x11 ok
ring 3, ac set, misaligned dword read: error code = 0x0 ok
ring 3, ac set, misaligned dword read: saved rip is the faulting instruction ok
all checks passed
";

/// CR0.AM.
const CR0_AM: u32 = 1 << 18;
/// RFLAGS.AC.
const AC: u32 = 1 << 18;

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("privilege/align64");
    let mut pt = PageTables::new(Paging::Level4);
    pt.identity(0, 1 << 30, 21, pte::RW | pte::US);
    boot::standard_long(&mut rom, &pt, "main", false);
    faults::install64(&mut rom);
    rom.ram(RamInit::Bytes(
        layout::TSS_ADDR,
        tables::tss64(layout::IST2_TOP, &[]),
    ));
    rom.ram(tables::idt64_entry(0x82, "done", 0, 3));
    let probe = layout::VAR_USER + 0x40;

    rom.code64("main", move |a| {
        a.mov(ax, u32::from(sel::TSS))?;
        a.ltr(ax)?;
        a.mov(rax, cr0)?;
        a.or(eax, CR0_AM)?;
        a.mov(cr0, rax)?;
        a.pushfq()?;
        a.or(dword_ptr(rsp), AC)?;
        a.popfq()?;
        a.mov(eax, dword_ptr(probe + 1))?;
        a.mov(eax, 1)?;
        check(
            a,
            "ring 0, cr0.am and rflags.ac set: a misaligned read works",
            1,
        )?;
        a.pushfq()?;
        a.and(dword_ptr(rsp), !AC)?;
        a.popfq()?;
        // To ring 3 with IOPL 3 and AC clear.
        a.push(i32::from(sel::USER_DATA))?;
        a.push(layout::USER_STACK_TOP as i32)?;
        a.push(0x3002)?;
        a.push(i32::from(sel::USER_CODE64))?;
        let user = a.sym("user") as i32;
        a.push(user)?;
        a.iretq()
    });

    rom.code64("user", move |a| {
        a.mov(eax, dword_ptr(probe + 1))?;
        a.mov(eax, 1)?;
        check(a, "ring 3, ac clear: a misaligned read works", 1)?;
        a.pushfq()?;
        a.or(dword_ptr(rsp), AC)?;
        a.popfq()?;
        a.mov(eax, dword_ptr(probe + 4))?;
        a.mov(eax, 1)?;
        check(a, "ring 3, ac set: an aligned read works", 1)?;
        faults::expect_fault(a, |a| a.mov(eax, dword_ptr(probe + 1)))?;
        a.pushfq()?;
        a.and(dword_ptr(rsp), !AC)?;
        a.popfq()?;
        faults::report(
            a,
            "ring 3, ac set, misaligned dword read",
            17,
            Some(0),
            SavedRip::Faulting,
        )?;
        a.int(0x82)
    });

    rom.code64("done", |a| {
        a.mov(rsp, layout::STACK_TOP)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
