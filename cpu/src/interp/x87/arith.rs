//! x87 arithmetic (SDM Vol. 2: FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR with their P and I forms,
//! FCHS, FABS, FSQRT, FRNDINT, FSCALE, FXTRACT, FPREM, FPREM1; Vol. 1 §4.8.3 and Table 4-7 for
//! NaN propagation, §8.5 for the exceptions and their masked responses).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::f80::{self, Class, F80, Rc, Rounded};
use super::{fsw, get, pop, set, set_cc, signal, st_index, valid};
use crate::fault::Fault;
use crate::interp::cx::Cx;

/// The four basic operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
}

/// NaN result of an operation with at least one NaN operand (x87 rules, SDM Vol. 1 Table
/// 4-7): a QNaN wins over an SNaN; two of a kind give the larger significand.
pub fn nan_pick(a: F80, b: F80) -> F80 {
    let (an, bn) = (a.is_nan(), b.is_nan());
    let r = match (an, bn) {
        (true, false) => a,
        (false, true) => b,
        _ => {
            let (aq, bq) = (a.class() == Class::QNan, b.class() == Class::QNan);
            if aq != bq {
                if aq { a } else { b }
            } else if (a.mant << 1) > (b.mant << 1) || ((a.mant << 1) == (b.mant << 1) && !a.sign())
            {
                a
            } else {
                b
            }
        }
    };
    r.quiet()
}

/// Checks common to every arithmetic operation on two operands: invalid encodings and NaNs
/// (IE), and denormals (DE). Returns the final result when the operation is decided here.
pub fn pre_check(a: F80, b: F80, a_den: bool, b_den: bool) -> Result<u8, (F80, u8)> {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        return Err((f80::INDEFINITE, f80::IE));
    }
    if a.is_nan() || b.is_nan() {
        let ie = if ca == Class::SNan || cb == Class::SNan {
            f80::IE
        } else {
            0
        };
        return Err((nan_pick(a, b), ie));
    }
    let den = a_den || b_den || ca == Class::Denormal || cb == Class::Denormal;
    Ok(if den { f80::DE } else { 0 })
}

/// `a op b` rounded to FCW's precision and rounding control. Returns the result and flags;
/// a result with an unmasked IE, DE or ZE must not be stored.
pub fn binop(op: Op, a: F80, b: F80, a_den: bool, b_den: bool, fcw: u16) -> (F80, u8) {
    let masked = (fcw & 0x3f) as u8;
    let mut flags = match pre_check(a, b, a_den, b_den) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (ca, cb) = (a.class(), b.class());
    if op == Op::Div && cb == Class::Zero && !matches!(ca, Class::Zero | Class::Inf) {
        // Division by zero takes precedence over a denormal dividend.
        return (F80::inf(a.sign() != b.sign()), f80::ZE);
    }
    if flags & f80::DE != 0 && masked & f80::DE == 0 {
        return (a, flags);
    }
    let rc = Rc::from_fcw(fcw);
    let fmt = f80::ext(f80::pc_bits(fcw));
    let (sa, sb) = (a.sign(), b.sign());
    let inv = (f80::INDEFINITE, flags | f80::IE);
    let (sign, e, sig, sticky) = match op {
        Op::Add | Op::Sub => {
            let b = if op == Op::Sub { b.with_sign(!sb) } else { b };
            let sb = b.sign();
            match (ca, cb) {
                (Class::Inf, Class::Inf) if sa != sb => return inv,
                (Class::Inf, _) => return (a, flags),
                (_, Class::Inf) => return (b, flags),
                (Class::Zero, Class::Zero) => {
                    let s = if sa == sb { sa } else { rc == Rc::Down };
                    return (F80::zero(s), flags);
                }
                _ => {}
            }
            let (s, e, sig, st) = f80::add_exact(a, b, rc);
            if sig == 0 {
                return (F80::zero(s), flags);
            }
            (s, e, sig, st)
        }
        Op::Mul => {
            let s = sa != sb;
            match (ca, cb) {
                (Class::Inf, Class::Zero) | (Class::Zero, Class::Inf) => return inv,
                (Class::Inf, _) | (_, Class::Inf) => return (F80::inf(s), flags),
                (Class::Zero, _) | (_, Class::Zero) => return (F80::zero(s), flags),
                _ => {}
            }
            let (s, e, sig) = f80::mul_exact(a, b);
            (s, e, sig, false)
        }
        Op::Div => {
            let s = sa != sb;
            match (ca, cb) {
                (Class::Inf, Class::Inf) | (Class::Zero, Class::Zero) => return inv,
                (Class::Inf, _) => return (F80::inf(s), flags),
                (_, Class::Inf) => return (F80::zero(s), flags),
                (Class::Zero, _) => return (F80::zero(s), flags),
                (_, Class::Zero) => return (F80::inf(s), flags | f80::ZE),
                _ => {}
            }
            f80::div_exact(a, b)
        }
    };
    let (r, f) = f80::round(sign, e, sig, sticky, fmt, rc, masked);
    flags |= f;
    (F80::from_rounded(r), flags)
}

/// Square root rounded per FCW.
pub fn sqrt(a: F80, a_den: bool, fcw: u16) -> (F80, u8) {
    let masked = (fcw & 0x3f) as u8;
    let flags = match pre_check(a, a, a_den, false) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match a.class() {
        Class::Zero => return (a, 0),
        Class::Inf if !a.sign() => return (a, 0),
        _ if a.sign() => return (f80::INDEFINITE, f80::IE),
        _ => {}
    }
    if flags & f80::DE != 0 && masked & f80::DE == 0 {
        return (a, flags);
    }
    let (e, sig, sticky) = f80::sqrt_exact(a);
    let fmt = f80::ext(f80::pc_bits(fcw));
    let (r, f) = f80::round(false, e, sig, sticky, fmt, Rc::from_fcw(fcw), masked);
    (F80::from_rounded(r), flags | f)
}

/// Round to an integral value per RC (FRNDINT; rounding does not use PC).
pub fn rndint(a: F80, fcw: u16) -> (F80, u8) {
    let flags = match pre_check(a, a, false, false) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if matches!(a.class(), Class::Zero | Class::Inf) {
        return (a, flags);
    }
    if flags & f80::DE != 0 && fcw & 2 == 0 {
        return (a, flags);
    }
    let (v, inexact, up) = f80::to_int(a, Rc::from_fcw(fcw));
    let mut flags = flags;
    if inexact {
        flags |= f80::PE;
    }
    if up {
        flags |= f80::ROUNDED_UP;
    }
    match v {
        None => (a, flags),
        Some(0) => (F80::zero(a.sign()), flags),
        Some(v) => {
            let lz = v.leading_zeros();
            let m = (v << lz >> 64) as u64;
            let lead = 127 - lz as i32;
            (
                F80 {
                    se: (lead + f80::BIAS) as u16 | if a.sign() { 0x8000 } else { 0 },
                    mant: m,
                },
                flags,
            )
        }
    }
}

/// Read a memory source operand as an 80-bit value: (value, source-format denormal).
fn mem_operand(cx: &mut Cx, i: &Instruction) -> Result<(F80, bool), Fault> {
    use iced_x86::MemorySize::*;
    let seg = cx.mem_seg(i);
    let off = cx.ea(i);
    let size = i.memory_size();
    let n = size.size();
    let mut b = [0u8; 10];
    super::read_bytes(cx, seg, off, &mut b[..n])?;
    let raw = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    Ok(match size {
        Float32 => super::load_store::from_f32(raw as u32),
        Float64 => super::load_store::from_f64(raw),
        Int16 => (f80::from_i64(i64::from(raw as u16 as i16)), false),
        Int32 => (f80::from_i64(i64::from(raw as u32 as i32)), false),
        _ => (F80::from_bytes(&b), false),
    })
}

/// FADD and friends, the unary operations, FSCALE, FXTRACT, FPREM, FPREM1.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let op = match m {
        Fadd | Faddp | Fiadd => Some((Op::Add, false)),
        Fsub | Fsubp | Fisub => Some((Op::Sub, false)),
        Fsubr | Fsubrp | Fisubr => Some((Op::Sub, true)),
        Fmul | Fmulp | Fimul => Some((Op::Mul, false)),
        Fdiv | Fdivp | Fidiv => Some((Op::Div, false)),
        Fdivr | Fdivrp | Fidivr => Some((Op::Div, true)),
        _ => None,
    };
    if let Some((op, rev)) = op {
        let popping = matches!(m, Faddp | Fsubp | Fsubrp | Fmulp | Fdivp | Fdivrp);
        let (dst, src_val, src_den, src_reg) =
            if i.op_count() == 1 && i.op_kind(0) == OpKind::Memory {
                let (v, d) = mem_operand(cx, i)?;
                (0u8, v, d, None)
            } else if i.op_count() >= 2 {
                let d = st_index(i.op_register(0));
                let s = st_index(i.op_register(1));
                (d, get(cx, s), false, Some(s))
            } else {
                // One-register forms: ST(0) op ST(i).
                let s = st_index(i.op_register(0));
                (0u8, get(cx, s), false, Some(s))
            };
        let src_ok = src_reg.is_none_or(|s| valid(cx, s));
        if !valid(cx, dst) || !src_ok {
            if !super::stack_fault(cx, false) {
                set(cx, dst, f80::INDEFINITE);
                if popping {
                    pop(cx);
                }
            }
            return Ok(());
        }
        let dv = get(cx, dst);
        let (a, b, ad, bd) = if rev {
            (src_val, dv, src_den, false)
        } else {
            (dv, src_val, false, src_den)
        };
        let (r, flags) = binop(op, a, b, ad, bd, cx.st.fpu.fcw);
        let unmasked = signal(cx, flags);
        if unmasked & (f80::IE | f80::DE | f80::ZE) == 0 {
            set(cx, dst, r);
            if popping {
                pop(cx);
            }
        }
        return Ok(());
    }
    if !valid(cx, 0) || (matches!(m, Fscale | Fprem | Fprem1) && !valid(cx, 1)) {
        if !super::stack_fault(cx, false) {
            set(cx, 0, f80::INDEFINITE);
            if m == Fxtract {
                // Only the underflow is reported, even with ST(7) in use.
                super::dec_top(cx);
                set(cx, 0, f80::INDEFINITE);
            }
        }
        if matches!(m, Fprem | Fprem1) {
            cx.st.fpu.fsw &= !fsw::C2;
        }
        return Ok(());
    }
    let a = get(cx, 0);
    let fcw = cx.st.fpu.fcw;
    match m {
        Fchs | Fabs => {
            let r = if m == Fchs {
                a.with_sign(!a.sign())
            } else {
                a.with_sign(false)
            };
            cx.st.fpu.fsw &= !fsw::C1;
            set(cx, 0, r);
        }
        Fsqrt | Frndint => {
            let (r, flags) = if m == Fsqrt {
                sqrt(a, false, fcw)
            } else {
                rndint(a, fcw)
            };
            if signal(cx, flags) & (f80::IE | f80::DE) == 0 {
                set(cx, 0, r);
            }
        }
        Fscale => {
            let (r, flags) = scale(a, get(cx, 1), fcw);
            if signal(cx, flags) & (f80::IE | f80::DE) == 0 {
                set(cx, 0, r);
            }
        }
        Fxtract => {
            if valid(cx, 7) {
                // Stack overflow on the push: both results are the indefinite.
                if !super::stack_fault(cx, true) {
                    set(cx, 0, f80::INDEFINITE);
                    super::dec_top(cx);
                    set(cx, 0, f80::INDEFINITE);
                }
                return Ok(());
            }
            let (e, s, flags) = xtract(a);
            if signal(cx, flags) & (f80::IE | f80::DE | f80::ZE) == 0 {
                set(cx, 0, e);
                super::push(cx, s);
            }
        }
        Fprem | Fprem1 => {
            let (r, cc, flags) = prem(a, get(cx, 1), m == Fprem1, fcw);
            let unmasked = signal(cx, flags);
            if unmasked & (f80::IE | f80::DE) == 0 {
                set(cx, 0, r);
            }
            match cc {
                Some(cc) if unmasked & (f80::IE | f80::DE) == 0 => set_cc(cx, cc),
                // NaN and invalid operands clear C2 and leave the rest.
                _ => cx.st.fpu.fsw &= !fsw::C2,
            }
        }
        _ => return Err(Fault::UD),
    }
    Ok(())
}

/// FSCALE: a * 2^trunc(b).
pub fn scale(a: F80, b: F80, fcw: u16) -> (F80, u8) {
    let flags = match pre_check(a, b, false, false) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if flags & f80::DE != 0 && fcw & 2 == 0 {
        return (a, flags);
    }
    let (ca, cb) = (a.class(), b.class());
    if cb == Class::Inf {
        return match (ca, b.sign()) {
            (Class::Zero, false) | (Class::Inf, true) => (f80::INDEFINITE, flags | f80::IE),
            (Class::Zero, true) | (Class::Inf, false) => (a, flags),
            (_, false) => (F80::inf(a.sign()), flags),
            (_, true) => (F80::zero(a.sign()), flags),
        };
    }
    if matches!(ca, Class::Zero | Class::Inf) {
        return (a, flags);
    }
    let n: i32 = match f80::to_int(b, Rc::Zero).0 {
        Some(v) if v < 1 << 20 => v as i32,
        _ => 1 << 20,
    };
    let n = if b.sign() { -n } else { n };
    let (s, e, m) = a.unpack();
    let (r, f) = f80::round(
        s,
        e.saturating_add(n),
        u128::from(m),
        false,
        f80::ext(64),
        Rc::from_fcw(fcw),
        (fcw & 0x3f) as u8,
    );
    (F80::from_rounded(r), flags | f)
}

/// FXTRACT: (exponent, significand).
pub fn xtract(a: F80) -> (F80, F80, u8) {
    let flags = match pre_check(a, a, false, false) {
        Ok(f) => f,
        Err((r, f)) => return (r, r, f),
    };
    match a.class() {
        Class::Zero => return (F80::inf(true), a, flags | f80::ZE),
        Class::Inf => return (F80::inf(false), a, flags),
        _ => {}
    }
    let (_, e, m) = a.unpack();
    let (e, m) = f80::normalize(e, m);
    let exp = e + 63;
    let sig = F80 {
        se: f80::BIAS as u16 | (a.se & 0x8000),
        mant: m,
    };
    (f80::from_i64(i64::from(exp)), sig, flags)
}

/// FPREM (`nearest` false) and FPREM1: (result, condition codes, flags).
pub fn prem(a: F80, b: F80, nearest: bool, fcw: u16) -> (F80, Option<u16>, u8) {
    let flags = match pre_check(a, b, false, false) {
        Ok(f) => f,
        Err((r, f)) => return (r, None, f),
    };
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Inf || cb == Class::Zero {
        // Invalid; a denormal dividend is not reported.
        return (f80::INDEFINITE, None, f80::IE);
    }
    if flags & f80::DE != 0 && fcw & 2 == 0 {
        return (a, None, flags);
    }
    if ca == Class::Zero {
        return (a, Some(0), flags);
    }
    if cb == Class::Inf {
        let (r, f) = canon(a, fcw);
        return (r, Some(0), flags | f);
    }
    let (sa, ea, ma) = a.unpack();
    let (_, eb, mb) = b.unpack();
    let (ea, ma) = f80::normalize(ea, ma);
    let (eb, mb) = f80::normalize(eb, mb);
    let d = ea - eb;
    if d < 0 {
        if nearest && d == -1 {
            // |a| may exceed |b|/2: fall through to the full path with d = -1.
        } else {
            let (r, f) = canon(a, fcw);
            return (r, Some(0), flags | f);
        }
    }
    let partial = d >= 64;
    // Quotient bits developed: all of them, or 32..63 at a time for a partial remainder.
    let steps = if d < 0 {
        0
    } else if partial {
        32 + (d % 32)
    } else {
        d
    };
    // In units of the remainder's LSB (exponent ea - steps): R = a, divisor = b.
    let mut r = u128::from(ma) << steps;
    let dv = if d < 0 {
        u128::from(mb) << 1
    } else {
        u128::from(mb)
    };
    let mut q: u64 = 0;
    if d >= 0 {
        let mut k = steps;
        while k >= 0 {
            let sh = dv << k;
            q <<= 1;
            if r >= sh {
                r -= sh;
                q |= 1;
            }
            k -= 1;
        }
    }
    let r_exp = ea - steps;
    let mut sign = sa;
    if !partial && nearest {
        let twice = r << 1;
        if d < 0 {
            // Quotient is 0 or 1.
            if twice > dv {
                r = dv - r;
                sign = !sign;
                q = 1;
            }
        } else if twice > dv || (twice == dv && q & 1 != 0) {
            r = dv - r;
            sign = !sign;
            q = q.wrapping_add(1);
        }
    }
    let cc = if partial {
        fsw::C2
    } else {
        let mut c = 0;
        // C0 = Q2, C3 = Q1, C1 = Q0.
        if q & 4 != 0 {
            c |= fsw::C0;
        }
        if q & 2 != 0 {
            c |= fsw::C3;
        }
        if q & 1 != 0 {
            c |= fsw::C1;
        }
        c
    };
    if r == 0 {
        return (F80::zero(sa), Some(cc), flags);
    }
    let (res, f) = f80::round(
        sign,
        r_exp,
        r,
        false,
        f80::ext(64),
        Rc::Nearest,
        (fcw & 0x3f) as u8,
    );
    let out = match res {
        Rounded::Zero(s) => F80::zero(s),
        other => F80::from_rounded(other),
    };
    // The remainder is exact; an underflow on a denormal remainder is reported as UE only
    // when unmasked (handled by the caller's masks as for any result).
    (out, Some(cc), flags | (f & f80::UE))
}

/// A finite non-zero value in canonical encoding (pseudo-denormals become normals; a
/// denormal with UE unmasked is rebiased), with UE if reported.
fn canon(a: F80, fcw: u16) -> (F80, u8) {
    let (s, e, m) = a.unpack();
    let (r, f) = f80::round(
        s,
        e,
        u128::from(m),
        false,
        f80::ext(64),
        Rc::Nearest,
        (fcw & 0x3f) as u8,
    );
    (F80::from_rounded(r), f & f80::UE)
}
