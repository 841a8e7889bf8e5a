//! Wake-ups for the board's run loop and its timer thread: a condition variable with a
//! generation count that interrupt sources, timer reprogramming and stop requests bump, so a
//! halted vCPU sleeps (no busy waiting) until its next device deadline or an event.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::clock::Clock;

#[derive(Debug, Default)]
struct State {
    generation: u64,
    shutdown: bool,
}

/// Generation-counted wake-up (see the file header). Its lock is a leaf: `poke` may be called
/// with any device lock held.
#[derive(Debug, Default)]
pub struct Wakeup {
    state: Mutex<State>,
    cv: Condvar,
}

impl Wakeup {
    /// Nothing happened yet.
    pub fn new() -> Wakeup {
        Wakeup::default()
    }

    /// Something happened: wake every waiter.
    pub fn poke(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation += 1;
        self.cv.notify_all();
    }

    /// The current generation (what a waiter has seen).
    pub fn generation(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// Tell waiters to give up for good (the run loop ends).
    pub fn shut_down(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown = true;
        self.cv.notify_all();
    }

    /// Re-arm after `shut_down` (a new run).
    pub fn reopen(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown = false;
    }

    /// Sleep until the generation differs from `seen`, `clock` reaches `deadline_ns` (None:
    /// no deadline), or shutdown. Returns the generation then, and whether shut down.
    pub fn wait(&self, seen: u64, deadline_ns: Option<u64>, clock: &dyn Clock) -> (u64, bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.shutdown || s.generation != seen {
                return (s.generation, s.shutdown);
            }
            match deadline_ns {
                None => s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = clock.now_ns();
                    if now >= d {
                        return (s.generation, false);
                    }
                    s = self
                        .cv
                        .wait_timeout(s, Duration::from_nanos(d - now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::HostClock;
    use std::sync::Arc;

    #[test]
    fn test_wakeup_deadline_and_poke() {
        let w = Arc::new(Wakeup::new());
        let clock = HostClock::new();
        let g = w.generation();
        // Deadline in the past: returns at once, same generation.
        assert_eq!(w.wait(g, Some(0), &clock), (g, false));
        let d = clock.now_ns() + 2_000_000;
        let (g2, _) = w.wait(g, Some(d), &clock);
        assert_eq!(g2, g);
        assert!(clock.now_ns() >= d, "slept until the deadline");
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.poke());
        let (g3, down) = w.wait(g, None, &clock);
        assert!(g3 > g);
        assert!(!down);
        t.join().expect("poker");
        w.shut_down();
        assert!(w.wait(g3, None, &clock).1);
    }
}
