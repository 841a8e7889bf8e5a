//! x87 FPU instructions and FXSAVE/FXRSTOR (SDM Vol. 1 ch. 8 and §10.5; Vol. 2 for each
//! instruction). Not implemented yet: every x87 instruction raises #UD.

use iced_x86::Instruction;

use super::cx::Cx;
use crate::fault::Fault;

/// Execute `i` if it is an x87 or FXSAVE-family instruction; None if it is not one.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Option<Result<(), Fault>> {
    let _ = (cx, i);
    None
}
