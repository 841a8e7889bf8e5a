//! The toolkit the ROMs are written with: the image builder, the guest memory layout, the
//! runtime (printing and checks), the mode switches, table builders, exception handlers and
//! the instruction-check harness.

pub mod boot;
pub mod faults;
pub mod layout;
pub mod rom;
pub mod rt;
pub mod tables;

pub use iced_x86::code_asm::*;
pub use rom::{Asm, R, RamInit, RomBuilder, Syms};
pub use rt::{check, check_quiet, check_var, dec, exit, hex, print};
