//! Debug-register breakpoints in long mode (SDM Vol. 3A §17.2-§17.3): a data breakpoint
//! (DR0, writes, 4 bytes) is a trap taken after the write, with DR6.B0 set; an instruction
//! breakpoint (DR1, execute) is a fault taken before the instruction, which runs once the
//! handler returns with RF set. Not in `all()` yet: vx's interpreter accepts DR0-DR7 writes
//! but does not raise these #DB exceptions (see `pending()`).

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::boot;
use crate::asm::faults::{self, SavedRip, vector};
use crate::asm::layout;
use crate::asm::*;

const EXPECTED: &str = "\
debug-register breakpoints
data breakpoint (dr0, write, 4 bytes): vector = 0x1 ok
data breakpoint (dr0, write, 4 bytes): no error code ok
data breakpoint (dr0, write, 4 bytes): saved rip is the next instruction ok
dr6.b0 = 0x1 ok
the write happened before the trap = 0x77 ok
instruction breakpoint (dr1, execute): vector = 0x1 ok
instruction breakpoint (dr1, execute): no error code ok
instruction breakpoint (dr1, execute): saved rip is the faulting instruction ok
dr6.b1 = 0x1 ok
the instruction had not run yet = 0x0 ok
all checks passed
";

/// Build the ROM.
pub fn build() -> TestRom {
    let mut rom = RomBuilder::new("exceptions/debug64");
    boot::standard_long(&mut rom, &boot::long_mode_tables(), "main", false);
    faults::install64(&mut rom);
    rom.code64("main", |a| {
        print(a, "debug-register breakpoints\n")?;
        let watched = layout::VAR_USER + 0x80;
        let what = "data breakpoint (dr0, write, 4 bytes)";
        a.mov(rax, watched)?;
        a.mov(dr0, rax)?;
        a.xor(eax, eax)?;
        a.mov(dr6, rax)?;
        // DR7: L0, R/W0 = 01 (data writes), LEN0 = 11 (4 bytes).
        a.mov(eax, 0x000d_0401)?;
        a.mov(dr7, rax)?;
        faults::expect_fault(a, |a| a.mov(dword_ptr(watched), 0x77))?;
        a.mov(eax, 0x400)?;
        a.mov(dr7, rax)?;
        faults::report(a, what, vector::DB, None, SavedRip::Next)?;
        a.mov(rax, dr6)?;
        a.and(eax, 1)?;
        check(a, "dr6.b0", 1)?;
        a.mov(eax, dword_ptr(watched))?;
        check(a, "the write happened before the trap", 0x77)?;

        // DR1 on an instruction: the #DB is a fault, before the instruction executes.
        let what = "instruction breakpoint (dr1, execute)";
        let target = a.unique("target");
        let t = a.sym(&target);
        a.mov(rax, t)?;
        a.mov(dr1, rax)?;
        a.xor(eax, eax)?;
        a.mov(dr6, rax)?;
        a.mov(qword_ptr(watched), 0)?;
        // DR7: L1, R/W1 = 00 (execute), LEN1 = 00.
        a.mov(eax, 0x404)?;
        a.mov(dr7, rax)?;
        faults::expect_fault(a, |a| {
            a.nop()?;
            a.export(&target)?;
            a.mov(dword_ptr(watched), 1)
        })?;
        a.mov(eax, 0x400)?;
        a.mov(dr7, rax)?;
        faults::report(a, what, vector::DB, None, SavedRip::Unchecked)?;
        a.mov(rax, qword_ptr(layout::VAR_RIP))?;
        a.mov(rbx, t)?;
        rt::check_rbx_quiet(a, &format!("{what}: saved rip is the faulting instruction"))?;
        a.mov(rax, dr6)?;
        a.shr(eax, 1)?;
        a.and(eax, 1)?;
        check(a, "dr6.b1", 1)?;
        a.mov(eax, dword_ptr(watched))?;
        check(a, "the instruction had not run yet", 0)?;
        exit(a)
    });
    rom.build(EXPECTED)
}
