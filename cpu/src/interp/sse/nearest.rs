//! The round-to-nearest fast path of the SSE arithmetic (SDM Vol. 1 §4.8.4, §11.5.2): when
//! MXCSR.RC is nearest, the operands are normal and the result is comfortably inside the
//! normal range, Rust's IEEE 754 f32/f64 arithmetic (correctly rounded to nearest on every
//! host) gives the result, and exact error terms give the precision flag. No other flag can
//! arise in that case (no NaN, infinity, denormal, zero divisor, overflow or underflow).
//! Anything else returns None and takes the software path in `softfloat.rs`.
//!
//! binary32 goes through binary64: a sum, product, quotient or root of binary32 values
//! rounded to binary64 and then to binary32 is correctly rounded (53 >= 2 * 24 + 2), and
//! binary32 products are exact in binary64.

use super::softfloat::{Env, F32, Fmt, PE, RC_NEAREST};

/// The arithmetic operations with a fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// a + b.
    Add,
    /// a - b.
    Sub,
    /// a * b.
    Mul,
    /// a / b.
    Div,
    /// sqrt(b).
    Sqrt,
}

/// Biased exponent field of a binary64 value.
fn exp64(v: f64) -> u64 {
    (v.to_bits() >> 52) & 0x7ff
}

/// Whether a binary64 value's exponent lies in `lo..=hi` (so it is normal and finite).
fn in_range64(v: f64, lo: u64, hi: u64) -> bool {
    (lo..=hi).contains(&exp64(v))
}

/// Exact product `a * b = p + e` (Dekker/Veltkamp), valid for the operand and result
/// ranges `f64_op` admits (no overflow in the split, no underflow in the partial products).
fn two_product(a: f64, b: f64) -> (f64, f64) {
    const SPLIT: f64 = 134_217_729.0; // 2^27 + 1
    let p = a * b;
    let split = |x: f64| {
        let c = SPLIT * x;
        let hi = c - (c - x);
        (hi, x - hi)
    };
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    let e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    (p, e)
}

/// binary64 operation; None outside the fast path's domain.
fn f64_op(op: Arith, a: u64, b: u64) -> Option<(u64, bool)> {
    // Exponents within 2^-767 .. 2^768: every intermediate below stays normal and finite.
    const LO: u64 = 0x100;
    const HI: u64 = 0x6ff;
    let (x, y) = (f64::from_bits(a), f64::from_bits(b));
    if !in_range64(y, LO, HI) || (op != Arith::Sqrt && !in_range64(x, LO, HI)) {
        return None;
    }
    let (r, inexact) = match op {
        Arith::Add | Arith::Sub => {
            let y = if op == Arith::Sub { -y } else { y };
            let s = x + y;
            // TwoSum: the rounding error of s, exactly.
            let bb = s - x;
            let err = (x - (s - bb)) + (y - bb);
            (s, err != 0.0)
        }
        Arith::Mul => {
            let (p, e) = two_product(x, y);
            (p, e != 0.0)
        }
        Arith::Div => {
            let q = x / y;
            if !in_range64(q, LO, HI) {
                return None;
            }
            let (p, e) = two_product(q, y);
            (q, p != x || e != 0.0)
        }
        Arith::Sqrt => {
            if y < 0.0 {
                return None;
            }
            let r = y.sqrt();
            let (p, e) = two_product(r, r);
            (r, p != y || e != 0.0)
        }
    };
    if !in_range64(r, LO, HI) {
        return None;
    }
    Some((r.to_bits(), inexact))
}

/// binary32 operation through binary64; None outside the fast path's domain.
fn f32_op(op: Arith, a: u64, b: u64) -> Option<(u64, bool)> {
    // binary32 exponent fields 0x20..=0xdf: all results stay far from the range limits.
    let ok = |v: u64| (0x20..=0xdf).contains(&((v >> 23) & 0xff));
    if !ok(b) || (op != Arith::Sqrt && !ok(a)) {
        return None;
    }
    let x = f64::from(f32::from_bits(a as u32));
    let y = f64::from(f32::from_bits(b as u32));
    let exact = match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div => x / y,
        Arith::Sqrt => {
            if y < 0.0 {
                return None;
            }
            y.sqrt()
        }
    };
    let r = exact as f32;
    if !ok(u64::from(r.to_bits())) {
        return None;
    }
    let back = f64::from(r);
    let inexact = match op {
        // Exponents differ by at most 0xbf, so x + y may itself be rounded in binary64; it is
        // exact when the exponents are within 29 of each other, and otherwise the binary32
        // result is certainly inexact (the smaller operand lies below half an ulp).
        Arith::Add | Arith::Sub => {
            let d = ((a >> 23) & 0xff).abs_diff((b >> 23) & 0xff);
            d > 29 || back != exact
        }
        Arith::Mul => back != exact,
        // Products of two binary32 values are exact in binary64.
        Arith::Div => back * y != x,
        Arith::Sqrt => back * back != y,
    };
    Some((u64::from(r.to_bits()), inexact))
}

/// The fast path: Some(result) with PE raised in `env` if inexact, or None.
#[inline]
pub fn try_fast(f: Fmt, op: Arith, a: u64, b: u64, env: &mut Env) -> Option<u64> {
    if env.rc != RC_NEAREST {
        return None;
    }
    let (r, inexact) = if f == F32 {
        f32_op(op, a, b)?
    } else {
        f64_op(op, a, b)?
    };
    if inexact {
        env.flags |= PE;
    }
    Some(r)
}
