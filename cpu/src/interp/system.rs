//! System instructions: HLT, NOP/PAUSE/fences, IN/OUT with the I/O permission check, CPUID,
//! RDTSC/RDTSCP, RDMSR/WRMSR, descriptor-table registers (LGDT LIDT LLDT LTR SGDT SIDT SLDT
//! STR), MOV to/from control and debug registers, SMSW LMSW CLTS, LAR LSL VERR VERW, SWAPGS,
//! INVLPG, cache control, UD0/UD1/UD2 (SDM Vol. 2, Vol. 3A §2.5-§2.8, §18.3 (I/O bitmap)).

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::cx::{Cx, canonical, mask};
use super::segment::{read_descriptor, read_descriptor_high, to_segment};
use crate::cpuid;
use crate::fault::Fault;
use crate::state::{Segment, cr, flags as fl, gpr, msr, seg_attr, sreg};

fn require_cpl0(cx: &Cx) -> Result<(), Fault> {
    if cx.st.protected_mode() && cx.cpl() != 0 {
        return Err(Fault::GP0);
    }
    Ok(())
}

/// Execute one system instruction.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Hlt => {
            require_cpl0(cx)?;
            cx.st.halted = true;
            Ok(())
        }
        Nop | Pause | Lfence | Sfence | Mfence | Prefetchnta | Prefetcht0 | Prefetcht1
        | Prefetcht2 | Prefetchw | Endbr32 | Endbr64 => Ok(()),
        Clflush | Clflushopt => {
            // Checks the address like a byte read; caches are not modelled.
            cx.op(i, 0, false).map(|_| ())
        }
        Wbinvd | Invd => require_cpl0(cx),
        Ud0 | Ud1 | Ud2 => Err(Fault::UD),
        In => {
            let port = cx.rd(i, 1)? as u16;
            let size = i.op_register(0).size() as u32;
            check_io(cx, port, size)?;
            let mut buf = [0u8; 4];
            cx.io.pio_read(port, &mut buf[..size as usize]);
            cx.misc.io_done = true;
            cx.set_gpr(i.op_register(0), u64::from(u32::from_le_bytes(buf)));
            Ok(())
        }
        Out => {
            let port = cx.rd(i, 0)? as u16;
            let size = i.op_register(1).size() as u32;
            check_io(cx, port, size)?;
            let v = cx.get_gpr(i.op_register(1)) as u32;
            cx.io.pio_write(port, &v.to_le_bytes()[..size as usize]);
            cx.misc.io_done = true;
            Ok(())
        }
        Cpuid => {
            let r = cpuid::cpuid(cx.st.gpr[gpr::RAX] as u32, cx.st.gpr[gpr::RCX] as u32);
            cx.st.gpr[gpr::RAX] = u64::from(r[0]);
            cx.st.gpr[gpr::RBX] = u64::from(r[1]);
            cx.st.gpr[gpr::RCX] = u64::from(r[2]);
            cx.st.gpr[gpr::RDX] = u64::from(r[3]);
            Ok(())
        }
        Rdtsc | Rdtscp => {
            if cx.st.cr4 & cr::CR4_TSD != 0 && cx.st.protected_mode() && cx.cpl() != 0 {
                return Err(Fault::GP0);
            }
            let t = tsc(cx);
            cx.st.gpr[gpr::RAX] = t & 0xffff_ffff;
            cx.st.gpr[gpr::RDX] = t >> 32;
            if i.mnemonic() == Rdtscp {
                cx.st.gpr[gpr::RCX] = cx.st.msr.tsc_aux & 0xffff_ffff;
            }
            Ok(())
        }
        Rdmsr => {
            require_cpl0(cx)?;
            let v = read_msr(cx, cx.st.gpr[gpr::RCX] as u32)?;
            cx.st.gpr[gpr::RAX] = v & 0xffff_ffff;
            cx.st.gpr[gpr::RDX] = v >> 32;
            Ok(())
        }
        Wrmsr => {
            require_cpl0(cx)?;
            let v = (cx.st.gpr[gpr::RDX] << 32) | (cx.st.gpr[gpr::RAX] & 0xffff_ffff);
            write_msr(cx, cx.st.gpr[gpr::RCX] as u32, v)
        }
        Lgdt | Lidt => {
            require_cpl0(cx)?;
            let seg = cx.mem_seg(i);
            let off = cx.ea(i);
            let limit = cx.read_mem(seg, off, 2)? as u16;
            let bsize = if cx.st.in_64bit_mode() { 8 } else { 4 };
            let mut base = cx.read_mem(seg, off.wrapping_add(2) & mask(cx.asz), bsize)?;
            if cx.st.in_64bit_mode() && !canonical(base) {
                return Err(Fault::GP0);
            }
            if !cx.st.in_64bit_mode() && cx.op_size_of_table(i) == 2 {
                base &= 0xff_ffff;
            }
            let t = if i.mnemonic() == Lgdt {
                &mut cx.st.gdtr
            } else {
                &mut cx.st.idtr
            };
            t.base = base;
            t.limit = limit;
            Ok(())
        }
        Sgdt | Sidt => {
            let t = if i.mnemonic() == Sgdt {
                cx.st.gdtr
            } else {
                cx.st.idtr
            };
            let seg = cx.mem_seg(i);
            let off = cx.ea(i);
            let bsize = if cx.st.in_64bit_mode() { 8 } else { 4 };
            let lin = cx.linear(seg, off, 2 + bsize, true)?;
            cx.probe_write(lin, 2 + bsize)?;
            cx.write_mem(seg, off, 2, u64::from(t.limit))?;
            cx.write_mem(seg, off.wrapping_add(2) & mask(cx.asz), bsize, t.base)
        }
        Sldt | Str => {
            if !cx.st.protected_mode() || cx.st.rflags & fl::VM != 0 {
                return Err(Fault::UD);
            }
            let sel = if i.mnemonic() == Sldt {
                cx.st.ldtr.selector
            } else {
                cx.st.tr.selector
            };
            cx.wr(i, 0, u64::from(sel))
        }
        Lldt | Ltr => {
            if !cx.st.protected_mode() || cx.st.rflags & fl::VM != 0 {
                return Err(Fault::UD);
            }
            require_cpl0(cx)?;
            let sel = cx.rd(i, 0)? as u16;
            if i.mnemonic() == Lldt {
                lldt(cx, sel)
            } else {
                ltr(cx, sel)
            }
        }
        Smsw => {
            let v = cx.st.cr0 & mask(cx.op_size(i, 0).max(2));
            cx.wr(i, 0, v)
        }
        Lmsw => {
            require_cpl0(cx)?;
            let v = cx.rd(i, 0)? & 0xf;
            // LMSW can set PE but never clear it.
            let keep_pe = cx.st.cr0 & cr::CR0_PE;
            cx.st.cr0 = (cx.st.cr0 & !0xf) | v | keep_pe;
            Ok(())
        }
        Clts => {
            require_cpl0(cx)?;
            cx.st.cr0 &= !cr::CR0_TS;
            Ok(())
        }
        Lar | Lsl | Verr | Verw => access_check(cx, i),
        Swapgs => {
            if !cx.st.in_64bit_mode() {
                return Err(Fault::UD);
            }
            require_cpl0(cx)?;
            std::mem::swap(&mut cx.st.seg[sreg::GS].base, &mut cx.st.msr.kernel_gs_base);
            Ok(())
        }
        Invlpg => {
            require_cpl0(cx)?;
            let seg = cx.mem_seg(i);
            let off = cx.ea(i);
            let base = if cx.st.in_64bit_mode() && seg < sreg::FS {
                0
            } else {
                cx.st.seg[seg].base
            };
            let lin = base.wrapping_add(off);
            let lin = if cx.st.long_mode_active() {
                lin
            } else {
                lin & 0xffff_ffff
            };
            cx.tlb.flush_page(lin);
            Ok(())
        }
        _ => unreachable!("system::exec is dispatched only for system mnemonics"),
    }
}

impl Cx<'_> {
    /// Operand size of LGDT/LIDT (16-bit operand size loads a 24-bit base).
    fn op_size_of_table(&self, i: &Instruction) -> u32 {
        use iced_x86::Code;
        match i.code() {
            Code::Lgdt_m1632_16 | Code::Lidt_m1632_16 => 2,
            _ => 4,
        }
    }
}

/// The guest TSC: nanoseconds since the vCPU started (a 1 GHz clock) plus the offset the
/// guest wrote.
pub fn tsc(cx: &Cx) -> u64 {
    let ns = cx
        .misc
        .tsc_origin
        .map(|o| o.elapsed().as_nanos() as u64)
        .unwrap_or(0);
    ns.wrapping_add(cx.st.msr.tsc_offset)
}

/// I/O permission: CPL <= IOPL, else the TSS I/O bitmap must allow every byte of the access.
pub(crate) fn check_io(cx: &mut Cx, port: u16, size: u32) -> Result<(), Fault> {
    if !cx.st.protected_mode() {
        return Ok(());
    }
    let iopl = ((cx.st.rflags & fl::IOPL) >> 12) as u8;
    if cx.st.rflags & fl::VM == 0 && cx.cpl() <= iopl {
        return Ok(());
    }
    let tr = cx.st.tr;
    let tss32 = tr.attr & 0xf == 0xb || tr.attr & 0xf == 0x9;
    if !tss32 || tr.limit < 0x67 {
        return Err(Fault::GP0);
    }
    let map = cx.read_sys(tr.base + 0x66, 2)?;
    let byte = map + u64::from(port / 8);
    if byte + 1 > u64::from(tr.limit) {
        return Err(Fault::GP0);
    }
    let bits = cx.read_sys(tr.base + byte, 2)?;
    let need = ((1u64 << size) - 1) << (port % 8);
    if bits & need != 0 {
        return Err(Fault::GP0);
    }
    Ok(())
}

/// RDMSR for the MSRs vx models; others raise #GP(0) as on hardware.
pub fn read_msr(cx: &Cx, index: u32) -> Result<u64, Fault> {
    let m = &cx.st.msr;
    Ok(match index {
        msr::IA32_TSC => tsc(cx),
        msr::IA32_APIC_BASE => m.apic_base,
        msr::IA32_MISC_ENABLE => m.misc_enable,
        msr::IA32_SYSENTER_CS => m.sysenter_cs,
        msr::IA32_SYSENTER_ESP => m.sysenter_esp,
        msr::IA32_SYSENTER_EIP => m.sysenter_eip,
        msr::IA32_PAT => m.pat,
        msr::IA32_EFER => cx.st.efer,
        msr::IA32_STAR => m.star,
        msr::IA32_LSTAR => m.lstar,
        msr::IA32_CSTAR => m.cstar,
        msr::IA32_FMASK => m.fmask,
        msr::IA32_FS_BASE => cx.st.seg[sreg::FS].base,
        msr::IA32_GS_BASE => cx.st.seg[sreg::GS].base,
        msr::IA32_KERNEL_GS_BASE => m.kernel_gs_base,
        msr::IA32_TSC_AUX => m.tsc_aux,
        msr::IA32_UCODE_REV => 0,
        msr::IA32_FEATURE_CONTROL => 1, // locked, VMX off
        msr::IA32_ARCH_CAPABILITIES => crate::cpuid::ARCH_CAPABILITIES,
        msr::IA32_MTRRCAP => crate::cpuid::MTRRCAP,
        msr::IA32_MTRR_DEF_TYPE => m.mtrr_def_type,
        _ => match mtrr_slot(index) {
            Some(k) => m.mtrr[k],
            None => cx.io.msr_read(index, tsc(cx)).ok_or(Fault::GP0)?,
        },
    })
}

/// WRMSR for the MSRs vx models; others (and reserved bits) raise #GP(0).
pub fn write_msr(cx: &mut Cx, index: u32, v: u64) -> Result<(), Fault> {
    let need_canonical = matches!(
        index,
        msr::IA32_LSTAR
            | msr::IA32_CSTAR
            | msr::IA32_FS_BASE
            | msr::IA32_GS_BASE
            | msr::IA32_KERNEL_GS_BASE
            | msr::IA32_SYSENTER_ESP
            | msr::IA32_SYSENTER_EIP
    );
    if need_canonical && !canonical(v) {
        return Err(Fault::GP0);
    }
    match index {
        msr::IA32_TSC => {
            let now = tsc(cx).wrapping_sub(cx.st.msr.tsc_offset);
            cx.st.msr.tsc_offset = v.wrapping_sub(now);
        }
        msr::IA32_APIC_BASE => cx.st.msr.apic_base = v,
        msr::IA32_MISC_ENABLE => cx.st.msr.misc_enable = v,
        msr::IA32_SYSENTER_CS => cx.st.msr.sysenter_cs = v & 0xffff_ffff,
        msr::IA32_SYSENTER_ESP => cx.st.msr.sysenter_esp = v,
        msr::IA32_SYSENTER_EIP => cx.st.msr.sysenter_eip = v,
        msr::IA32_PAT => {
            // Each of the eight entries must be a valid memory type (0, 1, 4, 5, 6, 7).
            if (0..8).any(|k| matches!((v >> (k * 8)) & 0xff, 2 | 3 | 8..=0xff)) {
                return Err(Fault::GP0);
            }
            cx.st.msr.pat = v;
        }
        msr::IA32_EFER => {
            let allowed = msr::EFER_SCE | msr::EFER_LME | msr::EFER_LMA | msr::EFER_NXE;
            if v & !allowed != 0 {
                return Err(Fault::GP0);
            }
            let paging = cx.st.cr0 & cr::CR0_PG != 0;
            if paging && (v ^ cx.st.efer) & msr::EFER_LME != 0 {
                return Err(Fault::GP0);
            }
            // LMA is read-only: it follows LME and CR0.PG.
            cx.st.efer = (v & !msr::EFER_LMA) | (cx.st.efer & msr::EFER_LMA);
            cx.tlb.flush();
        }
        msr::IA32_STAR => cx.st.msr.star = v,
        msr::IA32_LSTAR => cx.st.msr.lstar = v,
        msr::IA32_CSTAR => cx.st.msr.cstar = v,
        msr::IA32_FMASK => cx.st.msr.fmask = v & 0xffff_ffff,
        msr::IA32_FS_BASE => cx.st.seg[sreg::FS].base = v,
        msr::IA32_GS_BASE => cx.st.seg[sreg::GS].base = v,
        msr::IA32_KERNEL_GS_BASE => cx.st.msr.kernel_gs_base = v,
        msr::IA32_TSC_AUX => cx.st.msr.tsc_aux = v & 0xffff_ffff,
        // Writing 0 before CPUID to read the microcode revision is the documented sequence.
        msr::IA32_UCODE_REV => {}
        msr::IA32_MTRR_DEF_TYPE => {
            // Type (bits 0-7, a valid memory type), FE (10), E (11).
            if v & !0xcff != 0 || matches!(v & 0xff, 2 | 3 | 8..=0xff) {
                return Err(Fault::GP0);
            }
            cx.st.msr.mtrr_def_type = v;
        }
        _ => match mtrr_slot(index) {
            Some(k) => cx.st.msr.mtrr[k] = v,
            None => {
                if !cx.io.msr_write(index, v, tsc(cx)) {
                    return Err(Fault::GP0);
                }
            }
        },
    }
    Ok(())
}

/// The slot in `MsrState::mtrr` of a fixed-range or variable-range MTRR (SDM Vol. 3A
/// §11.11.2): the 11 fixed-range registers, then PHYSBASE/PHYSMASK pairs for the variable
/// ranges `MTRRCAP` advertises. Memory types are stored, never enforced (vx has no caches).
fn mtrr_slot(index: u32) -> Option<usize> {
    const FIXED: [u32; 11] = [
        0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
    ];
    if let Some(k) = FIXED.iter().position(|&f| f == index) {
        return Some(k);
    }
    let vcnt = (crate::cpuid::MTRRCAP & 0xff) as u32;
    (0x200..0x200 + 2 * vcnt)
        .contains(&index)
        .then(|| 11 + (index - 0x200) as usize)
}

/// CR0 bits a guest may set.
const CR0_VALID: u64 = cr::CR0_PE
    | cr::CR0_MP
    | cr::CR0_EM
    | cr::CR0_TS
    | cr::CR0_ET
    | cr::CR0_NE
    | cr::CR0_WP
    | cr::CR0_AM
    | cr::CR0_NW
    | cr::CR0_CD
    | cr::CR0_PG;
/// CR4 bits vx supports.
const CR4_VALID: u64 = cr::CR4_VME
    | cr::CR4_PVI
    | cr::CR4_TSD
    | cr::CR4_DE
    | cr::CR4_PSE
    | cr::CR4_PAE
    | cr::CR4_MCE
    | cr::CR4_PGE
    | cr::CR4_PCE
    | cr::CR4_OSFXSR
    | cr::CR4_OSXMMEXCPT;

/// Write CR0 with the checks of MOV CR0 (SDM Vol. 2B MOV—Move to/from Control Registers).
pub fn write_cr0(cx: &mut Cx, v: u64) -> Result<(), Fault> {
    let v = v | cr::CR0_ET;
    if v & !CR0_VALID != 0 && cx.st.long_mode_active() {
        return Err(Fault::GP0);
    }
    let v = v & CR0_VALID;
    if (v & cr::CR0_PG != 0 && v & cr::CR0_PE == 0) || (v & cr::CR0_NW != 0 && v & cr::CR0_CD == 0)
    {
        return Err(Fault::GP0);
    }
    let old = cx.st.cr0;
    let enabling_pg = v & cr::CR0_PG != 0 && old & cr::CR0_PG == 0;
    let disabling_pg = v & cr::CR0_PG == 0 && old & cr::CR0_PG != 0;
    if enabling_pg && cx.st.efer & msr::EFER_LME != 0 {
        if cx.st.cr4 & cr::CR4_PAE == 0 || cx.st.seg[sreg::CS].attr & seg_attr::L != 0 {
            return Err(Fault::GP0);
        }
        cx.st.efer |= msr::EFER_LMA;
    }
    if disabling_pg && cx.st.long_mode_active() {
        if cx.st.in_64bit_mode() {
            return Err(Fault::GP0);
        }
        cx.st.efer &= !msr::EFER_LMA;
    }
    cx.st.cr0 = v;
    if (old ^ v) & (cr::CR0_PG | cr::CR0_WP | cr::CR0_PE) != 0 {
        cx.tlb.flush();
    }
    Ok(())
}

/// Write CR4 with its checks.
pub fn write_cr4(cx: &mut Cx, v: u64) -> Result<(), Fault> {
    if v & !CR4_VALID != 0 {
        return Err(Fault::GP0);
    }
    if cx.st.long_mode_active() && v & cr::CR4_PAE == 0 {
        return Err(Fault::GP0);
    }
    cx.st.cr4 = v;
    cx.tlb.flush();
    Ok(())
}

/// MOV to or from CR0/CR2/CR3/CR4/CR8 and DR0-DR7.
pub fn mov_cr_dr(cx: &mut Cx, i: &Instruction, r0: Register, r1: Register) -> Result<(), Fault> {
    if cx.st.rflags & fl::VM != 0 {
        return Err(Fault::GP0);
    }
    require_cpl0(cx)?;
    let to_ctl = r0.is_cr() || r0.is_dr();
    let ctl = if to_ctl { r0 } else { r1 };
    if ctl.is_dr() {
        let mut n = ctl as usize - Register::DR0 as usize;
        if n == 4 || n == 5 {
            if cx.st.cr4 & cr::CR4_DE != 0 {
                return Err(Fault::UD);
            }
            n += 2;
        }
        if n > 7 {
            return Err(Fault::UD);
        }
        if to_ctl {
            let v = cx.get_gpr(r1);
            if n >= 6 && v >> 32 != 0 {
                return Err(Fault::GP0);
            }
            cx.st.dr[n] = match n {
                6 => v | 0xffff_0ff0,
                7 => (v | 0x400) & !0x1000,
                _ => v,
            };
        } else {
            let v = cx.st.dr[n];
            cx.set_gpr(r0, v);
        }
        return Ok(());
    }
    let n = ctl as usize - Register::CR0 as usize;
    if to_ctl {
        let v = cx.get_gpr(r1);
        match n {
            0 => write_cr0(cx, v)?,
            2 => cx.st.cr2 = v,
            3 => {
                if cx.st.long_mode_active() && v >> crate::cpuid::PHYS_ADDR_BITS != 0 {
                    return Err(Fault::GP0);
                }
                cx.st.cr3 = v;
                cx.tlb.flush();
            }
            4 => write_cr4(cx, v)?,
            8 => {
                if v & !0xf != 0 {
                    return Err(Fault::GP0);
                }
                cx.st.cr8 = v;
            }
            _ => return Err(Fault::UD),
        }
    } else {
        let v = match n {
            0 => cx.st.cr0,
            2 => cx.st.cr2,
            3 => cx.st.cr3,
            4 => cx.st.cr4,
            8 => cx.st.cr8,
            _ => return Err(Fault::UD),
        };
        cx.set_gpr(r0, v);
    }
    let _ = i;
    Ok(())
}

fn lldt(cx: &mut Cx, sel: u16) -> Result<(), Fault> {
    if sel & !3 == 0 {
        cx.st.ldtr = Segment {
            selector: sel,
            base: 0,
            limit: 0,
            attr: seg_attr::UNUSABLE,
        };
        return Ok(());
    }
    if sel & 4 != 0 {
        return Err(Fault::gp(u32::from(sel & 0xfffc)));
    }
    let raw = read_descriptor(cx, sel)?;
    let mut seg = to_segment(sel, raw);
    if seg.attr & (seg_attr::S | 0xf) != 2 {
        return Err(Fault::gp(u32::from(sel & 0xfffc)));
    }
    if seg.attr & seg_attr::P == 0 {
        return Err(Fault::np(u32::from(sel & 0xfffc)));
    }
    if cx.st.long_mode_active() {
        let hi = read_descriptor_high(cx, sel)?;
        seg.base |= (hi & 0xffff_ffff) << 32;
    }
    cx.st.ldtr = seg;
    Ok(())
}

fn ltr(cx: &mut Cx, sel: u16) -> Result<(), Fault> {
    if sel & !3 == 0 || sel & 4 != 0 {
        return Err(Fault::gp(u32::from(sel & 0xfffc)));
    }
    let raw = read_descriptor(cx, sel)?;
    let mut seg = to_segment(sel, raw);
    let ty = seg.attr & (seg_attr::S | 0xf);
    let ok = if cx.st.long_mode_active() {
        ty == 9
    } else {
        ty == 9 || ty == 1
    };
    if !ok {
        return Err(Fault::gp(u32::from(sel & 0xfffc)));
    }
    if seg.attr & seg_attr::P == 0 {
        return Err(Fault::np(u32::from(sel & 0xfffc)));
    }
    if cx.st.long_mode_active() {
        let hi = read_descriptor_high(cx, sel)?;
        seg.base |= (hi & 0xffff_ffff) << 32;
    }
    // Mark the descriptor busy.
    let addr = cx.st.gdtr.base.wrapping_add(u64::from(sel & !7)) + 5;
    cx.write_sys(addr, 1, (raw >> 40) | 2)?;
    seg.attr |= 2;
    cx.st.tr = seg;
    Ok(())
}

/// LAR, LSL, VERR, VERW: report through ZF whether the selector is accessible.
fn access_check(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    if !cx.st.protected_mode() || cx.st.rflags & fl::VM != 0 {
        return Err(Fault::UD);
    }
    let src = if matches!(i.mnemonic(), Mnemonic::Lar | Mnemonic::Lsl) {
        1
    } else {
        0
    };
    let sel = cx.rd(i, src)? as u16;
    let desc = if sel & !3 == 0 {
        None
    } else {
        read_descriptor(cx, sel).ok()
    };
    let cpl = cx.cpl();
    let ok_and_val = desc.and_then(|raw| {
        let seg = to_segment(sel, raw);
        let a = seg.attr;
        let dpl = seg.dpl();
        let conforming_code = a & (seg_attr::S | seg_attr::CODE | seg_attr::DC)
            == (seg_attr::S | seg_attr::CODE | seg_attr::DC);
        if !conforming_code && (dpl < cpl || dpl < (sel & 3) as u8) {
            return None;
        }
        let sys_ok = |valid: &[u32]| valid.contains(&(a & 0xf));
        match i.mnemonic() {
            Mnemonic::Lar => {
                if a & seg_attr::S == 0
                    && !sys_ok(if cx.st.long_mode_active() {
                        &[2, 9, 0xb, 0xc]
                    } else {
                        &[1, 2, 3, 4, 5, 9, 0xb, 0xc]
                    })
                {
                    return None;
                }
                Some(raw >> 32 & 0x00f0_ff00)
            }
            Mnemonic::Lsl => {
                if a & seg_attr::S == 0
                    && !sys_ok(if cx.st.long_mode_active() {
                        &[2, 9, 0xb]
                    } else {
                        &[1, 2, 3, 9, 0xb]
                    })
                {
                    return None;
                }
                Some(u64::from(seg.limit))
            }
            Mnemonic::Verr => {
                let readable =
                    a & seg_attr::S != 0 && (a & seg_attr::CODE == 0 || a & seg_attr::RW != 0);
                readable.then_some(0)
            }
            _ => {
                let writable = a & (seg_attr::S | seg_attr::CODE | seg_attr::RW)
                    == (seg_attr::S | seg_attr::RW);
                writable.then_some(0)
            }
        }
    });
    match ok_and_val {
        Some(v) => {
            cx.st.rflags |= fl::ZF;
            if src == 1 {
                let size = cx.op_size(i, 0);
                if i.op_kind(0) == OpKind::Register {
                    cx.set_gpr(i.op_register(0), v & mask(size));
                }
            }
        }
        None => cx.st.rflags &= !fl::ZF,
    }
    Ok(())
}
