//! SSE/SSE2 data movement: MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU, MOVD/MOVQ, MOVSS/MOVSD,
//! MOVLPS/MOVHPS/MOVLPD/MOVHPD/MOVHLPS/MOVLHPS, MOVMSKPS/MOVMSKPD/PMOVMSKB, MOVNTPS/MOVNTPD/
//! MOVNTDQ, MASKMOVDQU, PEXTRW/PINSRW, LDMXCSR/STMXCSR (SDM Vol. 2A-2B, each instruction).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::super::cx::{Cx, mask};
use super::{imm8, lane, mem_lin, read_lin, set_xmm, src, store, with_lane, xmm};
use crate::fault::Fault;

const LO64: u128 = u64::MAX as u128;

/// Execute one SSE data-movement instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let dst_xmm = i.op_kind(0) == OpKind::Register && i.op_register(0).is_xmm();
    let src_xmm = i.op_kind(1) == OpKind::Register && i.op_register(1).is_xmm();
    match m {
        Movaps | Movups | Movapd | Movupd | Movdqa | Movdqu | Movntps | Movntpd | Movntdq => {
            let v = src(cx, i, 1)?;
            if dst_xmm {
                set_xmm(cx, i.op_register(0), v);
                Ok(())
            } else {
                store(cx, i, 16, v)
            }
        }
        Movd | Movq => {
            // Width: 4 for MOVD, 8 for MOVQ (the REX.W 0F 6E/7E forms decode as MOVQ).
            let w = if m == Movd { 4 } else { 8 };
            let v = src(cx, i, 1)? & u128::from(mask(w));
            if dst_xmm {
                set_xmm(cx, i.op_register(0), v);
                Ok(())
            } else {
                store(cx, i, w, v)
            }
        }
        Movss | Movsd => {
            let w = if m == Movss { 4 } else { 8 };
            let v = src(cx, i, 1)? & u128::from(mask(w));
            if !dst_xmm {
                return store(cx, i, w, v);
            }
            let d = i.op_register(0);
            // Register to register merges the low element; a load zeroes the rest.
            let r = if src_xmm {
                (xmm(cx, d) & !u128::from(mask(w))) | v
            } else {
                v
            };
            set_xmm(cx, d, r);
            Ok(())
        }
        Movlps | Movlpd | Movhps | Movhpd | Movhlps | Movlhps => {
            let high_dst = matches!(m, Movhps | Movhpd | Movlhps);
            let high_src = matches!(m, Movhlps) || (!dst_xmm && matches!(m, Movhps | Movhpd));
            let s = src(cx, i, 1)?;
            let v = if high_src { s >> 64 } else { s & LO64 };
            if !dst_xmm {
                return store(cx, i, 8, v);
            }
            let d = i.op_register(0);
            let old = xmm(cx, d);
            let r = if high_dst {
                (old & LO64) | v << 64
            } else {
                (old & !LO64) | v
            };
            set_xmm(cx, d, r);
            Ok(())
        }
        Movmskps | Movmskpd | Pmovmskb => {
            let s = src(cx, i, 1)?;
            let w = match m {
                Movmskps => 4,
                Movmskpd => 8,
                _ => 1,
            };
            let mut r = 0u64;
            for k in 0..16 / w {
                r |= (lane(s, w, k) >> (w * 8 - 1)) << k;
            }
            cx.set_gpr(i.op_register(0), r);
            Ok(())
        }
        Maskmovdqu => maskmovdqu(cx, i),
        Pextrw => {
            let s = src(cx, i, 1)?;
            let v = lane(s, 2, u32::from(imm8(i) & 7));
            store(cx, i, 2, u128::from(v))
        }
        Pinsrw => {
            let s = src(cx, i, 1)? as u64;
            let d = i.op_register(0);
            let r = with_lane(xmm(cx, d), 2, u32::from(imm8(i) & 7), s);
            set_xmm(cx, d, r);
            Ok(())
        }
        Ldmxcsr => {
            let lin = mem_lin(cx, i, 4, false)?;
            let v = read_lin(cx, lin, 4)? as u32;
            // MXCSR_MASK is 0xffff: bits 16-31 are reserved.
            if v >> 16 != 0 {
                return Err(Fault::GP0);
            }
            cx.st.fpu.mxcsr = v;
            Ok(())
        }
        Stmxcsr => {
            let v = cx.st.fpu.mxcsr;
            store(cx, i, 4, u128::from(v))
        }
        _ => Err(Fault::UD),
    }
}

/// MASKMOVDQU: store the bytes of the first source whose mask byte has its top bit set, at
/// DS:rDI (segment overridable). Every selected byte is checked before any is written.
fn maskmovdqu(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let (n_data, n_mask) = if i.op_kind(0) == OpKind::Register {
        (0, 1)
    } else {
        (1, 2)
    };
    let data = xmm(cx, i.op_register(n_data));
    let msk = xmm(cx, i.op_register(n_mask));
    let di = cx.st.gpr[crate::state::gpr::RDI] & mask(cx.asz);
    let seg = cx.mem_seg(i);
    let mut lins = [None; 16];
    for (k, slot) in lins.iter_mut().enumerate() {
        if (msk >> (k * 8 + 7)) & 1 != 0 {
            let off = di.wrapping_add(k as u64) & mask(cx.asz);
            let lin = cx.linear(seg, off, 1, true)?;
            cx.probe_write(lin, 1)?;
            *slot = Some(lin);
        }
    }
    let user = cx.cpl() == 3;
    for (k, slot) in lins.iter().enumerate() {
        if let Some(lin) = slot {
            cx.write_lin(*lin, 1, (data >> (k * 8)) as u64 & 0xff, user)?;
        }
    }
    Ok(())
}
