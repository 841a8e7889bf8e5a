//! 16-bit code in real mode, checked against the host running the equivalent 64-bit code on
//! the same inputs (exact for these forms; the low 32 bits of each register are compared).
//! Covers the 16-bit addressing forms ([bx+si+disp], [bp+di], [si], ...) with 16-bit
//! wrap-around, 32-bit operands through the 0x66 prefix, high-byte registers, the one-byte
//! INC/DEC, LOOP/JCXZ on CX, PUSHA/POPA, XLAT, LEA with 16-bit addresses, and the usual ALU,
//! shift and multiply/divide forms.

use iced_x86::code_asm::*;

use super::code32::{emit_bin, sized};
use super::{Gen, Opnd, R8, R16, R32};
use crate::asm::layout::CHECK_STATE;
use crate::check::{fl, reg};
use crate::{TestRom, op1};

/// The memory block's offset in segment 0 (DS = SS = 0 in the real-mode runner).
const MEM: u64 = CHECK_STATE + 0x80;

/// The eight 16-bit addressing forms: (base, index) as state register indexes
/// (BX=1, BP=6, SI=4, DI=5).
const FORMS: [(Option<usize>, Option<usize>); 8] = [
    (Some(reg::RBX), Some(reg::RSI)),
    (Some(reg::RBX), Some(reg::RDI)),
    (Some(reg::RBP), Some(reg::RSI)),
    (Some(reg::RBP), Some(reg::RDI)),
    (None, Some(reg::RSI)),
    (None, Some(reg::RDI)),
    (Some(reg::RBP), None),
    (Some(reg::RBX), None),
];

/// The 16-bit memory operand for `form` whose address wraps to MEM + off.
fn mem16(form: usize, regs: &[u64; 13], size: u32, off: i32) -> AsmMemoryOperand {
    let (b, x) = FORMS[form];
    let sum = b
        .map(|r| regs[r] as u16)
        .unwrap_or(0)
        .wrapping_add(x.map(|r| regs[r] as u16).unwrap_or(0));
    let disp = (MEM as u16).wrapping_add(off as u16).wrapping_sub(sum) as i16 as i32;
    let m = match (b, x) {
        (Some(reg::RBX), Some(reg::RSI)) => bx + si + disp,
        (Some(reg::RBX), Some(reg::RDI)) => bx + di + disp,
        (Some(reg::RBP), Some(reg::RSI)) => bp + si + disp,
        (Some(reg::RBP), Some(reg::RDI)) => bp + di + disp,
        (None, Some(reg::RSI)) => si + disp,
        (None, Some(reg::RDI)) => di + disp,
        (Some(reg::RBP), None) => bp + disp,
        _ => bx + disp,
    };
    sized(size, m)
}

/// Registers used by `form`'s address.
fn uses(form: usize, r: usize) -> bool {
    FORMS[form].0 == Some(r) || FORMS[form].1 == Some(r)
}

fn reg16(g: &mut Gen, size: u32) -> usize {
    g.rng.below(if size == 8 { 4 } else { 7 }) as usize
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0xc016_0000_000d);
    let masks = [
        fl::ALL,
        fl::ALL,
        fl::ALL,
        fl::ALL,
        fl::ALL,
        fl::ALL & !fl::AF,
        fl::ALL & !fl::AF,
        fl::ALL & !fl::AF,
    ];
    // Register forms at 8 (with AH..DH), 16 and 32 (0x66 prefix) bits.
    for (op, &mask) in masks.iter().enumerate() {
        for size in [8u32, 16, 32] {
            for form in 0..3 {
                let (d, s) = (reg16(&mut g, size), reg16(&mut g, size));
                let (dst, src) = match (form, size) {
                    (0, _) => (Opnd::R(d), Opnd::R(s)),
                    (1, _) => (Opnd::R(d), Opnd::I(super::imm(&mut g.rng, size))),
                    (_, 8) => (Opnd::H(d), Opnd::R(s)),
                    _ => (Opnd::R(d), Opnd::R(s)),
                };
                let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
                let f = |a: &mut CodeAssembler| emit_bin(a, super::mem, op as u8, size, dst, src);
                g.add_mode(16, input, mask, f, f);
            }
        }
    }
    // Every 16-bit addressing form, as source and destination.
    for (op, &mask) in masks.iter().enumerate() {
        for form in 0..FORMS.len() {
            let size = [8u32, 16, 32][(op + form) % 3];
            let mut r = reg16(&mut g, size);
            while size != 8 && uses(form, r) {
                r = reg16(&mut g, size);
            }
            let off = super::mem_off(&mut g.rng, size);
            let input = g.input(&[0, 1, 2, 3, 4, 5, 6], true);
            let (dst, src) = if form % 2 == 0 {
                (Opnd::R(r), Opnd::M(off))
            } else {
                (Opnd::M(off), Opnd::R(r))
            };
            let regs = input.regs;
            let gm = move |sz: u32, o: i32| mem16(form, &regs, sz, o);
            let hm = |sz: u32, o: i32| sized(sz, r15 + o);
            g.add_mode(
                16,
                input,
                mask,
                |a| emit_bin(a, gm, op as u8, size, dst, src),
                |a| emit_bin(a, hm, op as u8, size, dst, src),
            );
        }
    }
    // LEA with a 16-bit address: the sum wraps at 64 KiB, like the host's 64-bit sum
    // truncated to a 16-bit destination.
    for &(b, x) in &FORMS {
        for _ in 0..2 {
            let d = reg16(&mut g, 16);
            let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
            let disp = g.rng.pick(&[0i32, 5, -3, 0x1234, -0x4321]);
            let guest = |a: &mut CodeAssembler| {
                let m = match (b, x) {
                    (Some(reg::RBX), Some(reg::RSI)) => bx + si + disp,
                    (Some(reg::RBX), Some(reg::RDI)) => bx + di + disp,
                    (Some(reg::RBP), Some(reg::RSI)) => bp + si + disp,
                    (Some(reg::RBP), Some(reg::RDI)) => bp + di + disp,
                    (None, Some(reg::RSI)) => si + disp,
                    (None, Some(reg::RDI)) => di + disp,
                    (Some(reg::RBP), None) => bp + disp,
                    _ => bx + disp,
                };
                a.lea(R16[d], ptr(m))
            };
            let host = |a: &mut CodeAssembler| {
                let m = match (b, x) {
                    (Some(b), Some(x)) => super::R64[b] + super::R64[x] + disp,
                    (None, Some(x)) => super::R64[x] + disp,
                    (Some(b), None) => super::R64[b] + disp,
                    _ => unreachable!("every form has a register"),
                };
                a.lea(R16[d], ptr(m))
            };
            g.add_mode(16, input, fl::ALL, guest, host);
        }
    }
    // INC/DEC: one-byte forms on 16-bit registers, 0x66 forms on 32-bit ones.
    for k in 0..12 {
        let d = reg16(&mut g, 16);
        let size = if k % 3 == 2 { 32 } else { 16 };
        let input = g.input(&[d], false);
        let f = |a: &mut CodeAssembler| {
            if k % 2 == 0 {
                op1!(a, inc, size, Opnd::R(d))
            } else {
                op1!(a, dec, size, Opnd::R(d))
            }
        };
        g.add_mode(16, input, fl::ALL, f, f);
    }
    // LOOP on CX. The host has no CX form: it counts in RCX = CX and puts CX back.
    for _ in 0..8 {
        let mut input = g.input(&[reg::RAX, reg::RBX, reg::RCX], false);
        input.regs[reg::RCX] = (input.regs[reg::RCX] & !0xffff) | (1 + g.rng.below(40));
        let guest = |a: &mut CodeAssembler| {
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            a.add(ax, bx)?;
            a.loop_(top)
        };
        let host = |a: &mut CodeAssembler| {
            let mut top = a.create_label();
            a.mov(r13, rcx)?;
            a.movzx(ecx, cx)?;
            a.set_label(&mut top)?;
            a.add(ax, bx)?;
            a.loop_(top)?;
            a.mov(r13w, cx)?;
            a.mov(rcx, r13)
        };
        g.add_mode(16, input, fl::ALL, guest, host);
    }
    // JCXZ: taken when CX (not ECX) is zero.
    for k in 0..8 {
        let mut input = g.input(&[reg::RAX, reg::RCX], false);
        if k % 2 == 0 {
            input.regs[reg::RCX] &= !0xffff;
        }
        let guest = |a: &mut CodeAssembler| {
            let mut taken = a.create_label();
            a.jcxz(taken)?;
            a.mov(ax, 1)?;
            a.retf()?;
            a.set_label(&mut taken)?;
            a.mov(ax, 2)
        };
        let host = |a: &mut CodeAssembler| {
            let mut taken = a.create_label();
            a.mov(r13, rcx)?;
            a.movzx(ecx, cx)?;
            a.jrcxz(taken)?;
            a.mov(rcx, r13)?;
            a.mov(ax, 1)?;
            a.ret()?;
            a.set_label(&mut taken)?;
            a.mov(rcx, r13)?;
            a.mov(ax, 2)
        };
        g.add_mode(16, input, fl::ALL, guest, host);
    }
    // PUSHA: read the eight pushed words back in a permuted order (SP's own slot skipped).
    for _ in 0..4 {
        let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
        g.add_mode(
            16,
            input,
            fl::ALL,
            |a| {
                // Stack after PUSHA, lowest address first: DI SI BP SP BX DX CX AX.
                a.pusha()?;
                a.mov(bp, sp)?;
                a.mov(ax, word_ptr(bp))?;
                a.mov(bx, word_ptr(bp + 2))?;
                a.mov(cx, word_ptr(bp + 4))?;
                a.mov(dx, word_ptr(bp + 8))?;
                a.mov(si, word_ptr(bp + 10))?;
                a.mov(di, word_ptr(bp + 12))?;
                // Drop the frame without touching the flags; the last word (AX) goes to BP.
                a.lea(sp, ptr(bp + 14))?;
                a.pop(bp)
            },
            |a| {
                for (t, s) in [
                    (r8w, di),
                    (r9w, si),
                    (r10w, bp),
                    (r11w, bx),
                    (r12w, dx),
                    (r13w, cx),
                    (r14w, ax),
                ] {
                    a.mov(t, s)?;
                }
                for (d, t) in [
                    (ax, r8w),
                    (bx, r9w),
                    (cx, r10w),
                    (dx, r11w),
                    (si, r12w),
                    (di, r13w),
                    (bp, r14w),
                ] {
                    a.mov(d, t)?;
                }
                Ok(())
            },
        );
        let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
        g.add_mode(
            16,
            input,
            fl::ALL,
            |a| {
                for r in [ax, bx, cx, dx, si, di, bp, ax] {
                    a.push(r)?;
                }
                a.popa()
            },
            |a| {
                for (t, s) in [
                    (r8w, ax),
                    (r9w, bx),
                    (r10w, cx),
                    (r11w, dx),
                    (r12w, di),
                    (r13w, bp),
                ] {
                    a.mov(t, s)?;
                }
                for (d, t) in [
                    (di, r8w),
                    (si, r13w),
                    (bp, r12w),
                    (bx, r11w),
                    (dx, r10w),
                    (cx, r9w),
                ] {
                    a.mov(d, t)?;
                }
                Ok(())
            },
        );
    }
    // A 32-bit push popped as two 16-bit words.
    for _ in 0..4 {
        let input = g.input(&[reg::RAX, reg::RBX, reg::RCX], false);
        g.add_mode(
            16,
            input,
            fl::ALL,
            |a| {
                a.push(eax)?;
                a.pop(bx)?;
                a.pop(cx)
            },
            |a| {
                a.push(rax)?;
                a.mov(bx, word_ptr(rsp))?;
                a.mov(cx, word_ptr(rsp + 2))?;
                a.pop(r13)
            },
        );
    }
    // XLAT: AL = [BX + AL], with BX chosen so the byte is in the memory block.
    for _ in 0..6 {
        let mut input = g.input(&[reg::RAX, reg::RBX], true);
        let al_v = input.regs[reg::RAX] & 0xff;
        let k = g.rng.below(32);
        let bx_v = (MEM + k).wrapping_sub(al_v) & 0xffff;
        input.regs[reg::RBX] = (input.regs[reg::RBX] & !0xffff) | bx_v;
        let rel = k as i32 - al_v as i32;
        g.add_mode(
            16,
            input,
            fl::ALL,
            |a| a.xlatb(),
            |a| {
                a.push(rbx)?;
                a.lea(rbx, qword_ptr(r15 + rel))?;
                a.xlatb()?;
                a.pop(rbx)
            },
        );
    }
    // Extensions, shifts, multiply and divide on 16-bit operands.
    for k in 0..24 {
        let d = [reg::RBX, reg::RSI, reg::RDI, reg::RBP][k % 4];
        let mut input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
        let mut mask = fl::ALL;
        match k % 8 {
            3 | 4 => mask = fl::CF | fl::OF | fl::DF,
            5 => {
                mask = fl::DF;
                let div = (input.regs[d] as u16).max(1);
                input.regs[d] = (input.regs[d] & !0xffff) | u64::from(div);
                input.regs[reg::RDX] =
                    (input.regs[reg::RDX] & !0xffff) | u64::from(input.regs[reg::RDX] as u16 % div);
            }
            6 => {
                let c = g.rng.below(4);
                input.regs[reg::RCX] = (input.regs[reg::RCX] & !0xff) | c;
                if c != 0 {
                    mask &= !fl::AF;
                }
                if c > 1 {
                    mask &= !fl::OF;
                }
            }
            _ => {}
        }
        let f = |a: &mut CodeAssembler| match k % 8 {
            0 => a.cbw(),
            1 => a.cwde(),
            2 => a.movsx(R32[d], R8[k % 4]),
            3 => a.mul(R16[d]),
            4 => a.imul_2(R16[d], R16[(k + 1) % 7]),
            5 => a.div(R16[d]),
            6 => a.shl(R16[d], cl),
            _ => a.cwd(),
        };
        g.add_mode(16, input, mask, f, f);
    }
    g.family(
        "families/code16",
        "16-bit code in real mode (host runs the 64-bit equivalent)",
        16,
    )
    .build()
}
