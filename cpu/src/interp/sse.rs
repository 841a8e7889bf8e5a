//! SSE and SSE2 instructions on the XMM registers and MXCSR (SDM Vol. 1 ch. 10-11; Vol. 2
//! for each instruction). Not implemented yet: every SSE instruction raises #UD.

use iced_x86::Instruction;

use super::cx::Cx;
use crate::fault::Fault;

/// Execute `i` if it is an SSE/SSE2 instruction; None if it is not one.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Option<Result<(), Fault>> {
    let _ = (cx, i);
    None
}
