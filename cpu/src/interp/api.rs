//! The interpreter's services for other engines: the JIT runs on top of an `Interp`, using
//! its state, its MMU and its exception delivery, and falls back to it one instruction at a
//! time for whatever it does not translate.

use iced_x86::Instruction;

use super::cx::Cx;
use super::interrupt;
use super::mmu::{Access, TlbEntry};
use super::{
    Interp, StepResult, Stepped, exec_decoded, exec_lean, fault_at_boundary, fetch_address,
};
use crate::fault::Fault;
use crate::state::CpuState;
use crate::vcpu::VmIo;

/// What an engine running code on the interpreter's block cache (`Interp::run_block_watched`)
/// sees of each instruction: the JIT works out from it what the instruction wrote.
pub trait StepWatch {
    /// Called with the state before instruction `i` executes.
    fn before(&mut self, st: &CpuState, i: &Instruction);
    /// Called with the state after `i` retired (not after it raised an exception).
    fn after(&mut self, st: &CpuState, i: &Instruction);
}

/// How `Interp::run_block_watched` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchedRun {
    /// The block's instructions retired (this many); `io`: an I/O instruction ran.
    Retired {
        /// Instructions retired.
        n: u32,
        /// A port I/O instruction ran (devices may have written memory).
        io: bool,
    },
    /// An exception was delivered (after `n` instructions retired).
    Exception {
        /// Instructions retired before it.
        n: u32,
    },
    /// The processor shut down (triple fault).
    Shutdown,
}

impl Interp {
    /// Run the decoded block at RIP (one straight-line run from the block cache, as
    /// `run_batch` does), calling `w` around each instruction. For engines on top of the
    /// interpreter: the caller makes sure no single-step trap (TF), RF, interrupt shadow or
    /// tracing is pending; the block's own instructions may set them (the block then ends).
    pub fn run_block_watched<W: StepWatch>(&mut self, io: &dyn VmIo, w: &mut W) -> WatchedRun {
        let mut cx = Cx {
            st: &mut self.st,
            tlb: &mut self.tlb,
            ram: &self.ram,
            io,
            misc: &mut self.misc,
            asz: 8,
        };
        let mut n = 0u32;
        let mut last = Stepped::Retired;
        let block = match fetch_address(&cx) {
            Ok((lin, bits)) => {
                let rip = cx.st.rip;
                self.icache.block(&mut cx, lin, rip, bits)
            }
            Err(f) => Err(f),
        };
        match block {
            Ok(Some(b)) => {
                cx.misc.watch_page = b.page();
                cx.misc.code_written = false;
                cx.st.rflags &= !crate::state::flags::RF;
                for d in &b.insns {
                    cx.st.interrupt_shadow = false;
                    w.before(cx.st, &d.insn);
                    last = exec_lean(&mut cx, d);
                    if !matches!(last, Stepped::Retired) {
                        break;
                    }
                    n += 1;
                    w.after(cx.st, &d.insn);
                    if cx.st.halted
                        || cx.misc.io_done
                        || cx.misc.code_written
                        || cx.st.rip != d.next_rip
                        || cx.st.rflags & crate::state::flags::TF != 0
                    {
                        break;
                    }
                }
                cx.misc.watch_page = u64::MAX;
            }
            Ok(None) => {
                // No cached block can start here (MMIO code, an instruction crossing the
                // page end, an invalid encoding): one instruction, fetched the slow way.
                cx.st.interrupt_shadow = false;
                let rip = cx.st.rip;
                let d = fetch_address(&cx)
                    .and_then(|(lin, bits)| self.icache.fetch_single(&mut cx, lin, rip, bits))
                    .copied();
                last = match d {
                    Ok(d) => {
                        w.before(cx.st, &d.insn);
                        let r = exec_decoded(&mut cx, &d, None);
                        if matches!(r, Stepped::Retired) {
                            n = 1;
                            w.after(cx.st, &d.insn);
                        }
                        r
                    }
                    Err(f) => fault_at_boundary(&mut cx, f),
                };
            }
            Err(f) => last = fault_at_boundary(&mut cx, f),
        }
        let io_done = std::mem::replace(&mut cx.misc.io_done, false);
        self.instructions += u64::from(n);
        match last {
            Stepped::Retired => WatchedRun::Retired { n, io: io_done },
            Stepped::Exception => {
                self.exceptions += 1;
                WatchedRun::Exception { n }
            }
            Stepped::TripleFault(f) => {
                self.last_fault = Some(f);
                WatchedRun::Shutdown
            }
        }
    }

    fn cx<'a>(&'a mut self, io: &'a dyn VmIo) -> Cx<'a> {
        Cx {
            st: &mut self.st,
            tlb: &mut self.tlb,
            ram: &self.ram,
            io,
            misc: &mut self.misc,
            asz: 8,
        }
    }

    /// A raw pointer to the architectural state, for generated code that reads and writes
    /// `CpuState` fields at their `offset_of!` offsets. Valid while this `Interp` lives and
    /// is not moved.
    pub fn state_ptr(&mut self) -> *mut CpuState {
        &mut self.st
    }

    /// Guest RAM.
    pub fn ram(&self) -> &crate::ram::GuestRam {
        &self.ram
    }

    /// Translate linear address `lin` for `access` at the current privilege level, walking
    /// the page tables on a TLB miss (and setting A/D bits).
    pub fn translate(&mut self, lin: u64, access: Access) -> Result<TlbEntry, Fault> {
        let user = self.st.cpl() == 3;
        self.tlb.translate(&self.st, &self.ram, lin, access, user)
    }

    /// The TLB's flush counter: a translation copied elsewhere is stale once it changes.
    pub fn tlb_generation(&self) -> u64 {
        self.tlb.generation
    }

    /// Read `size` bytes at linear address `lin` with the current privilege (RAM or MMIO).
    pub fn read_linear(&mut self, io: &dyn VmIo, lin: u64, size: u32) -> Result<u64, Fault> {
        let user = self.st.cpl() == 3;
        self.cx(io).read_lin(lin, size, user)
    }

    /// Write `size` bytes at linear address `lin` with the current privilege (RAM or MMIO).
    pub fn write_linear(
        &mut self,
        io: &dyn VmIo,
        lin: u64,
        size: u32,
        v: u64,
    ) -> Result<(), Fault> {
        let user = self.st.cpl() == 3;
        self.cx(io).write_lin(lin, size, v, user)
    }

    /// Deliver exception `f` as if the instruction at the current RIP raised it (RIP and
    /// the registers must already be those before that instruction).
    pub fn deliver_fault(&mut self, io: &dyn VmIo, f: Fault) -> StepResult {
        match interrupt::deliver_exception(&mut self.cx(io), f) {
            Ok(()) => StepResult::Ok,
            Err(f) => {
                self.last_fault = Some(f);
                StepResult::Shutdown
            }
        }
    }

    /// Replace RFLAGS without flushing the TLB (unlike `state_mut`): an engine that keeps the
    /// arithmetic flags lazily makes them exact with this before the interpreter runs.
    /// RFLAGS does not take part in address translation, so no cached translation changes.
    pub fn set_rflags(&mut self, rflags: u64) {
        self.st.rflags = rflags;
    }

    /// Count `n` instructions retired by another engine in this vCPU's statistics.
    pub fn add_retired(&mut self, n: u64) {
        self.instructions += n;
    }
}
