//! The CPUID table a KVM vCPU presents: vx's profile (`cpu::cpuid`, SDM Vol. 2A CPUID)
//! intersected with what this host's KVM can virtualize (KVM_GET_SUPPORTED_CPUID, KVM API doc
//! §4.46), so a guest sees the same processor on KVM as on the software engines.

use kvm_bindings::{
    CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2,
};
use kvm_ioctls::Kvm;

use super::KvmError;

/// KVM_GET_SUPPORTED_CPUID.
pub(crate) fn supported_cpuid(kvm: &Kvm) -> Result<Vec<kvm_cpuid_entry2>, KvmError> {
    let c = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(KvmError::SupportedCpuid)?;
    Ok(c.as_slice().to_vec())
}

/// A feature bit of the profile the host's KVM cannot offer (the guest will not see it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DroppedBits {
    /// CPUID leaf.
    pub leaf: u32,
    /// Register index: 0 eax, 1 ebx, 2 ecx, 3 edx.
    pub reg: usize,
    /// The profile bits the host lacks.
    pub mask: u32,
}

/// Registers of each leaf that hold feature flags (the only ones intersected with the host;
/// every other register comes from the profile as is: vendor, signature, brand string).
fn feature_regs(leaf: u32) -> &'static [usize] {
    match leaf {
        1 | 0x8000_0001 => &[2, 3],
        _ => &[],
    }
}

fn find(entries: &[kvm_cpuid_entry2], leaf: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    entries
        .iter()
        .find(|e| e.function == leaf && e.index == index)
}

/// What KVM's guest must not be told about time, because KVM without an in-kernel irqchip
/// cannot honour it: the TSC-deadline timer (KVM keeps IA32_TSC_DEADLINE to itself and has no
/// local APIC to fire it; the board's LAPIC timer in one-shot/periodic mode works through MMIO
/// exits), and the 1 GHz TSC/crystal of leaves 0x15/0x16 (the TSC runs at the host's rate on
/// KVM; without the leaves Linux calibrates the TSC and the LAPIC timer itself).
fn kvm_time_profile(leaf: u32, r: &mut [u32; 4]) {
    match leaf {
        1 => r[2] &= !cpu::cpuid::ecx1::TSC_DEADLINE,
        0x15 | 0x16 => *r = [0; 4],
        _ => {}
    }
}

/// The guest's CPUID table: every leaf of vx's profile, feature bits ANDed with `supported`
/// (KVM_GET_SUPPORTED_CPUID), and the list of profile bits the host could not provide.
pub fn guest_cpuid(supported: &[kvm_cpuid_entry2]) -> (Vec<kvm_cpuid_entry2>, Vec<DroppedBits>) {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    let max_basic = cpu::cpuid::cpuid(0, 0)[0];
    let max_ext = cpu::cpuid::cpuid(0x8000_0000, 0)[0];
    let leaves = (0..=max_basic).chain(0x8000_0000..=max_ext);
    for leaf in leaves {
        // Leaves whose subleaf (ECX) selects what they describe get one entry per subleaf,
        // flagged so KVM matches on the index too: 4 (caches, up to the null entry) and 7.
        let subleaves: &[u32] = match leaf {
            4 => &[0, 1, 2, 3],
            7 => &[0],
            _ => &[0],
        };
        let flags = if matches!(leaf, 4 | 7) {
            KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        } else {
            0
        };
        for &index in subleaves {
            let mut r = cpu::cpuid::cpuid(leaf, index);
            for &reg in feature_regs(leaf) {
                let host = find(supported, leaf, 0)
                    .map(|e| [e.eax, e.ebx, e.ecx, e.edx][reg])
                    .unwrap_or(0);
                let missing = r[reg] & !host;
                if missing != 0 {
                    dropped.push(DroppedBits {
                        leaf,
                        reg,
                        mask: missing,
                    });
                }
                r[reg] &= host;
            }
            if leaf == 0x8000_0008 {
                // Never promise more physical address bits than the host has.
                if let Some(h) = find(supported, leaf, 0) {
                    let host_bits = h.eax & 0xff;
                    if host_bits != 0 && host_bits < (r[0] & 0xff) {
                        r[0] = (r[0] & !0xff) | host_bits;
                    }
                }
            }
            kvm_time_profile(leaf, &mut r);
            out.push(kvm_cpuid_entry2 {
                function: leaf,
                index,
                flags,
                eax: r[0],
                ebx: r[1],
                ecx: r[2],
                edx: r[3],
                padding: [0; 3],
            });
        }
    }
    (out, dropped)
}

/// A CPUID register the host's KVM presents differently from the table vx set (some KVMs,
/// kvm_pvm among them, rewrite entries in KVM_SET_CPUID2; KVM_GET_CPUID2 shows the result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidDeviation {
    /// CPUID leaf.
    pub leaf: u32,
    /// Subleaf.
    pub index: u32,
    /// Register index: 0 eax, 1 ebx, 2 ecx, 3 edx.
    pub reg: usize,
    /// What vx set (0 for a leaf vx did not set).
    pub wanted: u32,
    /// What the guest will see.
    pub got: u32,
}

impl std::fmt::Display for CpuidDeviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "leaf {:#x}.{} {}: vx set {:#010x}, the host's KVM presents {:#010x}",
            self.leaf,
            self.index,
            ["eax", "ebx", "ecx", "edx"][self.reg],
            self.wanted,
            self.got
        )
    }
}

/// Compare the table vx set with what KVM_GET_CPUID2 read back.
pub(crate) fn deviations(
    set: &[kvm_cpuid_entry2],
    readback: &[kvm_cpuid_entry2],
) -> Vec<CpuidDeviation> {
    let mut out = Vec::new();
    for e in readback {
        let wanted = find(set, e.function, e.index)
            .map(|w| [w.eax, w.ebx, w.ecx, w.edx])
            .unwrap_or([0; 4]);
        let got = [e.eax, e.ebx, e.ecx, e.edx];
        for reg in 0..4 {
            if wanted[reg] != got[reg] {
                out.push(CpuidDeviation {
                    leaf: e.function,
                    index: e.index,
                    reg,
                    wanted: wanted[reg],
                    got: got[reg],
                });
            }
        }
    }
    out
}

/// `guest_cpuid` as the FAM structure KVM_SET_CPUID2 takes.
pub(crate) fn to_kvm_cpuid(entries: &[kvm_cpuid_entry2]) -> Result<CpuId, KvmError> {
    CpuId::from_entries(entries).map_err(|e| KvmError::Cpuid(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            ecx,
            edx,
            ..Default::default()
        }
    }

    #[test]
    fn test_guest_cpuid_is_the_profile_when_the_host_has_everything() {
        let host = [entry(1, !0, !0), entry(0x8000_0001, !0, !0)];
        let (table, dropped) = guest_cpuid(&host);
        assert!(dropped.is_empty());
        for e in &table {
            let mut want = cpu::cpuid::cpuid(e.function, e.index);
            kvm_time_profile(e.function, &mut want);
            assert_eq!(
                [e.eax, e.ebx, e.ecx, e.edx],
                want,
                "leaf {:#x}.{}",
                e.function,
                e.index
            );
        }
        assert!(table.iter().any(|e| e.function == 0));
        assert!(table.iter().any(|e| e.function == 0x8000_0004));
        // The cache leaf has one entry per subleaf, matched on the index.
        let caches: Vec<_> = table.iter().filter(|e| e.function == 4).collect();
        assert_eq!(caches.len(), 4);
        assert!(
            caches
                .iter()
                .all(|e| e.flags == KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
        );
        assert_eq!(
            [caches[3].eax, caches[3].ebx],
            [0, 0],
            "the null entry ends the list"
        );
    }

    /// KVM without an in-kernel irqchip cannot fire the TSC-deadline timer, and its TSC does
    /// not run at the profile's 1 GHz: the guest is told neither.
    #[test]
    fn test_guest_cpuid_hides_tsc_deadline_and_the_tsc_frequency_on_kvm() {
        let host = [entry(1, !0, !0), entry(0x8000_0001, !0, !0)];
        let (table, _) = guest_cpuid(&host);
        let leaf = |f: u32| table.iter().find(|e| e.function == f).expect("leaf");
        assert_eq!(leaf(1).ecx & cpu::cpuid::ecx1::TSC_DEADLINE, 0);
        assert_ne!(
            cpu::cpuid::cpuid(1, 0)[2] & cpu::cpuid::ecx1::TSC_DEADLINE,
            0
        );
        for f in [0x15, 0x16] {
            let e = leaf(f);
            assert_eq!([e.eax, e.ebx, e.ecx, e.edx], [0; 4], "leaf {f:#x}");
        }
    }

    #[test]
    fn test_guest_cpuid_drops_what_the_host_lacks() {
        let nx = cpu::cpuid::edx_ext1::NX;
        let host = [entry(1, !0, !0), entry(0x8000_0001, !0, !nx)];
        let (table, dropped) = guest_cpuid(&host);
        let e = table
            .iter()
            .find(|e| e.function == 0x8000_0001)
            .expect("leaf present");
        assert_eq!(e.edx & nx, 0);
        assert_eq!(
            dropped,
            vec![DroppedBits {
                leaf: 0x8000_0001,
                reg: 3,
                mask: nx
            }]
        );
    }

    #[test]
    fn test_deviations_report_rewritten_and_added_leaves() {
        let set = [entry(1, 0x2000, 0x1)];
        let back = [
            entry(1, 0x2001, 0x1),
            kvm_cpuid_entry2 {
                function: 0xd,
                eax: 7,
                ..Default::default()
            },
        ];
        let d = deviations(&set, &back);
        assert_eq!(
            d,
            vec![
                CpuidDeviation {
                    leaf: 1,
                    index: 0,
                    reg: 2,
                    wanted: 0x2000,
                    got: 0x2001
                },
                CpuidDeviation {
                    leaf: 0xd,
                    index: 0,
                    reg: 0,
                    wanted: 0,
                    got: 7
                },
            ]
        );
        assert!(d[0].to_string().contains("ecx"));
        assert!(deviations(&set, &set).is_empty());
    }

    #[test]
    fn test_guest_cpuid_keeps_the_vendor_string_of_the_profile() {
        let (table, _) = guest_cpuid(&[entry(1, !0, !0), entry(0x8000_0001, !0, !0)]);
        let e = &table[0];
        assert_eq!(e.function, 0);
        assert_eq!(&e.ebx.to_le_bytes(), b"Genu");
    }
}
