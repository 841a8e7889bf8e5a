//! What this host offers for KVM (Linux KVM API doc, `Documentation/virt/kvm/api.rst` §4.1
//! KVM_GET_API_VERSION, §4.4 KVM_CHECK_EXTENSION), whether it is hardware virtualization
//! (VT-x `vmx` / AMD-V `svm` CPU flags and the kvm_intel / kvm_amd modules) or a software-only
//! KVM such as `kvm_pvm`, and the pure decision function behind `--accel auto`.

use std::path::Path;

use kvm_ioctls::{Cap, Kvm};

use super::cpuid::supported_cpuid;

/// The only KVM API version there has ever been (KVM_GET_API_VERSION, api.rst §4.1).
pub const KVM_API_VERSION: i32 = 12;

/// How the processor can enter the guest: decides whether a software-only KVM can run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// Real mode (CR0.PE = 0), e.g. a BIOS at the reset vector.
    Real,
    /// Protected mode without long mode (16- or 32-bit code, or virtual-8086).
    Protected,
    /// IA-32e mode with a 32- or 16-bit code segment.
    Compatibility,
    /// 64-bit long mode (IA-32e mode with CS.L = 1).
    Long64,
}

impl EntryMode {
    /// The mode a processor in `st` is in.
    pub fn of(st: &cpu::CpuState) -> EntryMode {
        if st.in_64bit_mode() {
            EntryMode::Long64
        } else if st.long_mode_active() {
            EntryMode::Compatibility
        } else if st.protected_mode() {
            EntryMode::Protected
        } else {
            EntryMode::Real
        }
    }

    /// Name used in messages.
    pub fn describe(self) -> &'static str {
        match self {
            EntryMode::Real => "real mode",
            EntryMode::Protected => "protected mode",
            EntryMode::Compatibility => "compatibility mode",
            EntryMode::Long64 => "64-bit long mode",
        }
    }
}

/// Which kernel module implements /dev/kvm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmFlavor {
    /// kvm_intel: Intel VT-x.
    Intel,
    /// kvm_amd: AMD-V (SVM).
    Amd,
    /// kvm_pvm: a software-only, paravirtualized KVM that runs 64-bit guests without VT-x/AMD-V
    /// (typically inside a nested cloud guest). It cannot run real-mode code.
    Pvm,
    /// No vendor module was found (or /sys/module is not readable).
    Unknown,
}

impl KvmFlavor {
    /// The module name.
    pub fn module(&self) -> &'static str {
        match self {
            KvmFlavor::Intel => "kvm_intel",
            KvmFlavor::Amd => "kvm_amd",
            KvmFlavor::Pvm => "kvm_pvm",
            KvmFlavor::Unknown => "unknown",
        }
    }
}

/// The state of /dev/kvm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevKvm {
    /// Opened, with this API version.
    Open {
        /// KVM_GET_API_VERSION.
        api_version: i32,
    },
    /// No such device (module not loaded, or not a Linux host).
    Missing,
    /// The device exists but this user may not open it.
    PermissionDenied,
    /// Opening failed for another reason.
    Failed(String),
}

/// A capability and what KVM_CHECK_EXTENSION said (0 = absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapInfo {
    /// The capability name as in the KVM API doc.
    pub name: &'static str,
    /// KVM_CHECK_EXTENSION's answer.
    pub value: i32,
    /// vx cannot run a vCPU without it.
    pub required: bool,
}

/// Everything vx learned about the host's KVM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostProbe {
    /// /dev/kvm.
    pub dev: DevKvm,
    /// `vmx` or `svm` in /proc/cpuinfo.
    pub cpu_virt_flag: Option<&'static str>,
    /// The kernel module behind /dev/kvm.
    pub flavor: KvmFlavor,
    /// Capabilities (empty unless /dev/kvm opened).
    pub caps: Vec<CapInfo>,
    /// Entries in KVM_GET_SUPPORTED_CPUID (None if it failed or /dev/kvm is unusable).
    pub cpuid_entries: Option<usize>,
}

/// Capabilities `vx info` reports; `true` marks the ones the engine cannot do without.
const CAPS: &[(&str, Cap, bool)] = &[
    ("KVM_CAP_USER_MEMORY", Cap::UserMemory, true),
    ("KVM_CAP_IMMEDIATE_EXIT", Cap::ImmediateExit, true),
    ("KVM_CAP_EXT_CPUID", Cap::ExtCpuid, true),
    ("KVM_CAP_READONLY_MEM", Cap::ReadonlyMem, false),
    ("KVM_CAP_SET_GUEST_DEBUG", Cap::SetGuestDebug, false),
    ("KVM_CAP_VCPU_EVENTS", Cap::VcpuEvents, false),
    ("KVM_CAP_DEBUGREGS", Cap::Debugregs, false),
    ("KVM_CAP_XCRS", Cap::Xcrs, false),
    ("KVM_CAP_XSAVE", Cap::Xsave, false),
    ("KVM_CAP_IRQCHIP", Cap::Irqchip, false),
    ("KVM_CAP_PIT2", Cap::Pit2, false),
    ("KVM_CAP_IRQFD", Cap::Irqfd, false),
    ("KVM_CAP_IOEVENTFD", Cap::Ioeventfd, false),
    ("KVM_CAP_COALESCED_MMIO", Cap::CoalescedMmio, false),
    ("KVM_CAP_SYNC_REGS", Cap::SyncRegs, false),
    ("KVM_CAP_TSC_CONTROL", Cap::TscControl, false),
    ("KVM_CAP_NR_MEMSLOTS", Cap::NrMemslots, false),
    ("KVM_CAP_MAX_VCPUS", Cap::MaxVcpus, false),
];

/// The `vmx` or `svm` flag in a /proc/cpuinfo text.
pub fn cpu_virt_flag(cpuinfo: &str) -> Option<&'static str> {
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim() != "flags" {
            continue;
        }
        for f in value.split_whitespace() {
            match f {
                "vmx" => return Some("vmx"),
                "svm" => return Some("svm"),
                _ => {}
            }
        }
    }
    None
}

/// The KVM flavor from the names of loaded modules (from /proc/modules or /sys/module).
pub fn flavor_from_modules<'a>(names: impl IntoIterator<Item = &'a str>) -> KvmFlavor {
    let mut flavor = KvmFlavor::Unknown;
    for n in names {
        match n {
            "kvm_intel" => return KvmFlavor::Intel,
            "kvm_amd" => return KvmFlavor::Amd,
            "kvm_pvm" => flavor = KvmFlavor::Pvm,
            _ => {}
        }
    }
    flavor
}

fn loaded_modules() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/modules") {
        names.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string),
        );
    }
    // Built-in modules do not appear in /proc/modules but do have a /sys/module directory.
    if let Ok(dir) = std::fs::read_dir("/sys/module") {
        names.extend(
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok()),
        );
    }
    names
}

impl HostProbe {
    /// Look at this host: /dev/kvm, its capabilities, the CPU flags and kernel modules.
    pub fn detect() -> HostProbe {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let modules = loaded_modules();
        let mut probe = HostProbe {
            dev: DevKvm::Missing,
            cpu_virt_flag: cpu_virt_flag(&cpuinfo),
            flavor: flavor_from_modules(modules.iter().map(String::as_str)),
            caps: Vec::new(),
            cpuid_entries: None,
        };
        match Kvm::new() {
            Ok(kvm) => {
                probe.dev = DevKvm::Open {
                    api_version: kvm.get_api_version(),
                };
                probe.caps = CAPS
                    .iter()
                    .map(|&(name, cap, required)| CapInfo {
                        name,
                        value: kvm.check_extension_int(cap),
                        required,
                    })
                    .collect();
                probe.cpuid_entries = supported_cpuid(&kvm).ok().map(|c| c.len());
            }
            Err(e) => {
                probe.dev = match e.errno() {
                    libc::ENOENT | libc::ENODEV | libc::ENXIO => DevKvm::Missing,
                    libc::EACCES | libc::EPERM => DevKvm::PermissionDenied,
                    _ => DevKvm::Failed(e.to_string()),
                };
                if !Path::new("/dev/kvm").exists() {
                    probe.dev = DevKvm::Missing;
                }
            }
        }
        probe
    }

    /// VT-x or AMD-V is visible and its KVM module is loaded.
    pub fn hardware_backed(&self) -> bool {
        self.cpu_virt_flag.is_some() && matches!(self.flavor, KvmFlavor::Intel | KvmFlavor::Amd)
    }

    /// What the virtualization hardware is (no yes/no prefix; see `hardware_backed`).
    pub fn describe_hardware(&self) -> String {
        match (self.cpu_virt_flag, &self.flavor) {
            (Some(f), KvmFlavor::Intel | KvmFlavor::Amd) => {
                format!("CPU flag '{f}', KVM module {}", self.flavor.module())
            }
            (Some(f), KvmFlavor::Pvm) => {
                format!(
                    "CPU flag '{f}' present, but /dev/kvm is kvm_pvm, a software-only, paravirtualized KVM"
                )
            }
            (Some(f), KvmFlavor::Unknown) => {
                format!("CPU flag '{f}' present, but no kvm_intel/kvm_amd module is loaded")
            }
            (None, KvmFlavor::Pvm) => {
                "no vmx/svm CPU flag; /dev/kvm is kvm_pvm, a software-only, paravirtualized KVM"
                    .into()
            }
            (None, _) => "no vmx/svm CPU flag, no kvm_intel/kvm_amd module".into(),
        }
    }

    /// Why KVM cannot create a vCPU at all on this host, if it cannot.
    pub fn unusable_reason(&self) -> Option<String> {
        match &self.dev {
            DevKvm::Missing => {
                return Some("/dev/kvm does not exist (KVM is not available on this host)".into());
            }
            DevKvm::PermissionDenied => {
                return Some(
                    "permission denied opening /dev/kvm (add this user to the 'kvm' group)".into(),
                );
            }
            DevKvm::Failed(e) => return Some(format!("cannot open /dev/kvm: {e}")),
            DevKvm::Open { api_version } if *api_version != KVM_API_VERSION => {
                return Some(format!(
                    "KVM API version {api_version}, vx needs {KVM_API_VERSION}"
                ));
            }
            DevKvm::Open { .. } => {}
        }
        if let Some(c) = self.caps.iter().find(|c| c.required && c.value <= 0) {
            return Some(format!(
                "the host's KVM lacks the required capability {}",
                c.name
            ));
        }
        if self.cpuid_entries.is_none() {
            return Some("KVM_GET_SUPPORTED_CPUID failed".into());
        }
        None
    }

    /// Why this host's KVM cannot run a guest entering in `mode`, if it cannot.
    pub fn mode_unsupported_reason(&self, mode: EntryMode) -> Option<String> {
        if self.hardware_backed() || mode == EntryMode::Long64 {
            return None;
        }
        let what = match self.flavor {
            KvmFlavor::Pvm => {
                "/dev/kvm is kvm_pvm, a software-only KVM without VT-x/AMD-V".to_string()
            }
            _ => format!(
                "/dev/kvm is not hardware-backed ({})",
                self.describe_hardware()
            ),
        };
        Some(format!(
            "{what}: it is only known to run guests that start in 64-bit long mode, and this guest starts in {} \
             (real-mode code has hung at its first far jump on such hosts); use --accel interp, or set {}=1 \
             to try anyway (with --timeout)",
            mode.describe(),
            super::FORCE_ENV
        ))
    }

    /// Value of a capability, 0 if unknown.
    pub fn cap(&self, name: &str) -> i32 {
        self.caps
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
            .unwrap_or(0)
    }
}

/// What `--accel auto` runs, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoChoice {
    /// KVM (else the interpreter).
    pub kvm: bool,
    /// The sentence printed with --stats and by `vx info`.
    pub reason: String,
}

/// The `auto` policy: KVM only where it is hardware-backed and usable; otherwise the
/// interpreter (the JIT does not exist yet). A software-only KVM is never picked
/// automatically: exits cost ~10 µs there and it cannot run every guest mode.
pub fn decide_auto(probe: &HostProbe, mode: EntryMode) -> AutoChoice {
    let software = |why: String| AutoChoice {
        kvm: false,
        reason: format!("jit: auto picks the JIT because {why}"),
    };
    if let Some(why) = probe.unusable_reason() {
        return software(why);
    }
    if !probe.hardware_backed() {
        return software(format!(
            "KVM here is not hardware-backed ({})",
            probe.describe_hardware()
        ));
    }
    if let Some(why) = probe.mode_unsupported_reason(mode) {
        return software(why);
    }
    AutoChoice {
        kvm: true,
        reason: format!(
            "kvm: auto picks KVM because it is hardware-backed ({})",
            probe.describe_hardware()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(flag: Option<&'static str>, flavor: KvmFlavor) -> HostProbe {
        HostProbe {
            dev: DevKvm::Open { api_version: 12 },
            cpu_virt_flag: flag,
            flavor,
            caps: CAPS
                .iter()
                .map(|&(name, _, required)| CapInfo {
                    name,
                    value: 1,
                    required,
                })
                .collect(),
            cpuid_entries: Some(75),
        }
    }

    #[test]
    fn test_cpu_virt_flag_finds_vmx_and_svm() {
        assert_eq!(
            cpu_virt_flag("processor: 0\nflags\t\t: fpu vme vmx sse\n"),
            Some("vmx")
        );
        assert_eq!(cpu_virt_flag("flags : fpu svm\n"), Some("svm"));
        assert_eq!(
            cpu_virt_flag("flags : fpu hypervisor\nbugs : vmx_bug\n"),
            None
        );
    }

    #[test]
    fn test_flavor_from_modules_prefers_hardware() {
        assert_eq!(flavor_from_modules(["kvm", "kvm_pvm"]), KvmFlavor::Pvm);
        assert_eq!(flavor_from_modules(["kvm_amd", "kvm"]), KvmFlavor::Amd);
        assert_eq!(flavor_from_modules(["kvm", "kvm_intel"]), KvmFlavor::Intel);
        assert_eq!(flavor_from_modules(["ext4"]), KvmFlavor::Unknown);
    }

    #[test]
    fn test_decide_auto_picks_kvm_only_when_hardware_backed() {
        let hw = probe(Some("vmx"), KvmFlavor::Intel);
        let c = decide_auto(&hw, EntryMode::Real);
        assert!(c.kvm, "{}", c.reason);
        assert!(c.reason.contains("hardware-backed"));
        let pvm = probe(None, KvmFlavor::Pvm);
        let c = decide_auto(&pvm, EntryMode::Long64);
        assert!(!c.kvm);
        assert!(c.reason.contains("kvm_pvm"), "{}", c.reason);
        let mut missing = hw.clone();
        missing.dev = DevKvm::Missing;
        let c = decide_auto(&missing, EntryMode::Long64);
        assert!(!c.kvm);
        assert!(c.reason.contains("/dev/kvm does not exist"), "{}", c.reason);
        // The flag without the module is not enough.
        let c = decide_auto(&probe(Some("svm"), KvmFlavor::Unknown), EntryMode::Long64);
        assert!(!c.kvm);
    }

    #[test]
    fn test_unusable_reason_names_the_problem() {
        let mut p = probe(Some("svm"), KvmFlavor::Amd);
        assert_eq!(p.unusable_reason(), None);
        p.dev = DevKvm::PermissionDenied;
        assert!(
            p.unusable_reason()
                .expect("denied")
                .contains("permission denied")
        );
        p.dev = DevKvm::Open { api_version: 11 };
        assert!(
            p.unusable_reason()
                .expect("version")
                .contains("API version 11")
        );
        p.dev = DevKvm::Open { api_version: 12 };
        p.caps
            .iter_mut()
            .find(|c| c.name == "KVM_CAP_IMMEDIATE_EXIT")
            .expect("cap")
            .value = 0;
        assert!(
            p.unusable_reason()
                .expect("cap")
                .contains("KVM_CAP_IMMEDIATE_EXIT")
        );
    }

    #[test]
    fn test_mode_unsupported_on_software_kvm_except_long_mode() {
        let pvm = probe(None, KvmFlavor::Pvm);
        assert_eq!(pvm.mode_unsupported_reason(EntryMode::Long64), None);
        let why = pvm
            .mode_unsupported_reason(EntryMode::Real)
            .expect("real mode refused");
        assert!(
            why.contains("real mode") && why.contains("VX_KVM_FORCE"),
            "{why}"
        );
        let hw = probe(Some("svm"), KvmFlavor::Amd);
        assert_eq!(hw.mode_unsupported_reason(EntryMode::Real), None);
    }

    #[test]
    fn test_entry_mode_of_reset_state_is_real() {
        assert_eq!(EntryMode::of(&cpu::CpuState::reset()), EntryMode::Real);
    }
}
