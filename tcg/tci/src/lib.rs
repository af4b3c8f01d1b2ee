//! tci: rqemu's TCG interpreter, the backend that runs on every host (wasm32 included) and the first tier
//! every TB starts on.
//!
//! [`Tci`] turns a prepared TB (`rqemu_tcg::prepare`: no globals, only `env`, TB and EBB temps and
//! constants) into compact bytecode ([`TciTb`]); running it copies a small frame of `u64` slots onto the host
//! stack and dispatches one instruction per IR op with a `match` in a loop (a `br_table` on wasm32).
//!
//! - `compile`: IR -> bytecode in three passes (check and scan, slots, emit);
//! - `slots`: live ranges and the linear scan that lets temps share frame slots;
//! - `bytecode`: the instruction set: 12-byte instructions specialised by op, by type where i32 and i64
//!   differ, by condition, and for `ld`/`st` on `env`; operands are slot byte offsets;
//! - `interp`: the dispatch loop, without bounds checks; `tb`: the compiled TB, which checks once that the
//!   bytecode stays inside its frame, code and side tables, and its entry;
//! - [`bench`](mod@bench): the dispatch and translation benchmark (`tci-bench` runs it natively).
//!
//! Frame: slot 0 is `env`, then the IR's constants, then the temps' shared slots, then constants the
//! bytecode adds. A per-TB template initialises the whole frame at entry, so a temp read before it is written
//! (which the verifier allows on some paths) sees a defined value. i32 values are kept zero-extended in their
//! slots, which lets equality, unsigned and bitwise instructions serve both types.

mod bytecode;
mod compile;
mod interp;
mod slots;
mod tb;

pub mod bench;

use rqemu_tcg::{Backend, CompileError, CompiledTb, Func, Opcode, Type};

pub use tb::TciTb;

/// The tci backend. It keeps its compiler's buffers between TBs, so reuse one instance.
#[derive(Default)]
pub struct Tci {
    compiler: compile::Compiler,
}

impl Tci {
    /// A backend with empty buffers.
    pub fn new() -> Tci {
        Tci::default()
    }

    /// Compiles one prepared TB, returning the concrete type (for tests, statistics and disassembly).
    pub fn compile_tb(&mut self, func: &Func) -> Result<TciTb, CompileError> {
        self.compiler.compile(func)
    }
}

impl Backend for Tci {
    fn name(&self) -> &'static str {
        "tci"
    }

    fn supports(&self, opc: Opcode, ty: Type) -> bool {
        opc.valid_types().contains(&ty)
    }

    fn compile(&mut self, func: &Func) -> Result<Box<dyn CompiledTb>, CompileError> {
        Ok(Box::new(self.compile_tb(func)?))
    }
}
