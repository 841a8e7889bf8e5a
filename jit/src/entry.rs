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

/// An engine and its context, owned together. The context is a raw allocation because
/// generated code and helpers write it through a pointer while the engine runs.
pub struct Core {
    eng: Box<Engine>,
    /// From `Box::into_raw`, freed in `Drop`.
    ctx: *mut JitCtx,
}

// SAFETY: the context is owned exclusively by this `Core` (its pointer is handed to generated
// code only during `run`, which borrows the `Core` mutably), and the engine is Send; moving
// the `Core` moves both.
unsafe impl Send for Core {}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("engine", &self.eng).finish()
    }
}

impl Core {
    /// Own `eng` with a fresh context.
    pub fn new(eng: Box<Engine>) -> Core {
        Core {
            eng,
            ctx: Box::into_raw(JitCtx::new()),
        }
    }

    /// The engine.
    pub fn eng(&self) -> &Engine {
        &self.eng
    }

    /// The engine, mutably.
    pub fn eng_mut(&mut self) -> &mut Engine {
        &mut self.eng
    }

    /// The context.
    pub fn ctx(&self) -> &JitCtx {
        // SAFETY: ctx is valid for the Core's life; outside `run` nothing else uses it.
        unsafe { &*self.ctx }
    }

    /// The context, mutably.
    pub fn ctx_mut(&mut self) -> &mut JitCtx {
        // SAFETY: as in `ctx`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.ctx }
    }

    /// Run the guest until something the board must decide happens.
    pub fn run(&mut self, io: &dyn VmIo) -> Result<VcpuExit, VcpuError> {
        let io_ref: &dyn VmIo = io;
        let eng: *mut Engine = &mut *self.eng;
        let ctx = self.ctx;
        // SAFETY: ctx is valid and exclusively ours; `io_ref` lives on this stack frame until
        // run_loop returns, and the pointers are cleared before this function returns.
        unsafe {
            (*ctx).engine = eng.cast();
            (*ctx).io = (&io_ref as *const &dyn VmIo).cast();
        }
        // SAFETY: eng and ctx are this Core's (valid, and not borrowed elsewhere while the loop
        // runs: `self` is mutably borrowed by this call); engine and io are set above.
        let r = unsafe { run_loop(eng, ctx, io) };
        // SAFETY: as above; no generated code runs any more.
        unsafe {
            (*ctx).engine = std::ptr::null_mut();
            (*ctx).io = std::ptr::null();
        }
        r
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // SAFETY: ctx came from Box::into_raw in `new` and is freed only here.
        drop(unsafe { Box::from_raw(self.ctx) });
    }
}

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
