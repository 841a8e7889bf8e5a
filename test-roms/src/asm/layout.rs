//! Where the test ROMs keep things in guest RAM, and the selectors of the standard GDT that
//! every ROM loads. The ROM itself is read-only: everything written lives here.

/// COM1 data register (THR on write).
pub const COM1: u16 = 0x3f8;
/// COM1 line status register; bit 5 set = THR empty.
pub const COM1_LSR: u16 = 0x3fd;
/// QEMU isa-debug-exit port: writing v makes vx exit with (v << 1) | 1.
pub const DEBUG_EXIT: u16 = 0xf4;
/// Reset control register: writing 6 resets, which vx treats as power-off.
pub const RESET_CF9: u16 = 0xcf9;

/// The standard GDT, copied here at boot (RAM, so the CPU can set accessed and busy bits).
pub const GDT_ADDR: u64 = 0x1000;
/// The LDT the `sel::LDT` descriptor names (in the GDT's page, after the GDT).
pub const LDT_ADDR: u64 = 0x1800;
/// The IDT (256 16-byte gates in long mode, or 256 8-byte gates in protected mode).
pub const IDT_ADDR: u64 = 0x2000;
/// The task-state segment (32-bit or 64-bit layout, depending on the ROM).
pub const TSS_ADDR: u64 = 0x3000;
/// Variables shared by the runtime and the exception handlers (8 bytes each).
pub const VARS: u64 = 0x4000;
/// Number of failed checks (the exit status is nonzero when this is).
pub const VAR_FAILS: u64 = VARS;
/// Last exception: vector.
pub const VAR_VECTOR: u64 = VARS + 0x08;
/// Last exception: error code (`NO_ERROR_CODE` when the vector has none).
pub const VAR_ERROR: u64 = VARS + 0x10;
/// Last exception: saved RIP/EIP from the frame.
pub const VAR_RIP: u64 = VARS + 0x18;
/// Last exception: saved CS from the frame.
pub const VAR_CS: u64 = VARS + 0x20;
/// Last exception: CR2 when the handler ran.
pub const VAR_CR2: u64 = VARS + 0x28;
/// Last exception: address of the frame's RIP slot (shows which stack the CPU used).
pub const VAR_FRAME: u64 = VARS + 0x30;
/// Exceptions taken so far.
pub const VAR_COUNT: u64 = VARS + 0x38;
/// Where the handler resumes (0: no exception expected, report and stop).
pub const VAR_RESUME: u64 = VARS + 0x40;
/// CS to resume with (0: keep the frame's).
pub const VAR_RESUME_CS: u64 = VARS + 0x48;
/// SS to resume with in long mode (0: keep the frame's).
pub const VAR_RESUME_SS: u64 = VARS + 0x50;
/// RSP to resume with in long mode (0: keep the frame's).
pub const VAR_RESUME_RSP: u64 = VARS + 0x58;
/// Last exception: saved SS from the frame (when the frame has one).
pub const VAR_SS: u64 = VARS + 0x60;
/// Last exception: saved RSP/ESP from the frame (when the frame has one).
pub const VAR_RSP: u64 = VARS + 0x68;
/// Last exception: saved RFLAGS/EFLAGS from the frame.
pub const VAR_RFLAGS: u64 = VARS + 0xa0;
/// Free for the ROM's own use.
pub const VAR_USER: u64 = VARS + 0x100;
/// The error-code value the stubs record for vectors that push none (-1, sign-extended
/// when pushed; 32-bit code compares the low half).
pub const NO_ERROR_CODE: u64 = u64::MAX;

/// The instruction-check state block (see `check`).
pub const CHECK_STATE: u64 = 0x5000;
/// Real-mode stack top (the stack grows down from here).
pub const REAL_STACK_TOP: u64 = 0x7000;
/// Where a real-mode check table is copied (it must sit below 64 KiB).
pub const REAL_TABLE: u64 = 0x8000;
/// Largest real-mode check table.
pub const REAL_TABLE_MAX: u64 = 0x8000;

/// Page tables are allocated from here up.
pub const PT_BASE: u64 = 0x1_0000;
/// End of the page-table area.
pub const PT_END: u64 = 0x6_0000;
/// Ring-3 stack top.
pub const USER_STACK_TOP: u64 = 0x7_0000;
/// First interrupt-stack-table stack top (IST1).
pub const IST1_TOP: u64 = 0x7_8000;
/// Second IST stack top (IST2).
pub const IST2_TOP: u64 = 0x7_c000;
/// Ring-0 stack top (protected and long mode).
pub const STACK_TOP: u64 = 0x9_0000;
/// RAM the paging tests play with (mapped and aliased at other addresses).
pub const TEST_PAGES: u64 = 0x20_0000;

/// Standard GDT selectors.
pub mod sel {
    /// 32-bit flat code, DPL 0.
    pub const CODE32: u16 = 0x08;
    /// Flat data, DPL 0.
    pub const DATA: u16 = 0x10;
    /// 64-bit code, DPL 0.
    pub const CODE64: u16 = 0x18;
    /// Flat data, DPL 0 (SYSCALL loads SS = STAR.CS + 8 = this one).
    pub const DATA_SYSCALL: u16 = 0x20;
    /// 16-bit code with base = the ROM's base below 1 MiB, limit 64 KiB.
    pub const CODE16: u16 = 0x28;
    /// 16-bit data, base 0, limit 64 KiB (what real mode expects in the segment caches).
    pub const DATA16: u16 = 0x30;
    /// 32-bit flat code, DPL 3 (SYSRET's STAR base).
    pub const USER_CODE32: u16 = 0x38 | 3;
    /// Flat data, DPL 3.
    pub const USER_DATA: u16 = 0x40 | 3;
    /// 64-bit code, DPL 3.
    pub const USER_CODE64: u16 = 0x48 | 3;
    /// The TSS (16 bytes: 0x50 and 0x58).
    pub const TSS: u16 = 0x50;
    /// Read-only flat data, DPL 0.
    pub const DATA_RO: u16 = 0x60;
    /// A data segment marked not present.
    pub const NOT_PRESENT: u16 = 0x68;
    /// An LDT (base `LDT_ADDR`, four descriptors).
    pub const LDT: u16 = 0x70;
    /// Data, DPL 0, byte-granular, base 0x4000, limit 0xfff.
    pub const DATA_4000: u16 = 0x78;
    /// One past the last descriptor.
    pub const GDT_END: u16 = 0x80;
}
