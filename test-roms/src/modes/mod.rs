//! Mode-switch ROMs: real mode, 16/32-bit protected mode, long mode, compatibility mode, and
//! back to real mode.

pub mod prot_to_real;
pub mod real_to_long;
pub mod segments;
pub mod selfmod;

use crate::TestRom;

/// Every ROM of this area.
pub fn all() -> Vec<TestRom> {
    vec![
        real_to_long::build(),
        prot_to_real::build(),
        segments::build(),
        selfmod::build(),
    ]
}
