//! Stack instructions: PUSH POP (registers, memory, immediates, segment registers) PUSHA POPA
//! ENTER LEAVE PUSHF POPF (SDM Vol. 2B).

use iced_x86::{Code, Instruction, Mnemonic, OpKind};

use super::cx::{Cx, mask, sreg_of};
use super::segment;
use crate::fault::Fault;
use crate::state::flags as fl;
use crate::state::{gpr, sreg};

/// Execute one stack instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let size = match i.mnemonic() {
        Pusha | Popa => 2,
        Pushad | Popad => 4,
        Enter | Leave => match i.code() {
            Code::Enterw_imm16_imm8 | Code::Leavew => 2,
            Code::Enterd_imm16_imm8 | Code::Leaved => 4,
            _ => 8,
        },
        _ => cx.stack_op_size(i),
    };
    match i.mnemonic() {
        Push => {
            let v = if i.op_kind(0) == OpKind::Register && i.op_register(0).is_segment_register() {
                u64::from(cx.st.seg[sreg_of(i.op_register(0))].selector)
            } else {
                // RSP is read before it is decremented (PUSH RSP pushes the old value).
                cx.rd(i, 0)?
            };
            cx.push(v & mask(size), size)
        }
        Pop => {
            if i.op_kind(0) == OpKind::Register && i.op_register(0).is_segment_register() {
                let s = sreg_of(i.op_register(0));
                let v = cx.peek(0, size)? as u16;
                if s == sreg::SS {
                    segment::load_ss(cx, v)?;
                    cx.st.interrupt_shadow = true;
                } else {
                    segment::load_data_seg(cx, s, v)?;
                }
                cx.pop(size)?;
                return Ok(());
            }
            let v = cx.peek(0, size)?;
            // POP with an RSP-based memory operand computes the address after the increment.
            let old_sp = cx.st.gpr[gpr::RSP];
            cx.pop(size)?;
            if let Err(f) = cx.wr(i, 0, v) {
                cx.st.gpr[gpr::RSP] = old_sp;
                return Err(f);
            }
            Ok(())
        }
        Pusha | Pushad => {
            let sp = cx.st.gpr[gpr::RSP];
            let vals = [
                cx.st.gpr[0],
                cx.st.gpr[1],
                cx.st.gpr[2],
                cx.st.gpr[3],
                sp,
                cx.st.gpr[5],
                cx.st.gpr[6],
                cx.st.gpr[7],
            ];
            let ssz = cx.stack_size();
            let bottom = sp.wrapping_sub(u64::from(size) * 8) & mask(ssz);
            let lin = cx.linear(sreg::SS, bottom, size * 8, true)?;
            cx.probe_write(lin, size * 8)?;
            for v in vals {
                cx.push(v & mask(size), size)?;
            }
            Ok(())
        }
        Popa | Popad => {
            let mut vals = [0u64; 8];
            for k in 0..8 {
                vals[7 - k] = cx.peek(u64::from(size) * k as u64, size)?;
            }
            for (r, v) in vals.iter().enumerate() {
                if r != gpr::RSP {
                    cx.set_reg(r as u8, false, size, *v);
                }
            }
            let ssz = cx.stack_size();
            let sp = cx.st.gpr[gpr::RSP].wrapping_add(u64::from(size) * 8);
            cx.set_reg(gpr::RSP as u8, false, ssz, sp);
            Ok(())
        }
        Enter => enter(cx, i, size),
        Leave => {
            let ssz = cx.stack_size();
            let bp = cx.st.gpr[gpr::RBP] & mask(ssz);
            let v = cx.read_mem(sreg::SS, bp, size)?;
            cx.set_reg(gpr::RSP as u8, false, ssz, bp.wrapping_add(u64::from(size)));
            cx.set_reg(gpr::RBP as u8, false, size, v);
            Ok(())
        }
        Pushf | Pushfd | Pushfq => {
            if cx.st.rflags & fl::VM != 0 && (cx.st.rflags & fl::IOPL) != fl::IOPL {
                return Err(Fault::GP0);
            }
            // VM and RF are pushed as zero.
            let v = cx.st.rflags & !(fl::VM | fl::RF);
            cx.push(v & mask(size), size)
        }
        Popf | Popfd | Popfq => {
            if cx.st.rflags & fl::VM != 0 && (cx.st.rflags & fl::IOPL) != fl::IOPL {
                return Err(Fault::GP0);
            }
            let v = cx.peek(0, size)?;
            cx.pop(size)?;
            write_flags(cx, v, size);
            Ok(())
        }
        _ => unreachable!("stack::exec is dispatched only for stack mnemonics"),
    }
}

/// Load RFLAGS from a POPF/IRET image of `size` bytes, honouring which bits the current
/// privilege may change (SDM Vol. 2B POPF, Table 4-16): IOPL only at CPL 0, IF only when
/// CPL <= IOPL; VM, RF, VIP and VIF are never changed by POPF.
pub fn write_flags(cx: &mut Cx, v: u64, size: u32) {
    let cpl = cx.cpl();
    let iopl = ((cx.st.rflags & fl::IOPL) >> 12) as u8;
    let mut changeable = fl::STATUS | fl::TF | fl::DF | fl::NT | fl::AC | fl::ID;
    if !cx.st.protected_mode() || cpl == 0 {
        changeable |= fl::IOPL | fl::IF;
    } else if cpl <= iopl {
        changeable |= fl::IF;
    }
    changeable &= mask(size);
    let new = (cx.st.rflags & !changeable) | (v & changeable) | fl::FIXED1;
    cx.st.rflags = new & !(1 << 3 | 1 << 5 | 1 << 15);
}

fn enter(cx: &mut Cx, i: &Instruction, size: u32) -> Result<(), Fault> {
    let alloc = i.immediate(0) & 0xffff;
    let level = i.immediate(1) & 0x1f;
    let ssz = cx.stack_size();
    let bp = cx.st.gpr[gpr::RBP];
    // Check the whole frame is writable before changing anything.
    let frame_top = cx.st.gpr[gpr::RSP].wrapping_sub(u64::from(size)) & mask(ssz);
    let lin = cx.linear(sreg::SS, frame_top, size, true)?;
    cx.probe_write(lin, size)?;
    cx.push(bp & mask(size), size)?;
    let frame = cx.st.gpr[gpr::RSP] & mask(ssz);
    if level > 0 {
        let mut b = bp;
        for _ in 1..level {
            b = b.wrapping_sub(u64::from(size));
            let v = cx.read_mem(sreg::SS, b & mask(ssz), size)?;
            cx.push(v, size)?;
        }
        cx.push(frame, size)?;
    }
    cx.set_reg(gpr::RBP as u8, false, size, frame);
    let sp = cx.st.gpr[gpr::RSP].wrapping_sub(alloc) & mask(ssz);
    let lin = cx.linear(sreg::SS, sp, 1, true)?;
    cx.probe_write(lin, 1)?;
    cx.set_reg(gpr::RSP as u8, false, ssz, sp);
    Ok(())
}
