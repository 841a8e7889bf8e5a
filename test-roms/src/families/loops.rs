//! Counted loops in 64-bit mode (SDM Vol. 2: LOOP, LOOPE, LOOPNE, JRCXZ, JECXZ), with the
//! count in RCX and, with the address-size prefix, in ECX. None of them touch the flags.

use iced_x86::Code;
use iced_x86::code_asm::*;

use super::Gen;
use crate::TestRom;
use crate::check::{fl, reg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Loop,
    Loope,
    Loopne,
}

/// Emit `code` (a LOOPcc or JrCXZ form) to `target`. code_asm has no ECX forms in 64-bit
/// code, so those are the RCX form after an explicit address-size prefix (0x67): the rel8
/// is relative to the end of the instruction either way.
fn branch(a: &mut CodeAssembler, code: Code, target: CodeLabel) -> crate::asm::R {
    use Code::*;
    if matches!(
        code,
        Loop_rel8_64_ECX | Loope_rel8_64_ECX | Loopne_rel8_64_ECX | Jecxz_rel8_64
    ) {
        a.db(&[0x67])?;
    }
    match code {
        Loop_rel8_64_RCX | Loop_rel8_64_ECX => a.loop_(target),
        Loope_rel8_64_RCX | Loope_rel8_64_ECX => a.loope(target),
        Loopne_rel8_64_RCX | Loopne_rel8_64_ECX => a.loopne(target),
        _ => a.jrcxz(target),
    }
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0x100b_0000_0009);
    for kind in [Kind::Loop, Kind::Loope, Kind::Loopne] {
        for use_ecx in [false, true] {
            for _ in 0..30 {
                let mut input = g.input(&[reg::RAX, reg::RBX, reg::RCX, reg::RDX], false);
                let count = 1 + g.rng.below(40);
                let high = if use_ecx {
                    g.rng.next_u64() & !0xffff_ffff
                } else {
                    0
                };
                input.regs[reg::RCX] = high | count;
                // A small RDX makes LOOPE/LOOPNE stop early on the comparison.
                input.regs[reg::RDX] = g.rng.below(8);
                input.regs[reg::RBX] = g.rng.below(3);
                g.add64(input, fl::ALL, |a| {
                    let mut top = a.create_label();
                    a.set_label(&mut top)?;
                    a.add(rax, rbx)?;
                    a.inc(r8)?;
                    a.cmp(r8, rdx)?;
                    let code = match (kind, use_ecx) {
                        (Kind::Loop, false) => Code::Loop_rel8_64_RCX,
                        (Kind::Loop, true) => Code::Loop_rel8_64_ECX,
                        (Kind::Loope, false) => Code::Loope_rel8_64_RCX,
                        (Kind::Loope, true) => Code::Loope_rel8_64_ECX,
                        (Kind::Loopne, false) => Code::Loopne_rel8_64_RCX,
                        (Kind::Loopne, true) => Code::Loopne_rel8_64_ECX,
                    };
                    branch(a, code, top)
                });
            }
        }
    }
    for use_ecx in [false, true] {
        for k in 0..24 {
            let mut input = g.input(&[reg::RAX, reg::RCX], false);
            input.regs[reg::RCX] = match k % 4 {
                0 => 0,
                1 => g.rng.next_u64() & !0xffff_ffff,
                2 => g.rng.below(5),
                _ => g.rng.next_u64(),
            };
            g.add64(input, fl::ALL, |a| {
                let mut taken = a.create_label();
                branch(
                    a,
                    if use_ecx {
                        Code::Jecxz_rel8_64
                    } else {
                        Code::Jrcxz_rel8_64
                    },
                    taken,
                )?;
                a.mov(eax, 1)?;
                a.ret()?;
                a.set_label(&mut taken)?;
                a.mov(eax, 2)
            });
        }
    }
    g.family(
        "families/loops",
        "counted loops (loop loope loopne jrcxz jecxz)",
        64,
    )
    .build()
}
