//! SSE and SSE2 instructions on the XMM registers and MXCSR, legacy (non-VEX) encodings (SDM
//! Vol. 1 ch. 10-11; Vol. 2 for each instruction). This file holds the dispatch, the
//! availability checks (SDM Vol. 3A §2.5 CR0.EM/TS, CR4.OSFXSR/OSXMMEXCPT), operand access
//! with the 16-byte alignment rule, and SIMD floating-point exception reporting (§11.5).

mod cvt;
mod fp;
mod int;
mod mov;
mod nearest;
pub mod softfloat;

use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind, Register};

use super::cx::{Cx, mask};
use crate::fault::Fault;
use crate::state::cr;

/// The instruction families of this module.
#[derive(Clone, Copy)]
enum Family {
    Mov,
    Int,
    Fp,
    Cvt,
}

fn family(m: Mnemonic) -> Option<Family> {
    use Mnemonic::*;
    Some(match m {
        Movaps | Movups | Movapd | Movupd | Movdqa | Movdqu | Movd | Movq | Movss | Movsd
        | Movlps | Movhps | Movlpd | Movhpd | Movhlps | Movlhps | Movmskps | Movmskpd
        | Pmovmskb | Movntps | Movntpd | Movntdq | Maskmovdqu | Pextrw | Pinsrw | Ldmxcsr
        | Stmxcsr => Family::Mov,
        Paddb | Paddw | Paddd | Paddq | Psubb | Psubw | Psubd | Psubq | Paddsb | Paddsw
        | Paddusb | Paddusw | Psubsb | Psubsw | Psubusb | Psubusw | Pmullw | Pmulhw | Pmulhuw
        | Pmuludq | Pmaddwd | Psadbw | Pavgb | Pavgw | Pminub | Pmaxub | Pminsw | Pmaxsw
        | Pcmpeqb | Pcmpeqw | Pcmpeqd | Pcmpgtb | Pcmpgtw | Pcmpgtd | Pand | Pandn | Por | Pxor
        | Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad | Pslldq | Psrldq
        | Punpcklbw | Punpcklwd | Punpckldq | Punpcklqdq | Punpckhbw | Punpckhwd | Punpckhdq
        | Punpckhqdq | Packsswb | Packssdw | Packuswb | Pshufd | Pshufhw | Pshuflw | Andps
        | Andpd | Andnps | Andnpd | Orps | Orpd | Xorps | Xorpd | Shufps | Shufpd | Unpcklps
        | Unpckhps | Unpcklpd | Unpckhpd => Family::Int,
        Addps | Addss | Addpd | Addsd | Subps | Subss | Subpd | Subsd | Mulps | Mulss | Mulpd
        | Mulsd | Divps | Divss | Divpd | Divsd | Minps | Minss | Minpd | Minsd | Maxps | Maxss
        | Maxpd | Maxsd | Sqrtps | Sqrtss | Sqrtpd | Sqrtsd | Rcpps | Rcpss | Rsqrtps | Rsqrtss
        | Cmpps | Cmpss | Cmppd | Cmpsd | Comiss | Ucomiss | Comisd | Ucomisd => Family::Fp,
        Cvtsi2ss | Cvtsi2sd | Cvtss2si | Cvtsd2si | Cvttss2si | Cvttsd2si | Cvtps2pd | Cvtpd2ps
        | Cvtss2sd | Cvtsd2ss | Cvtdq2ps | Cvtps2dq | Cvttps2dq | Cvtdq2pd | Cvtpd2dq
        | Cvttpd2dq => Family::Cvt,
        _ => return None,
    })
}

/// Execute `i` if it is an SSE/SSE2 instruction; None if it is not one.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Option<Result<(), Fault>> {
    if i.encoding() != EncodingKind::Legacy {
        return None;
    }
    let m = i.mnemonic();
    if m == Mnemonic::Movnti {
        // A plain GPR store with a non-temporal hint: not gated by CR0/CR4.
        return Some(cx.rd(i, 1).and_then(|v| cx.wr(i, 0, v)));
    }
    let fam = family(m)?;
    // The MMX forms share these mnemonics; they are not implemented here.
    let mmx =
        (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_mm());
    if mmx || (m == Mnemonic::Movsd && i.is_string_instruction()) {
        return None;
    }
    Some(available(cx).and_then(|()| match fam {
        Family::Mov => mov::exec(cx, i),
        Family::Int => int::exec(cx, i),
        Family::Fp => fp::exec(cx, i),
        Family::Cvt => cvt::exec(cx, i),
    }))
}

/// #UD when SSE is disabled (CR0.EM set or CR4.OSFXSR clear), else #NM when CR0.TS is set.
fn available(cx: &Cx) -> Result<(), Fault> {
    if cx.st.cr0 & cr::CR0_EM != 0 || cx.st.cr4 & cr::CR4_OSFXSR == 0 {
        return Err(Fault::UD);
    }
    if cx.st.cr0 & cr::CR0_TS != 0 {
        return Err(Fault::NM);
    }
    Ok(())
}

// ---- operands ----------------------------------------------------------------------------

/// XMM register `r` as a little-endian u128.
fn xmm(cx: &Cx, r: Register) -> u128 {
    u128::from_le_bytes(cx.st.fpu.xmm[r.number() & 15])
}

/// Set XMM register `r`.
fn set_xmm(cx: &mut Cx, r: Register, v: u128) {
    cx.st.fpu.xmm[r.number() & 15] = v.to_le_bytes();
}

/// Whether a 16-byte memory operand of `m` may be misaligned (the explicitly unaligned moves).
fn unaligned_ok(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu)
}

/// Linear address of the memory operand (`size` bytes), with the #GP(0) alignment check for
/// 16-byte operands of the aligned forms; `write` probes the whole range for a store.
fn mem_lin(cx: &mut Cx, i: &Instruction, size: u32, write: bool) -> Result<u64, Fault> {
    let off = cx.ea(i);
    let lin = cx.linear(cx.mem_seg(i), off, size, write)?;
    if size == 16 && lin & 15 != 0 && !unaligned_ok(i.mnemonic()) {
        return Err(Fault::GP0);
    }
    if write {
        cx.probe_write(lin, size)?;
    }
    Ok(lin)
}

/// Read `size` (4, 8 or 16) bytes at linear `lin`.
fn read_lin(cx: &mut Cx, lin: u64, size: u32) -> Result<u128, Fault> {
    let user = cx.cpl() == 3;
    if size <= 8 {
        return Ok(u128::from(cx.read_lin(lin, size, user)?));
    }
    let lo = cx.read_lin(lin, 8, user)?;
    let hi = cx.read_lin(lin.wrapping_add(8), 8, user)?;
    Ok(u128::from(lo) | u128::from(hi) << 64)
}

/// Write `size` bytes at linear `lin` (already probed by `mem_lin`).
fn write_lin(cx: &mut Cx, lin: u64, size: u32, v: u128) -> Result<(), Fault> {
    let user = cx.cpl() == 3;
    if size <= 8 {
        return cx.write_lin(lin, size, v as u64, user);
    }
    cx.write_lin(lin, 8, v as u64, user)?;
    cx.write_lin(lin.wrapping_add(8), 8, (v >> 64) as u64, user)
}

/// Read operand `n`: an XMM register (all 128 bits), a general register, or memory of the
/// instruction's memory size (zero-extended).
fn src(cx: &mut Cx, i: &Instruction, n: u32) -> Result<u128, Fault> {
    match i.op_kind(n) {
        OpKind::Register => {
            let r = i.op_register(n);
            if r.is_xmm() {
                Ok(xmm(cx, r))
            } else {
                Ok(u128::from(cx.get_gpr(r)))
            }
        }
        OpKind::Memory => {
            let size = i.memory_size().size() as u32;
            let lin = mem_lin(cx, i, size, false)?;
            read_lin(cx, lin, size)
        }
        _ => Ok(u128::from(i.immediate(n))),
    }
}

/// Store `v` into operand 0 when it is memory or a general register (`size` bytes); an XMM
/// destination is left to the caller.
fn store(cx: &mut Cx, i: &Instruction, size: u32, v: u128) -> Result<(), Fault> {
    match i.op_kind(0) {
        OpKind::Memory => {
            let lin = mem_lin(cx, i, size, true)?;
            write_lin(cx, lin, size, v)
        }
        OpKind::Register if !i.op_register(0).is_xmm() => {
            let r = i.op_register(0);
            cx.set_gpr(r, v as u64 & mask(r.size() as u32));
            Ok(())
        }
        _ => Err(Fault::UD),
    }
}

/// The instruction's imm8 (0 if it has none).
fn imm8(i: &Instruction) -> u8 {
    (0..i.op_count())
        .find(|&n| i.op_kind(n) == OpKind::Immediate8)
        .map_or(0, |n| i.immediate(n) as u8)
}

/// Lane `k` of `w` bytes of `v`.
#[inline]
fn lane(v: u128, w: u32, k: u32) -> u64 {
    (v >> (k * w * 8)) as u64 & mask(w)
}

/// `v` with lane `k` of `w` bytes replaced by `x`.
#[inline]
fn with_lane(v: u128, w: u32, k: u32, x: u64) -> u128 {
    let sh = k * w * 8;
    let m = u128::from(mask(w)) << sh;
    (v & !m) | (u128::from(x & mask(w)) << sh)
}

/// Apply `f` to each pair of lanes of `w` bytes.
#[inline]
fn map2(a: u128, b: u128, w: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    let mut r = 0u128;
    for k in 0..16 / w {
        r |= u128::from(f(lane(a, w, k), lane(b, w, k)) & mask(w)) << (k * w * 8);
    }
    r
}

// ---- SIMD floating-point exceptions ------------------------------------------------------

/// Report the flags an instruction raised (SDM Vol. 1 §11.5.1): with none unmasked they are
/// ORed into MXCSR. Otherwise the destination is left alone and #XM (CR4.OSXMMEXCPT set) or
/// #UD is raised; an unmasked pre-computation exception (IE, DE, ZE) stops the instruction
/// before post-computation ones (OE, UE, PE) are detected, so only the former are recorded.
fn fp_report(cx: &mut Cx, flags: u32) -> Result<(), Fault> {
    use softfloat::{DE, IE, ZE};
    let mx = cx.st.fpu.mxcsr;
    let unmasked = flags & !(mx >> 7) & 0x3f;
    let pre = flags & (IE | DE | ZE);
    if unmasked & pre != 0 {
        cx.st.fpu.mxcsr = mx | pre;
    } else {
        cx.st.fpu.mxcsr = mx | (flags & 0x3f);
    }
    if unmasked != 0 {
        return Err(if cx.st.cr4 & cr::CR4_OSXMMEXCPT != 0 {
            Fault::XM
        } else {
            Fault::UD
        });
    }
    Ok(())
}
