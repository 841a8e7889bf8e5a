//! Intel 8259A programmable interrupt controller (datasheet 231468) as the PC's cascaded
//! master/slave pair, plus the PIIX-style edge/level control registers (ELCR).
//!
//! The slave's INT output feeds the master's IR2. One `Pic8259Pair` holds both chips behind
//! one lock; the guest reaches it through thin `BusDevice` adapters (`PicPorts` for the
//! command/data port pairs, `ElcrPorts` for the two ELCR bytes), devices through `PicLine`,
//! and the CPU side through `has_interrupt` and `acknowledge`. The adapters see offsets only:
//! the board maps them at the ports listed in machine/src/layout.rs.
//!
//! Not modelled: 8080/8085 mode (ICW4 bit 0 clear is accepted and treated as 8086 mode),
//! buffered mode (ICW4 BUF, M/S: no effect on a PC), and a poll of the master that lands on
//! the cascade input does not also acknowledge the slave.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::bus::BusDevice;
use crate::irq::IrqLine;

/// Command port offset: ICW1, OCW2, OCW3 (write); IRR, ISR or poll word (read).
pub const PORT_COMMAND: u64 = 0;
/// Data port offset: ICW2-ICW4 during initialization, then OCW1 (IMR).
pub const PORT_DATA: u64 = 1;

/// ELCR offset of the master's byte (IRQ0-7).
pub const ELCR_MASTER: u64 = 0;
/// ELCR offset of the slave's byte (IRQ8-15).
pub const ELCR_SLAVE: u64 = 1;
/// ELCR bits the master can set: IRQ0, IRQ1 and the cascade IRQ2 are always edge.
pub const ELCR_MASTER_WRITABLE: u8 = 0xf8;
/// ELCR bits the slave can set: IRQ8 (RTC) and IRQ13 (FPU) are always edge.
pub const ELCR_SLAVE_WRITABLE: u8 = 0xde;

/// ICW1 (command port, bit 4 set): initialization command word 1.
pub const ICW1_SELECT: u8 = 1 << 4;
/// ICW1: ICW4 will follow.
pub const ICW1_IC4: u8 = 1 << 0;
/// ICW1: single chip, no ICW3.
pub const ICW1_SNGL: u8 = 1 << 1;
/// ICW1: call address interval 4 (8080 mode only; ignored).
pub const ICW1_ADI: u8 = 1 << 2;
/// ICW1: level-triggered mode for all inputs.
pub const ICW1_LTIM: u8 = 1 << 3;

/// ICW2: vector base; the low three bits are replaced by the IR number.
pub const ICW2_BASE_MASK: u8 = 0xf8;

/// ICW4: 8086/8088 mode (clear means 8080/8085, which is not modelled).
pub const ICW4_UPM: u8 = 1 << 0;
/// ICW4: automatic end of interrupt.
pub const ICW4_AEOI: u8 = 1 << 1;
/// ICW4: buffered-mode master/slave select (no effect here).
pub const ICW4_MS: u8 = 1 << 2;
/// ICW4: buffered mode (no effect here).
pub const ICW4_BUF: u8 = 1 << 3;
/// ICW4: special fully nested mode.
pub const ICW4_SFNM: u8 = 1 << 4;

/// OCW3 (command port, bits 4-3 = 01): selector bit.
pub const OCW3_SELECT: u8 = 1 << 3;
/// OCW3: read register command (RR); RIS picks the register.
pub const OCW3_RR: u8 = 1 << 1;
/// OCW3: read ISR (set) or IRR (clear) when RR is set.
pub const OCW3_RIS: u8 = 1 << 0;
/// OCW3: poll command; the next read returns the poll word.
pub const OCW3_POLL: u8 = 1 << 2;
/// OCW3: special mask mode value (meaningful with ESMM).
pub const OCW3_SMM: u8 = 1 << 5;
/// OCW3: enable special mask mode change.
pub const OCW3_ESMM: u8 = 1 << 6;

/// OCW2: command field (R, SL, EOI in bits 7-5).
pub const OCW2_CMD_MASK: u8 = 0xe0;
/// OCW2: IR level field for the specific commands.
pub const OCW2_LEVEL_MASK: u8 = 0x07;
/// OCW2: rotate in automatic EOI mode, clear.
pub const OCW2_CLEAR_ROTATE_AEOI: u8 = 0x00;
/// OCW2: non-specific EOI.
pub const OCW2_EOI: u8 = 0x20;
/// OCW2: no operation.
pub const OCW2_NOP: u8 = 0x40;
/// OCW2: specific EOI for the level in bits 2-0.
pub const OCW2_SPECIFIC_EOI: u8 = 0x60;
/// OCW2: rotate in automatic EOI mode, set.
pub const OCW2_SET_ROTATE_AEOI: u8 = 0x80;
/// OCW2: rotate on non-specific EOI.
pub const OCW2_ROTATE_EOI: u8 = 0xa0;
/// OCW2: set priority (the given level becomes the lowest).
pub const OCW2_SET_PRIORITY: u8 = 0xc0;
/// OCW2: rotate on specific EOI.
pub const OCW2_ROTATE_SPECIFIC_EOI: u8 = 0xe0;

/// Poll word: an interrupt was pending (bits 2-0 give its level).
pub const POLL_INTERRUPT: u8 = 1 << 7;

/// The master's input the slave's INT output drives.
pub const CASCADE_IRQ: u8 = 2;
/// The IR level reported for a spurious interrupt.
pub const SPURIOUS_IRQ: u8 = 7;

/// Where the next data-port write goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum InitState {
    /// Initialized: data-port writes are OCW1.
    #[default]
    Ready,
    /// ICW1 seen; expecting ICW2.
    Icw2,
    /// Expecting ICW3 (cascade mode).
    Icw3,
    /// Expecting ICW4.
    Icw4,
}

/// One 8259A.
#[derive(Debug, Clone, Default)]
struct Chip {
    /// Interrupt request register.
    irr: u8,
    /// In-service register.
    isr: u8,
    /// Interrupt mask register (OCW1).
    imr: u8,
    /// Current input pin levels, used for edge detection and level mode.
    pins: u8,
    /// ELCR byte: set bits are level-triggered inputs.
    elcr: u8,
    /// Which ELCR bits the guest may set.
    elcr_writable: u8,
    /// Vector base from ICW2.
    vector_base: u8,
    /// ICW3 as written (slave mask on the master, slave id on the slave); kept for inspection.
    icw3: u8,
    init: InitState,
    /// ICW1 LTIM: all inputs level-triggered.
    ltim: bool,
    single: bool,
    icw4_needed: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    /// OCW3 RIS: command-port reads return ISR instead of IRR.
    read_isr: bool,
    /// OCW3 P: the next read is a poll.
    poll: bool,
    /// The IR level with the highest priority is `priority_add` (rotation state).
    priority_add: u8,
}

impl Chip {
    fn new(elcr_writable: u8) -> Chip {
        Chip {
            elcr_writable,
            ..Chip::default()
        }
    }

    /// Inputs currently treated as level-triggered.
    fn level_mask(&self) -> u8 {
        if self.ltim { 0xff } else { self.elcr }
    }

    fn set_pin(&mut self, irq: u8, level: bool) {
        let mask = 1u8 << (irq & 7);
        if self.level_mask() & mask != 0 {
            if level {
                self.irr |= mask;
            } else {
                self.irr &= !mask;
            }
        } else if level && self.pins & mask == 0 {
            // Edge mode: only a low-to-high transition latches a request. The latch
            // survives the pin going low again (the datasheet wants it held until INTA)
            // because emulated devices often pulse their line.
            self.irr |= mask;
        }
        if level {
            self.pins |= mask;
        } else {
            self.pins &= !mask;
        }
    }

    /// Level-triggered requests follow their pins; call after a trigger-mode change.
    fn resync_level_inputs(&mut self) {
        let level = self.level_mask();
        self.irr = (self.irr & !level) | (self.pins & level);
    }

    /// Position (0 = highest) in the current rotation of the best bit of `mask`, or 8.
    fn priority(&self, mask: u8) -> u8 {
        (0..8)
            .find(|p| mask & (1 << ((p + self.priority_add) & 7)) != 0)
            .unwrap_or(8)
    }

    /// The IR level this chip would present on INT now, if any.
    fn pending(&self, is_master: bool) -> Option<u8> {
        let req = self.priority(self.irr & !self.imr);
        if req == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_mask {
            // Special mask mode: masked in-service levels do not inhibit lower ones.
            in_service &= !self.imr;
        }
        if is_master && self.special_fully_nested {
            // A higher-priority slave request may nest on an in-service cascade input.
            in_service &= !(1 << CASCADE_IRQ);
        }
        (req < self.priority(in_service)).then_some((req + self.priority_add) & 7)
    }

    /// The INTA part of accepting `irq`: ISR set (unless auto-EOI), edge request cleared.
    fn intack(&mut self, irq: u8) {
        let mask = 1u8 << irq;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = (irq + 1) & 7;
            }
        } else {
            self.isr |= mask;
        }
        // A level request stays in IRR while its pin is high.
        if self.level_mask() & mask == 0 {
            self.irr &= !mask;
        }
    }

    fn write_icw1(&mut self, v: u8) {
        // ICW1 resets the chip: IMR, ISR, rotation and special masks cleared, IRR reads
        // selected, and edge inputs need a fresh low-to-high transition.
        self.irr = 0;
        self.isr = 0;
        self.imr = 0;
        self.priority_add = 0;
        self.special_mask = false;
        self.special_fully_nested = false;
        self.auto_eoi = false;
        self.rotate_on_auto_eoi = false;
        self.read_isr = false;
        self.poll = false;
        self.ltim = v & ICW1_LTIM != 0;
        self.single = v & ICW1_SNGL != 0;
        self.icw4_needed = v & ICW1_IC4 != 0;
        self.init = InitState::Icw2;
        self.resync_level_inputs();
    }

    fn write_ocw2(&mut self, v: u8) {
        let level = v & OCW2_LEVEL_MASK;
        match v & OCW2_CMD_MASK {
            OCW2_CLEAR_ROTATE_AEOI => self.rotate_on_auto_eoi = false,
            OCW2_SET_ROTATE_AEOI => self.rotate_on_auto_eoi = true,
            cmd @ (OCW2_EOI | OCW2_ROTATE_EOI) => {
                let p = self.priority(self.isr);
                if p != 8 {
                    let irq = (p + self.priority_add) & 7;
                    self.isr &= !(1 << irq);
                    if cmd == OCW2_ROTATE_EOI {
                        self.priority_add = (irq + 1) & 7;
                    }
                }
            }
            OCW2_SPECIFIC_EOI => self.isr &= !(1 << level),
            OCW2_ROTATE_SPECIFIC_EOI => {
                self.isr &= !(1 << level);
                self.priority_add = (level + 1) & 7;
            }
            OCW2_SET_PRIORITY => self.priority_add = (level + 1) & 7,
            _ => {} // OCW2_NOP
        }
    }

    fn write_ocw3(&mut self, v: u8) {
        if v & OCW3_ESMM != 0 {
            self.special_mask = v & OCW3_SMM != 0;
        }
        if v & OCW3_RR != 0 {
            self.read_isr = v & OCW3_RIS != 0;
        }
        self.poll = v & OCW3_POLL != 0;
    }

    fn write_command(&mut self, v: u8) {
        if v & ICW1_SELECT != 0 {
            self.write_icw1(v);
        } else if v & OCW3_SELECT != 0 {
            self.write_ocw3(v);
        } else {
            self.write_ocw2(v);
        }
    }

    fn write_data(&mut self, v: u8) {
        self.init = match self.init {
            InitState::Ready => {
                self.imr = v;
                InitState::Ready
            }
            InitState::Icw2 => {
                self.vector_base = v & ICW2_BASE_MASK;
                if !self.single {
                    InitState::Icw3
                } else if self.icw4_needed {
                    InitState::Icw4
                } else {
                    InitState::Ready
                }
            }
            InitState::Icw3 => {
                self.icw3 = v;
                if self.icw4_needed {
                    InitState::Icw4
                } else {
                    InitState::Ready
                }
            }
            InitState::Icw4 => {
                self.auto_eoi = v & ICW4_AEOI != 0;
                self.special_fully_nested = v & ICW4_SFNM != 0;
                InitState::Ready
            }
        };
    }
}

/// Both chips; guarded by the pair's one lock.
#[derive(Debug, Clone)]
struct PairState {
    master: Chip,
    slave: Chip,
}

impl PairState {
    fn chip(&mut self, which: PicChip) -> &mut Chip {
        match which {
            PicChip::Master => &mut self.master,
            PicChip::Slave => &mut self.slave,
        }
    }

    /// Propagate the slave's INT output into the master's cascade input.
    fn update_cascade(&mut self) {
        let slave_int = self.slave.pending(false).is_some();
        self.master.set_pin(CASCADE_IRQ, slave_int);
    }

    fn poll(&mut self, which: PicChip) -> u8 {
        let is_master = which == PicChip::Master;
        let chip = self.chip(which);
        chip.poll = false;
        match chip.pending(is_master) {
            Some(irq) => {
                // A poll read acts as an interrupt acknowledge.
                chip.intack(irq);
                POLL_INTERRUPT | irq
            }
            None => 0,
        }
    }
}

/// Which chip of the pair a port adapter addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PicChip {
    /// IRQ0-7; drives the CPU's INTR.
    Master,
    /// IRQ8-15; cascaded on master IRQ2.
    Slave,
}

/// The PC's master/slave 8259A pair.
///
/// Locking: one internal lock for both chips. It is taken below a port adapter's bus lock
/// or a device's own lock (through `PicLine`), and the INTR output line is called with it
/// held, so that line must never call back into the pair.
pub struct Pic8259Pair {
    state: Mutex<PairState>,
    intr: Arc<dyn IrqLine>,
}

impl std::fmt::Debug for Pic8259Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pic8259Pair")
            .field("state", &*self.lock())
            .finish()
    }
}

impl Pic8259Pair {
    /// A pair in its power-on state, driving `intr` (the CPU's INTR pin) as its output.
    pub fn new(intr: Arc<dyn IrqLine>) -> Arc<Pic8259Pair> {
        Arc::new(Pic8259Pair {
            state: Mutex::new(PairState {
                master: Chip::new(ELCR_MASTER_WRITABLE),
                slave: Chip::new(ELCR_SLAVE_WRITABLE),
            }),
            intr,
        })
    }

    fn lock(&self) -> MutexGuard<'_, PairState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recompute the cascade and INTR after any state change; called with the lock held.
    fn update(&self, s: &mut PairState) {
        s.update_cascade();
        self.intr.set_level(s.master.pending(true).is_some());
    }

    /// Drive input `line` (0-15) to `level`. Line 2 is the internal cascade and other
    /// numbers are not pins, so both are ignored (AT boards route ISA IRQ2 to IRQ9).
    pub fn set_irq(&self, line: u8, level: bool) {
        let mut s = self.lock();
        match line {
            0..=7 if line != CASCADE_IRQ => s.master.set_pin(line, level),
            8..=15 => s.slave.set_pin(line - 8, level),
            _ => {
                tracing::debug!("pic8259: ignoring set_irq on line {line}");
                return;
            }
        }
        self.update(&mut s);
    }

    /// Whether the master asserts INTR.
    pub fn has_interrupt(&self) -> bool {
        self.lock().master.pending(true).is_some()
    }

    /// The INTA cycle: the vector to deliver, with IRR, ISR, auto-EOI and the cascade
    /// updated. With nothing pending (the request went away) the answer is the spurious
    /// IRQ7 vector (IRQ15 when the slave's request vanished), and no ISR bit is set.
    pub fn acknowledge(&self) -> u8 {
        let mut s = self.lock();
        let vector = match s.master.pending(true) {
            Some(CASCADE_IRQ) => {
                s.master.intack(CASCADE_IRQ);
                let irq = match s.slave.pending(false) {
                    Some(irq) => {
                        s.slave.intack(irq);
                        irq
                    }
                    None => SPURIOUS_IRQ,
                };
                s.slave.vector_base | irq
            }
            Some(irq) => {
                s.master.intack(irq);
                s.master.vector_base | irq
            }
            None => s.master.vector_base | SPURIOUS_IRQ,
        };
        self.update(&mut s);
        vector
    }

    /// A device-side handle for input `line` (0-15).
    pub fn line(self: &Arc<Self>, line: u8) -> Arc<PicLine> {
        Arc::new(PicLine {
            pair: self.clone(),
            line,
        })
    }

    fn read_port(&self, which: PicChip, offset: u64) -> u8 {
        let mut s = self.lock();
        if s.chip(which).poll {
            let v = s.poll(which);
            self.update(&mut s);
            return v;
        }
        let chip = s.chip(which);
        match offset {
            PORT_COMMAND if chip.read_isr => chip.isr,
            PORT_COMMAND => chip.irr,
            PORT_DATA => chip.imr,
            _ => 0xff,
        }
    }

    fn write_port(&self, which: PicChip, offset: u64, v: u8) {
        let mut s = self.lock();
        let chip = s.chip(which);
        match offset {
            PORT_COMMAND => chip.write_command(v),
            PORT_DATA => chip.write_data(v),
            _ => return,
        }
        self.update(&mut s);
    }

    fn read_elcr(&self, offset: u64) -> u8 {
        let s = self.lock();
        match offset {
            ELCR_MASTER => s.master.elcr,
            ELCR_SLAVE => s.slave.elcr,
            _ => 0xff,
        }
    }

    fn write_elcr(&self, offset: u64, v: u8) {
        let mut s = self.lock();
        let chip = match offset {
            ELCR_MASTER => &mut s.master,
            ELCR_SLAVE => &mut s.slave,
            _ => return,
        };
        chip.elcr = v & chip.elcr_writable;
        chip.resync_level_inputs();
        self.update(&mut s);
    }
}

/// One PIC input as an `IrqLine` for a device.
pub struct PicLine {
    pair: Arc<Pic8259Pair>,
    line: u8,
}

impl std::fmt::Debug for PicLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PicLine").field("line", &self.line).finish()
    }
}

impl IrqLine for PicLine {
    fn set_level(&self, high: bool) {
        self.pair.set_irq(self.line, high);
    }
}

/// Bus adapter for one chip's command (offset 0) and data (offset 1) ports.
#[derive(Debug)]
pub struct PicPorts {
    pair: Arc<Pic8259Pair>,
    chip: PicChip,
}

impl PicPorts {
    /// The master's two ports.
    pub fn master(pair: Arc<Pic8259Pair>) -> PicPorts {
        PicPorts {
            pair,
            chip: PicChip::Master,
        }
    }
    /// The slave's two ports.
    pub fn slave(pair: Arc<Pic8259Pair>) -> PicPorts {
        PicPorts {
            pair,
            chip: PicChip::Slave,
        }
    }
}

impl BusDevice for PicPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Wider accesses are split into byte accesses at consecutive offsets.
        for (off, d) in (offset..).zip(data.iter_mut()) {
            *d = self.pair.read_port(self.chip, off);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (off, &v) in (offset..).zip(data.iter()) {
            self.pair.write_port(self.chip, off, v);
        }
    }
}

/// Bus adapter for the two ELCR bytes (offset 0: IRQ0-7, offset 1: IRQ8-15).
#[derive(Debug)]
pub struct ElcrPorts {
    pair: Arc<Pic8259Pair>,
}

impl ElcrPorts {
    /// The ELCR of `pair`.
    pub fn new(pair: Arc<Pic8259Pair>) -> ElcrPorts {
        ElcrPorts { pair }
    }
}

impl BusDevice for ElcrPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (off, d) in (offset..).zip(data.iter_mut()) {
            *d = self.pair.read_elcr(off);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (off, &v) in (offset..).zip(data.iter()) {
            self.pair.write_elcr(off, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;

    struct Rig {
        pair: Arc<Pic8259Pair>,
        master: PicPorts,
        slave: PicPorts,
        elcr: ElcrPorts,
        intr: Arc<RecordingIrq>,
    }

    fn rig() -> Rig {
        let intr = RecordingIrq::new();
        let pair = Pic8259Pair::new(intr.clone());
        Rig {
            master: PicPorts::master(pair.clone()),
            slave: PicPorts::slave(pair.clone()),
            elcr: ElcrPorts::new(pair.clone()),
            pair,
            intr,
        }
    }

    fn rd(d: &mut dyn BusDevice, off: u64) -> u8 {
        let mut b = [0u8];
        d.read(off, &mut b);
        b[0]
    }

    fn wr(d: &mut dyn BusDevice, off: u64, v: u8) {
        d.write(off, &[v]);
    }

    /// The ICW sequence Linux and SeaBIOS both use, with the given vector bases and ICW4.
    fn init(r: &mut Rig, master_base: u8, slave_base: u8, icw4: u8) {
        wr(&mut r.master, PORT_COMMAND, 0x11);
        wr(&mut r.master, PORT_DATA, master_base);
        wr(&mut r.master, PORT_DATA, 0x04);
        wr(&mut r.master, PORT_DATA, icw4);
        wr(&mut r.slave, PORT_COMMAND, 0x11);
        wr(&mut r.slave, PORT_DATA, slave_base);
        wr(&mut r.slave, PORT_DATA, 0x02);
        wr(&mut r.slave, PORT_DATA, icw4);
    }

    fn linux_rig() -> Rig {
        let mut r = rig();
        init(&mut r, 0x20, 0x28, 0x01);
        r
    }

    /// Select ISR reads with OCW3 and read it.
    fn isr(d: &mut dyn BusDevice) -> u8 {
        wr(d, PORT_COMMAND, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        rd(d, PORT_COMMAND)
    }

    fn eoi_master(r: &mut Rig) {
        wr(&mut r.master, PORT_COMMAND, OCW2_EOI);
    }

    fn pulse(r: &Rig, line: u8) {
        r.pair.set_irq(line, true);
        r.pair.set_irq(line, false);
    }

    #[test]
    fn test_pic_linux_init_sets_vectors_and_clears_imr() {
        let mut r = linux_rig();
        assert_eq!(rd(&mut r.master, PORT_DATA), 0);
        assert_eq!(rd(&mut r.slave, PORT_DATA), 0);
        pulse(&r, 0);
        assert!(r.pair.has_interrupt());
        assert_eq!(r.pair.acknowledge(), 0x20);
        eoi_master(&mut r);
        pulse(&r, 14);
        assert_eq!(r.pair.acknowledge(), 0x2e);
        // After init, data-port writes are OCW1 again.
        wr(&mut r.master, PORT_DATA, 0xfb);
        assert_eq!(rd(&mut r.master, PORT_DATA), 0xfb);
    }

    #[test]
    fn test_pic_seabios_init_uses_bios_vectors() {
        let mut r = rig();
        init(&mut r, 0x08, 0x70, 0x01);
        pulse(&r, 1);
        assert_eq!(r.pair.acknowledge(), 0x09);
        eoi_master(&mut r);
        pulse(&r, 8);
        assert_eq!(r.pair.acknowledge(), 0x70);
    }

    #[test]
    fn test_pic_icw2_low_bits_ignored_and_single_mode_skips_icw3() {
        let mut r = rig();
        wr(
            &mut r.master,
            PORT_COMMAND,
            ICW1_SELECT | ICW1_SNGL | ICW1_IC4,
        );
        wr(&mut r.master, PORT_DATA, 0x45); // base 0x40
        wr(&mut r.master, PORT_DATA, ICW4_UPM); // ICW4, not ICW3
        wr(&mut r.master, PORT_DATA, 0x12); // OCW1
        assert_eq!(rd(&mut r.master, PORT_DATA), 0x12);
        pulse(&r, 5);
        assert_eq!(r.pair.acknowledge(), 0x45);
        // Without IC4 the sequence ends after ICW3.
        wr(&mut r.slave, PORT_COMMAND, ICW1_SELECT);
        wr(&mut r.slave, PORT_DATA, 0x70);
        wr(&mut r.slave, PORT_DATA, 0x02);
        wr(&mut r.slave, PORT_DATA, 0x34);
        assert_eq!(rd(&mut r.slave, PORT_DATA), 0x34);
    }

    #[test]
    fn test_pic_mask_blocks_and_unmask_delivers() {
        let mut r = linux_rig();
        wr(&mut r.master, PORT_DATA, 1 << 3);
        pulse(&r, 3);
        assert!(!r.pair.has_interrupt());
        assert!(!r.intr.level());
        assert_eq!(rd(&mut r.master, PORT_COMMAND), 1 << 3); // IRR still latched
        wr(&mut r.master, PORT_DATA, 0);
        assert!(r.pair.has_interrupt());
        assert!(r.intr.level());
        assert_eq!(r.pair.acknowledge(), 0x23);
        assert!(!r.intr.level());
    }

    #[test]
    fn test_pic_slave_masked_by_master_cascade_mask() {
        let mut r = linux_rig();
        wr(&mut r.master, PORT_DATA, 1 << CASCADE_IRQ);
        pulse(&r, 12);
        assert!(!r.pair.has_interrupt());
        wr(&mut r.master, PORT_DATA, 0);
        assert_eq!(r.pair.acknowledge(), 0x2c);
    }

    #[test]
    fn test_pic_priority_lowest_irq_first_and_nesting() {
        let mut r = linux_rig();
        pulse(&r, 5);
        pulse(&r, 3);
        assert_eq!(r.pair.acknowledge(), 0x23);
        // IRQ5 is lower priority than in-service IRQ3: held off.
        assert!(!r.pair.has_interrupt());
        // IRQ1 is higher: nests.
        pulse(&r, 1);
        assert_eq!(r.pair.acknowledge(), 0x21);
        assert_eq!(isr(&mut r.master), (1 << 1) | (1 << 3));
        eoi_master(&mut r); // clears IRQ1, the highest in service
        assert_eq!(rd(&mut r.master, PORT_COMMAND), 1 << 3);
        assert!(!r.pair.has_interrupt());
        eoi_master(&mut r);
        assert_eq!(r.pair.acknowledge(), 0x25);
    }

    #[test]
    fn test_pic_slave_irqs_rank_at_cascade_position() {
        let r = linux_rig();
        pulse(&r, 4);
        pulse(&r, 9);
        // IRQ8-15 sit between IRQ1 and IRQ3 in priority.
        assert_eq!(r.pair.acknowledge(), 0x29);
    }

    #[test]
    fn test_pic_specific_eoi_clears_named_level() {
        let mut r = linux_rig();
        pulse(&r, 6);
        assert_eq!(r.pair.acknowledge(), 0x26);
        pulse(&r, 4);
        assert_eq!(r.pair.acknowledge(), 0x24);
        wr(&mut r.master, PORT_COMMAND, OCW2_SPECIFIC_EOI | 6);
        assert_eq!(isr(&mut r.master), 1 << 4);
    }

    #[test]
    fn test_pic_cascade_acknowledge_of_slave_irq() {
        let mut r = linux_rig();
        r.pair.set_irq(12, true);
        assert!(r.pair.has_interrupt());
        assert_eq!(r.pair.acknowledge(), 0x2c);
        assert!(!r.pair.has_interrupt());
        assert_eq!(isr(&mut r.master), 1 << CASCADE_IRQ);
        assert_eq!(isr(&mut r.slave), 1 << 4);
        // A second slave request waits for both EOIs, then arrives as a fresh cascade edge.
        r.pair.set_irq(12, false);
        pulse(&r, 10);
        assert!(!r.pair.has_interrupt());
        wr(&mut r.slave, PORT_COMMAND, OCW2_EOI);
        assert!(!r.pair.has_interrupt());
        eoi_master(&mut r);
        assert!(r.pair.has_interrupt());
        assert_eq!(r.pair.acknowledge(), 0x2a);
    }

    #[test]
    fn test_pic_edge_latches_once_level_follows_pin() {
        let mut r = linux_rig();
        // Edge (default): a held-high line interrupts once.
        r.pair.set_irq(3, true);
        assert_eq!(r.pair.acknowledge(), 0x23);
        eoi_master(&mut r);
        assert!(!r.pair.has_interrupt());
        r.pair.set_irq(3, false);
        // Level via ELCR: a held-high line re-interrupts after EOI.
        wr(&mut r.elcr, ELCR_SLAVE, 1 << 3); // IRQ11
        assert_eq!(rd(&mut r.elcr, ELCR_SLAVE), 1 << 3);
        r.pair.set_irq(11, true);
        assert_eq!(r.pair.acknowledge(), 0x2b);
        wr(&mut r.slave, PORT_COMMAND, OCW2_EOI);
        eoi_master(&mut r);
        assert!(r.pair.has_interrupt());
        assert_eq!(r.pair.acknowledge(), 0x2b);
        // Dropping a level line withdraws the request: no third interrupt after EOI.
        r.pair.set_irq(11, false);
        wr(&mut r.slave, PORT_COMMAND, OCW2_EOI);
        eoi_master(&mut r);
        assert!(!r.pair.has_interrupt());
        assert_eq!(rd(&mut r.slave, PORT_COMMAND), 0);
    }

    #[test]
    fn test_pic_elcr_fixed_edge_bits_and_word_access() {
        let mut r = rig();
        r.elcr.write(0, &[0xff, 0xff]);
        let mut w = [0u8; 2];
        r.elcr.read(0, &mut w);
        assert_eq!(w, [ELCR_MASTER_WRITABLE, ELCR_SLAVE_WRITABLE]);
    }

    #[test]
    fn test_pic_ltim_makes_all_inputs_level() {
        let mut r = rig();
        wr(&mut r.master, PORT_COMMAND, 0x11 | ICW1_LTIM);
        wr(&mut r.master, PORT_DATA, 0x20);
        wr(&mut r.master, PORT_DATA, 0x04);
        wr(&mut r.master, PORT_DATA, 0x01);
        r.pair.set_irq(1, true);
        r.pair.set_irq(1, false);
        assert!(!r.pair.has_interrupt());
    }

    #[test]
    fn test_pic_spurious_irq7_when_level_request_vanishes() {
        let mut r = linux_rig();
        wr(&mut r.elcr, ELCR_MASTER, 1 << 5);
        r.pair.set_irq(5, true);
        assert!(r.pair.has_interrupt());
        r.pair.set_irq(5, false);
        assert_eq!(r.pair.acknowledge(), 0x27);
        assert_eq!(isr(&mut r.master), 0, "spurious sets no ISR bit");
    }

    #[test]
    fn test_pic_spurious_irq15_when_slave_request_vanishes() {
        let mut r = linux_rig();
        wr(&mut r.elcr, ELCR_SLAVE, 1 << 2); // IRQ10 level
        r.pair.set_irq(10, true);
        // Master latched the cascade edge; the slave request then goes away.
        r.pair.set_irq(10, false);
        assert!(r.pair.has_interrupt());
        assert_eq!(r.pair.acknowledge(), 0x2f);
        assert_eq!(isr(&mut r.slave), 0);
        // The master's cascade level is in service, as on hardware: the OS EOIs it.
        assert_eq!(isr(&mut r.master), 1 << CASCADE_IRQ);
    }

    #[test]
    fn test_pic_ocw3_selects_irr_or_isr() {
        let mut r = linux_rig();
        pulse(&r, 4);
        pulse(&r, 6);
        assert_eq!(rd(&mut r.master, PORT_COMMAND), (1 << 4) | (1 << 6));
        r.pair.acknowledge();
        assert_eq!(isr(&mut r.master), 1 << 4);
        // OCW3 without RR keeps the selection.
        wr(&mut r.master, PORT_COMMAND, OCW3_SELECT);
        assert_eq!(rd(&mut r.master, PORT_COMMAND), 1 << 4);
        wr(&mut r.master, PORT_COMMAND, OCW3_SELECT | OCW3_RR);
        assert_eq!(rd(&mut r.master, PORT_COMMAND), 1 << 6);
    }

    #[test]
    fn test_pic_auto_eoi_leaves_isr_clear() {
        let mut r = rig();
        init(&mut r, 0x20, 0x28, ICW4_UPM | ICW4_AEOI);
        pulse(&r, 5);
        assert_eq!(r.pair.acknowledge(), 0x25);
        pulse(&r, 6);
        // Nothing in service, so the lower-priority IRQ6 is delivered at once.
        assert_eq!(r.pair.acknowledge(), 0x26);
        assert_eq!(isr(&mut r.master), 0);
        // Slave requests keep arriving without EOIs either.
        pulse(&r, 9);
        assert_eq!(r.pair.acknowledge(), 0x29);
        pulse(&r, 9);
        assert_eq!(r.pair.acknowledge(), 0x29);
    }

    #[test]
    fn test_pic_rotate_on_eoi_makes_serviced_level_lowest() {
        let mut r = linux_rig();
        pulse(&r, 3);
        assert_eq!(r.pair.acknowledge(), 0x23);
        wr(&mut r.master, PORT_COMMAND, OCW2_ROTATE_EOI);
        // IRQ3 is now lowest, IRQ4 highest: IRQ1 loses to IRQ5.
        pulse(&r, 1);
        pulse(&r, 5);
        assert_eq!(r.pair.acknowledge(), 0x25);
        wr(&mut r.master, PORT_COMMAND, OCW2_SET_PRIORITY | 7);
        wr(&mut r.master, PORT_COMMAND, OCW2_SPECIFIC_EOI | 5);
        assert_eq!(r.pair.acknowledge(), 0x21);
        // The rest are accepted without effect on delivery.
        for cmd in [
            OCW2_SET_ROTATE_AEOI,
            OCW2_CLEAR_ROTATE_AEOI,
            OCW2_NOP,
            OCW2_ROTATE_SPECIFIC_EOI | 1,
        ] {
            wr(&mut r.master, PORT_COMMAND, cmd);
        }
        assert_eq!(isr(&mut r.master), 0);
    }

    #[test]
    fn test_pic_poll_mode_reads_and_acknowledges() {
        let mut r = linux_rig();
        wr(&mut r.master, PORT_COMMAND, OCW3_SELECT | OCW3_POLL);
        assert_eq!(rd(&mut r.master, PORT_COMMAND), 0);
        pulse(&r, 6);
        wr(&mut r.master, PORT_COMMAND, OCW3_SELECT | OCW3_POLL);
        assert_eq!(rd(&mut r.master, PORT_COMMAND), POLL_INTERRUPT | 6);
        assert!(!r.pair.has_interrupt());
        // The poll is one-shot: the next read is IRR again.
        assert_eq!(rd(&mut r.master, PORT_COMMAND), 0);
    }

    #[test]
    fn test_pic_special_mask_mode_lets_lower_levels_through() {
        let mut r = linux_rig();
        pulse(&r, 3);
        assert_eq!(r.pair.acknowledge(), 0x23);
        pulse(&r, 5);
        assert!(!r.pair.has_interrupt());
        wr(
            &mut r.master,
            PORT_COMMAND,
            OCW3_SELECT | OCW3_ESMM | OCW3_SMM,
        );
        wr(&mut r.master, PORT_DATA, 1 << 3);
        assert_eq!(r.pair.acknowledge(), 0x25);
        wr(&mut r.master, PORT_COMMAND, OCW3_SELECT | OCW3_ESMM);
    }

    #[test]
    fn test_pic_line_adapter_and_bad_input_are_harmless() {
        let r = linux_rig();
        let line = r.pair.line(4);
        line.set_level(true);
        assert!(r.intr.level());
        assert_eq!(r.pair.acknowledge(), 0x24);
        r.pair.set_irq(2, true);
        r.pair.set_irq(16, true);
        r.pair.set_irq(255, true);
        assert!(!r.pair.has_interrupt());
    }

    #[test]
    fn test_pic_any_register_write_is_safe() {
        let mut r = rig();
        for v in 0..=255u8 {
            for off in 0..4u64 {
                wr(&mut r.master, off, v);
                wr(&mut r.slave, off, v);
                wr(&mut r.elcr, off, v);
                rd(&mut r.master, off);
                rd(&mut r.slave, off);
                rd(&mut r.elcr, off);
            }
            r.pair.set_irq(v & 15, v & 1 != 0);
            if r.pair.has_interrupt() {
                r.pair.acknowledge();
            }
        }
        r.master.write(0, &[]);
        r.master.read(0, &mut []);
        assert_eq!(rd(&mut r.master, 2), 0xff);
    }
}
