//! Flag instructions: CLC STC CMC CLD STD LAHF SAHF CLI (SDM Vol. 2A/2B). CLI with CPL > IOPL
//! (a #GP, or VIF with CR4.PVI) leaves the block for the interpreter; STI stays with the
//! interpreter (the interrupt shadow).

use cranelift_codegen::ir::{InstBuilder, condcodes::IntCC, types};
use iced_x86::Mnemonic;

use cpu::state::flags::{AF, CF, DF, FIXED1, IF, PF, SF, ZF};
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
        Mnemonic::Cli => {
            // 64-bit code: CPL is CS.RPL; IOPL is RFLAGS bits 12-13 (SDM Vol. 2A CLI).
            let cs = t.b.ins().uload16(
                types::I64,
                trusted(),
                t.st,
                offsets::seg_selector(cpu::state::sreg::CS),
            );
            let cpl = t.b.ins().band_imm_s(cs, 3);
            let old = t.b.ins().load(types::I64, trusted(), t.st, offsets::RFLAGS);
            let sh = t.b.ins().ushr_imm_s(old, 12);
            let iopl = t.b.ins().band_imm_s(sh, 3);
            let denied = t.b.ins().icmp(IntCC::UnsignedGreaterThan, cpl, iopl);
            let ok = t.b.create_block();
            let leave = t.interp_exit();
            t.b.ins().brif(denied, leave, &[], ok, &[]);
            t.b.switch_to_block(ok);
            let new = t.b.ins().band_imm_s(old, !(IF as i64));
            t.b.ins().store(trusted(), new, t.st, offsets::RFLAGS);
            if let Lazy::Exact(v) = t.lazy {
                let nv = t.b.ins().band_imm_s(v, !(IF as i64));
                t.lazy = Lazy::Exact(nv);
            }
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
