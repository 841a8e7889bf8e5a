//! SSE2 integer operations on XMM registers (PADD/PSUB with and without saturation, PMUL*,
//! PMADDWD, PSADBW, PAVG, PMIN/PMAX, PCMPEQ/PCMPGT, logic, shifts, PUNPCK*, PACK*, PSHUF*) and
//! the bitwise/shuffle forms of the floating-point types (ANDPS..XORPD, SHUFPS/SHUFPD,
//! UNPCKLPS..UNPCKHPD), none of which raise SIMD floating-point exceptions (SDM Vol. 1
//! §11.4.3; Vol. 2B-2C, each instruction).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::super::cx::Cx;
use super::super::cx::{mask, sext};
use super::{imm8, lane, map2, set_xmm, src, xmm};
use crate::fault::Fault;

fn sat_s(v: i64, w: u32) -> u64 {
    let max = (1i64 << (w * 8 - 1)) - 1;
    let min = -(1i64 << (w * 8 - 1));
    v.clamp(min, max) as u64
}

fn sat_u(v: i64, w: u32) -> u64 {
    v.clamp(0, mask(w) as i64) as u64
}

fn s(v: u64, w: u32) -> i64 {
    sext(v, w) as i64
}

/// Interleave lanes of `w` bytes from the low (`high` false) or high halves of `a` and `b`.
fn unpack(a: u128, b: u128, w: u32, high: bool) -> u128 {
    let n = 8 / w;
    let base = if high { n } else { 0 };
    let mut r = 0u128;
    for k in 0..n {
        r |= u128::from(lane(a, w, base + k)) << (2 * k * w * 8);
        r |= u128::from(lane(b, w, base + k)) << ((2 * k + 1) * w * 8);
    }
    r
}

/// Narrow the lanes of `w` bytes of `a` then `b` to `w/2` bytes with `sat`.
fn pack(a: u128, b: u128, w: u32, sat: fn(i64, u32) -> u64) -> u128 {
    let n = 16 / w;
    let h = w / 2;
    let mut r = 0u128;
    for k in 0..n {
        r |= u128::from(sat(s(lane(a, w, k), w), h) & mask(h)) << (k * h * 8);
        r |= u128::from(sat(s(lane(b, w, k), w), h) & mask(h)) << ((k + n) * h * 8);
    }
    r
}

/// Shift each lane of `w` bytes by `count`: left, logical right, or arithmetic right.
fn shift(a: u128, w: u32, count: u64, kind: u8) -> u128 {
    let bits = u64::from(w * 8);
    map2(a, 0, w, |x, _| match kind {
        0 if count < bits => x << count,
        1 if count < bits => x >> count,
        2 => (s(x, w) >> count.min(bits - 1)) as u64,
        _ => 0,
    })
}

/// Execute one SSE2 integer (or FP-typed bitwise/shuffle) instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let d = i.op_register(0);
    let a = xmm(cx, d);
    let b = src(cx, i, 1)?;
    let imm = imm8(i);
    let r = match m {
        Paddb => map2(a, b, 1, u64::wrapping_add),
        Paddw => map2(a, b, 2, u64::wrapping_add),
        Paddd => map2(a, b, 4, u64::wrapping_add),
        Paddq => map2(a, b, 8, u64::wrapping_add),
        Psubb => map2(a, b, 1, u64::wrapping_sub),
        Psubw => map2(a, b, 2, u64::wrapping_sub),
        Psubd => map2(a, b, 4, u64::wrapping_sub),
        Psubq => map2(a, b, 8, u64::wrapping_sub),
        Paddsb | Paddsw | Psubsb | Psubsw => {
            let w = if matches!(m, Paddsb | Psubsb) { 1 } else { 2 };
            let sub = matches!(m, Psubsb | Psubsw);
            map2(a, b, w, |x, y| {
                let (x, y) = (s(x, w), s(y, w));
                sat_s(if sub { x - y } else { x + y }, w)
            })
        }
        Paddusb | Paddusw | Psubusb | Psubusw => {
            let w = if matches!(m, Paddusb | Psubusb) { 1 } else { 2 };
            let sub = matches!(m, Psubusb | Psubusw);
            map2(a, b, w, |x, y| {
                let (x, y) = (x as i64, y as i64);
                sat_u(if sub { x - y } else { x + y }, w)
            })
        }
        Pmullw => map2(a, b, 2, |x, y| (s(x, 2) * s(y, 2)) as u64),
        Pmulhw => map2(a, b, 2, |x, y| ((s(x, 2) * s(y, 2)) >> 16) as u64),
        Pmulhuw => map2(a, b, 2, |x, y| (x * y) >> 16),
        Pmuludq => map2(a, b, 8, |x, y| (x & 0xffff_ffff) * (y & 0xffff_ffff)),
        Pmaddwd => map2(a, b, 4, |x, y| {
            let lo = s(x & 0xffff, 2) * s(y & 0xffff, 2);
            let hi = s(x >> 16, 2) * s(y >> 16, 2);
            lo.wrapping_add(hi) as u64
        }),
        Psadbw => map2(a, b, 8, |x, y| {
            (0..8)
                .map(|k| ((x >> (k * 8)) & 0xff).abs_diff((y >> (k * 8)) & 0xff))
                .sum()
        }),
        Pavgb => map2(a, b, 1, |x, y| (x + y + 1) >> 1),
        Pavgw => map2(a, b, 2, |x, y| (x + y + 1) >> 1),
        Pminub => map2(a, b, 1, u64::min),
        Pmaxub => map2(a, b, 1, u64::max),
        Pminsw => map2(a, b, 2, |x, y| if s(x, 2) < s(y, 2) { x } else { y }),
        Pmaxsw => map2(a, b, 2, |x, y| if s(x, 2) > s(y, 2) { x } else { y }),
        Pcmpeqb | Pcmpeqw | Pcmpeqd => {
            let w = match m {
                Pcmpeqb => 1,
                Pcmpeqw => 2,
                _ => 4,
            };
            map2(a, b, w, |x, y| if x == y { u64::MAX } else { 0 })
        }
        Pcmpgtb | Pcmpgtw | Pcmpgtd => {
            let w = match m {
                Pcmpgtb => 1,
                Pcmpgtw => 2,
                _ => 4,
            };
            map2(a, b, w, |x, y| if s(x, w) > s(y, w) { u64::MAX } else { 0 })
        }
        Pand | Andps | Andpd => a & b,
        Pandn | Andnps | Andnpd => !a & b,
        Por | Orps | Orpd => a | b,
        Pxor | Xorps | Xorpd => a ^ b,
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad => {
            let w = match m {
                Psllw | Psrlw | Psraw => 2,
                Pslld | Psrld | Psrad => 4,
                _ => 8,
            };
            let kind = match m {
                Psllw | Pslld | Psllq => 0,
                Psrlw | Psrld | Psrlq => 1,
                _ => 2,
            };
            // The count is an imm8 or the low 64 bits of an XMM register / m128.
            let count = if i.op_kind(1) == OpKind::Immediate8 {
                b as u64 & 0xff
            } else {
                b as u64
            };
            shift(a, w, count, kind)
        }
        Pslldq | Psrldq => {
            let n = b as u32 & 0xff;
            if n > 15 {
                0
            } else if m == Pslldq {
                a << (n * 8)
            } else {
                a >> (n * 8)
            }
        }
        Punpcklbw => unpack(a, b, 1, false),
        Punpcklwd => unpack(a, b, 2, false),
        Punpckldq | Unpcklps => unpack(a, b, 4, false),
        Punpcklqdq | Unpcklpd => unpack(a, b, 8, false),
        Punpckhbw => unpack(a, b, 1, true),
        Punpckhwd => unpack(a, b, 2, true),
        Punpckhdq | Unpckhps => unpack(a, b, 4, true),
        Punpckhqdq | Unpckhpd => unpack(a, b, 8, true),
        Packsswb => pack(a, b, 2, sat_s),
        Packssdw => pack(a, b, 4, sat_s),
        Packuswb => pack(a, b, 2, sat_u),
        Pshufd => {
            let mut r = 0u128;
            for k in 0..4 {
                let sel = u32::from(imm >> (2 * k)) & 3;
                r |= u128::from(lane(b, 4, sel)) << (k * 32);
            }
            r
        }
        Pshuflw | Pshufhw => {
            let base = if m == Pshufhw { 4 } else { 0 };
            let mut r = b;
            for k in 0..4 {
                let sel = u32::from(imm >> (2 * k)) & 3;
                let v = u128::from(lane(b, 2, base + sel));
                let sh = (base + k) * 16;
                r = (r & !(0xffffu128 << sh)) | v << sh;
            }
            r
        }
        Shufps => {
            let sel = |k: u32| u32::from(imm >> (2 * k)) & 3;
            u128::from(lane(a, 4, sel(0)))
                | u128::from(lane(a, 4, sel(1))) << 32
                | u128::from(lane(b, 4, sel(2))) << 64
                | u128::from(lane(b, 4, sel(3))) << 96
        }
        Shufpd => {
            u128::from(lane(a, 8, u32::from(imm & 1)))
                | u128::from(lane(b, 8, u32::from(imm >> 1) & 1)) << 64
        }
        _ => return Err(Fault::UD),
    };
    set_xmm(cx, d, r);
    Ok(())
}
