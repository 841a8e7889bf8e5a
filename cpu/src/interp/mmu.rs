//! Linear-to-physical translation: 32-bit, PAE and 4-level paging with 4 KiB, 2/4 MiB and
//! 1 GiB pages, A/D bits, U/S, R/W with CR0.WP, NX with EFER.NXE, and a software TLB
//! (SDM Vol. 3A §4.3-§4.7, §4.10).

use crate::cpuid::PHYS_ADDR_BITS;
use crate::fault::{Fault, pf_code};
use crate::ram::GuestRam;
use crate::state::{CpuState, cr, msr};

/// What an access is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Exec,
}

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_A: u64 = 1 << 5;
const PTE_D: u64 = 1 << 6;
const PTE_PS: u64 = 1 << 7;
const PTE_XD: u64 = 1 << 63;

const PHYS_MASK: u64 = ((1u64 << PHYS_ADDR_BITS) - 1) & !0xfff;
/// Bits 51..MAXPHYADDR of a 64-bit entry are reserved.
const HIGH_RSVD: u64 = ((1u64 << 52) - 1) & !((1u64 << PHYS_ADDR_BITS) - 1);

/// Permission bits cached in a TLB entry.
const T_WRITE: u8 = 1 << 0;
const T_USER: u8 = 1 << 1;
const T_NX: u8 = 1 << 2;
const T_DIRTY: u8 = 1 << 3;
const T_ROM: u8 = 1 << 4;

const TLB_ENTRIES: usize = 1024;

/// One cached translation of a 4 KiB linear page.
#[derive(Clone, Copy, Debug)]
pub struct TlbEntry {
    /// Linear page number + 1 (0 = invalid).
    tag: u64,
    /// Physical address of the 4 KiB page.
    pub phys: u64,
    /// Host address of the page when it is RAM/ROM, else null (MMIO).
    pub host: *mut u8,
    perms: u8,
}

impl Default for TlbEntry {
    fn default() -> Self {
        TlbEntry::INVALID
    }
}

impl TlbEntry {
    const INVALID: TlbEntry = TlbEntry {
        tag: 0,
        phys: 0,
        host: std::ptr::null_mut(),
        perms: 0,
    };
    /// The page is ROM: writes are dropped.
    pub fn is_rom(&self) -> bool {
        self.perms & T_ROM != 0
    }
}

/// Software TLB, direct-mapped on the linear page number. Flushed whole on CR3, CR0, CR4 and
/// EFER writes (global pages are not kept: flushing more than needed is always allowed).
pub struct Tlb {
    entries: Box<[TlbEntry; TLB_ENTRIES]>,
    /// Walks performed (misses), for `--stats`.
    pub misses: u64,
    /// Incremented by every flush, so holders of a copied entry know it may be stale.
    pub generation: u64,
}

// SAFETY: the host pointers in the entries point into guest RAM, which `GuestRam` shares
// between threads already; the TLB is only a cache of them and owns nothing.
unsafe impl Send for Tlb {}

impl std::fmt::Debug for Tlb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tlb").field("misses", &self.misses).finish()
    }
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb {
            entries: Box::new([TlbEntry::INVALID; TLB_ENTRIES]),
            misses: 0,
            generation: 0,
        }
    }
}

fn slot(lin: u64) -> usize {
    ((lin >> 12) as usize) & (TLB_ENTRIES - 1)
}

impl Tlb {
    /// Drop every cached translation.
    pub fn flush(&mut self) {
        self.generation += 1;
        self.entries.fill(TlbEntry::INVALID);
    }

    /// Drop the translation of the page holding `lin` (INVLPG).
    pub fn flush_page(&mut self, lin: u64) {
        self.generation += 1;
        let e = &mut self.entries[slot(lin)];
        if e.tag == (lin >> 12) + 1 {
            *e = TlbEntry::INVALID;
        }
    }

    /// Translate `lin` for `access` by a user-mode (`user`) or supervisor access.
    #[inline]
    pub fn translate(
        &mut self,
        st: &CpuState,
        ram: &GuestRam,
        lin: u64,
        access: Access,
        user: bool,
    ) -> Result<TlbEntry, Fault> {
        let e = self.entries[slot(lin)];
        if e.tag == (lin >> 12) + 1
            && allowed(st, e.perms, access, user)
            && (access != Access::Write || e.perms & T_DIRTY != 0)
        {
            return Ok(e);
        }
        self.misses += 1;
        let e = walk(st, ram, lin, access, user)?;
        self.entries[slot(lin)] = e;
        Ok(e)
    }
}

fn allowed(st: &CpuState, perms: u8, access: Access, user: bool) -> bool {
    if user && perms & T_USER == 0 {
        return false;
    }
    match access {
        Access::Read => true,
        Access::Write => perms & T_WRITE != 0 || (!user && st.cr0 & cr::CR0_WP == 0),
        Access::Exec => perms & T_NX == 0,
    }
}

fn read_pte(ram: &GuestRam, addr: u64, size: usize) -> u64 {
    match ram.host_range(addr, size as u64) {
        // SAFETY: host_range returned a pointer valid for `size` bytes.
        Some((p, _)) => unsafe { GuestRam::read_host(p, size) },
        None => u64::MAX, // not RAM: reads as all-ones, which trips the reserved-bit check
    }
}

fn set_pte_bits(ram: &GuestRam, addr: u64, size: usize, old: u64, bits: u64) {
    if old & bits != bits
        && let Some((p, ro)) = ram.host_range(addr, size as u64)
        && !ro
    {
        // SAFETY: host_range returned a writable pointer valid for `size` bytes.
        unsafe { GuestRam::write_host(p, size, old | bits) };
    }
}

fn finish(ram: &GuestRam, lin: u64, phys_page: u64, perms: u8) -> TlbEntry {
    let (host, rom) = match ram.host_range(phys_page, 4096) {
        Some((p, ro)) => (p, ro),
        None => (std::ptr::null_mut(), false),
    };
    TlbEntry {
        tag: (lin >> 12) + 1,
        phys: phys_page,
        host,
        perms: perms | if rom { T_ROM } else { 0 },
    }
}

/// Walk the paging structures for `lin` (or map it identically when paging is off).
pub fn walk(
    st: &CpuState,
    ram: &GuestRam,
    lin: u64,
    access: Access,
    user: bool,
) -> Result<TlbEntry, Fault> {
    if st.cr0 & cr::CR0_PG == 0 {
        let page = lin & 0xffff_f000;
        return Ok(finish(ram, lin, page, T_WRITE | T_USER | T_DIRTY));
    }
    let nxe = st.efer & msr::EFER_NXE != 0;
    let fault = |code: u32| {
        let mut c = code;
        if access == Access::Write {
            c |= pf_code::W;
        }
        if user {
            c |= pf_code::U;
        }
        if access == Access::Exec && nxe && st.cr4 & cr::CR4_PAE != 0 {
            c |= pf_code::I;
        }
        Fault::pf(lin, c)
    };
    // Entries used by the walk (address, size, value), for the A/D updates.
    let mut used: [(u64, usize, u64); 4] = [(0, 0, 0); 4];
    let mut nused = 0;
    let mut write_ok = true;
    let mut user_ok = true;
    let mut nx = false;
    let phys_page;

    if st.cr4 & cr::CR4_PAE == 0 {
        // 32-bit paging (SDM §4.3).
        let pde_addr = (st.cr3 & 0xffff_f000) | ((lin >> 20) & 0xffc);
        let pde = read_pte(ram, pde_addr, 4);
        if pde & PTE_P == 0 {
            return Err(fault(0));
        }
        write_ok &= pde & PTE_RW != 0;
        user_ok &= pde & PTE_US != 0;
        used[0] = (pde_addr, 4, pde);
        nused = 1;
        if pde & PTE_PS != 0 && st.cr4 & cr::CR4_PSE != 0 {
            let base = (pde & 0xffc0_0000) | (((pde >> 13) & 0xff) << 32);
            phys_page = base | (lin & 0x003f_f000);
        } else {
            let pte_addr = (pde & 0xffff_f000) | ((lin >> 10) & 0xffc);
            let pte = read_pte(ram, pte_addr, 4);
            if pte & PTE_P == 0 {
                return Err(fault(0));
            }
            write_ok &= pte & PTE_RW != 0;
            user_ok &= pte & PTE_US != 0;
            used[1] = (pte_addr, 4, pte);
            nused = 2;
            phys_page = pte & 0xffff_f000;
        }
    } else {
        let xd_rsvd = if nxe { 0 } else { PTE_XD };
        let levels: &[u32];
        let mut table;
        if st.efer & msr::EFER_LMA != 0 {
            // 4-level paging (SDM §4.5).
            levels = &[39, 30, 21, 12];
            table = st.cr3 & PHYS_MASK;
        } else {
            // PAE paging (SDM §4.4): the PDPTE has no permission bits.
            let pdpte_addr = (st.cr3 & 0xffff_ffe0) | ((lin >> 27) & 0x18);
            let pdpte = read_pte(ram, pdpte_addr, 8);
            if pdpte & PTE_P == 0 {
                return Err(fault(0));
            }
            if pdpte & (HIGH_RSVD | PTE_XD | 0x1e6) != 0 {
                return Err(fault(pf_code::P | pf_code::RSVD));
            }
            levels = &[21, 12];
            table = pdpte & PHYS_MASK;
        }
        let mut page = None;
        for &shift in levels {
            let addr = table | (((lin >> shift) & 0x1ff) * 8);
            let e = read_pte(ram, addr, 8);
            if e & PTE_P == 0 {
                return Err(fault(0));
            }
            let large = e & PTE_PS != 0 && (shift == 30 || shift == 21);
            let mut rsvd = HIGH_RSVD | xd_rsvd;
            if shift == 39 {
                rsvd |= PTE_PS;
            }
            if large {
                // Bits between the PAT bit (12) and the page size are reserved.
                rsvd |= ((1u64 << shift) - 1) & !0x1fff;
            }
            if e & rsvd != 0 {
                return Err(fault(pf_code::P | pf_code::RSVD));
            }
            write_ok &= e & PTE_RW != 0;
            user_ok &= e & PTE_US != 0;
            nx |= nxe && e & PTE_XD != 0;
            used[nused] = (addr, 8, e);
            nused += 1;
            if large {
                let mask = (1u64 << shift) - 1;
                page = Some((e & PHYS_MASK & !mask) | (lin & mask & !0xfff));
                break;
            }
            if shift == 12 {
                page = Some(e & PHYS_MASK);
            } else {
                table = e & PHYS_MASK;
            }
        }
        phys_page = page.expect("the last level always yields a page");
    }

    let mut perms = 0u8;
    if write_ok {
        perms |= T_WRITE;
    }
    if user_ok {
        perms |= T_USER;
    }
    if nx {
        perms |= T_NX;
    }
    if !allowed(st, perms, access, user) {
        return Err(fault(pf_code::P));
    }
    for &(addr, size, val) in &used[..nused - 1] {
        set_pte_bits(ram, addr, size, val, PTE_A);
    }
    let (addr, size, val) = used[nused - 1];
    let dirty = access == Access::Write || val & PTE_D != 0;
    set_pte_bits(
        ram,
        addr,
        size,
        val,
        if dirty { PTE_A | PTE_D } else { PTE_A },
    );
    if dirty {
        perms |= T_DIRTY;
    }
    Ok(finish(ram, lin, phys_page, perms))
}
