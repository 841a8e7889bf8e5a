//! The debug-exit port (QEMU `isa-debug-exit` semantics): a write of value v stops the
//! machine with exit status (v << 1) | 1. Test ROMs report their verdict through it.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::control::{StopReason, VmControl};

/// The debug-exit device.
#[derive(Debug)]
pub struct DebugExit {
    control: Arc<VmControl>,
}

impl DebugExit {
    /// A device that stops the VM through `control`.
    pub fn new(control: Arc<VmControl>) -> DebugExit {
        DebugExit { control }
    }
}

impl BusDevice for DebugExit {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn write(&mut self, _offset: u64, data: &[u8]) {
        let mut b = [0u8; 4];
        let n = data.len().min(4);
        b[..n].copy_from_slice(&data[..n]);
        self.control
            .request_stop(StopReason::DebugExit(u32::from_le_bytes(b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_debug_exit_stops_with_value() {
        let c = Arc::new(VmControl::new());
        let mut d = DebugExit::new(c.clone());
        assert_eq!(c.stop_reason(), None);
        d.write(0, &[0x21]);
        assert_eq!(c.stop_reason(), Some(StopReason::DebugExit(0x21)));
        assert_eq!(StopReason::DebugExit(0x21).exit_status(), 0x43);
    }
}
