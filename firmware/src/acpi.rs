//! The ACPI tables vx gives a directly booted OS (ACPI 6.5 ch. 5.2 "ACPI System Description
//! Tables"): RSDP (§5.2.5), RSDT (§5.2.7), XSDT (§5.2.8), FADT (§5.2.9, revision 6 layout),
//! FACS (§5.2.10), DSDT (§5.2.11.1) and MADT (§5.2.12), built as one blob for a given
//! guest-physical base by a pure function, so the layout and checksums are unit-tested.
//!
//! Written with our own code rather than the `acpi_tables` crate: five small fixed-layout
//! tables and one AML `Name` are a few hundred lines, and keeping them here avoids a
//! dependency whose table set and API we would have to track.
//!
//! Blob layout (offsets from the base; the RSDP first so an OS scanning the BIOS area on
//! 16-byte boundaries finds it at the base):
//!
//! | offset | table |
//! |---|---|
//! | 0x000 | RSDP (36 bytes, revision 2) |
//! | 0x040 | FACS (64 bytes, 64-byte aligned) |
//! | 0x080 | DSDT, then FADT, MADT, RSDT, XSDT, each 16-byte aligned |
//!
//! The FADT points at the fixed hardware of `machine::devices::acpi_pm` (at
//! `layout::ACPI_PM_PORT`), the SCI at `layout::irq::SCI`, the reset register at 0xCF9
//! (`reset_cf9.rs`, value 0x06 = SYS_RST | RST_CPU), and declares an 8042 and legacy
//! devices so an OS probes the i8042, PIC, PIT and RTC without DSDT device objects. The DSDT
//! holds only `\_S5` (S5's SLP_TYP = `acpi_pm::SLP_TYP_S5`); there is no PCI root bridge
//! object, so an OS falls back to probing PCI through configuration mechanism #1.

mod aml;

use machine::devices::acpi_pm;
use machine::devices::cmos_rtc::RTC_CENTURY;
use machine::devices::reset_cf9::{RST_CPU, SYS_RST};
use machine::layout;

/// OEM ID in every table header and the RSDP.
pub const OEM_ID: &[u8; 6] = b"VX    ";
/// Creator ID in every table header.
pub const CREATOR_ID: &[u8; 4] = b"VX  ";
/// OEM and creator revision.
pub const VX_REVISION: u32 = 1;

/// Size of a system description table header.
pub const HEADER_LEN: usize = 36;
/// Size of the revision-2 RSDP.
pub const RSDP_LEN: usize = 36;
/// Size of the FACS.
pub const FACS_LEN: usize = 64;
/// Size of a revision-6 FADT.
pub const FADT_LEN: usize = 276;

/// FADT revision (major version) of the layout built here.
pub const FADT_REVISION: u8 = 6;
/// FADT minor version.
pub const FADT_MINOR_REVISION: u8 = 5;
/// MADT revision.
pub const MADT_REVISION: u8 = 5;
/// DSDT revision: 2 means AML integers are 64-bit.
pub const DSDT_REVISION: u8 = 2;

/// FADT Flags bit 0: WBINVD works.
pub const FADT_WBINVD: u32 = 1 << 0;
/// FADT Flags bit 2: C1 (HLT) works on every processor.
pub const FADT_PROC_C1: u32 = 1 << 2;
/// FADT Flags bit 4: the power button is a control-method device (clear: fixed feature).
pub const FADT_PWR_BUTTON: u32 = 1 << 4;
/// FADT Flags bit 5: the sleep button is a control-method device or absent (set: none).
pub const FADT_SLP_BUTTON: u32 = 1 << 5;
/// FADT Flags bit 8: the PM timer is 32 bits.
pub const FADT_TMR_VAL_EXT: u32 = 1 << 8;
/// FADT Flags bit 10: RESET_REG is supported.
pub const FADT_RESET_REG_SUP: u32 = 1 << 10;

/// IAPC_BOOT_ARCH bit 0: legacy (ISA) devices present.
pub const BOOT_ARCH_LEGACY_DEVICES: u16 = 1 << 0;
/// IAPC_BOOT_ARCH bit 1: an 8042 or equivalent is present.
pub const BOOT_ARCH_8042: u16 = 1 << 1;

/// Generic Address Structure address space: system I/O.
pub const GAS_SYSTEM_IO: u8 = 1;
/// GAS access size: byte.
pub const GAS_ACCESS_BYTE: u8 = 1;
/// GAS access size: word.
pub const GAS_ACCESS_WORD: u8 = 2;
/// GAS access size: dword.
pub const GAS_ACCESS_DWORD: u8 = 3;

/// What the FADT's RESET_REG write value is: SYS_RST | RST_CPU (a hard reset).
pub const RESET_VALUE: u8 = SYS_RST | RST_CPU;

/// MADT Flags bit 0: dual 8259s are present (PCAT_COMPAT).
pub const MADT_PCAT_COMPAT: u32 = 1 << 0;
/// MADT structure type: Processor Local APIC.
pub const MADT_LOCAL_APIC: u8 = 0;
/// MADT structure type: I/O APIC.
pub const MADT_IO_APIC: u8 = 1;
/// MADT structure type: Interrupt Source Override.
pub const MADT_INT_SRC_OVERRIDE: u8 = 2;
/// MADT structure type: Local APIC NMI.
pub const MADT_LOCAL_APIC_NMI: u8 = 4;
/// MPS INTI flags: polarity active high (bits 1:0 = 01).
pub const MPS_ACTIVE_HIGH: u16 = 0b01;
/// MPS INTI flags: edge triggered (bits 3:2 = 01).
pub const MPS_EDGE: u16 = 0b01 << 2;
/// MPS INTI flags: level triggered (bits 3:2 = 11).
pub const MPS_LEVEL: u16 = 0b11 << 2;
/// Local APIC flags bit 0: the processor is enabled.
pub const LAPIC_ENABLED: u32 = 1 << 0;
/// ACPI processor UID meaning "all processors" in a Local APIC NMI structure.
pub const ALL_PROCESSORS: u8 = 0xff;

/// Where the RSDP sits in the blob.
const RSDP_OFFSET: usize = 0;
/// Where the FACS sits in the blob (64-byte aligned as §5.2.10 requires).
const FACS_OFFSET: usize = 0x40;
/// Where the DSDT starts.
const DSDT_OFFSET: usize = 0x80;

/// Why the tables cannot be built at a base (host configuration mistakes).
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// The base is not 16-byte aligned or the blob would not sit below 4 GiB (the RSDT,
    /// FIRMWARE_CTRL and DSDT fields hold 32-bit addresses).
    #[error("ACPI tables cannot be placed at {0:#x} (need 16-byte alignment, below 4 GiB)")]
    BadBase(u64),
}

/// The tables, ready to be copied to guest memory at [`AcpiTables::base`].
#[derive(Debug, Clone)]
pub struct AcpiTables {
    base: u64,
    bytes: Vec<u8>,
    /// (signature, guest-physical address, length) of each table, RSDP included.
    directory: Vec<([u8; 4], u64, usize)>,
}

impl AcpiTables {
    /// Guest-physical address the blob is built for.
    pub fn base(&self) -> u64 {
        self.base
    }
    /// The blob.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Length of the blob in bytes (at most `layout::ACPI_TABLES_LEN` at the default base).
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    /// Whether the blob is empty (never: there is always an RSDP).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Guest-physical address of the RSDP (what the boot protocol's `acpi_rsdp_addr` takes).
    pub fn rsdp_address(&self) -> u64 {
        self.base + RSDP_OFFSET as u64
    }
    /// Guest-physical address and bytes of the table with `signature` ("RSD " for the RSDP).
    pub fn table(&self, signature: &[u8; 4]) -> Option<(u64, &[u8])> {
        let &(_, addr, len) = self.directory.iter().find(|(s, _, _)| s == signature)?;
        let start = usize::try_from(addr - self.base).ok()?;
        Some((addr, self.bytes.get(start..start + len)?))
    }
}

/// The byte that makes `bytes` sum to zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A system description table: the 36-byte header (§5.2.6) with length and checksum
/// filled in, followed by `body`.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; HEADER_LEN];
    t[0..4].copy_from_slice(signature);
    t[8] = revision;
    t[10..16].copy_from_slice(OEM_ID);
    // OEM table ID: "VX" and the signature, padded to eight characters.
    let mut table_id = *b"VX      ";
    table_id[2..6].copy_from_slice(signature);
    t[16..24].copy_from_slice(&table_id);
    put_u32(&mut t, 24, VX_REVISION);
    t[28..32].copy_from_slice(CREATOR_ID);
    put_u32(&mut t, 32, VX_REVISION);
    t.extend_from_slice(body);
    let len = u32::try_from(t.len()).expect("ACPI tables are far smaller than 4 GiB");
    put_u32(&mut t, 4, len);
    t[9] = checksum(&t);
    t
}

/// A Generic Address Structure (§5.2.3.2) for a system I/O register block.
fn gas_io(bit_width: u8, access_size: u8, port: u16) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = GAS_SYSTEM_IO;
    g[1] = bit_width;
    g[2] = 0; // bit offset
    g[3] = access_size;
    g[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    g
}

/// The DSDT: only `Name (\_S5, Package () { SLP_TYP_S5, SLP_TYP_S5, 0, 0 })`, whose first
/// two elements are the SLP_TYPa/SLP_TYPb values for S5 (§7.4.2) and the last two are
/// reserved.
fn dsdt() -> Vec<u8> {
    let s5 = u64::from(acpi_pm::SLP_TYP_S5);
    let aml = aml::name(
        "\\_S5",
        &aml::package(&[
            aml::integer(s5),
            aml::integer(s5),
            aml::integer(0),
            aml::integer(0),
        ]),
    );
    sdt(b"DSDT", DSDT_REVISION, &aml)
}

/// The FACS: no firmware waking vector, no global lock owner, version 2.
fn facs() -> Vec<u8> {
    let mut f = vec![0u8; FACS_LEN];
    f[0..4].copy_from_slice(b"FACS");
    put_u32(&mut f, 4, FACS_LEN as u32);
    f[32] = 2; // version
    f
}

/// The FADT for tables whose FACS is at `facs` and DSDT at `dsdt` (both below 4 GiB).
fn fadt(facs: u32, dsdt: u32) -> Vec<u8> {
    let pm = layout::ACPI_PM_PORT;
    let port = |off: u64| pm + off as u16;
    let pm1_evt = port(acpi_pm::PM1_STS);
    let pm1_cnt = port(acpi_pm::PM1_CNT);
    let pm_tmr = port(acpi_pm::PM_TMR);
    let gpe0 = port(acpi_pm::GPE0_BLK);

    // Field offsets below are those of ACPI 6.5 Table 5.9, minus the 36-byte header.
    let mut b = vec![0u8; FADT_LEN - HEADER_LEN];
    let at = |off: usize| off - HEADER_LEN;
    // FIRMWARE_CTRL (36) stays 0: ACPI 6.5 §5.2.9 allows only one of it and X_FIRMWARE_CTRL
    // (Linux installs the FACS once per non-zero field).
    put_u32(&mut b, at(40), dsdt); // DSDT
    b[at(45)] = 0; // Preferred_PM_Profile: unspecified
    put_u16(&mut b, at(46), u16::from(layout::irq::SCI)); // SCI_INT
    // SMI_CMD (48), ACPI_ENABLE/DISABLE, S4BIOS_REQ, PSTATE_CNT stay 0: no SMM, the
    // hardware is in ACPI mode from reset.
    put_u32(&mut b, at(56), u32::from(pm1_evt)); // PM1a_EVT_BLK
    put_u32(&mut b, at(64), u32::from(pm1_cnt)); // PM1a_CNT_BLK
    put_u32(&mut b, at(76), u32::from(pm_tmr)); // PM_TMR_BLK
    put_u32(&mut b, at(80), u32::from(gpe0)); // GPE0_BLK
    b[at(88)] = acpi_pm::PM1_EVT_LEN as u8;
    b[at(89)] = acpi_pm::PM1_CNT_LEN as u8;
    b[at(91)] = acpi_pm::PM_TMR_LEN as u8;
    b[at(92)] = acpi_pm::GPE0_BLK_LEN as u8;
    // C2/C3 latencies above 100/1000 us mean "not supported".
    put_u16(&mut b, at(96), 101); // P_LVL2_LAT
    put_u16(&mut b, at(98), 1001); // P_LVL3_LAT
    b[at(108)] = RTC_CENTURY; // CENTURY: CMOS index of the century byte
    put_u16(&mut b, at(109), BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042); // IAPC_BOOT_ARCH
    put_u32(
        &mut b,
        at(112),
        FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP,
    );
    let reset = gas_io(8, GAS_ACCESS_BYTE, layout::RESET_CF9_PORT);
    b[at(116)..at(128)].copy_from_slice(&reset); // RESET_REG
    b[at(128)] = RESET_VALUE;
    b[at(131)] = FADT_MINOR_REVISION;
    put_u64(&mut b, at(132), u64::from(facs)); // X_FIRMWARE_CTRL
    put_u64(&mut b, at(140), u64::from(dsdt)); // X_DSDT
    let bits = |len: u64| (len * 8) as u8;
    let x_blocks = [
        (
            148,
            gas_io(bits(acpi_pm::PM1_EVT_LEN), GAS_ACCESS_WORD, pm1_evt),
        ),
        (
            172,
            gas_io(bits(acpi_pm::PM1_CNT_LEN), GAS_ACCESS_WORD, pm1_cnt),
        ),
        (
            208,
            gas_io(bits(acpi_pm::PM_TMR_LEN), GAS_ACCESS_DWORD, pm_tmr),
        ),
        (
            220,
            gas_io(bits(acpi_pm::GPE0_BLK_LEN), GAS_ACCESS_BYTE, gpe0),
        ),
    ];
    for (off, g) in x_blocks {
        b[at(off)..at(off + 12)].copy_from_slice(&g);
    }
    // X_PM1b_EVT_BLK (160), X_PM1b_CNT_BLK (184), X_PM2_CNT_BLK (196), X_GPE1_BLK (232),
    // SLEEP_CONTROL_REG (244), SLEEP_STATUS_REG (256) and the hypervisor vendor identity
    // (268) stay zero: not present.
    sdt(b"FACP", FADT_REVISION, &b)
}

/// The MADT: one enabled processor, one I/O APIC, the two ISA overrides and the LINT1 NMI.
fn madt() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(layout::LAPIC_BASE as u32).to_le_bytes());
    b.extend_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    // Processor Local APIC: UID 0, APIC ID 0, enabled.
    b.extend_from_slice(&[MADT_LOCAL_APIC, 8, 0, 0]);
    b.extend_from_slice(&LAPIC_ENABLED.to_le_bytes());
    // I/O APIC: ID 0, address, GSI base 0.
    b.extend_from_slice(&[MADT_IO_APIC, 12, 0, 0]);
    b.extend_from_slice(&(layout::IOAPIC_BASE as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // Interrupt Source Overrides on the ISA bus (bus 0).
    let overrides = [
        // IRQ0 (PIT) arrives on pin 2; bus-default polarity and trigger.
        (layout::irq::PIT, 2u32, 0u16),
        // IRQ9 (SCI) is level-triggered, active high.
        (
            layout::irq::SCI,
            u32::from(layout::irq::SCI),
            MPS_ACTIVE_HIGH | MPS_LEVEL,
        ),
    ];
    for (irq, gsi, flags) in overrides {
        b.extend_from_slice(&[MADT_INT_SRC_OVERRIDE, 10, 0, irq]);
        b.extend_from_slice(&gsi.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
    }
    // Local APIC NMI: every processor's LINT1, edge-triggered, active high.
    b.extend_from_slice(&[MADT_LOCAL_APIC_NMI, 6, ALL_PROCESSORS]);
    b.extend_from_slice(&(MPS_ACTIVE_HIGH | MPS_EDGE).to_le_bytes());
    b.push(1); // LINT#
    sdt(b"APIC", MADT_REVISION, &b)
}

/// The revision-2 RSDP for an RSDT at `rsdt` and an XSDT at `xsdt`.
fn rsdp(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = vec![0u8; RSDP_LEN];
    r[0..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(OEM_ID);
    r[15] = 2; // revision: ACPI 2.0+ with the XSDT
    put_u32(&mut r, 16, rsdt);
    put_u32(&mut r, 20, RSDP_LEN as u32);
    put_u64(&mut r, 24, xsdt);
    // The first checksum covers the ACPI 1.0 part (20 bytes), the extended one everything.
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// Build the tables for guest-physical address `base`.
pub fn build(base: u64) -> Result<AcpiTables, AcpiError> {
    if !base.is_multiple_of(16) || base >= layout::FOUR_GIB {
        return Err(AcpiError::BadBase(base));
    }
    let mut blob = vec![0u8; DSDT_OFFSET];
    let mut directory = Vec::new();
    let mut place = |blob: &mut Vec<u8>, sig: [u8; 4], t: &[u8]| -> u64 {
        let off = blob.len();
        blob.extend_from_slice(t);
        // Keep the next table 16-byte aligned.
        blob.resize(blob.len().next_multiple_of(16), 0);
        let addr = base + off as u64;
        directory.push((sig, addr, t.len()));
        addr
    };

    let facs_addr = base + FACS_OFFSET as u64;
    blob[FACS_OFFSET..FACS_OFFSET + FACS_LEN].copy_from_slice(&facs());
    let dsdt_addr = place(&mut blob, *b"DSDT", &dsdt());
    let low = |a: u64| u32::try_from(a).map_err(|_| AcpiError::BadBase(base));
    let fadt_addr = place(&mut blob, *b"FACP", &fadt(low(facs_addr)?, low(dsdt_addr)?));
    let madt_addr = place(&mut blob, *b"APIC", &madt());
    let entries = [fadt_addr, madt_addr];

    let mut rsdt_body = Vec::new();
    for &e in &entries {
        rsdt_body.extend_from_slice(&low(e)?.to_le_bytes());
    }
    let rsdt_addr = place(&mut blob, *b"RSDT", &sdt(b"RSDT", 1, &rsdt_body));
    let mut xsdt_body = Vec::new();
    for &e in &entries {
        xsdt_body.extend_from_slice(&e.to_le_bytes());
    }
    let xsdt_addr = place(&mut blob, *b"XSDT", &sdt(b"XSDT", 1, &xsdt_body));
    low(base + blob.len() as u64)?;

    blob[RSDP_OFFSET..RSDP_OFFSET + RSDP_LEN].copy_from_slice(&rsdp(low(rsdt_addr)?, xsdt_addr));
    directory.push((*b"RSD ", base + RSDP_OFFSET as u64, RSDP_LEN));
    directory.push((*b"FACS", facs_addr, FACS_LEN));
    Ok(AcpiTables {
        base,
        bytes: blob,
        directory,
    })
}

#[cfg(test)]
mod tests;
