//! The guests of `vx-bench kvm`: small programs that start directly in 64-bit long mode (no
//! firmware), built into guest RAM with their page tables, GDT, TSS and IDT, plus the
//! `CpuState` they start from and a host model of what each computes and how many guest
//! instructions it retires.
//!
//! Guest-physical layout (identity-mapped with 2 MiB pages over the first 1 GiB, every
//! level user-accessible so ring 3 can run anywhere; page tables, descriptor tables, stacks,
//! code and data each on their own 4 KiB pages):
//!
//! | address | what |
//! |---|---|
//! | 0x1000 / 0x2000 / 0x3000 | PML4, PDPT, page directory |
//! | 0x5000 | GDT: null, kernel code 0x08, kernel data 0x10, user data 0x18, user code 0x20, TSS 0x28 |
//! | 0x6000 | 64-bit TSS (RSP0 = kernel stack top) |
//! | 0x7000 | IDT: vectors 0-31 halt with a status, except 3 (`int3`): a DPL-3 gate to the ring-3 report |
//! | 0x8000 | parameter: the iteration count (u64) |
//! | 0x9000 | results the guest writes: hash, LCG state, RCX, CS of the code that reported |
//! | 0x1_0000 | the workload (ring-0 entry point) |
//! | 0x1_8000 | exception stubs, 16 bytes per vector |
//! | 0x1_9000 | the `int3` handler (the ring-3 guest's way back to ring 0) |
//! | 0x6_0000 | user stack top |
//! | 0x8_0000 | kernel stack top |
//! | 0x10_0000 | the 4 KiB compute buffer (512 qwords) |
//!
//! The ring-3 guest returns with `int3` through a DPL-3 interrupt gate. On kvm_pvm (a
//! software-only KVM) the alternatives failed: `int 0x80` (and `int n` for every other vector
//! tried: 0x30, 0x81, 0xf0) raised #UD at the `int` instruction in ring 3, and `syscall`
//! jumped to LSTAR but stayed at CPL 3 (CS 0x23; the handler's first `out` raised #GP). The
//! interpreter ran all of these as the SDM says (the JIT was tried with `int 0x80` only, and
//! ran it correctly).
//!
//! Every workload ends by writing its results, then 0 to the debug-exit port 0xf4 (the board
//! stops), then `hlt`. An exception writes 0x40 + vector to 0xf4 instead.

use cpu::state::{DescTable, Segment, seg_attr};
use cpu::{CpuState, GuestRam};
use iced_x86::IcedError;
use iced_x86::code_asm::*;

/// Guest RAM size.
pub const RAM_SIZE: u64 = 16 << 20;

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const GDT: u64 = 0x5000;
const TSS: u64 = 0x6000;
const IDT: u64 = 0x7000;
/// Where the guest reads its iteration count.
pub const PARAMS: u64 = 0x8000;
/// Where the guest writes its results (4 qwords).
pub const RESULTS: u64 = 0x9000;
const CODE: u64 = 0x1_0000;
const STUBS: u64 = 0x1_8000;
const BACK: u64 = 0x1_9000;
const USER_STACK_TOP: u64 = 0x6_0000;
const KERNEL_STACK_TOP: u64 = 0x8_0000;
const BUF: u64 = 0x10_0000;
/// Qwords in the compute buffer (4 KiB).
const BUF_QWORDS: u64 = 512;

const SEL_KCODE: u64 = 0x08;
const SEL_KDATA: u16 = 0x10;
const SEL_UDATA: u64 = 0x18;
const SEL_UCODE: u64 = 0x20;
const SEL_TSS: u16 = 0x28;

/// The port the `pio-in` workload reads (nothing claims it: the bus returns all-ones).
pub const UNCLAIMED_PORT: u16 = 0x7f0;
/// The port the `pio-out` workload writes (the board's POST port).
pub const POST_PORT: u8 = 0x80;
/// The debug-exit port.
const DEBUG_EXIT: u8 = 0xf4;
/// Status the exception stubs write: this plus the vector.
pub const EXCEPTION_STATUS: u32 = 0x40;

/// LCG multiplier and increment (Knuth's MMIX constants), and the starting values.
const LCG_A: u64 = 6_364_136_223_846_793_005;
const LCG_C: u64 = 1_442_695_040_888_963_407;
const SEED: u64 = 0x853c_49e6_748f_ea9b;
const H0: u64 = 0x0123_4567_89ab_cdef;

/// The benchmark workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Ring 0: `out 0x80, al` in a loop (one port write, so one KVM exit, per iteration).
    PioOut,
    /// Ring 0: `in al, dx` from an unclaimed port in a loop (one exit per iteration).
    PioIn,
    /// Ring 0: the compute loop.
    Ring0,
    /// The compute loop in ring 3: entered with `iretq`, left with `int3` (a DPL-3 gate).
    Ring3,
}

impl Workload {
    /// All of them, in table order.
    pub const ALL: [Workload; 4] = [
        Workload::PioOut,
        Workload::PioIn,
        Workload::Ring0,
        Workload::Ring3,
    ];

    /// Short name (command line and table).
    pub fn name(self) -> &'static str {
        match self {
            Workload::PioOut => "pio-out",
            Workload::PioIn => "pio-in",
            Workload::Ring0 => "compute-ring0",
            Workload::Ring3 => "compute-ring3",
        }
    }

    /// Whether each iteration is one port access (an exit on KVM).
    pub fn is_pio(self) -> bool {
        matches!(self, Workload::PioOut | Workload::PioIn)
    }

    /// The CS selector the report must show (the ring the loop ran in).
    pub fn expected_cs(self) -> u64 {
        match self {
            Workload::Ring3 => SEL_UCODE | 3,
            _ => SEL_KCODE,
        }
    }
}

/// One assembled workload and its instruction-count model.
#[derive(Debug)]
pub struct Program {
    /// Code at CODE (ring-0 entry point).
    pub code: Vec<u8>,
    /// The `int3` handler at BACK.
    pub back: Vec<u8>,
    /// Guest instructions per loop iteration.
    pub per_iteration: u64,
    /// Guest instructions outside the loop: setup before it, and the report after it up to
    /// and including the write to the debug-exit port (the final `hlt` is not counted).
    pub fixed: u64,
}

impl Program {
    /// Guest instructions for `iterations` iterations.
    pub fn instructions(&self, iterations: u64) -> u64 {
        self.fixed + self.per_iteration * iterations
    }
}

/// Counts instructions as they are emitted (`CodeAssembler::instructions`).
fn mark(a: &CodeAssembler) -> u64 {
    a.instructions().len() as u64
}

/// The ring-0 report: results to RESULTS, status 0 to the debug-exit port, hlt. Returns the
/// instructions it retires up to the port write.
fn report_ring0(a: &mut CodeAssembler) -> Result<u64, IcedError> {
    let m = mark(a);
    a.mov(rdx, RESULTS)?;
    a.mov(qword_ptr(rdx), rbx)?;
    a.mov(qword_ptr(rdx + 8), rax)?;
    a.mov(qword_ptr(rdx + 16), rcx)?;
    a.mov(qword_ptr(rdx + 24), SEL_KCODE as i32)?;
    a.xor(eax, eax)?;
    a.out(u32::from(DEBUG_EXIT), al)?;
    let n = mark(a) - m;
    a.hlt()?;
    Ok(n)
}

/// Setup shared by the compute workloads: iteration count, buffer, LCG state, hash,
/// constants.
fn compute_setup(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(rdx, PARAMS)?;
    a.mov(rcx, qword_ptr(rdx))?;
    a.mov(rsi, BUF)?;
    a.mov(rax, SEED)?;
    a.mov(rbx, H0)?;
    a.mov(r8, LCG_A)?;
    a.mov(r9, LCG_C)?;
    Ok(())
}

/// The compute loop (RCX iterations, RCX >= 1), starting at label `top`, followed by
/// `after`, and its `mix` subroutine. Returns the instructions one iteration retires.
///
/// Per iteration: an LCG step, a load, add and rotate at a pseudo-random index of the
/// buffer and the store back, a data-dependent branch (both arms retire the same number of
/// instructions), a read-modify-write at a sequential index, a call to `mix` (shift, xor,
/// imul, ret), and the loop branch.
fn compute_loop(
    a: &mut CodeAssembler,
    mut top: CodeLabel,
    after: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<u64, IcedError> {
    let mut even = a.create_label();
    let mut join = a.create_label();
    let mut mix = a.create_label();
    let m0 = mark(a);
    a.set_label(&mut top)?;
    a.imul_2(rax, r8)?;
    a.add(rax, r9)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 55)?; // 0..511
    a.mov(rdi, qword_ptr(rsi + rdx * 8))?;
    a.add(rdi, rax)?;
    a.rol(rdi, 7)?;
    a.mov(qword_ptr(rsi + rdx * 8), rdi)?;
    a.test(dil, 1)?;
    a.jz(even)?;
    a.xor(rbx, rdi)?;
    a.jmp(join)?;
    a.set_label(&mut even)?;
    a.sub(rbx, rdi)?;
    a.inc(rbx)?;
    a.set_label(&mut join)?;
    a.mov(r10, rcx)?;
    a.and(r10d, (BUF_QWORDS - 1) as i32)?;
    a.add(qword_ptr(rsi + r10 * 8), rbx)?;
    a.call(mix)?;
    a.dec(rcx)?;
    a.jnz(top)?;
    let body = mark(a) - m0;
    after(a)?;
    let m1 = mark(a);
    a.set_label(&mut mix)?;
    a.mov(r11, rbx)?;
    a.shr(r11, 29)?;
    a.xor(rbx, r11)?;
    a.imul_2(rbx, r8)?;
    a.ret()?;
    let mix_len = mark(a) - m1;
    // One of the two branch arms (two instructions each) is skipped.
    Ok(body - 2 + mix_len)
}

/// Assemble `w`.
pub fn build(w: Workload) -> Result<Program, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let (per_iteration, fixed) = match w {
        Workload::PioOut | Workload::PioIn => {
            let mut top = a.create_label();
            a.mov(rdx, PARAMS)?;
            a.mov(rcx, qword_ptr(rdx))?;
            if w == Workload::PioIn {
                a.mov(edx, u32::from(UNCLAIMED_PORT))?;
            }
            a.xor(eax, eax)?;
            let setup = mark(&a);
            a.set_label(&mut top)?;
            if w == Workload::PioIn {
                a.in_(al, dx)?;
            } else {
                a.out(u32::from(POST_PORT), al)?;
            }
            a.dec(rcx)?;
            a.jnz(top)?;
            let per = mark(&a) - setup;
            a.xor(ebx, ebx)?;
            let report = 1 + report_ring0(&mut a)?;
            (per, setup + report)
        }
        Workload::Ring0 => {
            compute_setup(&mut a)?;
            let setup = mark(&a);
            let mut report = 0;
            let top = a.create_label();
            let per = compute_loop(&mut a, top, |a| {
                report = report_ring0(a)?;
                Ok(())
            })?;
            (per, setup + report)
        }
        Workload::Ring3 => {
            let user = a.create_label();
            compute_setup(&mut a)?;
            // iretq frame: SS, RSP, RFLAGS (IF = 0, IOPL = 0), CS, RIP.
            a.push(SEL_UDATA as i32 | 3)?;
            a.mov(r10, USER_STACK_TOP)?;
            a.push(r10)?;
            a.push(2)?;
            a.push(SEL_UCODE as i32 | 3)?;
            a.lea(r10, ptr(user))?;
            a.push(r10)?;
            a.iretq()?;
            let setup = mark(&a);
            let per = compute_loop(&mut a, user, |a| {
                a.int3()?;
                // Not reached: the handler stops the machine.
                a.ud2()
            })?;
            (per, setup + 1 + back_len()?)
        }
    };
    let code = a.assemble(CODE)?;
    let back = back_code()?.0;
    Ok(Program {
        code,
        back,
        per_iteration,
        fixed,
    })
}

/// The `int3` handler: the ring-3 report (results, the interrupted CS from the frame,
/// status 0 to the debug-exit port).
fn back_code() -> Result<(Vec<u8>, u64), IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.mov(rdx, RESULTS)?;
    a.mov(qword_ptr(rdx), rbx)?;
    a.mov(qword_ptr(rdx + 8), rax)?;
    a.mov(qword_ptr(rdx + 16), rcx)?;
    a.mov(r10, qword_ptr(rsp + 8))?; // CS of the interrupted code
    a.mov(qword_ptr(rdx + 24), r10)?;
    a.xor(eax, eax)?;
    a.out(u32::from(DEBUG_EXIT), al)?;
    let n = mark(&a);
    a.hlt()?;
    Ok((a.assemble(BACK)?, n))
}

fn back_len() -> Result<u64, IcedError> {
    Ok(back_code()?.1)
}

/// Write the page tables, descriptor tables, stubs, `p` and the iteration count into a
/// fresh (zeroed) `ram`.
pub fn install(ram: &GuestRam, p: &Program, iterations: u64) -> Result<(), String> {
    let w = |a: u64, b: &[u8]| {
        if ram.write(a, b) {
            Ok(())
        } else {
            Err(format!("cannot write guest RAM at {a:#x}"))
        }
    };
    let w64 = |a: u64, v: u64| w(a, &v.to_le_bytes());
    // Page tables: one PD of 512 x 2 MiB pages (1 GiB), present, writable, user.
    w64(PML4, PDPT | 7)?;
    w64(PDPT, PD | 7)?;
    for j in 0..512u64 {
        w64(PD + j * 8, (j << 21) | 0x87)?;
    }
    // GDT.
    w64(GDT, 0)?;
    w64(GDT + 0x08, 0x00af_9b00_0000_ffff)?; // kernel code, 64-bit
    w64(GDT + 0x10, 0x00cf_9300_0000_ffff)?; // kernel data
    w64(GDT + 0x18, 0x00cf_f300_0000_ffff)?; // user data, DPL 3
    w64(GDT + 0x20, 0x00af_fb00_0000_ffff)?; // user code, 64-bit, DPL 3
    let tss_lo = 0x67 | ((TSS & 0xff_ffff) << 16) | (0x8b << 40) | (((TSS >> 24) & 0xff) << 56);
    w64(GDT + 0x28, tss_lo)?;
    w64(GDT + 0x30, TSS >> 32)?;
    // TSS: RSP0, and an I/O map base past the limit (no I/O bitmap).
    w64(TSS + 4, KERNEL_STACK_TOP)?;
    w(TSS + 0x66, &0x68u16.to_le_bytes())?;
    // Exception stubs and their gates (DPL 0), then vector 3 replaced by the DPL-3 gate
    // the ring-3 guest leaves through.
    let gate = |v: u64, handler: u64, dpl: u64| -> Result<(), String> {
        let lo = (handler & 0xffff)
            | (SEL_KCODE << 16)
            | ((0x8e | (dpl << 5)) << 40)
            | (((handler >> 16) & 0xffff) << 48);
        w64(IDT + v * 16, lo)?;
        w64(IDT + v * 16 + 8, handler >> 32)
    };
    for v in 0..32u64 {
        let h = STUBS + v * 16;
        // mov al, 0x40 + v; out 0xf4, al; hlt
        w(
            h,
            &[
                0xb0,
                EXCEPTION_STATUS as u8 + v as u8,
                0xe6,
                DEBUG_EXIT,
                0xf4,
            ],
        )?;
        gate(v, h, 0)?;
    }
    gate(3, BACK, 3)?;
    w(BACK, &p.back)?;
    w(CODE, &p.code)?;
    w64(PARAMS, iterations)
}

/// The state at the first instruction: 64-bit mode, CPL 0, interrupts off, at CODE.
pub fn start_state() -> CpuState {
    let mut st = CpuState::reset();
    st.gpr = [0; 16];
    st.rip = CODE;
    st.rflags = 0x2;
    st.gpr[4] = KERNEL_STACK_TOP;
    let code = Segment::flat_code(SEL_KCODE as u16, 0, true);
    let data = Segment::flat_data(SEL_KDATA, 0);
    st.seg = [data, code, data, data, data, data];
    st.tr = Segment {
        selector: SEL_TSS,
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
        limit: 0x37,
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

/// What the guest must leave in RESULTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Hash (RBX).
    pub hash: u64,
    /// LCG state (RAX).
    pub state: u64,
    /// RCX after the loop.
    pub rcx: u64,
    /// CS of the reporting code (the ring the loop ran in).
    pub cs: u64,
}

/// The host model of `w` for `iterations` iterations.
pub fn expected(w: Workload, iterations: u64) -> Expected {
    match w {
        // RAX is 0 (pio-out) or the all-ones byte the unclaimed port returned, then zeroed
        // by the report's `xor eax, eax` after the store: the report stores RAX before that.
        Workload::PioOut => Expected {
            hash: 0,
            state: 0,
            rcx: 0,
            cs: w.expected_cs(),
        },
        Workload::PioIn => Expected {
            hash: 0,
            state: 0xff,
            rcx: 0,
            cs: w.expected_cs(),
        },
        Workload::Ring0 | Workload::Ring3 => {
            let mut buf = [0u64; BUF_QWORDS as usize];
            let (mut x, mut h) = (SEED, H0);
            for c in (1..=iterations).rev() {
                x = x.wrapping_mul(LCG_A).wrapping_add(LCG_C);
                let i = (x >> 55) as usize;
                let v = buf[i].wrapping_add(x).rotate_left(7);
                buf[i] = v;
                if v & 1 != 0 {
                    h ^= v;
                } else {
                    h = h.wrapping_sub(v).wrapping_add(1);
                }
                let j = (c & (BUF_QWORDS - 1)) as usize;
                buf[j] = buf[j].wrapping_add(h);
                h ^= h >> 29;
                h = h.wrapping_mul(LCG_A);
            }
            Expected {
                hash: h,
                state: x,
                rcx: 0,
                cs: w.expected_cs(),
            }
        }
    }
}

/// Read what the guest left in RESULTS.
pub fn results(ram: &GuestRam) -> Expected {
    let mut b = [0u8; 32];
    let _ = ram.read(RESULTS, &mut b);
    let q = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    Expected {
        hash: q(0),
        state: q(1),
        rcx: q(2),
        cs: q(3),
    }
}
