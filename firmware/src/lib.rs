//! vx boot paths. Today: a raw BIOS image at the reset vector, mapped as QEMU's `-bios`
//! (ending at 4 GiB, last 128 KiB aliased below 1 MiB), with the SDM's RESET state
//! (Vol. 3A §9.1.1). Later: the Linux boot protocol and multiboot.

pub mod acpi;
pub mod linux;

use std::path::Path;

use cpu::CpuState;

/// Largest BIOS image accepted.
pub use machine::memory::MAX_ROM;

/// Problems with a firmware image supplied by the user.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// The file cannot be read.
    #[error("cannot read BIOS image {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("BIOS image {0} is empty")]
    Empty(String),
    /// The file is too large.
    #[error("BIOS image {path} is {size} bytes; the limit is {max} bytes (16 MiB)", max = MAX_ROM)]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
}

/// Read and check a BIOS image file.
pub fn load_bios(path: &Path) -> Result<Vec<u8>, FirmwareError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| FirmwareError::Read {
        path: name.clone(),
        source,
    })?;
    if meta.is_dir() {
        return Err(FirmwareError::Read {
            path: name,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a directory"),
        });
    }
    if meta.len() > MAX_ROM {
        return Err(FirmwareError::TooLarge {
            path: name,
            size: meta.len(),
        });
    }
    let data = std::fs::read(path).map_err(|source| FirmwareError::Read {
        path: name.clone(),
        source,
    })?;
    if data.is_empty() {
        return Err(FirmwareError::Empty(name));
    }
    if data.len() as u64 > MAX_ROM {
        return Err(FirmwareError::TooLarge {
            path: name,
            size: data.len() as u64,
        });
    }
    Ok(data)
}

/// Write the machine's ACPI tables into guest RAM at `layout::ACPI_TABLES` (reserved in the
/// e820 map); returns the RSDP address, or None if that area is not RAM (a tiny guest).
pub fn install_acpi(ram: &cpu::GuestRam) -> Result<Option<u64>, acpi::AcpiError> {
    let tables = acpi::build(machine::layout::ACPI_TABLES)?;
    Ok(ram
        .load(tables.base(), tables.bytes())
        .then(|| tables.rsdp_address()))
}

/// The processor state a BIOS boot starts from: the RESET state (CS F000 with base
/// FFFF0000, IP FFF0, real mode).
pub fn reset_state() -> CpuState {
    CpuState::reset()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_load_bios_rejects_bad_files() {
        let dir = std::env::temp_dir().join(format!("vx-fw-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert!(matches!(
            load_bios(&dir.join("missing.bin")),
            Err(FirmwareError::Read { .. })
        ));
        let empty = dir.join("empty.bin");
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(load_bios(&empty), Err(FirmwareError::Empty(_))));
        let big = dir.join("big.bin");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(MAX_ROM + 1).expect("set_len");
        assert!(matches!(
            load_bios(&big),
            Err(FirmwareError::TooLarge { .. })
        ));
        assert!(matches!(load_bios(&dir), Err(FirmwareError::Read { .. })));
        let ok = dir.join("ok.bin");
        std::fs::write(&ok, [0xf4u8; 16]).expect("write");
        assert_eq!(load_bios(&ok).expect("valid").len(), 16);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn test_reset_state_matches_sdm() {
        let s = reset_state();
        assert_eq!(s.seg[1].selector, 0xf000);
        assert_eq!(s.seg[1].base, 0xffff_0000);
        assert_eq!(s.rip, 0xfff0);
        assert_eq!(s.rflags, 2);
        assert_eq!(s.cr0, 0x6000_0010);
    }
}
