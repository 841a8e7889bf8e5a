//! Far control transfer and privilege changes: far JMP/CALL (to code segments), far RET, IRET
//! in every mode, INT n / INT3 / INTO / INT1, SYSCALL/SYSRET, and LDS/LES/LFS/LGS/LSS
//! (SDM Vol. 2A/2B, Vol. 3A §5.8, §6.14).

use iced_x86::{Code, Instruction, MemorySize, Mnemonic, OpKind};

use super::cx::{Cx, canonical, mask};
use super::interrupt::{self, Source};
use super::segment::{
    self, check_ss, null_inaccessible_segments, read_descriptor, set_accessed, to_segment,
};
use super::stack::write_flags;

/// IRET loads RF from the popped image too (POPF never changes RF).
fn iret_flags(cx: &mut Cx, v: u64, size: u32) {
    write_flags(cx, v, size);
    if size >= 4 {
        cx.st.rflags = (cx.st.rflags & !fl::RF) | (v & fl::RF);
    }
}
use crate::fault::Fault;
use crate::state::{Segment, flags as fl, gpr, msr, seg_attr, sreg};

/// Execute one far-transfer or segment-pointer instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Retf => far_ret(cx, i),
        Iret | Iretd | Iretq => iret(cx, i),
        Int => interrupt::deliver(cx, i.immediate(0) as u8, None, Source::Software),
        Int3 => interrupt::deliver(cx, 3, None, Source::Software),
        Int1 => interrupt::deliver(cx, 1, None, Source::Icebp),
        Into => {
            if cx.st.in_64bit_mode() {
                return Err(Fault::UD);
            }
            if cx.st.rflags & fl::OF != 0 {
                interrupt::deliver(cx, 4, None, Source::Software)
            } else {
                Ok(())
            }
        }
        Syscall => syscall(cx),
        Sysret | Sysretq => sysret(cx, i),
        Lds | Les | Lfs | Lgs | Lss => {
            let s = match i.mnemonic() {
                Lds => sreg::DS,
                Les => sreg::ES,
                Lfs => sreg::FS,
                Lgs => sreg::GS,
                _ => sreg::SS,
            };
            let size = cx.op_size(i, 0);
            let (sel, v) = read_far_pointer(cx, i, size)?;
            segment::load_data_seg(cx, s, sel)?;
            cx.wr(i, 0, v)
        }
        _ => unreachable!("control::exec is dispatched only for far-transfer mnemonics"),
    }
}

/// Read the far pointer at the memory operand: a `size`-byte offset followed by a selector.
fn read_far_pointer(cx: &mut Cx, i: &Instruction, size: u32) -> Result<(u16, u64), Fault> {
    let seg = cx.mem_seg(i);
    let off = cx.ea(i);
    let v = cx.read_mem(seg, off, size)?;
    let sel = cx.read_mem(seg, off.wrapping_add(u64::from(size)) & mask(cx.asz), 2)? as u16;
    Ok((sel, v))
}

/// Operand size of a far pointer operand in bytes (offset part).
fn far_ptr(cx: &mut Cx, i: &Instruction) -> Result<(u16, u64, u32), Fault> {
    match i.op_kind(0) {
        OpKind::FarBranch16 => Ok((i.far_branch_selector(), u64::from(i.far_branch16()), 2)),
        OpKind::FarBranch32 => Ok((i.far_branch_selector(), u64::from(i.far_branch32()), 4)),
        _ => {
            let size = match i.memory_size() {
                MemorySize::SegPtr16 => 2,
                MemorySize::SegPtr32 => 4,
                _ => 8,
            };
            let (sel, v) = read_far_pointer(cx, i, size)?;
            Ok((sel, v, size))
        }
    }
}

/// Check and return the code segment a far JMP/CALL/RET lands in (same privilege for JMP and
/// CALL; call gates and task switches are not supported and raise #GP).
fn target_code_segment(cx: &mut Cx, sel: u16, for_ret: bool) -> Result<(Segment, u64), Fault> {
    let err = Fault::gp(u32::from(sel & 0xfffc));
    if sel & !3 == 0 {
        return Err(Fault::GP0);
    }
    let raw = read_descriptor(cx, sel)?;
    let seg = to_segment(sel, raw);
    if seg.attr & seg_attr::S == 0 {
        tracing::warn!(
            "far transfer through system descriptor {sel:#x} (call gate/TSS): not supported"
        );
        return Err(err);
    }
    if seg.attr & seg_attr::CODE == 0 {
        return Err(err);
    }
    let cpl = cx.cpl();
    let rpl = (sel & 3) as u8;
    let dpl = seg.dpl();
    let conforming = seg.attr & seg_attr::DC != 0;
    if for_ret {
        if rpl < cpl || (conforming && dpl > rpl) || (!conforming && dpl != rpl) {
            return Err(err);
        }
    } else if conforming {
        if dpl > cpl {
            return Err(err);
        }
    } else if rpl > cpl || dpl != cpl {
        return Err(err);
    }
    if cx.st.long_mode_active() && seg.attr & seg_attr::L != 0 && seg.attr & seg_attr::DB != 0 {
        return Err(err);
    }
    if seg.attr & seg_attr::P == 0 {
        return Err(Fault::np(u32::from(sel & 0xfffc)));
    }
    Ok((seg, raw))
}

fn code_bits(cx: &Cx, seg: &Segment) -> u32 {
    if cx.st.long_mode_active() && seg.attr & seg_attr::L != 0 {
        64
    } else if seg.attr & seg_attr::DB != 0 {
        32
    } else {
        16
    }
}

fn check_rip(cx: &Cx, seg: &Segment, rip: u64) -> Result<(), Fault> {
    if code_bits(cx, seg) == 64 {
        if !canonical(rip) {
            return Err(Fault::GP0);
        }
    } else if rip > u64::from(seg.limit) {
        return Err(Fault::GP0);
    }
    Ok(())
}

fn real_mode(cx: &Cx) -> bool {
    !cx.st.protected_mode() || cx.st.rflags & fl::VM != 0
}

fn set_cs_real(cx: &mut Cx, sel: u16) {
    let cs = &mut cx.st.seg[sreg::CS];
    cs.selector = sel;
    cs.base = u64::from(sel) << 4;
}

/// Far JMP and far CALL.
pub fn far_jmp_call(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let (sel, off, size) = far_ptr(cx, i)?;
    let call = i.mnemonic() == Mnemonic::Call;
    let old_cs = u64::from(cx.st.seg[sreg::CS].selector);
    let ret = cx.st.rip;
    if real_mode(cx) {
        if off > u64::from(cx.st.seg[sreg::CS].limit) {
            return Err(Fault::GP0);
        }
        if call {
            cx.push(old_cs, size)?;
            cx.push(ret & mask(size), size)?;
        }
        set_cs_real(cx, sel);
        cx.st.rip = off & mask(size);
        return Ok(());
    }
    let (mut seg, raw) = target_code_segment(cx, sel, false)?;
    check_rip(cx, &seg, off & mask(size))?;
    if call {
        let old_sp = cx.st.gpr[gpr::RSP];
        cx.push(old_cs, size)?;
        if let Err(f) = cx.push(ret & mask(size), size) {
            cx.st.gpr[gpr::RSP] = old_sp;
            return Err(f);
        }
    }
    set_accessed(cx, sel, raw)?;
    seg.selector = (sel & !3) | u16::from(cx.cpl());
    seg.attr |= seg_attr::ACCESSED;
    cx.st.seg[sreg::CS] = seg;
    cx.st.rip = off & mask(size);
    Ok(())
}

/// Far RET (same privilege or to an outer privilege level).
fn far_ret(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let size = match i.code() {
        Code::Retfw | Code::Retfw_imm16 => 2,
        Code::Retfd | Code::Retfd_imm16 => 4,
        _ => 8,
    };
    let imm = if i.op_count() > 0 {
        i.immediate(0) & 0xffff
    } else {
        0
    };
    let rip = cx.peek(0, size)? & mask(size);
    let sel = cx.peek(u64::from(size), size)? as u16;
    let ssz = cx.stack_size();
    if real_mode(cx) {
        if rip > u64::from(cx.st.seg[sreg::CS].limit) {
            return Err(Fault::GP0);
        }
        set_cs_real(cx, sel);
        cx.st.rip = rip;
        let sp = cx.st.gpr[gpr::RSP].wrapping_add(2 * u64::from(size) + imm);
        cx.set_reg(gpr::RSP as u8, false, ssz, sp);
        return Ok(());
    }
    let cpl = cx.cpl();
    let (mut seg, raw) = target_code_segment(cx, sel, true)?;
    let rpl = (sel & 3) as u8;
    check_rip(cx, &seg, rip)?;
    if rpl == cpl {
        set_accessed(cx, sel, raw)?;
        seg.attr |= seg_attr::ACCESSED;
        cx.st.seg[sreg::CS] = seg;
        cx.st.rip = rip;
        let sp = cx.st.gpr[gpr::RSP].wrapping_add(2 * u64::from(size) + imm);
        cx.set_reg(gpr::RSP as u8, false, ssz, sp);
        return Ok(());
    }
    // Return to an outer privilege level: SS:RSP follow the return address.
    let new_sp = cx.peek(2 * u64::from(size) + imm, size)?;
    let ss_sel = cx.peek(3 * u64::from(size) + imm, size)? as u16;
    let new_ss = load_outer_ss(cx, ss_sel, rpl, code_bits(cx, &seg) == 64)?;
    set_accessed(cx, sel, raw)?;
    seg.attr |= seg_attr::ACCESSED;
    cx.st.seg[sreg::CS] = seg;
    cx.st.seg[sreg::SS] = new_ss;
    cx.st.rip = rip;
    let nssz = cx.stack_size();
    cx.set_reg(
        gpr::RSP as u8,
        false,
        nssz.max(size),
        new_sp.wrapping_add(imm),
    );
    null_inaccessible_segments(cx);
    Ok(())
}

/// Check and build the SS for a return to privilege `rpl`.
fn load_outer_ss(cx: &mut Cx, ss_sel: u16, rpl: u8, to_64: bool) -> Result<Segment, Fault> {
    if ss_sel & !3 == 0 {
        if to_64 && rpl != 3 {
            return Ok(segment::null_ss(ss_sel, rpl));
        }
        return Err(Fault::GP0);
    }
    let raw = read_descriptor(cx, ss_sel)?;
    check_ss(raw, ss_sel, rpl)?;
    set_accessed(cx, ss_sel, raw)?;
    Ok(to_segment(ss_sel, raw | (1 << 40)))
}

/// IRET/IRETD/IRETQ.
fn iret(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let size = match i.mnemonic() {
        Mnemonic::Iret => 2,
        Mnemonic::Iretd => 4,
        _ => 8,
    };
    let ssz = cx.stack_size();
    let rip = cx.peek(0, size)?;
    let sel = cx.peek(u64::from(size), size)? as u16;
    let flags = cx.peek(2 * u64::from(size), size)?;
    if real_mode(cx) {
        if cx.st.rflags & fl::VM != 0 && cx.st.rflags & fl::IOPL != fl::IOPL {
            return Err(Fault::GP0);
        }
        if rip > u64::from(cx.st.seg[sreg::CS].limit) {
            return Err(Fault::GP0);
        }
        set_cs_real(cx, sel);
        cx.st.rip = rip;
        let sp = cx.st.gpr[gpr::RSP].wrapping_add(3 * u64::from(size));
        cx.set_reg(gpr::RSP as u8, false, ssz, sp);
        iret_flags(cx, flags, size);
        return Ok(());
    }
    if cx.st.rflags & fl::NT != 0 {
        if cx.st.long_mode_active() {
            return Err(Fault::GP0);
        }
        tracing::warn!("IRET with NT set (task return): not supported");
        return Err(Fault::gp(u32::from(cx.st.tr.selector & 0xfffc)));
    }
    let cpl = cx.cpl();
    if !cx.st.long_mode_active() && flags & fl::VM != 0 && cpl == 0 {
        tracing::warn!("IRET to virtual-8086 mode: not supported");
        return Err(Fault::GP0);
    }
    let (mut seg, raw) = target_code_segment(cx, sel, true)?;
    let rpl = (sel & 3) as u8;
    let to_64 = code_bits(cx, &seg) == 64;
    let rip = rip & mask(if to_64 { 8 } else { size });
    check_rip(cx, &seg, rip)?;
    // In 64-bit mode IRET always pops SS:RSP; elsewhere only on a privilege change.
    let pops_stack = rpl != cpl || cx.st.in_64bit_mode();
    if pops_stack {
        let new_sp = cx.peek(3 * u64::from(size), size)?;
        let ss_sel = cx.peek(4 * u64::from(size), size)? as u16;
        let new_ss = load_outer_ss(cx, ss_sel, rpl, to_64)?;
        set_accessed(cx, sel, raw)?;
        seg.attr |= seg_attr::ACCESSED;
        // Flags are written with the old CPL's rights.
        iret_flags(cx, flags, size);
        cx.st.seg[sreg::CS] = seg;
        cx.st.seg[sreg::SS] = new_ss;
        cx.st.rip = rip;
        let nssz = cx.stack_size();
        cx.set_reg(gpr::RSP as u8, false, nssz.max(size), new_sp);
        if rpl != cpl {
            null_inaccessible_segments(cx);
        }
    } else {
        set_accessed(cx, sel, raw)?;
        seg.attr |= seg_attr::ACCESSED;
        iret_flags(cx, flags, size);
        cx.st.seg[sreg::CS] = seg;
        cx.st.rip = rip;
        let sp = cx.st.gpr[gpr::RSP].wrapping_add(3 * u64::from(size));
        cx.set_reg(gpr::RSP as u8, false, ssz, sp);
    }
    Ok(())
}

/// SYSCALL (SDM Vol. 2B): 64-bit mode only on Intel processors.
fn syscall(cx: &mut Cx) -> Result<(), Fault> {
    if !cx.st.in_64bit_mode() || cx.st.efer & msr::EFER_SCE == 0 {
        return Err(Fault::UD);
    }
    let star = cx.st.msr.star;
    let sel = ((star >> 32) & 0xfffc) as u16;
    cx.st.gpr[gpr::RCX] = cx.st.rip;
    cx.st.gpr[11] = cx.st.rflags & !fl::RF;
    cx.st.rflags &= !(cx.st.msr.fmask | fl::RF);
    cx.st.rflags |= fl::FIXED1;
    cx.st.rip = cx.st.msr.lstar;
    cx.st.seg[sreg::CS] = Segment::flat_code(sel, 0, true);
    cx.st.seg[sreg::SS] = Segment::flat_data(sel + 8, 0);
    Ok(())
}

/// SYSRET/SYSRETQ back to compatibility or 64-bit user mode.
fn sysret(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    if !cx.st.in_64bit_mode() || cx.st.efer & msr::EFER_SCE == 0 {
        return Err(Fault::UD);
    }
    if cx.cpl() != 0 {
        return Err(Fault::GP0);
    }
    let to64 = i.mnemonic() == Mnemonic::Sysretq;
    let rip = if to64 {
        cx.st.gpr[gpr::RCX]
    } else {
        cx.st.gpr[gpr::RCX] & 0xffff_ffff
    };
    if to64 && !canonical(rip) {
        return Err(Fault::GP0);
    }
    let base_sel = ((cx.st.msr.star >> 48) & 0xffff) as u16;
    let cs_sel = if to64 { base_sel + 16 } else { base_sel } | 3;
    let flags = (cx.st.gpr[11] & 0x3c_7fd7) | fl::FIXED1;
    cx.st.rflags = flags & !(fl::RF | fl::VM);
    cx.st.rip = rip;
    cx.st.seg[sreg::CS] = Segment::flat_code(cs_sel, 3, to64);
    // SS selector from STAR[63:48] + 8; the cached attributes are fixed (SDM SYSRET).
    cx.st.seg[sreg::SS] = Segment::flat_data((base_sel + 8) | 3, 3);
    Ok(())
}
