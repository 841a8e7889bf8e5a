//! Data movement in 64-bit mode (SDM Vol. 2: MOV in every form including the 64-bit
//! immediate, MOVSX MOVZX MOVSXD, CBW CWDE CDQE CWD CDQ CQO, LEA with 64- and 32-bit address
//! sizes, XLAT). None of these write flags: every flag must come back unchanged.

use iced_x86::code_asm::*;

use super::{Gen, Opnd, R8, R16, R32, R64, mem, mem_off, two_regs};
use crate::check::{fl, reg};
use crate::{TestRom, op2};

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0x70c5_0000_0006);
    for size in [8u32, 16, 32, 64] {
        for form in 0..15 {
            let (d, s) = two_regs(&mut g.rng);
            let off = mem_off(&mut g.rng, size);
            let i = super::imm(&mut g.rng, size);
            let (dst, src) = match form % 5 {
                0 => (Opnd::R(d), Opnd::R(s)),
                1 => (Opnd::R(d), Opnd::M(off)),
                2 => (Opnd::M(off), Opnd::R(s)),
                3 => (Opnd::R(d), Opnd::I(i)),
                _ => (Opnd::M(off), Opnd::I(i)),
            };
            let input = g.input(&[d, s], true);
            g.add64(input, fl::ALL, |a| match (size, dst, src) {
                // MOV r, imm: the immediate is as wide as the register (imm64 at 64 bits).
                (8, Opnd::R(d), Opnd::I(i)) => a.mov(R8[d], i as i32),
                (16, Opnd::R(d), Opnd::I(i)) => a.mov(R16[d], i as i32),
                (32, Opnd::R(d), Opnd::I(i)) => a.mov(R32[d], i as i32),
                (64, Opnd::R(d), Opnd::I(i)) => a.mov(R64[d], i),
                _ => op2!(a, mov, size, dst, src; rr rm mr mi),
            });
        }
    }
    for _ in 0..8 {
        let d = g.rng.below(13) as usize;
        let v = g.rng.operand();
        let input = g.input(&[d], false);
        g.add64(input, fl::ALL, |a| a.mov(R64[d], v));
    }
    // Sign and zero extension: (destination size, source size).
    for (dsz, ssz) in [(16u32, 8u32), (32, 8), (64, 8), (32, 16), (64, 16)] {
        for k in 0..12 {
            let (d, s) = two_regs(&mut g.rng);
            let off = mem_off(&mut g.rng, ssz);
            let zero = k % 2 == 0;
            let in_mem = k % 4 >= 2;
            let input = g.input(&[d, s], true);
            g.add64(input, fl::ALL, |a| {
                macro_rules! ext {
                    ($m:ident) => {
                        match (dsz, ssz, in_mem) {
                            (16, 8, false) => a.$m(R16[d], R8[s]),
                            (32, 8, false) => a.$m(R32[d], R8[s]),
                            (64, 8, false) => a.$m(R64[d], R8[s]),
                            (32, 16, false) => a.$m(R32[d], R16[s]),
                            (64, 16, false) => a.$m(R64[d], R16[s]),
                            (16, 8, true) => a.$m(R16[d], mem(8, off)),
                            (32, 8, true) => a.$m(R32[d], mem(8, off)),
                            (64, 8, true) => a.$m(R64[d], mem(8, off)),
                            (32, 16, true) => a.$m(R32[d], mem(16, off)),
                            _ => a.$m(R64[d], mem(16, off)),
                        }
                    };
                }
                if zero { ext!(movzx) } else { ext!(movsx) }
            });
        }
    }
    for k in 0..10 {
        let (d, s) = two_regs(&mut g.rng);
        let off = mem_off(&mut g.rng, 32);
        let input = g.input(&[d, s], true);
        g.add64(input, fl::ALL, |a| {
            if k % 2 == 0 {
                a.movsxd(R64[d], R32[s])
            } else {
                a.movsxd(R64[d], mem(32, off))
            }
        });
    }
    // Accumulator extensions.
    for op in 0..6 {
        for _ in 0..5 {
            let input = g.input(&[reg::RAX, reg::RDX], false);
            g.add64(input, fl::ALL, |a| match op {
                0 => a.cbw(),
                1 => a.cwde(),
                2 => a.cdqe(),
                3 => a.cwd(),
                4 => a.cdq(),
                _ => a.cqo(),
            });
        }
    }
    // LEA: base + index * scale + displacement, at every destination size, 64- and 32-bit
    // address sizes.
    for k in 0..40 {
        let (d, b) = two_regs(&mut g.rng);
        let x = g.rng.below(13) as usize;
        let scale = g.rng.pick(&[1i32, 2, 4, 8]);
        let disp = g
            .rng
            .pick(&[0i32, 1, -1, 0x7f, -0x80, 0x1234_5678, -0x7654_3210]);
        let input = g.input(&[b, x], false);
        let size = [16u32, 32, 64][k % 3];
        let addr32 = k % 4 == 3;
        g.add64(input, fl::ALL, |a| match (size, addr32) {
            (16, false) => a.lea(R16[d], ptr(R64[b] + R64[x] * scale + disp)),
            (32, false) => a.lea(R32[d], ptr(R64[b] + R64[x] * scale + disp)),
            (64, false) => a.lea(R64[d], ptr(R64[b] + R64[x] * scale + disp)),
            (16, true) => a.lea(R16[d], ptr(R32[b] + R32[x] * scale + disp)),
            (32, true) => a.lea(R32[d], ptr(R32[b] + R32[x] * scale + disp)),
            _ => a.lea(R64[d], ptr(R32[b] + R32[x] * scale + disp)),
        });
    }
    // XLAT: AL = [RBX + AL]; RBX points at the memory block for the duration.
    for _ in 0..8 {
        let mut input = g.input(&[reg::RAX], true);
        input.regs[reg::RAX] = (input.regs[reg::RAX] & !0xff) | g.rng.below(32);
        g.add64(input, fl::ALL, |a| {
            a.push(rbx)?;
            a.mov(rbx, r15)?;
            a.xlatb()?;
            a.pop(rbx)
        });
    }
    g.family(
        "families/movx",
        "data movement (mov movsx movzx movsxd cbw cwde cdqe cwd cdq cqo lea xlat)",
        64,
    )
    .build()
}
