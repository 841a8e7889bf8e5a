//! Instructions that cross a page boundary (SDM Vol. 2A §2.1: up to 15 bytes, fetched from
//! both pages): block decoding reads one 4 KiB page, so such an instruction decodes there as
//! invalid. The run loop sends it through the cold path (the interpreter fetches it whole and
//! the write watch sees what it writes); this module decodes it from both pages so that the
//! fallback is counted under its real mnemonic in `--stats` rather than as "invalid".

use cpu::Interp;
use cpu::interp::mmu::Access;
use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction};

/// Longest x86 instruction.
const MAX_LEN: usize = 15;

/// `insn` itself when it decoded, else the instruction at RIP decoded from the bytes of both
/// pages (or `insn` unchanged when a page cannot be read: the interpreter raises the fault).
pub fn full_insn(interp: &mut Interp, insn: Instruction) -> Instruction {
    if !insn.is_invalid() {
        return insn;
    }
    let rip = interp.state().rip;
    let mut buf = [0u8; MAX_LEN];
    let first = ((0x1000 - (rip & 0xfff)) as usize).min(MAX_LEN);
    let second = rip.wrapping_add(first as u64);
    let Ok(e1) = interp.translate(rip, Access::Exec) else {
        return insn;
    };
    if e1.host.is_null()
        || !interp
            .ram()
            .read(e1.phys | (rip & 0xfff), &mut buf[..first])
    {
        return insn;
    }
    let mut dec = Decoder::with_ip(64, &buf[..first], rip, DecoderOptions::NONE);
    let i = dec.decode();
    if !i.is_invalid() {
        return i;
    }
    // Only an instruction cut short by the page end reads the next page (whose accessed bit
    // the interpreter's fetch then sets anyway).
    if dec.last_error() != DecoderError::NoMoreBytes || first == MAX_LEN {
        return insn;
    }
    let Ok(e2) = interp.translate(second, Access::Exec) else {
        return insn;
    };
    if e2.host.is_null() || !interp.ram().read(e2.phys, &mut buf[first..]) {
        return insn;
    }
    let i = Decoder::with_ip(64, &buf, rip, DecoderOptions::NONE).decode();
    if i.is_invalid() { insn } else { i }
}
