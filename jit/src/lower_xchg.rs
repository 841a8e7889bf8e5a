//! Exchanges: XCHG with memory, XADD, CMPXCHG (SDM Vol. 2A "CMPXCHG", Vol. 2B "XADD",
//! "XCHG"), with or without LOCK: a vCPU runs one instruction at a time, so a read-modify-
//! write is atomic for the guest anyway. Memory is written before any register changes.

use cranelift_codegen::ir::{InstBuilder, condcodes::IntCC};
use iced_x86::{Mnemonic, OpKind};

use cpu::state::gpr;

use crate::flags::{ArithOp, Lazy};
use crate::lower::{Flow, Loc};
use crate::translate::{Insn, Translator};

/// Lower one exchange.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    let i = &ins.i;
    let size = t.osize(ins);
    match i.mnemonic() {
        Mnemonic::Xchg => {
            // Memory operand first, so it is written before the register changes.
            let (m, r) = if i.op_kind(1) == OpKind::Memory {
                (1, 0)
            } else {
                (0, 1)
            };
            let a_op = t.opnd(ins, m, size);
            let b_op = t.opnd(ins, r, size);
            let a = t.read(a_op);
            let b = t.read(b_op);
            t.write(a_op, b);
            t.write(b_op, a);
        }
        Mnemonic::Xadd => {
            let dst = t.opnd(ins, 0, size);
            let src = t.opnd(ins, 1, size);
            let (a, rmw) = t.read_rmw(dst);
            let b = t.read(src);
            let sum = t.b.ins().iadd(a, b);
            if let Loc::Mem { .. } = dst.loc {
                t.write_rmw(dst, sum, rmw);
                t.write(src, a);
            } else {
                // SRC <- DEST, then DEST <- sum: with the same register twice, the sum wins.
                t.write(src, a);
                t.write(dst, sum);
            }
            t.lazy = Lazy::Arith {
                op: ArithOp::Add,
                size,
                a,
                b,
                r: sum,
            };
        }
        _ => {
            // CMPXCHG: compare rAX with the destination.
            let dst = t.opnd(ins, 0, size);
            let src = t.opnd(ins, 1, size);
            let new = t.read(src);
            let (d, rmw) = t.read_rmw(dst);
            let acc = t.get_reg(gpr::RAX as u8, false, size);
            let r = t.b.ins().isub(acc, d);
            let eq = t.b.ins().icmp(IntCC::Equal, acc, d);
            let rax_old = t.gpr(gpr::RAX);
            let rax_failed = t.reg_merged(gpr::RAX as u8, false, size, d);
            let rax_new = t.b.ins().select(eq, rax_old, rax_failed);
            match dst.loc {
                Loc::Mem { .. } => {
                    // The destination is written either way (the old value on a failure).
                    let stored = t.b.ins().select(eq, new, d);
                    t.write_rmw(dst, stored, rmw);
                    t.set_gpr(gpr::RAX, rax_new);
                }
                Loc::Reg { n, high } => {
                    // A register destination is written only on success.
                    let old = t.gpr(n as usize);
                    let written = t.reg_merged(n, high, size, new);
                    let dst_new = t.b.ins().select(eq, written, old);
                    t.set_gpr(gpr::RAX, rax_new);
                    t.set_gpr(n as usize, dst_new);
                }
                Loc::Imm(_) => {}
            }
            t.lazy = Lazy::Arith {
                op: ArithOp::Sub,
                size,
                a: acc,
                b: d,
                r,
            };
        }
    }
    Flow::Next
}
