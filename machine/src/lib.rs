//! The vx machine: guest memory, the PIO/MMIO buses, every device model and the board that
//! wires them. Nothing here knows which engine runs the guest.

pub mod board;
pub mod bus;
pub mod clock;
pub mod control;
pub mod devices;
pub mod interrupts;
pub mod irq;
pub mod layout;
pub mod memory;
pub mod wakeup;

pub use board::{Board, BoardConfig, BoardError};
pub use control::{StopReason, VmControl};
