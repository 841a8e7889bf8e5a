//! String instructions in 64-bit mode (SDM Vol. 2: MOVS STOS LODS CMPS SCAS at byte, word,
//! dword and qword sizes), alone and with REP/REPE/REPNE, forwards (DF = 0) and backwards
//! (DF = 1). RSI and RDI hold offsets into the memory block: the snippet adds R15 before the
//! instruction and subtracts it after (with LEA, which leaves the flags alone).

use iced_x86::code_asm::*;

use super::Gen;
use crate::TestRom;
use crate::check::{fl, reg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rep {
    None,
    Plain,
    Repe,
    Repne,
}

fn emit(a: &mut CodeAssembler, op: Op, size: u32, rep: Rep) -> crate::asm::R {
    match rep {
        Rep::None => {}
        Rep::Plain => {
            let _ = a.rep();
        }
        Rep::Repe => {
            let _ = a.repe();
        }
        Rep::Repne => {
            let _ = a.repne();
        }
    }
    match (op, size) {
        (Op::Movs, 8) => a.movsb(),
        (Op::Movs, 16) => a.movsw(),
        (Op::Movs, 32) => a.movsd(),
        (Op::Movs, _) => a.movsq(),
        (Op::Stos, 8) => a.stosb(),
        (Op::Stos, 16) => a.stosw(),
        (Op::Stos, 32) => a.stosd(),
        (Op::Stos, _) => a.stosq(),
        (Op::Lods, 8) => a.lodsb(),
        (Op::Lods, 16) => a.lodsw(),
        (Op::Lods, 32) => a.lodsd(),
        (Op::Lods, _) => a.lodsq(),
        (Op::Cmps, 8) => a.cmpsb(),
        (Op::Cmps, 16) => a.cmpsw(),
        (Op::Cmps, 32) => a.cmpsd(),
        (Op::Cmps, _) => a.cmpsq(),
        (Op::Scas, 8) => a.scasb(),
        (Op::Scas, 16) => a.scasw(),
        (Op::Scas, 32) => a.scasd(),
        (Op::Scas, _) => a.scasq(),
    }
}

/// A start offset for `count` elements of `e` bytes inside 32 bytes, going up or down.
fn start(g: &mut Gen, e: u64, count: u64, down: bool) -> u64 {
    let span = count.max(1) * e;
    let room = 32 - span;
    let lo = g.rng.below(room + 1);
    if down { lo + span - e } else { lo }
}

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0x5791_0000_000a);
    let plans: [(Op, &[Rep]); 5] = [
        (Op::Movs, &[Rep::None, Rep::Plain]),
        (Op::Stos, &[Rep::None, Rep::Plain]),
        (Op::Lods, &[Rep::None, Rep::Plain]),
        (Op::Cmps, &[Rep::None, Rep::Repe, Rep::Repne]),
        (Op::Scas, &[Rep::None, Rep::Repe, Rep::Repne]),
    ];
    for (op, reps) in plans {
        for &rep in reps {
            for size in [8u32, 16, 32, 64] {
                for down in [false, true] {
                    for k in 0..3 {
                        let e = u64::from(size / 8);
                        let max = 32 / e;
                        let count = if rep == Rep::None {
                            1
                        } else {
                            [0, 1, g.rng.below(max + 1)][k % 3]
                        };
                        let mut input = g.input(&[reg::RAX, reg::RCX], true);
                        // Make equal runs likely so REPE/REPNE stop at different places.
                        if matches!(op, Op::Cmps | Op::Scas) && g.rng.one_in(2) {
                            for b in input.mem.iter_mut() {
                                *b &= 1;
                            }
                            input.regs[reg::RAX] &= 0x0101_0101_0101_0101;
                        }
                        let mut src = start(&mut g, e, count, down);
                        let mut dst = start(&mut g, e, count, down);
                        if op == Op::Movs && !down && count < max && g.rng.one_in(2) {
                            // An overlapping copy: the destination one element above.
                            src = start(&mut g, e, count + 1, false);
                            dst = src + e;
                        }
                        input.regs[reg::RSI] = src;
                        input.regs[reg::RDI] = dst;
                        if rep != Rep::None {
                            input.regs[reg::RCX] = count;
                        }
                        input.rflags |= if down { u64::from(fl::DF) } else { 0 };
                        g.add64(input, fl::ALL, |a| {
                            a.lea(rsi, qword_ptr(r15 + rsi))?;
                            a.lea(rdi, qword_ptr(r15 + rdi))?;
                            emit(a, op, size, rep)?;
                            a.lea(rsi, qword_ptr(r14 + rsi))?;
                            a.lea(rdi, qword_ptr(r14 + rdi))
                        });
                    }
                }
            }
        }
    }
    g.family(
        "families/string",
        "string instructions (movs stos lods cmps scas, rep repe repne, both directions)",
        64,
    )
    .build()
}
