//! The CPUID table a KVM vCPU presents: vx's profile (`cpu::cpuid`, SDM Vol. 2A CPUID)
//! intersected with what this host's KVM can virtualize (KVM_GET_SUPPORTED_CPUID, KVM API doc
//! §4.46), so a guest sees the same processor on KVM as on the software engines.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2};
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

/// The guest's CPUID table: every leaf of vx's profile, feature bits ANDed with `supported`
/// (KVM_GET_SUPPORTED_CPUID), and the list of profile bits the host could not provide.
pub fn guest_cpuid(supported: &[kvm_cpuid_entry2]) -> (Vec<kvm_cpuid_entry2>, Vec<DroppedBits>) {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    let max_basic = cpu::cpuid::cpuid(0, 0)[0];
    let max_ext = cpu::cpuid::cpuid(0x8000_0000, 0)[0];
    let leaves = (0..=max_basic).chain(0x8000_0000..=max_ext);
    for leaf in leaves {
        let mut r = cpu::cpuid::cpuid(leaf, 0);
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
        out.push(kvm_cpuid_entry2 {
            function: leaf,
            index: 0,
            flags: 0,
            eax: r[0],
            ebx: r[1],
            ecx: r[2],
            edx: r[3],
            padding: [0; 3],
        });
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
            assert_eq!(
                [e.eax, e.ebx, e.ecx, e.edx],
                cpu::cpuid::cpuid(e.function, 0),
                "leaf {:#x}",
                e.function
            );
        }
        assert!(table.iter().any(|e| e.function == 0));
        assert!(table.iter().any(|e| e.function == 0x8000_0004));
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
