//! `vx info`: what this host offers the engines (KVM API version and capabilities per the KVM
//! API doc §4.4 KVM_CHECK_EXTENSION, hardware virtualization or not, the CPUID the host's KVM
//! supports) and which engine `--accel auto` would pick, and why.

use std::fmt::Write as _;

use accel::{EntryMode, HostProbe, decide_auto};

/// The report for `probe`, as printed by `vx info`.
pub fn report(probe: &HostProbe) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "vx {}", env!("CARGO_PKG_VERSION"));
    let yes = if probe.hardware_backed() { "yes" } else { "no" };
    let _ = writeln!(
        o,
        "hardware virtualization: {yes} ({})",
        probe.describe_hardware()
    );
    match &probe.dev {
        accel::kvm::probe::DevKvm::Open { api_version } => {
            let _ = writeln!(
                o,
                "KVM: /dev/kvm open, API version {api_version}, module {}",
                probe.flavor.module()
            );
        }
        accel::kvm::probe::DevKvm::Missing => {
            let _ = writeln!(o, "KVM: /dev/kvm does not exist");
        }
        accel::kvm::probe::DevKvm::PermissionDenied => {
            let _ = writeln!(o, "KVM: /dev/kvm exists but permission is denied");
        }
        accel::kvm::probe::DevKvm::Failed(e) => {
            let _ = writeln!(o, "KVM: /dev/kvm cannot be opened: {e}");
        }
    }
    if !probe.caps.is_empty() {
        let _ = writeln!(o, "KVM capabilities:");
        for c in &probe.caps {
            let state = if c.value > 0 { "yes" } else { "no" };
            let value = if c.value > 1 {
                format!(" ({})", c.value)
            } else {
                String::new()
            };
            let req = if c.required { "  [required by vx]" } else { "" };
            let _ = writeln!(o, "  {:<26} {state}{value}{req}", c.name);
        }
    }
    if let Some(n) = probe.cpuid_entries {
        let _ = writeln!(o, "KVM_GET_SUPPORTED_CPUID: {n} entries");
    }
    match probe.unusable_reason() {
        Some(why) => {
            let _ = writeln!(o, "KVM engine: unusable: {why}");
        }
        None => {
            let modes = [EntryMode::Real, EntryMode::Protected, EntryMode::Long64];
            let ok: Vec<&str> = modes
                .iter()
                .filter(|m| probe.mode_unsupported_reason(**m).is_none())
                .map(|m| m.describe())
                .collect();
            let _ = writeln!(
                o,
                "KVM engine: usable for guests entering in {}",
                ok.join(", ")
            );
        }
    }
    let _ = writeln!(o, "engines: interp, jit, kvm (all built)");
    let bios = decide_auto(probe, EntryMode::Real);
    let long = decide_auto(probe, EntryMode::Long64);
    let _ = writeln!(
        o,
        "--accel auto, BIOS guest (real mode):     {}",
        bios.reason
    );
    if long != bios {
        let _ = writeln!(
            o,
            "--accel auto, 64-bit long-mode guest:     {}",
            long.reason
        );
    }
    o
}

/// Print the report; the exit status of `vx info`.
pub fn run() -> i32 {
    print!("{}", report(&accel::probe()));
    0
}
