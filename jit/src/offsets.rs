//! Every offset and size generated code uses: `CpuState` fields, `JitCtx` fields, soft-TLB and
//! jump-cache geometry. Generated code never hard-codes a layout; it asks this module, which
//! derives everything from `std::mem::offset_of!` on the `#[repr(C)]` structs.

use std::mem::{offset_of, size_of};

use cpu::{CpuState, Segment};

use crate::ctx::{JcSlot, JitCtx, TlbSlot};

/// log2 of the soft-TLB entry count (each of the read and write TLBs).
pub const TLB_BITS: u32 = 10;
/// Soft-TLB entries per TLB.
pub const TLB_ENTRIES: usize = 1 << TLB_BITS;
/// log2 of the jump-cache entry count.
pub const JC_BITS: u32 = 12;
/// Jump-cache entries.
pub const JC_ENTRIES: usize = 1 << JC_BITS;

/// Offset of GPR `n` (encoding order) in `CpuState`.
pub const fn gpr(n: usize) -> i32 {
    (offset_of!(CpuState, gpr) + n * 8) as i32
}

/// Offset of RIP in `CpuState`.
pub const RIP: i32 = offset_of!(CpuState, rip) as i32;
/// Offset of RFLAGS in `CpuState`.
pub const RFLAGS: i32 = offset_of!(CpuState, rflags) as i32;

/// Offset of CR0 in `CpuState`.
pub const CR0: i32 = offset_of!(CpuState, cr0) as i32;
/// Offset of CR4 in `CpuState`.
pub const CR4: i32 = offset_of!(CpuState, cr4) as i32;

/// Offset of XMM register `n` (16 bytes, little-endian) in `CpuState`.
pub const fn xmm(n: usize) -> i32 {
    (offset_of!(CpuState, fpu) + offset_of!(cpu::state::FpuState, xmm) + n * 16) as i32
}

/// Offset of the base of segment register `n` (encoding order) in `CpuState`.
pub const fn seg_base(n: usize) -> i32 {
    (offset_of!(CpuState, seg) + n * size_of::<Segment>() + offset_of!(Segment, base)) as i32
}

/// Offset of the visible selector of segment register `n` (encoding order) in `CpuState`.
pub const fn seg_selector(n: usize) -> i32 {
    (offset_of!(CpuState, seg) + n * size_of::<Segment>() + offset_of!(Segment, selector)) as i32
}

/// `JitCtx` field offsets.
pub mod ctx {
    use super::*;
    /// `state`.
    pub const STATE: i32 = offset_of!(JitCtx, state) as i32;
    /// `budget`.
    pub const BUDGET: i32 = offset_of!(JitCtx, budget) as i32;
    /// `blocks`.
    pub const BLOCKS: i32 = offset_of!(JitCtx, blocks) as i32;
    /// `code_epoch`.
    pub const CODE_EPOCH: i32 = offset_of!(JitCtx, code_epoch) as i32;
    /// `cc_op`.
    pub const CC_OP: i32 = offset_of!(JitCtx, cc_op) as i32;
    /// `cc_a`.
    pub const CC_A: i32 = offset_of!(JitCtx, cc_a) as i32;
    /// `cc_b`.
    pub const CC_B: i32 = offset_of!(JitCtx, cc_b) as i32;
    /// `cc_r`.
    pub const CC_R: i32 = offset_of!(JitCtx, cc_r) as i32;
    /// `exit_slot`.
    pub const EXIT_SLOT: i32 = offset_of!(JitCtx, exit_slot) as i32;
    /// `helper_val`.
    pub const HELPER_VAL: i32 = offset_of!(JitCtx, helper_val) as i32;
    /// `helper_status`.
    pub const HELPER_STATUS: i32 = offset_of!(JitCtx, helper_status) as i32;
    /// `helper_val2`.
    pub const HELPER_VAL2: i32 = offset_of!(JitCtx, helper_val2) as i32;
    /// `pin`.
    pub const PIN: i32 = offset_of!(JitCtx, pin) as i32;
    /// `fault_vector`.
    pub const FAULT_VECTOR: i32 = offset_of!(JitCtx, fault_vector) as i32;
    /// `fault_code`.
    pub const FAULT_CODE: i32 = offset_of!(JitCtx, fault_code) as i32;
    /// `fault_addr`.
    pub const FAULT_ADDR: i32 = offset_of!(JitCtx, fault_addr) as i32;
    /// `rtlb`.
    pub const RTLB: i32 = offset_of!(JitCtx, rtlb) as i32;
    /// `wtlb`.
    pub const WTLB: i32 = offset_of!(JitCtx, wtlb) as i32;
    /// `jc`.
    pub const JC: i32 = offset_of!(JitCtx, jc) as i32;
}

/// Offset of `tag` in a TLB slot.
pub const TLB_TAG: i32 = offset_of!(TlbSlot, tag) as i32;
/// Offset of `addend` in a TLB slot.
pub const TLB_ADDEND: i32 = offset_of!(TlbSlot, addend) as i32;
/// log2 of the TLB slot size.
pub const TLB_SLOT_SHIFT: i64 = 4;
/// Offset of `rip` in a jump-cache slot.
pub const JC_RIP: i32 = offset_of!(JcSlot, rip) as i32;
/// Offset of `func` in a jump-cache slot.
pub const JC_FUNC: i32 = offset_of!(JcSlot, func) as i32;
/// log2 of the jump-cache slot size.
pub const JC_SLOT_SHIFT: i64 = 4;

const _: () = assert!(size_of::<TlbSlot>() == 1 << TLB_SLOT_SHIFT);
const _: () = assert!(size_of::<JcSlot>() == 1 << JC_SLOT_SHIFT);
