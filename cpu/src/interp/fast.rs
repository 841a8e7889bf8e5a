//! Fast paths for the most frequent instruction forms (register/immediate ALU, MOV, INC/DEC,
//! Jcc/JMP). They are classified once, when an instruction enters the decode cache, and
//! execute without the generic operand machinery. Semantics are exactly those of the family
//! modules (alu.rs, mov.rs, branch.rs); the host-checked instruction tests run through them.

use iced_x86::{ConditionCode, Instruction, Mnemonic, OpKind, Register};

use super::alu::{AluOp, INC_DEC_FLAGS, binary, inc_dec};
use super::branch::check_target;
use super::cond;
use super::cx::{Cx, mask, sext};
use super::flags;
use super::muldiv::{imul_flags, imul_trunc};
use crate::fault::Fault;

/// A pre-classified instruction form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast {
    /// Not a fast form: use the generic path.
    None,
    /// `op reg, reg`.
    AluRR {
        op: AluOp,
        dst: u8,
        src: u8,
        size: u8,
    },
    /// `op reg, imm`.
    AluRI {
        op: AluOp,
        dst: u8,
        imm: u64,
        size: u8,
    },
    /// `mov reg, reg`.
    MovRR { dst: u8, src: u8, size: u8 },
    /// `mov reg, imm`.
    MovRI { dst: u8, imm: u64, size: u8 },
    /// `inc reg` / `dec reg`.
    IncDec { dst: u8, size: u8, dec: bool },
    /// `mov reg, [mem]`.
    Load { dst: u8, size: u8 },
    /// `mov [mem], reg`.
    Store { src: u8, size: u8 },
    /// `op reg, [mem]`.
    AluRM { op: AluOp, dst: u8, size: u8 },
    /// `lea reg, [mem]`.
    Lea { dst: u8, size: u8 },
    /// `push reg` (size: the stack operand size).
    Push { src: u8, size: u8 },
    /// `pop reg`.
    Pop { dst: u8, size: u8 },
    /// `call rel`.
    Call { target: u64, size: u8 },
    /// `ret` without an immediate.
    Ret { size: u8 },
    /// Shift or rotate of a register by an immediate (count already masked, non-zero).
    ShiftRI {
        m: Mnemonic,
        dst: u8,
        count: u8,
        size: u8,
    },
    /// `movzx`/`movsx`/`movsxd reg, reg`.
    ExtRR {
        dst: u8,
        dsize: u8,
        src: u8,
        ssize: u8,
        signed: bool,
    },
    /// `movzx`/`movsx`/`movsxd reg, [mem]`.
    ExtRM {
        dst: u8,
        dsize: u8,
        ssize: u8,
        signed: bool,
    },
    /// `imul reg, reg` or `imul reg, reg, imm`.
    ImulRR {
        dst: u8,
        src: u8,
        imm: Option<u64>,
        size: u8,
    },
    /// `imul reg, [mem]` or `imul reg, [mem], imm`.
    ImulRM { dst: u8, imm: Option<u64>, size: u8 },
    /// `mov [mem], imm`.
    StoreImm { imm: u64, size: u8 },
    /// `op [mem], reg` or `op [mem], imm` (CMP and TEST only read).
    AluMX {
        op: AluOp,
        src: Option<u8>,
        imm: u64,
        size: u8,
    },
    /// `jcc rel` (size: the branch operand size in bytes).
    Jcc {
        cc: ConditionCode,
        target: u64,
        size: u8,
    },
    /// `jmp rel`.
    Jmp { target: u64, size: u8 },
}

fn full_gpr(r: Register) -> Option<(u8, u8)> {
    if !r.is_gpr() || (Register::AH as u32..=Register::BH as u32).contains(&(r as u32)) {
        return None;
    }
    Some((r.full_register().number() as u8, r.size() as u8))
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

fn branch_size(k: OpKind) -> u8 {
    match k {
        OpKind::NearBranch16 => 2,
        OpKind::NearBranch32 => 4,
        _ => 8,
    }
}

/// Classify `i` (decoded at code size `bitness`).
pub fn classify(i: &Instruction) -> Fast {
    if i.has_lock_prefix() || i.has_rep_prefix() || i.has_repne_prefix() {
        return Fast::None;
    }
    let m = i.mnemonic();
    let reg0 = if i.op_count() >= 1 && i.op_kind(0) == OpKind::Register {
        full_gpr(i.op_register(0))
    } else {
        None
    };
    match m {
        Mnemonic::Mov if i.op_count() == 2 => {
            let Some((dst, size)) = reg0 else {
                return Fast::None;
            };
            if i.op_kind(1) == OpKind::Register {
                match full_gpr(i.op_register(1)) {
                    Some((src, s)) if s == size => Fast::MovRR { dst, src, size },
                    _ => Fast::None,
                }
            } else if is_imm(i.op_kind(1)) {
                Fast::MovRI {
                    dst,
                    imm: i.immediate(1) & mask(u32::from(size)),
                    size,
                }
            } else if i.op_kind(1) == OpKind::Memory {
                Fast::Load { dst, size }
            } else {
                Fast::None
            }
        }
        Mnemonic::Mov
            if i.op_count() == 2
                && i.op_kind(0) == OpKind::Memory
                && i.op_kind(1) == OpKind::Register =>
        {
            match full_gpr(i.op_register(1)) {
                Some((src, size)) => Fast::Store { src, size },
                None => Fast::None,
            }
        }
        Mnemonic::Lea => match reg0 {
            Some((dst, size)) => Fast::Lea { dst, size },
            None => Fast::None,
        },
        Mnemonic::Push | Mnemonic::Pop if i.op_kind(0) == OpKind::Register => {
            let size = i.stack_pointer_increment().unsigned_abs() as u8;
            match reg0 {
                Some((r, s)) if s == size && r != 4 => {
                    if m == Mnemonic::Push {
                        Fast::Push { src: r, size }
                    } else {
                        Fast::Pop { dst: r, size }
                    }
                }
                _ => Fast::None,
            }
        }
        Mnemonic::Call
            if matches!(
                i.op_kind(0),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            ) =>
        {
            Fast::Call {
                target: i.near_branch_target(),
                size: branch_size(i.op_kind(0)),
            }
        }
        Mnemonic::Ret if i.op_count() == 0 => Fast::Ret {
            size: match i.code() {
                iced_x86::Code::Retnw => 2,
                iced_x86::Code::Retnd => 4,
                _ => 8,
            },
        },
        Mnemonic::Mov
            if i.op_count() == 2 && i.op_kind(0) == OpKind::Memory && is_imm(i.op_kind(1)) =>
        {
            let size = i.memory_size().size() as u8;
            Fast::StoreImm {
                imm: i.immediate(1) & mask(u32::from(size)),
                size,
            }
        }
        Mnemonic::Shl
        | Mnemonic::Sal
        | Mnemonic::Shr
        | Mnemonic::Sar
        | Mnemonic::Rol
        | Mnemonic::Ror
            if i.op_count() == 2 && is_imm(i.op_kind(1)) =>
        {
            let Some((dst, size)) = reg0 else {
                return Fast::None;
            };
            let count = super::shift::masked_count((i.immediate(1) & 0xff) as u32, u32::from(size));
            if count == 0 {
                return Fast::None;
            }
            Fast::ShiftRI {
                m,
                dst,
                count: count as u8,
                size,
            }
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
            let Some((dst, dsize)) = reg0 else {
                return Fast::None;
            };
            let signed = m != Mnemonic::Movzx;
            match i.op_kind(1) {
                OpKind::Register => match full_gpr(i.op_register(1)) {
                    Some((src, ssize)) => Fast::ExtRR {
                        dst,
                        dsize,
                        src,
                        ssize,
                        signed,
                    },
                    None => Fast::None,
                },
                OpKind::Memory => Fast::ExtRM {
                    dst,
                    dsize,
                    ssize: i.memory_size().size() as u8,
                    signed,
                },
                _ => Fast::None,
            }
        }
        Mnemonic::Imul if i.op_count() >= 2 => {
            let Some((dst, size)) = reg0 else {
                return Fast::None;
            };
            let imm = (i.op_count() == 3).then(|| i.immediate(2));
            match i.op_kind(1) {
                OpKind::Register => match full_gpr(i.op_register(1)) {
                    Some((src, _)) => Fast::ImulRR {
                        dst,
                        src,
                        imm,
                        size,
                    },
                    None => Fast::None,
                },
                OpKind::Memory => Fast::ImulRM { dst, imm, size },
                _ => Fast::None,
            }
        }
        Mnemonic::Inc | Mnemonic::Dec => match reg0 {
            Some((dst, size)) => Fast::IncDec {
                dst,
                size,
                dec: m == Mnemonic::Dec,
            },
            None => Fast::None,
        },
        Mnemonic::Jmp
            if matches!(
                i.op_kind(0),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            ) =>
        {
            Fast::Jmp {
                target: i.near_branch_target(),
                size: branch_size(i.op_kind(0)),
            }
        }
        _ if i.condition_code() != ConditionCode::None
            && i.op_count() == 1
            && matches!(
                i.op_kind(0),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            )
            && !matches!(
                m,
                Mnemonic::Loop
                    | Mnemonic::Loope
                    | Mnemonic::Loopne
                    | Mnemonic::Jcxz
                    | Mnemonic::Jecxz
                    | Mnemonic::Jrcxz
            ) =>
        {
            Fast::Jcc {
                cc: i.condition_code(),
                target: i.near_branch_target(),
                size: branch_size(i.op_kind(0)),
            }
        }
        _ => {
            let Some(op) = AluOp::of(m) else {
                return Fast::None;
            };
            if i.op_count() == 2 && i.op_kind(0) == OpKind::Memory {
                let size = i.memory_size().size() as u8;
                return match i.op_kind(1) {
                    OpKind::Register => match full_gpr(i.op_register(1)) {
                        Some((src, _)) => Fast::AluMX {
                            op,
                            src: Some(src),
                            imm: 0,
                            size,
                        },
                        None => Fast::None,
                    },
                    k if is_imm(k) => Fast::AluMX {
                        op,
                        src: None,
                        imm: i.immediate(1) & mask(u32::from(size)),
                        size,
                    },
                    _ => Fast::None,
                };
            }
            let Some((dst, size)) = reg0 else {
                return Fast::None;
            };
            if i.op_count() != 2 {
                return Fast::None;
            }
            if i.op_kind(1) == OpKind::Register {
                match full_gpr(i.op_register(1)) {
                    Some((src, s)) if s == size => Fast::AluRR { op, dst, src, size },
                    _ => Fast::None,
                }
            } else if is_imm(i.op_kind(1)) {
                Fast::AluRI {
                    op,
                    dst,
                    imm: i.immediate(1) & mask(u32::from(size)),
                    size,
                }
            } else if i.op_kind(1) == OpKind::Memory {
                Fast::AluRM { op, dst, size }
            } else {
                Fast::None
            }
        }
    }
}

#[inline(always)]
fn alu(cx: &mut Cx, op: AluOp, dst: u8, b: u64, size: u32) {
    let a = cx.reg(dst, false, size);
    let (r, f) = binary(op, a, b, size, cx.st.rflags);
    if op.writes_result() {
        cx.set_reg(dst, false, size, r);
    }
    cx.st.rflags = flags::set_status(cx.st.rflags, f);
}

/// Execute a fast form. RIP already points at the next instruction.
#[inline(always)]
pub fn exec(cx: &mut Cx, f: Fast, i: &Instruction) -> Result<(), Fault> {
    match f {
        Fast::Load { dst, size } => {
            let size = u32::from(size);
            let off = cx.ea(i);
            let v = cx.read_mem(cx.mem_seg(i), off, size)?;
            cx.set_reg(dst, false, size, v);
        }
        Fast::Store { src, size } => {
            let size = u32::from(size);
            let off = cx.ea(i);
            let v = cx.reg(src, false, size);
            cx.write_mem(cx.mem_seg(i), off, size, v)?;
        }
        Fast::AluRM { op, dst, size } => {
            let size = u32::from(size);
            let off = cx.ea(i);
            let b = cx.read_mem(cx.mem_seg(i), off, size)?;
            alu(cx, op, dst, b, size);
        }
        Fast::ShiftRI {
            m,
            dst,
            count,
            size,
        } => {
            let size = u32::from(size);
            let a = cx.reg(dst, false, size);
            let (r, fl) = super::shift::shift_value(m, a, u32::from(count), size, cx.st.rflags);
            cx.set_reg(dst, false, size, r);
            cx.st.rflags = fl;
        }
        Fast::ExtRR {
            dst,
            dsize,
            src,
            ssize,
            signed,
        } => {
            let v = cx.reg(src, false, u32::from(ssize));
            let v = if signed { sext(v, u32::from(ssize)) } else { v };
            cx.set_reg(dst, false, u32::from(dsize), v);
        }
        Fast::ExtRM {
            dst,
            dsize,
            ssize,
            signed,
        } => {
            let off = cx.ea(i);
            let v = cx.read_mem(cx.mem_seg(i), off, u32::from(ssize))?;
            let v = if signed { sext(v, u32::from(ssize)) } else { v };
            cx.set_reg(dst, false, u32::from(dsize), v);
        }
        Fast::ImulRR {
            dst,
            src,
            imm,
            size,
        } => {
            let size = u32::from(size);
            let (a, b) = match imm {
                Some(k) => (cx.reg(src, false, size), k),
                None => (cx.reg(dst, false, size), cx.reg(src, false, size)),
            };
            let (r, overflow) = imul_trunc(a, b, size);
            cx.set_reg(dst, false, size, r);
            cx.st.rflags = imul_flags(cx.st.rflags, overflow);
        }
        Fast::ImulRM { dst, imm, size } => {
            let size = u32::from(size);
            let off = cx.ea(i);
            let m = cx.read_mem(cx.mem_seg(i), off, size)?;
            let (a, b) = match imm {
                Some(k) => (m, k),
                None => (cx.reg(dst, false, size), m),
            };
            let (r, overflow) = imul_trunc(a, b, size);
            cx.set_reg(dst, false, size, r);
            cx.st.rflags = imul_flags(cx.st.rflags, overflow);
        }
        Fast::StoreImm { imm, size } => {
            let off = cx.ea(i);
            cx.write_mem(cx.mem_seg(i), off, u32::from(size), imm)?;
        }
        Fast::AluMX { op, src, imm, size } => {
            let size = u32::from(size);
            let off = cx.ea(i);
            let seg = cx.mem_seg(i);
            let b = match src {
                Some(r) => cx.reg(r, false, size),
                None => imm,
            };
            if !op.writes_result() {
                let a = cx.read_mem(seg, off, size)?;
                let (_, f) = binary(op, a, b, size, cx.st.rflags);
                cx.st.rflags = flags::set_status(cx.st.rflags, f);
            } else {
                let lin = cx.linear(seg, off, size, true)?;
                let user = cx.cpl() == 3;
                cx.probe_write(lin, size)?;
                let a = cx.read_lin(lin, size, user)?;
                let (r, f) = binary(op, a, b, size, cx.st.rflags);
                cx.write_lin(lin, size, r, user)?;
                cx.st.rflags = flags::set_status(cx.st.rflags, f);
            }
        }
        Fast::Lea { dst, size } => {
            let v = cx.ea(i);
            cx.set_reg(dst, false, u32::from(size), v);
        }
        Fast::Push { src, size } => {
            let size = u32::from(size);
            let v = cx.reg(src, false, size);
            cx.push(v, size)?;
        }
        Fast::Pop { dst, size } => {
            let size = u32::from(size);
            let v = cx.pop(size)?;
            cx.set_reg(dst, false, size, v);
        }
        Fast::Call { target, size } => {
            let size = u32::from(size);
            let t = target & mask(size);
            check_target(cx, t)?;
            let ret = cx.st.rip;
            cx.push(ret & mask(size), size)?;
            cx.jump(t, size);
        }
        Fast::Ret { size } => {
            let size = u32::from(size);
            let t = cx.peek(0, size)?;
            check_target(cx, t)?;
            cx.pop(size)?;
            cx.jump(t, size);
        }
        Fast::None => unreachable!("fast::exec is called only for classified forms"),
        Fast::AluRR { op, dst, src, size } => {
            let b = cx.reg(src, false, u32::from(size));
            alu(cx, op, dst, b, u32::from(size));
        }
        Fast::AluRI { op, dst, imm, size } => alu(cx, op, dst, imm, u32::from(size)),
        Fast::MovRR { dst, src, size } => {
            let v = cx.reg(src, false, u32::from(size));
            cx.set_reg(dst, false, u32::from(size), v);
        }
        Fast::MovRI { dst, imm, size } => cx.set_reg(dst, false, u32::from(size), imm),
        Fast::IncDec { dst, size, dec } => {
            let size = u32::from(size);
            let a = cx.reg(dst, false, size);
            let (r, fl) = inc_dec(a, size, dec);
            cx.set_reg(dst, false, size, r);
            cx.st.rflags = flags::merge(cx.st.rflags, fl, INC_DEC_FLAGS);
        }
        Fast::Jcc { cc, target, size } => {
            if cond(cx.st.rflags, cc) {
                let t = target & mask(u32::from(size));
                check_target(cx, t)?;
                cx.jump(t, u32::from(size));
            }
        }
        Fast::Jmp { target, size } => {
            let t = target & mask(u32::from(size));
            check_target(cx, t)?;
            cx.jump(t, u32::from(size));
        }
    }
    Ok(())
}
