//! Architectural exceptions raised by instruction execution (SDM Vol. 3A §6.3, Table 6-1).

/// Exception vectors.
pub mod vector {
    #![allow(missing_docs)]
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
    pub const MC: u8 = 18;
    pub const XM: u8 = 19;
}

/// An exception raised by an instruction: its vector, error code, and for #PF the faulting
/// linear address (loaded into CR2 when the exception is delivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Exception vector.
    pub vector: u8,
    /// Error code, for the vectors that push one.
    pub code: Option<u32>,
    /// Faulting linear address for #PF.
    pub addr: u64,
}

impl Fault {
    const fn new(vector: u8, code: Option<u32>) -> Fault {
        Fault {
            vector,
            code,
            addr: 0,
        }
    }
    /// #DE divide error.
    pub const DE: Fault = Fault::new(vector::DE, None);
    /// #UD invalid opcode.
    pub const UD: Fault = Fault::new(vector::UD, None);
    /// #BP breakpoint.
    pub const BP: Fault = Fault::new(vector::BP, None);
    /// #NM device not available.
    pub const NM: Fault = Fault::new(vector::NM, None);
    /// #MF x87 floating-point error.
    pub const MF: Fault = Fault::new(vector::MF, None);
    /// #XM SIMD floating-point exception.
    pub const XM: Fault = Fault::new(vector::XM, None);
    /// #GP(0).
    pub const GP0: Fault = Fault::new(vector::GP, Some(0));
    /// #SS(0).
    pub const SS0: Fault = Fault::new(vector::SS, Some(0));
    /// #GP with an error code (usually a selector).
    pub const fn gp(code: u32) -> Fault {
        Fault::new(vector::GP, Some(code))
    }
    /// #SS with an error code.
    pub const fn ss(code: u32) -> Fault {
        Fault::new(vector::SS, Some(code))
    }
    /// #NP with an error code.
    pub const fn np(code: u32) -> Fault {
        Fault::new(vector::NP, Some(code))
    }
    /// #TS with an error code.
    pub const fn ts(code: u32) -> Fault {
        Fault::new(vector::TS, Some(code))
    }
    /// #PF at linear address `addr` with the page-fault error code.
    pub const fn pf(addr: u64, code: u32) -> Fault {
        Fault {
            vector: vector::PF,
            code: Some(code),
            addr,
        }
    }
}

/// Page-fault error code bits (SDM Vol. 3A §4.7).
pub mod pf_code {
    /// The fault was a protection violation (0: not present).
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was a user-mode access.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in a paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch.
    pub const I: u32 = 1 << 4;
}

/// Exception classes for double-fault detection (SDM Vol. 3A Table 6-4/6-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultClass {
    /// Benign: never turns into #DF.
    Benign,
    /// Contributory: #DE, #TS, #NP, #SS, #GP.
    Contributory,
    /// Page fault.
    PageFault,
    /// Double fault itself.
    DoubleFault,
}

/// The class of `vector`.
pub fn class_of(vector: u8) -> FaultClass {
    match vector {
        vector::DE | vector::TS | vector::NP | vector::SS | vector::GP => FaultClass::Contributory,
        vector::PF => FaultClass::PageFault,
        vector::DF => FaultClass::DoubleFault,
        _ => FaultClass::Benign,
    }
}
