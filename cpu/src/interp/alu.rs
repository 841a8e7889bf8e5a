//! Integer arithmetic and logic: ADD ADC SUB SBB CMP INC DEC NEG AND OR XOR NOT TEST
//! (SDM Vol. 2A/2B, one entry per mnemonic).

use iced_x86::{Instruction, Mnemonic};

use super::cx::{Cx, mask};
use super::flags;
use crate::fault::Fault;
use crate::state::flags::{AF, CF, OF, PF, SF, ZF};

/// Execute one ALU instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    match m {
        Inc | Dec | Neg | Not => {
            let op = cx.op(i, 0, true)?;
            let size = op.size;
            let a = cx.load(&op)?;
            let (r, f, which) = match m {
                Inc => {
                    let r = a.wrapping_add(1) & mask(size);
                    (r, flags::add(a, 1, r, size), OF | SF | ZF | AF | PF)
                }
                Dec => {
                    let r = a.wrapping_sub(1) & mask(size);
                    (r, flags::sub(a, 1, r, size), OF | SF | ZF | AF | PF)
                }
                Neg => {
                    let r = 0u64.wrapping_sub(a) & mask(size);
                    (r, flags::sub(0, a, r, size), OF | SF | ZF | AF | PF | CF)
                }
                _ => (!a & mask(size), 0, 0),
            };
            cx.store(&op, r)?;
            cx.st.rflags = flags::merge(cx.st.rflags, f, which);
            Ok(())
        }
        _ => {
            let writes = !matches!(m, Cmp | Test);
            let dst = cx.op(i, 0, writes)?;
            let size = dst.size;
            let b = cx.rd(i, 1)? & mask(size);
            let a = cx.load(&dst)?;
            let cf = cx.st.rflags & CF;
            let (r, f) = match m {
                Add => {
                    let r = a.wrapping_add(b) & mask(size);
                    (r, flags::add(a, b, r, size))
                }
                Adc => {
                    let r = a.wrapping_add(b).wrapping_add(cf) & mask(size);
                    (r, flags::add(a, b, r, size))
                }
                Sub | Cmp => {
                    let r = a.wrapping_sub(b) & mask(size);
                    (r, flags::sub(a, b, r, size))
                }
                Sbb => {
                    let r = a.wrapping_sub(b).wrapping_sub(cf) & mask(size);
                    (r, flags::sub(a, b, r, size))
                }
                And | Test => {
                    let r = a & b;
                    (r, flags::logic(r, size))
                }
                Or => {
                    let r = a | b;
                    (r, flags::logic(r, size))
                }
                Xor => {
                    let r = a ^ b;
                    (r, flags::logic(r, size))
                }
                _ => unreachable!("alu::exec is dispatched only for ALU mnemonics"),
            };
            if writes {
                cx.store(&dst, r)?;
            }
            cx.st.rflags = flags::set_status(cx.st.rflags, f);
            Ok(())
        }
    }
}
