//! Instructions the JIT leaves to the interpreter, and keeping translated code consistent with
//! the memory they write: before the step, the linear ranges the instruction will write are
//! worked out from its operands (iced-x86 `InstructionInfo`) and the registers; after it, the
//! blocks whose bytes those ranges overlap are invalidated. What cannot be worked out that way
//! (port I/O, which may start device DMA; exception and interrupt delivery, which pushes onto a
//! stack chosen by the IDT and TSS) bumps the code epoch instead, so every code page is
//! checked against its snapshot before its code runs again.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use cpu::CpuState;
use cpu::interp::mmu::Access;
use cpu::state::gpr;

use cpu::VmIo;
use cpu::interp::StepResult;
use cpu::interp::api::{StepWatch, WatchedRun};

use crate::ctx::JitCtx;
use crate::engine::{Engine, Next};

/// What one instruction run on the interpreter may write, worked out cheaply from its
/// operands and the registers around it (no iced-x86 `InstructionInfo`): the explicit memory
/// destination (operand 0 of every writing form, XCHG's memory operand), string stores from
/// RDI before and after, and implicit stack pushes (PUSH, CALL, ENTER, PUSHF) from RSP before
/// and after. Software interrupts (their frame), OUTs to ports that may start a DMA, string
/// stores through EDI/DI, MASKMOV*, and memory operands without a size (XSAVE) count as
/// unknown: the code epoch is bumped. The analysis errs towards "written": a read taken for a write only costs a
/// look at the code-page map.
#[derive(Debug, Default)]
pub struct WriteWatch {
    /// Linear ranges (start, length) written since the last `take`.
    pub ranges: Vec<(u64, u64)>,
    /// Something was written that cannot be located (the code epoch must be bumped).
    pub unknown: bool,
    rsp: u64,
    rdi: u64,
    /// Element size of the string store in flight (0: none).
    string: u64,
    /// The instruction in flight pushes onto the stack.
    pushes: bool,
}

/// Instructions whose memory operand 0 is only read.
fn reads_op0(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmp | Test
            | Bt
            | Push
            | Jmp
            | Call
            | Prefetchnta
            | Prefetcht0
            | Prefetcht1
            | Prefetcht2
            | Prefetchw
            | Clflush
            | Clflushopt
            | Nop
            | Lgdt
            | Lidt
            | Lldt
            | Ltr
            | Lmsw
            | Verr
            | Verw
            | Invlpg
            | Fld
            | Fild
            | Fldcw
            | Fldenv
            | Frstor
            | Fxrstor
            | Fxrstor64
            | Ldmxcsr
            | Fcom
            | Fcomp
            | Ficom
            | Ficomp
            | Fadd
            | Fsub
            | Fsubr
            | Fmul
            | Fdiv
            | Fdivr
            | Fiadd
            | Fisub
            | Fisubr
            | Fimul
            | Fidiv
            | Fidivr
            | Ucomiss
            | Ucomisd
            | Comiss
            | Comisd
    )
}

/// Whether I/O port `port` belongs to a fixed-function PC/AT device that never accesses
/// memory (PIC, PIT and port B, keyboard controller, RTC/CMOS, POST port, ELCR, the four COM
/// ports). A write to any other port may start a DMA (ISA DMA controller and page registers,
/// PCI devices), so it bumps the code epoch; reads (IN, and INS apart from its own store)
/// are taken not to start one.
pub fn port_without_dma(port: u16) -> bool {
    matches!(
        port,
        0x20..=0x21
            | 0x40..=0x43
            | 0x60..=0x64
            | 0x70..=0x71
            | 0x80
            | 0xa0..=0xa1
            | 0x4d0..=0x4d1
            | 0x2e8..=0x2ef
            | 0x2f8..=0x2ff
            | 0x3e8..=0x3ef
            | 0x3f8..=0x3ff
    )
}

/// The port instruction `i` writes in state `st`, if it is OUT or OUTS.
fn out_port(i: &Instruction, st: &CpuState) -> Option<u16> {
    use Mnemonic::*;
    match i.mnemonic() {
        // `out dx, al` / `out imm8, al` / `outsb` (DX, [RSI]): the port is operand 0.
        Out | Outsb | Outsw | Outsd => Some(port_operand(i, st, 0)),
        _ => None,
    }
}

fn port_operand(i: &Instruction, st: &CpuState, k: u32) -> u16 {
    match i.op_kind(k) {
        OpKind::Immediate8 => u16::from(i.immediate8()),
        _ => st.gpr[gpr::RDX] as u16,
    }
}

/// Whether `m` stores implicitly below RSP.
fn pushes(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Push | Call | Enter | Pushf | Pushfd | Pushfq | Pusha | Pushad
    )
}

impl WriteWatch {
    /// Take the ranges collected so far (and whether something unknown was written).
    pub fn take(&mut self, out: &mut Vec<(u64, u64)>) -> bool {
        out.clear();
        std::mem::swap(out, &mut self.ranges);
        std::mem::take(&mut self.unknown)
    }

    fn note(&mut self, i: &Instruction, st: &CpuState) {
        use Mnemonic::*;
        let m = i.mnemonic();
        self.string = 0;
        self.pushes = pushes(m);
        if i.is_invalid() {
            self.unknown = true;
            return;
        }
        // INT n / INT1 / INT3 / INTO push an interrupt frame onto a stack the IDT/TSS choose.
        if matches!(m, Int | Int1 | Int3 | Into)
            || out_port(i, st).is_some_and(|p| !port_without_dma(p))
        {
            self.unknown = true;
        }
        let string_store = matches!(m, Movsb | Movsw | Movsq | Stosb | Stosw | Stosd | Stosq)
            || (m == Movsd && i.is_string_instruction())
            || matches!(m, Insb | Insw | Insd);
        for k in 0..i.op_count() {
            match i.op_kind(k) {
                OpKind::Memory if (k == 0 && !reads_op0(m)) || m == Xchg => {
                    self.explicit(i, st, k);
                }
                OpKind::MemoryESRDI if string_store => {
                    self.string = i.memory_size().size().max(1) as u64;
                    self.rdi = st.gpr[gpr::RDI];
                }
                // A string store through EDI/DI, or MASKMOVQ's DS:RDI.
                OpKind::MemoryESEDI | OpKind::MemoryESDI if string_store => self.unknown = true,
                OpKind::MemorySegDI | OpKind::MemorySegEDI | OpKind::MemorySegRDI => {
                    self.unknown = true
                }
                _ => {}
            }
        }
    }

    /// Operand `k` (explicit memory) is written.
    fn explicit(&mut self, i: &Instruction, st: &CpuState, k: u32) {
        let size = i.memory_size().size() as u64;
        let Some(lin) = i.virtual_address(k, 0, |r, _, _| reg_value(st, r)) else {
            self.unknown = true;
            return;
        };
        if size == 0 {
            self.unknown = true;
            return;
        }
        use Mnemonic::*;
        if matches!(i.mnemonic(), Bts | Btr | Btc) && i.op_kind(1) == OpKind::Register {
            // A register bit offset addresses a bit string around the operand (signed).
            let Some(off) = reg_value(st, i.op_register(1)) else {
                self.unknown = true;
                return;
            };
            let bits = size * 8;
            let off = (off << (64 - bits)) as i64 >> (64 - bits);
            let byte = lin.wrapping_add((off >> 3) as u64) & !(size - 1);
            self.ranges.push((byte, size));
            return;
        }
        if i.mnemonic() == Pop {
            // POP m computes an RSP-based address after incrementing RSP (SDM Vol. 2B POP).
            self.ranges.push((lin, 2 * size));
            return;
        }
        self.ranges.push((lin, size));
    }
}

impl StepWatch for WriteWatch {
    #[inline]
    fn before(&mut self, st: &CpuState, i: &Instruction) {
        self.rsp = st.gpr[gpr::RSP];
        self.note(i, st);
    }

    #[inline]
    fn after(&mut self, st: &CpuState, _i: &Instruction) {
        if self.pushes {
            let rsp = st.gpr[gpr::RSP];
            let n = self.rsp.wrapping_sub(rsp);
            if n > 0 && n <= 0x1_0000 + 64 {
                self.ranges.push((rsp, n));
            } else if n != 0 {
                self.unknown = true;
            }
        }
        if self.string != 0 {
            let after = st.gpr[gpr::RDI];
            let (lo, hi) = if after >= self.rdi {
                (self.rdi, after)
            } else {
                (after, self.rdi)
            };
            if hi - lo <= 1 << 32 {
                self.ranges.push((lo, hi - lo + self.string));
            } else {
                self.unknown = true;
            }
        }
    }
}

/// The value of `r` (any width) in `st` (64-bit mode: ES/CS/SS/DS have base 0).
fn reg_value(st: &CpuState, r: Register) -> Option<u64> {
    if r.is_segment_register() {
        let n = (r as usize) - (Register::ES as usize);
        return Some(if n >= cpu::state::sreg::FS {
            st.seg[n].base
        } else {
            0
        });
    }
    if !r.is_gpr() {
        return None;
    }
    let (n, high, size) = cpu::interp::cx::gpr_of(r);
    let v = st.gpr[n as usize];
    Some(if high {
        (v >> 8) & 0xff
    } else {
        v & cpu::interp::cx::mask(size)
    })
}

impl Engine {
    /// Invalidate translated code in the linear range `lin..lin+len` (after a write the JIT
    /// did not see). Falls back to an epoch bump when a page cannot be translated.
    /// Returns whether some page of the range holds translated code (or could not be
    /// translated).
    pub fn invalidate_linear(&mut self, ctx: &mut JitCtx, lin: u64, len: u64) -> bool {
        let mut code = false;
        let mut a = lin;
        let end = lin.wrapping_add(len);
        let mut left = len;
        while left > 0 {
            let in_page = (0x1000 - (a & 0xfff)).min(left);
            match self.interp.translate(a, Access::Read) {
                Ok(e) if !e.host.is_null() => {
                    if self.cache.is_code_page(e.phys) {
                        code = true;
                        self.cache
                            .invalidate_range(ctx, e.phys | (a & 0xfff), in_page);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    ctx.code_epoch += 1;
                    return true;
                }
            }
            a = a.wrapping_add(in_page);
            left -= in_page;
            if a == end {
                break;
            }
        }
        code
    }

    /// Run code that is not hot yet on the interpreter: one block of its decoded-block cache
    /// (the interpreter's own speed), with the writes of each instruction collected by the
    /// cheap `WriteWatch` and the translated code they overlap invalidated afterwards.
    pub fn run_cold(&mut self, ctx: &mut JitCtx, io: &dyn VmIo) -> Next {
        self.sync_flags(ctx);
        let mut watch = std::mem::take(&mut self.watch);
        let r = self.interp.run_block_watched(io, &mut watch);
        let (n, epoch) = match r {
            // Port I/O is judged by the watch (`port_without_dma`).
            WatchedRun::Retired { n, .. } => (n, false),
            WatchedRun::Exception { n } => (n, true),
            WatchedRun::Shutdown => (0, true),
        };
        self.stats.cold_insns += u64::from(n);
        self.watch = watch;
        self.flush_watch(ctx, epoch);
        if r == WatchedRun::Shutdown {
            return Next::Exit(cpu::VcpuExit::Shutdown);
        }
        Next::Again
    }

    /// Run fallback instruction `insn` (at RIP) on the interpreter, with its writes watched.
    pub fn step_watched(
        &mut self,
        ctx: &mut JitCtx,
        io: &dyn VmIo,
        insn: &Instruction,
    ) -> StepResult {
        self.sync_flags(ctx);
        self.watch.before(self.interp.state(), insn);
        let before = self.interp.instructions();
        let r = self.interp.step(io);
        let retired = self.interp.instructions() != before;
        if retired {
            self.watch.after(self.interp.state(), insn);
        }
        // An exception frame goes onto a stack the IDT/TSS chose (port I/O that may start
        // a DMA is judged by the watch).
        self.flush_watch(ctx, !retired);
        r
    }

    /// Invalidate the translated code the watched instructions overwrote; `epoch`: also
    /// bump the code epoch (writes that cannot be located).
    fn flush_watch(&mut self, ctx: &mut JitCtx, epoch: bool) {
        let mut ranges = std::mem::take(&mut self.ranges_buf);
        let unknown = self.watch.take(&mut ranges);
        if epoch || unknown {
            ctx.code_epoch += 1;
        }
        if !self.cache.is_empty() {
            let mut last_page = u64::MAX;
            for &(lin, len) in &ranges {
                // Consecutive writes to one page that holds no code: translated once.
                if lin >> 12 == last_page && (lin & 0xfff) + len <= 0x1000 {
                    continue;
                }
                if self.invalidate_linear(ctx, lin, len) {
                    last_page = u64::MAX;
                } else {
                    last_page = lin >> 12;
                }
            }
        }
        ranges.clear();
        self.ranges_buf = ranges;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;

    fn decode(
        f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>,
    ) -> Instruction {
        let mut a = CodeAssembler::new(64).expect("asm");
        f(&mut a).expect("asm");
        let bytes = a.assemble(0x1000).expect("asm");
        iced_x86::Decoder::with_ip(64, &bytes, 0x1000, iced_x86::DecoderOptions::NONE).decode()
    }

    /// Watch `i` from `st`, with `after` applied to the state before `after()`.
    fn watched(
        i: &Instruction,
        st: &CpuState,
        after: impl FnOnce(&mut CpuState),
    ) -> (Vec<(u64, u64)>, bool) {
        let mut w = WriteWatch::default();
        w.before(st, i);
        let mut later = *st;
        after(&mut later);
        w.after(&later, i);
        let mut out = Vec::new();
        let unknown = w.take(&mut out);
        (out, unknown)
    }

    #[test]
    fn test_write_watch_common_fallbacks() {
        let mut st = CpuState::reset();
        st.gpr[gpr::RSP] = 0x8000;
        st.gpr[gpr::RBX] = 0x2000;
        st.gpr[gpr::RCX] = 3;
        st.gpr[gpr::RDI] = 0x5000;
        // BTS with a register bit offset: the qword holding bit 3 of [rbx+8].
        let r = watched(&decode(|a| a.bts(qword_ptr(rbx + 8), rcx)), &st, |_| {});
        assert_eq!(r, (vec![(0x2008, 8)], false));
        // A bit offset of -1 reaches the qword below the operand (SDM Vol. 2A BTS).
        st.gpr[gpr::RCX] = u64::MAX;
        let r = watched(&decode(|a| a.bts(qword_ptr(rbx + 8), rcx)), &st, |_| {});
        assert_eq!(r, (vec![(0x2000, 8)], false));
        st.gpr[gpr::RCX] = 3;
        assert_eq!(
            watched(&decode(|a| a.popfq()), &st, |_| {}),
            (vec![], false)
        );
        assert_eq!(
            watched(&decode(|a| a.cpuid()), &st, |_| {}),
            (vec![], false)
        );
        assert_eq!(
            watched(&decode(|a| a.cmp(qword_ptr(rbx), rcx)), &st, |_| {}),
            (vec![], false)
        );
        assert_eq!(
            watched(
                &decode(|a| a.mov(dword_ptr(rbx + rcx * 4 + 0x10), eax)),
                &st,
                |_| {}
            ),
            (vec![(0x201c, 4)], false)
        );
        // REP STOSQ: every element between RDI before and after.
        let r = watched(&decode(|a| a.rep().stosq()), &st, |s| {
            s.gpr[gpr::RDI] = 0x5018
        });
        assert_eq!(r, (vec![(0x5000, 0x20)], false));
        let r = watched(&decode(|a| a.stosb()), &st, |s| s.gpr[gpr::RDI] = 0x5001);
        assert_eq!(r, (vec![(0x5000, 2)], false));
        // ENTER 16,0: RBP pushed, then 16 bytes of frame.
        let r = watched(&decode(|a| a.enter(16u32, 0u32)), &st, |s| {
            s.gpr[gpr::RSP] = 0x7fe8
        });
        assert_eq!(r, (vec![(0x7fe8, 0x18)], false));
        let r = watched(&decode(|a| a.call(rax)), &st, |s| s.gpr[gpr::RSP] = 0x7ff8);
        assert_eq!(r, (vec![(0x7ff8, 8)], false));
        // A push whose source is memory reads it.
        let r = watched(&decode(|a| a.push(qword_ptr(rbx))), &st, |s| {
            s.gpr[gpr::RSP] = 0x7ff8
        });
        assert_eq!(r, (vec![(0x7ff8, 8)], false));
    }
}
