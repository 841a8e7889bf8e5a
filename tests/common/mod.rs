//! Shared runner for the ROM tests: a board with COM1 captured in memory, the interpreter,
//! the RESET state, a timeout thread, and assertions that print the serial output and the
//! register dump when a ROM misbehaves.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use accel::AccelKind;
use machine::{Board, BoardConfig, StopReason};

/// Guest RAM the ROM tests get.
pub const MEMORY: u64 = 32 << 20;

/// A `Write` that appends to a shared buffer.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a run ended.
pub struct Outcome {
    /// Why the machine stopped.
    pub reason: StopReason,
    /// Everything the guest sent to COM1.
    pub serial: String,
    /// The register dump at the end.
    pub dump: String,
    /// The engine's counters at the end.
    pub stats: cpu::EngineStats,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Run `image` on the interpreter until it stops or `timeout` passes.
pub fn run_image(image: &[u8], timeout: Duration) -> Outcome {
    run_image_on(AccelKind::Interp, image, timeout)
}

/// Run `image` on engine `kind` until it stops or `timeout` passes.
pub fn run_image_on(kind: AccelKind, image: &[u8], timeout: Duration) -> Outcome {
    let cap = Capture::default();
    let board = Board::new(BoardConfig {
        memory: MEMORY,
        bios: Some(image.to_vec()),
        serial_out: Some(Box::new(cap.clone())),
        trace_post: false,
    })
    .expect("board");
    // The JIT translates every block on its first execution here (its default waits until a
    // block is hot and interprets it until then), so the ROMs exercise translated code.
    let mut vcpu: Box<dyn cpu::Vcpu> = match kind {
        AccelKind::Jit => Box::new(
            jit::JitVcpu::with_options(board.ram().clone(), jit::JitOptions::eager())
                .unwrap_or_else(|e| panic!("engine {kind:?}: {e}")),
        ),
        _ => {
            accel::create_vcpu(kind, board.ram().clone(), accel::EntryMode::Real)
                .unwrap_or_else(|e| panic!("engine {kind:?}: {e}"))
                .0
        }
    };
    vcpu.set_state(&firmware::reset_state());
    let control = board.control();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            control.request_stop(StopReason::Timeout);
        }
    });
    let start = Instant::now();
    let reason = board
        .run(vcpu.as_mut())
        .unwrap_or_else(|e| panic!("engine {kind:?} failed on the host side: {e}"));
    let elapsed = start.elapsed();
    let _ = done_tx.send(());
    timer.join().expect("timer thread");
    let serial =
        String::from_utf8_lossy(&cap.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    Outcome {
        reason,
        serial,
        dump: vcpu.get_state().dump(),
        stats: vcpu.stats(),
        elapsed,
    }
}

/// The first line where `got` and `want` differ, for the failure message.
pub fn first_difference(got: &str, want: &str) -> String {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    for k in 0..g.len().max(w.len()) {
        let (a, b) = (g.get(k).copied(), w.get(k).copied());
        if a != b {
            return format!("line {}: got {:?}, expected {:?}", k + 1, a, b);
        }
    }
    "no line differs (line endings?)".into()
}

/// Run a test ROM on the interpreter and check it passed: debug-exit 0 and exactly the
/// expected output. Returns a failure description instead of panicking, so callers can run
/// many ROMs.
pub fn check_rom(rom: &test_roms::TestRom, timeout: Duration) -> Result<Duration, String> {
    check_rom_on(AccelKind::Interp, rom, timeout)
}

/// `check_rom` on engine `kind`.
pub fn check_rom_on(
    kind: AccelKind,
    rom: &test_roms::TestRom,
    timeout: Duration,
) -> Result<Duration, String> {
    let out = run_image_on(kind, &rom.image, timeout);
    let want = rom.expected_serial();
    if out.reason == StopReason::DebugExit(0) && out.serial == want {
        return Ok(out.elapsed);
    }
    Err(format!(
        "ROM {} failed on {kind:?}: stopped with {:?} (exit status {}) after {:?}\n{}\n--- serial output ---\n{}\n--- registers ---\n{}\n--- stats ---\n{:?}",
        rom.name,
        out.reason,
        out.reason.exit_status(),
        out.elapsed,
        first_difference(&out.serial.replace("\r\n", "\n"), &rom.expected),
        out.serial.replace("\r\n", "\n"),
        out.dump,
        out.stats.counters
    ))
}

/// Run ROMs on the interpreter, all in parallel threads, and panic with every failure.
pub fn check_roms(roms: Vec<test_roms::TestRom>, timeout: Duration) {
    let n = roms.len().max(1);
    check_roms_on(AccelKind::Interp, roms, timeout, n);
}

/// Run ROMs on engine `kind`, `parallel` at a time, and panic with every failure.
pub fn check_roms_on(
    kind: AccelKind,
    roms: Vec<test_roms::TestRom>,
    timeout: Duration,
    parallel: usize,
) {
    assert!(!roms.is_empty());
    let mut failures = Vec::new();
    for group in roms.chunks(parallel.max(1)) {
        let handles: Vec<_> = group
            .iter()
            .cloned()
            .map(|rom| {
                std::thread::spawn(move || (rom.name.clone(), check_rom_on(kind, &rom, timeout)))
            })
            .collect();
        for h in handles {
            let (name, r) = h.join().expect("ROM thread");
            match r {
                Ok(t) => eprintln!("{name}: passed on {kind:?} in {t:?}"),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} ROM(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A scratch file under the system temp directory, removed on drop.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    /// Write `bytes` to a fresh file whose name includes `tag` and the process id.
    pub fn new(tag: &str, bytes: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!("vx-test-{}-{tag}", std::process::id()));
        std::fs::write(&p, bytes).expect("write temp file");
        TempFile(p)
    }
    /// The path as a string argument.
    pub fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a run of the `vx` binary produced.
pub struct Run {
    /// Exit status (-1 if killed by a signal).
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Run the `vx` binary with `args`, stdin from /dev/null.
pub fn vx(args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vx"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn vx");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A 64 KiB image whose reset vector holds `code` (16-bit, at F000:FFF0; at most 16 bytes).
pub fn reset_vector_rom(code: &[u8]) -> Vec<u8> {
    assert!(code.len() <= 16);
    let mut rom = vec![0xf4u8; 64 * 1024];
    rom[0xfff0..0xfff0 + code.len()].copy_from_slice(code);
    rom
}
