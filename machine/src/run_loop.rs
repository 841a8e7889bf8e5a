//! The board's run loop (a child module of board.rs): drives one vCPU of any engine, polls
//! the timer devices, runs the INTA cycle (SDM Vol. 3A §6.8.1, maskable interrupts with
//! IF=1), sleeps in HLT until the next device deadline or event, and keeps a timer thread
//! that kicks the running vCPU when a deadline passes.
//!
//! Threads: the vCPU thread (this loop), the timer thread (scoped to `run`), and whoever
//! raises interrupts or stop requests from outside (console input, --timeout). Interrupt
//! sources reach the vCPU through the hub's notify callback (kick + wake-up); stop requests
//! through `VmControl` (kick + wake-up); deadlines through the timer thread (kick).

use std::sync::atomic::Ordering;

use cpu::state::flags as fl;
use cpu::{Kicker, Vcpu, VcpuError, VcpuExit};

use super::Board;
use crate::control::StopReason;

/// Shortest interval between two deadline kicks, and the shortest halted sleep.
const MIN_KICK_INTERVAL_NS: u64 = 50_000;

impl Board {
    /// Run `vcpu` until the machine stops.
    pub fn run(&self, vcpu: &mut dyn Vcpu) -> Result<StopReason, VcpuError> {
        let kicker = vcpu.kicker();
        self.control.add_kicker(kicker.clone());
        {
            let wake = self.wake.clone();
            let k = kicker.clone();
            self.hub.set_notify(Box::new(move || {
                wake.poke();
                k.kick();
            }));
        }
        self.wake.reopen();
        std::thread::scope(|s| {
            let timer = std::thread::Builder::new()
                .name("vx-timer".into())
                .spawn_scoped(s, || self.timer_thread(&kicker))
                .map_err(|e| VcpuError::Engine {
                    engine: "board",
                    message: format!("cannot start the timer thread: {e}"),
                })?;
            let r = self.run_vcpu(vcpu, &kicker);
            self.wake.shut_down();
            let _ = timer.join();
            r
        })
    }

    /// The earliest time any timer device needs a poll.
    fn next_deadline(&self) -> Option<u64> {
        let pit = self
            .pit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_event_ns();
        let rtc = self
            .rtc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_event_ns();
        let pm = self
            .pm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_event_ns();
        let apic = self.hub.next_event_ns();
        [pit, rtc, pm, apic].into_iter().flatten().min()
    }

    /// Bring every timer device up to now (raising their interrupt lines).
    fn poll_devices(&self) {
        self.pit.lock().unwrap_or_else(|p| p.into_inner()).poll();
        self.rtc.lock().unwrap_or_else(|p| p.into_inner()).poll();
        self.pm.lock().unwrap_or_else(|p| p.into_inner()).poll();
        self.hub.poll();
        if self.timer_fired.swap(false, Ordering::AcqRel) {
            // The timer thread waits for this before it looks at the next deadline.
            self.wake.poke();
        }
    }

    /// Deliver a pending interrupt if the vCPU can take one, else ask for the window.
    fn deliver(&self, vcpu: &mut dyn Vcpu, kicker: &Kicker) {
        if !self.hub.has_pending() {
            kicker.request_interrupt_window(false);
            return;
        }
        if vcpu.interrupts_enabled() {
            if let Some(v) = self.hub.acknowledge() {
                vcpu.inject_interrupt(v);
            }
            // Another one behind it waits for the handler to re-enable interrupts.
            kicker.request_interrupt_window(self.hub.has_pending());
        } else {
            kicker.request_interrupt_window(true);
        }
    }

    fn run_vcpu(&self, vcpu: &mut dyn Vcpu, kicker: &Kicker) -> Result<StopReason, VcpuError> {
        loop {
            if let Some(r) = self.control.stop_reason() {
                return Ok(r);
            }
            self.poll_devices();
            self.deliver(vcpu, kicker);
            match vcpu.run(self)? {
                VcpuExit::Kicked | VcpuExit::InterruptWindow | VcpuExit::Debug => {}
                VcpuExit::Shutdown => {
                    self.control.request_stop(StopReason::TripleFault);
                }
                VcpuExit::Halted => {
                    if vcpu.get_state().rflags & fl::IF == 0 {
                        // HLT with interrupts disabled and no NMI source: nothing can ever
                        // wake the processor.
                        self.control.request_stop(StopReason::HaltedForever);
                    } else if let Some(r) = self.wait_halted(vcpu)? {
                        return Ok(r);
                    }
                }
            }
        }
    }

    /// HLT with IF=1: sleep until an interrupt is delivered (Ok(None)) or the machine stops.
    fn wait_halted(&self, vcpu: &mut dyn Vcpu) -> Result<Option<StopReason>, VcpuError> {
        loop {
            // Read the generation first: an event after this point ends the wait at once.
            let seen = self.wake.generation();
            if let Some(r) = self.control.stop_reason() {
                return Ok(Some(r));
            }
            self.poll_devices();
            if self.hub.has_pending()
                && let Some(v) = self.hub.acknowledge()
            {
                vcpu.inject_interrupt(v);
                return Ok(None);
            }
            // Just polled: every deadline should be in the future; if one is not, sleep a
            // little rather than spin.
            let floor = self.clock.now_ns().saturating_add(MIN_KICK_INTERVAL_NS);
            let deadline = self.next_deadline().map(|d| d.max(floor));
            self.wake.wait(seen, deadline, &*self.clock);
        }
    }

    /// The timer thread: sleep until the earliest device deadline (re-evaluated whenever a
    /// device is reprogrammed), kick the vCPU when it passes, then wait for the run loop to
    /// have polled before looking again (so a due deadline is kicked once, not in a loop).
    fn timer_thread(&self, kicker: &Kicker) {
        let mut seen = self.wake.generation();
        let mut last_kick = 0u64;
        loop {
            // A device that keeps reporting a past deadline after being polled must not turn
            // into a stream of kicks (each would end `run` before any guest instruction).
            let deadline = self
                .next_deadline()
                .map(|d| d.max(last_kick.saturating_add(MIN_KICK_INTERVAL_NS)));
            let (g, down) = self.wake.wait(seen, deadline, &*self.clock);
            if down {
                return;
            }
            if g != seen {
                seen = g;
                continue;
            }
            self.timer_fired.store(true, Ordering::Release);
            kicker.kick();
            last_kick = self.clock.now_ns();
            let (g, down) = self.wake.wait(seen, None, &*self.clock);
            if down {
                return;
            }
            seen = g;
        }
    }
}
