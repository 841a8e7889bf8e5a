//! Tests of the interrupt hub through its bus windows, as a guest programs it.

use std::sync::atomic::AtomicU64;

use super::*;
use crate::clock::ManualClock;
use crate::devices::lapic::reg;

struct Rig {
    hub: Arc<Interrupts>,
    pio: Bus,
    mmio: Bus,
    clock: Arc<ManualClock>,
    notified: Arc<AtomicU64>,
}

fn rig() -> Rig {
    let clock = Arc::new(ManualClock::new());
    let hub = Interrupts::new(clock.clone());
    let mut pio = Bus::new("pio", 1);
    let mut mmio = Bus::new("mmio", 4096);
    hub.attach(&mut pio, &mut mmio).expect("free ranges");
    let notified = Arc::new(AtomicU64::new(0));
    let n = notified.clone();
    hub.set_notify(Box::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
    }));
    Rig {
        hub,
        pio,
        mmio,
        clock,
        notified,
    }
}

impl Rig {
    fn out(&self, port: u16, v: u8) {
        self.pio.write(u64::from(port), &[v]);
    }
    fn lapic_w(&self, off: u64, v: u32) {
        self.mmio.write(layout::LAPIC_BASE + off, &v.to_le_bytes());
    }
    fn lapic_r(&self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.mmio.read(layout::LAPIC_BASE + off, &mut b);
        u32::from_le_bytes(b)
    }
    fn redir(&self, pin: u32, low: u32) {
        let w = |off: u64, v: u32| self.mmio.write(layout::IOAPIC_BASE + off, &v.to_le_bytes());
        w(0, 0x10 + 2 * pin + 1);
        w(0x10, 0);
        w(0, 0x10 + 2 * pin);
        w(0x10, low);
    }
    /// ICW1-4 for both PICs: master base 0x20, slave 0x28, everything unmasked.
    fn init_pics(&self) {
        for (port, base, icw3) in [(0x20u16, 0x20u8, 4u8), (0xa0, 0x28, 2)] {
            self.out(port, 0x11);
            self.out(port + 1, base);
            self.out(port + 1, icw3);
            self.out(port + 1, 0x01);
            self.out(port + 1, 0x00);
        }
    }
}

#[test]
fn test_hub_extint_passes_pic_through() {
    let r = rig();
    r.init_pics();
    let com1 = r.hub.isa_line(layout::irq::COM1);
    assert!(!r.hub.has_pending());
    com1.set_level(true);
    assert!(r.hub.has_pending());
    assert!(r.notified.load(Ordering::SeqCst) >= 1, "INTR rising wakes");
    assert_eq!(r.hub.acknowledge(), Some(0x24));
    assert!(!r.hub.has_pending(), "in service on the PIC");
    // Masking LINT0 cuts the 8259 off.
    com1.set_level(false);
    r.out(0x20, 0x20); // non-specific EOI
    r.lapic_w(reg::LVT_LINT0, 0x1_0700);
    com1.set_level(true);
    assert!(!r.hub.has_pending());
    r.lapic_w(reg::LVT_LINT0, 0x700);
    assert!(r.hub.has_pending());
}

#[test]
fn test_hub_slave_pic_through_cascade() {
    let r = rig();
    r.init_pics();
    r.hub.isa_line(layout::irq::RTC).set_level(true);
    assert_eq!(r.hub.acknowledge(), Some(0x28));
}

#[test]
fn test_hub_isa_irq0_routes_to_ioapic_pin2() {
    let r = rig();
    r.lapic_w(reg::LVT_LINT0, 0x1_0700); // APIC mode: 8259 off
    r.redir(2, 0x30);
    let irq0 = r.hub.isa_line(layout::irq::PIT);
    irq0.set_level(true);
    assert!(r.hub.has_pending());
    assert_eq!(r.hub.acknowledge(), Some(0x30));
    assert_eq!(r.lapic_r(reg::ISR + 0x10), 1 << 16);
    r.lapic_w(reg::EOI, 0);
    assert_eq!(r.lapic_r(reg::ISR + 0x10), 0);
    // Pin 0 is not IRQ0.
    r.redir(0, 0x31);
    irq0.set_level(false);
    irq0.set_level(true);
    assert_eq!(r.hub.acknowledge(), Some(0x30));
}

#[test]
fn test_hub_level_sci_redelivered_after_eoi_while_asserted() {
    let r = rig();
    r.lapic_w(reg::LVT_LINT0, 0x1_0700);
    r.redir(9, 0x8000 | 0x49);
    let sci = r.hub.isa_line(layout::irq::SCI);
    sci.set_level(true);
    assert_eq!(r.hub.acknowledge(), Some(0x49));
    assert!(!r.hub.has_pending());
    r.lapic_w(reg::EOI, 0); // broadcast: still asserted, comes back
    assert!(r.hub.has_pending());
    assert_eq!(r.hub.acknowledge(), Some(0x49));
    sci.set_level(false);
    r.lapic_w(reg::EOI, 0);
    assert!(!r.hub.has_pending());
    // PCI-style pin 16, masked by default until programmed.
    let gsi = r.hub.gsi_line(16);
    gsi.set_level(true);
    assert!(!r.hub.has_pending());
    r.redir(16, 0x8000 | 0x51);
    assert_eq!(r.hub.acknowledge(), Some(0x51));
}

#[test]
fn test_hub_tsc_deadline_msr_and_timer() {
    let r = rig();
    assert_eq!(r.hub.msr_read(0x10, 0), None);
    assert!(!r.hub.msr_write(0x10, 0, 0));
    r.lapic_w(reg::LVT_TIMER, (2 << 17) | 0xec);
    r.clock.advance(1000);
    let before = r.notified.load(Ordering::SeqCst);
    // TSC reads 7000 now (clock 1000): the deadline 9000 is 2000 ns away.
    assert!(r.hub.msr_write(MSR_TSC_DEADLINE, 9000, 7000));
    assert!(
        r.notified.load(Ordering::SeqCst) > before,
        "timer thread told"
    );
    assert_eq!(r.hub.msr_read(MSR_TSC_DEADLINE, 7000), Some(9000));
    assert_eq!(r.hub.next_event_ns(), Some(3000));
    r.clock.advance(1999);
    r.hub.poll();
    assert!(!r.hub.has_pending());
    r.clock.advance(1);
    r.hub.poll();
    assert_eq!(r.hub.acknowledge(), Some(0xec));
    assert_eq!(r.hub.next_event_ns(), None);
}

#[test]
fn test_hub_lapic_timer_periodic_via_mmio() {
    let r = rig();
    r.lapic_w(reg::TIMER_DIVIDE, 0xb);
    r.lapic_w(reg::LVT_TIMER, (1 << 17) | 0xef);
    r.lapic_w(reg::TIMER_INITIAL, 1_000_000);
    assert_eq!(r.hub.next_event_ns(), Some(1_000_000));
    r.clock.advance(250_000);
    assert_eq!(r.lapic_r(reg::TIMER_CURRENT), 750_000);
    r.clock.advance(10_000_000);
    r.hub.poll();
    assert_eq!(r.hub.acknowledge(), Some(0xef));
    assert_eq!(
        r.hub.acknowledge(),
        None,
        "ten missed periods, one interrupt"
    );
    // Narrow read of the version register's max-LVT byte.
    let mut b = [0u8; 1];
    r.mmio.read(layout::LAPIC_BASE + reg::VERSION + 2, &mut b);
    assert_eq!(b[0], 5);
}
