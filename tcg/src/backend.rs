//! The backend contract: what tci, wasm32 and native implement, and what the execution loop relies on.
//!
//! A backend turns the prepared IR of a TB ([`crate::prepare`]: optimized, globals lowered to explicit loads
//! and stores) into a [`CompiledTb`] that the loop can run. Several backends may hold code for the same TB at
//! once (tiering: tci first, a hot backend later); dropping a `CompiledTb` evicts that code and the loop falls
//! back to another. Nothing unwinds through generated code: faults end the TB with [`TbExit::Fault`].

use core::fmt;

use rqemu_include::{MemOp, MmuIdx};

use crate::func::Func;
use crate::opcodes::Opcode;
use crate::Type;

/// How a TB ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TbExit {
    /// `exit_tb value`.
    Exit(u64),
    /// `goto_tb slot`: the loop continues at the TB linked to that slot (and may chain it).
    GotoTb(u32),
    /// `goto_ptr handle`: the handle came from the loop's lookup helper; 0 means "back to the loop".
    GotoPtr(usize),
    /// A guest memory access or a helper declared `MAY_FAULT` recorded a fault while executing guest
    /// instruction number `insn` of the TB (counting the `insn_start` ops of the prepared IR from
    /// 0; an op before the first `insn_start` counts as instruction 0). Every global was stored to the
    /// CPU state before the faulting op; the loop restores the rest from the `insn_start` words. A fault word
    /// set by a helper stays set; the loop clears it.
    Fault {
        /// Index of the guest instruction that faulted.
        insn: u32,
    },
}

/// A guest memory access failed; the details were recorded in the CPU state by whoever detected it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemFault;

/// Guest memory as seen by `qemu_ld`/`qemu_st` in backends that do not inline the TLB, and by slow paths.
/// softmmu implements it; tests use a flat memory.
pub trait GuestMemory {
    /// Loads `memop.size_bytes()` bytes at `addr`, extended as `memop` says.
    fn load(&mut self, env: *mut u8, addr: u64, memop: MemOp, mmu: MmuIdx) -> Result<u64, MemFault>;
    /// Stores the low `memop.size_bytes()` bytes of `value` at `addr`.
    fn store(&mut self, env: *mut u8, addr: u64, value: u64, memop: MemOp, mmu: MmuIdx) -> Result<(), MemFault>;
}

/// What a running TB needs from its caller.
pub struct ExecContext<'a> {
    /// The CPU state the globals live in, laid out as the [`crate::TargetDesc`] says.
    pub env: *mut u8,
    /// Guest memory.
    pub mem: &'a mut dyn GuestMemory,
}

/// Compiled code for one TB on one backend.
pub trait CompiledTb {
    /// Runs the TB once.
    ///
    /// # Safety
    /// `ctx.env` must point to a writable CPU state at least as large as every offset the TB's IR uses
    /// (globals, `ld`/`st` offsets, the fault word), and the helpers the IR calls must accept it.
    unsafe fn run(&self, ctx: &mut ExecContext<'_>) -> TbExit;

    /// Runs the TB once and also says which member of its compile group left, when a backend chained from
    /// this TB into another member of the group (see [`Backend::compile_group`]) before exiting. `None` means
    /// this TB itself exited; `GotoTb` slots and `Fault` instruction indexes then refer to that member's IR.
    /// The execution loop calls this; backends that never chain keep the default.
    ///
    /// # Safety
    /// As for [`CompiledTb::run`].
    unsafe fn run_chained(&self, ctx: &mut ExecContext<'_>) -> (TbExit, Option<usize>) {
        (self.run(ctx), None)
    }

    /// Bytes of generated code or bytecode, for statistics.
    fn code_size(&self) -> usize;

    /// The generated code as text (one host instruction or bytecode per line), for `-d out_asm`. Backends
    /// opt in; the default `None` makes the log show the code size only.
    fn disassemble(&self) -> Option<String> {
        None
    }
}

/// One TB handed to [`Backend::compile_group`], with its direct-jump successors inside the group.
pub struct GroupMember<'a> {
    /// The prepared IR.
    pub func: &'a Func,
    /// For `goto_tb 0` and `goto_tb 1`: the index of the target TB within the group, if it is there.
    pub jump_targets: [Option<usize>; 2],
}

/// Why a backend did not compile a TB. The TB keeps running on the backend it had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// The backend does not implement this op at this type.
    Unsupported {
        /// Index of the op in the function.
        op_index: usize,
        /// The op.
        opc: Opcode,
        /// Its type.
        ty: Type,
    },
    /// The TB exceeds a limit of the backend (code size, locals, labels).
    TooLarge(String),
    /// The IR breaks a rule the verifier enforces (the backend checks what it relies on rather than panic).
    Invalid {
        /// Index of the op in the function.
        op_index: usize,
        /// What is wrong.
        why: String,
    },
    /// The host refused the code (for example, a Wasm engine failed to instantiate it).
    Host(String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Unsupported { op_index, opc, ty } => {
                write!(
                    f,
                    "op {op_index} ({}_{ty}) is not implemented by this backend",
                    opc.def().name
                )
            }
            CompileError::TooLarge(why) => write!(f, "TB too large: {why}"),
            CompileError::Invalid { op_index, why } => write!(f, "op {op_index}: invalid IR: {why}"),
            CompileError::Host(why) => write!(f, "host rejected code: {why}"),
        }
    }
}

impl std::error::Error for CompileError {}

/// A TCG backend.
pub trait Backend {
    /// Short name (`tci`, `wasm32`, `native`), used in `-accel` options and summaries.
    fn name(&self) -> &'static str;

    /// Whether the backend implements `opc` at `ty`. The conformance suite covers exactly these pairs.
    fn supports(&self, opc: Opcode, ty: Type) -> bool;

    /// Compiles one prepared TB.
    fn compile(&mut self, func: &Func) -> Result<Box<dyn CompiledTb>, CompileError>;

    /// Compiles several TBs at once, so a backend can share one module between them and keep jumps between
    /// members inside it. The default compiles each member alone.
    fn compile_group(&mut self, members: &[GroupMember<'_>]) -> Result<Vec<Box<dyn CompiledTb>>, CompileError> {
        members.iter().map(|m| self.compile(m.func)).collect()
    }
}

/// The backends rqemu knows about, whether or not this build contains them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The IR interpreter (every host).
    Tci,
    /// WebAssembly modules (wasm32 hosts).
    Wasm32,
    /// x86-64 host code (x86-64 hosts).
    Native,
}

impl BackendKind {
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Tci => "tci",
            BackendKind::Wasm32 => "wasm32",
            BackendKind::Native => "native",
        }
    }
}

impl core::str::FromStr for BackendKind {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, BackendError> {
        match s {
            "tci" => Ok(BackendKind::Tci),
            "wasm32" => Ok(BackendKind::Wasm32),
            "native" => Ok(BackendKind::Native),
            other => Err(BackendError::Unknown(other.to_string())),
        }
    }
}

/// Why a backend could not be selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// No backend has this name.
    Unknown(String),
    /// The backend exists but is not part of this build (cargo feature off, or wrong host architecture).
    NotBuilt(BackendKind),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Unknown(n) => {
                write!(f, "unknown TCG backend `{n}` (known: tci, wasm32, native)")
            }
            BackendError::NotBuilt(k) => write!(f, "TCG backend `{}` is not built into this binary", k.name()),
        }
    }
}

impl std::error::Error for BackendError {}
