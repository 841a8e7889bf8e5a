//! Guest-physical RAM as seen by the engines: a list of host memory regions (owned by the
//! machine, which maps them), each covering a range of guest-physical addresses.
//!
//! This is one of the few modules with unsafe code: every guest RAM access in software engines
//! goes through `GuestRam`, which checks bounds and then reads or writes host memory.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GuestPhys(pub u64);

/// One contiguous range of guest-physical memory backed by host memory.
#[derive(Clone, Copy, Debug)]
pub struct RamRegion {
    /// First guest-physical address.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
    /// Host address of the first byte.
    pub host: *mut u8,
    /// Guest writes are ignored (ROM).
    pub readonly: bool,
}

struct Inner {
    regions: Vec<RamRegion>,
    _owner: Box<dyn Any + Send + Sync>,
}

/// A cheap, cloneable view of guest RAM shared by engines and devices.
#[derive(Clone)]
pub struct GuestRam {
    inner: Arc<Inner>,
}

// SAFETY: the regions point at host mappings kept alive by `_owner`; all accesses go through
// volatile-free raw-pointer copies, and the guest itself defines what concurrent access means
// (like real RAM shared between processors and DMA).
unsafe impl Send for Inner {}
// SAFETY: see above; no interior state besides the raw memory.
unsafe impl Sync for Inner {}

impl fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.inner
                    .regions
                    .iter()
                    .map(|r| (r.gpa, r.len, r.readonly)),
            )
            .finish()
    }
}

impl GuestRam {
    /// Build a view over `regions`, which must not overlap.
    ///
    /// # Safety
    /// Every region's `host..host+len` must be valid, writable host memory for as long as
    /// `owner` lives (for example, `owner` holds the mmaps the regions point into).
    pub unsafe fn new(mut regions: Vec<RamRegion>, owner: Box<dyn Any + Send + Sync>) -> GuestRam {
        regions.sort_by_key(|r| r.gpa);
        GuestRam {
            inner: Arc::new(Inner {
                regions,
                _owner: owner,
            }),
        }
    }

    /// An empty memory map (everything is MMIO); useful in tests.
    pub fn empty() -> GuestRam {
        // SAFETY: no regions, nothing to keep valid.
        unsafe { GuestRam::new(Vec::new(), Box::new(())) }
    }

    /// The regions, sorted by address.
    pub fn regions(&self) -> &[RamRegion] {
        &self.inner.regions
    }

    /// The region holding `gpa`, if it is RAM or ROM.
    #[inline]
    pub fn region(&self, gpa: u64) -> Option<&RamRegion> {
        self.inner
            .regions
            .iter()
            .find(|r| gpa.wrapping_sub(r.gpa) < r.len)
    }

    /// Host pointer for `gpa..gpa+len` if the whole range lies in one region, with its
    /// read-only flag.
    #[inline]
    pub fn host_range(&self, gpa: u64, len: u64) -> Option<(*mut u8, bool)> {
        let r = self.region(gpa)?;
        let off = gpa - r.gpa;
        if off.checked_add(len)? > r.len {
            return None;
        }
        // SAFETY: off < r.len, so the pointer stays inside the region.
        Some((unsafe { r.host.add(off as usize) }, r.readonly))
    }

    /// Walk `gpa..gpa+len` region by region: `f(region, offset in region, bytes, done so far)`.
    /// Returns false if some byte is not RAM or ROM.
    fn chunks(
        &self,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(&RamRegion, usize, usize, usize),
    ) -> bool {
        let mut done = 0usize;
        while done < len {
            let a = gpa.wrapping_add(done as u64);
            let Some(r) = self.region(a) else {
                return false;
            };
            let off = (a - r.gpa) as usize;
            let n = (r.len as usize - off).min(len - done);
            f(r, off, n, done);
            done += n;
        }
        true
    }

    /// Copy guest memory into `buf`; returns false (and leaves `buf` partly filled) if some
    /// byte is not RAM or ROM.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let dst = buf.as_mut_ptr();
        self.chunks(gpa, buf.len(), |r, off, n, done| {
            // SAFETY: off + n <= r.len, inside the host mapping; buf has n bytes from done.
            unsafe { std::ptr::copy_nonoverlapping(r.host.add(off), dst.add(done), n) }
        })
    }

    /// Copy `buf` into guest RAM (ROM regions are skipped); returns false if some byte is not
    /// RAM or ROM.
    pub fn write(&self, gpa: u64, buf: &[u8]) -> bool {
        self.copy_in(gpa, buf, false)
    }

    /// Write `buf` even into ROM regions: how firmware loaders fill a ROM image.
    pub fn load(&self, gpa: u64, buf: &[u8]) -> bool {
        self.copy_in(gpa, buf, true)
    }

    fn copy_in(&self, gpa: u64, buf: &[u8], into_rom: bool) -> bool {
        self.chunks(gpa, buf.len(), |r, off, n, done| {
            if into_rom || !r.readonly {
                // SAFETY: off + n <= r.len, inside the host mapping; buf has n bytes from done.
                unsafe { std::ptr::copy_nonoverlapping(buf[done..].as_ptr(), r.host.add(off), n) }
            }
        })
    }

    /// Read a little-endian value of `size` (1, 2, 4, 8) bytes from a host pointer obtained
    /// from `host_range`.
    ///
    /// # Safety
    /// `p..p+size` must come from `host_range(_, size)` on this `GuestRam`.
    #[inline]
    pub unsafe fn read_host(p: *const u8, size: usize) -> u64 {
        // SAFETY: the caller guarantees p..p+size is inside a live region.
        unsafe {
            match size {
                1 => u64::from(*p),
                2 => u64::from(u16::from_le(std::ptr::read_unaligned(p as *const u16))),
                4 => u64::from(u32::from_le(std::ptr::read_unaligned(p as *const u32))),
                _ => u64::from_le(std::ptr::read_unaligned(p as *const u64)),
            }
        }
    }

    /// Write a little-endian value of `size` bytes to a host pointer from `host_range`.
    ///
    /// # Safety
    /// `p..p+size` must come from `host_range(_, size)` on this `GuestRam`, not read-only.
    #[inline]
    pub unsafe fn write_host(p: *mut u8, size: usize, v: u64) {
        // SAFETY: the caller guarantees p..p+size is inside a live, writable region.
        unsafe {
            match size {
                1 => *p = v as u8,
                2 => std::ptr::write_unaligned(p as *mut u16, (v as u16).to_le()),
                4 => std::ptr::write_unaligned(p as *mut u32, (v as u32).to_le()),
                _ => std::ptr::write_unaligned(p as *mut u64, v.to_le()),
            }
        }
    }
}
