//! Device models. Each sees register offsets, an injected `IrqLine` and, where it keeps time,
//! an injected clock; none knows which engine runs the guest.

pub mod acpi_pm;
pub mod cmos_rtc;
pub mod debug_exit;
pub mod i8042;
pub mod ioapic;
pub mod lapic;
pub mod pci_host;
pub mod pic8259;
pub mod pit8254;
pub mod post;
pub mod reset_cf9;
pub mod uart16550;
