//! Motorola MC146818A real-time clock with 128 bytes of CMOS RAM (Motorola datasheet
//! MC146818A/D), as wired on the PC: an index register at offset 0 (bit 7 = NMI disable) and
//! a data register at offset 1.
//!
//! Time is a start wall-clock time (Unix seconds, given by the board) plus the injected
//! clock's elapsed time; the guest moves its own time by writing the time registers and never
//! touches the host's. Interrupts (periodic, update-ended, alarm) are computed lazily from the
//! clock whenever the guest touches a register or the board calls `poll()`; `next_event_ns()`
//! tells the board when to poll next. Missed ticks are coalesced into one flag, so a long clock
//! jump raises at most one interrupt. Updates are instantaneous at each second boundary; UIP
//! is set for the 244 µs before it.
//!
//! Not modelled: daylight-saving adjustment (DSE is stored only), the square-wave output
//! (SQWE is stored only) and time bases other than 32.768 kHz (any divider value other than
//! reset runs at 32.768 kHz, the PC's crystal).

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::irq::IrqLine;

/// Index register offset (write-only on the PC).
pub const INDEX: u64 = 0;
/// Data register offset: reads and writes the byte selected by the index.
pub const DATA: u64 = 1;

/// Index register: NMI disable (not part of the address).
pub const INDEX_NMI_DISABLE: u8 = 1 << 7;
/// Index register: address bits.
pub const INDEX_MASK: u8 = 0x7f;

/// Seconds (0-59).
pub const RTC_SECONDS: u8 = 0x00;
/// Seconds alarm.
pub const RTC_SECONDS_ALARM: u8 = 0x01;
/// Minutes (0-59).
pub const RTC_MINUTES: u8 = 0x02;
/// Minutes alarm.
pub const RTC_MINUTES_ALARM: u8 = 0x03;
/// Hours (0-23, or 1-12 with bit 7 = PM in 12-hour mode).
pub const RTC_HOURS: u8 = 0x04;
/// Hours alarm.
pub const RTC_HOURS_ALARM: u8 = 0x05;
/// Day of week (1-7, Sunday = 1).
pub const RTC_DAY_OF_WEEK: u8 = 0x06;
/// Day of month (1-31).
pub const RTC_DAY_OF_MONTH: u8 = 0x07;
/// Month (1-12).
pub const RTC_MONTH: u8 = 0x08;
/// Year within the century (0-99).
pub const RTC_YEAR: u8 = 0x09;
/// Register A: UIP, divider, rate select.
pub const RTC_REG_A: u8 = 0x0a;
/// Register B: SET, interrupt enables, data mode, 24/12, DSE.
pub const RTC_REG_B: u8 = 0x0b;
/// Register C: interrupt flags (read-only, cleared by reading).
pub const RTC_REG_C: u8 = 0x0c;
/// Register D: valid RAM and time (read-only).
pub const RTC_REG_D: u8 = 0x0d;
/// Century (PC/AT convention), kept in step with the year.
pub const RTC_CENTURY: u8 = 0x32;

/// PC CMOS: diagnostic status byte.
pub const CMOS_DIAG_STATUS: u8 = 0x0e;
/// PC CMOS: shutdown status byte (read by the BIOS after a reset).
pub const CMOS_SHUTDOWN_STATUS: u8 = 0x0f;
/// PC CMOS: base memory in KiB, low byte.
pub const CMOS_BASE_MEM_LO: u8 = 0x15;
/// PC CMOS: base memory in KiB, high byte.
pub const CMOS_BASE_MEM_HI: u8 = 0x16;
/// PC CMOS: extended memory above 1 MiB in KiB, low byte.
pub const CMOS_EXT_MEM_LO: u8 = 0x17;
/// PC CMOS: extended memory above 1 MiB in KiB, high byte.
pub const CMOS_EXT_MEM_HI: u8 = 0x18;
/// PC CMOS: checksum of 0x10-0x2d, high byte.
pub const CMOS_CHECKSUM_HI: u8 = 0x2e;
/// PC CMOS: checksum of 0x10-0x2d, low byte.
pub const CMOS_CHECKSUM_LO: u8 = 0x2f;
/// PC CMOS: extended memory above 1 MiB in KiB (copy read by POST), low byte.
pub const CMOS_EXT_MEM2_LO: u8 = 0x30;
/// PC CMOS: extended memory above 1 MiB in KiB (copy read by POST), high byte.
pub const CMOS_EXT_MEM2_HI: u8 = 0x31;
/// PC CMOS: memory above 16 MiB (below 4 GiB) in 64 KiB units, low byte.
pub const CMOS_MEM_ABOVE_16M_LO: u8 = 0x34;
/// PC CMOS: memory above 16 MiB (below 4 GiB) in 64 KiB units, high byte.
pub const CMOS_MEM_ABOVE_16M_HI: u8 = 0x35;
/// PC CMOS (SeaBIOS/QEMU): memory above 4 GiB in 64 KiB units, bits 0-7.
pub const CMOS_MEM_ABOVE_4G_LO: u8 = 0x5b;
/// PC CMOS (SeaBIOS/QEMU): memory above 4 GiB in 64 KiB units, bits 8-15.
pub const CMOS_MEM_ABOVE_4G_MID: u8 = 0x5c;
/// PC CMOS (SeaBIOS/QEMU): memory above 4 GiB in 64 KiB units, bits 16-23.
pub const CMOS_MEM_ABOVE_4G_HI: u8 = 0x5d;

/// Register A: update in progress (read-only).
pub const REG_A_UIP: u8 = 1 << 7;
/// Register A: divider control bits.
pub const REG_A_DV_MASK: u8 = 0x70;
/// Register A: divider set for a 32.768 kHz time base (normal operation).
pub const REG_A_DV_32KHZ: u8 = 0x20;
/// Register A: divider chain held in reset (both values 110 and 111 have bits 6 and 5 set).
pub const REG_A_DV_RESET: u8 = 0x60;
/// Register A: periodic-interrupt rate select.
pub const REG_A_RS_MASK: u8 = 0x0f;

/// Register B: SET, stops updates so the time can be written.
pub const REG_B_SET: u8 = 1 << 7;
/// Register B: periodic interrupt enable.
pub const REG_B_PIE: u8 = 1 << 6;
/// Register B: alarm interrupt enable.
pub const REG_B_AIE: u8 = 1 << 5;
/// Register B: update-ended interrupt enable.
pub const REG_B_UIE: u8 = 1 << 4;
/// Register B: square-wave enable (stored, no output pin here).
pub const REG_B_SQWE: u8 = 1 << 3;
/// Register B: data mode, 1 = binary, 0 = BCD.
pub const REG_B_DM_BINARY: u8 = 1 << 2;
/// Register B: 1 = 24-hour mode, 0 = 12-hour mode.
pub const REG_B_24H: u8 = 1 << 1;
/// Register B: daylight-saving enable (stored only).
pub const REG_B_DSE: u8 = 1 << 0;

/// Register C: an enabled interrupt is pending (IRQ asserted).
pub const REG_C_IRQF: u8 = 1 << 7;
/// Register C: periodic interrupt flag.
pub const REG_C_PF: u8 = 1 << 6;
/// Register C: alarm flag.
pub const REG_C_AF: u8 = 1 << 5;
/// Register C: update-ended flag.
pub const REG_C_UF: u8 = 1 << 4;

/// Register D: valid RAM and time (the battery is always good).
pub const REG_D_VRT: u8 = 1 << 7;

/// Alarm bytes with both top bits set match any value ("don't care").
pub const ALARM_DONT_CARE: u8 = 0xc0;

/// Register A after power-up as the PC BIOS leaves it: 32.768 kHz, 1024 Hz periodic rate.
pub const REG_A_DEFAULT: u8 = REG_A_DV_32KHZ | 0x06;
/// Register B default: 24-hour, BCD, no interrupts.
pub const REG_B_DEFAULT: u8 = REG_B_24H;

/// UIP is set this long before each update (datasheet t_BUC).
pub const UIP_LEAD_NS: u64 = 244_000;
/// After the divider leaves reset, the first update comes this much later.
pub const FIRST_UPDATE_AFTER_RESET_NS: u64 = 500_000_000;
/// The PC's time base.
const TIME_BASE_HZ: i128 = 32_768;
const NS_PER_SEC: i128 = 1_000_000_000;
/// Alarm matches are checked for at most this many missed seconds after a clock jump.
const ALARM_CATCH_UP_SECS: i128 = 60;

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) for days since 1970-01-01 (civil_from_days).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // doy/mp bound d to 1..=31 and m to 1..=12.
    (y, m as u32, d as u32)
}

/// Broken-down guest time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Days since the epoch (for the day of week).
    days: i64,
}

impl Civil {
    fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: tod / 3600,
            minute: tod / 60 % 60,
            second: tod % 60,
            days,
        }
    }
}

/// An MC146818 RTC with PC CMOS RAM.
pub struct CmosRtc {
    ram: [u8; 128],
    index: u8,
    nmi_disabled: bool,
    /// Clock time (ns) at which the divider chain was at a second boundary.
    origin_ns: i128,
    /// Guest Unix time at `origin_ns` while the time is running.
    origin_secs: i64,
    /// Day-of-week offset the guest chose relative to the true weekday (0-6).
    dow_offset: i64,
    /// Last second index (from `origin_ns`) whose update was processed.
    last_sec: i128,
    /// Last periodic tick index (from `origin_ns`) that was processed.
    last_tick: i128,
    clock: Arc<dyn Clock>,
    irq: Arc<dyn IrqLine>,
}

impl std::fmt::Debug for CmosRtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmosRtc")
            .field("index", &self.index)
            .field("reg_a", &self.ram[RTC_REG_A as usize])
            .field("reg_b", &self.ram[RTC_REG_B as usize])
            .field("reg_c", &self.ram[RTC_REG_C as usize])
            .field("origin_secs", &self.origin_secs)
            .finish()
    }
}

fn to_bcd(v: u32) -> u8 {
    let v = v % 100;
    (((v / 10) << 4) | (v % 10)) as u8
}

fn from_bcd(v: u8) -> i64 {
    // Invalid BCD digits give odd values, never a panic.
    i64::from(v >> 4) * 10 + i64::from(v & 0x0f)
}

impl CmosRtc {
    /// An RTC whose time starts at `start_unix_secs` (e.g. the host's wall clock) when `clock`
    /// reads its current value, interrupting on `irq` (IRQ8 on the PC).
    pub fn new(start_unix_secs: i64, clock: Arc<dyn Clock>, irq: Arc<dyn IrqLine>) -> CmosRtc {
        let mut ram = [0u8; 128];
        ram[RTC_REG_A as usize] = REG_A_DEFAULT;
        ram[RTC_REG_B as usize] = REG_B_DEFAULT;
        ram[RTC_REG_D as usize] = REG_D_VRT;
        let origin_ns = i128::from(clock.now_ns());
        let mut rtc = CmosRtc {
            ram,
            index: 0,
            nmi_disabled: false,
            origin_ns,
            origin_secs: start_unix_secs,
            dow_offset: 0,
            last_sec: 0,
            last_tick: 0,
            clock,
            irq,
        };
        rtc.last_tick = rtc.tick_index(origin_ns).unwrap_or(0);
        // Keep the century byte meaningful for readers of raw CMOS.
        let c = rtc.civil_now(origin_ns);
        rtc.ram[RTC_CENTURY as usize] = rtc.encode(c.year.div_euclid(100).rem_euclid(100) as u32);
        rtc
    }

    /// Board side: fill a CMOS byte (memory sizes, equipment...) without guest side effects.
    /// Clock and control registers go through the normal register write path.
    pub fn set_cmos_byte(&mut self, index: u8, value: u8) {
        let index = index & INDEX_MASK;
        if index <= RTC_REG_D || index == RTC_CENTURY {
            self.write_register(index, value);
        } else {
            self.ram[index as usize] = value;
        }
    }

    /// Board side: recompute the PC checksum (bytes 0x2e/0x2f over 0x10-0x2d).
    pub fn update_checksum(&mut self) {
        let sum: u16 = self.ram[0x10..=0x2d].iter().map(|&b| u16::from(b)).sum();
        let [hi, lo] = sum.to_be_bytes();
        self.ram[CMOS_CHECKSUM_HI as usize] = hi;
        self.ram[CMOS_CHECKSUM_LO as usize] = lo;
    }

    /// Whether the guest last wrote the index register with NMI disabled.
    pub fn nmi_disabled(&self) -> bool {
        self.nmi_disabled
    }

    /// Board side: bring flags and the IRQ line up to date with the clock.
    pub fn poll(&mut self) {
        let now = self.now();
        self.sync(now);
    }

    /// Clock time (ns) at which the next enabled interrupt can fire, so the board knows when
    /// to call `poll()`; `None` if no interrupt is enabled or the divider is stopped. A time
    /// not after now means "poll now".
    pub fn next_event_ns(&self) -> Option<u64> {
        if self.divider_reset() {
            return None;
        }
        let now = self.now();
        let b = self.reg_b();
        let mut next: Option<i128> = None;
        if b & REG_B_PIE != 0
            && let Some(period) = self.period_scaled()
        {
            let t = self.tick_index(now).unwrap_or(0);
            let at = if self.last_tick < t {
                now
            } else {
                // ceil((t + 1) * period / 32768) from the origin.
                self.origin_ns + ((t + 1) * period + TIME_BASE_HZ - 1) / TIME_BASE_HZ
            };
            next = Some(at);
        }
        if b & (REG_B_UIE | REG_B_AIE) != 0 && b & REG_B_SET == 0 {
            let s = self.sec_index(now);
            let at = if self.last_sec < s {
                now
            } else {
                self.origin_ns + (s + 1) * NS_PER_SEC
            };
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next.map(|n| u64::try_from(n.max(0)).unwrap_or(u64::MAX))
    }

    fn now(&self) -> i128 {
        i128::from(self.clock.now_ns())
    }

    fn reg_a(&self) -> u8 {
        self.ram[RTC_REG_A as usize]
    }

    fn reg_b(&self) -> u8 {
        self.ram[RTC_REG_B as usize]
    }

    fn binary(&self) -> bool {
        self.reg_b() & REG_B_DM_BINARY != 0
    }

    fn divider_reset(&self) -> bool {
        self.reg_a() & REG_A_DV_RESET == REG_A_DV_RESET
    }

    /// Time registers hold the time (no updates) while SET or the divider reset is on.
    fn frozen(&self) -> bool {
        self.reg_b() & REG_B_SET != 0 || self.divider_reset()
    }

    fn sec_index(&self, now: i128) -> i128 {
        (now - self.origin_ns).div_euclid(NS_PER_SEC)
    }

    /// Periodic period in ns multiplied by 32768 (exact), or `None` if RS = 0.
    fn period_scaled(&self) -> Option<i128> {
        let rs = self.reg_a() & REG_A_RS_MASK;
        // With a 32.768 kHz time base, rates 1 and 2 repeat rates 8 and 9.
        let shift = match rs {
            0 => return None,
            1 | 2 => rs + 6,
            _ => rs - 1,
        };
        Some(NS_PER_SEC << shift)
    }

    fn tick_index(&self, now: i128) -> Option<i128> {
        let period = self.period_scaled()?;
        Some(((now - self.origin_ns) * TIME_BASE_HZ).div_euclid(period))
    }

    fn civil_now(&self, now: i128) -> Civil {
        self.civil_at(self.sec_index(now))
    }

    fn civil_at(&self, sec_index: i128) -> Civil {
        let secs = i128::from(self.origin_secs) + sec_index;
        let secs = i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX });
        // Keep far-out-of-range guest times from overflowing the date arithmetic.
        Civil::from_unix(secs.clamp(-(1 << 45), 1 << 45))
    }

    fn encode(&self, v: u32) -> u8 {
        if self.binary() {
            (v % 256) as u8
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, v: u8) -> i64 {
        if self.binary() {
            i64::from(v)
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, hour: u32) -> u8 {
        if self.reg_b() & REG_B_24H != 0 {
            self.encode(hour)
        } else {
            let h12 = if hour.is_multiple_of(12) {
                12
            } else {
                hour % 12
            };
            self.encode(h12) | if hour >= 12 { 0x80 } else { 0 }
        }
    }

    fn decode_hour(&self, v: u8) -> i64 {
        if self.reg_b() & REG_B_24H != 0 {
            self.decode(v)
        } else {
            let h = self.decode(v & 0x7f) % 12;
            if v & 0x80 != 0 { h + 12 } else { h }
        }
    }

    /// The encoded value of a time register for `c`.
    fn time_register(&self, index: u8, c: &Civil) -> u8 {
        match index {
            RTC_SECONDS => self.encode(c.second),
            RTC_MINUTES => self.encode(c.minute),
            RTC_HOURS => self.encode_hour(c.hour),
            RTC_DAY_OF_WEEK => {
                // 1970-01-01 was a Thursday (5 with Sunday = 1).
                self.encode(((c.days + 4 + self.dow_offset).rem_euclid(7) + 1) as u32)
            }
            RTC_DAY_OF_MONTH => self.encode(c.day),
            RTC_MONTH => self.encode(c.month),
            RTC_YEAR => self.encode(c.year.rem_euclid(100) as u32),
            RTC_CENTURY => self.encode(c.year.div_euclid(100).rem_euclid(100) as u32),
            _ => self.ram[index as usize],
        }
    }

    fn is_time_register(index: u8) -> bool {
        matches!(
            index,
            RTC_SECONDS
                | RTC_MINUTES
                | RTC_HOURS
                | RTC_DAY_OF_WEEK
                | RTC_DAY_OF_MONTH
                | RTC_MONTH
                | RTC_YEAR
                | RTC_CENTURY
        )
    }

    /// Copy the running time into the time registers (before freezing or a single write).
    fn materialize(&mut self, now: i128) {
        let c = self.civil_now(now);
        for i in [
            RTC_SECONDS,
            RTC_MINUTES,
            RTC_HOURS,
            RTC_DAY_OF_WEEK,
            RTC_DAY_OF_MONTH,
            RTC_MONTH,
            RTC_YEAR,
            RTC_CENTURY,
        ] {
            self.ram[i as usize] = self.time_register(i, &c);
        }
    }

    /// Start running from the time in the registers, keeping the divider's phase.
    fn commit(&mut self, now: i128) {
        let r = |i: u8| self.ram[i as usize];
        let year = self.decode(r(RTC_CENTURY)) * 100 + self.decode(r(RTC_YEAR));
        // Out-of-range fields are normalised (month clamped, days and times carried over)
        // rather than reproducing the chip's undefined behaviour.
        let month = self.decode(r(RTC_MONTH)).clamp(1, 12) as u32;
        let day = self.decode(r(RTC_DAY_OF_MONTH));
        let days = days_from_civil(year, month, 1) + day - 1;
        let secs = days * 86_400
            + self.decode_hour(r(RTC_HOURS)) * 3600
            + self.decode(r(RTC_MINUTES)) * 60
            + self.decode(r(RTC_SECONDS));
        let idx = i64::try_from(self.sec_index(now)).unwrap_or(0);
        self.origin_secs = secs - idx;
        let true_dow = (secs.div_euclid(86_400) + 4).rem_euclid(7);
        self.dow_offset = (self.decode(r(RTC_DAY_OF_WEEK)) - 1 - true_dow).rem_euclid(7);
    }

    /// Process periodic ticks and updates up to `now` (missed ones coalesce) and drive IRQ8.
    fn sync(&mut self, now: i128) {
        if !self.divider_reset() {
            if let Some(t) = self.tick_index(now)
                && t > self.last_tick
            {
                self.ram[RTC_REG_C as usize] |= REG_C_PF;
                self.last_tick = t;
            }
            let s = self.sec_index(now);
            if s > self.last_sec {
                if self.reg_b() & REG_B_SET == 0 {
                    self.ram[RTC_REG_C as usize] |= REG_C_UF;
                    let first = (self.last_sec + 1).max(s - ALARM_CATCH_UP_SECS + 1);
                    if (first..=s).any(|i| self.alarm_matches(i)) {
                        self.ram[RTC_REG_C as usize] |= REG_C_AF;
                    }
                }
                self.last_sec = s;
            }
        }
        self.update_irq();
    }

    fn alarm_matches(&self, sec_index: i128) -> bool {
        let c = self.civil_at(sec_index);
        [
            (RTC_SECONDS_ALARM, RTC_SECONDS),
            (RTC_MINUTES_ALARM, RTC_MINUTES),
            (RTC_HOURS_ALARM, RTC_HOURS),
        ]
        .iter()
        .all(|&(a, t)| {
            let alarm = self.ram[a as usize];
            alarm & ALARM_DONT_CARE == ALARM_DONT_CARE || alarm == self.time_register(t, &c)
        })
    }

    fn update_irq(&mut self) {
        let b = self.reg_b();
        let c = &mut self.ram[RTC_REG_C as usize];
        let pending = (*c & REG_C_PF != 0 && b & REG_B_PIE != 0)
            || (*c & REG_C_AF != 0 && b & REG_B_AIE != 0)
            || (*c & REG_C_UF != 0 && b & REG_B_UIE != 0);
        if pending {
            *c |= REG_C_IRQF;
        } else {
            *c &= !REG_C_IRQF;
        }
        self.irq.set_level(pending);
    }

    fn read_register(&mut self, index: u8) -> u8 {
        let now = self.now();
        self.sync(now);
        match index {
            RTC_REG_A => {
                let mut v = self.reg_a();
                let phase = (now - self.origin_ns).rem_euclid(NS_PER_SEC);
                if !self.frozen() && phase >= NS_PER_SEC - i128::from(UIP_LEAD_NS) {
                    v |= REG_A_UIP;
                }
                v
            }
            RTC_REG_C => {
                // Reading C clears every flag and deasserts IRQ8.
                let v = self.ram[RTC_REG_C as usize];
                self.ram[RTC_REG_C as usize] = 0;
                self.update_irq();
                v
            }
            RTC_REG_D => REG_D_VRT,
            i if Self::is_time_register(i) && !self.frozen() => {
                let c = self.civil_now(now);
                self.time_register(i, &c)
            }
            i => self.ram[i as usize],
        }
    }

    fn write_register(&mut self, index: u8, v: u8) {
        let now = self.now();
        self.sync(now);
        match index {
            i if Self::is_time_register(i) => {
                if self.frozen() {
                    self.ram[i as usize] = v;
                } else {
                    // Without SET the write takes effect at once; the other fields keep
                    // running from the current time.
                    self.materialize(now);
                    self.ram[i as usize] = v;
                    self.commit(now);
                }
            }
            RTC_REG_A => {
                let was_frozen = self.frozen();
                let was_reset = self.divider_reset();
                let old_rs = self.reg_a() & REG_A_RS_MASK;
                if !was_frozen && v & REG_A_DV_RESET == REG_A_DV_RESET {
                    self.materialize(now);
                }
                self.ram[RTC_REG_A as usize] = v & !REG_A_UIP;
                if was_reset && !self.divider_reset() {
                    self.origin_ns = now - i128::from(FIRST_UPDATE_AFTER_RESET_NS);
                    self.last_sec = self.sec_index(now);
                    self.last_tick = self.tick_index(now).unwrap_or(0);
                }
                if old_rs != v & REG_A_RS_MASK {
                    // A new rate starts counting from now: no spurious tick.
                    self.last_tick = self.tick_index(now).unwrap_or(0);
                }
                if was_frozen && !self.frozen() {
                    self.commit(now);
                }
            }
            RTC_REG_B => {
                let was_frozen = self.frozen();
                let mut v = v;
                if v & REG_B_SET != 0 {
                    // Setting SET clears UIE (datasheet).
                    v &= !REG_B_UIE;
                    if !was_frozen {
                        self.materialize(now);
                    }
                }
                self.ram[RTC_REG_B as usize] = v;
                if was_frozen && !self.frozen() {
                    self.commit(now);
                }
            }
            RTC_REG_C | RTC_REG_D => {} // read-only
            i => self.ram[i as usize] = v,
        }
        self.update_irq();
    }
}

impl BusDevice for CmosRtc {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = match offset {
            // The index register is write-only on the PC.
            INDEX => 0xff,
            DATA => self.read_register(self.index),
            _ => 0xff,
        };
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = v;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        match offset {
            INDEX => {
                self.index = v & INDEX_MASK;
                self.nmi_disabled = v & INDEX_NMI_DISABLE != 0;
            }
            DATA => self.write_register(self.index, v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::irq::RecordingIrq;

    /// 2024-02-29 13:45:30 UTC, a Thursday.
    const LEAP_DAY_AFTERNOON: i64 = 1_709_214_330;
    const SEC: u64 = 1_000_000_000;

    fn rtc(start: i64) -> (CmosRtc, Arc<ManualClock>, Arc<RecordingIrq>) {
        let clock = Arc::new(ManualClock::new());
        let irq = RecordingIrq::new();
        (CmosRtc::new(start, clock.clone(), irq.clone()), clock, irq)
    }

    fn rd(r: &mut CmosRtc, index: u8) -> u8 {
        r.write(INDEX, &[index]);
        let mut b = [0u8];
        r.read(DATA, &mut b);
        b[0]
    }

    fn wr(r: &mut CmosRtc, index: u8, v: u8) {
        r.write(INDEX, &[index]);
        r.write(DATA, &[v]);
    }

    /// (century, year, month, day, dow, hour, minute, second) as raw register bytes.
    fn date(r: &mut CmosRtc) -> [u8; 8] {
        [
            rd(r, RTC_CENTURY),
            rd(r, RTC_YEAR),
            rd(r, RTC_MONTH),
            rd(r, RTC_DAY_OF_MONTH),
            rd(r, RTC_DAY_OF_WEEK),
            rd(r, RTC_HOURS),
            rd(r, RTC_MINUTES),
            rd(r, RTC_SECONDS),
        ]
    }

    #[test]
    fn test_civil_conversion_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn test_rtc_reads_known_date_bcd() {
        let (mut r, _, _) = rtc(LEAP_DAY_AFTERNOON);
        assert_eq!(
            date(&mut r),
            [0x20, 0x24, 0x02, 0x29, 0x05, 0x13, 0x45, 0x30]
        );
        assert_eq!(rd(&mut r, RTC_REG_A), REG_A_DEFAULT);
        assert_eq!(rd(&mut r, RTC_REG_D), REG_D_VRT);
    }

    #[test]
    fn test_rtc_reads_known_date_binary() {
        let (mut r, _, _) = rtc(LEAP_DAY_AFTERNOON);
        wr(&mut r, RTC_REG_B, REG_B_24H | REG_B_DM_BINARY);
        assert_eq!(date(&mut r), [20, 24, 2, 29, 5, 13, 45, 30]);
    }

    #[test]
    fn test_rtc_12_hour_mode_sets_pm_bit() {
        let (mut r, _, _) = rtc(LEAP_DAY_AFTERNOON);
        wr(&mut r, RTC_REG_B, 0); // 12-hour, BCD
        assert_eq!(rd(&mut r, RTC_HOURS), 0x80 | 0x01);
        wr(&mut r, RTC_REG_B, REG_B_DM_BINARY);
        assert_eq!(rd(&mut r, RTC_HOURS), 0x80 | 1);
        // Midnight is 12 AM, noon is 12 PM.
        let (mut r, _, _) = rtc(days_from_civil(2024, 1, 1) * 86_400);
        wr(&mut r, RTC_REG_B, 0);
        assert_eq!(rd(&mut r, RTC_HOURS), 0x12);
        let (mut r, _, _) = rtc(days_from_civil(2024, 1, 1) * 86_400 + 12 * 3600);
        wr(&mut r, RTC_REG_B, 0);
        assert_eq!(rd(&mut r, RTC_HOURS), 0x92);
        // Writing 11 PM in 12-hour mode reads back as 23 in 24-hour mode.
        wr(&mut r, RTC_HOURS, 0x80 | 0x11);
        wr(&mut r, RTC_REG_B, REG_B_24H);
        assert_eq!(rd(&mut r, RTC_HOURS), 0x23);
    }

    #[test]
    fn test_rtc_advances_across_midnight_month_end_and_leap_year() {
        // 2024-02-28 23:59:59 -> leap day.
        let (mut r, clock, _) = rtc(days_from_civil(2024, 2, 29) * 86_400 - 1);
        assert_eq!(
            date(&mut r),
            [0x20, 0x24, 0x02, 0x28, 0x04, 0x23, 0x59, 0x59]
        );
        clock.advance(SEC);
        assert_eq!(
            date(&mut r),
            [0x20, 0x24, 0x02, 0x29, 0x05, 0x00, 0x00, 0x00]
        );
        clock.advance(86_400 * SEC);
        assert_eq!(
            date(&mut r),
            [0x20, 0x24, 0x03, 0x01, 0x06, 0x00, 0x00, 0x00]
        );
        // End of the century: 2099-12-31 23:59:59 -> 2100-01-01 (a Friday).
        let (mut r, clock, _) = rtc(4_102_444_799);
        clock.advance(SEC);
        assert_eq!(
            date(&mut r),
            [0x21, 0x00, 0x01, 0x01, 0x06, 0x00, 0x00, 0x00]
        );
        // 2100 is not a leap year: Feb 28 -> Mar 1.
        let (mut r, clock, _) = rtc(4_107_499_200);
        clock.advance(12 * 3600 * SEC);
        assert_eq!(&date(&mut r)[..4], &[0x21, 0x00, 0x03, 0x01]);
        // 30-day month end.
        let (mut r, clock, _) = rtc(days_from_civil(2023, 5, 1) * 86_400 - 1);
        assert_eq!(&date(&mut r)[2..4], &[0x04, 0x30]);
        clock.advance(SEC);
        assert_eq!(&date(&mut r)[2..4], &[0x05, 0x01]);
    }

    #[test]
    fn test_rtc_uip_set_only_before_update() {
        let (mut r, clock, _) = rtc(LEAP_DAY_AFTERNOON);
        clock.advance(SEC / 2);
        assert_eq!(rd(&mut r, RTC_REG_A) & REG_A_UIP, 0);
        clock.advance(SEC / 2 - UIP_LEAD_NS - 1);
        assert_eq!(rd(&mut r, RTC_REG_A) & REG_A_UIP, 0);
        clock.advance(1);
        assert_ne!(rd(&mut r, RTC_REG_A) & REG_A_UIP, 0);
        assert_eq!(rd(&mut r, RTC_SECONDS), 0x30);
        clock.advance(UIP_LEAD_NS - 1);
        assert_ne!(rd(&mut r, RTC_REG_A) & REG_A_UIP, 0);
        clock.advance(1);
        assert_eq!(rd(&mut r, RTC_REG_A) & REG_A_UIP, 0);
        assert_eq!(rd(&mut r, RTC_SECONDS), 0x31);
        // Writes cannot set UIP.
        wr(&mut r, RTC_REG_A, !REG_A_DV_RESET | REG_A_DV_32KHZ);
        assert_eq!(rd(&mut r, RTC_REG_A) & REG_A_UIP, 0);
    }

    #[test]
    fn test_rtc_set_freezes_updates_and_writes_new_time() {
        let (mut r, clock, irq) = rtc(LEAP_DAY_AFTERNOON);
        wr(&mut r, RTC_REG_B, REG_B_SET | REG_B_24H | REG_B_UIE);
        assert_eq!(rd(&mut r, RTC_REG_B) & REG_B_UIE, 0, "SET clears UIE");
        clock.advance(5 * SEC);
        assert_eq!(rd(&mut r, RTC_SECONDS), 0x30);
        assert_eq!(rd(&mut r, RTC_REG_A) & REG_A_UIP, 0);
        // 1999-12-31 23:59:58, Friday.
        for (i, v) in [
            (RTC_CENTURY, 0x19),
            (RTC_YEAR, 0x99),
            (RTC_MONTH, 0x12),
            (RTC_DAY_OF_MONTH, 0x31),
            (RTC_DAY_OF_WEEK, 0x06),
            (RTC_HOURS, 0x23),
            (RTC_MINUTES, 0x59),
            (RTC_SECONDS, 0x58),
        ] {
            wr(&mut r, i, v);
        }
        clock.advance(3 * SEC);
        assert_eq!(
            date(&mut r),
            [0x19, 0x99, 0x12, 0x31, 0x06, 0x23, 0x59, 0x58]
        );
        wr(&mut r, RTC_REG_B, REG_B_24H | REG_B_UIE);
        wr(&mut r, RTC_REG_B, REG_B_24H);
        assert_eq!(rd(&mut r, RTC_REG_C) & REG_C_UF, 0, "no update while SET");
        assert_eq!(irq.edges(), 0);
        clock.advance(2 * SEC);
        assert_eq!(
            date(&mut r),
            [0x20, 0x00, 0x01, 0x01, 0x07, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn test_rtc_write_without_set_takes_effect_and_keeps_running() {
        let (mut r, clock, _) = rtc(LEAP_DAY_AFTERNOON);
        clock.advance(SEC / 2);
        wr(&mut r, RTC_MINUTES, 0x10);
        assert_eq!(date(&mut r)[5..], [0x13, 0x10, 0x30]);
        clock.advance(SEC / 2);
        assert_eq!(date(&mut r)[5..], [0x13, 0x10, 0x31]);
    }

    #[test]
    fn test_rtc_divider_reset_holds_time_first_update_after_half_second() {
        let (mut r, clock, _) = rtc(LEAP_DAY_AFTERNOON);
        wr(&mut r, RTC_REG_A, REG_A_DV_RESET | 0x06);
        clock.advance(10 * SEC);
        assert_eq!(rd(&mut r, RTC_SECONDS), 0x30);
        wr(&mut r, RTC_REG_A, REG_A_DEFAULT);
        clock.advance(SEC / 2 - 1);
        assert_eq!(rd(&mut r, RTC_SECONDS), 0x30);
        clock.advance(1);
        assert_eq!(rd(&mut r, RTC_SECONDS), 0x31);
    }

    #[test]
    fn test_rtc_periodic_interrupt_rate_and_reg_c_clear() {
        let (mut r, clock, irq) = rtc(LEAP_DAY_AFTERNOON);
        assert_eq!(r.next_event_ns(), None);
        wr(&mut r, RTC_REG_B, REG_B_24H | REG_B_PIE);
        assert!(!irq.level());
        // Rate 6: 1024 Hz; step the clock the way a board would.
        while clock.now_ns() < SEC {
            let next = r.next_event_ns().expect("PIE is on");
            assert!(next > clock.now_ns());
            clock.advance(next - clock.now_ns());
            r.poll();
            assert!(irq.level());
            let c = rd(&mut r, RTC_REG_C);
            assert_eq!(c & (REG_C_IRQF | REG_C_PF), REG_C_IRQF | REG_C_PF);
            assert!(!irq.level());
        }
        assert_eq!(irq.edges(), 1024);
        assert_eq!(rd(&mut r, RTC_REG_C), 0);
        // Rate 15: 2 Hz.
        wr(&mut r, RTC_REG_A, REG_A_DV_32KHZ | 0x0f);
        let start = clock.now_ns();
        let next = r.next_event_ns().expect("PIE is on");
        assert_eq!(next - start, SEC / 2);
        // Flag is set with PIE off, but IRQ8 stays low.
        wr(&mut r, RTC_REG_B, REG_B_24H);
        clock.advance(SEC);
        r.poll();
        assert!(!irq.level());
        let c = rd(&mut r, RTC_REG_C);
        assert_eq!(c & (REG_C_IRQF | REG_C_PF), REG_C_PF);
    }

    #[test]
    fn test_rtc_update_ended_interrupt_once_per_second() {
        let (mut r, clock, irq) = rtc(LEAP_DAY_AFTERNOON);
        wr(&mut r, RTC_REG_A, REG_A_DV_32KHZ); // no periodic flag
        wr(&mut r, RTC_REG_B, REG_B_24H | REG_B_UIE);
        assert_eq!(r.next_event_ns(), Some(SEC));
        clock.advance(SEC - 1);
        r.poll();
        assert!(!irq.level());
        clock.advance(1);
        r.poll();
        assert!(irq.level());
        assert_eq!(rd(&mut r, RTC_REG_C), REG_C_IRQF | REG_C_UF);
        assert!(!irq.level());
        assert_eq!(r.next_event_ns(), Some(2 * SEC));
        clock.advance(SEC);
        r.poll();
        assert_eq!(irq.edges(), 2);
    }

    #[test]
    fn test_rtc_alarm_interrupt_matches_and_dont_care() {
        let (mut r, clock, irq) = rtc(LEAP_DAY_AFTERNOON);
        wr(&mut r, RTC_REG_A, REG_A_DV_32KHZ); // no periodic flag
        wr(&mut r, RTC_SECONDS_ALARM, 0x33);
        wr(&mut r, RTC_MINUTES_ALARM, 0x45);
        wr(&mut r, RTC_HOURS_ALARM, 0x13);
        wr(&mut r, RTC_REG_B, REG_B_24H | REG_B_AIE);
        for _ in 0..2 {
            clock.advance(SEC);
            r.poll();
            assert!(!irq.level());
        }
        clock.advance(SEC);
        r.poll();
        assert!(irq.level());
        assert_eq!(rd(&mut r, RTC_REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
        clock.advance(SEC);
        r.poll();
        assert!(!irq.level());
        // Don't-care hours and minutes: fires at every :33 second.
        wr(&mut r, RTC_HOURS_ALARM, 0xff);
        wr(&mut r, RTC_MINUTES_ALARM, 0xc0);
        clock.advance(59 * SEC);
        r.poll();
        assert!(irq.level());
        assert_eq!(rd(&mut r, RTC_SECONDS), 0x33);
        assert_eq!(irq.edges(), 2);
    }

    #[test]
    fn test_rtc_nmi_bit_ignored_for_addressing() {
        let (mut r, _, _) = rtc(LEAP_DAY_AFTERNOON);
        r.write(INDEX, &[INDEX_NMI_DISABLE | RTC_MINUTES]);
        assert!(r.nmi_disabled());
        let mut b = [0u8];
        r.read(DATA, &mut b);
        assert_eq!(b[0], 0x45);
        r.write(INDEX, &[INDEX_NMI_DISABLE | 0x40]);
        r.write(DATA, &[0xa5]);
        assert_eq!(rd(&mut r, 0x40), 0xa5);
        assert!(!r.nmi_disabled());
    }

    #[test]
    fn test_rtc_cmos_ram_bytes_read_back() {
        let (mut r, _, _) = rtc(LEAP_DAY_AFTERNOON);
        r.set_cmos_byte(CMOS_BASE_MEM_LO, 0x80);
        r.set_cmos_byte(CMOS_BASE_MEM_HI, 0x02);
        r.set_cmos_byte(CMOS_MEM_ABOVE_4G_HI, 0x01);
        r.set_cmos_byte(0x80 | CMOS_EXT_MEM_LO, 0x11); // index wraps to 0x17
        r.update_checksum();
        assert_eq!(rd(&mut r, CMOS_BASE_MEM_LO), 0x80);
        assert_eq!(rd(&mut r, CMOS_BASE_MEM_HI), 0x02);
        assert_eq!(rd(&mut r, CMOS_EXT_MEM_LO), 0x11);
        assert_eq!(rd(&mut r, CMOS_MEM_ABOVE_4G_HI), 0x01);
        assert_eq!(rd(&mut r, CMOS_CHECKSUM_HI), 0x00);
        assert_eq!(rd(&mut r, CMOS_CHECKSUM_LO), 0x93);
        wr(&mut r, 0x7f, 0x42);
        assert_eq!(rd(&mut r, 0x7f), 0x42);
        // C and D are read-only.
        wr(&mut r, RTC_REG_C, 0xff);
        wr(&mut r, RTC_REG_D, 0x00);
        assert_eq!(rd(&mut r, RTC_REG_C), 0);
        assert_eq!(rd(&mut r, RTC_REG_D), REG_D_VRT);
    }

    #[test]
    fn test_rtc_no_storm_after_long_clock_jump() {
        let (mut r, clock, irq) = rtc(LEAP_DAY_AFTERNOON);
        wr(&mut r, RTC_REG_A, REG_A_DV_32KHZ | 0x03); // 8192 Hz
        wr(&mut r, RTC_SECONDS_ALARM, 0xff);
        wr(&mut r, RTC_MINUTES_ALARM, 0xff);
        wr(&mut r, RTC_HOURS_ALARM, 0xff);
        wr(
            &mut r,
            RTC_REG_B,
            REG_B_24H | REG_B_PIE | REG_B_UIE | REG_B_AIE,
        );
        clock.advance(10 * 86_400 * SEC);
        r.poll();
        r.poll();
        assert_eq!(irq.edges(), 1);
        assert_eq!(
            rd(&mut r, RTC_REG_C),
            REG_C_IRQF | REG_C_PF | REG_C_AF | REG_C_UF
        );
        assert!(!irq.level());
        let next = r.next_event_ns().expect("interrupts enabled");
        assert!(next > clock.now_ns());
        r.poll();
        assert_eq!(irq.edges(), 1);
        // Time moved by the full jump.
        assert_eq!(rd(&mut r, RTC_DAY_OF_MONTH), 0x10);
        assert_eq!(rd(&mut r, RTC_MONTH), 0x03);
    }

    #[test]
    fn test_rtc_any_guest_write_is_harmless() {
        let (mut r, clock, _) = rtc(LEAP_DAY_AFTERNOON);
        for index in 0..=0xffu8 {
            for v in [0x00, 0x01, 0x0f, 0x5a, 0x7f, 0x80, 0x99, 0xa5, 0xff] {
                wr(&mut r, index, v);
                let _ = rd(&mut r, index);
                let _ = r.next_event_ns();
                r.poll();
            }
            clock.advance(SEC / 3);
        }
        // Odd offsets and access sizes.
        r.write(2, &[1]);
        r.write(DATA, &[]);
        let mut wide = [0u8; 4];
        r.read(7, &mut wide);
        assert_eq!(wide, [0xff, 0, 0, 0]);
        r.read(INDEX, &mut wide[..1]);
        assert_eq!(wide[0], 0xff);
        let mut empty = [0u8; 0];
        r.read(DATA, &mut empty);
        // Extreme start times do not panic either.
        for start in [i64::MIN, i64::MAX, -1] {
            let (mut r, clock, _) = rtc(start);
            clock.advance(u64::MAX / 2);
            let _ = date(&mut r);
            wr(&mut r, RTC_REG_B, REG_B_SET);
            wr(&mut r, RTC_CENTURY, 0xff);
            wr(&mut r, RTC_REG_B, REG_B_24H);
            let _ = date(&mut r);
        }
    }
}
