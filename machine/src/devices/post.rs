//! The POST diagnostic port 0x80: firmware writes progress codes here. vx keeps the last
//! code and shows each write when tracing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::bus::BusDevice;

/// The POST code port.
#[derive(Debug, Default)]
pub struct PostPort {
    last: Arc<AtomicU8>,
    trace: bool,
}

impl PostPort {
    /// A port that prints each code to stderr when `trace` is set.
    pub fn new(trace: bool) -> PostPort {
        PostPort {
            last: Arc::new(AtomicU8::new(0)),
            trace,
        }
    }
    /// A handle to the last code written.
    pub fn last_code(&self) -> Arc<AtomicU8> {
        self.last.clone()
    }
}

impl BusDevice for PostPort {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(self.last.load(Ordering::Relaxed));
    }
    fn write(&mut self, _offset: u64, data: &[u8]) {
        let v = data.first().copied().unwrap_or(0);
        self.last.store(v, Ordering::Relaxed);
        if self.trace {
            eprintln!("[post] {v:#04x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_post_port_keeps_last_code() {
        let mut p = PostPort::new(false);
        let h = p.last_code();
        p.write(0, &[0x42]);
        assert_eq!(h.load(Ordering::Relaxed), 0x42);
        let mut b = [0u8];
        p.read(0, &mut b);
        assert_eq!(b[0], 0x42);
    }
}
