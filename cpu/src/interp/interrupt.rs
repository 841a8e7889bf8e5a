//! Exception and interrupt delivery: the real-mode IVT, protected-mode IDT gates (16/32-bit
//! interrupt and trap gates, with privilege changes through the TSS), IA-32e 64-bit gates with
//! IST stacks, and double/triple fault escalation (SDM Vol. 3A §6.10-§6.15, §7.7).

use super::cx::{Cx, canonical};
use super::segment::{check_ss, null_ss, read_descriptor, set_accessed, to_segment};
use crate::fault::{Fault, FaultClass, class_of, vector};
use crate::state::{Segment, flags as fl, gpr, seg_attr, sreg};

/// Where an event comes from: it changes privilege checks and the error code's EXT bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An exception raised by the processor.
    Exception,
    /// INT n, INT3, INTO (gate DPL is checked against CPL).
    Software,
    /// INT1 (ICEBP): a software-generated #DB that skips the DPL check.
    Icebp,
    /// An external interrupt or NMI.
    External,
}

/// Deliver exception `f`, escalating to #DF and then to a triple fault (returned as `Err`)
/// when delivery itself faults.
pub fn deliver_exception(cx: &mut Cx, f: Fault) -> Result<(), Fault> {
    if f.vector == vector::PF {
        cx.st.cr2 = f.addr;
    }
    let first = match deliver(cx, f.vector, f.code, Source::Exception) {
        Ok(()) => return Ok(()),
        Err(second) => second,
    };
    let (c1, c2) = (class_of(f.vector), class_of(first.vector));
    if c1 == FaultClass::DoubleFault {
        return Err(first);
    }
    let double = matches!(
        (c1, c2),
        (FaultClass::Contributory, FaultClass::Contributory)
            | (FaultClass::PageFault, FaultClass::Contributory)
            | (FaultClass::PageFault, FaultClass::PageFault)
    );
    let next = if double {
        Fault {
            vector: vector::DF,
            code: Some(0),
            addr: 0,
        }
    } else {
        first
    };
    if next.vector == vector::PF {
        cx.st.cr2 = next.addr;
    }
    match deliver(cx, next.vector, next.code, Source::Exception) {
        Ok(()) => Ok(()),
        Err(third) if next.vector == vector::DF => Err(third),
        Err(third) => {
            let df = Fault {
                vector: vector::DF,
                code: Some(0),
                addr: 0,
            };
            if class_of(third.vector) == FaultClass::Benign {
                deliver_exception(cx, third)
            } else {
                deliver(cx, df.vector, df.code, Source::Exception).map_err(|_| df)
            }
        }
    }
}

/// Deliver interrupt or exception `vec` with optional error `code`. RIP must already hold the
/// return address (the faulting instruction for faults, the next one for traps and INT n).
pub fn deliver(cx: &mut Cx, vec: u8, code: Option<u32>, src: Source) -> Result<(), Fault> {
    cx.st.halted = false;
    if !cx.st.protected_mode() {
        return deliver_real(cx, vec);
    }
    if cx.st.rflags & fl::VM != 0 {
        tracing::warn!("interrupt {vec} in virtual-8086 mode: not supported, raising #GP");
        return Err(Fault::GP0);
    }
    if cx.st.long_mode_active() {
        deliver_long(cx, vec, code, src)
    } else {
        deliver_legacy(cx, vec, code, src)
    }
}

/// The RFLAGS image an event pushes: fault-class exceptions push RF = 1 so that the
/// restarted instruction does not re-trigger an instruction breakpoint (SDM Vol. 3A
/// §17.3.1.1); traps, aborts, software interrupts and external interrupts push RF as is.
fn pushed_flags(rflags: u64, vec: u8, src: Source) -> u64 {
    let fault = matches!(
        vec,
        vector::DE
            | vector::BR
            | vector::UD
            | vector::NM
            | vector::TS
            | vector::NP
            | vector::SS
            | vector::GP
            | vector::PF
            | vector::MF
            | vector::AC
            | vector::XM
    );
    if src == Source::Exception && fault {
        rflags | fl::RF
    } else {
        rflags
    }
}

fn ext(src: Source) -> u32 {
    u32::from(matches!(src, Source::External | Source::Exception))
}

fn idt_error(vec: u8, src: Source) -> u32 {
    (u32::from(vec) << 3) | 2 | ext(src)
}

/// Real mode: IVT entry at IDTR.base + 4*vec; push FLAGS, CS, IP.
fn deliver_real(cx: &mut Cx, vec: u8) -> Result<(), Fault> {
    let off = u64::from(vec) * 4;
    if off + 3 > u64::from(cx.st.idtr.limit) {
        return Err(Fault::GP0);
    }
    let ent = cx.read_sys(cx.st.idtr.base.wrapping_add(off), 4)?;
    let flags = cx.st.rflags & 0xffff;
    cx.push(flags, 2)?;
    cx.push(u64::from(cx.st.seg[sreg::CS].selector), 2)?;
    cx.push(cx.st.rip & 0xffff, 2)?;
    let sel = (ent >> 16) as u16;
    cx.st.seg[sreg::CS].selector = sel;
    cx.st.seg[sreg::CS].base = u64::from(sel) << 4;
    cx.st.rip = ent & 0xffff;
    cx.st.rflags &= !(fl::IF | fl::TF | fl::AC | fl::RF);
    Ok(())
}

/// Check a gate's DPL for software interrupts and its present bit.
fn check_gate(cx: &Cx, gate: u64, vec: u8, src: Source) -> Result<(), Fault> {
    let dpl = ((gate >> 45) & 3) as u8;
    if src == Source::Software && dpl < cx.cpl() {
        return Err(Fault::gp(idt_error(vec, src)));
    }
    if gate & (1 << 47) == 0 {
        return Err(Fault::np(idt_error(vec, src)));
    }
    Ok(())
}

/// Load and check the target code segment of a gate. Returns the new segment.
fn gate_target_cs(cx: &mut Cx, sel: u16, src: Source, long: bool) -> Result<Segment, Fault> {
    let e = ext(src);
    if sel & !3 == 0 {
        return Err(Fault::gp(e));
    }
    let raw = read_descriptor(cx, sel).map_err(|f| {
        if f.vector == vector::GP {
            Fault::gp(u32::from(sel & 0xfffc) | e)
        } else {
            f
        }
    })?;
    let seg = to_segment(sel, raw);
    let code = seg.attr & (seg_attr::S | seg_attr::CODE) == (seg_attr::S | seg_attr::CODE);
    if !code
        || seg.dpl() > cx.cpl()
        || (long && (seg.attr & seg_attr::L == 0 || seg.attr & seg_attr::DB != 0))
    {
        return Err(Fault::gp(u32::from(sel & 0xfffc) | e));
    }
    if seg.attr & seg_attr::P == 0 {
        return Err(Fault::np(u32::from(sel & 0xfffc) | e));
    }
    set_accessed(cx, sel, raw)?;
    Ok(seg)
}

fn deliver_legacy(cx: &mut Cx, vec: u8, code: Option<u32>, src: Source) -> Result<(), Fault> {
    let off = u64::from(vec) * 8;
    if off + 7 > u64::from(cx.st.idtr.limit) {
        return Err(Fault::gp(idt_error(vec, src)));
    }
    let gate = cx.read_sys(cx.st.idtr.base.wrapping_add(off), 8)?;
    let ty = (gate >> 40) & 0x1f;
    let bits32 = match ty {
        0x06 | 0x07 => false,
        0x0e | 0x0f => true,
        0x05 => {
            tracing::warn!("task gate for vector {vec}: task switching is not supported");
            return Err(Fault::gp(idt_error(vec, src)));
        }
        _ => return Err(Fault::gp(idt_error(vec, src))),
    };
    check_gate(cx, gate, vec, src)?;
    let trap = ty & 1 != 0;
    let sel = (gate >> 16) as u16;
    let target = (gate & 0xffff) | ((gate >> 32) & 0xffff_0000);
    let mut cs = gate_target_cs(cx, sel, src, false)?;
    let cpl = cx.cpl();
    let conforming = cs.attr & seg_attr::DC != 0;
    let new_cpl = if conforming { cpl } else { cs.dpl() };
    let size = if bits32 { 4 } else { 2 };
    if target > u64::from(cs.limit) {
        return Err(Fault::GP0);
    }
    let old_flags = pushed_flags(cx.st.rflags, vec, src);
    let old_cs = cx.st.seg[sreg::CS];
    let old_ss = cx.st.seg[sreg::SS];
    let old_sp = cx.st.gpr[gpr::RSP];
    if new_cpl < cpl {
        // Inter-privilege: new SS:ESP from the TSS.
        let (ss_sel, sp) = tss_stack_legacy(cx, new_cpl)?;
        let raw = read_descriptor(cx, ss_sel).map_err(|_| Fault::ts(u32::from(ss_sel & 0xfffc)))?;
        check_ss(raw, ss_sel, new_cpl).map_err(|f| {
            if f.vector == vector::GP {
                Fault::ts(u32::from(ss_sel & 0xfffc))
            } else {
                f
            }
        })?;
        set_accessed(cx, ss_sel, raw)?;
        cx.st.seg[sreg::SS] = to_segment(ss_sel, raw | (1 << 40));
        cs.selector = (cs.selector & !3) | u16::from(new_cpl);
        cx.st.seg[sreg::CS] = cs;
        cx.st.gpr[gpr::RSP] = sp;
        let r = (|| {
            cx.push(u64::from(old_ss.selector), size)?;
            cx.push(old_sp & 0xffff_ffff, size)?;
            Ok(())
        })();
        if let Err(f) = r {
            cx.st.seg[sreg::CS] = old_cs;
            cx.st.seg[sreg::SS] = old_ss;
            cx.st.gpr[gpr::RSP] = old_sp;
            return Err(f);
        }
    } else {
        cs.selector = (cs.selector & !3) | u16::from(cpl);
        cx.st.seg[sreg::CS] = cs;
    }
    let frame = [
        old_flags & 0xffff_ffff,
        u64::from(old_cs.selector),
        cx.st.rip & 0xffff_ffff,
    ];
    finish_delivery(
        cx,
        &frame,
        code,
        size,
        (old_cs, old_ss, old_sp),
        target,
        trap,
    )
}

/// Push the interrupt frame `frame` (then the error code, if any) on the new stack and enter
/// the handler at `target`; if a push faults, restore CS, SS and RSP from `saved` so the
/// fault is delivered from the state before the event.
fn finish_delivery(
    cx: &mut Cx,
    frame: &[u64],
    code: Option<u32>,
    size: u32,
    saved: (Segment, Segment, u64),
    target: u64,
    trap: bool,
) -> Result<(), Fault> {
    let r = (|| {
        for &v in frame {
            cx.push(v, size)?;
        }
        if let Some(c) = code {
            cx.push(u64::from(c), size)?;
        }
        Ok(())
    })();
    if let Err(f) = r {
        cx.st.seg[sreg::CS] = saved.0;
        cx.st.seg[sreg::SS] = saved.1;
        cx.st.gpr[gpr::RSP] = saved.2;
        return Err(f);
    }
    cx.st.rip = target;
    cx.st.rflags &= !(fl::TF | fl::NT | fl::VM | fl::RF);
    if !trap {
        cx.st.rflags &= !fl::IF;
    }
    Ok(())
}

/// SS:ESP for privilege level `pl` from a 32-bit TSS.
fn tss_stack_legacy(cx: &mut Cx, pl: u8) -> Result<(u16, u64), Fault> {
    let tr = cx.st.tr;
    let off = 4 + u64::from(pl) * 8;
    if off + 5 > u64::from(tr.limit) {
        return Err(Fault::ts(u32::from(tr.selector & 0xfffc)));
    }
    let sp = cx.read_sys(tr.base.wrapping_add(off), 4)?;
    let ss = cx.read_sys(tr.base.wrapping_add(off + 4), 2)? as u16;
    Ok((ss, sp))
}

/// RSPn (n < 3) or ISTn (n = 3 + ist - 1) from the 64-bit TSS.
fn tss_read64(cx: &mut Cx, off: u64) -> Result<u64, Fault> {
    let tr = cx.st.tr;
    if off + 7 > u64::from(tr.limit) {
        return Err(Fault::ts(u32::from(tr.selector & 0xfffc)));
    }
    cx.read_sys(tr.base.wrapping_add(off), 8)
}

fn deliver_long(cx: &mut Cx, vec: u8, code: Option<u32>, src: Source) -> Result<(), Fault> {
    let off = u64::from(vec) * 16;
    if off + 15 > u64::from(cx.st.idtr.limit) {
        return Err(Fault::gp(idt_error(vec, src)));
    }
    let base = cx.st.idtr.base.wrapping_add(off);
    let gate = cx.read_sys(base, 8)?;
    let high = cx.read_sys(base.wrapping_add(8), 8)?;
    let ty = (gate >> 40) & 0x1f;
    if ty != 0x0e && ty != 0x0f {
        return Err(Fault::gp(idt_error(vec, src)));
    }
    check_gate(cx, gate, vec, src)?;
    let trap = ty & 1 != 0;
    let sel = (gate >> 16) as u16;
    let target = (gate & 0xffff) | ((gate >> 32) & 0xffff_0000) | (high << 32);
    let ist = (gate >> 32) & 7;
    let mut cs = gate_target_cs(cx, sel, src, true)?;
    if !canonical(target) {
        return Err(Fault::gp(ext(src)));
    }
    let cpl = cx.cpl();
    let conforming = cs.attr & seg_attr::DC != 0;
    let new_cpl = if conforming { cpl } else { cs.dpl() };
    let old_flags = pushed_flags(cx.st.rflags, vec, src);
    let old_cs = cx.st.seg[sreg::CS];
    let old_ss = cx.st.seg[sreg::SS];
    let old_sp = cx.st.gpr[gpr::RSP];
    let mut sp = if ist != 0 {
        tss_read64(cx, 0x24 + (ist - 1) * 8)?
    } else if new_cpl < cpl {
        tss_read64(cx, 4 + u64::from(new_cpl) * 8)?
    } else {
        old_sp
    };
    if !canonical(sp) {
        return Err(Fault::ss(ext(src)));
    }
    sp &= !0xf;
    cs.selector = (cs.selector & !3) | u16::from(new_cpl);
    cx.st.seg[sreg::CS] = cs;
    if new_cpl < cpl {
        cx.st.seg[sreg::SS] = null_ss(u16::from(new_cpl), new_cpl);
    }
    cx.st.gpr[gpr::RSP] = sp;
    let frame = [
        u64::from(old_ss.selector),
        old_sp,
        old_flags,
        u64::from(old_cs.selector),
        cx.st.rip,
    ];
    finish_delivery(cx, &frame, code, 8, (old_cs, old_ss, old_sp), target, trap)
}
