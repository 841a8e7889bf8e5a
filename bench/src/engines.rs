//! The engines the benchmark times: vx's interpreter, QEMU TCG and Bochs, each run as a
//! separate process and timed wall-clock from spawn to exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single run may take before it is killed and reported as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// One ROM to run.
#[derive(Debug)]
pub struct Variant {
    /// Short name: `startup` or `workload`.
    pub name: &'static str,
    /// Workload passes built into the ROM.
    pub passes: u32,
    /// The ROM image.
    pub rom: PathBuf,
}

/// How one run went.
#[derive(Debug)]
pub enum Outcome {
    /// The guest printed the right checksum and the engine exited.
    Ok {
        /// Wall-clock seconds from spawn to exit.
        seconds: f64,
        /// User plus system CPU seconds of the process (all its threads).
        cpu_seconds: f64,
        /// Guest instructions, when the engine counts them.
        instructions: Option<u64>,
    },
    /// Something went wrong (message for the table).
    Failed(String),
}

/// An emulator that can run the benchmark ROM.
pub trait Engine {
    /// Short name for the table.
    fn name(&self) -> &'static str;
    /// `Err(reason)` when the engine cannot run here.
    fn available(&self) -> Result<(), String>;
    /// One line saying which version runs.
    fn version(&self) -> String;
    /// Run `v` once, COM1 going to `serial`; `dir` is for scratch files.
    fn run(&self, v: &Variant, serial: &Path, dir: &Path) -> Outcome;
}

/// Where `prog` is on PATH, if anywhere.
fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// User plus system CPU seconds of all waited-for children of this process so far.
fn children_cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the buffer we pass, which is large enough
    // and (zeroed) valid for that type; RUSAGE_CHILDREN is a valid `who`.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A finished process.
struct Finished {
    seconds: f64,
    cpu_seconds: f64,
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Spawn `cmd` with stdin closed and stdout/stderr to files in `dir`, wait (at most
/// RUN_TIMEOUT), and time it.
fn timed(mut cmd: Command, dir: &Path, tag: &str) -> Result<Finished, String> {
    let out_path = dir.join(format!("{tag}.stdout"));
    let err_path = dir.join(format!("{tag}.stderr"));
    let out =
        std::fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let err =
        std::fs::File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let cpu_before = children_cpu_seconds();
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {
                if start.elapsed() > RUN_TIMEOUT {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("timed out after {} s", RUN_TIMEOUT.as_secs()));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("wait failed: {e}")),
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(Finished {
        seconds,
        cpu_seconds: children_cpu_seconds() - cpu_before,
        status: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    })
}

/// Check the guest's COM1 output: the checksum line must end in `ok`.
fn check_serial(serial: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(serial).map_err(|e| format!("no serial output ({e})"))?;
    match text.lines().find(|l| l.contains("vx-bench: checksum")) {
        Some(l) if l.trim_end().ends_with(" ok") => Ok(()),
        Some(l) => Err(format!("guest reported: {}", l.trim())),
        None => Err(format!(
            "no checksum line on COM1 (got {:?})",
            text.chars().take(200).collect::<String>()
        )),
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// vx's interpreter: `vx run --bios ROM --accel interp --serial file:... --stats`.
#[derive(Debug)]
pub struct Vx {
    root: PathBuf,
    bin: PathBuf,
    build: bool,
    /// `interp` (engine name "vx") or `jit` (engine name "vx-jit").
    accel: &'static str,
}

impl Vx {
    /// vx from `root/target/release/vx`, built first when `build` (or when missing).
    pub fn new(root: &Path, build: bool, accel: &'static str) -> Vx {
        Vx {
            root: root.to_path_buf(),
            bin: root.join("target/release/vx"),
            build,
            accel,
        }
    }

    /// The vx binary this engine runs (`root/target/release/vx`).
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

impl Engine for Vx {
    fn name(&self) -> &'static str {
        if self.accel == "jit" { "vx-jit" } else { "vx" }
    }

    fn available(&self) -> Result<(), String> {
        if self.build || !self.bin.is_file() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            eprintln!("vx-bench: cargo build --release -p vx");
            let st = Command::new(cargo)
                .args(["build", "--release", "-p", "vx"])
                .current_dir(&self.root)
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !st.success() {
                return Err("`cargo build --release -p vx` failed".into());
            }
        }
        if self.bin.is_file() {
            Ok(())
        } else {
            Err(format!("{} not found", self.bin.display()))
        }
    }

    fn version(&self) -> String {
        let rev = Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .current_dir(&self.root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let engine = if self.accel == "jit" {
            "Cranelift JIT"
        } else {
            "interpreter"
        };
        format!("{} (git {rev}, {engine})", self.bin.display())
    }

    fn run(&self, v: &Variant, serial: &Path, dir: &Path) -> Outcome {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("--bios")
            .arg(&v.rom)
            .args(["--accel", self.accel, "--stats", "--serial"])
            .arg(format!("file:{}", serial.display()));
        let f = match timed(cmd, dir, &format!("{}-{}", self.name(), v.name)) {
            Ok(f) => f,
            Err(e) => return Outcome::Failed(e),
        };
        if f.status != Some(1) {
            return Outcome::Failed(format!(
                "exit status {:?} (expected 1): {}",
                f.status,
                last_lines(&f.stderr, 4)
            ));
        }
        if let Err(e) = check_serial(serial) {
            return Outcome::Failed(e);
        }
        let instructions = f.stderr.lines().find_map(|l| {
            let l = l.trim();
            l.strip_prefix("instructions")
                .and_then(|n| n.trim().parse().ok())
        });
        Outcome::Ok {
            seconds: f.seconds,
            cpu_seconds: f.cpu_seconds,
            instructions,
        }
    }
}

/// QEMU TCG: `qemu-system-x86_64 -accel tcg -bios ROM ... -device isa-debug-exit`.
#[derive(Debug)]
pub struct Qemu {
    bin: Option<PathBuf>,
}

impl Qemu {
    /// qemu-system-x86_64 from PATH.
    pub fn new() -> Qemu {
        Qemu {
            bin: which("qemu-system-x86_64"),
        }
    }

    /// Where qemu-system-x86_64 is, when it is on PATH.
    pub fn bin(&self) -> Option<&Path> {
        self.bin.as_deref()
    }
}

impl Engine for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn available(&self) -> Result<(), String> {
        match &self.bin {
            Some(_) => Ok(()),
            None => Err(
                "qemu-system-x86_64 not on PATH (Debian: apt-get install qemu-system-x86)".into(),
            ),
        }
    }

    fn version(&self) -> String {
        let Some(bin) = &self.bin else {
            return String::new();
        };
        Command::new(bin)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }

    fn run(&self, v: &Variant, serial: &Path, dir: &Path) -> Outcome {
        let Some(bin) = &self.bin else {
            return Outcome::Failed("not installed".into());
        };
        let mut cmd = Command::new(bin);
        cmd.args(["-accel", "tcg", "-bios"])
            .arg(&v.rom)
            .args(["-display", "none", "-serial"])
            .arg(format!("file:{}", serial.display()))
            .args([
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=1",
                "-m",
                "64",
                "-no-reboot",
            ]);
        let f = match timed(cmd, dir, &format!("qemu-{}", v.name)) {
            Ok(f) => f,
            Err(e) => return Outcome::Failed(e),
        };
        if f.status != Some(1) {
            return Outcome::Failed(format!(
                "exit status {:?} (expected 1): {}",
                f.status,
                last_lines(&f.stderr, 4)
            ));
        }
        match check_serial(serial) {
            Ok(()) => Outcome::Ok {
                seconds: f.seconds,
                cpu_seconds: f.cpu_seconds,
                instructions: None,
            },
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// Bochs (Debian's build, with the internal debugger): a generated bochsrc, a debugger
/// command file that continues, and the guest stops it through the shutdown port 0x8900.
#[derive(Debug)]
pub struct Bochs {
    bin: Option<PathBuf>,
}

impl Bochs {
    /// bochs from PATH.
    pub fn new() -> Bochs {
        Bochs {
            bin: which("bochs"),
        }
    }
}

/// A 2 KiB option ROM that does nothing (signature, size, `retf`, checksum byte).
fn vga_stub() -> Vec<u8> {
    let mut rom = vec![0u8; 2048];
    rom[..4].copy_from_slice(&[0x55, 0xaa, 4, 0xcb]);
    let sum = rom.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    rom[2047] = sum.wrapping_neg();
    rom
}

/// The CPU model Bochs emulates: a 64-bit one, so the ROM can enter long mode.
pub const BOCHS_CPU: &str = "corei7_sandy_bridge_2600k";

impl Engine for Bochs {
    fn name(&self) -> &'static str {
        "bochs"
    }

    fn available(&self) -> Result<(), String> {
        let Some(bin) = &self.bin else {
            return Err(
                "bochs not on PATH (Debian: apt-get install bochs bochsbios bochs-term)".into(),
            );
        };
        // The debugger build needs `-rc`; a build without x86-64 lacks 64-bit CPU models.
        let cpus = Command::new(bin)
            .args(["--help", "cpu"])
            .output()
            .map_err(|e| format!("cannot run bochs: {e}"))?;
        let text = String::from_utf8_lossy(&cpus.stdout).into_owned()
            + &String::from_utf8_lossy(&cpus.stderr);
        if !text.contains(BOCHS_CPU) {
            return Err(format!(
                "this bochs has no {BOCHS_CPU} CPU model (built without x86-64?)"
            ));
        }
        Ok(())
    }

    fn version(&self) -> String {
        let Some(bin) = &self.bin else {
            return String::new();
        };
        Command::new(bin)
            .arg("--help")
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.lines()
                    .find(|l| l.contains("Bochs x86 Emulator"))
                    .map(|l| l.trim().to_owned())
            })
            .unwrap_or_default()
    }

    fn run(&self, v: &Variant, serial: &Path, dir: &Path) -> Outcome {
        let Some(bin) = &self.bin else {
            return Outcome::Failed("not installed".into());
        };
        let rc = dir.join(format!("bochsrc-{}", v.name));
        let cmds = dir.join("bochs-debugger-commands");
        let log = dir.join(format!("bochs-{}.log", v.name));
        let _ = std::fs::remove_file(serial);
        // No address: Bochs maps the image to end at 4 GiB (where the reset vector is) and
        // aliases the BIOS area below 1 MiB; `address=0xf0000` would leave 0xFFFFFFF0 empty.
        // The VGA ROM is never run (this BIOS scans no option ROMs), but Bochs insists on
        // loading one and Debian keeps it in the optional vgabios package: use a stub.
        let vga = dir.join("bochs-vga-stub.rom");
        let text = format!(
            "megs: 64\n\
             romimage: file={rom}\n\
             vgaromimage: file={vga}\n\
             display_library: rfb, options=\"timeout=0\"\n\
             cpu: model={BOCHS_CPU}, count=1, ips=100000000, reset_on_triple_fault=0\n\
             clock: sync=none\n\
             speaker: enabled=0\n\
             log: {log}\n\
             panic: action=fatal\n\
             error: action=report\n\
             info: action=report\n\
             debug: action=ignore\n\
             com1: enabled=1, mode=file, dev={serial}\n",
            rom = v.rom.display(),
            vga = vga.display(),
            log = log.display(),
            serial = serial.display(),
        );
        let written = std::fs::write(&rc, text)
            .and_then(|()| std::fs::write(&cmds, "c\nquit\n"))
            .and_then(|()| std::fs::write(&vga, vga_stub()));
        if let Err(e) = written {
            return Outcome::Failed(format!("cannot write bochs config: {e}"));
        }
        let mut cmd = Command::new(bin);
        cmd.arg("-q")
            .arg("-f")
            .arg(&rc)
            .arg("-rc")
            .arg(&cmds)
            .current_dir(dir);
        let f = match timed(cmd, dir, &format!("bochs-{}", v.name)) {
            Ok(f) => f,
            Err(e) => return Outcome::Failed(e),
        };
        match check_serial(serial) {
            Ok(()) => Outcome::Ok {
                seconds: f.seconds,
                cpu_seconds: f.cpu_seconds,
                instructions: None,
            },
            Err(e) => Outcome::Failed(format!(
                "{e}; exit status {:?}; {}",
                f.status,
                last_lines(&(f.stdout + &f.stderr), 3)
            )),
        }
    }
}
