//! The KVM engine (Linux KVM API, `Documentation/virt/kvm/api.rst`): a VM whose memslots are
//! the machine's own `GuestRam` host pages, one vCPU per VM, a userspace chipset (no in-kernel
//! irqchip), and port/MMIO exits serviced synchronously through the machine's `VmIo`.
//!
//! Module map: `probe` (what the host offers, the `auto` policy), `cpuid` (vx's profile ∩ the
//! host's), `state` (CpuState <-> KVM structures), `exit` (exit handling, pure), `kick`
//! (interrupting KVM_RUN). This file holds the ioctls.
//!
//! Honest limitations:
//! - HLT: without an in-kernel irqchip KVM returns to userspace at HLT; the engine keeps the
//!   halted state itself (`CpuState::halted`) and clears it when an interrupt is injected.
//! - Interrupts: `inject_interrupt` uses KVM_INTERRUPT when the guest can take one; otherwise
//!   the vector is held and injected at the interrupt-window exit. kvm_pvm never reports that
//!   exit, so there the vector goes in at the first exit where the guest is ready (the kick
//!   watcher forces one every `kick::WATCH_PERIOD`). `CpuState` has no pending-event field: a
//!   vector injected but not yet delivered is not part of `get_state`.
//! - CPUID: the guest sees vx's profile ∩ KVM_GET_SUPPORTED_CPUID. Some KVMs rewrite entries in
//!   KVM_SET_CPUID2 (kvm_pvm puts the host's leaf 1 ECX/EDX back and adds leaf 0xD); the
//!   vCPU reports this in `cpuid_deviations` and logs it once.
//! - TSC: `MsrState::tsc_offset` is relative to the host TSC here and to the interpreter's
//!   nanosecond clock there, so the guest TSC jumps when a VM moves between engines.
//! - Instruction counts are not available on KVM (`--stats` shows exits instead); `--trace`
//!   single-steps the guest (one exit per instruction).

pub mod cpuid;
pub mod exit;
pub mod kick;
pub mod probe;
pub mod state;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use cpu::{CpuState, EngineStats, GuestRam, Kicker, TraceFn, Vcpu, VcpuError, VcpuExit, VmIo};
use kvm_bindings::{
    KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_MEM_READONLY, Msrs, kvm_guest_debug,
    kvm_msr_entry, kvm_userspace_memory_region,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};

use exit::{ExitAction, ExitCounters, ExitCtx, KvmExit, handle_exit};
pub use kick::KvmKicker;
use kick::{KickShared, RunGuard};
pub use probe::{AutoChoice, EntryMode, HostProbe, KvmFlavor, decide_auto};

/// Environment variable that lets `--accel kvm` try a guest mode this host's KVM is known not
/// to run (e.g. real mode on kvm_pvm). Pair it with --timeout: such a guest may hang.
pub const FORCE_ENV: &str = "VX_KVM_FORCE";

/// Host failures of the KVM engine (never guest behaviour).
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm could not be opened.
    #[error("cannot open /dev/kvm: {0}")]
    Open(kvm_ioctls::Error),
    /// The API version is not 12.
    #[error("KVM API version {0}, vx needs 12")]
    ApiVersion(i32),
    /// A capability vx cannot do without is missing.
    #[error("the host's KVM lacks the required capability {0}")]
    MissingCap(&'static str),
    /// KVM_GET_SUPPORTED_CPUID failed.
    #[error("KVM_GET_SUPPORTED_CPUID failed: {0}")]
    SupportedCpuid(kvm_ioctls::Error),
    /// The CPUID table could not be built.
    #[error("cannot build the CPUID table: {0}")]
    Cpuid(String),
    /// KVM_GET_MSR_INDEX_LIST failed.
    #[error("KVM_GET_MSR_INDEX_LIST failed: {0}")]
    MsrList(kvm_ioctls::Error),
    /// KVM_CREATE_VM failed.
    #[error("KVM_CREATE_VM failed: {0}")]
    CreateVm(kvm_ioctls::Error),
    /// KVM_SET_TSS_ADDR failed.
    #[error("KVM_SET_TSS_ADDR failed: {0}")]
    SetTssAddr(kvm_ioctls::Error),
    /// A guest memory region cannot be a memslot (KVM needs 4 KiB alignment).
    #[error(
        "guest memory region at {gpa:#x} ({len:#x} bytes) is not 4 KiB-aligned, so KVM cannot map it \
         (BIOS images must be a multiple of 4 KiB on KVM)"
    )]
    UnalignedRegion {
        /// Guest-physical start.
        gpa: u64,
        /// Length.
        len: u64,
    },
    /// The guest has ROM but KVM cannot map read-only memory.
    #[error("the guest has ROM, but the host's KVM lacks KVM_CAP_READONLY_MEM")]
    NoReadonlyMem,
    /// KVM_SET_USER_MEMORY_REGION failed.
    #[error("KVM_SET_USER_MEMORY_REGION slot {slot} at {gpa:#x} failed: {source}")]
    SetMemoryRegion {
        /// Slot number.
        slot: u32,
        /// Guest-physical start.
        gpa: u64,
        /// The error.
        source: kvm_ioctls::Error,
    },
    /// KVM_CREATE_VCPU failed.
    #[error("KVM_CREATE_VCPU failed: {0}")]
    CreateVcpu(kvm_ioctls::Error),
    /// KVM_SET_CPUID2 failed.
    #[error("KVM_SET_CPUID2 failed: {0}")]
    SetCpuid(kvm_ioctls::Error),
    /// Reading vCPU state failed.
    #[error("{0} failed: {1}")]
    GetState(&'static str, kvm_ioctls::Error),
    /// Writing vCPU state failed (KVM rejected the state).
    #[error("{0} failed: {1} (KVM rejected this processor state)")]
    SetState(&'static str, kvm_ioctls::Error),
    /// KVM_RUN failed.
    #[error("KVM_RUN failed: {0}")]
    Run(kvm_ioctls::Error),
    /// KVM_INTERRUPT failed.
    #[error("KVM_INTERRUPT (vector {vector:#x}) failed: {source}")]
    Interrupt {
        /// The vector.
        vector: u8,
        /// The error.
        source: std::io::Error,
    },
    /// KVM_SET_GUEST_DEBUG failed.
    #[error("KVM_SET_GUEST_DEBUG failed: {0}")]
    GuestDebug(kvm_ioctls::Error),
    /// The kick signal handler could not be installed.
    #[error("cannot install the vCPU kick signal handler: {0}")]
    Signal(std::io::Error),
    /// The kick watcher thread could not be started.
    #[error("cannot start the vCPU kick thread: {0}")]
    Thread(std::io::Error),
    /// KVM_EXIT_FAIL_ENTRY.
    #[error("the host could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x}: {}, cpu {cpu})", fail_entry_reason(*reason))]
    FailEntry {
        /// hardware_entry_failure_reason.
        reason: u64,
        /// Host CPU.
        cpu: u32,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    #[error(
        "KVM internal error (suberror {suberror}: {what}{}; data {data:x?})",
        insn_text(insn)
    )]
    Internal {
        /// The suberror.
        suberror: u32,
        /// What it means.
        what: &'static str,
        /// Extra data KVM reported.
        data: Vec<u64>,
        /// The instruction KVM failed to emulate, if it said.
        insn: Option<Vec<u8>>,
    },
    /// An exit vx does not handle.
    #[error("unexpected KVM exit: {0}")]
    UnexpectedExit(String),
}

fn insn_text(insn: &Option<Vec<u8>>) -> String {
    match insn {
        Some(b) => format!(
            ", instruction bytes {}",
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => String::new(),
    }
}

fn fail_entry_reason(reason: u64) -> &'static str {
    if reason == u64::MAX {
        return "VMEXIT_INVALID: invalid guest state (AMD-V)";
    }
    match reason & 0xffff {
        33 => "invalid guest state (VT-x)",
        34 => "MSR loading failed (VT-x)",
        41 => "machine-check during entry (VT-x)",
        _ => "see the SDM's VM-entry failure reasons",
    }
}

/// KVM_INTERRUPT = _IOW(KVMIO 0xAE, 0x86, struct kvm_interrupt) (not wrapped by kvm-ioctls).
const KVM_INTERRUPT: libc::c_ulong = (1 << 30) | (4 << 16) | (0xae << 8) | 0x86;

/// An open /dev/kvm with what vx needs from it checked.
#[derive(Debug)]
pub struct KvmBackend {
    kvm: Kvm,
    supported_cpuid: Vec<kvm_bindings::kvm_cpuid_entry2>,
    msrs: Vec<u32>,
    readonly_mem: bool,
    has_xcrs: bool,
    has_events: bool,
    has_debugregs: bool,
}

impl KvmBackend {
    /// Open /dev/kvm and check the API version and required capabilities.
    pub fn new() -> Result<KvmBackend, KvmError> {
        let kvm = Kvm::new().map_err(KvmError::Open)?;
        let v = kvm.get_api_version();
        if v != probe::KVM_API_VERSION {
            return Err(KvmError::ApiVersion(v));
        }
        for (name, cap) in [
            ("KVM_CAP_USER_MEMORY", Cap::UserMemory),
            ("KVM_CAP_IMMEDIATE_EXIT", Cap::ImmediateExit),
            ("KVM_CAP_EXT_CPUID", Cap::ExtCpuid),
        ] {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCap(name));
            }
        }
        let supported_cpuid = cpuid::supported_cpuid(&kvm)?;
        let list = kvm.get_msr_index_list().map_err(KvmError::MsrList)?;
        let msrs = state::MSRS
            .iter()
            .copied()
            .filter(|m| list.as_slice().contains(m))
            .collect();
        Ok(KvmBackend {
            readonly_mem: kvm.check_extension(Cap::ReadonlyMem),
            has_xcrs: kvm.check_extension(Cap::Xcrs),
            has_events: kvm.check_extension(Cap::VcpuEvents),
            has_debugregs: kvm.check_extension(Cap::Debugregs),
            kvm,
            supported_cpuid,
            msrs,
        })
    }

    /// Profile bits the host cannot provide (the guest will not see them on KVM).
    pub fn dropped_cpuid(&self) -> Vec<cpuid::DroppedBits> {
        cpuid::guest_cpuid(&self.supported_cpuid).1
    }

    /// A VM over `ram` (every region a memslot, ROM read-only) with one vCPU in the RESET state.
    pub fn create_vcpu(&self, ram: GuestRam) -> Result<KvmVcpu, KvmError> {
        let vm = self.kvm.create_vm().map_err(KvmError::CreateVm)?;
        // Intel needs three pages for the real-mode TSS; below the BIOS, as QEMU places it.
        vm.set_tss_address(0xfffb_d000)
            .map_err(KvmError::SetTssAddr)?;
        let mut rom = Vec::new();
        for (slot, r) in ram.regions().iter().enumerate() {
            let page = 0xfff_u64;
            if r.gpa & page != 0 || r.len & page != 0 || (r.host as u64) & page != 0 {
                return Err(KvmError::UnalignedRegion {
                    gpa: r.gpa,
                    len: r.len,
                });
            }
            if r.readonly {
                if !self.readonly_mem {
                    return Err(KvmError::NoReadonlyMem);
                }
                rom.push((r.gpa, r.len));
            }
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: if r.readonly { KVM_MEM_READONLY } else { 0 },
                guest_phys_addr: r.gpa,
                memory_size: r.len,
                userspace_addr: r.host as u64,
            };
            // SAFETY: the region's host range is valid for as long as `ram` lives (GuestRam's
            // contract), and KvmVcpu keeps a clone of `ram`, so the memory outlives the VM.
            unsafe { vm.set_user_memory_region(region) }.map_err(|source| {
                KvmError::SetMemoryRegion {
                    slot: slot as u32,
                    gpa: r.gpa,
                    source,
                }
            })?;
        }
        let mut vcpu = vm.create_vcpu(0).map_err(KvmError::CreateVcpu)?;
        let (table, dropped) = cpuid::guest_cpuid(&self.supported_cpuid);
        for d in &dropped {
            tracing::warn!(
                "kvm: the host cannot offer CPUID leaf {:#x} reg {} bits {:#x} of vx's profile; the guest will not see them",
                d.leaf,
                ["eax", "ebx", "ecx", "edx"][d.reg],
                d.mask
            );
        }
        vcpu.set_cpuid2(&cpuid::to_kvm_cpuid(&table)?)
            .map_err(KvmError::SetCpuid)?;
        let cpuid_deviations = match vcpu.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES) {
            Ok(back) => cpuid::deviations(&table, back.as_slice()),
            Err(e) => {
                tracing::debug!(
                    "kvm: KVM_GET_CPUID2 failed ({e}); cannot check the CPUID the guest sees"
                );
                Vec::new()
            }
        };
        if !cpuid_deviations.is_empty() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "kvm: the host's KVM rewrote vx's CPUID profile; this guest sees a different CPU than on the other engines: {}",
                    cpuid_deviations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                );
            });
        }
        kick::install_handler()?;
        let kicker = Kicker::new();
        let ie: *mut u8 = &mut vcpu.get_kvm_run().immediate_exit;
        // SAFETY: `ie` points into the vCPU's kvm_run mapping, which lives as long as `vcpu`;
        // KvmVcpu::drop calls `shutdown` before `vcpu` is dropped.
        let kick = unsafe { KickShared::new(kicker, ie) };
        let watcher = kick.spawn_watcher()?;
        let mut v = KvmVcpu {
            vcpu,
            _vm: vm,
            ram,
            rom,
            shadow: CpuState::reset(),
            halted: false,
            pending_irq: None,
            io_pending: false,
            ready_for_irq: None,
            deferred: None,
            counters: ExitCounters::default(),
            kick,
            watcher: Some(watcher),
            msrs: self.msrs.clone(),
            has_xcrs: self.has_xcrs,
            has_events: self.has_events,
            has_debugregs: self.has_debugregs,
            runs: 0,
            cpuid_deviations,
            trace: None,
            trace_due: false,
            traced_hlt: false,
            single_step: false,
            software_only: !probe::HostProbe::detect().hardware_backed(),
        };
        v.apply_state(&CpuState::reset())?;
        Ok(v)
    }
}

/// One vCPU on KVM, in its own VM.
pub struct KvmVcpu {
    vcpu: VcpuFd,
    _vm: VmFd,
    /// The memslots' host memory (kept alive by this clone); read for tracing.
    ram: GuestRam,
    rom: Vec<(u64, u64)>,
    /// The last state set: supplies what KVM does not hold (MSRs the host lacks).
    shadow: CpuState,
    halted: bool,
    /// A vector waiting for the interrupt window.
    pending_irq: Option<u8>,
    /// The last exit was I/O that KVM completes on the next KVM_RUN.
    io_pending: bool,
    /// kvm_run's ready_for_interrupt_injection && if_flag after the last exit (None: no exit
    /// since the last set_state).
    ready_for_irq: Option<bool>,
    /// A failure from a method that cannot return one (set_state, inject_interrupt), reported
    /// by the next `run`.
    deferred: Option<KvmError>,
    counters: ExitCounters,
    kick: Arc<KickShared>,
    watcher: Option<JoinHandle<()>>,
    msrs: Vec<u32>,
    has_xcrs: bool,
    has_events: bool,
    has_debugregs: bool,
    runs: u64,
    cpuid_deviations: Vec<cpuid::CpuidDeviation>,
    /// The instruction tracer (single-steps the guest while set).
    trace: Option<TraceFn>,
    /// The tracer has not seen the next instruction yet.
    trace_due: bool,
    /// The last instruction traced is a HLT.
    traced_hlt: bool,
    /// Single-stepping was asked for with `set_single_step`.
    single_step: bool,
    /// The host's KVM is not hardware-backed (for error messages).
    software_only: bool,
}

impl std::fmt::Debug for KvmVcpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvmVcpu")
            .field("halted", &self.halted)
            .field("pending_irq", &self.pending_irq)
            .field("runs", &self.runs)
            .field("tracing", &self.trace.is_some())
            .finish()
    }
}

impl Drop for KvmVcpu {
    fn drop(&mut self) {
        self.kick.shutdown();
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

fn host_tsc() -> u64 {
    // SAFETY: RDTSC has no memory effects and is available on every x86_64 host.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl KvmVcpu {
    /// A kicker that interrupts the guest at once (the board's `cpu::Kicker` reaches a vCPU
    /// in the guest within `kick::WATCH_PERIOD`).
    pub fn kick_handle(&self) -> KvmKicker {
        KvmKicker::new(self.kick.clone())
    }

    /// Where the CPUID this guest sees differs from the table vx set (the host's KVM
    /// rewrote it); empty when the guest sees exactly vx's profile (minus `dropped_cpuid`).
    pub fn cpuid_deviations(&self) -> &[cpuid::CpuidDeviation] {
        &self.cpuid_deviations
    }

    /// Single-step the guest: every instruction ends `run` with `VcpuExit::Debug`.
    pub fn set_single_step(&mut self, on: bool) -> Result<(), KvmError> {
        self.single_step = on;
        self.apply_guest_debug(on || self.trace.is_some())
    }

    fn apply_guest_debug(&mut self, on: bool) -> Result<(), KvmError> {
        let dbg = kvm_guest_debug {
            control: if on {
                KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP
            } else {
                0
            },
            ..Default::default()
        };
        self.vcpu
            .set_guest_debug(&dbg)
            .map_err(KvmError::GuestDebug)
    }

    /// Ask for `VcpuExit::InterruptWindow` as soon as the guest can take an interrupt.
    pub fn request_interrupt_window(&mut self, on: bool) {
        self.vcpu.get_kvm_run().request_interrupt_window = u8::from(on);
    }

    fn read_state(&self) -> Result<CpuState, KvmError> {
        let g = |what, e| KvmError::GetState(what, e);
        let mut k = state::KvmState {
            regs: self.vcpu.get_regs().map_err(|e| g("KVM_GET_REGS", e))?,
            sregs: self.vcpu.get_sregs().map_err(|e| g("KVM_GET_SREGS", e))?,
            fpu: self.vcpu.get_fpu().map_err(|e| g("KVM_GET_FPU", e))?,
            halted: self.halted,
            ..Default::default()
        };
        if self.has_xcrs {
            k.xcrs = self.vcpu.get_xcrs().map_err(|e| g("KVM_GET_XCRS", e))?;
        }
        if self.has_events {
            k.events = self
                .vcpu
                .get_vcpu_events()
                .map_err(|e| g("KVM_GET_VCPU_EVENTS", e))?;
        }
        if self.has_debugregs {
            k.debugregs = self
                .vcpu
                .get_debug_regs()
                .map_err(|e| g("KVM_GET_DEBUGREGS", e))?;
        } else {
            let s = state::to_kvm(&self.shadow, 0);
            k.debugregs = s.debugregs;
        }
        let entries: Vec<kvm_msr_entry> = self
            .msrs
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries)
            .map_err(|e| KvmError::Cpuid(format!("MSR list: {e:?}")))?;
        let n = self
            .vcpu
            .get_msrs(&mut msrs)
            .map_err(|e| g("KVM_GET_MSRS", e))?;
        let now = host_tsc();
        k.msrs = msrs.as_slice()[..n]
            .iter()
            .map(|e| (e.index, e.data))
            .collect();
        Ok(state::from_kvm(&k, &self.shadow, now))
    }

    fn apply_state(&mut self, st: &CpuState) -> Result<(), KvmError> {
        let s = |what, e| KvmError::SetState(what, e);
        let k = state::to_kvm(st, host_tsc());
        self.shadow = *st;
        self.halted = st.halted;
        self.ready_for_irq = None;
        self.pending_irq = None;
        self.kick.set_poll(false);
        self.vcpu
            .set_sregs(&k.sregs)
            .map_err(|e| s("KVM_SET_SREGS", e))?;
        self.vcpu
            .set_regs(&k.regs)
            .map_err(|e| s("KVM_SET_REGS", e))?;
        self.vcpu.set_fpu(&k.fpu).map_err(|e| s("KVM_SET_FPU", e))?;
        if self.has_xcrs {
            self.vcpu
                .set_xcrs(&k.xcrs)
                .map_err(|e| s("KVM_SET_XCRS", e))?;
        }
        if self.has_events {
            self.vcpu
                .set_vcpu_events(&k.events)
                .map_err(|e| s("KVM_SET_VCPU_EVENTS", e))?;
        }
        if self.has_debugregs {
            self.vcpu
                .set_debug_regs(&k.debugregs)
                .map_err(|e| s("KVM_SET_DEBUGREGS", e))?;
        }
        let entries: Vec<kvm_msr_entry> = k
            .msrs
            .iter()
            .filter(|(i, _)| self.msrs.contains(i))
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect();
        let msrs = Msrs::from_entries(&entries)
            .map_err(|e| KvmError::Cpuid(format!("MSR list: {e:?}")))?;
        let n = self
            .vcpu
            .set_msrs(&msrs)
            .map_err(|e| s("KVM_SET_MSRS", e))?;
        if n < entries.len() {
            tracing::warn!(
                "kvm: the host refused MSR {:#x} = {:#x}",
                entries[n].index,
                entries[n].data
            );
        }
        Ok(())
    }

    fn interrupt_now(&mut self, vector: u8) -> Result<(), KvmError> {
        let irq = kvm_bindings::kvm_interrupt {
            irq: u32::from(vector),
        };
        // SAFETY: KVM_INTERRUPT reads one struct kvm_interrupt from the pointer we pass, which
        // is valid for the call; the fd is this vCPU's.
        let r = unsafe { libc::ioctl(self.vcpu.as_raw_fd(), KVM_INTERRUPT as _, &irq) };
        if r < 0 {
            return Err(KvmError::Interrupt {
                vector,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Call the tracer with the state before the next instruction and its bytes.
    fn trace_one(&mut self) {
        let st = match self.read_state() {
            Ok(st) => st,
            Err(e) => {
                tracing::error!("kvm: trace: {e}");
                return;
            }
        };
        let bytes = self.fetch_code(&st);
        self.traced_hlt = bytes.first() == Some(&0xf4);
        if let Some(t) = self.trace.as_mut() {
            t(&st, &bytes);
        }
    }

    /// Up to 15 instruction bytes at CS:RIP, translated through the guest's page tables
    /// (KVM_TRANSLATE); fewer if some byte is not readable.
    fn fetch_code(&self, st: &CpuState) -> Vec<u8> {
        let linear = if st.in_64bit_mode() {
            st.rip
        } else {
            st.seg[cpu::state::sreg::CS].base.wrapping_add(st.rip) & 0xffff_ffff
        };
        let mut out = Vec::with_capacity(15);
        let mut addr = linear;
        while out.len() < 15 {
            let in_page = (0x1000 - (addr & 0xfff)) as usize;
            let n = in_page.min(15 - out.len());
            let phys = if st.cr0 & cpu::state::cr::CR0_PG != 0 {
                match self.vcpu.translate_gva(addr) {
                    Ok(t) if t.valid != 0 => t.physical_address,
                    _ => break,
                }
            } else {
                addr
            };
            let mut buf = vec![0u8; n];
            if !self.ram.read(phys, &mut buf) {
                break;
            }
            out.extend_from_slice(&buf);
            addr = addr.wrapping_add(n as u64);
        }
        out
    }

    /// Let KVM finish an I/O instruction whose exit was serviced, without running the guest
    /// (KVM API doc: KVM_RUN with immediate_exit completes pending operations).
    fn complete_io(&mut self) -> Result<(), KvmError> {
        if !self.io_pending {
            return Ok(());
        }
        self.io_pending = false;
        self.kick.set_immediate_exit(1);
        let r = self.vcpu.run();
        self.kick.set_immediate_exit(0);
        match r {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            Err(e) => Err(KvmError::Run(e)),
            Ok(_) => Ok(()),
        }
    }

    fn run_loop(&mut self, io: &dyn VmIo) -> Result<VcpuExit, KvmError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if self.halted {
            return Ok(VcpuExit::Halted);
        }
        let _guard: RunGuard = self.kick.enter();
        self.trace_due = true;
        loop {
            if self.trace.is_some() && self.trace_due {
                self.trace_due = false;
                self.trace_one();
            }
            if self.kick.kicker.take() {
                self.complete_io()?;
                self.kick.set_immediate_exit(0);
                return Ok(VcpuExit::Kicked);
            }
            // The held vector, or the board's request (an interrupt pending while IF=0).
            let want_window =
                self.pending_irq.is_some() || self.kick.kicker.interrupt_window_requested();
            if want_window {
                self.vcpu.get_kvm_run().request_interrupt_window = 1;
            }
            self.runs += 1;
            let run_ptr: *const kvm_bindings::kvm_run = self.vcpu.get_kvm_run();
            let exit = self.vcpu.run();
            let mut io_exit = false;
            let kexit = match exit {
                Ok(e) => describe_exit(e, run_ptr, &mut io_exit),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    KvmExit::Interrupted
                }
                Err(e) => return Err(KvmError::Run(e)),
            };
            let mut ctx = ExitCtx {
                rom: &self.rom,
                pending_irq: self.pending_irq.is_some(),
                tracing: self.trace.is_some(),
                counters: &mut self.counters,
            };
            let mut action = handle_exit(kexit, io, &mut ctx)?;
            self.io_pending = io_exit;
            let run = self.vcpu.get_kvm_run();
            let ready = run.ready_for_interrupt_injection != 0 && run.if_flag != 0;
            self.ready_for_irq = Some(ready);
            if ready && self.pending_irq.is_some() {
                // The guest can take the held interrupt now, whatever the exit was (a host that
                // never reports the window, like kvm_pvm, gets here through HLT, I/O or the
                // watcher's poll). A HLT it interrupts is over.
                action = match action {
                    ExitAction::Return(VcpuExit::Halted)
                    | ExitAction::CheckKick
                    | ExitAction::Continue
                    | ExitAction::TraceStep => ExitAction::InjectPending,
                    other => other,
                };
            }
            match action {
                ExitAction::TraceStep => {
                    self.trace_due = true;
                    if self.traced_hlt {
                        // Single-stepping a HLT: some KVMs (kvm_pvm) report the step's debug
                        // exit instead of the HLT exit; the processor is halted all the same.
                        self.traced_hlt = false;
                        self.halted = true;
                        return Ok(VcpuExit::Halted);
                    }
                }
                ExitAction::Continue if io_exit && self.trace.is_some() => {
                    // The single-step trap of an I/O instruction is not reported after its
                    // exit: finish the instruction now and trace the next one before entering.
                    self.complete_io()?;
                    self.trace_due = true;
                }
                ExitAction::Continue => {}
                ExitAction::InjectPending => {
                    self.vcpu.get_kvm_run().request_interrupt_window = 0;
                    self.kick.set_poll(false);
                    self.kick.set_immediate_exit(0);
                    if let Some(v) = self.pending_irq.take() {
                        self.interrupt_now(v)?;
                        self.ready_for_irq = Some(false);
                    }
                    if self.kick.kicker.take() {
                        self.complete_io()?;
                        return Ok(VcpuExit::Kicked);
                    }
                }
                ExitAction::CheckKick => {
                    if self.kick.kicker.take() {
                        self.kick.set_immediate_exit(0);
                        return Ok(VcpuExit::Kicked);
                    }
                    // A stale immediate_exit from a kick already consumed: clear it, re-enter.
                    self.kick.set_immediate_exit(0);
                }
                ExitAction::Return(e) => {
                    self.traced_hlt = false;
                    if e == VcpuExit::Halted {
                        self.halted = true;
                    }
                    return Ok(e);
                }
            }
        }
    }
}

/// Translate kvm-ioctls' exit into the neutral description (`exit.rs`).
fn describe_exit<'a>(
    e: kvm_ioctls::VcpuExit<'a>,
    run: *const kvm_bindings::kvm_run,
    io_exit: &mut bool,
) -> KvmExit<'a> {
    use kvm_ioctls::VcpuExit as E;
    match e {
        E::IoIn(port, data) => {
            *io_exit = true;
            // SAFETY: KVM_EXIT_IO: the io member of the union is the valid one.
            let size = usize::from(unsafe { (*run).__bindgen_anon_1.io.size });
            KvmExit::IoIn { port, size, data }
        }
        E::IoOut(port, data) => {
            *io_exit = true;
            // SAFETY: KVM_EXIT_IO: the io member of the union is the valid one.
            let size = usize::from(unsafe { (*run).__bindgen_anon_1.io.size });
            KvmExit::IoOut { port, size, data }
        }
        E::MmioRead(addr, data) => {
            *io_exit = true;
            KvmExit::MmioRead { addr, data }
        }
        E::MmioWrite(addr, data) => {
            *io_exit = true;
            KvmExit::MmioWrite { addr, data }
        }
        E::Hlt => KvmExit::Hlt,
        E::IrqWindowOpen => KvmExit::IrqWindowOpen,
        E::Shutdown => KvmExit::Shutdown,
        E::Debug(d) => KvmExit::Debug {
            exception: d.exception,
            pc: d.pc,
        },
        E::Intr => KvmExit::Interrupted,
        E::FailEntry(reason, cpu) => KvmExit::FailEntry { reason, cpu },
        E::InternalError => {
            // SAFETY: KVM_EXIT_INTERNAL_ERROR: the internal member of the union is valid.
            let internal = unsafe { (*run).__bindgen_anon_1.internal };
            let n = (internal.ndata as usize).min(internal.data.len());
            KvmExit::InternalError {
                suberror: internal.suberror,
                data: internal.data[..n].to_vec(),
            }
        }
        E::SystemEvent(kind, _) => KvmExit::SystemEvent { kind },
        E::Unknown => {
            // SAFETY: KVM_EXIT_UNKNOWN: the hw member of the union is valid.
            let hardware_reason = unsafe { (*run).__bindgen_anon_1.hw.hardware_exit_reason };
            KvmExit::Unknown { hardware_reason }
        }
        E::MemoryFault { gpa, size, .. } => KvmExit::Unexpected {
            name: format!("KVM_EXIT_MEMORY_FAULT at {gpa:#x} ({size} bytes)"),
        },
        other => KvmExit::Unexpected {
            name: format!("{other:?}"),
        },
    }
}

impl Vcpu for KvmVcpu {
    fn run(&mut self, io: &dyn VmIo) -> Result<VcpuExit, VcpuError> {
        self.run_loop(io).map_err(|e| {
            let mut message = e.to_string();
            if matches!(e, KvmError::Internal { .. }) {
                let rip = self.vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
                message.push_str(&format!(" at rip {rip:#x}"));
                if self.software_only {
                    message.push_str(
                        "; this host's KVM is software-only: it passes code outside 64-bit mode, and accesses \
                         to write-protected pages (e.g. pages holding page tables), through KVM's instruction \
                         emulator, which lacks some instructions; use --accel interp",
                    );
                }
            }
            VcpuError::Engine { engine: "kvm", message }
        })
    }

    fn get_state(&self) -> CpuState {
        match self.read_state() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("kvm: cannot read the vCPU state: {e}");
                self.shadow
            }
        }
    }

    fn set_state(&mut self, state: &CpuState) {
        if let Err(e) = self.apply_state(state) {
            self.deferred = Some(e);
        }
    }

    fn inject_interrupt(&mut self, vector: u8) {
        self.halted = false;
        if !self.interrupts_enabled() {
            // Not injectable now: hold it and ask KVM for the interrupt window; the run loop
            // injects it at the IrqWindowOpen exit (or, on a host that never reports the
            // window, at the first exit where the guest is ready, with the watcher thread
            // forcing an exit every kick::WATCH_PERIOD meanwhile).
            self.pending_irq = Some(vector);
            self.kick.set_poll(true);
            return;
        }
        if let Err(e) = self.interrupt_now(vector) {
            self.deferred = Some(e);
        }
        self.ready_for_irq = Some(false);
    }

    fn interrupts_enabled(&self) -> bool {
        match self.ready_for_irq {
            Some(r) => r && self.pending_irq.is_none(),
            None => self.shadow.interrupts_enabled(),
        }
    }

    fn kicker(&self) -> Kicker {
        self.kick.kicker.clone()
    }

    fn stats(&self) -> EngineStats {
        let c = &self.counters;
        EngineStats {
            engine: "kvm",
            instructions: 0,
            counters: vec![
                ("KVM_RUN calls".into(), self.runs),
                ("port I/O exits".into(), c.io),
                ("MMIO exits".into(), c.mmio),
                ("ROM writes dropped".into(), c.rom_writes),
                ("HLT exits".into(), c.hlt),
                ("irq window exits".into(), c.irq_window),
                ("signal/kick exits".into(), c.interrupted),
                ("debug exits".into(), c.debug),
                ("shutdown exits".into(), c.shutdown),
            ],
            unimplemented: Vec::new(),
        }
    }

    /// Tracing single-steps the guest (KVM_SET_GUEST_DEBUG): one debug exit per instruction,
    /// about 10 µs each on kvm_pvm, plus the state reads for the tracer.
    fn set_trace(&mut self, f: Option<TraceFn>) -> bool {
        let on = f.is_some();
        self.trace = f;
        match self.apply_guest_debug(on || self.single_step) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("kvm: cannot single-step for tracing: {e}");
                self.trace = None;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kvm_interrupt_ioctl_number() {
        // _IOW(0xAE, 0x86, u32) as in <linux/kvm.h>.
        assert_eq!(KVM_INTERRUPT, 0x4004_ae86);
        assert_eq!(std::mem::size_of::<kvm_bindings::kvm_interrupt>(), 4);
    }
}
