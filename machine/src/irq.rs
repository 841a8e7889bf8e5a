//! Interrupt lines and time sources injected into devices, so the same device code runs in
//! production and in tests (a recording line, a manual clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A level-triggered interrupt line from a device to an interrupt controller.
pub trait IrqLine: Send + Sync {
    /// Drive the line high (`true`) or low.
    fn set_level(&self, high: bool);
}

/// A line connected to nothing (no interrupt controller on this board yet).
#[derive(Debug, Default)]
pub struct NoIrq;

impl IrqLine for NoIrq {
    fn set_level(&self, _high: bool) {}
}

/// A line that remembers its level and how many rising edges it saw: for tests.
#[derive(Debug, Default)]
pub struct RecordingIrq {
    level: AtomicBool,
    edges: AtomicU64,
}

impl RecordingIrq {
    /// A new line, low.
    pub fn new() -> Arc<RecordingIrq> {
        Arc::new(RecordingIrq::default())
    }
    /// Current level.
    pub fn level(&self) -> bool {
        self.level.load(Ordering::SeqCst)
    }
    /// Rising edges seen so far.
    pub fn edges(&self) -> u64 {
        self.edges.load(Ordering::SeqCst)
    }
}

impl IrqLine for RecordingIrq {
    fn set_level(&self, high: bool) {
        let was = self.level.swap(high, Ordering::SeqCst);
        if high && !was {
            self.edges.fetch_add(1, Ordering::SeqCst);
        }
    }
}
