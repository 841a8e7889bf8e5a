//! Port-I/O and MMIO buses: the only address decoders in vx. Devices are registered at a
//! base and see offsets; an access nobody claims reads all-ones and writes are dropped (each
//! unclaimed port or page is logged once).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// A device on a bus. It sees offsets from its base, never absolute addresses.
pub trait BusDevice: Send {
    /// Read `data.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Write `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device shared between the bus and whoever else holds it (the board, tests).
/// Locking: each device has its own lock; the bus holds no lock while calling a device, so
/// two devices never nest locks through the bus.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Bus errors (host configuration mistakes, never guest actions).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Two devices claim overlapping ranges.
    #[error("bus range {base:#x}+{len:#x} overlaps an existing device")]
    Overlap {
        /// Base of the rejected range.
        base: u64,
        /// Length of the rejected range.
        len: u64,
    },
}

struct Entry {
    base: u64,
    len: u64,
    dev: SharedDevice,
}

/// An address-decoding bus (used once for ports and once for MMIO).
pub struct Bus {
    name: &'static str,
    entries: Vec<Entry>,
    logged: Mutex<HashSet<u64>>,
    log_granule: u64,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("name", &self.name)
            .field(
                "ranges",
                &self
                    .entries
                    .iter()
                    .map(|e| (e.base, e.len))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Bus {
    /// An empty bus; unclaimed accesses are logged once per `log_granule`-aligned block.
    pub fn new(name: &'static str, log_granule: u64) -> Bus {
        Bus {
            name,
            entries: Vec::new(),
            logged: Mutex::new(HashSet::new()),
            log_granule,
        }
    }

    /// Register `dev` for `base..base+len`.
    pub fn insert(&mut self, base: u64, len: u64, dev: SharedDevice) -> Result<(), BusError> {
        if self
            .entries
            .iter()
            .any(|e| base < e.base + e.len && e.base < base + len)
        {
            return Err(BusError::Overlap { base, len });
        }
        self.entries.push(Entry { base, len, dev });
        self.entries.sort_by_key(|e| e.base);
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<&Entry> {
        let i = self.entries.partition_point(|e| e.base <= addr);
        let e = self.entries.get(i.checked_sub(1)?)?;
        (addr - e.base < e.len).then_some(e)
    }

    fn log_unclaimed(&self, addr: u64, write: bool) {
        let key = addr / self.log_granule;
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.insert(key) {
            let what = if write { "write to" } else { "read from" };
            tracing::debug!(
                "{}: {what} unclaimed address {addr:#x} (logged once)",
                self.name
            );
        }
    }

    /// Read from the device at `addr`, or all-ones if none.
    pub fn read(&self, addr: u64, data: &mut [u8]) {
        match self.find(addr) {
            Some(e) => e
                .dev
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .read(addr - e.base, data),
            None => {
                data.fill(0xff);
                self.log_unclaimed(addr, false);
            }
        }
    }

    /// Write to the device at `addr`, or drop the write if none.
    pub fn write(&self, addr: u64, data: &[u8]) {
        match self.find(addr) {
            Some(e) => e
                .dev
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write(addr - e.base, data),
            None => self.log_unclaimed(addr, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reg(u8, Vec<(u64, u8)>);
    impl BusDevice for Reg {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0.wrapping_add(offset as u8));
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.1.push((offset, data[0]));
        }
    }

    #[test]
    fn test_bus_offsets_and_unclaimed() {
        let mut bus = Bus::new("pio", 1);
        let dev = Arc::new(Mutex::new(Reg(0x10, Vec::new())));
        bus.insert(0x3f8, 8, dev.clone()).expect("free range");
        let mut b = [0u8; 1];
        bus.read(0x3fa, &mut b);
        assert_eq!(b[0], 0x12);
        bus.write(0x3ff, &[7]);
        assert_eq!(dev.lock().unwrap().1, vec![(7, 7)]);
        let mut w = [0u8; 2];
        bus.read(0x400, &mut w);
        assert_eq!(w, [0xff, 0xff]);
        bus.write(0x3f7, &[1]); // dropped
        assert_eq!(dev.lock().unwrap().1.len(), 1);
    }

    #[test]
    fn test_bus_rejects_overlap() {
        let mut bus = Bus::new("pio", 1);
        let a = Arc::new(Mutex::new(Reg(0, Vec::new())));
        bus.insert(0x10, 4, a.clone()).expect("free range");
        assert!(bus.insert(0x13, 2, a.clone()).is_err());
        assert!(bus.insert(0x0c, 4, a.clone()).is_ok());
    }
}
