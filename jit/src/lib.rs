//! The Cranelift JIT engine: not built yet (see the JIT issue). This crate is its place in the workspace.
