//! The interactive console on COM1: host stdin feeds the guest's UART (raw mode when stdin
//! is a terminal) and the QEMU-style escape Ctrl-A is handled here (x quits, h helps).

use std::io::Read;
use std::sync::{Arc, Mutex};

use machine::devices::uart16550::Uart16550;
use machine::{StopReason, VmControl};

const CTRL_A: u8 = 0x01;

/// Restores the terminal's settings when dropped.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// Put stdin in raw mode if it is a terminal.
    pub fn enable() -> Option<RawMode> {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a termios we own.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            // Keep output post-processing so the host's newlines still render.
            t.c_oflag |= libc::OPOST;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable` on the same fd.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

fn feed(uart: &Mutex<Uart16550>, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = {
            let mut u = uart.lock().unwrap_or_else(|p| p.into_inner());
            let n = u.rx_space().min(rest.len());
            u.receive(&rest[..n]);
            n
        };
        rest = &rest[n..];
        if !rest.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Start the thread that copies stdin to the UART. `escapes`: interpret Ctrl-A sequences.
pub fn spawn_input(uart: Arc<Mutex<Uart16550>>, control: Arc<VmControl>, escapes: bool) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 256];
        let mut pending_escape = false;
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !escapes {
                feed(&uart, &buf[..n]);
                continue;
            }
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if pending_escape {
                    pending_escape = false;
                    match b {
                        b'x' | b'X' => {
                            eprint!("\r\nvx: terminated by Ctrl-A x\r\n");
                            control.request_stop(StopReason::UserQuit);
                            return;
                        }
                        b'h' | b'H' | b'?' => eprint!(
                            "\r\nC-a h    print this help\r\nC-a x    exit vx\r\nC-a C-a  send C-a to the guest\r\n"
                        ),
                        CTRL_A => out.push(CTRL_A),
                        _ => {}
                    }
                } else if b == CTRL_A {
                    pending_escape = true;
                } else {
                    out.push(b);
                }
            }
            feed(&uart, &out);
        }
    });
}
