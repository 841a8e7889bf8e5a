//! Differential testing of the JIT's native SSE2 lowerings (`lower_sse.rs`,
//! `lower_sse_int.rs`) against the reference interpreter (`cpu/src/interp/sse`): random
//! programs of moves (aligned, unaligned, misaligned, page-crossing, into a page that is not
//! present or not writable), MOVD/MOVQ, logic, compares, PMOVMSKB, min/max, add/sub,
//! unpacks, shuffles and shifts, with counted loops, interpreter fallbacks in between, and
//! the availability faults (CR0.EM, CR0.TS, CR4.OSFXSR clear, and CR0.TS set by a MOV to CR0
//! in the middle of the program). The final states (XMM registers included) and memory
//! must be identical.
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
    use cpu::state::cr;

    const XMM: [AsmRegisterXmm; 16] = [
        xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13,
        xmm14, xmm15,
    ];
    /// GPRs the programs may change (R13 is the loop counter, R14/R15 memory bases).
    const R64: [AsmRegister64; 8] = [rax, rcx, rdx, rbx, rsi, rdi, r8, r9];
    const R32: [AsmRegister32; 8] = [eax, ecx, edx, ebx, esi, edi, r8d, r9d];

    /// A second data area in the 4 KiB-mapped first 2 MiB: page `EDGE` is plain RAM, the
    /// page after it is present, absent or read-only depending on the case.
    const EDGE: u64 = 0x1fe000;

    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x3c6e_f372_fe94_f82b)
        }
        fn next(&mut self) -> u64 {
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
        /// A byte that makes compares, min/max and sign masks interesting.
        fn byte(&mut self) -> u8 {
            match self.below(6) {
                0 => 0,
                1 => 0xff,
                2 => 0x80,
                3 => 0x7f,
                _ => self.next() as u8,
            }
        }
    }

    fn x(r: &mut Rng) -> AsmRegisterXmm {
        XMM[r.below(16) as usize]
    }

    /// A memory operand: mostly 16-byte aligned in the main data area, sometimes misaligned,
    /// sometimes near the end of page `EDGE` (crossing into the next page).
    fn mem(r: &mut Rng, size: u64) -> AsmMemoryOperand {
        match r.below(100) {
            0..=89 => {
                let d = (r.below(0x1ff0 / size) * size) as i32;
                r15 + d
            }
            90..=93 => r15 + r.below(0x1ff0) as i32,
            94..=96 => r15 + r12 * 2 + (r.below(0x100) as i32 & !7),
            _ => {
                // Around the end of page EDGE: in it, crossing, or in the next page.
                let d = 0xfe0 + r.below(0x30) as i32;
                let d = if r.chance(50) {
                    d & !(size as i32 - 1)
                } else {
                    d
                };
                r14 + d
            }
        }
    }

    fn one(a: &mut CodeAssembler, r: &mut Rng) -> Result<(), IcedError> {
        let (d, s) = (x(r), x(r));
        match r.below(40) {
            0 => a.movaps(d, s),
            1 => a.movdqa(d, xmmword_ptr(mem(r, 16))),
            2 => a.movdqu(d, xmmword_ptr(mem(r, 1))),
            3 => a.movaps(xmmword_ptr(mem(r, 16)), s),
            4 => a.movups(xmmword_ptr(mem(r, 1)), s),
            5 => a.movdqu(xmmword_ptr(mem(r, 1)), s),
            6 => a.movdqa(xmmword_ptr(mem(r, 16)), s),
            7 => a.movapd(d, xmmword_ptr(mem(r, 16))),
            8 => a.movupd(d, xmmword_ptr(mem(r, 1))),
            9 => match r.below(8) {
                0 => a.movd(d, R32[r.below(8) as usize]),
                1 => a.movq(d, R64[r.below(8) as usize]),
                2 => a.movd(R32[r.below(8) as usize], s),
                3 => a.movq(R64[r.below(8) as usize], s),
                4 => a.movd(d, dword_ptr(mem(r, 4))),
                5 => a.movq(d, qword_ptr(mem(r, 8))),
                6 => a.movd(dword_ptr(mem(r, 4)), s),
                _ => a.movq(qword_ptr(mem(r, 8)), s),
            },
            10 => a.movq(d, s),
            11 => a.pxor(d, s),
            12 => a.pxor(d, d),
            13 => a.por(d, s),
            14 => a.pand(d, xmmword_ptr(mem(r, 16))),
            15 => a.pandn(d, s),
            16 => match r.below(6) {
                0 => a.xorps(d, s),
                1 => a.xorpd(d, s),
                2 => a.andps(d, s),
                3 => a.andnps(d, s),
                4 => a.orps(d, xmmword_ptr(mem(r, 16))),
                _ => a.andnpd(d, s),
            },
            17 => a.pcmpeqb(d, s),
            18 => a.pcmpeqb(d, xmmword_ptr(mem(r, 16))),
            19 => match r.below(5) {
                0 => a.pcmpeqw(d, s),
                1 => a.pcmpeqd(d, s),
                2 => a.pcmpgtb(d, s),
                3 => a.pcmpgtw(d, s),
                _ => a.pcmpgtd(d, xmmword_ptr(mem(r, 16))),
            },
            20 | 21 => {
                if r.chance(50) {
                    a.pmovmskb(R32[r.below(8) as usize], s)
                } else {
                    a.pmovmskb(R64[r.below(8) as usize], s)
                }
            }
            22 => a.pminub(d, s),
            23 => a.pmaxub(d, xmmword_ptr(mem(r, 16))),
            24 => match r.below(2) {
                0 => a.pminsw(d, s),
                _ => a.pmaxsw(d, s),
            },
            25 => match r.below(8) {
                0 => a.paddb(d, s),
                1 => a.paddw(d, s),
                2 => a.paddd(d, s),
                3 => a.paddq(d, xmmword_ptr(mem(r, 16))),
                4 => a.psubb(d, s),
                5 => a.psubw(d, s),
                6 => a.psubd(d, s),
                _ => a.psubq(d, s),
            },
            26 => match r.below(8) {
                0 => a.punpcklbw(d, s),
                1 => a.punpcklwd(d, s),
                2 => a.punpckldq(d, s),
                3 => a.punpcklqdq(d, xmmword_ptr(mem(r, 16))),
                4 => a.punpckhbw(d, s),
                5 => a.punpckhwd(d, s),
                6 => a.punpckhdq(d, s),
                _ => a.punpckhqdq(d, s),
            },
            27 => match r.below(4) {
                0 => a.unpcklps(d, s),
                1 => a.unpckhps(d, s),
                2 => a.unpcklpd(d, s),
                _ => a.unpckhpd(d, s),
            },
            28 => {
                let imm = r.below(256) as i32;
                if r.chance(70) {
                    a.pshufd(d, s, imm)
                } else {
                    a.pshufd(d, xmmword_ptr(mem(r, 16)), imm)
                }
            }
            29 => {
                let n = if r.chance(80) {
                    r.below(16)
                } else {
                    r.below(256)
                } as i32;
                if r.chance(50) {
                    a.pslldq(d, n)
                } else {
                    a.psrldq(d, n)
                }
            }
            30 => {
                let n = if r.chance(70) {
                    r.below(16)
                } else {
                    r.below(256)
                } as i32;
                match r.below(8) {
                    0 => a.psllw(d, n),
                    1 => a.pslld(d, n),
                    2 => a.psllq(d, n),
                    3 => a.psrlw(d, n),
                    4 => a.psrld(d, n),
                    5 => a.psrlq(d, n),
                    6 => a.psraw(d, n),
                    _ => a.psrad(d, n),
                }
            }
            31 => a.movntdq(xmmword_ptr(mem(r, 16)), s),
            // Interpreter fallbacks between translated instructions.
            32 => a.movss(d, s),
            33 => a.paddusb(d, s),
            // Integer instructions the SSE results feed.
            34 => a.add(R64[r.below(8) as usize], R64[r.below(8) as usize]),
            35 => a.mov(R64[r.below(8) as usize], qword_ptr(mem(r, 8))),
            36 => a.mov(qword_ptr(mem(r, 8)), R64[r.below(8) as usize]),
            37 if r.chance(5) => {
                // CR0.TS set in the middle of the program: the next SSE instruction is #NM.
                a.mov(rax, cr0)?;
                a.or(rax, 8)?;
                a.mov(cr0, rax)
            }
            38 => a.movdqa(d, xmmword_ptr(mem(r, 16))),
            _ => a.movdqu(d, xmmword_ptr(r15 + r.below(0x1ff0) as i32)),
        }
    }

    fn program(seed: u64) -> Vec<u8> {
        let r = &mut Rng::new(seed);
        let mut a = CodeAssembler::new(64).expect("assembler");
        let n = 4 + r.below(40);
        for _ in 0..n {
            if r.chance(10) {
                // A counted loop: the loop proper reuses the block's availability check.
                let mut top = a.create_label();
                a.mov(r13d, 1 + r.below(6) as u32).expect("asm");
                a.set_label(&mut top).expect("asm");
                for _ in 0..1 + r.below(5) {
                    one(&mut a, r).expect("asm");
                }
                a.dec(r13d).expect("asm");
                a.jnz(top).expect("asm");
            } else if r.chance(8) {
                // A conditional branch on an SSE result.
                let mut skip = a.create_label();
                a.pmovmskb(eax, x(r)).expect("asm");
                a.test(eax, eax).expect("asm");
                a.jz(skip).expect("asm");
                one(&mut a, r).expect("asm");
                a.set_label(&mut skip).expect("asm");
            } else {
                one(&mut a, r).expect("asm");
            }
        }
        a.hlt().expect("asm");
        a.assemble(CODE).expect("assemble")
    }

    /// The start state, the main data area's contents and the next page's mapping (PTE).
    fn random_state(seed: u64) -> (cpu::CpuState, Vec<u8>, u64) {
        let r = &mut Rng::new(seed ^ 0xaaaa);
        let mut st = long_mode_state();
        for k in 0..16 {
            st.gpr[k] = r.next();
        }
        st.gpr[4] = STACK;
        st.gpr[15] = DATA;
        st.gpr[14] = EDGE;
        st.gpr[12] = 0x40;
        st.cr4 |= cr::CR4_OSFXSR;
        match r.below(40) {
            0 => st.cr0 |= cr::CR0_TS,
            1 => st.cr0 |= cr::CR0_EM,
            2 => st.cr4 &= !cr::CR4_OSFXSR,
            _ => {}
        }
        for k in 0..16 {
            for b in 0..16 {
                st.fpu.xmm[k][b] = r.byte();
            }
        }
        let data: Vec<u8> = (0..0x2000).map(|_| r.byte()).collect();
        let next = EDGE + 0x1000;
        let pte = match r.below(4) {
            0 => 0,        // not present
            1 => next | 1, // read-only
            _ => next | 3, // writable
        };
        (st, data, pte)
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

    fn setup(code: &[u8], data: &[u8], pte: u64, edge: &[u8]) -> cpu::GuestRam {
        let ram = guest(code, data);
        assert!(ram.write(EDGE, edge));
        let slot = PT + ((EDGE + 0x1000) >> 12) * 8;
        assert!(ram.write(slot, &pte.to_le_bytes()));
        ram
    }

    /// One case: Ok((instructions retired by generated code, ended in an exception stub)).
    fn check(seed: u64, opts: jit::JitOptions) -> Result<(u64, bool), String> {
        let code = program(seed);
        let (st, data, pte) = random_state(seed);
        let edge: Vec<u8> = (0..0x2000u64).map(|k| (k * 7 + seed) as u8).collect();
        let ram_i = setup(&code, &data, pte, &edge);
        let ram_j = setup(&code, &data, pte, &edge);
        let (a, ea) = run_interp(ram_i.clone(), &st);
        let (b, eb, v) = run_jit_with(ram_j.clone(), &st, opts);
        let mut diffs = diff_states(&a, &b);
        for k in 0..16 {
            if a.fpu.xmm[k] != b.fpu.xmm[k] {
                diffs.push(format!(
                    "xmm{k}: {:032x} vs {:032x}",
                    u128::from_le_bytes(a.fpu.xmm[k]),
                    u128::from_le_bytes(b.fpu.xmm[k])
                ));
            }
        }
        if ea != eb {
            diffs.push(format!("exit {ea:?} vs {eb:?}"));
        }
        diffs.extend(memory_diffs(
            &ram_i,
            &ram_j,
            &[
                ("data", DATA, 0x2000usize),
                ("edge", EDGE, 0x2000),
                ("stack", STACK - 0x1000, 0x1000),
            ],
        ));
        if !diffs.is_empty() {
            return Err(format!(
                "seed {seed}: interpreter vs JIT:\n  {}\nprogram:\n{}",
                diffs.join("\n  "),
                listing(&code)
            ));
        }
        Ok((
            jit_instructions(&v),
            b.rip >= STUBS && b.rip < STUBS + 0x1000,
        ))
    }

    fn run_cases(first: u64, n: u64, opts: jit::JitOptions) {
        let mut jit_insns = 0;
        let mut faulted = 0;
        let mut failures = Vec::new();
        for seed in first..first + n {
            match check(seed, opts) {
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
        assert!(jit_insns > 4 * n, "the JIT ran almost nothing");
        assert!(faulted > n / 20, "too few cases reached a fault");
        assert!(faulted < n, "every case faulted");
    }

    /// A glibc-like string loop (unaligned loads, compare, mask, logic, aligned store) runs
    /// entirely in generated code (the final HLT is the only fallback step), and the result
    /// matches the interpreter.
    #[test]
    fn test_sse_string_loop_runs_without_fallbacks() {
        let code = asm(|a| {
            let mut top = a.create_label();
            a.mov(r13d, 200u32)?;
            a.pxor(xmm1, xmm1)?;
            a.set_label(&mut top)?;
            a.movdqu(xmm0, xmmword_ptr(r15 + r12 + 3))?;
            a.pcmpeqb(xmm0, xmm1)?;
            a.pmovmskb(eax, xmm0)?;
            a.por(xmm2, xmm0)?;
            a.pminub(xmm3, xmmword_ptr(r15 + r12))?;
            a.movdqa(xmmword_ptr(r15 + 0x1000), xmm3)?;
            a.add(rbx, rax)?;
            a.add(r12, 16)?;
            a.and(r12, 0xff0)?;
            a.dec(r13d)?;
            a.jnz(top)?;
            a.hlt()
        });
        let (mut st, data, _) = random_state(7);
        st.cr0 &= !(cr::CR0_TS | cr::CR0_EM);
        st.cr4 |= cr::CR4_OSFXSR;
        st.gpr[12] = 0;
        st.gpr[3] = 0;
        let (a, _) = run_interp(guest(&code, &data), &st);
        let ram = guest(&code, &data);
        let (b, _, v) = run_jit(ram, &st);
        assert_eq!(diff_states(&a, &b), Vec::<String>::new());
        assert_eq!(a.fpu.xmm, b.fpu.xmm);
        assert_ne!(
            a.gpr[3], 0,
            "no zero byte found: the test data is not what it should be"
        );
        let stats = cpu::Vcpu::stats(&v).counters;
        let get = |name: &str| stats.iter().find(|(k, _)| k == name).map_or(0, |c| c.1);
        // The final HLT is the only instruction the interpreter runs.
        assert_eq!(get("fallback steps"), 1);
        assert_eq!(get("fallback hlt"), 1);
        assert!(get("jit instructions") > 200 * 10);
    }

    #[test]
    fn test_diff_sse_random() {
        run_cases(1, cases(3000), jit::JitOptions::eager());
    }

    #[test]
    fn test_diff_sse_tiered() {
        let opts = jit::JitOptions {
            hot_threshold: 3,
            ..jit::JitOptions::default()
        };
        run_cases(500_000, cases(600), opts);
    }
}
