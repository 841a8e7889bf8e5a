//! Integer multiply and divide: MUL, IMUL (one-, two- and three-operand forms), DIV, IDIV
//! (SDM Vol. 2A "DIV", "IDIV", "IMUL"; Vol. 2B "MUL").
//!
//! MUL and IMUL leave SF, ZF, AF and PF undefined; vx leaves them unchanged. DIV and IDIV leave
//! all six status flags undefined; vx leaves them unchanged too.

use iced_x86::{Instruction, Mnemonic};

use super::cx::{Cx, mask, sext};
use crate::fault::Fault;
use crate::state::flags::{CF, OF};
use crate::state::gpr;

/// Execute one multiply or divide.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Imul if i.op_count() >= 2 => imul_explicit(cx, i),
        Mul | Imul => widening_mul(cx, i),
        _ => divide(cx, i),
    }
}

fn set_cf_of(cx: &mut Cx, overflow: bool) {
    if overflow {
        cx.st.rflags |= CF | OF;
    } else {
        cx.st.rflags &= !(CF | OF);
    }
}

/// The accumulator pair for a `size`-byte operand: (low, high) halves of the double-width
/// value, AX for bytes and DX:AX, EDX:EAX, RDX:RAX otherwise.
fn acc_pair(cx: &Cx, size: u32) -> (u64, u64) {
    if size == 1 {
        let ax = cx.reg(gpr::RAX as u8, false, 2);
        (ax & 0xff, ax >> 8)
    } else {
        (
            cx.reg(gpr::RAX as u8, false, size),
            cx.reg(gpr::RDX as u8, false, size),
        )
    }
}

fn set_acc_pair(cx: &mut Cx, size: u32, lo: u64, hi: u64) {
    if size == 1 {
        let ax = (lo & 0xff) | ((hi & 0xff) << 8);
        cx.set_reg(gpr::RAX as u8, false, 2, ax);
    } else {
        cx.set_reg(gpr::RAX as u8, false, size, lo);
        cx.set_reg(gpr::RDX as u8, false, size, hi);
    }
}

/// One-operand MUL and IMUL: AX/DX:AX/EDX:EAX/RDX:RAX = accumulator * r/m.
fn widening_mul(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let src = cx.op(i, 0, false)?;
    let size = src.size;
    let bits = size * 8;
    let b = cx.load(&src)? & mask(size);
    let (a, _) = acc_pair(cx, size);
    let (lo, hi, overflow) = if i.mnemonic() == Mnemonic::Mul {
        let p = u128::from(a) * u128::from(b);
        let lo = (p as u64) & mask(size);
        let hi = ((p >> bits) as u64) & mask(size);
        (lo, hi, hi != 0)
    } else {
        let p = i128::from(sext(a, size) as i64) * i128::from(sext(b, size) as i64);
        let lo = (p as u64) & mask(size);
        let hi = ((p >> bits) as u64) & mask(size);
        // Overflow when the product does not fit the low half sign-extended.
        (lo, hi, i128::from(sext(lo, size) as i64) != p)
    };
    set_acc_pair(cx, size, lo, hi);
    set_cf_of(cx, overflow);
    Ok(())
}

/// Two- and three-operand IMUL: reg = truncate(src1 * src2).
fn imul_explicit(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let size = cx.op_size(i, 0);
    let (a, b) = if i.op_count() == 3 {
        let a = cx.rd(i, 1)?;
        (a, i.immediate(2))
    } else {
        let b = cx.rd(i, 1)?;
        (cx.get_gpr(i.op_register(0)), b)
    };
    let (r, overflow) = imul_trunc(a, b, size);
    cx.set_gpr(i.op_register(0), r);
    set_cf_of(cx, overflow);
    Ok(())
}

/// The truncated signed product of two `size`-byte values and whether it overflowed (CF=OF).
#[inline]
pub fn imul_trunc(a: u64, b: u64, size: u32) -> (u64, bool) {
    let p = i128::from(sext(a, size) as i64) * i128::from(sext(b, size) as i64);
    let r = (p as u64) & mask(size);
    (r, i128::from(sext(r, size) as i64) != p)
}

/// RFLAGS after a truncating IMUL: CF and OF report overflow; SF, ZF, AF and PF are
/// undefined and left unchanged.
#[inline]
pub fn imul_flags(rflags: u64, overflow: bool) -> u64 {
    if overflow {
        rflags | CF | OF
    } else {
        rflags & !(CF | OF)
    }
}

/// DIV and IDIV: quotient and remainder of the double-width accumulator by r/m; #DE when the
/// divisor is zero or the quotient does not fit.
fn divide(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let src = cx.op(i, 0, false)?;
    let size = src.size;
    let bits = size * 8;
    let d = cx.load(&src)? & mask(size);
    if d == 0 {
        return Err(Fault::DE);
    }
    let (lo, hi) = acc_pair(cx, size);
    let (q, r) = if i.mnemonic() == Mnemonic::Div {
        let n = (u128::from(hi) << bits) | u128::from(lo);
        let q = n / u128::from(d);
        if q > u128::from(mask(size)) {
            return Err(Fault::DE);
        }
        (q as u64, (n % u128::from(d)) as u64)
    } else {
        // Sign-extend the 2*bits-wide dividend held in hi:lo.
        let n = if bits == 64 {
            ((u128::from(hi) << 64) | u128::from(lo)) as i128
        } else {
            let wide = (hi << bits) | lo;
            i128::from(sext(wide, size * 2) as i64)
        };
        let dv = i128::from(sext(d, size) as i64);
        // checked_div fails only for -2^127 / -1, whose quotient overflows anyway.
        let q = n.checked_div(dv).ok_or(Fault::DE)?;
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        if q < min || q > max {
            return Err(Fault::DE);
        }
        let r = n.checked_rem(dv).ok_or(Fault::DE)?;
        ((q as u64) & mask(size), (r as u64) & mask(size))
    };
    set_acc_pair(cx, size, q, r);
    Ok(())
}
