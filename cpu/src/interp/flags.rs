//! Arithmetic status flags for the integer instructions (SDM Vol. 1 §3.4.3.1, Appendix A).

use super::cx::mask;
use crate::state::flags::{AF, CF, OF, PF, SF, STATUS, ZF};

/// Parity flag for the low byte of `r` (set when the count of one bits is even).
#[inline]
pub fn parity(r: u64) -> u64 {
    if (r as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

/// ZF, SF and PF for a result of `size` bytes.
#[inline]
pub fn szp(r: u64, size: u32) -> u64 {
    let r = r & mask(size);
    let mut f = parity(r);
    if r == 0 {
        f |= ZF;
    }
    if r >> (size * 8 - 1) & 1 != 0 {
        f |= SF;
    }
    f
}

/// Flags of `a + b + carry` with result `r` (all masked to `size`).
#[inline]
pub fn add(a: u64, b: u64, r: u64, size: u32) -> u64 {
    let top = size * 8 - 1;
    let mut f = szp(r, size);
    let cout = (a & b) | ((a | b) & !r);
    if cout >> top & 1 != 0 {
        f |= CF;
    }
    if ((a ^ r) & (b ^ r)) >> top & 1 != 0 {
        f |= OF;
    }
    f | ((a ^ b ^ r) & AF)
}

/// Flags of `a - b - borrow` with result `r`.
#[inline]
pub fn sub(a: u64, b: u64, r: u64, size: u32) -> u64 {
    let top = size * 8 - 1;
    let mut f = szp(r, size);
    let bout = (!a & b) | (!(a ^ b) & r);
    if bout >> top & 1 != 0 {
        f |= CF;
    }
    if ((a ^ b) & (a ^ r)) >> top & 1 != 0 {
        f |= OF;
    }
    f | ((a ^ b ^ r) & AF)
}

/// Flags of a logical operation: CF = OF = 0, AF cleared (undefined on hardware; vx and
/// current Intel and AMD parts leave it clear).
#[inline]
pub fn logic(r: u64, size: u32) -> u64 {
    szp(r, size)
}

/// Replace the status flags of `rflags` with `f` (only the bits in `which`).
#[inline]
pub fn merge(rflags: u64, f: u64, which: u64) -> u64 {
    (rflags & !which) | (f & which)
}

/// Replace all six status flags.
#[inline]
pub fn set_status(rflags: u64, f: u64) -> u64 {
    merge(rflags, f, STATUS)
}
