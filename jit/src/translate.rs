//! Guest block (see `decode.rs`) → Cranelift IR, 64-bit mode code. The generated function,
//! `(ctx, budget, blocks) -> exit code` in Cranelift's tail calling convention:
//!
//! - prologue: the page's validity cell must equal `JitCtx::code_epoch` (else exit
//!   `REVALIDATE`, so the run loop revalidates the page), the instruction budget must be
//!   positive (else exit to the run loop);
//! - body: one lowering per instruction (`lower_*.rs`); registers live in Cranelift variables
//!   (loaded from the guest state on first use), flags in the translate-time lazy record
//!   (`flags.rs`), memory goes through the inline soft-TLB probe (`tlb.rs`) with a helper call
//!   on a miss;
//! - exits: store the written registers, the flags record and RIP, then tail-call the next
//!   block (a chaining slot for static targets, the jump cache for computed ones, passing the
//!   budget and the block counter in registers) or return an exit code to the run loop (with
//!   the budget and counter stored). Fault and interpreter exits leave the state exactly as
//!   before the instruction.
//!
//! A block whose last instruction jumps back to its own start is compiled as a first
//! iteration followed by the loop proper, which keeps registers and the flags record in
//! variables across iterations.

use cranelift_codegen::ir::{
    Block, BlockArg, FuncRef, InstBuilder, MemFlagsData, SigRef, Type, Value, condcodes::IntCC,
    types,
};
use cranelift_frontend::{FunctionBuilder, Variable};

use crate::flags::Lazy;
use crate::offsets;

/// Exit codes a block function returns to the run loop.
pub mod exit {
    /// Continue at `CpuState::rip` (block end, chaining miss, budget spent, SMC).
    pub const NEXT: u64 = 0;
    /// Deliver the fault in `JitCtx::fault_*`; the state is at the faulting instruction.
    pub const FAULT: u64 = 1;
    /// The block's page must be revalidated; nothing was executed.
    pub const REVALIDATE: u64 = 2;
    /// Run the instruction at `CpuState::rip` on the interpreter (the state is as before it):
    /// it stores into translated code (already invalidated) or to a device.
    pub const INTERP: u64 = 3;
}

/// Helper status codes (returned by `helpers.rs`).
pub mod status {
    /// Done.
    pub const OK: u64 = 0;
    /// A fault is pending in the context.
    pub const FAULT: u64 = 1;
    /// Not done: the store would overwrite translated code (now invalidated) or goes to a
    /// device; leave the block before this instruction and run it on the interpreter.
    pub const INTERP: u64 = 2;
}

/// One decoded guest instruction.
pub use crate::decode::{Insn, MAX_INSNS, Plan, Role, decode};

/// Addresses of the helper adapters generated code calls (`preserve_all` functions that
/// call the Rust helpers in `helpers.rs` and leave their result in `JitCtx::helper_status`).
#[derive(Clone, Copy, Debug)]
pub struct HelperAddrs {
    /// `jit_load(ctx, lin, info) -> status`.
    pub load: u64,
    /// `jit_store(ctx, lin, value, info) -> status`.
    pub store: u64,
    /// `jit_flags(ctx) -> rflags`.
    pub flags: u64,
    /// `jit_div(ctx, low, high, divisor, info) -> status`.
    pub div: u64,
}

/// The helpers generated code calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    /// Load slow path.
    Load,
    /// Store slow path.
    Store,
    /// Flags materialization.
    Flags,
    /// Divide.
    Div,
}

/// What the cache provides for one block.
#[derive(Clone, Copy, Debug)]
pub struct BlockEnv {
    /// Address of the page's validity cell.
    pub cell: u64,
    /// Address and word id of the block's two chaining slots.
    pub slots: [(u64, u32); 2],
}

/// The functions generated code calls.
#[derive(Clone, Copy, Debug)]
pub struct Sigs {
    /// The helper adapters: load, store, flags, div.
    pub adapter: [FuncRef; 4],
    /// Signature of block functions (tail calls).
    pub block: SigRef,
}

/// Flags for loads and stores of engine-owned memory (state, context, slots).
pub fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// The Cranelift type of an operand of `size` bytes.
pub fn ty(size: u32) -> Type {
    match size {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    }
}

/// Mask of the low `size` bytes.
pub fn mask(size: u32) -> u64 {
    cpu::interp::cx::mask(size)
}

/// The per-block translation state.
pub struct Translator<'a, 'b> {
    /// The function builder.
    pub b: &'a mut FunctionBuilder<'b>,
    /// The `JitCtx` pointer.
    pub ctx: Value,
    /// The `CpuState` pointer.
    pub st: Value,
    regs: [Variable; 16],
    /// Registers loaded from the guest state so far (on first use).
    loaded: u16,
    /// Registers written so far (bit n: GPR n), stored back at exits.
    pub dirty: u16,
    /// The flags as the instructions so far left them.
    pub lazy: Lazy,
    bud: Variable,
    blocks: Value,
    n: i64,
    /// Instructions completed before the current one.
    pub done: i64,
    /// Address of the current instruction.
    pub ip: u64,
    /// Address of the next instruction.
    pub next_ip: u64,
    start: u64,
    looping: Looping,
    fault_blk: Option<Block>,
    interp_blk: Option<Block>,
    pending_faults: Vec<PendingFault>,
    /// Call signatures.
    pub sigs: Sigs,
    /// The environment.
    pub env: BlockEnv,
    next_slot: usize,
    /// The block's SSE availability check was emitted (`lower_sse`).
    pub sse_checked: bool,
}

impl std::fmt::Debug for Translator<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator").field("ip", &self.ip).finish()
    }
}

/// Whether the block is a loop: its last instruction may jump back to its first.
fn self_loop(plan: &Plan, start: u64) -> bool {
    plan.insns.last().is_some_and(|l| {
        let i = &l.i;
        crate::lower::static_target(i) == Some(start)
    })
}

/// Build the IR of `plan` (at least one instruction) starting at `start`.
pub fn build(
    b: &mut FunctionBuilder,
    adapters: &[FuncRef],
    plan: &Plan,
    start: u64,
    env: BlockEnv,
) {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let ctx = b.block_params(entry)[0];
    // The instruction budget and the block counter travel in registers from block to block
    // (tail-call arguments); they go to the context only when control returns to the run
    // loop.
    let b0 = b.block_params(entry)[1];
    let blocks0 = b.block_params(entry)[2];
    let sigs = Sigs {
        adapter: [adapters[0], adapters[1], adapters[2], adapters[3]],
        block: b.import_signature(crate::codegen::block_signature()),
    };
    let n = plan.insns.len() as i64;

    // Prologue: page validity, then the budget.
    let cell_addr = b.ins().iconst(types::I64, env.cell as i64);
    let cell = b.ins().load(types::I64, trusted(), cell_addr, 0);
    let epoch = b
        .ins()
        .load(types::I64, trusted(), ctx, offsets::ctx::CODE_EPOCH);
    let valid = b.ins().icmp(IntCC::Equal, cell, epoch);
    let budget_blk = b.create_block();
    let reval = b.create_block();
    b.ins().brif(valid, budget_blk, &[], reval, &[]);
    b.set_cold_block(reval);
    b.switch_to_block(reval);
    b.ins().store(trusted(), b0, ctx, offsets::ctx::BUDGET);
    b.ins().store(trusted(), blocks0, ctx, offsets::ctx::BLOCKS);
    let code = b.ins().iconst(types::I64, exit::REVALIDATE as i64);
    b.ins().return_(&[code]);

    b.switch_to_block(budget_blk);
    let ok = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, b0, 0);
    let go = b.create_block();
    let out = b.create_block();
    b.ins().brif(ok, go, &[], out, &[]);
    b.set_cold_block(out);
    b.switch_to_block(out);
    b.ins().store(trusted(), b0, ctx, offsets::ctx::BUDGET);
    b.ins().store(trusted(), blocks0, ctx, offsets::ctx::BLOCKS);
    let code = b.ins().iconst(types::I64, exit::NEXT as i64);
    b.ins().return_(&[code]);

    b.switch_to_block(go);
    let bud = b.declare_var(types::I64);
    let b1 = b.ins().iadd_imm_s(b0, -n);
    b.def_var(bud, b1);
    let blocks = b.ins().iadd_imm_s(blocks0, 1);
    let st = b
        .ins()
        .load(types::I64, trusted(), ctx, offsets::ctx::STATE);
    let regs: [Variable; 16] = std::array::from_fn(|_| b.declare_var(types::I64));
    let mut t = Translator {
        b,
        ctx,
        st,
        regs,
        loaded: 0,
        dirty: 0,
        lazy: Lazy::Dynamic,
        bud,
        blocks,
        n,
        done: 0,
        ip: start,
        next_ip: start,
        start,
        looping: if self_loop(plan, start) {
            Looping::Peeled
        } else {
            Looping::No
        },
        fault_blk: None,
        interp_blk: None,
        pending_faults: Vec::new(),
        sigs,
        env,
        next_slot: 0,
        sse_checked: false,
    };
    let ended = t.lower_all(plan);
    if !ended {
        let target = plan.fallthrough.unwrap_or(t.next_ip);
        t.jump_static(target);
    }
    if let Looping::Entered {
        hdr,
        shape,
        vars,
        dirty,
    } = t.looping.clone()
    {
        // The loop proper: the same instructions again, entered from the first iteration's
        // back edge with the registers and the flags record in variables.
        t.b.switch_to_block(hdr);
        let vals: Vec<Value> = vars.iter().map(|&v| t.b.use_var(v)).collect();
        t.lazy = crate::flags::rebuild(shape, &vals);
        t.dirty = dirty;
        t.done = 0;
        t.looping = Looping::InLoop { hdr, shape, vars };
        let ended = t.lower_all(plan);
        debug_assert!(ended, "a loop block ends with its back edge");
    }
    t.emit_fault_exits();
}

/// A fault exit whose body is emitted after the block's code (Cranelift wants a block
/// finished before switching to another), with the state to store as it was before the
/// faulting instruction.
#[derive(Clone, Copy, Debug)]
struct PendingFault {
    blk: Block,
    code: u64,
    dirty: u16,
    lazy: Lazy,
    ip: u64,
    done: i64,
}

/// How a block that jumps back to its own start is being translated.
#[derive(Clone, Debug)]
enum Looping {
    /// Not a loop.
    No,
    /// The first iteration (entered from the prologue, flags dynamic).
    Peeled,
    /// The first iteration's back edge was emitted: the loop proper starts at `hdr`.
    Entered {
        hdr: Block,
        shape: crate::flags::Shape,
        vars: Vec<Variable>,
        dirty: u16,
    },
    /// Translating the loop proper.
    InLoop {
        hdr: Block,
        shape: crate::flags::Shape,
        vars: Vec<Variable>,
    },
}

impl Translator<'_, '_> {
    /// Lower the plan's instructions; returns whether the last one ended the block.
    fn lower_all(&mut self, plan: &Plan) -> bool {
        for ins in &plan.insns {
            self.ip = ins.i.ip();
            self.next_ip = ins.i.next_ip();
            self.fault_blk = None;
            self.interp_blk = None;
            if crate::lower::lower(self, ins) == crate::lower::Flow::End {
                return true;
            }
            self.done += 1;
        }
        false
    }

    // ---- constants and conversions ------------------------------------------------------

    /// An integer constant of `size` bytes (masked).
    pub fn imm(&mut self, size: u32, v: u64) -> Value {
        let v = v & mask(size);
        if size == 8 {
            self.b.ins().iconst(types::I64, v as i64)
        } else {
            self.b.ins().iconst(ty(size), v as i64)
        }
    }

    /// A 64-bit constant.
    pub fn imm64(&mut self, v: u64) -> Value {
        self.b.ins().iconst(types::I64, v as i64)
    }

    /// Zero-extend a `size`-byte value to 64 bits.
    pub fn zext64(&mut self, v: Value, size: u32) -> Value {
        if size >= 8 {
            v
        } else {
            self.b.ins().uextend(types::I64, v)
        }
    }

    /// Sign-extend a `size`-byte value to 64 bits.
    pub fn sext64(&mut self, v: Value, size: u32) -> Value {
        if size >= 8 {
            v
        } else {
            self.b.ins().sextend(types::I64, v)
        }
    }

    /// Truncate a 64-bit value to `size` bytes.
    pub fn trunc(&mut self, v: Value, size: u32) -> Value {
        if size >= 8 {
            v
        } else {
            self.b.ins().ireduce(ty(size), v)
        }
    }

    /// Convert between operand sizes: truncate, or zero-extend.
    pub fn resize(&mut self, v: Value, from: u32, to: u32) -> Value {
        if from == to {
            v
        } else if from > to {
            self.b.ins().ireduce(ty(to), v)
        } else {
            self.b.ins().uextend(ty(to), v)
        }
    }

    // ---- registers ----------------------------------------------------------------------

    /// The full 64-bit value of GPR `n`, loaded from the guest state on first use. (Every
    /// use is on the block's main line, so the load dominates all later uses; a loop's
    /// first iteration loads whatever the loop proper uses.)
    pub fn gpr(&mut self, n: usize) -> Value {
        let n = n & 15;
        if self.loaded & (1 << n) == 0 {
            let v = self
                .b
                .ins()
                .load(types::I64, trusted(), self.st, offsets::gpr(n));
            self.b.def_var(self.regs[n], v);
            self.loaded |= 1 << n;
        }
        self.b.use_var(self.regs[n])
    }

    /// Set the full 64-bit value of GPR `n`.
    pub fn set_gpr(&mut self, n: usize, v: Value) {
        let n = n & 15;
        self.b.def_var(self.regs[n], v);
        self.loaded |= 1 << n;
        self.dirty |= 1 << n;
    }

    /// Read a register of `size` bytes (`high`: AH/CH/DH/BH).
    pub fn get_reg(&mut self, n: u8, high: bool, size: u32) -> Value {
        let full = self.gpr(n as usize);
        if high {
            let s = self.b.ins().ushr_imm_s(full, 8);
            self.b.ins().ireduce(types::I8, s)
        } else {
            self.trunc(full, size)
        }
    }

    /// Write a register of `size` bytes: 32-bit writes zero the upper half, 8- and 16-bit
    /// writes keep the other bits.
    pub fn set_reg(&mut self, n: u8, high: bool, size: u32, v: Value) {
        let new = self.reg_merged(n, high, size, v);
        self.set_gpr(n as usize, new);
    }

    /// The full 64-bit value GPR `n` would have after writing `v` as a `size`-byte register.
    pub fn reg_merged(&mut self, n: u8, high: bool, size: u32, v: Value) -> Value {
        if high {
            let old = self.gpr(n as usize);
            let cleared = self.b.ins().band_imm_s(old, !0xff00i64);
            let ext = self.b.ins().uextend(types::I64, v);
            let sh = self.b.ins().ishl_imm_s(ext, 8);
            self.b.ins().bor(cleared, sh)
        } else {
            match size {
                8 => v,
                4 => self.b.ins().uextend(types::I64, v),
                _ => {
                    let old = self.gpr(n as usize);
                    let cleared = self.b.ins().band_imm_s(old, !(mask(size) as i64));
                    let ext = self.b.ins().uextend(types::I64, v);
                    self.b.ins().bor(cleared, ext)
                }
            }
        }
    }

    // ---- helpers --------------------------------------------------------------------------

    /// Call a helper (its `preserve_all` adapter) with `args` after the context; returns what
    /// it returned.
    pub fn call_helper(&mut self, h: Helper, args: &[Value]) -> Value {
        let f = match h {
            Helper::Load => self.sigs.adapter[0],
            Helper::Store => self.sigs.adapter[1],
            Helper::Flags => self.sigs.adapter[2],
            Helper::Div => self.sigs.adapter[3],
        };
        let mut all = vec![self.ctx];
        all.extend_from_slice(args);
        self.b.ins().call(f, &all);
        self.b
            .ins()
            .load(types::I64, trusted(), self.ctx, offsets::ctx::HELPER_STATUS)
    }

    // ---- exits ----------------------------------------------------------------------------

    fn store_ctx(&mut self, v: Value, off: i32) {
        self.b.ins().store(trusted(), v, self.ctx, off);
    }

    /// Store the dirty registers and the lazy flags into the guest state.
    fn writeback(&mut self) {
        for n in 0..16 {
            if self.dirty & (1 << n) != 0 {
                let v = self.gpr(n);
                self.b.ins().store(trusted(), v, self.st, offsets::gpr(n));
            }
        }
        let lazy = self.lazy;
        self.flush_lazy(lazy);
    }

    /// Store the budget left after `k` of the block's instructions retired, and the block
    /// counter (before returning to the run loop).
    fn store_budget(&mut self, k: i64) {
        let blocks = self.blocks;
        self.store_ctx(blocks, offsets::ctx::BLOCKS);
        let bud = self.b.use_var(self.bud);
        let v = self.b.ins().iadd_imm_s(bud, self.n - k);
        self.store_ctx(v, offsets::ctx::BUDGET);
    }

    fn ret(&mut self, code: u64) {
        let c = self.b.ins().iconst(types::I64, code as i64);
        self.b.ins().return_(&[c]);
    }

    /// Leave for the run loop with RIP = `rip` after `k` instructions retired.
    pub fn exit_to_run_loop(&mut self, rip: u64, k: i64) {
        self.writeback();
        let r = self.imm64(rip);
        self.b.ins().store(trusted(), r, self.st, offsets::RIP);
        self.store_budget(k);
        self.ret(exit::NEXT);
    }

    /// The fault exit of the current instruction (state as before it), created on first use.
    /// Lowerings must make every memory access of an instruction before changing registers
    /// or flags, so this state is the state before the instruction.
    pub fn fault_exit(&mut self) -> Block {
        if let Some(blk) = self.fault_blk {
            return blk;
        }
        let blk = self.before_exit(exit::FAULT);
        self.fault_blk = Some(blk);
        blk
    }

    /// The exit that leaves the current instruction to the interpreter (state as before it).
    pub fn interp_exit(&mut self) -> Block {
        if let Some(blk) = self.interp_blk {
            return blk;
        }
        let blk = self.before_exit(exit::INTERP);
        self.interp_blk = Some(blk);
        blk
    }

    fn before_exit(&mut self, code: u64) -> Block {
        let blk = self.b.create_block();
        self.b.set_cold_block(blk);
        self.pending_faults.push(PendingFault {
            blk,
            code,
            dirty: self.dirty,
            lazy: self.lazy,
            ip: self.ip,
            done: self.done,
        });
        blk
    }

    fn emit_fault_exits(&mut self) {
        for p in std::mem::take(&mut self.pending_faults) {
            self.b.switch_to_block(p.blk);
            self.dirty = p.dirty;
            self.lazy = p.lazy;
            self.writeback();
            let r = self.imm64(p.ip);
            self.b.ins().store(trusted(), r, self.st, offsets::RIP);
            self.store_budget(p.done);
            self.ret(p.code);
        }
    }

    /// Raise `vector` (with error code `code`) at the current instruction: branch to a
    /// fault exit when `cond` is true.
    pub fn fault_if(&mut self, cond: Value, vector: u8, code: Option<u32>) {
        let cur_ok = self.b.create_block();
        let blk = self.b.create_block();
        self.b.ins().brif(cond, blk, &[], cur_ok, &[]);
        self.b.set_cold_block(blk);
        self.b.switch_to_block(blk);
        let v = self.imm64(u64::from(vector));
        self.store_ctx(v, offsets::ctx::FAULT_VECTOR);
        let c = self.imm64(code.map_or(u64::MAX, u64::from));
        self.store_ctx(c, offsets::ctx::FAULT_CODE);
        let f = self.fault_exit();
        self.b.ins().jump(f, &[]);
        self.b.switch_to_block(cur_ok);
    }

    /// End the block with a jump to the static `target`: a loop back edge when it is the
    /// block's own start, else a chained exit.
    pub fn jump_static(&mut self, target: u64) {
        if target == self.start {
            // The back edge may be one arm of a conditional exit: whatever it does to the
            // flags record (values defined in this arm) must not leak into the other arm.
            let saved = self.lazy;
            if !matches!(self.looping, Looping::No) {
                self.normalize_for_loop();
            }
            let done = self.loop_edge(target);
            self.lazy = saved;
            if done {
                return;
            }
        }
        self.chain_exit(target);
    }

    /// The back edge of a loop block to its start; false if the block is not a loop.
    fn loop_edge(&mut self, target: u64) -> bool {
        match self.looping.clone() {
            Looping::Peeled => {
                let shape = crate::flags::shape(&self.lazy);
                let vals = crate::flags::values(&self.lazy);
                let vars: Vec<Variable> = vals
                    .iter()
                    .map(|&v| {
                        let ty = self.b.func.dfg.value_type(v);
                        self.b.declare_var(ty)
                    })
                    .collect();
                for (&var, &v) in vars.iter().zip(&vals) {
                    self.b.def_var(var, v);
                }
                let hdr = self.b.create_block();
                self.looping = Looping::Entered {
                    hdr,
                    shape,
                    vars,
                    dirty: self.dirty,
                };
                self.back_edge(hdr);
                true
            }
            Looping::InLoop { hdr, shape, vars } if crate::flags::shape(&self.lazy) == shape => {
                let vals = crate::flags::values(&self.lazy);
                for (&var, &v) in vars.iter().zip(&vals) {
                    self.b.def_var(var, v);
                }
                self.back_edge(hdr);
                true
            }
            Looping::InLoop { .. } => {
                // The flags record changed shape between iterations: hand the record to
                // the run loop, which enters the block again.
                let n = self.n;
                self.exit_to_run_loop(target, n);
                true
            }
            _ => false,
        }
    }

    /// A static exit to `target`: tail-call the linked block, or return to the run loop.
    fn chain_exit(&mut self, target: u64) {
        self.writeback();
        self.chain_exit_stored(target);
    }

    /// `chain_exit` once registers and flags are stored.
    fn chain_exit_stored(&mut self, target: u64) {
        let r = self.imm64(target);
        self.b.ins().store(trusted(), r, self.st, offsets::RIP);
        let (slot, slot_id) = self.env.slots[self.next_slot.min(1)];
        self.next_slot += 1;
        let sa = self.imm64(slot);
        let f = self.b.ins().load(types::I64, trusted(), sa, 0);
        let go = self.b.create_block();
        let miss = self.b.create_block();
        self.b.ins().brif(f, go, &[], miss, &[]);
        self.b.switch_to_block(go);
        self.tail_call(f);
        self.b.switch_to_block(miss);
        let n = self.n;
        self.store_budget(n);
        let id = self.imm64(u64::from(slot_id) + 1);
        self.store_ctx(id, offsets::ctx::EXIT_SLOT);
        self.ret(exit::NEXT);
    }

    /// Go round the loop again if the budget allows, else leave for the run loop at the
    /// block's start. (The page's validity cannot change while the block runs: every helper
    /// that may change it makes the block leave.)
    fn back_edge(&mut self, hdr: Block) {
        let bud = self.b.use_var(self.bud);
        let more = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, bud, 0);
        let again = self.b.create_block();
        let leave = self.b.create_block();
        self.b.ins().brif(more, again, &[], leave, &[]);
        self.b.set_cold_block(leave);
        self.b.switch_to_block(leave);
        let start = self.start;
        let n = self.n;
        self.exit_to_run_loop(start, n);
        self.b.switch_to_block(again);
        let nb = self.b.ins().iadd_imm_s(bud, -self.n);
        self.b.def_var(self.bud, nb);
        self.b.ins().jump(hdr, &[]);
    }

    /// End the block with a jump to the computed `target` (RET, JMP/CALL through a register
    /// or memory): through the jump cache, else back to the run loop.
    pub fn jump_indirect(&mut self, target: Value) {
        self.writeback();
        self.b.ins().store(trusted(), target, self.st, offsets::RIP);
        let sh = self.b.ins().ushr_imm_s(target, i64::from(offsets::JC_BITS));
        let h = self.b.ins().bxor(target, sh);
        let idx = self.b.ins().band_imm_s(h, (offsets::JC_ENTRIES - 1) as i64);
        let off = self.b.ins().ishl_imm_s(idx, offsets::JC_SLOT_SHIFT);
        let ent = self.b.ins().iadd(self.ctx, off);
        let rip = self.b.ins().load(
            types::I64,
            trusted(),
            ent,
            offsets::ctx::JC + offsets::JC_RIP,
        );
        let hit = self.b.ins().icmp(IntCC::Equal, rip, target);
        let go = self.b.create_block();
        let miss = self.b.create_block();
        self.b.ins().brif(hit, go, &[], miss, &[]);
        self.b.switch_to_block(go);
        let f = self.b.ins().load(
            types::I64,
            trusted(),
            ent,
            offsets::ctx::JC + offsets::JC_FUNC,
        );
        self.tail_call(f);
        self.b.switch_to_block(miss);
        let n = self.n;
        self.store_budget(n);
        self.ret(exit::NEXT);
    }

    /// Continue in block function `f` with the budget and counter in registers.
    fn tail_call(&mut self, f: Value) {
        let ctx = self.ctx;
        let bud = self.b.use_var(self.bud);
        let blocks = self.blocks;
        self.b
            .ins()
            .return_call_indirect(self.sigs.block, f, &[ctx, bud, blocks]);
    }

    /// End the block with a conditional branch: `cond` true goes to `taken`, else to
    /// `fallthrough`.
    pub fn jump_cond(&mut self, cond: Value, taken: u64, fallthrough: u64) {
        let back_edge = |t: &Self, x: u64| x == t.start && !matches!(t.looping, Looping::No);
        if !back_edge(self, taken) && !back_edge(self, fallthrough) {
            // Both ways leave the block: store the registers and flags once, before the
            // branch (smaller code, faster to compile).
            self.writeback();
            let t = self.b.create_block();
            let f = self.b.create_block();
            self.b.ins().brif(cond, t, &[], f, &[]);
            self.b.switch_to_block(t);
            self.chain_exit_stored(taken);
            self.b.switch_to_block(f);
            self.chain_exit_stored(fallthrough);
            return;
        }
        let t = self.b.create_block();
        let f = self.b.create_block();
        self.b.ins().brif(cond, t, &[], f, &[]);
        self.b.switch_to_block(t);
        self.jump_static(taken);
        self.b.switch_to_block(f);
        self.jump_static(fallthrough);
    }

    /// A block argument list holding `v`.
    pub fn arg(v: Value) -> [BlockArg; 1] {
        [BlockArg::Value(v)]
    }
}
