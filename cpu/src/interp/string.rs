//! String instructions: MOVS STOS LODS CMPS SCAS INS OUTS with REP/REPE/REPNE (SDM Vol. 2A
//! "CMPS", "INS", "LODS", "MOVS"; Vol. 2B "OUTS", "REP/REPE/REPZ/REPNE/REPNZ", "SCAS", "STOS").
//!
//! Sources use DS (or the segment override) at (R|E)SI, destinations ES at (R|E)DI; the
//! address size picks SI/ESI/RSI, DI/EDI/RDI and CX/ECX/RCX. A repeated instruction runs at
//! most `BATCH` iterations per step and then re-executes itself (RIP left at the instruction),
//! which the architecture allows and which keeps interrupts and kicks responsive. A fault in
//! the middle leaves the count and pointers describing the iterations already completed.

use iced_x86::{Instruction, Mnemonic};

use super::cx::{Cx, sreg_of};
use super::flags;
use super::system::check_io;
use crate::fault::Fault;
use crate::state::flags::{DF, ZF};
use crate::state::{gpr, sreg};

/// Iterations of a repeated string instruction per step.
const BATCH: u64 = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
    Ins,
    Outs,
}

fn classify(m: Mnemonic) -> Option<(Kind, u32)> {
    use Mnemonic::*;
    Some(match m {
        Movsb => (Kind::Movs, 1),
        Movsw => (Kind::Movs, 2),
        Movsd => (Kind::Movs, 4),
        Movsq => (Kind::Movs, 8),
        Stosb => (Kind::Stos, 1),
        Stosw => (Kind::Stos, 2),
        Stosd => (Kind::Stos, 4),
        Stosq => (Kind::Stos, 8),
        Lodsb => (Kind::Lods, 1),
        Lodsw => (Kind::Lods, 2),
        Lodsd => (Kind::Lods, 4),
        Lodsq => (Kind::Lods, 8),
        Cmpsb => (Kind::Cmps, 1),
        Cmpsw => (Kind::Cmps, 2),
        Cmpsd => (Kind::Cmps, 4),
        Cmpsq => (Kind::Cmps, 8),
        Scasb => (Kind::Scas, 1),
        Scasw => (Kind::Scas, 2),
        Scasd => (Kind::Scas, 4),
        Scasq => (Kind::Scas, 8),
        Insb => (Kind::Ins, 1),
        Insw => (Kind::Ins, 2),
        Insd => (Kind::Ins, 4),
        Outsb => (Kind::Outs, 1),
        Outsw => (Kind::Outs, 2),
        Outsd => (Kind::Outs, 4),
        _ => return None,
    })
}

/// Execute one string instruction (all its repetitions, or one batch of them).
pub fn exec(cx: &mut Cx, i: &Instruction) -> Result<(), Fault> {
    let Some((kind, size)) = classify(i.mnemonic()) else {
        return Err(Fault::UD);
    };
    let asz = cx.asz;
    let rep = i.has_rep_prefix() || i.has_repne_prefix();
    let port = cx.st.gpr[gpr::RDX] as u16;
    if matches!(kind, Kind::Ins | Kind::Outs) {
        check_io(cx, port, size)?;
    }
    let src_seg = sreg_of(i.memory_segment());
    let step = if cx.st.rflags & DF != 0 {
        u64::from(size).wrapping_neg()
    } else {
        u64::from(size)
    };
    let mut count = if rep {
        cx.reg(gpr::RCX as u8, false, asz)
    } else {
        1
    };
    let mut done = 0u64;
    while count != 0 {
        let si = cx.reg(gpr::RSI as u8, false, asz);
        let di = cx.reg(gpr::RDI as u8, false, asz);
        let (uses_si, uses_di) = match kind {
            Kind::Movs | Kind::Cmps => (true, true),
            Kind::Lods | Kind::Outs => (true, false),
            Kind::Stos | Kind::Scas | Kind::Ins => (false, true),
        };
        match kind {
            Kind::Movs => {
                let v = cx.read_mem(src_seg, si, size)?;
                cx.write_mem(sreg::ES, di, size, v)?;
            }
            Kind::Stos => {
                let v = cx.reg(gpr::RAX as u8, false, size);
                cx.write_mem(sreg::ES, di, size, v)?;
            }
            Kind::Lods => {
                let v = cx.read_mem(src_seg, si, size)?;
                cx.set_reg(gpr::RAX as u8, false, size, v);
            }
            Kind::Cmps | Kind::Scas => {
                let a = if kind == Kind::Cmps {
                    cx.read_mem(src_seg, si, size)?
                } else {
                    cx.reg(gpr::RAX as u8, false, size)
                };
                let b = cx.read_mem(sreg::ES, di, size)?;
                let r = a.wrapping_sub(b) & super::cx::mask(size);
                cx.st.rflags = flags::set_status(cx.st.rflags, flags::sub(a, b, r, size));
            }
            Kind::Ins => {
                // Check the destination before the port read, which has side effects.
                let lin = cx.linear(sreg::ES, di, size, true)?;
                cx.probe_write(lin, size)?;
                let mut buf = [0u8; 4];
                cx.io.pio_read(port, &mut buf[..size as usize]);
                cx.misc.io_done = true;
                let user = cx.cpl() == 3;
                cx.write_lin(lin, size, u64::from(u32::from_le_bytes(buf)), user)?;
            }
            Kind::Outs => {
                let v = cx.read_mem(src_seg, si, size)? as u32;
                cx.io.pio_write(port, &v.to_le_bytes()[..size as usize]);
                cx.misc.io_done = true;
            }
        }
        if uses_si {
            cx.set_reg(gpr::RSI as u8, false, asz, si.wrapping_add(step));
        }
        if uses_di {
            cx.set_reg(gpr::RDI as u8, false, asz, di.wrapping_add(step));
        }
        if !rep {
            break;
        }
        count -= 1;
        cx.set_reg(gpr::RCX as u8, false, asz, count);
        done += 1;
        if matches!(kind, Kind::Cmps | Kind::Scas) {
            // REPE stops on a difference, REPNE on a match.
            let zf = cx.st.rflags & ZF != 0;
            if (i.has_repe_prefix() && !zf) || (i.has_repne_prefix() && zf) {
                break;
            }
        }
        if count != 0 && done >= BATCH {
            // Come back for the rest after the run loop has had a look.
            cx.st.rip = i.ip();
            break;
        }
    }
    Ok(())
}
