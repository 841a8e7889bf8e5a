//! `vx-bench`: build the benchmark ROMs, time them on vx's interpreter and JIT and on peer
//! emulators (QEMU TCG, Bochs), and print a table of wall time, guest instructions, MIPS and
//! ratios.
//!
//! Usage: `cargo run --release -p vx-bench -- [--quick] [--runs N] [--passes N]
//! [--crc-passes N] [--engines vx,vx-jit,qemu,bochs] [--no-build]`; `vx-bench kvm [...]` runs the KVM / interpreter /
//! JIT comparison of kvm.rs instead; `vx-bench boot [...]` the Linux boot of boot.rs. See
//! docs/benchmarks.md.

mod boot;
mod crc_sieve;
mod engines;
mod guest64;
mod kvm;
mod rom;

use std::path::PathBuf;
use std::process::ExitCode;

use engines::{Engine, Outcome, Variant};

/// Workload passes for the full run (about 4.87 million guest instructions each).
const FULL_PASSES: u32 = 160;
/// Workload passes with `--quick`.
const QUICK_PASSES: u32 = 16;
/// CRC passes of the crc-sieve variant for the full run (about 9.7 million guest
/// instructions each, plus about 59 million for the table and the sieve).
const CRC_FULL_PASSES: u32 = 60;
/// CRC passes of the crc-sieve variant with `--quick`.
const CRC_QUICK_PASSES: u32 = 2;

struct Options {
    quick: bool,
    runs: usize,
    passes: Option<u32>,
    crc_passes: Option<u32>,
    engines: Vec<String>,
    build: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: vx-bench [--quick] [--runs N] [--passes N] [--engines vx,vx-jit,qemu,bochs] [--no-build]\n\
         \n\
         --quick       {QUICK_PASSES} passes instead of {FULL_PASSES}, one run per engine\n\
         --runs N      runs per engine and variant; the median is reported (default 3)\n\
         --passes N    workload passes of the main variant\n\
         --crc-passes N  CRC passes of the crc-sieve variant (default {CRC_FULL_PASSES}, {CRC_QUICK_PASSES} with --quick)\n\
         --engines L   comma-separated subset of vx,vx-jit,qemu,bochs (default all; vx is the interpreter)\n\
         --no-build    do not run `cargo build --release -p vx` first"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        quick: false,
        runs: 3,
        passes: None,
        crc_passes: None,
        engines: vec!["vx".into(), "vx-jit".into(), "qemu".into(), "bochs".into()],
        build: true,
    };
    let mut runs = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("vx-bench: {name} needs a value");
                usage()
            })
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--runs" => runs = Some(value("--runs").parse().unwrap_or_else(|_| usage())),
            "--passes" => o.passes = Some(value("--passes").parse().unwrap_or_else(|_| usage())),
            "--crc-passes" => {
                o.crc_passes = Some(value("--crc-passes").parse().unwrap_or_else(|_| usage()))
            }
            "--engines" => o.engines = value("--engines").split(',').map(str::to_owned).collect(),
            "--no-build" => o.build = false,
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("vx-bench: unknown argument '{a}'");
                usage()
            }
        }
    }
    o.runs = runs.unwrap_or(if o.quick { 1 } else { 3 }).max(1);
    o
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

/// Results of one engine on one variant.
struct Row {
    engine: &'static str,
    variant: &'static str,
    times: Vec<f64>,
    cpu: Vec<f64>,
    failure: Option<String>,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("kvm") {
        return kvm::main(std::env::args().skip(2));
    }
    if std::env::args().nth(1).as_deref() == Some("boot") {
        return boot::main(std::env::args().skip(2));
    }
    let o = parse_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    // ROMs go to target/bench (named by pass count, written atomically); serial output, logs
    // and configs to a directory of this process, so concurrent invocations do not collide.
    let out = root.join("target/bench");
    let scratch = out.join(format!("run-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        eprintln!("vx-bench: cannot create {}: {e}", scratch.display());
        return ExitCode::from(1);
    }
    let passes = o
        .passes
        .unwrap_or(if o.quick { QUICK_PASSES } else { FULL_PASSES });
    let crc_passes = o.crc_passes.unwrap_or(if o.quick {
        CRC_QUICK_PASSES
    } else {
        CRC_FULL_PASSES
    });
    type Model = fn(u32) -> rom::Reference;
    type Builder = fn(u32) -> Result<Vec<u8>, iced_x86::IcedError>;
    let variants: [(&str, u32, Model, Builder); 3] = [
        ("startup", 1u32, rom::reference, rom::build),
        ("workload", passes, rom::reference, rom::build),
        (
            "crc-sieve",
            crc_passes,
            crc_sieve::reference,
            crc_sieve::build,
        ),
    ];
    let mut built = Vec::new();
    let mut models = Vec::new();
    for (name, p, model, build) in variants {
        models.push(model(p));
        let image = match build(p) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("vx-bench: assembling the ROM failed: {e}");
                return ExitCode::from(1);
            }
        };
        let path = out.join(format!("{name}-{p}.rom"));
        let tmp = scratch.join("rom.tmp");
        if let Err(e) = std::fs::write(&tmp, &image).and_then(|()| std::fs::rename(&tmp, &path)) {
            eprintln!("vx-bench: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
        eprintln!(
            "vx-bench: wrote {} ({p} pass{})",
            path.display(),
            if p == 1 { "" } else { "es" }
        );
        built.push(Variant {
            name,
            passes: p,
            rom: path,
        });
    }

    let mut engines: Vec<Box<dyn Engine>> = Vec::new();
    for name in &o.engines {
        match name.as_str() {
            "vx" => engines.push(Box::new(engines::Vx::new(&root, o.build, "interp"))),
            "vx-jit" => engines.push(Box::new(engines::Vx::new(
                &root,
                o.build && !o.engines.iter().any(|e| e == "vx"),
                "jit",
            ))),
            "qemu" => engines.push(Box::new(engines::Qemu::new())),
            "bochs" => engines.push(Box::new(engines::Bochs::new())),
            other => {
                eprintln!("vx-bench: unknown engine '{other}' (expected vx, vx-jit, qemu, bochs)");
                usage()
            }
        }
    }

    // Guest instruction counts, from vx --stats (the same ROM executes the same instructions
    // on every engine).
    let mut counts: Vec<Option<u64>> = vec![None; built.len()];
    let mut rows = Vec::new();
    for e in &engines {
        if let Err(why) = e.available() {
            println!("{:<6} skipped: {why}", e.name());
            continue;
        }
        eprintln!("vx-bench: {}: {}", e.name(), e.version());
        for (vi, v) in built.iter().enumerate() {
            let mut row = Row {
                engine: e.name(),
                variant: v.name,
                times: Vec::new(),
                cpu: Vec::new(),
                failure: None,
            };
            for run in 0..o.runs {
                let serial = scratch.join(format!("{}-{}-{run}.serial", e.name(), v.name));
                match e.run(v, &serial, &scratch) {
                    Outcome::Ok {
                        seconds,
                        cpu_seconds,
                        instructions,
                    } => {
                        eprintln!(
                            "vx-bench: {} {} run {}: {seconds:.3} s wall, {cpu_seconds:.3} s CPU",
                            e.name(),
                            v.name,
                            run + 1
                        );
                        row.times.push(seconds);
                        row.cpu.push(cpu_seconds);
                        if let Some(n) = instructions {
                            if counts[vi].is_some_and(|c| c != n) {
                                eprintln!(
                                    "vx-bench: warning: instruction count changed between runs ({n})"
                                );
                            }
                            counts[vi] = Some(n);
                        }
                    }
                    Outcome::Failed(why) => {
                        eprintln!(
                            "vx-bench: {} {} run {}: FAILED: {why}",
                            e.name(),
                            v.name,
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

    // Cross-check vx's count against the host model: the pass loops must differ by exactly
    // what the model says (setup and report are the same in both ROMs).
    // The crc-sieve ROM shares the boot path, prologue and report with them: its count less
    // the model's workload count, hex letters and its own fixed instructions must equal the
    // startup ROM's.
    let shared = |c: u64, m: &rom::Reference| {
        c.wrapping_sub(m.loop_instructions + m.hex_letters() + m.fixed_instructions)
    };
    let crc_check = match (counts[0], counts[2]) {
        (Some(a), Some(c)) if shared(a, &models[0]) == shared(c, &models[2]) => {
            "vx's crc-sieve count matches the host model exactly".to_owned()
        }
        (Some(a), Some(c)) => format!(
            "WARNING: vx's crc-sieve count is {c}; the host model and the startup ROM's shared setup and report say {}",
            c.wrapping_sub(shared(c, &models[2]))
                .wrapping_add(shared(a, &models[0]))
        ),
        _ => {
            if counts[2].is_none() {
                counts[2] = Some(models[2].loop_instructions);
            }
            "no vx count for crc-sieve: using the host model's workload count".to_owned()
        }
    };
    let check = match (counts[0], counts[1]) {
        (Some(a), Some(b)) => {
            let model_of = |m: &rom::Reference| m.loop_instructions + m.hex_letters();
            let model = model_of(&models[1]) - model_of(&models[0]);
            if b - a == model {
                format!(
                    "vx's count matches the host model exactly (the pass loop, plus {} instructions of setup and report)",
                    a - models[0].loop_instructions
                )
            } else {
                format!(
                    "WARNING: vx counted {} more instructions for the workload than for startup; the host model says {model}",
                    b - a
                )
            }
        }
        _ => {
            for (c, m) in counts.iter_mut().zip(&models).take(2) {
                *c = Some(m.loop_instructions);
            }
            "no vx count: using the host model's pass-loop count (setup and report not included)"
                .to_owned()
        }
    };

    let mut table = String::new();
    let mut line = |l: String| {
        table.push_str(&l);
        table.push('\n');
    };
    line("| variant | engine | passes | median wall (s) | wall, each run (s) | median CPU (s) | guest instructions | MIPS (wall) | vx speed / engine speed |".into());
    line("|---|---|---:|---:|---|---:|---:|---:|---:|".into());
    let mut failed = false;
    for (vi, v) in built.iter().enumerate() {
        let vx_time = rows
            .iter()
            .find(|r| r.engine == "vx" && r.variant == v.name && r.failure.is_none())
            .map(|r| median(&r.times));
        for r in rows.iter().filter(|r| r.variant == v.name) {
            if let Some(f) = &r.failure {
                failed = true;
                line(format!(
                    "| {} | {} | {} | failed: {f} | | | | | |",
                    v.name, r.engine, v.passes
                ));
                continue;
            }
            let t = median(&r.times);
            let runs: Vec<String> = r.times.iter().map(|t| format!("{t:.2}")).collect();
            let (n, mips) = match counts[vi] {
                Some(n) => (n.to_string(), format!("{:.1}", n as f64 / t / 1e6)),
                None => ("?".into(), "?".into()),
            };
            let ratio = match vx_time {
                Some(vt) => format!("{:.2}", t / vt),
                None => "?".into(),
            };
            line(format!(
                "| {} | {} | {} | {t:.3} | {} | {:.3} | {n} | {mips} | {ratio} |",
                v.name,
                r.engine,
                v.passes,
                runs.join(", "),
                median(&r.cpu)
            ));
        }
    }
    // Fixed cost and steady-state speed, from the two variants (the workload ROM runs
    // passes - 1 more passes than the startup ROM). CPU time, not wall time: on a busy
    // machine a 0.1 s wall time can easily double, CPU time much less so.
    if let (Some(ns), Some(nw)) = (counts[0], counts[1])
        && built[1].passes > built[0].passes
    {
        line(String::new());
        line("From median CPU times (user + system, all threads):".into());
        line(String::new());
        line("| engine | CPU per pass (s) | fixed cost: startup CPU - one pass (s) | steady-state MIPS (CPU) |".into());
        line("|---|---:|---:|---:|".into());
        for e in &engines {
            let find = |v: &str| {
                rows.iter()
                    .find(|r| r.engine == e.name() && r.variant == v && r.failure.is_none())
            };
            let (Some(rs), Some(rw)) = (find("startup"), find("workload")) else {
                continue;
            };
            let (cs, cw) = (median(&rs.cpu), median(&rw.cpu));
            let extra = f64::from(built[1].passes - built[0].passes);
            let per_pass = (cw - cs) / extra;
            line(format!(
                "| {} | {per_pass:.4} | {:.3} | {:.1} |",
                e.name(),
                cs - per_pass,
                (nw - ns) as f64 / (cw - cs) / 1e6
            ));
        }
    }
    line(String::new());
    line(
        "MIPS = guest instructions (counted by vx --stats) / median wall-clock time of the whole"
            .into(),
    );
    line(
        "process. vx speed / engine speed = engine time / vx time (above 1: vx is faster).".into(),
    );
    line(format!("Instruction count: {check}; {crc_check}."));
    println!();
    print!("{table}");
    let results = out.join("results.md");
    if std::fs::write(&results, &table).is_ok() {
        eprintln!("vx-bench: table written to {}", results.display());
    }
    if failed {
        eprintln!(
            "vx-bench: logs of the failed runs are in {}",
            scratch.display()
        );
        ExitCode::from(1)
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
        ExitCode::SUCCESS
    }
}
