//! Instruction fetch and decode, with a cache of decoded basic blocks.
//!
//! Decoding with iced-x86 costs more than executing most instructions, so straight-line runs
//! of instructions ("blocks": they end at a control transfer, at an instruction that changes
//! how the following code is fetched or decoded, at 32 instructions, or before the end of the
//! 4 KiB page) are decoded once and kept in a direct-mapped cache keyed by physical address,
//! RIP and code size. Each time a block is entered its bytes are compared with the bytes in
//! memory now, so self-modifying code, DMA and remapping need no invalidation protocol:
//! changed bytes simply miss. A store into the page of the block being executed ends the
//! block after that instruction (the run loop watches that page), so code that patches the
//! instructions right after itself also sees its own writes.

use iced_x86::{Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};

use super::cx::Cx;
use super::fast::{Fast, classify};
use super::mmu::{Access, TlbEntry};
use crate::fault::Fault;

const BLOCK_SLOTS: usize = 4096;
/// Most instructions in one block.
pub const MAX_BLOCK_INSNS: usize = 32;

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
    /// RIP of the next instruction, wrapped to the code size.
    pub next_rip: u64,
}

/// A decoded straight-line run of instructions inside one page.
#[derive(Debug)]
pub struct Block {
    phys: u64,
    rip: u64,
    bitness: u8,
    /// The bytes the block was decoded from.
    code: Vec<u8>,
    /// The instructions, in order.
    pub insns: Vec<Decoded>,
}

impl Block {
    /// Guest-physical address of the page holding the block.
    pub fn page(&self) -> u64 {
        self.phys & !0xfff
    }
}

/// The decoded-block cache.
pub struct ICache {
    blocks: Vec<Option<Box<Block>>>,
    single: Decoded,
    /// The last code page's translation: (linear page + 1, TLB generation, user access).
    code_page: (u64, u64, bool),
    code_entry: TlbEntry,
    /// Block lookups that found a valid block.
    pub hits: u64,
    /// Blocks decoded.
    pub misses: u64,
    /// Instructions decoded one at a time (code in MMIO, or crossing a page end).
    pub singles: u64,
}

// SAFETY: the only non-Send field is the host page pointer inside `code_entry`, a copy of a
// TLB entry pointing into guest RAM, which is shared between threads by design.
unsafe impl Send for ICache {}

impl std::fmt::Debug for ICache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ICache")
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

impl Default for ICache {
    fn default() -> Self {
        ICache {
            blocks: (0..BLOCK_SLOTS).map(|_| None).collect(),
            single: Decoded {
                insn: Instruction::default(),
                bytes: [0; 16],
                asz: 0,
                fast: Fast::None,
                next_rip: 0,
            },
            code_page: (0, 0, false),
            code_entry: TlbEntry::default(),
            hits: 0,
            misses: 0,
            singles: 0,
        }
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

fn wrap_rip(v: u64, bitness: u32) -> u64 {
    match bitness {
        16 => v & 0xffff,
        32 => v & 0xffff_ffff,
        _ => v,
    }
}

fn make_decoded(insn: Instruction, bytes: &[u8], bitness: u32) -> Decoded {
    let mut b = [0u8; 16];
    let n = insn.len().min(16);
    b[..n].copy_from_slice(&bytes[..n]);
    Decoded {
        asz: address_size(&b[..n], bitness),
        fast: classify(&insn),
        next_rip: wrap_rip(insn.next_ip(), bitness),
        insn,
        bytes: b,
    }
}

/// Whether the code after `i` may be fetched or decoded differently because of `i` (or is
/// not reached by falling through), so a block must end with it.
fn ends_block(i: &Instruction) -> bool {
    if i.flow_control() != FlowControl::Next {
        return true;
    }
    match i.mnemonic() {
        // Paging, mode and single-step changes take effect on the next fetch.
        Mnemonic::Wrmsr
        | Mnemonic::Lmsw
        | Mnemonic::Invlpg
        | Mnemonic::Popf
        | Mnemonic::Popfd
        | Mnemonic::Popfq
        | Mnemonic::Hlt
        | Mnemonic::Sti => true,
        Mnemonic::Mov => i.op_kind(0) == OpKind::Register && i.op_register(0).is_cr(),
        // REP string instructions restart themselves.
        _ => i.has_rep_prefix() || i.has_repne_prefix(),
    }
}

impl ICache {
    fn code_translation(&mut self, cx: &mut Cx, lin: u64) -> Result<TlbEntry, Fault> {
        let user = cx.cpl() == 3;
        let key = ((lin >> 12) + 1, cx.tlb.generation, user);
        if key == self.code_page {
            return Ok(self.code_entry);
        }
        let e = cx.tlb.translate(cx.st, cx.ram, lin, Access::Exec, user)?;
        self.code_page = key;
        self.code_entry = e;
        Ok(e)
    }

    /// The block starting at linear address `lin` (RIP `rip`), decoding it if needed.
    /// `Ok(None)`: no block can start here (MMIO code, an instruction crossing the page end,
    /// an invalid instruction); use `fetch_single`.
    #[inline]
    pub fn block(
        &mut self,
        cx: &mut Cx,
        lin: u64,
        rip: u64,
        bitness: u32,
    ) -> Result<Option<&Block>, Fault> {
        let e = self.code_translation(cx, lin)?;
        if e.host.is_null() {
            return Ok(None);
        }
        let off = (lin & 0xfff) as usize;
        let phys = e.phys | off as u64;
        let slot = ((phys ^ (phys >> 12).wrapping_mul(0x9e37_79b9)) as usize) & (BLOCK_SLOTS - 1);
        // SAFETY: the TLB entry's host pointer covers the whole 4 KiB page; off < 4096.
        let page = unsafe { std::slice::from_raw_parts(e.host.add(off), 0x1000 - off) };
        if let Some(b) = &self.blocks[slot] {
            // ROM cannot change under a block; RAM is compared byte for byte.
            if b.phys == phys
                && b.rip == rip
                && u32::from(b.bitness) == bitness
                && (e.is_rom() || page.starts_with(&b.code))
            {
                self.hits += 1;
                return Ok(self.blocks[slot].as_deref());
            }
        }
        // Decode a new block from the bytes up to the page end.
        let mut dec = Decoder::with_ip(bitness, page, rip, DecoderOptions::NONE);
        let mut insns = Vec::new();
        let mut len = 0usize;
        let mut i = Instruction::default();
        while insns.len() < MAX_BLOCK_INSNS && dec.can_decode() {
            dec.decode_out(&mut i);
            if i.is_invalid() || dec.last_error() == DecoderError::NoMoreBytes {
                break;
            }
            let n = i.len();
            insns.push(make_decoded(i, &page[len..len + n], bitness));
            len += n;
            if ends_block(&i) {
                break;
            }
        }
        if insns.is_empty() {
            return Ok(None);
        }
        self.misses += 1;
        self.blocks[slot] = Some(Box::new(Block {
            phys,
            rip,
            bitness: bitness as u8,
            code: page[..len].to_vec(),
            insns,
        }));
        Ok(self.blocks[slot].as_deref())
    }

    /// Fetch and decode one instruction at `lin` the slow way (MMIO code, page crossing,
    /// invalid encodings).
    pub fn fetch_single(
        &mut self,
        cx: &mut Cx,
        lin: u64,
        rip: u64,
        bitness: u32,
    ) -> Result<&Decoded, Fault> {
        self.singles += 1;
        let mut buf = [0u8; 16];
        let n = cx.fetch(lin, &mut buf, false)?;
        let mut insn = Instruction::default();
        let mut dec = Decoder::with_ip(bitness, &buf[..n], rip, DecoderOptions::NONE);
        dec.decode_out(&mut insn);
        if dec.last_error() == DecoderError::NoMoreBytes && n < 15 {
            let n = cx.fetch(lin, &mut buf, true)?;
            dec = Decoder::with_ip(bitness, &buf[..n], rip, DecoderOptions::NONE);
            dec.decode_out(&mut insn);
        }
        if insn.is_invalid() {
            return Err(Fault::UD);
        }
        self.single = make_decoded(insn, &buf, bitness);
        Ok(&self.single)
    }
}
