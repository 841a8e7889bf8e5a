//! vx execution engines behind one trait (`cpu::Vcpu`), and the `auto` choice between them:
//! the reference interpreter and KVM (Linux KVM API); the JIT is a separate issue.

pub mod kvm;

use cpu::{GuestRam, Interp, Vcpu};

pub use kvm::probe::{AutoChoice, EntryMode, HostProbe, decide_auto};
pub use kvm::{FORCE_ENV, KvmBackend, KvmError, KvmVcpu};

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
    /// KVM cannot be used on this host, or not for this guest.
    #[error("--accel kvm: {0}")]
    KvmUnavailable(String),
    /// Setting up the KVM VM or vCPU failed.
    #[error("--accel kvm: {0}")]
    Kvm(#[from] KvmError),
    /// Setting up the JIT failed (code memory, code generator).
    #[error("--accel jit: {0}")]
    Jit(#[from] jit::JitError),
}

impl AccelError {
    /// Whether this is a failure of the host (an ioctl or mapping that should have worked),
    /// as opposed to an engine that this host or this guest cannot use (a user-facing
    /// choice, exit status 2). The binary maps host failures to exit status 70.
    pub fn is_host_failure(&self) -> bool {
        match self {
            AccelError::Unknown(_) | AccelError::NotBuilt(_) | AccelError::KvmUnavailable(_) => {
                false
            }
            AccelError::Jit(_) => true,
            AccelError::Kvm(e) => matches!(
                e,
                KvmError::SupportedCpuid(_)
                    | KvmError::MsrList(_)
                    | KvmError::CreateVm(_)
                    | KvmError::SetTssAddr(_)
                    | KvmError::SetMemoryRegion { .. }
                    | KvmError::CreateVcpu(_)
                    | KvmError::SetCpuid(_)
                    | KvmError::GetState(..)
                    | KvmError::SetState(..)
            ),
        }
    }
}

/// Whether `VX_KVM_FORCE=1` asks to run KVM for guest modes the host is known not to run.
pub fn kvm_forced() -> bool {
    std::env::var(FORCE_ENV).map(|v| v == "1").unwrap_or(false)
}

/// What this host offers (for `vx info` and the `auto` policy).
pub fn probe() -> HostProbe {
    HostProbe::detect()
}

fn create_kvm(ram: GuestRam, entry: EntryMode, probe: &HostProbe) -> Result<KvmVcpu, AccelError> {
    if let Some(why) = probe.unusable_reason() {
        return Err(AccelError::KvmUnavailable(why));
    }
    if let Some(why) = probe.mode_unsupported_reason(entry) {
        if !kvm_forced() {
            return Err(AccelError::KvmUnavailable(why));
        }
        tracing::warn!(
            "{FORCE_ENV}=1: running a {} guest on KVM anyway ({why})",
            entry.describe()
        );
    }
    Ok(KvmBackend::new()?.create_vcpu(ram)?)
}

/// A vCPU on the chosen engine for a guest that starts in `entry` mode, and a sentence saying
/// why that engine was chosen.
pub fn create_vcpu(
    kind: AccelKind,
    ram: GuestRam,
    entry: EntryMode,
) -> Result<(Box<dyn Vcpu>, String), AccelError> {
    match kind {
        AccelKind::Interp => Ok((
            Box::new(Interp::new(ram)),
            "interp: requested with --accel interp".into(),
        )),
        AccelKind::Auto => {
            let probe = probe();
            let choice = decide_auto(&probe, entry);
            // Without KVM, auto runs the JIT (it runs every guest the interpreter runs, and
            // passes the same ROM suite); the interpreter only if the JIT cannot start.
            let why_not_kvm = if choice.kvm {
                match create_kvm(ram.clone(), entry, &probe) {
                    Ok(v) => return Ok((Box::new(v), choice.reason)),
                    Err(e) => format!("KVM failed ({e})"),
                }
            } else {
                let r = choice.reason.as_str();
                r.strip_prefix("jit: auto picks the JIT because ")
                    .unwrap_or(r)
                    .to_string()
            };
            match jit::JitVcpu::new(ram.clone()) {
                Ok(v) => Ok((
                    Box::new(v),
                    format!("jit: auto picks the JIT because {why_not_kvm}"),
                )),
                Err(e) => Ok((
                    Box::new(Interp::new(ram)),
                    format!(
                        "interp: auto fell back to the interpreter because {why_not_kvm} and the JIT failed ({e})"
                    ),
                )),
            }
        }
        AccelKind::Jit => Ok((
            Box::new(jit::JitVcpu::new(ram)?),
            "jit: requested with --accel jit".into(),
        )),
        AccelKind::Kvm => {
            let probe = probe();
            let v = create_kvm(ram, entry, &probe)?;
            let why = format!(
                "kvm: requested with --accel kvm ({})",
                probe.describe_hardware()
            );
            Ok((Box::new(v), why))
        }
    }
}
