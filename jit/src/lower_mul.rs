//! Integer multiply: IMUL (one-, two- and three-operand forms) and MUL (SDM Vol. 2A "IMUL",
//! Vol. 2B "MUL"). CF = OF = "the product did not fit"; SF, ZF, AF, PF are left unchanged, as
//! the interpreter does (the SDM leaves them undefined).

use cranelift_codegen::ir::{InstBuilder, Value, condcodes::IntCC, types};
use iced_x86::Mnemonic;

use cpu::state::gpr;

use crate::lower::Flow;
use crate::translate::{Insn, Translator};

impl Translator<'_, '_> {
    fn set_overflow(&mut self, ovf: Value) {
        let v = self.b.ins().uextend(types::I64, ovf);
        self.set_cf_of(v, v);
    }

    /// Signed product of two `size`-byte values: (low half, high half, overflow as i8).
    fn smul(&mut self, a: Value, b: Value, size: u32) -> (Value, Value, Value) {
        if size == 8 {
            let lo = self.b.ins().imul(a, b);
            let hi = self.b.ins().smulhi(a, b);
            let sign = self.b.ins().sshr_imm_s(lo, 63);
            let ovf = self.b.ins().icmp(IntCC::NotEqual, sign, hi);
            (lo, hi, ovf)
        } else {
            let a = self.b.ins().sextend(types::I64, a);
            let b = self.b.ins().sextend(types::I64, b);
            let p = self.b.ins().imul(a, b);
            let lo = self.trunc(p, size);
            let hi64 = self.b.ins().sshr_imm_s(p, i64::from(size * 8));
            let hi = self.trunc(hi64, size);
            let back = self.b.ins().sextend(types::I64, lo);
            let ovf = self.b.ins().icmp(IntCC::NotEqual, back, p);
            (lo, hi, ovf)
        }
    }

    /// Unsigned product: (low half, high half, overflow as i8).
    fn umul(&mut self, a: Value, b: Value, size: u32) -> (Value, Value, Value) {
        if size == 8 {
            let lo = self.b.ins().imul(a, b);
            let hi = self.b.ins().umulhi(a, b);
            let ovf = self.b.ins().icmp_imm_s(IntCC::NotEqual, hi, 0);
            (lo, hi, ovf)
        } else {
            let a = self.b.ins().uextend(types::I64, a);
            let b = self.b.ins().uextend(types::I64, b);
            let p = self.b.ins().imul(a, b);
            let lo = self.trunc(p, size);
            let hi64 = self.b.ins().ushr_imm_s(p, i64::from(size * 8));
            let hi = self.trunc(hi64, size);
            let ovf = self.b.ins().icmp_imm_s(IntCC::NotEqual, hi, 0);
            (lo, hi, ovf)
        }
    }
}

/// Lower one multiply.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    let i = &ins.i;
    let size = t.osize(ins);
    if i.mnemonic() == Mnemonic::Imul && i.op_count() >= 2 {
        let dst = t.opnd(ins, 0, size);
        let (a, b) = if i.op_count() == 3 {
            let src = t.opnd(ins, 1, size);
            let a = t.read(src);
            (a, t.imm(size, i.immediate(2)))
        } else {
            let src = t.opnd(ins, 1, size);
            let b = t.read(src);
            (t.read(dst), b)
        };
        let (lo, _, ovf) = t.smul(a, b, size);
        t.write(dst, lo);
        t.set_overflow(ovf);
        return Flow::Next;
    }
    // One operand: AX = AL * r/m8, else rDX:rAX = rAX * r/m.
    let src = t.opnd(ins, 0, size);
    let b = t.read(src);
    let a = t.get_reg(gpr::RAX as u8, false, size);
    let (lo, hi, ovf) = if i.mnemonic() == Mnemonic::Mul { t.umul(a, b, size) } else { t.smul(a, b, size) };
    if size == 1 {
        let lo16 = t.b.ins().uextend(types::I16, lo);
        let hi16 = t.b.ins().uextend(types::I16, hi);
        let hi16 = t.b.ins().ishl_imm_s(hi16, 8);
        let ax = t.b.ins().bor(lo16, hi16);
        t.set_reg(gpr::RAX as u8, false, 2, ax);
    } else {
        t.set_reg(gpr::RAX as u8, false, size, lo);
        t.set_reg(gpr::RDX as u8, false, size, hi);
    }
    t.set_overflow(ovf);
    Flow::Next
}
