//! The serial console of a VM under `vx-bench boot`: the process with its console on
//! pipes, a reader thread, line splitting that does not care where reads cut the bytes, and
//! the console tail and stderr line a failure report shows. Terminal escapes are stripped as
//! ECMA-48 §5.4 control sequences (ESC [ parameters, then a final letter).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Console lines shown for a run that failed.
pub(crate) const TAIL_LINES: usize = 5;

/// Splits console bytes into lines, however the reads cut them: complete lines (without the
/// `\r\n` or `\n`) come out of `feed`, the unterminated rest stays in `partial`, and the last
/// few lines are kept for failure reports.
#[derive(Debug, Default)]
pub(crate) struct ConsoleLines {
    partial: Vec<u8>,
    tail: Vec<String>,
}

impl ConsoleLines {
    /// Add `bytes`; returns the lines they completed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial)
                    .trim_end_matches('\r')
                    .to_owned();
                self.partial.clear();
                if !clean_line(&line).is_empty() {
                    self.tail.push(line.clone());
                    if self.tail.len() > TAIL_LINES {
                        self.tail.remove(0);
                    }
                }
                done.push(line);
            } else {
                self.partial.push(b);
            }
        }
        done
    }

    /// The text after the last newline (a shell prompt waits here).
    pub(crate) fn partial(&self) -> String {
        String::from_utf8_lossy(&self.partial).into_owned()
    }

    /// The last `TAIL_LINES` non-blank lines, the unterminated rest included, without
    /// escape sequences.
    pub(crate) fn tail(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .tail
            .iter()
            .map(|l| clean_line(l))
            .filter(|l| !l.is_empty())
            .collect();
        let rest = clean_line(&self.partial());
        if !rest.is_empty() {
            t.push(rest);
        }
        let skip = t.len().saturating_sub(TAIL_LINES);
        t.split_off(skip)
    }
}

/// Why a run has no times: the table's text and the console's last lines.
#[derive(Debug)]
pub(crate) struct RunFailure {
    /// What went wrong, for the table.
    pub(crate) what: String,
    /// The console's last lines.
    pub(crate) tail: Vec<String>,
    /// The engine's own word on why it stopped (see `stderr_hint`), if it said anything.
    pub(crate) stderr: Option<String>,
}

/// `l` without terminal escape sequences (ESC [ ... final letter) and other control
/// characters, trimmed: console and stderr lines as a report shows them.
pub(crate) fn clean_line(l: &str) -> String {
    let mut out = String::new();
    let mut chars = l.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-letter (colours, cursor moves, ESC[6n queries).
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// The line of an engine's stderr that best says why it stopped: vx's first `vx:` line
/// (triple fault, timeout, bad option; without a trailing "; registers:"), with the last
/// warning logged before it (an unimplemented instruction, typically); else the last
/// non-blank line.
pub(crate) fn stderr_hint(text: &str) -> Option<String> {
    let lines: Vec<String> = text
        .lines()
        .map(clean_line)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(at) = lines.iter().position(|l| l.starts_with("vx:")) else {
        return lines.last().cloned();
    };
    let said = lines[at].trim_end_matches("; registers:");
    let warned = lines[..at]
        .iter()
        .rev()
        .find(|l| l.starts_with("WARN") || l.starts_with("ERROR"));
    Some(match warned {
        Some(w) => format!("{said} (last warning: {w})"),
        None => said.to_owned(),
    })
}

/// What ended a wait on the console.
pub(crate) enum WaitEnd {
    /// The deadline passed.
    Timeout,
    /// The console closed (the process ended).
    Closed,
}

/// A running VM: its stdin, the console lines read from its stdout by a thread, and a log.
pub(crate) struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<(Instant, Vec<u8>)>,
    /// Complete lines read but not yet looked at by a `wait`.
    pending: VecDeque<String>,
    /// When the newest console bytes were read.
    last_read: Instant,
    console: ConsoleLines,
    log: Option<std::fs::File>,
    stderr_path: PathBuf,
}

impl Session {
    /// Start `cmd`; stderr goes to `stderr_path`, the console to `log_path` as well.
    pub(crate) fn spawn(
        mut cmd: Command,
        stderr_path: &Path,
        log_path: &Path,
    ) -> Result<Session, String> {
        let err = std::fs::File::create(stderr_path)
            .map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(err);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().ok_or("the child has no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        // Each chunk carries the time it was read, so a busy main thread does not stretch
        // the measured times.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match std::io::Read::read(&mut stdout, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Session {
            child,
            stdin,
            rx,
            pending: VecDeque::new(),
            last_read: Instant::now(),
            console: ConsoleLines::default(),
            log: std::fs::File::create(log_path).ok(),
            stderr_path: stderr_path.to_path_buf(),
        })
    }

    /// Read the console until `done` accepts a complete line (returns the time of the read
    /// that completed it, and every line of this wait) or `prompt` is in the unterminated
    /// rest (when given).
    pub(crate) fn wait(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&str) -> bool,
        prompt: Option<&str>,
    ) -> Result<(Instant, Vec<String>), WaitEnd> {
        let mut seen = Vec::new();
        loop {
            // Lines and a prompt that came with an earlier read count first: one read often
            // carries the marker line and the prompt after it.
            while let Some(line) = self.pending.pop_front() {
                let hit = done(&line);
                seen.push(line);
                if hit {
                    return Ok((self.last_read, seen));
                }
            }
            if prompt.is_some_and(|p| self.console.partial().contains(p)) {
                return Ok((self.last_read, seen));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, bytes) = match self.rx.recv_timeout(left) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => return Err(WaitEnd::Timeout),
                Err(RecvTimeoutError::Disconnected) => return Err(WaitEnd::Closed),
            };
            if let Some(log) = &mut self.log {
                let _ = log.write_all(&bytes);
            }
            self.last_read = at;
            self.pending.extend(self.console.feed(&bytes));
        }
    }

    /// Type `text` into the guest's console.
    pub(crate) fn send(&mut self, text: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin already closed")?;
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to the console: {e}"))
    }

    /// Wait for the process to exit (draining the console); `None` at the deadline.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.drain();
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.drain();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Close the console's input (an engine that ignored `poweroff -f` then sees EOF).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Take whatever console output is queued, without waiting.
    pub(crate) fn drain(&mut self) {
        while let Ok((_, bytes)) = self.rx.try_recv() {
            if let Some(log) = &mut self.log {
                let _ = log.write_all(&bytes);
            }
            self.console.feed(&bytes);
        }
    }

    /// A failure with the console's last lines and the stderr hint; kills the process if
    /// it still runs.
    pub(crate) fn fail(&mut self, what: String) -> RunFailure {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.drain();
        RunFailure {
            what,
            tail: self.console.tail(),
            stderr: std::fs::read_to_string(&self.stderr_path)
                .ok()
                .and_then(|t| stderr_hint(&t)),
        }
    }

    /// Text for a process that ended early: its exit status.
    pub(crate) fn ended(&mut self) -> String {
        match self.wait_exit(Instant::now() + Duration::from_secs(5)) {
            Some(st) => match st.code() {
                Some(c) => format!("exit status {c}"),
                None => format!("{st}"),
            },
            None => "console closed".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marker the guest's /init prints.
    const READY: &str = "VX-GUEST-READY";

    #[test]
    fn test_console_lines_join_partial_reads() {
        let mut c = ConsoleLines::default();
        assert!(c.feed(b"vx-init: mod").is_empty());
        assert!(c.feed(b"ule virtio: loaded\r").is_empty());
        assert_eq!(
            c.feed(b"\nVX-GUEST-RE"),
            vec!["vx-init: module virtio: loaded"]
        );
        assert_eq!(c.partial(), "VX-GUEST-RE");
        assert_eq!(c.feed(b"ADY\r\n\r\n/ # "), vec!["VX-GUEST-READY", ""]);
        assert_eq!(c.partial(), "/ # ");
    }

    #[test]
    fn test_console_lines_marker_split_byte_by_byte() {
        let mut c = ConsoleLines::default();
        let mut found = Vec::new();
        for b in b"noise\r\nxx VX-GUEST-READY\r\nmore" {
            found.extend(c.feed(std::slice::from_ref(b)));
        }
        let hits: Vec<_> = found.iter().filter(|l| l.contains(READY)).collect();
        assert_eq!(hits, vec!["xx VX-GUEST-READY"]);
    }

    #[test]
    fn test_console_lines_tail_keeps_last_five() {
        let mut c = ConsoleLines::default();
        for i in 0..8 {
            c.feed(format!("line {i}\r\n").as_bytes());
        }
        assert_eq!(
            c.tail(),
            vec!["line 3", "line 4", "line 5", "line 6", "line 7"]
        );
        c.feed(b"\r\n\x1b[2J\r\n[   12.5] stuck\x1b[6n");
        assert_eq!(
            c.tail(),
            vec!["line 4", "line 5", "line 6", "line 7", "[   12.5] stuck"]
        );
    }

    #[test]
    fn test_stderr_hint_prefers_vx_line_and_strips_colour() {
        let text = "\x1b[33m WARN\x1b[0m cpu::interp: unimplemented fninit\n\
                    vx: the guest triple-faulted (shutdown); registers:\nRAX=0\n";
        assert_eq!(
            stderr_hint(text).as_deref(),
            Some(
                "vx: the guest triple-faulted (shutdown) (last warning: WARN cpu::interp: unimplemented fninit)"
            )
        );
        assert_eq!(
            stderr_hint("vx: --timeout expired; the guest was at 0010:0x1000\n").as_deref(),
            Some("vx: --timeout expired; the guest was at 0010:0x1000")
        );
        assert_eq!(
            stderr_hint("\x1b[33m WARN\x1b[0m x\nlast one\n\n").as_deref(),
            Some("last one")
        );
        assert_eq!(stderr_hint(""), None);
    }
}
