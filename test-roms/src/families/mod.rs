//! ROMs of the families area.

use crate::TestRom;

/// Every ROM of this area.
pub fn all() -> Vec<TestRom> {
    vec![]
}
