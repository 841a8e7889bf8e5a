//! Why and when the machine stops: devices and host threads (timeout, console escape)
//! request a stop here, which kicks every vCPU out of its engine.

use std::sync::Mutex;

use cpu::Kicker;

/// Why a VM stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote this value to the debug-exit port.
    DebugExit(u32),
    /// The guest powered off (or reset with no reboot).
    PowerOff,
    /// The --timeout expired.
    Timeout,
    /// The user quit from the console (Ctrl-A x).
    UserQuit,
    /// Triple fault or shutdown.
    TripleFault,
    /// HLT with nothing that could ever wake the processor.
    HaltedForever,
    /// The host sent vx this termination signal (SIGTERM, SIGINT, SIGHUP).
    Signal(i32),
}

impl StopReason {
    /// The process exit status vx uses for this reason (see the README).
    pub fn exit_status(&self) -> i32 {
        match *self {
            StopReason::DebugExit(v) => (((v & 0x7f) << 1) | 1) as i32,
            StopReason::PowerOff | StopReason::UserQuit => 0,
            StopReason::Timeout => 124,
            StopReason::TripleFault | StopReason::HaltedForever => 3,
            // The shell's convention for a process ended by signal n.
            StopReason::Signal(n) => 128 + n,
        }
    }
}

/// Shared stop request and the vCPU kickers it must reach.
#[derive(Default)]
pub struct VmControl {
    reason: Mutex<Option<StopReason>>,
    kickers: Mutex<Vec<Kicker>>,
    /// Called on a stop request, after the kicks (wakes a board waiting in HLT).
    notifiers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for VmControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmControl")
            .field("reason", &self.stop_reason())
            .finish()
    }
}

impl VmControl {
    /// No stop requested, no vCPUs registered.
    pub fn new() -> VmControl {
        VmControl::default()
    }
    /// Register a vCPU's kicker.
    pub fn add_kicker(&self, k: Kicker) {
        self.kickers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(k);
    }
    /// Register a callback run on every stop request (the board's halt wake-up). It must not
    /// call back into this `VmControl`.
    pub fn add_notify(&self, f: Box<dyn Fn() + Send + Sync>) {
        self.notifiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(f);
    }
    /// Ask the VM to stop; the first reason wins.
    pub fn request_stop(&self, reason: StopReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() {
                *r = Some(reason);
            }
        }
        for k in self
            .kickers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            k.kick();
        }
        for f in self
            .notifiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            f();
        }
    }
    /// The stop reason, if one was requested.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}
