//! Intel 8254 programmable interval timer (datasheet 231164), plus the PC's system control
//! port B (speaker gate, refresh toggle, OUT2) that sits next to it.
//!
//! Nothing runs in the background: each counter remembers the CLK edge at which it was loaded
//! and every read derives the count and OUT from the injected `Clock`. The board calls
//! `poll()` (at `next_event_ns()` or whenever it likes) to turn channel 0's OUT into IRQ0
//! edges; at most one rising edge is raised per poll, so a long pause never causes a storm.
//!
//! Locking: the board shares one `Arc<Mutex<Pit8254>>` between the two bus adapters and its
//! own poll loop. The PIT calls `IrqLine::set_level` with its lock held, so the order is
//! always PIT lock, then interrupt-controller lock, never the reverse.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::bus::BusDevice;
use crate::clock::Clock;
use crate::irq::IrqLine;

/// Counter 0 data register (drives IRQ0).
pub const COUNTER0: u64 = 0;
/// Counter 1 data register (DRAM refresh on the PC; unconnected here).
pub const COUNTER1: u64 = 1;
/// Counter 2 data register (PC speaker; gate and OUT via port B).
pub const COUNTER2: u64 = 2;
/// Control word register (write only).
pub const CONTROL: u64 = 3;
/// Number of PIT registers.
pub const PIT_REGS_LEN: u64 = 4;

/// Port B (system control port) register offset within its one-byte adapter.
pub const PORT_B: u64 = 0;

/// Input clock of every counter, in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Control word: select counter (bits 7-6); 3 is the read-back command.
pub const CW_SC_SHIFT: u8 = 6;
/// Control word: access mode (bits 5-4); 0 is the counter latch command.
pub const CW_RW_SHIFT: u8 = 4;
/// Control word: access mode LSB only.
pub const RW_LSB: u8 = 1;
/// Control word: access mode MSB only.
pub const RW_MSB: u8 = 2;
/// Control word: access mode LSB then MSB.
pub const RW_WORD: u8 = 3;
/// Control word: counting mode (bits 3-1).
pub const CW_MODE_SHIFT: u8 = 1;
/// Control word: BCD counting.
pub const CW_BCD: u8 = 1 << 0;

/// Read-back: do not latch the count (active low).
pub const RB_NO_COUNT: u8 = 1 << 5;
/// Read-back: do not latch the status (active low).
pub const RB_NO_STATUS: u8 = 1 << 4;
/// Read-back: counter 0 select (counter n is bit n + 1).
pub const RB_CNT0: u8 = 1 << 1;

/// Status byte: OUT pin level.
pub const STATUS_OUT: u8 = 1 << 7;
/// Status byte: null count (the last count written has not been loaded yet).
pub const STATUS_NULL: u8 = 1 << 6;

/// Port B: counter 2 gate (read/write).
pub const PORTB_GATE2: u8 = 1 << 0;
/// Port B: speaker data enable (read/write).
pub const PORTB_SPEAKER: u8 = 1 << 1;
/// Port B: parity and channel-check disables (read/write, stored only).
pub const PORTB_CHECKS: u8 = 0b1100;
/// Port B: refresh request toggle (read only).
pub const PORTB_REFRESH: u8 = 1 << 4;
/// Port B: counter 2 OUT (read only).
pub const PORTB_OUT2: u8 = 1 << 5;

/// Half-period of the port B refresh toggle: the BIOS programs counter 1 for a 15.085 µs
/// refresh; we derive the bit from the clock instead of modelling counter 1's wiring.
pub const REFRESH_TOGGLE_NS: u64 = 15_085;

const NS_PER_S: u128 = 1_000_000_000;

/// CLK edges seen up to and including `ns`.
fn edges_at(ns: u64) -> u64 {
    u64::try_from(u128::from(ns) * u128::from(PIT_HZ) / NS_PER_S).unwrap_or(u64::MAX)
}

/// Guest time of CLK edge `edge` (the first nanosecond at which it has happened).
fn edge_ns(edge: u64) -> u64 {
    let hz = u128::from(PIT_HZ);
    u64::try_from((u128::from(edge) * NS_PER_S).div_ceil(hz)).unwrap_or(u64::MAX)
}

fn from_bcd(v: u16) -> u32 {
    // Invalid digits (A-F) are weighted as 10-15 rather than rejected: guest input must not
    // panic, and the result is only used as a positive count, so any value is safe.
    (0..4)
        .rev()
        .fold(0u32, |acc, i| acc * 10 + u32::from((v >> (i * 4)) & 0xf))
}

fn to_bcd(v: u32) -> u16 {
    let mut out = 0u16;
    let mut v = v % 10_000;
    for i in 0..4 {
        out |= ((v % 10) as u16) << (i * 4);
        v /= 10;
    }
    out
}

/// One of the three counters.
#[derive(Debug, Clone)]
struct Counter {
    /// Counting mode 0-5.
    mode: u8,
    /// Access mode (RW_LSB, RW_MSB, RW_WORD).
    access: u8,
    bcd: bool,
    /// Initial count N in binary, 1..=65536 (or ..=16665 in BCD with invalid digits).
    count: u32,
    /// A count has been written since the control word.
    programmed: bool,
    /// The count is loaded into the counting element (for modes 1 and 5: triggered).
    started: bool,
    /// CLK edge at which the counting element was (or will be) loaded; None while paused.
    running_since: Option<u64>,
    /// Counting edges accumulated before the last pause (modes 0 and 4 with gate low).
    accumulated: u64,
    /// Mode 2/3: a new count waiting for the end of the current period (edge, count).
    pending: Option<(u64, u32)>,
    gate: bool,
    /// First byte of an LSB-then-MSB write.
    write_lsb: Option<u8>,
    /// Next unlatched read in LSB-then-MSB mode returns the MSB.
    read_msb: bool,
    /// Latched count bytes waiting to be read.
    latched: VecDeque<u8>,
    /// Latched status byte.
    status: Option<u8>,
    /// Mode 0: the first byte of a new count was written, counting is stopped at this value.
    frozen: Option<u32>,
    /// Edge at which the last deferred mode 2/3 reload was applied (a rising OUT edge that
    /// IRQ0 must not miss if a read settled the counter before the next poll).
    reloaded_at: Option<u64>,
}

impl Counter {
    fn new(gate: bool) -> Counter {
        Counter {
            mode: 0,
            access: RW_WORD,
            bcd: false,
            count: 0x1_0000,
            programmed: false,
            started: false,
            running_since: None,
            accumulated: 0,
            pending: None,
            gate,
            write_lsb: None,
            read_msb: false,
            latched: VecDeque::new(),
            status: None,
            frozen: None,
            reloaded_at: None,
        }
    }

    fn modulus(&self) -> u32 {
        if self.bcd { 10_000 } else { 0x1_0000 }
    }

    /// Apply a mode 2/3 reload whose period boundary has passed.
    fn settle(&mut self, e: u64) {
        if let Some((b, n)) = self.pending
            && e >= b
        {
            self.count = n;
            self.running_since = Some(b);
            self.accumulated = 0;
            self.pending = None;
            self.reloaded_at = Some(b);
        }
    }

    /// Counting edges since the counting element was loaded.
    fn elapsed(&self, e: u64) -> u64 {
        self.accumulated + self.running_since.map_or(0, |s| e.saturating_sub(s))
    }

    fn out(&self, e: u64) -> bool {
        if !self.started || self.frozen.is_some() {
            return self.mode != 0;
        }
        let j = self.elapsed(e);
        let n = u64::from(self.count);
        match self.mode {
            0 | 1 => j >= n,
            2 => !self.gate || n == 1 || j % n != n - 1,
            3 => !self.gate || j % n < n.div_ceil(2),
            _ => j != n,
        }
    }

    fn value(&self, e: u64) -> u16 {
        if let Some(f) = self.frozen {
            return self.encode(f);
        }
        if !self.started {
            return self.encode(self.count);
        }
        let j = self.elapsed(e);
        let n = u64::from(self.count);
        let m = u64::from(self.modulus());
        let v = match self.mode {
            2 => n - j % n,
            // Counts down by two; odd counts lose their low bit, as on the chip.
            3 => (n - (2 * (j % n)) % n) & !1,
            _ => (n % m + m - j % m) % m,
        };
        self.encode(u32::try_from(v % m).expect("reduced modulo at most 65536"))
    }

    fn encode(&self, v: u32) -> u16 {
        if self.bcd {
            to_bcd(v)
        } else {
            (v & 0xffff) as u16
        }
    }

    /// Whether OUT has a rising edge for elapsed counts in (j0, j1].
    fn rises_between(&self, j0: u64, j1: u64) -> bool {
        let n = u64::from(self.count);
        match self.mode {
            0 | 1 => j0 < n && n <= j1,
            2 | 3 => self.gate && j1 / n > j0 / n,
            _ => j0 <= n && n < j1,
        }
    }

    /// Elapsed count of the next rising edge of OUT after `j`.
    fn next_rise(&self, j: u64) -> Option<u64> {
        let n = u64::from(self.count);
        match self.mode {
            0 | 1 => (j < n).then_some(n),
            2 | 3 => self.gate.then_some((j / n + 1) * n),
            _ => (j <= n).then_some(n + 1),
        }
    }

    fn status_byte(&self, e: u64) -> u8 {
        let mut s = (self.access << CW_RW_SHIFT) | (self.mode << CW_MODE_SHIFT);
        if self.bcd {
            s |= CW_BCD;
        }
        if self.out(e) {
            s |= STATUS_OUT;
        }
        let loaded = self.started && self.running_since.is_none_or(|r| e >= r);
        if !self.programmed || !loaded || self.pending.is_some() {
            s |= STATUS_NULL;
        }
        s
    }

    fn latch_count(&mut self, e: u64) {
        if !self.latched.is_empty() {
            return; // a latched count stays until read
        }
        let [lo, hi] = self.value(e).to_le_bytes();
        match self.access {
            RW_LSB => self.latched.push_back(lo),
            RW_MSB => self.latched.push_back(hi),
            _ => self.latched.extend([lo, hi]),
        }
    }

    fn control(&mut self, v: u8) {
        let mode = (v >> CW_MODE_SHIFT) & 7;
        // Modes 6 and 7 are aliases of 2 and 3 (the M2 bit is a don't-care there).
        self.mode = if mode >= 6 { mode - 4 } else { mode };
        self.access = (v >> CW_RW_SHIFT) & 3;
        self.bcd = v & CW_BCD != 0;
        self.programmed = false;
        self.started = false;
        self.running_since = None;
        self.accumulated = 0;
        self.pending = None;
        self.write_lsb = None;
        self.read_msb = false;
        self.latched.clear();
        self.status = None;
        self.frozen = None;
    }

    fn write_data(&mut self, e: u64, v: u8) {
        let raw = match self.access {
            RW_LSB => u16::from(v),
            RW_MSB => u16::from(v) << 8,
            _ => match self.write_lsb.take() {
                None => {
                    self.write_lsb = Some(v);
                    if self.mode == 0 && self.started {
                        // Writing the first byte stops a mode 0 count (OUT goes low).
                        self.frozen = Some(u32::from(self.value(e)));
                    }
                    return;
                }
                Some(lo) => u16::from_le_bytes([lo, v]),
            },
        };
        let n = if self.bcd {
            from_bcd(raw)
        } else {
            u32::from(raw)
        };
        // Zero is the largest count: 2^16 in binary, 10^4 in BCD.
        let n = if n == 0 { self.modulus() } else { n };
        self.load(e, n);
    }

    fn load(&mut self, e: u64, n: u32) {
        self.frozen = None;
        let was_programmed = self.programmed;
        self.programmed = true;
        match self.mode {
            1 | 5 => {
                // Takes effect at the next gate trigger.
                self.count = n;
            }
            2 | 3 if was_programmed && self.started && self.gate => {
                if let Some(s) = self.running_since {
                    let j = self.elapsed(e);
                    let old = u64::from(self.count);
                    let boundary = s + ((j / old + 1) * old - self.accumulated);
                    self.pending = Some((boundary, n));
                }
            }
            _ => {
                self.count = n;
                self.pending = None;
                self.started = true;
                self.accumulated = 0;
                // The count is loaded on the next CLK edge after the write.
                self.running_since = self.gate.then_some(e + 1);
            }
        }
    }

    fn read_data(&mut self, e: u64) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        if let Some(b) = self.latched.pop_front() {
            return b;
        }
        let [lo, hi] = self.value(e).to_le_bytes();
        match self.access {
            RW_LSB => lo,
            RW_MSB => hi,
            _ => {
                self.read_msb = !self.read_msb;
                if self.read_msb { lo } else { hi }
            }
        }
    }

    fn set_gate(&mut self, e: u64, high: bool) {
        self.settle(e);
        if high == self.gate {
            return;
        }
        match self.mode {
            0 | 4 => {
                if high {
                    if self.started {
                        self.running_since = Some(e + 1);
                    }
                } else {
                    self.accumulated = self.elapsed(e);
                    self.running_since = None;
                }
            }
            2 | 3 => {
                if let Some((_, n)) = self.pending.take() {
                    self.count = n;
                }
                if high {
                    if self.programmed {
                        // A rising gate reloads the count on the next CLK edge.
                        self.started = true;
                        self.accumulated = 0;
                        self.running_since = Some(e + 1);
                    }
                } else {
                    self.accumulated = self.elapsed(e);
                    self.running_since = None;
                }
            }
            _ => {
                if high && self.programmed {
                    // Modes 1 and 5: a rising gate (re)triggers the count.
                    self.started = true;
                    self.accumulated = 0;
                    self.running_since = Some(e + 1);
                }
            }
        }
        self.gate = high;
    }
}

/// The 8254 with its three counters and port B, shared by the bus adapters and the board.
pub struct Pit8254 {
    counters: [Counter; 3],
    /// Port B read/write bits (gate 2, speaker enable, check disables).
    port_b: u8,
    clock: Arc<dyn Clock>,
    irq0: Arc<dyn IrqLine>,
    /// Level last driven on IRQ0.
    irq_level: bool,
    /// CLK edge at which channel 0 was last looked at for IRQ0 edges.
    irq_synced: u64,
}

impl std::fmt::Debug for Pit8254 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pit8254")
            .field("counters", &self.counters)
            .field("port_b", &self.port_b)
            .field("irq_level", &self.irq_level)
            .finish()
    }
}

impl Pit8254 {
    /// A PIT taking time from `clock` and driving `irq0` from counter 0's OUT.
    pub fn new(clock: Arc<dyn Clock>, irq0: Arc<dyn IrqLine>) -> Pit8254 {
        let e = edges_at(clock.now_ns());
        Pit8254 {
            // Counters 0 and 1 have their gates tied high; counter 2's comes from port B.
            counters: [Counter::new(true), Counter::new(true), Counter::new(false)],
            port_b: 0,
            clock,
            irq0,
            irq_level: false,
            irq_synced: e,
        }
    }

    /// The same, wrapped for sharing between `PitRegs`, `PitPortB` and the board.
    pub fn new_shared(clock: Arc<dyn Clock>, irq0: Arc<dyn IrqLine>) -> Arc<Mutex<Pit8254>> {
        Arc::new(Mutex::new(Pit8254::new(clock, irq0)))
    }

    fn now_edge(&self) -> u64 {
        edges_at(self.clock.now_ns())
    }

    fn drive(&mut self, high: bool) {
        if high != self.irq_level {
            self.irq_level = high;
            self.irq0.set_level(high);
        }
    }

    /// Bring IRQ0 up to date with counter 0 at edge `e`: at most one rising edge.
    fn sync_irq(&mut self, e: u64) {
        let c = &mut self.counters[0];
        let from = self.irq_synced.min(e);
        let mut rose = false;
        if let Some((b, _)) = c.pending
            && from < b
            && b <= e
        {
            rose = true; // the old period ends with a rising edge at the boundary
        }
        c.settle(e);
        if let Some(b) = c.reloaded_at.take()
            && from < b
            && b <= e
        {
            rose = true;
        }
        if c.started && c.running_since.is_some() {
            rose |= c.rises_between(c.elapsed(from), c.elapsed(e));
        }
        let out = c.out(e);
        self.irq_synced = e;
        if rose {
            if self.irq_level {
                self.drive(false);
            }
            self.drive(true);
        }
        self.drive(out);
    }

    /// Raise any IRQ0 edge due by now (at most one, however long since the last poll) and
    /// leave IRQ0 at counter 0's OUT level.
    pub fn poll(&mut self) {
        let e = self.now_edge();
        self.sync_irq(e);
    }

    /// Guest time of counter 0's next rising OUT edge, if one is scheduled.
    pub fn next_event_ns(&mut self) -> Option<u64> {
        let e = self.now_edge();
        let c = &mut self.counters[0];
        c.settle(e);
        if !c.started {
            return None;
        }
        let s = c.running_since?;
        let j = c.elapsed(e);
        let r = c.next_rise(j)?;
        Some(edge_ns(s + (r - c.accumulated)))
    }

    /// Counter `i`'s OUT level now.
    pub fn out(&mut self, i: usize) -> bool {
        let e = self.now_edge();
        self.counters.get_mut(i).is_some_and(|c| {
            c.settle(e);
            c.out(e)
        })
    }

    fn write_control(&mut self, e: u64, v: u8) {
        let sc = v >> CW_SC_SHIFT;
        if sc == 3 {
            // Read-back command.
            for (i, c) in self.counters.iter_mut().enumerate() {
                if v & (RB_CNT0 << i) == 0 {
                    continue;
                }
                c.settle(e);
                if v & RB_NO_COUNT == 0 {
                    c.latch_count(e);
                }
                if v & RB_NO_STATUS == 0 && c.status.is_none() {
                    c.status = Some(c.status_byte(e));
                }
            }
            return;
        }
        let c = &mut self.counters[usize::from(sc)];
        c.settle(e);
        if (v >> CW_RW_SHIFT) & 3 == 0 {
            c.latch_count(e);
        } else {
            c.control(v);
        }
    }

    /// Read PIT register `offset` (0-3).
    pub fn read_reg(&mut self, offset: u64) -> u8 {
        let e = self.now_edge();
        match offset {
            COUNTER0 | COUNTER1 | COUNTER2 => {
                let c = &mut self.counters[offset as usize];
                c.settle(e);
                c.read_data(e)
            }
            _ => 0xff, // the control register is write-only
        }
    }

    /// Write PIT register `offset` (0-3).
    pub fn write_reg(&mut self, offset: u64, v: u8) {
        let e = self.now_edge();
        self.sync_irq(e);
        match offset {
            COUNTER0 | COUNTER1 | COUNTER2 => {
                let c = &mut self.counters[offset as usize];
                c.settle(e);
                c.write_data(e, v);
            }
            CONTROL => self.write_control(e, v),
            _ => {}
        }
        // OUT may have changed (a control word, a new count); follow it without an edge
        // search, since the state just changed at `e`.
        let out = self.counters[0].out(e);
        self.drive(out);
    }

    /// Read port B: gate 2, speaker enable, refresh toggle and OUT2.
    pub fn read_port_b(&mut self) -> u8 {
        let now = self.clock.now_ns();
        let mut v = self.port_b;
        if (now / REFRESH_TOGGLE_NS) & 1 != 0 {
            v |= PORTB_REFRESH;
        }
        if self.out(2) {
            v |= PORTB_OUT2;
        }
        v
    }

    /// Write port B: only gate 2, speaker enable and the check disables are writable.
    pub fn write_port_b(&mut self, v: u8) {
        let e = self.now_edge();
        self.port_b = v & (PORTB_GATE2 | PORTB_SPEAKER | PORTB_CHECKS);
        self.counters[2].set_gate(e, v & PORTB_GATE2 != 0);
    }
}

/// Bus adapter for the four PIT registers (offsets 0-3).
#[derive(Debug, Clone)]
pub struct PitRegs(pub Arc<Mutex<Pit8254>>);

impl BusDevice for PitRegs {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read_reg(offset);
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = v;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_reg(offset, v);
    }
}

/// Bus adapter for port B (one register at offset 0).
#[derive(Debug, Clone)]
pub struct PitPortB(pub Arc<Mutex<Pit8254>>);

impl BusDevice for PitPortB {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = if offset == PORT_B {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .read_port_b()
        } else {
            0xff
        };
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = v;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        if offset == PORT_B {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_port_b(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::irq::RecordingIrq;

    fn pit() -> (Pit8254, Arc<ManualClock>, Arc<RecordingIrq>) {
        let clock = Arc::new(ManualClock::new());
        let irq = RecordingIrq::new();
        (Pit8254::new(clock.clone(), irq.clone()), clock, irq)
    }

    /// Advance `clock` to absolute time `ns`.
    fn goto(clock: &ManualClock, ns: u64) {
        let now = clock.now_ns();
        assert!(ns >= now, "clock only moves forward");
        clock.advance(ns - now);
    }

    fn program(p: &mut Pit8254, counter: u64, cw: u8, count: u16) {
        p.write_reg(CONTROL, cw);
        let [lo, hi] = count.to_le_bytes();
        p.write_reg(counter, lo);
        p.write_reg(counter, hi);
    }

    fn read_word(p: &mut Pit8254, counter: u64) -> u16 {
        let lo = p.read_reg(counter);
        let hi = p.read_reg(counter);
        u16::from_le_bytes([lo, hi])
    }

    #[test]
    fn test_pit_mode2_periodic_edges_at_period() {
        let (mut p, clock, irq) = pit();
        // Counter 0, LSB then MSB, mode 2: written at edge 0, loaded at edge 1.
        program(&mut p, COUNTER0, 0x34, 1193);
        let first = edge_ns(1 + 1193);
        assert_eq!(p.next_event_ns(), Some(first));
        goto(&clock, first - 1);
        p.poll();
        let base = irq.edges();
        goto(&clock, first);
        p.poll();
        assert_eq!(irq.edges(), base + 1);
        let second = edge_ns(1 + 2 * 1193);
        assert_eq!(p.next_event_ns(), Some(second));
        goto(&clock, second);
        p.poll();
        assert_eq!(irq.edges(), base + 2);
        // Halfway through a period the count has run down by half.
        goto(&clock, edge_ns(1 + 2 * 1193 + 500));
        assert_eq!(read_word(&mut p, COUNTER0), 1193 - 500);
    }

    #[test]
    fn test_pit_mode3_square_wave_edges_and_levels() {
        let (mut p, clock, irq) = pit();
        program(&mut p, COUNTER0, 0x36, 1000);
        p.poll();
        let base = irq.edges();
        assert!(irq.level());
        // Low for the second half of each period.
        goto(&clock, edge_ns(1 + 600));
        p.poll();
        assert!(!irq.level());
        assert_eq!(read_word(&mut p, COUNTER0), 1000 - 2 * 100);
        goto(&clock, edge_ns(1 + 1000));
        p.poll();
        assert!(irq.level());
        assert_eq!(irq.edges(), base + 1);
        assert_eq!(p.next_event_ns(), Some(edge_ns(1 + 2000)));
        // A poll right on the next rising edge without seeing the low half still counts it.
        goto(&clock, edge_ns(1 + 2000));
        p.poll();
        assert_eq!(irq.edges(), base + 2);
    }

    #[test]
    fn test_pit_mode0_one_shot_then_out_high() {
        let (mut p, clock, irq) = pit();
        program(&mut p, COUNTER0, 0x30, 100);
        p.poll();
        assert!(!irq.level());
        // OUT goes high N + 1 CLK pulses after the count is written.
        let fire = edge_ns(101);
        assert_eq!(p.next_event_ns(), Some(fire));
        goto(&clock, fire - 1);
        p.poll();
        assert!(!irq.level());
        goto(&clock, fire);
        p.poll();
        assert!(irq.level());
        assert_eq!(irq.edges(), 1);
        assert_eq!(p.next_event_ns(), None);
        goto(&clock, fire + 1_000_000_000);
        p.poll();
        assert_eq!(irq.edges(), 1);
        assert!(p.out(0));
        // The count wraps and keeps counting.
        goto(&clock, edge_ns(105) + edge_ns(65536 * 20));
        let _ = read_word(&mut p, COUNTER0);
    }

    #[test]
    fn test_pit_access_modes_lsb_msb() {
        let (mut p, _clock, _) = pit();
        // LSB only, mode 0.
        p.write_reg(CONTROL, 0x10);
        p.write_reg(COUNTER0, 0x20);
        assert_eq!(p.read_reg(COUNTER0), 0x20);
        assert_eq!(p.read_reg(COUNTER0), 0x20);
        // MSB only.
        p.write_reg(CONTROL, 0x20);
        p.write_reg(COUNTER0, 0x12);
        assert_eq!(p.read_reg(COUNTER0), 0x12);
        p.write_reg(CONTROL, 0x00); // latch
        p.write_reg(CONTROL, 0xe2); // read-back status
        assert_eq!(p.read_reg(COUNTER0) & 0x3e, 0x20);
        assert_eq!(p.read_reg(COUNTER0), 0x12);
        // LSB then MSB.
        program(&mut p, COUNTER1, 0x70, 0xbeef);
        assert_eq!(read_word(&mut p, COUNTER1), 0xbeef);
    }

    #[test]
    fn test_pit_latch_freezes_count() {
        let (mut p, clock, _) = pit();
        program(&mut p, COUNTER0, 0x34, 0x1000);
        goto(&clock, edge_ns(1 + 0x100));
        p.write_reg(CONTROL, 0x00);
        goto(&clock, edge_ns(1 + 0x200));
        // A second latch before reading is ignored.
        p.write_reg(CONTROL, 0x00);
        assert_eq!(read_word(&mut p, COUNTER0), 0x1000 - 0x100);
        assert_eq!(read_word(&mut p, COUNTER0), 0x1000 - 0x200);
    }

    #[test]
    fn test_pit_read_back_status_and_count() {
        let (mut p, clock, _) = pit();
        program(&mut p, COUNTER0, 0x34, 500);
        // Before the load edge: null count.
        p.write_reg(CONTROL, 0xe2);
        assert_eq!(p.read_reg(COUNTER0), 0x34 | STATUS_OUT | STATUS_NULL);
        goto(&clock, edge_ns(11));
        // Status and count together: status first, then LSB, MSB.
        p.write_reg(CONTROL, 0xc2);
        goto(&clock, edge_ns(50));
        assert_eq!(p.read_reg(COUNTER0), 0x34 | STATUS_OUT);
        assert_eq!(read_word(&mut p, COUNTER0), 490);
        // Counter 2 status in mode 0 before any count: OUT low, null count.
        p.write_reg(CONTROL, 0xb0);
        p.write_reg(CONTROL, 0xe8);
        assert_eq!(p.read_reg(COUNTER2), 0x30 | STATUS_NULL);
    }

    #[test]
    fn test_pit_count_zero_means_65536() {
        let (mut p, clock, irq) = pit();
        program(&mut p, COUNTER0, 0x34, 0);
        assert_eq!(p.next_event_ns(), Some(edge_ns(1 + 65536)));
        goto(&clock, edge_ns(1 + 65535));
        p.poll();
        let base = irq.edges();
        assert_eq!(read_word(&mut p, COUNTER0), 1);
        goto(&clock, edge_ns(1 + 65536));
        p.poll();
        assert_eq!(irq.edges(), base + 1);
        assert_eq!(read_word(&mut p, COUNTER0), 0);
    }

    #[test]
    fn test_pit_linux_tsc_calibration_via_port_b() {
        let (mut p, clock, _) = pit();
        goto(&clock, 5_000);
        // Linux pit_calibrate_tsc(): gate 2 on, speaker off, mode 0, 10 ms latch.
        let v = p.read_port_b();
        p.write_port_b((v & !PORTB_SPEAKER) | PORTB_GATE2);
        p.write_reg(CONTROL, 0xb0);
        let latch: u16 = 11932;
        let start = edges_at(clock.now_ns());
        p.write_reg(COUNTER2, latch.to_le_bytes()[0]);
        p.write_reg(COUNTER2, latch.to_le_bytes()[1]);
        assert_eq!(p.read_port_b() & PORTB_OUT2, 0);
        let fire = edge_ns(start + 1 + u64::from(latch));
        goto(&clock, fire - 1);
        assert_eq!(p.read_port_b() & PORTB_OUT2, 0);
        assert_eq!(p.read_port_b() & PORTB_GATE2, PORTB_GATE2);
        goto(&clock, fire);
        assert_eq!(p.read_port_b() & PORTB_OUT2, PORTB_OUT2);
        assert!((9_990_000..10_010_000).contains(&(fire - 5_000)));
    }

    #[test]
    fn test_pit_gate2_low_stops_counting() {
        let (mut p, clock, _) = pit();
        p.write_port_b(0);
        program(&mut p, COUNTER2, 0xb0, 100);
        goto(&clock, 1_000_000);
        assert_eq!(p.read_port_b() & PORTB_OUT2, 0);
        assert_eq!(read_word(&mut p, COUNTER2), 100);
        // Gate high: counting starts on the next edge.
        let e = edges_at(clock.now_ns());
        p.write_port_b(PORTB_GATE2);
        goto(&clock, edge_ns(e + 1 + 40));
        p.write_port_b(0);
        goto(&clock, edge_ns(e + 1 + 500));
        assert_eq!(read_word(&mut p, COUNTER2), 60);
        let e = edges_at(clock.now_ns());
        p.write_port_b(PORTB_GATE2);
        goto(&clock, edge_ns(e + 1 + 60));
        assert_eq!(p.read_port_b() & PORTB_OUT2, PORTB_OUT2);
    }

    #[test]
    fn test_pit_port_b_refresh_toggles() {
        let (mut p, clock, _) = pit();
        let a = p.read_port_b() & PORTB_REFRESH;
        clock.advance(REFRESH_TOGGLE_NS);
        let b = p.read_port_b() & PORTB_REFRESH;
        clock.advance(REFRESH_TOGGLE_NS);
        let c = p.read_port_b() & PORTB_REFRESH;
        assert_ne!(a, b);
        assert_eq!(a, c);
        // Read-only bits are not stored.
        p.write_port_b(0xff);
        assert_eq!(p.read_port_b() & 0xcf, 0x0f);
    }

    #[test]
    fn test_pit_no_storm_after_clock_jump() {
        let (mut p, clock, irq) = pit();
        program(&mut p, COUNTER0, 0x34, 100);
        p.poll();
        let base = irq.edges();
        clock.advance(10_000_000_000);
        p.poll();
        assert_eq!(irq.edges(), base + 1);
        p.poll();
        assert_eq!(irq.edges(), base + 1);
        let next = p.next_event_ns().expect("periodic");
        assert!(next > clock.now_ns());
        assert!(next - clock.now_ns() <= edge_ns(100) + 1);
        goto(&clock, next);
        p.poll();
        assert_eq!(irq.edges(), base + 2);
    }

    #[test]
    fn test_pit_mode2_new_count_at_period_end() {
        let (mut p, clock, irq) = pit();
        program(&mut p, COUNTER0, 0x34, 1000);
        goto(&clock, edge_ns(1 + 300));
        p.write_reg(COUNTER0, 0xf4);
        p.write_reg(COUNTER0, 0x01); // 500
        p.poll();
        let base = irq.edges();
        assert_eq!(p.next_event_ns(), Some(edge_ns(1 + 1000)));
        goto(&clock, edge_ns(1 + 1000));
        // Reading the counter before the poll must not swallow the reload edge.
        assert_eq!(read_word(&mut p, COUNTER0), 500);
        p.poll();
        assert_eq!(irq.edges(), base + 1);
        assert_eq!(p.next_event_ns(), Some(edge_ns(1 + 1500)));
        goto(&clock, edge_ns(1 + 1500));
        p.poll();
        assert_eq!(irq.edges(), base + 2);
    }

    #[test]
    fn test_pit_bcd_count() {
        let (mut p, clock, _) = pit();
        program(&mut p, COUNTER1, 0x71, 0x0099);
        assert_eq!(read_word(&mut p, COUNTER1), 0x0099);
        goto(&clock, edge_ns(1 + 10));
        assert_eq!(read_word(&mut p, COUNTER1), 0x0089);
        // BCD zero is 10000.
        program(&mut p, COUNTER1, 0x75, 0);
        goto(&clock, edge_ns(edges_at(clock.now_ns()) + 1 + 1));
        assert_eq!(read_word(&mut p, COUNTER1), 0x9999);
    }

    #[test]
    fn test_pit_mode1_and_mode5_gate_triggered() {
        let (mut p, clock, _) = pit();
        program(&mut p, COUNTER2, 0xb2, 50); // mode 1
        assert!(p.out(2));
        let e = edges_at(clock.now_ns());
        p.write_port_b(PORTB_GATE2);
        clock.advance(edge_ns(10));
        assert!(!p.out(2));
        goto(&clock, edge_ns(e + 1 + 50));
        assert!(p.out(2));
        // Mode 5: OUT strobes low for one clock when the count expires.
        p.write_port_b(0);
        program(&mut p, COUNTER2, 0xba, 20);
        let e = edges_at(clock.now_ns());
        p.write_port_b(PORTB_GATE2);
        goto(&clock, edge_ns(e + 1 + 20));
        assert!(!p.out(2));
        goto(&clock, edge_ns(e + 1 + 21));
        assert!(p.out(2));
    }

    #[test]
    fn test_pit_mode4_strobe_raises_irq() {
        let (mut p, clock, irq) = pit();
        program(&mut p, COUNTER0, 0x38, 30);
        p.poll();
        let base = irq.edges();
        assert_eq!(p.next_event_ns(), Some(edge_ns(1 + 31)));
        goto(&clock, edge_ns(1 + 40));
        p.poll();
        assert_eq!(irq.edges(), base + 1);
        assert_eq!(p.next_event_ns(), None);
    }

    #[test]
    fn test_pit_bus_adapters_and_garbage_writes() {
        let clock = Arc::new(ManualClock::new());
        let irq = RecordingIrq::new();
        let shared = Pit8254::new_shared(clock.clone(), irq.clone());
        let mut regs = PitRegs(shared.clone());
        let mut port_b = PitPortB(shared.clone());
        port_b.write(PORT_B, &[PORTB_GATE2]);
        regs.write(CONTROL, &[0xb0]);
        regs.write(COUNTER2, &[10]);
        regs.write(COUNTER2, &[0]);
        clock.advance(edge_ns(12));
        let mut b = [0u8; 2];
        port_b.read(PORT_B, &mut b);
        assert_eq!(b[0] & PORTB_OUT2, PORTB_OUT2);
        assert_eq!(b[1], 0);
        // Any byte at any offset, any size, must not panic.
        for off in 0..6 {
            for v in 0..=255u8 {
                regs.write(off, &[v]);
                port_b.write(off, &[v]);
                regs.read(off, &mut b);
                port_b.read(off, &mut b);
                clock.advance(997);
                shared.lock().unwrap().poll();
                let _ = shared.lock().unwrap().next_event_ns();
            }
            regs.write(off, &[]);
            regs.read(off, &mut []);
        }
    }
}
