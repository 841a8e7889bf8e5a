//! Conditions in 64-bit mode (SDM Vol. 2: SETcc, CMOVcc, Jcc; Vol. 1 Appendix B): all 16
//! conditions on random flags. SETcc to registers (also AH..DH) and memory; CMOVcc at 16, 32
//! and 64 bits from registers and memory (a 32-bit CMOV clears the upper half even when the
//! condition is false); Jcc in short and near forms.

use iced_x86::code_asm::*;

use super::{Gen, H8, R8, R16, R32, R64, mem, two_regs};
use crate::TestRom;
use crate::check::{fl, reg};

const CONDS: [&str; 16] = [
    "o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g",
];

fn setcc(a: &mut CodeAssembler, c: usize, dst: SetDst) -> crate::asm::R {
    macro_rules! go {
        ($m:ident) => {
            match dst {
                SetDst::R(r) => a.$m(R8[r]),
                SetDst::H(r) => a.$m(H8[r]),
                SetDst::M(o) => a.$m(mem(8, o)),
            }
        };
    }
    match c {
        0 => go!(seto),
        1 => go!(setno),
        2 => go!(setb),
        3 => go!(setae),
        4 => go!(sete),
        5 => go!(setne),
        6 => go!(setbe),
        7 => go!(seta),
        8 => go!(sets),
        9 => go!(setns),
        10 => go!(setp),
        11 => go!(setnp),
        12 => go!(setl),
        13 => go!(setge),
        14 => go!(setle),
        _ => go!(setg),
    }
}

#[derive(Clone, Copy, Debug)]
enum SetDst {
    R(usize),
    H(usize),
    M(i32),
}

fn cmovcc(
    a: &mut CodeAssembler,
    c: usize,
    size: u32,
    d: usize,
    s: usize,
    off: Option<i32>,
) -> crate::asm::R {
    macro_rules! go {
        ($m:ident) => {
            match (size, off) {
                (16, None) => a.$m(R16[d], R16[s]),
                (32, None) => a.$m(R32[d], R32[s]),
                (64, None) => a.$m(R64[d], R64[s]),
                (16, Some(o)) => a.$m(R16[d], mem(16, o)),
                (32, Some(o)) => a.$m(R32[d], mem(32, o)),
                (_, Some(o)) => a.$m(R64[d], mem(64, o)),
                _ => unreachable!("cmov sizes are 16, 32 and 64"),
            }
        };
    }
    match c {
        0 => go!(cmovo),
        1 => go!(cmovno),
        2 => go!(cmovb),
        3 => go!(cmovae),
        4 => go!(cmove),
        5 => go!(cmovne),
        6 => go!(cmovbe),
        7 => go!(cmova),
        8 => go!(cmovs),
        9 => go!(cmovns),
        10 => go!(cmovp),
        11 => go!(cmovnp),
        12 => go!(cmovl),
        13 => go!(cmovge),
        14 => go!(cmovle),
        _ => go!(cmovg),
    }
}

fn jcc(a: &mut CodeAssembler, c: usize, target: CodeLabel) -> crate::asm::R {
    match c {
        0 => a.jo(target),
        1 => a.jno(target),
        2 => a.jb(target),
        3 => a.jae(target),
        4 => a.je(target),
        5 => a.jne(target),
        6 => a.jbe(target),
        7 => a.ja(target),
        8 => a.js(target),
        9 => a.jns(target),
        10 => a.jp(target),
        11 => a.jnp(target),
        12 => a.jl(target),
        13 => a.jge(target),
        14 => a.jle(target),
        _ => a.jg(target),
    }
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0xc0d1_0000_0007);
    for (c, _) in CONDS.iter().enumerate() {
        for k in 0..6 {
            let r = g.rng.below(13) as usize;
            let dst = match k % 3 {
                0 => SetDst::R(r),
                1 => SetDst::H(g.rng.below(4) as usize),
                _ => SetDst::M(g.rng.below(32) as i32),
            };
            let input = g.input(&[r, reg::RAX, reg::RBX], true);
            g.add64(input, fl::ALL, |a| setcc(a, c, dst));
        }
        for k in 0..9 {
            let (d, s) = two_regs(&mut g.rng);
            let size = [16u32, 32, 64][k % 3];
            let off = if k >= 6 {
                Some(super::mem_off(&mut g.rng, size))
            } else {
                None
            };
            let input = g.input(&[d, s], off.is_some());
            g.add64(input, fl::ALL, |a| cmovcc(a, c, size, d, s, off));
        }
        for near in [false, true] {
            for _ in 0..3 {
                let input = g.input(&[reg::RAX], false);
                g.add64(input, fl::ALL, |a| {
                    let mut taken = a.create_label();
                    a.set_prefer_short_branch(!near);
                    jcc(a, c, taken)?;
                    a.mov(eax, 1)?;
                    if near {
                        // Far enough that the branch needs a 32-bit displacement.
                        a.nops_with_size(200)?;
                    }
                    a.ret()?;
                    a.set_label(&mut taken)?;
                    a.mov(eax, 2)
                });
            }
        }
    }
    g.family("families/cond", "conditions (setcc cmovcc jcc)", 64)
        .build()
}
