//! The JIT engine's run loop (the dispatcher): find or translate the block at RIP, enter it,
//! and handle how it came back — chain a missed static exit, deliver a fault through the
//! interpreter, revalidate a code page. Everything the JIT does not translate (16/32-bit code,
//! single-stepping, untranslated instructions) runs on the interpreter one instruction (or a
//! small batch) at a time, with exact RFLAGS.

use std::collections::HashMap;
use std::time::Instant;

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter, Mnemonic};

use cpu::interp::StepResult;
use cpu::interp::mmu::Access;
use cpu::state::{cr, flags as fl, msr, seg_attr, sreg};
use cpu::{CpuState, Fault, Interp, Kicker, Vcpu, VcpuExit, VmIo};

use crate::JitError;
use crate::cache::{Block, Cache, Key, NO_SLOT};
use crate::codegen::{self, Codegen};
use crate::ctx::{JcSlot, JitCtx, cc, jc_index};
use crate::offsets::TLB_ENTRIES;
use crate::translate::{self, BlockEnv, Plan, exit};

/// Guest instructions blocks may run before the run loop looks at kicks again.
pub const BATCH: i64 = 1 << 16;
/// Instructions the interpreter runs per turn when the JIT cannot (16/32-bit code).
const INTERP_BATCH: u32 = 256;
/// Entries of the table counting executions of blocks not translated yet.
const HEAT_SLOTS: usize = 1 << 16;

/// Engine counters for `--stats`.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Blocks translated (including interpreter-fallback markers).
    pub translated: u64,
    /// Guest instructions translated.
    pub translated_insns: u64,
    /// Time spent decoding and compiling, in nanoseconds.
    pub translate_ns: u64,
    /// Generated code size, in bytes.
    pub code_bytes: u64,
    /// Entries into generated code from the run loop.
    pub dispatches: u64,
    /// Instructions retired by generated code.
    pub jit_insns: u64,
    /// Instructions run by the interpreter because the JIT does not translate them, by
    /// mnemonic.
    pub fallbacks: HashMap<Mnemonic, u64>,
    /// Instructions run by the interpreter outside 64-bit mode (or while single-stepping).
    pub interp_insns: u64,
    /// Instructions of not-yet-hot blocks run by the interpreter.
    pub cold_insns: u64,
    /// Read-TLB misses (helper calls).
    pub tlb_miss_read: u64,
    /// Write-TLB misses (helper calls).
    pub tlb_miss_write: u64,
    /// MMIO accesses from generated code.
    pub mmio: u64,
    /// Stores that went to pages holding translated code.
    pub code_page_writes: u64,
    /// Faults raised by generated code.
    pub faults: u64,
    /// Instructions generated code left to the interpreter (stores into translated code or
    /// to devices).
    pub interp_exits: u64,
    /// Code generations started (the first included).
    pub generations: u64,
    /// Calls of `run` (each bumps the code epoch: devices ran meanwhile).
    pub runs: u64,
}

/// What the run loop does next.
#[derive(Debug)]
pub enum Next {
    /// Call this generated function.
    Enter(usize),
    /// Return this exit from `run`.
    Exit(VcpuExit),
    /// Go round again.
    Again,
    /// A host failure.
    Fail(JitError),
}

/// The mode bits a block is translated for (part of its key): CPL, CS.L and CS.D, CR0.PE,
/// CR0.PG, CR0.WP, EFER.LMA, RFLAGS.AC and CR4.
pub fn mode_key(st: &CpuState) -> u64 {
    let cs = st.seg[sreg::CS].attr;
    let bit = |c: bool, n: u32| u64::from(c) << n;
    u64::from(st.cpl())
        | bit(cs & seg_attr::L != 0, 2)
        | bit(cs & seg_attr::DB != 0, 3)
        | bit(st.cr0 & cr::CR0_PE != 0, 4)
        | bit(st.cr0 & cr::CR0_PG != 0, 5)
        | bit(st.cr0 & cr::CR0_WP != 0, 6)
        | bit(st.efer & msr::EFER_LMA != 0, 7)
        | bit(st.rflags & fl::AC != 0, 8)
        | ((st.cr4 & 0xffff_ffff) << 32)
}

/// The engine: the interpreter it builds on, the block cache and the code generation.
pub struct Engine {
    /// The interpreter: architectural state, MMU, exceptions, fallback.
    pub interp: Interp,
    /// Translated blocks.
    pub cache: Cache,
    /// The current code generation.
    pub cg: Codegen,
    /// Counters.
    pub stats: Stats,
    /// Guest-physical page of each write-TLB entry.
    pub wtlb_phys: Box<[u64]>,
    /// Run everything on the interpreter (tracing).
    pub interp_only: bool,
    /// What the instructions run on the interpreter wrote (`fallback::WriteWatch`).
    pub watch: crate::fallback::WriteWatch,
    /// A reusable buffer for the watch's ranges.
    pub ranges_buf: Vec<(u64, u64)>,
    arena: usize,
    /// Executions before a block is translated (1: at once); before that it runs on the
    /// interpreter (`fallback::run_cold`).
    hot_threshold: u32,
    /// Executions so far of blocks not translated yet: a direct-mapped table of (key hash,
    /// count); a collision restarts the count (it only delays a translation).
    heat: Box<[(u64, u32)]>,
    kicker: Kicker,
    last_gen: u64,
    last_mode: u64,
    budget_mark: i64,
    pending_link: Option<u32>,
    dump: bool,
    warned_compile: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cache", &self.cache)
            .field("cg", &self.cg)
            .finish()
    }
}

impl Engine {
    /// An engine over `interp` with these options.
    pub fn new(interp: Interp, opts: crate::JitOptions) -> Result<Engine, JitError> {
        let arena = opts.code_space;
        let kicker = interp.kicker();
        Ok(Engine {
            interp,
            cache: Cache::default(),
            cg: Codegen::new(arena)?,
            arena,
            stats: Stats {
                generations: 1,
                ..Stats::default()
            },
            wtlb_phys: vec![0; TLB_ENTRIES].into_boxed_slice(),
            interp_only: false,
            watch: Default::default(),
            ranges_buf: Vec::new(),
            hot_threshold: opts.hot_threshold.max(1),
            heat: vec![(0, 0); HEAT_SLOTS].into_boxed_slice(),
            kicker,
            last_gen: u64::MAX,
            last_mode: u64::MAX,
            budget_mark: 0,
            pending_link: None,
            dump: std::env::var("VX_JIT_DUMP").is_ok_and(|v| v == "1"),
            warned_compile: false,
        })
    }

    /// Count one more execution of the untranslated block at `key`: whether it is hot now.
    fn is_hot(&mut self, key: Key) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = crate::cache::Fx::default();
        key.hash(&mut h);
        let tag = h.finish() | 1;
        let slot = &mut self.heat[(tag >> 20) as usize % HEAT_SLOTS];
        if slot.0 != tag {
            *slot = (tag, 0);
        }
        slot.1 += 1;
        if slot.1 >= self.hot_threshold {
            *slot = (0, 0);
            true
        } else {
            false
        }
    }

    /// Make RFLAGS in the guest state exact (before the interpreter or anyone else looks).
    pub fn sync_flags(&mut self, ctx: &mut JitCtx) {
        if ctx.cc_op != cc::NONE {
            let s = crate::flags::status(ctx.cc_op, ctx.cc_a, ctx.cc_b, ctx.cc_r);
            let rf = (self.interp.state().rflags & !fl::STATUS) | s;
            self.interp.set_rflags(rf);
            ctx.cc_op = cc::NONE;
        }
    }

    /// Count the instructions generated code retired since the last call.
    fn account(&mut self, ctx: &JitCtx) {
        let n = self.budget_mark - ctx.budget;
        if n > 0 {
            self.interp.add_retired(n as u64);
            self.stats.jit_insns += n as u64;
        }
        self.budget_mark = ctx.budget;
    }

    /// Start of a `run` call: anything may have written guest memory while the vCPU was
    /// outside (device DMA, the board loading images).
    pub fn begin_run(&mut self, ctx: &mut JitCtx) {
        ctx.code_epoch += 1;
        self.stats.runs += 1;
        ctx.exit_slot = 0;
        self.pending_link = None;
        ctx.state = self.interp.state_ptr();
        self.budget_mark = ctx.budget;
    }

    /// End of a `run` call: leave an exact state behind.
    pub fn end_run(&mut self, ctx: &mut JitCtx) {
        self.account(ctx);
        self.sync_flags(ctx);
        self.pending_link = None;
    }

    /// Flush what depends on translations and mode when those changed.
    fn check_translation_state(&mut self, ctx: &mut JitCtx) {
        let g = self.interp.tlb_generation();
        if g != self.last_gen {
            ctx.flush_tlb();
            ctx.flush_jc();
            self.cache.unlink_cross_page();
            self.last_gen = g;
        }
        let m = mode_key(self.interp.state());
        if m != self.last_mode {
            ctx.flush_tlb();
            ctx.flush_jc();
            self.last_mode = m;
        }
    }

    /// Run the interpreter: one fallback instruction (`fallback`: its block), or a small batch
    /// when the JIT cannot run this code at all.
    fn step_interp(&mut self, ctx: &mut JitCtx, io: &dyn VmIo, fallback: Option<u32>) -> Next {
        self.sync_flags(ctx);
        let before = self.interp.instructions();
        let result = match fallback {
            Some(id) if self.cache.blocks[id as usize].insn.is_invalid() => {
                // The instruction crosses the page end (the block decoder saw only its first
                // part) or is invalid: the interpreter fetches it whole, and the watch sees
                // it decoded. It is counted under its real mnemonic when both pages decode.
                let insn = self.cache.blocks[id as usize].insn;
                let insn = crate::cross_page::full_insn(&mut self.interp, insn);
                *self.stats.fallbacks.entry(insn.mnemonic()).or_insert(0) += 1;
                return self.run_cold(ctx, io);
            }
            Some(id) => {
                let insn = self.cache.blocks[id as usize].insn;
                *self.stats.fallbacks.entry(insn.mnemonic()).or_insert(0) += 1;
                self.step_watched(ctx, io, &insn)
            }
            None => {
                let single = self.interp_only || self.interp.state().in_64bit_mode();
                let r = if single {
                    self.interp.step(io)
                } else {
                    self.interp.run_batch(io, INTERP_BATCH)
                };
                self.stats.interp_insns += self.interp.instructions() - before;
                // Code the JIT does not translate (other modes, single-stepping): anything
                // may have been written.
                ctx.code_epoch += 1;
                r
            }
        };
        if result == StepResult::Shutdown {
            return Next::Exit(VcpuExit::Shutdown);
        }
        Next::Again
    }

    /// Decide what to run next.
    pub fn next(&mut self, ctx: &mut JitCtx, io: &dyn VmIo) -> Next {
        let pending = self.pending_link.take();
        if self.kicker.take() {
            return Next::Exit(VcpuExit::Kicked);
        }
        if self.kicker.interrupt_window_requested() && self.interp.interrupts_enabled() {
            return Next::Exit(VcpuExit::InterruptWindow);
        }
        if self.interp.state().halted {
            return Next::Exit(VcpuExit::Halted);
        }
        if ctx.budget <= 0 {
            self.account(ctx);
            ctx.budget = BATCH;
            self.budget_mark = BATCH;
        }
        self.check_translation_state(ctx);
        let st = self.interp.state();
        // Single-stepping is the interpreter's business, and so are the one-instruction
        // interrupt shadow and RF (which lasts for one instruction): the interpreter's block
        // runs through them.
        if self.interp_only || !st.in_64bit_mode() || st.rflags & fl::TF != 0 {
            return self.step_interp(ctx, io, None);
        }
        if st.rflags & fl::RF != 0 || st.interrupt_shadow {
            return self.run_cold(ctx, io);
        }
        let rip = st.rip;
        if !cpu::interp::cx::canonical(rip) {
            return self.step_interp(ctx, io, None);
        }
        if pending.is_none() {
            let j = ctx.jc[jc_index(rip)];
            if j.rip == rip && j.func != 0 {
                ctx.state = self.interp.state_ptr();
                return Next::Enter(j.func as usize);
            }
        }
        let e = match self.interp.translate(rip, Access::Exec) {
            Ok(e) if !e.host.is_null() => e,
            _ => return self.step_interp(ctx, io, None),
        };
        let key = Key {
            phys: e.phys | (rip & 0xfff),
            rip,
            mode: self.last_mode,
        };
        let generation = self.stats.generations;
        let id = match self.cache.lookup(&key) {
            Some(id) => id,
            None if self.hot_threshold > 1 && !self.is_hot(key) => {
                return self.run_cold(ctx, io);
            }
            None => match self.translate_block(ctx, key) {
                Ok(id) => id,
                Err(e) => return Next::Fail(e),
            },
        };
        // A slot of a flushed generation means nothing in the new one.
        let pending = pending.filter(|_| self.stats.generations == generation);
        let func = self.cache.blocks[id as usize].func;
        if func == 0 {
            return self.step_interp(ctx, io, Some(id));
        }
        if let Some(slot) = pending {
            self.cache.link(slot, id);
        }
        ctx.jc[jc_index(rip)] = JcSlot {
            rip,
            func: func as u64,
        };
        ctx.state = self.interp.state_ptr();
        Next::Enter(func)
    }

    /// Handle a block's exit code. Returns an exit for `run` when there is one.
    pub fn after(&mut self, ctx: &mut JitCtx, io: &dyn VmIo, code: u64) -> Option<VcpuExit> {
        self.account(ctx);
        self.stats.dispatches += 1;
        match code {
            exit::NEXT if ctx.exit_slot != 0 => {
                self.pending_link = Some((ctx.exit_slot - 1) as u32);
                ctx.exit_slot = 0;
            }
            exit::FAULT => {
                self.stats.faults += 1;
                self.sync_flags(ctx);
                let f = Fault {
                    vector: ctx.fault_vector as u8,
                    code: if ctx.fault_code == u64::MAX {
                        None
                    } else {
                        Some(ctx.fault_code as u32)
                    },
                    addr: ctx.fault_addr,
                };
                // Exception delivery pushes onto the (new) stack: memory the JIT did not see.
                ctx.code_epoch += 1;
                if self.interp.deliver_fault(io, f) == StepResult::Shutdown {
                    return Some(VcpuExit::Shutdown);
                }
            }
            exit::INTERP => {
                // A store into translated code (invalidated by the helper) or to a device.
                self.sync_flags(ctx);
                if self.interp.step(io) == StepResult::Shutdown {
                    return Some(VcpuExit::Shutdown);
                }
                self.stats.interp_exits += 1;
            }
            exit::REVALIDATE => {
                let rip = self.interp.state().rip;
                if let Ok(e) = self.interp.translate(rip, Access::Exec) {
                    let ram = self.interp.ram().clone();
                    self.cache.validate_page(ctx, &ram, e.phys);
                }
            }
            _ => {}
        }
        None
    }

    /// Drop every block and start a new code generation (the code arena is full).
    fn new_generation(&mut self, ctx: &mut JitCtx) -> Result<(), JitError> {
        let fresh = Codegen::new(self.arena)?;
        let old = std::mem::replace(&mut self.cg, fresh);
        self.cache = Cache::default();
        self.heat.fill((0, 0));
        ctx.flush_jc();
        ctx.exit_slot = 0;
        self.pending_link = None;
        // Code pages are plain RAM again: their stores may use the write TLB.
        codegen::retire(old);
        self.stats.generations += 1;
        Ok(())
    }

    fn guest_listing(plan: &Plan) -> String {
        let mut out = String::new();
        let mut fmt = IntelFormatter::new();
        for ins in &plan.insns {
            let mut s = String::new();
            fmt.format(&ins.i, &mut s);
            out.push_str(&format!("  {:016x}  {}\n", ins.i.ip(), s));
        }
        out
    }

    /// Translate the block at `key` (the RIP's page is RAM or ROM).
    fn translate_block(&mut self, ctx: &mut JitCtx, key: Key) -> Result<u32, JitError> {
        let t0 = Instant::now();
        if self.cg.nearly_full() {
            self.new_generation(ctx)?;
        }
        let ram = self.interp.ram().clone();
        let page = key.phys & !0xfff;
        if self.cache.is_code_page(page) {
            self.cache.validate_page(ctx, &ram, page);
        }
        let off = (key.phys & 0xfff) as usize;
        let mut bytes = vec![0u8; 4096];
        ram.read(page, &mut bytes);
        let plan = translate::decode(&bytes, key.rip);
        let (cell, new_page) = self.cache.page_cell(ctx, page);
        if new_page {
            self.drop_write_entries(ctx, page);
        }
        let first = Decoder::with_ip(64, &bytes[off..], key.rip, DecoderOptions::NONE).decode();
        let mut block = Block {
            key,
            ranges: plan.ranges.clone(),
            func: 0,
            insns: plan.insns.len() as u32,
            insn: first,
            slots: [NO_SLOT; 2],
            incoming: Vec::new(),
            live: true,
        };
        if !plan.insns.is_empty() {
            let slots = self.cache.alloc_slots();
            let w = &self.cache.words;
            let env = BlockEnv {
                cell: w.addr(cell),
                slots: [(w.addr(slots[0]), slots[0]), (w.addr(slots[1]), slots[1])],
            };
            let listing = self.dump.then(|| Self::guest_listing(&plan));
            match self.cg.compile_block(
                |b, adapters| translate::build(b, adapters, &plan, key.rip, env),
                listing.as_deref(),
            ) {
                Ok((addr, size)) => {
                    block.func = addr;
                    block.slots = slots;
                    self.stats.code_bytes += size as u64;
                    self.stats.translated_insns += plan.insns.len() as u64;
                }
                Err(e) => {
                    if !self.warned_compile {
                        tracing::warn!(
                            "JIT: compiling the block at {:#x} failed ({e}); using the interpreter there",
                            key.rip
                        );
                        self.warned_compile = true;
                    }
                    block.ranges = vec![(off as u16, first.len().clamp(1, 4096 - off) as u16)];
                    block.insns = 0;
                }
            }
        }
        let id = self.cache.add(block, &bytes);
        self.stats.translated += 1;
        self.stats.translate_ns += t0.elapsed().as_nanos() as u64;
        Ok(id)
    }
}
