//! 32-bit code in protected mode, checked against the host running the equivalent 64-bit
//! instruction on the same inputs (exact for these forms; only the low 32 bits of each
//! register are compared). Covers what only exists or differs outside 64-bit mode: the
//! one-byte INC/DEC (0x40-0x4f), PUSHAD/POPAD, 16-bit operands through the 0x66 prefix,
//! scaled-index addressing with 32-bit wrap-around, LOOP/JECXZ on ECX, and the usual ALU,
//! shift, multiply/divide and extension instructions.

use iced_x86::code_asm::*;

use super::{Gen, H8, Opnd, R8, R16, R32};
use crate::asm::layout::CHECK_STATE;
use crate::check::{fl, reg};
use crate::{TestRom, op1, op2};

/// Linear address of the state block's memory in the guest.
const MEM: u64 = CHECK_STATE + 0x80;

/// A memory operand of `size` bits.
pub fn sized(size: u32, m: AsmMemoryOperand) -> AsmMemoryOperand {
    match size {
        8 => byte_ptr(m),
        16 => word_ptr(m),
        32 => dword_ptr(m),
        _ => qword_ptr(m),
    }
}

/// A register index for `size`-bit operands in 32-bit code (no REX registers; at 8 bits
/// AL BL CL DL).
fn reg32(g: &mut Gen, size: u32) -> usize {
    g.rng.below(if size == 8 { 4 } else { 7 }) as usize
}

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
}

const BINS: [Bin; 8] = [
    Bin::Add,
    Bin::Adc,
    Bin::Sub,
    Bin::Sbb,
    Bin::Cmp,
    Bin::And,
    Bin::Or,
    Bin::Xor,
];

fn bin_mask(op: Bin) -> u32 {
    match op {
        Bin::And | Bin::Or | Bin::Xor => fl::ALL & !fl::AF,
        _ => fl::ALL,
    }
}

/// Emit `op dst, src` with memory operands from `memfn`.
pub(crate) fn emit_bin<F: Fn(u32, i32) -> AsmMemoryOperand>(
    a: &mut CodeAssembler,
    memfn: F,
    op: u8,
    size: u32,
    d: Opnd,
    s: Opnd,
) -> crate::asm::R {
    match op {
        0 => op2!(mem = memfn; a, add, size, d, s; rr hh rm mr ri mi),
        1 => op2!(mem = memfn; a, adc, size, d, s; rr hh rm mr ri mi),
        2 => op2!(mem = memfn; a, sub, size, d, s; rr hh rm mr ri mi),
        3 => op2!(mem = memfn; a, sbb, size, d, s; rr hh rm mr ri mi),
        4 => op2!(mem = memfn; a, cmp, size, d, s; rr hh rm mr ri mi),
        5 => op2!(mem = memfn; a, and, size, d, s; rr hh rm mr ri mi),
        6 => op2!(mem = memfn; a, or, size, d, s; rr hh rm mr ri mi),
        _ => op2!(mem = memfn; a, xor, size, d, s; rr hh rm mr ri mi),
    }
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0xc032_0000_000c);
    // Register and immediate forms at 8 (also AH..DH), 16 (0x66 prefix) and 32 bits.
    for (k, op) in BINS.iter().enumerate() {
        for size in [8u32, 16, 32] {
            for form in 0..4 {
                let (d, s) = (reg32(&mut g, size), reg32(&mut g, size));
                let i = super::imm(&mut g.rng, size);
                let (dst, src) = match (form, size) {
                    (0, _) | (3, 16) | (3, 32) => (Opnd::R(d), Opnd::R(s)),
                    (1, _) => (Opnd::R(d), Opnd::I(i)),
                    (2, 8) => (Opnd::H(d), Opnd::R(s)),
                    (3, _) => (Opnd::R(d), Opnd::H(s)),
                    _ => (Opnd::R(d), Opnd::I(i)),
                };
                let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
                let f = |a: &mut CodeAssembler| emit_bin(a, super::mem, k as u8, size, dst, src);
                g.add_mode(32, input, bin_mask(*op), f, f);
            }
        }
    }
    // Memory operands [base + index * scale + disp32]: the displacement is chosen so that the
    // 32-bit sum (which wraps around) lands in the memory block.
    for (k, op) in BINS.iter().enumerate() {
        for size in [8u32, 16, 32] {
            for form in 0..3 {
                let base = g.rng.below(7) as usize;
                let mut index = g.rng.below(7) as usize;
                while index == base {
                    index = g.rng.below(7) as usize;
                }
                let r = reg32(&mut g, size);
                let scale = g.rng.pick(&[1u32, 2, 4, 8]);
                let off = super::mem_off(&mut g.rng, size);
                let input = g.input(&[0, 1, 2, 3, 4, 5, 6], true);
                let (bv, iv) = (input.regs[base] as u32, input.regs[index] as u32);
                let disp = (MEM as u32)
                    .wrapping_add(off as u32)
                    .wrapping_sub(bv)
                    .wrapping_sub(iv.wrapping_mul(scale)) as i32;
                let (dst, src) = match form {
                    0 => (Opnd::R(r), Opnd::M(off)),
                    1 => (Opnd::M(off), Opnd::R(r)),
                    _ => (Opnd::M(off), Opnd::I(super::imm(&mut g.rng, size))),
                };
                let gm = move |sz: u32, _o: i32| sized(sz, R32[base] + R32[index] * scale + disp);
                let hm = |sz: u32, o: i32| sized(sz, r15 + o);
                g.add_mode(
                    32,
                    input,
                    bin_mask(*op),
                    |a| emit_bin(a, gm, k as u8, size, dst, src),
                    |a| emit_bin(a, hm, k as u8, size, dst, src),
                );
            }
        }
    }
    // INC/DEC: one-byte forms (0x40-0x4f) in 32-bit code, ModRM forms on the host.
    for inc in [true, false] {
        for size in [16u32, 32] {
            for _ in 0..5 {
                let d = reg32(&mut g, size);
                let input = g.input(&[d], false);
                let f = |a: &mut CodeAssembler| {
                    if inc {
                        op1!(a, inc, size, Opnd::R(d))
                    } else {
                        op1!(a, dec, size, Opnd::R(d))
                    }
                };
                g.add_mode(32, input, fl::ALL, f, f);
            }
        }
    }
    // Shifts by CL and by an immediate.
    for size in [8u32, 16, 32] {
        for k in 0..12 {
            let d = if size == 8 {
                [0usize, 1, 3][k % 3]
            } else {
                [0usize, 1, 3, 4, 5, 6][k % 6]
            };
            let mut input = g.input(&[d, reg::RCX], false);
            let count = g.rng.below(if k % 2 == 0 { 32 } else { 4 });
            input.regs[reg::RCX] = (input.regs[reg::RCX] & !0xff) | count;
            let masked = count & 31;
            // SHL/SHR (not SAR) by at least the operand size leave CF undefined.
            let shl_or_shr = matches!(k % 4, 0 | 1) || (k % 4 == 3 && size != 32);
            let mut mask = fl::ALL;
            if masked != 0 {
                mask &= !fl::AF;
                if masked != 1 {
                    mask &= !fl::OF;
                }
                if shl_or_shr && masked >= u64::from(size) {
                    mask &= !fl::CF;
                }
            }
            let f = |a: &mut CodeAssembler| match (k % 4, size) {
                (0, 8) => a.shl(R8[d], cl),
                (0, 16) => a.shl(R16[d], cl),
                (0, _) => a.shl(R32[d], cl),
                (1, 8) => a.shr(R8[d], cl),
                (1, 16) => a.shr(R16[d], cl),
                (1, _) => a.shr(R32[d], cl),
                (2, 8) => a.sar(R8[d], cl),
                (2, 16) => a.sar(R16[d], cl),
                (2, _) => a.sar(R32[d], cl),
                (_, 8) => a.shl(R8[d], count as i32),
                (_, 16) => a.shr(R16[d], count as i32),
                (_, _) => a.sar(R32[d], count as i32),
            };
            g.add_mode(32, input, mask, f, f);
        }
    }
    // MUL/IMUL/DIV on EDX:EAX (dividends that cannot overflow: EDX < divisor).
    for k in 0..16 {
        let s = [reg::RBX, reg::RCX, reg::RSI, reg::RDI, reg::RBP][k % 5];
        let mut input = g.input(&[reg::RAX, reg::RDX, s], false);
        let (mask, op) = if k % 4 < 2 {
            (fl::CF | fl::OF | fl::DF, k % 4)
        } else {
            (fl::DF, 2)
        };
        if op == 2 {
            let div = (input.regs[s] as u32).max(1);
            input.regs[s] = (input.regs[s] & !0xffff_ffff) | u64::from(div);
            input.regs[reg::RDX] = (input.regs[reg::RDX] & !0xffff_ffff)
                | (u64::from(input.regs[reg::RDX] as u32) % u64::from(div));
        }
        let f = |a: &mut CodeAssembler| match op {
            0 => a.mul(R32[s]),
            1 => a.imul(R32[s]),
            _ => a.div(R32[s]),
        };
        g.add_mode(32, input, mask, f, f);
    }
    // PUSHAD/POPAD. The pushed ESP is a stack address, so the guest reads the other seven
    // slots back in a permuted order; the host does the same permutation with moves.
    for _ in 0..6 {
        let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
        g.add_mode(
            32,
            input,
            fl::ALL,
            |a| {
                // Stack after PUSHAD, lowest address first: EDI ESI EBP ESP EBX EDX ECX EAX.
                a.pushad()?;
                a.mov(ebp, esp)?;
                a.mov(eax, dword_ptr(ebp))?;
                a.mov(ebx, dword_ptr(ebp + 4))?;
                a.mov(ecx, dword_ptr(ebp + 8))?;
                a.mov(edx, dword_ptr(ebp + 16))?;
                a.mov(esi, dword_ptr(ebp + 20))?;
                a.mov(edi, dword_ptr(ebp + 24))?;
                a.mov(ebp, dword_ptr(ebp + 28))?;
                a.lea(esp, dword_ptr(esp + 32))
            },
            |a| {
                a.mov(r8d, edi)?;
                a.mov(r9d, esi)?;
                a.mov(r10d, ebp)?;
                a.mov(r11d, ebx)?;
                a.mov(r12d, edx)?;
                a.mov(r13d, ecx)?;
                a.mov(r14d, eax)?;
                a.mov(eax, r8d)?;
                a.mov(ebx, r9d)?;
                a.mov(ecx, r10d)?;
                a.mov(edx, r11d)?;
                a.mov(esi, r12d)?;
                a.mov(edi, r13d)?;
                a.mov(ebp, r14d)
            },
        );
        let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
        g.add_mode(
            32,
            input,
            fl::ALL,
            |a| {
                // POPAD pops EDI ESI EBP (skips ESP) EBX EDX ECX EAX.
                for r in [eax, ebx, ecx, edx, esi, edi, ebp, eax] {
                    a.push(r)?;
                }
                a.popad()
            },
            |a| {
                // Pushed (first to last) EAX EBX ECX EDX ESI EDI EBP EAX, popped:
                // EDI=EAX ESI=EBP EBP=EDI (ESI skipped) EBX=EDX EDX=ECX ECX=EBX EAX=EAX.
                a.mov(r8d, eax)?;
                a.mov(r9d, ebx)?;
                a.mov(r10d, ecx)?;
                a.mov(r11d, edx)?;
                a.mov(r12d, edi)?;
                a.mov(r13d, ebp)?;
                a.mov(edi, r8d)?;
                a.mov(esi, r13d)?;
                a.mov(ebp, r12d)?;
                a.mov(ebx, r11d)?;
                a.mov(edx, r10d)?;
                a.mov(ecx, r9d)
            },
        );
    }
    // LOOP on ECX and JECXZ (the host uses the ECX forms through the 0x67 prefix).
    for k in 0..12 {
        let mut input = g.input(&[reg::RAX, reg::RBX, reg::RCX], false);
        input.regs[reg::RCX] = (input.regs[reg::RCX] & !0xffff_ffff) | (1 + g.rng.below(30));
        if k % 3 == 2 {
            input.regs[reg::RCX] &= !0xffff_ffff;
        }
        let guest = |a: &mut CodeAssembler| {
            let mut top = a.create_label();
            let mut out = a.create_label();
            a.jecxz(out)?;
            a.set_label(&mut top)?;
            a.add(eax, ebx)?;
            a.loop_(top)?;
            a.set_label(&mut out)?;
            a.nop()
        };
        let host = |a: &mut CodeAssembler| {
            let mut top = a.create_label();
            let mut out = a.create_label();
            a.db(&[0x67])?;
            a.jrcxz(out)?;
            a.set_label(&mut top)?;
            a.add(eax, ebx)?;
            a.db(&[0x67])?;
            a.loop_(top)?;
            a.set_label(&mut out)?;
            a.nop()
        };
        g.add_mode(32, input, fl::ALL, guest, host);
    }
    // Extensions, exchanges, byte swaps, conditions.
    for k in 0..30 {
        let (d, s) = (reg32(&mut g, 32), g.rng.below(4) as usize);
        let input = g.input(&[0, 1, 2, 3, 4, 5, 6], false);
        let f = |a: &mut CodeAssembler| match k % 10 {
            0 => a.movzx(R32[d], R8[s]),
            1 => a.movsx(R32[d], R16[s]),
            2 => a.movsx(R16[d], H8[s]),
            3 => a.cwde(),
            4 => a.cdq(),
            5 => a.cwd(),
            6 => a.bswap(R32[d]),
            7 => a.xchg(R32[d], R32[s]),
            8 => a.cmpxchg(R32[d], R32[s]),
            _ => a.setg(H8[s]),
        };
        g.add_mode(32, input, fl::ALL, f, f);
    }
    g.family(
        "families/code32",
        "32-bit code in protected mode (host runs the 64-bit equivalent)",
        32,
    )
    .build()
}
