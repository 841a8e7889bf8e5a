//! PLACEHOLDER: family muldiv, being written.

use iced_x86::Instruction;

use super::cx::Cx;
use crate::fault::Fault;

/// Execute one instruction of this family.
pub fn exec(_cx: &mut Cx, _i: &Instruction) -> Result<(), Fault> {
    Err(Fault::UD)
}
