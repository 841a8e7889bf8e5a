//! Differential testing: random 64-bit instruction sequences (straight-line and branchy;
//! integer families at every width, memory operands, flag consumers ADC/SBB/SETcc/CMOVcc/Jcc/
//! PUSHF, interpreter fallbacks in between) run from the same random state and memory on the
//! interpreter and on the JIT; the final states and memory must be identical.
//!
//! Seeds are fixed (the case number); a failure prints the seed and the program. Set
//! `VX_DIFF_CASES=N` to run more cases.

mod common;

use common::*;
use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers random instructions may change. RSP is the stack, R15/R14 are memory bases,
    /// R12 a small index, R13 the loop counter.
    const R64: [AsmRegister64; 11] = [rax, rcx, rdx, rbx, rsi, rdi, rbp, r8, r9, r10, r11];
    const R32: [AsmRegister32; 11] = [eax, ecx, edx, ebx, esi, edi, ebp, r8d, r9d, r10d, r11d];
    const R16: [AsmRegister16; 11] = [ax, cx, dx, bx, si, di, bp, r8w, r9w, r10w, r11w];
    const R8X: [AsmRegister8; 11] = [al, cl, dl, bl, sil, dil, bpl, r8b, r9b, r10b, r11b];
    const R8L: [AsmRegister8; 8] = [al, cl, dl, bl, ah, ch, dh, bh];

    /// Value of R12 (index register).
    const INDEX: u64 = 0x40;

    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03)
        }
        fn next(&mut self) -> u64 {
            // xorshift64*
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        /// An interesting value: small, boundary or random.
        fn value(&mut self) -> u64 {
            match self.below(8) {
                0 => self.below(4),
                1 => u64::MAX - self.below(3),
                2 => 0x7fff_ffff_ffff_ffff - self.below(2) + self.below(2),
                3 => 0x8000_0000 - 1 + self.below(3),
                4 => 0x7f + self.below(3),
                5 => 0xffff - self.below(2),
                _ => self.next(),
            }
        }
    }

    fn width(r: &mut Rng) -> u32 {
        [1, 2, 4, 8][r.below(4) as usize]
    }

    /// A memory operand inside the data area.
    fn mem(r: &mut Rng, size: u32) -> AsmMemoryOperand {
        let d = (r.below(0x700) as i32) & !(size as i32 - 1).min(if r.chance(70) { 7 } else { 0 });
        let m: AsmMemoryOperand = match r.below(5) {
            0 => r15 + d,
            1 => r14 - d,
            2 => r15 + r12 * [1, 2, 4, 8][r.below(4) as usize] + d,
            3 => r15d + d,
            _ => r15 + r12 + d + 0x100,
        };
        match size {
            1 => byte_ptr(m),
            2 => word_ptr(m),
            4 => dword_ptr(m),
            _ => qword_ptr(m),
        }
    }

    macro_rules! rr {
        ($a:ident, $op:ident, $w:expr, $i:expr, $j:expr, $hi:expr) => {
            match $w {
                8 => $a.$op(R64[$i], R64[$j]),
                4 => $a.$op(R32[$i], R32[$j]),
                2 => $a.$op(R16[$i], R16[$j]),
                _ if $hi => $a.$op(R8L[$i % 8], R8L[$j % 8]),
                _ => $a.$op(R8X[$i], R8X[$j]),
            }
        };
    }

    macro_rules! r_ {
        ($a:ident, $op:ident, $w:expr, $i:expr, $hi:expr $(, $x:expr)*) => {
            match $w {
                8 => $a.$op(R64[$i] $(, $x)*),
                4 => $a.$op(R32[$i] $(, $x)*),
                2 => $a.$op(R16[$i] $(, $x)*),
                _ if $hi => $a.$op(R8L[$i % 8] $(, $x)*),
                _ => $a.$op(R8X[$i] $(, $x)*),
            }
        };
    }

    macro_rules! rm {
        ($a:ident, $op:ident, $w:expr, $i:expr, $m:expr, $hi:expr) => {
            match $w {
                8 => $a.$op(R64[$i], $m),
                4 => $a.$op(R32[$i], $m),
                2 => $a.$op(R16[$i], $m),
                _ if $hi && false => $a.$op(R8L[$i % 8], $m),
                _ => $a.$op(R8X[$i], $m),
            }
        };
    }

    macro_rules! mr {
        ($a:ident, $op:ident, $w:expr, $i:expr, $m:expr, $hi:expr) => {
            match $w {
                8 => $a.$op($m, R64[$i]),
                4 => $a.$op($m, R32[$i]),
                2 => $a.$op($m, R16[$i]),
                _ if $hi && false => $a.$op($m, R8L[$i % 8]),
                _ => $a.$op($m, R8X[$i]),
            }
        };
    }

    macro_rules! alu_forms {
        ($a:ident, $r:ident, $op:ident, $w:expr, $memdst:expr) => {{
            let i = $r.below(11) as usize;
            let j = $r.below(11) as usize;
            let hi = $r.chance(30);
            let imm = $r.value() as i32;
            match $r.below(5) {
                0 => rr!($a, $op, $w, i, j, hi),
                1 => r_!(
                    $a,
                    $op,
                    $w,
                    i,
                    hi,
                    if $w == 1 {
                        imm as i8 as i32
                    } else if $w == 2 {
                        imm as i16 as i32
                    } else {
                        imm
                    }
                ),
                2 if $memdst => mr!($a, $op, $w, i, mem($r, $w), hi),
                3 if $memdst => $a.$op(
                    mem($r, $w),
                    if $w == 1 {
                        imm as i8 as i32
                    } else if $w == 2 {
                        imm as i16 as i32
                    } else {
                        imm
                    },
                ),
                _ => mr!($a, $op, $w, i, mem($r, $w), hi),
            }
        }};
    }

    macro_rules! alu_rm {
        ($a:ident, $r:ident, $op:ident, $w:expr) => {{
            let i = $r.below(11) as usize;
            let hi = $r.chance(30);
            rm!($a, $op, $w, i, mem($r, $w), hi)
        }};
    }

    fn cc_jump(a: &mut CodeAssembler, cc: u64, l: CodeLabel) -> Result<(), IcedError> {
        match cc {
            0 => a.jo(l),
            1 => a.jno(l),
            2 => a.jb(l),
            3 => a.jae(l),
            4 => a.je(l),
            5 => a.jne(l),
            6 => a.jbe(l),
            7 => a.ja(l),
            8 => a.js(l),
            9 => a.jns(l),
            10 => a.jp(l),
            11 => a.jnp(l),
            12 => a.jl(l),
            13 => a.jge(l),
            14 => a.jle(l),
            _ => a.jg(l),
        }
    }

    fn cc_set(a: &mut CodeAssembler, cc: u64, r: &mut Rng) -> Result<(), IcedError> {
        if r.chance(25) {
            let m = mem(r, 1);
            return match cc {
                0 => a.seto(m),
                1 => a.setno(m),
                2 => a.setb(m),
                3 => a.setae(m),
                4 => a.sete(m),
                5 => a.setne(m),
                6 => a.setbe(m),
                7 => a.seta(m),
                8 => a.sets(m),
                9 => a.setns(m),
                10 => a.setp(m),
                11 => a.setnp(m),
                12 => a.setl(m),
                13 => a.setge(m),
                14 => a.setle(m),
                _ => a.setg(m),
            };
        }
        let d = R8X[r.below(11) as usize];
        match cc {
            0 => a.seto(d),
            1 => a.setno(d),
            2 => a.setb(d),
            3 => a.setae(d),
            4 => a.sete(d),
            5 => a.setne(d),
            6 => a.setbe(d),
            7 => a.seta(d),
            8 => a.sets(d),
            9 => a.setns(d),
            10 => a.setp(d),
            11 => a.setnp(d),
            12 => a.setl(d),
            13 => a.setge(d),
            14 => a.setle(d),
            _ => a.setg(d),
        }
    }

    macro_rules! cmov_all {
        ($a:ident, $cc:expr, $d:expr, $s:expr) => {
            match $cc {
                0 => $a.cmovo($d, $s),
                1 => $a.cmovno($d, $s),
                2 => $a.cmovb($d, $s),
                3 => $a.cmovae($d, $s),
                4 => $a.cmove($d, $s),
                5 => $a.cmovne($d, $s),
                6 => $a.cmovbe($d, $s),
                7 => $a.cmova($d, $s),
                8 => $a.cmovs($d, $s),
                9 => $a.cmovns($d, $s),
                10 => $a.cmovp($d, $s),
                11 => $a.cmovnp($d, $s),
                12 => $a.cmovl($d, $s),
                13 => $a.cmovge($d, $s),
                14 => $a.cmovle($d, $s),
                _ => $a.cmovg($d, $s),
            }
        };
    }

    fn cc_cmov(a: &mut CodeAssembler, cc: u64, r: &mut Rng) -> Result<(), IcedError> {
        let i = r.below(11) as usize;
        let j = r.below(11) as usize;
        let w = [2, 4, 8][r.below(3) as usize];
        let from_mem = r.chance(30);
        match (w, from_mem) {
            (8, false) => cmov_all!(a, cc, R64[i], R64[j]),
            (4, false) => cmov_all!(a, cc, R32[i], R32[j]),
            (2, false) => cmov_all!(a, cc, R16[i], R16[j]),
            (8, true) => cmov_all!(a, cc, R64[i], mem(r, 8)),
            (4, true) => cmov_all!(a, cc, R32[i], mem(r, 4)),
            _ => cmov_all!(a, cc, R16[i], mem(r, 2)),
        }
    }

    /// One random non-branching instruction (or a short idiom).
    fn straight(a: &mut CodeAssembler, r: &mut Rng, depth: &mut u32) -> Result<(), IcedError> {
        let w = width(r);
        let i = r.below(11) as usize;
        let j = r.below(11) as usize;
        let hi = r.chance(30);
        if r.chance(6) {
            // An instruction the JIT leaves to the interpreter and that changes nothing:
            // splits blocks, so short blocks start and end with lazy flags in the context.
            return a.lfence();
        }
        match r.below(32) {
            0 => alu_forms!(a, r, add, w, true),
            1 => alu_forms!(a, r, sub, w, true),
            2 => alu_forms!(a, r, adc, w, true),
            3 => alu_forms!(a, r, sbb, w, true),
            4 => alu_forms!(a, r, and, w, true),
            5 => alu_forms!(a, r, or, w, true),
            6 => alu_forms!(a, r, xor, w, true),
            7 => alu_forms!(a, r, cmp, w, true),
            8 => match r.below(3) {
                0 => rr!(a, test, w, i, j, hi),
                1 => r_!(
                    a,
                    test,
                    w,
                    i,
                    hi,
                    r.value() as i32
                        & if w == 1 {
                            0x7f
                        } else if w == 2 {
                            0x7fff
                        } else {
                            -1
                        }
                ),
                _ => mr!(a, test, w, i, mem(r, w), hi),
            },
            9 => match r.below(4) {
                0 => alu_rm!(a, r, add, w),
                1 => alu_rm!(a, r, sub, w),
                2 => alu_rm!(a, r, adc, w),
                _ => alu_rm!(a, r, xor, w),
            },
            10 => {
                let op = r.below(4);
                if r.chance(30) {
                    let m = mem(r, w);
                    match op {
                        0 => a.inc(m),
                        1 => a.dec(m),
                        2 => a.neg(m),
                        _ => a.not(m),
                    }
                } else {
                    match op {
                        0 => r_!(a, inc, w, i, hi),
                        1 => r_!(a, dec, w, i, hi),
                        2 => r_!(a, neg, w, i, hi),
                        _ => r_!(a, not, w, i, hi),
                    }
                }
            }
            11 => match r.below(5) {
                0 => rr!(a, mov, w, i, j, hi),
                1 => {
                    let v = r.value();
                    match w {
                        8 => a.mov(R64[i], v),
                        4 => a.mov(R32[i], v as u32),
                        2 => a.mov(R16[i], v as u16 as u32),
                        _ if hi => a.mov(R8L[i % 8], v as u8 as u32),
                        _ => a.mov(R8X[i], v as u8 as u32),
                    }
                }
                2 => alu_rm!(a, r, mov, w),
                3 => mr!(a, mov, w, i, mem(r, w), hi),
                _ => a.mov(
                    mem(r, w.max(2)),
                    r.value() as i32
                        & if w == 1 {
                            0x7f
                        } else if w <= 2 {
                            0x7fff
                        } else {
                            -1
                        },
                ),
            },
            12 => {
                let from8 = r.chance(50);
                let src_mem = r.chance(30);
                let sx = r.chance(50);
                match (w, from8, src_mem) {
                    (8 | 4, true, false) => {
                        let s = R8X[j];
                        if w == 8 {
                            if sx {
                                a.movsx(R64[i], s)
                            } else {
                                a.movzx(R64[i], s)
                            }
                        } else if sx {
                            a.movsx(R32[i], s)
                        } else {
                            a.movzx(R32[i], s)
                        }
                    }
                    (8 | 4, false, false) => {
                        let s = R16[j];
                        if w == 8 {
                            if sx {
                                a.movsx(R64[i], s)
                            } else {
                                a.movzx(R64[i], s)
                            }
                        } else if sx {
                            a.movsx(R32[i], s)
                        } else {
                            a.movzx(R32[i], s)
                        }
                    }
                    (8, _, true) => {
                        let m = mem(r, if from8 { 1 } else { 2 });
                        if sx {
                            a.movsx(R64[i], m)
                        } else {
                            a.movzx(R64[i], m)
                        }
                    }
                    (2, _, _) => {
                        if sx {
                            a.movsx(R16[i], R8X[j])
                        } else {
                            a.movzx(R16[i], R8X[j])
                        }
                    }
                    _ => {
                        if src_mem {
                            a.movsxd(R64[i], mem(r, 4))
                        } else {
                            a.movsxd(R64[i], R32[j])
                        }
                    }
                }
            }
            13 => {
                let m: AsmMemoryOperand = match r.below(4) {
                    0 => R64[j] + (r.value() as i32),
                    1 => {
                        R64[j]
                            + R64[r.below(11) as usize] * [1, 2, 4, 8][r.below(4) as usize]
                            + (r.below(1000) as i32)
                    }
                    2 => R32[j] + R32[r.below(11) as usize] * 2 - 5,
                    _ => r15 + r12 * 8 + 3,
                };
                match [2, 4, 8][r.below(3) as usize] {
                    8 => a.lea(R64[i], m),
                    4 => a.lea(R32[i], m),
                    _ => a.lea(R16[i], m),
                }
            }
            14 => {
                let count = match r.below(4) {
                    0 => 1,
                    1 => r.below(8) as u32,
                    2 => r.below(w as u64 * 8 + 2) as u32,
                    _ => r.below(80) as u32,
                };
                let on_mem = r.chance(25);
                let m = mem(r, w);
                macro_rules! sh {
                    ($op:ident) => {
                        if on_mem {
                            a.$op(m, count)
                        } else {
                            r_!(a, $op, w, i, hi, count)
                        }
                    };
                }
                match r.below(5) {
                    0 => sh!(shl),
                    1 => sh!(shr),
                    2 => sh!(sar),
                    3 => sh!(rol),
                    _ => sh!(ror),
                }
            }
            15 => {
                let w = [2, 4, 8][r.below(3) as usize];
                match (r.below(3), w) {
                    (0, 8) => a.imul_2(R64[i], R64[j]),
                    (0, 4) => a.imul_2(R32[i], R32[j]),
                    (0, _) => a.imul_2(R16[i], R16[j]),
                    (1, 8) => a.imul_2(R64[i], mem(r, 8)),
                    (1, 4) => a.imul_2(R32[i], mem(r, 4)),
                    (1, _) => a.imul_2(R16[i], mem(r, 2)),
                    (_, 8) => a.imul_3(R64[i], R64[j], r.value() as i32),
                    (_, 4) => a.imul_3(R32[i], mem(r, 4), r.value() as i32),
                    _ => a.imul_3(R16[i], R16[j], r.value() as i16 as i32),
                }
            }
            16 => {
                // One-operand multiply (clobbers rAX and rDX).
                let on_mem = r.chance(30);
                let m = mem(r, w);
                if r.chance(50) {
                    if on_mem {
                        a.mul(m)
                    } else {
                        r_!(a, mul, w, i, hi)
                    }
                } else if on_mem {
                    a.imul(m)
                } else {
                    r_!(a, imul, w, i, hi)
                }
            }
            17 => cc_set(a, r.below(16), r),
            18 => cc_cmov(a, r.below(16), r),
            19 => {
                if *depth > 0 && r.chance(50) {
                    *depth -= 1;
                    a.pop(R64[i])
                } else {
                    *depth += 1;
                    match r.below(4) {
                        0 => a.push(R64[i]),
                        1 => a.push(r.value() as i32),
                        2 => a.push(qword_ptr(r15 + (r.below(0x100) as i32 * 8))),
                        _ => a.pushfq(),
                    }
                }
            }
            20 => match r.below(6) {
                0 => a.cbw(),
                1 => a.cwde(),
                2 => a.cdqe(),
                3 => a.cwd(),
                4 => a.cdq(),
                _ => a.cqo(),
            },
            21 => {
                if r.chance(50) {
                    a.bswap(R64[i])
                } else {
                    a.bswap(R32[i])
                }
            }
            22 => rr!(a, xchg, w, i, j, hi),
            23 => {
                // Flag instructions, and flag users the JIT leaves to the interpreter.
                match r.below(12) {
                    0 => a.clc(),
                    1 => a.stc(),
                    2 => a.cmc(),
                    3 => a.lahf(),
                    4 => a.sahf(),
                    5 => a.cld(),
                    6 => a.std(),
                    7 => r_!(a, rcl, w, i, hi, 1u32),
                    8 => r_!(a, rcr, w, i, hi, cl),
                    9 => a.shld(R64[i], R64[j], r.below(64) as u32),
                    10 => a.bt(qword_ptr(r15 + 0x100), R64[j]),
                    _ => a.shrd(R32[i], R32[j], cl),
                }
            }
            27 => {
                // Shifts and rotates of a register by CL.
                let c = r.below(100);
                if c < 50 {
                    a.mov(ecx, (r.below(70)) as u32)?;
                }
                match r.below(5) {
                    0 => r_!(a, shl, w, i, hi, cl),
                    1 => r_!(a, shr, w, i, hi, cl),
                    2 => r_!(a, sar, w, i, hi, cl),
                    3 => r_!(a, rol, w, i, hi, cl),
                    _ => r_!(a, ror, w, i, hi, cl),
                }
            }
            28 => {
                // Bit tests and scans, exchanges, LOCKed read-modify-write.
                let w = [2, 4, 8][r.below(3) as usize];
                match r.below(10) {
                    0 => match w {
                        8 => a.bts(R64[i], R64[j]),
                        4 => a.btr(R32[i], R32[j]),
                        _ => a.btc(R16[i], R16[j]),
                    },
                    1 => match w {
                        8 => a.bt(qword_ptr(r15 + 8), r.below(200) as u32),
                        4 => a.bts(dword_ptr(r15 + 8), r.below(200) as u32),
                        _ => a.lock().btr(word_ptr(r15 + 8), r.below(200) as u32),
                    },
                    2 => match w {
                        8 => a.bsf(R64[i], R64[j]),
                        4 => a.bsr(R32[i], mem(r, 4)),
                        _ => a.bsr(R16[i], R16[j]),
                    },
                    3 => match w {
                        8 => a.xchg(mem(r, 8), R64[i]),
                        4 => a.xchg(mem(r, 4), R32[i]),
                        _ => a.xchg(mem(r, 2), R16[i]),
                    },
                    4 => match w {
                        8 => a.lock().xadd(mem(r, 8), R64[i]),
                        4 => a.xadd(R32[i], R32[j]),
                        _ => a.xadd(mem(r, 2), R16[i]),
                    },
                    5 => match w {
                        8 => a.lock().cmpxchg(mem(r, 8), R64[i]),
                        4 => a.cmpxchg(R32[i], R32[j]),
                        _ => a.cmpxchg(mem(r, 2), R16[i]),
                    },
                    6 => {
                        // Make the compare succeed sometimes.
                        a.mov(rax, qword_ptr(r15 + 0x40))?;
                        a.lock().cmpxchg(qword_ptr(r15 + 0x40), R64[i])
                    }
                    7 => match w {
                        8 => a.lock().add(mem(r, 8), R64[i]),
                        4 => a.lock().inc(mem(r, 4)),
                        _ => a.lock().neg(mem(r, 2)),
                    },
                    8 => {
                        a.push(rbp)?;
                        a.mov(rbp, rsp)?;
                        a.push(R64[i])?;
                        a.leave()
                    }
                    _ => a.lock().xor(mem(r, 1), R8X[i]),
                }
            }
            29 => {
                // Divides: some fault (#DE halts in its stub on both engines).
                let on_mem = r.chance(30);
                let m = mem(r, w);
                if r.chance(70) {
                    // Keep the quotient small most of the time.
                    a.xor(edx, edx)?;
                }
                if r.chance(50) {
                    if on_mem {
                        a.div(m)
                    } else {
                        r_!(a, div, w, i, hi)
                    }
                } else if on_mem {
                    a.idiv(m)
                } else {
                    r_!(a, idiv, w, i, hi)
                }
            }
            24 => {
                // Consume the flags right after producing them.
                alu_forms!(a, r, sub, w, false)?;
                let cc = r.below(16);
                if r.chance(50) {
                    cc_set(a, cc, r)
                } else {
                    cc_cmov(a, cc, r)
                }
            }
            25 => {
                a.pushfq()?;
                a.pop(R64[i])
            }
            26 => {
                let m = qword_ptr(r15 + (r.below(0x100) as i32 * 8)).fs();
                let _ = m;
                // FS-relative access: FS.base is the data area.
                if r.chance(50) {
                    a.mov(R64[i], qword_ptr(0x10 + r.below(0x100) as i32 * 8).fs())
                } else {
                    a.add(qword_ptr(0x20).fs(), R64[i])
                }
            }
            _ => alu_forms!(a, r, add, w, false),
        }
    }

    /// Generate a program: straight-line code, or with forward branches, a loop and a call.
    fn program(seed: u64, branchy: bool) -> Vec<u8> {
        let r = &mut Rng::new(seed);
        let mut a = CodeAssembler::new(64).expect("assembler");
        let mut depth = 0u32;
        let n = 4 + r.below(if branchy { 40 } else { 60 });
        let mut sub = a.create_label();
        let mut skip_sub = a.create_label();
        let mut used_sub = false;
        let mut k = 0;
        while k < n {
            if branchy && r.chance(15) {
                match r.below(6) {
                    4 => {
                        // LOOP/LOOPE/LOOPNE with RCX saved around a random body.
                        let mut top = a.create_label();
                        a.mov(ecx, 1 + r.below(12) as u32).expect("asm");
                        a.set_label(&mut top).expect("asm");
                        a.push(rcx).expect("asm");
                        let mut d2 = depth;
                        for _ in 0..1 + r.below(4) {
                            straight_no_stack(&mut a, r, &mut d2);
                        }
                        a.pop(rcx).expect("asm");
                        match r.below(3) {
                            0 => a.loop_(top),
                            1 => a.loope(top),
                            _ => a.loopne(top),
                        }
                        .expect("asm");
                    }
                    5 => {
                        let mut skip = a.create_label();
                        a.jrcxz(skip).expect("asm");
                        let mut d2 = depth;
                        straight_no_stack(&mut a, r, &mut d2);
                        a.set_label(&mut skip).expect("asm");
                    }
                    0 | 1 => {
                        // A flag producer, then a forward conditional branch over a few
                        // instructions.
                        let mut skip = a.create_label();
                        if r.chance(60) {
                            let w = width(r);
                            alu_forms!(a, r, cmp, w, false).expect("asm");
                        }
                        cc_jump(&mut a, r.below(16), skip).expect("asm");
                        let mut d2 = depth;
                        for _ in 0..1 + r.below(3) {
                            straight_no_stack(&mut a, r, &mut d2);
                        }
                        a.set_label(&mut skip).expect("asm");
                    }
                    2 => {
                        // A counted loop whose body does not touch R13.
                        let mut top = a.create_label();
                        a.mov(r13d, 1 + r.below(20) as u32).expect("asm");
                        a.set_label(&mut top).expect("asm");
                        let mut d2 = depth;
                        for _ in 0..1 + r.below(5) {
                            straight_no_stack(&mut a, r, &mut d2);
                        }
                        if r.chance(50) {
                            a.dec(r13d).expect("asm");
                            a.jnz(top).expect("asm");
                        } else {
                            a.sub(r13, 1).expect("asm");
                            a.ja(top).expect("asm");
                        }
                    }
                    3 if r.chance(30) => {
                        // A subroutine that returns past the two bytes after the CALL (the
                        // JIT's inlined RET must notice the changed return address).
                        a.call(skip_sub).expect("asm");
                        a.ud2().expect("asm");
                        used_sub = true;
                    }
                    3 if r.chance(40) => {
                        // A forward JMP over code that never runs.
                        let mut over = a.create_label();
                        a.jmp(over).expect("asm");
                        a.ud2().expect("asm");
                        a.set_label(&mut over).expect("asm");
                    }
                    _ => {
                        a.call(sub).expect("asm");
                        used_sub = true;
                    }
                }
            } else {
                straight(&mut a, r, &mut depth).expect("asm");
            }
            k += 1;
        }
        a.hlt().expect("asm");
        if used_sub || branchy {
            a.set_label(&mut sub).expect("asm");
            let mut d2 = 0;
            for _ in 0..1 + r.below(5) {
                straight_no_stack(&mut a, r, &mut d2);
            }
            a.ret().expect("asm");
            a.set_label(&mut skip_sub).expect("asm");
            straight_no_stack(&mut a, r, &mut d2);
            a.add(qword_ptr(rsp), 2).expect("asm");
            a.ret().expect("asm");
        }
        a.assemble(CODE).expect("assemble")
    }

    /// A random instruction that leaves the stack depth unchanged.
    fn straight_no_stack(a: &mut CodeAssembler, r: &mut Rng, depth: &mut u32) {
        loop {
            let mut probe = *depth;
            let save = r.0;
            let mut trial = CodeAssembler::new(64).expect("assembler");
            straight(&mut trial, r, &mut probe).expect("asm");
            let bytes = trial.assemble(CODE).expect("assemble");
            let i = Decoder::with_ip(64, &bytes, CODE, DecoderOptions::NONE).decode();
            let stack = matches!(
                i.mnemonic(),
                iced_x86::Mnemonic::Push | iced_x86::Mnemonic::Pop | iced_x86::Mnemonic::Pushfq
            );
            if !stack {
                r.0 = save;
                straight(a, r, depth).expect("asm");
                return;
            }
        }
    }

    fn random_state(seed: u64) -> (cpu::CpuState, Vec<u8>) {
        let mut r = Rng::new(seed ^ 0x5555);
        let mut st = long_mode_state();
        for k in 0..16 {
            st.gpr[k] = r.value();
        }
        st.gpr[4] = STACK;
        st.gpr[15] = DATA;
        st.gpr[14] = DATA + 0x800;
        st.gpr[12] = INDEX;
        st.seg[cpu::state::sreg::FS].base = DATA;
        st.rflags = cpu::state::flags::FIXED1 | (r.next() & cpu::state::flags::STATUS);
        let data: Vec<u8> = (0..0x1000).map(|_| r.next() as u8).collect();
        (st, data)
    }

    fn listing(code: &[u8]) -> String {
        let mut dec = Decoder::with_ip(64, code, CODE, DecoderOptions::NONE);
        let mut f = IntelFormatter::new();
        let mut out = String::new();
        while dec.can_decode() {
            let i = dec.decode();
            let mut s = String::new();
            f.format(&i, &mut s);
            out.push_str(&format!("  {:x}  {s}\n", i.ip()));
        }
        out
    }

    /// Compare one case; returns the instructions generated code retired and whether the program
    /// ended in an exception stub.
    fn check(seed: u64, branchy: bool) -> Result<(u64, bool), String> {
        check_with(seed, branchy, jit::JitOptions::eager())
    }

    fn check_with(seed: u64, branchy: bool, opts: jit::JitOptions) -> Result<(u64, bool), String> {
        let code = program(seed, branchy);
        let (st, data) = random_state(seed);
        let ram_i = guest(&code, &data);
        let ram_j = guest(&code, &data);
        let (a, ea) = run_interp(ram_i.clone(), &st);
        let (b, eb, v) = run_jit_with(ram_j.clone(), &st, opts);
        let mut diffs = diff_states(&a, &b);
        if ea != eb {
            diffs.push(format!("exit {ea:?} vs {eb:?}"));
        }
        diffs.extend(memory_diffs(
            &ram_i,
            &ram_j,
            &[
                ("data", DATA, 0x1000usize),
                ("stack", STACK - 0x1000, 0x1000),
            ],
        ));
        if !diffs.is_empty() {
            return Err(format!(
                "seed {seed} (branchy: {branchy}): interpreter vs JIT:\n  {}\nprogram:\n{}",
                diffs.join("\n  "),
                listing(&code)
            ));
        }
        Ok((
            jit_instructions(&v),
            b.rip >= STUBS && b.rip < STUBS + 0x1000,
        ))
    }

    fn run_cases(first: u64, n: u64, branchy: bool) {
        let mut jit_insns = 0;
        let mut faulted = 0;
        let mut failures = Vec::new();
        for seed in first..first + n {
            match check(seed, branchy) {
                Ok((k, f)) => {
                    jit_insns += k;
                    faulted += u64::from(f);
                }
                Err(e) => {
                    failures.push(e);
                    if failures.len() >= 3 {
                        break;
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} case(s) differ:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
        eprintln!(
            "{n} cases ({faulted} ended in an exception), {jit_insns} instructions retired by generated code"
        );
        assert!(jit_insns > n, "the JIT ran almost nothing");
    }

    #[test]
    fn test_diff_straight_line() {
        run_cases(1, cases(1200), false);
    }

    #[test]
    fn test_diff_branchy() {
        run_cases(100_000, cases(1000), true);
    }

    #[test]
    fn test_diff_tiered() {
        // Blocks run on the interpreter for their first two executions, then translated:
        // loops switch engines in the middle.
        let opts = jit::JitOptions {
            hot_threshold: 3,
            ..jit::JitOptions::default()
        };
        let mut failures = Vec::new();
        for seed in 200_000..200_000 + cases(300) {
            if let Err(e) = check_with(seed, true, opts) {
                failures.push(e);
                if failures.len() >= 3 {
                    break;
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
