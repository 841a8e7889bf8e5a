//! Multiply and divide in 64-bit mode (SDM Vol. 2: MUL, IMUL in its one-, two- and
//! three-operand forms, DIV, IDIV) at every operand size, register and memory sources.
//! MUL/IMUL define only CF and OF (SF ZF AF PF undefined); DIV/IDIV leave every flag
//! undefined. Divisions are generated so that the quotient fits (no #DE on the host).

use super::{Gen, Opnd, R16, R32, R64, mem, mem_off};
use crate::check::{fl, reg};
use crate::{TestRom, op1};

const MUL_MASK: u32 = fl::CF | fl::OF | fl::DF;
const DIV_MASK: u32 = fl::DF;

/// A source register for one-operand forms: not RAX or RDX (the implicit operands).
fn src_reg(g: &mut Gen) -> usize {
    loop {
        let r = g.rng.below(13) as usize;
        if r != reg::RAX && r != reg::RDX {
            return r;
        }
    }
}

fn put(mem: &mut [u8], off: i32, size: u32, v: u64) {
    let o = off as usize;
    let n = (size / 8) as usize;
    mem[o..o + n].copy_from_slice(&v.to_le_bytes()[..n]);
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0x4d75_1000_0003);
    // MUL / IMUL r/m: RDX:RAX (or AX) = RAX * src.
    for signed in [false, true] {
        for size in [8u32, 16, 32, 64] {
            for k in 0..12 {
                let s = src_reg(&mut g);
                let off = mem_off(&mut g.rng, size);
                let src = if k % 2 == 0 { Opnd::R(s) } else { Opnd::M(off) };
                let input = g.input(&[reg::RAX, reg::RDX, s], k % 2 == 1);
                g.add64(input, MUL_MASK, |a| {
                    if signed {
                        op1!(a, imul, size, src)
                    } else {
                        op1!(a, mul, size, src)
                    }
                });
            }
        }
    }
    // IMUL r, r/m and IMUL r, r/m, imm.
    for size in [16u32, 32, 64] {
        for k in 0..16 {
            let d = g.rng.below(13) as usize;
            let s = g.rng.below(13) as usize;
            let off = mem_off(&mut g.rng, size);
            let imm = super::imm(&mut g.rng, size.min(32)) as i32;
            let input = g.input(&[d, s], k % 2 == 1);
            let form = k % 4;
            g.add64(input, MUL_MASK, |a| match (size, form) {
                (16, 0) => a.imul_2(R16[d], R16[s]),
                (16, 1) => a.imul_2(R16[d], mem(16, off)),
                (16, 2) => a.imul_3(R16[d], R16[s], imm),
                (16, _) => a.imul_3(R16[d], mem(16, off), imm),
                (32, 0) => a.imul_2(R32[d], R32[s]),
                (32, 1) => a.imul_2(R32[d], mem(32, off)),
                (32, 2) => a.imul_3(R32[d], R32[s], imm),
                (32, _) => a.imul_3(R32[d], mem(32, off), imm),
                (_, 0) => a.imul_2(R64[d], R64[s]),
                (_, 1) => a.imul_2(R64[d], mem(64, off)),
                (_, 2) => a.imul_3(R64[d], R64[s], imm),
                (_, _) => a.imul_3(R64[d], mem(64, off), imm),
            });
        }
    }
    // DIV / IDIV: pick a divisor and a quotient that fits, then the dividend from them.
    for signed in [false, true] {
        for size in [8u32, 16, 32, 64] {
            for k in 0..14 {
                let s = src_reg(&mut g);
                let off = mem_off(&mut g.rng, size);
                let in_mem = k % 2 == 1;
                let bits = size;
                let full = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                let mut input = g.input(&[reg::RAX, reg::RDX, s], in_mem);
                let mut divisor = g.rng.operand() & full;
                if divisor == 0 {
                    divisor = 1 + g.rng.below(full.min(1000));
                }
                // Quotient and remainder in range: dividend = q * d + r with |r| < |d|.
                let (dividend_lo, dividend_hi) = if !signed {
                    let q = g.rng.operand() & full;
                    let r = g.rng.next_u64() % divisor;
                    let prod = u128::from(q) * u128::from(divisor) + u128::from(r);
                    (prod as u64 & full, (prod >> bits) as u64 & full)
                } else {
                    let sd = (divisor << (64 - bits)) as i64 >> (64 - bits);
                    let half = if bits == 64 {
                        i64::MAX as i128
                    } else {
                        (1i128 << (bits - 1)) - 1
                    };
                    // |q| < half, and r takes the sign of q * d, so the CPU's truncated
                    // quotient is exactly q.
                    let q =
                        (g.rng.next_u64() as i128 % half) * if g.rng.one_in(2) { -1 } else { 1 };
                    let sign = if (q < 0) != (sd < 0) { -1 } else { 1 };
                    let r =
                        (g.rng.next_u64() as i128) % i128::from(sd.unsigned_abs().max(1)) * sign;
                    let prod = q * i128::from(sd) + r;
                    let m = if bits == 64 {
                        u128::MAX >> 64
                    } else {
                        (1u128 << bits) - 1
                    };
                    (
                        (prod as u128 & m) as u64,
                        ((prod >> bits) as u128 & m) as u64,
                    )
                };
                // Place the dividend: AX for 8-bit, DX:AX, EDX:EAX, RDX:RAX otherwise.
                if bits == 8 {
                    let acc = dividend_lo | (dividend_hi << 8);
                    input.regs[reg::RAX] = (input.regs[reg::RAX] & !0xffff) | (acc & 0xffff);
                } else {
                    input.regs[reg::RAX] = (input.regs[reg::RAX] & !full) | dividend_lo;
                    input.regs[reg::RDX] = (input.regs[reg::RDX] & !full) | dividend_hi;
                }
                let src = if in_mem {
                    put(&mut input.mem, off, size, divisor);
                    Opnd::M(off)
                } else {
                    input.regs[s] = (input.regs[s] & !full) | divisor;
                    Opnd::R(s)
                };
                g.add64(input, DIV_MASK, |a| {
                    if signed {
                        op1!(a, idiv, size, src)
                    } else {
                        op1!(a, div, size, src)
                    }
                });
            }
        }
    }
    g.family(
        "families/muldiv",
        "multiply and divide (mul imul div idiv)",
        64,
    )
    .build()
}
