//! Integer multiply and divide: IMUL (one-, two- and three-operand forms), MUL, DIV, IDIV
//! (SDM Vol. 2A "DIV", "IDIV", "IMUL", Vol. 2B "MUL"). For multiplies CF = OF = "the product
//! did not fit"; SF, ZF, AF, PF are left unchanged, as the interpreter does (the SDM leaves
//! them undefined). Divides leave every flag unchanged (all undefined) and run in a helper
//! (`divide`, 128-by-64-bit arithmetic), which raises #DE on a zero divisor or a quotient
//! that does not fit.

use cranelift_codegen::ir::{InstBuilder, Value, condcodes::IntCC, types};
use iced_x86::Mnemonic;

use cpu::Fault;
use cpu::interp::cx::{mask, sext};
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

/// DIV (`signed` false) or IDIV of the double-width `hi:lo` (for bytes: `lo` is AX) by `d`,
/// `size`-byte operands: (quotient, remainder), exactly as the interpreter computes them.
pub fn divide(size: u32, signed: bool, lo: u64, hi: u64, d: u64) -> Result<(u64, u64), Fault> {
    let bits = size * 8;
    let d = d & mask(size);
    if d == 0 {
        return Err(Fault::DE);
    }
    let (lo, hi) = if size == 1 {
        (lo & 0xff, (lo >> 8) & 0xff)
    } else {
        (lo & mask(size), hi & mask(size))
    };
    if !signed {
        let n = (u128::from(hi) << bits) | u128::from(lo);
        let q = n / u128::from(d);
        if q > u128::from(mask(size)) {
            return Err(Fault::DE);
        }
        return Ok((q as u64, (n % u128::from(d)) as u64));
    }
    let n = if bits == 64 {
        ((u128::from(hi) << 64) | u128::from(lo)) as i128
    } else {
        i128::from(sext((hi << bits) | lo, size * 2) as i64)
    };
    let dv = i128::from(sext(d, size) as i64);
    let q = n.checked_div(dv).ok_or(Fault::DE)?;
    let min = -(1i128 << (bits - 1));
    let max = (1i128 << (bits - 1)) - 1;
    if q < min || q > max {
        return Err(Fault::DE);
    }
    let r = n.checked_rem(dv).ok_or(Fault::DE)?;
    Ok(((q as u64) & mask(size), (r as u64) & mask(size)))
}

fn lower_div(t: &mut Translator, ins: &Insn, size: u32) -> Flow {
    let src = t.opnd(ins, 0, size);
    let d = t.read(src);
    let d = t.zext64(d, size);
    let lo = if size == 1 {
        t.get_reg(gpr::RAX as u8, false, 2)
    } else {
        t.get_reg(gpr::RAX as u8, false, size)
    };
    let lo = t.zext64(lo, size.max(2));
    let hi = if size == 1 {
        t.imm64(0)
    } else {
        t.get_reg(gpr::RDX as u8, false, size)
    };
    let hi = t.zext64(hi, size.max(2));
    let signed = ins.i.mnemonic() == Mnemonic::Idiv;
    let info = t.imm64(u64::from(size) | if signed { 1 << 8 } else { 0 });
    let st = t.call_helper(crate::translate::Helper::Div, &[lo, hi, d, info]);
    let fault = t.fault_exit();
    let ok = t.b.create_block();
    t.b.ins().brif(st, fault, &[], ok, &[]);
    t.b.switch_to_block(ok);
    let q = t.b.ins().load(
        types::I64,
        crate::translate::trusted(),
        t.ctx,
        crate::offsets::ctx::HELPER_VAL,
    );
    let r = t.b.ins().load(
        types::I64,
        crate::translate::trusted(),
        t.ctx,
        crate::offsets::ctx::HELPER_VAL2,
    );
    if size == 1 {
        let r8 = t.b.ins().ishl_imm_s(r, 8);
        let ax = t.b.ins().bor(q, r8);
        let ax = t.trunc(ax, 2);
        t.set_reg(gpr::RAX as u8, false, 2, ax);
    } else {
        let q = t.trunc(q, size);
        let r = t.trunc(r, size);
        t.set_reg(gpr::RAX as u8, false, size, q);
        t.set_reg(gpr::RDX as u8, false, size, r);
    }
    Flow::Next
}

/// Lower one multiply or divide.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    let i = &ins.i;
    let size = t.osize(ins);
    if matches!(i.mnemonic(), Mnemonic::Div | Mnemonic::Idiv) {
        return lower_div(t, ins, size);
    }
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
    let (lo, hi, ovf) = if i.mnemonic() == Mnemonic::Mul {
        t.umul(a, b, size)
    } else {
        t.smul(a, b, size)
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_divide_matches_the_definition() {
        assert_eq!(divide(8, false, 100, 0, 7), Ok((14, 2)));
        assert_eq!(divide(8, false, 0, 1, 2), Ok((1 << 63, 0)));
        assert_eq!(divide(8, false, 0, 2, 2), Err(Fault::DE));
        assert_eq!(divide(1, false, 0x0100, 0, 2), Ok((0x80, 0)));
        assert_eq!(
            divide(4, true, (-7i32) as u32 as u64, 0xffff_ffff, 2),
            Ok(((-3i32) as u32 as u64, (-1i32) as u32 as u64))
        );
        assert_eq!(
            divide(8, true, 0, 0x8000_0000_0000_0000, u64::MAX),
            Err(Fault::DE)
        );
        assert_eq!(divide(2, true, 0, 0, 0), Err(Fault::DE));
    }
}
