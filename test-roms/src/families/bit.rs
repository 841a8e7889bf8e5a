//! Bit instructions in 64-bit mode (SDM Vol. 2: BT BTS BTR BTC with register and immediate
//! bit offsets, on registers and on memory, where a register offset can reach other words;
//! BSF BSR; BSWAP). BTx define CF (ZF unchanged; OF SF AF PF undefined); BSF/BSR define ZF
//! only, and leave the destination undefined when the source is zero.

use iced_x86::code_asm::*;

use super::{Gen, Opnd, R16, R32, R64, mem};
use crate::check::fl;
use crate::host::Spec;
use crate::{TestRom, op2};

#[derive(Clone, Copy, Debug)]
enum Op {
    Bt,
    Bts,
    Btr,
    Btc,
}

const BT_MASK: u32 = fl::CF | fl::ZF | fl::DF;
/// Memory operands with a register offset use [R15 + BASE]; offsets in -64..128 bits stay
/// inside the 32-byte block at every size.
const BASE: i32 = 8;

fn emit(a: &mut CodeAssembler, op: Op, size: u32, dst: Opnd, src: Opnd) -> crate::asm::R {
    match op {
        Op::Bt => op2!(a, bt, size, dst, src; wrr wmr wri mi),
        Op::Bts => op2!(a, bts, size, dst, src; wrr wmr wri mi),
        Op::Btr => op2!(a, btr, size, dst, src; wrr wmr wri mi),
        Op::Btc => op2!(a, btc, size, dst, src; wrr wmr wri mi),
    }
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0xb175_0000_0004);
    for op in [Op::Bt, Op::Bts, Op::Btr, Op::Btc] {
        for size in [16u32, 32, 64] {
            let full = if size == 64 {
                u64::MAX
            } else {
                (1u64 << size) - 1
            };
            for form in 0..16 {
                let (d, s) = super::two_regs(&mut g.rng);
                let mut input;
                let (dst, src) = match form % 4 {
                    0 => {
                        input = g.input(&[d, s], false);
                        (Opnd::R(d), Opnd::R(s))
                    }
                    1 => {
                        input = g.input(&[d], false);
                        (Opnd::R(d), Opnd::I(g.rng.below(256) as i64))
                    }
                    2 => {
                        // Register offset into memory: may address the words around [R15+8].
                        input = g.input(&[s], true);
                        let off = g.rng.below(192) as i64 - 64;
                        input.regs[s] = (g.rng.next_u64() & !full) | (off as u64 & full);
                        (Opnd::M(BASE), Opnd::R(s))
                    }
                    _ => {
                        input = g.input(&[], true);
                        let o = super::mem_off(&mut g.rng, size);
                        (Opnd::M(o), Opnd::I(g.rng.below(256) as i64))
                    }
                };
                g.add64(input, BT_MASK, |a| emit(a, op, size, dst, src));
            }
        }
    }
    for forward in [true, false] {
        for size in [16u32, 32, 64] {
            for k in 0..20 {
                let (d, s) = super::two_regs(&mut g.rng);
                let in_mem = k % 3 == 2;
                let mut input = g.input(&[d, s], in_mem);
                let full = if size == 64 {
                    u64::MAX
                } else {
                    (1u64 << size) - 1
                };
                if k % 5 == 0 {
                    // A zero source: ZF set, destination undefined.
                    input.regs[s] &= !full;
                    input.mem = [0; 32];
                }
                let off = super::mem_off(&mut g.rng, size);
                let zero_src = if in_mem {
                    let n = (size / 8) as usize;
                    input.mem[off as usize..off as usize + n]
                        .iter()
                        .all(|&b| b == 0)
                } else {
                    input.regs[s] & full == 0
                };
                let code = crate::check::snippet(64, |a| match (forward, size, in_mem) {
                    (true, 16, false) => a.bsf(R16[d], R16[s]),
                    (true, 32, false) => a.bsf(R32[d], R32[s]),
                    (true, _, false) => a.bsf(R64[d], R64[s]),
                    (true, 16, true) => a.bsf(R16[d], mem(16, off)),
                    (true, 32, true) => a.bsf(R32[d], mem(32, off)),
                    (true, _, true) => a.bsf(R64[d], mem(64, off)),
                    (false, 16, false) => a.bsr(R16[d], R16[s]),
                    (false, 32, false) => a.bsr(R32[d], R32[s]),
                    (false, _, false) => a.bsr(R64[d], R64[s]),
                    (false, 16, true) => a.bsr(R16[d], mem(16, off)),
                    (false, 32, true) => a.bsr(R32[d], mem(32, off)),
                    (false, _, true) => a.bsr(R64[d], mem(64, off)),
                });
                let mut spec = Spec::same(code, input, fl::ZF | fl::DF);
                if zero_src {
                    spec.ignore = 1 << d;
                }
                g.add(spec);
            }
        }
    }
    for size in [32u32, 64] {
        for _ in 0..8 {
            let d = g.rng.below(13) as usize;
            let input = g.input(&[d], false);
            g.add64(input, fl::ALL, |a| {
                if size == 32 {
                    a.bswap(R32[d])
                } else {
                    a.bswap(R64[d])
                }
            });
        }
    }
    g.family(
        "families/bit",
        "bit instructions (bt bts btr btc bsf bsr bswap)",
        64,
    )
    .build()
}
