//! vx execution engines behind one trait (`cpu::Vcpu`), and the `auto` choice between them.
//! Today only the interpreter exists; the JIT and KVM engines are separate issues.

use cpu::{GuestRam, Interp, Vcpu};

/// The engines a user can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelKind {
    /// KVM where it is hardware-backed and usable, else the JIT, else the interpreter.
    Auto,
    /// The reference interpreter.
    Interp,
    /// The Cranelift JIT.
    Jit,
    /// KVM.
    Kvm,
}

impl std::str::FromStr for AccelKind {
    type Err = AccelError;
    fn from_str(s: &str) -> Result<AccelKind, AccelError> {
        match s {
            "auto" => Ok(AccelKind::Auto),
            "interp" => Ok(AccelKind::Interp),
            "jit" => Ok(AccelKind::Jit),
            "kvm" => Ok(AccelKind::Kvm),
            _ => Err(AccelError::Unknown(s.to_string())),
        }
    }
}

/// Why an engine cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    /// Not an engine name.
    #[error("unknown engine '{0}' (expected auto, interp, jit or kvm)")]
    Unknown(String),
    /// The engine is not part of this build yet.
    #[error("the {0} engine is not implemented yet in this version of vx (use --accel interp)")]
    NotBuilt(&'static str),
}

/// A vCPU on the chosen engine, and a sentence saying why that engine was chosen.
pub fn create_vcpu(kind: AccelKind, ram: GuestRam) -> Result<(Box<dyn Vcpu>, String), AccelError> {
    match kind {
        AccelKind::Interp => Ok((Box::new(Interp::new(ram)), "interp: requested with --accel interp".into())),
        AccelKind::Auto => Ok((
            Box::new(Interp::new(ram)),
            "interp: auto picks the interpreter (the JIT and KVM engines are not built yet)".into(),
        )),
        AccelKind::Jit => Err(AccelError::NotBuilt("jit")),
        AccelKind::Kvm => Err(AccelError::NotBuilt("kvm")),
    }
}
