//! Every test ROM (`test_roms::all()`) and the demo, run in-process on the interpreter: each
//! must stop through the debug-exit port with status 0 and print exactly its expected text.

mod common;

#[cfg(test)]
mod tests {
    use crate::common;
    use std::time::Duration;

    use machine::StopReason;

    const TIMEOUT: Duration = Duration::from_secs(20);

    #[test]
    fn test_modes_roms() {
        common::check_roms(test_roms::modes::all(), TIMEOUT);
    }

    #[test]
    fn test_paging_roms() {
        common::check_roms(test_roms::paging::all(), TIMEOUT);
    }

    #[test]
    fn test_exceptions_roms() {
        common::check_roms(test_roms::exceptions::all(), TIMEOUT);
    }

    #[test]
    fn test_privilege_roms() {
        common::check_roms(test_roms::privilege::all(), TIMEOUT);
    }

    #[test]
    fn test_families_roms() {
        common::check_roms(test_roms::families::all(), TIMEOUT);
    }

    #[test]
    fn test_demo_narrates_and_powers_off() {
        let rom = test_roms::demo_rom();
        let out = common::run_image(&rom.image, TIMEOUT);
        assert_eq!(
            out.reason,
            StopReason::PowerOff,
            "serial:\n{}\n{}",
            out.serial,
            out.dump
        );
        assert_eq!(
            out.serial,
            rom.expected_serial(),
            "{}",
            common::first_difference(&out.serial.replace("\r\n", "\n"), &rom.expected)
        );
        assert!(
            out.elapsed < Duration::from_secs(2),
            "the demo took {:?}",
            out.elapsed
        );
        assert_eq!(test_roms::demo(), rom.image);
    }

    #[test]
    fn test_all_lists_every_area_with_unique_names() {
        let all = test_roms::all();
        let mut names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate ROM names");
        for r in &all {
            assert!(
                r.image.len() == 64 * 1024 || r.image.len() == 128 * 1024,
                "{}: {} bytes",
                r.name,
                r.image.len()
            );
            assert!(r.expected.ends_with("all checks passed\n"), "{}", r.name);
        }
    }

    /// `VX_SHOW_ROM=families/alu cargo test --test roms show_rom -- --ignored --nocapture`
    /// prints a ROM's serial output and how it stopped (for writing and debugging ROMs);
    /// with `VX_DUMP_ROM=path` it also writes the image there (for `vx run --bios path --trace`).
    #[test]
    #[ignore]
    fn show_rom() {
        let want = std::env::var("VX_SHOW_ROM").unwrap_or_else(|_| "demo".into());
        let mut roms = test_roms::all();
        roms.extend(test_roms::pending());
        roms.push(test_roms::demo_rom());
        for rom in roms.into_iter().filter(|r| r.name == want) {
            if let Ok(path) = std::env::var("VX_DUMP_ROM") {
                std::fs::write(&path, &rom.image).expect("write the image");
            }
            let out = common::run_image(&rom.image, TIMEOUT);
            println!("{}", out.serial.replace("\r\n", "\n"));
            println!(
                "--- {:?} after {:?}, {} bytes of image\n{}",
                out.reason,
                out.elapsed,
                rom.image.len(),
                out.dump
            );
        }
    }

    /// The family runners must notice a wrong result: a check whose expected RAX is off by one
    /// fails with "FAIL", the reason, and debug-exit status 1, in every guest mode.
    #[test]
    fn test_family_runner_reports_a_mismatch() {
        use iced_x86::code_asm::*;
        use test_roms::check::{Family, State, fl, snippet};
        use test_roms::host::{HostCpu, Spec};
        let host = HostCpu::new();
        for bits in [64u32, 32, 16] {
            let mut st = State::pattern();
            st.regs[0] = 5;
            st.regs[1] = 7;
            let guest = snippet(bits, |a| a.add(eax, ebx));
            let hostcode = snippet(64, |a| a.add(eax, ebx));
            let good = host.check(Spec {
                name: None,
                bits,
                guest: guest.clone(),
                host: hostcode.clone(),
                input: st,
                flags_mask: fl::ALL,
                ignore: 0,
            });
            assert_eq!(good.expected.regs[0] & 0xffff_ffff, 12);
            let mut bad = good.clone();
            bad.expected.regs[0] ^= 1;
            let mut bad_flags = good.clone();
            bad_flags.expected.rflags ^= u64::from(fl::CF);
            let fam = Family {
                rom: format!("meta/{bits}"),
                title: "meta".into(),
                bits,
                checks: vec![good, bad, bad_flags],
            };
            let rom = fam.build();
            let out = common::run_image(&rom.image, TIMEOUT);
            let text = out.serial.replace("\r\n", "\n");
            assert_eq!(out.reason, StopReason::DebugExit(1), "{bits}-bit:\n{text}");
            assert!(text.contains("ok 1 add eax, ebx\n"), "{bits}-bit:\n{text}");
            assert!(
                text.contains("FAIL 2 add eax, ebx\n"),
                "{bits}-bit:\n{text}"
            );
            assert!(text.contains("expected 0xd"), "{bits}-bit:\n{text}");
            assert!(
                text.contains("FAIL 3 add eax, ebx\n"),
                "{bits}-bit:\n{text}"
            );
            assert!(
                text.contains("flags = 0x4 expected 0x5 (bits compared: 0xcd5)"),
                "{bits}-bit:\n{text}"
            );
            assert!(text.ends_with("checks failed: 2\n"), "{bits}-bit:\n{text}");
        }
    }

    // ---- the vx binary ----------------------------------------------------------------------

    #[test]
    fn test_vx_without_arguments_runs_the_demo() {
        let r = common::vx(&[]);
        assert_eq!(r.status, 0, "stderr: {}", r.stderr);
        assert_eq!(r.stdout, test_roms::demo_rom().expected_serial());
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }

    #[test]
    fn test_vx_run_bios_gives_the_rom_status() {
        let rom = test_roms::modes::real_to_long::build();
        let f = common::TempFile::new("real_to_long.rom", &rom.image);
        let r = common::vx(&[
            "run",
            "--accel",
            "interp",
            "--bios",
            &f.arg(),
            "--timeout",
            "20",
        ]);
        assert_eq!(
            r.status, 1,
            "debug-exit 0 is status 1; stderr: {}",
            r.stderr
        );
        assert_eq!(r.stdout, rom.expected_serial());
        // A guest that writes 1 to the debug-exit port: status 3.
        let code = [0xb0, 0x01, 0xe6, 0xf4, 0xf4]; // mov al, 1; out 0xf4, al; hlt
        let f = common::TempFile::new("exit1.rom", &common::reset_vector_rom(&code));
        let r = common::vx(&["run", "--accel", "interp", "--bios", &f.arg()]);
        assert_eq!(r.status, 3, "stderr: {}", r.stderr);
        // And 0xCF9 reset = power off: status 0.
        let code = [0xba, 0xf9, 0x0c, 0xb0, 0x06, 0xee, 0xf4]; // mov dx, 0xcf9; mov al, 6; out dx, al; hlt
        let f = common::TempFile::new("cf9.rom", &common::reset_vector_rom(&code));
        let r = common::vx(&["run", "--accel", "interp", "--bios", &f.arg()]);
        assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    }

    /// Status 2 and exactly one line on stderr, naming the problem.
    fn assert_usage_error(args: &[&str], mention: &str) {
        let r = common::vx(args);
        assert_eq!(
            r.status, 2,
            "vx {args:?}: stdout {:?} stderr {:?}",
            r.stdout, r.stderr
        );
        assert_eq!(
            r.stderr.trim_end().lines().count(),
            1,
            "vx {args:?}: stderr should be one line: {:?}",
            r.stderr
        );
        assert!(
            r.stderr.contains(mention),
            "vx {args:?}: stderr {:?} should mention {mention:?}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }

    #[test]
    fn test_vx_bad_input_is_status_2_with_one_line() {
        let dir = std::env::temp_dir();
        let missing = dir.join(format!("vx-test-{}-missing.rom", std::process::id()));
        assert_usage_error(
            &["run", "--bios", &missing.display().to_string()],
            "missing.rom",
        );
        let empty = common::TempFile::new("empty.rom", b"");
        assert_usage_error(&["run", "--bios", &empty.arg()], "empty");
        let big = common::TempFile::new("big.rom", b"");
        std::fs::File::options()
            .write(true)
            .open(&big.0)
            .expect("open")
            .set_len(17 << 20)
            .expect("grow to 17 MiB");
        assert_usage_error(&["run", "--bios", &big.arg()], "big.rom");
        assert_usage_error(&["run", "--bios", &dir.display().to_string()], "directory");
        let rom = common::TempFile::new("ok.rom", &common::reset_vector_rom(&[0xf4]));
        assert_usage_error(&["run", "--bios", &rom.arg(), "--memory", "1M"], "memory");
        assert_usage_error(&["run", "--bios", &rom.arg(), "--memory", "12Q"], "12Q");
        assert_usage_error(&["run", "--bios", &rom.arg(), "--memory", "100T"], "memory");
        assert_usage_error(&["run", "--bios", &rom.arg(), "--accel", "foo"], "foo");
        assert_usage_error(&["run", "--bios", &rom.arg(), "--serial", "bogus"], "bogus");
        assert_usage_error(&["run", "--bios", &rom.arg(), "--timeout=-1"], "timeout");
        assert_usage_error(&["run", "--bios", &rom.arg(), "--timeout", "0"], "timeout");
    }

    /// `--timeout -1` (a separate argument, as users type it) must be one line too, not clap's
    /// multi-line "unexpected argument" message.
    #[test]
    fn test_vx_negative_timeout_as_separate_argument_is_one_line() {
        let rom = common::TempFile::new("neg.rom", &common::reset_vector_rom(&[0xf4]));
        assert_usage_error(&["run", "--bios", &rom.arg(), "--timeout", "-1"], "-1");
    }

    /// SIGTERM stops the guest like --timeout does: a line saying where it was, status 143.
    #[test]
    fn test_vx_sigterm_stops_with_status_143_and_says_where() {
        let f = common::TempFile::new("term.rom", &common::reset_vector_rom(&[0xeb, 0xfe]));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_vx"))
            .args([
                "run",
                "--accel",
                "interp",
                "--serial",
                "none",
                "--bios",
                &f.arg(),
            ])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn vx");
        // Wait until vx blocks SIGTERM for its signal thread (Linux's /proc shows the mask), so
        // the signal does not arrive before vx is ready for it.
        let blocked = || {
            std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("SigBlk:"))?.to_string();
                    u64::from_str_radix(line["SigBlk:".len()..].trim(), 16).ok()
                })
                .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
        };
        let t0 = std::time::Instant::now();
        while !blocked() && t0.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // SAFETY: kill(2) on the pid of a child this test owns.
        let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(143), "stderr: {stderr}");
        assert!(stderr.contains("stopped by signal 15"), "stderr: {stderr}");
        assert!(stderr.contains("f000:0xfff0"), "stderr: {stderr}");
    }

    #[test]
    fn test_vx_timeout_expires_with_status_124() {
        // jmp $ at the reset vector: spins forever.
        let f = common::TempFile::new("spin.rom", &common::reset_vector_rom(&[0xeb, 0xfe]));
        let start = std::time::Instant::now();
        let r = common::vx(&[
            "run",
            "--accel",
            "interp",
            "--bios",
            &f.arg(),
            "--timeout",
            "0.5",
        ]);
        assert_eq!(r.status, 124, "stderr: {}", r.stderr);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }

    #[test]
    fn test_vx_triple_fault_is_status_3_with_a_register_dump() {
        // Real mode with an empty interrupt vector table (limit 0): INT3 cannot be delivered
        // (#GP), neither can the #GP (#DF), nor the #DF: shutdown.
        // lidt cs:[0xfff8]; int3; then the 6-byte operand (limit 0, base 0) at 0xfff8.
        let mut rom = common::reset_vector_rom(&[0x2e, 0x0f, 0x01, 0x1e, 0xf8, 0xff, 0xcc]);
        rom[0xfff8..0xfffe].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
        let f = common::TempFile::new("triple.rom", &rom);
        let r = common::vx(&[
            "run",
            "--accel",
            "interp",
            "--bios",
            &f.arg(),
            "--timeout",
            "10",
        ]);
        assert_eq!(r.status, 3, "stderr: {}", r.stderr);
        assert!(r.stderr.contains("triple"), "{}", r.stderr);
        assert!(
            r.stderr.contains("RIP="),
            "register dump expected: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }

    #[test]
    fn test_vx_cli_hlt_is_status_3() {
        let f = common::TempFile::new("clihlt.rom", &common::reset_vector_rom(&[0xfa, 0xf4]));
        let r = common::vx(&[
            "run",
            "--accel",
            "interp",
            "--bios",
            &f.arg(),
            "--timeout",
            "10",
        ]);
        assert_eq!(r.status, 3, "stderr: {}", r.stderr);
        assert!(
            r.stderr.contains("RIP="),
            "register dump expected: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }

    /// `cargo test --test roms list_roms -- --ignored --nocapture`: every ROM with its size and
    /// the number of checks it prints.
    #[test]
    #[ignore]
    fn list_roms() {
        for r in test_roms::all() {
            let checks = r
                .expected
                .lines()
                .filter(|l| l.ends_with(" ok") || l.starts_with("ok "))
                .count();
            println!(
                "{:<28} {:>4} KiB {:>5} checks",
                r.name,
                r.image.len() / 1024,
                checks
            );
        }
    }

    /// ROMs for behaviour vx does not implement yet (`test_roms::pending()`); run with
    /// `cargo test --test roms pending -- --ignored` to see how far the engines are.
    #[test]
    #[ignore]
    fn pending_roms() {
        common::check_roms(test_roms::pending(), TIMEOUT);
    }
}
