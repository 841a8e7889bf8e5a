//! Every test ROM (`test_roms::all()`), the demo and a short benchmark ROM, run in-process on
//! the JIT: each must end exactly as on the interpreter (debug-exit 0, or power-off for the
//! demo) with exactly the expected serial output.

use std::io::Write;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use accel::AccelKind;
use machine::{Board, BoardConfig, StopReason};

const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

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

struct Outcome {
    reason: StopReason,
    serial: String,
    dump: String,
    stats: cpu::EngineStats,
    elapsed: Duration,
}

fn run_on_jit(image: &[u8]) -> Outcome {
    let cap = Capture::default();
    let board = Board::new(BoardConfig {
        memory: 32 << 20,
        bios: Some(image.to_vec()),
        serial_out: Some(Box::new(cap.clone())),
        trace_post: false,
    })
    .expect("board");
    let (mut vcpu, _why) =
        accel::create_vcpu(AccelKind::Jit, board.ram().clone(), accel::EntryMode::Real)
            .expect("jit engine");
    vcpu.set_state(&firmware::reset_state());
    let control = board.control();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        if done_rx.recv_timeout(TIMEOUT).is_err() {
            control.request_stop(StopReason::Timeout);
        }
    });
    let start = Instant::now();
    let reason = board
        .run(vcpu.as_mut())
        .expect("the JIT never fails on the host side");
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

fn first_difference(got: &str, want: &str) -> String {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    for k in 0..g.len().max(w.len()) {
        let (a, b) = (g.get(k).copied(), w.get(k).copied());
        if a != b {
            return format!("line {}: got {:?}, expected {:?}", k + 1, a, b);
        }
    }
    "no line differs (line endings?)".into()
}

fn check_rom(rom: &test_roms::TestRom) -> Result<Duration, String> {
    let out = run_on_jit(&rom.image);
    let want = rom.expected_serial();
    if out.reason == StopReason::DebugExit(0) && out.serial == want {
        return Ok(out.elapsed);
    }
    Err(format!(
        "ROM {} failed on the JIT: stopped with {:?} after {:?}\n{}\n--- serial output ---\n{}\n--- registers ---\n{}\n--- stats ---\n{:?}",
        rom.name,
        out.reason,
        out.elapsed,
        first_difference(&out.serial.replace("\r\n", "\n"), &rom.expected),
        out.serial.replace("\r\n", "\n"),
        out.dump,
        out.stats.counters
    ))
}

fn check_roms(roms: Vec<test_roms::TestRom>) {
    assert!(!roms.is_empty());
    let mut failures = Vec::new();
    // Two at a time: the CI machines have few cores.
    for pair in roms.chunks(2) {
        let handles: Vec<_> = pair
            .iter()
            .cloned()
            .map(|rom| std::thread::spawn(move || (rom.name.clone(), check_rom(&rom))))
            .collect();
        for h in handles {
            let (name, r) = h.join().expect("ROM thread");
            match r {
                Ok(t) => eprintln!("{name}: passed on the JIT in {t:?}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_jit_all_roms() {
        // VX_JIT_ROM=substring runs only the matching ROMs (debugging).
        let filter = std::env::var("VX_JIT_ROM").unwrap_or_default();
        check_roms(
            test_roms::all()
                .into_iter()
                .filter(|r| r.name.contains(&filter))
                .collect(),
        );
    }

    #[test]
    fn test_jit_demo_narrates_and_powers_off() {
        let rom = test_roms::demo_rom();
        let out = run_on_jit(&rom.image);
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
            first_difference(&out.serial.replace("\r\n", "\n"), &rom.expected)
        );
    }
}
