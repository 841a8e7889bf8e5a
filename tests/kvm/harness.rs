//! Conformance harness: builds a 64-bit long-mode guest (identity-mapped page tables, GDT with
//! a TSS, IDT with halting exception handlers) in guest RAM and runs one snippet on the
//! interpreter and on KVM, recording every port and MMIO access; compares the final CpuState,
//! low memory and the I/O traces and renders mismatches as a readable diff.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use cpu::state::{DescTable, Segment, seg_attr};
use cpu::{CpuState, GuestRam, Interp, Vcpu, VcpuExit, VmIo};
use iced_x86::code_asm::CodeAssembler;
use machine::memory::GuestMemory;

/// Guest RAM size.
pub const RAM: u64 = 4 << 20;
/// GDT: null, code64 (0x08), data (0x10), 64-bit TSS (0x18, 16 bytes).
pub const GDT: u64 = 0x500;
/// The TSS.
pub const TSS: u64 = 0x600;
/// PML4; PDPT at +0x1000; four page directories follow (4 GiB identity map, 2 MiB pages).
pub const PML4: u64 = 0x1000;
/// End of the page tables.
pub const PT_END: u64 = 0x7000;
/// The IDT (256 gates).
pub const IDT: u64 = 0x8000;
/// Snippet code.
pub const CODE: u64 = 0x1_0000;
/// Exception handlers: vector v at HANDLERS + v * 16 (`mov al, v; out 0xe0, al; hlt`).
pub const HANDLERS: u64 = 0x1_8000;
/// Scratch data the snippets use.
pub const DATA: u64 = 0x2_0000;
/// Initial stack pointer.
pub const STACK_TOP: u64 = 0x8_0000;
/// Port the exception handlers report their vector on.
pub const VECTOR_PORT: u16 = 0xe0;
/// An address with nothing behind it (MMIO, unmapped: reads all-ones).
pub const UNMAPPED: u64 = 0xd000_0000;
/// Vectors that get a handler.
pub const HANDLED: &[u8] = &[0, 6, 13, 14, 0x20];

/// One port or MMIO access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// IN: port, bytes returned.
    PioIn(u16, Vec<u8>),
    /// OUT: port, bytes written.
    PioOut(u16, Vec<u8>),
    /// MMIO read: address, bytes returned.
    MmioRead(u64, Vec<u8>),
    /// MMIO write: address, bytes written.
    MmioWrite(u64, Vec<u8>),
}

/// A VmIo that records every access; ports read a pattern, MMIO reads all-ones (unmapped).
#[derive(Debug, Default)]
pub struct Recorder {
    /// The trace.
    pub log: Mutex<Vec<Access>>,
}

impl Recorder {
    fn push(&self, a: Access) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(a);
    }
    /// The trace so far.
    pub fn take(&self) -> Vec<Access> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl VmIo for Recorder {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = (port as u8) ^ (0xa0 + i as u8);
        }
        self.push(Access::PioIn(port, data.to_vec()));
    }
    fn pio_write(&self, port: u16, data: &[u8]) {
        self.push(Access::PioOut(port, data.to_vec()));
    }
    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        data.fill(0xff);
        self.push(Access::MmioRead(addr, data.to_vec()));
    }
    fn mmio_write(&self, addr: u64, data: &[u8]) {
        self.push(Access::MmioWrite(addr, data.to_vec()));
    }
}

/// Size of the ROM every test guest has (ending at 4 GiB, aliased below 1 MiB).
pub const ROM_LEN: usize = 0x1_0000;

/// The ROM's contents: byte i is `i as u8 ^ 0x5a`.
pub fn rom_image() -> Vec<u8> {
    (0..ROM_LEN).map(|i| i as u8 ^ 0x5a).collect()
}

/// A fresh guest memory (RAM plus ROM) with the long-mode scaffolding and `code` at CODE.
pub fn build_memory(code: &[u8]) -> GuestMemory {
    let mem = GuestMemory::new(RAM, Some(&rom_image())).expect("guest memory");
    setup(mem.ram(), code);
    mem
}

/// Write the long-mode scaffolding and `code` into `ram`.
pub fn setup(ram: &GuestRam, code: &[u8]) {
    let w64 = |a: u64, v: u64| assert!(ram.write(a, &v.to_le_bytes()), "write {a:#x}");
    // Page tables: PML4[0] -> PDPT, PDPT[0..4] -> PDs, each PD 512 x 2 MiB.
    w64(PML4, (PML4 + 0x1000) | 3);
    for g in 0..4u64 {
        let pd = PML4 + 0x2000 + g * 0x1000;
        w64(PML4 + 0x1000 + g * 8, pd | 3);
        for j in 0..512u64 {
            w64(pd + j * 8, ((g * 512 + j) << 21) | 0x83);
        }
    }
    // GDT.
    w64(GDT, 0);
    w64(GDT + 8, 0x00af_9b00_0000_ffff);
    w64(GDT + 0x10, 0x00cf_9300_0000_ffff);
    // 64-bit busy TSS descriptor, base TSS, limit 0x67.
    let tss_lo = 0x67 | ((TSS & 0xff_ffff) << 16) | (0x8b << 40) | (((TSS >> 24) & 0xff) << 56);
    w64(GDT + 0x18, tss_lo);
    w64(GDT + 0x20, TSS >> 32);
    // Handlers and IDT gates (64-bit interrupt gates, DPL 0).
    for &v in HANDLED {
        let h = HANDLERS + u64::from(v) * 16;
        assert!(ram.write(h, &[0xb0, v, 0xe6, VECTOR_PORT as u8, 0xf4]));
        let lo = (h & 0xffff) | (0x08 << 16) | (0x8e << 40) | (((h >> 16) & 0xffff) << 48);
        w64(IDT + u64::from(v) * 16, lo);
        w64(IDT + u64::from(v) * 16 + 8, h >> 32);
    }
    assert!(ram.write(CODE, code), "code fits");
}

/// The CpuState at the snippet's first instruction: 64-bit mode, CPL 0, interrupts off.
pub fn long_mode_state() -> CpuState {
    let mut st = CpuState::reset();
    st.gpr = [0; 16];
    st.rip = CODE;
    st.rflags = 0x2;
    st.gpr[4] = STACK_TOP;
    let code = Segment::flat_code(0x08, 0, true);
    let data = Segment::flat_data(0x10, 0);
    st.seg = [data, code, data, data, data, data];
    st.tr = Segment {
        selector: 0x18,
        base: TSS,
        limit: 0x67,
        attr: seg_attr::P | 11,
    };
    st.ldtr = Segment {
        selector: 0,
        base: 0,
        limit: 0,
        attr: seg_attr::UNUSABLE,
    };
    st.gdtr = DescTable {
        base: GDT,
        limit: 0x27,
    };
    st.idtr = DescTable {
        base: IDT,
        limit: 0xfff,
    };
    st.cr0 = 0x8001_0033; // PG WP NE ET MP PE
    st.cr3 = PML4;
    st.cr4 = 0x620; // OSXMMEXCPT OSFXSR PAE
    st.efer = 0x500; // LMA LME
    st
}

/// Assemble 64-bit code placed at CODE.
pub fn assemble(f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("64-bit assembler");
    f(&mut a).expect("snippet assembles");
    a.assemble(CODE).expect("snippet assembles")
}

/// What one engine left behind.
#[derive(Debug)]
pub struct Outcome {
    /// Final state.
    pub state: CpuState,
    /// Guest RAM below 1 MiB.
    pub low_mem: Vec<u8>,
    /// Port and MMIO accesses in order.
    pub trace: Vec<Access>,
    /// How the run ended.
    pub exit: VcpuExit,
}

fn low_mem(ram: &GuestRam) -> Vec<u8> {
    let mut m = vec![0u8; 0x10_0000];
    // 0xa0000..0xc0000 is not RAM: read the two RAM parts.
    assert!(ram.read(0, &mut m[..0xa_0000]));
    assert!(ram.read(0xc_0000, &mut m[0xc_0000..]));
    m
}

/// Run on the interpreter until HLT or shutdown.
pub fn run_interp(code: &[u8], init: &CpuState) -> Outcome {
    let mem = build_memory(code);
    let io = Recorder::default();
    let mut cpu = Interp::new(mem.ram().clone());
    cpu.set_state(init);
    let mut exit = VcpuExit::Kicked;
    for _ in 0..1_000_000 {
        if cpu.step(&io) == cpu::interp::StepResult::Shutdown {
            exit = VcpuExit::Shutdown;
            break;
        }
        if cpu.state().halted {
            exit = VcpuExit::Halted;
            break;
        }
    }
    Outcome {
        state: cpu.get_state(),
        low_mem: low_mem(mem.ram()),
        trace: io.take(),
        exit,
    }
}

/// Why KVM cannot run a long-mode snippet here, if it cannot.
pub fn kvm_skip_reason(mode: accel::EntryMode) -> Option<String> {
    let probe = accel::probe();
    if let Some(r) = probe.unusable_reason() {
        return Some(r);
    }
    probe.mode_unsupported_reason(mode)
}

/// Run on KVM until HLT or shutdown (5 s watchdog).
pub fn run_kvm(code: &[u8], init: &CpuState) -> Result<Outcome, String> {
    let mem = build_memory(code);
    let io = Recorder::default();
    let backend = accel::KvmBackend::new().map_err(|e| e.to_string())?;
    let mut cpu = backend
        .create_vcpu(mem.ram().clone())
        .map_err(|e| e.to_string())?;
    cpu.set_state(init);
    let kick = cpu.kick_handle();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let watchdog = std::thread::spawn(move || {
        for _ in 0..500 {
            std::thread::sleep(Duration::from_millis(10));
            if d2.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
        }
        kick.kick();
    });
    let exit = cpu.run(&io).map_err(|e| e.to_string());
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = watchdog.join();
    let exit = exit?;
    if exit == VcpuExit::Kicked {
        return Err(format!(
            "the snippet did not halt on KVM within 5 s (rip {:#x})",
            cpu.get_state().rip
        ));
    }
    Ok(Outcome {
        state: cpu.get_state(),
        low_mem: low_mem(mem.ram()),
        trace: io.take(),
        exit,
    })
}

fn seg_name(i: usize) -> &'static str {
    ["es", "cs", "ss", "ds", "fs", "gs"][i]
}

const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// A readable list of differences (empty: the outcomes agree). `flags_mask` selects the
/// RFLAGS bits compared.
pub fn diff(a_name: &str, a: &Outcome, b_name: &str, b: &Outcome, flags_mask: u64) -> String {
    let mut out = String::new();
    let mut field = |name: &str, x: u64, y: u64| {
        if x != y {
            let _ = writeln!(out, "  {name:<10} {a_name}={x:#018x}  {b_name}={y:#018x}");
        }
    };
    let (s, t) = (&a.state, &b.state);
    for (i, name) in GPR_NAMES.iter().enumerate() {
        field(name, s.gpr[i], t.gpr[i]);
    }
    field("rip", s.rip, t.rip);
    field("rflags", s.rflags & flags_mask, t.rflags & flags_mask);
    for i in 0..6 {
        let (x, y) = (&s.seg[i], &t.seg[i]);
        field(
            &format!("{}.sel", seg_name(i)),
            u64::from(x.selector),
            u64::from(y.selector),
        );
        field(&format!("{}.base", seg_name(i)), x.base, y.base);
        if x.attr & seg_attr::UNUSABLE == 0 || y.attr & seg_attr::UNUSABLE == 0 {
            field(
                &format!("{}.limit", seg_name(i)),
                u64::from(x.limit),
                u64::from(y.limit),
            );
            field(
                &format!("{}.attr", seg_name(i)),
                u64::from(x.attr),
                u64::from(y.attr),
            );
        }
    }
    field("cr0", s.cr0, t.cr0);
    field("cr2", s.cr2, t.cr2);
    field("cr3", s.cr3, t.cr3);
    field("cr4", s.cr4, t.cr4);
    field("efer", s.efer, t.efer);
    field("gdtr.base", s.gdtr.base, t.gdtr.base);
    field("idtr.base", s.idtr.base, t.idtr.base);
    field("halted", u64::from(s.halted), u64::from(t.halted));
    if a.exit != b.exit {
        let _ = writeln!(
            out,
            "  exit       {a_name}={:?}  {b_name}={:?}",
            a.exit, b.exit
        );
    }
    // Memory, with the page tables' accessed/dirty bits masked (hardware and software
    // engines may set them differently).
    let mut shown = 0;
    for i in 0..a.low_mem.len() {
        let (mut x, mut y) = (a.low_mem[i], b.low_mem[i]);
        if (PML4 as usize..PT_END as usize).contains(&i) && i % 8 == 0 {
            x &= !0x60;
            y &= !0x60;
        }
        if x != y {
            if shown < 16 {
                let _ = writeln!(out, "  mem[{i:#07x}] {a_name}={x:#04x}  {b_name}={y:#04x}");
            }
            shown += 1;
        }
    }
    if shown > 16 {
        let _ = writeln!(out, "  ... {} more differing bytes", shown - 16);
    }
    if a.trace != b.trace {
        let _ = writeln!(out, "  I/O traces differ:");
        let n = a.trace.len().max(b.trace.len());
        for i in 0..n {
            let x = a
                .trace
                .get(i)
                .map(|v| format!("{v:02x?}"))
                .unwrap_or_else(|| "-".into());
            let y = b
                .trace
                .get(i)
                .map(|v| format!("{v:02x?}"))
                .unwrap_or_else(|| "-".into());
            let mark = if x == y { " " } else { "!" };
            let _ = writeln!(out, "   {mark} {i:3}: {a_name}: {x:<40} {b_name}: {y}");
        }
    }
    out
}
