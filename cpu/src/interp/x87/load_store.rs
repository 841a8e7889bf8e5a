//! x87 data transfer (SDM Vol. 2: FLD, FST/FSTP, FILD, FIST/FISTP, FISTTP, FBLD/FBSTP, the
//! constants FLD1/FLDZ/FLDPI/FLDL2E/FLDL2T/FLDLG2/FLDLN2, FXCH, FCMOVcc) and the conversions
//! between the memory formats and the 80-bit registers (SDM Vol. 1 §4.2, §8.2).

use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind};

use super::f80::{self, Class, F80, Rc, Rounded};
use super::{fsw, get, pop, push, read_bytes, set, signal, st_index, valid, write_bytes};
use crate::fault::Fault;
use crate::interp::cx::Cx;
use crate::state::flags;

/// A single-precision value as an 80-bit one (exact): (value, denormal source).
pub fn from_f32(v: u32) -> (F80, bool) {
    let s = if v >> 31 != 0 { 0x8000u16 } else { 0 };
    let e = (v >> 23) & 0xff;
    let frac = u64::from(v & 0x7f_ffff);
    match e {
        0 if frac == 0 => (F80 { se: s, mant: 0 }, false),
        0 => {
            let lz = frac.leading_zeros();
            // value = frac * 2^-149; put the leading bit at 63.
            let lead = 63 - lz as i32 - 149;
            (
                F80 {
                    se: s | (lead + f80::BIAS) as u16,
                    mant: frac << lz,
                },
                true,
            )
        }
        0xff => (
            F80 {
                se: s | 0x7fff,
                mant: 1 << 63 | frac << 40,
            },
            false,
        ),
        _ => (
            F80 {
                se: s | (e as i32 - 127 + f80::BIAS) as u16,
                mant: 1 << 63 | frac << 40,
            },
            false,
        ),
    }
}

/// A double-precision value as an 80-bit one (exact): (value, denormal source).
pub fn from_f64(v: u64) -> (F80, bool) {
    let s = if v >> 63 != 0 { 0x8000u16 } else { 0 };
    let e = ((v >> 52) & 0x7ff) as i32;
    let frac = v & ((1 << 52) - 1);
    match e {
        0 if frac == 0 => (F80 { se: s, mant: 0 }, false),
        0 => {
            let lz = frac.leading_zeros();
            let lead = 63 - lz as i32 - 1074;
            (
                F80 {
                    se: s | (lead + f80::BIAS) as u16,
                    mant: frac << lz,
                },
                true,
            )
        }
        0x7ff => (
            F80 {
                se: s | 0x7fff,
                mant: 1 << 63 | frac << 11,
            },
            false,
        ),
        _ => (
            F80 {
                se: s | (e - 1023 + f80::BIAS) as u16,
                mant: 1 << 63 | frac << 11,
            },
            false,
        ),
    }
}

/// Convert to single (`double` false) or double precision with RC: (bits, flags).
pub fn to_ieee(a: F80, double: bool, fcw: u16) -> (u64, u8) {
    let (fmt, ebits, fbits) = if double {
        (f80::DOUBLE, 11u32, 52u32)
    } else {
        (f80::SINGLE, 8, 23)
    };
    let sbit = u64::from(a.sign()) << (ebits + fbits);
    let emax_field = (1u64 << ebits) - 1;
    let indefinite = 1 << (ebits + fbits) | emax_field << fbits | 1 << (fbits - 1);
    match a.class() {
        Class::Unsupported => return (indefinite, f80::IE),
        Class::Zero => return (sbit, 0),
        Class::Inf => return (sbit | emax_field << fbits, 0),
        Class::QNan | Class::SNan => {
            let ie = if a.class() == Class::SNan { f80::IE } else { 0 };
            let frac = ((a.mant | 1 << 62) << 1) >> (64 - fbits);
            return (sbit | emax_field << fbits | frac, ie);
        }
        _ => {}
    }
    let (s, e, m) = a.unpack();
    let (r, flags) = f80::round(
        s,
        e,
        u128::from(m),
        false,
        fmt,
        Rc::from_fcw(fcw),
        (fcw & 0x3f) as u8,
    );
    let bits = match r {
        Rounded::Zero(_) => sbit,
        Rounded::Inf(_) => sbit | emax_field << fbits,
        Rounded::Finite(_, be, m) => sbit | (be as u64) << fbits | (m & ((1 << fbits) - 1)),
    };
    (bits, flags)
}

/// Round to a signed integer of `bytes` bytes: (value, flags); out of range or not a number
/// is IE with the integer indefinite.
pub fn to_int(a: F80, bytes: u32, rc: Rc) -> (u64, u8) {
    let bits = bytes * 8;
    let indefinite = 1u64 << (bits - 1);
    match a.class() {
        Class::Zero => return (0, 0),
        Class::Normal | Class::Denormal => {}
        _ => return (indefinite, f80::IE),
    }
    let (v, inexact, up) = f80::to_int(a, rc);
    let Some(v) = v else {
        return (indefinite, f80::IE);
    };
    let lim = 1u128 << (bits - 1);
    if (a.sign() && v > lim) || (!a.sign() && v >= lim) {
        return (indefinite, f80::IE);
    }
    let mut flags = 0;
    if inexact {
        flags |= f80::PE;
    }
    if up {
        flags |= f80::ROUNDED_UP;
    }
    let r = if a.sign() {
        (v as u64).wrapping_neg()
    } else {
        v as u64
    };
    (r & super::super::cx::mask(bytes), flags)
}

/// A 128-bit-accurate constant (significand with the leading bit at 127, exponent of that
/// bit) rounded to 64 bits per RC.
fn constant(sig: u128, lead: i32, fcw: u16) -> F80 {
    let (r, _) = f80::round(
        false,
        lead - 127,
        sig,
        false,
        f80::ext(64),
        Rc::from_fcw(fcw),
        0x3f,
    );
    F80::from_rounded(r)
}

/// Data transfer instructions.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let fcw = cx.st.fpu.fcw;
    match m {
        Fld | Fild | Fbld => {
            let (v, den) = if i.op_kind(0) == OpKind::Memory {
                let seg = cx.mem_seg(i);
                let off = cx.ea(i);
                let size = i.memory_size();
                let mut b = [0u8; 10];
                read_bytes(cx, seg, off, &mut b[..size.size()])?;
                let raw = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                match size {
                    MemorySize::Float32 => from_f32(raw as u32),
                    MemorySize::Float64 => from_f64(raw),
                    MemorySize::Int16 => (f80::from_i64(i64::from(raw as u16 as i16)), false),
                    MemorySize::Int32 => (f80::from_i64(i64::from(raw as u32 as i32)), false),
                    MemorySize::Int64 => (f80::from_i64(raw as i64), false),
                    MemorySize::Bcd => (from_bcd(&b), false),
                    _ => (F80::from_bytes(&b), false),
                }
            } else {
                let s = st_index(i.op_register(0));
                if !valid(cx, s) {
                    // Only the underflow is reported, even with ST(7) in use.
                    if !super::stack_fault(cx, false) {
                        super::dec_top(cx);
                        set(cx, 0, f80::INDEFINITE);
                    }
                    return Ok(());
                }
                (get(cx, s), false)
            };
            if valid(cx, 7) {
                push(cx, v);
                return Ok(());
            }
            let mut flags = if den { f80::DE } else { 0 };
            let mut v = v;
            let from_mem32_64 = i.op_kind(0) == OpKind::Memory
                && matches!(i.memory_size(), MemorySize::Float32 | MemorySize::Float64);
            if from_mem32_64 && v.class() == Class::SNan {
                flags = f80::IE;
                v = v.quiet();
            }
            // An unmasked DE still loads the value (as the host does); an unmasked IE does not.
            if signal(cx, flags) & f80::IE != 0 {
                return Ok(());
            }
            push(cx, v);
        }
        Fld1 | Fldz | Fldpi | Fldl2e | Fldl2t | Fldlg2 | Fldln2 => {
            let v = match m {
                Fld1 => F80 {
                    se: 0x3fff,
                    mant: 1 << 63,
                },
                Fldz => F80::zero(false),
                Fldpi => constant(0xC90F_DAA2_2168_C234_C4C6_628B_80DC_1CD1, 1, fcw),
                Fldl2e => constant(0xB8AA_3B29_5C17_F0BB_BE87_FED0_691D_3E89, 0, fcw),
                Fldl2t => constant(0xD49A_784B_CD1B_8AFE_492B_F6FF_4DAF_DB4D, 1, fcw),
                Fldlg2 => constant(0x9A20_9A84_FBCF_F798_8F89_59AC_0B7C_9178, -2, fcw),
                _ => constant(0xB172_17F7_D1CF_79AB_C9E3_B398_03F2_F6AF, -1, fcw),
            };
            if !valid(cx, 7) {
                cx.st.fpu.fsw &= !fsw::C1;
            }
            push(cx, v);
        }
        Fst | Fstp | Fist | Fistp | Fisttp | Fbstp => store(cx, i)?,
        Fxch => {
            let s = if i.op_count() >= 2 {
                st_index(i.op_register(1))
            } else {
                st_index(i.op_register(0))
            };
            if !valid(cx, 0) || !valid(cx, s) {
                if super::stack_fault(cx, false) {
                    return Ok(());
                }
                if !valid(cx, 0) {
                    set(cx, 0, f80::INDEFINITE);
                }
                if !valid(cx, s) {
                    set(cx, s, f80::INDEFINITE);
                }
            } else {
                cx.st.fpu.fsw &= !fsw::C1;
            }
            let (a, b) = (get(cx, 0), get(cx, s));
            set(cx, 0, b);
            set(cx, s, a);
        }
        _ => {
            // FCMOVcc ST(0), ST(i).
            let s = st_index(i.op_register(1));
            let f = cx.st.rflags;
            let cf = f & flags::CF != 0;
            let zf = f & flags::ZF != 0;
            let pf = f & flags::PF != 0;
            let cond = match m {
                Fcmovb => cf,
                Fcmovnb => !cf,
                Fcmove => zf,
                Fcmovne => !zf,
                Fcmovbe => cf || zf,
                Fcmovnbe => !(cf || zf),
                Fcmovu => pf,
                Fcmovnu => !pf,
                _ => return Err(Fault::UD),
            };
            if !valid(cx, 0) || !valid(cx, s) {
                if !super::stack_fault(cx, false) {
                    set(cx, 0, f80::INDEFINITE);
                }
                return Ok(());
            }
            // C1 is left alone (AMD and Intel agree; the SDM calls it undefined here).
            if cond {
                let v = get(cx, s);
                set(cx, 0, v);
            }
        }
    }
    Ok(())
}

/// FST/FSTP/FIST/FISTP/FISTTP/FBSTP.
fn store(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let popping = matches!(m, Fstp | Fistp | Fisttp | Fbstp);
    let fcw = cx.st.fpu.fcw;
    if i.op_kind(0) == OpKind::Register {
        let d = st_index(i.op_register(0));
        if !valid(cx, 0) {
            if super::stack_fault(cx, false) {
                return Ok(());
            }
            set(cx, d, f80::INDEFINITE);
        } else {
            cx.st.fpu.fsw &= !fsw::C1;
            let v = get(cx, 0);
            set(cx, d, v);
        }
        if popping {
            pop(cx);
        }
        return Ok(());
    }
    let seg = cx.mem_seg(i);
    let off = cx.ea(i);
    let size = i.memory_size();
    let n = size.size();
    // Check the destination before anything changes.
    let lin = cx.linear(seg, off, n as u32, true)?;
    cx.probe_write(lin, n as u32)?;
    let empty = !valid(cx, 0);
    let a = if empty { f80::INDEFINITE } else { get(cx, 0) };
    let rc = Rc::from_fcw(fcw);
    let (bytes, flags): ([u8; 10], u8) = match (m, size) {
        (Fst | Fstp, MemorySize::Float32) => {
            let (v, f) = to_ieee(a, false, fcw);
            (pad(v), f)
        }
        (Fst | Fstp, MemorySize::Float64) => {
            let (v, f) = to_ieee(a, true, fcw);
            (pad(v), f)
        }
        (Fst | Fstp, _) => (a.to_bytes(), 0),
        (Fbstp, _) => to_bcd(a, rc),
        _ => {
            let rc = if m == Fisttp { Rc::Zero } else { rc };
            let (v, f) = to_int(a, n as u32, rc);
            (pad(v), f)
        }
    };
    if empty {
        if super::stack_fault(cx, false) {
            return Ok(());
        }
        let ind: [u8; 10] = match (m, size) {
            (Fst | Fstp, MemorySize::Float32) => pad(0xffc0_0000),
            (Fst | Fstp, MemorySize::Float64) => pad(0xfff8_0000_0000_0000),
            (Fst | Fstp, _) => f80::INDEFINITE.to_bytes(),
            (Fbstp, _) => [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff],
            _ => pad(1u64 << (n * 8 - 1)),
        };
        write_bytes(cx, seg, off, &ind[..n])?;
    } else {
        let unmasked = signal(cx, flags);
        if unmasked & (f80::IE | f80::OE | f80::UE | f80::DE) != 0 {
            return Ok(());
        }
        write_bytes(cx, seg, off, &bytes[..n])?;
    }
    if popping {
        pop(cx);
    }
    Ok(())
}

fn pad(v: u64) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&v.to_le_bytes());
    b
}

/// Packed BCD (18 digits, sign in bit 79) to an 80-bit value; invalid digits are taken as
/// their binary value (the SDM leaves them undefined).
fn from_bcd(b: &[u8; 10]) -> F80 {
    let mut v: i64 = 0;
    for k in (0..9).rev() {
        v = v
            .wrapping_mul(100)
            .wrapping_add(i64::from(b[k] >> 4) * 10 + i64::from(b[k] & 15));
    }
    let r = f80::from_i64(v);
    if b[9] & 0x80 != 0 {
        r.with_sign(true)
    } else {
        r
    }
}

/// An 80-bit value to packed BCD, with the flags (out of range: IE and the BCD indefinite).
fn to_bcd(a: F80, rc: Rc) -> ([u8; 10], u8) {
    let indefinite = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];
    let (mag, inexact, up) = match a.class() {
        Class::Zero => (Some(0), false, false),
        Class::Normal | Class::Denormal => f80::to_int(a, rc),
        _ => return (indefinite, f80::IE),
    };
    let Some(mut mag) = mag.filter(|&v| v < 1_000_000_000_000_000_000) else {
        return (indefinite, f80::IE);
    };
    let mut out = [0u8; 10];
    for byte in out.iter_mut().take(9) {
        let lo = (mag % 10) as u8;
        mag /= 10;
        let hi = (mag % 10) as u8;
        mag /= 10;
        *byte = hi << 4 | lo;
    }
    if a.sign() {
        out[9] = 0x80;
    }
    let mut flags = if inexact { f80::PE } else { 0 };
    if up {
        flags |= f80::ROUNDED_UP;
    }
    (out, flags)
}
