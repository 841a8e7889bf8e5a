//! The engine contract: `Vcpu` (one per guest processor, any engine) and `VmIo` (the machine's
//! buses, which every engine calls for port and MMIO accesses).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::state::CpuState;

/// Port and MMIO accesses, serviced synchronously by the machine's buses. Implemented once, by
/// the machine; called by every engine (the interpreter, the JIT's slow paths, KVM's exits).
pub trait VmIo: Sync {
    /// Read `data.len()` (1, 2 or 4) bytes from I/O port `port`.
    fn pio_read(&self, port: u16, data: &mut [u8]);
    /// Write `data` to I/O port `port`.
    fn pio_write(&self, port: u16, data: &[u8]);
    /// Read from a guest-physical address that is not RAM.
    fn mmio_read(&self, addr: u64, data: &mut [u8]);
    /// Write to a guest-physical address that is not RAM.
    fn mmio_write(&self, addr: u64, data: &[u8]);
    /// RDMSR of an MSR the CPU does not model itself but the machine may (the local APIC's
    /// IA32_TSC_DEADLINE). `tsc` is the reading of the time-stamp counter now. None: no
    /// such MSR (the CPU raises #GP).
    fn msr_read(&self, index: u32, tsc: u64) -> Option<u64> {
        let _ = (index, tsc);
        None
    }
    /// WRMSR counterpart of `msr_read`; false: no such MSR (the CPU raises #GP).
    fn msr_write(&self, index: u32, value: u64, tsc: u64) -> bool {
        let _ = (index, value, tsc);
        false
    }
}

/// Why `Vcpu::run` returned. Only what the board must decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuExit {
    /// The guest executed HLT and waits for an interrupt.
    Halted,
    /// The guest can take an interrupt now (requested with `request_interrupt_window`).
    InterruptWindow,
    /// Triple fault or shutdown: the processor stopped for good.
    Shutdown,
    /// A debug event (single step or breakpoint).
    Debug,
    /// `Kicker::kick` was called (device wants attention, timeout, exit request).
    Kicked,
}

/// Host-side failure of an engine (never guest misbehaviour).
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// The engine failed in a way specific to it.
    #[error("{engine} engine failure: {message}")]
    Engine {
        /// Which engine.
        engine: &'static str,
        /// What failed.
        message: String,
    },
}

/// A cheap handle that makes a running vCPU return from `run` with `VcpuExit::Kicked` soon,
/// and through which the board asks for `VcpuExit::InterruptWindow` (an interrupt is pending
/// but the guest has IF=0: return as soon as it can take it). Every engine checks both flags
/// where it checks for kicks.
#[derive(Clone, Debug, Default)]
pub struct Kicker {
    flag: Arc<AtomicBool>,
    window: Arc<AtomicBool>,
}

impl Kicker {
    /// A new, unkicked handle.
    pub fn new() -> Kicker {
        Kicker::default()
    }
    /// Ask the vCPU to return to the run loop.
    pub fn kick(&self) {
        self.flag.store(true, Ordering::Release);
    }
    /// Whether a kick is pending (without consuming it).
    pub fn is_kicked(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
    /// Consume a pending kick.
    pub fn take(&self) -> bool {
        self.flag.swap(false, Ordering::AcqRel)
    }
    /// Ask for (`true`) or cancel the interrupt-window exit: while set, `run` returns
    /// `VcpuExit::InterruptWindow` at the first point where the guest can take an external
    /// interrupt. The flag stays set until the board clears it.
    pub fn request_interrupt_window(&self, on: bool) {
        self.window.store(on, Ordering::Release);
    }
    /// Whether the board asked for the interrupt-window exit.
    pub fn interrupt_window_requested(&self) -> bool {
        self.window.load(Ordering::Relaxed)
    }
}

/// Counters an engine reports for `--stats`.
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    /// Engine name.
    pub engine: &'static str,
    /// Guest instructions retired (or an engine's best estimate).
    pub instructions: u64,
    /// Named counters, in display order.
    pub counters: Vec<(String, u64)>,
    /// Instructions the engine does not implement, with the count of #UD raised for each.
    pub unimplemented: Vec<(String, u64)>,
}

/// Called before each instruction when tracing, with the state before it executes (RIP is
/// the instruction's address) and the instruction's bytes.
pub type TraceFn = Box<dyn FnMut(&CpuState, &[u8]) + Send>;

/// One guest processor on some engine.
pub trait Vcpu: Send {
    /// Run the guest until something the board must decide happens.
    fn run(&mut self, io: &dyn VmIo) -> Result<VcpuExit, VcpuError>;
    /// Export the architectural state.
    fn get_state(&self) -> CpuState;
    /// Import the architectural state.
    fn set_state(&mut self, state: &CpuState);
    /// Deliver external interrupt `vector` now; the caller has checked `interrupts_enabled`.
    fn inject_interrupt(&mut self, vector: u8);
    /// Whether an external interrupt can be delivered at this instruction boundary.
    fn interrupts_enabled(&self) -> bool;
    /// The handle that makes `run` return.
    fn kicker(&self) -> Kicker;
    /// Engine statistics so far.
    fn stats(&self) -> EngineStats;
    /// Trace every instruction through `f` (None: stop tracing). Returns false if this
    /// engine cannot trace single instructions.
    fn set_trace(&mut self, f: Option<TraceFn>) -> bool {
        let _ = f;
        false
    }
}
