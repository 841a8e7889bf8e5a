//! `vx-bench kvm`: the same long-mode guests (guest64.rs) timed in-process on KVM, the
//! interpreter and the JIT side by side: PIO round trips per second (exits per second on
//! KVM), and a compute loop in ring 0 and in ring 3.
//!
//! Each engine runs on its own board (machine::Board, the buses the `vx` binary uses), with
//! the same guest bytes and the same start state; only the iteration count (a qword the
//! guest reads from RAM) is chosen per engine, so that every run takes about `--target`
//! seconds: a short calibration run is scaled up. Rates (MIPS, port accesses per second) are
//! comparable across engines; wall times are not. Every run's results are checked against
//! the host model (guest64::expected), and the interpreter's and JIT's instruction counts
//! against the model's count.
//!
//! Usage: `vx-bench kvm [--quick] [--runs N] [--target SECONDS] [--iterations N]
//! [--engines kvm,interp,jit] [--workloads pio-out,pio-in,compute-ring0,compute-ring3]`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use accel::{AccelKind, EntryMode};
use cpu::EngineStats;
use machine::board::{Board, BoardConfig};
use machine::control::StopReason;

use crate::guest64::{self, EXCEPTION_STATUS, Expected, Program, Workload};

/// Shortest calibration run whose time is trusted for scaling.
const CALIBRATION_MIN: f64 = 0.2;
/// Iterations never exceed this (about 2.3e11 guest instructions of the compute loop).
const MAX_ITERATIONS: u64 = 10_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Kvm,
    Interp,
    Jit,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Kvm => "kvm",
            Engine::Interp => "interp",
            Engine::Jit => "jit",
        }
    }
    fn kind(self) -> AccelKind {
        match self {
            Engine::Kvm => AccelKind::Kvm,
            Engine::Interp => AccelKind::Interp,
            Engine::Jit => AccelKind::Jit,
        }
    }
}

struct Options {
    runs: usize,
    target: f64,
    iterations: Option<u64>,
    engines: Vec<Engine>,
    workloads: Vec<Workload>,
}

fn usage() -> ! {
    eprintln!(
        "usage: vx-bench kvm [--quick] [--runs N] [--target SECONDS] [--iterations N]\n\
         \x20                   [--engines kvm,interp,jit] [--workloads pio-out,pio-in,compute-ring0,compute-ring3]\n\
         \n\
         --quick          --target 0.5 --runs 1\n\
         --runs N         timed runs per engine and workload; the median is reported (default 3)\n\
         --target S       seconds each timed run should take; iterations are calibrated per\n\
         \x20                engine from a short run (default 3)\n\
         --iterations N   the same iteration count on every engine instead of calibrating\n\
         --engines L      subset of kvm,interp,jit (default all)\n\
         --workloads L    subset of pio-out,pio-in,compute-ring0,compute-ring3 (default all)"
    );
    std::process::exit(2)
}

fn parse_args(args: impl Iterator<Item = String>) -> Options {
    let mut o = Options {
        runs: 3,
        target: 3.0,
        iterations: None,
        engines: vec![Engine::Kvm, Engine::Interp, Engine::Jit],
        workloads: Workload::ALL.to_vec(),
    };
    let (mut runs, mut target, mut quick) = (None, None, false);
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("vx-bench kvm: {name} needs a value");
                usage()
            })
        };
        match a.as_str() {
            "--quick" => quick = true,
            "--runs" => runs = Some(value("--runs").parse().unwrap_or_else(|_| usage())),
            "--target" => target = Some(value("--target").parse().unwrap_or_else(|_| usage())),
            "--iterations" => {
                o.iterations = Some(value("--iterations").parse().unwrap_or_else(|_| usage()));
            }
            "--engines" => {
                o.engines = value("--engines")
                    .split(',')
                    .map(|e| match e {
                        "kvm" => Engine::Kvm,
                        "interp" => Engine::Interp,
                        "jit" => Engine::Jit,
                        other => {
                            eprintln!(
                                "vx-bench kvm: unknown engine '{other}' (expected kvm, interp, jit)"
                            );
                            usage()
                        }
                    })
                    .collect();
            }
            "--workloads" => {
                o.workloads = value("--workloads")
                    .split(',')
                    .map(|w| {
                        Workload::ALL
                            .into_iter()
                            .find(|x| x.name() == w)
                            .unwrap_or_else(|| {
                                eprintln!("vx-bench kvm: unknown workload '{w}'");
                                usage()
                            })
                    })
                    .collect();
            }
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("vx-bench kvm: unknown argument '{a}'");
                usage()
            }
        }
    }
    o.runs = runs.unwrap_or(if quick { 1 } else { 3 }).max(1);
    o.target = target.unwrap_or(if quick { 0.5 } else { 3.0 });
    if o.iterations == Some(0) {
        eprintln!("vx-bench kvm: --iterations must be at least 1");
        usage()
    }
    o
}

/// User and system CPU seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the buffer we pass, which is large enough
    // and (zeroed) valid for that type; RUSAGE_THREAD is a valid `who` on Linux.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// One timed run.
struct Run {
    wall: f64,
    user: f64,
    sys: f64,
    stats: EngineStats,
}

/// Host-model results, cached by workload and iteration count (the compute model takes
/// about a nanosecond per iteration).
#[derive(Default)]
struct Models(HashMap<(&'static str, u64), Expected>);

impl Models {
    fn get(&mut self, w: Workload, n: u64) -> Expected {
        *self
            .0
            .entry((w.name(), n))
            .or_insert_with(|| guest64::expected(w, n))
    }
}

/// Run `p` for `n` iterations on `e`, on a fresh board; check the results.
fn run_once(
    e: Engine,
    w: Workload,
    p: &Program,
    n: u64,
    timeout: Duration,
    models: &mut Models,
) -> Result<Run, String> {
    let board = Board::new(BoardConfig {
        memory: guest64::RAM_SIZE,
        ..Default::default()
    })
    .map_err(|e| format!("cannot build the board: {e}"))?;
    guest64::install(board.ram(), p, n)?;
    let (mut vcpu, _why) = accel::create_vcpu(e.kind(), board.ram().clone(), EntryMode::Long64)
        .map_err(|e| e.to_string())?;
    vcpu.set_state(&guest64::start_state());
    let control = board.control();
    let (done, wait) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            control.request_stop(StopReason::Timeout);
        }
    });
    let (u0, s0) = thread_cpu();
    let t0 = Instant::now();
    let stop = board.run(vcpu.as_mut());
    let wall = t0.elapsed().as_secs_f64();
    let (u1, s1) = thread_cpu();
    drop(done);
    let _ = watchdog.join();
    let stop = stop.map_err(|e| e.to_string())?;
    let rip = vcpu.get_state().rip;
    match stop {
        StopReason::DebugExit(0) => {}
        StopReason::DebugExit(v) if (EXCEPTION_STATUS..EXCEPTION_STATUS + 32).contains(&v) => {
            // The exception frame on the kernel stack: [error code,] RIP, CS, RFLAGS, RSP, SS.
            let rsp = vcpu.get_state().gpr[4];
            let mut frame = [0u8; 48];
            let _ = board.ram().read(rsp, &mut frame);
            let q: Vec<String> = frame
                .chunks(8)
                .map(|c| format!("{:#x}", u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
                .collect();
            return Err(format!(
                "guest exception, vector {} (frame at rsp {rsp:#x}: [error code,] rip, cs, rflags, rsp, ss = {})",
                v - EXCEPTION_STATUS,
                q.join(" ")
            ));
        }
        StopReason::Timeout => {
            return Err(format!(
                "no result within {} s (rip {rip:#x})",
                timeout.as_secs()
            ));
        }
        other => return Err(format!("the guest stopped: {other:?} (rip {rip:#x})")),
    }
    let got = guest64::results(board.ram());
    let want = models.get(w, n);
    if got != want {
        return Err(format!(
            "wrong results: guest {got:x?}, host model {want:x?}"
        ));
    }
    Ok(Run {
        wall,
        user: u1 - u0,
        sys: s1 - s0,
        stats: vcpu.stats(),
    })
}

/// An iteration count that makes `e` run `w` for about `target` seconds.
fn calibrate(
    e: Engine,
    w: Workload,
    p: &Program,
    target: f64,
    models: &mut Models,
) -> Result<u64, String> {
    let mut n: u64 = if w.is_pio() { 2_000 } else { 20_000 };
    loop {
        let r = run_once(e, w, p, n, Duration::from_secs(120), models)?;
        if r.wall >= CALIBRATION_MIN || n >= MAX_ITERATIONS {
            let scaled = (n as f64 * target / r.wall.max(1e-6)).clamp(1.0, MAX_ITERATIONS as f64);
            return Ok(round2(scaled as u64));
        }
        let f = (2.0 * CALIBRATION_MIN / r.wall.max(1e-6)).clamp(2.0, 50.0);
        n = ((n as f64 * f) as u64).min(MAX_ITERATIONS);
    }
}

/// `n` rounded to two significant digits.
fn round2(n: u64) -> u64 {
    let mut scale = 1;
    while n / scale >= 100 {
        scale *= 10;
    }
    (n / scale).max(1) * scale
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn counter(s: &EngineStats, name: &str) -> Option<u64> {
    s.counters.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// Results of one engine on one workload.
struct Row {
    workload: Workload,
    engine: Engine,
    iterations: u64,
    runs: Vec<Run>,
    failure: Option<String>,
}

impl Row {
    fn wall(&self) -> f64 {
        median(&self.runs.iter().map(|r| r.wall).collect::<Vec<_>>())
    }
    /// Iterations per second (port accesses per second for the PIO loops).
    fn rate(&self) -> f64 {
        self.iterations as f64 / self.wall()
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.1} k", r / 1e3)
    }
}

/// The machine, for the table's preamble.
fn machine_line() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} CPUs, {model}, Linux {kernel}")
}

/// Run the `kvm` benchmark with the arguments after `kvm`.
pub fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let o = parse_args(args);
    let probe = accel::probe();
    println!("vx-bench kvm: {}", machine_line());
    println!("vx-bench kvm: /dev/kvm: {}", probe.describe_hardware());

    let mut programs = Vec::new();
    for &w in &o.workloads {
        match guest64::build(w) {
            Ok(p) => programs.push((w, p)),
            Err(e) => {
                eprintln!("vx-bench kvm: assembling {} failed: {e}", w.name());
                return ExitCode::from(1);
            }
        }
    }
    let mut models = Models::default();

    // Which engines can run here.
    let mut engines = Vec::new();
    let mut skipped = Vec::new();
    for &e in &o.engines {
        let check = || -> Result<(), String> {
            if e == Engine::Kvm {
                if let Some(why) = probe.unusable_reason() {
                    return Err(why);
                }
                if let Some(why) = probe.mode_unsupported_reason(EntryMode::Long64) {
                    return Err(why);
                }
            }
            let board = Board::new(BoardConfig {
                memory: guest64::RAM_SIZE,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
            accel::create_vcpu(e.kind(), board.ram().clone(), EntryMode::Long64)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match check() {
            Ok(()) => engines.push(e),
            Err(why) => {
                println!("{:<6} skipped: {why}", e.name());
                skipped.push(format!("{} skipped: {why}", e.name()));
            }
        }
    }

    let mut rows = Vec::new();
    for (w, p) in &programs {
        for &e in &engines {
            let mut row = Row {
                workload: *w,
                engine: e,
                iterations: 0,
                runs: Vec::new(),
                failure: None,
            };
            let n = match o.iterations {
                Some(n) => Ok(n),
                None => calibrate(e, *w, p, o.target, &mut models),
            };
            match n {
                Ok(n) => row.iterations = n,
                Err(why) => {
                    eprintln!("vx-bench kvm: {} on {}: FAILED: {why}", w.name(), e.name());
                    row.failure = Some(why);
                    rows.push(row);
                    continue;
                }
            }
            let timeout = Duration::from_secs_f64((o.target * 20.0).max(60.0));
            for run in 0..o.runs {
                match run_once(e, *w, p, row.iterations, timeout, &mut models) {
                    Ok(r) => {
                        eprintln!(
                            "vx-bench kvm: {} on {} run {}: {} iterations, {:.3} s wall, {:.3} s user, {:.3} s sys",
                            w.name(),
                            e.name(),
                            run + 1,
                            row.iterations,
                            r.wall,
                            r.user,
                            r.sys
                        );
                        row.runs.push(r);
                    }
                    Err(why) => {
                        eprintln!(
                            "vx-bench kvm: {} on {} run {}: FAILED: {why}",
                            w.name(),
                            e.name(),
                            run + 1
                        );
                        row.failure = Some(why);
                        break;
                    }
                }
            }
            rows.push(row);
        }
    }

    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line("| workload | engine | iterations | guest instructions | median wall (s) | wall, each run (s) | CPU user / sys (s) | MIPS | port I/O per s | µs per port I/O | KVM exits | speed / interp | speed / kvm |".into());
    line("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|".into());
    let mut notes = Vec::new();
    let mut failed = false;
    for (w, p) in &programs {
        let rate_of = |e: Engine| {
            rows.iter()
                .find(|r| r.workload == *w && r.engine == e && r.failure.is_none())
                .map(Row::rate)
        };
        let (interp_rate, kvm_rate) = (rate_of(Engine::Interp), rate_of(Engine::Kvm));
        for r in rows.iter().filter(|r| r.workload == *w) {
            if let Some(f) = &r.failure {
                failed = true;
                line(format!(
                    "| {} | {} | {} | | failed: {} | | | | | | | | |",
                    w.name(),
                    r.engine.name(),
                    r.iterations,
                    f.replace('|', "/")
                ));
                continue;
            }
            let t = r.wall();
            let ins = p.instructions(r.iterations);
            let each: Vec<String> = r.runs.iter().map(|x| format!("{:.2}", x.wall)).collect();
            let (user, sys) = (
                median(&r.runs.iter().map(|x| x.user).collect::<Vec<_>>()),
                median(&r.runs.iter().map(|x| x.sys).collect::<Vec<_>>()),
            );
            let (pio_rate, pio_us) = if w.is_pio() {
                (fmt_rate(r.rate()), format!("{:.3}", 1e6 / r.rate()))
            } else {
                ("".into(), "".into())
            };
            let exits = if r.engine == Engine::Kvm {
                let s = &r.runs[r.runs.len() / 2].stats;
                let named = [
                    "port I/O exits",
                    "MMIO exits",
                    "HLT exits",
                    "signal/kick exits",
                    "debug exits",
                    "shutdown exits",
                ];
                let total: u64 = named.iter().filter_map(|n| counter(s, n)).sum();
                total.to_string()
            } else {
                "".into()
            };
            let ratio = |base: Option<f64>| {
                base.map(|b| format!("{:.2}", r.rate() / b))
                    .unwrap_or_default()
            };
            line(format!(
                "| {} | {} | {} | {ins} | {t:.3} | {} | {user:.2} / {sys:.2} | {:.1} | {pio_rate} | {pio_us} | {exits} | {} | {} |",
                w.name(),
                r.engine.name(),
                r.iterations,
                each.join(", "),
                ins as f64 / t / 1e6,
                ratio(interp_rate),
                ratio(kvm_rate),
            ));
            // Cross-check the model's instruction count against the engines that count.
            if r.engine != Engine::Kvm {
                let counted = r.runs[0].stats.instructions;
                if counted == ins {
                    notes.push(format!("{} on {}: the engine counted {counted} instructions, exactly the model's count", w.name(), r.engine.name()));
                } else if counted == ins + 1 {
                    notes.push(format!("{} on {}: the engine counted {counted} instructions, the model's count plus the final hlt", w.name(), r.engine.name()));
                } else {
                    notes.push(format!("{} on {}: WARNING: the engine counted {counted} instructions, the model says {ins}", w.name(), r.engine.name()));
                }
            }
        }
    }
    line(String::new());
    line(format!(
        "Guest instructions: from the loop structure, the same model for every engine ({}).",
        programs
            .iter()
            .map(|(w, p)| format!(
                "{}: {} per iteration + {} setup and report",
                w.name(),
                p.per_iteration,
                p.fixed
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    line("MIPS = guest instructions / median wall time of the guest run. speed / X =".into());
    line("this engine's iterations per second / X's (above 1: faster than X). KVM exits: exits counted by".into());
    line(
        "the KVM engine in the median run (port I/O, MMIO, HLT, signal/kick, debug, shutdown)."
            .into(),
    );
    for n in skipped.iter().chain(&notes) {
        line(format!("- {n}"));
    }
    println!();
    print!("{out}");
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(dir.join("kvm-results.md"), &out).is_ok()
    {
        eprintln!(
            "vx-bench kvm: table written to {}",
            dir.join("kvm-results.md").display()
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
