//! The board's interrupt hub: the 8259 pair, the I/O APIC and the local APIC wired as on a
//! PC (Intel SDM Vol. 3A ch. 11; 82093AA datasheet; the ACPI MADT vx's firmware describes:
//! one LAPIC at 0xfee00000, one IOAPIC at 0xfec00000 with GSI base 0, ISA IRQ0 -> GSI 2).
//!
//! Devices get `IrqLine`s (`isa_line`: PIC input and IOAPIC pin; `gsi_line`: IOAPIC only);
//! the board's run loop asks `has_pending` and runs the INTA cycle with `acknowledge`.
//!
//! Locking: the IOAPIC and the LAPIC live behind one lock (`core`), so an EOI broadcast or a
//! routed IRQ never nests two device locks. The 8259 pair keeps its own lock, always taken
//! *after* `core` when both are held (only `acknowledge` and `has_pending` do that); the
//! pair's INTR output is an atomic flag, so the pair never calls back into the hub. Devices
//! call their line with their own lock held: the hub never calls into a device. The notify
//! callback runs with no hub lock held and must not call back into the hub's lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::bus::{Bus, BusDevice, BusError};
use crate::clock::Clock;
use crate::devices::ioapic::{DeliveryMode, IoApic, IoApicMessage};
use crate::devices::lapic::LocalApic;
use crate::devices::pic8259::{ElcrPorts, Pic8259Pair, PicPorts};
use crate::irq::IrqLine;
use crate::layout;

/// IA32_TSC_DEADLINE (SDM Vol. 4 table 2-2).
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// Called when something may need the vCPU's attention (an interrupt became pending, or a
/// timer was reprogrammed).
pub type Notify = Arc<dyn Fn() + Send + Sync>;

struct Core {
    lapic: LocalApic,
    ioapic: IoApic,
    /// ExtINT messages from the IOAPIC not yet acknowledged.
    ioapic_extint: bool,
    logged_nmi: bool,
}

impl Core {
    /// Hand IOAPIC messages to the local APIC; true if one was accepted.
    fn route(&mut self, msgs: impl IntoIterator<Item = IoApicMessage>) -> bool {
        let mut any = false;
        for m in msgs {
            if !self.lapic.matches_destination(m.dest, m.logical) {
                continue;
            }
            match m.mode {
                DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                    any |= self.lapic.accept(m.vector, m.level);
                }
                DeliveryMode::ExtInt => {
                    self.ioapic_extint = true;
                    any = true;
                }
                _ => {
                    if !self.logged_nmi {
                        self.logged_nmi = true;
                        tracing::warn!(
                            "ioapic: {:?} delivery dropped (not modelled, logged once)",
                            m.mode
                        );
                    }
                }
            }
        }
        any
    }
}

/// The 8259's INTR output: a flag the hub reads, plus a wake-up.
struct IntrLine {
    level: AtomicBool,
    hub_notify: Arc<RwLock<Option<Notify>>>,
}

impl IrqLine for IntrLine {
    fn set_level(&self, high: bool) {
        let was = self.level.swap(high, Ordering::AcqRel);
        if high && !was {
            call_notify(&self.hub_notify);
        }
    }
}

fn call_notify(n: &RwLock<Option<Notify>>) {
    let f = n.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(f) = f {
        f();
    }
}

/// The interrupt hub (see the file header).
pub struct Interrupts {
    clock: Arc<dyn Clock>,
    pic: Arc<Pic8259Pair>,
    intr: Arc<IntrLine>,
    core: Mutex<Core>,
    notify: Arc<RwLock<Option<Notify>>>,
}

impl std::fmt::Debug for Interrupts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupts")
            .field("pic_intr", &self.intr.level.load(Ordering::Relaxed))
            .finish()
    }
}

impl Interrupts {
    /// A hub in the power-on state (LAPIC in virtual wire mode, IOAPIC entries masked),
    /// taking time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Interrupts> {
        let notify: Arc<RwLock<Option<Notify>>> = Arc::new(RwLock::new(None));
        let intr = Arc::new(IntrLine {
            level: AtomicBool::new(false),
            hub_notify: notify.clone(),
        });
        Arc::new(Interrupts {
            clock,
            pic: Pic8259Pair::new(intr.clone()),
            intr,
            core: Mutex::new(Core {
                lapic: LocalApic::new(0),
                ioapic: IoApic::new(),
                ioapic_extint: false,
                logged_nmi: false,
            }),
            notify,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Install the wake-up callback (replacing any previous one).
    pub fn set_notify(&self, f: Box<dyn Fn() + Send + Sync>) {
        *self.notify.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::from(f));
    }

    fn notify(&self) {
        call_notify(&self.notify);
    }

    /// The 8259 pair (tests, inspection).
    pub fn pic(&self) -> &Arc<Pic8259Pair> {
        &self.pic
    }

    /// A line for ISA IRQ `irq` (0-15): drives PIC input `irq` and IOAPIC pin `irq` (IRQ0 goes
    /// to pin 2, as the MADT's interrupt source override says).
    pub fn isa_line(self: &Arc<Self>, irq: u8) -> Arc<dyn IrqLine> {
        Arc::new(HubLine {
            hub: self.clone(),
            pic_input: Some(irq),
            pin: if irq == 0 { 2 } else { usize::from(irq) },
        })
    }

    /// A line for IOAPIC pin `pin` only (16-23: PCI interrupts).
    pub fn gsi_line(self: &Arc<Self>, pin: u8) -> Arc<dyn IrqLine> {
        Arc::new(HubLine {
            hub: self.clone(),
            pic_input: None,
            pin: usize::from(pin),
        })
    }

    fn set_pin(&self, pin: usize, level: bool) {
        let accepted = {
            let mut c = self.lock();
            let m = c.ioapic.set_pin(pin, level);
            c.route(m)
        };
        if accepted {
            self.notify();
        }
    }

    /// Map the PIC ports, the ELCR, and the LAPIC and IOAPIC windows.
    pub fn attach(self: &Arc<Self>, pio: &mut Bus, mmio: &mut Bus) -> Result<(), BusError> {
        pio.insert(
            u64::from(layout::PIC_MASTER_PORT),
            2,
            Arc::new(Mutex::new(PicPorts::master(self.pic.clone()))),
        )?;
        pio.insert(
            u64::from(layout::PIC_SLAVE_PORT),
            2,
            Arc::new(Mutex::new(PicPorts::slave(self.pic.clone()))),
        )?;
        pio.insert(
            u64::from(layout::ELCR_PORT),
            2,
            Arc::new(Mutex::new(ElcrPorts::new(self.pic.clone()))),
        )?;
        mmio.insert(
            layout::LAPIC_BASE,
            layout::APIC_WINDOW,
            Arc::new(Mutex::new(LapicMmio(self.clone()))),
        )?;
        mmio.insert(
            layout::IOAPIC_BASE,
            layout::APIC_WINDOW,
            Arc::new(Mutex::new(IoApicMmio(self.clone()))),
        )?;
        Ok(())
    }

    /// Advance the LAPIC timer to now.
    pub fn poll(&self) {
        let now = self.clock.now_ns();
        self.lock().lapic.poll(now);
    }

    /// When the LAPIC timer fires next.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.lock().lapic.next_event_ns()
    }

    /// Whether the processor would take an interrupt now if IF were 1.
    pub fn has_pending(&self) -> bool {
        let pic_intr = self.intr.level.load(Ordering::Acquire);
        let c = self.lock();
        c.lapic.has_pending(pic_intr) || (c.ioapic_extint && pic_intr)
    }

    /// The INTA cycle: the vector to deliver (LAPIC IRR -> ISR, or the 8259's vector through
    /// LINT0 ExtINT), None if nothing is pending.
    pub fn acknowledge(&self) -> Option<u8> {
        let mut c = self.lock();
        if let Some(v) = c.lapic.acknowledge() {
            return Some(v);
        }
        let pic_intr = self.intr.level.load(Ordering::Acquire);
        if pic_intr && (c.lapic.lint0_extint() || c.ioapic_extint) {
            c.ioapic_extint = false;
            // Lock order: core, then the pair's lock (the pair never calls back here).
            return Some(self.pic.acknowledge());
        }
        None
    }

    /// RDMSR of a machine-owned MSR (IA32_TSC_DEADLINE); None: not ours.
    pub fn msr_read(&self, index: u32, _tsc: u64) -> Option<u64> {
        (index == MSR_TSC_DEADLINE).then(|| self.lock().lapic.tsc_deadline())
    }

    /// WRMSR of a machine-owned MSR, with the TSC reading `tsc` now; false: not ours.
    pub fn msr_write(&self, index: u32, value: u64, tsc: u64) -> bool {
        if index != MSR_TSC_DEADLINE {
            return false;
        }
        let now = self.clock.now_ns();
        let changed = {
            let mut c = self.lock();
            let before = c.lapic.next_event_ns();
            c.lapic.set_tsc_deadline(value, tsc, now);
            c.lapic.next_event_ns() != before
        };
        // The timer thread must re-evaluate its deadline.
        if changed {
            self.notify();
        }
        true
    }

    fn lapic_read(&self, offset: u64) -> u32 {
        let now = self.clock.now_ns();
        self.lock().lapic.read(offset, now)
    }

    fn lapic_write(&self, offset: u64, v: u32) {
        let now = self.clock.now_ns();
        let pic_intr = self.intr.level.load(Ordering::Acquire);
        let changed = {
            let mut c = self.lock();
            let before = (c.lapic.has_pending(pic_intr), c.lapic.next_event_ns());
            if let Some(vector) = c.lapic.write(offset, v, now) {
                // EOI of a level-triggered interrupt: broadcast to the IOAPIC.
                let msgs = c.ioapic.eoi(vector);
                c.route(msgs);
            }
            let after = (c.lapic.has_pending(pic_intr), c.lapic.next_event_ns());
            (after.0 && !before.0) || after.1 != before.1
        };
        // An IPI to self, a lower TPR or a reprogrammed timer needs the vCPU's attention.
        if changed {
            self.notify();
        }
    }

    fn ioapic_read(&self, offset: u64) -> u32 {
        self.lock().ioapic.mmio_read(offset)
    }

    fn ioapic_write(&self, offset: u64, v: u32) {
        let accepted = {
            let mut c = self.lock();
            let msgs = c.ioapic.mmio_write(offset, v);
            c.route(msgs)
        };
        if accepted {
            self.notify();
        }
    }
}

/// A device's interrupt line into the hub.
struct HubLine {
    hub: Arc<Interrupts>,
    pic_input: Option<u8>,
    pin: usize,
}

impl IrqLine for HubLine {
    fn set_level(&self, high: bool) {
        if let Some(irq) = self.pic_input {
            self.hub.pic.set_irq(irq, high);
        }
        self.hub.set_pin(self.pin, high);
    }
}

/// Read a 32-bit register image at a byte offset inside it (narrow reads of APIC registers).
fn read_narrow(v: u32, offset: u64, data: &mut [u8]) {
    let bytes = v.to_le_bytes();
    let start = (offset & 3) as usize;
    for (i, d) in data.iter_mut().enumerate() {
        *d = bytes.get(start + i).copied().unwrap_or(0);
    }
}

/// Only aligned 32-bit writes reach an APIC register (SDM Vol. 3A §11.4.1); others are dropped.
fn write_u32(offset: u64, data: &[u8]) -> Option<u32> {
    match data {
        [a, b, c, d] if offset & 3 == 0 => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        [a, b, c, d, ..] if offset & 7 == 0 => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Bus adapter for the local APIC page.
struct LapicMmio(Arc<Interrupts>);

impl BusDevice for LapicMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = self.0.lapic_read(offset & !0xf);
        read_narrow(v, offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        match write_u32(offset, data) {
            Some(v) if offset & 0xf == 0 => self.0.lapic_write(offset, v),
            _ => tracing::debug!("lapic: dropped unaligned write at {offset:#x}"),
        }
    }
}

/// Bus adapter for the IOAPIC window.
struct IoApicMmio(Arc<Interrupts>);

impl BusDevice for IoApicMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = self.0.ioapic_read(offset & !0x3);
        read_narrow(v, offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            // IOREGSEL is often written as a byte.
            (0, [b]) => self.0.ioapic_write(0, u32::from(*b)),
            _ => match write_u32(offset, data) {
                Some(v) => self.0.ioapic_write(offset, v),
                None => tracing::debug!("ioapic: dropped unaligned write at {offset:#x}"),
            },
        }
    }
}

#[cfg(test)]
#[path = "interrupts_tests.rs"]
mod tests;
