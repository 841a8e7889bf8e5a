//! `vx-bench boot`: the Linux guest of scripts/build-guest.sh (docs/guest.md) booted on
//! vx's JIT, vx's interpreter and QEMU TCG, each a separate process with the serial console
//! on pipes: the time from spawn to the guest's `VX-GUEST-READY` line (Linux x86 boot
//! protocol, Documentation/arch/x86/boot.rst; the guest's /init prints the line), then a fixed
//! busybox workload typed into the guest's shell, timed to its end marker, then `poweroff -f`
//! and a check that the process exits with status 0.
//!
//! Usage: `vx-bench boot [--kernel K --initrd I | --flavour amd64|cloud-amd64] [--runs N]
//! [--engines vx-jit,vx-interp,qemu] [--timeout S] [--append CMDLINE] [--no-build]`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::engines::{Engine as _, Qemu, Vx};

mod console;

use console::{RunFailure, Session, WaitEnd};

/// The line the guest's /init prints when it is about to start the shell.
const READY_MARKER: &str = "VX-GUEST-READY";
/// The line the workload prints when it is done (followed by the loop's result). The typed
/// command builds it from a variable, so the shell's echo of the command never matches.
const DONE_MARKER: &str = "VX-BENCH-DONE";
/// Guest memory for every engine, in MiB.
const MEMORY_MIB: u32 = 512;
/// The kernel command line for every engine. `quiet`: the boot time measures the kernel's
/// work, not how fast each engine pushes ~60 KB of boot messages through its UART model;
/// `panic=-1`: a kernel panic resets at once, and a reset ends every engine's process
/// (QEMU through -no-reboot, vx because it never reboots) instead of waiting out --timeout.
const DEFAULT_APPEND: &str = "console=ttyS0 quiet panic=-1";

/// MiB of zeros the workload pipes from dd into md5sum.
const MD5_MIB: u32 = 24;
/// md5 of 24 MiB of zero bytes (host: `head -c 25165824 /dev/zero | md5sum`; the unit test
/// test_workload_md5_matches_host recomputes it).
const MD5_OF_ZEROS: &str = "77377273b0a4b61febdbf7bbf52b9db9";
/// Iterations of the shell arithmetic loop of the workload.
const LOOP_ITERATIONS: u32 = 15_000;

/// The command typed into the guest shell: md5sum of zeros from dd, then a busybox ash
/// arithmetic loop (together about 1.1-1.6 s under QEMU TCG on the reference host, a shared
/// 2-core EPYC VM), then the end marker and the loop's result on one line.
fn workload_command() -> String {
    format!(
        "dd if=/dev/zero bs=64k count={count} 2>/dev/null | md5sum; \
         i=0; s=0; while [ $i -lt {LOOP_ITERATIONS} ]; do s=$(( (s*31+i) % 1000003 )); i=$((i+1)); done; \
         m=VX-BENCH; echo $m-DONE $s\n",
        count = MD5_MIB * 16
    )
}

/// What the workload's loop leaves in `s` (the host model of the shell loop).
fn loop_result(iterations: u32) -> u64 {
    (0..u64::from(iterations)).fold(0, |s, i| (s * 31 + i) % 1_000_003)
}

/// The engines this benchmark knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BootEngine {
    VxJit,
    VxInterp,
    Qemu,
}

impl BootEngine {
    fn parse(s: &str) -> Option<BootEngine> {
        match s {
            "vx-jit" => Some(BootEngine::VxJit),
            "vx-interp" => Some(BootEngine::VxInterp),
            "qemu" => Some(BootEngine::Qemu),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BootEngine::VxJit => "vx-jit",
            BootEngine::VxInterp => "vx-interp",
            BootEngine::Qemu => "qemu",
        }
    }
}

struct Options {
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    flavour: Option<String>,
    runs: usize,
    engines: Vec<BootEngine>,
    timeout: f64,
    append: String,
    build: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: vx-bench boot [--kernel K --initrd I | --flavour amd64|cloud-amd64] [--runs N]\n\
         \x20                    [--engines vx-jit,vx-interp,qemu] [--timeout S] [--append CMDLINE] [--no-build]\n\
         \n\
         --kernel K       bzImage to boot (with --initrd)\n\
         --initrd I       initramfs whose /init prints {READY_MARKER} and runs a shell on the console\n\
         --flavour F      target/guest/F/{{bzImage,initrd.cpio}} from scripts/build-guest.sh (default amd64)\n\
         --runs N         runs per engine; median, min and max are reported (default 3)\n\
         --engines L      subset of vx-jit,vx-interp,qemu (default all)\n\
         --timeout S      seconds allowed for each phase: boot to {READY_MARKER}, the workload,\n\
         \x20                the exit after poweroff -f (default 300)\n\
         --append C       kernel command line for every engine (default \"{DEFAULT_APPEND}\")\n\
         --no-build       do not run `cargo build --release -p vx` first"
    );
    std::process::exit(2)
}

fn parse_args(args: impl Iterator<Item = String>) -> Options {
    let mut o = Options {
        kernel: None,
        initrd: None,
        flavour: None,
        runs: 3,
        engines: vec![BootEngine::VxJit, BootEngine::VxInterp, BootEngine::Qemu],
        timeout: 300.0,
        append: DEFAULT_APPEND.into(),
        build: true,
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("vx-bench boot: {name} needs a value");
                usage()
            })
        };
        match a.as_str() {
            "--kernel" => o.kernel = Some(value("--kernel").into()),
            "--initrd" => o.initrd = Some(value("--initrd").into()),
            "--flavour" => o.flavour = Some(value("--flavour")),
            "--runs" => o.runs = value("--runs").parse().unwrap_or_else(|_| usage()),
            "--timeout" => {
                o.timeout = value("--timeout").parse().unwrap_or_else(|_| usage());
            }
            "--append" => o.append = value("--append"),
            "--engines" => {
                o.engines = value("--engines")
                    .split(',')
                    .map(|e| {
                        BootEngine::parse(e).unwrap_or_else(|| {
                            eprintln!(
                                "vx-bench boot: unknown engine '{e}' (expected vx-jit, vx-interp, qemu)"
                            );
                            usage()
                        })
                    })
                    .collect();
            }
            "--no-build" => o.build = false,
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("vx-bench boot: unknown argument '{a}'");
                usage()
            }
        }
    }
    o.runs = o.runs.max(1);
    if !(o.timeout.is_finite() && o.timeout > 0.0) {
        eprintln!("vx-bench boot: --timeout must be a positive number of seconds");
        usage()
    }
    if o.kernel.is_some() != o.initrd.is_some() {
        eprintln!("vx-bench boot: --kernel and --initrd go together");
        usage()
    }
    if o.kernel.is_some() && o.flavour.is_some() {
        eprintln!("vx-bench boot: --flavour or --kernel/--initrd, not both");
        usage()
    }
    o
}

/// Median, minimum and maximum of a set of times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Summary {
    /// The median (mean of the middle two for an even count).
    pub(crate) median: f64,
    /// The smallest.
    pub(crate) min: f64,
    /// The largest.
    pub(crate) max: f64,
}

impl Summary {
    /// The summary of `v`, `None` when it is empty.
    pub(crate) fn of(v: &[f64]) -> Option<Summary> {
        if v.is_empty() {
            return None;
        }
        Some(Summary {
            median: crate::median(v),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// `a / b` to two decimals, or `n/a` when either side has no figure.
fn ratio(a: Option<Summary>, b: Option<Summary>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
        _ => "n/a".into(),
    }
}

/// The times of one successful run.
#[derive(Clone, Copy, Debug)]
struct RunTimes {
    boot: f64,
    workload: f64,
}

/// Check the workload's output: the md5 line and the loop's result on the marker line.
fn check_workload(lines: &[String]) -> Result<(), String> {
    if !lines.iter().any(|l| l.contains(MD5_OF_ZEROS)) {
        return Err(format!(
            "workload: no md5sum line {MD5_OF_ZEROS} in its output"
        ));
    }
    let want = loop_result(LOOP_ITERATIONS).to_string();
    let got = lines
        .iter()
        .rev()
        .find_map(|l| l.split_once(DONE_MARKER).map(|(_, r)| r.trim().to_owned()))
        .unwrap_or_default();
    if got != want {
        return Err(format!("workload: the loop gave '{got}', expected {want}"));
    }
    Ok(())
}

/// One boot, workload and poweroff of `cmd`.
fn run_once(
    cmd: Command,
    timeout: Duration,
    stderr: &Path,
    log: &Path,
) -> Result<RunTimes, RunFailure> {
    let t = |s: &Duration| format!("{} s", s.as_secs_f64());
    let start = Instant::now();
    let mut s = Session::spawn(cmd, stderr, log).map_err(|what| RunFailure {
        what,
        tail: Vec::new(),
        stderr: None,
    })?;
    let ready = match s.wait(start + timeout, |l| l.contains(READY_MARKER), None) {
        Ok((at, _)) => at,
        Err(WaitEnd::Timeout) => {
            return Err(s.fail(format!("did not boot (timeout after {})", t(&timeout))));
        }
        Err(WaitEnd::Closed) => {
            let why = s.ended();
            return Err(s.fail(format!("did not boot ({why} before {READY_MARKER})")));
        }
    };
    let boot = ready.duration_since(start).as_secs_f64();
    // Busybox ash's prompt for root ends in "# "; typing before the shell runs would work
    // too (the tty buffers it), but waiting keeps the shell's start-up out of the workload.
    if let Err(e) = s.wait(ready + timeout, |_| false, Some("# ")) {
        let what = match e {
            WaitEnd::Timeout => format!(
                "no shell prompt after {READY_MARKER} (timeout after {})",
                t(&timeout)
            ),
            WaitEnd::Closed => format!("{} after {READY_MARKER}, before the prompt", s.ended()),
        };
        return Err(s.fail(what));
    }
    let sent = Instant::now();
    if let Err(e) = s.send(&workload_command()) {
        return Err(s.fail(e));
    }
    let (done, lines) = match s.wait(sent + timeout, |l| l.contains(DONE_MARKER), None) {
        Ok(r) => r,
        Err(WaitEnd::Timeout) => {
            return Err(s.fail(format!(
                "workload did not finish (timeout after {})",
                t(&timeout)
            )));
        }
        Err(WaitEnd::Closed) => {
            let why = s.ended();
            return Err(s.fail(format!("{why} during the workload")));
        }
    };
    let workload = done.duration_since(sent).as_secs_f64();
    if let Err(e) = check_workload(&lines) {
        return Err(s.fail(e));
    }
    if let Err(e) = s.send("poweroff -f\n") {
        return Err(s.fail(e));
    }
    // Closing stdin as well: an engine that ignored the poweroff must not wait for input.
    s.close_stdin();
    match s.wait_exit(Instant::now() + timeout) {
        Some(st) if st.code() == Some(0) => Ok(RunTimes { boot, workload }),
        Some(st) => {
            let what = match st.code() {
                Some(c) => format!("exit status {c} after poweroff -f (expected 0)"),
                None => format!("{st} after poweroff -f (expected exit status 0)"),
            };
            Err(s.fail(what))
        }
        None => Err(s.fail(format!(
            "did not exit after poweroff -f (timeout after {})",
            t(&timeout)
        ))),
    }
}

/// The results of one engine.
struct Row {
    engine: BootEngine,
    runs: Vec<RunTimes>,
    failure: Option<RunFailure>,
    skipped: Option<String>,
}

impl Row {
    fn boot(&self) -> Option<Summary> {
        if self.failure.is_some() {
            return None;
        }
        Summary::of(&self.runs.iter().map(|r| r.boot).collect::<Vec<_>>())
    }
    fn workload(&self) -> Option<Summary> {
        if self.failure.is_some() {
            return None;
        }
        Summary::of(&self.runs.iter().map(|r| r.workload).collect::<Vec<_>>())
    }
}

/// The host's 1-minute load average (/proc/loadavg), `?` where unreadable: timings on a
/// shared host are only comparable at similar load.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The markdown table and the notes under it; `load` is the host load before and after.
fn render(rows: &[Row], guest: &str, append: &str, load: (&str, &str)) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "Guest: {guest}; kernel command line \"{append}\"; {MEMORY_MIB} MiB; host load average {} before, {} after.",
        load.0, load.1
    ));
    line(String::new());
    line("| engine | runs done | boot median (s) | boot min-max (s) | workload median (s) | workload min-max (s) | boot / qemu | workload / qemu |".into());
    line("|---|---:|---:|---|---:|---|---:|---:|".into());
    let qemu = rows.iter().find(|r| r.engine == BootEngine::Qemu);
    let (qb, qw) = (qemu.and_then(Row::boot), qemu.and_then(Row::workload));
    for r in rows {
        let name = r.engine.name();
        if let Some(why) = &r.skipped {
            line(format!("| {name} | 0 | skipped: {why} | | | | | |"));
            continue;
        }
        if let Some(f) = &r.failure {
            // The runs column counts completed runs; a failure after some says which run.
            let which = if r.runs.is_empty() {
                String::new()
            } else {
                format!(" in run {}", r.runs.len() + 1)
            };
            line(format!(
                "| {name} | {} | {}{which} | | | | | |",
                r.runs.len(),
                f.what
            ));
            continue;
        }
        let (Some(b), Some(w)) = (r.boot(), r.workload()) else {
            continue;
        };
        line(format!(
            "| {name} | {} | {:.2} | {:.2}-{:.2} | {:.2} | {:.2}-{:.2} | {} | {} |",
            r.runs.len(),
            b.median,
            b.min,
            b.max,
            w.median,
            w.min,
            w.max,
            ratio(Some(b), qb),
            ratio(Some(w), qw),
        ));
    }
    line(String::new());
    line(format!(
        "Boot: wall time from process spawn to the {READY_MARKER} line on the serial console. Workload: from typing"
    ));
    line(format!(
        "the command at the shell prompt to its end marker ({MD5_MIB} MiB of zeros through md5sum, then {LOOP_ITERATIONS} iterations"
    ));
    line("of busybox ash arithmetic). X / qemu: ratio of the medians (above 1: slower than QEMU TCG).".into());
    for r in rows {
        if let Some(f) = &r.failure {
            line(String::new());
            line(format!("{}: {}", r.engine.name(), f.what));
            if let Some(h) = &f.stderr {
                line(format!("  its stderr: {h}"));
            }
            line("  last console lines:".into());
            if f.tail.is_empty() {
                line("    (no console output)".into());
            }
            for l in &f.tail {
                line(format!("    {l}"));
            }
            if append.split_whitespace().any(|w| w == "quiet") && f.what.starts_with("did not boot")
            {
                line("  (quiet: the kernel printed only warnings; --append without quiet shows its progress)".into());
            }
        }
    }
    out
}

/// `vx-bench boot`.
pub fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let o = parse_args(args);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let (kernel, initrd, guest) = match (&o.kernel, &o.initrd) {
        (Some(k), Some(i)) => (k.clone(), i.clone(), k.display().to_string()),
        _ => {
            let f = o.flavour.clone().unwrap_or_else(|| "amd64".into());
            let dir = root.join("target/guest").join(&f);
            (
                dir.join("bzImage"),
                dir.join("initrd.cpio"),
                format!("flavour {f}"),
            )
        }
    };
    for p in [&kernel, &initrd] {
        if !p.is_file() {
            eprintln!(
                "vx-bench boot: {} not found (scripts/build-guest.sh builds target/guest/FLAVOUR)",
                p.display()
            );
            return ExitCode::from(2);
        }
    }
    let out = root.join("target/bench");
    let scratch = out.join(format!("boot-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        eprintln!("vx-bench boot: cannot create {}: {e}", scratch.display());
        return ExitCode::from(1);
    }
    let timeout = Duration::from_secs_f64(o.timeout);
    let load_before = load_average();
    let qemu = Qemu::new();
    let mut built = !o.build;
    let mut rows = Vec::new();
    for &e in &o.engines {
        let mut row = Row {
            engine: e,
            runs: Vec::new(),
            failure: None,
            skipped: None,
        };
        let (available, version, bin) = match e {
            BootEngine::VxJit | BootEngine::VxInterp => {
                let accel = if e == BootEngine::VxJit {
                    "jit"
                } else {
                    "interp"
                };
                // One release build serves both vx engines.
                let vx = Vx::new(&root, !built, accel);
                built = true;
                (vx.available(), vx.version(), Some(vx.bin().to_path_buf()))
            }
            BootEngine::Qemu => (
                qemu.available(),
                qemu.version(),
                qemu.bin().map(Path::to_path_buf),
            ),
        };
        let bin = match (available, bin) {
            (Ok(()), Some(b)) => b,
            (Err(why), _) => {
                row.skipped = Some(why);
                rows.push(row);
                continue;
            }
            (Ok(()), None) => {
                row.skipped = Some("not found".into());
                rows.push(row);
                continue;
            }
        };
        eprintln!("vx-bench boot: {}: {version}", e.name());
        for run in 0..o.runs {
            let mut cmd = Command::new(&bin);
            match e {
                BootEngine::VxJit | BootEngine::VxInterp => {
                    let accel = if e == BootEngine::VxJit {
                        "jit"
                    } else {
                        "interp"
                    };
                    cmd.arg("run")
                        .arg("--kernel")
                        .arg(&kernel)
                        .arg("--initrd")
                        .arg(&initrd)
                        .arg("--append")
                        .arg(&o.append)
                        .args(["--accel", accel, "--memory", &format!("{MEMORY_MIB}M")])
                        .args(["--serial", "stdio"]);
                }
                BootEngine::Qemu => {
                    cmd.args(["-accel", "tcg", "-m", &MEMORY_MIB.to_string()])
                        .args(["-nographic", "-no-reboot", "-kernel"])
                        .arg(&kernel)
                        .arg("-initrd")
                        .arg(&initrd)
                        .arg("-append")
                        .arg(&o.append);
                }
            }
            let tag = format!("{}-{run}", e.name());
            let stderr = scratch.join(format!("{tag}.stderr"));
            let log = scratch.join(format!("{tag}.console"));
            match run_once(cmd, timeout, &stderr, &log) {
                Ok(t) => {
                    eprintln!(
                        "vx-bench boot: {} run {}: boot {:.2} s, workload {:.2} s",
                        e.name(),
                        run + 1,
                        t.boot,
                        t.workload
                    );
                    row.runs.push(t);
                }
                Err(f) => {
                    eprintln!(
                        "vx-bench boot: {} run {}: FAILED: {}",
                        e.name(),
                        run + 1,
                        f.what
                    );
                    row.failure = Some(f);
                    break;
                }
            }
        }
        rows.push(row);
    }
    let table = render(&rows, &guest, &o.append, (&load_before, &load_average()));
    println!();
    print!("{table}");
    let results = out.join("boot-results.md");
    if std::fs::write(&results, &table).is_ok() {
        eprintln!("vx-bench boot: table written to {}", results.display());
    }
    if rows.iter().any(|r| r.failure.is_some()) {
        eprintln!(
            "vx-bench boot: consoles and stderr of the runs are in {}",
            scratch.display()
        );
        ExitCode::from(1)
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_echoed_command_does_not_match_done_marker() {
        // The shell echoes the typed command; only the command's output may end the wait.
        let cmd = workload_command();
        assert!(!cmd.contains(DONE_MARKER));
        assert!(!cmd.contains(READY_MARKER));
        assert!(!cmd.contains(MD5_OF_ZEROS));
    }

    #[test]
    fn test_summary_odd_even_and_empty() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).expect("three values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 3.0, 10.0]).expect("four values");
        assert_eq!((s.median, s.min, s.max), (3.5, 1.0, 10.0));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn test_ratio_of_medians() {
        let a = Summary::of(&[6.0, 9.0, 3.0]);
        let b = Summary::of(&[2.0, 3.0, 4.0]);
        assert_eq!(ratio(a, b), "2.00");
        assert_eq!(ratio(None, b), "n/a");
        assert_eq!(ratio(a, None), "n/a");
    }

    #[test]
    fn test_check_workload_accepts_and_rejects() {
        let want = loop_result(LOOP_ITERATIONS);
        let good = vec![
            "/ # dd if=/dev/zero ... echo $m-DONE $s".to_owned(),
            format!("{MD5_OF_ZEROS}  -"),
            format!("{DONE_MARKER} {want}"),
        ];
        assert_eq!(check_workload(&good), Ok(()));
        let mut wrong_sum = good.clone();
        wrong_sum[2] = format!("{DONE_MARKER} {}", want + 1);
        assert!(check_workload(&wrong_sum).is_err());
        let no_md5 = vec![good[0].clone(), good[2].clone()];
        assert!(check_workload(&no_md5).is_err());
    }

    /// The host's /bin/sh runs the same loop as the guest; the model must agree with it.
    #[test]
    fn test_loop_model_matches_host_shell() {
        let script = format!(
            "i=0; s=0; while [ $i -lt {LOOP_ITERATIONS} ]; do s=$(( (s*31+i) % 1000003 )); i=$((i+1)); done; echo $s"
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("host sh runs");
        let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(got, loop_result(LOOP_ITERATIONS).to_string());
    }

    /// The expected md5 is what the host's md5sum says of the same bytes.
    #[test]
    fn test_workload_md5_matches_host() {
        let script = format!(
            "dd if=/dev/zero bs=64k count={} 2>/dev/null | md5sum",
            MD5_MIB * 16
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("host sh runs");
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(got.starts_with(MD5_OF_ZEROS), "host md5sum says {got}");
    }

    #[test]
    fn test_render_reports_failure_without_numbers() {
        let rows = vec![
            Row {
                engine: BootEngine::VxJit,
                runs: Vec::new(),
                failure: Some(RunFailure {
                    what: "did not boot (timeout after 60 s)".into(),
                    tail: vec!["[    0.5] last words".into()],
                    stderr: Some("vx: the guest triple-faulted (shutdown)".into()),
                }),
                skipped: None,
            },
            Row {
                engine: BootEngine::Qemu,
                runs: vec![
                    RunTimes {
                        boot: 10.0,
                        workload: 2.0,
                    },
                    RunTimes {
                        boot: 12.0,
                        workload: 3.0,
                    },
                    RunTimes {
                        boot: 11.0,
                        workload: 2.5,
                    },
                ],
                failure: None,
                skipped: None,
            },
        ];
        let t = render(&rows, "flavour amd64", DEFAULT_APPEND, ("1.0", "2.0"));
        assert!(t.contains("| vx-jit | 0 | did not boot (timeout after 60 s) | | | | | |"));
        assert!(t.contains("| qemu | 3 | 11.00 | 10.00-12.00 | 2.50 | 2.00-3.00 | 1.00 | 1.00 |"));
        assert!(t.contains("    [    0.5] last words"));
        assert!(t.contains("  its stderr: vx: the guest triple-faulted"));
    }

    /// Run `script` under the host's sh as a stand-in guest: its stdout is the console,
    /// its stdin the keyboard, exactly as a VM's serial console on pipes.
    fn fake_guest(name: &str, script: &str, timeout: f64) -> Result<RunTimes, RunFailure> {
        let dir = std::env::temp_dir().join(format!("vx-bench-boot-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        let r = run_once(
            cmd,
            Duration::from_secs_f64(timeout),
            &dir.join("stderr"),
            &dir.join("console"),
        );
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    /// Boots, prompts, runs the typed workload with the host's dd, md5sum and sh, and
    /// exits 0 on `poweroff -f`.
    const GOOD_GUEST: &str = "echo 'vx-init: mounted proc'; echo VX-GUEST-READY; printf '/ # '; \
        read -r cmd; eval \"$cmd\"; printf '/ # '; read -r off; \
        [ \"$off\" = 'poweroff -f' ] && exit 0; exit 9";

    #[test]
    fn test_run_once_times_a_good_guest() {
        let t = fake_guest("good", GOOD_GUEST, 30.0).map_err(|f| f.what);
        let t = t.expect("the stand-in guest passes");
        assert!(t.boot >= 0.0 && t.boot < 30.0);
        assert!(t.workload > 0.0 && t.workload < 30.0);
    }

    #[test]
    fn test_run_once_reports_early_exit_with_stderr() {
        let f = fake_guest(
            "early",
            "echo '[    0.1] Decompressing'; echo 'vx: the guest triple-faulted (shutdown); registers:' >&2; exit 3",
            30.0,
        )
        .expect_err("no ready line");
        assert_eq!(f.what, "did not boot (exit status 3 before VX-GUEST-READY)");
        assert_eq!(f.tail, vec!["[    0.1] Decompressing"]);
        assert_eq!(
            f.stderr.as_deref(),
            Some("vx: the guest triple-faulted (shutdown)")
        );
    }

    #[test]
    fn test_run_once_reports_boot_timeout_with_last_lines() {
        let f = fake_guest(
            "hang",
            "for i in 1 2 3 4 5 6 7; do echo \"[    $i.0] step $i\"; done; printf 'stuck'; exec sleep 30",
            0.5,
        )
        .expect_err("never ready");
        assert_eq!(f.what, "did not boot (timeout after 0.5 s)");
        assert_eq!(
            f.tail,
            vec![
                "[    4.0] step 4",
                "[    5.0] step 5",
                "[    6.0] step 6",
                "[    7.0] step 7",
                "stuck"
            ]
        );
    }

    #[test]
    fn test_run_once_rejects_wrong_result_and_bad_exit() {
        // The loop's result is off by one: the wait ends at the marker, the check fails.
        let f = fake_guest(
            "wrong",
            "echo VX-GUEST-READY; printf '# '; read -r cmd; m=VX-BENCH; \
             echo '77377273b0a4b61febdbf7bbf52b9db9  -'; echo $m-DONE 1; exec sleep 30",
            10.0,
        )
        .expect_err("wrong result");
        assert!(
            f.what.starts_with("workload: the loop gave '1'"),
            "{}",
            f.what
        );
        let f = fake_guest("exit1", &GOOD_GUEST.replace("exit 0", "exit 1"), 30.0)
            .expect_err("exit status 1");
        assert_eq!(f.what, "exit status 1 after poweroff -f (expected 0)");
    }
}
