//! Instruction fetch and decode with a decoded-instruction cache.
//!
//! Decoding with iced-x86 costs more than executing most instructions, so decoded
//! instructions are kept in a direct-mapped cache keyed by physical address, RIP and code
//! size. A hit is validated by comparing the cached bytes with the bytes in memory now, so
//! self-modifying code, DMA and remapping need no invalidation protocol: changed bytes
//! simply miss.

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction};

use super::cx::Cx;
use super::fast::{Fast, classify};
use super::mmu::{Access, TlbEntry};
use crate::fault::Fault;

const ICACHE_ENTRIES: usize = 8192;

/// A decoded instruction and what the executor needs besides it.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    /// The instruction (its IP is the RIP it was decoded at).
    pub insn: Instruction,
    /// Its bytes (the first `insn.len()` are meaningful).
    pub bytes: [u8; 16],
    /// Address size in bytes.
    pub asz: u8,
    /// Fast-path form, if any.
    pub fast: Fast,
}

#[derive(Clone, Copy)]
struct Entry {
    /// Physical address + 1 (0 = empty).
    tag: u64,
    rip: u64,
    bitness: u8,
    d: Decoded,
}

/// The decoded-instruction cache.
pub struct ICache {
    entries: Vec<Entry>,
    /// The last code page's translation: (linear page + 1, TLB generation, user access).
    code_page: (u64, u64, bool),
    code_entry: TlbEntry,
    /// Hits and misses, for `--stats`.
    pub hits: u64,
    /// Misses (decodes).
    pub misses: u64,
}

// SAFETY: the only non-Send field is the host page pointer inside `code_entry`, a copy of a
// TLB entry pointing into guest RAM, which is shared between threads by design.
unsafe impl Send for ICache {}

impl std::fmt::Debug for ICache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ICache").field("hits", &self.hits).field("misses", &self.misses).finish()
    }
}

impl Default for ICache {
    fn default() -> Self {
        let empty = Entry {
            tag: 0,
            rip: 0,
            bitness: 0,
            d: Decoded { insn: Instruction::default(), bytes: [0; 16], asz: 0, fast: Fast::None },
        };
        ICache { entries: vec![empty; ICACHE_ENTRIES + 1], code_page: (0, 0, false), code_entry: TlbEntry::default(), hits: 0, misses: 0 }
    }
}

/// Address size in bytes of an instruction decoded at `bitness`, from its prefixes.
pub fn address_size(bytes: &[u8], bitness: u32) -> u8 {
    let mut toggled = false;
    for &b in bytes {
        match b {
            0x67 => toggled = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0xf0 | 0xf2 | 0xf3 => {}
            _ => break,
        }
    }
    match (bitness, toggled) {
        (64, false) => 8,
        (64, true) | (32, false) | (16, true) => 4,
        _ => 2,
    }
}

fn decode(bytes: &[u8], bitness: u32, rip: u64) -> Result<(Instruction, bool), Fault> {
    let mut i = Instruction::default();
    let mut dec = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE);
    dec.decode_out(&mut i);
    let short = dec.last_error() == DecoderError::NoMoreBytes;
    Ok((i, short))
}

fn mask_bytes(b: &[u8; 16], len: usize) -> u128 {
    let v = u128::from_le_bytes(*b);
    if len >= 16 { v } else { v & ((1u128 << (len * 8)) - 1) }
}

impl ICache {
    /// Fetch and decode the instruction at linear address `lin` (RIP `rip`).
    #[inline]
    pub fn fetch(&mut self, cx: &mut Cx, lin: u64, rip: u64, bitness: u32) -> Result<&Decoded, Fault> {
        let user = cx.cpl() == 3;
        let key = ((lin >> 12) + 1, cx.tlb.generation, user);
        let e = if key == self.code_page {
            self.code_entry
        } else {
            let e = cx.tlb.translate(cx.st, cx.ram, lin, Access::Exec, user)?;
            self.code_page = key;
            self.code_entry = e;
            e
        };
        let off = (lin & 0xfff) as usize;
        if !e.host.is_null() && off <= 0x1000 - 16 {
            let phys = e.phys | off as u64;
            let slot = ((phys ^ (phys >> 13)) as usize) & (ICACHE_ENTRIES - 1);
            let mut now = [0u8; 16];
            // SAFETY: the TLB entry's host pointer covers the 4 KiB page and off + 16 <= 4096.
            unsafe { std::ptr::copy_nonoverlapping(e.host.add(off), now.as_mut_ptr(), 16) };
            let ent = &self.entries[slot];
            if ent.tag == phys + 1 && ent.rip == rip && u32::from(ent.bitness) == bitness {
                let len = ent.d.insn.len();
                if mask_bytes(&now, len) == mask_bytes(&ent.d.bytes, len) {
                    self.hits += 1;
                    return Ok(&self.entries[slot].d);
                }
            }
            self.misses += 1;
            let (insn, _) = decode(&now[..15], bitness, rip)?;
            if insn.is_invalid() {
                return Err(Fault::UD);
            }
            let d = Decoded { insn, bytes: now, asz: address_size(&now[..insn.len()], bitness), fast: classify(&insn) };
            self.entries[slot] = Entry { tag: phys + 1, rip, bitness: bitness as u8, d };
            return Ok(&self.entries[slot].d);
        }
        // Slow path: MMIO code or an instruction that may cross the page end.
        self.misses += 1;
        let mut buf = [0u8; 16];
        let n = cx.fetch(lin, &mut buf, false)?;
        let (mut insn, short) = decode(&buf[..n], bitness, rip)?;
        if short && n < 15 {
            let n = cx.fetch(lin, &mut buf, true)?;
            insn = decode(&buf[..n], bitness, rip)?.0;
        }
        if insn.is_invalid() {
            return Err(Fault::UD);
        }
        let d = Decoded { insn, bytes: buf, asz: address_size(&buf[..insn.len()], bitness), fast: classify(&insn) };
        // Uncacheable: park it in the spare slot past the direct-mapped entries.
        self.entries[ICACHE_ENTRIES] = Entry { tag: 0, rip, bitness: bitness as u8, d };
        Ok(&self.entries[ICACHE_ENTRIES].d)
    }
}
