//! Which guest instructions the JIT translates, the dispatch from mnemonic to the family
//! lowerings (`lower_*.rs`), and generic operand access (registers, immediates, memory through
//! the soft TLB) shared by them.
//!
//! Everything `supported` accepts, the family lowerings handle; everything else ends the block
//! and runs on the interpreter, one instruction at a time.

use cranelift_codegen::ir::{InstBuilder, Value, condcodes::IntCC, types};
use iced_x86::{ConditionCode, Instruction, Mnemonic, OpKind, Register};

use crate::offsets;
use crate::translate::{Insn, Translator};

/// Whether lowering an instruction continued the block or ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next instruction.
    Next,
    /// The instruction emitted the block's exits.
    End,
}

/// Where an operand lives.
#[derive(Clone, Copy, Debug)]
pub enum Loc {
    /// General-purpose register `n`; `high`: AH/CH/DH/BH.
    Reg {
        /// Register number in encoding order.
        n: u8,
        /// Legacy high-byte register.
        high: bool,
    },
    /// Memory at linear address `lin` (i64); `ss`: through SS (faults are #SS, not #GP).
    Mem {
        /// Linear address.
        lin: Value,
        /// Stack segment.
        ss: bool,
    },
    /// An immediate.
    Imm(u64),
}

/// A resolved operand.
#[derive(Clone, Copy, Debug)]
pub struct Opnd {
    /// Location.
    pub loc: Loc,
    /// Size in bytes.
    pub size: u32,
}

fn is_imm(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

fn gpr_reg_ok(r: Register) -> bool {
    r.is_gpr()
}

fn addr_reg_ok(r: Register) -> bool {
    r == Register::None || r == Register::RIP || r == Register::EIP || r.is_gpr64() || r.is_gpr32()
}

/// Canonical 48-bit linear address.
pub fn canonical(a: u64) -> bool {
    cpu::interp::cx::canonical(a)
}

fn operands_ok(i: &Instruction) -> bool {
    for k in 0..i.op_count() {
        match i.op_kind(k) {
            OpKind::Register => {
                if !gpr_reg_ok(i.op_register(k)) {
                    return false;
                }
            }
            OpKind::Memory => {
                if !addr_reg_ok(i.memory_base())
                    || !(i.memory_index() == Register::None
                        || i.memory_index().is_gpr64()
                        || i.memory_index().is_gpr32())
                {
                    return false;
                }
            }
            OpKind::NearBranch64 => {
                if !canonical(i.near_branch_target()) {
                    return false;
                }
            }
            k if is_imm(k) => {}
            _ => return false,
        }
    }
    true
}

fn has_mem(i: &Instruction) -> bool {
    (0..i.op_count()).any(|k| i.op_kind(k) == OpKind::Memory)
}

/// Whether the JIT translates `i` (decoded in 64-bit mode).
pub fn supported(i: &Instruction) -> bool {
    use Mnemonic::*;
    if crate::lower_sse::handles(i.mnemonic()) {
        return crate::lower_sse::supported(i);
    }
    if i.has_rep_prefix() || i.has_repne_prefix() {
        return false;
    }
    if !operands_ok(i) {
        // MOV r, Sreg (the one form with a segment register the JIT translates).
        return i.mnemonic() == Mnemonic::Mov
            && i.op_count() == 2
            && i.op_kind(0) == OpKind::Register
            && gpr_reg_ok(i.op_register(0))
            && i.op_kind(1) == OpKind::Register
            && i.op_register(1).is_segment_register()
            && !i.has_lock_prefix();
    }
    // LOCK is valid on read-modify-write instructions with a memory destination (else #UD,
    // which the interpreter raises); one vCPU runs one instruction at a time, so a locked
    // RMW needs nothing more.
    if i.has_lock_prefix()
        && !(i.op_kind(0) == OpKind::Memory
            && matches!(
                i.mnemonic(),
                Add | Adc
                    | And
                    | Btc
                    | Btr
                    | Bts
                    | Cmpxchg
                    | Dec
                    | Inc
                    | Neg
                    | Not
                    | Or
                    | Sbb
                    | Sub
                    | Xor
                    | Xadd
                    | Xchg
            ))
    {
        return false;
    }
    let m = i.mnemonic();
    let mem_size = if has_mem(i) {
        i.memory_size().size()
    } else {
        0
    };
    let sized = !has_mem(i) || matches!(mem_size, 1 | 2 | 4 | 8);
    match m {
        Nop | Pause | Endbr64 => true,
        // Hints only: no fault, no architectural effect (SDM Vol. 2B PREFETCHh).
        Prefetchnta | Prefetcht0 | Prefetcht1 | Prefetcht2 | Prefetchw => true,
        Lea => i.op_count() == 2 && i.op_kind(0) == OpKind::Register,
        Mov | Add | Adc | Sub | Sbb | Cmp | And | Or | Xor | Test => i.op_count() == 2 && sized,
        Movzx | Movsx | Movsxd => sized && i.op_kind(0) == OpKind::Register,
        Xchg | Xadd | Cmpxchg => {
            i.op_count() == 2
                && sized
                && (i.op_kind(0) == OpKind::Register || i.op_kind(1) == OpKind::Register)
        }
        Bt | Bts | Btr | Btc => {
            // A register bit offset on memory addresses a bit string around the operand
            // (`bit_string`; decode leaves 32-bit addressing forms to the interpreter).
            sized && i.op_count() == 2
        }
        Bsf | Bsr => sized && i.op_kind(0) == OpKind::Register && i.op_register(0).size() >= 2,
        Clc | Stc | Cmc | Cld | Std | Lahf | Sahf | Cli => true,
        Leave => i.code() == iced_x86::Code::Leaveq,
        Div | Idiv => sized && i.op_count() == 1,
        Cbw | Cwde | Cdqe | Cwd | Cdq | Cqo => true,
        Bswap => i.op_register(0).size() >= 4,
        Inc | Dec | Neg | Not => i.op_count() == 1 && sized,
        Push => i.stack_pointer_increment() == -8 && sized,
        Pop => i.stack_pointer_increment() == 8 && i.op_kind(0) == OpKind::Register,
        Pushfq => true,
        Call | Jmp => {
            matches!(i.op_kind(0), OpKind::NearBranch64)
                || (i.op_kind(0) == OpKind::Register && i.op_register(0).is_gpr64())
                || (i.op_kind(0) == OpKind::Memory && mem_size == 8)
        }
        Ret => matches!(
            i.code(),
            iced_x86::Code::Retnq | iced_x86::Code::Retnq_imm16
        ),
        Shl | Sal | Shr | Sar | Rol | Ror => {
            i.op_count() == 2
                && sized
                && (is_imm(i.op_kind(1))
                    || (i.op_kind(1) == OpKind::Register
                        && i.op_register(1) == Register::CL
                        && i.op_kind(0) == OpKind::Register))
        }
        Imul => sized && (1..=3).contains(&i.op_count()),
        Mul => sized && i.op_count() == 1,
        _ if is_jcc(i) || is_loop(i) => true,
        _ if is_setcc(m) => sized,
        _ if is_cmovcc(m) => sized,
        _ => false,
    }
}

/// BT/BTS/BTR/BTC with a memory operand and a register bit offset (a bit string).
pub fn bit_string(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
    ) && i.op_kind(0) == OpKind::Memory
        && i.op_kind(1) == OpKind::Register
}

/// A conditional near branch (not LOOP/JRCXZ).
pub fn is_jcc(i: &Instruction) -> bool {
    i.condition_code() != ConditionCode::None
        && i.op_count() == 1
        && i.op_kind(0) == OpKind::NearBranch64
        && !matches!(
            i.mnemonic(),
            Mnemonic::Loop
                | Mnemonic::Loope
                | Mnemonic::Loopne
                | Mnemonic::Jrcxz
                | Mnemonic::Jecxz
                | Mnemonic::Jcxz
        )
}

/// LOOP, LOOPE, LOOPNE, JRCXZ, JECXZ with a 64-bit target.
pub fn is_loop(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne | Mnemonic::Jrcxz | Mnemonic::Jecxz
    ) && i.op_kind(0) == OpKind::NearBranch64
}

/// SETcc.
pub fn is_setcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Seto | Setno
            | Setb
            | Setae
            | Sete
            | Setne
            | Setbe
            | Seta
            | Sets
            | Setns
            | Setp
            | Setnp
            | Setl
            | Setge
            | Setle
            | Setg
    )
}

/// CMOVcc.
pub fn is_cmovcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmovo
            | Cmovno
            | Cmovb
            | Cmovae
            | Cmove
            | Cmovne
            | Cmovbe
            | Cmova
            | Cmovs
            | Cmovns
            | Cmovp
            | Cmovnp
            | Cmovl
            | Cmovge
            | Cmovle
            | Cmovg
    )
}

/// Whether `i` ends a block (a control transfer).
pub fn ends_block(i: &Instruction) -> bool {
    matches!(i.mnemonic(), Mnemonic::Jmp | Mnemonic::Call | Mnemonic::Ret)
        || is_jcc(i)
        || is_loop(i)
}

/// The static target of a JMP or Jcc, if it has one.
pub fn static_target(i: &Instruction) -> Option<u64> {
    if (i.mnemonic() == Mnemonic::Jmp || is_jcc(i) || is_loop(i))
        && i.op_kind(0) == OpKind::NearBranch64
    {
        Some(i.near_branch_target())
    } else {
        None
    }
}

/// Lower one supported instruction.
pub fn lower(t: &mut Translator, ins: &Insn) -> Flow {
    use Mnemonic::*;
    let m = ins.i.mnemonic();
    match m {
        _ if crate::lower_sse::handles(m) => crate::lower_sse::lower(t, ins),
        Add | Adc | Sub | Sbb | Cmp | And | Or | Xor | Test | Inc | Dec | Neg | Not => {
            crate::lower_alu::lower(t, ins)
        }
        Push | Pop | Pushfq | Leave => crate::lower_stack::lower(t, ins),
        Xchg if ins.i.op_kind(0) == OpKind::Memory || ins.i.op_kind(1) == OpKind::Memory => {
            crate::lower_xchg::lower(t, ins)
        }
        Xadd | Cmpxchg => crate::lower_xchg::lower(t, ins),
        Bt | Bts | Btr | Btc | Bsf | Bsr => crate::lower_bit::lower(t, ins),
        Clc | Stc | Cmc | Cld | Std | Lahf | Sahf | Cli => crate::lower_flagops::lower(t, ins),
        Jmp | Call | Ret => crate::lower_branch::lower(t, ins),
        Shl | Sal | Shr | Sar | Rol | Ror => crate::lower_shift::lower(t, ins),
        Imul | Mul | Div | Idiv => crate::lower_mul::lower(t, ins),
        _ if is_jcc(&ins.i) || is_loop(&ins.i) => crate::lower_branch::lower(t, ins),
        _ => crate::lower_mov::lower(t, ins),
    }
}

impl Translator<'_, '_> {
    /// The effective address (segment offset) of the memory operand, masked to the address
    /// size.
    pub fn ea(&mut self, ins: &Insn) -> Value {
        let i = &ins.i;
        let base = i.memory_base();
        let disp = i.memory_displacement64();
        if base == Register::RIP {
            return self.imm64(disp);
        }
        if base == Register::EIP {
            return self.imm64(disp & 0xffff_ffff);
        }
        let mut a = self.imm64(disp);
        if base != Register::None {
            let b = self.gpr(base.full_register().number());
            a = self.b.ins().iadd(a, b);
        }
        let index = i.memory_index();
        if index != Register::None {
            let x = self.gpr(index.full_register().number());
            let scale = i.memory_index_scale();
            let x = if scale > 1 {
                self.b
                    .ins()
                    .ishl_imm_s(x, i64::from(scale.trailing_zeros()))
            } else {
                x
            };
            a = self.b.ins().iadd(a, x);
        }
        if ins.asz == 4 {
            let lo = self.b.ins().ireduce(types::I32, a);
            a = self.b.ins().uextend(types::I64, lo);
        }
        a
    }

    /// The linear address of the memory operand (FS/GS bases added) and whether it goes
    /// through SS.
    pub fn lin(&mut self, ins: &Insn) -> (Value, bool) {
        let a = self.ea(ins);
        let seg = ins.i.memory_segment();
        let lin = match seg {
            Register::FS | Register::GS => {
                let n = if seg == Register::FS {
                    cpu::state::sreg::FS
                } else {
                    cpu::state::sreg::GS
                };
                let base = self.b.ins().load(
                    types::I64,
                    crate::translate::trusted(),
                    self.st,
                    offsets::seg_base(n),
                );
                self.b.ins().iadd(a, base)
            }
            _ => a,
        };
        (lin, seg == Register::SS)
    }

    /// The operand size of `ins`: its first register or memory operand.
    pub fn osize(&self, ins: &Insn) -> u32 {
        match ins.i.op_kind(0) {
            OpKind::Register => ins.i.op_register(0).size() as u32,
            OpKind::Memory => ins.i.memory_size().size() as u32,
            _ => 8,
        }
    }

    /// Resolve operand `k`; immediates take `imm_size` bytes.
    pub fn opnd(&mut self, ins: &Insn, k: u32, imm_size: u32) -> Opnd {
        let i = &ins.i;
        match i.op_kind(k) {
            OpKind::Register => {
                let (n, high, size) = cpu::interp::cx::gpr_of(i.op_register(k));
                Opnd {
                    loc: Loc::Reg { n, high },
                    size,
                }
            }
            OpKind::Memory => {
                let (lin, ss) = self.lin(ins);
                Opnd {
                    loc: Loc::Mem { lin, ss },
                    size: i.memory_size().size() as u32,
                }
            }
            _ => Opnd {
                loc: Loc::Imm(i.immediate(k)),
                size: imm_size,
            },
        }
    }

    /// Read an operand (its natural type).
    pub fn read(&mut self, op: Opnd) -> Value {
        match op.loc {
            Loc::Reg { n, high } => self.get_reg(n, high, op.size),
            Loc::Mem { lin, ss } => self.load_mem(lin, op.size, ss),
            Loc::Imm(v) => self.imm(op.size, v),
        }
    }

    /// Read the destination of a read-modify-write (memory: through the write TLB, so the
    /// write needs no second probe).
    pub fn read_rmw(&mut self, op: Opnd) -> (Value, Option<crate::tlb::Rmw>) {
        match op.loc {
            Loc::Mem { lin, ss } => {
                let (v, r) = self.load_rmw(lin, op.size, ss);
                (v, Some(r))
            }
            _ => (self.read(op), None),
        }
    }

    /// Write the destination of a read-modify-write begun with `read_rmw`.
    pub fn write_rmw(&mut self, op: Opnd, v: Value, rmw: Option<crate::tlb::Rmw>) {
        match (op.loc, rmw) {
            (Loc::Mem { lin, ss }, Some(r)) => self.store_rmw(lin, op.size, ss, v, r),
            _ => self.write(op, v),
        }
    }

    /// Write an operand. Memory writes may fault, so lowerings write memory before they
    /// change any register.
    pub fn write(&mut self, op: Opnd, v: Value) {
        match op.loc {
            Loc::Reg { n, high } => self.set_reg(n, high, op.size, v),
            Loc::Mem { lin, ss } => self.store_mem(lin, op.size, ss, v),
            Loc::Imm(_) => {}
        }
    }

    /// Raise #GP(0) at the current instruction when `target` is not canonical.
    pub fn check_canonical(&mut self, target: Value) {
        let sh = self.b.ins().ishl_imm_s(target, 16);
        let back = self.b.ins().sshr_imm_s(sh, 16);
        let bad = self.b.ins().icmp(IntCC::NotEqual, back, target);
        self.fault_if(bad, cpu::fault::vector::GP, Some(0));
    }
}
