//! Builders for the processor's in-memory tables, as bytes: segment descriptors and the
//! standard GDT (SDM Vol. 3A §3.4.5), IDT gates (§6.11, §6.14.1), task-state segments (§7.2.1,
//! §7.7) and page tables for 32-bit, PAE and 4-level paging (§4.3-§4.5).

use std::collections::BTreeMap;

use super::layout::{self, sel};
use super::rom::{RamInit, Syms};

/// Descriptor access byte bits.
pub mod access {
    /// Present.
    pub const P: u8 = 0x80;
    /// Code or data (not a system descriptor).
    pub const S: u8 = 0x10;
    /// Code segment.
    pub const CODE: u8 = 0x08;
    /// Conforming (code) or expand-down (data).
    pub const DC: u8 = 0x04;
    /// Readable (code) or writable (data).
    pub const RW: u8 = 0x02;
    /// Accessed: set here so the CPU need not write descriptors that live in ROM.
    pub const A: u8 = 0x01;
    /// DPL 3.
    pub const DPL3: u8 = 0x60;
    /// System type: available 32/64-bit TSS.
    pub const TSS_AVAIL: u8 = 0x09;
}

/// Descriptor flag nibble bits.
pub mod dflags {
    /// 4 KiB granularity.
    pub const G: u8 = 0x8;
    /// 32-bit default operand size (D/B).
    pub const DB: u8 = 0x4;
    /// 64-bit code segment.
    pub const L: u8 = 0x2;
}

/// An 8-byte segment descriptor.
pub fn descriptor(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    let (base, limit) = (u64::from(base), u64::from(limit));
    (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (u64::from(access) << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (u64::from(flags & 0xf) << 52)
        | (((base >> 24) & 0xff) << 56)
}

/// The GDT every ROM loads (selectors in `layout::sel`). CODE16 has the ROM's base so 16-bit
/// protected-mode code runs at the same offsets as in real mode.
pub fn standard_gdt(rom_base: u64) -> Vec<u8> {
    use access::*;
    use dflags::*;
    let code = P | S | CODE | RW | A;
    let data = P | S | RW | A;
    let mut d = vec![0u64; usize::from(sel::GDT_END / 8)];
    let mut set = |s: u16, v: u64| d[usize::from(s / 8)] = v;
    set(sel::CODE32, descriptor(0, 0xf_ffff, code, G | DB));
    set(sel::DATA, descriptor(0, 0xf_ffff, data, G | DB));
    set(sel::CODE64, descriptor(0, 0xf_ffff, code, G | L));
    set(sel::DATA_SYSCALL, descriptor(0, 0xf_ffff, data, G | DB));
    set(sel::CODE16, descriptor(rom_base as u32, 0xffff, code, 0));
    set(sel::DATA16, descriptor(0, 0xffff, data, 0));
    set(
        sel::USER_CODE32 & !3,
        descriptor(0, 0xf_ffff, code | DPL3, G | DB),
    );
    set(
        sel::USER_DATA & !3,
        descriptor(0, 0xf_ffff, data | DPL3, G | DB),
    );
    set(
        sel::USER_CODE64 & !3,
        descriptor(0, 0xf_ffff, code | DPL3, G | L),
    );
    set(
        sel::TSS,
        descriptor(layout::TSS_ADDR as u32, 0x67, P | TSS_AVAIL, 0),
    );
    set(sel::DATA_RO, descriptor(0, 0xf_ffff, P | S | A, G | DB));
    set(
        sel::NOT_PRESENT,
        descriptor(0, 0xf_ffff, S | RW | A, G | DB),
    );
    // System type 2: LDT.
    set(
        sel::LDT,
        descriptor(layout::LDT_ADDR as u32, 4 * 8 - 1, P | 0x02, 0),
    );
    set(sel::DATA_4000, descriptor(0x4000, 0xfff, data, DB));
    d.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The 6-byte operand of LGDT/LIDT in 16/32-bit code (limit, 32-bit base), padded to 10
/// bytes so 64-bit code can use the same bytes (its base is 64-bit).
pub fn pseudo_descriptor(limit: u16, base: u64) -> Vec<u8> {
    let mut v = limit.to_le_bytes().to_vec();
    v.extend_from_slice(&base.to_le_bytes());
    v
}

/// Gate types.
pub mod gate {
    /// 32-bit (or 64-bit, in long mode) interrupt gate: clears IF.
    pub const INTERRUPT: u8 = 0x0e;
    /// 32-bit (or 64-bit) trap gate: leaves IF alone.
    pub const TRAP: u8 = 0x0f;
}

/// A 16-byte long-mode IDT gate.
pub fn gate64(handler: u64, selector: u16, ist: u8, dpl: u8, kind: u8, present: bool) -> [u8; 16] {
    let lo = (handler & 0xffff)
        | (u64::from(selector) << 16)
        | (u64::from(ist & 7) << 32)
        | (u64::from(kind) << 40)
        | (u64::from(dpl & 3) << 45)
        | (u64::from(present) << 47)
        | (((handler >> 16) & 0xffff) << 48);
    let hi = handler >> 32;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&lo.to_le_bytes());
    b[8..].copy_from_slice(&hi.to_le_bytes());
    b
}

/// An 8-byte protected-mode IDT gate.
pub fn gate32(handler: u32, selector: u16, dpl: u8, kind: u8, present: bool) -> [u8; 8] {
    let h = u64::from(handler);
    let v = (h & 0xffff)
        | (u64::from(selector) << 16)
        | (u64::from(kind) << 40)
        | (u64::from(dpl & 3) << 45)
        | (u64::from(present) << 47)
        | ((h >> 16) << 48);
    v.to_le_bytes()
}

/// RAM-init record installing a long-mode gate for `vector` to the symbol `handler`.
pub fn idt64_entry(vector: u8, handler: &str, ist: u8, dpl: u8) -> RamInit {
    let h = handler.to_string();
    RamInit::Late(
        layout::IDT_ADDR + u64::from(vector) * 16,
        Box::new(move |s: &Syms| {
            gate64(s.addr(&h), sel::CODE64, ist, dpl, gate::INTERRUPT, true).to_vec()
        }),
    )
}

/// RAM-init record installing a 32-bit interrupt gate for `vector` to the symbol `handler`.
pub fn idt32_entry(vector: u8, handler: &str, dpl: u8) -> RamInit {
    let h = handler.to_string();
    RamInit::Late(
        layout::IDT_ADDR + u64::from(vector) * 8,
        Box::new(move |s: &Syms| {
            gate32(s.addr(&h) as u32, sel::CODE32, dpl, gate::INTERRUPT, true).to_vec()
        }),
    )
}

/// A 32-bit TSS with the ring-0 stack `ss0:esp0` and no I/O bitmap.
pub fn tss32(esp0: u32, ss0: u16) -> Vec<u8> {
    let mut t = vec![0u8; 0x68];
    t[4..8].copy_from_slice(&esp0.to_le_bytes());
    t[8..10].copy_from_slice(&ss0.to_le_bytes());
    t[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    t
}

/// A 64-bit TSS with RSP0 and IST1..IST7 (`ist[k]` is ISTk+1; 0 = unused).
pub fn tss64(rsp0: u64, ist: &[u64]) -> Vec<u8> {
    let mut t = vec![0u8; 0x68];
    t[4..12].copy_from_slice(&rsp0.to_le_bytes());
    for (k, v) in ist.iter().enumerate() {
        t[0x24 + k * 8..0x2c + k * 8].copy_from_slice(&v.to_le_bytes());
    }
    t[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    t
}

/// Page-table entry bits (all three formats).
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User-accessible.
    pub const US: u64 = 1 << 2;
    /// Accessed (set by the CPU).
    pub const A: u64 = 1 << 5;
    /// Dirty (set by the CPU on a write through a leaf entry).
    pub const D: u64 = 1 << 6;
    /// Page size: this directory entry maps a large page.
    pub const PS: u64 = 1 << 7;
    /// Execute-disable (PAE and 4-level, with EFER.NXE).
    pub const XD: u64 = 1 << 63;
}

/// Which paging structures a `PageTables` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// 32-bit paging: 4-byte entries, 2 levels, 4 KiB or (CR4.PSE) 4 MiB pages.
    Bits32,
    /// PAE paging: 4 PDPTEs, 8-byte entries, 4 KiB or 2 MiB pages.
    Pae,
    /// 4-level paging (long mode): 4 KiB, 2 MiB or 1 GiB pages.
    Level4,
}

/// Page tables built at ROM build time, written into RAM at boot by RAM-init records.
/// Tables are allocated from `layout::PT_BASE`; intermediate entries are present, writable
/// and user-accessible, so the leaf entry alone decides the permissions.
#[derive(Clone, Debug)]
pub struct PageTables {
    kind: Paging,
    root: u64,
    next: u64,
    tables: Vec<u64>,
    /// Entry address -> value.
    entries: BTreeMap<u64, u64>,
    /// (table, index) -> child table.
    children: BTreeMap<(u64, u64), u64>,
    /// Addresses of entries that point at tables.
    pointers: std::collections::BTreeSet<u64>,
}

impl PageTables {
    /// Empty tables of `kind`; the root (CR3 target) is the first table allocated.
    pub fn new(kind: Paging) -> PageTables {
        let mut pt = PageTables {
            kind,
            root: 0,
            next: layout::PT_BASE,
            tables: Vec::new(),
            entries: BTreeMap::new(),
            children: BTreeMap::new(),
            pointers: Default::default(),
        };
        pt.root = pt.alloc();
        pt
    }

    /// What to load into CR3.
    pub fn cr3(&self) -> u64 {
        self.root
    }

    fn alloc(&mut self) -> u64 {
        let t = self.next;
        self.next += 0x1000;
        assert!(self.next <= layout::PT_END, "page-table area exhausted");
        self.tables.push(t);
        t
    }

    fn entry_size(&self) -> u64 {
        if self.kind == Paging::Bits32 { 4 } else { 8 }
    }

    /// Index shifts from the root down to 4 KiB pages.
    fn shifts(&self) -> &'static [u32] {
        match self.kind {
            Paging::Bits32 => &[22, 12],
            Paging::Pae => &[30, 21, 12],
            Paging::Level4 => &[39, 30, 21, 12],
        }
    }

    fn index_bits(&self, shift: u32) -> u32 {
        match (self.kind, shift) {
            (Paging::Bits32, _) => 10,
            (Paging::Pae, 30) => 2,
            _ => 9,
        }
    }

    /// Address of the entry that maps `virt` at the level of `page_shift` (12, 21/22, 30),
    /// creating the tables above it.
    pub fn entry_addr(&mut self, virt: u64, page_shift: u32) -> u64 {
        let shifts = self.shifts();
        let mut table = self.root;
        for &s in shifts {
            let idx = (virt >> s) & ((1 << self.index_bits(s)) - 1);
            let addr = table + idx * self.entry_size();
            if s == page_shift {
                return addr;
            }
            table = match self.children.get(&(table, idx)) {
                Some(&t) => t,
                None => {
                    if let Some(v) = self.entries.get(&addr) {
                        panic!("{virt:#x}: entry {addr:#x} already maps a large page ({v:#x})");
                    }
                    let t = self.alloc();
                    // PAE PDPTEs have no RW/US bits (they are reserved there).
                    let flags = if self.kind == Paging::Pae && s == 30 {
                        pte::P
                    } else {
                        pte::P | pte::RW | pte::US
                    };
                    self.entries.insert(addr, t | flags);
                    self.children.insert((table, idx), t);
                    self.pointers.insert(addr);
                    t
                }
            };
        }
        panic!("no paging level with shift {page_shift}");
    }

    /// Map the page of size `1 << page_shift` at `virt` to `phys` with `flags` (P is
    /// implied unless `flags` says otherwise through `map_raw`).
    pub fn map(&mut self, virt: u64, phys: u64, page_shift: u32, flags: u64) {
        let large = if page_shift > 12 { pte::PS } else { 0 };
        self.map_raw(virt, page_shift, phys | flags | large | pte::P);
    }

    /// Set the entry for `virt` at `page_shift`'s level to exactly `value`.
    pub fn map_raw(&mut self, virt: u64, page_shift: u32, value: u64) {
        let addr = self.entry_addr(virt, page_shift);
        if self.pointers.contains(&addr) {
            panic!("{virt:#x}: would overwrite a table pointer");
        }
        self.entries.insert(addr, value);
    }

    /// Identity-map `[start, end)` with pages of `1 << page_shift` bytes.
    pub fn identity(&mut self, start: u64, end: u64, page_shift: u32, flags: u64) {
        let mut v = start;
        while v < end {
            self.map(v, v, page_shift, flags);
            v += 1 << page_shift;
        }
    }

    /// The physical address of the entry mapping `virt` at `page_shift`'s level (for ROMs
    /// that read or change entries at run time). Panics if the tables above do not exist.
    pub fn entry_of(&self, virt: u64, page_shift: u32) -> u64 {
        let mut table = self.root;
        for &s in self.shifts() {
            let idx = (virt >> s) & ((1 << self.index_bits(s)) - 1);
            if s == page_shift {
                return table + idx * self.entry_size();
            }
            table = *self
                .children
                .get(&(table, idx))
                .unwrap_or_else(|| panic!("{virt:#x} has no table at shift {s}"));
        }
        panic!("no paging level with shift {page_shift}");
    }

    /// RAM-init records that zero every table and then write the entries, runs of equally
    /// spaced values compressed into one record.
    pub fn records(&self) -> Vec<RamInit> {
        let mut out: Vec<RamInit> = self
            .tables
            .iter()
            .map(|&t| RamInit::Zero(t, 0x1000))
            .collect();
        let es = self.entry_size();
        let list: Vec<(u64, u64)> = self.entries.iter().map(|(&a, &v)| (a, v)).collect();
        let mut k = 0;
        while k < list.len() {
            let (addr, first) = list[k];
            let mut n = 1;
            let step = if k + 1 < list.len() {
                list[k + 1].1.wrapping_sub(first)
            } else {
                0
            };
            while k + n < list.len()
                && list[k + n].0 == addr + n as u64 * es
                && list[k + n].1 == first.wrapping_add(step.wrapping_mul(n as u64))
            {
                n += 1;
            }
            if es == 8 {
                out.push(RamInit::Run64 {
                    addr,
                    count: n as u32,
                    first,
                    step: if n > 1 { step } else { 0 },
                });
            } else {
                out.push(RamInit::Run32 {
                    addr,
                    count: n as u32,
                    first: first as u32,
                    step: if n > 1 { step as u32 } else { 0 },
                });
            }
            k += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_descriptor_flat_code() {
        // The classic flat 32-bit ring-0 code descriptor.
        assert_eq!(descriptor(0, 0xf_ffff, 0x9b, 0xc), 0x00cf_9b00_0000_ffff);
    }

    #[test]
    fn test_page_tables_identity_compresses() {
        let mut pt = PageTables::new(Paging::Level4);
        pt.identity(0, 1 << 30, 21, pte::RW);
        let recs = pt.records();
        // 3 zeroed tables, PML4E, PDPTE, one run of 512 PDEs.
        assert_eq!(recs.len(), 6, "{recs:?}");
        assert_eq!(pt.entry_of(0x20_0000, 21), pt.cr3() + 0x2000 + 8);
    }
}
