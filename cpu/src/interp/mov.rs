//! Data movement: MOV (including segment, control and debug registers), MOVSX MOVZX MOVSXD,
//! CBW CWDE CDQE CWD CDQ CQO, LEA, XLAT, SETcc, CMOVcc (SDM Vol. 2A/2B).

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::cx::{Cx, mask, sext};
use super::{cond, segment, system};
use crate::fault::Fault;
use crate::state::gpr;

/// Execute one data-movement instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Mov => mov(cx, i),
        Movzx => {
            let v = cx.rd(i, 1)?;
            cx.wr(i, 0, v)
        }
        Movsx | Movsxd => {
            let src_size = cx.op_size(i, 1);
            let v = sext(cx.rd(i, 1)?, src_size);
            cx.wr(i, 0, v)
        }
        Lea => {
            let v = cx.ea(i);
            cx.wr(i, 0, v)
        }
        Cbw | Cwde | Cdqe => {
            let size = match i.mnemonic() {
                Cbw => 2,
                Cwde => 4,
                _ => 8,
            };
            let v = sext(cx.reg(gpr::RAX as u8, false, size / 2), size / 2);
            cx.set_reg(gpr::RAX as u8, false, size, v);
            Ok(())
        }
        Cwd | Cdq | Cqo => {
            let size = match i.mnemonic() {
                Cwd => 2,
                Cdq => 4,
                _ => 8,
            };
            let a = cx.reg(gpr::RAX as u8, false, size);
            let v = if a >> (size * 8 - 1) & 1 != 0 {
                u64::MAX
            } else {
                0
            };
            cx.set_reg(gpr::RDX as u8, false, size, v);
            Ok(())
        }
        Xlatb => {
            let base = cx.get_gpr(i.memory_base());
            let al = cx.st.gpr[gpr::RAX] & 0xff;
            let off = base.wrapping_add(al) & mask(cx.asz);
            let v = cx.read_mem(cx.mem_seg(i), off, 1)?;
            cx.set_reg(gpr::RAX as u8, false, 1, v);
            Ok(())
        }
        m if is_setcc(m) => {
            let v = u64::from(cond(cx.st.rflags, i.condition_code()));
            cx.wr(i, 0, v)
        }
        _ => {
            // CMOVcc: the source is read (and may fault) whether or not the move happens; a
            // 32-bit destination is zero-extended even when the condition is false.
            let v = cx.rd(i, 1)?;
            let dst = i.op_register(0);
            if cond(cx.st.rflags, i.condition_code()) {
                cx.set_gpr(dst, v);
            } else if dst.size() == 4 {
                let old = cx.get_gpr(dst);
                cx.set_gpr(dst, old);
            }
            Ok(())
        }
    }
}

fn is_setcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Seto | Setno
            | Setb
            | Setae
            | Sete
            | Setne
            | Setbe
            | Seta
            | Sets
            | Setns
            | Setp
            | Setnp
            | Setl
            | Setge
            | Setle
            | Setg
    )
}

fn mov(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let r0 = if i.op_kind(0) == OpKind::Register {
        i.op_register(0)
    } else {
        Register::None
    };
    let r1 = if i.op_kind(1) == OpKind::Register {
        i.op_register(1)
    } else {
        Register::None
    };
    if r0.is_segment_register() {
        let v = cx.rd(i, 1)? as u16;
        return segment::load_data_seg(cx, super::cx::sreg_of(r0), v);
    }
    if r1.is_segment_register() {
        let v = u64::from(cx.st.seg[super::cx::sreg_of(r1)].selector);
        // A register destination of 32/64 bits gets the selector zero-extended; a memory
        // destination is always 16 bits.
        return cx.wr(i, 0, v);
    }
    if r0.is_cr() || r1.is_cr() || r0.is_dr() || r1.is_dr() {
        return system::mov_cr_dr(cx, i, r0, r1);
    }
    let v = cx.rd(i, 1)?;
    cx.wr(i, 0, v)
}
