//! KVM exit handling as a pure function (KVM API doc §5 "The kvm_run structure", exit
//! reasons KVM_EXIT_IO, KVM_EXIT_MMIO, KVM_EXIT_HLT, …): a neutral description of one exit
//! goes in, the machine's `VmIo` services port and MMIO accesses, and out comes what the run
//! loop does next. Tested with synthetic exits, without /dev/kvm.

use cpu::{VcpuExit, VmIo};

use super::KvmError;

/// One KVM exit, described without kvm_bindings types. Data buffers borrow kvm_run.
#[derive(Debug)]
pub(crate) enum KvmExit<'a> {
    /// IN/INS: fill `data` (`size` bytes per element, `data.len() / size` elements).
    IoIn {
        port: u16,
        size: usize,
        data: &'a mut [u8],
    },
    /// OUT/OUTS: `size` bytes per element.
    IoOut {
        port: u16,
        size: usize,
        data: &'a [u8],
    },
    /// A load from a guest-physical address with no RAM memslot.
    MmioRead { addr: u64, data: &'a mut [u8] },
    /// A store to a guest-physical address with no writable memslot (MMIO, or a ROM).
    MmioWrite { addr: u64, data: &'a [u8] },
    /// HLT.
    Hlt,
    /// The interrupt window requested with request_interrupt_window opened.
    IrqWindowOpen,
    /// Triple fault or shutdown.
    Shutdown,
    /// A debug exception with guest debugging enabled.
    Debug { exception: u32, pc: u64 },
    /// KVM_RUN returned EINTR (a signal, or immediate_exit), or KVM_EXIT_INTR.
    Interrupted,
    /// KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest.
    FailEntry { reason: u64, cpu: u32 },
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError { suberror: u32, data: Vec<u64> },
    /// KVM_EXIT_SYSTEM_EVENT.
    SystemEvent { kind: u32 },
    /// KVM_EXIT_UNKNOWN with the hardware's exit reason.
    Unknown { hardware_reason: u64 },
    /// Any other exit reason vx does not expect without the features that produce it.
    Unexpected { name: String },
}

/// What the run loop does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitAction {
    /// Re-enter the guest (completing an I/O instruction if there was one).
    Continue,
    /// Inject the held interrupt with KVM_INTERRUPT, then re-enter.
    InjectPending,
    /// Check the kick flag: return `Kicked` if set, else re-enter.
    CheckKick,
    /// A single-step for the instruction tracer: trace the next instruction, re-enter.
    TraceStep,
    /// Return this to the board.
    Return(VcpuExit),
}

/// Exit counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExitCounters {
    pub io: u64,
    pub mmio: u64,
    pub rom_writes: u64,
    pub hlt: u64,
    pub irq_window: u64,
    pub interrupted: u64,
    pub debug: u64,
    pub shutdown: u64,
}

/// What exit handling needs to know about the VM.
#[derive(Debug)]
pub(crate) struct ExitCtx<'a> {
    /// Guest-physical ranges (start, length) of read-only memslots: KVM reports writes to them
    /// as MMIO writes, which a ROM drops.
    pub rom: &'a [(u64, u64)],
    /// An interrupt vector waits for the window.
    pub pending_irq: bool,
    /// The engine single-steps to trace instructions: debug exits are its own, not the board's.
    pub tracing: bool,
    pub counters: &'a mut ExitCounters,
}

const SHUTDOWN_EVENTS: [u32; 3] = [
    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN,
    kvm_bindings::KVM_SYSTEM_EVENT_RESET,
    kvm_bindings::KVM_SYSTEM_EVENT_CRASH,
];

fn internal_reason(suberror: u32) -> &'static str {
    match suberror {
        kvm_bindings::KVM_INTERNAL_ERROR_EMULATION => "KVM could not emulate an instruction",
        kvm_bindings::KVM_INTERNAL_ERROR_SIMUL_EX => {
            "an exception occurred while delivering another"
        }
        kvm_bindings::KVM_INTERNAL_ERROR_DELIVERY_EV => "an event could not be delivered",
        kvm_bindings::KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => {
            "unexpected hardware exit reason"
        }
        _ => "unknown suberror",
    }
}

/// The instruction bytes of a KVM_INTERNAL_ERROR_EMULATION exit, when KVM supplied them
/// (struct emulation_failure: data[0] flags, then insn_size and up to 15 bytes from data[1]).
pub(crate) fn emulation_failure_bytes(suberror: u32, data: &[u64]) -> Option<Vec<u8>> {
    if suberror != kvm_bindings::KVM_INTERNAL_ERROR_EMULATION
        || data.len() < 2
        || data[0] & u64::from(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)
            == 0
    {
        return None;
    }
    let raw: Vec<u8> = data[1..data.len().min(3)]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let size = usize::from(raw[0]).min(raw.len() - 1);
    Some(raw[1..1 + size].to_vec())
}

/// Handle one exit: service I/O through `io`, decide what the loop does next.
pub(crate) fn handle_exit(
    exit: KvmExit<'_>,
    io: &dyn VmIo,
    ctx: &mut ExitCtx<'_>,
) -> Result<ExitAction, KvmError> {
    Ok(match exit {
        KvmExit::IoIn { port, size, data } => {
            ctx.counters.io += 1;
            for chunk in data.chunks_mut(size.max(1)) {
                io.pio_read(port, chunk);
            }
            ExitAction::Continue
        }
        KvmExit::IoOut { port, size, data } => {
            ctx.counters.io += 1;
            for chunk in data.chunks(size.max(1)) {
                io.pio_write(port, chunk);
            }
            ExitAction::Continue
        }
        KvmExit::MmioRead { addr, data } => {
            ctx.counters.mmio += 1;
            io.mmio_read(addr, data);
            ExitAction::Continue
        }
        KvmExit::MmioWrite { addr, data } => {
            if ctx
                .rom
                .iter()
                .any(|&(base, len)| addr.wrapping_sub(base) < len)
            {
                // A store to ROM: real ROM ignores it, and so do the software engines.
                ctx.counters.rom_writes += 1;
            } else {
                ctx.counters.mmio += 1;
                io.mmio_write(addr, data);
            }
            ExitAction::Continue
        }
        KvmExit::Hlt => {
            ctx.counters.hlt += 1;
            ExitAction::Return(VcpuExit::Halted)
        }
        KvmExit::IrqWindowOpen => {
            ctx.counters.irq_window += 1;
            if ctx.pending_irq {
                ExitAction::InjectPending
            } else {
                ExitAction::Return(VcpuExit::InterruptWindow)
            }
        }
        KvmExit::Shutdown => {
            ctx.counters.shutdown += 1;
            ExitAction::Return(VcpuExit::Shutdown)
        }
        KvmExit::SystemEvent { kind } if SHUTDOWN_EVENTS.contains(&kind) => {
            ctx.counters.shutdown += 1;
            ExitAction::Return(VcpuExit::Shutdown)
        }
        KvmExit::SystemEvent { kind } => {
            return Err(KvmError::UnexpectedExit(format!(
                "KVM_EXIT_SYSTEM_EVENT type {kind}"
            )));
        }
        KvmExit::Debug { exception, pc } => {
            ctx.counters.debug += 1;
            tracing::trace!("kvm debug exit: exception {exception} at {pc:#x}");
            if ctx.tracing {
                ExitAction::TraceStep
            } else {
                ExitAction::Return(VcpuExit::Debug)
            }
        }
        KvmExit::Interrupted => {
            ctx.counters.interrupted += 1;
            ExitAction::CheckKick
        }
        KvmExit::FailEntry { reason, cpu } => {
            return Err(KvmError::FailEntry { reason, cpu });
        }
        KvmExit::InternalError { suberror, data } => {
            let insn = emulation_failure_bytes(suberror, &data);
            return Err(KvmError::Internal {
                suberror,
                what: internal_reason(suberror),
                data,
                insn,
            });
        }
        KvmExit::Unknown { hardware_reason } => {
            return Err(KvmError::UnexpectedExit(format!(
                "KVM_EXIT_UNKNOWN, hardware exit reason {hardware_reason:#x}"
            )));
        }
        KvmExit::Unexpected { name } => return Err(KvmError::UnexpectedExit(name)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
    }

    impl VmIo for Recorder {
        fn pio_read(&self, port: u16, data: &mut [u8]) {
            self.log
                .lock()
                .expect("lock")
                .push(format!("in {port:#x} {}", data.len()));
            data.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = 0x10 + i as u8);
        }
        fn pio_write(&self, port: u16, data: &[u8]) {
            self.log
                .lock()
                .expect("lock")
                .push(format!("out {port:#x} {data:02x?}"));
        }
        fn mmio_read(&self, addr: u64, data: &mut [u8]) {
            self.log
                .lock()
                .expect("lock")
                .push(format!("mmio read {addr:#x} {}", data.len()));
            data.fill(0xff);
        }
        fn mmio_write(&self, addr: u64, data: &[u8]) {
            self.log
                .lock()
                .expect("lock")
                .push(format!("mmio write {addr:#x} {data:02x?}"));
        }
    }

    fn run(
        exit: KvmExit<'_>,
        pending: bool,
    ) -> (Result<ExitAction, KvmError>, Vec<String>, ExitCounters) {
        let io = Recorder::default();
        let mut counters = ExitCounters::default();
        let rom = [(0xfffe_0000, 0x2_0000)];
        let r = handle_exit(
            exit,
            &io,
            &mut ExitCtx {
                rom: &rom,
                pending_irq: pending,
                tracing: false,
                counters: &mut counters,
            },
        );
        let log = io.log.into_inner().expect("lock");
        (r, log, counters)
    }

    #[test]
    fn test_handle_exit_io_in_fills_data() {
        let mut data = [0u8; 2];
        let (r, log, c) = run(
            KvmExit::IoIn {
                port: 0x71,
                size: 2,
                data: &mut data,
            },
            false,
        );
        assert_eq!(r.expect("ok"), ExitAction::Continue);
        assert_eq!(log, ["in 0x71 2"]);
        assert_eq!(data, [0x10, 0x11]);
        assert_eq!(c.io, 1);
    }

    #[test]
    fn test_handle_exit_string_out_splits_elements() {
        let data = [1u8, 2, 3, 4];
        let (r, log, _) = run(
            KvmExit::IoOut {
                port: 0x3f8,
                size: 1,
                data: &data,
            },
            false,
        );
        assert_eq!(r.expect("ok"), ExitAction::Continue);
        assert_eq!(
            log,
            [
                "out 0x3f8 [01]",
                "out 0x3f8 [02]",
                "out 0x3f8 [03]",
                "out 0x3f8 [04]"
            ]
        );
    }

    #[test]
    fn test_handle_exit_mmio_read_and_write_reach_the_bus() {
        let mut data = [0u8; 4];
        let (r, log, _) = run(
            KvmExit::MmioRead {
                addr: 0xfec0_0000,
                data: &mut data,
            },
            false,
        );
        assert_eq!(r.expect("ok"), ExitAction::Continue);
        assert_eq!(data, [0xff; 4]);
        assert_eq!(log, ["mmio read 0xfec00000 4"]);
        let (_, log, c) = run(
            KvmExit::MmioWrite {
                addr: 0xfee0_00b0,
                data: &[0, 0, 0, 0],
            },
            false,
        );
        assert_eq!(log, ["mmio write 0xfee000b0 [00, 00, 00, 00]"]);
        assert_eq!(c.mmio, 1);
    }

    #[test]
    fn test_handle_exit_drops_rom_writes() {
        let (r, log, c) = run(
            KvmExit::MmioWrite {
                addr: 0xffff_fff0,
                data: &[0x90],
            },
            false,
        );
        assert_eq!(r.expect("ok"), ExitAction::Continue);
        assert!(log.is_empty(), "{log:?}");
        assert_eq!(c.rom_writes, 1);
    }

    #[test]
    fn test_handle_exit_maps_board_exits() {
        assert_eq!(
            run(KvmExit::Hlt, false).0.expect("ok"),
            ExitAction::Return(VcpuExit::Halted)
        );
        assert_eq!(
            run(KvmExit::Shutdown, false).0.expect("ok"),
            ExitAction::Return(VcpuExit::Shutdown)
        );
        assert_eq!(
            run(
                KvmExit::SystemEvent {
                    kind: kvm_bindings::KVM_SYSTEM_EVENT_RESET
                },
                false
            )
            .0
            .expect("ok"),
            ExitAction::Return(VcpuExit::Shutdown)
        );
        assert_eq!(
            run(
                KvmExit::Debug {
                    exception: 1,
                    pc: 0x1000
                },
                false
            )
            .0
            .expect("ok"),
            ExitAction::Return(VcpuExit::Debug)
        );
        assert_eq!(
            run(KvmExit::Interrupted, false).0.expect("ok"),
            ExitAction::CheckKick
        );
    }

    #[test]
    fn test_handle_exit_debug_while_tracing_is_a_trace_step() {
        let io = Recorder::default();
        let mut counters = ExitCounters::default();
        let mut ctx = ExitCtx {
            rom: &[],
            pending_irq: false,
            tracing: true,
            counters: &mut counters,
        };
        let r = handle_exit(
            KvmExit::Debug {
                exception: 1,
                pc: 0x10,
            },
            &io,
            &mut ctx,
        )
        .expect("ok");
        assert_eq!(r, ExitAction::TraceStep);
        assert_eq!(counters.debug, 1);
    }

    #[test]
    fn test_handle_exit_interrupt_window_injects_held_vector() {
        assert_eq!(
            run(KvmExit::IrqWindowOpen, true).0.expect("ok"),
            ExitAction::InjectPending
        );
        assert_eq!(
            run(KvmExit::IrqWindowOpen, false).0.expect("ok"),
            ExitAction::Return(VcpuExit::InterruptWindow)
        );
    }

    #[test]
    fn test_handle_exit_failures_are_typed_errors_with_the_reason() {
        let e = run(
            KvmExit::FailEntry {
                reason: 0x21,
                cpu: 0,
            },
            false,
        )
        .0
        .expect_err("fails");
        assert!(e.to_string().contains("0x21"), "{e}");
        let e = run(
            KvmExit::InternalError {
                suberror: 1,
                data: vec![7],
            },
            false,
        )
        .0
        .expect_err("fails");
        assert!(e.to_string().contains("emulate"), "{e}");
        // cmpxchg16b [r15] as kvm_pvm reports it: flags 1, then size 15 and the bytes.
        let data = vec![1, 0x007a_c30f_c70f_490f, 0x0cd5_0000_0009_400f];
        let e = run(KvmExit::InternalError { suberror: 1, data }, false)
            .0
            .expect_err("fails");
        assert!(e.to_string().contains("49 0f c7 0f c3"), "{e}");
        let e = run(
            KvmExit::Unknown {
                hardware_reason: 0x7b,
            },
            false,
        )
        .0
        .expect_err("fails");
        assert!(e.to_string().contains("0x7b"), "{e}");
        let e = run(
            KvmExit::Unexpected {
                name: "KVM_EXIT_HYPERCALL".into(),
            },
            false,
        )
        .0
        .expect_err("fails");
        assert!(e.to_string().contains("HYPERCALL"), "{e}");
    }
}
