//! The `vx` command line (see the README's "Command line" section; scripts depend on it).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// vx: an x86_64 full-system emulator (a reference interpreter, a Cranelift JIT, and KVM).
#[derive(Debug, Parser)]
#[command(name = "vx", version, about, long_about = None, after_help = EXIT_HELP)]
pub struct Cli {
    /// What to do (default: run the built-in demo guest).
    #[command(subcommand)]
    pub command: Option<Command>,
}

const EXIT_HELP: &str = "\
Exit status:
  0    the guest powered off (ACPI S5, Linux `poweroff`), or reset (vx does not reboot)
  2v+1 the guest wrote v to the debug-exit port 0xf4 (QEMU isa-debug-exit)
  2    bad command line or unusable input file
  3    the guest triple-faulted or halted for good (register dump on stderr)
  124  --timeout expired
  128+n  vx received signal n (SIGTERM, SIGINT, SIGHUP)
  70   internal host failure

On an interactive console, Ctrl-A x quits and Ctrl-A h lists the escapes.";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a guest.
    Run(RunArgs),
    /// Run the built-in demo guest (the same as `vx` with no arguments).
    Demo(DemoArgs),
    /// Show what this host offers: KVM API and capabilities, hardware virtualization or not,
    /// and which engine `--accel auto` would pick and why.
    Info,
}

/// Options of `vx run`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Execution engine: auto, interp, jit or kvm. auto picks KVM only where it is
    /// hardware-backed (VT-x/AMD-V), else the Cranelift JIT. A software-only KVM (kvm_pvm)
    /// runs only guests entering in 64-bit mode; VX_KVM_FORCE=1 tries other modes anyway
    /// (use with --timeout: such a guest may hang).
    #[arg(long, default_value = "auto")]
    pub accel: String,
    /// Guest memory size, e.g. 512M, 2G (suffixes K, M, G, T; plain numbers are bytes).
    #[arg(long, default_value = "512M")]
    pub memory: String,
    /// ROM image mapped to end at 4 GiB, its last 128 KiB also ending at 1 MiB; the CPU
    /// starts at F000:FFF0 (as QEMU -bios). Without it, the built-in demo ROM runs.
    #[arg(long, conflicts_with = "kernel")]
    pub bios: Option<PathBuf>,
    /// Linux bzImage to boot through the Linux boot protocol (64-bit entry, boot protocol
    /// 2.12 or later), with ACPI tables describing the machine.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Initial RAM disk handed to the --kernel (loaded high in memory below 4 GiB).
    #[arg(long, requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line for --kernel, e.g. "console=ttyS0".
    #[arg(long, requires = "kernel")]
    pub append: Option<String>,
    /// COM1 backend: stdio, file:PATH or none.
    #[arg(long, default_value = "stdio")]
    pub serial: String,
    /// Stop the guest after this many seconds (exit status 124).
    #[arg(long, allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    /// Print engine statistics at exit (instructions, MIPS, unimplemented instructions).
    #[arg(long)]
    pub stats: bool,
    /// Print one line per instruction (address, bytes, Intel syntax) and POST codes to stderr.
    #[arg(long)]
    pub trace: bool,
}

/// Options of `vx demo`.
#[derive(Debug, Args, Default)]
pub struct DemoArgs {
    /// Execution engine.
    #[arg(long, default_value = "auto")]
    pub accel: String,
    /// Print engine statistics at exit.
    #[arg(long)]
    pub stats: bool,
    /// Print one line per instruction to stderr.
    #[arg(long)]
    pub trace: bool,
}

/// Parse a memory size like `512M`, `2G`, `65536`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(format!(
                        "malformed memory size '{s}': unknown suffix '{c}' (use K, M, G or T)"
                    ));
                }
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("malformed memory size '{s}' (examples: 512M, 2G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("memory size '{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_size_accepts_suffixes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1K"), Ok(1024));
    }

    #[test]
    fn test_parse_size_rejects_garbage() {
        assert!(parse_size("").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
