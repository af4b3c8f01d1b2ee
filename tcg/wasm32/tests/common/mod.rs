//! Shared by the integration tests: a backend wrapper that validates every module the embedded engine
//! generates with wasmparser, independently of the engine that runs it.

#![allow(dead_code)]

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{Backend, CompileError, CompiledTb, Func, Opcode, Type};
use rqemu_tcg_wasm32::engine::EmbeddedWasm32;

/// Validates a generated module with every feature the code generator may use.
pub fn validate(bytes: &[u8]) -> Result<(), String> {
    let features = wasmparser::WasmFeatures::default() | wasmparser::WasmFeatures::TAIL_CALL;
    wasmparser::Validator::new_with_features(features)
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The embedded engine, with each generated module validated; counts modules.
pub struct Validating {
    pub inner: EmbeddedWasm32,
    pub modules: usize,
}

impl Validating {
    pub fn new(inner: EmbeddedWasm32) -> Validating {
        Validating { inner, modules: 0 }
    }

    fn check(&mut self) -> Result<(), CompileError> {
        let bytes = self
            .inner
            .last_module()
            .ok_or_else(|| CompileError::Host("no module".into()))?;
        validate(bytes).map_err(|e| CompileError::Host(format!("wasmparser rejected the module: {e}")))?;
        self.modules += 1;
        Ok(())
    }
}

impl Backend for Validating {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn supports(&self, opc: Opcode, ty: Type) -> bool {
        self.inner.supports(opc, ty)
    }

    fn compile(&mut self, func: &Func) -> Result<Box<dyn CompiledTb>, CompileError> {
        let tb = self.inner.compile(func)?;
        self.check()?;
        Ok(tb)
    }

    fn compile_group(&mut self, members: &[GroupMember<'_>]) -> Result<Vec<Box<dyn CompiledTb>>, CompileError> {
        let tbs = self.inner.compile_group(members)?;
        self.check()?;
        Ok(tbs)
    }
}
