//! Shifts and rotates: SHL/SAL SHR SAR ROL ROR by an immediate count, and by CL for register
//! destinations (SDM Vol. 2B), with the interpreter's fixed values for the flags the SDM
//! leaves undefined (OF for counts above one uses the count-of-one formula, AF is cleared, CF
//! for SHL/SHR counts at or above the width is what a wider shifter produces). A zero count
//! changes no flag. RCL, RCR and CL counts on memory run on the interpreter.

use cranelift_codegen::ir::{InstBuilder, Value, condcodes::IntCC};
use iced_x86::{Mnemonic, OpKind};

use crate::flags::Lazy;
use crate::lower::{Flow, Loc};
use crate::translate::{Insn, Translator};

impl Translator<'_, '_> {
    /// Bit `k` of `v` as an i64 0 or 1.
    fn bit64(&mut self, v: Value, k: u32, size: u32) -> Value {
        let s = if k > 0 {
            self.b.ins().ushr_imm_s(v, i64::from(k))
        } else {
            v
        };
        let s = self.zext64(s, size);
        self.b.ins().band_imm_s(s, 1)
    }

    fn msb64(&mut self, v: Value, size: u32) -> Value {
        self.bit64(v, size * 8 - 1, size)
    }
}

/// Lower one shift or rotate.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    use Mnemonic::*;
    let i = &ins.i;
    if i.op_kind(1) == OpKind::Register {
        return lower_cl(t, ins);
    }
    let m = i.mnemonic();
    let size = t.osize(ins);
    let bits = size * 8;
    let dst = t.opnd(ins, 0, size);
    let count = (i.immediate(1) as u32 & 0xff) & if size == 8 { 0x3f } else { 0x1f };
    let (a, rmw) = t.read_rmw(dst);
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
                    let r = if count >= bits {
                        t.imm(size, 0)
                    } else {
                        t.b.ins().ishl_imm_s(a, i64::from(count))
                    };
                    let cf = if count <= bits {
                        t.bit64(a, bits - count, size)
                    } else {
                        zero64
                    };
                    let msb = t.msb64(r, size);
                    let of = t.b.ins().bxor(msb, cf);
                    (r, cf, of)
                }
                Shr => {
                    let r = if count >= bits {
                        t.imm(size, 0)
                    } else {
                        t.b.ins().ushr_imm_s(a, i64::from(count))
                    };
                    let cf = if count > bits {
                        zero64
                    } else {
                        t.bit64(a, count - 1, size)
                    };
                    let of = t.msb64(a, size);
                    (r, cf, of)
                }
                _ => {
                    let r = t.b.ins().sshr_imm_s(a, i64::from(count.min(bits - 1)));
                    let s =
                        t.b.ins()
                            .sshr_imm_s(a, i64::from((count - 1).min(bits - 1)));
                    let cf = t.bit64(s, 0, size);
                    (r, cf, zero64)
                }
            };
            t.write_rmw(dst, r, rmw);
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
            t.write_rmw(dst, r, rmw);
            t.set_cf_of(cf, of);
        }
    }
    Flow::Next
}

/// A shift or rotate of a register by CL. The count is known only at run time, and a zero
/// count must leave the flags alone: the flags record goes to the context on both paths and
/// the block continues with dynamic flags.
fn lower_cl(t: &mut Translator, ins: &Insn) -> Flow {
    use Mnemonic::*;
    let i = &ins.i;
    let m = i.mnemonic();
    let size = t.osize(ins);
    let bits = size * 8;
    let dst = t.opnd(ins, 0, size);
    let a = t.read(dst);
    let rcx = t.gpr(cpu::state::gpr::RCX);
    let count =
        t.b.ins()
            .band_imm_s(rcx, if size == 8 { 0x3f } else { 0x1f });
    let zero = t.b.ins().icmp_imm_s(IntCC::Equal, count, 0);
    let a64 = t.zext64(a, size);
    let one64 = t.imm64(1);
    let cm1 = t.b.ins().iadd_imm_s(count, -1);
    let (r, new_lazy) = match m {
        Shl | Sal | Shr | Sar => {
            let (r64, cf) = match m {
                Shl | Sal => {
                    let r64 = t.b.ins().ishl(a64, count);
                    // CF: bit (bits - count) of a, or 0 past the width.
                    let bits_v = t.imm64(u64::from(bits));
                    let back = t.b.ins().isub(bits_v, count);
                    let past =
                        t.b.ins()
                            .icmp_imm_s(IntCC::SignedGreaterThan, count, i64::from(bits));
                    let zero64 = t.imm64(0);
                    let back = t.b.ins().select(past, zero64, back);
                    let s = t.b.ins().ushr(a64, back);
                    let c = t.b.ins().band(s, one64);
                    let cf = t.b.ins().select(past, zero64, c);
                    (r64, cf)
                }
                Shr => {
                    let r64 = t.b.ins().ushr(a64, count);
                    let s = t.b.ins().ushr(a64, cm1);
                    (r64, t.b.ins().band(s, one64))
                }
                _ => {
                    let s64 = t.sext64(a, size);
                    let r64 = t.b.ins().sshr(s64, count);
                    let s = t.b.ins().sshr(s64, cm1);
                    (r64, t.b.ins().band(s, one64))
                }
            };
            let r = t.trunc(r64, size);
            let of = match m {
                Shl | Sal => {
                    let msb = t.msb64(r, size);
                    t.b.ins().bxor(msb, cf)
                }
                Shr => t.msb64(a, size),
                _ => t.imm64(0),
            };
            (r, crate::flags::Lazy::Shift { size, r, cf, of })
        }
        _ => {
            let amt = t.trunc(count, size);
            let r = if m == Rol {
                t.b.ins().rotl(a, amt)
            } else {
                t.b.ins().rotr(a, amt)
            };
            let msb = t.msb64(r, size);
            let (cf, of) = if m == Rol {
                let cf = t.bit64(r, 0, size);
                (cf, t.b.ins().bxor(msb, cf))
            } else {
                let next = t.bit64(r, bits - 2, size);
                (msb, t.b.ins().bxor(msb, next))
            };
            let o = t.b.ins().ishl_imm_s(of, 11);
            let bits_v = t.b.ins().bor(cf, o);
            (
                r,
                crate::flags::Lazy::PatchDyn {
                    mask: cpu::state::flags::CF | cpu::state::flags::OF,
                    bits: bits_v,
                },
            )
        }
    };
    // A zero count writes the register back unchanged (a 32-bit one is zero-extended).
    let r = t.b.ins().select(zero, a, r);
    t.write(dst, r);
    let old = t.lazy;
    let keep = t.b.create_block();
    let change = t.b.create_block();
    let join = t.b.create_block();
    t.b.ins().brif(zero, keep, &[], change, &[]);
    t.b.switch_to_block(keep);
    t.flush_lazy(old);
    t.b.ins().jump(join, &[]);
    t.b.switch_to_block(change);
    // Rotates patch CF and OF over whatever the flags were.
    if let crate::flags::Lazy::PatchDyn { mask, bits } = new_lazy {
        t.patch_flags(mask, bits);
        let l = t.lazy;
        t.flush_lazy(l);
    } else {
        t.flush_lazy(new_lazy);
    }
    t.b.ins().jump(join, &[]);
    t.b.switch_to_block(join);
    t.lazy = crate::flags::Lazy::Dynamic;
    Flow::Next
}
