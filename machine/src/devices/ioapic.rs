//! Intel 82093AA I/O APIC (datasheet 290566), version 0x20 as on ICH-class chipsets (with the
//! directed EOI register at offset 0x40): 24 redirection entries turning pin levels into
//! interrupt messages for the local APIC.
//!
//! A pure model without lock: the owner (machine/src/interrupts.rs) drives pins and hands the
//! returned `IoApicMessage`s to the local APIC. A pin's level means "asserted": the polarity
//! bit is stored and read back but not applied, because the board's devices drive their lines
//! high when they request service whatever polarity the MADT announces.

/// IOREGSEL: register index (offset in the MMIO window).
pub const IOREGSEL: u64 = 0x00;
/// IOWIN: data window for the selected register.
pub const IOWIN: u64 = 0x10;
/// EOI register (version 0x20): the low byte is a vector whose level entries are retired.
pub const IOEOI: u64 = 0x40;

/// Register index: ID (bits 27:24).
pub const REG_ID: u8 = 0x00;
/// Register index: version and maximum redirection entry.
pub const REG_VERSION: u8 = 0x01;
/// Register index: arbitration ID.
pub const REG_ARBITRATION: u8 = 0x02;
/// Register index of the first redirection entry's low half (entry n: 0x10 + 2n, +1 high).
pub const REG_REDIR_BASE: u8 = 0x10;

/// Number of pins / redirection entries.
pub const PINS: usize = 24;
/// Version register: version 0x20, maximum redirection entry 23.
pub const VERSION_VALUE: u32 = 0x20 | ((PINS as u32 - 1) << 16);

/// Redirection entry: vector.
pub const RTE_VECTOR: u64 = 0xff;
/// Redirection entry: delivery mode (10:8).
pub const RTE_DELIVERY_MODE: u64 = 7 << 8;
/// Redirection entry: logical destination mode.
pub const RTE_LOGICAL: u64 = 1 << 11;
/// Redirection entry: delivery status (read-only; always idle here).
pub const RTE_DELIVERY_STATUS: u64 = 1 << 12;
/// Redirection entry: polarity (1 = active low).
pub const RTE_ACTIVE_LOW: u64 = 1 << 13;
/// Redirection entry: remote IRR (read-only).
pub const RTE_REMOTE_IRR: u64 = 1 << 14;
/// Redirection entry: trigger mode (1 = level).
pub const RTE_LEVEL: u64 = 1 << 15;
/// Redirection entry: mask.
pub const RTE_MASKED: u64 = 1 << 16;
/// Redirection entry: destination field (63:56).
pub const RTE_DEST_SHIFT: u32 = 56;
/// Bits of an entry the guest may write.
pub const RTE_WRITABLE: u64 = RTE_VECTOR
    | RTE_DELIVERY_MODE
    | RTE_LOGICAL
    | RTE_ACTIVE_LOW
    | RTE_LEVEL
    | RTE_MASKED
    | (0xff << RTE_DEST_SHIFT);

/// Delivery modes of a redirection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Fixed vector.
    Fixed,
    /// Lowest priority (one processor here: same as fixed).
    LowestPriority,
    /// SMI.
    Smi,
    /// NMI.
    Nmi,
    /// INIT.
    Init,
    /// The 8259 supplies the vector.
    ExtInt,
    /// A reserved encoding.
    Reserved,
}

impl DeliveryMode {
    fn from_bits(bits: u64) -> DeliveryMode {
        match (bits >> 8) & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            _ => DeliveryMode::Reserved,
        }
    }
}

/// An interrupt message the IOAPIC sends to the local APIC(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApicMessage {
    /// Vector.
    pub vector: u8,
    /// Delivery mode.
    pub mode: DeliveryMode,
    /// Level-triggered (the local APIC sets TMR and broadcasts the EOI).
    pub level: bool,
    /// Destination (APIC ID or logical mask).
    pub dest: u8,
    /// Logical destination mode.
    pub logical: bool,
}

/// The I/O APIC.
#[derive(Debug, Clone)]
pub struct IoApic {
    id: u8,
    ioregsel: u8,
    redir: [u64; PINS],
    /// Pin levels (asserted).
    pins: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        IoApic::new()
    }
}

impl IoApic {
    /// An IOAPIC in its reset state: ID 0, every entry masked, all pins deasserted.
    pub fn new() -> IoApic {
        IoApic {
            id: 0,
            ioregsel: 0,
            redir: [RTE_MASKED; PINS],
            pins: 0,
        }
    }

    /// Redirection entry `pin` (for tests and inspection).
    pub fn entry(&self, pin: usize) -> Option<u64> {
        self.redir.get(pin).copied()
    }

    fn message(&self, pin: usize) -> IoApicMessage {
        let e = self.redir[pin];
        IoApicMessage {
            vector: (e & RTE_VECTOR) as u8,
            mode: DeliveryMode::from_bits(e),
            level: e & RTE_LEVEL != 0,
            dest: (e >> RTE_DEST_SHIFT) as u8,
            logical: e & RTE_LOGICAL != 0,
        }
    }

    /// Deliver pin `pin`'s level-triggered request if it is asserted, unmasked and not
    /// already waiting for its EOI.
    fn service_level(&mut self, pin: usize) -> Option<IoApicMessage> {
        let e = self.redir[pin];
        if e & RTE_LEVEL == 0
            || e & RTE_MASKED != 0
            || e & RTE_REMOTE_IRR != 0
            || self.pins & (1 << pin) == 0
        {
            return None;
        }
        self.redir[pin] |= RTE_REMOTE_IRR;
        Some(self.message(pin))
    }

    /// Drive pin `pin` to `level`: the message to send, if any (an edge entry's rising
    /// edge, or a level entry that became deliverable).
    pub fn set_pin(&mut self, pin: usize, level: bool) -> Option<IoApicMessage> {
        if pin >= PINS {
            return None;
        }
        let bit = 1u32 << pin;
        let was = self.pins & bit != 0;
        if level {
            self.pins |= bit;
        } else {
            self.pins &= !bit;
        }
        let e = self.redir[pin];
        if e & RTE_LEVEL != 0 {
            self.service_level(pin)
        } else if level && !was && e & RTE_MASKED == 0 {
            Some(self.message(pin))
        } else {
            None
        }
    }

    /// EOI for `vector` (broadcast by the local APIC or written to the EOI register): clear
    /// remote IRR of matching level entries and re-deliver those still asserted.
    pub fn eoi(&mut self, vector: u8) -> Vec<IoApicMessage> {
        let mut out = Vec::new();
        for pin in 0..PINS {
            let e = self.redir[pin];
            if e & RTE_LEVEL != 0 && e & RTE_REMOTE_IRR != 0 && (e & RTE_VECTOR) as u8 == vector {
                self.redir[pin] &= !RTE_REMOTE_IRR;
                out.extend(self.service_level(pin));
            }
        }
        out
    }

    fn read_register(&self) -> u32 {
        match self.ioregsel {
            REG_ID | REG_ARBITRATION => u32::from(self.id) << 24,
            REG_VERSION => VERSION_VALUE,
            i if i >= REG_REDIR_BASE && usize::from(i - REG_REDIR_BASE) < 2 * PINS => {
                let n = usize::from(i - REG_REDIR_BASE);
                let e = self.redir[n / 2];
                if n % 2 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, v: u32) -> Option<IoApicMessage> {
        match self.ioregsel {
            REG_ID => self.id = ((v >> 24) & 0xf) as u8,
            i if i >= REG_REDIR_BASE && usize::from(i - REG_REDIR_BASE) < 2 * PINS => {
                let n = usize::from(i - REG_REDIR_BASE);
                let pin = n / 2;
                let old = self.redir[pin];
                let new = if n % 2 == 0 {
                    (old & !0xffff_ffff) | u64::from(v)
                } else {
                    (old & 0xffff_ffff) | (u64::from(v) << 32)
                };
                let mut e = (new & RTE_WRITABLE) | (old & RTE_REMOTE_IRR);
                if e & RTE_LEVEL == 0 {
                    // Remote IRR is meaningless for edge entries.
                    e &= !RTE_REMOTE_IRR;
                }
                self.redir[pin] = e;
                // Unmasking (or switching to level) an asserted level pin delivers it.
                return self.service_level(pin);
            }
            _ => {}
        }
        None
    }

    /// Guest read of the MMIO window at `offset` (32-bit registers).
    pub fn mmio_read(&self, offset: u64) -> u32 {
        match offset {
            IOREGSEL => u32::from(self.ioregsel),
            IOWIN => self.read_register(),
            _ => 0,
        }
    }

    /// Guest write to the MMIO window: messages to deliver (a newly unmasked level pin, or the
    /// re-delivery after an EOI-register write).
    pub fn mmio_write(&mut self, offset: u64, v: u32) -> Vec<IoApicMessage> {
        match offset {
            IOREGSEL => {
                self.ioregsel = v as u8;
                Vec::new()
            }
            IOWIN => self.write_register(v).into_iter().collect(),
            IOEOI => self.eoi(v as u8),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(io: &mut IoApic, pin: u8, low: u32, high: u32) -> Vec<IoApicMessage> {
        let mut out = Vec::new();
        io.mmio_write(IOREGSEL, u32::from(REG_REDIR_BASE + 2 * pin + 1));
        out.extend(io.mmio_write(IOWIN, high));
        io.mmio_write(IOREGSEL, u32::from(REG_REDIR_BASE + 2 * pin));
        out.extend(io.mmio_write(IOWIN, low));
        out
    }

    fn read(io: &mut IoApic, index: u8) -> u32 {
        io.mmio_write(IOREGSEL, u32::from(index));
        io.mmio_read(IOWIN)
    }

    #[test]
    fn test_ioapic_id_version_and_reset_masked() {
        let mut io = IoApic::new();
        assert_eq!(read(&mut io, REG_VERSION), 0x0017_0020);
        io.mmio_write(IOREGSEL, u32::from(REG_ID));
        io.mmio_write(IOWIN, 0x0500_0000);
        assert_eq!(read(&mut io, REG_ID), 0x0500_0000);
        assert_eq!(read(&mut io, REG_ARBITRATION), 0x0500_0000);
        for pin in 0..24u8 {
            assert_eq!(read(&mut io, REG_REDIR_BASE + 2 * pin), 0x0001_0000);
        }
        assert_eq!(io.mmio_read(IOREGSEL), u32::from(REG_REDIR_BASE + 46));
    }

    #[test]
    fn test_ioapic_edge_delivers_on_rising_edge_only_when_unmasked() {
        let mut io = IoApic::new();
        assert_eq!(io.set_pin(4, true), None, "masked at reset");
        io.set_pin(4, false);
        program(&mut io, 4, 0x31, 0);
        let m = io.set_pin(4, true).expect("rising edge");
        assert_eq!(m.vector, 0x31);
        assert!(!m.level);
        assert_eq!(m.mode, DeliveryMode::Fixed);
        assert_eq!(io.set_pin(4, true), None, "no edge while held high");
        assert_eq!(io.set_pin(4, false), None);
        assert!(io.set_pin(4, true).is_some());
        assert_eq!(io.set_pin(30, true), None, "no such pin");
    }

    #[test]
    fn test_ioapic_level_remote_irr_and_eoi_redelivery() {
        let mut io = IoApic::new();
        program(&mut io, 9, 0x0000_8041, 0x0100_0000);
        let m = io.set_pin(9, true).expect("asserted level pin");
        assert!(m.level);
        assert_eq!(m.dest, 1);
        assert_ne!(
            read(&mut io, REG_REDIR_BASE + 18) & (RTE_REMOTE_IRR as u32),
            0
        );
        assert_eq!(io.set_pin(9, true), None, "remote IRR blocks");
        assert!(io.eoi(0x42).is_empty(), "other vector");
        let again = io.eoi(0x41);
        assert_eq!(again.len(), 1, "still asserted: delivered again");
        io.set_pin(9, false);
        assert!(io.eoi(0x41).is_empty());
        assert_eq!(
            read(&mut io, REG_REDIR_BASE + 18) & (RTE_REMOTE_IRR as u32),
            0
        );
        // The EOI register does the same as a broadcast.
        assert!(io.set_pin(9, true).is_some());
        assert_eq!(io.mmio_write(IOEOI, 0x41).len(), 1, "still asserted");
        io.set_pin(9, false);
        assert!(io.mmio_write(IOEOI, 0x41).is_empty());
    }

    #[test]
    fn test_ioapic_unmasking_asserted_level_pin_delivers() {
        let mut io = IoApic::new();
        program(&mut io, 10, 0x0001_8050, 0);
        assert_eq!(io.set_pin(10, true), None, "masked");
        let out = program(&mut io, 10, 0x0000_8050, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].vector, 0x50);
        // Remote IRR is read-only for the guest.
        program(&mut io, 10, 0x0000_c050, 0);
        assert_ne!(io.entry(10).unwrap_or(0) & RTE_REMOTE_IRR, 0);
    }

    #[test]
    fn test_ioapic_modes_and_polarity_stored() {
        let mut io = IoApic::new();
        program(&mut io, 0, 0x0000_2700, 0);
        let m = io.set_pin(0, true).expect("edge");
        assert_eq!(m.mode, DeliveryMode::ExtInt);
        assert_eq!(read(&mut io, REG_REDIR_BASE), 0x2700);
        program(&mut io, 1, 0x0000_0c20, 0xff00_0000);
        let m = io.set_pin(1, true).expect("edge");
        assert_eq!(m.mode, DeliveryMode::Nmi);
        assert!(m.logical);
        assert_eq!(m.dest, 0xff);
    }
}
