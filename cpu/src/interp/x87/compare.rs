//! x87 comparisons and classification (SDM Vol. 2: FCOM/FCOMP/FCOMPP, FUCOM/FUCOMP/FUCOMPP,
//! FICOM/FICOMP, FCOMI/FCOMIP/FUCOMI/FUCOMIP, FTST, FXAM; condition codes per Vol. 1 §8.3.4).

use std::cmp::Ordering;

use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind};

use super::f80::{self, Class, F80};
use super::{fsw, get, pop, read_bytes, set_cc, signal, st_index, valid};
use crate::fault::Fault;
use crate::interp::cx::Cx;
use crate::state::flags;

/// Compare `a` with `b`: (ordering or None for unordered, flags). `quiet` (the FUCOM forms)
/// raises IE only for SNaNs and unsupported encodings; the others for any NaN.
pub fn cmp(a: F80, b: F80, quiet: bool, b_den: bool) -> (Option<Ordering>, u8) {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        return (None, f80::IE);
    }
    if a.is_nan() || b.is_nan() {
        let snan = ca == Class::SNan || cb == Class::SNan;
        return (None, if snan || !quiet { f80::IE } else { 0 });
    }
    let den = b_den || ca == Class::Denormal || cb == Class::Denormal;
    (f80::compare(a, b), if den { f80::DE } else { 0 })
}

/// Condition codes C3, C2, C0 for a comparison result.
fn cc_of(o: Option<Ordering>) -> u16 {
    match o {
        Some(Ordering::Greater) => 0,
        Some(Ordering::Less) => fsw::C0,
        Some(Ordering::Equal) => fsw::C3,
        None => fsw::C3 | fsw::C2 | fsw::C0,
    }
}

/// Comparison instructions.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    if m == Fxam {
        let v = get(cx, 0);
        let c = if !valid(cx, 0) {
            fsw::C3 | fsw::C0
        } else {
            match v.class() {
                Class::Unsupported => 0,
                Class::QNan | Class::SNan => fsw::C0,
                Class::Normal => fsw::C2,
                Class::Inf => fsw::C2 | fsw::C0,
                Class::Zero => fsw::C3,
                Class::Denormal => fsw::C3 | fsw::C2,
            }
        };
        let c1 = if v.sign() { fsw::C1 } else { 0 };
        set_cc(cx, c | c1);
        return Ok(());
    }
    let pops = match m {
        Fcomp | Fucomp | Ficomp | Fcomip | Fucomip => 1,
        Fcompp | Fucompp => 2,
        _ => 0,
    };
    let quiet = matches!(m, Fucom | Fucomp | Fucompp | Fucomi | Fucomip);
    let eflags = matches!(m, Fcomi | Fcomip | Fucomi | Fucomip);
    // The second operand: memory, ST(i), ST(1) by default, or 0.0 for FTST.
    let (b, b_den, b_reg) = if m == Ftst {
        (F80::zero(false), false, None)
    } else if (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory) {
        let seg = cx.mem_seg(i);
        let off = cx.ea(i);
        let size = i.memory_size();
        let mut buf = [0u8; 8];
        read_bytes(cx, seg, off, &mut buf[..size.size()])?;
        let raw = u64::from_le_bytes(buf);
        let (v, d) = match size {
            MemorySize::Float32 => super::load_store::from_f32(raw as u32),
            MemorySize::Float64 => super::load_store::from_f64(raw),
            MemorySize::Int16 => (f80::from_i64(i64::from(raw as u16 as i16)), false),
            _ => (f80::from_i64(i64::from(raw as u32 as i32)), false),
        };
        (v, d, None)
    } else {
        let n = i.op_count();
        let s = if n == 0 {
            1
        } else {
            st_index(i.op_register(n - 1))
        };
        (get(cx, s), false, Some(s))
    };
    let underflow = !valid(cx, 0) || b_reg.is_some_and(|s| !valid(cx, s));
    let (ord, flags) = if underflow {
        // Unordered even when the stack fault is unmasked; then nothing is popped.
        if super::stack_fault(cx, false) {
            if eflags {
                cx.st.rflags |= flags::CF | flags::PF | flags::ZF;
                cx.st.rflags &= !(flags::OF | flags::SF | flags::AF);
            } else {
                let c1 = cx.st.fpu.fsw & fsw::C1;
                set_cc(cx, cc_of(None) | c1);
            }
            return Ok(());
        }
        (None, 0)
    } else {
        cmp(get(cx, 0), b, quiet, b_den)
    };
    let mut unmasked = 0;
    if !underflow {
        // The condition codes are written even when the exception is unmasked (as the host
        // does), but the pops do not happen; FCOMI and friends leave C1 alone.
        let c1 = cx.st.fpu.fsw & fsw::C1;
        unmasked = signal(cx, flags);
        cx.st.fpu.fsw = (cx.st.fpu.fsw & !fsw::C1) | c1;
    }
    if eflags {
        let c = cc_of(ord);
        let mut f =
            cx.st.rflags & !(flags::CF | flags::PF | flags::ZF | flags::OF | flags::SF | flags::AF);
        if c & fsw::C0 != 0 {
            f |= flags::CF;
        }
        if c & fsw::C2 != 0 {
            f |= flags::PF;
        }
        if c & fsw::C3 != 0 {
            f |= flags::ZF;
        }
        cx.st.rflags = f;
    } else {
        set_cc(cx, cc_of(ord));
    }
    if unmasked & (f80::IE | f80::DE) != 0 {
        return Ok(());
    }
    for _ in 0..pops {
        pop(cx);
    }
    Ok(())
}
