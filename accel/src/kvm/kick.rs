//! Getting a vCPU thread out of KVM_RUN (KVM API doc §5 `immediate_exit`, §4.10 KVM_RUN
//! returning EINTR; POSIX pthread_kill): how a kick reaches a vCPU that is executing guest
//! code.
//!
//! A kick sets the `cpu::Kicker` flag. The run loop checks that flag before every KVM_RUN, so
//! a vCPU between exits notices it at once. A vCPU inside KVM_RUN (a guest spinning without
//! exits) is reached by a signal: a no-op handler for a real-time signal is installed without
//! SA_RESTART, so `pthread_kill` on the vCPU thread makes KVM_RUN return EINTR. Before
//! signalling, the kicker sets `kvm_run.immediate_exit`, which closes the race where the
//! signal lands just before the thread enters KVM_RUN (KVM then returns EINTR at once).
//!
//! `cpu::Kicker` is a bare flag with no hook, so the board's kicks (timeout, stop requests)
//! reach a vCPU inside the guest through a small watcher thread per vCPU that polls the flag
//! every `WATCH_PERIOD` while the vCPU is inside `run` and sends the signal; it sleeps on a
//! condition variable otherwise. `KvmKicker` (from `KvmVcpu::kick_handle`) signals directly,
//! without that latency. When `cpu::Kicker` gains a wake-up hook, the watcher can go.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use cpu::Kicker;

use super::KvmError;

/// How often the watcher looks at the kick flag while the vCPU is inside `run`.
pub(crate) const WATCH_PERIOD: Duration = Duration::from_millis(2);

/// The real-time signal used to interrupt KVM_RUN.
pub(crate) fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

extern "C" fn on_kick_signal(_: libc::c_int) {}

/// Install the no-op handler for `kick_signal` once per process.
pub(crate) fn install_handler() -> Result<(), KvmError> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = INSTALLED.get_or_init(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we set a handler
        // that does nothing (async-signal-safe) and pass valid pointers to sigaction.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick_signal as extern "C" fn(libc::c_int) as usize;
            // No SA_RESTART: KVM_RUN must return EINTR rather than be restarted.
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
        }
        Ok(())
    });
    r.map_err(|e| KvmError::Signal(std::io::Error::from_raw_os_error(e)))
}

/// Make sure the calling thread can receive the kick signal.
pub(crate) fn unblock_in_this_thread() {
    // SAFETY: sigset operations on a local set; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, kick_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// The vCPU thread currently inside `run`, and where its immediate_exit byte is.
#[derive(Debug)]
struct Target {
    thread: libc::pthread_t,
}

/// State shared by the vCPU, its watcher thread and every `KvmKicker`.
#[derive(Debug)]
pub(crate) struct KickShared {
    pub kicker: Kicker,
    /// Address of `kvm_run.immediate_exit`; valid while `alive`.
    immediate_exit: *const AtomicU8,
    /// Some while a thread is inside `KvmVcpu::run`. Lock order: this lock only, never held
    /// while calling into KVM.
    target: Mutex<Option<Target>>,
    /// The vCPU still exists (its kvm_run mapping is valid).
    alive: AtomicBool,
    /// An interrupt waits for a window the host may never report: interrupt KVM_RUN every
    /// WATCH_PERIOD so the run loop can check whether the guest is ready.
    poll: AtomicBool,
    wake: Condvar,
}

// SAFETY: `immediate_exit` points into the vCPU's kvm_run mapping and is only dereferenced
// (as an atomic byte) under `target`'s lock while `alive` is true; `KvmVcpu::drop` clears
// `alive` under that lock before the mapping goes away.
unsafe impl Send for KickShared {}
// SAFETY: see above; every other field is Sync.
unsafe impl Sync for KickShared {}

impl KickShared {
    /// # Safety
    /// `immediate_exit` must point at the vCPU's `kvm_run.immediate_exit` byte and stay valid
    /// until `shutdown` is called.
    pub(crate) unsafe fn new(kicker: Kicker, immediate_exit: *mut u8) -> Arc<KickShared> {
        Arc::new(KickShared {
            kicker,
            immediate_exit: immediate_exit as *const AtomicU8,
            target: Mutex::new(None),
            alive: AtomicBool::new(true),
            poll: AtomicBool::new(false),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Target>> {
        self.target.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read or write `immediate_exit` from the vCPU thread.
    pub(crate) fn set_immediate_exit(&self, v: u8) {
        // SAFETY: called by the vCPU's owner, so the mapping is alive.
        unsafe { (*self.immediate_exit).store(v, Ordering::SeqCst) }
    }

    /// Force periodic exits while an interrupt is held (see `poll`).
    pub(crate) fn set_poll(&self, on: bool) {
        self.poll.store(on, Ordering::Release);
    }

    /// The calling thread enters `run`; the returned guard leaves it.
    pub(crate) fn enter(self: &Arc<Self>) -> RunGuard {
        unblock_in_this_thread();
        // SAFETY: pthread_self has no preconditions.
        let thread = unsafe { libc::pthread_self() };
        *self.lock() = Some(Target { thread });
        self.wake.notify_all();
        RunGuard {
            shared: self.clone(),
        }
    }

    /// Interrupt the vCPU if it is inside `run`: set immediate_exit, then signal its thread.
    pub(crate) fn interrupt(&self) {
        let t = self.lock();
        if let Some(target) = t.as_ref()
            && self.alive.load(Ordering::Acquire)
        {
            // SAFETY: `alive` under the lock means the kvm_run mapping is still valid.
            unsafe { (*self.immediate_exit).store(1, Ordering::SeqCst) };
            // SAFETY: the target thread is inside `run` (it clears `target` under this
            // lock before leaving), so the pthread_t names a live thread.
            unsafe { libc::pthread_kill(target.thread, kick_signal()) };
        }
    }

    /// The vCPU is going away: stop the watcher, forget the mapping.
    pub(crate) fn shutdown(&self) {
        let mut t = self.lock();
        self.alive.store(false, Ordering::Release);
        *t = None;
        self.wake.notify_all();
    }

    /// The watcher: while the vCPU is inside `run`, poll the kick flag and interrupt it.
    pub(crate) fn spawn_watcher(self: &Arc<Self>) -> Result<JoinHandle<()>, KvmError> {
        let shared = self.clone();
        std::thread::Builder::new()
            .name("vx-kvm-kick".into())
            .spawn(move || {
                loop {
                    {
                        let mut t = shared.lock();
                        while t.is_none() && shared.alive.load(Ordering::Acquire) {
                            t = shared.wake.wait(t).unwrap_or_else(|p| p.into_inner());
                        }
                        if !shared.alive.load(Ordering::Acquire) {
                            return;
                        }
                    }
                    std::thread::sleep(WATCH_PERIOD);
                    if shared.kicker.is_kicked() || shared.poll.load(Ordering::Acquire) {
                        shared.interrupt();
                    }
                }
            })
            .map_err(KvmError::Thread)
    }
}

/// Marks the vCPU thread as outside `run` when dropped.
#[derive(Debug)]
pub(crate) struct RunGuard {
    shared: Arc<KickShared>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        *self.shared.lock() = None;
    }
}

/// A kicker that reaches a vCPU inside the guest at once (no polling): sets the kick flag,
/// then interrupts KVM_RUN with immediate_exit and a signal.
#[derive(Clone, Debug)]
pub struct KvmKicker {
    shared: Arc<KickShared>,
}

impl KvmKicker {
    pub(crate) fn new(shared: Arc<KickShared>) -> KvmKicker {
        KvmKicker { shared }
    }

    /// Make the vCPU's `run` return `VcpuExit::Kicked` as soon as possible.
    pub fn kick(&self) {
        self.shared.kicker.kick();
        self.shared.interrupt();
    }
}
