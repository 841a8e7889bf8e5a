//! Near control transfer: Jcc JMP CALL RET (near forms), LOOP LOOPE LOOPNE, JCXZ JECXZ JRCXZ
//! (SDM Vol. 2A/2B). Far forms go to `control`.

use iced_x86::{Code, Instruction, Mnemonic, OpKind};

use super::cx::{Cx, canonical, mask};
use super::{cond, control};
use crate::fault::Fault;
use crate::state::flags::ZF;
use crate::state::gpr;

/// Check a near-branch target: canonical in 64-bit mode, within CS limit otherwise.
pub fn check_target(cx: &Cx, target: u64) -> Result<(), Fault> {
    if cx.st.in_64bit_mode() {
        if !canonical(target) {
            return Err(Fault::GP0);
        }
    } else if target > u64::from(cx.st.seg[crate::state::sreg::CS].limit) {
        return Err(Fault::GP0);
    }
    Ok(())
}

fn near_target(cx: &mut Cx, i: &Instruction) -> Result<u64, Fault> {
    match i.op_kind(0) {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            Ok(i.near_branch_target())
        }
        _ => cx.rd(i, 0),
    }
}

fn is_far(i: &Instruction) -> bool {
    matches!(i.op_kind(0), OpKind::FarBranch16 | OpKind::FarBranch32)
        || (i.op_kind(0) == OpKind::Memory
            && matches!(
                i.memory_size(),
                iced_x86::MemorySize::SegPtr16
                    | iced_x86::MemorySize::SegPtr32
                    | iced_x86::MemorySize::SegPtr64
            ))
}

/// Execute one near branch.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Jmp | Call if is_far(i) => control::far_jmp_call(cx, i),
        Jmp => {
            let size = cx.branch_size(i);
            let t = near_target(cx, i)? & mask(size);
            check_target(cx, t)?;
            cx.jump(t, size);
            Ok(())
        }
        Call => {
            let size = cx.branch_size(i);
            let t = near_target(cx, i)? & mask(size);
            check_target(cx, t)?;
            let ret = cx.st.rip;
            cx.push(ret & mask(size), size)?;
            cx.jump(t, size);
            Ok(())
        }
        Ret => {
            let size = match i.code() {
                Code::Retnw | Code::Retnw_imm16 => 2,
                Code::Retnd | Code::Retnd_imm16 => 4,
                _ => 8,
            };
            let t = cx.peek(0, size)?;
            check_target(cx, t)?;
            cx.pop(size)?;
            if i.op_count() > 0 {
                let ssz = cx.stack_size();
                let sp = cx.st.gpr[gpr::RSP].wrapping_add(i.immediate(0) & 0xffff);
                cx.set_reg(gpr::RSP as u8, false, ssz, sp);
            }
            cx.jump(t, size);
            Ok(())
        }
        Loop | Loope | Loopne | Jcxz | Jecxz | Jrcxz => {
            // The count register (CX, ECX or RCX) follows the address size.
            let csize = cx.asz;
            let rcx = cx.reg(gpr::RCX as u8, false, csize);
            let mut new_rcx = None;
            let take = match i.mnemonic() {
                Jcxz | Jecxz | Jrcxz => rcx == 0,
                m => {
                    let c = rcx.wrapping_sub(1) & mask(csize);
                    new_rcx = Some(c);
                    let zf = cx.st.rflags & ZF != 0;
                    c != 0
                        && match m {
                            Loope => zf,
                            Loopne => !zf,
                            _ => true,
                        }
                }
            };
            if take {
                let size = cx.branch_size(i);
                let t = i.near_branch_target() & mask(size);
                check_target(cx, t)?;
                cx.jump(t, size);
            }
            if let Some(c) = new_rcx {
                cx.set_reg(gpr::RCX as u8, false, csize, c);
            }
            Ok(())
        }
        _ => {
            if cond(cx.st.rflags, i.condition_code()) {
                let size = cx.branch_size(i);
                let t = i.near_branch_target() & mask(size);
                check_target(cx, t)?;
                cx.jump(t, size);
            }
            Ok(())
        }
    }
}
