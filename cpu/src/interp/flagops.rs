//! Flag instructions: LAHF SAHF CLC STC CMC CLD STD CLI STI (SDM Vol. 2A/2B).

use iced_x86::{Instruction, Mnemonic};

use super::cx::Cx;
use crate::fault::Fault;
use crate::state::flags::{AF, CF, DF, FIXED1, IF, IOPL, PF, SF, VM, ZF};
use crate::state::gpr;

/// Execute one flag instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let f = &mut cx.st.rflags;
    match i.mnemonic() {
        Lahf => {
            let v = (*f & (SF | ZF | AF | PF | CF)) | FIXED1;
            cx.set_reg(gpr::RAX as u8, true, 1, v);
        }
        Sahf => {
            let ah = (cx.st.gpr[gpr::RAX] >> 8) & 0xff;
            cx.st.rflags =
                (cx.st.rflags & !(SF | ZF | AF | PF | CF)) | (ah & (SF | ZF | AF | PF | CF));
        }
        Clc => *f &= !CF,
        Stc => *f |= CF,
        Cmc => *f ^= CF,
        Cld => *f &= !DF,
        Std => *f |= DF,
        Cli | Sti => {
            // Protected mode: IF changes only when CPL <= IOPL (no VME/PVI support).
            let iopl = ((cx.st.rflags & IOPL) >> 12) as u8;
            if cx.st.protected_mode() && (cx.cpl() > iopl || cx.st.rflags & VM != 0) {
                return Err(Fault::GP0);
            }
            if i.mnemonic() == Cli {
                cx.st.rflags &= !IF;
            } else {
                if cx.st.rflags & IF == 0 {
                    // STI blocks interrupts until after the next instruction.
                    cx.st.interrupt_shadow = true;
                }
                cx.st.rflags |= IF;
            }
        }
        _ => unreachable!("flagops::exec is dispatched only for flag mnemonics"),
    }
    Ok(())
}
