//! The interpreter's services for other engines: the JIT runs on top of an `Interp`, using
//! its state, its MMU and its exception delivery, and falls back to it one instruction at a
//! time for whatever it does not translate.

use super::cx::Cx;
use super::interrupt;
use super::mmu::{Access, TlbEntry};
use super::{Interp, StepResult};
use crate::fault::Fault;
use crate::state::CpuState;
use crate::vcpu::VmIo;

impl Interp {
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
