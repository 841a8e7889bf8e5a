//! Exception ROMs: handlers that record the vector, error code, saved RIP and CR2 of each
//! fault, in long mode and in 32-bit protected mode, up to double faults.

pub mod debug64;
pub mod edges64;
pub mod faults32;
pub mod faults64;

use crate::TestRom;

/// Every ROM of this area.
pub fn all() -> Vec<TestRom> {
    vec![faults64::build(), faults32::build(), edges64::build()]
}
