//! Bit instructions: BT BTS BTR BTC (register and memory destinations; a register bit offset
//! on memory addresses a bit string: the operand-sized word at the operand's address plus
//! the signed offset divided by the operand width), BSF BSR (SDM Vol. 2A). As in the interpreter, BT* change only CF and
//! BSF/BSR only ZF (the SDM leaves the others undefined); a zero BSF/BSR source leaves the
//! whole destination register unchanged.

use cranelift_codegen::ir::{InstBuilder, condcodes::IntCC, types};
use iced_x86::{Mnemonic, OpKind};

use cpu::state::flags::{CF, ZF};

use crate::lower::{Flow, Loc};
use crate::translate::{Insn, Translator};

/// Lower one bit instruction.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    let i = &ins.i;
    let m = i.mnemonic();
    let size = t.osize(ins);
    let bits = size * 8;
    if matches!(m, Mnemonic::Bsf | Mnemonic::Bsr) {
        let src = t.opnd(ins, 1, size);
        let v = t.read(src);
        let zero = t.b.ins().icmp_imm_s(IntCC::Equal, v, 0);
        let idx = if m == Mnemonic::Bsf {
            t.b.ins().ctz(v)
        } else {
            let lz = t.b.ins().clz(v);
            let top = t.imm(size, u64::from(bits - 1));
            t.b.ins().isub(top, lz)
        };
        let Loc::Reg { n, high } = t.opnd(ins, 0, size).loc else {
            unreachable!("BSF/BSR always have a register destination")
        };
        let old = t.gpr(n as usize);
        let found = t.reg_merged(n, high, size, idx);
        let new = t.b.ins().select(zero, old, found);
        t.set_gpr(n as usize, new);
        let z = t.b.ins().uextend(types::I64, zero);
        let zf = t.b.ins().ishl_imm_s(z, i64::from(ZF.trailing_zeros()));
        t.patch_flags(ZF, zf);
        return Flow::Next;
    }
    let mut dst = t.opnd(ins, 0, size);
    if let (Loc::Mem { lin, ss }, OpKind::Register) = (dst.loc, i.op_kind(1)) {
        // Bit string: the word at lin + size * (offset SAR log2(bits)) (signed offset).
        let r = t.opnd(ins, 1, size);
        let off = t.read(r);
        let off = if size < 8 {
            t.b.ins().sextend(types::I64, off)
        } else {
            off
        };
        let word = t.b.ins().sshr_imm_s(off, i64::from(bits.trailing_zeros()));
        let delta = t.b.ins().ishl_imm_s(word, i64::from(size.trailing_zeros()));
        let lin = t.b.ins().iadd(lin, delta);
        dst.loc = Loc::Mem { lin, ss };
    }
    let bit = if i.op_kind(1) == OpKind::Register {
        let r = t.opnd(ins, 1, size);
        let v = t.read(r);
        t.b.ins().band_imm_s(v, i64::from(bits - 1))
    } else {
        t.imm(size, i.immediate(1) & u64::from(bits - 1))
    };
    let (v, rmw) = if m == Mnemonic::Bt {
        (t.read(dst), None)
    } else {
        t.read_rmw(dst)
    };
    let one = t.imm(size, 1);
    let mask = t.b.ins().ishl(one, bit);
    let shifted = t.b.ins().ushr(v, bit);
    let cf = t.b.ins().band_imm_s(shifted, 1);
    let cf = t.zext64(cf, size);
    let out = match m {
        Mnemonic::Bts => Some(t.b.ins().bor(v, mask)),
        Mnemonic::Btr => {
            let nm = t.b.ins().bnot(mask);
            Some(t.b.ins().band(v, nm))
        }
        Mnemonic::Btc => Some(t.b.ins().bxor(v, mask)),
        _ => None,
    };
    if let Some(out) = out {
        t.write_rmw(dst, out, rmw);
    }
    t.patch_flags(CF, cf);
    Flow::Next
}
