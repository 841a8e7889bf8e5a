//! SSE/SSE2 conversions: CVTSI2SS/CVTSI2SD, CVT(T)SS2SI/CVT(T)SD2SI, CVTPS2PD/CVTPD2PS/
//! CVTSS2SD/CVTSD2SS, CVTDQ2PS/CVT(T)PS2DQ, CVTDQ2PD/CVT(T)PD2DQ (SDM Vol. 2A, each
//! instruction; integer indefinite and exceptions Vol. 1 §4.8.3.7, §11.5).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::super::cx::Cx;
use super::softfloat::{self as sf, Env, F32, F64};
use super::{fp_report, lane, set_xmm, src, with_lane, xmm};
use crate::fault::Fault;

/// Execute one SSE conversion.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let b = src(cx, i, 1)?;
    let mut env = Env::from_mxcsr(cx.st.fpu.mxcsr);
    let rc = env.rc;
    let d = i.op_register(0);
    match m {
        Cvtss2si | Cvtsd2si | Cvttss2si | Cvttsd2si => {
            let f = if matches!(m, Cvtss2si | Cvttss2si) {
                F32
            } else {
                F64
            };
            let x = if f == F32 {
                lane(b, 4, 0)
            } else {
                lane(b, 8, 0)
            };
            let bits = d.size() as u32 * 8;
            let rc = if matches!(m, Cvttss2si | Cvttsd2si) {
                sf::RC_ZERO
            } else {
                rc
            };
            let v = sf::to_int(f, x, bits, rc, &mut env);
            fp_report(cx, env.flags)?;
            cx.set_gpr(d, v);
            return Ok(());
        }
        _ => {}
    }
    let a = xmm(cx, d);
    let r = match m {
        Cvtsi2ss | Cvtsi2sd => {
            // The integer source is a 32- or 64-bit register or memory operand.
            let bits = match i.op_kind(1) {
                OpKind::Register => i.op_register(1).size() as u32 * 8,
                _ => i.memory_size().size() as u32 * 8,
            };
            if m == Cvtsi2ss {
                with_lane(a, 4, 0, sf::from_int(F32, b as u64, bits, &mut env))
            } else {
                with_lane(a, 8, 0, sf::from_int(F64, b as u64, bits, &mut env))
            }
        }
        Cvtss2sd => with_lane(a, 8, 0, sf::convert(F32, F64, lane(b, 4, 0), &mut env)),
        Cvtsd2ss => with_lane(a, 4, 0, sf::convert(F64, F32, lane(b, 8, 0), &mut env)),
        Cvtps2pd => {
            let lo = sf::convert(F32, F64, lane(b, 4, 0), &mut env);
            let hi = sf::convert(F32, F64, lane(b, 4, 1), &mut env);
            u128::from(lo) | u128::from(hi) << 64
        }
        Cvtpd2ps => {
            let lo = sf::convert(F64, F32, lane(b, 8, 0), &mut env);
            let hi = sf::convert(F64, F32, lane(b, 8, 1), &mut env);
            u128::from(lo) | u128::from(hi) << 32
        }
        Cvtdq2ps => {
            let mut r = 0u128;
            for k in 0..4 {
                let v = sf::from_int(F32, lane(b, 4, k), 32, &mut env);
                r |= u128::from(v) << (k * 32);
            }
            r
        }
        Cvtdq2pd => {
            let lo = sf::from_int(F64, lane(b, 4, 0), 32, &mut env);
            let hi = sf::from_int(F64, lane(b, 4, 1), 32, &mut env);
            u128::from(lo) | u128::from(hi) << 64
        }
        Cvtps2dq | Cvttps2dq => {
            let rc = if m == Cvttps2dq { sf::RC_ZERO } else { rc };
            let mut r = 0u128;
            for k in 0..4 {
                let v = sf::to_int(F32, lane(b, 4, k), 32, rc, &mut env);
                r |= u128::from(v) << (k * 32);
            }
            r
        }
        Cvtpd2dq | Cvttpd2dq => {
            let rc = if m == Cvttpd2dq { sf::RC_ZERO } else { rc };
            let lo = sf::to_int(F64, lane(b, 8, 0), 32, rc, &mut env);
            let hi = sf::to_int(F64, lane(b, 8, 1), 32, rc, &mut env);
            u128::from(lo) | u128::from(hi) << 32
        }
        _ => return Err(Fault::UD),
    };
    fp_report(cx, env.flags)?;
    set_xmm(cx, d, r);
    Ok(())
}
