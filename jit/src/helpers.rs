//! The extern "C" slow-path helpers generated code calls: memory accesses that miss the soft
//! TLB, and flag materialization. They never unwind and never panic on guest input: every
//! outcome is a status code (`translate::status`) with results and faults left in `JitCtx`.
//!
//! This is one of the few modules with unsafe code: a helper receives the raw `JitCtx`
//! pointer generated code was entered with and reaches the engine and the current `VmIo`
//! through it.

use cranelift_codegen::ir::{AbiParam, Signature, types};
use cranelift_codegen::isa::CallConv;

use cpu::{Fault, VmIo};

use crate::ctx::JitCtx;
use crate::engine::Engine;
use crate::translate::status;

/// Signature of a Rust helper taking `n` i64 arguments (the first is the context) and
/// returning a status or value, in the host's C calling convention.
pub fn rust_signature(cc: CallConv, n: usize) -> Signature {
    let mut s = Signature::new(cc);
    s.params
        .extend(std::iter::repeat_n(AbiParam::new(types::I64), n));
    s.returns.push(AbiParam::new(types::I64));
    s
}

/// Signature of the adapter generated code calls for a helper of `n` arguments: Cranelift's
/// `preserve_all` convention, so a call on a cold path clobbers no register of the hot path
/// (the adapter saves what the Rust helper may clobber). It returns nothing: the adapter
/// stores the helper's result in `JitCtx::helper_status`.
pub fn adapter_signature(n: usize) -> Signature {
    let mut s = Signature::new(CallConv::PreserveAll);
    s.params
        .extend(std::iter::repeat_n(AbiParam::new(types::I64), n));
    s
}

/// The Rust helpers: address and argument count, in `HelperAddrs` order (load, store,
/// flags, div).
pub fn rust_helpers() -> [(u64, usize); 4] {
    [
        (jit_load as *const () as u64, 3),
        (jit_store as *const () as u64, 4),
        (jit_flags as *const () as u64, 1),
        (jit_div as *const () as u64, 5),
    ]
}

/// The context, the engine and the I/O interface a helper works with.
///
/// # Safety
/// `ctx` must be the context generated code was entered with by `Engine::run`, which set
/// `engine` and `io` for the duration of the call and holds no reference to either while
/// generated code runs.
unsafe fn parts<'a>(ctx: *mut JitCtx) -> (&'a mut JitCtx, &'a mut Engine, &'a dyn VmIo) {
    // SAFETY: per the function contract, ctx is valid and exclusively ours during the call;
    // `engine` points to the live engine (a separate allocation from the context) and `io` to
    // a `&dyn VmIo` on the run loop's stack frame, which outlives the generated code's call.
    unsafe {
        let c = &mut *ctx;
        let eng = &mut *(c.engine as *mut Engine);
        let io = *(c.io as *const &dyn VmIo);
        (c, eng, io)
    }
}

fn set_fault(ctx: &mut JitCtx, f: Fault) -> u64 {
    ctx.fault_vector = u64::from(f.vector);
    ctx.fault_code = f.code.map_or(u64::MAX, u64::from);
    ctx.fault_addr = f.addr;
    status::FAULT
}

/// Load `info & 0xff` bytes at linear `lin` (`info` bit 8: through SS) into `helper_val`.
extern "C" fn jit_load(ctx: *mut JitCtx, lin: u64, info: u64) -> u64 {
    // SAFETY: called only from generated code, which passes its own context argument.
    let (c, eng, io) = unsafe { parts(ctx) };
    let size = (info & 0xff) as u32;
    match eng.load_slow(c, io, lin, size, info & (1 << 8) != 0) {
        Ok(v) => {
            c.helper_val = v;
            status::OK
        }
        Err(f) => set_fault(c, f),
    }
}

/// Store the low `info & 0xff` bytes of `val` at linear `lin`.
extern "C" fn jit_store(ctx: *mut JitCtx, lin: u64, val: u64, info: u64) -> u64 {
    // SAFETY: called only from generated code, which passes its own context argument.
    let (c, eng, io) = unsafe { parts(ctx) };
    let size = (info & 0xff) as u32;
    match eng.store_slow(c, io, lin, size, info & (1 << 8) != 0, val) {
        Ok(true) => status::OK,
        Ok(false) => status::INTERP,
        Err(f) => set_fault(c, f),
    }
}

/// Materialize RFLAGS from the lazy record in the context; returns it.
extern "C" fn jit_flags(ctx: *mut JitCtx) -> u64 {
    // SAFETY: called only from generated code, which passes its own context argument.
    let (c, eng, _) = unsafe { parts(ctx) };
    eng.sync_flags(c);
    eng.interp.state().rflags
}

/// DIV/IDIV of `hi:lo` by `d` (`info`: size in the low byte, bit 8 signed): quotient in
/// `helper_val`, remainder in `helper_val2`, or a pending #DE.
extern "C" fn jit_div(ctx: *mut JitCtx, lo: u64, hi: u64, d: u64, info: u64) -> u64 {
    // SAFETY: called only from generated code, which passes its own context argument.
    let (c, _, _) = unsafe { parts(ctx) };
    match crate::lower_mul::divide((info & 0xff) as u32, info & (1 << 8) != 0, lo, hi, d) {
        Ok((q, r)) => {
            c.helper_val = q;
            c.helper_val2 = r;
            status::OK
        }
        Err(f) => set_fault(c, f),
    }
}
