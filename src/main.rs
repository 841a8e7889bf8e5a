//! The `vx` binary: command-line parsing and the exit-status contract; everything else lives
//! in the library crates (cpu, accel, machine, firmware).

mod cli;
mod console;
mod info;
mod run;
mod signals;

use clap::Parser;

use cli::{Cli, Command, RunArgs};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            // One line, like every other usage error: clap's first line without its
            // "error: " prefix, and where to look for help.
            let text = e.to_string();
            let mut lines = text.lines();
            let first = lines.next().unwrap_or("bad command line");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // "...were not provided:" names the arguments on the following lines.
            let detail = match first.ends_with(':') {
                true => lines
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(", "),
                false => String::new(),
            };
            let sep = if detail.is_empty() { "" } else { " " };
            eprintln!("vx: {first}{sep}{detail} (see vx --help)");
            std::process::exit(run::EXIT_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            std::process::exit(0);
        }
    };
    let demo = test_roms::demo();
    let result = match cli.command {
        None => run::run(
            &RunArgs {
                accel: "auto".into(),
                memory: "32M".into(),
                serial: "stdio".into(),
                ..RunArgs::default()
            },
            Some(demo),
        ),
        Some(Command::Demo(d)) => run::run(
            &RunArgs {
                accel: d.accel,
                memory: "32M".into(),
                serial: "stdio".into(),
                stats: d.stats,
                trace: d.trace,
                ..RunArgs::default()
            },
            Some(demo),
        ),
        Some(Command::Run(args)) => run::run(&args, Some(demo)),
        Some(Command::Info) => std::process::exit(info::run()),
    };
    match result {
        Ok(status) => std::process::exit(status),
        Err(f) => {
            eprintln!("vx: {}", f.message);
            std::process::exit(f.status);
        }
    }
}
