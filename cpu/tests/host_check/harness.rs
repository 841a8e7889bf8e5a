//! The two sides of a host check: the same instruction bytes run natively (an executable
//! snippet that loads registers and RFLAGS from a struct, runs them, and stores everything
//! back) and on the interpreter (64-bit mode, flat segments, identity paging).

use std::sync::Mutex;

use cpu::state::{cr, msr};
use cpu::{CpuState, DescTable, GuestRam, Interp, RamRegion, Segment, VmIo};
use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use memmap2::{Mmap, MmapMut};

/// Bytes of scratch memory compared after each run (memory operands live here).
pub const DATA: usize = 0x3000;
/// Whole scratch mapping; above `DATA` is the stack both sides run on.
pub const SCRATCH_LEN: usize = 0x10000;
/// Initial RSP as an offset into the scratch mapping.
pub const STACK_OFF: u64 = 0xff00;
/// Offset of the memory-operand base register into the scratch mapping.
pub const BASE_OFF: u64 = 0x1800;

/// Guest-physical (= linear) layout of the interpreter side.
pub const GUEST_RAM: usize = 4 << 20;
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const GDT: u64 = 0x4000;
const IDT: u64 = 0x5000;
/// Exception handlers: vector `v` lands at `HANDLERS + 16 * v` (a HLT).
pub const HANDLERS: u64 = 0x6000;
/// Where the instruction under test is placed.
pub const CODE: u64 = 0x10000;
/// Guest address of the scratch mapping.
pub const GUEST_SCRATCH: u64 = 0x20_0000;

/// RFLAGS bits compared: the six status flags and DF.
pub const FLAGS_CMP: u64 = 0x8d5 | 0x400;

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// An operand value biased towards edge cases: 0, 1, -1, sign boundaries of every width,
    /// small numbers, and values that are random only in their low 8/16/32 bits.
    pub fn value(&mut self) -> u64 {
        const EDGES: [u64; 16] = [
            0,
            1,
            u64::MAX,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
            0xffff_ffff_ffff_ff80,
            0xffff_ffff_ffff_8000,
        ];
        match self.below(8) {
            0 | 1 => {
                let e = self.pick(&EDGES);
                // Sometimes move the edge into the high byte (AH, CH, DH, BH).
                if self.one_in(4) { e << 8 } else { e }
            }
            2 => self.below(70),
            3 => {
                let w = self.pick(&[8u32, 16, 32]);
                let v = self.next() & ((1u64 << w) - 1);
                if self.one_in(2) {
                    (((v << (64 - w)) as i64) >> (64 - w)) as u64
                } else {
                    v
                }
            }
            4 => self
                .pick(&EDGES)
                .wrapping_add(self.below(3))
                .wrapping_sub(1),
            _ => self.next(),
        }
    }
}

/// Inputs of one run. Registers set in `Case::ptrs` hold offsets into the scratch mapping.
#[derive(Clone, Debug)]
pub struct Input {
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub data: Vec<u8>,
}

/// Outputs of one run, pointer registers translated back to offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub data: Vec<u8>,
}

/// One instruction under test.
#[derive(Clone, Debug)]
pub struct Case {
    pub bytes: Vec<u8>,
    pub instr: Instruction,
    pub text: String,
    /// Registers that hold scratch pointers (always RSP).
    pub ptrs: u16,
    /// Scratch offset of the memory operand, if any.
    pub mem_off: Option<u64>,
}

impl Case {
    /// A case from encoded bytes; `ptrs` gets RSP added.
    pub fn from_bytes(bytes: Vec<u8>, ptrs: u16, mem_off: Option<u64>) -> Case {
        let mut dec = Decoder::with_ip(64, &bytes, CODE, DecoderOptions::NONE);
        let instr = dec.decode();
        assert!(
            !instr.is_invalid() && instr.len() == bytes.len(),
            "case bytes {bytes:02x?} decode to one instruction"
        );
        let mut text = String::new();
        IntelFormatter::new().format(&instr, &mut text);
        Case {
            bytes,
            instr,
            text,
            ptrs: ptrs | 1 << 4,
            mem_off,
        }
    }

    pub fn is_ptr(&self, r: usize) -> bool {
        self.ptrs >> r & 1 != 0
    }
}

/// Port I/O recorder for the interpreter side.
#[derive(Default)]
pub struct TestIo {
    pub writes: Mutex<Vec<(u16, Vec<u8>)>>,
    pub reads: Mutex<u32>,
}

impl VmIo for TestIo {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        let mut n = self.reads.lock().expect("test I/O lock");
        for b in data.iter_mut() {
            *b = (port as u8) ^ (*n as u8).wrapping_mul(7);
            *n += 1;
        }
    }
    fn pio_write(&self, port: u16, data: &[u8]) {
        self.writes
            .lock()
            .expect("test I/O lock")
            .push((port, data.to_vec()));
    }
    fn mmio_read(&self, _addr: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn mmio_write(&self, _addr: u64, _data: &[u8]) {}
}

/// What the interpreter did with a case.
#[derive(Debug)]
pub enum GuestResult {
    /// The instruction retired; its outputs.
    Done(Output),
    /// An exception was delivered: vector, and the RIP pushed in the frame.
    Fault {
        vector: u64,
        pushed_rip: u64,
        out: Output,
    },
}

/// The interpreter side: one vCPU over 4 MiB of guest RAM.
pub struct Guest {
    pub interp: Interp,
    pub ram: GuestRam,
    pub base: CpuState,
    pub io: TestIo,
}

impl Guest {
    pub fn new() -> Guest {
        let mut mem = vec![0u8; GUEST_RAM];
        let host = mem.as_mut_ptr();
        let region = RamRegion {
            gpa: 0,
            len: GUEST_RAM as u64,
            host,
            readonly: false,
        };
        // SAFETY: `mem` is moved into the owner box, which keeps its heap buffer (where
        // `host` points, GUEST_RAM bytes long) alive and unmoved as long as the GuestRam.
        let ram = unsafe { GuestRam::new(vec![region], Box::new(mem)) };
        let w64 = |ram: &GuestRam, gpa: u64, v: u64| assert!(ram.write(gpa, &v.to_le_bytes()));
        // Identity map the first 4 MiB with two 2 MiB user-accessible pages.
        w64(&ram, PML4, PDPT | 7);
        w64(&ram, PDPT, PD | 7);
        w64(&ram, PD, 0x87);
        w64(&ram, PD + 8, 0x20_0000 | 0x87);
        // GDT: null, 64-bit code (0x08), flat data (0x10).
        w64(&ram, GDT + 8, 0x00af_9b00_0000_ffff);
        w64(&ram, GDT + 16, 0x00cf_9300_0000_ffff);
        // IDT: 32 interrupt gates, each to its own HLT.
        for v in 0..32u64 {
            let off = HANDLERS + 16 * v;
            let lo =
                (off & 0xffff) | (0x08 << 16) | (0x8e00u64 << 32) | ((off >> 16) & 0xffff) << 48;
            w64(&ram, IDT + 16 * v, lo);
            w64(&ram, IDT + 16 * v + 8, off >> 32);
            assert!(ram.write(off, &[0xf4]));
        }
        let mut base = CpuState::reset();
        let code = Segment::flat_code(0x08, 0, true);
        let data = Segment::flat_data(0x10, 0);
        base.seg = [data, code, data, data, data, data];
        base.gdtr = DescTable {
            base: GDT,
            limit: 23,
        };
        base.idtr = DescTable {
            base: IDT,
            limit: 32 * 16 - 1,
        };
        base.cr0 = cr::CR0_PE | cr::CR0_PG | cr::CR0_ET | cr::CR0_NE | cr::CR0_WP;
        base.cr3 = PML4;
        base.cr4 = cr::CR4_PAE;
        base.efer = msr::EFER_LME | msr::EFER_LMA;
        base.rip = CODE;
        let interp = Interp::new(ram.clone());
        Guest {
            interp,
            ram,
            base,
            io: TestIo::default(),
        }
    }

    /// Place the case's bytes at `CODE`.
    pub fn load(&mut self, case: &Case) {
        assert!(self.ram.write(CODE, &case.bytes));
    }

    /// Run the loaded case on `inp`, starting from `state` (usually `self.base`).
    pub fn run_from(&mut self, case: &Case, inp: &Input, state: &CpuState) -> GuestResult {
        assert!(self.ram.write(GUEST_SCRATCH, &inp.data));
        let st = self.interp.state_mut();
        *st = *state;
        for (r, v) in inp.gpr.iter().enumerate() {
            st.gpr[r] = if case.is_ptr(r) {
                GUEST_SCRATCH.wrapping_add(*v)
            } else {
                *v
            };
        }
        st.rflags = (state.rflags & !FLAGS_CMP) | (inp.rflags & FLAGS_CMP) | 2;
        let end = CODE + case.bytes.len() as u64;
        let mut steps = 0;
        loop {
            self.interp.step(&self.io);
            steps += 1;
            let rip = self.interp.state().rip;
            if rip == end || (HANDLERS..HANDLERS + 32 * 16).contains(&rip) {
                break;
            }
            assert!(
                rip == CODE && steps < 64,
                "{}: interpreter went to {rip:#x}",
                case.text
            );
        }
        let st = self.interp.state();
        let mut gpr = st.gpr;
        for (r, v) in gpr.iter_mut().enumerate() {
            if case.is_ptr(r) {
                *v = v.wrapping_sub(GUEST_SCRATCH);
            }
        }
        let mut data = vec![0u8; DATA];
        assert!(self.ram.read(GUEST_SCRATCH, &mut data));
        let out = Output {
            gpr,
            rflags: st.rflags,
            data,
        };
        if st.rip == end {
            return GuestResult::Done(out);
        }
        let vector = (st.rip - HANDLERS) / 16;
        // Vectors with an error code push it below the return RIP.
        let at = if matches!(vector, 8 | 10..=14 | 17) {
            st.gpr[4] + 8
        } else {
            st.gpr[4]
        };
        let mut frame = [0u8; 8];
        assert!(self.ram.read(at, &mut frame));
        GuestResult::Fault {
            vector,
            pushed_rip: u64::from_le_bytes(frame),
            out,
        }
    }

    pub fn run(&mut self, case: &Case, inp: &Input) -> GuestResult {
        let base = self.base;
        self.run_from(case, inp, &base)
    }
}

/// The register block the host snippet loads from and stores to.
#[repr(C)]
struct HostState {
    gpr: [u64; 16],
    rflags: u64,
    host_rsp: u64,
}

const RFLAGS_OFF: i32 = 128;
const HOST_RSP_OFF: i32 = 136;

/// The native side: a register block at a fixed address and a scratch mapping.
pub struct Host {
    state: *mut HostState,
    scratch: MmapMut,
}

/// `code` copied into a fresh executable mapping.
pub fn executable(code: &[u8]) -> Mmap {
    let mut map = MmapMut::map_anon(code.len()).expect("code mapping");
    map[..code.len()].copy_from_slice(code);
    map.make_exec().expect("make the snippet executable")
}

/// An executable host snippet for one case.
pub struct HostCode {
    map: Mmap,
}

fn gpr64(k: usize) -> AsmRegister64 {
    [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ][k]
}

impl Host {
    pub fn new() -> Host {
        let state = Box::into_raw(Box::new(HostState {
            gpr: [0; 16],
            rflags: 0,
            host_rsp: 0,
        }));
        let scratch = MmapMut::map_anon(SCRATCH_LEN).expect("scratch mapping");
        Host { state, scratch }
    }

    /// Assemble prologue + `bytes` + epilogue into an executable page.
    pub fn code(&self, bytes: &[u8]) -> HostCode {
        let st = self.state as u64;
        let asm = || -> Result<Vec<u8>, iced_x86::IcedError> {
            let mut a = CodeAssembler::new(64)?;
            for r in [rbx, rbp, r12, r13, r14, r15] {
                a.push(r)?;
            }
            a.mov(qword_ptr(rdi + HOST_RSP_OFF), rsp)?;
            a.mov(rsp, qword_ptr(rdi + 32))?;
            a.push(qword_ptr(rdi + RFLAGS_OFF))?;
            a.popfq()?;
            for k in (0..16).filter(|&k| k != 4 && k != 7) {
                a.mov(gpr64(k), qword_ptr(rdi + 8 * k as i32))?;
            }
            a.mov(rdi, qword_ptr(rdi + 56))?;
            a.db(bytes)?;
            a.pushfq()?;
            // mov [moffs64], rax: the only store that needs no free register.
            a.db(&[0x48, 0xa3])?;
            a.db(&st.to_le_bytes())?;
            a.mov(rax, st)?;
            for k in (1..16).filter(|&k| k != 4) {
                a.mov(qword_ptr(rax + 8 * k as i32), gpr64(k))?;
            }
            a.pop(qword_ptr(rax + RFLAGS_OFF))?;
            a.mov(qword_ptr(rax + 32), rsp)?;
            a.mov(rsp, qword_ptr(rax + HOST_RSP_OFF))?;
            // The Rust ABI requires DF clear on return.
            a.cld()?;
            for r in [r15, r14, r13, r12, rbp, rbx] {
                a.pop(r)?;
            }
            a.ret()?;
            a.assemble(0)
        };
        let code = asm().expect("host snippet assembles");
        HostCode {
            map: executable(&code),
        }
    }

    /// Run `code` natively on `inp`.
    pub fn run(&mut self, code: &HostCode, case: &Case, inp: &Input) -> Output {
        let hbase = self.scratch.as_mut_ptr() as u64;
        self.scratch[..DATA].copy_from_slice(&inp.data);
        // SAFETY: `state` came from Box::into_raw in `new` and is freed only in Drop; no other
        // reference to it is live.
        let st = unsafe { &mut *self.state };
        for (r, v) in inp.gpr.iter().enumerate() {
            st.gpr[r] = if case.is_ptr(r) {
                hbase.wrapping_add(*v)
            } else {
                *v
            };
        }
        // IF must stay set in user mode; only the status flags and DF are inputs.
        st.rflags = (inp.rflags & FLAGS_CMP) | 0x202;
        // SAFETY: the mapping holds the snippet assembled by `code` for this host's state
        // block: it saves the callee-saved registers and RSP, runs the case's bytes (which the
        // test generator restricts to accesses inside the scratch mapping, with the stack
        // pointer inside its stack area), stores all registers back into `state`, restores
        // RSP and the callee-saved registers, clears DF and returns.
        unsafe {
            let f: extern "C" fn(*mut HostState) = std::mem::transmute(code.map.as_ptr());
            f(self.state);
        }
        // SAFETY: as above; the snippet has returned.
        let st = unsafe { &*self.state };
        let mut gpr = st.gpr;
        for (r, v) in gpr.iter_mut().enumerate() {
            if case.is_ptr(r) {
                *v = v.wrapping_sub(hbase);
            }
        }
        Output {
            gpr,
            rflags: st.rflags,
            data: self.scratch[..DATA].to_vec(),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // SAFETY: `state` came from Box::into_raw and is dropped exactly once, here.
        drop(unsafe { Box::from_raw(self.state) });
    }
}

const NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Describe a mismatch, or None when `host` and `guest` agree outside `undef` flags.
pub fn diff(case: &Case, inp: &Input, host: &Output, guest: &Output, undef: u64) -> Option<String> {
    let fmask = FLAGS_CMP & !undef;
    let mut why = Vec::new();
    for (r, name) in NAMES.iter().enumerate() {
        if host.gpr[r] != guest.gpr[r] {
            why.push(format!(
                "{name}: host {:#x} interp {:#x}",
                host.gpr[r], guest.gpr[r]
            ));
        }
    }
    if (host.rflags ^ guest.rflags) & fmask != 0 {
        why.push(format!(
            "rflags: host {:#x} interp {:#x} (compared bits {:#x})",
            host.rflags & FLAGS_CMP,
            guest.rflags & FLAGS_CMP,
            fmask
        ));
    }
    if let Some(k) = (0..DATA).find(|&k| host.data[k] != guest.data[k]) {
        why.push(format!(
            "memory at scratch+{k:#x}: host {:02x?} interp {:02x?}",
            &host.data[k..(k + 8).min(DATA)],
            &guest.data[k..(k + 8).min(DATA)]
        ));
    }
    if why.is_empty() {
        return None;
    }
    Some(format!(
        "{} ({:02x?})\n  inputs: {}\n  {}",
        case.text,
        case.bytes,
        describe(case, inp),
        why.join("\n  ")
    ))
}

/// The inputs in a readable form.
pub fn describe(case: &Case, inp: &Input) -> String {
    let mut s = String::new();
    for (r, name) in NAMES.iter().enumerate() {
        let tag = if case.is_ptr(r) { "scratch+" } else { "" };
        s.push_str(&format!("{name}={tag}{:#x} ", inp.gpr[r]));
    }
    s.push_str(&format!("rflags={:#x}", inp.rflags));
    if let Some(off) = case.mem_off {
        let o = off as usize;
        s.push_str(&format!(" mem={:02x?}", &inp.data[o..(o + 16).min(DATA)]));
    }
    s
}
