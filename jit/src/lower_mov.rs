//! Data movement: MOV MOVZX MOVSX MOVSXD LEA XCHG (registers) CBW CWDE CDQE CWD CDQ CQO
//! SETcc CMOVcc BSWAP, and the no-operation forms (NOP, PAUSE, ENDBR64) (SDM Vol. 2A/2B).

use cranelift_codegen::ir::InstBuilder;
use iced_x86::Mnemonic;

use cpu::state::gpr;

use crate::lower::{Flow, Loc, is_cmovcc, is_setcc};
use crate::translate::{Insn, Translator};

/// Lower one data-movement instruction.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    use Mnemonic::*;
    let i = &ins.i;
    let m = i.mnemonic();
    match m {
        Nop | Pause | Endbr64 | Prefetchnta | Prefetcht0 | Prefetcht1 | Prefetcht2 | Prefetchw => {}
        Mov if i.op_kind(1) == iced_x86::OpKind::Register
            && i.op_register(1).is_segment_register() =>
        {
            // MOV r, Sreg: the selector, zero-extended to a 32/64-bit register (SDM Vol. 2B
            // MOV, "Move Segment Register").
            let n = (i.op_register(1) as usize) - (iced_x86::Register::ES as usize);
            let sel = t.b.ins().uload16(
                cranelift_codegen::ir::types::I64,
                crate::translate::trusted(),
                t.st,
                crate::offsets::seg_selector(n),
            );
            let dst = t.opnd(ins, 0, 8);
            let v = match dst.size {
                8 => sel,
                s => t.b.ins().ireduce(crate::translate::ty(s), sel),
            };
            t.write(dst, v);
        }
        Mov => {
            let size = t.osize(ins);
            let dst = t.opnd(ins, 0, size);
            let src = t.opnd(ins, 1, size);
            let v = t.read(src);
            t.write(dst, v);
        }
        Movzx | Movsx | Movsxd => {
            let size = t.osize(ins);
            let dst = t.opnd(ins, 0, size);
            let src = t.opnd(ins, 1, size);
            let v = t.read(src);
            let v = if src.size == size {
                v
            } else if src.size > size {
                t.b.ins().ireduce(crate::translate::ty(size), v)
            } else if m == Movzx {
                t.b.ins().uextend(crate::translate::ty(size), v)
            } else {
                t.b.ins().sextend(crate::translate::ty(size), v)
            };
            t.write(dst, v);
        }
        Lea => {
            let size = t.osize(ins);
            let dst = t.opnd(ins, 0, size);
            let a = t.ea(ins);
            let v = t.trunc(a, size);
            t.write(dst, v);
        }
        Xchg => {
            let size = t.osize(ins);
            let a_op = t.opnd(ins, 0, size);
            let b_op = t.opnd(ins, 1, size);
            let a = t.read(a_op);
            let b = t.read(b_op);
            t.write(a_op, b);
            t.write(b_op, a);
        }
        Cbw | Cwde | Cdqe => {
            let size = match m {
                Cbw => 2,
                Cwde => 4,
                _ => 8,
            };
            let half = t.get_reg(gpr::RAX as u8, false, size / 2);
            let v = t.b.ins().sextend(crate::translate::ty(size), half);
            t.set_reg(gpr::RAX as u8, false, size, v);
        }
        Cwd | Cdq | Cqo => {
            let size = match m {
                Cwd => 2,
                Cdq => 4,
                _ => 8,
            };
            let a = t.get_reg(gpr::RAX as u8, false, size);
            let v = t.b.ins().sshr_imm_s(a, i64::from(size * 8 - 1));
            t.set_reg(gpr::RDX as u8, false, size, v);
        }
        Bswap => {
            let size = t.osize(ins);
            let op = t.opnd(ins, 0, size);
            let v = t.read(op);
            let r = t.b.ins().bswap(v);
            t.write(op, r);
        }
        _ if is_setcc(m) => {
            let dst = t.opnd(ins, 0, 1);
            let c = t.cond(i.condition_code());
            t.write(dst, c);
        }
        _ if is_cmovcc(m) => {
            // The source is read (and may fault) whatever the condition; a 32-bit destination
            // is zero-extended even when the move does not happen.
            let size = t.osize(ins);
            let dst = t.opnd(ins, 0, size);
            let src = t.opnd(ins, 1, size);
            let v = t.read(src);
            let c = t.cond(i.condition_code());
            let old = t.read(dst);
            let r = t.b.ins().select(c, v, old);
            debug_assert!(matches!(dst.loc, Loc::Reg { .. }));
            t.write(dst, r);
        }
        _ => unreachable!("lower_mov is dispatched only for supported data-movement mnemonics"),
    }
    Flow::Next
}
