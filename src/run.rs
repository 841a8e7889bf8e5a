//! `vx run`: build the board, pick the engine, wire the console, timeout and tracing, run the
//! guest, and turn how it stopped into vx's exit status.

use std::io::Write;
use std::time::{Duration, Instant};

use accel::AccelKind;
use machine::{Board, BoardConfig, StopReason};

use crate::cli::{RunArgs, parse_size};
use crate::console;

/// Exit status for bad command lines or unusable input files.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for internal host failures.
pub const EXIT_INTERNAL: i32 = 70;

/// A failure before or while running, with the exit status it maps to.
pub struct Failure {
    /// Exit status.
    pub status: i32,
    /// One line for stderr.
    pub message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        status: EXIT_USAGE,
        message: message.into(),
    }
}

enum Serial {
    Stdio,
    File(std::fs::File),
    None,
}

fn parse_serial(s: &str) -> Result<Serial, Failure> {
    match s {
        "stdio" => Ok(Serial::Stdio),
        "none" => Ok(Serial::None),
        _ => match s.strip_prefix("file:") {
            Some(path) if !path.is_empty() => std::fs::File::create(path)
                .map(Serial::File)
                .map_err(|e| usage(format!("cannot open serial output file {path}: {e}"))),
            _ => Err(usage(format!(
                "unknown --serial backend '{s}' (expected stdio, file:PATH or none)"
            ))),
        },
    }
}

fn trace_line(st: &cpu::CpuState, bytes: &[u8]) {
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
    let mut dec = Decoder::with_ip(st.code_bitness(), bytes, st.rip, DecoderOptions::NONE);
    let i = dec.decode();
    let mut text = String::new();
    IntelFormatter::new().format(&i, &mut text);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{:04x}:{:016x}  {:<30} {}",
        st.seg[1].selector, st.rip, hex, text
    );
}

/// Run a guest; `builtin` is the ROM used when no --bios is given.
pub fn run(args: &RunArgs, builtin: Option<Vec<u8>>) -> Result<i32, Failure> {
    let kind: AccelKind = args
        .accel
        .parse()
        .map_err(|e: accel::AccelError| usage(e.to_string()))?;
    let memory = parse_size(&args.memory).map_err(usage)?;
    // A Linux kernel is read and checked before anything is built, so that a bad file costs
    // one line and status 2.
    let linux = match &args.kernel {
        Some(k) => {
            let image = firmware::linux::BzImage::read(k).map_err(|e| usage(e.to_string()))?;
            let initrd = match &args.initrd {
                Some(p) => Some(firmware::linux::read_initrd(p).map_err(|e| usage(e.to_string()))?),
                None => None,
            };
            Some((image, initrd))
        }
        None => None,
    };
    let bios = match (&args.bios, &linux) {
        (Some(p), _) => Some(firmware::load_bios(p).map_err(|e| usage(e.to_string()))?),
        (None, Some(_)) => None,
        (None, None) => Some(builtin.ok_or_else(|| {
            usage("no guest given: pass --kernel FILE or --bios FILE (or run `vx` for the demo)")
        })?),
    };
    if let Some(t) = args.timeout
        && !(t.is_finite() && t > 0.0)
    {
        return Err(usage(format!(
            "--timeout must be a positive number of seconds, not {t}"
        )));
    }
    let serial = parse_serial(&args.serial)?;
    let serial_out: Option<Box<dyn Write + Send>> = match serial {
        Serial::Stdio => Some(Box::new(std::io::stdout())),
        Serial::File(f) => Some(Box::new(f)),
        Serial::None => None,
    };
    let board = Board::new(BoardConfig {
        memory,
        bios,
        serial_out,
        trace_post: args.trace,
    })
    .map_err(|e| Failure {
        status: if e.is_host_failure() {
            EXIT_INTERNAL
        } else {
            EXIT_USAGE
        },
        message: e.to_string(),
    })?;
    crate::signals::forward_to(board.control());
    let start = match &linux {
        Some((image, initrd)) => {
            let rsdp = firmware::install_acpi(board.ram()).map_err(|e| Failure {
                status: EXIT_INTERNAL,
                message: e.to_string(),
            })?;
            let (state, placed) = firmware::linux::load(
                board.ram(),
                image,
                initrd.as_deref(),
                args.append.as_deref().unwrap_or(""),
                rsdp,
            )
            .map_err(|e| usage(e.to_string()))?;
            tracing::info!("linux: {placed:?}");
            state
        }
        None => firmware::reset_state(),
    };
    let (mut vcpu, why) =
        accel::create_vcpu(kind, board.ram().clone(), accel::EntryMode::of(&start)).map_err(
            |e| Failure {
                status: if e.is_host_failure() {
                    EXIT_INTERNAL
                } else {
                    EXIT_USAGE
                },
                message: e.to_string(),
            },
        )?;
    tracing::info!("engine: {why}");
    vcpu.set_state(&start);
    if args.trace && !vcpu.set_trace(Some(Box::new(trace_line))) {
        eprintln!("vx: this engine cannot trace single instructions");
    }
    let control = board.control();
    if let Some(t) = args.timeout {
        let c = control.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(t));
            c.request_stop(StopReason::Timeout);
        });
    }
    let _raw = if matches!(args.serial.as_str(), "stdio") {
        let raw = console::RawMode::enable();
        console::spawn_input(board.com1(), control.clone(), raw.is_some());
        raw
    } else {
        None
    };
    let start = Instant::now();
    let reason = board.run(vcpu.as_mut()).map_err(|e| Failure {
        status: EXIT_INTERNAL,
        message: e.to_string(),
    })?;
    let elapsed = start.elapsed();
    drop(_raw);
    let _ = std::io::stdout().flush();
    match reason {
        StopReason::TripleFault => {
            eprintln!(
                "vx: the guest triple-faulted (shutdown); registers:\n{}",
                vcpu.get_state().dump()
            );
        }
        StopReason::HaltedForever => {
            eprintln!(
                "vx: the guest halted with nothing to wake it (no interrupt source on this board); registers:\n{}",
                vcpu.get_state().dump()
            );
        }
        StopReason::Timeout | StopReason::Signal(_) => {
            // Say where the guest was, so a hang is not silent (on KVM, a vCPU stuck in the
            // guest shows no exits but the kick that stopped it).
            let st = vcpu.get_state();
            let stats = vcpu.stats();
            let exits: Vec<String> = stats
                .counters
                .iter()
                .filter(|(k, v)| k.contains("exit") && *v > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let why = match reason {
                StopReason::Signal(n) => format!("stopped by signal {n}"),
                _ => "--timeout expired".to_string(),
            };
            eprintln!(
                "vx: {why}; the guest was at {:04x}:{:#x} ({}-bit code{}) after {} instructions{}",
                st.seg[1].selector,
                st.rip,
                st.code_bitness(),
                if st.halted { ", halted" } else { "" },
                stats.instructions,
                if exits.is_empty() {
                    String::new()
                } else {
                    format!(", {}", exits.join(", "))
                }
            );
        }
        _ => {}
    }
    if args.stats {
        print_stats(&vcpu.stats(), elapsed, &why);
    }
    Ok(reason.exit_status())
}

fn print_stats(s: &cpu::EngineStats, elapsed: Duration, why: &str) {
    let secs = elapsed.as_secs_f64();
    let mips = if secs > 0.0 {
        s.instructions as f64 / secs / 1e6
    } else {
        0.0
    };
    eprintln!("vx stats: engine {why}");
    eprintln!("  instructions      {}", s.instructions);
    eprintln!("  run time          {secs:.3} s");
    eprintln!("  speed             {mips:.1} MIPS");
    for (k, v) in &s.counters {
        eprintln!("  {k:<17} {v}");
    }
    if s.unimplemented.is_empty() {
        eprintln!("  unimplemented     none hit");
    } else {
        eprintln!("  unimplemented instructions hit (each raised #UD):");
        for (k, v) in &s.unimplemented {
            eprintln!("    {k:<15} {v}");
        }
    }
}
