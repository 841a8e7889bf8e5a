//! PCI host bridge with configuration mechanism #1 (PCI Local Bus Specification 3.0
//! §3.2.2.3.2): CONFIG_ADDRESS at port 0xCF8 and CONFIG_DATA at 0xCFC-0xCFF, and bus 0
//! holding only the host bridge itself at 00:00.0 (header type 0, class 06/00/00, §6.1).
//!
//! The bridge identifies as vendor 0x1B36, device 0x0008: the ID registered for a generic
//! virtual PCI Express host bridge (no chipset registers behind it). A real chipset's ID
//! (the Intel 440FX's 8086:1237, say) would make guests apply that chipset's quirks and poke
//! registers (PAM, SMRAM, DRAM rows) that vx does not have; a generic virtual bridge gets no
//! special treatment, and `lspci` still names it.
//!
//! Board wiring: the state is one `Arc<Mutex<PciHost>>` shared by two adapters, because
//! port 0xCF9 in the middle of the mechanism-#1 range is the reset control register
//! (`reset_cf9.rs`):
//! - [`PciConfigAddress`] at `layout::PCI_CONFIG_PORT` (0xCF8), length 1. The bus hands it
//!   whole accesses that start at 0xCF8, so a dword `out 0xcf8, eax` reaches it with four
//!   bytes; only dword accesses latch or read CONFIG_ADDRESS (smaller ones are ordinary I/O
//!   cycles to a port nobody decodes: reads all-ones, writes dropped).
//! - [`PciConfigData`] at `layout::PCI_CONFIG_PORT + 4` (0xCFC), length 4
//!   ([`CONFIG_DATA_LEN`]): byte, word or dword accesses at offset k reach register
//!   (CONFIG_ADDRESS & 0xFC) + k.
//!
//! Functions plug in through the [`PciFunction`] trait (a dword read, a dword write with
//! byte enables, as on the bus), so virtio-pci functions can be added to bus 0 later with
//! [`PciHost::add_function`]; [`ConfigSpace`] is a reusable 256-byte header with per-bit
//! writable and write-1-to-clear masks. Absent functions read all-ones (master abort).
//! Not modelled: buses other than 0 (no bridges), extended (PCIe) configuration space,
//! type 2 configuration cycles.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::bus::BusDevice;

/// CONFIG_ADDRESS bit 31: configuration cycles enabled.
pub const CONFIG_ENABLE: u32 = 1 << 31;
/// CONFIG_ADDRESS bits that can be written: enable, bus, device, function, register (bits
/// 30:24 are reserved and 1:0 are hardwired to 0).
pub const CONFIG_ADDRESS_MASK: u32 = CONFIG_ENABLE | 0x00ff_fffc;
/// Ports of the CONFIG_DATA window.
pub const CONFIG_DATA_LEN: u64 = 4;

/// Vendor ID of the host bridge (see the file header for why).
pub const HOST_BRIDGE_VENDOR: u16 = 0x1b36;
/// Device ID of the host bridge.
pub const HOST_BRIDGE_DEVICE: u16 = 0x0008;

/// Config register: vendor ID (low 16 bits) and device ID.
pub const REG_ID: u8 = 0x00;
/// Config register: command (low 16 bits) and status.
pub const REG_COMMAND: u8 = 0x04;
/// Config register: revision ID, programming interface, subclass, class.
pub const REG_CLASS: u8 = 0x08;
/// Config register: cache line size, latency timer, header type, BIST.
pub const REG_HEADER: u8 = 0x0c;
/// Config register: subsystem vendor ID and subsystem ID.
pub const REG_SUBSYSTEM: u8 = 0x2c;
/// Config register: interrupt line, interrupt pin, min grant, max latency.
pub const REG_INTERRUPT: u8 = 0x3c;

/// Command bit 0: I/O space enable.
pub const CMD_IO: u16 = 1 << 0;
/// Command bit 1: memory space enable.
pub const CMD_MEMORY: u16 = 1 << 1;
/// Command bit 2: bus master enable.
pub const CMD_BUS_MASTER: u16 = 1 << 2;

/// A PCI function's configuration space as seen from the configuration mechanism.
pub trait PciFunction: Send {
    /// Read the dword at register `reg` (a multiple of 4 below 256).
    fn config_read(&mut self, reg: u8) -> u32;
    /// Write the bytes of `value` selected by `byte_mask` (0xFF in each enabled byte lane,
    /// as the C/BE# lines of a configuration write) to the dword at register `reg`.
    fn config_write(&mut self, reg: u8, value: u32, byte_mask: u32);
}

/// A 256-byte type-0 configuration space with per-bit write masks: the common part of
/// every function's configuration registers.
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: [u8; 256],
    /// Bits the guest may write.
    writable: [u8; 256],
    /// Bits the guest clears by writing 1 (status registers).
    write_one_clear: [u8; 256],
}

impl std::fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSpace")
            .field("id", &self.dword(REG_ID))
            .field("class", &self.dword(REG_CLASS))
            .finish()
    }
}

impl ConfigSpace {
    /// A header with the given identity, everything else zero and read-only.
    pub fn new(vendor: u16, device: u16, class: u32, header_type: u8) -> ConfigSpace {
        let mut c = ConfigSpace {
            bytes: [0; 256],
            writable: [0; 256],
            write_one_clear: [0; 256],
        };
        c.set_u16(0x00, vendor);
        c.set_u16(0x02, device);
        // Class code in bits 31:8, revision ID in 7:0.
        c.set_u32(REG_CLASS, class << 8);
        c.bytes[0x0e] = header_type;
        c
    }

    /// Set a 16-bit field at byte `off` (firmware view: ignores write masks).
    pub fn set_u16(&mut self, off: u8, v: u16) {
        let o = usize::from(off);
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            if let Some(slot) = self.bytes.get_mut(o + i) {
                *slot = *b;
            }
        }
    }

    /// Set a 32-bit field at byte `off` (firmware view: ignores write masks).
    pub fn set_u32(&mut self, off: u8, v: u32) {
        let o = usize::from(off);
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            if let Some(slot) = self.bytes.get_mut(o + i) {
                *slot = *b;
            }
        }
    }

    /// Mark the bits of `mask` in the byte at `off` guest-writable.
    pub fn set_writable(&mut self, off: u8, mask: u8) {
        self.writable[usize::from(off)] = mask;
    }

    /// Mark the bits of `mask` in the byte at `off` write-1-to-clear.
    pub fn set_write_one_clear(&mut self, off: u8, mask: u8) {
        self.write_one_clear[usize::from(off)] = mask;
    }

    /// The dword at register `reg` (rounded down to a multiple of 4).
    pub fn dword(&self, reg: u8) -> u32 {
        let o = usize::from(reg & 0xfc);
        u32::from_le_bytes([
            self.bytes[o],
            self.bytes[o + 1],
            self.bytes[o + 2],
            self.bytes[o + 3],
        ])
    }

    /// A guest write of the byte lanes of `byte_mask` of `value` to register `reg`.
    pub fn guest_write(&mut self, reg: u8, value: u32, byte_mask: u32) {
        let o = usize::from(reg & 0xfc);
        let v = value.to_le_bytes();
        let m = byte_mask.to_le_bytes();
        for i in 0..4 {
            let (b, w, c) = (
                &mut self.bytes[o + i],
                self.writable[o + i],
                self.write_one_clear[o + i],
            );
            let lane = m[i];
            *b = (*b & !(w & lane)) | (v[i] & w & lane);
            *b &= !(v[i] & c & lane);
        }
    }
}

/// The host bridge at 00:00.0.
#[derive(Debug, Clone)]
pub struct HostBridge {
    config: ConfigSpace,
}

impl HostBridge {
    /// A host bridge (class 06/00/00) with the IDs in [`HOST_BRIDGE_VENDOR`] and
    /// [`HOST_BRIDGE_DEVICE`].
    pub fn new() -> HostBridge {
        let mut config = ConfigSpace::new(HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE, 0x06_00_00, 0);
        // Writable: I/O, memory and bus-master enables (stored, no effect: the bridge
        // always forwards), cache line size, latency timer and the interrupt line
        // scratch byte; everything else is read-only.
        config.set_writable(REG_COMMAND, (CMD_IO | CMD_MEMORY | CMD_BUS_MASTER) as u8);
        config.set_writable(REG_HEADER, 0xff);
        config.set_writable(REG_HEADER + 1, 0xff);
        config.set_writable(REG_INTERRUPT, 0xff);
        HostBridge { config }
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        HostBridge::new()
    }
}

impl PciFunction for HostBridge {
    fn config_read(&mut self, reg: u8) -> u32 {
        self.config.dword(reg)
    }
    fn config_write(&mut self, reg: u8, value: u32, byte_mask: u32) {
        self.config.guest_write(reg, value, byte_mask);
    }
}

/// A PCI bus/device/function address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciBdf {
    /// Bus number.
    pub bus: u8,
    /// Device number (0-31).
    pub device: u8,
    /// Function number (0-7).
    pub function: u8,
}

/// Errors in wiring functions onto the bus (host configuration mistakes).
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// The address is already used.
    #[error("PCI function {0:?} already exists")]
    Occupied(PciBdf),
    /// The device or function number is out of range.
    #[error("PCI address {0:?} is out of range (device < 32, function < 8)")]
    BadAddress(PciBdf),
}

/// The configuration mechanism and the functions behind it.
pub struct PciHost {
    address: u32,
    functions: BTreeMap<PciBdf, Box<dyn PciFunction>>,
}

impl std::fmt::Debug for PciHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PciHost")
            .field("address", &self.address)
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PciHost {
    /// Bus 0 with the host bridge at 00:00.0.
    pub fn new() -> PciHost {
        let mut functions: BTreeMap<PciBdf, Box<dyn PciFunction>> = BTreeMap::new();
        functions.insert(
            PciBdf {
                bus: 0,
                device: 0,
                function: 0,
            },
            Box::new(HostBridge::new()),
        );
        PciHost {
            address: 0,
            functions,
        }
    }

    /// The same, wrapped for sharing between [`PciConfigAddress`] and [`PciConfigData`].
    pub fn new_shared() -> Arc<Mutex<PciHost>> {
        Arc::new(Mutex::new(PciHost::new()))
    }

    /// Put `f` at `bdf`.
    pub fn add_function(&mut self, bdf: PciBdf, f: Box<dyn PciFunction>) -> Result<(), PciError> {
        if bdf.device >= 32 || bdf.function >= 8 {
            return Err(PciError::BadAddress(bdf));
        }
        if self.functions.contains_key(&bdf) {
            return Err(PciError::Occupied(bdf));
        }
        self.functions.insert(bdf, f);
        Ok(())
    }

    /// CONFIG_ADDRESS.
    pub fn address(&self) -> u32 {
        self.address
    }

    /// Write CONFIG_ADDRESS (a dword write to 0xCF8).
    pub fn set_address(&mut self, v: u32) {
        self.address = v & CONFIG_ADDRESS_MASK;
    }

    /// The function CONFIG_ADDRESS selects and its register, if cycles are enabled.
    fn target(&mut self) -> Option<(&mut Box<dyn PciFunction>, u8)> {
        let a = self.address;
        if a & CONFIG_ENABLE == 0 {
            return None;
        }
        let bdf = PciBdf {
            bus: (a >> 16) as u8,
            device: ((a >> 11) & 0x1f) as u8,
            function: ((a >> 8) & 0x7) as u8,
        };
        let reg = (a & 0xfc) as u8;
        self.functions.get_mut(&bdf).map(|f| (f, reg))
    }

    /// Read `data.len()` bytes of CONFIG_DATA at port offset `offset` (0-3).
    pub fn read_data(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        let Some((f, reg)) = self.target() else {
            return;
        };
        let bytes = f.config_read(reg).to_le_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            // Lanes past the dword (a misaligned access) stay all-ones.
            if let Some(b) = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| bytes.get(o))
            {
                *d = *b;
            }
        }
    }

    /// Write `data` to CONFIG_DATA at port offset `offset` (0-3).
    pub fn write_data(&mut self, offset: u64, data: &[u8]) {
        let Some((f, reg)) = self.target() else {
            return;
        };
        let mut value = 0u32;
        let mut mask = 0u32;
        for (i, &b) in data.iter().enumerate() {
            let lane = offset.wrapping_add(i as u64);
            if lane < 4 {
                value |= u32::from(b) << (8 * lane);
                mask |= 0xff << (8 * lane);
            }
        }
        if mask != 0 {
            f.config_write(reg, value, mask);
        }
    }
}

impl Default for PciHost {
    fn default() -> Self {
        PciHost::new()
    }
}

/// Bus adapter for CONFIG_ADDRESS: map at 0xCF8 with length 1 (see the file header).
#[derive(Debug, Clone)]
pub struct PciConfigAddress(pub Arc<Mutex<PciHost>>);

/// Bus adapter for CONFIG_DATA: map at 0xCFC with length [`CONFIG_DATA_LEN`].
#[derive(Debug, Clone)]
pub struct PciConfigData(pub Arc<Mutex<PciHost>>);

impl BusDevice for PciConfigAddress {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset == 0 && data.len() == 4 {
            let a = self.0.lock().unwrap_or_else(|p| p.into_inner()).address();
            data.copy_from_slice(&a.to_le_bytes());
        } else {
            data.fill(0xff);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0
            && let Ok(b) = <[u8; 4]>::try_from(data)
        {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_address(u32::from_le_bytes(b));
        }
    }
}

impl BusDevice for PciConfigData {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read_data(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_data(offset, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Bus;

    fn addr(bus: u8, dev: u8, func: u8, reg: u8) -> u32 {
        CONFIG_ENABLE
            | (u32::from(bus) << 16)
            | (u32::from(dev) << 11)
            | (u32::from(func) << 8)
            | u32::from(reg)
    }

    /// A port bus wired as the file header says, with a stand-in at 0xCF9.
    fn board() -> (Bus, Arc<Mutex<PciHost>>) {
        struct Cf9;
        impl BusDevice for Cf9 {
            fn read(&mut self, _o: u64, d: &mut [u8]) {
                d.fill(0x12);
            }
            fn write(&mut self, _o: u64, _d: &[u8]) {}
        }
        let host = PciHost::new_shared();
        let mut bus = Bus::new("pio", 1);
        bus.insert(
            0xcf8,
            1,
            Arc::new(Mutex::new(PciConfigAddress(host.clone()))),
        )
        .expect("free");
        bus.insert(0xcf9, 1, Arc::new(Mutex::new(Cf9)))
            .expect("free");
        bus.insert(
            0xcfc,
            CONFIG_DATA_LEN,
            Arc::new(Mutex::new(PciConfigData(host.clone()))),
        )
        .expect("free");
        (bus, host)
    }

    fn outl(bus: &Bus, port: u64, v: u32) {
        bus.write(port, &v.to_le_bytes());
    }
    fn inl(bus: &Bus, port: u64) -> u32 {
        let mut b = [0u8; 4];
        bus.read(port, &mut b);
        u32::from_le_bytes(b)
    }
    fn inw(bus: &Bus, port: u64) -> u16 {
        let mut b = [0u8; 2];
        bus.read(port, &mut b);
        u16::from_le_bytes(b)
    }
    fn inb(bus: &Bus, port: u64) -> u8 {
        let mut b = [0u8; 1];
        bus.read(port, &mut b);
        b[0]
    }

    #[test]
    fn test_pci_host_address_register_dword_only() {
        let (bus, _) = board();
        outl(&bus, 0xcf8, 0xffff_ffff);
        assert_eq!(
            inl(&bus, 0xcf8),
            CONFIG_ADDRESS_MASK,
            "reserved bits read 0"
        );
        outl(&bus, 0xcf8, CONFIG_ENABLE);
        assert_eq!(inl(&bus, 0xcf8), CONFIG_ENABLE);
        // A byte write to 0xCFB is not a CONFIG_ADDRESS access.
        bus.write(0xcfb, &[0x01]);
        assert_eq!(inl(&bus, 0xcf8), CONFIG_ENABLE);
        // A byte read of 0xCF8 is not one either; 0xCF9 still belongs to reset.
        assert_eq!(inb(&bus, 0xcf8), 0xff);
        assert_eq!(inb(&bus, 0xcf9), 0x12);
    }

    #[test]
    fn test_pci_host_bridge_identity() {
        let (bus, _) = board();
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_ID));
        assert_eq!(
            inl(&bus, 0xcfc),
            u32::from(HOST_BRIDGE_VENDOR) | (u32::from(HOST_BRIDGE_DEVICE) << 16)
        );
        assert_eq!(inw(&bus, 0xcfe), HOST_BRIDGE_DEVICE);
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_CLASS));
        assert_eq!(inl(&bus, 0xcfc) >> 8, 0x06_00_00);
        assert_eq!(inb(&bus, 0xcff), 0x06, "base class byte");
        assert_eq!(inb(&bus, 0xcfe), 0x00, "subclass byte");
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_HEADER));
        assert_eq!(inb(&bus, 0xcfe), 0x00, "header type 0, single function");
    }

    #[test]
    fn test_pci_host_absent_functions_read_all_ones() {
        let (bus, _) = board();
        for (b, d, f) in [(0, 1, 0), (0, 0, 1), (0, 31, 7), (1, 0, 0), (255, 0, 0)] {
            outl(&bus, 0xcf8, addr(b, d, f, 0));
            assert_eq!(inl(&bus, 0xcfc), 0xffff_ffff);
            assert_eq!(inw(&bus, 0xcfe), 0xffff);
        }
        // Writes to absent functions are dropped without harm.
        outl(&bus, 0xcf8, addr(0, 3, 0, REG_COMMAND));
        outl(&bus, 0xcfc, 0x7);
        assert_eq!(inl(&bus, 0xcfc), 0xffff_ffff);
    }

    #[test]
    fn test_pci_host_disabled_cycles_read_all_ones() {
        let (bus, _) = board();
        outl(&bus, 0xcf8, addr(0, 0, 0, 0) & !CONFIG_ENABLE);
        assert_eq!(inl(&bus, 0xcfc), 0xffff_ffff);
        outl(&bus, 0xcfc, 0); // dropped
        outl(&bus, 0xcf8, addr(0, 0, 0, 0));
        assert_eq!(inw(&bus, 0xcfc), HOST_BRIDGE_VENDOR);
    }

    #[test]
    fn test_pci_host_bridge_read_only_and_writable_registers() {
        let (bus, _) = board();
        // IDs and class are read-only.
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_ID));
        outl(&bus, 0xcfc, 0);
        assert_eq!(inw(&bus, 0xcfc), HOST_BRIDGE_VENDOR);
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_CLASS));
        outl(&bus, 0xcfc, 0);
        assert_eq!(inl(&bus, 0xcfc) >> 8, 0x06_00_00);
        // Command: only I/O, memory and bus master stick; status stays 0.
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_COMMAND));
        outl(&bus, 0xcfc, 0xffff_ffff);
        assert_eq!(inl(&bus, 0xcfc), 0x0000_0007);
        // A byte write to the latency timer (register 0x0D) through port 0xCFD.
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_HEADER));
        bus.write(0xcfd, &[0x40]);
        assert_eq!(inl(&bus, 0xcfc), 0x0000_4000);
        // Interrupt line is writable scratch; the pin stays 0.
        outl(&bus, 0xcf8, addr(0, 0, 0, REG_INTERRUPT));
        outl(&bus, 0xcfc, 0xffff_ffff);
        assert_eq!(inl(&bus, 0xcfc), 0x0000_00ff);
    }

    #[test]
    fn test_pci_host_config_space_write_one_clear() {
        let mut c = ConfigSpace::new(1, 2, 0xff_00_00, 0);
        c.set_u16(0x06, 0xf900);
        c.set_write_one_clear(0x07, 0xf9);
        // Writing 0 clears nothing, writing 1s clears only the W1C bits of enabled lanes.
        c.guest_write(0x04, 0x0000_0000, 0xffff_ffff);
        assert_eq!(c.dword(0x04) >> 16, 0xf900);
        c.guest_write(0x04, 0x8000_0000, 0x0000_ffff);
        assert_eq!(c.dword(0x04) >> 16, 0xf900, "lane not enabled");
        c.guest_write(0x04, 0x8000_0000, 0xffff_0000);
        assert_eq!(c.dword(0x04) >> 16, 0x7900);
    }

    #[test]
    fn test_pci_host_add_function() {
        struct Fake(u32);
        impl PciFunction for Fake {
            fn config_read(&mut self, reg: u8) -> u32 {
                if reg == 0 { 0x1000_1af4 } else { self.0 }
            }
            fn config_write(&mut self, _reg: u8, value: u32, mask: u32) {
                self.0 = (self.0 & !mask) | (value & mask);
            }
        }
        let (bus, host) = board();
        let bdf = PciBdf {
            bus: 0,
            device: 3,
            function: 0,
        };
        {
            let mut h = host.lock().unwrap();
            h.add_function(bdf, Box::new(Fake(0))).expect("free slot");
            assert!(matches!(
                h.add_function(bdf, Box::new(Fake(0))),
                Err(PciError::Occupied(_))
            ));
            assert!(matches!(
                h.add_function(
                    PciBdf {
                        bus: 0,
                        device: 32,
                        function: 0
                    },
                    Box::new(Fake(0))
                ),
                Err(PciError::BadAddress(_))
            ));
        }
        outl(&bus, 0xcf8, addr(0, 3, 0, 0));
        assert_eq!(inl(&bus, 0xcfc), 0x1000_1af4);
        // A word write at 0xCFE reaches the upper half of the dword with byte enables.
        outl(&bus, 0xcf8, addr(0, 3, 0, 0x10));
        bus.write(0xcfe, &0xabcdu16.to_le_bytes());
        assert_eq!(inl(&bus, 0xcfc), 0xabcd_0000);
    }
}
