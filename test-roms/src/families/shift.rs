//! Shifts and rotates in 64-bit mode (SDM Vol. 2: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR,
//! SHLD, SHRD) by 1, by an immediate and by CL, at every operand size, in registers and
//! memory. Undefined per the SDM, and so not compared: AF after a nonzero shift; OF after a
//! shift or rotate by more than 1; CF after SHL/SHR by at least the operand size; for
//! SHLD/SHRD by more than the operand size, the result and every flag.

use iced_x86::code_asm::*;

use super::{Gen, Opnd, R8, R16, R32, R64, mem, mem_off};
use crate::check::fl;
use crate::{TestRom, op2};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Shl,
    Sal,
    Shr,
    Sar,
    Rol,
    Ror,
    Rcl,
    Rcr,
}

const OPS: [Op; 8] = [
    Op::Shl,
    Op::Sal,
    Op::Shr,
    Op::Sar,
    Op::Rol,
    Op::Ror,
    Op::Rcl,
    Op::Rcr,
];

/// Compared flags for `op` at `size` bits by `count` (before masking), and whether the
/// destination is undefined.
fn mask(op: Op, size: u32, count: u64) -> u32 {
    let masked = count & if size == 64 { 63 } else { 31 };
    if masked == 0 {
        return fl::ALL;
    }
    let mut m = fl::ALL;
    if masked != 1 {
        m &= !fl::OF;
    }
    match op {
        Op::Shl | Op::Sal | Op::Shr | Op::Sar => {
            m &= !fl::AF;
            if matches!(op, Op::Shl | Op::Sal | Op::Shr) && masked >= u64::from(size) {
                m &= !fl::CF;
            }
        }
        _ => {}
    }
    m
}

macro_rules! by_cl {
    ($a:expr, $m:ident, $size:expr, $dst:expr) => {
        match ($size, $dst) {
            (8, Opnd::R(d)) => $a.$m(R8[d], cl),
            (16, Opnd::R(d)) => $a.$m(R16[d], cl),
            (32, Opnd::R(d)) => $a.$m(R32[d], cl),
            (64, Opnd::R(d)) => $a.$m(R64[d], cl),
            (s, Opnd::M(o)) => $a.$m(mem(s, o), cl),
            (s, d) => panic!("no {} form {s} {d:?}", stringify!($m)),
        }
    };
}

fn emit(a: &mut CodeAssembler, op: Op, size: u32, dst: Opnd, count: Option<i64>) -> crate::asm::R {
    macro_rules! go {
        ($m:ident) => {
            match count {
                Some(n) => op2!(a, $m, size, dst, Opnd::I(n); ri mi),
                None => by_cl!(a, $m, size, dst),
            }
        };
    }
    match op {
        Op::Shl => go!(shl),
        Op::Sal => go!(sal),
        Op::Shr => go!(shr),
        Op::Sar => go!(sar),
        Op::Rol => go!(rol),
        Op::Ror => go!(ror),
        Op::Rcl => go!(rcl),
        Op::Rcr => go!(rcr),
    }
}

fn emit_double(
    a: &mut CodeAssembler,
    left: bool,
    size: u32,
    dst: Opnd,
    src: usize,
    count: Option<i64>,
) -> crate::asm::R {
    macro_rules! go {
        ($m:ident) => {
            match (size, dst, count) {
                (16, Opnd::R(d), Some(n)) => a.$m(R16[d], R16[src], n as i32),
                (32, Opnd::R(d), Some(n)) => a.$m(R32[d], R32[src], n as i32),
                (64, Opnd::R(d), Some(n)) => a.$m(R64[d], R64[src], n as i32),
                (16, Opnd::R(d), None) => a.$m(R16[d], R16[src], cl),
                (32, Opnd::R(d), None) => a.$m(R32[d], R32[src], cl),
                (64, Opnd::R(d), None) => a.$m(R64[d], R64[src], cl),
                (16, Opnd::M(o), Some(n)) => a.$m(mem(16, o), R16[src], n as i32),
                (32, Opnd::M(o), Some(n)) => a.$m(mem(32, o), R32[src], n as i32),
                (64, Opnd::M(o), Some(n)) => a.$m(mem(64, o), R64[src], n as i32),
                (16, Opnd::M(o), None) => a.$m(mem(16, o), R16[src], cl),
                (32, Opnd::M(o), None) => a.$m(mem(32, o), R32[src], cl),
                (64, Opnd::M(o), None) => a.$m(mem(64, o), R64[src], cl),
                (s, d, _) => panic!("no double shift form {s} {d:?}"),
            }
        };
    }
    if left { go!(shld) } else { go!(shrd) }
}

/// A count: sometimes 0, 1, the operand size or just beyond, else anything (the CPU masks).
fn pick_count(g: &mut Gen, size: u32) -> u64 {
    let s = u64::from(size);
    match g.rng.below(6) {
        0 => 0,
        1 => 1,
        2 => s,
        3 => s + 1,
        4 => g.rng.below(s),
        _ => g.rng.below(256),
    }
}

/// A register other than RCX (whose low byte is the count).
fn reg_not_rcx(g: &mut Gen) -> usize {
    loop {
        let r = g.rng.below(13) as usize;
        if r != 2 {
            return r;
        }
    }
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0x5a1f_7000_0002);
    for op in OPS {
        for size in [8u32, 16, 32, 64] {
            for form in 0..6 {
                let d = reg_not_rcx(&mut g);
                let off = mem_off(&mut g.rng, size);
                let dst = if form % 2 == 0 {
                    Opnd::R(d)
                } else {
                    Opnd::M(off)
                };
                let raw = pick_count(&mut g, size);
                let (count, cl_val) = match form / 2 {
                    0 => (Some(1i64), 1u64),
                    1 => (Some((raw & 0xff) as i64), raw & 0xff),
                    _ => (None, raw),
                };
                let mut input = g.input(&[d], form % 2 == 1);
                if count.is_none() {
                    // CL holds the count; the rest of RCX is random.
                    input.regs[2] = (g.rng.next_u64() & !0xff) | (cl_val & 0xff);
                }
                g.add64(input, mask(op, size, cl_val), |a| {
                    emit(a, op, size, dst, count)
                });
            }
        }
    }
    for left in [true, false] {
        for size in [16u32, 32, 64] {
            for form in 0..12 {
                let d = reg_not_rcx(&mut g);
                let mut s = reg_not_rcx(&mut g);
                while s == d {
                    s = reg_not_rcx(&mut g);
                }
                let off = mem_off(&mut g.rng, size);
                let dst = if form % 2 == 0 {
                    Opnd::R(d)
                } else {
                    Opnd::M(off)
                };
                let raw = pick_count(&mut g, size) & 0xff;
                let by_cl = form % 4 >= 2;
                let mut input = g.input(&[d, s], form % 2 == 1);
                if by_cl {
                    input.regs[2] = (g.rng.next_u64() & !0xff) | raw;
                }
                let masked = raw & if size == 64 { 63 } else { 31 };
                let mut flags = mask(Op::Shl, size, raw);
                let mut ignore = 0u16;
                if masked > u64::from(size) {
                    // SDM: "If the count is greater than the operand size, the result is
                    // undefined", and so are the flags.
                    flags = 0;
                    ignore = match dst {
                        Opnd::R(r) => 1 << r,
                        _ => crate::check::MEM_BIT,
                    };
                }
                let count = if by_cl { None } else { Some(raw as i64) };
                let code = crate::check::snippet(64, |a| emit_double(a, left, size, dst, s, count));
                let mut spec = crate::host::Spec::same(code, input, flags);
                spec.ignore = ignore;
                g.add(spec);
            }
        }
    }
    g.family(
        "families/shift",
        "shifts and rotates (shl sal shr sar rol ror rcl rcr shld shrd)",
        64,
    )
    .build()
}
