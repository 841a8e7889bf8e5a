//! Entering generated code: the run loop that alternates between the dispatcher (`Engine`)
//! and calls into blocks through the trampoline.
//!
//! This is one of the few modules with unsafe code. The engine and the context are reached
//! through raw pointers here because generated code (and the helpers it calls) use them too
//! while a block runs: no Rust reference to either is alive across a call into generated
//! code, and every reference made here lasts only for one engine method call.

use cpu::{VcpuError, VcpuExit, VmIo};

use crate::ctx::JitCtx;
use crate::engine::{Engine, Next};

/// Run blocks and interpreter steps until something the board must decide happens.
///
/// # Safety
/// `eng` and `ctx` must point to the vCPU's live engine and context, not otherwise borrowed
/// for the duration of the call, with `ctx.engine` and `ctx.io` set for this call (see
/// `JitVcpu::run`).
pub unsafe fn run_loop(
    eng: *mut Engine,
    ctx: *mut JitCtx,
    io: &dyn VmIo,
) -> Result<VcpuExit, VcpuError> {
    // SAFETY: eng and ctx are valid and not otherwise borrowed (the caller's contract);
    // the references live only for this call.
    unsafe { (*eng).begin_run(&mut *ctx) };
    let result = loop {
        // SAFETY: as above; no generated code is running.
        let next = unsafe { (*eng).next(&mut *ctx, io) };
        match next {
            Next::Again => {}
            Next::Exit(e) => break Ok(e),
            Next::Fail(e) => {
                break Err(VcpuError::Engine {
                    engine: "jit",
                    message: e.to_string(),
                });
            }
            Next::Enter(func) => {
                // SAFETY: as above.
                let tramp = unsafe { (*eng).cg.trampoline };
                // SAFETY: `tramp` is the trampoline compiled by the current code generation,
                // an `extern "C" fn(*mut JitCtx, u64) -> u64` by construction (codegen.rs);
                // `func` is a live block function of the same generation. The block and the
                // helpers it calls access the state, the context and the engine only through
                // the raw pointers in `ctx`; no Rust reference to them is alive here.
                let code = unsafe {
                    let f: extern "C" fn(*mut JitCtx, u64) -> u64 = std::mem::transmute(tramp);
                    f(ctx, func as u64)
                };
                // SAFETY: the block returned; nothing else uses eng or ctx now.
                if let Some(e) = unsafe { (*eng).after(&mut *ctx, io, code) } {
                    break Ok(e);
                }
            }
        }
    };
    // SAFETY: as above.
    unsafe { (*eng).end_run(&mut *ctx) };
    result
}
