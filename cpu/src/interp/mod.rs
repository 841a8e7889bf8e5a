//! The reference interpreter: fetch, decode with iced-x86, dispatch on the mnemonic into one
//! module per instruction family, deliver exceptions (SDM Vol. 2 for instruction semantics,
//! Vol. 3A ch. 6 for exceptions and interrupts).

pub mod alu;
pub mod api;
pub mod bit;
pub mod branch;
pub mod control;
pub mod cx;
pub mod decode;
pub mod fast;
pub mod flagops;
pub mod flags;
pub mod interrupt;
pub mod mmu;
pub mod mov;
pub mod muldiv;
pub mod segment;
pub mod shift;
pub mod sse;
pub mod stack;
pub mod string;
pub mod system;
pub mod x87;
pub mod xchg;

use iced_x86::{ConditionCode, Instruction, Mnemonic};

use crate::fault::Fault;
use crate::ram::GuestRam;
use crate::state::{CpuState, flags as fl, gpr, sreg};
use crate::vcpu::{EngineStats, Kicker, TraceFn, Vcpu, VcpuError, VcpuExit, VmIo};
use cx::{Cx, Misc};
use decode::{Decoded, ICache};
use mmu::Tlb;

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepResult {
    /// An instruction retired (or an exception was delivered).
    Ok,
    /// The processor shut down (triple fault).
    Shutdown,
}

/// The interpreter engine: one vCPU.
pub struct Interp {
    st: CpuState,
    ram: GuestRam,
    tlb: Tlb,
    icache: ICache,
    misc: Misc,
    kicker: Kicker,
    trace: Option<TraceFn>,
    instructions: u64,
    exceptions: u64,
    interrupts: u64,
    /// The last triple fault's cause, for the register dump.
    pub last_fault: Option<Fault>,
}

impl std::fmt::Debug for Interp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interp")
            .field("rip", &self.st.rip)
            .field("instructions", &self.instructions)
            .finish()
    }
}

impl Interp {
    /// A vCPU in the RESET state over `ram`.
    pub fn new(ram: GuestRam) -> Interp {
        Interp {
            st: CpuState::reset(),
            ram,
            tlb: Tlb::default(),
            icache: ICache::default(),
            misc: Misc {
                tsc_origin: Some(std::time::Instant::now()),
                ..Misc::default()
            },
            kicker: Kicker::new(),
            trace: None,
            instructions: 0,
            exceptions: 0,
            interrupts: 0,
            last_fault: None,
        }
    }

    /// Direct access to the architectural state (tests, firmware setup).
    pub fn state_mut(&mut self) -> &mut CpuState {
        self.tlb.flush();
        &mut self.st
    }

    /// The architectural state.
    pub fn state(&self) -> &CpuState {
        &self.st
    }

    /// Instructions retired so far.
    pub fn instructions(&self) -> u64 {
        self.instructions
    }

    /// Execute about `max` instructions (whole blocks), stopping early after HLT, an I/O
    /// instruction or a shutdown.
    pub fn run_batch(&mut self, io: &dyn VmIo, max: u32) -> StepResult {
        let mut cx = Cx {
            st: &mut self.st,
            tlb: &mut self.tlb,
            ram: &self.ram,
            io,
            misc: &mut self.misc,
            asz: 8,
        };
        let mut retired = 0u64;
        let mut budget = i64::from(max);
        let mut result = StepResult::Ok;
        let mut trace = self.trace.as_mut();
        'outer: while budget > 0 {
            let block = match fetch_address(&cx) {
                Ok((lin, bits)) => {
                    let rip = cx.st.rip;
                    self.icache.block(&mut cx, lin, rip, bits)
                }
                Err(f) => Err(f),
            };
            let stepped = match block {
                Ok(Some(b)) => {
                    cx.misc.watch_page = b.page();
                    cx.misc.code_written = false;
                    let mut last = Stepped::Retired;
                    // Without tracing or a single-step trap to deliver, the lean path runs:
                    // RF is cleared once (only an IRET sets it, and IRET ends a block).
                    let lean = trace.is_none() && cx.st.rflags & fl::TF == 0;
                    if lean {
                        cx.st.rflags &= !fl::RF;
                    }
                    for d in &b.insns {
                        last = if lean {
                            cx.st.interrupt_shadow = false;
                            exec_lean(&mut cx, d)
                        } else {
                            exec_decoded(&mut cx, d, trace.as_deref_mut())
                        };
                        budget -= 1;
                        if !matches!(last, Stepped::Retired) {
                            break;
                        }
                        retired += 1;
                        if cx.st.halted
                            || cx.misc.io_done
                            || cx.misc.code_written
                            || cx.st.rip != d.next_rip
                        {
                            break;
                        }
                    }
                    cx.misc.watch_page = u64::MAX;
                    match last {
                        Stepped::Retired => None,
                        other => Some(other),
                    }
                }
                Ok(None) => {
                    budget -= 1;
                    match step_one(&mut cx, &mut self.icache, trace.as_deref_mut()) {
                        Stepped::Retired => {
                            retired += 1;
                            None
                        }
                        other => Some(other),
                    }
                }
                Err(f) => Some(fault_at_boundary(&mut cx, f)),
            };
            match stepped {
                None => {}
                Some(Stepped::Retired) => retired += 1,
                Some(Stepped::Exception) => self.exceptions += 1,
                Some(Stepped::TripleFault(f)) => {
                    self.last_fault = Some(f);
                    result = StepResult::Shutdown;
                    break 'outer;
                }
            }
            if cx.st.halted || cx.misc.io_done {
                cx.misc.io_done = false;
                break;
            }
            // Between blocks: a kick, or an interrupt the board holds back until IF=1, ends
            // the batch now rather than after up to `max` instructions.
            if self.kicker.is_kicked()
                || (self.kicker.interrupt_window_requested() && cx.st.interrupts_enabled())
            {
                break;
            }
        }
        self.instructions += retired;
        result
    }

    /// Execute one instruction (or deliver one exception).
    pub fn step(&mut self, io: &dyn VmIo) -> StepResult {
        let mut cx = Cx {
            st: &mut self.st,
            tlb: &mut self.tlb,
            ram: &self.ram,
            io,
            misc: &mut self.misc,
            asz: 8,
        };
        let r = step_one(&mut cx, &mut self.icache, self.trace.as_mut());
        match r {
            Stepped::Retired => {
                self.instructions += 1;
                StepResult::Ok
            }
            Stepped::Exception => {
                self.exceptions += 1;
                StepResult::Ok
            }
            Stepped::TripleFault(f) => {
                self.last_fault = Some(f);
                StepResult::Shutdown
            }
        }
    }
}

enum Stepped {
    Retired,
    Exception,
    TripleFault(Fault),
}

/// The linear address of the next instruction, with the CS limit check (or the canonical
/// check in 64-bit mode), and the code size.
#[inline]
fn fetch_address(cx: &Cx) -> Result<(u64, u32), Fault> {
    let bitness = cx.st.code_bitness();
    if bitness == 64 {
        if !cx::canonical(cx.st.rip) {
            return Err(Fault::GP0);
        }
        return Ok((cx.st.rip, 64));
    }
    let cs = &cx.st.seg[sreg::CS];
    if cx.st.rip > u64::from(cs.limit) {
        return Err(Fault::GP0);
    }
    Ok((cs.base.wrapping_add(cx.st.rip) & 0xffff_ffff, bitness))
}

/// Deliver a fault raised at the current instruction boundary (fetch faults).
fn fault_at_boundary(cx: &mut Cx, f: Fault) -> Stepped {
    match interrupt::deliver_exception(cx, f) {
        Ok(()) => Stepped::Exception,
        Err(f) => Stepped::TripleFault(f),
    }
}

/// Fetch (one instruction, without the block cache) and execute.
fn step_one(cx: &mut Cx, icache: &mut ICache, trace: Option<&mut TraceFn>) -> Stepped {
    cx.st.interrupt_shadow = false;
    let d = match fetch_address(cx)
        .and_then(|(lin, bits)| icache.fetch_single(cx, lin, cx.st.rip, bits))
    {
        Ok(d) => *d,
        Err(f) => return fault_at_boundary(cx, f),
    };
    exec_decoded(cx, &d, trace)
}

/// Execute `d` (RIP must be `d.insn.ip()`): on a fault, restore RIP and RSP and deliver it.
/// Tracing, single-step and RF are the caller's business.
#[inline(always)]
fn exec_lean(cx: &mut Cx, d: &Decoded) -> Stepped {
    let start_rsp = cx.st.gpr[gpr::RSP];
    let i = &d.insn;
    cx.asz = u32::from(d.asz);
    cx.st.rip = d.next_rip;
    let r = if d.fast != fast::Fast::None {
        fast::exec(cx, d.fast, i)
    } else if i.has_lock_prefix() && !lock_allowed(i) {
        Err(Fault::UD)
    } else {
        execute(cx, i, &d.bytes[..i.len()])
    };
    match r {
        Ok(()) => Stepped::Retired,
        Err(f) => {
            cx.st.rip = i.ip();
            cx.st.gpr[gpr::RSP] = start_rsp;
            match interrupt::deliver_exception(cx, f) {
                Ok(()) => Stepped::Exception,
                Err(f) => Stepped::TripleFault(f),
            }
        }
    }
}

/// Execute decoded instruction `d` at the current RIP (which must be `d.insn.ip()`),
/// delivering any fault it raises with the state as it was before it, and the single-step
/// trap after it.
#[inline]
fn exec_decoded(cx: &mut Cx, d: &Decoded, trace: Option<&mut TraceFn>) -> Stepped {
    let tf = cx.st.rflags & fl::TF != 0;
    cx.st.interrupt_shadow = false;
    if let Some(t) = trace {
        t(cx.st, &d.bytes[..d.insn.len()]);
    }
    // RF only lasts for one instruction (an IRET may set it again from its image).
    cx.st.rflags &= !fl::RF;
    let r = exec_lean(cx, d);
    if tf && matches!(r, Stepped::Retired) && !cx.st.halted {
        // Single-step trap after the instruction (SDM Vol. 3A §17.3.1.4).
        cx.st.dr[6] |= 1 << 14;
        if let Err(f) = interrupt::deliver_exception(
            cx,
            Fault {
                vector: 1,
                code: None,
                addr: 0,
            },
        ) {
            return Stepped::TripleFault(f);
        }
    }
    r
}

/// LOCK is allowed only on read-modify-write instructions with a memory destination.
fn lock_allowed(i: &Instruction) -> bool {
    use Mnemonic::*;
    i.op_kind(0) == iced_x86::OpKind::Memory
        && matches!(
            i.mnemonic(),
            Add | Adc
                | And
                | Btc
                | Btr
                | Bts
                | Cmpxchg
                | Cmpxchg8b
                | Cmpxchg16b
                | Dec
                | Inc
                | Neg
                | Not
                | Or
                | Sbb
                | Sub
                | Xor
                | Xadd
                | Xchg
        )
}

/// Evaluate condition code `cc` against `rflags` (SDM Vol. 1 Appendix B).
#[inline]
pub fn cond(rflags: u64, cc: ConditionCode) -> bool {
    let f = |b: u64| rflags & b != 0;
    match cc {
        ConditionCode::o => f(fl::OF),
        ConditionCode::no => !f(fl::OF),
        ConditionCode::b => f(fl::CF),
        ConditionCode::ae => !f(fl::CF),
        ConditionCode::e => f(fl::ZF),
        ConditionCode::ne => !f(fl::ZF),
        ConditionCode::be => f(fl::CF) || f(fl::ZF),
        ConditionCode::a => !f(fl::CF) && !f(fl::ZF),
        ConditionCode::s => f(fl::SF),
        ConditionCode::ns => !f(fl::SF),
        ConditionCode::p => f(fl::PF),
        ConditionCode::np => !f(fl::PF),
        ConditionCode::l => f(fl::SF) != f(fl::OF),
        ConditionCode::ge => f(fl::SF) == f(fl::OF),
        ConditionCode::le => f(fl::ZF) || f(fl::SF) != f(fl::OF),
        ConditionCode::g => !f(fl::ZF) && f(fl::SF) == f(fl::OF),
        ConditionCode::None => true,
    }
}

/// Execute one decoded instruction; RIP already points at the next instruction.
pub fn execute(cx: &mut Cx, i: &Instruction, bytes: &[u8]) -> Result<(), Fault> {
    use Mnemonic::*;
    match i.mnemonic() {
        Add | Adc | Sub | Sbb | Cmp | Inc | Dec | Neg | And | Or | Xor | Not | Test => {
            alu::exec(cx, i)
        }
        Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr | Shld | Shrd => shift::exec(cx, i),
        Mul | Imul | Div | Idiv => muldiv::exec(cx, i),
        Bt | Bts | Btr | Btc | Bsf | Bsr | Tzcnt | Lzcnt | Bswap => bit::exec(cx, i),
        Xchg | Xadd | Cmpxchg | Cmpxchg8b | Cmpxchg16b => xchg::exec(cx, i),
        Mov | Movsx | Movzx | Movsxd | Cbw | Cwde | Cdqe | Cwd | Cdq | Cqo | Lea | Xlatb | Seto
        | Setno | Setb | Setae | Sete | Setne | Setbe | Seta | Sets | Setns | Setp | Setnp
        | Setl | Setge | Setle | Setg | Cmovo | Cmovno | Cmovb | Cmovae | Cmove | Cmovne
        | Cmovbe | Cmova | Cmovs | Cmovns | Cmovp | Cmovnp | Cmovl | Cmovge | Cmovle | Cmovg => {
            mov::exec(cx, i)
        }
        Push | Pop | Pusha | Pushad | Popa | Popad | Enter | Leave | Pushf | Pushfd | Pushfq
        | Popf | Popfd | Popfq => stack::exec(cx, i),
        Jo | Jno | Jb | Jae | Je | Jne | Jbe | Ja | Js | Jns | Jp | Jnp | Jl | Jge | Jle | Jg
        | Jmp | Call | Ret | Loop | Loope | Loopne | Jcxz | Jecxz | Jrcxz => branch::exec(cx, i),
        Movsb | Movsw | Movsq | Stosb | Stosw | Stosd | Stosq | Lodsb | Lodsw | Lodsd | Lodsq
        | Cmpsb | Cmpsw | Cmpsq | Scasb | Scasw | Scasd | Scasq | Insb | Insw | Insd | Outsb
        | Outsw | Outsd => string::exec(cx, i),
        // MOVSD and CMPSD are also SSE2 mnemonics (scalar double move and compare).
        Movsd | Cmpsd if i.is_string_instruction() => string::exec(cx, i),
        Lahf | Sahf | Clc | Stc | Cmc | Cld | Std | Cli | Sti => flagops::exec(cx, i),
        Retf | Iret | Iretd | Iretq | Int | Int1 | Int3 | Into | Syscall | Sysret | Sysretq
        | Lds | Les | Lfs | Lgs | Lss => control::exec(cx, i),
        Hlt | Nop | Pause | In | Out | Cpuid | Rdtsc | Rdtscp | Rdmsr | Wrmsr | Lgdt | Lidt
        | Lldt | Ltr | Sgdt | Sidt | Sldt | Str | Swapgs | Invlpg | Wbinvd | Invd | Clflush
        | Clflushopt | Smsw | Lmsw | Clts | Lar | Lsl | Verr | Verw | Ud0 | Ud1 | Ud2 | Lfence
        | Sfence | Mfence | Prefetchnta | Prefetcht0 | Prefetcht1 | Prefetcht2 | Prefetchw
        | Endbr32 | Endbr64 => system::exec(cx, i),
        _ => x87::exec(cx, i)
            .or_else(|| sse::exec(cx, i))
            .unwrap_or_else(|| unimplemented(cx, i, bytes)),
    }
}

/// Raise #UD for an instruction vx does not implement, logging it once.
pub fn unimplemented(cx: &mut Cx, i: &Instruction, bytes: &[u8]) -> Result<(), Fault> {
    use iced_x86::{Formatter, IntelFormatter};
    let mut text = String::new();
    IntelFormatter::new().format(i, &mut text);
    let key = format!("{:?}", i.mnemonic()).to_lowercase();
    let count = cx.misc.unimplemented.entry(key).or_insert(0);
    if *count == 0 {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        tracing::warn!(
            "unimplemented instruction at {:#x}: {} ({}): raising #UD",
            i.ip(),
            text,
            hex.join(" ")
        );
    }
    *count += 1;
    Err(Fault::UD)
}

impl Vcpu for Interp {
    fn run(&mut self, io: &dyn VmIo) -> Result<VcpuExit, VcpuError> {
        loop {
            if self.kicker.take() {
                return Ok(VcpuExit::Kicked);
            }
            if self.kicker.interrupt_window_requested() && self.interrupts_enabled() {
                return Ok(VcpuExit::InterruptWindow);
            }
            if self.st.halted {
                return Ok(VcpuExit::Halted);
            }
            if self.run_batch(io, 4096) == StepResult::Shutdown {
                return Ok(VcpuExit::Shutdown);
            }
        }
    }

    fn get_state(&self) -> CpuState {
        self.st
    }

    fn set_state(&mut self, state: &CpuState) {
        self.st = *state;
        self.tlb.flush();
    }

    fn inject_interrupt(&mut self, vector: u8) {
        let mut cx = Cx {
            st: &mut self.st,
            tlb: &mut self.tlb,
            ram: &self.ram,
            io: &NoIo,
            misc: &mut self.misc,
            asz: 8,
        };
        cx.st.halted = false;
        self.interrupts += 1;
        if let Err(f) = interrupt::deliver(&mut cx, vector, None, interrupt::Source::External) {
            // Delivery of an external interrupt faulted: deliver that fault instead (its own
            // failure becomes a double fault, then a shutdown).
            if let Err(f2) = interrupt::deliver_exception(&mut cx, f) {
                self.last_fault = Some(f2);
                self.st.halted = true;
            }
        }
    }

    fn interrupts_enabled(&self) -> bool {
        self.st.interrupts_enabled()
    }

    fn kicker(&self) -> Kicker {
        self.kicker.clone()
    }

    fn set_trace(&mut self, f: Option<TraceFn>) -> bool {
        self.trace = f;
        true
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            engine: "interp",
            instructions: self.instructions,
            counters: vec![
                ("exceptions delivered".into(), self.exceptions),
                ("external interrupts".into(), self.interrupts),
                ("tlb misses".into(), self.tlb.misses),
                ("block cache hits".into(), self.icache.hits),
                ("blocks decoded".into(), self.icache.misses),
                ("single decodes".into(), self.icache.singles),
            ],
            unimplemented: self
                .misc
                .unimplemented
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

/// I/O sink used where no device access can happen (interrupt delivery touches only memory,
/// and memory-mapped IDTs are not supported).
struct NoIo;

impl VmIo for NoIo {
    fn pio_read(&self, _port: u16, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn pio_write(&self, _port: u16, _data: &[u8]) {}
    fn mmio_read(&self, _addr: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn mmio_write(&self, _addr: u64, _data: &[u8]) {}
}
