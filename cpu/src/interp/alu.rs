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
                Inc | Dec => {
                    let (r, f) = inc_dec(a, size, m == Dec);
                    (r, f, INC_DEC_FLAGS)
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
            let op = AluOp::of(m).expect("alu::exec is dispatched only for ALU mnemonics");
            let (r, f) = binary(op, a, b, size, cx.st.rflags);
            if writes {
                cx.store(&dst, r)?;
            }
            cx.st.rflags = flags::set_status(cx.st.rflags, f);
            Ok(())
        }
    }
}

/// An ALU operation with two inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    /// ADD.
    Add,
    /// ADC.
    Adc,
    /// SUB.
    Sub,
    /// SBB.
    Sbb,
    /// CMP.
    Cmp,
    /// AND.
    And,
    /// OR.
    Or,
    /// XOR.
    Xor,
    /// TEST.
    Test,
}

impl AluOp {
    /// The two-input ALU operation of mnemonic `m`, if it is one.
    pub fn of(m: Mnemonic) -> Option<AluOp> {
        Some(match m {
            Mnemonic::Add => AluOp::Add,
            Mnemonic::Adc => AluOp::Adc,
            Mnemonic::Sub => AluOp::Sub,
            Mnemonic::Sbb => AluOp::Sbb,
            Mnemonic::Cmp => AluOp::Cmp,
            Mnemonic::And => AluOp::And,
            Mnemonic::Or => AluOp::Or,
            Mnemonic::Xor => AluOp::Xor,
            Mnemonic::Test => AluOp::Test,
            _ => return None,
        })
    }

    /// CMP and TEST only set flags.
    pub fn writes_result(self) -> bool {
        !matches!(self, AluOp::Cmp | AluOp::Test)
    }
}

/// Result and status flags of `a op b` on `size` bytes (operands already masked to `size`),
/// given the old RFLAGS (for the carry ADC and SBB consume).
#[inline(always)]
pub fn binary(op: AluOp, a: u64, b: u64, size: u32, rflags: u64) -> (u64, u64) {
    let cf = rflags & CF;
    match op {
        AluOp::Add => {
            let r = a.wrapping_add(b) & mask(size);
            (r, flags::add(a, b, r, size))
        }
        AluOp::Adc => {
            let r = a.wrapping_add(b).wrapping_add(cf) & mask(size);
            (r, flags::add(a, b, r, size))
        }
        AluOp::Sub | AluOp::Cmp => {
            let r = a.wrapping_sub(b) & mask(size);
            (r, flags::sub(a, b, r, size))
        }
        AluOp::Sbb => {
            let r = a.wrapping_sub(b).wrapping_sub(cf) & mask(size);
            (r, flags::sub(a, b, r, size))
        }
        AluOp::And | AluOp::Test => {
            let r = a & b;
            (r, flags::logic(r, size))
        }
        AluOp::Or => {
            let r = a | b;
            (r, flags::logic(r, size))
        }
        AluOp::Xor => {
            let r = a ^ b;
            (r, flags::logic(r, size))
        }
    }
}

/// The flags INC and DEC write (CF is left alone).
pub const INC_DEC_FLAGS: u64 = OF | SF | ZF | AF | PF;

/// Result and flags (within `INC_DEC_FLAGS`) of INC, or DEC when `dec`, on `size` bytes.
#[inline(always)]
pub fn inc_dec(a: u64, size: u32, dec: bool) -> (u64, u64) {
    if dec {
        let r = a.wrapping_sub(1) & mask(size);
        (r, flags::sub(a, 1, r, size))
    } else {
        let r = a.wrapping_add(1) & mask(size);
        (r, flags::add(a, 1, r, size))
    }
}
