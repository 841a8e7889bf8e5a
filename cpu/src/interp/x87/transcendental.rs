//! x87 transcendental instructions (SDM Vol. 2: F2XM1, FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN,
//! FCOS, FSINCOS). Best effort: computed in IEEE double precision with Rust's portable libm
//! functions and widened to 80 bits, so results carry about 53 correct bits (the x87 gives
//! 64); the special cases (NaN, infinity, zero, out-of-range operands with C2) follow the SDM.

use iced_x86::{Instruction, Mnemonic};

use super::arith::pre_check;
use super::f80::{self, Class, F80};
use super::load_store::{from_f64, to_ieee};
use super::{fsw, get, pop, push, set, signal, valid};
use crate::fault::Fault;
use crate::interp::cx::Cx;

fn to_f64(a: F80) -> f64 {
    f64::from_bits(to_ieee(a, true, 0x037f).0)
}

fn from(x: f64) -> F80 {
    from_f64(x.to_bits()).0
}

/// The transcendental instructions.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let two = matches!(m, Fyl2x | Fyl2xp1 | Fpatan);
    if !valid(cx, 0) || (two && !valid(cx, 1)) {
        if !super::stack_fault(cx, false) {
            if two {
                set(cx, 1, f80::INDEFINITE);
                pop(cx);
            } else {
                set(cx, 0, f80::INDEFINITE);
                if matches!(m, Fptan | Fsincos) {
                    // Only the underflow is reported, even with ST(7) in use.
                    super::dec_top(cx);
                    set(cx, 0, f80::INDEFINITE);
                }
            }
        }
        if matches!(m, Fptan | Fsin | Fcos | Fsincos) {
            cx.st.fpu.fsw &= !fsw::C2;
        }
        return Ok(());
    }
    let trig = matches!(m, Fptan | Fsin | Fcos | Fsincos);
    if trig {
        cx.st.fpu.fsw &= !fsw::C2;
    }
    if matches!(m, Fptan | Fsincos) && valid(cx, 7) {
        // Stack overflow on the push: both results are the indefinite.
        if !super::stack_fault(cx, true) {
            set(cx, 0, f80::INDEFINITE);
            super::dec_top(cx);
            set(cx, 0, f80::INDEFINITE);
        }
        return Ok(());
    }
    let a = get(cx, 0);
    let b = if two { get(cx, 1) } else { a };
    let mut flags = match pre_check(a, b, false, false) {
        Ok(f) => f,
        Err((r, f)) => {
            if signal(cx, f) & f80::IE == 0 {
                if two {
                    set(cx, 1, r);
                    pop(cx);
                } else {
                    set(cx, 0, r);
                    if matches!(m, Fptan | Fsincos) {
                        push(cx, r);
                    }
                }
            }
            return Ok(());
        }
    };
    let x = to_f64(a);
    if trig {
        if a.class() == Class::Inf {
            if signal(cx, f80::IE) == 0 {
                set(cx, 0, f80::INDEFINITE);
                if matches!(m, Fptan | Fsincos) {
                    push(cx, f80::INDEFINITE);
                }
            }
            return Ok(());
        }
        if a.exp() >= f80::BIAS as u16 + 63 {
            // Out of range: C2 set, operand unchanged.
            cx.st.fpu.fsw |= fsw::C2;
            return Ok(());
        }
    }
    if a.class() != Class::Zero {
        flags |= f80::PE;
    }
    let (y, zero_flags) = match m {
        F2xm1 => ((x * std::f64::consts::LN_2).exp_m1(), 0),
        Fyl2x => {
            let yv = to_f64(b);
            if x < 0.0 && a.class() != Class::Zero {
                (f64::NAN, f80::IE)
            } else if a.class() == Class::Zero {
                if b.class() == Class::Zero {
                    (f64::NAN, f80::IE)
                } else {
                    (-yv.signum() * f64::INFINITY, f80::ZE)
                }
            } else if (0.5..2.0).contains(&x) {
                // Near 1, x - 1 is exact in 80 bits (Sterbenz); log1p keeps the precision
                // that log2(x) would lose to cancellation.
                let one = F80 {
                    se: 0x3fff,
                    mant: 1 << 63,
                };
                let (d, _) =
                    super::arith::binop(super::arith::Op::Sub, a, one, false, false, 0x037f);
                (yv * to_f64(d).ln_1p() / std::f64::consts::LN_2, 0)
            } else {
                (yv * x.log2(), 0)
            }
        }
        Fyl2xp1 => (to_f64(b) * x.ln_1p() / std::f64::consts::LN_2, 0),
        Fpatan => (to_f64(b).atan2(x), 0),
        Fsin | Fsincos => (x.sin(), 0),
        Fcos => (x.cos(), 0),
        Fptan => (x.tan(), 0),
        _ => return Err(Fault::UD),
    };
    flags |= zero_flags;
    if zero_flags != 0 {
        flags &= !f80::PE;
    }
    let r = if y.is_nan() { f80::INDEFINITE } else { from(y) };
    // Zero operands keep their sign for the odd functions.
    let r = if a.class() == Class::Zero && matches!(m, F2xm1 | Fsin | Fptan | Fsincos | Fyl2xp1) {
        if m == Fyl2xp1 {
            F80::zero(a.sign() != b.sign())
        } else {
            a
        }
    } else {
        r
    };
    let unmasked = signal(cx, flags);
    if unmasked & (f80::IE | f80::ZE | f80::DE) != 0 {
        return Ok(());
    }
    match m {
        Fyl2x | Fyl2xp1 | Fpatan => {
            set(cx, 1, r);
            pop(cx);
        }
        Fptan => {
            set(cx, 0, r);
            push(
                cx,
                F80 {
                    se: 0x3fff,
                    mant: 1 << 63,
                },
            );
        }
        Fsincos => {
            set(cx, 0, r);
            push(cx, from(x.cos()));
        }
        _ => set(cx, 0, r),
    }
    Ok(())
}
