//! The vx PC board: guest memory, the port and MMIO buses with the devices wired at their
//! `layout` addresses, and the run loop that drives one vCPU of any engine.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use cpu::{GuestRam, VmIo};

use crate::bus::{Bus, BusDevice, BusError};
use crate::clock::{Clock, HostClock};
use crate::control::VmControl;
use crate::devices::acpi_pm::{self, AcpiPm};
use crate::devices::cmos_rtc::{self, CmosRtc};
use crate::devices::debug_exit::DebugExit;
use crate::devices::i8042::{I8042, I8042Command, I8042Data};
use crate::devices::pci_host::{self, PciConfigAddress, PciConfigData, PciHost};
use crate::devices::pit8254::{self, Pit8254, PitPortB, PitRegs};
use crate::devices::post::PostPort;
use crate::devices::reset_cf9::ResetControl;
use crate::devices::uart16550::Uart16550;
use crate::interrupts::Interrupts;
use crate::layout;
use crate::memory::{GuestMemory, MemoryError};
use crate::wakeup::Wakeup;

#[path = "run_loop.rs"]
mod run_loop;

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
pub struct Board {
    memory: GuestMemory,
    pio: Bus,
    mmio: Bus,
    control: Arc<VmControl>,
    com1: Arc<Mutex<Uart16550>>,
    /// Guest time for every timer device.
    pub(crate) clock: Arc<dyn Clock>,
    /// PIC pair, IOAPIC and local APIC.
    pub(crate) hub: Arc<Interrupts>,
    pub(crate) pit: Arc<Mutex<Pit8254>>,
    pub(crate) rtc: Arc<Mutex<CmosRtc>>,
    /// ACPI PM block (its timer can raise the SCI).
    pub(crate) pm: Arc<Mutex<AcpiPm>>,
    /// Wakes the halted run loop and the timer thread (interrupts, timer reprogramming,
    /// stop requests).
    pub(crate) wake: Arc<Wakeup>,
    /// Set by the timer thread when it kicked the vCPU at a deadline; the run loop clears it
    /// after polling the devices and pokes the timer thread to look at the next deadline.
    pub(crate) timer_fired: AtomicBool,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("memory", &self.memory)
            .field("pio", &self.pio)
            .field("mmio", &self.mmio)
            .field("hub", &self.hub)
            .finish()
    }
}

impl Board {
    /// Build the board described by `cfg`.
    pub fn new(cfg: BoardConfig) -> Result<Board, BoardError> {
        let memory = GuestMemory::new(cfg.memory, cfg.bios.as_deref())?;
        let control = Arc::new(VmControl::new());
        let clock: Arc<dyn Clock> = Arc::new(HostClock::new());
        let wake = Arc::new(Wakeup::new());
        {
            let w = wake.clone();
            control.add_notify(Box::new(move || w.poke()));
        }
        let mut pio = Bus::new("pio", 1);
        let mut mmio = Bus::new("mmio", 4096);
        let hub = Interrupts::new(clock.clone());
        hub.attach(&mut pio, &mut mmio)?;
        let com1 = Arc::new(Mutex::new(Uart16550::new(
            cfg.serial_out,
            hub.isa_line(layout::irq::COM1),
        )));
        pio.insert(
            u64::from(layout::COM1_PORT),
            u64::from(layout::COM1_LEN),
            com1.clone(),
        )?;
        let pit = Pit8254::new_shared(clock.clone(), hub.isa_line(layout::irq::PIT));
        pio.insert(
            u64::from(layout::PIT_PORT),
            4,
            // Counter 0 and the control word decide IRQ0's timing.
            Arc::new(Mutex::new(Retimed(
                PitRegs(pit.clone()),
                wake.clone(),
                (1 << pit8254::COUNTER0) | (1 << pit8254::CONTROL),
            ))),
        )?;
        pio.insert(
            u64::from(layout::PORT_B),
            1,
            Arc::new(Mutex::new(PitPortB(pit.clone()))),
        )?;
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let mut rtc = CmosRtc::new(start, clock.clone(), hub.isa_line(layout::irq::RTC));
        fill_cmos_memory_size(&mut rtc, memory.size());
        let rtc = Arc::new(Mutex::new(rtc));
        pio.insert(
            u64::from(layout::RTC_PORT),
            2,
            // Only data writes (registers A and B) change when the RTC interrupts next.
            Arc::new(Mutex::new(Retimed(
                Shared(rtc.clone()),
                wake.clone(),
                1 << cmos_rtc::DATA,
            ))),
        )?;
        let pm = AcpiPm::new_shared(
            clock.clone(),
            hub.isa_line(layout::irq::SCI),
            control.clone(),
        );
        pio.insert(
            u64::from(layout::ACPI_PM_PORT),
            u64::from(layout::ACPI_PM_LEN),
            // Enabling the timer's SCI changes when the PM block needs a poll next.
            Arc::new(Mutex::new(Retimed(
                Shared(pm.clone()),
                wake.clone(),
                (1 << acpi_pm::PM1_STS) | (1 << acpi_pm::PM1_EN),
            ))),
        )?;
        let kbc = I8042::new_shared(
            hub.isa_line(layout::irq::KEYBOARD),
            hub.isa_line(layout::irq::MOUSE),
            control.clone(),
        );
        pio.insert(
            u64::from(layout::I8042_DATA_PORT),
            1,
            Arc::new(Mutex::new(I8042Data(kbc.clone()))),
        )?;
        pio.insert(
            u64::from(layout::I8042_CMD_PORT),
            1,
            Arc::new(Mutex::new(I8042Command(kbc))),
        )?;
        let pci = PciHost::new_shared();
        // CONFIG_ADDRESS takes the dword access at 0xcf8; 0xcf9 is the reset register.
        pio.insert(
            u64::from(layout::PCI_CONFIG_PORT),
            1,
            Arc::new(Mutex::new(PciConfigAddress(pci.clone()))),
        )?;
        pio.insert(
            u64::from(layout::PCI_CONFIG_PORT) + 4,
            pci_host::CONFIG_DATA_LEN,
            Arc::new(Mutex::new(PciConfigData(pci))),
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
            clock,
            hub,
            pit,
            rtc,
            pm,
            wake,
            timer_fired: AtomicBool::new(false),
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

    /// The interrupt hub (PIC pair, IOAPIC, local APIC).
    pub fn interrupts(&self) -> Arc<Interrupts> {
        self.hub.clone()
    }
}

/// Fill the CMOS memory-size bytes as a PC BIOS does: base memory 640 KiB, extended memory
/// above 1 MiB in KiB (at most 63 MiB, twice), memory between 16 MiB and the hole in 64 KiB
/// units, memory above 4 GiB in 64 KiB units (3 bytes); then the checksum.
fn fill_cmos_memory_size(rtc: &mut CmosRtc, size: u64) {
    let low = size.min(layout::LOW_MEM_LIMIT);
    let high = size - low;
    let base_kib = (layout::LOW_RAM_END >> 10) as u16;
    let ext_kib = (low.saturating_sub(layout::HIGH_RAM_START) >> 10).min(0xfc00) as u16;
    let above_16m = (low.saturating_sub(16 << 20) >> 16).min(0xffff) as u16;
    let above_4g = (high >> 16).min(0xff_ffff) as u32;
    let [b0, b1] = base_kib.to_le_bytes();
    let [e0, e1] = ext_kib.to_le_bytes();
    let [m0, m1] = above_16m.to_le_bytes();
    let [h0, h1, h2, _] = above_4g.to_le_bytes();
    for (i, v) in [
        (cmos_rtc::CMOS_BASE_MEM_LO, b0),
        (cmos_rtc::CMOS_BASE_MEM_HI, b1),
        (cmos_rtc::CMOS_EXT_MEM_LO, e0),
        (cmos_rtc::CMOS_EXT_MEM_HI, e1),
        (cmos_rtc::CMOS_EXT_MEM2_LO, e0),
        (cmos_rtc::CMOS_EXT_MEM2_HI, e1),
        (cmos_rtc::CMOS_MEM_ABOVE_16M_LO, m0),
        (cmos_rtc::CMOS_MEM_ABOVE_16M_HI, m1),
        (cmos_rtc::CMOS_MEM_ABOVE_4G_LO, h0),
        (cmos_rtc::CMOS_MEM_ABOVE_4G_MID, h1),
        (cmos_rtc::CMOS_MEM_ABOVE_4G_HI, h2),
    ] {
        rtc.set_cmos_byte(i, v);
    }
    rtc.update_checksum();
}

/// A device shared between the bus and the board's poll loop (the RTC, the ACPI PM block).
struct Shared<T>(Arc<Mutex<T>>);

impl<T: BusDevice> BusDevice for Shared<T> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read(offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(offset, data);
    }
}

/// A timer device's registers: after a guest write to an offset in the bit mask `.2` (one that
/// may move the device's next deadline) the timer thread is told to look again.
struct Retimed<D>(D, Arc<Wakeup>, u64);

impl<D: BusDevice> BusDevice for Retimed<D> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.read(offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.write(offset, data);
        if offset < 64 && self.2 & (1 << offset) != 0 {
            self.1.poke();
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
    fn msr_read(&self, index: u32, tsc: u64) -> Option<u64> {
        self.hub.msr_read(index, tsc)
    }
    fn msr_write(&self, index: u32, value: u64, tsc: u64) -> bool {
        self.hub.msr_write(index, value, tsc)
    }
}
