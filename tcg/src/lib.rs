//! rqemu's target-independent IR (TCG ops) and everything that works on it.
//!
//! - [`opcodes`]: the opcode table, the single source of truth for every op;
//! - [`Func`] with the builder API ([`builder`]), the text dump ([`dump`]) and its parser ([`parse`]);
//! - [`verify`]: rejects malformed IR with a message naming the op;
//! - [`optimize`], [`liveness`], [`lower`] and [`prepare`]: the passes between a frontend and a backend;
//! - [`backend`]: the contract every backend implements; [`conformance`]: the suite that checks one.
//!
//! Reference semantics of every computational op live in [`semantics`].

pub mod backend;
pub mod builder;
pub mod conformance;
pub mod dump;
pub mod func;
pub mod helper;
pub mod liveness;
pub mod lower;
pub mod op;
pub mod opcodes;
pub mod optimize;
pub mod parse;
pub mod prepare;
pub mod semantics;
pub mod target;
pub mod temp;
#[cfg(test)]
mod testing;
pub mod types;
pub mod verify;

/// The target triple this build runs on (`x86_64-unknown-linux-gnu`, `wasm32-unknown-unknown`, ...).
pub const HOST_TRIPLE: &str = env!("RQEMU_TARGET_TRIPLE");

pub use backend::{
    Backend, BackendError, BackendKind, CompileError, CompiledTb, ExecContext, GuestMemory, MemFault, TbExit,
};
pub use func::Func;
pub use helper::{HelperFlags, HelperFn, HelperId, HelperInfo, HelperTable, HELPER_MAX_ARGS};
pub use op::Op;
pub use opcodes::{OpFlags, Opcode, OPDEFS};
pub use target::{GlobalDef, TargetDesc};
pub use temp::{Label, Temp, TempInfo, TempKind};
pub use types::{Cond, Type};
