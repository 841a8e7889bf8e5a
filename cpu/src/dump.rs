//! A human-readable register dump of `CpuState`, in the spirit of QEMU's `info registers`,
//! printed when a guest stops for good.

use std::fmt::Write;

use crate::state::{CpuState, Segment};

const GPR_NAMES: [&str; 16] = [
    "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13",
    "R14", "R15",
];
const SEG_NAMES: [&str; 6] = ["ES", "CS", "SS", "DS", "FS", "GS"];

fn seg_line(out: &mut String, name: &str, s: &Segment) {
    let _ = writeln!(
        out,
        "{name:<4}={:04x} base={:016x} limit={:08x} attr={:05x}",
        s.selector, s.base, s.limit, s.attr
    );
}

impl CpuState {
    /// Multi-line register dump.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (k, name) in GPR_NAMES.iter().enumerate() {
            let sep = if k % 4 == 3 { "\n" } else { " " };
            let _ = write!(out, "{name:<3}={:016x}{sep}", self.gpr[k]);
        }
        let _ = writeln!(
            out,
            "RIP={:016x} RFL={:08x} CPL={} mode={}-bit{}",
            self.rip,
            self.rflags,
            self.cpl(),
            self.code_bitness(),
            if self.halted { " (halted)" } else { "" }
        );
        for (k, name) in SEG_NAMES.iter().enumerate() {
            seg_line(&mut out, name, &self.seg[k]);
        }
        seg_line(&mut out, "LDT", &self.ldtr);
        seg_line(&mut out, "TR", &self.tr);
        let _ = writeln!(
            out,
            "GDT=     {:016x} {:04x}",
            self.gdtr.base, self.gdtr.limit
        );
        let _ = writeln!(
            out,
            "IDT=     {:016x} {:04x}",
            self.idtr.base, self.idtr.limit
        );
        let _ = writeln!(
            out,
            "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:x}",
            self.cr0, self.cr2, self.cr3, self.cr4, self.efer
        );
        out
    }
}
