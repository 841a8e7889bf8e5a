//! Termination signals (SIGTERM, SIGINT, SIGHUP) become a stop request, so that vx ends the
//! way it does on --timeout — saying where the guest was, restoring the terminal, with status
//! 128+n — instead of dying mid-run. POSIX sigwait(3) on a dedicated thread.

use std::sync::Arc;

use machine::{StopReason, VmControl};

/// Block the termination signals in this thread (and so in every thread it spawns later) and
/// start the thread that turns them into `StopReason::Signal`. Call before spawning threads.
pub fn forward_to(control: Arc<VmControl>) {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame; the calls only write to it and
    // to this thread's signal mask.
    let ok = unsafe {
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
    };
    if !ok {
        tracing::warn!("cannot block termination signals; they will end vx abruptly");
        return;
    }
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` was initialised above and moved into this thread; sigwait writes the
        // signal number into `sig`.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            control.request_stop(StopReason::Signal(sig));
        }
    });
}
