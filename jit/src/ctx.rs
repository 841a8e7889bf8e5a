//! `JitCtx`: the block of memory generated code works on besides the guest's `CpuState` — the
//! lazy-flags record, the instruction budget, the soft TLBs, the jump cache and the mailbox
//! through which slow-path helpers return values and faults.
//!
//! It is `#[repr(C)]` and generated code addresses its fields through `offsets`; nothing else
//! about its layout is assumed.

use cpu::CpuState;

use crate::offsets::{JC_ENTRIES, TLB_ENTRIES};

/// One soft-TLB entry as generated code sees it: the linear page address it maps (low 12 bits
/// zero; `TLB_INVALID` when empty) and the value to add to a linear address in that page to
/// get the host address of the guest byte.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TlbSlot {
    /// Linear page address, or `TLB_INVALID`.
    pub tag: u64,
    /// Host address minus linear address for this page.
    pub addend: u64,
}

/// An empty TLB slot: its tag has low bits set, so no page-aligned compare value matches it.
pub const TLB_INVALID: u64 = u64::MAX;

impl TlbSlot {
    /// The empty slot.
    pub const EMPTY: TlbSlot = TlbSlot {
        tag: TLB_INVALID,
        addend: 0,
    };
}

/// One jump-cache entry: a RIP and the generated function of the block that starts there
/// (for the current mode and translation; the run loop clears the cache when those change).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct JcSlot {
    /// Guest RIP, or `u64::MAX` when empty (never a canonical block start that matches,
    /// because the function pointer is checked too).
    pub rip: u64,
    /// Host address of the block's generated function.
    pub func: u64,
}

impl JcSlot {
    /// The empty slot.
    pub const EMPTY: JcSlot = JcSlot {
        rip: u64::MAX,
        func: 0,
    };
}

/// Lazy-flags operation codes stored in `JitCtx::cc_op` (low two bits: log2 of the operand
/// size). See `flags.rs` for what `cc_a`, `cc_b` and `cc_r` hold for each.
pub mod cc {
    /// RFLAGS in `CpuState` is exact.
    pub const NONE: u64 = 0;
    /// ADD/ADC: a, b, result.
    pub const ADD: u64 = 1 << 2;
    /// SUB/SBB/CMP/NEG: a, b, result.
    pub const SUB: u64 = 2 << 2;
    /// AND/OR/XOR/TEST: result.
    pub const LOGIC: u64 = 3 << 2;
    /// INC: a, result; b holds the preserved CF (0 or 1).
    pub const INC: u64 = 4 << 2;
    /// DEC: a, result; b holds the preserved CF.
    pub const DEC: u64 = 5 << 2;
    /// Shifts: result; a holds CF, b holds OF (0 or 1); AF clear.
    pub const SHIFT: u64 = 6 << 2;
    /// Mask of the operation (without the size bits).
    pub const OP_MASK: u64 = !3;
}

/// The context generated code receives (its only argument).
#[repr(C)]
#[derive(Debug)]
pub struct JitCtx {
    /// The guest state (the interpreter's `CpuState`).
    pub state: *mut CpuState,
    /// Instructions left before blocks stop chaining and return to the run loop.
    pub budget: i64,
    /// Blocks entered (statistics).
    pub blocks: u64,
    /// Code-validity epoch: a block runs only if its page's cell holds this value.
    pub code_epoch: u64,
    /// Lazy flags: operation (`cc::*`), operands and result.
    pub cc_op: u64,
    /// First operand.
    pub cc_a: u64,
    /// Second operand.
    pub cc_b: u64,
    /// Result.
    pub cc_r: u64,
    /// Address of the chaining slot of the exit that returned (0: none).
    pub exit_slot: u64,
    /// What the last helper returned (a status, or RFLAGS for the flags helper).
    pub helper_status: u64,
    /// Value a load helper returns.
    pub helper_val: u64,
    /// Second value a helper returns (the remainder of a divide).
    pub helper_val2: u64,
    /// Never read: generated code stores a value here to compute it at that point (so the
    /// optimizer does not sink the computation into later exits, keeping its inputs alive).
    pub pin: u64,
    /// Pending fault: vector.
    pub fault_vector: u64,
    /// Pending fault: error code, or `u64::MAX` for none.
    pub fault_code: u64,
    /// Pending fault: #PF linear address.
    pub fault_addr: u64,
    /// The engine, for helpers (opaque to generated code).
    pub engine: *mut u8,
    /// `*const &dyn VmIo` for the current `run` call, for helpers.
    pub io: *const u8,
    /// Soft TLB for data reads.
    pub rtlb: [TlbSlot; TLB_ENTRIES],
    /// Soft TLB for data writes (never maps ROM, MMIO or pages holding translated code).
    pub wtlb: [TlbSlot; TLB_ENTRIES],
    /// Jump cache for indirect branches: RIP → generated function.
    pub jc: [JcSlot; JC_ENTRIES],
}

impl JitCtx {
    /// A context with empty TLBs and jump cache.
    pub fn new() -> Box<JitCtx> {
        Box::new(JitCtx {
            state: std::ptr::null_mut(),
            budget: 0,
            blocks: 0,
            code_epoch: 1,
            cc_op: cc::NONE,
            cc_a: 0,
            cc_b: 0,
            cc_r: 0,
            exit_slot: 0,
            helper_status: 0,
            helper_val: 0,
            helper_val2: 0,
            pin: 0,
            fault_vector: 0,
            fault_code: u64::MAX,
            fault_addr: 0,
            engine: std::ptr::null_mut(),
            io: std::ptr::null(),
            rtlb: [TlbSlot::EMPTY; TLB_ENTRIES],
            wtlb: [TlbSlot::EMPTY; TLB_ENTRIES],
            jc: [JcSlot::EMPTY; JC_ENTRIES],
        })
    }

    /// Forget every cached translation (both TLBs).
    pub fn flush_tlb(&mut self) {
        self.rtlb.fill(TlbSlot::EMPTY);
        self.wtlb.fill(TlbSlot::EMPTY);
    }

    /// Forget every jump-cache entry.
    pub fn flush_jc(&mut self) {
        self.jc.fill(JcSlot::EMPTY);
    }
}

/// Jump-cache index of `rip`.
#[inline]
pub fn jc_index(rip: u64) -> usize {
    ((rip ^ (rip >> crate::offsets::JC_BITS)) as usize) & (JC_ENTRIES - 1)
}
