//! Booting Linux through the boot protocol (`vx run --kernel`): what bad kernels, initrds and
//! command lines get (one line, status 2).

mod common;

#[cfg(test)]
mod tests {
    use super::common;

    /// A synthetic bzImage header (4 setup sectors, protocol `version`, 64-bit entry flag
    /// `xload`, `init_size`) followed by `payload` bytes: enough for vx's checks, not a kernel.
    fn fake_bzimage(version: u16, xload: u16, payload: usize, init_size: u32) -> Vec<u8> {
        let mut d = vec![0u8; 5 * 512 + payload];
        d[0x1f1] = 4;
        d[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        d[0x200] = 0xeb;
        d[0x201] = 0x6a;
        d[0x202..0x206].copy_from_slice(b"HdrS");
        d[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        d[0x211] = 1; // LOADED_HIGH
        d[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        d[0x236..0x238].copy_from_slice(&xload.to_le_bytes());
        d[0x238..0x23c].copy_from_slice(&255u32.to_le_bytes());
        d[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
        d
    }

    fn assert_usage_error(args: &[&str], mention: &str) {
        let r = common::vx(args);
        assert_eq!(r.status, 2, "vx {args:?}: stderr {}", r.stderr);
        assert_eq!(
            r.stderr.trim_end().lines().count(),
            1,
            "vx {args:?}: one line expected, got {:?}",
            r.stderr
        );
        assert!(
            r.stderr.contains(mention),
            "vx {args:?}: stderr {:?} should mention {mention:?}",
            r.stderr
        );
    }

    #[test]
    fn test_bad_kernels_initrds_and_command_lines_are_status_2_with_one_line() {
        let dir = std::env::temp_dir();
        let missing = dir.join(format!("vx-test-{}-missing-bzImage", std::process::id()));
        assert_usage_error(
            &["run", "--kernel", &missing.display().to_string()],
            "missing-bzImage",
        );
        let text = common::TempFile::new("text-kernel", &[b'x'; 4096]);
        assert_usage_error(&["run", "--kernel", &text.arg()], "not a Linux bzImage");
        let old = common::TempFile::new("old-kernel", &fake_bzimage(0x0204, 0, 4096, 0));
        assert_usage_error(
            &["run", "--kernel", &old.arg()],
            "boot protocol 2.04 is too old",
        );
        let k32 = common::TempFile::new("k32-kernel", &fake_bzimage(0x020f, 0, 4096, 0));
        assert_usage_error(&["run", "--kernel", &k32.arg()], "no 64-bit entry point");
        let huge = common::TempFile::new("huge-kernel", &fake_bzimage(0x020f, 1, 4096, 64 << 20));
        assert_usage_error(
            &["run", "--kernel", &huge.arg(), "--memory", "32M"],
            "raise --memory",
        );
        let k = common::TempFile::new("ok-kernel", &fake_bzimage(0x020f, 1, 4096, 1 << 20));
        let gone = dir.join(format!("vx-test-{}-missing-initrd", std::process::id()));
        assert_usage_error(
            &[
                "run",
                "--kernel",
                &k.arg(),
                "--initrd",
                &gone.display().to_string(),
            ],
            "missing-initrd",
        );
        let rd = common::TempFile::new("big-initrd", &vec![0u8; 30 << 20]);
        assert_usage_error(
            &[
                "run",
                "--kernel",
                &k.arg(),
                "--initrd",
                &rd.arg(),
                "--memory",
                "24M",
            ],
            "initrd",
        );
        let long = "x".repeat(300);
        assert_usage_error(
            &["run", "--kernel", &k.arg(), "--append", &long],
            "command line",
        );
        assert_usage_error(&["run", "--initrd", &rd.arg()], "--kernel");
        assert_usage_error(&["run", "--kernel", &k.arg(), "--bios", &k.arg()], "--bios");
    }

    /// The Debian guest of `flavour` (amd64 or cloud-amd64): bzImage and initramfs built by
    /// scripts/build-guest.sh from Debian packages into target/guest (cached; the script runs
    /// here if the outputs are missing, so the README's test command needs no extra step).
    fn guest(flavour: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/guest").join(flavour);
        let (k, rd) = (dir.join("bzImage"), dir.join("initrd.cpio"));
        if !(k.exists() && rd.exists()) {
            let st = std::process::Command::new(root.join("scripts/build-guest.sh"))
                .status()
                .expect("run scripts/build-guest.sh");
            assert!(
                st.success(),
                "scripts/build-guest.sh failed ({st}): the Linux boot tests need the Debian guest"
            );
        }
        assert!(
            k.exists() && rd.exists(),
            "guest not found in {}",
            dir.display()
        );
        (k, rd)
    }

    /// A vx process with its console on pipes.
    struct Console {
        child: std::process::Child,
        out: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
    }

    impl Console {
        fn start(args: &[&str]) -> Console {
            use std::io::Read;
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vx"))
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .expect("spawn vx");
            let out = std::sync::Arc::new((
                std::sync::Mutex::new(String::new()),
                std::sync::Condvar::new(),
            ));
            let mut stdout = child.stdout.take().expect("stdout");
            let o = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut s = o.0.lock().expect("lock");
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    o.1.notify_all();
                }
            });
            Console { child, out }
        }

        /// Wait until the console output contains `marker` after byte `from`; returns the offset
        /// just past it.
        fn wait_for(&self, marker: &str, from: usize, timeout: std::time::Duration) -> usize {
            let deadline = std::time::Instant::now() + timeout;
            let mut s = self.out.0.lock().expect("lock");
            loop {
                if let Some(p) = s.get(from..).and_then(|t| t.find(marker)) {
                    return from + p + marker.len();
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    let tail: Vec<&str> = s.lines().rev().take(30).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    panic!(
                        "{marker:?} did not appear on the console within {timeout:?}; last lines:\n{}",
                        tail.join("\n")
                    );
                }
                s = self.out.1.wait_timeout(s, deadline - now).expect("wait").0;
            }
        }

        fn send(&mut self, line: &str) {
            use std::io::Write;
            let stdin = self.child.stdin.as_mut().expect("stdin");
            stdin
                .write_all(line.as_bytes())
                .expect("write to the guest console");
            stdin.flush().expect("flush");
        }

        fn wait_exit(&mut self, timeout: std::time::Duration) -> i32 {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                if let Some(st) = self.child.try_wait().expect("wait") {
                    return st.code().unwrap_or(-1);
                }
                if std::time::Instant::now() >= deadline {
                    let _ = self.child.kill();
                    panic!("vx did not exit within {timeout:?} after poweroff");
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }

    impl Drop for Console {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Boot `flavour` on `accel` to the shell, run a command through the console, power off.
    fn boot_to_shell(accel: &str, flavour: &str, boot_timeout: std::time::Duration) {
        let (k, rd) = guest(flavour);
        let (k, rd) = (k.display().to_string(), rd.display().to_string());
        let mut vm = Console::start(&[
            "run",
            "--accel",
            accel,
            "--memory",
            "512M",
            "--kernel",
            &k,
            "--initrd",
            &rd,
            "--append",
            "console=ttyS0",
            "--timeout",
            &(boot_timeout.as_secs() + 120).to_string(),
        ]);
        let t = vm.wait_for("VX-GUEST-READY", 0, boot_timeout);
        // The shell reads the line once it has printed its prompt; the arithmetic proves the
        // output comes from the guest's shell, not from the echo of the line we typed.
        vm.send("echo vx-$((6*7))-ok\n");
        let t = vm.wait_for("vx-42-ok", t, std::time::Duration::from_secs(120));
        vm.send("poweroff -f\n");
        let _ = t;
        assert_eq!(
            vm.wait_exit(std::time::Duration::from_secs(120)),
            0,
            "poweroff -f must end vx with status 0"
        );
    }

    #[test]
    fn test_debian_boots_to_a_shell_on_the_jit() {
        boot_to_shell("jit", "amd64", std::time::Duration::from_secs(600));
    }

    #[test]
    fn test_debian_cloud_boots_to_a_shell_on_the_jit() {
        boot_to_shell("jit", "cloud-amd64", std::time::Duration::from_secs(600));
    }

    /// The same on the interpreter (the cloud flavour: its LZ4 kernel decompresses faster than
    /// the XZ one); several times slower than the JIT.
    #[test]
    fn test_debian_cloud_boots_to_a_shell_on_the_interpreter() {
        boot_to_shell(
            "interp",
            "cloud-amd64",
            std::time::Duration::from_secs(1200),
        );
    }
}
