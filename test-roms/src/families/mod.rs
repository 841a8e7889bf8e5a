//! Instruction-family ROMs: every family the interpreter implements, checked against this
//! host's CPU (see `check` and `host`). Each file generates a few hundred checks from a
//! fixed-seed PRNG; the ROM runs them in guest 64-bit mode (or 32-bit protected mode, or real
//! mode for the 16-bit forms) and prints one line per check.

pub mod alu;
pub mod bit;
pub mod code16;
pub mod code32;
pub mod cond;
pub mod flags;
pub mod loops;
pub mod movx;
pub mod muldiv;
pub mod shift;
pub mod stack;
pub mod string;
pub mod system;
pub mod xchg;

use iced_x86::code_asm::*;

use crate::TestRom;
use crate::check::{Check, Family, State, snippet};
use crate::host::{HostCpu, Spec};
use crate::rng::Rng;

/// Every ROM of this area.
pub fn all() -> Vec<TestRom> {
    vec![
        alu::build(),
        shift::build(),
        muldiv::build(),
        bit::build(),
        xchg::build(),
        movx::build(),
        cond::build(),
        stack::build(),
        loops::build(),
        string::build(),
        flags::build(),
        code32::build(),
        code16::build(),
        system::build(),
    ]
}

/// 64-bit registers in state order (RAX RBX RCX RDX RSI RDI RBP R8..R13).
pub const R64: [AsmRegister64; 13] = [
    rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13,
];
/// 32-bit registers in state order.
pub const R32: [AsmRegister32; 13] = [
    eax, ebx, ecx, edx, esi, edi, ebp, r8d, r9d, r10d, r11d, r12d, r13d,
];
/// 16-bit registers in state order.
pub const R16: [AsmRegister16; 13] = [ax, bx, cx, dx, si, di, bp, r8w, r9w, r10w, r11w, r12w, r13w];
/// 8-bit (low byte) registers in state order.
pub const R8: [AsmRegister8; 13] = [
    al, bl, cl, dl, sil, dil, bpl, r8b, r9b, r10b, r11b, r12b, r13b,
];
/// High-byte registers AH BH CH DH (state indexes 0-3).
pub const H8: [AsmRegister8; 4] = [ah, bh, ch, dh];

/// An operand of a generated instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opnd {
    /// A register by state index, at the instruction's size.
    R(usize),
    /// AH/BH/CH/DH by index 0-3 (8-bit only, never with REX registers or [R15]).
    H(usize),
    /// The memory block at offset `off` ([R15 + off]).
    M(i32),
    /// An immediate.
    I(i64),
}

/// A memory operand of `size` bits at [R15 + off].
pub fn mem(size: u32, off: i32) -> AsmMemoryOperand {
    match size {
        8 => byte_ptr(r15 + off),
        16 => word_ptr(r15 + off),
        32 => dword_ptr(r15 + off),
        _ => qword_ptr(r15 + off),
    }
}

/// Emit a two-operand instruction `$m dst, src` of `size` bits. The optional form list
/// (after `;`) names the operand forms the mnemonic has: `rr` reg/reg, `hh` high-byte
/// registers, `rm` reg/mem, `mr` mem/reg, `ri` reg/imm, `mi` mem/imm (default: all);
/// `wrr`, `wmr`, `wri` are the same without 8-bit operands. With `mem = f;` first, memory
/// operands come from `f(size, offset)` instead of `[R15 + offset]`.
#[macro_export]
macro_rules! op2 {
    ($a:expr, $m:ident, $size:expr, $dst:expr, $src:expr) => {
        $crate::op2!($a, $m, $size, $dst, $src; rr hh rm mr ri mi)
    };
    ($a:expr, $m:ident, $size:expr, $dst:expr, $src:expr; $($form:ident)*) => {
        $crate::op2!(mem = $crate::families::mem; $a, $m, $size, $dst, $src; $($form)*)
    };
    (mem = $memfn:expr; $a:expr, $m:ident, $size:expr, $dst:expr, $src:expr; $($form:ident)*) => {{
        #[allow(unused_imports)]
        use $crate::families::{H8, Opnd, R8, R16, R32, R64};
        #[allow(unused_variables)]
        let mem = $memfn;
        let (size, dst, src): (u32, Opnd, Opnd) = ($size, $dst, $src);
        let a = &mut *$a;
        (|| -> $crate::asm::R {
            $( $crate::op2!(@$form a, mem, $m, size, dst, src); )*
            panic!("op2 {}: no form {size} {dst:?} {src:?}", stringify!($m))
        })()
    }};
    (@rr $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (8, Opnd::R(d), Opnd::R(s)) => return $a.$m(R8[d], R8[s]),
            (16, Opnd::R(d), Opnd::R(s)) => return $a.$m(R16[d], R16[s]),
            (32, Opnd::R(d), Opnd::R(s)) => return $a.$m(R32[d], R32[s]),
            (64, Opnd::R(d), Opnd::R(s)) => return $a.$m(R64[d], R64[s]),
            _ => {}
        }
    };
    (@hh $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (8, Opnd::H(d), Opnd::H(s)) => return $a.$m(H8[d], H8[s]),
            (8, Opnd::H(d), Opnd::R(s)) => return $a.$m(H8[d], R8[s]),
            (8, Opnd::R(d), Opnd::H(s)) => return $a.$m(R8[d], H8[s]),
            _ => {}
        }
    };
    (@rm $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (8, Opnd::R(d), Opnd::M(o)) => return $a.$m(R8[d], $mem(8, o)),
            (16, Opnd::R(d), Opnd::M(o)) => return $a.$m(R16[d], $mem(16, o)),
            (32, Opnd::R(d), Opnd::M(o)) => return $a.$m(R32[d], $mem(32, o)),
            (64, Opnd::R(d), Opnd::M(o)) => return $a.$m(R64[d], $mem(64, o)),
            _ => {}
        }
    };
    (@mr $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (8, Opnd::M(o), Opnd::R(s)) => return $a.$m($mem(8, o), R8[s]),
            (16, Opnd::M(o), Opnd::R(s)) => return $a.$m($mem(16, o), R16[s]),
            (32, Opnd::M(o), Opnd::R(s)) => return $a.$m($mem(32, o), R32[s]),
            (64, Opnd::M(o), Opnd::R(s)) => return $a.$m($mem(64, o), R64[s]),
            _ => {}
        }
    };
    (@ri $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (8, Opnd::R(d), Opnd::I(i)) => return $a.$m(R8[d], i as i32),
            (8, Opnd::H(d), Opnd::I(i)) => return $a.$m(H8[d], i as i32),
            (16, Opnd::R(d), Opnd::I(i)) => return $a.$m(R16[d], i as i32),
            (32, Opnd::R(d), Opnd::I(i)) => return $a.$m(R32[d], i as i32),
            (64, Opnd::R(d), Opnd::I(i)) => return $a.$m(R64[d], i as i32),
            _ => {}
        }
    };
    (@wrr $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (16, Opnd::R(d), Opnd::R(s)) => return $a.$m(R16[d], R16[s]),
            (32, Opnd::R(d), Opnd::R(s)) => return $a.$m(R32[d], R32[s]),
            (64, Opnd::R(d), Opnd::R(s)) => return $a.$m(R64[d], R64[s]),
            _ => {}
        }
    };
    (@wmr $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (16, Opnd::M(o), Opnd::R(s)) => return $a.$m($mem(16, o), R16[s]),
            (32, Opnd::M(o), Opnd::R(s)) => return $a.$m($mem(32, o), R32[s]),
            (64, Opnd::M(o), Opnd::R(s)) => return $a.$m($mem(64, o), R64[s]),
            _ => {}
        }
    };
    (@wri $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (16, Opnd::R(d), Opnd::I(i)) => return $a.$m(R16[d], i as i32),
            (32, Opnd::R(d), Opnd::I(i)) => return $a.$m(R32[d], i as i32),
            (64, Opnd::R(d), Opnd::I(i)) => return $a.$m(R64[d], i as i32),
            _ => {}
        }
    };
    (@mi $a:ident, $mem:ident, $m:ident, $size:ident, $d:ident, $s:ident) => {
        match ($size, $d, $s) {
            (s, Opnd::M(o), Opnd::I(i)) => return $a.$m($mem(s, o), i as i32),
            _ => {}
        }
    };
}

/// Emit a one-operand instruction `$m dst` of `size` bits (register, high byte or memory).
#[macro_export]
macro_rules! op1 {
    ($a:expr, $m:ident, $size:expr, $dst:expr) => {{
        use $crate::families::{H8, Opnd, R8, R16, R32, R64, mem};
        match ($size, $dst) {
            (8, Opnd::R(d)) => $a.$m(R8[d]),
            (8, Opnd::H(d)) => $a.$m(H8[d]),
            (16, Opnd::R(d)) => $a.$m(R16[d]),
            (32, Opnd::R(d)) => $a.$m(R32[d]),
            (64, Opnd::R(d)) => $a.$m(R64[d]),
            (s, Opnd::M(o)) => $a.$m(mem(s, o)),
            (s, d) => panic!("op1 {}: no form {s} {d:?}", stringify!($m)),
        }
    }};
}

/// Check generation for one family: the host CPU, a seeded PRNG and the checks so far.
#[derive(Debug)]
pub struct Gen {
    /// Runs the snippets natively.
    pub host: HostCpu,
    /// Operands and choices.
    pub rng: Rng,
    /// The checks generated so far.
    pub checks: Vec<Check>,
}

impl Gen {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Gen {
        Gen {
            host: HostCpu::new(),
            rng: Rng::new(seed),
            checks: Vec::new(),
        }
    }

    /// The pattern state with random values in `regs`, random status flags and (with `mem`)
    /// random memory.
    pub fn input(&mut self, regs: &[usize], with_mem: bool) -> State {
        let mut st = State::pattern();
        for &r in regs {
            st.regs[r] = self.rng.operand();
        }
        st.rflags = self.rng.status_flags();
        if with_mem {
            for k in 0..st.mem.len() / 8 {
                let v = self.rng.operand();
                st.mem[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        st
    }

    /// Add a 64-bit check: `f` is the snippet (guest and host run the same bytes).
    pub fn add64(
        &mut self,
        input: State,
        flags_mask: u32,
        f: impl FnOnce(&mut CodeAssembler) -> crate::asm::R,
    ) {
        let code = snippet(64, f);
        let c = self.host.check(Spec::same(code, input, flags_mask));
        self.checks.push(c);
    }

    /// Add a check whose guest runs `guest` as `bits`-bit code and whose host runs `host`,
    /// the equivalent 64-bit code (the same instruction, with the memory operand at R15).
    pub fn add_mode(
        &mut self,
        bits: u32,
        input: State,
        flags_mask: u32,
        guest: impl FnOnce(&mut CodeAssembler) -> crate::asm::R,
        host: impl FnOnce(&mut CodeAssembler) -> crate::asm::R,
    ) {
        let guest = snippet(bits, guest);
        let host = snippet(64, host);
        self.add(Spec {
            name: None,
            bits,
            guest,
            host,
            input,
            flags_mask,
            ignore: 0,
        });
    }

    /// Add a check from a full spec.
    pub fn add(&mut self, spec: Spec) {
        let c = self.host.check(spec);
        self.checks.push(c);
    }

    /// The family ROM.
    pub fn family(self, rom: &str, title: &str, bits: u32) -> Family {
        Family {
            rom: rom.to_string(),
            title: title.to_string(),
            bits,
            checks: self.checks,
        }
    }
}

/// A random register index usable at `size` bits in any form (RSP, R14, R15 excluded).
pub fn any_reg(rng: &mut Rng) -> usize {
    rng.below(13) as usize
}

/// Two distinct register indexes.
pub fn two_regs(rng: &mut Rng) -> (usize, usize) {
    let d = any_reg(rng);
    let mut s = any_reg(rng);
    while s == d {
        s = any_reg(rng);
    }
    (d, s)
}

/// An immediate that fits the instruction's immediate field at `size` bits (sign-extended
/// 32-bit at 64 bits).
pub fn imm(rng: &mut Rng, size: u32) -> i64 {
    let v = rng.operand();
    match size {
        8 => i64::from(v as i8),
        16 => i64::from(v as i16),
        _ => i64::from(v as i32),
    }
}

/// A memory offset for an operand of `size` bits inside the 32-byte block, sometimes
/// unaligned.
pub fn mem_off(rng: &mut Rng, size: u32) -> i32 {
    (rng.below(32 - u64::from(size / 8) + 1)) as i32
}
