//! Shared harness for the JIT tests: a small guest RAM, a flat 64-bit long-mode state with
//! identity paging and an IDT whose every vector halts at a known address, and runners for
//! the interpreter and the JIT that stop at HLT.
#![allow(dead_code)]

use std::sync::Mutex;

use cpu::state::{cr, flags as fl, msr};
use cpu::{CpuState, DescTable, GuestRam, Interp, RamRegion, Segment, Vcpu, VcpuExit, VmIo};
use jit::JitVcpu;

/// Guest RAM size.
pub const RAM: usize = 4 << 20;
/// PML4 (then PDPT, PD at the next pages).
pub const PML4: u64 = 0x1000;
/// The page directory: 2 MiB identity pages over the first 1 GiB...
pub const PD: u64 = 0x3000;
/// ...except the first 2 MiB, mapped with 4 KiB pages through this page table.
pub const PT: u64 = 0x4000;
/// IDT (256 16-byte gates).
pub const IDT: u64 = 0x5000;
/// Exception stubs: vector v halts at `STUBS + 16 * v`.
pub const STUBS: u64 = 0x6000;
/// GDT.
pub const GDT: u64 = 0x500;
/// Where test code goes.
pub const CODE: u64 = 0x10_0000;
/// A data area tests may use.
pub const DATA: u64 = 0x20_0000;
/// Top of the stack.
pub const STACK: u64 = 0x30_0000;

/// Guest RAM backed by a boxed slice, and the slice's host address (for tests that peek).
pub fn ram() -> GuestRam {
    let mem = vec![0u64; RAM / 8].into_boxed_slice();
    let host = mem.as_ptr() as *mut u8;
    // SAFETY: the boxed slice is moved into the owner, which keeps it alive (and unmoved on
    // the heap) as long as the GuestRam.
    unsafe {
        GuestRam::new(
            vec![RamRegion {
                gpa: 0,
                len: RAM as u64,
                host,
                readonly: false,
            }],
            Box::new(Mutex::new(mem)),
        )
    }
}

/// Write paging structures, GDT, IDT and stubs into `ram`.
pub fn setup_tables(ram: &GuestRam) {
    let w64 = |a: u64, v: u64| assert!(ram.write(a, &v.to_le_bytes()));
    w64(PML4, (PML4 + 0x1000) | 3);
    w64(PML4 + 0x1000, PD | 3);
    for i in 1..512u64 {
        w64(PD + i * 8, (i << 21) | 0x83);
    }
    w64(PD, PT | 3);
    for i in 0..512u64 {
        w64(PT + i * 8, (i << 12) | 3);
    }
    // GDT: null, 0x08 64-bit code, 0x10 data.
    w64(GDT, 0);
    w64(GDT + 8, 0x00af_9b00_0000_ffff);
    w64(GDT + 16, 0x00cf_9300_0000_ffff);
    for v in 0..256u64 {
        let target = STUBS + v * 16;
        let lo = (target & 0xffff)
            | (0x08 << 16)
            | (0x8e00u64 << 32)
            | (((target >> 16) & 0xffff) << 48);
        w64(IDT + v * 16, lo);
        w64(IDT + v * 16 + 8, target >> 32);
        assert!(ram.write(target, &[0xf4, 0xeb, 0xfd])); // hlt; jmp back to hlt
    }
}

/// A 64-bit CPL 0 state with the tables above, RIP at `CODE`, RSP at `STACK`.
pub fn long_mode_state() -> CpuState {
    let mut st = CpuState::reset();
    st.cr0 = cr::CR0_PE | cr::CR0_PG | cr::CR0_ET | cr::CR0_NE | cr::CR0_WP;
    st.cr3 = PML4;
    st.cr4 = cr::CR4_PAE;
    st.efer = msr::EFER_LME | msr::EFER_LMA;
    let code = Segment::flat_code(0x08, 0, true);
    let data = Segment::flat_data(0x10, 0);
    st.seg = [data, code, data, data, data, data];
    st.gdtr = DescTable {
        base: GDT,
        limit: 23,
    };
    st.idtr = DescTable {
        base: IDT,
        limit: 256 * 16 - 1,
    };
    st.rip = CODE;
    st.gpr[4] = STACK;
    st.rflags = fl::FIXED1;
    st
}

/// Port I/O that records writes.
#[derive(Default)]
pub struct Io {
    /// (port, value) of every OUT.
    pub writes: Mutex<Vec<(u16, u32)>>,
}

impl VmIo for Io {
    fn pio_read(&self, _port: u16, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn pio_write(&self, port: u16, data: &[u8]) {
        let mut b = [0u8; 4];
        b[..data.len()].copy_from_slice(data);
        self.writes
            .lock()
            .unwrap()
            .push((port, u32::from_le_bytes(b)));
    }
    fn mmio_read(&self, _addr: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn mmio_write(&self, _addr: u64, _data: &[u8]) {}
}

/// Run `vcpu` until it halts (or shuts down); returns how it stopped.
pub fn run_until_halt(vcpu: &mut dyn Vcpu, io: &Io) -> VcpuExit {
    for _ in 0..1_000_000 {
        match vcpu.run(io).expect("engine failure") {
            VcpuExit::Kicked | VcpuExit::InterruptWindow | VcpuExit::Debug => {}
            e => return e,
        }
    }
    panic!("the guest did not halt");
}

/// A fresh RAM with tables, `code` at `CODE` and `data` at `DATA`.
pub fn guest(code: &[u8], data: &[u8]) -> GuestRam {
    let ram = ram();
    setup_tables(&ram);
    assert!(ram.write(CODE, code));
    assert!(ram.write(DATA, data));
    ram
}

/// Read `len` bytes of guest memory.
pub fn peek(ram: &GuestRam, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    assert!(ram.read(addr, &mut v));
    v
}

/// Run on the interpreter from `st`.
pub fn run_interp(ram: GuestRam, st: &CpuState) -> (CpuState, VcpuExit) {
    let mut v = Interp::new(ram);
    v.set_state(st);
    let io = Io::default();
    let e = run_until_halt(&mut v, &io);
    (v.get_state(), e)
}

/// Run on the JIT from `st`; returns the vCPU too (for its statistics).
pub fn run_jit(ram: GuestRam, st: &CpuState) -> (CpuState, VcpuExit, JitVcpu) {
    run_jit_with(ram, st, jit::JitOptions::eager())
}

/// Run on the JIT with `opts` from `st`.
pub fn run_jit_with(
    ram: GuestRam,
    st: &CpuState,
    opts: jit::JitOptions,
) -> (CpuState, VcpuExit, JitVcpu) {
    let mut v = JitVcpu::with_options(ram, opts).expect("jit");
    v.set_state(st);
    let io = Io::default();
    let e = run_until_halt(&mut v, &io);
    (v.get_state(), e, v)
}

/// Assemble 64-bit code at `CODE`.
pub fn asm(
    f: impl FnOnce(&mut iced_x86::code_asm::CodeAssembler) -> Result<(), iced_x86::IcedError>,
) -> Vec<u8> {
    let mut a = iced_x86::code_asm::CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("assembling");
    a.assemble(CODE).expect("assembling")
}

/// Human-readable differences between two states.
pub fn diff_states(a: &CpuState, b: &CpuState) -> Vec<String> {
    let mut d = Vec::new();
    for k in 0..16 {
        if a.gpr[k] != b.gpr[k] {
            d.push(format!("gpr[{k}]: {:#x} vs {:#x}", a.gpr[k], b.gpr[k]));
        }
    }
    if a.rip != b.rip {
        d.push(format!("rip: {:#x} vs {:#x}", a.rip, b.rip));
    }
    if a.rflags != b.rflags {
        d.push(format!("rflags: {:#x} vs {:#x}", a.rflags, b.rflags));
    }
    if a.cr2 != b.cr2 {
        d.push(format!("cr2: {:#x} vs {:#x}", a.cr2, b.cr2));
    }
    if d.is_empty() && a != b {
        d.push("other state differs".into());
    }
    d
}

/// The first differing byte of each named region (`(name, address, length)`) between the
/// interpreter's RAM `a` and the JIT's RAM `b`, as readable lines.
pub fn memory_diffs(a: &GuestRam, b: &GuestRam, regions: &[(&str, u64, usize)]) -> Vec<String> {
    let mut d = Vec::new();
    for &(what, addr, len) in regions {
        let (x, y) = (peek(a, addr, len), peek(b, addr, len));
        if let Some(k) = (0..len).find(|&k| x[k] != y[k]) {
            d.push(format!(
                "{what} differs first at +{k:#x}: {:#x} vs {:#x}",
                x[k], y[k]
            ));
        }
    }
    d
}

/// Guest instructions that ran in translated code (the JIT's "jit instructions" counter).
pub fn jit_instructions(v: &JitVcpu) -> u64 {
    v.stats()
        .counters
        .iter()
        .find(|(k, _)| k == "jit instructions")
        .map_or(0, |c| c.1)
}

/// How many random cases a differential test runs: `VX_DIFF_CASES`, else `default`.
pub fn cases(default: u64) -> u64 {
    std::env::var("VX_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
