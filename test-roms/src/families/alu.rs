//! Integer ALU family in 64-bit mode (SDM Vol. 2: ADD ADC SUB SBB CMP AND OR XOR TEST INC
//! DEC NEG NOT): every operation at 8, 16, 32 and 64 bits in register, memory and immediate
//! forms, plus the legacy high-byte registers; expected values from the host CPU. AND, OR,
//! XOR and TEST leave AF undefined; everything else is defined.

use super::{Gen, Opnd, imm, mem_off, two_regs};
use crate::check::fl;
use crate::{TestRom, op1, op2};

#[derive(Clone, Copy, Debug)]
enum Bin {
    Add,
    Adc,
    Sub,
    Sbb,
    Cmp,
    And,
    Or,
    Xor,
    Test,
}

#[derive(Clone, Copy, Debug)]
enum Un {
    Inc,
    Dec,
    Neg,
    Not,
}

const BINS: [Bin; 9] = [
    Bin::Add,
    Bin::Adc,
    Bin::Sub,
    Bin::Sbb,
    Bin::Cmp,
    Bin::And,
    Bin::Or,
    Bin::Xor,
    Bin::Test,
];
const UNS: [Un; 4] = [Un::Inc, Un::Dec, Un::Neg, Un::Not];

fn bin_mask(op: Bin) -> u32 {
    match op {
        Bin::And | Bin::Or | Bin::Xor | Bin::Test => fl::ALL & !fl::AF,
        _ => fl::ALL,
    }
}

fn emit_bin(
    a: &mut iced_x86::code_asm::CodeAssembler,
    op: Bin,
    size: u32,
    d: Opnd,
    s: Opnd,
) -> crate::asm::R {
    match op {
        Bin::Add => op2!(a, add, size, d, s),
        Bin::Adc => op2!(a, adc, size, d, s),
        Bin::Sub => op2!(a, sub, size, d, s),
        Bin::Sbb => op2!(a, sbb, size, d, s),
        Bin::Cmp => op2!(a, cmp, size, d, s),
        Bin::And => op2!(a, and, size, d, s),
        Bin::Or => op2!(a, or, size, d, s),
        Bin::Xor => op2!(a, xor, size, d, s),
        // TEST has no reg, mem form: swap (it is symmetric).
        Bin::Test => match (d, s) {
            (Opnd::R(_), Opnd::M(_)) => op2!(a, test, size, s, d; rr hh mr ri mi),
            _ => op2!(a, test, size, d, s; rr hh mr ri mi),
        },
    }
}

fn emit_un(a: &mut iced_x86::code_asm::CodeAssembler, op: Un, size: u32, d: Opnd) -> crate::asm::R {
    match op {
        Un::Inc => op1!(a, inc, size, d),
        Un::Dec => op1!(a, dec, size, d),
        Un::Neg => op1!(a, neg, size, d),
        Un::Not => op1!(a, not, size, d),
    }
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0xa1u64 << 32 | 0x0001);
    for op in BINS {
        for size in [8u32, 16, 32, 64] {
            for form in 0..5 {
                let (d, s) = two_regs(&mut g.rng);
                let off = mem_off(&mut g.rng, size);
                let i = imm(&mut g.rng, size);
                let (dst, src, with_mem) = match form {
                    0 => (Opnd::R(d), Opnd::R(s), false),
                    1 => (Opnd::R(d), Opnd::I(i), false),
                    2 => (Opnd::M(off), Opnd::R(s), true),
                    3 => (Opnd::R(d), Opnd::M(off), true),
                    _ => (Opnd::M(off), Opnd::I(i), true),
                };
                // Same register on both sides once in a while (xor eax, eax; sub rbx, rbx).
                let src = if form == 0 && g.rng.one_in(8) {
                    dst
                } else {
                    src
                };
                for _ in 0..2 {
                    let input = g.input(&[d, s], with_mem);
                    g.add64(input, bin_mask(op), |a| emit_bin(a, op, size, dst, src));
                }
            }
        }
        // High-byte registers: AH..DH with each other and with AL..DL.
        for _ in 0..3 {
            let (x, y) = (g.rng.below(4) as usize, g.rng.below(4) as usize);
            let (dst, src) = match g.rng.below(3) {
                0 => (Opnd::H(x), Opnd::H(y)),
                1 => (Opnd::H(x), Opnd::R(y)),
                _ => (Opnd::R(x), Opnd::H(y)),
            };
            let input = g.input(&[0, 1, 2, 3], false);
            g.add64(input, bin_mask(op), |a| emit_bin(a, op, 8, dst, src));
        }
    }
    for op in UNS {
        for size in [8u32, 16, 32, 64] {
            for form in 0..2 {
                for _ in 0..3 {
                    let d = g.rng.below(13) as usize;
                    let off = mem_off(&mut g.rng, size);
                    let dst = if form == 0 { Opnd::R(d) } else { Opnd::M(off) };
                    let input = g.input(&[d], form == 1);
                    g.add64(input, fl::ALL, |a| emit_un(a, op, size, dst));
                }
            }
        }
        let h = g.rng.below(4) as usize;
        let input = g.input(&[h], false);
        g.add64(input, fl::ALL, |a| emit_un(a, op, 8, Opnd::H(h)));
    }
    g.family(
        "families/alu",
        "integer ALU (add adc sub sbb cmp and or xor test inc dec neg not)",
        64,
    )
    .build()
}
