//! vx's CPU: the architectural state every engine shares (`CpuState`), the engine contract
//! (`Vcpu`, `VmIo`), guest RAM access, the CPUID profile, and the reference interpreter.

pub mod cpuid;
pub mod dump;
pub mod fault;
pub mod interp;
pub mod ram;
pub mod state;
pub mod vcpu;

pub use fault::Fault;
pub use interp::Interp;
pub use ram::{GuestPhys, GuestRam, RamRegion};
pub use state::{CpuState, DescTable, Segment};
pub use vcpu::{EngineStats, Kicker, TraceFn, Vcpu, VcpuError, VcpuExit, VmIo};
