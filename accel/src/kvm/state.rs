//! The one conversion between vx's `CpuState` and KVM's vCPU state structures: kvm_regs,
//! kvm_sregs, kvm_fpu, kvm_xcrs, MSRs, kvm_vcpu_events and kvm_debugregs (KVM API doc §4.11
//! KVM_GET_REGS … §4.31 KVM_GET_VCPU_EVENTS; segment access rights as in SDM Vol. 3C §24.4.1).
//!
//! Pure functions over plain data: no ioctls here, so the round trip is unit-tested without
//! /dev/kvm.

use cpu::state::{CpuState, DescTable, FpuState, MsrState, Segment, msr, seg_attr, sreg};
use kvm_bindings::{
    KVM_VCPUEVENT_VALID_SHADOW, KVM_X86_SHADOW_INT_MOV_SS, KVM_X86_SHADOW_INT_STI, kvm_debugregs,
    kvm_dtable, kvm_fpu, kvm_regs, kvm_segment, kvm_sregs, kvm_vcpu_events, kvm_xcr, kvm_xcrs,
};

/// Everything KVM holds for one vCPU that `CpuState` describes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KvmState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub fpu: kvm_fpu,
    pub xcrs: kvm_xcrs,
    /// (MSR index, value) for every MSR in `MSRS`.
    pub msrs: Vec<(u32, u64)>,
    pub events: kvm_vcpu_events,
    pub debugregs: kvm_debugregs,
    /// The HLT state. Without an in-kernel irqchip KVM returns to userspace at HLT instead of
    /// keeping an mp_state, so the engine tracks it.
    pub halted: bool,
}

/// The MSRs carried in `MsrState`, besides IA32_TSC (derived from `tsc_offset`) and
/// IA32_APIC_BASE (in kvm_sregs).
pub(crate) const MSRS: &[u32] = &[
    msr::IA32_STAR,
    msr::IA32_LSTAR,
    msr::IA32_CSTAR,
    msr::IA32_FMASK,
    msr::IA32_KERNEL_GS_BASE,
    msr::IA32_SYSENTER_CS,
    msr::IA32_SYSENTER_ESP,
    msr::IA32_SYSENTER_EIP,
    msr::IA32_PAT,
    msr::IA32_MISC_ENABLE,
    msr::IA32_TSC_AUX,
    msr::IA32_TSC,
];

fn msr_field(m: &mut MsrState, index: u32) -> Option<&mut u64> {
    Some(match index {
        msr::IA32_STAR => &mut m.star,
        msr::IA32_LSTAR => &mut m.lstar,
        msr::IA32_CSTAR => &mut m.cstar,
        msr::IA32_FMASK => &mut m.fmask,
        msr::IA32_KERNEL_GS_BASE => &mut m.kernel_gs_base,
        msr::IA32_SYSENTER_CS => &mut m.sysenter_cs,
        msr::IA32_SYSENTER_ESP => &mut m.sysenter_esp,
        msr::IA32_SYSENTER_EIP => &mut m.sysenter_eip,
        msr::IA32_PAT => &mut m.pat,
        msr::IA32_MISC_ENABLE => &mut m.misc_enable,
        msr::IA32_TSC_AUX => &mut m.tsc_aux,
        _ => return None,
    })
}

fn bit(attr: u32, mask: u32) -> u8 {
    u8::from(attr & mask != 0)
}

/// A `Segment` (VMX access-rights layout) as a kvm_segment.
pub(crate) fn seg_to_kvm(s: &Segment) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: (s.attr & seg_attr::TYPE_MASK) as u8,
        present: bit(s.attr, seg_attr::P),
        dpl: s.dpl(),
        db: bit(s.attr, seg_attr::DB),
        s: bit(s.attr, seg_attr::S),
        l: bit(s.attr, seg_attr::L),
        g: bit(s.attr, seg_attr::G),
        avl: bit(s.attr, seg_attr::AVL),
        unusable: bit(s.attr, seg_attr::UNUSABLE),
        padding: 0,
    }
}

/// A kvm_segment as a `Segment`.
pub(crate) fn seg_from_kvm(k: &kvm_segment) -> Segment {
    let flag = |v: u8, mask: u32| if v != 0 { mask } else { 0 };
    Segment {
        selector: k.selector,
        base: k.base,
        limit: k.limit,
        attr: u32::from(k.type_) & seg_attr::TYPE_MASK
            | flag(k.s, seg_attr::S)
            | (u32::from(k.dpl & 3) << seg_attr::DPL_SHIFT)
            | flag(k.present, seg_attr::P)
            | flag(k.avl, seg_attr::AVL)
            | flag(k.l, seg_attr::L)
            | flag(k.db, seg_attr::DB)
            | flag(k.g, seg_attr::G)
            | flag(k.unusable, seg_attr::UNUSABLE),
    }
}

fn dt_to_kvm(d: &DescTable) -> kvm_dtable {
    kvm_dtable {
        base: d.base,
        limit: d.limit,
        padding: [0; 3],
    }
}

fn dt_from_kvm(d: &kvm_dtable) -> DescTable {
    DescTable {
        base: d.base,
        limit: d.limit,
    }
}

/// `st` as KVM state. `host_tsc` is the host's TSC now: the guest TSC is written as
/// `host_tsc + st.msr.tsc_offset` (KVM's TSC runs at the host TSC rate).
pub(crate) fn to_kvm(st: &CpuState, host_tsc: u64) -> KvmState {
    let g = &st.gpr;
    let regs = kvm_regs {
        rax: g[0],
        rcx: g[1],
        rdx: g[2],
        rbx: g[3],
        rsp: g[4],
        rbp: g[5],
        rsi: g[6],
        rdi: g[7],
        r8: g[8],
        r9: g[9],
        r10: g[10],
        r11: g[11],
        r12: g[12],
        r13: g[13],
        r14: g[14],
        r15: g[15],
        rip: st.rip,
        rflags: st.rflags,
    };
    let s = &st.seg;
    let sregs = kvm_sregs {
        cs: seg_to_kvm(&s[sreg::CS]),
        ds: seg_to_kvm(&s[sreg::DS]),
        es: seg_to_kvm(&s[sreg::ES]),
        fs: seg_to_kvm(&s[sreg::FS]),
        gs: seg_to_kvm(&s[sreg::GS]),
        ss: seg_to_kvm(&s[sreg::SS]),
        tr: seg_to_kvm(&st.tr),
        ldt: seg_to_kvm(&st.ldtr),
        gdt: dt_to_kvm(&st.gdtr),
        idt: dt_to_kvm(&st.idtr),
        cr0: st.cr0,
        cr2: st.cr2,
        cr3: st.cr3,
        cr4: st.cr4,
        cr8: st.cr8,
        efer: st.efer,
        apic_base: st.msr.apic_base,
        // No external interrupt is pending in a CpuState.
        interrupt_bitmap: [0; 4],
    };
    let f = &st.fpu;
    let fpu = kvm_fpu {
        fpr: f.st,
        fcw: f.fcw,
        fsw: f.fsw,
        ftwx: f.ftw,
        pad1: 0,
        last_opcode: f.fop,
        last_ip: f.fip,
        last_dp: f.fdp,
        xmm: f.xmm,
        mxcsr: f.mxcsr,
        pad2: 0,
    };
    let mut xcrs = kvm_xcrs {
        nr_xcrs: 1,
        ..Default::default()
    };
    xcrs.xcrs[0] = kvm_xcr {
        xcr: 0,
        reserved: 0,
        value: st.xcr0,
    };
    let mut m = st.msr;
    let msrs = MSRS
        .iter()
        .map(|&i| {
            let v = match msr_field(&mut m, i) {
                Some(v) => *v,
                None => host_tsc.wrapping_add(st.msr.tsc_offset), // IA32_TSC
            };
            (i, v)
        })
        .collect();
    let mut events = kvm_vcpu_events {
        flags: KVM_VCPUEVENT_VALID_SHADOW,
        ..Default::default()
    };
    // Which instruction opened the shadow is not recorded; both block interrupts for one
    // instruction, STI's is the common one.
    events.interrupt.shadow = if st.interrupt_shadow {
        KVM_X86_SHADOW_INT_STI as u8
    } else {
        0
    };
    let debugregs = kvm_debugregs {
        db: [st.dr[0], st.dr[1], st.dr[2], st.dr[3]],
        dr6: st.dr[6],
        dr7: st.dr[7],
        flags: 0,
        reserved: [0; 9],
    };
    KvmState {
        regs,
        sregs,
        fpu,
        xcrs,
        msrs,
        events,
        debugregs,
        halted: st.halted,
    }
}

/// KVM state as a `CpuState`. MSRs missing from `k.msrs` keep their value from `base`
/// (the last state set), so an MSR the host cannot virtualize is remembered, not zeroed.
pub(crate) fn from_kvm(k: &KvmState, base: &CpuState, host_tsc: u64) -> CpuState {
    let r = &k.regs;
    let s = &k.sregs;
    let mut seg = [Segment::default(); 6];
    seg[sreg::ES] = seg_from_kvm(&s.es);
    seg[sreg::CS] = seg_from_kvm(&s.cs);
    seg[sreg::SS] = seg_from_kvm(&s.ss);
    seg[sreg::DS] = seg_from_kvm(&s.ds);
    seg[sreg::FS] = seg_from_kvm(&s.fs);
    seg[sreg::GS] = seg_from_kvm(&s.gs);
    let mut m = base.msr;
    m.apic_base = s.apic_base;
    for &(i, v) in &k.msrs {
        match msr_field(&mut m, i) {
            Some(f) => *f = v,
            None if i == msr::IA32_TSC => m.tsc_offset = v.wrapping_sub(host_tsc),
            None => {}
        }
    }
    let f = &k.fpu;
    let xcr0 = k.xcrs.xcrs[..(k.xcrs.nr_xcrs as usize).min(k.xcrs.xcrs.len())]
        .iter()
        .find(|x| x.xcr == 0)
        .map(|x| x.value)
        .unwrap_or(base.xcr0);
    let d = &k.debugregs;
    CpuState {
        gpr: [
            r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ],
        rip: r.rip,
        rflags: r.rflags,
        seg,
        ldtr: seg_from_kvm(&s.ldt),
        tr: seg_from_kvm(&s.tr),
        gdtr: dt_from_kvm(&s.gdt),
        idtr: dt_from_kvm(&s.idt),
        cr0: s.cr0,
        cr2: s.cr2,
        cr3: s.cr3,
        cr4: s.cr4,
        cr8: s.cr8,
        efer: s.efer,
        xcr0,
        // DR4/DR5 are aliases of DR6/DR7 (SDM Vol. 3B §18.2.2); their slots stay zero.
        dr: [d.db[0], d.db[1], d.db[2], d.db[3], 0, 0, d.dr6, d.dr7],
        msr: m,
        fpu: FpuState {
            fcw: f.fcw,
            fsw: f.fsw,
            ftw: f.ftwx,
            fop: f.last_opcode,
            fip: f.last_ip,
            fdp: f.last_dp,
            st: f.fpr,
            xmm: f.xmm,
            mxcsr: f.mxcsr,
        },
        halted: k.halted,
        interrupt_shadow: u32::from(k.events.interrupt.shadow)
            & (KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI)
            != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state where every field holds a distinct, non-default value.
    fn every_field_set() -> CpuState {
        let mut st = CpuState::reset();
        for (i, g) in st.gpr.iter_mut().enumerate() {
            *g = 0x0101_0101_0101_0101_u64.wrapping_mul(i as u64 + 1) ^ 0x5a;
        }
        st.rip = 0xffff_8000_1234_5678;
        st.rflags = 0x0000_0000_0024_0ed7;
        let attrs = [
            seg_attr::P
                | seg_attr::S
                | seg_attr::RW
                | seg_attr::ACCESSED
                | seg_attr::DB
                | seg_attr::G,
            seg_attr::P | seg_attr::S | seg_attr::CODE | seg_attr::RW | seg_attr::L | seg_attr::AVL,
            seg_attr::P | seg_attr::S | seg_attr::RW | (3 << seg_attr::DPL_SHIFT),
            seg_attr::UNUSABLE,
            seg_attr::P | seg_attr::S | seg_attr::DC | seg_attr::RW | (1 << seg_attr::DPL_SHIFT),
            seg_attr::P
                | seg_attr::S
                | seg_attr::CODE
                | seg_attr::DC
                | (2 << seg_attr::DPL_SHIFT)
                | seg_attr::G,
        ];
        for (i, s) in st.seg.iter_mut().enumerate() {
            *s = Segment {
                selector: 0x10 * i as u16 + 3,
                base: 0x1000 * (i as u64 + 1),
                limit: 0xfff * (i as u32 + 1),
                attr: attrs[i],
            };
        }
        st.ldtr = Segment {
            selector: 0x58,
            base: 0xdead_0000,
            limit: 0x7f,
            attr: seg_attr::P | 2,
        };
        st.tr = Segment {
            selector: 0x60,
            base: 0xbeef_0000,
            limit: 0x67,
            attr: seg_attr::P | 11,
        };
        st.gdtr = DescTable {
            base: 0xffff_8000_0000_1000,
            limit: 0x7f,
        };
        st.idtr = DescTable {
            base: 0xffff_8000_0000_2000,
            limit: 0xfff,
        };
        st.cr0 = 0x8005_0033;
        st.cr2 = 0x4242_4242;
        st.cr3 = 0x0012_3000;
        st.cr4 = 0x0000_06b0;
        st.cr8 = 7;
        st.efer = 0xd01;
        st.xcr0 = 3;
        st.dr = [0x10, 0x20, 0x30, 0x40, 0, 0, 0xffff_4ff1, 0x0000_0701];
        st.msr = MsrState {
            star: 1,
            lstar: 2,
            cstar: 3,
            fmask: 4,
            kernel_gs_base: 5,
            sysenter_cs: 6,
            sysenter_esp: 7,
            sysenter_eip: 8,
            apic_base: 0xfee0_0900,
            pat: 0x0007_0406_0007_0407,
            misc_enable: 0x81,
            tsc_aux: 9,
            tsc_offset: 1_000_000,
            ..MsrState::default()
        };
        st.fpu = FpuState {
            fcw: 0x27f,
            fsw: 0x3800,
            ftw: 0x81,
            fop: 0x5d9,
            fip: 0x1122_3344,
            fdp: 0x5566_7788,
            st: std::array::from_fn(|i| [i as u8 + 1; 16]),
            xmm: std::array::from_fn(|i| [0x80 | i as u8; 16]),
            mxcsr: 0x9fc0,
        };
        st.halted = true;
        st.interrupt_shadow = true;
        st
    }

    #[test]
    fn test_state_round_trip_preserves_every_field() {
        let st = every_field_set();
        let host_tsc = 123_456_789;
        let k = to_kvm(&st, host_tsc);
        let back = from_kvm(&k, &CpuState::reset(), host_tsc);
        assert_eq!(back, st);
    }

    #[test]
    fn test_state_round_trip_of_reset_state() {
        let mut st = CpuState::reset();
        st.dr[4] = 0;
        st.dr[5] = 0;
        let back = from_kvm(&to_kvm(&st, 5), &CpuState::reset(), 5);
        assert_eq!(back, st);
    }

    #[test]
    fn test_state_to_kvm_places_registers() {
        let st = every_field_set();
        let k = to_kvm(&st, 1000);
        assert_eq!(k.regs.rbx, st.gpr[3]);
        assert_eq!(k.regs.rsp, st.gpr[4]);
        assert_eq!(k.regs.r15, st.gpr[15]);
        assert_eq!(k.sregs.cs.l, 1);
        assert_eq!(k.sregs.cs.avl, 1);
        assert_eq!(k.sregs.ss.dpl, 3);
        assert_eq!(k.sregs.ds.unusable, 1);
        assert_eq!(k.sregs.ds.present, 0);
        assert_eq!(k.sregs.tr.type_, 11);
        assert_eq!(k.sregs.apic_base, 0xfee0_0900);
        assert!(k.msrs.contains(&(msr::IA32_TSC, 1000 + 1_000_000)));
        assert!(k.msrs.contains(&(msr::IA32_LSTAR, 2)));
        assert_eq!(k.xcrs.xcrs[0].value, 3);
        assert_eq!(k.debugregs.dr7, 0x701);
        assert_eq!(k.events.interrupt.shadow, KVM_X86_SHADOW_INT_STI as u8);
    }

    #[test]
    fn test_state_from_kvm_keeps_msrs_kvm_did_not_report() {
        let st = every_field_set();
        let mut k = to_kvm(&st, 0);
        k.msrs.retain(|&(i, _)| i != msr::IA32_CSTAR);
        let back = from_kvm(&k, &st, 0);
        assert_eq!(back.msr.cstar, 3);
    }

    #[test]
    fn test_state_mov_ss_shadow_reads_as_shadow() {
        let mut k = to_kvm(&CpuState::reset(), 0);
        k.events.interrupt.shadow = KVM_X86_SHADOW_INT_MOV_SS as u8;
        assert!(from_kvm(&k, &CpuState::reset(), 0).interrupt_shadow);
    }
}
