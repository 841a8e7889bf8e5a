//! ACPI fixed hardware register block (ACPI 6.5 §4.8 "ACPI Hardware Model": §4.8.3.1 PM1
//! event grouping, §4.8.3.2 PM1 control grouping, §4.8.3.3 power management timer, §4.8.4.1
//! GPE0 block): the PM1a event and control registers, the 24/32-bit PM timer and a GPE0 block,
//! as the FADT built by `firmware::acpi` describes them.
//!
//! Layout inside the block (offsets from `layout::ACPI_PM_PORT`):
//!
//! | offset | register | size |
//! |---|---|---|
//! | 0x00 | PM1a_STS (write 1 to clear) | 2 |
//! | 0x02 | PM1a_EN | 2 |
//! | 0x04 | PM1a_CNT | 2 |
//! | 0x08 | PM_TMR (read only, 32 bits: TMR_VAL_EXT) | 4 |
//! | 0x20 | GPE0_STS (write 1 to clear) | 2 |
//! | 0x22 | GPE0_EN | 2 |
//!
//! There is no SMI_CMD port: the hardware is always in ACPI mode, so SCI_EN reads 1 and
//! cannot be cleared. Writing SLP_EN with SLP_TYP = [`SLP_TYP_S5`] (the value the DSDT's
//! `\_S5` package gives) powers the VM off through `VmControl`; other sleep types are logged
//! once and treated as an immediate wake (WAK_STS is set so a guest waiting for the wake
//! does not spin forever).
//!
//! Not modelled: bus-master status (BM_STS/BM_RLD), the global lock (GBL_STS/GBL_RLS, there
//! is no firmware to talk to), the RTC alarm (RTC_STS), PCIe wake, the sleep button (the FADT
//! declares none), PM1b/PM2 blocks and anything raising a GPE (the GPE0 registers only
//! store what the guest writes). The power button exists as a fixed feature:
//! [`AcpiPm::press_power_button`] sets PWRBTN_STS.
//!
//! Interrupts: the SCI is level-triggered (the MADT says active high, level) and is high
//! while any status bit is set whose enable bit is set. The board calls [`AcpiPm::poll`] at
//! [`AcpiPm::next_event_ns`] so a timer carry (bit 31 of the counter changing) sets TMR_STS
//! even when the guest does not read the timer.
//!
//! Board wiring: `AcpiPm` is itself the `BusDevice` for the whole block: map one
//! `Arc<Mutex<AcpiPm>>` ([`AcpiPm::new_shared`]) at `layout::ACPI_PM_PORT` with length
//! `layout::ACPI_PM_LEN`, keep a clone to call `poll`/`next_event_ns`, and connect the SCI
//! line to ISA IRQ `layout::irq::SCI` (IOAPIC pin 9, level, active high).
//!
//! Locking: the PM block calls `IrqLine::set_level` with its own lock held (PM lock, then
//! interrupt-controller lock).

use std::sync::{Arc, Mutex};

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::control::{StopReason, VmControl};
use crate::irq::IrqLine;

/// Offset of PM1a_STS (the PM1a event block starts here).
pub const PM1_STS: u64 = 0x00;
/// Offset of PM1a_EN.
pub const PM1_EN: u64 = 0x02;
/// Offset of PM1a_CNT (the PM1a control block).
pub const PM1_CNT: u64 = 0x04;
/// Offset of PM_TMR.
pub const PM_TMR: u64 = 0x08;
/// Offset of the GPE0 block (GPE0_STS, then GPE0_EN).
pub const GPE0_BLK: u64 = 0x20;
/// Offset of GPE0_EN.
pub const GPE0_EN: u64 = GPE0_BLK + GPE0_BLK_LEN / 2;

/// FADT PM1_EVT_LEN: bytes of the PM1a event block (status + enable).
pub const PM1_EVT_LEN: u64 = 4;
/// FADT PM1_CNT_LEN: bytes of the PM1a control block.
pub const PM1_CNT_LEN: u64 = 2;
/// FADT PM_TMR_LEN: bytes of the PM timer.
pub const PM_TMR_LEN: u64 = 4;
/// FADT GPE0_BLK_LEN: bytes of the GPE0 block (half status, half enable: 16 GPEs).
pub const GPE0_BLK_LEN: u64 = 4;

/// PM1_STS/PM1_EN bit 0: timer carry status / enable.
pub const TMR_STS: u16 = 1 << 0;
/// PM1_STS bit 4: bus master status (not modelled, reads 0).
pub const BM_STS: u16 = 1 << 4;
/// PM1_STS/PM1_EN bit 5: global lock release status / enable (not modelled).
pub const GBL_STS: u16 = 1 << 5;
/// PM1_STS/PM1_EN bit 8: power button status / enable.
pub const PWRBTN_STS: u16 = 1 << 8;
/// PM1_STS/PM1_EN bit 9: sleep button status / enable (no sleep button: never set).
pub const SLPBTN_STS: u16 = 1 << 9;
/// PM1_STS/PM1_EN bit 10: RTC alarm status / enable (not modelled).
pub const RTC_STS: u16 = 1 << 10;
/// PM1_STS bit 15: wake status (set when a sleep state is left).
pub const WAK_STS: u16 = 1 << 15;

/// PM1_EN bits that exist (the rest read 0 and ignore writes).
const PM1_EN_MASK: u16 = TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS;
/// PM1_STS bits this model can set.
const PM1_STS_MASK: u16 = TMR_STS | PWRBTN_STS | WAK_STS;

/// PM1_CNT bit 0: SCI_EN (always 1: no SMI_CMD, ACPI mode only).
pub const SCI_EN: u16 = 1 << 0;
/// PM1_CNT bit 1: BM_RLD (stored, no effect).
pub const BM_RLD: u16 = 1 << 1;
/// PM1_CNT bit 2: GBL_RLS (write only, no firmware to notify: ignored).
pub const GBL_RLS: u16 = 1 << 2;
/// PM1_CNT bits 12:10: SLP_TYP.
pub const SLP_TYP_SHIFT: u16 = 10;
/// PM1_CNT SLP_TYP field mask (after shifting).
pub const SLP_TYP_MASK: u16 = 0x7;
/// PM1_CNT bit 13: SLP_EN (write only, reads 0).
pub const SLP_EN: u16 = 1 << 13;

/// The SLP_TYP value of S5 (soft off). The DSDT's `\_S5` package carries this value; any
/// value works as long as both agree, and a non-zero one means a stray SLP_EN write with
/// SLP_TYP 0 does not power the machine off.
pub const SLP_TYP_S5: u8 = 5;

/// PM timer frequency in Hz (ACPI 6.5 §4.8.3.3).
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// The timer sets TMR_STS each time this bit of the counter changes (bit 31 with
/// TMR_VAL_EXT).
const TMR_CARRY_BIT: u32 = 31;

const NS_PER_S: u128 = 1_000_000_000;

// The registers fit the block layout.rs reserves, in order, without overlapping.
const _: () = assert!(PM1_STS + PM1_EVT_LEN <= PM1_CNT);
const _: () = assert!(PM1_CNT + PM1_CNT_LEN <= PM_TMR);
const _: () = assert!(PM_TMR + PM_TMR_LEN <= GPE0_BLK);
const _: () = assert!(GPE0_BLK + GPE0_BLK_LEN <= crate::layout::ACPI_PM_LEN as u64);

/// Timer ticks at guest time `ns` (counting from the clock's origin).
fn ticks_at(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(PM_TIMER_HZ) / NS_PER_S) as u64
}

/// Earliest guest time at which the counter reaches `ticks`.
fn ns_of_tick(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * NS_PER_S).div_ceil(u128::from(PM_TIMER_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The ACPI PM register block.
pub struct AcpiPm {
    pm1_sts: u16,
    pm1_en: u16,
    /// PM1_CNT bits that are stored (BM_RLD); SCI_EN is added on read.
    pm1_cnt: u16,
    gpe0_sts: u16,
    gpe0_en: u16,
    /// Number of carries out of bit 31 already reflected in TMR_STS.
    carries_seen: u64,
    clock: Arc<dyn Clock>,
    sci: Arc<dyn IrqLine>,
    sci_level: bool,
    control: Arc<VmControl>,
    /// Sleep types already logged as unsupported (bit n = SLP_TYP n).
    logged_sleep: u8,
}

impl std::fmt::Debug for AcpiPm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcpiPm")
            .field("pm1_sts", &self.pm1_sts)
            .field("pm1_en", &self.pm1_en)
            .field("pm1_cnt", &self.pm1_cnt)
            .field("gpe0_sts", &self.gpe0_sts)
            .field("gpe0_en", &self.gpe0_en)
            .field("sci_level", &self.sci_level)
            .finish()
    }
}

impl AcpiPm {
    /// A PM block timing from `clock`, raising `sci` and stopping the VM through `control`.
    pub fn new(clock: Arc<dyn Clock>, sci: Arc<dyn IrqLine>, control: Arc<VmControl>) -> AcpiPm {
        let carries_seen = ticks_at(clock.now_ns()) >> TMR_CARRY_BIT;
        AcpiPm {
            pm1_sts: 0,
            pm1_en: 0,
            pm1_cnt: 0,
            gpe0_sts: 0,
            gpe0_en: 0,
            carries_seen,
            clock,
            sci,
            sci_level: false,
            control,
            logged_sleep: 0,
        }
    }

    /// The same, wrapped for sharing between the bus and the board's poll loop.
    pub fn new_shared(
        clock: Arc<dyn Clock>,
        sci: Arc<dyn IrqLine>,
        control: Arc<VmControl>,
    ) -> Arc<Mutex<AcpiPm>> {
        Arc::new(Mutex::new(AcpiPm::new(clock, sci, control)))
    }

    /// Timer ticks now.
    fn ticks(&self) -> u64 {
        ticks_at(self.clock.now_ns())
    }

    /// Set TMR_STS if bit 31 of the counter changed since last looked at.
    fn sync_timer(&mut self, ticks: u64) {
        let carries = ticks >> TMR_CARRY_BIT;
        if carries != self.carries_seen {
            self.carries_seen = carries;
            self.pm1_sts |= TMR_STS;
        }
    }

    /// Drive the SCI from the status and enable bits.
    fn update_sci(&mut self) {
        let level = (self.pm1_sts & self.pm1_en) != 0 || (self.gpe0_sts & self.gpe0_en) != 0;
        if level != self.sci_level {
            self.sci_level = level;
            self.sci.set_level(level);
        }
    }

    /// Bring TMR_STS up to date with the clock and the SCI with the status bits.
    pub fn poll(&mut self) {
        let t = self.ticks();
        self.sync_timer(t);
        self.update_sci();
    }

    /// Guest time of the next timer carry, when TMR_EN makes it raise the SCI.
    pub fn next_event_ns(&self) -> Option<u64> {
        if self.pm1_en & TMR_STS == 0 {
            return None;
        }
        let next = self.carries_seen.checked_add(1)? << TMR_CARRY_BIT;
        Some(ns_of_tick(next))
    }

    /// The power button was pressed: set PWRBTN_STS (an SCI if PWRBTN_EN is set).
    pub fn press_power_button(&mut self) {
        self.pm1_sts |= PWRBTN_STS;
        self.update_sci();
    }

    /// Set GPE `n` (0-15) status, for future devices wired to the GPE0 block.
    pub fn raise_gpe(&mut self, n: u8) {
        if let Some(bit) = 1u16.checked_shl(u32::from(n)) {
            self.gpe0_sts |= bit;
            self.update_sci();
        }
    }

    /// Current SCI level.
    pub fn sci_level(&self) -> bool {
        self.sci_level
    }

    /// The byte at `offset` of the register file, with `ticks` for the timer.
    fn read_byte(&self, offset: u64, ticks: u64) -> u8 {
        let lo_hi = |v: u16, off: u64, base: u64| v.to_le_bytes()[(off - base) as usize];
        match offset {
            0x00..=0x01 => lo_hi(self.pm1_sts, offset, PM1_STS),
            0x02..=0x03 => lo_hi(self.pm1_en, offset, PM1_EN),
            0x04..=0x05 => lo_hi(self.pm1_cnt | SCI_EN, offset, PM1_CNT),
            0x08..=0x0b => (ticks as u32).to_le_bytes()[(offset - PM_TMR) as usize],
            0x20..=0x21 => lo_hi(self.gpe0_sts, offset, GPE0_BLK),
            0x22..=0x23 => lo_hi(self.gpe0_en, offset, GPE0_EN),
            _ => 0,
        }
    }

    /// Write one byte of the register file.
    fn write_byte(&mut self, offset: u64, v: u8) {
        let v16 = |lo_hi: u64| u16::from(v) << (8 * lo_hi);
        match offset {
            0x00..=0x01 => self.pm1_sts &= !(v16(offset - PM1_STS) & PM1_STS_MASK),
            0x02..=0x03 => {
                let shift = 8 * (offset - PM1_EN);
                let keep = !(0xffu16 << shift);
                self.pm1_en = (self.pm1_en & keep) | (v16(offset - PM1_EN) & PM1_EN_MASK);
            }
            0x04 => self.pm1_cnt = (self.pm1_cnt & 0xff00) | (u16::from(v) & BM_RLD),
            0x05 => {
                // SLP_TYP and SLP_EN both live in the high byte, so a byte-wise walk of a
                // word write sees them together.
                let hi = v16(1);
                self.pm1_cnt = (self.pm1_cnt & 0x00ff) | (hi & (SLP_TYP_MASK << SLP_TYP_SHIFT));
                if hi & SLP_EN != 0 {
                    let typ = ((hi >> SLP_TYP_SHIFT) & SLP_TYP_MASK) as u8;
                    self.sleep(typ);
                }
            }
            0x20..=0x21 => self.gpe0_sts &= !v16(offset - GPE0_BLK),
            0x22..=0x23 => {
                let shift = 8 * (offset - GPE0_EN);
                let keep = !(0xffu16 << shift);
                self.gpe0_en = (self.gpe0_en & keep) | v16(offset - GPE0_EN);
            }
            // PM_TMR is read only; the rest of the block is reserved.
            _ => {}
        }
    }

    /// SLP_EN was written with sleep type `typ`.
    fn sleep(&mut self, typ: u8) {
        if typ == SLP_TYP_S5 {
            tracing::info!("acpi: guest entered S5 (soft off)");
            self.control.request_stop(StopReason::PowerOff);
            return;
        }
        let bit = 1u8 << (typ & 7);
        if self.logged_sleep & bit == 0 {
            self.logged_sleep |= bit;
            tracing::warn!("acpi: sleep type {typ} is not supported; waking at once (logged once)");
        }
        self.pm1_sts |= WAK_STS;
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // One clock sample per access, so a 32-bit timer read is consistent.
        let t = self.ticks();
        self.sync_timer(t);
        for (i, d) in data.iter_mut().enumerate() {
            *d = self.read_byte(offset.wrapping_add(i as u64), t);
        }
        self.update_sci();
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let t = self.ticks();
        self.sync_timer(t);
        for (i, &v) in data.iter().enumerate() {
            self.write_byte(offset.wrapping_add(i as u64), v);
        }
        self.update_sci();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::irq::RecordingIrq;

    struct Rig {
        pm: AcpiPm,
        clock: Arc<ManualClock>,
        irq: Arc<RecordingIrq>,
        control: Arc<VmControl>,
    }

    fn rig() -> Rig {
        let clock = Arc::new(ManualClock::new());
        let irq = RecordingIrq::new();
        let control = Arc::new(VmControl::new());
        let pm = AcpiPm::new(clock.clone(), irq.clone(), control.clone());
        Rig {
            pm,
            clock,
            irq,
            control,
        }
    }

    fn r16(pm: &mut AcpiPm, off: u64) -> u16 {
        let mut b = [0u8; 2];
        pm.read(off, &mut b);
        u16::from_le_bytes(b)
    }

    fn r32(pm: &mut AcpiPm, off: u64) -> u32 {
        let mut b = [0u8; 4];
        pm.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn w16(pm: &mut AcpiPm, off: u64, v: u16) {
        pm.write(off, &v.to_le_bytes());
    }

    #[test]
    fn test_acpi_pm_sci_en_always_set() {
        let mut r = rig();
        assert_eq!(r16(&mut r.pm, PM1_CNT) & SCI_EN, SCI_EN);
        w16(&mut r.pm, PM1_CNT, 0);
        assert_eq!(r16(&mut r.pm, PM1_CNT) & SCI_EN, SCI_EN);
    }

    #[test]
    fn test_acpi_pm_timer_counts_at_3_579545_mhz() {
        let mut r = rig();
        assert_eq!(r32(&mut r.pm, PM_TMR), 0);
        r.clock.advance(1_000_000_000);
        assert_eq!(r32(&mut r.pm, PM_TMR), 3_579_545);
        // 1 ms more: 3579.545 ticks, truncated.
        r.clock.advance(1_000_000);
        assert_eq!(r32(&mut r.pm, PM_TMR), 3_579_545 + 3_579);
        // Writes to the timer are ignored.
        r.pm.write(PM_TMR, &[0, 0, 0, 0]);
        assert_eq!(r32(&mut r.pm, PM_TMR), 3_579_545 + 3_579);
    }

    #[test]
    fn test_acpi_pm_timer_is_32_bit_and_wraps() {
        let mut r = rig();
        // 2^32 ticks is about 1199.86 s; go to 1200 s.
        r.clock.advance(1_200_000_000_000);
        let ticks = 1_200u64 * PM_TIMER_HZ;
        assert_eq!(r32(&mut r.pm, PM_TMR), (ticks & 0xffff_ffff) as u32);
    }

    #[test]
    fn test_acpi_pm_timer_carry_sets_tmr_sts_and_sci_when_enabled() {
        let mut r = rig();
        assert_eq!(r.pm.next_event_ns(), None, "no event without TMR_EN");
        w16(&mut r.pm, PM1_EN, TMR_STS);
        let due = r.pm.next_event_ns().expect("TMR_EN set");
        // Bit 31 first changes after 2^31 ticks: about 599.93 s.
        assert_eq!(due, ns_of_tick(1 << 31));
        assert!((599_000_000_000..601_000_000_000).contains(&due));
        r.clock.advance(due - 1);
        r.pm.poll();
        assert_eq!(r16(&mut r.pm, PM1_STS) & TMR_STS, 0);
        assert!(!r.irq.level());
        r.clock.advance(1);
        r.pm.poll();
        assert_eq!(r16(&mut r.pm, PM1_STS) & TMR_STS, TMR_STS);
        assert!(r.irq.level());
        assert_eq!(r.irq.edges(), 1);
        // Write 1 to clear drops the SCI.
        w16(&mut r.pm, PM1_STS, TMR_STS);
        assert_eq!(r16(&mut r.pm, PM1_STS) & TMR_STS, 0);
        assert!(!r.irq.level());
        // The next carry is 2^31 ticks later.
        assert_eq!(r.pm.next_event_ns(), Some(ns_of_tick(2 << 31)));
    }

    #[test]
    fn test_acpi_pm_status_without_enable_raises_no_sci() {
        let mut r = rig();
        r.pm.press_power_button();
        assert_eq!(r16(&mut r.pm, PM1_STS) & PWRBTN_STS, PWRBTN_STS);
        assert!(!r.irq.level());
        // Enabling with the status pending raises the SCI.
        w16(&mut r.pm, PM1_EN, PWRBTN_STS);
        assert!(r.irq.level());
        // Writing 0 to the status clears nothing; writing 1 clears.
        w16(&mut r.pm, PM1_STS, 0);
        assert!(r.irq.level());
        w16(&mut r.pm, PM1_STS, PWRBTN_STS);
        assert!(!r.irq.level());
        assert_eq!(r16(&mut r.pm, PM1_STS), 0);
    }

    #[test]
    fn test_acpi_pm_enable_register_keeps_only_defined_bits() {
        let mut r = rig();
        w16(&mut r.pm, PM1_EN, 0xffff);
        assert_eq!(r16(&mut r.pm, PM1_EN), PM1_EN_MASK);
        // A byte write to the high half leaves the low half alone.
        r.pm.write(PM1_EN + 1, &[0]);
        assert_eq!(r16(&mut r.pm, PM1_EN), PM1_EN_MASK & 0x00ff);
    }

    #[test]
    fn test_acpi_pm_s5_powers_off() {
        let mut r = rig();
        // SLP_TYP alone does nothing.
        w16(&mut r.pm, PM1_CNT, u16::from(SLP_TYP_S5) << SLP_TYP_SHIFT);
        assert_eq!(r.control.stop_reason(), None);
        assert_eq!(
            r16(&mut r.pm, PM1_CNT),
            (u16::from(SLP_TYP_S5) << SLP_TYP_SHIFT) | SCI_EN,
            "SLP_EN reads 0"
        );
        w16(
            &mut r.pm,
            PM1_CNT,
            (u16::from(SLP_TYP_S5) << SLP_TYP_SHIFT) | SLP_EN | SCI_EN,
        );
        assert_eq!(r.control.stop_reason(), Some(StopReason::PowerOff));
    }

    #[test]
    fn test_acpi_pm_s5_by_byte_write_to_high_half() {
        let mut r = rig();
        let hi = ((u16::from(SLP_TYP_S5) << SLP_TYP_SHIFT) | SLP_EN) >> 8;
        r.pm.write(PM1_CNT + 1, &[hi as u8]);
        assert_eq!(r.control.stop_reason(), Some(StopReason::PowerOff));
    }

    #[test]
    fn test_acpi_pm_other_sleep_states_wake_at_once() {
        let mut r = rig();
        w16(&mut r.pm, PM1_CNT, (1 << SLP_TYP_SHIFT) | SLP_EN);
        assert_eq!(r.control.stop_reason(), None);
        assert_eq!(r16(&mut r.pm, PM1_STS) & WAK_STS, WAK_STS);
        w16(&mut r.pm, PM1_STS, WAK_STS);
        assert_eq!(r16(&mut r.pm, PM1_STS) & WAK_STS, 0);
    }

    #[test]
    fn test_acpi_pm_gpe0_status_and_enable() {
        let mut r = rig();
        r.pm.raise_gpe(3);
        assert_eq!(r16(&mut r.pm, GPE0_BLK), 1 << 3);
        assert!(!r.irq.level());
        w16(&mut r.pm, GPE0_EN, 1 << 3);
        assert_eq!(r16(&mut r.pm, GPE0_EN), 1 << 3);
        assert!(r.irq.level());
        w16(&mut r.pm, GPE0_BLK, 1 << 3);
        assert_eq!(r16(&mut r.pm, GPE0_BLK), 0);
        assert!(!r.irq.level());
        // Out-of-range GPE numbers are ignored.
        r.pm.raise_gpe(200);
        assert_eq!(r16(&mut r.pm, GPE0_BLK), 0);
    }

    #[test]
    fn test_acpi_pm_reserved_offsets_read_zero() {
        let mut r = rig();
        assert_eq!(r32(&mut r.pm, 0x10), 0);
        assert_eq!(r32(&mut r.pm, 0x3c), 0);
        r.pm.write(0x3f, &[0xff]); // ignored
        assert_eq!(r16(&mut r.pm, PM1_STS), 0);
    }

    #[test]
    fn test_acpi_pm_on_the_port_bus() {
        use crate::bus::{Bus, SharedDevice};
        use crate::layout::{ACPI_PM_LEN, ACPI_PM_PORT};
        let clock = Arc::new(ManualClock::new());
        let control = Arc::new(VmControl::new());
        let pm = AcpiPm::new_shared(clock.clone(), RecordingIrq::new(), control.clone());
        let mut bus = Bus::new("pio", 1);
        let dev: SharedDevice = pm.clone();
        bus.insert(u64::from(ACPI_PM_PORT), u64::from(ACPI_PM_LEN), dev)
            .expect("free range");
        clock.advance(2_000_000_000);
        let mut b = [0u8; 4];
        bus.read(u64::from(ACPI_PM_PORT) + PM_TMR, &mut b);
        assert_eq!(u32::from_le_bytes(b), 2 * 3_579_545);
        let v = (u16::from(SLP_TYP_S5) << SLP_TYP_SHIFT) | SLP_EN;
        bus.write(u64::from(ACPI_PM_PORT) + PM1_CNT, &v.to_le_bytes());
        assert_eq!(control.stop_reason(), Some(StopReason::PowerOff));
        assert!(pm.lock().unwrap().next_event_ns().is_none());
    }
}
