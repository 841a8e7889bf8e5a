//! The compile pipeline: one `JITModule` per code generation (its code lives in a `CodeArena`),
//! the Rust-to-generated-code trampoline, and `compile`, which turns a block's Cranelift
//! function into host code and, with `VX_JIT_DUMP=1`, prints its IR and disassembly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cranelift_codegen::Context;
use cranelift_codegen::ir::{
    AbiParam, FuncRef, Function, InstBuilder, MemFlagsData, Signature, UserFuncName, types,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Module, default_libcall_names};

use crate::JitError;
use crate::codemem::CodeArena;
use crate::translate::HelperAddrs;

/// Code space per generation (default). When it fills, the engine drops every block and
/// starts over.
pub const ARENA_SIZE: usize = 64 << 20;

/// Space kept free at the end of an arena: a generation is "nearly full" once less is left
/// (a block function is far smaller).
const ARENA_SLACK: usize = 256 << 10;

/// The block function signature: `(ctx, budget, blocks) -> exit code`, tail calling
/// convention so a block can jump into the next one with `return_call_indirect`, passing the
/// instruction budget and the block counter in registers.
pub fn block_signature() -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params.extend([AbiParam::new(types::I64); 3]);
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// A code generation: the module that owns the code, and reusable compile contexts.
pub struct Codegen {
    module: JITModule,
    cctx: Context,
    fctx: FunctionBuilderContext,
    used: Arc<AtomicUsize>,
    arena_size: usize,
    /// The trampoline: `extern "C" fn(ctx, block fn) -> exit code`.
    pub trampoline: usize,
    /// The `preserve_all` adapters generated code calls for each helper.
    pub adapters: HelperAddrs,
    adapter_ids: Vec<FuncId>,
    last_id: Option<FuncId>,
    /// Functions compiled in this generation.
    pub functions: u64,
}

impl std::fmt::Debug for Codegen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codegen")
            .field("bytes", &self.code_bytes())
            .field("functions", &self.functions)
            .finish()
    }
}

fn isa() -> Result<OwnedTargetIsa, JitError> {
    let mut fb = settings::builder();
    let set = |fb: &mut settings::Builder, k: &str, v: &str| {
        fb.set(k, v)
            .map_err(|e| JitError::Codegen(format!("setting {k}={v}: {e}")))
    };
    // VX_JIT_OPT=none|speed (default speed): Cranelift's optimization level, for measuring.
    let opt = std::env::var("VX_JIT_OPT").unwrap_or_else(|_| "speed".into());
    set(&mut fb, "opt_level", &opt)?;
    // VX_JIT_REGALLOC=backtracking|single_pass: Cranelift's register allocator, for measuring.
    let ra = std::env::var("VX_JIT_REGALLOC").unwrap_or_else(|_| "backtracking".into());
    set(&mut fb, "regalloc_algorithm", &ra)?;
    set(&mut fb, "use_colocated_libcalls", "false")?;
    set(&mut fb, "is_pic", "false")?;
    // Cranelift's x64 tail calls (block chaining) rely on frame pointers.
    set(&mut fb, "preserve_frame_pointers", "true")?;
    set(
        &mut fb,
        "enable_verifier",
        if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        },
    )?;
    let builder =
        cranelift_native::builder().map_err(|e| JitError::Codegen(format!("host ISA: {e}")))?;
    builder
        .finish(settings::Flags::new(fb))
        .map_err(|e| JitError::Codegen(format!("host ISA: {e}")))
}

impl Codegen {
    /// A fresh generation with its own code arena and trampoline.
    pub fn new(arena_size: usize) -> Result<Codegen, JitError> {
        let arena_size = arena_size.max(2 * ARENA_SLACK);
        let used = Arc::new(AtomicUsize::new(0));
        let arena = CodeArena::new(arena_size, used.clone()).map_err(JitError::CodeMemory)?;
        let mut jb = JITBuilder::with_isa(isa()?, default_libcall_names());
        jb.memory_provider(Box::new(arena));
        let module = JITModule::new(jb);
        let cctx = module.make_context();
        let mut cg = Codegen {
            module,
            cctx,
            fctx: FunctionBuilderContext::new(),
            used,
            arena_size,
            trampoline: 0,
            adapters: HelperAddrs {
                load: 0,
                store: 0,
                flags: 0,
                div: 0,
            },
            adapter_ids: Vec::new(),
            last_id: None,
            functions: 0,
        };
        cg.trampoline = cg.build_trampoline()?;
        let [load, store, flags, div] = crate::helpers::rust_helpers();
        let mut ids = Vec::new();
        let mut addr = |cg: &mut Codegen, h| -> Result<u64, JitError> {
            let (a, id) = cg.build_adapter(h)?;
            ids.push(id);
            Ok(a)
        };
        let load = addr(&mut cg, load)?;
        let store = addr(&mut cg, store)?;
        let flags = addr(&mut cg, flags)?;
        let div = addr(&mut cg, div)?;
        cg.adapters = HelperAddrs {
            load,
            store,
            flags,
            div,
        };
        cg.adapter_ids = ids;
        Ok(cg)
    }

    /// The host's C calling convention.
    pub fn call_conv(&self) -> CallConv {
        self.module.isa().default_call_conv()
    }

    /// Bytes of code space used so far.
    pub fn code_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the arena is nearly full (the next blocks should go to a new generation).
    pub fn nearly_full(&self) -> bool {
        self.code_bytes() + ARENA_SLACK > self.arena_size
    }

    fn build_trampoline(&mut self) -> Result<usize, JitError> {
        let mut sig = self.module.make_signature();
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.returns.push(AbiParam::new(types::I64));
        let f = self.compile_with(
            sig,
            |b, _| {
                let entry = b.create_block();
                b.append_block_params_for_function_params(entry);
                b.switch_to_block(entry);
                let ctx = b.block_params(entry)[0];
                let func = b.block_params(entry)[1];
                let tail = b.import_signature(block_signature());
                let flags = MemFlagsData::trusted();
                let budget = b
                    .ins()
                    .load(types::I64, flags, ctx, crate::offsets::ctx::BUDGET);
                let blocks = b
                    .ins()
                    .load(types::I64, flags, ctx, crate::offsets::ctx::BLOCKS);
                let call = b.ins().call_indirect(tail, func, &[ctx, budget, blocks]);
                let r = b.inst_results(call)[0];
                b.ins().return_(&[r]);
            },
            None,
        )?;
        Ok(f.0)
    }

    /// A `preserve_all` function that calls the Rust helper at `addr` (taking `n` arguments,
    /// the first the context) and stores its result in `JitCtx::helper_status`.
    fn build_adapter(&mut self, (addr, n): (u64, usize)) -> Result<(u64, FuncId), JitError> {
        let cc = self.call_conv();
        let (f, _) = self.compile_with(
            crate::helpers::adapter_signature(n),
            |b, _| {
                let entry = b.create_block();
                b.append_block_params_for_function_params(entry);
                b.switch_to_block(entry);
                let args: Vec<_> = b.block_params(entry).to_vec();
                let sig = b.import_signature(crate::helpers::rust_signature(cc, n));
                let callee = b.ins().iconst(types::I64, addr as i64);
                let call = b.ins().call_indirect(sig, callee, &args);
                let r = b.inst_results(call)[0];
                b.ins().store(
                    MemFlagsData::trusted(),
                    r,
                    args[0],
                    crate::offsets::ctx::HELPER_STATUS,
                );
                b.ins().return_(&[]);
            },
            None,
        )?;
        Ok((f as u64, self.last_id.expect("compile_with sets the id")))
    }

    /// Compile a block function built by `build`; returns its address and code size. `dump`
    /// is printed (with the IR and the host disassembly) when given.
    /// The closure gets the helper adapters as callable functions (load, store, flags, div).
    pub fn compile_block(
        &mut self,
        build: impl FnOnce(&mut FunctionBuilder, &[FuncRef]),
        dump: Option<&str>,
    ) -> Result<(usize, usize), JitError> {
        self.compile_with(block_signature(), build, dump)
    }

    fn compile_with(
        &mut self,
        sig: Signature,
        build: impl FnOnce(&mut FunctionBuilder, &[FuncRef]),
        dump: Option<&str>,
    ) -> Result<(usize, usize), JitError> {
        let id = self
            .module
            .declare_anonymous_function(&sig)
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        self.last_id = Some(id);
        self.module.clear_context(&mut self.cctx);
        self.cctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
        // Direct (rel32) calls to the adapters: an address constant would be an SSA value the
        // optimizer may hoist out of a loop and keep in a register.
        let refs: Vec<FuncRef> = self
            .adapter_ids
            .iter()
            .map(|&a| self.module.declare_func_in_func(a, &mut self.cctx.func))
            .collect();
        {
            let mut b = FunctionBuilder::new(&mut self.cctx.func, &mut self.fctx);
            build(&mut b, &refs);
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        let ir = dump.map(|_| self.cctx.func.display().to_string());
        self.module
            .define_function(id, &mut self.cctx)
            .map_err(|e| match e {
                cranelift_module::ModuleError::Compilation(ce) => {
                    JitError::Codegen(format!("{ce:?}"))
                }
                other => JitError::Codegen(other.to_string()),
            })?;
        let size = self
            .cctx
            .compiled_code()
            .map(|c| c.code_buffer().len())
            .unwrap_or(0);
        self.module.clear_context(&mut self.cctx);
        self.module
            .finalize_definitions()
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        let addr = self.module.get_finalized_function(id) as usize;
        self.functions += 1;
        if let (Some(guest), Some(ir)) = (dump, ir) {
            let host = crate::codemem::copy_code(addr, size);
            crate::dump::print(guest, &ir, &host, addr as u64, self.functions);
        }
        Ok((addr, size))
    }
}

/// Free a generation's code: dropping the module drops its `CodeArena`, which unmaps the code.
/// Every pointer into it must be forgotten first (the cache's generation flush does that), and
/// no generated code may be running (flushes happen only in the run loop).
pub fn retire(cg: Codegen) {
    drop(cg);
}
