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

/// Master 8259A PIC (command, data).
pub const PIC_MASTER_PORT: u16 = 0x20;
/// Slave 8259A PIC (command, data).
pub const PIC_SLAVE_PORT: u16 = 0xa0;
/// Edge/level control registers of the two PICs (ELCR1, ELCR2).
pub const ELCR_PORT: u16 = 0x4d0;
/// 8254 PIT: counters 0-2 and the control word (4 ports).
pub const PIT_PORT: u16 = 0x40;
/// NMI status and control / PC speaker gate (port B).
pub const PORT_B: u16 = 0x61;
/// MC146818 RTC/CMOS index and data ports.
pub const RTC_PORT: u16 = 0x70;
/// i8042 keyboard controller data port.
pub const I8042_DATA_PORT: u16 = 0x60;
/// i8042 keyboard controller status/command port.
pub const I8042_CMD_PORT: u16 = 0x64;
/// PCI configuration mechanism #1: CONFIG_ADDRESS at 0xcf8, CONFIG_DATA at 0xcfc (8 ports;
/// 0xcf9 inside it is the reset control register, claimed separately).
pub const PCI_CONFIG_PORT: u16 = 0xcf8;
/// ACPI fixed-hardware register block (PM1a event at +0, PM1a control at +4, PM timer at +8,
/// GPE0 at +0x20): where the FADT says these registers are.
pub const ACPI_PM_PORT: u16 = 0x600;
/// Length of the ACPI register block.
pub const ACPI_PM_LEN: u16 = 0x40;

/// ISA IRQ numbers of the board's devices (PIC inputs; the IOAPIC pin is the same number,
/// except IRQ 0, which the MADT overrides to pin 2 as on every PC since the IOAPIC).
pub mod irq {
    /// PIT counter 0.
    pub const PIT: u8 = 0;
    /// i8042 keyboard.
    pub const KEYBOARD: u8 = 1;
    /// The slave PIC's cascade input on the master.
    pub const CASCADE: u8 = 2;
    /// COM1.
    pub const COM1: u8 = 4;
    /// RTC.
    pub const RTC: u8 = 8;
    /// ACPI system control interrupt (level-triggered, active high as in QEMU's FADT).
    pub const SCI: u8 = 9;
    /// i8042 mouse.
    pub const MOUSE: u8 = 12;
}

/// IOAPIC MMIO window (one page; 24 redirection entries).
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Local APIC MMIO window (one page), the IA32_APIC_BASE reset value's address.
pub const LAPIC_BASE: u64 = 0xfee0_0000;
/// Size of each APIC window.
pub const APIC_WINDOW: u64 = 0x1000;

/// Where the firmware places the ACPI tables (RSDP first, 16-byte aligned) in the BIOS area
/// below 1 MiB, which the e820 map reports reserved.
pub const ACPI_TABLES: u64 = 0xe_0000;
/// Bytes reserved for the ACPI tables.
pub const ACPI_TABLES_LEN: u64 = 0x1_0000;
