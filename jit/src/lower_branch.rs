//! Near control transfer in 64-bit mode: JMP, Jcc, CALL (relative, register, memory), RET,
//! LOOP/LOOPE/LOOPNE/JRCXZ/JECXZ (SDM Vol. 2A/2B). Static targets end the block with chained exits; computed targets go
//! through the jump cache.

use cranelift_codegen::ir::{InstBuilder, condcodes::IntCC};
use iced_x86::ConditionCode;
use iced_x86::{Mnemonic, OpKind};

use cpu::state::gpr;

use crate::lower::{Flow, is_jcc, is_loop};
use crate::translate::{Insn, Role, Translator};

/// Lower one branch; it ends the block unless the block continues at its target.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    let i = &ins.i;
    let direct = i.op_kind(0) == OpKind::NearBranch64;
    match ins.role {
        Role::InlineJmp => return Flow::Next,
        Role::InlineCall => {
            let ret = t.imm64(i.next_ip());
            t.push64(ret);
            return Flow::Next;
        }
        Role::InlineRet { expected } => {
            // Go on inline when the return address is the one the inlined CALL pushed,
            // else leave through the jump cache like any RET.
            let rsp = t.gpr(gpr::RSP);
            let target = t.load_mem(rsp, 8, true);
            t.check_canonical(target);
            let nsp = t.b.ins().iadd_imm_s(rsp, 8);
            t.set_gpr(gpr::RSP, nsp);
            let same = t.b.ins().icmp_imm_s(IntCC::Equal, target, expected as i64);
            let other = t.b.create_block();
            let cont = t.b.create_block();
            t.b.ins().brif(same, cont, &[], other, &[]);
            t.b.set_cold_block(other);
            t.b.switch_to_block(other);
            t.jump_indirect(target);
            t.b.switch_to_block(cont);
            return Flow::Next;
        }
        Role::Normal => {}
    }
    match i.mnemonic() {
        Mnemonic::Jmp if direct => t.jump_static(i.near_branch_target()),
        Mnemonic::Jmp => {
            let op = t.opnd(ins, 0, 8);
            let target = t.read(op);
            t.check_canonical(target);
            t.jump_indirect(target);
        }
        Mnemonic::Call => {
            let ret = t.imm64(i.next_ip());
            if direct {
                t.push64(ret);
                t.jump_static(i.near_branch_target());
            } else {
                let op = t.opnd(ins, 0, 8);
                let target = t.read(op);
                t.check_canonical(target);
                t.push64(ret);
                t.jump_indirect(target);
            }
        }
        Mnemonic::Ret => {
            let rsp = t.gpr(gpr::RSP);
            let target = t.load_mem(rsp, 8, true);
            t.check_canonical(target);
            let pop = 8 + if i.op_count() > 0 {
                i.immediate(0) & 0xffff
            } else {
                0
            };
            let nsp = t.b.ins().iadd_imm_s(rsp, pop as i64);
            t.set_gpr(gpr::RSP, nsp);
            t.jump_indirect(target);
        }
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne | Mnemonic::Jrcxz | Mnemonic::Jecxz => {
            debug_assert!(is_loop(i));
            // The count register (RCX or ECX) follows the address size.
            let csize = ins.asz;
            let rcx = t.get_reg(gpr::RCX as u8, false, csize);
            let take = if matches!(i.mnemonic(), Mnemonic::Jrcxz | Mnemonic::Jecxz) {
                t.b.ins().icmp_imm_s(IntCC::Equal, rcx, 0)
            } else {
                let c = t.b.ins().iadd_imm_s(rcx, -1);
                let nz = t.b.ins().icmp_imm_s(IntCC::NotEqual, c, 0);
                let take = match i.mnemonic() {
                    Mnemonic::Loope => {
                        let z = t.cond(ConditionCode::e);
                        t.b.ins().band(nz, z)
                    }
                    Mnemonic::Loopne => {
                        let z = t.cond(ConditionCode::ne);
                        t.b.ins().band(nz, z)
                    }
                    _ => nz,
                };
                t.set_reg(gpr::RCX as u8, false, csize, c);
                take
            };
            t.jump_cond(take, i.near_branch_target(), i.next_ip());
        }
        _ => {
            debug_assert!(is_jcc(i));
            let c = t.cond(i.condition_code());
            t.jump_cond(c, i.near_branch_target(), i.next_ip());
        }
    }
    Flow::End
}
