//! Ground truth from silicon (design.md): integer instructions run natively on the host CPU and
//! on the interpreter from the same bytes and inputs; every GPR, the status flags and DF, and
//! a scratch memory buffer must agree, except flags the SDM (Vol. 2, per instruction) calls
//! undefined. Faulting divides run on the interpreter only and must deliver #DE.
//!
//! Seed: `VX_HOST_CHECK_SEED` (default fixed). Failures print the instruction, its bytes and
//! the inputs.

#[path = "host_check/generate.rs"]
mod generate;
#[path = "host_check/harness.rs"]
mod harness;

use generate::*;
use harness::{BASE_OFF, CODE, Case, DATA, Guest, GuestResult, Host, Input, Rng, STACK_OFF};
use iced_x86::Mnemonic;

// ---- running ---------------------------------------------------------------------------------

#[derive(Default, Debug)]
#[allow(dead_code)] // Read through Debug in the summary line.
struct Stats {
    cases: usize,
    runs: usize,
    faults: usize,
}

/// Run every case on `inputs` inputs on both sides and panic with the first mismatches.
fn check(family: &str, cases: &[Case], inputs: usize, rng: &mut Rng) -> Stats {
    let mut host = Host::new();
    let mut guest = Guest::new();
    let mut failures = Vec::new();
    let mut stats = Stats {
        cases: cases.len(),
        ..Stats::default()
    };
    for case in cases {
        let code = host.code(&case.bytes);
        guest.load(case);
        // Report at most one failure per case.
        let before = failures.len();
        for _ in 0..inputs {
            if failures.len() > before {
                break;
            }
            let mut inp = base_input(case, rng);
            fixup(case, &mut inp, rng);
            let de = predicts_de(case, &inp);
            match guest.run(case, &inp) {
                GuestResult::Fault {
                    vector,
                    pushed_rip,
                    out,
                } => {
                    stats.faults += 1;
                    let mut same = out.gpr;
                    same[4] = inp.gpr[4];
                    if !de
                        || vector != 0
                        || pushed_rip != CODE
                        || same != inp.gpr
                        || out.data != inp.data
                    {
                        failures.push(format!(
                            "{} ({:02x?}): interpreter raised vector {vector} (pushed RIP {pushed_rip:#x}), expected {}\n  inputs: {}",
                            case.text,
                            case.bytes,
                            if de { "#DE with state unchanged" } else { "no fault" },
                            harness::describe(case, &inp)
                        ));
                    }
                }
                GuestResult::Done(out) => {
                    if de {
                        failures.push(format!(
                            "{} ({:02x?}): interpreter did not raise #DE\n  inputs: {}",
                            case.text,
                            case.bytes,
                            harness::describe(case, &inp)
                        ));
                        continue;
                    }
                    stats.runs += 1;
                    let native = host.run(&code, case, &inp);
                    if let Some(d) = harness::diff(case, &inp, &native, &out, undefined(case, &inp))
                    {
                        failures.push(d);
                    }
                }
            }
        }
    }
    eprintln!("{family}: {stats:?}");
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(25);
        panic!(
            "{family}: {n} mismatches (seed {:#x}); first ones:\n{}",
            seed(),
            failures.join("\n")
        );
    }
    stats
}

fn run_family(
    family: &str,
    mnemonics: &[Mnemonic],
    per_variant: usize,
    inputs: usize,
    salt: u64,
) -> Stats {
    let mut rng = Rng::new(seed() ^ salt);
    let cases = cases_for(mnemonics, per_variant, &mut rng);
    assert!(!cases.is_empty(), "{family}: no cases generated");
    check(family, &cases, inputs, &mut rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::{GUEST_SCRATCH, HANDLERS};

    #[test]
    fn test_host_alu_matches() {
        use Mnemonic::*;
        run_family(
            "alu",
            &[
                Add, Adc, Sub, Sbb, Cmp, Inc, Dec, Neg, And, Or, Xor, Not, Test,
            ],
            3,
            48,
            1,
        );
    }

    #[test]
    fn test_host_mov_matches() {
        use Mnemonic::*;
        let m = [
            Movsx, Movzx, Movsxd, Cbw, Cwde, Cdqe, Cwd, Cdq, Cqo, Lahf, Sahf, Seto, Setno, Setb,
            Setae, Sete, Setne, Setbe, Seta, Sets, Setns, Setp, Setnp, Setl, Setge, Setle, Setg,
            Cmovo, Cmovno, Cmovb, Cmovae, Cmove, Cmovne, Cmovbe, Cmova, Cmovs, Cmovns, Cmovp,
            Cmovnp, Cmovl, Cmovge, Cmovle, Cmovg,
        ];
        run_family("mov", &m, 2, 40, 2);
    }

    #[test]
    fn test_host_shift_matches() {
        use Mnemonic::*;
        run_family(
            "shift",
            &[Shl, Sal, Shr, Sar, Rol, Ror, Rcl, Rcr, Shld, Shrd],
            6,
            32,
            3,
        );
    }

    #[test]
    fn test_host_muldiv_matches() {
        use Mnemonic::*;
        let s = run_family("muldiv", &[Mul, Imul, Div, Idiv], 6, 200, 4);
        assert!(s.faults > 0, "some divides must fault");
    }

    #[test]
    fn test_host_bit_matches() {
        use Mnemonic::*;
        run_family("bit", &[Bt, Bts, Btr, Btc, Bsf, Bsr, Bswap], 6, 64, 5);
    }

    #[test]
    fn test_host_xchg_matches() {
        use Mnemonic::*;
        run_family(
            "xchg",
            &[Xchg, Xadd, Cmpxchg, Cmpxchg8b, Cmpxchg16b],
            6,
            100,
            6,
        );
    }

    #[test]
    fn test_host_string_matches() {
        let mut rng = Rng::new(seed() ^ 7);
        let mut host = Host::new();
        let mut guest = Guest::new();
        let mut failures = Vec::new();
        let mut runs = 0;
        let cases = string_cases();
        for (kind, size, case) in &cases {
            let code = host.code(&case.bytes);
            guest.load(case);
            for _ in 0..40 {
                let inp = string_input(*kind, *size, case, &mut rng);
                let GuestResult::Done(out) = guest.run(case, &inp) else {
                    failures.push(format!(
                        "{}: interpreter faulted on {}",
                        case.text,
                        harness::describe(case, &inp)
                    ));
                    continue;
                };
                runs += 1;
                let native = host.run(&code, case, &inp);
                if let Some(d) = harness::diff(case, &inp, &native, &out, 0) {
                    failures.push(d);
                }
            }
        }
        eprintln!("string: {} cases, {runs} runs", cases.len());
        if !failures.is_empty() {
            let n = failures.len();
            failures.truncate(25);
            panic!(
                "string: {n} mismatches (seed {:#x}):\n{}",
                seed(),
                failures.join("\n")
            );
        }
    }

    /// A hand-assembled case run only on the interpreter.
    fn interp_case(bytes: &[u8], ptrs: u16) -> (Guest, Case) {
        let mut g = Guest::new();
        let case = Case::from_bytes(bytes.to_vec(), ptrs, None);
        g.load(&case);
        (g, case)
    }

    fn blank_input() -> Input {
        let mut gpr = [0u64; 16];
        gpr[4] = STACK_OFF;
        Input {
            gpr,
            rflags: 0,
            data: (0..DATA).map(|k| (k * 7 + 3) as u8).collect(),
        }
    }

    #[test]
    fn test_rep_stos_restarts_in_batches() {
        // rep stosb with 10000 iterations: more than one batch, same result as one go.
        let (mut g, case) = interp_case(&[0xf3, 0xaa], 1 << RDI);
        let mut inp = blank_input();
        inp.gpr[RCX] = 10000;
        inp.gpr[RDI] = 0x100;
        inp.gpr[RAX] = 0x5a;
        let before = g.interp.instructions();
        let GuestResult::Done(out) = g.run(&case, &inp) else {
            panic!("rep stosb faulted")
        };
        assert!(
            g.interp.instructions() - before >= 3,
            "10000 iterations take several steps"
        );
        assert_eq!(out.gpr[RCX], 0);
        assert_eq!(out.gpr[RDI], 0x100 + 10000);
        assert!(out.data[0x100..0x100 + 10000].iter().all(|&b| b == 0x5a));
        assert_eq!(out.data[0xff], inp.data[0xff]);
        assert_eq!(out.data[0x100 + 10000], inp.data[0x100 + 10000]);
    }

    #[test]
    fn test_rep_movs_fault_keeps_progress() {
        // rep movsb running off the end of mapped memory (4 MiB): #PF with RCX/RSI/RDI
        // describing the bytes already copied and RIP at the instruction.
        let (mut g, case) = interp_case(&[0xf3, 0xa4], 1 << RSI | 1 << RDI);
        let mut inp = blank_input();
        let dst_off = (4u64 << 20) - 16 - GUEST_SCRATCH; // 16 bytes before the unmapped page
        inp.gpr[RCX] = 40;
        inp.gpr[RSI] = 0x100;
        inp.gpr[RDI] = dst_off;
        let GuestResult::Fault {
            vector,
            pushed_rip,
            out,
        } = g.run(&case, &inp)
        else {
            panic!("expected a page fault")
        };
        assert_eq!(vector, 14);
        assert_eq!(pushed_rip, CODE);
        assert_eq!(out.gpr[RCX], 24);
        assert_eq!(out.gpr[RSI], 0x110);
        assert_eq!(out.gpr[RDI], dst_off + 16);
        assert_eq!(g.interp.state().cr2, 4 << 20);
    }

    #[test]
    fn test_cmpxchg16b_misaligned_is_gp() {
        // cmpxchg16b [rbx+8]
        let (mut g, case) = interp_case(&[0x48, 0x0f, 0xc7, 0x4b, 0x08], 1 << 3);
        let mut inp = blank_input();
        inp.gpr[3] = BASE_OFF;
        let GuestResult::Fault {
            vector,
            pushed_rip,
            out,
        } = g.run(&case, &inp)
        else {
            panic!("expected #GP")
        };
        assert_eq!((vector, pushed_rip), (13, CODE));
        assert_eq!(out.data, inp.data);
    }

    #[test]
    fn test_string_fs_override_uses_fs_base() {
        // fs movsb: source at FS.base + RSI, destination at ES:RDI.
        let (mut g, case) = interp_case(&[0x64, 0xa4], 1 << RSI | 1 << RDI);
        let mut inp = blank_input();
        inp.gpr[RSI] = 0x10;
        inp.gpr[RDI] = 0x20;
        let mut st = g.base;
        st.seg[4].base = 0x1000;
        let GuestResult::Done(out) = g.run_from(&case, &inp, &st) else {
            panic!("fs movsb faulted")
        };
        assert_eq!(out.data[0x20], inp.data[0x1010]);
        assert_eq!((out.gpr[RSI], out.gpr[RDI]), (0x11, 0x21));
    }

    #[test]
    fn test_string_address_size_32() {
        // a32 rep movsw in 64-bit mode: ESI/EDI/ECX, upper halves ignored and then cleared.
        let (mut g, case) = interp_case(&[0x67, 0xf3, 0x66, 0xa5], 0);
        let mut inp = blank_input();
        inp.gpr[RSI] = 0xdead_0000_0000_0000 | (GUEST_SCRATCH + 0x100);
        inp.gpr[RDI] = 0xbeef_0000_0000_0000 | (GUEST_SCRATCH + 0x200);
        inp.gpr[RCX] = 0x1234_5678_0000_0003;
        let GuestResult::Done(out) = g.run(&case, &inp) else {
            panic!("a32 movsw faulted")
        };
        assert_eq!(out.gpr[RSI], GUEST_SCRATCH + 0x106);
        assert_eq!(out.gpr[RDI], GUEST_SCRATCH + 0x206);
        assert_eq!(out.gpr[RCX], 0);
        assert_eq!(out.data[0x200..0x206], inp.data[0x100..0x106]);
    }

    #[test]
    fn test_string_address_size_16_wraps() {
        // Compatibility mode (32-bit code), a16 movsb with SI = 0xffff: SI wraps to 0.
        let (mut g, case) = interp_case(&[0x67, 0xa4], 0);
        let mut st = g.base;
        st.seg[1].attr = (st.seg[1].attr & !cpu::state::seg_attr::L) | cpu::state::seg_attr::DB;
        let mut inp = blank_input();
        inp.gpr[RSI] = 0xffff_ffff_0001_ffff;
        inp.gpr[RDI] = 0x0001_0000_0000_0010;
        let GuestResult::Done(_) = g.run_from(&case, &inp, &st) else {
            panic!("a16 movsb faulted")
        };
        let s = g.interp.state();
        assert_eq!(s.gpr[RSI], 0xffff_ffff_0001_0000);
        assert_eq!(s.gpr[RDI], 0x0001_0000_0000_0011);
        let mut b = [0u8; 2];
        assert!(g.ram.read(0xffff, &mut b[..1]));
        assert!(g.ram.read(0x10, &mut b[1..]));
        assert_eq!(b[0], b[1]);
    }

    #[test]
    fn test_ins_outs_through_vmio() {
        // rep outsw from scratch+0x100 (DF=1, going down), then rep insd to scratch+0x200.
        let (mut g, case) = interp_case(&[0xf3, 0x66, 0x6f], 1 << RSI);
        let mut inp = blank_input();
        inp.gpr[RSI] = 0x100;
        inp.gpr[RCX] = 3;
        inp.gpr[RDX] = 0x3f8;
        inp.rflags = DF;
        let GuestResult::Done(out) = g.run(&case, &inp) else {
            panic!("rep outsw faulted")
        };
        assert_eq!(out.gpr[RSI], 0x100 - 6);
        let writes = g.io.writes.lock().expect("lock").clone();
        let want: Vec<(u16, Vec<u8>)> = [0x100usize, 0xfe, 0xfc]
            .iter()
            .map(|&o| (0x3f8, inp.data[o..o + 2].to_vec()))
            .collect();
        assert_eq!(writes, want);

        let (mut g, case) = interp_case(&[0xf3, 0x6d], 1 << RDI);
        let mut inp = blank_input();
        inp.gpr[RDI] = 0x200;
        inp.gpr[RCX] = 2;
        inp.gpr[RDX] = 0x71;
        let GuestResult::Done(out) = g.run(&case, &inp) else {
            panic!("rep insd faulted")
        };
        assert_eq!((out.gpr[RDI], out.gpr[RCX]), (0x208, 0));
        let want: Vec<u8> = (0..8u32)
            .map(|n| 0x71 ^ (n as u8).wrapping_mul(7))
            .collect();
        assert_eq!(out.data[0x200..0x208], want[..]);
    }

    #[test]
    fn test_outs_ins_check_io_permission() {
        // CPL 3 with IOPL 0: the TSS I/O bitmap decides. TSS at 0x7000 with RSP0 for the
        // #GP delivery.
        let tss = 0x7000u64;
        let make = |g: &Guest, limit: u32, iopl: u64| {
            let mut st = g.base;
            st.seg[1].selector = 0x2b;
            st.seg[1].attr |= 3 << 5;
            st.seg[2].selector = 0x23;
            st.seg[2].attr |= 3 << 5;
            st.tr = cpu::Segment {
                selector: 0x30,
                base: tss,
                limit,
                attr: 0x8b,
            };
            st.rflags |= iopl << 12;
            st
        };
        let (mut g, case) = interp_case(&[0x6e], 1 << RSI); // outsb
        assert!(
            g.ram
                .write(tss + 4, &(GUEST_SCRATCH + 0xe000).to_le_bytes())
        );
        assert!(g.ram.write(tss + 0x66, &0x68u16.to_le_bytes()));
        let mut inp = blank_input();
        inp.gpr[RSI] = 0x100;
        inp.gpr[RDX] = 0x3f8;
        // No bitmap inside the TSS limit: #GP(0), nothing written, RSI unchanged.
        let st = make(&g, 0x67, 0);
        let GuestResult::Fault {
            vector,
            pushed_rip,
            out,
        } = g.run_from(&case, &inp, &st)
        else {
            panic!("outsb at CPL 3 without permission must fault")
        };
        assert_eq!((vector, pushed_rip, out.gpr[RSI]), (13, CODE, 0x100));
        assert!(g.io.writes.lock().expect("lock").is_empty());
        // A bitmap of zeros covering the port allows it.
        let st = make(&g, 0x68 + 0x3f8 / 8 + 1, 0);
        assert!(matches!(g.run_from(&case, &inp, &st), GuestResult::Done(_)));
        assert_eq!(g.io.writes.lock().expect("lock").len(), 1);
        // The port's bit set denies it again, for insb too (before touching memory).
        assert!(g.ram.write(tss + 0x68 + 0x3f8 / 8, &[1]));
        let (mut g2, ins) = interp_case(&[0x6c], 1 << RDI); // insb
        assert!(g2.ram.write(tss, &[0u8; 0x68]));
        assert!(
            g2.ram
                .write(tss + 4, &(GUEST_SCRATCH + 0xe000).to_le_bytes())
        );
        assert!(g2.ram.write(tss + 0x66, &0x68u16.to_le_bytes()));
        assert!(g2.ram.write(tss + 0x68 + 0x3f8 / 8, &[1]));
        let st = make(&g2, 0x68 + 0x3f8 / 8 + 1, 0);
        inp.gpr[RDI] = 0x200;
        let GuestResult::Fault { vector, out, .. } = g2.run_from(&ins, &inp, &st) else {
            panic!("insb on a denied port must fault")
        };
        assert_eq!(
            (vector, out.gpr[RDI], out.data[0x200]),
            (13, 0x200, inp.data[0x200])
        );
        assert_eq!(*g2.io.reads.lock().expect("lock"), 0);
        // IOPL 3 needs no bitmap.
        let st = make(&g2, 0x67, 3);
        let GuestResult::Done(out) = g2.run_from(&ins, &inp, &st) else {
            panic!("IOPL 3 allows insb")
        };
        assert_eq!((out.gpr[RDI], out.data[0x200]), (0x201, 0xf8));
    }

    #[test]
    fn test_div_fault_vector_lands_on_handler() {
        // div cl with CL = 0: vector 0, handler at HANDLERS.
        let (mut g, case) = interp_case(&[0xf6, 0xf1], 0);
        let inp = blank_input();
        let r = g.run(&case, &inp);
        assert!(
            matches!(
                r,
                GuestResult::Fault {
                    vector: 0,
                    pushed_rip: CODE,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(g.interp.state().rip, HANDLERS);
    }
}
