//! The CPUID profile vx presents on every engine (SDM Vol. 2A CPUID): only what the software
//! CPU implements, so guests see the same processor whichever engine runs them.

/// Family 6, model 6, stepping 3: the processor signature in CPUID.1:EAX and in EDX at reset.
pub const SIGNATURE: u32 = 0x0000_0663;
/// Physical address width advertised in CPUID.80000008H:EAX[7:0].
pub const PHYS_ADDR_BITS: u32 = 40;
/// Linear address width advertised in CPUID.80000008H:EAX[15:8].
pub const LINEAR_ADDR_BITS: u32 = 48;

/// CPUID.1:EDX feature bits.
pub mod edx1 {
    #![allow(missing_docs)]
    pub const PSE: u32 = 1 << 3;
    pub const TSC: u32 = 1 << 4;
    pub const MSR: u32 = 1 << 5;
    pub const PAE: u32 = 1 << 6;
    pub const CX8: u32 = 1 << 8;
    pub const PGE: u32 = 1 << 13;
    pub const CMOV: u32 = 1 << 15;
    pub const CLFSH: u32 = 1 << 19;
}

/// CPUID.1:ECX feature bits.
pub mod ecx1 {
    #![allow(missing_docs)]
    pub const CX16: u32 = 1 << 13;
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
pub fn cpuid(leaf: u32, _subleaf: u32) -> [u32; 4] {
    const MAX_BASIC: u32 = 1;
    const MAX_EXT: u32 = 0x8000_0008;
    match leaf {
        0 => [MAX_BASIC, ascii(b"Genu"), ascii(b"ntel"), ascii(b"ineI")],
        1 => [
            SIGNATURE,
            // CLFLUSH line size 8 (x 8 = 64 bytes), one logical processor.
            (8 << 8) | (1 << 16),
            ecx1::CX16,
            edx1::PSE
                | edx1::TSC
                | edx1::MSR
                | edx1::PAE
                | edx1::CX8
                | edx1::PGE
                | edx1::CMOV
                | edx1::CLFSH,
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
        0x8000_0008 => [PHYS_ADDR_BITS | (LINEAR_ADDR_BITS << 8), 0, 0, 0],
        // Leaves above the maximum return the highest basic leaf's data on Intel; vx returns
        // zeros for everything it does not describe, which guests treat as "no features".
        _ => [0, 0, 0, 0],
    }
}
