//! x87 control instructions and state save/restore (SDM Vol. 2: FNINIT, FNCLEX, FLDCW,
//! FNSTCW, FNSTSW, FFREE, FINCSTP, FDECSTP, FNSTENV/FLDENV, FNSAVE/FRSTOR, FXSAVE/FXRSTOR;
//! layouts in Vol. 1 §8.1.10 Figures 8-9 to 8-12 and Vol. 1 §10.5.1 Table 10-2).

use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind};

use super::f80::Class;
use super::{dec_top, free, fsw, get, inc_top, read_bytes, top, write_bytes};
use crate::fault::Fault;
use crate::interp::cx::Cx;
use crate::state::cr;

/// MXCSR bits FXRSTOR accepts (DAZ supported); the rest are reserved (#GP).
pub const MXCSR_MASK: u32 = 0xffff;

/// FNINIT state.
fn init(cx: &mut Cx) {
    let f = &mut cx.st.fpu;
    f.fcw = 0x037f;
    f.fsw = 0;
    f.ftw = 0;
    f.fop = 0;
    f.fip = 0;
    f.fdp = 0;
}

/// The two-bit tag of physical register `p` from its contents (SDM Vol. 1 §8.1.7).
fn full_tag(cx: &Cx, p: u8) -> u16 {
    if cx.st.fpu.ftw >> p & 1 == 0 {
        return 3;
    }
    let v = get(cx, p.wrapping_sub(top(cx)) & 7);
    match v.class() {
        Class::Zero => 1,
        Class::Normal => 0,
        _ => 2,
    }
}

/// The full 16-bit tag word.
fn full_ftw(cx: &Cx) -> u16 {
    (0..8).fold(0, |w, p| w | full_tag(cx, p) << (2 * p))
}

/// Abridged tag from a full tag word.
fn abridge(w: u16) -> u8 {
    (0..8).fold(0, |t, p| {
        if (w >> (2 * p)) & 3 != 3 {
            t | 1 << p
        } else {
            t
        }
    })
}

/// Recompute ES/B from the exception flags and masks (after FLDCW).
fn update_es(cx: &mut Cx) {
    let f = &mut cx.st.fpu;
    if f.fsw & 0x3f & !f.fcw != 0 {
        f.fsw |= fsw::ES | fsw::B;
    } else {
        f.fsw &= !(fsw::ES | fsw::B);
    }
}

/// The environment image (14 or 28 bytes; protected-mode layout).
fn env_image(cx: &Cx, wide: bool) -> Vec<u8> {
    let f = &cx.st.fpu;
    let ftw = full_ftw(cx);
    if wide {
        let mut b = Vec::with_capacity(28);
        let w = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
        w(&mut b, 0xffff_0000 | u32::from(f.fcw));
        w(&mut b, 0xffff_0000 | u32::from(f.fsw));
        w(&mut b, 0xffff_0000 | u32::from(ftw));
        w(&mut b, f.fip as u32);
        w(&mut b, u32::from(f.fop & 0x7ff) << 16);
        w(&mut b, f.fdp as u32);
        w(&mut b, 0xffff_0000);
        b
    } else {
        let mut b = Vec::with_capacity(14);
        for v in [f.fcw, f.fsw, ftw, f.fip as u16, 0, f.fdp as u16, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// Load an environment image.
fn load_env(cx: &mut Cx, b: &[u8], wide: bool) {
    let step = if wide { 4 } else { 2 };
    let h = |k: usize| u16::from_le_bytes([b[k * step], b[k * step + 1]]);
    let (fcw, fsw_v, ftw) = (h(0), h(1), h(2));
    // The registers stay where they are physically; a new TOP renumbers them.
    let shift = usize::from(((fsw_v >> 11) as u8).wrapping_sub(top(cx)) & 7);
    cx.st.fpu.st.rotate_left(shift);
    let f = &mut cx.st.fpu;
    f.fcw = fcw;
    f.fsw = fsw_v;
    f.ftw = abridge(ftw);
    if wide {
        let d = |k: usize| u32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
        f.fip = u64::from(d(12));
        f.fop = ((d(16) >> 16) & 0x7ff) as u16;
        f.fdp = u64::from(d(20));
    } else {
        f.fip = u64::from(h(3));
        f.fdp = u64::from(h(5));
    }
}

/// Control instructions other than FXSAVE/FXRSTOR.
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Fninit | Finit => init(cx),
        Fnclex | Fclex => cx.st.fpu.fsw &= !(0xff | fsw::B),
        Fnstsw | Fstsw => {
            let v = u64::from(cx.st.fpu.fsw);
            if i.op_kind(0) == OpKind::Register {
                cx.set_gpr(iced_x86::Register::AX, v);
            } else {
                cx.wr(i, 0, v)?;
            }
        }
        Fnstcw | Fstcw => cx.wr(i, 0, u64::from(cx.st.fpu.fcw))?,
        Fldcw => {
            let v = cx.rd(i, 0)? as u16;
            cx.st.fpu.fcw = (v & 0x1f3f) | 0x40;
            update_es(cx);
        }
        Ffree | Ffreep => {
            let s = super::st_index(i.op_register(0));
            cx.st.fpu.fsw &= !fsw::C1;
            free(cx, s);
            if i.mnemonic() == Ffreep {
                inc_top(cx);
            }
        }
        Fincstp => {
            cx.st.fpu.fsw &= !fsw::C1;
            inc_top(cx);
        }
        Fdecstp => {
            cx.st.fpu.fsw &= !fsw::C1;
            dec_top(cx);
        }
        Fnstenv | Fstenv | Fnsave | Fsave => {
            let wide = !matches!(
                i.memory_size(),
                MemorySize::FpuEnv14 | MemorySize::FpuState94
            );
            let mut img = env_image(cx, wide);
            let save = matches!(i.mnemonic(), Fnsave | Fsave);
            if save {
                for k in 0..8 {
                    img.extend_from_slice(&cx.st.fpu.st[k][..10]);
                }
            }
            let seg = cx.mem_seg(i);
            let off = cx.ea(i);
            write_bytes(cx, seg, off, &img)?;
            if save {
                init(cx);
            } else {
                cx.st.fpu.fcw |= 0x3f;
            }
        }
        Fldenv | Frstor => {
            let wide = !matches!(
                i.memory_size(),
                MemorySize::FpuEnv14 | MemorySize::FpuState94
            );
            let env = if wide { 28 } else { 14 };
            let regs = if i.mnemonic() == Frstor { 80 } else { 0 };
            let mut b = vec![0u8; env + regs];
            let seg = cx.mem_seg(i);
            let off = cx.ea(i);
            read_bytes(cx, seg, off, &mut b)?;
            load_env(cx, &b, wide);
            for k in 0..regs / 10 {
                let slot = &mut cx.st.fpu.st[k];
                slot[..10].copy_from_slice(&b[env + 10 * k..env + 10 * k + 10]);
                slot[10..].fill(0);
            }
        }
        _ => return Err(Fault::UD),
    }
    Ok(())
}

/// FXSAVE/FXRSTOR (and the REX.W forms with 64-bit FIP/FDP).
pub fn fxsr(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    use Mnemonic::*;
    let m = i.mnemonic();
    let wide = matches!(m, Fxsave64 | Fxrstor64);
    let seg = cx.mem_seg(i);
    let off = cx.ea(i);
    let lin = cx.linear(seg, off, 512, matches!(m, Fxsave | Fxsave64))?;
    if lin & 15 != 0 {
        return Err(Fault::GP0);
    }
    let sse = cx.st.cr4 & cr::CR4_OSFXSR != 0;
    let nxmm = if cx.st.in_64bit_mode() { 16 } else { 8 };
    if matches!(m, Fxsave | Fxsave64) {
        let lin = cx.linear(seg, off, 512, true)?;
        cx.probe_write(lin, 512)?;
        let f = cx.st.fpu;
        let mut b = [0u8; 160];
        b[0..2].copy_from_slice(&f.fcw.to_le_bytes());
        b[2..4].copy_from_slice(&f.fsw.to_le_bytes());
        b[4] = f.ftw;
        b[6..8].copy_from_slice(&f.fop.to_le_bytes());
        if wide {
            b[8..16].copy_from_slice(&f.fip.to_le_bytes());
            b[16..24].copy_from_slice(&f.fdp.to_le_bytes());
        } else {
            b[8..12].copy_from_slice(&(f.fip as u32).to_le_bytes());
            b[16..20].copy_from_slice(&(f.fdp as u32).to_le_bytes());
        }
        b[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
        b[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
        for k in 0..8 {
            b[32 + 16 * k..48 + 16 * k].copy_from_slice(&f.st[k]);
        }
        if sse {
            write_bytes(cx, seg, off, &b)?;
            let mut x = vec![0u8; 16 * nxmm];
            for k in 0..nxmm {
                x[16 * k..16 * k + 16].copy_from_slice(&f.xmm[k]);
            }
            write_bytes(cx, seg, off.wrapping_add(160), &x)?;
        } else {
            write_bytes(cx, seg, off, &b[..24])?;
            write_bytes(cx, seg, off.wrapping_add(32), &b[32..])?;
        }
        return Ok(());
    }
    let mut b = vec![0u8; 160 + 16 * nxmm];
    read_bytes(cx, seg, off, &mut b)?;
    let mxcsr = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
    if sse && mxcsr & !MXCSR_MASK != 0 {
        return Err(Fault::GP0);
    }
    let f = &mut cx.st.fpu;
    f.fcw = u16::from_le_bytes([b[0], b[1]]);
    f.fsw = u16::from_le_bytes([b[2], b[3]]);
    f.ftw = b[4];
    f.fop = u16::from_le_bytes([b[6], b[7]]) & 0x7ff;
    let q = |k: usize| u64::from_le_bytes(b[k..k + 8].try_into().unwrap_or([0; 8]));
    if wide {
        f.fip = q(8);
        f.fdp = q(16);
    } else {
        f.fip = q(8) & 0xffff_ffff;
        f.fdp = q(16) & 0xffff_ffff;
    }
    for k in 0..8 {
        f.st[k].copy_from_slice(&b[32 + 16 * k..48 + 16 * k]);
        f.st[k][10..].fill(0);
    }
    if sse {
        f.mxcsr = mxcsr;
        for k in 0..nxmm {
            f.xmm[k].copy_from_slice(&b[160 + 16 * k..176 + 16 * k]);
        }
    }
    Ok(())
}
