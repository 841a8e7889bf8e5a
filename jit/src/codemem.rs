//! Code pages: one reserved host mapping per code generation, handed out to Cranelift's
//! `JITModule` by bump allocation.
//!
//! Cranelift's default providers give every finalized function at least one fresh page and an
//! `mprotect` of its own; blocks are small (typically 100-600 bytes) and finalized one at a
//! time, so that wastes ~90% of the memory and a system call per block. This provider maps
//! one region readable, writable and executable up front (lazily backed by the kernel),
//! bump-allocates inside it, and makes `finalize` a no-op (x86 keeps instruction and data
//! caches coherent). When the region fills, allocation fails and the engine starts a new
//! code generation (see `cache.rs`). The region is unmapped when the provider is dropped,
//! which happens only with the `JITModule`, after every pointer into it has been forgotten.
//!
//! This module holds unsafe code (the mapping itself); the other such modules are `entry.rs`
//! (calling generated code), `helpers.rs` (slow paths reached from generated code) and
//! `tlb.rs` (nothing unsafe today, but it computes the host addends generated code uses).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cranelift_jit::{BranchProtection, JITMemoryKind, JITMemoryProvider};
use cranelift_module::ModuleResult;

/// A bump allocator over one RWX mapping.
#[derive(Debug)]
pub struct CodeArena {
    base: *mut u8,
    size: usize,
    used: Arc<AtomicUsize>,
}

// SAFETY: the arena owns its mapping exclusively; the raw base pointer is only used by the
// owning `JITModule`, which moves between threads with the vCPU, never shared.
unsafe impl Send for CodeArena {}

impl CodeArena {
    /// Reserve `size` bytes of code space. `used` reports the bytes handed out so far.
    pub fn new(size: usize, used: Arc<AtomicUsize>) -> io::Result<CodeArena> {
        // SAFETY: an anonymous private mapping with no address hint touches no existing
        // memory; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        used.store(0, Ordering::Relaxed);
        Ok(CodeArena {
            base: p.cast(),
            size,
            used,
        })
    }
}

impl JITMemoryProvider for CodeArena {
    fn allocate(&mut self, size: usize, align: u64, _kind: JITMemoryKind) -> io::Result<*mut u8> {
        let align = usize::try_from(align).unwrap_or(4096).max(1);
        let pos = self.used.load(Ordering::Relaxed);
        let start = pos.div_ceil(align) * align;
        match start.checked_add(size) {
            Some(end) if end <= self.size => {
                self.used.store(end, Ordering::Relaxed);
                // SAFETY: start + size <= self.size, so the pointer stays inside the mapping.
                Ok(unsafe { self.base.add(start) })
            }
            _ => Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "JIT code arena full",
            )),
        }
    }

    unsafe fn free_memory(&mut self) {
        self.unmap();
    }

    fn finalize(&mut self, _branch_protection: BranchProtection) -> ModuleResult<()> {
        // x86 keeps instruction fetch coherent with stores; the mapping is already executable.
        Ok(())
    }
}

impl CodeArena {
    fn unmap(&mut self) {
        if !self.base.is_null() {
            // SAFETY: base/size describe the mapping made in `new`; it is unmapped once.
            unsafe { libc::munmap(self.base.cast(), self.size) };
            self.base = std::ptr::null_mut();
        }
    }
}

impl Drop for CodeArena {
    fn drop(&mut self) {
        self.unmap();
    }
}

/// A copy of `len` bytes of generated code at `addr` (for `VX_JIT_DUMP`: the code as it runs,
/// with calls relocated).
///
/// `addr..addr + len` must be a function just compiled into a live arena.
pub fn copy_code(addr: usize, len: usize) -> Vec<u8> {
    // SAFETY: per the contract, the range is inside a mapping that stays mapped while the
    // generation lives, and it was fully written (finalized) before this call.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec()
}
