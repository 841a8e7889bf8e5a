//! Integer arithmetic and logic: ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG NOT
//! (SDM Vol. 2A/2B), with register, immediate and memory operands of every width.

use cranelift_codegen::ir::InstBuilder;
use iced_x86::Mnemonic;

use crate::flags::{ArithOp, Lazy};
use crate::lower::Flow;
use crate::translate::{Insn, Translator};

/// Lower one ALU instruction.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    use Mnemonic::*;
    let m = ins.i.mnemonic();
    let size = t.osize(ins);
    let dst = t.opnd(ins, 0, size);
    match m {
        Inc | Dec => {
            let (a, rmw) = t.read_rmw(dst);
            // The carry INC/DEC keep: computed now only if it is known cheaply.
            let cf = if let Lazy::Dynamic = t.lazy {
                None
            } else {
                Some(t.carry_i64())
            };
            let r = if m == Inc {
                t.b.ins().iadd_imm_s(a, 1)
            } else {
                t.b.ins().iadd_imm_s(a, -1)
            };
            t.write_rmw(dst, r, rmw);
            t.lazy = Lazy::IncDec {
                dec: m == Dec,
                size,
                a,
                r,
                cf,
            };
        }
        Neg => {
            let (a, rmw) = t.read_rmw(dst);
            let zero = t.imm(size, 0);
            let r = t.b.ins().isub(zero, a);
            t.write_rmw(dst, r, rmw);
            t.lazy = Lazy::Arith {
                op: ArithOp::Sub,
                size,
                a: zero,
                b: a,
                r,
            };
        }
        Not => {
            let (a, rmw) = t.read_rmw(dst);
            let r = t.b.ins().bnot(a);
            t.write_rmw(dst, r, rmw);
        }
        _ => {
            let src = t.opnd(ins, 1, size);
            let b = t.read(src);
            let writes = !matches!(m, Cmp | Test);
            let (a, rmw) = if writes {
                t.read_rmw(dst)
            } else {
                (t.read(dst), None)
            };
            let (r, lazy) = match m {
                Add => {
                    let r = t.b.ins().iadd(a, b);
                    (
                        r,
                        Lazy::Arith {
                            op: ArithOp::Add,
                            size,
                            a,
                            b,
                            r,
                        },
                    )
                }
                Sub | Cmp => {
                    let r = t.b.ins().isub(a, b);
                    (
                        r,
                        Lazy::Arith {
                            op: ArithOp::Sub,
                            size,
                            a,
                            b,
                            r,
                        },
                    )
                }
                Adc | Sbb => {
                    let c64 = t.carry_i64();
                    let c = t.trunc(c64, size);
                    let (r, op) = if m == Adc {
                        let s = t.b.ins().iadd(a, b);
                        (t.b.ins().iadd(s, c), ArithOp::Adc)
                    } else {
                        let s = t.b.ins().isub(a, b);
                        (t.b.ins().isub(s, c), ArithOp::Sbb)
                    };
                    (r, Lazy::Arith { op, size, a, b, r })
                }
                And | Test => {
                    let r = t.b.ins().band(a, b);
                    (r, Lazy::Logic { size, r })
                }
                Or => {
                    let r = t.b.ins().bor(a, b);
                    (r, Lazy::Logic { size, r })
                }
                _ => {
                    let r = t.b.ins().bxor(a, b);
                    (r, Lazy::Logic { size, r })
                }
            };
            if writes {
                t.write_rmw(dst, r, rmw);
            }
            t.lazy = lazy;
        }
    }
    Flow::Next
}
