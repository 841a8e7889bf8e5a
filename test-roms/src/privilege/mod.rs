//! Privilege ROMs: ring 0 to ring 3 and back in protected mode and in long mode (IRET,
//! interrupt gates with the TSS stack switch, gate DPL checks, SYSCALL/SYSRET).

pub mod align64;
pub mod rings32;
pub mod rings64;

use crate::TestRom;

/// Every ROM of this area.
pub fn all() -> Vec<TestRom> {
    vec![rings32::build(), rings64::build()]
}
