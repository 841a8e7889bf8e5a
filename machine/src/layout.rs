//! The vx PC memory map and I/O port assignments: the one place where addresses and ports
//! are named (devices only ever see offsets). Follows the IBM PC/AT conventions QEMU's `pc`
//! machine uses.

/// End of conventional memory (640 KiB); the VGA window follows.
pub const LOW_RAM_END: u64 = 0xa_0000;
/// Start of the option-ROM/BIOS area below 1 MiB, mapped as RAM unless the BIOS alias
/// covers it.
pub const UPPER_RAM_START: u64 = 0xc_0000;
/// 1 MiB: where the BIOS alias ends and extended memory starts.
pub const HIGH_RAM_START: u64 = 0x10_0000;
/// RAM below 4 GiB ends here at most; the rest of the guest's memory is mapped above 4 GiB.
pub const LOW_MEM_LIMIT: u64 = 0xc000_0000;
/// 4 GiB: the BIOS image ends here, and high RAM starts here.
pub const FOUR_GIB: u64 = 0x1_0000_0000;
/// Largest part of the BIOS image aliased below 1 MiB.
pub const BIOS_ALIAS_MAX: u64 = 128 * 1024;

/// Smallest guest memory vx accepts.
pub const MIN_MEMORY: u64 = 2 << 20;
/// Largest guest memory vx accepts (what 40 physical address bits can address, minus the
/// hole below 4 GiB).
pub const MAX_MEMORY: u64 = 1 << 39;

/// COM1 16550 UART (8 registers).
pub const COM1_PORT: u16 = 0x3f8;
/// COM1 register count.
pub const COM1_LEN: u16 = 8;
/// Reset control register (RST_CNT).
pub const RESET_CF9_PORT: u16 = 0xcf9;
/// POST diagnostic port.
pub const POST_PORT: u16 = 0x80;
/// QEMU isa-debug-exit compatible port: writing v exits with status (v << 1) | 1.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
