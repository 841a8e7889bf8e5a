//! vx's Cranelift JIT engine: guest x86_64 blocks translated to host code, on top of the
//! reference interpreter (which owns the state, the MMU, exception delivery and runs whatever
//! the JIT does not translate). See docs/architecture.md ("The JIT engine") for how a guest instruction becomes
//! host code.
//!
//! Module map: `engine` (run loop), `entry` (calling generated code), `decode` (guest
//! blocks), `translate` (block → IR), `lower` + `lower_*` (one file per instruction family),
//! `flags` (lazy flags), `tlb` (soft TLB), `cache` (blocks, code pages, chaining,
//! invalidation), `fallback` (interpreter steps and their writes), `codegen` (Cranelift
//! pipeline), `codemem` (code pages), `helpers` (slow paths), `offsets` (every layout fact
//! generated code uses), `ctx` (`JitCtx`), `dump` (`VX_JIT_DUMP=1`).

pub mod cache;
pub mod codegen;
pub mod codemem;
pub mod cross_page;
pub mod ctx;
pub mod decode;
pub mod dump;
pub mod engine;
pub mod entry;
pub mod fallback;
pub mod flags;
pub mod helpers;
pub mod lower;
pub mod lower_alu;
pub mod lower_bit;
pub mod lower_branch;
pub mod lower_flagops;
pub mod lower_mov;
pub mod lower_mul;
pub mod lower_shift;
pub mod lower_sse;
pub mod lower_sse_int;
pub mod lower_stack;
pub mod lower_xchg;
pub mod offsets;
pub mod tlb;
pub mod translate;

use cpu::{
    CpuState, EngineStats, GuestRam, Interp, Kicker, TraceFn, Vcpu, VcpuError, VcpuExit, VmIo,
};

use crate::ctx::cc;
use crate::engine::Engine;

/// Host-side failures of the JIT (never guest misbehaviour).
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// Cranelift could not set up or compile.
    #[error("code generation failed: {0}")]
    Codegen(String),
    /// The code arena could not be mapped.
    #[error("cannot map JIT code memory: {0}")]
    CodeMemory(std::io::Error),
}

/// Tuning knobs of the JIT engine.
#[derive(Clone, Copy, Debug)]
pub struct JitOptions {
    /// Code space per code generation, in bytes.
    pub code_space: usize,
    /// Executions of a block before it is translated; until then the interpreter runs it
    /// (its decoded-block cache, with the writes tracked by `fallback::WriteWatch`). 1
    /// translates on first execution. Translating costs 300-500 µs per block (release build,
    /// Cranelift dominates), so code that runs only a few times is cheaper to interpret.
    ///
    /// The default (1000) was measured on the Debian cloud-amd64 boot to `VX-GUEST-READY`
    /// (shared, noisy 2-core machine, seconds per run): 50: 13.0 13.8; 200: 10.4 12.6 12.3
    /// 11.7; 1000: 10.9 10.4 9.4 10.0; 3000: 10.7 12.7; 1 (translate at once): 35-42 before
    /// the interpreter-speed cold path, worse after it.
    pub hot_threshold: u32,
}

/// The default hot threshold (see `JitOptions::hot_threshold` for how it was chosen).
pub const DEFAULT_HOT_THRESHOLD: u32 = 1000;

impl Default for JitOptions {
    fn default() -> JitOptions {
        JitOptions {
            code_space: codegen::ARENA_SIZE,
            hot_threshold: DEFAULT_HOT_THRESHOLD,
        }
    }
}

impl JitOptions {
    /// The defaults, with `VX_JIT_HOT=N` overriding the hot threshold.
    pub fn from_env() -> JitOptions {
        let hot = std::env::var("VX_JIT_HOT")
            .ok()
            .and_then(|v| v.parse().ok());
        JitOptions {
            hot_threshold: hot.unwrap_or(DEFAULT_HOT_THRESHOLD),
            ..JitOptions::default()
        }
    }

    /// Translate every block on its first execution (hot threshold 1): what tests use to
    /// cover generated code fully.
    pub fn eager() -> JitOptions {
        JitOptions {
            hot_threshold: 1,
            ..JitOptions::default()
        }
    }
}

/// One guest processor on the JIT.
#[derive(Debug)]
pub struct JitVcpu {
    core: entry::Core,
}

impl JitVcpu {
    /// A vCPU in the RESET state over `ram`, with the default options (`VX_JIT_HOT=N` sets
    /// the hot threshold).
    pub fn new(ram: GuestRam) -> Result<JitVcpu, JitError> {
        JitVcpu::with_options(ram, JitOptions::from_env())
    }

    /// A vCPU whose code generations hold `bytes` of code each (at least 512 KiB), translating
    /// every block at once: tests use a small one to make generation flushes happen.
    pub fn with_code_space(ram: GuestRam, bytes: usize) -> Result<JitVcpu, JitError> {
        JitVcpu::with_options(
            ram,
            JitOptions {
                code_space: bytes,
                ..JitOptions::eager()
            },
        )
    }

    /// A vCPU with explicit options.
    pub fn with_options(ram: GuestRam, opts: JitOptions) -> Result<JitVcpu, JitError> {
        let eng = Box::new(Engine::new(Interp::new(ram), opts)?);
        Ok(JitVcpu {
            core: entry::Core::new(eng),
        })
    }

    /// The interpreter underneath (tests).
    pub fn interp(&self) -> &Interp {
        &self.core.eng().interp
    }
}

impl Vcpu for JitVcpu {
    fn run(&mut self, io: &dyn VmIo) -> Result<VcpuExit, VcpuError> {
        self.core.run(io)
    }

    fn get_state(&self) -> CpuState {
        *self.core.eng().interp.state()
    }

    fn set_state(&mut self, state: &CpuState) {
        self.core.eng_mut().interp.set_state(state);
        let ctx = self.core.ctx_mut();
        ctx.cc_op = cc::NONE;
        ctx.flush_tlb();
        ctx.flush_jc();
        ctx.code_epoch += 1;
    }

    fn inject_interrupt(&mut self, vector: u8) {
        self.core.eng_mut().interp.inject_interrupt(vector);
        self.core.ctx_mut().code_epoch += 1;
    }

    fn interrupts_enabled(&self) -> bool {
        self.core.eng().interp.interrupts_enabled()
    }

    fn kicker(&self) -> Kicker {
        self.core.eng().interp.kicker()
    }

    fn set_trace(&mut self, f: Option<TraceFn>) -> bool {
        self.core.eng_mut().interp_only = f.is_some();
        self.core.eng_mut().interp.set_trace(f)
    }

    fn stats(&self) -> EngineStats {
        let eng = self.core.eng();
        let s = &eng.stats;
        let c = &eng.cache.stats;
        let blocks = self.core.ctx().blocks;
        let mut counters: Vec<(String, u64)> = vec![
            ("blocks translated".into(), s.translated),
            ("insns translated".into(), s.translated_insns),
            ("translation us".into(), s.translate_ns / 1000),
            ("code bytes".into(), s.code_bytes),
            ("code generations".into(), s.generations),
            ("block executions".into(), blocks),
            ("run-loop entries".into(), s.dispatches),
            (
                "chained entries".into(),
                blocks.saturating_sub(s.dispatches),
            ),
            ("links made".into(), c.links),
            ("jit instructions".into(), s.jit_insns),
            ("interp instructions".into(), s.interp_insns),
            ("cold instructions".into(), s.cold_insns),
            ("fallback steps".into(), s.fallbacks.values().sum()),
            ("tlb misses read".into(), s.tlb_miss_read),
            ("tlb misses write".into(), s.tlb_miss_write),
            ("mmio accesses".into(), s.mmio),
            ("code page writes".into(), s.code_page_writes),
            ("blocks invalidated".into(), c.invalidated),
            ("page revalidations".into(), c.revalidations),
            ("code epoch bumps".into(), self.core.ctx().code_epoch),
            ("run calls".into(), s.runs),
            ("faults".into(), s.faults),
            ("stores left to interp".into(), s.interp_exits),
        ];
        let mut fb: Vec<(&iced_x86::Mnemonic, &u64)> = s.fallbacks.iter().collect();
        fb.sort_by(|a, b| b.1.cmp(a.1));
        for (m, n) in fb.into_iter().take(12) {
            counters.push((format!("fallback {}", format!("{m:?}").to_lowercase()), *n));
        }
        let inner = self.core.eng().interp.stats();
        EngineStats {
            engine: "jit",
            instructions: self.core.eng().interp.instructions(),
            counters,
            unimplemented: inner.unimplemented,
        }
    }
}
