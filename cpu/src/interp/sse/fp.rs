//! SSE/SSE2 floating-point arithmetic: ADD/SUB/MUL/DIV/MIN/MAX/SQRT in PS/SS/PD/SD forms,
//! RCPPS/RCPSS/RSQRTPS/RSQRTSS, CMPPS/CMPSS/CMPPD/CMPSD (predicates 0-7), COMISS/UCOMISS/
//! COMISD/UCOMISD (SDM Vol. 2A-2C, each instruction; exceptions Vol. 1 §11.5).

use std::cmp::Ordering;

use iced_x86::{Instruction, Mnemonic};

use super::super::cx::{Cx, mask};
use super::nearest::{Arith, try_fast};
use super::softfloat::{self as sf, Env, F32, F64, Fmt};
use super::{fp_report, imm8, lane, set_xmm, src, with_lane, xmm};
use crate::fault::Fault;
use crate::state::flags;

/// Element format and count of a mnemonic: (format, lanes, element bytes).
fn shape(m: Mnemonic) -> (Fmt, u32, u32) {
    use Mnemonic::*;
    match m {
        Addps | Subps | Mulps | Divps | Minps | Maxps | Sqrtps | Rcpps | Rsqrtps | Cmpps => {
            (F32, 4, 4)
        }
        Addss | Subss | Mulss | Divss | Minss | Maxss | Sqrtss | Rcpss | Rsqrtss | Cmpss
        | Comiss | Ucomiss => (F32, 1, 4),
        Addpd | Subpd | Mulpd | Divpd | Minpd | Maxpd | Sqrtpd | Cmppd => (F64, 2, 8),
        _ => (F64, 1, 8),
    }
}

/// The architectural approximation instructions, computed as the correctly rounded
/// reciprocal (square root) in binary32: within the SDM's bound of 1.5 * 2^-12 relative
/// error, but not the host's table bits. Denormal inputs count as zeros and tiny results
/// flush to zero; no flags are raised.
fn approx(a: u64, rsqrt: bool) -> u64 {
    let mut env = Env {
        rc: sf::RC_NEAREST,
        daz: true,
        ftz: true,
        um: true,
        flags: 0,
    };
    let one = 0x3f80_0000;
    if F32.is_nan(a) {
        return F32.quiet(a);
    }
    if rsqrt {
        let neg = F32.sign(a) && !(a & 0x7fff_ffff == 0 || F32.is_denormal(a));
        if neg {
            return F32.default_nan();
        }
        let r = sf::sqrt(F32, a, &mut env);
        sf::div(F32, one, r, &mut env)
    } else {
        sf::div(F32, one, a, &mut env)
    }
}

/// CMPxx predicate `p` (0-7) on `a` and `b`; IE on SNaN, and on QNaN for the ordered
/// less-than predicates (LT, LE, NLT, NLE).
fn cmp_pred(f: Fmt, a: u64, b: u64, p: u8, env: &mut Env) -> bool {
    let ord = sf::compare(f, a, b, env);
    let signalling = matches!(p, 1 | 2 | 5 | 6);
    if ord.is_none() && (signalling || f.is_snan(a) || f.is_snan(b)) {
        env.flags |= sf::IE;
    }
    match (p, ord) {
        (0, o) => o == Some(Ordering::Equal),
        (1, o) => o == Some(Ordering::Less),
        (2, o) => matches!(o, Some(Ordering::Less | Ordering::Equal)),
        (3, o) => o.is_none(),
        (4, o) => o != Some(Ordering::Equal),
        (5, o) => o != Some(Ordering::Less),
        (6, o) => !matches!(o, Some(Ordering::Less | Ordering::Equal)),
        (_, o) => o.is_some(),
    }
}

/// Execute one SSE floating-point arithmetic or compare instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let (f, n, w) = shape(m);
    let d = i.op_register(0);
    let a = xmm(cx, d);
    let b = src(cx, i, 1)?;
    let mut env = Env::from_mxcsr(cx.st.fpu.mxcsr);
    if matches!(m, Comiss | Ucomiss | Comisd | Ucomisd) {
        let (x, y) = (lane(a, w, 0), lane(b, w, 0));
        let ord = sf::compare(f, x, y, &mut env);
        if f.is_snan(x) || f.is_snan(y) || (ord.is_none() && matches!(m, Comiss | Comisd)) {
            env.flags |= sf::IE;
        }
        fp_report(cx, env.flags)?;
        let zpc = match ord {
            None => flags::ZF | flags::PF | flags::CF,
            Some(Ordering::Greater) => 0,
            Some(Ordering::Less) => flags::CF,
            Some(Ordering::Equal) => flags::ZF,
        };
        let all = flags::OF | flags::SF | flags::AF | flags::ZF | flags::PF | flags::CF;
        cx.st.rflags = (cx.st.rflags & !all) | zpc;
        return Ok(());
    }
    let pred = imm8(i) & 7;
    let mut r = a;
    for k in 0..n {
        let x = lane(a, w, k);
        let y = lane(b, w, k);
        let arith = match m {
            Addps | Addss | Addpd | Addsd => Some(Arith::Add),
            Subps | Subss | Subpd | Subsd => Some(Arith::Sub),
            Mulps | Mulss | Mulpd | Mulsd => Some(Arith::Mul),
            Divps | Divss | Divpd | Divsd => Some(Arith::Div),
            Sqrtps | Sqrtss | Sqrtpd | Sqrtsd => Some(Arith::Sqrt),
            _ => None,
        };
        if let Some(v) = arith.and_then(|op| try_fast(f, op, x, y, &mut env)) {
            r = with_lane(r, w, k, v);
            continue;
        }
        let v = match m {
            Addps | Addss | Addpd | Addsd => sf::add(f, x, y, false, &mut env),
            Subps | Subss | Subpd | Subsd => sf::add(f, x, y, true, &mut env),
            Mulps | Mulss | Mulpd | Mulsd => sf::mul(f, x, y, &mut env),
            Divps | Divss | Divpd | Divsd => sf::div(f, x, y, &mut env),
            Minps | Minss | Minpd | Minsd => sf::minmax(f, x, y, false, &mut env),
            Maxps | Maxss | Maxpd | Maxsd => sf::minmax(f, x, y, true, &mut env),
            Sqrtps | Sqrtss | Sqrtpd | Sqrtsd => sf::sqrt(f, y, &mut env),
            Rcpps | Rcpss => approx(y, false),
            Rsqrtps | Rsqrtss => approx(y, true),
            Cmpps | Cmpss | Cmppd | Cmpsd => {
                if cmp_pred(f, x, y, pred, &mut env) {
                    mask(w)
                } else {
                    0
                }
            }
            _ => return Err(Fault::UD),
        };
        r = with_lane(r, w, k, v);
    }
    fp_report(cx, env.flags)?;
    set_xmm(cx, d, r);
    Ok(())
}
