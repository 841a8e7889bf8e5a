//! Shifts and rotates by an immediate count: SHL/SAL SHR SAR ROL ROR (SDM Vol. 2B), with the
//! interpreter's fixed values for the flags the SDM leaves undefined (OF for counts above one
//! uses the count-of-one formula, AF is cleared, CF for SHL/SHR counts at or above the width
//! is what a wider shifter produces). Counts in CL, RCL and RCR run on the interpreter.

use cranelift_codegen::ir::{InstBuilder, Value};
use iced_x86::Mnemonic;

use crate::flags::Lazy;
use crate::lower::{Flow, Loc};
use crate::translate::{Insn, Translator};

impl Translator<'_, '_> {
    /// Bit `k` of `v` as an i64 0 or 1.
    fn bit64(&mut self, v: Value, k: u32, size: u32) -> Value {
        let s = if k > 0 { self.b.ins().ushr_imm_s(v, i64::from(k)) } else { v };
        let s = self.zext64(s, size);
        self.b.ins().band_imm_s(s, 1)
    }

    fn msb64(&mut self, v: Value, size: u32) -> Value {
        self.bit64(v, size * 8 - 1, size)
    }
}

/// Lower one shift or rotate by an immediate.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    use Mnemonic::*;
    let i = &ins.i;
    let m = i.mnemonic();
    let size = t.osize(ins);
    let bits = size * 8;
    let dst = t.opnd(ins, 0, size);
    let count = (i.immediate(1) as u32 & 0xff) & if size == 8 { 0x3f } else { 0x1f };
    let a = t.read(dst);
    if count == 0 {
        // No flag and no value changes, but a register destination is still written (a
        // 32-bit register gets its upper half cleared); memory is only read.
        if let Loc::Reg { .. } = dst.loc {
            t.write(dst, a);
        }
        return Flow::Next;
    }
    let zero64 = t.imm64(0);
    match m {
        Shl | Sal | Shr | Sar => {
            let (r, cf, of) = match m {
                Shl | Sal => {
                    let r = if count >= bits { t.imm(size, 0) } else { t.b.ins().ishl_imm_s(a, i64::from(count)) };
                    let cf = if count <= bits { t.bit64(a, bits - count, size) } else { zero64 };
                    let msb = t.msb64(r, size);
                    let of = t.b.ins().bxor(msb, cf);
                    (r, cf, of)
                }
                Shr => {
                    let r = if count >= bits { t.imm(size, 0) } else { t.b.ins().ushr_imm_s(a, i64::from(count)) };
                    let cf = if count > bits { zero64 } else { t.bit64(a, count - 1, size) };
                    let of = t.msb64(a, size);
                    (r, cf, of)
                }
                _ => {
                    let r = t.b.ins().sshr_imm_s(a, i64::from(count.min(bits - 1)));
                    let s = t.b.ins().sshr_imm_s(a, i64::from((count - 1).min(bits - 1)));
                    let cf = t.bit64(s, 0, size);
                    (r, cf, zero64)
                }
            };
            t.write(dst, r);
            t.lazy = Lazy::Shift { size, r, cf, of };
        }
        _ => {
            let n = count % bits;
            let r = match (n, m) {
                (0, _) => a,
                (_, Rol) => t.b.ins().rotl_imm_s(a, i64::from(n)),
                _ => t.b.ins().rotr_imm_s(a, i64::from(n)),
            };
            let msb = t.msb64(r, size);
            let (cf, of) = if m == Rol {
                let cf = t.bit64(r, 0, size);
                (cf, t.b.ins().bxor(msb, cf))
            } else {
                let next = t.bit64(r, bits - 2, size);
                (msb, t.b.ins().bxor(msb, next))
            };
            t.write(dst, r);
            t.set_cf_of(cf, of);
        }
    }
    Flow::Next
}
