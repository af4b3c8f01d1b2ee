//! wasm32: rqemu's hot-tier TCG backend. Prepared IR of one or more TBs becomes one WebAssembly module (emitted
//! with wasm-encoder) that the host's Wasm engine compiles to machine code.
//!
//! - [`abi`]: the module ABI (imports, TB function signature, exit kinds and payloads) and its configuration
//!   [`WasmAbi`];
//! - `codegen`: IR -> Wasm ([`compile_module`]); its module docs describe the code shape (temps in locals,
//!   constants as immediates, structured control flow with Wasm loops for natural loops and a dispatch
//!   loop for the rest, helpers as direct calls of function imports, inlined TLB fast path, tail-call
//!   chaining between members);
//! - `runtime` (wasm32 hosts only): the `Wasm32` backend that instantiates modules through the JS host;
//! - `engine` (feature `embedded`, native hosts only): [`engine::EmbeddedWasm32`], a backend that runs the
//!   same modules in the wasmi interpreter, so the code generator is tested natively.

pub mod abi;
mod codegen;

#[cfg(target_arch = "wasm32")]
pub mod runtime;

#[cfg(all(feature = "embedded", not(target_arch = "wasm32")))]
pub mod engine;

pub use abi::{decode_exit, TlbAbi, WasmAbi};
pub use codegen::{compile_module, ModuleStats};

use rqemu_tcg::{Opcode, Type};

/// A generated module.
#[derive(Clone, Debug)]
pub struct WasmModule {
    /// The binary module.
    pub bytes: Vec<u8>,
    /// Export names, `tb0`, `tb1`, ... in member order.
    pub exports: Vec<String>,
    /// What went into it.
    pub stats: ModuleStats,
}

/// Whether the code generator implements `opc` at `ty`: every op of the table at every type it exists for.
pub fn supports(opc: Opcode, ty: Type) -> bool {
    opc.valid_types().contains(&ty)
}

/// Compiles one TB as a module of its own: how the wasm32 backends implement [`rqemu_tcg::Backend::compile`].
#[cfg(any(target_arch = "wasm32", feature = "embedded"))]
fn compile_alone(
    backend: &mut dyn rqemu_tcg::Backend,
    func: &rqemu_tcg::Func,
) -> Result<Box<dyn rqemu_tcg::CompiledTb>, rqemu_tcg::CompileError> {
    let member = rqemu_tcg::backend::GroupMember {
        func,
        jump_targets: [None, None],
    };
    let mut tbs = backend.compile_group(&[member])?;
    tbs.pop()
        .ok_or_else(|| rqemu_tcg::CompileError::Host("empty module".into()))
}
