//! The PC reset control register at port 0xCF9 (Intel ICH/PIIX "RST_CNT"): writing a value
//! with RST_CPU (bit 2) set resets the machine. vx does not reboot: a reset powers the VM
//! off, so the guest's `reboot` ends vx with status 0.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::control::{StopReason, VmControl};

/// RST_CNT bit 1: system reset (full reset when combined with RST_CPU).
pub const SYS_RST: u8 = 1 << 1;
/// RST_CNT bit 2: reset the CPU now.
pub const RST_CPU: u8 = 1 << 2;

/// The reset control register.
#[derive(Debug)]
pub struct ResetControl {
    value: u8,
    control: Arc<VmControl>,
}

impl ResetControl {
    /// A register that stops the VM through `control`.
    pub fn new(control: Arc<VmControl>) -> ResetControl {
        ResetControl { value: 0, control }
    }
}

impl BusDevice for ResetControl {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = self.value;
        }
    }
    fn write(&mut self, _offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        self.value = v & SYS_RST;
        if v & RST_CPU != 0 {
            self.control.request_stop(StopReason::PowerOff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reset_cf9_only_rst_cpu_resets() {
        let c = Arc::new(VmControl::new());
        let mut r = ResetControl::new(c.clone());
        r.write(0, &[SYS_RST]);
        assert_eq!(c.stop_reason(), None);
        let mut b = [0u8];
        r.read(0, &mut b);
        assert_eq!(b[0], SYS_RST);
        r.write(0, &[SYS_RST | RST_CPU]);
        assert_eq!(c.stop_reason(), Some(StopReason::PowerOff));
    }
}
