//! SSE/SSE2 on the XMM registers, translated natively: which forms the JIT takes, the
//! availability check (SDM Vol. 3A §2.5 CR0.EM/TS, CR4.OSFXSR; Vol. 3A §13.1), 16-byte guest
//! memory access through the soft TLB with the alignment rule of the legacy SSE forms (SDM
//! Vol. 1 §11.4.1 / §11.6.1), and the data moves MOVAPS/MOVUPS/MOVAPD/MOVUPD/MOVDQA/MOVDQU/
//! MOVNTPS/MOVNTPD/MOVNTDQ, MOVD/MOVQ and PMOVMSKB (SDM Vol. 2, each instruction). The integer
//! and logic operations are in `lower_sse_int.rs`.
//!
//! XMM registers stay in `CpuState::fpu.xmm`: every instruction loads its sources from there
//! and stores its result back, so block exits need nothing extra and the reference
//! interpreter (`cpu/src/interp/sse`) sees the same state at any fallback. Anything unusual
//! (SSE disabled or CR0.TS set, a misaligned operand of an aligned form, a 16-byte store that
//! misses the TLB and crosses a page) leaves the instruction to the interpreter through the
//! instruction's interpreter exit, with the state as before it, so faults and their order are
//! the interpreter's.

use cranelift_codegen::ir::{
    InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value, condcodes::IntCC, types,
};
use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind, Register};

use cpu::state::cr;

use crate::lower::Flow;
use crate::offsets;
use crate::translate::{Insn, Translator, trusted};

/// Flags for 16-byte accesses: never trapping, but not known to be 16-byte aligned (an
/// aligned flag would let Cranelift fold the load into an SSE operand, which faults on a
/// misaligned host address).
pub fn vflags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Whether `m` is one of the SSE mnemonics this module (and `lower_sse_int`) translates.
pub fn handles(m: Mnemonic) -> bool {
    is_move(m)
        || matches!(m, Mnemonic::Movd | Mnemonic::Movq | Mnemonic::Pmovmskb)
        || crate::lower_sse_int::handles(m)
}

/// The full-width moves.
fn is_move(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Movaps | Movups | Movapd | Movupd | Movdqa | Movdqu | Movntps | Movntpd | Movntdq
    )
}

/// Whether the 16-byte memory operand of `m` may be misaligned (else #GP(0)).
fn unaligned_ok(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu)
}

fn addr_ok(i: &Instruction) -> bool {
    let b = i.memory_base();
    let x = i.memory_index();
    (b == Register::None
        || b == Register::RIP
        || b == Register::EIP
        || b.is_gpr64()
        || b.is_gpr32())
        && (x == Register::None || x.is_gpr64() || x.is_gpr32())
}

/// Whether the JIT translates `i`, an instruction whose mnemonic `handles` accepts: legacy
/// encoding, no LOCK (#UD, the interpreter's), XMM/GPR/memory/imm8 operands only (no MMX).
pub fn supported(i: &Instruction) -> bool {
    use Mnemonic::*;
    if i.encoding() != EncodingKind::Legacy || i.has_lock_prefix() {
        return false;
    }
    let mut mem = 0;
    for k in 0..i.op_count() {
        match i.op_kind(k) {
            OpKind::Register => {
                let r = i.op_register(k);
                if !(r.is_xmm() || r.is_gpr32() || r.is_gpr64()) {
                    return false;
                }
            }
            OpKind::Memory => {
                if !addr_ok(i) {
                    return false;
                }
                mem = i.memory_size().size();
            }
            OpKind::Immediate8 => {}
            _ => return false,
        }
    }
    let xmm = |k: u32| i.op_kind(k) == OpKind::Register && i.op_register(k).is_xmm();
    let m = i.mnemonic();
    match m {
        _ if is_move(m) => i.op_count() == 2 && (xmm(0) || xmm(1)) && matches!(mem, 0 | 16),
        Movd | Movq => i.op_count() == 2 && (xmm(0) || xmm(1)) && matches!(mem, 0 | 4 | 8),
        Pmovmskb => i.op_count() == 2 && !xmm(0) && xmm(1),
        _ => crate::lower_sse_int::supported(i, mem),
    }
}

/// Lower one SSE instruction that `supported` accepted.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    use Mnemonic::*;
    t.sse_available();
    let i = &ins.i;
    let m = i.mnemonic();
    match m {
        _ if is_move(m) => lower_move(t, ins),
        Movd | Movq => lower_movdq(t, ins),
        Pmovmskb => {
            let s = t.xmm_load(xmm_n(i.op_register(1)), types::I8X16);
            let bits = t.b.ins().vhigh_bits(types::I32, s);
            let (n, _, size) = cpu::interp::cx::gpr_of(i.op_register(0));
            let v = t.resize(bits, 4, size);
            t.set_reg(n, false, size, v);
        }
        _ => crate::lower_sse_int::lower(t, ins),
    }
    Flow::Next
}

/// XMM register number.
pub fn xmm_n(r: Register) -> usize {
    r.number() & 15
}

/// MOVAPS and friends: register to register, load, store.
fn lower_move(t: &mut Translator, ins: &Insn) {
    let i = &ins.i;
    let aligned = !unaligned_ok(i.mnemonic());
    match (i.op_kind(0), i.op_kind(1)) {
        (OpKind::Register, OpKind::Register) => {
            let v = t.xmm_load(xmm_n(i.op_register(1)), types::I8X16);
            t.xmm_store(xmm_n(i.op_register(0)), v);
        }
        (OpKind::Register, _) => {
            let a = t.load16_addr(ins, aligned);
            let v = t.b.ins().load(types::I8X16, vflags(), a, 0);
            t.xmm_store(xmm_n(i.op_register(0)), v);
        }
        _ => {
            let v = t.xmm_load(xmm_n(i.op_register(1)), types::I8X16);
            t.store16(ins, aligned, v);
        }
    }
}

/// MOVD/MOVQ: XMM from a GPR, memory or the low quadword of an XMM register (zero-extended
/// to 128 bits), or the low doubleword/quadword of an XMM register to a GPR or memory.
fn lower_movdq(t: &mut Translator, ins: &Insn) {
    let i = &ins.i;
    let w: u32 = if i.mnemonic() == Mnemonic::Movd { 4 } else { 8 };
    let dst_xmm = i.op_kind(0) == OpKind::Register && i.op_register(0).is_xmm();
    if dst_xmm {
        let v = match i.op_kind(1) {
            OpKind::Register if i.op_register(1).is_xmm() => {
                let s = xmm_n(i.op_register(1));
                t.xmm_load_int(s, w)
            }
            OpKind::Register => {
                let (n, _, _) = cpu::interp::cx::gpr_of(i.op_register(1));
                t.get_reg(n, false, w)
            }
            _ => {
                let (lin, ss) = t.lin(ins);
                t.load_mem(lin, w, ss)
            }
        };
        let v = t.zext64(v, w);
        let d = xmm_n(i.op_register(0));
        let zero = t.imm64(0);
        t.b.ins().store(trusted(), v, t.st, offsets::xmm(d));
        t.b.ins().store(trusted(), zero, t.st, offsets::xmm(d) + 8);
        return;
    }
    let v = t.xmm_load_int(xmm_n(i.op_register(1)), w);
    match i.op_kind(0) {
        OpKind::Register => {
            let (n, _, size) = cpu::interp::cx::gpr_of(i.op_register(0));
            let v = t.resize(v, w, size);
            t.set_reg(n, false, size, v);
        }
        _ => {
            let (lin, ss) = t.lin(ins);
            t.store_mem(lin, w, ss, v);
        }
    }
}

impl Translator<'_, '_> {
    /// Leave the instruction to the interpreter unless SSE is usable: CR0.EM and CR0.TS clear
    /// and CR4.OSFXSR set (the interpreter then raises #UD or #NM, in its order). Checked once
    /// per block, at its first SSE instruction: translated code never writes CR0 or CR4, and
    /// every later instruction of the block is dominated by the first.
    pub fn sse_available(&mut self) {
        if self.sse_checked {
            return;
        }
        self.sse_checked = true;
        let cr0 = self
            .b
            .ins()
            .load(types::I64, trusted(), self.st, offsets::CR0);
        let cr4 = self
            .b
            .ins()
            .load(types::I64, trusted(), self.st, offsets::CR4);
        let off = self
            .b
            .ins()
            .band_imm_s(cr0, (cr::CR0_EM | cr::CR0_TS) as i64);
        let fx = self.b.ins().band_imm_s(cr4, cr::CR4_OSFXSR as i64);
        let no_fx = self.b.ins().bxor_imm_s(fx, cr::CR4_OSFXSR as i64);
        let bad = self.b.ins().bor(off, no_fx);
        self.interp_if(bad);
    }

    /// Branch to the instruction's interpreter exit when `cond` (an integer) is non-zero.
    pub fn interp_if(&mut self, cond: Value) {
        let ok = self.b.create_block();
        let out = self.interp_exit();
        self.b.ins().brif(cond, out, &[], ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// XMM register `n` as a vector of type `ty`.
    pub fn xmm_load(&mut self, n: usize, ty: Type) -> Value {
        self.b.ins().load(ty, vflags(), self.st, offsets::xmm(n))
    }

    /// The low `w` (4 or 8) bytes of XMM register `n`.
    pub fn xmm_load_int(&mut self, n: usize, w: u32) -> Value {
        let ty = if w == 4 { types::I32 } else { types::I64 };
        self.b.ins().load(ty, trusted(), self.st, offsets::xmm(n))
    }

    /// Set XMM register `n` to the vector `v`.
    pub fn xmm_store(&mut self, n: usize, v: Value) {
        self.b.ins().store(vflags(), v, self.st, offsets::xmm(n));
    }

    /// A 16-byte stack slot (a cold path's staging buffer).
    fn scratch16(&mut self) -> Value {
        let slot =
            self.b
                .create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4));
        self.b.ins().stack_addr(types::I64, slot, 0)
    }

    /// Misaligned operand of an aligned form: the interpreter raises #GP(0) (after its
    /// segment and canonical checks, which come first).
    fn check_aligned(&mut self, lin: Value) {
        let low = self.b.ins().band_imm_s(lin, 15);
        self.interp_if(low);
    }

    /// The host address of the 16-byte memory operand of `ins`, loaded: the guest page itself
    /// on a TLB hit, else a stack buffer filled by two 8-byte loads through the slow path (in
    /// the interpreter's order: low quadword, then high). `aligned`: the #GP(0) rule applies.
    pub fn load16_addr(&mut self, ins: &Insn, aligned: bool) -> Value {
        let (lin, ss) = self.lin(ins);
        if aligned {
            self.check_aligned(lin);
        }
        let (ent, hit) = self.tlb_probe(lin, 16, offsets::ctx::RTLB);
        let hit_blk = self.b.create_block();
        let miss_blk = self.b.create_block();
        let join = self.b.create_block();
        let addr = self.b.append_block_param(join, types::I64);
        self.b.ins().brif(hit, hit_blk, &[], miss_blk, &[]);

        self.b.switch_to_block(hit_blk);
        let host = self.tlb_host(ent, lin, offsets::ctx::RTLB);
        self.b.ins().jump(join, &Self::arg(host));

        self.b.set_cold_block(miss_blk);
        self.b.switch_to_block(miss_blk);
        let lo = self.load_mem(lin, 8, ss);
        let lin8 = self.b.ins().iadd_imm_s(lin, 8);
        let hi = self.load_mem(lin8, 8, ss);
        let buf = self.scratch16();
        self.b.ins().store(trusted(), lo, buf, 0);
        self.b.ins().store(trusted(), hi, buf, 8);
        self.b.ins().jump(join, &Self::arg(buf));

        self.b.switch_to_block(join);
        addr
    }

    /// Store the vector `v` to the 16-byte memory operand of `ins`: straight to the guest page
    /// on a write-TLB hit; else two 8-byte stores through the slow path when the operand is
    /// within one page (a fault on the first leaves memory untouched, the second is then to
    /// the same page; a store into translated code or to a device leaves the whole
    /// instruction to the interpreter, which redoes both halves), and the interpreter (which
    /// checks both pages before writing anything) when it crosses one.
    pub fn store16(&mut self, ins: &Insn, aligned: bool, v: Value) {
        let (lin, ss) = self.lin(ins);
        if aligned {
            self.check_aligned(lin);
        }
        let (ent, hit) = self.tlb_probe(lin, 16, offsets::ctx::WTLB);
        let hit_blk = self.b.create_block();
        let miss_blk = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(hit, hit_blk, &[], miss_blk, &[]);

        self.b.switch_to_block(hit_blk);
        let host = self.tlb_host(ent, lin, offsets::ctx::WTLB);
        self.b.ins().store(vflags(), v, host, 0);
        self.b.ins().jump(join, &[]);

        self.b.set_cold_block(miss_blk);
        self.b.switch_to_block(miss_blk);
        let in_page = self.b.ins().band_imm_s(lin, 0xfff);
        let crosses = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedGreaterThan, in_page, 0xff0);
        // The interpreter's store bypasses the JIT's code-page tracking: bump the code epoch
        // so every page of translated code is checked against its snapshot before it runs
        // again (what the run loop does after code it could not see the writes of).
        let bump = self.b.create_block();
        let same_page = self.b.create_block();
        self.b.ins().brif(crosses, bump, &[], same_page, &[]);
        self.b.set_cold_block(bump);
        self.b.switch_to_block(bump);
        let epoch = self
            .b
            .ins()
            .load(types::I64, trusted(), self.ctx, offsets::ctx::CODE_EPOCH);
        let epoch = self.b.ins().iadd_imm_s(epoch, 1);
        self.b
            .ins()
            .store(trusted(), epoch, self.ctx, offsets::ctx::CODE_EPOCH);
        let out = self.interp_exit();
        self.b.ins().jump(out, &[]);
        self.b.switch_to_block(same_page);
        let buf = self.scratch16();
        self.b.ins().store(vflags(), v, buf, 0);
        let lo = self.b.ins().load(types::I64, trusted(), buf, 0);
        let hi = self.b.ins().load(types::I64, trusted(), buf, 8);
        self.store_mem(lin, 8, ss, lo);
        let lin8 = self.b.ins().iadd_imm_s(lin, 8);
        self.store_mem(lin8, 8, ss, hi);
        self.b.ins().jump(join, &[]);

        self.b.switch_to_block(join);
    }

    /// The second source of a two-operand SSE operation (operand 1) as a vector of type `ty`:
    /// an XMM register, or an aligned 16-byte memory operand.
    pub fn vsrc(&mut self, ins: &Insn, ty: Type) -> Value {
        let i = &ins.i;
        if i.op_kind(1) == OpKind::Register {
            self.xmm_load(xmm_n(i.op_register(1)), ty)
        } else {
            let a = self.load16_addr(ins, true);
            self.b.ins().load(ty, vflags(), a, 0)
        }
    }
}
