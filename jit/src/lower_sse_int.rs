//! SSE2 integer and logic operations on XMM registers, translated natively with Cranelift
//! vector types: PAND/PANDN/POR/PXOR and ANDPS/ANDPD/ANDNPS/ANDNPD/ORPS/ORPD/XORPS/XORPD,
//! PCMPEQB/W/D, PCMPGTB/W/D, PMINUB/PMAXUB/PMINSW/PMAXSW, PADDB/W/D/Q, PSUBB/W/D/Q,
//! PUNPCKL*/PUNPCKH* and UNPCKL*/UNPCKH*, PSHUFD, PSLLDQ/PSRLDQ, and the imm8 forms of
//! PSLLW/D/Q, PSRLW/D/Q, PSRAW/D (SDM Vol. 2B-2C, each instruction). None of them reads or
//! writes MXCSR or the flags. Operand access is in `lower_sse.rs`.

use cranelift_codegen::ir::{ConstantData, InstBuilder, Type, Value, condcodes::IntCC, types};
use iced_x86::{Instruction, Mnemonic, OpKind};

use crate::lower_sse::xmm_n;
use crate::translate::{Insn, Translator};

/// Whether `m` is one of this file's mnemonics.
pub fn handles(m: Mnemonic) -> bool {
    use Mnemonic::*;
    is_shift(m)
        || matches!(
            m,
            Pand | Pandn
                | Por
                | Pxor
                | Andps
                | Andpd
                | Andnps
                | Andnpd
                | Orps
                | Orpd
                | Xorps
                | Xorpd
                | Pcmpeqb
                | Pcmpeqw
                | Pcmpeqd
                | Pcmpgtb
                | Pcmpgtw
                | Pcmpgtd
                | Pminub
                | Pmaxub
                | Pminsw
                | Pmaxsw
                | Paddb
                | Paddw
                | Paddd
                | Paddq
                | Psubb
                | Psubw
                | Psubd
                | Psubq
                | Punpcklbw
                | Punpcklwd
                | Punpckldq
                | Punpcklqdq
                | Punpckhbw
                | Punpckhwd
                | Punpckhdq
                | Punpckhqdq
                | Unpcklps
                | Unpckhps
                | Unpcklpd
                | Unpckhpd
                | Pshufd
                | Pslldq
                | Psrldq
        )
}

fn is_shift(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad
    )
}

/// Whether `i` (legacy encoding, XMM/GPR/memory/imm8 operands; `mem`: its memory operand's
/// size, 0 if none) is a form this file translates: the destination an XMM register, the
/// source an XMM register or a 16-byte memory operand; the lane shifts and the byte shifts
/// only with an imm8 count.
pub fn supported(i: &Instruction, mem: usize) -> bool {
    use Mnemonic::*;
    let xmm = |k: u32| i.op_kind(k) == OpKind::Register && i.op_register(k).is_xmm();
    let src_ok = |k: u32| xmm(k) || (i.op_kind(k) == OpKind::Memory && mem == 16);
    let imm = |k: u32| i.op_kind(k) == OpKind::Immediate8;
    if !xmm(0) {
        return false;
    }
    match i.mnemonic() {
        m if is_shift(m) => i.op_count() == 2 && imm(1),
        Pslldq | Psrldq => i.op_count() == 2 && imm(1),
        Pshufd => i.op_count() == 3 && src_ok(1) && imm(2),
        _ => i.op_count() == 2 && src_ok(1),
    }
}

/// The lane type of a `w`-byte-lane vector.
fn lanes(w: u32) -> Type {
    match w {
        1 => types::I8X16,
        2 => types::I16X8,
        4 => types::I32X4,
        _ => types::I64X2,
    }
}

/// The byte-shuffle mask that interleaves the `w`-byte lanes of the low (or high) halves of
/// the first and second vectors: first lane k, second lane k, first lane k+1...
fn unpack_mask(w: u32, high: bool) -> [u8; 16] {
    let mut mask = [0u8; 16];
    let n = 8 / w;
    let base = if high { n } else { 0 };
    for (j, chunk) in mask.chunks_mut(w as usize).enumerate() {
        let j = j as u32;
        let from_second = j % 2 == 1;
        let lane = base + j / 2;
        for (x, b) in chunk.iter_mut().enumerate() {
            let byte = lane * w + x as u32;
            *b = (byte + if from_second { 16 } else { 0 }) as u8;
        }
    }
    mask
}

impl Translator<'_, '_> {
    /// `shuffle` of two byte vectors with a constant mask.
    fn shuffle16(&mut self, a: Value, b: Value, mask: [u8; 16]) -> Value {
        let imm = self
            .b
            .func
            .dfg
            .immediates
            .push(ConstantData::from(&mask[..]));
        self.b.ins().shuffle(a, b, imm)
    }

    /// The all-zero byte vector.
    fn vzero(&mut self) -> Value {
        let c = self
            .b
            .func
            .dfg
            .constants
            .insert(ConstantData::from(&[0u8; 16][..]));
        self.b.ins().vconst(types::I8X16, c)
    }
}

/// Lower one instruction `supported` accepted.
pub fn lower(t: &mut Translator, ins: &Insn) {
    use Mnemonic::*;
    let i = &ins.i;
    let m = i.mnemonic();
    let d = xmm_n(i.op_register(0));
    // Sources first (a memory operand may leave through the fault or interpreter exit), then
    // the destination register, then the result.
    let two = |t: &mut Translator, ty: Type| {
        let b = t.vsrc(ins, ty);
        let a = t.xmm_load(d, ty);
        (a, b)
    };
    let r = match m {
        Pand | Andps | Andpd => {
            let (a, b) = two(t, types::I8X16);
            t.b.ins().band(a, b)
        }
        Pandn | Andnps | Andnpd => {
            let (a, b) = two(t, types::I8X16);
            t.b.ins().band_not(b, a)
        }
        Por | Orps | Orpd => {
            let (a, b) = two(t, types::I8X16);
            t.b.ins().bor(a, b)
        }
        Pxor | Xorps | Xorpd => {
            if i.op_kind(1) == OpKind::Register && i.op_register(1) == i.op_register(0) {
                // The zeroing idiom.
                t.vzero()
            } else {
                let (a, b) = two(t, types::I8X16);
                t.b.ins().bxor(a, b)
            }
        }
        Pcmpeqb | Pcmpeqw | Pcmpeqd | Pcmpgtb | Pcmpgtw | Pcmpgtd => {
            let w = match m {
                Pcmpeqb | Pcmpgtb => 1,
                Pcmpeqw | Pcmpgtw => 2,
                _ => 4,
            };
            let cc = if matches!(m, Pcmpeqb | Pcmpeqw | Pcmpeqd) {
                IntCC::Equal
            } else {
                IntCC::SignedGreaterThan
            };
            let (a, b) = two(t, lanes(w));
            t.b.ins().icmp(cc, a, b)
        }
        Pminub | Pmaxub => {
            let (a, b) = two(t, types::I8X16);
            if m == Pminub {
                t.b.ins().umin(a, b)
            } else {
                t.b.ins().umax(a, b)
            }
        }
        Pminsw | Pmaxsw => {
            let (a, b) = two(t, types::I16X8);
            if m == Pminsw {
                t.b.ins().smin(a, b)
            } else {
                t.b.ins().smax(a, b)
            }
        }
        Paddb | Paddw | Paddd | Paddq | Psubb | Psubw | Psubd | Psubq => {
            let w = match m {
                Paddb | Psubb => 1,
                Paddw | Psubw => 2,
                Paddd | Psubd => 4,
                _ => 8,
            };
            let (a, b) = two(t, lanes(w));
            if matches!(m, Paddb | Paddw | Paddd | Paddq) {
                t.b.ins().iadd(a, b)
            } else {
                t.b.ins().isub(a, b)
            }
        }
        Punpcklbw | Punpcklwd | Punpckldq | Punpcklqdq | Punpckhbw | Punpckhwd | Punpckhdq
        | Punpckhqdq | Unpcklps | Unpckhps | Unpcklpd | Unpckhpd => {
            let (w, high) = match m {
                Punpcklbw => (1, false),
                Punpcklwd => (2, false),
                Punpckldq | Unpcklps => (4, false),
                Punpcklqdq | Unpcklpd => (8, false),
                Punpckhbw => (1, true),
                Punpckhwd => (2, true),
                Punpckhdq | Unpckhps => (4, true),
                _ => (8, true),
            };
            let (a, b) = two(t, types::I8X16);
            t.shuffle16(a, b, unpack_mask(w, high))
        }
        Pshufd => {
            let s = t.vsrc(ins, types::I8X16);
            let imm = i.immediate(2) as u8;
            let mut mask = [0u8; 16];
            for (k, chunk) in mask.chunks_mut(4).enumerate() {
                let sel = (imm >> (2 * k)) & 3;
                for (x, b) in chunk.iter_mut().enumerate() {
                    *b = sel * 4 + x as u8;
                }
            }
            t.shuffle16(s, s, mask)
        }
        Pslldq | Psrldq => {
            let n = (i.immediate(1) & 0xff) as u32;
            if n > 15 {
                t.vzero()
            } else {
                let a = t.xmm_load(d, types::I8X16);
                let z = t.vzero();
                let mut mask = [16u8; 16];
                for (k, b) in mask.iter_mut().enumerate() {
                    let k = k as u32;
                    if m == Psrldq && k + n < 16 {
                        *b = (k + n) as u8;
                    } else if m == Pslldq && k >= n {
                        *b = (k - n) as u8;
                    }
                }
                t.shuffle16(a, z, mask)
            }
        }
        _ => {
            // The lane shifts by imm8: a count at least the lane width gives zero (logical)
            // or the sign in every bit (arithmetic); Cranelift would take it modulo the width.
            let w = match m {
                Psllw | Psrlw | Psraw => 2,
                Pslld | Psrld | Psrad => 4,
                _ => 8,
            };
            let bits = u64::from(w * 8);
            let count = i.immediate(1) & 0xff;
            let arith = matches!(m, Psraw | Psrad);
            if count >= bits && !arith {
                t.vzero()
            } else {
                let a = t.xmm_load(d, lanes(w));
                let c = t.b.ins().iconst(types::I32, count.min(bits - 1) as i64);
                match m {
                    Psllw | Pslld | Psllq => t.b.ins().ishl(a, c),
                    Psrlw | Psrld | Psrlq => t.b.ins().ushr(a, c),
                    _ => t.b.ins().sshr(a, c),
                }
            }
        }
    };
    t.xmm_store(d, r);
}
