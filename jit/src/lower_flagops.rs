//! Flag instructions: CLC STC CMC CLD STD LAHF SAHF (SDM Vol. 2A/2B). CLI/STI stay with the
//! interpreter (privilege checks, the interrupt shadow).

use cranelift_codegen::ir::{InstBuilder, types};
use iced_x86::Mnemonic;

use cpu::state::flags::{AF, CF, DF, FIXED1, PF, SF, ZF};
use cpu::state::gpr;

use crate::flags::Lazy;
use crate::lower::Flow;
use crate::offsets;
use crate::translate::{Insn, Translator, trusted};

const SAHF_MASK: u64 = SF | ZF | AF | PF | CF;

/// Lower one flag instruction.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    match ins.i.mnemonic() {
        Mnemonic::Clc => {
            let z = t.imm64(0);
            t.patch_flags(CF, z);
        }
        Mnemonic::Stc => {
            let one = t.imm64(CF);
            t.patch_flags(CF, one);
        }
        Mnemonic::Cmc => {
            let c = t.carry_i64();
            let n = t.b.ins().bxor_imm_s(c, 1);
            t.patch_flags(CF, n);
        }
        Mnemonic::Cld | Mnemonic::Std => {
            // DF is not a status flag: it lives in the guest state's RFLAGS, and in an exact
            // record if there is one.
            let set = ins.i.mnemonic() == Mnemonic::Std;
            let old = t.b.ins().load(types::I64, trusted(), t.st, offsets::RFLAGS);
            let new = if set {
                t.b.ins().bor_imm_s(old, DF as i64)
            } else {
                t.b.ins().band_imm_s(old, !(DF as i64))
            };
            t.b.ins().store(trusted(), new, t.st, offsets::RFLAGS);
            if let Lazy::Exact(v) = t.lazy {
                let nv = if set {
                    t.b.ins().bor_imm_s(v, DF as i64)
                } else {
                    t.b.ins().band_imm_s(v, !(DF as i64))
                };
                t.lazy = Lazy::Exact(nv);
            }
        }
        Mnemonic::Lahf => {
            let f = t.rflags_now();
            let m = t.b.ins().band_imm_s(f, SAHF_MASK as i64);
            let v = t.b.ins().bor_imm_s(m, FIXED1 as i64);
            let ah = t.b.ins().ireduce(types::I8, v);
            t.set_reg(gpr::RAX as u8, true, 1, ah);
        }
        _ => {
            // SAHF
            let rax = t.gpr(gpr::RAX);
            let ah = t.b.ins().ushr_imm_s(rax, 8);
            let bits = t.b.ins().band_imm_s(ah, SAHF_MASK as i64);
            t.patch_flags(SAHF_MASK, bits);
        }
    }
    Flow::Next
}
