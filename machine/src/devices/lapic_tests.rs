//! Unit tests of the local APIC model (SDM Vol. 3A ch. 11): register accesses with explicit
//! times, as a manual clock would give them.

use super::*;

fn enabled_apic() -> LocalApic {
    LocalApic::new(0)
}

#[test]
fn test_lapic_power_on_virtual_wire() {
    let mut a = enabled_apic();
    assert_eq!(a.read(reg::VERSION, 0), 0x0005_0014);
    assert_eq!(a.read(reg::SVR, 0), 0x1ff);
    assert_eq!(a.read(reg::LVT_LINT0, 0), 0x700);
    assert_eq!(a.read(reg::LVT_LINT1, 0), 0x400);
    for r in [
        reg::LVT_TIMER,
        reg::LVT_THERMAL,
        reg::LVT_PERF,
        reg::LVT_ERROR,
    ] {
        assert_eq!(a.read(r, 0), LVT_MASKED, "register {r:#x}");
    }
    assert_eq!(a.read(reg::DFR, 0), 0xffff_ffff);
    assert!(a.lint0_extint());
    assert!(a.has_pending(true), "ExtINT passes INTR through");
    assert!(!a.has_pending(false));
    assert_eq!(a.acknowledge(), None, "the 8259 supplies ExtINT vectors");
}

#[test]
fn test_lapic_extint_masked_blocks_intr() {
    let mut a = enabled_apic();
    a.write(reg::LVT_LINT0, 0x700 | LVT_MASKED, 0);
    assert!(!a.has_pending(true));
    a.write(reg::LVT_LINT0, 0x700, 0);
    assert!(a.has_pending(true));
    // Software-disabling the APIC masks the LVT.
    a.write(reg::SVR, 0xff, 0);
    assert!(!a.has_pending(true));
    assert_ne!(a.read(reg::LVT_LINT0, 0) & LVT_MASKED, 0);
}

#[test]
fn test_lapic_priority_tpr_and_isr() {
    let mut a = enabled_apic();
    assert!(a.accept(0x41, false));
    assert!(a.accept(0x52, false));
    assert_eq!(a.read(reg::IRR + 0x20, 0), (1 << 1) | (1 << 18));
    a.write(reg::TPR, 0x60, 0);
    assert!(!a.has_pending(false), "both classes at or below TPR");
    assert_eq!(a.read(reg::PPR, 0), 0x60);
    a.write(reg::TPR, 0x50, 0);
    assert!(!a.has_pending(false), "class 5 is not above PPR class 5");
    a.write(reg::TPR, 0x4f, 0);
    assert_eq!(a.acknowledge(), Some(0x52));
    assert_eq!(a.read(reg::ISR + 0x20, 0), 1 << 18);
    assert_eq!(a.read(reg::PPR, 0), 0x50, "ISR class above TPR");
    assert_eq!(a.acknowledge(), None, "0x41 is below the in-service 0x52");
    assert_eq!(a.write(reg::EOI, 0, 0), None, "edge: no broadcast");
    assert_eq!(a.read(reg::PPR, 0), 0x4f);
    a.write(reg::TPR, 0, 0);
    assert_eq!(a.acknowledge(), Some(0x41));
    // A higher vector nests over a lower one in service.
    a.accept(0x90, false);
    assert_eq!(a.acknowledge(), Some(0x90));
    a.write(reg::EOI, 0, 0);
    assert_eq!(a.read(reg::ISR + 0x20, 0), 1 << 1, "EOI retired 0x90 first");
}

#[test]
fn test_lapic_level_eoi_broadcast_and_tmr() {
    let mut a = enabled_apic();
    a.accept(0x61, true);
    assert_eq!(a.read(reg::TMR + 0x30, 0), 1 << 1);
    assert_eq!(a.acknowledge(), Some(0x61));
    assert_eq!(a.write(reg::EOI, 0, 0), Some(0x61));
    assert_eq!(a.read(reg::TMR + 0x30, 0), 0);
    assert_eq!(a.write(reg::EOI, 0, 0), None, "nothing in service");
}

#[test]
fn test_lapic_illegal_vector_and_esr_latch() {
    let mut a = enabled_apic();
    assert!(!a.accept(5, false));
    assert_eq!(a.read(reg::ESR, 0), 0, "not latched until written");
    a.write(reg::ESR, 0, 0);
    assert_eq!(a.read(reg::ESR, 0), ESR_RECV_ILLEGAL);
    a.write(reg::ESR, 0, 0);
    assert_eq!(a.read(reg::ESR, 0), 0);
}

#[test]
fn test_lapic_self_ipi_and_shorthands() {
    let mut a = enabled_apic();
    a.write(reg::ICR_LOW, SHORTHAND_SELF | 0x33, 0);
    assert_eq!(a.acknowledge(), Some(0x33));
    a.write(reg::EOI, 0, 0);
    a.write(reg::ICR_LOW, SHORTHAND_ALL | 0x34, 0);
    assert_eq!(a.acknowledge(), Some(0x34));
    a.write(reg::EOI, 0, 0);
    a.write(reg::ICR_LOW, SHORTHAND_OTHERS | 0x35, 0);
    assert_eq!(a.acknowledge(), None);
    // Physical destination 0 is this APIC; 1 is nobody.
    a.write(reg::ICR_HIGH, 1 << 24, 0);
    a.write(reg::ICR_LOW, 0x36, 0);
    assert_eq!(a.acknowledge(), None);
    a.write(reg::ICR_HIGH, 0, 0);
    a.write(reg::ICR_LOW, 0x37, 0);
    assert_eq!(a.acknowledge(), Some(0x37));
    assert_eq!(a.read(reg::ICR_LOW, 0) & LVT_DELIVERY_STATUS, 0, "idle");
    // INIT to others is ignored.
    a.write(reg::ICR_LOW, SHORTHAND_OTHERS | DM_INIT, 0);
    assert!(!a.has_pending(false));
}

#[test]
fn test_lapic_one_shot_timer() {
    let mut a = enabled_apic();
    a.write(reg::TIMER_DIVIDE, 0b0001, 0); // divide by 4
    a.write(reg::LVT_TIMER, 0xec, 0);
    a.write(reg::TIMER_INITIAL, 1000, 100);
    assert_eq!(a.next_event_ns(), Some(100 + 4000));
    assert_eq!(a.read(reg::TIMER_CURRENT, 100 + 400), 900);
    a.poll(4099);
    assert!(!a.has_pending(false));
    a.poll(4100);
    assert_eq!(a.acknowledge(), Some(0xec));
    assert_eq!(a.read(reg::TIMER_CURRENT, 5000), 0);
    assert_eq!(a.next_event_ns(), None, "one-shot: disarmed");
    a.write(reg::EOI, 0, 5000);
    a.poll(1_000_000);
    assert!(!a.has_pending(false));
}

#[test]
fn test_lapic_periodic_timer_coalesces_missed_periods() {
    let mut a = enabled_apic();
    a.write(reg::TIMER_DIVIDE, 0b1011, 0); // divide by 1
    a.write(reg::LVT_TIMER, TIMER_PERIODIC | 0xef, 0);
    a.write(reg::TIMER_INITIAL, 100, 0);
    assert_eq!(a.read(reg::TIMER_CURRENT, 130), 70);
    a.poll(100);
    assert_eq!(a.acknowledge(), Some(0xef));
    a.write(reg::EOI, 0, 100);
    assert_eq!(a.next_event_ns(), Some(200));
    // A long pause: one interrupt, and the next period lines up with the original grid.
    a.poll(1050);
    assert_eq!(a.acknowledge(), Some(0xef));
    assert_eq!(a.acknowledge(), None);
    assert_eq!(a.next_event_ns(), Some(1100));
    assert_eq!(a.read(reg::TIMER_CURRENT, 1075), 25);
    // Masked: counts, no interrupt.
    a.write(reg::EOI, 0, 1075);
    a.write(reg::LVT_TIMER, TIMER_PERIODIC | LVT_MASKED | 0xef, 1075);
    a.poll(1100);
    assert!(!a.has_pending(false));
    assert_eq!(a.next_event_ns(), Some(1200));
    // Writing 0 stops it.
    a.write(reg::TIMER_INITIAL, 0, 1150);
    assert_eq!(a.next_event_ns(), None);
}

#[test]
fn test_lapic_divide_configuration() {
    let mut a = enabled_apic();
    a.write(reg::LVT_TIMER, 0x40, 0);
    for (conf, div) in [
        (0b0000, 2),
        (0b0001, 4),
        (0b0010, 8),
        (0b0011, 16),
        (0b1000, 32),
        (0b1001, 64),
        (0b1010, 128),
        (0b1011, 1),
    ] {
        a.write(reg::TIMER_DIVIDE, conf, 0);
        assert_eq!(a.read(reg::TIMER_DIVIDE, 0), conf);
        a.write(reg::TIMER_INITIAL, 10, 0);
        assert_eq!(a.next_event_ns(), Some(10 * div), "divide conf {conf:#b}");
    }
}

#[test]
fn test_lapic_tsc_deadline_timer() {
    let mut a = enabled_apic();
    // Not in TSC-deadline mode: the MSR write is ignored.
    a.set_tsc_deadline(5000, 1000, 0);
    assert_eq!(a.tsc_deadline(), 0);
    assert_eq!(a.next_event_ns(), None);
    a.write(reg::LVT_TIMER, TIMER_TSC_DEADLINE | 0xee, 0);
    // Initial-count writes do nothing in this mode.
    a.write(reg::TIMER_INITIAL, 10, 0);
    assert_eq!(a.next_event_ns(), None);
    // TSC is 1000 when the clock reads 50: fire 4000 ns later.
    a.set_tsc_deadline(5000, 1000, 50);
    assert_eq!(a.tsc_deadline(), 5000);
    assert_eq!(a.next_event_ns(), Some(4050));
    a.poll(4049);
    assert!(!a.has_pending(false));
    a.poll(4050);
    assert_eq!(a.acknowledge(), Some(0xee));
    assert_eq!(a.tsc_deadline(), 0, "reads 0 after it fired");
    // A deadline in the past fires at once; 0 disarms.
    a.write(reg::EOI, 0, 5000);
    a.set_tsc_deadline(10, 9000, 5000);
    assert_eq!(a.next_event_ns(), Some(5000));
    a.set_tsc_deadline(0, 9000, 5000);
    assert_eq!(a.next_event_ns(), None);
    // Leaving the mode disarms.
    a.set_tsc_deadline(99_999, 9000, 5000);
    a.write(reg::LVT_TIMER, 0xee, 5000);
    assert_eq!(a.next_event_ns(), None);
}

#[test]
fn test_lapic_logical_destination_flat_and_cluster() {
    let mut a = enabled_apic();
    a.write(reg::LDR, 0x0400_0000, 0);
    assert!(a.matches_destination(0x04, true));
    assert!(a.matches_destination(0x0c, true));
    assert!(!a.matches_destination(0x03, true));
    a.write(reg::DFR, 0x0fff_ffff, 0); // cluster model
    a.write(reg::LDR, 0x2100_0000, 0);
    assert!(a.matches_destination(0x21, true));
    assert!(!a.matches_destination(0x11, true));
    assert!(a.matches_destination(0, false));
    assert!(a.matches_destination(0xff, false));
    assert!(!a.matches_destination(3, false));
}

#[test]
fn test_lapic_narrow_id_and_illegal_register() {
    let mut a = enabled_apic();
    a.write(reg::ID, 0x0300_0000, 0);
    assert_eq!(a.read(reg::ID, 0), 0x0300_0000);
    assert!(a.matches_destination(3, false));
    a.read(0x3f0, 0);
    a.write(reg::ESR, 0, 0);
    assert_eq!(a.read(reg::ESR, 0), ESR_ILLEGAL_REGISTER);
}
