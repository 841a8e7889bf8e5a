//! Exchanges: XCHG, XADD, CMPXCHG, CMPXCHG8B, CMPXCHG16B (SDM Vol. 2A "CMPXCHG",
//! "CMPXCHG8B/CMPXCHG16B"; Vol. 2B "XADD", "XCHG").
//!
//! LOCK needs nothing extra: a vCPU executes one instruction at a time, so every read-modify-
//! write here is already atomic with respect to the guest.

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::cx::{Cx, Loc, mask};
use super::flags;
use crate::fault::Fault;
use crate::state::flags::ZF;
use crate::state::gpr;

/// Execute one exchange instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Xchg => xchg(cx, i),
        Xadd => xadd(cx, i),
        Cmpxchg => cmpxchg(cx, i),
        _ => cmpxchg_wide(cx, i),
    }
}

fn xchg(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    // Put the memory operand (if any) first so it is written before any register changes.
    let (m, r) = if i.op_kind(1) == OpKind::Memory {
        (1, 0)
    } else {
        (0, 1)
    };
    let a = cx.op(i, m, true)?;
    let b = cx.op(i, r, true)?;
    let va = cx.load(&a)?;
    let vb = cx.load(&b)?;
    cx.store(&a, vb)?;
    cx.store(&b, va)
}

fn xadd(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let dst = cx.op(i, 0, true)?;
    let size = dst.size;
    let src = cx.op(i, 1, false)?;
    let a = cx.load(&dst)?;
    let b = cx.load(&src)?;
    let sum = a.wrapping_add(b) & mask(size);
    let f = flags::add(a, b, sum, size);
    if let Loc::Mem(_) = dst.loc {
        cx.store(&dst, sum)?;
        cx.store(&src, a)?;
    } else {
        // SRC <- DEST, then DEST <- sum: with the same register twice, the sum wins.
        cx.store(&src, a)?;
        cx.store(&dst, sum)?;
    }
    cx.st.rflags = flags::set_status(cx.st.rflags, f);
    Ok(())
}

fn cmpxchg(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let dst = cx.op(i, 0, true)?;
    let size = dst.size;
    let new = cx.get_gpr(i.op_register(1));
    let d = cx.load(&dst)?;
    let acc = cx.reg(gpr::RAX as u8, false, size);
    let r = acc.wrapping_sub(d) & mask(size);
    let f = flags::sub(acc, d, r, size);
    if acc == d {
        cx.store(&dst, new)?;
    } else {
        // The destination is written whether or not the comparison succeeds (Intel SDM:
        // the processor writes back the old value), so a read-only page faults either way.
        // Register destinations are not written back on a failed compare (AMD Zen: a 32-bit
        // register keeps its upper half).
        if let Loc::Mem(_) = dst.loc {
            cx.store(&dst, d)?;
        }
        cx.set_reg(gpr::RAX as u8, false, size, d);
    }
    cx.st.rflags = flags::set_status(cx.st.rflags, f);
    Ok(())
}

/// CMPXCHG8B (EDX:EAX against m64, ECX:EBX stored) and CMPXCHG16B (RDX:RAX against m128,
/// RCX:RBX stored; #GP(0) unless 16-byte aligned).
fn cmpxchg_wide(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let wide = i.mnemonic() == Mnemonic::Cmpxchg16b;
    let half = if wide { 8 } else { 4 };
    let op = cx.op(i, 0, true)?;
    let Loc::Mem(lin) = op.loc else {
        return Err(Fault::UD);
    };
    if wide && lin & 0xf != 0 {
        return Err(Fault::GP0);
    }
    cx.probe_write(lin, half * 2)?;
    let user = cx.cpl() == 3;
    let lo = cx.read_lin(lin, half, user)?;
    let hi = cx.read_lin(lin.wrapping_add(u64::from(half)), half, user)?;
    let (eax, edx) = (
        cx.reg(gpr::RAX as u8, false, half),
        cx.reg(gpr::RDX as u8, false, half),
    );
    let (new_lo, new_hi, equal) = if eax == lo && edx == hi {
        (
            cx.reg(gpr::RBX as u8, false, half),
            cx.reg(gpr::RCX as u8, false, half),
            true,
        )
    } else {
        // The old value is written back on a failed compare.
        (lo, hi, false)
    };
    cx.write_lin(lin, half, new_lo, user)?;
    cx.write_lin(lin.wrapping_add(u64::from(half)), half, new_hi, user)?;
    if equal {
        cx.st.rflags |= ZF;
    } else {
        cx.set_reg(gpr::RAX as u8, false, half, lo);
        cx.set_reg(gpr::RDX as u8, false, half, hi);
        cx.st.rflags &= !ZF;
    }
    Ok(())
}
