//! No guest behaviour panics the host: ROMs full of random bytes — executed from the reset
//! vector in real mode, and after prologues into 32-bit protected mode, 64-bit ring 0 and
//! ring 3, and compatibility mode (with exception handlers that skip a byte and carry on,
//! so the decoder sees many instructions) — must
//! always end with a valid status: debug-exit, power-off, timeout, triple fault or halt.
//! Seeds are fixed and printed on failure.

mod common;

#[cfg(test)]
mod tests {
    use crate::common;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use machine::StopReason;
    use test_roms::asm::layout::{self, sel};
    use test_roms::asm::{Asm, R, RamInit, RomBuilder, boot, tables};
    use test_roms::rng::Rng;

    use iced_x86::code_asm::*;

    /// In-process runs.
    const IN_PROCESS: u64 = 300;
    /// Runs of the `vx` binary.
    const PROCESS: u64 = 20;
    /// Time each in-process guest gets.
    const TIMEOUT: Duration = Duration::from_millis(100);
    /// Exceptions the skip handlers take before ending the run.
    const MAX_EXCEPTIONS: u32 = 3000;
    /// Random code size after a prologue.
    const BLOB: usize = 16 * 1024;

    fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.next_u64() as u8).collect()
    }

    /// Where the random code starts (its own piece, so its address is known).
    const BLOB_SYM: &str = "random_code";

    /// Exception stubs for vectors 0-31 that step over one byte of the faulting code and
    /// return, on the IST1 stack (random code may have wrecked RSP); after MAX_EXCEPTIONS, end
    /// with debug-exit 0x10.
    fn skip_handlers64(a: &mut Asm) -> R {
        let mut common = a.create_label();
        for v in 0..32u8 {
            a.export(&format!("skip64.{v}"))?;
            if !test_roms::asm::faults::WITH_ERROR_CODE.contains(&v) {
                a.push(0)?;
            }
            a.jmp(common)?;
        }
        a.set_label(&mut common)?;
        a.add(rsp, 8)?;
        a.inc(dword_ptr(layout::VAR_COUNT))?;
        let mut more = a.create_label();
        a.cmp(dword_ptr(layout::VAR_COUNT), MAX_EXCEPTIONS)?;
        a.jb(more)?;
        a.mov(al, 0x10)?;
        a.out(0xf4, al)?;
        a.hlt()?;
        a.set_label(&mut more)?;
        a.inc(qword_ptr(rsp))?;
        a.iretq()
    }

    fn skip_handlers32(a: &mut Asm) -> R {
        let mut common = a.create_label();
        for v in 0..32u8 {
            a.export(&format!("skip32.{v}"))?;
            if !test_roms::asm::faults::WITH_ERROR_CODE.contains(&v) {
                a.push(0)?;
            }
            a.jmp(common)?;
        }
        a.set_label(&mut common)?;
        a.add(esp, 4)?;
        a.inc(dword_ptr(layout::VAR_COUNT as u32))?;
        let mut more = a.create_label();
        a.cmp(dword_ptr(layout::VAR_COUNT as u32), MAX_EXCEPTIONS)?;
        a.jb(more)?;
        a.mov(al, 0x10)?;
        a.out(0xf4, al)?;
        a.hlt()?;
        a.set_label(&mut more)?;
        a.inc(dword_ptr(esp))?;
        a.iretd()
    }

    /// Where the random code runs under long mode.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Where {
        /// 64-bit code, ring 0.
        Ring0,
        /// 64-bit code, ring 3 (user pages, IOPL 0).
        Ring3,
        /// A 32-bit compatibility-mode code segment, ring 0.
        Compat,
    }

    /// Random bytes run under long mode (with or without the skip handlers).
    fn long_mode_rom(rng: &mut Rng, handlers: bool, place: Where) -> Vec<u8> {
        let mut rom = RomBuilder::new("random/long");
        let mut pt = tables::PageTables::new(tables::Paging::Level4);
        pt.identity(0, 1 << 30, 21, tables::pte::RW | tables::pte::US);
        boot::standard_long(&mut rom, &pt, "enter", false);
        if handlers {
            rom.code64("skip64", skip_handlers64);
            for v in 0..32u8 {
                rom.ram(tables::idt64_entry(v, &format!("skip64.{v}"), 1, 0));
            }
            rom.ram(RamInit::Bytes(
                layout::TSS_ADDR,
                tables::tss64(layout::STACK_TOP, &[layout::IST1_TOP]),
            ));
        }
        rom.code64("enter", move |a| {
            if handlers {
                a.mov(ax, u32::from(sel::TSS))?;
                a.ltr(ax)?;
            }
            let t = a.sym(BLOB_SYM);
            match place {
                Where::Ring0 => a.jmp(t),
                Where::Ring3 => {
                    a.push(i32::from(sel::USER_DATA))?;
                    a.push(layout::USER_STACK_TOP as i32)?;
                    a.push(2)?;
                    a.push(i32::from(sel::USER_CODE64))?;
                    a.push(t as i32)?;
                    a.iretq()
                }
                Where::Compat => {
                    a.push(i32::from(sel::CODE32))?;
                    a.push(t as i32)?;
                    a.retfq()
                }
            }
        });
        rom.data(BLOB_SYM, 16, random_bytes(rng, BLOB));
        rom.build("").image
    }

    /// Random bytes run in 32-bit protected mode with the skip handlers.
    fn prot_mode_rom(rng: &mut Rng) -> Vec<u8> {
        let mut rom = RomBuilder::new("random/prot32");
        boot::standard_prot32(&mut rom, "enter");
        rom.code32("skip32", skip_handlers32);
        for v in 0..32u8 {
            rom.ram(tables::idt32_entry(v, &format!("skip32.{v}"), 0));
        }
        rom.code32("enter", |a| {
            let t = a.sym(BLOB_SYM);
            a.jmp(t)
        });
        rom.data(BLOB_SYM, 16, random_bytes(rng, BLOB));
        rom.build("").image
    }

    /// Seed `seed`'s ROM: kind 0 is 64 KiB of random bytes from the reset vector on; the others
    /// put random code after a prologue, in 64-bit ring 0 or ring 3, compatibility mode or
    /// 32-bit protected mode.
    fn random_rom(seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        match seed % 6 {
            0 => random_bytes(&mut rng, 64 * 1024),
            1 => long_mode_rom(&mut rng, true, Where::Ring0),
            2 => prot_mode_rom(&mut rng),
            3 => long_mode_rom(&mut rng, true, Where::Ring3),
            4 => long_mode_rom(&mut rng, true, Where::Compat),
            _ => long_mode_rom(&mut rng, false, Where::Ring0),
        }
    }

    fn valid(reason: StopReason) -> bool {
        matches!(
            reason,
            StopReason::DebugExit(_)
                | StopReason::PowerOff
                | StopReason::Timeout
                | StopReason::TripleFault
                | StopReason::HaltedForever
        )
    }

    #[test]
    fn test_random_roms_in_process_never_panic() {
        let next = Arc::new(Mutex::new(0u64));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let reasons = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u32>::new()));
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)
            .min(16);
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, failures, reasons) = (next.clone(), failures.clone(), reasons.clone());
                std::thread::spawn(move || {
                    loop {
                        let seed = {
                            let mut n = next.lock().expect("seed counter");
                            if *n >= IN_PROCESS {
                                return;
                            }
                            *n += 1;
                            *n - 1
                        };
                        let image = random_rom(seed);
                        // A panic in the engine ends this run's thread, not the worker.
                        let run = std::thread::spawn(move || common::run_image(&image, TIMEOUT));
                        match run.join() {
                            Ok(out) => {
                                let key = format!("{:?}", out.reason)
                                    .split('(')
                                    .next()
                                    .unwrap_or("?")
                                    .to_string();
                                *reasons.lock().expect("reasons").entry(key).or_default() += 1;
                                if !valid(out.reason) {
                                    failures.lock().expect("failures").push(format!(
                                        "seed {seed}: stopped with {:?}",
                                        out.reason
                                    ));
                                }
                            }
                            Err(_) => failures
                                .lock()
                                .expect("failures")
                                .push(format!("seed {seed}: the host panicked")),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        eprintln!("random ROMs: {:?}", reasons.lock().expect("reasons"));
        let f = failures.lock().expect("failures");
        assert!(
            f.is_empty(),
            "{} random ROM(s) broke the host:\n{}",
            f.len(),
            f.join("\n")
        );
    }

    #[test]
    fn test_random_roms_in_the_binary_end_with_valid_statuses() {
        let handles: Vec<_> = (0..PROCESS)
            .map(|k| {
                std::thread::spawn(move || {
                    let seed = 10_000 + k;
                    let image = random_rom(seed);
                    let f = common::TempFile::new(&format!("random-{seed}.rom"), &image);
                    let r = common::vx(&[
                        "run",
                        "--accel",
                        "interp",
                        "--bios",
                        &f.arg(),
                        "--timeout",
                        "0.3",
                        "--serial",
                        "none",
                    ]);
                    let ok = matches!(r.status, 0 | 3 | 124)
                        || (r.status > 0 && r.status < 256 && r.status % 2 == 1);
                    if !ok || r.stderr.contains("panicked") {
                        Some(format!(
                            "seed {seed}: status {} stderr {}",
                            r.status, r.stderr
                        ))
                    } else {
                        None
                    }
                })
            })
            .collect();
        let failures: Vec<String> = handles
            .into_iter()
            .filter_map(|h| h.join().expect("run thread"))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
