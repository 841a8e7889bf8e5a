//! Paging ROMs: 32-bit paging (4 KiB and 4 MiB pages), PAE paging (4 KiB and 2 MiB pages,
//! execute-disable) and 4-level paging (4 KiB, 2 MiB and 1 GiB pages, high canonical
//! addresses). Each one aliases physical pages, reads back the accessed and dirty bits the
//! CPU set, writes to read-only pages with CR0.WP clear and set, and changes a mapping with
//! INVLPG and with a CR3 reload.

pub mod level4;
pub mod pae;
pub mod paging32;

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::asm::{Asm, R, check};

/// Every ROM of this area.
pub fn all() -> Vec<TestRom> {
    vec![paging32::build(), pae::build(), level4::build()]
}

/// Physical pages the paging ROMs map (in the identity-mapped low RAM).
pub mod phys {
    /// Written through one mapping, read through the others.
    pub const SHARED: u64 = crate::asm::layout::TEST_PAGES;
    /// Mapped read-only.
    pub const READ_ONLY: u64 = SHARED + 0x1000;
    /// Holds 0xaaaa: a mapping starts here...
    pub const OLD: u64 = SHARED + 0x2000;
    /// ...holds 0xbbbb: ...and is moved here.
    pub const NEW: u64 = SHARED + 0x3000;
    /// Holds a RET instruction (for the execute-disable test).
    pub const CODE: u64 = SHARED + 0x4000;
}

/// Check `(entry & mask)` for the page-table entry at physical (identity-mapped) `entry`.
pub fn check_entry_bits(a: &mut Asm, label: &str, entry: u64, mask: u32, expected: u64) -> R {
    if a.bitness() == 64 {
        a.mov(rax, qword_ptr(entry))?;
    } else {
        a.mov(eax, dword_ptr(entry as u32))?;
    }
    a.and(eax, mask)?;
    check(a, label, expected)
}

/// Load 4 bytes at virtual address `virt` into EAX (through RBX in 64-bit code, so any
/// address works).
pub fn load32(a: &mut Asm, virt: u64) -> R {
    if a.bitness() == 64 {
        a.mov(rbx, virt)?;
        a.mov(eax, dword_ptr(rbx))
    } else {
        a.mov(eax, dword_ptr(virt as u32))
    }
}

/// Store the 4-byte `value` at virtual address `virt`.
pub fn store32(a: &mut Asm, virt: u64, value: u32) -> R {
    if a.bitness() == 64 {
        a.mov(rbx, virt)?;
        a.mov(dword_ptr(rbx), value)
    } else {
        a.mov(dword_ptr(virt as u32), value)
    }
}
