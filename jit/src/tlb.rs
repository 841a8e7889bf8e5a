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
use crate::translate::{Translator, status, trusted, ty};

/// Flags for guest memory accesses through the TLB: the fast path only dereferences host
/// pointers to mapped guest RAM, so they cannot trap; they need not be aligned.
fn guest() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The `info` argument of the memory helpers: size in the low byte, bit 8 for SS.
fn info(size: u32, ss: bool) -> u64 {
    u64::from(size) | if ss { 1 << 8 } else { 0 }
}

impl Translator<'_, '_> {
    /// Probe a TLB (`base`: `offsets::ctx::RTLB` or `WTLB`): the entry address and whether
    /// it maps the whole access.
    fn tlb_probe(&mut self, lin: Value, size: u32, base: i32) -> (Value, Value) {
        let last = if size > 1 {
            self.b.ins().iadd_imm_s(lin, i64::from(size - 1))
        } else {
            lin
        };
        let want = self.b.ins().band_imm_s(last, !0xfff);
        let page = self.b.ins().ushr_imm_s(lin, 12);
        let idx = self.b.ins().band_imm_s(page, (TLB_ENTRIES - 1) as i64);
        let off = self.b.ins().ishl_imm_s(idx, offsets::TLB_SLOT_SHIFT);
        let ent = self.b.ins().iadd(self.ctx, off);
        let tag = self
            .b
            .ins()
            .load(types::I64, trusted(), ent, base + offsets::TLB_TAG);
        let hit = self.b.ins().icmp(IntCC::Equal, tag, want);
        (ent, hit)
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
        let addend = self.b.ins().load(
            types::I64,
            trusted(),
            ent,
            offsets::ctx::RTLB + offsets::TLB_ADDEND,
        );
        let host = self.b.ins().iadd(lin, addend);
        let x = self.b.ins().load(ty(size), guest(), host, 0);
        self.b.ins().jump(join, &Self::arg(x));

        self.b.set_cold_block(miss_blk);
        self.b.switch_to_block(miss_blk);
        let helper = self.imm64(self.env.helpers.load);
        let inf = self.imm64(info(size, ss));
        let ctx = self.ctx;
        let call = self
            .b
            .ins()
            .call_indirect(self.sigs.load, helper, &[ctx, lin, inf]);
        let st = self.b.inst_results(call)[0];
        let ok = self.b.create_block();
        let fault = self.fault_exit();
        self.b.ins().brif(st, fault, &[], ok, &[]);
        self.b.switch_to_block(ok);
        let x64 = self
            .b
            .ins()
            .load(types::I64, trusted(), self.ctx, offsets::ctx::HELPER_VAL);
        let x = self.trunc(x64, size);
        self.b.ins().jump(join, &Self::arg(x));

        self.b.switch_to_block(join);
        v
    }

    /// Store `size` bytes of `v` at linear address `lin`.
    pub fn store_mem(&mut self, lin: Value, size: u32, ss: bool, v: Value) {
        let (ent, hit) = self.tlb_probe(lin, size, offsets::ctx::WTLB);
        let hit_blk = self.b.create_block();
        let miss_blk = self.b.create_block();
        let join = self.b.create_block();
        let smc = self.b.append_block_param(join, types::I8);
        self.b.ins().brif(hit, hit_blk, &[], miss_blk, &[]);

        self.b.switch_to_block(hit_blk);
        let addend = self.b.ins().load(
            types::I64,
            trusted(),
            ent,
            offsets::ctx::WTLB + offsets::TLB_ADDEND,
        );
        let host = self.b.ins().iadd(lin, addend);
        self.b.ins().store(guest(), v, host, 0);
        let no = self.b.ins().iconst(types::I8, 0);
        self.b.ins().jump(join, &Self::arg(no));

        self.b.set_cold_block(miss_blk);
        self.b.switch_to_block(miss_blk);
        let helper = self.imm64(self.env.helpers.store);
        let inf = self.imm64(info(size, ss));
        let v64 = self.zext64(v, size);
        let ctx = self.ctx;
        let call = self
            .b
            .ins()
            .call_indirect(self.sigs.store, helper, &[ctx, lin, v64, inf]);
        let st = self.b.inst_results(call)[0];
        let is_fault = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, st, status::FAULT as i64);
        let ok = self.b.create_block();
        let fault = self.fault_exit();
        self.b.ins().brif(is_fault, fault, &[], ok, &[]);
        self.b.switch_to_block(ok);
        let is_smc = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, st, status::SMC as i64);
        self.b.ins().jump(join, &Self::arg(is_smc));

        self.b.switch_to_block(join);
        self.smc = Some(match self.smc {
            Some(prev) => self.b.ins().bor(prev, smc),
            None => smc,
        });
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

    /// The slow path of a store. Returns whether translated code was invalidated (or a
    /// device was written, which may have written memory by DMA): the block must then leave.
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
            self.interp.write_linear(io, lin, size, v)?;
            let second = (lin | 0xfff).wrapping_add(1);
            let n1 = second - lin;
            let mut smc = false;
            for (a, n) in [(lin, n1), (second, u64::from(size) - n1)] {
                if let Ok(e) = self.interp.translate(a, Access::Read) {
                    smc |= self.cache.invalidate_range(ctx, e.phys | (a & 0xfff), n);
                    if e.host.is_null() {
                        ctx.code_epoch += 1;
                        smc = true;
                    }
                }
            }
            return Ok(smc);
        }
        let e = self.interp.translate(lin, Access::Write)?;
        if e.host.is_null() {
            self.stats.mmio += 1;
            self.interp.write_linear(io, lin, size, v)?;
            // A device may have written guest memory (DMA) during the access.
            ctx.code_epoch += 1;
            return Ok(true);
        }
        if e.is_rom() {
            return Ok(false);
        }
        let phys = e.phys | (lin & 0xfff);
        let bytes = v.to_le_bytes();
        self.interp.ram().write(phys, &bytes[..size as usize]);
        if self.cache.is_code_page(e.phys) {
            self.stats.code_page_writes += 1;
            return Ok(self.cache.invalidate_range(ctx, phys, u64::from(size)));
        }
        let k = index(lin);
        ctx.wtlb[k] = slot_for(lin, e.host);
        self.wtlb_phys[k] = e.phys;
        Ok(false)
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
