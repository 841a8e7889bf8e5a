//! x87 FPU instructions and FXSAVE/FXRSTOR (SDM Vol. 1 ch. 8 and §10.5; Vol. 2 for each
//! instruction): dispatch, the #NM/#MF checks, the register stack (TOP, tags) and exception
//! signaling. The families live in x87/*.rs; 80-bit arithmetic is the soft-float in x87/f80.rs.

mod arith;
mod compare;
mod control;
pub mod f80;
mod load_store;
mod transcendental;

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::cx::Cx;
use crate::fault::Fault;
use crate::state::cr;
use f80::F80;

/// FSW bits.
pub mod fsw {
    /// Invalid operation.
    pub const IE: u16 = 1 << 0;
    /// Stack fault.
    pub const SF: u16 = 1 << 6;
    /// Error summary.
    pub const ES: u16 = 1 << 7;
    /// Condition code C0.
    pub const C0: u16 = 1 << 8;
    /// Condition code C1.
    pub const C1: u16 = 1 << 9;
    /// Condition code C2.
    pub const C2: u16 = 1 << 10;
    /// Condition code C3.
    pub const C3: u16 = 1 << 14;
    /// Busy (mirrors ES).
    pub const B: u16 = 1 << 15;
    /// All condition codes.
    pub const CC: u16 = C0 | C1 | C2 | C3;
}

/// Execute `i` if it is an x87 or FXSAVE-family instruction; None if it is not one.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Option<Result<(), Fault>> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let class = match m {
        Fxsave | Fxsave64 | Fxrstor | Fxrstor64 => Kind::Fxsr,
        Wait => Kind::Wait,
        Fninit | Fnclex | Fnstsw | Fnstcw | Fnstenv | Fnsave => Kind::NoWait,
        F2xm1 | Fabs | Fadd | Faddp | Fbld | Fbstp | Fchs | Fclex | Fcmovb | Fcmovbe | Fcmove
        | Fcmovnb | Fcmovnbe | Fcmovne | Fcmovnu | Fcmovu | Fcom | Fcomi | Fcomip | Fcomp
        | Fcompp | Fcos | Fdecstp | Fdiv | Fdivp | Fdivr | Fdivrp | Ffree | Ffreep | Fiadd
        | Ficom | Ficomp | Fidiv | Fidivr | Fild | Fimul | Fincstp | Finit | Fist | Fistp
        | Fisttp | Fisub | Fisubr | Fld | Fld1 | Fldcw | Fldenv | Fldl2e | Fldl2t | Fldlg2
        | Fldln2 | Fldpi | Fldz | Fmul | Fmulp | Fnop | Fpatan | Fprem | Fprem1 | Fptan
        | Frndint | Frstor | Fsave | Fscale | Fsin | Fsincos | Fsqrt | Fst | Fstcw | Fstenv
        | Fstp | Fstsw | Fsub | Fsubp | Fsubr | Fsubrp | Ftst | Fucom | Fucomi | Fucomip
        | Fucomp | Fucompp | Fxam | Fxch | Fxtract | Fyl2x | Fyl2xp1 => Kind::Wait87,
        _ => return None,
    };
    Some(run(cx, i, class))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// FXSAVE/FXRSTOR: #NM on EM or TS, no pending-exception check.
    Fxsr,
    /// WAIT/FWAIT: #NM only on TS with MP, then the pending-exception check.
    Wait,
    /// Non-waiting control instructions: #NM, no pending-exception check.
    NoWait,
    /// Every other x87 instruction (and the waiting forms of the control instructions).
    Wait87,
}

fn run(cx: &mut Cx, i: &Instruction, kind: Kind) -> Result<(), Fault> {
    let cr0 = cx.st.cr0;
    if kind == Kind::Wait {
        if cr0 & cr::CR0_TS != 0 && cr0 & cr::CR0_MP != 0 {
            return Err(Fault::NM);
        }
    } else if cr0 & (cr::CR0_EM | cr::CR0_TS) != 0 {
        return Err(Fault::NM);
    }
    if matches!(kind, Kind::Wait | Kind::Wait87) {
        pending(cx)?;
    }
    use Mnemonic::*;
    match i.mnemonic() {
        Wait | Fnop => Ok(()),
        Fxsave | Fxsave64 | Fxrstor | Fxrstor64 => control::fxsr(cx, i),
        Fninit | Finit | Fnclex | Fclex | Fnstsw | Fstsw | Fnstcw | Fstcw | Fldcw | Fnstenv
        | Fstenv | Fldenv | Fnsave | Fsave | Frstor | Ffree | Ffreep | Fincstp | Fdecstp => {
            control::exec(cx, i)
        }
        Fcom | Fcomp | Fcompp | Fucom | Fucomp | Fucompp | Ficom | Ficomp | Fcomi | Fcomip
        | Fucomi | Fucomip | Ftst | Fxam => {
            note(cx, i);
            compare::exec(cx, i)
        }
        F2xm1 | Fyl2x | Fyl2xp1 | Fptan | Fpatan | Fsin | Fcos | Fsincos => {
            note(cx, i);
            transcendental::exec(cx, i)
        }
        Fld | Fst | Fstp | Fild | Fist | Fistp | Fisttp | Fld1 | Fldz | Fldpi | Fldl2e | Fldl2t
        | Fldlg2 | Fldln2 | Fxch | Fcmovb | Fcmovbe | Fcmove | Fcmovnb | Fcmovnbe | Fcmovne
        | Fcmovnu | Fcmovu | Fbld | Fbstp => {
            note(cx, i);
            load_store::exec(cx, i)
        }
        _ => {
            note(cx, i);
            arith::exec(cx, i)
        }
    }
}

/// A pending unmasked exception (FSW.ES) raises #MF before a waiting instruction when
/// CR0.NE is set (SDM Vol. 1 §8.7; with NE clear the FERR# line is not modelled).
fn pending(cx: &mut Cx) -> Result<(), Fault> {
    if cx.st.fpu.fsw & fsw::ES != 0 && cx.st.cr0 & cr::CR0_NE != 0 {
        return Err(Fault::MF);
    }
    Ok(())
}

/// Record the last instruction and data pointers (FIP, FDP) for a non-control instruction.
/// FOP is not recorded (the decoded form does not keep the opcode bytes); it reads as 0.
fn note(cx: &mut Cx, i: &Instruction) {
    cx.st.fpu.fip = i.ip();
    if i.op_count() > 0 && (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory) {
        cx.st.fpu.fdp = cx.ea(i);
    }
}

// ---- the register stack ------------------------------------------------------------------

/// TOP from FSW.
pub(crate) fn top(cx: &Cx) -> u8 {
    ((cx.st.fpu.fsw >> 11) & 7) as u8
}

fn set_top(cx: &mut Cx, t: u8) {
    cx.st.fpu.fsw = (cx.st.fpu.fsw & !(7 << 11)) | (u16::from(t & 7) << 11);
}

/// Physical register number of ST(i).
fn phys(cx: &Cx, i: u8) -> u8 {
    (top(cx).wrapping_add(i)) & 7
}

/// ST(i) holds a value (its tag is not empty).
pub(crate) fn valid(cx: &Cx, i: u8) -> bool {
    cx.st.fpu.ftw >> phys(cx, i) & 1 != 0
}

/// The value of ST(i), whatever its tag.
pub(crate) fn get(cx: &Cx, i: u8) -> F80 {
    F80::from_bytes(&cx.st.fpu.st[usize::from(i & 7)])
}

/// Write ST(i) and mark it valid.
pub(crate) fn set(cx: &mut Cx, i: u8, v: F80) {
    let slot = &mut cx.st.fpu.st[usize::from(i & 7)];
    slot[..10].copy_from_slice(&v.to_bytes());
    slot[10..].fill(0);
    let p = phys(cx, i);
    cx.st.fpu.ftw |= 1 << p;
}

/// Mark ST(i) empty.
pub(crate) fn free(cx: &mut Cx, i: u8) {
    let p = phys(cx, i);
    cx.st.fpu.ftw &= !(1 << p);
}

/// Decrement TOP (ST(i) becomes ST(i+1)) without touching tags.
pub(crate) fn dec_top(cx: &mut Cx) {
    cx.st.fpu.st.rotate_right(1);
    let t = top(cx).wrapping_sub(1);
    set_top(cx, t);
}

/// Increment TOP without touching tags.
pub(crate) fn inc_top(cx: &mut Cx) {
    cx.st.fpu.st.rotate_left(1);
    let t = top(cx).wrapping_add(1);
    set_top(cx, t);
}

/// Pop: mark ST(0) empty and increment TOP.
pub(crate) fn pop(cx: &mut Cx) {
    free(cx, 0);
    inc_top(cx);
}

/// Push `v`; a full stack (ST(7) valid) is a stack overflow: masked, the real indefinite is
/// pushed; unmasked, nothing changes. Returns false when the push did not happen.
pub(crate) fn push(cx: &mut Cx, v: F80) -> bool {
    if valid(cx, 7) {
        let unmasked = stack_fault(cx, true);
        if unmasked {
            return false;
        }
        dec_top(cx);
        set(cx, 0, f80::INDEFINITE);
        return true;
    }
    dec_top(cx);
    set(cx, 0, v);
    true
}

/// Signal a stack fault (overflow when `over`): IE, SF and C1; returns true if IE is unmasked.
pub(crate) fn stack_fault(cx: &mut Cx, over: bool) -> bool {
    let f = &mut cx.st.fpu;
    f.fsw |= fsw::IE | fsw::SF;
    if over {
        f.fsw |= fsw::C1;
    } else {
        f.fsw &= !fsw::C1;
    }
    if f.fcw & 1 == 0 {
        f.fsw |= fsw::ES | fsw::B;
        return true;
    }
    false
}

/// Record exception flags (f80 bits) in FSW and set C1 from ROUNDED_UP. Returns
/// the unmasked ones (which suppress the destination write for IE, DE, ZE).
pub(crate) fn signal(cx: &mut Cx, flags: u8) -> u8 {
    let f = &mut cx.st.fpu;
    let ex = flags & 0x3f;
    f.fsw |= u16::from(ex);
    if flags & f80::ROUNDED_UP != 0 {
        f.fsw |= fsw::C1;
    } else {
        f.fsw &= !fsw::C1;
    }
    let unmasked = ex & !(f.fcw as u8) & 0x3f;
    if unmasked != 0 {
        f.fsw |= fsw::ES | fsw::B;
    }
    unmasked
}

/// Stack index of an x87 register operand (ST0..ST7).
pub(crate) fn st_index(r: Register) -> u8 {
    (r as u32).wrapping_sub(Register::ST0 as u32) as u8 & 7
}

/// Set C0-C3 to the given bits (others cleared).
pub(crate) fn set_cc(cx: &mut Cx, cc: u16) {
    cx.st.fpu.fsw = (cx.st.fpu.fsw & !fsw::CC) | (cc & fsw::CC);
}

// ---- memory helpers ------------------------------------------------------------------------

/// Read `out.len()` bytes of the memory operand at offset `delta` into it (segment checks
/// on the whole range first).
pub(crate) fn read_bytes(cx: &mut Cx, seg: usize, off: u64, out: &mut [u8]) -> Result<(), Fault> {
    let n = out.len() as u32;
    let lin = cx.linear(seg, off, n.max(1), false)?;
    let user = cx.cpl() == 3;
    let mut k = 0usize;
    while k < out.len() {
        let chunk = (out.len() - k).min(8);
        let v = cx.read_lin(lin.wrapping_add(k as u64), chunk as u32, user)?;
        out[k..k + chunk].copy_from_slice(&v.to_le_bytes()[..chunk]);
        k += chunk;
    }
    Ok(())
}

/// Write `data` at seg:off, checking the whole range (segment and paging) first.
pub(crate) fn write_bytes(cx: &mut Cx, seg: usize, off: u64, data: &[u8]) -> Result<(), Fault> {
    let n = data.len() as u32;
    let lin = cx.linear(seg, off, n.max(1), true)?;
    cx.probe_write(lin, n.max(1))?;
    let user = cx.cpl() == 3;
    let mut k = 0usize;
    while k < data.len() {
        let chunk = (data.len() - k).min(8);
        let mut b = [0u8; 8];
        b[..chunk].copy_from_slice(&data[k..k + chunk]);
        cx.write_lin(
            lin.wrapping_add(k as u64),
            chunk as u32,
            u64::from_le_bytes(b),
            user,
        )?;
        k += chunk;
    }
    Ok(())
}
