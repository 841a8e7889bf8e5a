//! x86_64 architectural state shared by every engine (SDM Vol. 1 §3.4, Vol. 3A §2.5, §3.4.5).
//!
//! `CpuState` is the one format every engine imports and exports, so a VM can move between the
//! interpreter, the JIT and KVM, and be snapshotted the same way on each.

/// General-purpose register numbers in encoding order.
pub mod gpr {
    #![allow(missing_docs)]
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
}

/// Segment register numbers in encoding order (the `sreg` field of ModRM).
pub mod sreg {
    #![allow(missing_docs)]
    pub const ES: usize = 0;
    pub const CS: usize = 1;
    pub const SS: usize = 2;
    pub const DS: usize = 3;
    pub const FS: usize = 4;
    pub const GS: usize = 5;
}

/// RFLAGS bits (SDM Vol. 1 §3.4.3).
pub mod flags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Reserved, always one.
    pub const FIXED1: u64 = 1 << 1;
    /// Parity of the low byte of the result.
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry out of bit 3.
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Trap (single step).
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction.
    pub const DF: u64 = 1 << 10;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
    /// I/O privilege level (two bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
    /// Virtual interrupt flag.
    pub const VIF: u64 = 1 << 19;
    /// Virtual interrupt pending.
    pub const VIP: u64 = 1 << 20;
    /// CPUID available.
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

/// Control register bits (SDM Vol. 3A §2.5).
pub mod cr {
    /// CR0: protection enable.
    pub const CR0_PE: u64 = 1 << 0;
    /// CR0: monitor coprocessor.
    pub const CR0_MP: u64 = 1 << 1;
    /// CR0: x87 emulation.
    pub const CR0_EM: u64 = 1 << 2;
    /// CR0: task switched.
    pub const CR0_TS: u64 = 1 << 3;
    /// CR0: extension type (always one).
    pub const CR0_ET: u64 = 1 << 4;
    /// CR0: numeric error.
    pub const CR0_NE: u64 = 1 << 5;
    /// CR0: supervisor writes honour read-only pages.
    pub const CR0_WP: u64 = 1 << 16;
    /// CR0: alignment mask.
    pub const CR0_AM: u64 = 1 << 18;
    /// CR0: not write-through.
    pub const CR0_NW: u64 = 1 << 29;
    /// CR0: cache disable.
    pub const CR0_CD: u64 = 1 << 30;
    /// CR0: paging.
    pub const CR0_PG: u64 = 1 << 31;
    /// CR4: virtual-8086 mode extensions.
    pub const CR4_VME: u64 = 1 << 0;
    /// CR4: protected-mode virtual interrupts.
    pub const CR4_PVI: u64 = 1 << 1;
    /// CR4: time stamp disable for CPL > 0.
    pub const CR4_TSD: u64 = 1 << 2;
    /// CR4: debugging extensions.
    pub const CR4_DE: u64 = 1 << 3;
    /// CR4: 4 MiB pages in 32-bit paging.
    pub const CR4_PSE: u64 = 1 << 4;
    /// CR4: physical address extension.
    pub const CR4_PAE: u64 = 1 << 5;
    /// CR4: machine check enable.
    pub const CR4_MCE: u64 = 1 << 6;
    /// CR4: global pages.
    pub const CR4_PGE: u64 = 1 << 7;
    /// CR4: performance counter enable.
    pub const CR4_PCE: u64 = 1 << 8;
    /// CR4: OS supports FXSAVE/FXRSTOR.
    pub const CR4_OSFXSR: u64 = 1 << 9;
    /// CR4: OS supports unmasked SIMD exceptions.
    pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
    /// CR4: user-mode instruction prevention.
    pub const CR4_UMIP: u64 = 1 << 11;
    /// CR4: FSGSBASE instructions.
    pub const CR4_FSGSBASE: u64 = 1 << 16;
    /// CR4: PCID.
    pub const CR4_PCIDE: u64 = 1 << 17;
    /// CR4: XSAVE.
    pub const CR4_OSXSAVE: u64 = 1 << 18;
    /// CR4: supervisor-mode execution prevention.
    pub const CR4_SMEP: u64 = 1 << 20;
    /// CR4: supervisor-mode access prevention.
    pub const CR4_SMAP: u64 = 1 << 21;
}

/// Model-specific register numbers and EFER bits (SDM Vol. 4).
pub mod msr {
    #![allow(missing_docs)]
    pub const IA32_TSC: u32 = 0x10;
    pub const IA32_APIC_BASE: u32 = 0x1b;
    pub const IA32_MISC_ENABLE: u32 = 0x1a0;
    pub const IA32_SYSENTER_CS: u32 = 0x174;
    pub const IA32_SYSENTER_ESP: u32 = 0x175;
    pub const IA32_SYSENTER_EIP: u32 = 0x176;
    pub const IA32_PAT: u32 = 0x277;
    pub const IA32_EFER: u32 = 0xc000_0080;
    pub const IA32_STAR: u32 = 0xc000_0081;
    pub const IA32_LSTAR: u32 = 0xc000_0082;
    pub const IA32_CSTAR: u32 = 0xc000_0083;
    pub const IA32_FMASK: u32 = 0xc000_0084;
    pub const IA32_FS_BASE: u32 = 0xc000_0100;
    pub const IA32_GS_BASE: u32 = 0xc000_0101;
    pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const IA32_TSC_AUX: u32 = 0xc000_0103;
    pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
    pub const IA32_TSC_DEADLINE: u32 = 0x6e0;
    pub const IA32_UCODE_REV: u32 = 0x8b;
    pub const IA32_ARCH_CAPABILITIES: u32 = 0x10a;
    pub const IA32_MTRRCAP: u32 = 0xfe;
    pub const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
    /// EFER: SYSCALL enable.
    pub const EFER_SCE: u64 = 1 << 0;
    /// EFER: long mode enable.
    pub const EFER_LME: u64 = 1 << 8;
    /// EFER: long mode active.
    pub const EFER_LMA: u64 = 1 << 10;
    /// EFER: no-execute enable.
    pub const EFER_NXE: u64 = 1 << 11;
}

/// Segment access-rights bits, in the VMX "access rights" layout (SDM Vol. 3C §24.4.1).
pub mod seg_attr {
    /// Type field (bits 0-3).
    pub const TYPE_MASK: u32 = 0xf;
    /// Type bit 0: accessed.
    pub const ACCESSED: u32 = 1 << 0;
    /// Type bit 1: writable (data) or readable (code).
    pub const RW: u32 = 1 << 1;
    /// Type bit 2: expand-down (data) or conforming (code).
    pub const DC: u32 = 1 << 2;
    /// Type bit 3: code segment.
    pub const CODE: u32 = 1 << 3;
    /// Descriptor type: 1 code/data, 0 system.
    pub const S: u32 = 1 << 4;
    /// Descriptor privilege level shift.
    pub const DPL_SHIFT: u32 = 5;
    /// Present.
    pub const P: u32 = 1 << 7;
    /// Available to software.
    pub const AVL: u32 = 1 << 12;
    /// 64-bit code segment.
    pub const L: u32 = 1 << 13;
    /// Default operation size (D/B).
    pub const DB: u32 = 1 << 14;
    /// Granularity.
    pub const G: u32 = 1 << 15;
    /// Unusable (a null selector was loaded).
    pub const UNUSABLE: u32 = 1 << 16;
}

/// A segment register with its hidden (descriptor-cache) part.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Visible selector.
    pub selector: u16,
    /// Cached base address.
    pub base: u64,
    /// Cached limit, in bytes (already scaled by granularity).
    pub limit: u32,
    /// Cached access rights (`seg_attr` layout).
    pub attr: u32,
}

impl Segment {
    /// A real-mode segment for `selector`: base selector*16, 64 KiB limit, read/write data.
    pub fn real_mode(selector: u16) -> Segment {
        Segment {
            selector,
            base: u64::from(selector) << 4,
            limit: 0xffff,
            attr: seg_attr::P | seg_attr::S | seg_attr::RW | seg_attr::ACCESSED,
        }
    }
    /// A flat (base 0, 4 GiB limit) code segment at privilege `dpl`: 64-bit when `long`,
    /// else 32-bit. What SYSCALL/SYSRET load, and what tests entering long mode use.
    pub fn flat_code(selector: u16, dpl: u8, long: bool) -> Segment {
        let size = if long { seg_attr::L } else { seg_attr::DB };
        Segment {
            selector,
            base: 0,
            limit: 0xffff_ffff,
            attr: seg_attr::P
                | seg_attr::S
                | seg_attr::CODE
                | seg_attr::RW
                | seg_attr::ACCESSED
                | seg_attr::G
                | size
                | (u32::from(dpl & 3) << seg_attr::DPL_SHIFT),
        }
    }

    /// A flat writable 32-bit data/stack segment at privilege `dpl`.
    pub fn flat_data(selector: u16, dpl: u8) -> Segment {
        Segment {
            selector,
            base: 0,
            limit: 0xffff_ffff,
            attr: seg_attr::P
                | seg_attr::S
                | seg_attr::RW
                | seg_attr::ACCESSED
                | seg_attr::DB
                | seg_attr::G
                | (u32::from(dpl & 3) << seg_attr::DPL_SHIFT),
        }
    }

    /// Descriptor privilege level.
    pub fn dpl(&self) -> u8 {
        ((self.attr >> seg_attr::DPL_SHIFT) & 3) as u8
    }
    /// Whether the segment cache holds a usable descriptor.
    pub fn usable(&self) -> bool {
        self.attr & seg_attr::UNUSABLE == 0
    }
}

/// GDTR or IDTR.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescTable {
    /// Linear base address.
    pub base: u64,
    /// Limit in bytes (inclusive).
    pub limit: u16,
}

/// x87/SSE state in the FXSAVE layout's fields (SDM Vol. 1 §10.5.1).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuState {
    /// x87 control word.
    pub fcw: u16,
    /// x87 status word.
    pub fsw: u16,
    /// Abridged x87 tag word (one bit per register, 1 = valid).
    pub ftw: u8,
    /// Last x87 opcode.
    pub fop: u16,
    /// Last x87 instruction pointer.
    pub fip: u64,
    /// Last x87 data pointer.
    pub fdp: u64,
    /// ST0..ST7 as 80-bit values in the low ten bytes of each slot.
    pub st: [[u8; 16]; 8],
    /// XMM0..XMM15.
    pub xmm: [[u8; 16]; 16],
    /// SSE control and status.
    pub mxcsr: u32,
}

impl Default for FpuState {
    fn default() -> Self {
        FpuState {
            fcw: 0x37f,
            fsw: 0,
            ftw: 0,
            fop: 0,
            fip: 0,
            fdp: 0,
            st: [[0; 16]; 8],
            xmm: [[0; 16]; 16],
            mxcsr: 0x1f80,
        }
    }
}

/// Model-specific registers that are part of the architectural state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct MsrState {
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub fmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub apic_base: u64,
    pub pat: u64,
    pub misc_enable: u64,
    pub tsc_aux: u64,
    /// Guest TSC value minus the engine's clock, so the TSC survives a move between engines.
    pub tsc_offset: u64,
    /// IA32_MTRR_DEF_TYPE.
    pub mtrr_def_type: u64,
    /// The 11 fixed-range MTRRs, then PHYSBASE0, PHYSMASK0, ... for 8 variable ranges.
    pub mtrr: [u64; 27],
}

/// The complete architectural state of one logical processor.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuState {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// ES, CS, SS, DS, FS, GS in encoding order.
    pub seg: [Segment; 6],
    /// Local descriptor table register.
    pub ldtr: Segment,
    /// Task register.
    pub tr: Segment,
    /// Global descriptor table register.
    pub gdtr: DescTable,
    /// Interrupt descriptor table register.
    pub idtr: DescTable,
    /// CR0.
    pub cr0: u64,
    /// CR2 (last page-fault linear address).
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8 (task priority).
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// XCR0.
    pub xcr0: u64,
    /// DR0..DR7 (DR4/DR5 alias DR6/DR7 and are stored there).
    pub dr: [u64; 8],
    /// Architectural MSRs.
    pub msr: MsrState,
    /// x87 and SSE state.
    pub fpu: FpuState,
    /// The processor is in the HLT state, waiting for an interrupt.
    pub halted: bool,
    /// Interrupts are blocked for one instruction (after STI, MOV SS, POP SS).
    pub interrupt_shadow: bool,
}

impl Default for CpuState {
    fn default() -> Self {
        Self::reset()
    }
}

impl CpuState {
    /// Power-on/RESET state (SDM Vol. 3A §9.1.1, Table 9-1): real mode, CS F000 with base
    /// FFFF0000, IP FFF0, EDX holding the processor signature.
    pub fn reset() -> CpuState {
        let mut cs = Segment::real_mode(0xf000);
        cs.base = 0xffff_0000;
        cs.attr = seg_attr::P | seg_attr::S | seg_attr::CODE | seg_attr::RW | seg_attr::ACCESSED;
        let data = Segment::real_mode(0);
        let mut gpr = [0u64; 16];
        gpr[gpr::RDX] = u64::from(crate::cpuid::SIGNATURE);
        CpuState {
            gpr,
            rip: 0xfff0,
            rflags: flags::FIXED1,
            seg: [data, cs, data, data, data, data],
            ldtr: Segment {
                selector: 0,
                base: 0,
                limit: 0xffff,
                attr: seg_attr::P | 2,
            },
            tr: Segment {
                selector: 0,
                base: 0,
                limit: 0xffff,
                attr: seg_attr::P | 11,
            },
            gdtr: DescTable {
                base: 0,
                limit: 0xffff,
            },
            idtr: DescTable {
                base: 0,
                limit: 0xffff,
            },
            cr0: cr::CR0_ET | cr::CR0_CD | cr::CR0_NW,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            xcr0: 1,
            dr: [0, 0, 0, 0, 0, 0, 0xffff_0ff0, 0x400],
            msr: MsrState {
                apic_base: 0xfee0_0000 | (1 << 11) | (1 << 8),
                pat: 0x0007_0406_0007_0406,
                misc_enable: 1,
                ..MsrState::default()
            },
            fpu: FpuState::default(),
            halted: false,
            interrupt_shadow: false,
        }
    }

    /// Current privilege level: CS.DPL in protected mode (SS.DPL agrees), 0 in real mode.
    pub fn cpl(&self) -> u8 {
        if self.cr0 & cr::CR0_PE == 0 {
            0
        } else if self.rflags & flags::VM != 0 {
            3
        } else {
            self.seg[sreg::CS].selector as u8 & 3
        }
    }

    /// The processor is executing 64-bit code (IA-32e mode with CS.L = 1).
    pub fn in_64bit_mode(&self) -> bool {
        self.efer & msr::EFER_LMA != 0 && self.seg[sreg::CS].attr & seg_attr::L != 0
    }

    /// IA-32e mode is active (64-bit or compatibility mode).
    pub fn long_mode_active(&self) -> bool {
        self.efer & msr::EFER_LMA != 0
    }

    /// Protected mode (CR0.PE).
    pub fn protected_mode(&self) -> bool {
        self.cr0 & cr::CR0_PE != 0
    }

    /// Whether an external interrupt can be taken at this instruction boundary: IF set and no
    /// STI/MOV SS interrupt shadow.
    pub fn interrupts_enabled(&self) -> bool {
        self.rflags & flags::IF != 0 && !self.interrupt_shadow
    }

    /// Default code size in bits: 16, 32 or 64.
    pub fn code_bitness(&self) -> u32 {
        if self.in_64bit_mode() {
            64
        } else if self.protected_mode()
            && self.rflags & flags::VM == 0
            && self.seg[sreg::CS].attr & seg_attr::DB != 0
        {
            32
        } else {
            16
        }
    }

    /// Stack address size in bits (SS.B, or 64 in 64-bit mode).
    pub fn stack_bitness(&self) -> u32 {
        if self.in_64bit_mode() {
            64
        } else if self.protected_mode() && self.seg[sreg::SS].attr & seg_attr::DB != 0 {
            32
        } else {
            16
        }
    }
}
