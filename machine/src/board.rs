//! The vx PC board: guest memory, the port and MMIO buses with the devices wired at their
//! `layout` addresses, and the run loop that drives one vCPU of any engine.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cpu::{GuestRam, Vcpu, VcpuError, VcpuExit, VmIo};

use crate::bus::{Bus, BusError};
use crate::control::{StopReason, VmControl};
use crate::devices::debug_exit::DebugExit;
use crate::devices::post::PostPort;
use crate::devices::reset_cf9::ResetControl;
use crate::devices::uart16550::Uart16550;
use crate::irq::NoIrq;
use crate::layout;
use crate::memory::{GuestMemory, MemoryError};

/// Board construction failures.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// Guest memory could not be set up.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Devices could not be wired.
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl BoardError {
    /// Whether the host failed (a mapping it refused, a wiring bug), as opposed to a size or
    /// image the user gave that cannot work (exit status 2).
    pub fn is_host_failure(&self) -> bool {
        matches!(
            self,
            BoardError::Memory(MemoryError::Map { .. }) | BoardError::Bus(_)
        )
    }
}

/// What the board is built with.
#[derive(Default)]
pub struct BoardConfig {
    /// Guest RAM size in bytes.
    pub memory: u64,
    /// BIOS image, mapped as QEMU's -bios maps it.
    pub bios: Option<Vec<u8>>,
    /// Where COM1 output goes (None: discarded).
    pub serial_out: Option<Box<dyn Write + Send>>,
    /// Print POST port writes to stderr.
    pub trace_post: bool,
}

impl std::fmt::Debug for BoardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardConfig")
            .field("memory", &self.memory)
            .field("bios", &self.bios.as_ref().map(|b| b.len()))
            .finish()
    }
}

/// The machine: memory, buses, devices and the stop control.
#[derive(Debug)]
pub struct Board {
    memory: GuestMemory,
    pio: Bus,
    mmio: Bus,
    control: Arc<VmControl>,
    com1: Arc<Mutex<Uart16550>>,
}

impl Board {
    /// Build the board described by `cfg`.
    pub fn new(cfg: BoardConfig) -> Result<Board, BoardError> {
        let memory = GuestMemory::new(cfg.memory, cfg.bios.as_deref())?;
        let control = Arc::new(VmControl::new());
        let mut pio = Bus::new("pio", 1);
        let mmio = Bus::new("mmio", 4096);
        let com1 = Arc::new(Mutex::new(Uart16550::new(cfg.serial_out, Arc::new(NoIrq))));
        pio.insert(
            u64::from(layout::COM1_PORT),
            u64::from(layout::COM1_LEN),
            com1.clone(),
        )?;
        pio.insert(
            u64::from(layout::DEBUG_EXIT_PORT),
            1,
            Arc::new(Mutex::new(DebugExit::new(control.clone()))),
        )?;
        pio.insert(
            u64::from(layout::RESET_CF9_PORT),
            1,
            Arc::new(Mutex::new(ResetControl::new(control.clone()))),
        )?;
        pio.insert(
            u64::from(layout::POST_PORT),
            1,
            Arc::new(Mutex::new(PostPort::new(cfg.trace_post))),
        )?;
        Ok(Board {
            memory,
            pio,
            mmio,
            control,
            com1,
        })
    }

    /// Guest RAM, for engines and loaders.
    pub fn ram(&self) -> &GuestRam {
        self.memory.ram()
    }

    /// The stop control (timeouts, console escapes, devices).
    pub fn control(&self) -> Arc<VmControl> {
        self.control.clone()
    }

    /// COM1, for feeding it input.
    pub fn com1(&self) -> Arc<Mutex<Uart16550>> {
        self.com1.clone()
    }

    /// Run `vcpu` until the machine stops.
    pub fn run(&self, vcpu: &mut dyn Vcpu) -> Result<StopReason, VcpuError> {
        self.control.add_kicker(vcpu.kicker());
        loop {
            if let Some(r) = self.control.stop_reason() {
                return Ok(r);
            }
            match vcpu.run(self)? {
                VcpuExit::Kicked | VcpuExit::InterruptWindow | VcpuExit::Debug => {}
                VcpuExit::Shutdown => {
                    self.control.request_stop(StopReason::TripleFault);
                }
                VcpuExit::Halted => {
                    // This board has no interrupt controller yet, so nothing can wake a
                    // halted processor: stop instead of hanging.
                    self.control.request_stop(StopReason::HaltedForever);
                }
            }
        }
    }
}

impl VmIo for Board {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        self.pio.read(u64::from(port), data);
    }
    fn pio_write(&self, port: u16, data: &[u8]) {
        self.pio.write(u64::from(port), data);
    }
    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        self.mmio.read(addr, data);
    }
    fn mmio_write(&self, addr: u64, data: &[u8]) {
        self.mmio.write(addr, data);
    }
}
