//! Guest memory: RAM as one anonymous host mapping split across the PC memory map, plus an
//! optional BIOS ROM mapped to end at 4 GiB with its last 128 KiB aliased below 1 MiB (the
//! layout of QEMU's `-bios`).

use cpu::{GuestRam, RamRegion};
use memmap2::MmapMut;

use crate::layout::*;

/// Memory setup failures.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The requested size is below the minimum.
    #[error("memory size {0} bytes is too small (minimum {min} MiB)", min = MIN_MEMORY >> 20)]
    TooSmall(u64),
    /// The requested size exceeds what vx or the host supports.
    #[error("memory size {size} bytes is too large ({why})")]
    TooLarge {
        /// Requested size.
        size: u64,
        /// What limit it exceeds.
        why: String,
    },
    /// The ROM image is empty.
    #[error("the BIOS image is empty")]
    EmptyRom,
    /// The ROM image is larger than the space below 4 GiB reserved for it.
    #[error("the BIOS image is {0} bytes; at most 16 MiB is supported")]
    RomTooLarge(u64),
    /// The host refused the mapping.
    #[error("cannot map {size} bytes of guest memory: {source}")]
    Map {
        /// Size requested.
        size: u64,
        /// The host error.
        source: std::io::Error,
    },
}

/// Largest BIOS image accepted (QEMU's limit is 16 MiB too).
pub const MAX_ROM: u64 = 16 << 20;

/// The host mappings behind guest memory; `ram()` gives engines their view.
#[derive(Debug)]
pub struct GuestMemory {
    ram: GuestRam,
    size: u64,
}

struct Owner {
    _ram: MmapMut,
    _rom: Option<MmapMut>,
}

fn host_total_memory() -> Option<u64> {
    // SAFETY: sysinfo fills the zeroed struct we pass; no other memory is touched.
    unsafe {
        let mut info: libc::sysinfo = std::mem::zeroed();
        if libc::sysinfo(&mut info) == 0 {
            Some(info.totalram * u64::from(info.mem_unit))
        } else {
            None
        }
    }
}

impl GuestMemory {
    /// Map `size` bytes of RAM and, if given, the BIOS image `rom`.
    pub fn new(size: u64, rom: Option<&[u8]>) -> Result<GuestMemory, MemoryError> {
        if size < MIN_MEMORY {
            return Err(MemoryError::TooSmall(size));
        }
        if size > MAX_MEMORY {
            return Err(MemoryError::TooLarge {
                size,
                why: format!("vx supports at most {} GiB", MAX_MEMORY >> 30),
            });
        }
        if let Some(total) = host_total_memory()
            && size > total
        {
            return Err(MemoryError::TooLarge {
                size,
                why: format!("the host has {} MiB", total >> 20),
            });
        }
        if let Some(r) = rom {
            if r.is_empty() {
                return Err(MemoryError::EmptyRom);
            }
            if r.len() as u64 > MAX_ROM {
                return Err(MemoryError::RomTooLarge(r.len() as u64));
            }
        }
        let mut ram_map =
            MmapMut::map_anon(size as usize).map_err(|source| MemoryError::Map { size, source })?;
        let base = ram_map.as_mut_ptr();
        let mut regions = Vec::new();
        let mut add = |gpa: u64, host_off: u64, len: u64| {
            if len > 0 {
                // SAFETY: host_off + len <= size for every call below, inside the mapping.
                let host = unsafe { base.add(host_off as usize) };
                regions.push(RamRegion {
                    gpa,
                    len,
                    host,
                    readonly: false,
                });
            }
        };
        let alias = rom
            .map(|r| (r.len() as u64).min(BIOS_ALIAS_MAX))
            .unwrap_or(0);
        // Below 1 MiB: conventional memory, the VGA hole, then RAM up to the BIOS alias.
        let low_end = size.min(HIGH_RAM_START);
        add(0, 0, low_end.min(LOW_RAM_END));
        if low_end > UPPER_RAM_START {
            let upper_end = low_end.min(HIGH_RAM_START - alias);
            if upper_end > UPPER_RAM_START {
                add(
                    UPPER_RAM_START,
                    UPPER_RAM_START,
                    upper_end - UPPER_RAM_START,
                );
            }
        }
        if size > HIGH_RAM_START {
            let below_4g = size.min(LOW_MEM_LIMIT);
            add(HIGH_RAM_START, HIGH_RAM_START, below_4g - HIGH_RAM_START);
            if size > LOW_MEM_LIMIT {
                add(FOUR_GIB, LOW_MEM_LIMIT, size - LOW_MEM_LIMIT);
            }
        }
        let mut rom_map = None;
        if let Some(r) = rom {
            let len = r.len() as u64;
            let mut m = MmapMut::map_anon(r.len())
                .map_err(|source| MemoryError::Map { size: len, source })?;
            m.copy_from_slice(r);
            let p = m.as_mut_ptr();
            regions.push(RamRegion {
                gpa: FOUR_GIB - len,
                len,
                host: p,
                readonly: true,
            });
            // SAFETY: len - alias < len, inside the ROM mapping.
            let alias_host = unsafe { p.add((len - alias) as usize) };
            regions.push(RamRegion {
                gpa: HIGH_RAM_START - alias,
                len: alias,
                host: alias_host,
                readonly: true,
            });
            rom_map = Some(m);
        }
        let _ = &mut ram_map;
        // SAFETY: every region points into `ram_map` or `rom_map`, which the owner keeps
        // alive as long as any clone of the GuestRam exists.
        let ram = unsafe {
            GuestRam::new(
                regions,
                Box::new(Owner {
                    _ram: ram_map,
                    _rom: rom_map,
                }),
            )
        };
        Ok(GuestMemory { ram, size })
    }

    /// The engines' view of guest RAM.
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// RAM size in bytes (excluding ROM).
    pub fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_memory_bios_layout_like_qemu() {
        let rom: Vec<u8> = (0..256 * 1024u32).map(|i| (i / 1024) as u8).collect();
        let m = GuestMemory::new(16 << 20, Some(&rom)).expect("map");
        let mut b = [0u8; 1];
        // Last byte of the image at 4 GiB - 1 and at 1 MiB - 1.
        assert!(m.ram().read(FOUR_GIB - 1, &mut b));
        assert_eq!(b[0], 255);
        assert!(m.ram().read(HIGH_RAM_START - 1, &mut b));
        assert_eq!(b[0], 255);
        // The alias holds the last 128 KiB: 1 MiB - 128 KiB is image offset 128 KiB.
        assert!(m.ram().read(HIGH_RAM_START - BIOS_ALIAS_MAX, &mut b));
        assert_eq!(b[0], 128);
        // ROM ignores writes.
        assert!(m.ram().write(HIGH_RAM_START - 1, &[0]));
        assert!(m.ram().read(HIGH_RAM_START - 1, &mut b));
        assert_eq!(b[0], 255);
        // The VGA hole is not RAM.
        assert!(!m.ram().read(0xb_8000, &mut b));
        // RAM is RAM.
        assert!(m.ram().write(0x20_0000, &[0x5a]));
        assert!(m.ram().read(0x20_0000, &mut b));
        assert_eq!(b[0], 0x5a);
    }

    #[test]
    fn test_memory_small_rom_is_fully_aliased() {
        let rom = vec![0xaau8; 4096];
        let m = GuestMemory::new(4 << 20, Some(&rom)).expect("map");
        let mut b = [0u8; 1];
        assert!(m.ram().read(HIGH_RAM_START - 4096, &mut b));
        assert_eq!(b[0], 0xaa);
        assert!(m.ram().read(HIGH_RAM_START - 4097, &mut b));
        assert_eq!(b[0], 0);
    }

    #[test]
    fn test_memory_size_limits() {
        assert!(matches!(
            GuestMemory::new(1 << 20, None),
            Err(MemoryError::TooSmall(_))
        ));
        assert!(matches!(
            GuestMemory::new(1 << 45, None),
            Err(MemoryError::TooLarge { .. })
        ));
        assert!(matches!(
            GuestMemory::new(4 << 20, Some(&[])),
            Err(MemoryError::EmptyRom)
        ));
    }
}
