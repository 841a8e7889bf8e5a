//! The JIT's soft TLB (the QEMU `softmmu` idea): direct-mapped read and write arrays in
//! `JitCtx`, indexed by linear page number, each entry a linear page tag and the addend that
//! turns a linear address into a host address. Generated code probes them inline; a miss, an
//! access that crosses a page, MMIO, ROM writes, stores to pages holding translated code and
//! every fault go to the helpers, which use the interpreter's MMU (`Interp::translate`,
//! `read_linear`, `write_linear`) and refill the arrays for plain RAM pages.
//!
//! The arrays are flushed when the interpreter's TLB generation changes (CR0/CR3/CR4/EFER
//! writes, INVLPG) and when the mode key (CPL among others) changes, so an entry is always a
//! translation the interpreter would make now with the current privilege.

use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, condcodes::IntCC, types};

use cpu::interp::mmu::Access;
use cpu::{Fault, VmIo};

use crate::ctx::{JitCtx, TlbSlot};
use crate::engine::Engine;
use crate::offsets::{self, TLB_ENTRIES};
use crate::translate::{Helper, Translator, status, trusted, ty};

/// Flags for guest memory accesses through the TLB: the fast path only dereferences host
/// pointers to mapped guest RAM, so they cannot trap; they need not be aligned.
fn guest() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The `info` argument of the memory helpers: size in the low byte, bit 8 for SS.
fn info(size: u32, ss: bool) -> u64 {
    u64::from(size) | if ss { 1 << 8 } else { 0 }
}

/// A read-modify-write access in progress: whether the write TLB mapped the page, and the
/// host address it gave.
#[derive(Clone, Copy, Debug)]
pub struct Rmw {
    hit: Value,
    host: Value,
}

impl Translator<'_, '_> {
    /// Probe a TLB (`base`: `offsets::ctx::RTLB` or `WTLB`): the entry address and whether
    /// it maps the whole access (a tag match on the page of the access's last byte also
    /// rejects accesses that cross into the next page).
    pub(crate) fn tlb_probe(&mut self, lin: Value, size: u32, base: i32) -> (Value, Value) {
        let last = if size > 1 {
            self.b.ins().iadd_imm_s(lin, i64::from(size - 1))
        } else {
            lin
        };
        let want = self.b.ins().band_imm_s(last, !0xfff);
        // Entry offset: the page number's low bits, scaled by the entry size, in two steps.
        let sh = self.b.ins().ushr_imm_s(lin, 12 - offsets::TLB_SLOT_SHIFT);
        let off = self
            .b
            .ins()
            .band_imm_s(sh, ((TLB_ENTRIES - 1) << offsets::TLB_SLOT_SHIFT) as i64);
        let ent = self.b.ins().iadd(self.ctx, off);
        let tag = self
            .b
            .ins()
            .load(types::I64, trusted(), ent, base + offsets::TLB_TAG);
        let hit = self.b.ins().icmp(IntCC::Equal, tag, want);
        (ent, hit)
    }

    /// The host address of `lin` on a hit in the TLB entry `ent` of the table at `base`
    /// (RTLB or WTLB): `lin` plus the entry's addend.
    pub(crate) fn tlb_host(&mut self, ent: Value, lin: Value, base: i32) -> Value {
        let addend = self
            .b
            .ins()
            .load(types::I64, trusted(), ent, base + offsets::TLB_ADDEND);
        self.b.ins().iadd(lin, addend)
    }

    /// The load slow path: the helper's value, or the instruction's fault exit.
    fn load_miss(&mut self, lin: Value, size: u32, ss: bool) -> Value {
        let inf = self.imm64(info(size, ss));
        let st = self.call_helper(Helper::Load, &[lin, inf]);
        let ok = self.b.create_block();
        let fault = self.fault_exit();
        self.b.ins().brif(st, fault, &[], ok, &[]);
        self.b.switch_to_block(ok);
        let x64 = self
            .b
            .ins()
            .load(types::I64, trusted(), self.ctx, offsets::ctx::HELPER_VAL);
        self.trunc(x64, size)
    }

    /// Load `size` bytes at linear address `lin` (faults leave through the instruction's
    /// fault exit).
    pub fn load_mem(&mut self, lin: Value, size: u32, ss: bool) -> Value {
        let (ent, hit) = self.tlb_probe(lin, size, offsets::ctx::RTLB);
        let hit_blk = self.b.create_block();
        let miss_blk = self.b.create_block();
        let join = self.b.create_block();
        let v = self.b.append_block_param(join, ty(size));
        self.b.ins().brif(hit, hit_blk, &[], miss_blk, &[]);

        self.b.switch_to_block(hit_blk);
        let host = self.tlb_host(ent, lin, offsets::ctx::RTLB);
        let x = self.b.ins().load(ty(size), guest(), host, 0);
        self.b.ins().jump(join, &Self::arg(x));

        self.b.set_cold_block(miss_blk);
        self.b.switch_to_block(miss_blk);
        let x = self.load_miss(lin, size, ss);
        self.b.ins().jump(join, &Self::arg(x));

        self.b.switch_to_block(join);
        v
    }

    /// The store slow path: done, or the instruction's fault exit, or its exit to the
    /// interpreter (a store into translated code or to a device).
    fn store_miss(
        &mut self,
        lin: Value,
        size: u32,
        ss: bool,
        v: Value,
        done: cranelift_codegen::ir::Block,
    ) {
        let inf = self.imm64(info(size, ss));
        let v64 = self.zext64(v, size);
        let st = self.call_helper(Helper::Store, &[lin, v64, inf]);
        let not_ok = self.b.create_block();
        self.b.ins().brif(st, not_ok, &[], done, &[]);
        self.b.switch_to_block(not_ok);
        let is_fault = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, st, status::FAULT as i64);
        let fault = self.fault_exit();
        let interp = self.interp_exit();
        self.b.ins().brif(is_fault, fault, &[], interp, &[]);
    }

    /// Store `size` bytes of `v` at linear address `lin`.
    pub fn store_mem(&mut self, lin: Value, size: u32, ss: bool, v: Value) {
        let (ent, hit) = self.tlb_probe(lin, size, offsets::ctx::WTLB);
        let hit_blk = self.b.create_block();
        let miss_blk = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(hit, hit_blk, &[], miss_blk, &[]);

        self.b.switch_to_block(hit_blk);
        let host = self.tlb_host(ent, lin, offsets::ctx::WTLB);
        self.b.ins().store(guest(), v, host, 0);
        self.b.ins().jump(join, &[]);

        self.b.set_cold_block(miss_blk);
        self.b.switch_to_block(miss_blk);
        self.store_miss(lin, size, ss, v, join);

        self.b.switch_to_block(join);
    }

    /// The load of a read-modify-write: probes the write TLB, so the store that follows
    /// (`store_rmw`) needs no second probe when the page is writable RAM.
    pub fn load_rmw(&mut self, lin: Value, size: u32, ss: bool) -> (Value, Rmw) {
        let (ent, hit) = self.tlb_probe(lin, size, offsets::ctx::WTLB);
        let hit_blk = self.b.create_block();
        let miss_blk = self.b.create_block();
        let join = self.b.create_block();
        let v = self.b.append_block_param(join, ty(size));
        let host = self.b.append_block_param(join, types::I64);
        let was_hit = self.b.append_block_param(join, types::I8);
        self.b.ins().brif(hit, hit_blk, &[], miss_blk, &[]);

        self.b.switch_to_block(hit_blk);
        let h = self.tlb_host(ent, lin, offsets::ctx::WTLB);
        let x = self.b.ins().load(ty(size), guest(), h, 0);
        let yes = self.b.ins().iconst(types::I8, 1);
        self.b.ins().jump(join, &[x.into(), h.into(), yes.into()]);

        self.b.set_cold_block(miss_blk);
        self.b.switch_to_block(miss_blk);
        let x = self.load_miss(lin, size, ss);
        let no = self.b.ins().iconst(types::I8, 0);
        self.b.ins().jump(join, &[x.into(), lin.into(), no.into()]);

        self.b.switch_to_block(join);
        (v, Rmw { hit: was_hit, host })
    }

    /// The store of a read-modify-write started with `load_rmw`.
    pub fn store_rmw(&mut self, lin: Value, size: u32, ss: bool, v: Value, rmw: Rmw) {
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(rmw.hit, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        self.b.ins().store(guest(), v, rmw.host, 0);
        self.b.ins().jump(join, &[]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        self.store_mem(lin, size, ss, v);
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(join);
    }
}

fn index(lin: u64) -> usize {
    ((lin >> 12) as usize) & (TLB_ENTRIES - 1)
}

fn slot_for(lin: u64, host_page: *mut u8) -> TlbSlot {
    let page = lin & !0xfff;
    TlbSlot {
        tag: page,
        addend: (host_page as u64).wrapping_sub(page),
    }
}

fn crosses_page(lin: u64, size: u32) -> bool {
    (lin & 0xfff) + u64::from(size) > 0x1000
}

fn canonical_access(lin: u64, size: u32, ss: bool) -> Result<(), Fault> {
    let last = lin.wrapping_add(u64::from(size) - 1);
    if cpu::interp::cx::canonical(lin) && cpu::interp::cx::canonical(last) {
        Ok(())
    } else if ss {
        Err(Fault::SS0)
    } else {
        Err(Fault::GP0)
    }
}

impl Engine {
    /// The slow path of a load: checks, translation, TLB refill, RAM or MMIO read.
    pub fn load_slow(
        &mut self,
        ctx: &mut JitCtx,
        io: &dyn VmIo,
        lin: u64,
        size: u32,
        ss: bool,
    ) -> Result<u64, Fault> {
        canonical_access(lin, size, ss)?;
        self.stats.tlb_miss_read += 1;
        if crosses_page(lin, size) {
            return self.interp.read_linear(io, lin, size);
        }
        let e = self.interp.translate(lin, Access::Read)?;
        if e.host.is_null() {
            self.stats.mmio += 1;
            return self.interp.read_linear(io, lin, size);
        }
        ctx.rtlb[index(lin)] = slot_for(lin, e.host);
        let mut buf = [0u8; 8];
        self.interp
            .ram()
            .read(e.phys | (lin & 0xfff), &mut buf[..size as usize]);
        Ok(u64::from_le_bytes(buf))
    }

    /// The slow path of a store. Returns whether the store was done (`true`), or must be
    /// left to the interpreter (`false`): it overwrites translated code (those blocks are
    /// invalidated now, so the interpreter's store leaves none stale) or goes to a device
    /// (which may write guest memory by DMA: the code epoch is bumped).
    pub fn store_slow(
        &mut self,
        ctx: &mut JitCtx,
        io: &dyn VmIo,
        lin: u64,
        size: u32,
        ss: bool,
        v: u64,
    ) -> Result<bool, Fault> {
        canonical_access(lin, size, ss)?;
        self.stats.tlb_miss_write += 1;
        if crosses_page(lin, size) {
            // Translate both pages (faults first, as the interpreter does) before writing.
            let second = (lin | 0xfff).wrapping_add(1);
            let n1 = second - lin;
            let e1 = self.interp.translate(lin, Access::Write)?;
            let e2 = self.interp.translate(second, Access::Write)?;
            let mut leave = false;
            for (e, a, n) in [(e1, lin, n1), (e2, second, u64::from(size) - n1)] {
                if e.host.is_null() {
                    ctx.code_epoch += 1;
                    leave = true;
                } else {
                    leave |= self.cache.invalidate_range(ctx, e.phys | (a & 0xfff), n);
                }
            }
            if leave {
                return Ok(false);
            }
            self.interp.write_linear(io, lin, size, v)?;
            return Ok(true);
        }
        let e = self.interp.translate(lin, Access::Write)?;
        if e.host.is_null() {
            self.stats.mmio += 1;
            ctx.code_epoch += 1;
            return Ok(false);
        }
        if e.is_rom() {
            return Ok(true);
        }
        let phys = e.phys | (lin & 0xfff);
        if self.cache.is_code_page(e.phys) {
            self.stats.code_page_writes += 1;
            if self.cache.invalidate_range(ctx, phys, u64::from(size)) {
                return Ok(false);
            }
        } else {
            let k = index(lin);
            ctx.wtlb[k] = slot_for(lin, e.host);
            self.wtlb_phys[k] = e.phys;
        }
        let bytes = v.to_le_bytes();
        self.interp.ram().write(phys, &bytes[..size as usize]);
        Ok(true)
    }

    /// Drop the write-TLB entries that map guest-physical page `page` (it now holds code).
    pub fn drop_write_entries(&mut self, ctx: &mut JitCtx, page: u64) {
        for k in 0..TLB_ENTRIES {
            if ctx.wtlb[k].tag != crate::ctx::TLB_INVALID && self.wtlb_phys[k] == page {
                ctx.wtlb[k] = TlbSlot::EMPTY;
            }
        }
    }
}
