//! The CPUID profile vx presents on every engine (SDM Vol. 2A CPUID): only what the software
//! CPU implements, so guests see the same processor whichever engine runs them.

/// Family 6, model 15 (0x0f), stepping 3: the processor signature in CPUID.1:EAX and in
/// EDX at reset. Model 15 or later: Linux treats earlier family-6 models as having a broken
/// PAT and a TSC that is not constant.
pub const SIGNATURE: u32 = 0x0000_06f3;
/// Physical address width advertised in CPUID.80000008H:EAX[7:0].
pub const PHYS_ADDR_BITS: u32 = 40;
/// Linear address width advertised in CPUID.80000008H:EAX[15:8].
pub const LINEAR_ADDR_BITS: u32 = 48;
/// TSC and local-APIC timer input frequency: 1 GHz (one tick per nanosecond of guest time),
/// advertised as the core crystal in CPUID.15H so that Linux need not calibrate either.
pub const TSC_HZ: u32 = 1_000_000_000;

/// IA32_ARCH_CAPABILITIES (MSR 0x10a): vx executes nothing speculatively, so it reports
/// itself not affected by the speculative-execution and data-sampling issues that the MSR
/// can clear: RDCL_NO (0), SKIP_L1DFL_VMENTRY (3), SSB_NO (4), MDS_NO (5),
/// PSCHANGE_MC_NO (6), TAA_NO (8), SBDR_SSDP_NO (13), FBSDP_NO (14), PSDP_NO (15),
/// GDS_NO (26), RFDS_NO (27).
pub const ARCH_CAPABILITIES: u64 = (1 << 0)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 8)
    | (1 << 13)
    | (1 << 14)
    | (1 << 15)
    | (1 << 26)
    | (1 << 27);

/// IA32_MTRRCAP (MSR 0xfe): 8 variable ranges, fixed ranges, write-combining type.
pub const MTRRCAP: u64 = 8 | (1 << 8) | (1 << 10);

/// CPUID.1:EDX feature bits.
pub mod edx1 {
    #![allow(missing_docs)]
    pub const FPU: u32 = 1 << 0;
    pub const PSE: u32 = 1 << 3;
    pub const TSC: u32 = 1 << 4;
    pub const MSR: u32 = 1 << 5;
    pub const PAE: u32 = 1 << 6;
    pub const CX8: u32 = 1 << 8;
    pub const APIC: u32 = 1 << 9;
    pub const MTRR: u32 = 1 << 12;
    pub const PGE: u32 = 1 << 13;
    pub const CMOV: u32 = 1 << 15;
    pub const PAT: u32 = 1 << 16;
    pub const CLFSH: u32 = 1 << 19;
    pub const FXSR: u32 = 1 << 24;
    pub const SSE: u32 = 1 << 25;
    pub const SSE2: u32 = 1 << 26;
}

/// CPUID.1:ECX feature bits.
pub mod ecx1 {
    #![allow(missing_docs)]
    pub const CX16: u32 = 1 << 13;
    pub const TSC_DEADLINE: u32 = 1 << 24;
}

/// CPUID.7.0:EDX feature bits.
pub mod edx7 {
    #![allow(missing_docs)]
    pub const ARCH_CAPABILITIES: u32 = 1 << 29;
}

/// CPUID.80000001H:EDX feature bits.
pub mod edx_ext1 {
    #![allow(missing_docs)]
    pub const SYSCALL: u32 = 1 << 11;
    pub const NX: u32 = 1 << 20;
    pub const PAGE1GB: u32 = 1 << 26;
    pub const RDTSCP: u32 = 1 << 27;
    pub const LM: u32 = 1 << 29;
}

fn ascii(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

/// The profile's answer to CPUID with EAX=`leaf`, ECX=`subleaf`: `[eax, ebx, ecx, edx]`.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    const MAX_BASIC: u32 = 0x16;
    const MAX_EXT: u32 = 0x8000_0008;
    match leaf {
        0 => [MAX_BASIC, ascii(b"Genu"), ascii(b"ntel"), ascii(b"ineI")],
        1 => [
            SIGNATURE,
            // CLFLUSH line size 8 (x 8 = 64 bytes), one logical processor, APIC ID 0.
            (8 << 8) | (1 << 16),
            ecx1::CX16 | ecx1::TSC_DEADLINE,
            edx1::FPU
                | edx1::PSE
                | edx1::TSC
                | edx1::MSR
                | edx1::PAE
                | edx1::CX8
                | edx1::APIC
                | edx1::MTRR
                | edx1::PGE
                | edx1::CMOV
                | edx1::PAT
                | edx1::CLFSH
                | edx1::FXSR
                | edx1::SSE
                | edx1::SSE2,
        ],
        // One iteration, no descriptors: the caches are described by leaf 4.
        2 => [1, 0, 0, 0],
        // Deterministic cache parameters: L1d 32 KiB, L1i 32 KiB, L2 1 MiB, all 64-byte
        // lines, 8/8/16-way, one core and one thread sharing each.
        4 => {
            let cache = |level: u32, kind: u32, ways: u32, sets: u32| {
                [
                    kind | (level << 5) | (1 << 8),
                    63 | ((ways - 1) << 22),
                    sets - 1,
                    0,
                ]
            };
            match subleaf {
                0 => cache(1, 1, 8, 64),
                1 => cache(1, 2, 8, 64),
                2 => cache(2, 3, 16, 1024),
                _ => [0, 0, 0, 0],
            }
        }
        7 if subleaf == 0 => [0, 0, 0, edx7::ARCH_CAPABILITIES],
        // TSC/crystal ratio 1/1, crystal TSC_HZ.
        0x15 => [1, 1, TSC_HZ, 0],
        // Base, maximum and bus frequency in MHz.
        0x16 => [
            TSC_HZ / 1_000_000,
            TSC_HZ / 1_000_000,
            TSC_HZ / 1_000_000,
            0,
        ],
        0x8000_0000 => [MAX_EXT, 0, 0, 0],
        0x8000_0001 => [
            0,
            0,
            1, // LAHF/SAHF in 64-bit mode
            edx_ext1::SYSCALL | edx_ext1::NX | edx_ext1::PAGE1GB | edx_ext1::RDTSCP | edx_ext1::LM,
        ],
        0x8000_0002..=0x8000_0004 => {
            let name = b"vx virtual x86_64 CPU\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
            let base = ((leaf - 0x8000_0002) * 16) as usize;
            let w = |k: usize| {
                let o = base + k * 4;
                u32::from_le_bytes([name[o], name[o + 1], name[o + 2], name[o + 3]])
            };
            [w(0), w(1), w(2), w(3)]
        }
        // Invariant TSC: it runs at TSC_HZ whatever the guest does.
        0x8000_0007 => [0, 0, 0, 1 << 8],
        0x8000_0008 => [PHYS_ADDR_BITS | (LINEAR_ADDR_BITS << 8), 0, 0, 0],
        // Leaves above the maximum return the highest basic leaf's data on Intel; vx returns
        // zeros for everything it does not describe, which guests treat as "no features".
        _ => [0, 0, 0, 0],
    }
}
