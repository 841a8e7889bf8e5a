//! Local APIC (Intel SDM Vol. 3A ch. 11 "Advanced Programmable Interrupt Controller"): the
//! xAPIC MMIO register page of one processor, its priority logic and its timer.
//!
//! A pure model: no lock, no clock of its own. The owner (machine/src/interrupts.rs) passes
//! the current time in nanoseconds to every call that depends on it; the timer input clock
//! runs at `cpu::cpuid::TSC_HZ` (1 GHz), so one timer tick before the divider is 1 ns, and the
//! TSC-deadline timer compares against the same time base.
//!
//! Power-on state is what a PC BIOS leaves for an OS ("virtual wire mode", SDM Vol. 3A
//! §11.4.7.2 and the MP specification §3.6.2.2): software-enabled (SVR 0x1ff), LINT0 ExtINT
//! unmasked (the 8259's INTR passes through), LINT1 NMI, the other LVT entries masked.
//!
//! Not modelled: NMI, SMI, INIT and SIPI delivery (the `Vcpu` trait has no NMI injection: such
//! requests are logged once and dropped), LINT0/LINT1 in modes other than ExtINT (logged once),
//! other processors (IPIs to anyone but this one are dropped), x2APIC, the CMCI LVT, and the
//! TPR/CR8 link (64-bit Linux does not use CR8 on an xAPIC).

use std::collections::HashSet;

/// Register offsets in the 4 KiB page (each register is 32 bits at a 16-byte boundary).
pub mod reg {
    /// Local APIC ID (bits 31:24).
    pub const ID: u64 = 0x20;
    /// Version: version number, max LVT entry, EOI-broadcast suppression support.
    pub const VERSION: u64 = 0x30;
    /// Task priority register.
    pub const TPR: u64 = 0x80;
    /// Arbitration priority register (read-only).
    pub const APR: u64 = 0x90;
    /// Processor priority register (read-only).
    pub const PPR: u64 = 0xa0;
    /// End of interrupt (write-only).
    pub const EOI: u64 = 0xb0;
    /// Remote read register (read-only).
    pub const RRD: u64 = 0xc0;
    /// Logical destination register.
    pub const LDR: u64 = 0xd0;
    /// Destination format register.
    pub const DFR: u64 = 0xe0;
    /// Spurious interrupt vector register.
    pub const SVR: u64 = 0xf0;
    /// In-service register, 8 x 32 bits.
    pub const ISR: u64 = 0x100;
    /// Trigger mode register, 8 x 32 bits.
    pub const TMR: u64 = 0x180;
    /// Interrupt request register, 8 x 32 bits.
    pub const IRR: u64 = 0x200;
    /// Error status register.
    pub const ESR: u64 = 0x280;
    /// LVT corrected machine-check interrupt (not modelled: reads 0x10000).
    pub const LVT_CMCI: u64 = 0x2f0;
    /// Interrupt command register, low half.
    pub const ICR_LOW: u64 = 0x300;
    /// Interrupt command register, high half (destination).
    pub const ICR_HIGH: u64 = 0x310;
    /// LVT timer.
    pub const LVT_TIMER: u64 = 0x320;
    /// LVT thermal sensor.
    pub const LVT_THERMAL: u64 = 0x330;
    /// LVT performance counters.
    pub const LVT_PERF: u64 = 0x340;
    /// LVT LINT0.
    pub const LVT_LINT0: u64 = 0x350;
    /// LVT LINT1.
    pub const LVT_LINT1: u64 = 0x360;
    /// LVT error.
    pub const LVT_ERROR: u64 = 0x370;
    /// Timer initial count.
    pub const TIMER_INITIAL: u64 = 0x380;
    /// Timer current count (read-only).
    pub const TIMER_CURRENT: u64 = 0x390;
    /// Timer divide configuration.
    pub const TIMER_DIVIDE: u64 = 0x3e0;
}

/// Version register: version 0x14 (integrated APIC), max LVT entry 5 (six entries).
pub const VERSION_VALUE: u32 = 0x14 | (5 << 16);
/// SVR: APIC software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// SVR: focus processor checking disabled.
pub const SVR_FOCUS_DISABLE: u32 = 1 << 9;
/// SVR bits the guest may write (no EOI-broadcast suppression: the version does not offer it).
pub const SVR_WRITABLE: u32 = 0xff | SVR_ENABLE | SVR_FOCUS_DISABLE;
/// LVT: vector bits.
pub const LVT_VECTOR: u32 = 0xff;
/// LVT: delivery mode bits (10:8).
pub const LVT_DELIVERY_MODE: u32 = 7 << 8;
/// LVT: delivery status (read-only; always idle here).
pub const LVT_DELIVERY_STATUS: u32 = 1 << 12;
/// LVT: input pin polarity (LINT0/1).
pub const LVT_POLARITY: u32 = 1 << 13;
/// LVT: remote IRR (LINT0/1, read-only).
pub const LVT_REMOTE_IRR: u32 = 1 << 14;
/// LVT: trigger mode (LINT0/1).
pub const LVT_LEVEL: u32 = 1 << 15;
/// LVT: mask.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer: mode bits (18:17).
pub const LVT_TIMER_MODE: u32 = 3 << 17;
/// Timer mode: one-shot.
pub const TIMER_ONE_SHOT: u32 = 0;
/// Timer mode: periodic.
pub const TIMER_PERIODIC: u32 = 1 << 17;
/// Timer mode: TSC-deadline.
pub const TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// Delivery mode: fixed.
pub const DM_FIXED: u32 = 0;
/// Delivery mode: lowest priority.
pub const DM_LOWEST: u32 = 1 << 8;
/// Delivery mode: SMI.
pub const DM_SMI: u32 = 2 << 8;
/// Delivery mode: NMI.
pub const DM_NMI: u32 = 4 << 8;
/// Delivery mode: INIT.
pub const DM_INIT: u32 = 5 << 8;
/// Delivery mode: start-up IPI.
pub const DM_STARTUP: u32 = 6 << 8;
/// Delivery mode: ExtINT (the 8259 supplies the vector).
pub const DM_EXTINT: u32 = 7 << 8;
/// ICR: logical destination mode.
pub const ICR_LOGICAL: u32 = 1 << 11;
/// ICR: destination shorthand bits (19:18).
pub const ICR_SHORTHAND: u32 = 3 << 18;
/// Shorthand: self.
pub const SHORTHAND_SELF: u32 = 1 << 18;
/// Shorthand: all including self.
pub const SHORTHAND_ALL: u32 = 2 << 18;
/// Shorthand: all excluding self.
pub const SHORTHAND_OTHERS: u32 = 3 << 18;
/// ICR bits the guest may write (everything but delivery status).
pub const ICR_WRITABLE: u32 = 0x000c_cfff;
/// ESR: send illegal vector.
pub const ESR_SEND_ILLEGAL: u32 = 1 << 5;
/// ESR: received illegal vector.
pub const ESR_RECV_ILLEGAL: u32 = 1 << 6;
/// ESR: illegal register address.
pub const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;
/// DFR: flat model (bits 31:28 all ones); the low 28 bits read as ones.
pub const DFR_FLAT: u32 = 0xffff_ffff;

/// Index of the timer entry in `LocalApic::lvt` (order: timer, thermal, perf, LINT0, LINT1,
/// error, as the registers are laid out).
const LVT_TIMER_IDX: usize = 0;
/// Index of LINT0 in `LocalApic::lvt`.
const LVT_LINT0_IDX: usize = 3;
/// Index of LINT1 in `LocalApic::lvt`.
const LVT_LINT1_IDX: usize = 4;

/// Writable bits of each LVT entry, in register order.
const LVT_WRITABLE: [u32; 6] = [
    LVT_VECTOR | LVT_MASKED | LVT_TIMER_MODE,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_POLARITY | LVT_LEVEL | LVT_MASKED,
    LVT_VECTOR | LVT_DELIVERY_MODE | LVT_POLARITY | LVT_LEVEL | LVT_MASKED,
    LVT_VECTOR | LVT_MASKED,
];

/// A 256-bit vector register (IRR, ISR, TMR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bits256([u32; 8]);

impl Bits256 {
    fn get(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }
    fn set(&mut self, v: u8, on: bool) {
        let w = &mut self.0[usize::from(v >> 5)];
        if on {
            *w |= 1 << (v & 31);
        } else {
            *w &= !(1 << (v & 31));
        }
    }
    fn highest(&self) -> Option<u8> {
        (0..8usize).rev().find_map(|i| {
            let w = self.0[i];
            (w != 0).then(|| (i as u8) * 32 + (31 - w.leading_zeros() as u8))
        })
    }
}

/// One processor's local APIC.
#[derive(Debug, Clone)]
pub struct LocalApic {
    id: u8,
    tpr: u8,
    ldr: u32,
    dfr: u32,
    svr: u32,
    irr: Bits256,
    isr: Bits256,
    tmr: Bits256,
    /// ESR as the guest reads it (latched by the last ESR write).
    esr: u32,
    /// Errors seen since the last ESR write.
    esr_pending: u32,
    icr_low: u32,
    icr_high: u32,
    lvt: [u32; 6],
    timer_initial: u32,
    timer_divide: u32,
    /// One-shot/periodic: when the current count was last loaded from the initial count.
    timer_start_ns: u64,
    /// When the timer fires next (any mode); None: not armed.
    timer_next_ns: Option<u64>,
    /// IA32_TSC_DEADLINE as the guest last wrote it (0 once it fired).
    tsc_deadline: u64,
    /// Things logged once (unsupported IPIs, LINT modes).
    logged: HashSet<&'static str>,
}

impl Default for LocalApic {
    fn default() -> Self {
        LocalApic::new(0)
    }
}

impl LocalApic {
    /// A local APIC with ID `id` in virtual wire mode (see the file header).
    pub fn new(id: u8) -> LocalApic {
        LocalApic {
            id,
            tpr: 0,
            ldr: 0,
            dfr: DFR_FLAT,
            svr: 0xff | SVR_ENABLE,
            irr: Bits256::default(),
            isr: Bits256::default(),
            tmr: Bits256::default(),
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt: [
                LVT_MASKED, LVT_MASKED, LVT_MASKED, DM_EXTINT, DM_NMI, LVT_MASKED,
            ],
            timer_initial: 0,
            timer_divide: 0,
            timer_start_ns: 0,
            timer_next_ns: None,
            tsc_deadline: 0,
            logged: HashSet::new(),
        }
    }

    fn log_once(&mut self, what: &'static str) {
        if self.logged.insert(what) {
            tracing::warn!("lapic: {what} (not modelled, logged once)");
        }
    }

    /// Whether the APIC is software-enabled (SVR bit 8).
    pub fn enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    fn isrv(&self) -> u8 {
        self.isr.highest().unwrap_or(0)
    }

    /// Processor priority (SDM Vol. 3A §11.8.3.1).
    pub fn ppr(&self) -> u8 {
        let isrv = self.isrv();
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xf0
        }
    }

    fn apr(&self) -> u8 {
        let irrv = self.irr.highest().unwrap_or(0);
        let top = irrv.max(self.isrv());
        if self.tpr >> 4 >= top >> 4 {
            self.tpr
        } else {
            top & 0xf0
        }
    }

    /// The vector the processor would take now from IRR (highest, class above PPR).
    fn deliverable(&self) -> Option<u8> {
        let v = self.irr.highest()?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// Whether LINT0 passes the 8259's INTR through (ExtINT, unmasked).
    pub fn lint0_extint(&self) -> bool {
        let l = self.lvt[LVT_LINT0_IDX];
        l & LVT_MASKED == 0 && l & LVT_DELIVERY_MODE == DM_EXTINT
    }

    /// Whether the processor has an interrupt to take, given the 8259's INTR level.
    pub fn has_pending(&self, pic_intr: bool) -> bool {
        self.deliverable().is_some() || (pic_intr && self.lint0_extint())
    }

    /// The INTA cycle for an APIC-sourced interrupt: move the deliverable vector from IRR to
    /// ISR and return it. None: nothing the APIC itself delivers (the owner then asks the
    /// 8259 through ExtINT).
    pub fn acknowledge(&mut self) -> Option<u8> {
        let v = self.deliverable()?;
        self.irr.set(v, false);
        self.isr.set(v, true);
        Some(v)
    }

    /// Accept an interrupt message (fixed or lowest-priority) for `vector`; `level` sets the
    /// TMR bit so that the EOI is broadcast. Returns false when the message was dropped.
    pub fn accept(&mut self, vector: u8, level: bool) -> bool {
        if vector < 16 {
            self.esr_pending |= ESR_RECV_ILLEGAL;
            return false;
        }
        if !self.enabled() {
            self.log_once("interrupt message dropped while the APIC is software-disabled");
            return false;
        }
        self.irr.set(vector, true);
        self.tmr.set(vector, level);
        true
    }

    /// Whether a message with `dest` in the given destination mode reaches this APIC.
    pub fn matches_destination(&self, dest: u8, logical: bool) -> bool {
        if logical {
            // Flat model: bitmask against LDR[31:24]; cluster model: cluster and member bits.
            let ldr = (self.ldr >> 24) as u8;
            if self.dfr >> 28 == 0xf {
                dest & ldr != 0
            } else {
                dest == 0xff || (dest >> 4 == ldr >> 4 && dest & ldr & 0xf != 0)
            }
        } else {
            dest == 0xff || dest == self.id
        }
    }

    /// Fire the timer if it is due at `now`; periodic timers skip missed periods (at most
    /// one interrupt per call, so a slow vCPU never sees a storm).
    pub fn poll(&mut self, now: u64) {
        let Some(next) = self.timer_next_ns else {
            return;
        };
        if now < next {
            return;
        }
        let lvt = self.lvt[LVT_TIMER_IDX];
        match lvt & LVT_TIMER_MODE {
            TIMER_PERIODIC => {
                let period = self.timer_period_ns().max(1);
                let missed = (now - next) / period + 1;
                self.timer_next_ns = Some(next.saturating_add(missed.saturating_mul(period)));
            }
            TIMER_TSC_DEADLINE => {
                self.timer_next_ns = None;
                self.tsc_deadline = 0;
            }
            _ => self.timer_next_ns = None,
        }
        if lvt & LVT_MASKED == 0 {
            self.accept((lvt & LVT_VECTOR) as u8, false);
        }
    }

    /// When the timer fires next, if armed.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.timer_next_ns
    }

    fn timer_divisor(&self) -> u64 {
        let v = (self.timer_divide & 3) | ((self.timer_divide >> 1) & 4);
        1 << ((v + 1) & 7)
    }

    fn timer_period_ns(&self) -> u64 {
        u64::from(self.timer_initial) * self.timer_divisor()
    }

    fn timer_current(&self, now: u64) -> u32 {
        if self.timer_initial == 0 || self.lvt[0] & LVT_TIMER_MODE == TIMER_TSC_DEADLINE {
            return 0;
        }
        let period = self.timer_period_ns();
        let elapsed = now.saturating_sub(self.timer_start_ns);
        let elapsed = match self.lvt[0] & LVT_TIMER_MODE {
            TIMER_PERIODIC => elapsed % period.max(1),
            _ if self.timer_next_ns.is_none() || elapsed >= period => return 0,
            _ => elapsed,
        };
        let ticks = elapsed / self.timer_divisor();
        self.timer_initial
            .saturating_sub(u32::try_from(ticks).unwrap_or(u32::MAX))
    }

    fn start_timer(&mut self, now: u64) {
        self.timer_start_ns = now;
        self.timer_next_ns = (self.timer_initial != 0
            && self.lvt[0] & LVT_TIMER_MODE != TIMER_TSC_DEADLINE)
            .then(|| now.saturating_add(self.timer_period_ns()));
    }

    /// RDMSR IA32_TSC_DEADLINE (0 when not armed, or not in TSC-deadline mode).
    pub fn tsc_deadline(&self) -> u64 {
        if self.lvt[0] & LVT_TIMER_MODE == TIMER_TSC_DEADLINE {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// WRMSR IA32_TSC_DEADLINE = `value` when the TSC reads `tsc` and the clock `now`:
    /// arm for now + (value - tsc) ns (TSC and clock both count nanoseconds), disarm on 0.
    /// Ignored outside TSC-deadline mode (SDM Vol. 3A §11.5.4.1).
    pub fn set_tsc_deadline(&mut self, value: u64, tsc: u64, now: u64) {
        if self.lvt[0] & LVT_TIMER_MODE != TIMER_TSC_DEADLINE {
            return;
        }
        self.tsc_deadline = value;
        self.timer_next_ns = (value != 0).then(|| now.saturating_add(value.saturating_sub(tsc)));
    }

    fn read_bits(b: &Bits256, offset: u64) -> u32 {
        b.0[((offset >> 4) & 7) as usize]
    }

    /// Read the 32-bit register at `offset` (16-byte aligned) at time `now`.
    pub fn read(&mut self, offset: u64, now: u64) -> u32 {
        match offset {
            reg::ID => u32::from(self.id) << 24,
            reg::VERSION => VERSION_VALUE,
            reg::TPR => u32::from(self.tpr),
            reg::APR => u32::from(self.apr()),
            reg::PPR => u32::from(self.ppr()),
            reg::EOI | reg::RRD => 0,
            reg::LDR => self.ldr,
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            0x100..=0x170 => Self::read_bits(&self.isr, offset),
            0x180..=0x1f0 => Self::read_bits(&self.tmr, offset),
            0x200..=0x270 => Self::read_bits(&self.irr, offset),
            reg::ESR => self.esr,
            reg::LVT_CMCI => LVT_MASKED,
            reg::ICR_LOW => self.icr_low,
            reg::ICR_HIGH => self.icr_high,
            reg::LVT_TIMER..=reg::LVT_ERROR => self.lvt[((offset - reg::LVT_TIMER) >> 4) as usize],
            reg::TIMER_INITIAL => self.timer_initial,
            reg::TIMER_CURRENT => self.timer_current(now),
            reg::TIMER_DIVIDE => self.timer_divide,
            _ => {
                self.esr_pending |= ESR_ILLEGAL_REGISTER;
                0
            }
        }
    }

    /// Write `v` to the register at `offset` at time `now`. Returns the vector whose EOI must
    /// be broadcast to the IOAPIC (an EOI of a level-triggered interrupt).
    pub fn write(&mut self, offset: u64, v: u32, now: u64) -> Option<u8> {
        match offset {
            reg::ID => self.id = (v >> 24) as u8,
            reg::TPR => self.tpr = v as u8,
            reg::EOI => return self.eoi(),
            reg::LDR => self.ldr = v & 0xff00_0000,
            reg::DFR => self.dfr = v | 0x0fff_ffff,
            reg::SVR => {
                self.svr = v & SVR_WRITABLE;
                if !self.enabled() {
                    // A software-disabled APIC masks every LVT entry (SDM §11.4.7.2).
                    for l in &mut self.lvt {
                        *l |= LVT_MASKED;
                    }
                }
            }
            reg::ESR => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            reg::ICR_LOW => {
                self.icr_low = v & ICR_WRITABLE;
                self.send_ipi();
            }
            reg::ICR_HIGH => self.icr_high = v & 0xff00_0000,
            reg::LVT_TIMER..=reg::LVT_ERROR => {
                let i = ((offset - reg::LVT_TIMER) >> 4) as usize;
                let mut nv = v & LVT_WRITABLE[i];
                if !self.enabled() {
                    nv |= LVT_MASKED;
                }
                let old = self.lvt[i];
                self.lvt[i] = nv | (old & LVT_REMOTE_IRR);
                if i == LVT_TIMER_IDX && (old ^ nv) & LVT_TIMER_MODE != 0 {
                    // Changing the timer mode stops the timer (SDM §11.5.4.1).
                    self.timer_next_ns = None;
                    self.tsc_deadline = 0;
                    self.timer_initial = 0;
                }
                if (i == LVT_LINT0_IDX || i == LVT_LINT1_IDX) && nv & LVT_MASKED == 0 {
                    // NMI on LINT1 is what every OS programs; nothing on this board drives
                    // LINT1, so it needs no model (and no log).
                    match nv & LVT_DELIVERY_MODE {
                        DM_EXTINT | DM_NMI => {}
                        _ => self.log_once("LINT0/LINT1 in a mode other than ExtINT or NMI"),
                    }
                }
            }
            reg::TIMER_INITIAL => {
                if self.lvt[0] & LVT_TIMER_MODE != TIMER_TSC_DEADLINE {
                    self.timer_initial = v;
                    self.start_timer(now);
                }
            }
            reg::TIMER_DIVIDE => self.timer_divide = v & 0xb,
            reg::VERSION | reg::APR | reg::PPR | reg::RRD | reg::TIMER_CURRENT => {}
            0x100..=0x270 | reg::LVT_CMCI => {}
            _ => self.esr_pending |= ESR_ILLEGAL_REGISTER,
        }
        None
    }

    /// EOI: retire the highest in-service vector; its vector if it was level-triggered.
    fn eoi(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.set(v, false);
        self.tmr.get(v).then(|| {
            self.tmr.set(v, false);
            v
        })
    }

    /// Act on an ICR low write: only fixed/lowest-priority interrupts reaching this
    /// processor are delivered (the machine has one); the rest is logged once.
    fn send_ipi(&mut self) {
        let icr = self.icr_low;
        let vector = (icr & LVT_VECTOR) as u8;
        let to_self = match icr & ICR_SHORTHAND {
            SHORTHAND_SELF | SHORTHAND_ALL => true,
            SHORTHAND_OTHERS => false,
            _ => self.matches_destination((self.icr_high >> 24) as u8, icr & ICR_LOGICAL != 0),
        };
        match icr & LVT_DELIVERY_MODE {
            DM_FIXED | DM_LOWEST => {
                if vector < 16 {
                    self.esr_pending |= ESR_SEND_ILLEGAL;
                } else if to_self {
                    self.accept(vector, false);
                }
            }
            DM_NMI => self.log_once("NMI IPI dropped"),
            DM_INIT => self.log_once("INIT IPI ignored"),
            DM_STARTUP => self.log_once("start-up IPI ignored"),
            _ => self.log_once("SMI or reserved IPI delivery mode ignored"),
        }
    }
}

#[cfg(test)]
#[path = "lapic_tests.rs"]
mod tests;
