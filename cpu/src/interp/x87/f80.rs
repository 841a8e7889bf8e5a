//! 80-bit extended-precision soft-float for the x87 (SDM Vol. 1 §4.2.2, §4.8 and §4.9, §8.1.5):
//! classification, exact arithmetic on a wide significand, and one rounding routine for every
//! destination format (extended with precision control, double, single), with the IEEE flags.

/// Invalid operation.
pub const IE: u8 = 0x01;
/// Denormal operand.
pub const DE: u8 = 0x02;
/// Divide by zero.
pub const ZE: u8 = 0x04;
/// Overflow.
pub const OE: u8 = 0x08;
/// Underflow.
pub const UE: u8 = 0x10;
/// Precision (inexact).
pub const PE: u8 = 0x20;
/// Not an exception: the result was rounded up in magnitude (reported in C1).
pub const ROUNDED_UP: u8 = 0x80;

/// Extended exponent bias.
pub const BIAS: i32 = 16383;

/// An 80-bit extended value in its memory layout: sign and 15-bit exponent, 64-bit significand
/// with the explicit integer bit J at bit 63.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct F80 {
    /// Sign (bit 15) and biased exponent (bits 0-14).
    pub se: u16,
    /// Significand, J at bit 63.
    pub mant: u64,
}

/// The real indefinite QNaN.
pub const INDEFINITE: F80 = F80 {
    se: 0xffff,
    mant: 0xc000_0000_0000_0000,
};

/// Operand classes (SDM Vol. 1 Table 8-x, FXAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// ±0.
    Zero,
    /// Denormal or pseudo-denormal (exponent 0, non-zero significand).
    Denormal,
    /// Normal finite.
    Normal,
    /// ±infinity.
    Inf,
    /// Quiet NaN.
    QNan,
    /// Signaling NaN.
    SNan,
    /// Unnormal, pseudo-NaN, pseudo-infinity: invalid operands on the 387 and later.
    Unsupported,
}

/// Rounding control (FCW.RC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rc {
    /// Round to nearest even.
    Nearest,
    /// Toward negative infinity.
    Down,
    /// Toward positive infinity.
    Up,
    /// Toward zero.
    Zero,
}

impl Rc {
    /// From FCW bits 10-11.
    pub fn from_fcw(fcw: u16) -> Rc {
        match (fcw >> 10) & 3 {
            0 => Rc::Nearest,
            1 => Rc::Down,
            2 => Rc::Up,
            _ => Rc::Zero,
        }
    }
}

/// A destination format: precision in bits (with the integer bit) and exponent range.
#[derive(Clone, Copy, Debug)]
pub struct Fmt {
    /// Significand precision including the leading bit.
    pub p: u32,
    /// Minimum normal unbiased exponent.
    pub emin: i32,
    /// Maximum unbiased exponent (also the bias).
    pub emax: i32,
    /// Stored significand width including the leading bit (explicit or hidden).
    pub w: u32,
    /// Bias adjustment applied on unmasked overflow/underflow (0: none, store-type formats).
    pub wrap: i32,
}

/// Extended format with the precision control's precision.
pub fn ext(pc_bits: u32) -> Fmt {
    Fmt {
        p: pc_bits,
        w: 64,
        emin: -16382,
        emax: 16383,
        wrap: 24576,
    }
}
/// IEEE double (for FST m64).
pub const DOUBLE: Fmt = Fmt {
    p: 53,
    w: 53,
    emin: -1022,
    emax: 1023,
    wrap: 0,
};
/// IEEE single (for FST m32).
pub const SINGLE: Fmt = Fmt {
    p: 24,
    w: 24,
    emin: -126,
    emax: 127,
    wrap: 0,
};

/// Precision from FCW.PC.
pub fn pc_bits(fcw: u16) -> u32 {
    match (fcw >> 8) & 3 {
        0 => 24,
        2 => 53,
        _ => 64,
    }
}

/// A rounded value in a format's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounded {
    /// Signed zero.
    Zero(bool),
    /// Finite: sign, biased exponent (0 for denormals), significand with `p` bits (J at p-1).
    Finite(bool, i32, u64),
    /// Signed infinity.
    Inf(bool),
}

impl F80 {
    /// From the low ten bytes of a register slot.
    pub fn from_bytes(b: &[u8]) -> F80 {
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[..8]);
        F80 {
            mant: u64::from_le_bytes(m),
            se: u16::from_le_bytes([b[8], b[9]]),
        }
    }
    /// The ten bytes of the memory layout.
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.mant.to_le_bytes());
        b[8..].copy_from_slice(&self.se.to_le_bytes());
        b
    }
    /// Sign bit.
    pub fn sign(self) -> bool {
        self.se & 0x8000 != 0
    }
    /// Biased exponent.
    pub fn exp(self) -> u16 {
        self.se & 0x7fff
    }
    /// Zero with a sign.
    pub fn zero(sign: bool) -> F80 {
        F80 {
            se: if sign { 0x8000 } else { 0 },
            mant: 0,
        }
    }
    /// Infinity with a sign.
    pub fn inf(sign: bool) -> F80 {
        F80 {
            se: if sign { 0xffff } else { 0x7fff },
            mant: 1 << 63,
        }
    }
    /// The same value with the sign replaced.
    pub fn with_sign(self, sign: bool) -> F80 {
        F80 {
            se: (self.se & 0x7fff) | if sign { 0x8000 } else { 0 },
            mant: self.mant,
        }
    }
    /// Classify.
    pub fn class(self) -> Class {
        let j = self.mant >> 63 != 0;
        match self.exp() {
            0 if self.mant == 0 => Class::Zero,
            0 => Class::Denormal,
            0x7fff if !j => Class::Unsupported,
            0x7fff if self.mant << 1 == 0 => Class::Inf,
            0x7fff if self.mant & (1 << 62) != 0 => Class::QNan,
            0x7fff => Class::SNan,
            _ if !j => Class::Unsupported,
            _ => Class::Normal,
        }
    }
    /// Any NaN (quiet or signaling).
    pub fn is_nan(self) -> bool {
        matches!(self.class(), Class::QNan | Class::SNan)
    }
    /// The quiet form of a NaN.
    pub fn quiet(self) -> F80 {
        F80 {
            se: self.se,
            mant: self.mant | 1 << 62,
        }
    }
    /// Finite value as (sign, exponent of the significand's LSB, significand): value =
    /// mant * 2^e. Denormals use the minimum exponent.
    pub fn unpack(self) -> (bool, i32, u64) {
        let e = i32::from(self.exp().max(1)) - BIAS - 63;
        (self.sign(), e, self.mant)
    }
    /// From a rounded extended result.
    pub fn from_rounded(r: Rounded) -> F80 {
        match r {
            Rounded::Zero(s) => F80::zero(s),
            Rounded::Inf(s) => F80::inf(s),
            Rounded::Finite(s, e, m) => F80 {
                se: (e as u16 & 0x7fff) | if s { 0x8000 } else { 0 },
                mant: m,
            },
        }
    }
}

/// Shift right with sticky: the bits shifted out are ORed into bit 0.
fn shr_sticky(v: u128, n: u32) -> u128 {
    if n == 0 {
        v
    } else if n >= 128 {
        u128::from(v != 0)
    } else {
        (v >> n) | u128::from(v & ((1u128 << n) - 1) != 0)
    }
}

/// Round the kept bits: `keep` leading bits of the normalized `sig` (bit 127 set) are kept,
/// `keep` may be <= 0. Returns (kept value after rounding, inexact, rounded up).
fn round_bits(sig: u128, sticky: bool, keep: i32, sign: bool, rc: Rc) -> (u128, bool, bool) {
    let (kept, rest) = if keep >= 128 {
        (sig, 0)
    } else if keep >= 1 {
        (sig >> (128 - keep), sig << keep)
    } else {
        (0, shr_sticky(sig, (-keep) as u32))
    };
    let nz = rest != 0 || sticky;
    let half = rest >> 127 != 0;
    let above = half && (rest << 1 != 0 || sticky);
    let up = match rc {
        Rc::Nearest => above || (half && kept & 1 != 0),
        Rc::Zero => false,
        Rc::Up => nz && !sign,
        Rc::Down => nz && sign,
    };
    (kept + u128::from(up), nz, up)
}

/// Round the exact value `sig * 2^e` (plus `sticky` below its LSB) to `fmt` under `rc`.
/// Returns the result and flags (PE, UE, OE, ROUNDED_UP). `masked` holds the FCW mask bits:
/// an unmasked OE/UE reports the exception even when exact, and for an extended destination
/// (`fmt.wrap` non-zero) rebiases the exponent by `fmt.wrap` (SDM Vol. 1 §8.5.4, §8.5.5).
pub fn round(
    sign: bool,
    e: i32,
    sig: u128,
    sticky: bool,
    fmt: Fmt,
    rc: Rc,
    masked: u8,
) -> (Rounded, u8) {
    if sig == 0 {
        return (Rounded::Zero(sign), 0);
    }
    let lz = sig.leading_zeros();
    let sig = sig << lz;
    let mut lead = e + 127 - lz as i32;
    let p = fmt.p as i32;
    let mut flags = 0;
    // Leading exponent after rounding to p bits with an unbounded exponent range.
    let (m_unb, _, _) = round_bits(sig, sticky, p, sign, rc);
    let lead_unb = if m_unb >> p != 0 { lead + 1 } else { lead };
    let tiny = lead_unb < fmt.emin;
    let mut rebiased = 0;
    if fmt.wrap == 0 && ((lead_unb > fmt.emax && masked & OE == 0) || (tiny && masked & UE == 0)) {
        // A memory destination with the exception unmasked: nothing is stored, only the
        // exception is reported (no PE, no C1).
        let f = if lead_unb > fmt.emax { OE } else { UE };
        return (Rounded::Zero(sign), f);
    }
    if lead_unb > fmt.emax && masked & OE == 0 {
        flags |= OE;
        if fmt.wrap != 0 {
            lead -= fmt.wrap;
            rebiased = -1;
        }
    }
    if tiny && masked & UE == 0 {
        flags |= UE;
        if fmt.wrap != 0 {
            lead += fmt.wrap;
            rebiased = 1;
        }
    }
    if rebiased > 0 && lead < fmt.emin {
        // Still tiny after rebiasing (FSCALE by a huge negative factor): zero.
        return (Rounded::Zero(sign), flags | UE | PE);
    }
    // Denormal results keep the precision control's grid: the LSB never goes below
    // emin - (p - 1) (with PC = 24 or 53 the extended denormals are coarser).
    let min_lsb = fmt.emin - (p - 1);
    let lsb = (lead - (p - 1)).max(min_lsb);
    let keep = lead - lsb + 1;
    let (mut m, inexact, up) = round_bits(sig, sticky, keep, sign, rc);
    let mut lsb = lsb;
    if keep >= 1 && m >> keep != 0 {
        m >>= 1;
        lsb += 1;
    }
    if inexact {
        flags |= PE;
    }
    if up {
        flags |= ROUNDED_UP;
    }
    if tiny && inexact && rebiased == 0 {
        flags |= UE;
    }
    if m == 0 {
        return (Rounded::Zero(sign), flags);
    }
    let bits = 128 - m.leading_zeros() as i32;
    let top = lsb + bits - 1;
    if top > fmt.emax && rebiased != 0 {
        // Still out of range after rebiasing (FSCALE by a huge factor): infinity.
        return (Rounded::Inf(sign), flags | OE | PE | ROUNDED_UP);
    }
    if top > fmt.emax {
        // Masked overflow (an unmasked one was rebiased above, or is the caller's to refuse).
        flags |= OE | PE;
        let to_inf = match rc {
            Rc::Nearest => true,
            Rc::Zero => false,
            Rc::Up => !sign,
            Rc::Down => sign,
        };
        if to_inf {
            return (Rounded::Inf(sign), flags | ROUNDED_UP);
        }
        let max = (((1u128 << fmt.p) - 1) << (fmt.w - fmt.p)) as u64;
        return (
            Rounded::Finite(sign, fmt.emax + fmt.emax, max),
            flags & !ROUNDED_UP,
        );
    }
    if top >= fmt.emin {
        let stored = (m << (fmt.w as i32 - bits)) as u64;
        (Rounded::Finite(sign, top + fmt.emax, stored), flags)
    } else {
        let stored = (m << (lsb - (fmt.emin - (fmt.w as i32 - 1)))) as u64;
        (Rounded::Finite(sign, 0, stored), flags)
    }
}

/// Normalize a non-zero finite (sign, e, mant) so that bit 63 is set.
pub fn normalize(e: i32, m: u64) -> (i32, u64) {
    let lz = m.leading_zeros();
    (e - lz as i32, m << lz)
}

/// Exact sum of two finite values as (sign, e, sig) on a 128-bit significand with sticky.
pub fn add_exact(a: F80, b: F80, rc: Rc) -> (bool, i32, u128, bool) {
    let (sa, ea, ma) = a.unpack();
    let (sb, eb, mb) = b.unpack();
    // Place significands at bit 62+64 so that a carry fits.
    let (mut xa, mut xb) = ((ma as u128) << 62, (mb as u128) << 62);
    let e = ea.max(eb) - 62;
    if ma == 0 {
        xa = 0;
    } else if ea < eb {
        xa = shr_sticky(xa, (eb - ea) as u32);
    }
    if mb == 0 {
        xb = 0;
    } else if eb < ea {
        xb = shr_sticky(xb, (ea - eb) as u32);
    }
    let e = if ma == 0 {
        eb - 62
    } else if mb == 0 {
        ea - 62
    } else {
        e
    };
    if sa == sb {
        return (sa, e, xa + xb, false);
    }
    if xa >= xb {
        let d = xa - xb;
        if d == 0 {
            return (rc == Rc::Down, e, 0, false);
        }
        (sa, e, d, false)
    } else {
        (sb, e, xb - xa, false)
    }
}

/// Exact product as (sign, e, sig).
pub fn mul_exact(a: F80, b: F80) -> (bool, i32, u128) {
    let (sa, ea, ma) = a.unpack();
    let (sb, eb, mb) = b.unpack();
    (sa != sb, ea + eb, u128::from(ma) * u128::from(mb))
}

/// Quotient of two non-zero finite values as (sign, e, sig, sticky).
pub fn div_exact(a: F80, b: F80) -> (bool, i32, u128, bool) {
    let (sa, ea, ma) = a.unpack();
    let (sb, eb, mb) = b.unpack();
    let (ea, ma) = normalize(ea, ma);
    let (eb, mb) = normalize(eb, mb);
    let n = u128::from(ma) << 64;
    let d = u128::from(mb);
    let q1 = n / d;
    let r1 = n % d;
    let n2 = r1 << 64;
    let q2 = n2 / d;
    let r2 = n2 % d;
    // q = q1 * 2^64 + q2; keep q1 (<= 65 bits) << 62 plus the top 62 bits of q2.
    let sig = (q1 << 62) | (q2 >> 2);
    let sticky = q2 & 3 != 0 || r2 != 0;
    // value = ma/mb * 2^(ea-eb); q1 = ma*2^64/mb -> exponent ea - eb - 64 for q1's LSB.
    (sa != sb, ea - eb - 64 - 62, sig, sticky)
}

/// Square root of a positive non-zero finite value as (e, sig, sticky).
pub fn sqrt_exact(a: F80) -> (i32, u128, bool) {
    let (_, e, m) = a.unpack();
    let (e, m) = normalize(e, m);
    // Make the exponent even; the radicand becomes a 66-bit field M (m or 2m).
    let (e, big) = if e & 1 != 0 {
        (e - 1, u128::from(m) << 1)
    } else {
        (e, u128::from(m))
    };
    // Radicand M * 4^35 taken two bits at a time, 68 pairs in all (M fits in 66 bits).
    let mut root: u128 = 0;
    let mut rem: u128 = 0;
    for k in 0..68 {
        let pair = if k < 33 { (big >> (64 - 2 * k)) & 3 } else { 0 };
        rem = (rem << 2) | pair;
        let trial = (root << 2) | 1;
        if rem >= trial {
            rem -= trial;
            root = (root << 1) | 1;
        } else {
            root <<= 1;
        }
    }
    (e / 2 - 35, root, rem != 0)
}

/// Ordering of two values: Some(Less/Equal/Greater) or None if unordered.
pub fn compare(a: F80, b: F80) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering::*;
    if a.is_nan() || b.is_nan() {
        return None;
    }
    let key = |x: F80| -> (i8, i128) {
        match x.class() {
            Class::Zero => (0, 0),
            Class::Inf => (if x.sign() { -2 } else { 2 }, 0),
            _ => {
                let (s, e, m) = x.unpack();
                let (e, m) = normalize(e, m);
                let mag = (i128::from(e) << 64) | i128::from(m);
                if s { (-1, -mag) } else { (1, mag) }
            }
        }
    };
    let (ka, kb) = (key(a), key(b));
    Some(match ka.0.cmp(&kb.0) {
        Equal => ka.1.cmp(&kb.1),
        o => o,
    })
    .map(|o| if o == Equal { Equal } else { o })
}

/// Exact conversion from a signed integer.
pub fn from_i64(v: i64) -> F80 {
    if v == 0 {
        return F80::zero(false);
    }
    let m = v.unsigned_abs();
    let lz = m.leading_zeros();
    F80 {
        se: (BIAS + 63 - lz as i32) as u16 | if v < 0 { 0x8000 } else { 0 },
        mant: m << lz,
    }
}

/// Round a finite value to an integer under `rc`: (integer magnitude as u128 or None if it
/// does not fit in 65 bits, inexact, rounded-up).
pub fn to_int(a: F80, rc: Rc) -> (Option<u128>, bool, bool) {
    let (s, e, m) = a.unpack();
    if m == 0 {
        return (Some(0), false, false);
    }
    if e >= 0 {
        if e > 63 {
            return (None, false, false);
        }
        return (Some(u128::from(m) << e), false, false);
    }
    let sh = (-e) as u32;
    let (ip, frac_half, frac_above, frac_nz) = if sh >= 128 {
        (0u128, false, false, true)
    } else {
        let x = u128::from(m) << 64;
        // value = x * 2^(e-64)
        let total = sh + 64;
        if total >= 128 {
            let half = total == 128 && x >> 127 != 0;
            let above = half && x << 1 != 0;
            (0, half, above, true)
        } else {
            let ip = x >> total;
            let fr = x << (128 - total);
            let half = fr >> 127 != 0;
            (ip, half, half && fr << 1 != 0, fr != 0)
        }
    };
    let up = match rc {
        Rc::Nearest => frac_above || (frac_half && ip & 1 != 0),
        Rc::Zero => false,
        Rc::Up => frac_nz && !s,
        Rc::Down => frac_nz && s,
    };
    let v = if up { ip + 1 } else { ip };
    (Some(v), frac_nz, up)
}
