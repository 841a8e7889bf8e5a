//! Tests of the ACPI tables (ACPI 6.5 ch. 5.2): layouts and checksums, checked against the
//! spec's field offsets with independent little readers rather than the builder's helpers.

use super::*;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}
fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

/// The bytes of the table at guest-physical `addr`, using the header's length.
fn table_at(t: &AcpiTables, addr: u64) -> &[u8] {
    let off = usize::try_from(addr - t.base()).expect("small");
    let len = u32_at(t.bytes(), off + 4) as usize;
    &t.bytes()[off..off + len]
}

fn tables() -> AcpiTables {
    build(layout::ACPI_TABLES).expect("the default base is valid")
}

#[test]
fn test_acpi_every_table_checksums_to_zero() {
    let t = tables();
    for sig in [b"FACP", b"APIC", b"DSDT", b"RSDT", b"XSDT"] {
        let (addr, bytes) = t.table(sig).expect("table present");
        assert_eq!(&bytes[0..4], sig);
        assert_eq!(u32_at(bytes, 4) as usize, bytes.len(), "{sig:?} length");
        assert_eq!(sum(bytes), 0, "{sig:?} checksum");
        assert_eq!(&bytes[10..16], b"VX    ", "{sig:?} OEM ID");
        assert_eq!(addr % 8, 0, "{sig:?} alignment");
    }
}

#[test]
fn test_acpi_rsdp() {
    let t = tables();
    assert_eq!(t.rsdp_address(), layout::ACPI_TABLES);
    assert_eq!(t.rsdp_address() % 16, 0);
    let r = &t.bytes()[..36];
    assert_eq!(&r[0..8], b"RSD PTR ");
    assert_eq!(sum(&r[..20]), 0, "ACPI 1.0 checksum");
    assert_eq!(sum(r), 0, "extended checksum");
    assert_eq!(&r[9..15], b"VX    ");
    assert_eq!(r[15], 2, "revision");
    assert_eq!(u32_at(r, 20), 36, "length");
    assert_eq!(&table_at(&t, u64_at(r, 24))[0..4], b"XSDT");
    assert_eq!(&table_at(&t, u64::from(u32_at(r, 16)))[0..4], b"RSDT");
}

#[test]
fn test_acpi_xsdt_and_rsdt_entries() {
    let t = tables();
    let (_, x) = t.table(b"XSDT").expect("XSDT");
    let (_, r) = t.table(b"RSDT").expect("RSDT");
    assert_eq!(x.len(), 36 + 2 * 8);
    assert_eq!(r.len(), 36 + 2 * 4);
    let xs: Vec<&[u8]> = (0..2)
        .map(|i| &table_at(&t, u64_at(x, 36 + 8 * i))[0..4])
        .collect();
    let rs: Vec<&[u8]> = (0..2)
        .map(|i| &table_at(&t, u64::from(u32_at(r, 36 + 4 * i)))[0..4])
        .collect();
    assert_eq!(xs, vec![&b"FACP"[..], &b"APIC"[..]]);
    assert_eq!(rs, xs);
}

#[test]
fn test_acpi_fadt_fields() {
    let t = tables();
    let (_, f) = t.table(b"FACP").expect("FADT");
    assert_eq!(f.len(), 276);
    assert_eq!(f[8], 6, "FADT major version");
    // X_FIRMWARE_CTRL -> the FACS, 64-byte aligned; FIRMWARE_CTRL 0 (only one may be set).
    assert_eq!(u32_at(f, 36), 0);
    let facs = u64_at(f, 132) as u32;
    assert_eq!(facs % 64, 0);
    let off = (u64::from(facs) - t.base()) as usize;
    assert_eq!(&t.bytes()[off..off + 4], b"FACS");
    assert_eq!(u32_at(t.bytes(), off + 4), 64);
    // DSDT and X_DSDT.
    let dsdt = u32_at(f, 40);
    assert_eq!(u64_at(f, 140), u64::from(dsdt));
    assert_eq!(&table_at(&t, u64::from(dsdt))[0..4], b"DSDT");
    assert_eq!(u16_at(f, 46), 9, "SCI_INT");
    assert_eq!(u32_at(f, 48), 0, "no SMI_CMD");
    // The register blocks the PM device decodes (layout.rs: event +0, control +4, timer
    // +8, GPE0 +0x20 from ACPI_PM_PORT).
    let pm = u32::from(layout::ACPI_PM_PORT);
    assert_eq!(u32_at(f, 56), pm, "PM1a_EVT_BLK");
    assert_eq!(u32_at(f, 60), 0, "no PM1b_EVT_BLK");
    assert_eq!(u32_at(f, 64), pm + 4, "PM1a_CNT_BLK");
    assert_eq!(u32_at(f, 76), pm + 8, "PM_TMR_BLK");
    assert_eq!(u32_at(f, 80), pm + 0x20, "GPE0_BLK");
    assert_eq!(
        &f[88..93],
        &[4, 2, 0, 4, 4],
        "PM1_EVT/CNT, PM2, TMR, GPE0 lengths"
    );
    assert_eq!(
        u16_at(f, 109),
        0b11,
        "IAPC_BOOT_ARCH: legacy devices and 8042"
    );
    // WBINVD (0), PROC_C1 (2), SLP_BUTTON (5), TMR_VAL_EXT (8), RESET_REG_SUP (10).
    assert_eq!(
        u32_at(f, 112),
        (1 << 0) | (1 << 2) | (1 << 5) | (1 << 8) | (1 << 10)
    );
    // RESET_REG: system I/O, 8 bits, byte access, port 0xCF9; value 6.
    assert_eq!(&f[116..120], &[1, 8, 0, 1]);
    assert_eq!(u64_at(f, 120), 0xcf9);
    assert_eq!(f[128], 0x06);
    // X_ blocks: system I/O at the same ports, widths = lengths in bits.
    for (off, port, width) in [
        (148, pm, 32),
        (172, pm + 4, 16),
        (208, pm + 8, 32),
        (220, pm + 0x20, 32),
    ] {
        assert_eq!(f[off], 1, "X_ block at {off} is system I/O");
        assert_eq!(f[off + 1], width, "X_ block at {off} width");
        assert_eq!(
            u64_at(f, off + 4),
            u64::from(port),
            "X_ block at {off} address"
        );
    }
    for off in [160, 184, 196, 232, 244, 256] {
        assert_eq!(&f[off..off + 12], &[0; 12], "absent block at {off}");
    }
}

/// Decode one AML integer constant at `b[i..]`: (value, bytes used).
fn aml_integer(b: &[u8], i: usize) -> (u64, usize) {
    match b[i] {
        0x00 => (0, 1),
        0x01 => (1, 1),
        0xff => (u64::MAX, 1),
        0x0a => (u64::from(b[i + 1]), 2),
        0x0b => (u64::from(u16_at(b, i + 1)), 3),
        0x0c => (u64::from(u32_at(b, i + 1)), 5),
        0x0e => (u64_at(b, i + 1), 9),
        op => panic!("not an integer constant: {op:#x}"),
    }
}

#[test]
fn test_acpi_dsdt_s5_matches_pm_block() {
    let t = tables();
    let (_, d) = t.table(b"DSDT").expect("DSDT");
    assert_eq!(d[8], 2, "DSDT revision 2: 64-bit integers");
    let aml = &d[36..];
    // NameOp, RootChar, "_S5_", PackageOp.
    let pat = [0x08, b'\\', b'_', b'S', b'5', b'_', 0x12];
    let at = aml
        .windows(pat.len())
        .position(|w| w == pat)
        .expect("Name(\\_S5, Package)");
    let mut i = at + pat.len();
    // A one-byte PkgLength (bits 7:6 clear) covering itself, NumElements and the elements.
    let pkg_len = aml[i] as usize;
    assert_eq!(aml[i] >> 6, 0);
    let end = i + pkg_len;
    assert_eq!(end, aml.len(), "the package ends the AML");
    i += 1;
    let count = aml[i];
    assert_eq!(count, 4);
    i += 1;
    let mut values = Vec::new();
    while i < end {
        let (v, n) = aml_integer(aml, i);
        values.push(v);
        i += n;
    }
    assert_eq!(values.len(), 4);
    let typ = u64::from(acpi_pm::SLP_TYP_S5);
    assert_eq!(&values[..2], &[typ, typ], "SLP_TYPa/SLP_TYPb");
    // The value must fit the 3-bit SLP_TYP field of PM1_CNT.
    assert!(typ <= 7);
}

#[test]
fn test_acpi_madt_entries() {
    let t = tables();
    let (_, m) = t.table(b"APIC").expect("MADT");
    assert_eq!(u32_at(m, 36), 0xfee0_0000, "local APIC address");
    assert_eq!(u32_at(m, 40), 1, "PCAT_COMPAT");
    let mut entries = Vec::new();
    let mut i = 44;
    while i < m.len() {
        let (typ, len) = (m[i], m[i + 1] as usize);
        assert!(len >= 2 && i + len <= m.len(), "structure at {i} fits");
        entries.push((typ, m[i..i + len].to_vec()));
        i += len;
    }
    assert_eq!(i, m.len());
    let types: Vec<u8> = entries.iter().map(|e| e.0).collect();
    assert_eq!(types, vec![0, 1, 2, 2, 4]);
    // Processor Local APIC: UID 0, APIC ID 0, enabled.
    assert_eq!(entries[0].1, vec![0, 8, 0, 0, 1, 0, 0, 0]);
    // I/O APIC: ID 0, at 0xFEC00000, GSI base 0.
    let io = &entries[1].1;
    assert_eq!(io.len(), 12);
    assert_eq!(io[2], 0);
    assert_eq!(u32_at(io, 4), 0xfec0_0000);
    assert_eq!(u32_at(io, 8), 0);
    // IRQ0 -> GSI 2, conforming; IRQ9 -> GSI 9, active high (01), level (11 << 2).
    assert_eq!(entries[2].1, vec![2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    assert_eq!(entries[3].1, vec![2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
    // Local APIC NMI: all processors, edge/active high, LINT1.
    assert_eq!(entries[4].1, vec![4, 6, 0xff, 0x05, 0, 1]);
}

#[test]
fn test_acpi_fits_reserved_area() {
    let t = tables();
    assert!(t.len() <= layout::ACPI_TABLES_LEN);
    assert!(!t.is_empty());
    assert_eq!(t.bytes().len() as u64, t.len());
    // Every directory entry lies inside the blob.
    for sig in [
        b"RSD ", b"FACS", b"FACP", b"APIC", b"DSDT", b"RSDT", b"XSDT",
    ] {
        let (addr, bytes) = t.table(sig).expect("listed");
        assert!(addr >= t.base() && addr + bytes.len() as u64 <= t.base() + t.len());
    }
}

#[test]
fn test_acpi_build_is_position_dependent_and_checked() {
    let a = build(0x10_0000).expect("valid base");
    let (_, x) = a.table(b"XSDT").expect("XSDT");
    assert_eq!(
        u64_at(x, 36) >> 20,
        1,
        "entries are absolute addresses at the base"
    );
    assert!(matches!(build(0xe_0008), Err(AcpiError::BadBase(_))));
    assert!(matches!(
        build(layout::FOUR_GIB),
        Err(AcpiError::BadBase(_))
    ));
    assert!(matches!(
        build(layout::FOUR_GIB - 16),
        Err(AcpiError::BadBase(_))
    ));
}

/// Writes each table to `$TMPDIR/vx-acpi/<sig>.dat` for `iasl -d` (run with
/// `cargo test -p firmware -- --ignored dump`).
#[test]
#[ignore]
fn test_acpi_dump_tables_for_iasl() {
    let t = tables();
    let dir = std::env::temp_dir().join("vx-acpi");
    std::fs::create_dir_all(&dir).expect("temp dir");
    for sig in [
        b"RSD ", b"FACS", b"FACP", b"APIC", b"DSDT", b"RSDT", b"XSDT",
    ] {
        let (_, bytes) = t.table(sig).expect("listed");
        let name = String::from_utf8_lossy(sig).trim().to_string();
        std::fs::write(dir.join(format!("{name}.dat")), bytes).expect("write");
    }
}
