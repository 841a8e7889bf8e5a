//! Stack instructions in 64-bit mode: PUSH (register, immediate, memory), POP (register),
//! PUSHFQ, LEAVE (SDM Vol. 2B). Stack accesses go through SS: their faults are #SS(0) or #PF.

use cranelift_codegen::ir::{InstBuilder, Value};
use iced_x86::{Mnemonic, OpKind};

use cpu::state::{flags as fl, gpr};

use crate::lower::Flow;
use crate::translate::{Insn, Translator};

impl Translator<'_, '_> {
    /// Push a 64-bit value: store below RSP (may fault), then move RSP.
    pub fn push64(&mut self, v: Value) {
        let rsp = self.gpr(gpr::RSP);
        let nsp = self.b.ins().iadd_imm_s(rsp, -8);
        self.store_mem(nsp, 8, true, v);
        self.set_gpr(gpr::RSP, nsp);
    }
}

/// Lower one stack instruction.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    let i = &ins.i;
    match i.mnemonic() {
        Mnemonic::Push => {
            let v = if i.op_kind(0) == OpKind::Memory || i.op_kind(0) == OpKind::Register {
                let op = t.opnd(ins, 0, 8);
                t.read(op)
            } else {
                t.imm64(i.immediate(0))
            };
            t.push64(v);
        }
        Mnemonic::Pop => {
            let rsp = t.gpr(gpr::RSP);
            let v = t.load_mem(rsp, 8, true);
            let nsp = t.b.ins().iadd_imm_s(rsp, 8);
            t.set_gpr(gpr::RSP, nsp);
            let dst = t.opnd(ins, 0, 8);
            t.write(dst, v);
        }
        Mnemonic::Leave => {
            let rbp = t.gpr(gpr::RBP);
            let v = t.load_mem(rbp, 8, true);
            let nsp = t.b.ins().iadd_imm_s(rbp, 8);
            t.set_gpr(gpr::RSP, nsp);
            t.set_gpr(gpr::RBP, v);
        }
        _ => {
            // PUSHFQ: VM and RF are pushed as zero.
            let f = t.rflags_now();
            let v = t.b.ins().band_imm_s(f, !((fl::VM | fl::RF) as i64));
            t.push64(v);
        }
    }
    Flow::Next
}
