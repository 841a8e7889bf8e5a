//! The block cache: translated blocks keyed by (guest-physical RIP, RIP, mode), the code pages
//! they come from (with a snapshot of their bytes, a bitmap of which bytes are code, and a
//! validity cell), chaining slots and their back-references, and invalidation.
//!
//! Self-modifying code and other writes to code:
//! - A guest store through generated code never hits a code page in the write TLB (pages
//!   become code pages only after their write-TLB entries are dropped, and code pages are
//!   never entered again), so it reaches the store helper, which invalidates exactly the
//!   blocks whose bytes it overwrote (`invalidate_range`) and makes the block leave after the
//!   store if any was.
//! - Writes the JIT cannot see (interpreter fallback instructions that write memory,
//!   exception delivery, device DMA during port/MMIO accesses or while the vCPU is outside
//!   `run`) bump `JitCtx::code_epoch`. Every block checks its page's cell against the epoch
//!   on entry; on a mismatch the run loop compares the page's blocks with their snapshot
//!   (`validate_page`), drops the ones whose bytes changed, and marks the page valid again.
//!   This costs one page compare per code page touched after such an event, and nothing in
//!   between.
//!
//! Invalidated code stays in the code arena until the next generation flush (when the arena
//! fills, everything is dropped at once); it is unreachable once its map entry, incoming
//! links and jump-cache entries are gone.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use cpu::GuestRam;

use crate::ctx::JitCtx;

/// A cache key: where a block starts and in which mode it was translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Guest-physical address of the first byte.
    pub phys: u64,
    /// RIP of the first instruction.
    pub rip: u64,
    /// Mode bits that change decoding or semantics (`engine::mode_key`).
    pub mode: u64,
}

/// No slot.
pub const NO_SLOT: u32 = u32::MAX;

/// A block's byte runs as page-offset ranges `start..end` (clamped to the page).
fn spans(ranges: &[(u16, u16)]) -> impl Iterator<Item = (usize, usize)> + '_ {
    ranges.iter().map(|&(o, l)| {
        let o = usize::from(o).min(4096);
        (o, (o + usize::from(l)).min(4096))
    })
}

/// A cached block: translated code, or a marker that the instruction at its start runs on
/// the interpreter.
#[derive(Debug)]
pub struct Block {
    /// Where it starts.
    pub key: Key,
    /// Guest bytes it covers in its page: (offset, length) runs.
    pub ranges: Vec<(u16, u16)>,
    /// Host address of its generated function (0: interpreter fallback).
    pub func: usize,
    /// Instructions translated.
    pub insns: u32,
    /// Fallback: the instruction (statistics, and what it may write).
    pub insn: iced_x86::Instruction,
    /// Its chaining slots (word ids).
    pub slots: [u32; 2],
    /// Chaining slots of other blocks that point at it.
    pub incoming: Vec<u32>,
    /// Still reachable.
    pub live: bool,
}

/// A guest-physical page holding translated code.
struct Page {
    blocks: Vec<u32>,
    /// The bytes of every block as translated.
    snapshot: Box<[u8; 4096]>,
    /// Which bytes belong to some live block.
    bitmap: [u64; 64],
    /// Word id of the validity cell generated code checks.
    cell: u32,
}

/// 64-bit words at stable addresses that generated code reads: chaining slots and page
/// validity cells.
#[derive(Debug, Default)]
pub struct Words {
    chunks: Vec<Box<[AtomicU64]>>,
    next: u32,
}

const CHUNK: u32 = 4096;

impl Words {
    /// A new word holding `v`.
    pub fn alloc(&mut self, v: u64) -> u32 {
        let id = self.next;
        if id.is_multiple_of(CHUNK) {
            self.chunks
                .push((0..CHUNK).map(|_| AtomicU64::new(0)).collect());
        }
        self.next += 1;
        self.set(id, v);
        id
    }
    fn word(&self, id: u32) -> &AtomicU64 {
        &self.chunks[(id / CHUNK) as usize][(id % CHUNK) as usize]
    }
    /// Its address, for generated code.
    pub fn addr(&self, id: u32) -> u64 {
        self.word(id).as_ptr() as u64
    }
    /// Set a word.
    pub fn set(&self, id: u32, v: u64) {
        self.word(id).store(v, Ordering::Relaxed);
    }
    /// Read a word.
    pub fn get(&self, id: u32) -> u64 {
        self.word(id).load(Ordering::Relaxed)
    }
}

/// A fast hasher for integer keys (FxHash).
#[derive(Default, Clone, Copy, Debug)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Counters the cache keeps.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    /// Blocks dropped because their bytes changed.
    pub invalidated: u64,
    /// Page revalidations after a code-epoch bump.
    pub revalidations: u64,
    /// Links made between blocks.
    pub links: u64,
}

/// The block cache of one code generation.
#[derive(Default)]
pub struct Cache {
    /// Every block of this generation (dead ones too, until the flush).
    pub blocks: Vec<Block>,
    map: FxMap<Key, u32>,
    pages: FxMap<u64, Page>,
    /// Slots and cells.
    pub words: Words,
    /// The block owning each slot (by word id; cells map to `u32::MAX`).
    owner: FxMap<u32, u32>,
    cross_links: Vec<u32>,
    /// Counters.
    pub stats: CacheStats,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("blocks", &self.blocks.len())
            .field("pages", &self.pages.len())
            .finish()
    }
}

impl Cache {
    /// The live block for `key`.
    pub fn lookup(&self, key: &Key) -> Option<u32> {
        self.map.get(key).copied()
    }

    /// Whether no page holds translated code.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether the guest-physical page `page` holds translated code.
    pub fn is_code_page(&self, page: u64) -> bool {
        self.pages.contains_key(&page)
    }

    /// The validity cell of `page`, creating the page record if needed. Returns the cell's
    /// word id and whether the page is new (its write-TLB entries must then be dropped).
    pub fn page_cell(&mut self, ctx: &JitCtx, page: u64) -> (u32, bool) {
        if let Some(p) = self.pages.get(&page) {
            return (p.cell, false);
        }
        let cell = self.words.alloc(ctx.code_epoch);
        self.owner.insert(cell, u32::MAX);
        self.pages.insert(
            page,
            Page {
                blocks: Vec::new(),
                snapshot: Box::new([0; 4096]),
                bitmap: [0; 64],
                cell,
            },
        );
        (cell, true)
    }

    /// Allocate the two chaining slots of the next block.
    pub fn alloc_slots(&mut self) -> [u32; 2] {
        let id = self.blocks.len() as u32;
        let s = [self.words.alloc(0), self.words.alloc(0)];
        for w in s {
            self.owner.insert(w, id);
        }
        s
    }

    /// Id the next added block will get.
    pub fn next_id(&self) -> u32 {
        self.blocks.len() as u32
    }

    /// Add a block translated from `page_bytes`, its whole page as it was then (the page
    /// record exists, see `page_cell`).
    pub fn add(&mut self, block: Block, page_bytes: &[u8]) -> u32 {
        let id = self.blocks.len() as u32;
        let page = block.key.phys & !0xfff;
        let p = self
            .pages
            .get_mut(&page)
            .expect("page_cell creates the page before add");
        for (off, end) in spans(&block.ranges) {
            p.snapshot[off..end].copy_from_slice(&page_bytes[off..end]);
            for k in off..end {
                p.bitmap[k / 64] |= 1 << (k % 64);
            }
        }
        p.blocks.push(id);
        self.map.insert(block.key, id);
        self.blocks.push(block);
        id
    }

    /// Make `slot` jump to block `target`.
    pub fn link(&mut self, slot: u32, target: u32) {
        let Some(&src) = self.owner.get(&slot) else {
            return;
        };
        let Some(t) = self.blocks.get(target as usize) else {
            return;
        };
        if !t.live || t.func == 0 || src == u32::MAX {
            return;
        }
        let cross = (self.blocks[src as usize].key.rip ^ t.key.rip) & !0xfff != 0;
        self.words.set(slot, t.func as u64);
        self.blocks[target as usize].incoming.push(slot);
        if cross {
            self.cross_links.push(slot);
        }
        self.stats.links += 1;
    }

    /// Drop every link between blocks on different linear pages (their translation may have
    /// changed: called when the TLB is flushed).
    pub fn unlink_cross_page(&mut self) {
        for s in self.cross_links.drain(..) {
            self.words.set(s, 0);
        }
    }

    /// Drop block `id`: no lookup, link or jump-cache entry reaches it any more.
    pub fn invalidate_block(&mut self, ctx: &mut JitCtx, id: u32) {
        let Some(b) = self.blocks.get_mut(id as usize) else {
            return;
        };
        if !b.live {
            return;
        }
        b.live = false;
        let key = b.key;
        let incoming = std::mem::take(&mut b.incoming);
        for s in incoming {
            self.words.set(s, 0);
        }
        if self.map.get(&key) == Some(&id) {
            self.map.remove(&key);
        }
        let page = key.phys & !0xfff;
        if let Some(p) = self.pages.get_mut(&page) {
            p.blocks.retain(|&x| x != id);
            if p.blocks.is_empty() {
                // Blocks of a dead page can never validate again.
                self.words.set(p.cell, 0);
                self.pages.remove(&page);
            } else {
                p.bitmap = [0; 64];
                for &x in &p.blocks {
                    for (o, e) in spans(&self.blocks[x as usize].ranges) {
                        for k in o..e {
                            p.bitmap[k / 64] |= 1 << (k % 64);
                        }
                    }
                }
            }
        }
        ctx.flush_jc();
        self.stats.invalidated += 1;
    }

    /// Invalidate the blocks whose bytes overlap the guest-physical range `phys..phys+len`
    /// (within one page). Returns whether any was.
    pub fn invalidate_range(&mut self, ctx: &mut JitCtx, phys: u64, len: u64) -> bool {
        let page = phys & !0xfff;
        let Some(p) = self.pages.get(&page) else {
            return false;
        };
        let off = (phys & 0xfff) as usize;
        let end = (off + len as usize).min(4096);
        if !(off..end).any(|k| p.bitmap[k / 64] & (1 << (k % 64)) != 0) {
            return false;
        }
        let hit: Vec<u32> = p
            .blocks
            .iter()
            .copied()
            .filter(|&x| spans(&self.blocks[x as usize].ranges).any(|(o, e)| o < end && off < e))
            .collect();
        for x in &hit {
            self.invalidate_block(ctx, *x);
        }
        !hit.is_empty()
    }

    /// Compare the blocks of `page` with guest memory, drop those whose bytes changed, and
    /// mark the page valid for the current epoch.
    pub fn validate_page(&mut self, ctx: &mut JitCtx, ram: &GuestRam, page: u64) {
        let Some(p) = self.pages.get(&page) else {
            return;
        };
        // Only the blocks' bytes are read back (no copy of the whole page).
        let mut now = [0u8; 4096];
        let mut gone = false;
        let mut changed = Vec::new();
        for &x in &p.blocks {
            let differs = spans(&self.blocks[x as usize].ranges).any(|(o, e)| {
                if !ram.read(page + o as u64, &mut now[o..e]) {
                    gone = true;
                }
                now[o..e] != p.snapshot[o..e]
            });
            if differs || gone {
                changed.push(x);
            }
        }
        for x in changed {
            self.invalidate_block(ctx, x);
        }
        if let Some(p) = self.pages.get(&page) {
            self.words.set(p.cell, ctx.code_epoch);
        }
        self.stats.revalidations += 1;
    }

    /// Whether `page`'s cell says it is valid for the current epoch.
    pub fn page_valid(&self, ctx: &JitCtx, page: u64) -> bool {
        self.pages
            .get(&page)
            .is_some_and(|p| self.words.get(p.cell) == ctx.code_epoch)
    }
}
