//! Flag instructions in 64-bit mode (SDM Vol. 2: LAHF SAHF PUSHF/PUSHFQ POPF/POPFQ CLC STC
//! CMC CLD STD). Only the status flags and DF are compared: IF and IOPL differ between the
//! host (user mode) and the guest (ring 0) and are masked out of pushed values.

use iced_x86::code_asm::*;

use super::Gen;
use crate::TestRom;
use crate::check::{fl, reg};

/// Build the ROM.
pub fn build() -> TestRom {
    let mut g = Gen::new(0xf1a6_0000_000b);
    for k in 0..160 {
        let mut input = g.input(&[reg::RAX, reg::RBX], false);
        if g.rng.one_in(3) {
            input.rflags |= u64::from(fl::DF);
        }
        match k % 10 {
            0 => g.add64(input, fl::ALL, |a| a.lahf()),
            1 => g.add64(input, fl::ALL, |a| a.sahf()),
            2 => g.add64(input, fl::ALL & !fl::AF, |a| {
                a.pushfq()?;
                a.pop(rax)?;
                a.and(eax, fl::ALL)
            }),
            3 => {
                // POPFQ of status flags and DF; the rest of RBX is cleared so only those move.
                input.regs[reg::RBX] &= u64::from(fl::ALL);
                input.regs[reg::RBX] |= 2;
                g.add64(input, fl::ALL, |a| {
                    a.push(rbx)?;
                    a.popfq()
                })
            }
            4 => g.add64(input, fl::ALL & !fl::AF, |a| {
                a.pushf()?;
                a.pop(ax)?;
                a.and(ax, fl::ALL)
            }),
            5 => g.add64(input, fl::ALL, |a| a.clc()),
            6 => g.add64(input, fl::ALL, |a| a.stc()),
            7 => g.add64(input, fl::ALL, |a| a.cmc()),
            8 => g.add64(input, fl::ALL, |a| a.cld()),
            _ => g.add64(input, fl::ALL, |a| a.std()),
        }
    }
    // LAHF after an arithmetic instruction, SAHF before a conditional one.
    for _ in 0..40 {
        let input = g.input(&[reg::RAX, reg::RBX, reg::RCX], false);
        g.add64(input, fl::ALL, |a| {
            a.add(rbx, rcx)?;
            a.lahf()?;
            a.sahf()?;
            a.setc(cl)?;
            a.adc(rbx, rcx)
        });
    }
    g.family(
        "families/flags",
        "flag instructions (lahf sahf pushf popf clc stc cmc cld std)",
        64,
    )
    .build()
}
