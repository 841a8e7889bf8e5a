//! Stack instructions in 64-bit mode (SDM Vol. 2: PUSH, POP, ENTER, LEAVE, CALL, RET).
//! Stack addresses differ between the host and the guest, so the snippets turn them into
//! differences (`not r; lea d, [rsp + r + 1]` computes RSP - r without touching flags) and
//! point RBP into the memory block for ENTER/LEAVE.

use iced_x86::code_asm::*;

use super::{Gen, R16, R64, two_regs};
use crate::TestRom;
use crate::check::{fl, reg};

/// RAX..R11: the registers a snippet may pick freely (R12/R13 are its scratch).
fn free_reg(g: &mut Gen) -> usize {
    g.rng.below(11) as usize
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0x57ac_0000_0008);
    for _ in 0..30 {
        let (s, d) = two_regs(&mut g.rng);
        let input = g.input(&[s, d], false);
        g.add64(input, fl::ALL, |a| {
            a.push(R64[s])?;
            a.pop(R64[d])
        });
    }
    for _ in 0..20 {
        let (s, d) = (free_reg(&mut g), free_reg(&mut g));
        let input = g.input(&[s, d], false);
        // 16-bit pushes move RSP by 2.
        g.add64(input, fl::ALL, |a| {
            a.mov(r12, rsp)?;
            a.push(R16[s])?;
            a.not(r12)?;
            a.lea(r13, qword_ptr(rsp + r12 + 1))?;
            a.mov(r12, r13)?;
            a.pop(R16[d])
        });
    }
    for _ in 0..24 {
        let d = free_reg(&mut g);
        let v = super::imm(&mut g.rng, 32) as i32;
        let small = g.rng.below(256) as i32 - 128;
        let input = g.input(&[d], false);
        g.add64(input, fl::ALL, |a| {
            a.push(v)?;
            a.push(small)?;
            a.pop(R64[d])?;
            a.pop(rax)
        });
    }
    for _ in 0..20 {
        let (o1, o2) = (g.rng.below(4) as i32 * 8, g.rng.below(25) as i32);
        let input = g.input(&[], true);
        g.add64(input, fl::ALL, |a| {
            a.push(qword_ptr(r15 + o1))?;
            a.pop(qword_ptr(r15 + o2))
        });
    }
    for _ in 0..24 {
        let (s, t) = two_regs(&mut g.rng);
        let (d, e) = (free_reg(&mut g), free_reg(&mut g));
        let input = g.input(&[s, t, d, e], false);
        g.add64(input, fl::ALL, |a| {
            a.push(R64[s])?;
            a.push(R64[t])?;
            a.mov(R64[d], qword_ptr(rsp + 8))?;
            a.pop(R64[e])?;
            a.pop(R64[e])
        });
    }
    // PUSH RSP pushes the value before the decrement.
    for _ in 0..4 {
        let input = g.input(&[], false);
        g.add64(input, fl::ALL, |a| {
            a.mov(r12, rsp)?;
            a.push(rsp)?;
            a.pop(rax)?;
            a.not(r12)?;
            a.lea(rax, qword_ptr(rax + r12 + 1))?;
            a.xor(r12d, r12d)
        });
    }
    // ENTER size, level / LEAVE with the old frame inside the memory block.
    for level in 0..4u32 {
        for _ in 0..12 {
            let size = g.rng.below(48) as u32;
            let input = g.input(&[reg::RBP], true);
            g.add64(input, fl::ALL, |a| {
                a.mov(r12, rbp)?;
                a.lea(rbp, qword_ptr(r15 + 16))?;
                a.mov(r13, rsp)?;
                a.enter(size, level)?;
                a.mov(rax, r13)?;
                a.not(rax)?;
                a.lea(rax, qword_ptr(rsp + rax + 1))?;
                a.mov(rbx, r13)?;
                a.not(rbx)?;
                a.lea(rbx, qword_ptr(rbp + rbx + 1))?;
                if level >= 2 {
                    a.mov(rcx, qword_ptr(rbp - 8))?;
                }
                if level >= 3 {
                    a.mov(rdx, qword_ptr(rbp - 16))?;
                }
                a.leave()?;
                a.lea(rbp, qword_ptr(rbp + r14))?;
                a.mov(r13, 0u64)
            });
        }
    }
    // Near CALL (relative, register, memory) and RET, RET imm16.
    for k in 0..24 {
        let input = g.input(&[reg::RAX, reg::RBX, reg::RCX], true);
        g.add64(input, fl::ALL, |a| {
            let (mut f, mut done) = (a.create_label(), a.create_label());
            match k % 3 {
                0 => a.call(f)?,
                1 => {
                    a.lea(r12, ptr(f))?;
                    a.call(r12)?;
                    a.mov(r12, 0u64)?;
                }
                _ => {
                    a.lea(r12, ptr(f))?;
                    a.mov(qword_ptr(r15 + 8), r12)?;
                    a.call(qword_ptr(r15 + 8))?;
                    a.mov(qword_ptr(r15 + 8), 0)?;
                    a.mov(r12, 0u64)?;
                }
            }
            a.add(rax, rcx)?;
            a.jmp(done)?;
            a.set_label(&mut f)?;
            a.add(rax, rbx)?;
            a.ret()?;
            a.set_label(&mut done)?;
            a.nop()
        });
    }
    for _ in 0..16 {
        let input = g.input(&[reg::RAX, reg::RBX, reg::RCX], false);
        g.add64(input, fl::ALL, |a| {
            let (mut f, mut done) = (a.create_label(), a.create_label());
            a.push(rax)?;
            a.push(rbx)?;
            a.call(f)?;
            a.jmp(done)?;
            a.set_label(&mut f)?;
            a.mov(rcx, qword_ptr(rsp + 8))?;
            a.sub(rcx, qword_ptr(rsp + 16))?;
            a.ret_1(16)?;
            a.set_label(&mut done)?;
            a.nop()
        });
    }
    g.family(
        "families/stack",
        "stack (push pop enter leave call ret)",
        64,
    )
    .build()
}
