//! Segment-register loads and descriptor-table access, with the protection checks of
//! SDM Vol. 3A §3.4-§3.5 and §5.5-§5.8 (MOV/POP to segment registers: Vol. 2B MOV, POP).

use super::cx::Cx;
use crate::fault::Fault;
use crate::state::{Segment, flags as fl, seg_attr, sreg};

/// Read the 8-byte descriptor named by `sel` from the GDT or LDT; #GP(sel) if it lies
/// beyond the table limit.
pub fn read_descriptor(cx: &mut Cx, sel: u16) -> Result<u64, Fault> {
    let (base, limit) = table_of(cx, sel)?;
    let off = u64::from(sel & !7);
    if off + 7 > limit {
        return Err(Fault::gp(u32::from(sel & 0xfffc)));
    }
    cx.read_sys(base.wrapping_add(off), 8)
}

/// Read the high 8 bytes of a 16-byte system descriptor (long-mode LDT/TSS/gates).
pub fn read_descriptor_high(cx: &mut Cx, sel: u16) -> Result<u64, Fault> {
    let (base, limit) = table_of(cx, sel)?;
    let off = u64::from(sel & !7) + 8;
    if off + 7 > limit {
        return Err(Fault::gp(u32::from(sel & 0xfffc)));
    }
    cx.read_sys(base.wrapping_add(off), 8)
}

fn table_of(cx: &Cx, sel: u16) -> Result<(u64, u64), Fault> {
    if sel & 4 != 0 {
        let l = &cx.st.ldtr;
        if !l.usable() || l.selector & !7 == 0 {
            return Err(Fault::gp(u32::from(sel & 0xfffc)));
        }
        Ok((l.base, u64::from(l.limit)))
    } else {
        Ok((cx.st.gdtr.base, u64::from(cx.st.gdtr.limit)))
    }
}

/// Set the accessed bit of the descriptor named by `sel` if it is clear.
pub fn set_accessed(cx: &mut Cx, sel: u16, raw: u64) -> Result<(), Fault> {
    if raw & (1 << 40) != 0 {
        return Ok(());
    }
    let (base, _) = table_of(cx, sel)?;
    let addr = base.wrapping_add(u64::from(sel & !7)) + 5;
    cx.write_sys(addr, 1, (raw >> 40) | 1)
}

/// The segment-cache contents for descriptor `raw` loaded through `sel`.
pub fn to_segment(sel: u16, raw: u64) -> Segment {
    let base = ((raw >> 16) & 0xff_ffff) | (((raw >> 56) & 0xff) << 24);
    let mut limit = ((raw & 0xffff) | (((raw >> 48) & 0xf) << 16)) as u32;
    let attr = (((raw >> 40) & 0xff) | (((raw >> 52) & 0xf) << 12)) as u32;
    if attr & seg_attr::G != 0 {
        limit = (limit << 12) | 0xfff;
    }
    Segment {
        selector: sel,
        base,
        limit,
        attr,
    }
}

fn attr_of(raw: u64) -> u32 {
    (((raw >> 40) & 0xff) | (((raw >> 52) & 0xf) << 12)) as u32
}

/// Real-mode or virtual-8086 mode segment load: base = selector * 16, limit and attributes
/// keep their cached values (which is what makes "unreal mode" work).
fn load_real(cx: &mut Cx, s: usize, sel: u16) {
    let seg = &mut cx.st.seg[s];
    seg.selector = sel;
    seg.base = u64::from(sel) << 4;
    if cx.st.rflags & fl::VM != 0 {
        seg.limit = 0xffff;
        seg.attr = seg_attr::P
            | seg_attr::S
            | seg_attr::RW
            | seg_attr::ACCESSED
            | (3 << seg_attr::DPL_SHIFT);
    }
}

fn real_mode(cx: &Cx) -> bool {
    !cx.st.protected_mode() || cx.st.rflags & fl::VM != 0
}

/// MOV/POP/LDS-style load of DS, ES, FS or GS (SS goes to `load_ss`).
pub fn load_data_seg(cx: &mut Cx, s: usize, sel: u16) -> Result<(), Fault> {
    if s == sreg::SS {
        cx.st.interrupt_shadow = true;
        return load_ss(cx, sel);
    }
    if s == sreg::CS {
        return Err(Fault::UD);
    }
    if real_mode(cx) {
        load_real(cx, s, sel);
        return Ok(());
    }
    if sel & !3 == 0 {
        // Null selector: loads fine, faults on use.
        let keep_base = if cx.st.in_64bit_mode() {
            cx.st.seg[s].base
        } else {
            0
        };
        cx.st.seg[s] = Segment {
            selector: sel,
            base: keep_base,
            limit: 0,
            attr: seg_attr::UNUSABLE,
        };
        if cx.st.in_64bit_mode() {
            cx.st.seg[s].base = 0;
        }
        return Ok(());
    }
    let err = Fault::gp(u32::from(sel & 0xfffc));
    let raw = read_descriptor(cx, sel)?;
    let a = attr_of(raw);
    let rpl = (sel & 3) as u8;
    let dpl = ((a >> seg_attr::DPL_SHIFT) & 3) as u8;
    let cpl = cx.cpl();
    if a & seg_attr::S == 0 {
        return Err(err);
    }
    let code = a & seg_attr::CODE != 0;
    if code && a & seg_attr::RW == 0 {
        return Err(err); // execute-only code
    }
    let conforming_code = code && a & seg_attr::DC != 0;
    if !conforming_code && (rpl > dpl || cpl > dpl) {
        return Err(err);
    }
    if a & seg_attr::P == 0 {
        return Err(Fault::np(u32::from(sel & 0xfffc)));
    }
    set_accessed(cx, sel, raw)?;
    cx.st.seg[s] = to_segment(sel, raw | (1 << 40));
    Ok(())
}

/// Load SS with the checks of MOV SS / POP SS / LSS.
pub fn load_ss(cx: &mut Cx, sel: u16) -> Result<(), Fault> {
    if real_mode(cx) {
        load_real(cx, sreg::SS, sel);
        return Ok(());
    }
    let cpl = cx.cpl();
    let rpl = (sel & 3) as u8;
    if sel & !3 == 0 {
        // A null SS is allowed only in 64-bit mode at CPL < 3, with RPL = CPL.
        if cx.st.in_64bit_mode() && cpl < 3 && rpl == cpl {
            cx.st.seg[sreg::SS] = null_ss(sel, cpl);
            return Ok(());
        }
        return Err(Fault::GP0);
    }
    let raw = read_descriptor(cx, sel)?;
    check_ss(raw, sel, cpl)?;
    set_accessed(cx, sel, raw)?;
    cx.st.seg[sreg::SS] = to_segment(sel, raw | (1 << 40));
    Ok(())
}

/// A null SS as loaded in 64-bit mode: usable for stack accesses, DPL = `cpl`.
pub fn null_ss(sel: u16, cpl: u8) -> Segment {
    Segment {
        selector: sel,
        base: 0,
        limit: 0xffff_ffff,
        attr: seg_attr::UNUSABLE
            | seg_attr::S
            | seg_attr::RW
            | seg_attr::P
            | (u32::from(cpl) << seg_attr::DPL_SHIFT),
    }
}

/// The checks for a stack segment descriptor at privilege `cpl`.
pub fn check_ss(raw: u64, sel: u16, cpl: u8) -> Result<(), Fault> {
    let a = attr_of(raw);
    let dpl = ((a >> seg_attr::DPL_SHIFT) & 3) as u8;
    let writable_data =
        a & (seg_attr::S | seg_attr::CODE | seg_attr::RW) == (seg_attr::S | seg_attr::RW);
    if (sel & 3) as u8 != cpl || dpl != cpl || !writable_data {
        return Err(Fault::gp(u32::from(sel & 0xfffc)));
    }
    if a & seg_attr::P == 0 {
        return Err(Fault::ss(u32::from(sel & 0xfffc)));
    }
    Ok(())
}

/// After a privilege change to an outer level, data segments the new CPL may not use are
/// nulled (SDM Vol. 2A RET, IRET: "FOR each of segment register (ES, FS, GS, and DS)").
pub fn null_inaccessible_segments(cx: &mut Cx) {
    let cpl = cx.cpl();
    for s in [sreg::ES, sreg::DS, sreg::FS, sreg::GS] {
        let seg = cx.st.seg[s];
        let conforming_code =
            seg.attr & (seg_attr::CODE | seg_attr::DC) == (seg_attr::CODE | seg_attr::DC);
        if seg.usable() && !conforming_code && seg.dpl() < cpl {
            cx.st.seg[s].selector = 0;
            cx.st.seg[s].attr |= seg_attr::UNUSABLE;
        }
    }
}
