//! Wasm locals for IR temps and per-op scratch values, and the small stack-machine vocabulary the other
//! codegen files speak: push a temp, store into a temp, constants, and picking the i32 or i64 form of an
//! instruction.
//!
//! Each non-constant temp gets its own local of its own type (i32 temps are `i32` locals, i64 temps `i64`),
//! allocated on first use; the engine's register allocator does the rest, so sharing locals between temps
//! would buy nothing. Constants are never in locals: they become `i32.const`/`i64.const` immediates where
//! they are used. Scratch locals are handed out per op and reused by the next op.

use rqemu_tcg::{CompileError, Func, Temp, TempKind, Type};
use wasm_encoder::{Instruction as I, MemArg, MemArgTarget, ValType};

/// Local index of the `$env` parameter (a 32-bit linear-memory address).
pub(super) const PARAM_ENV: u32 = 0;
/// Local index of the `$out` parameter (where the exit payload goes).
pub(super) const PARAM_OUT: u32 = 1;
/// Number of parameters, so the first declared local's index.
const NB_PARAMS: u32 = 2;

/// The Wasm value type of an IR type.
pub(super) fn val_type(ty: Type) -> ValType {
    match ty {
        Type::I32 => ValType::I32,
        Type::I64 => ValType::I64,
    }
}

/// `i32` or `i64` form of an instruction, by IR type.
pub(super) fn pick(ty: Type, i32: I<'static>, i64: I<'static>) -> I<'static> {
    match ty {
        Type::I32 => i32,
        Type::I64 => i64,
    }
}

/// A memarg on memory 0 with an alignment hint of `2^align` bytes.
pub(super) fn memarg_aligned(offset: u64, align: u32) -> MemArg {
    MemArg {
        offset,
        align,
        target: MemArgTarget::Memory(0),
        ordering: None,
    }
}

/// A constant of type `ty` (truncated to it).
pub(super) fn konst(ty: Type, v: u64) -> I<'static> {
    match ty {
        Type::I32 => I::I32Const(v as u32 as i32),
        Type::I64 => I::I64Const(v as i64),
    }
}

/// The locals of one function being generated and the instruction buffer they are used from.
pub(super) struct Locals {
    /// Declared locals after the parameters, by type, in index order.
    declared: Vec<ValType>,
    /// Local of each temp, once allocated.
    of_temp: Vec<Option<u32>>,
    /// Scratch locals of each type, and how many the current op has taken.
    scratch_i32: (Vec<u32>, usize),
    scratch_i64: (Vec<u32>, usize),
}

impl Locals {
    /// Locals for `func`; an i64 `env` temp (64-bit build hosts) gets a local that the prologue fills.
    pub(super) fn new(func: &Func) -> Locals {
        Locals {
            declared: Vec::new(),
            of_temp: vec![None; func.temps.len()],
            scratch_i32: (Vec::new(), 0),
            scratch_i64: (Vec::new(), 0),
        }
    }

    fn declare(&mut self, ty: ValType) -> u32 {
        self.declared.push(ty);
        NB_PARAMS + self.declared.len() as u32 - 1
    }

    /// The local holding temp `t` (of type `ty`), allocated on first use.
    pub(super) fn of(&mut self, t: Temp, ty: Type) -> u32 {
        if let Some(l) = self.of_temp[t.index()] {
            return l;
        }
        let l = self.declare(val_type(ty));
        self.of_temp[t.index()] = Some(l);
        l
    }

    /// A local of type `ty` for the whole function (not a temp's, not recycled like scratch locals).
    pub(super) fn pinned(&mut self, ty: Type) -> u32 {
        self.declare(val_type(ty))
    }

    /// Makes the scratch locals taken so far free for the next op.
    pub(super) fn release_scratch(&mut self) {
        self.scratch_i32.1 = 0;
        self.scratch_i64.1 = 0;
    }

    /// A scratch local of type `ty`, valid until [`Locals::release_scratch`].
    pub(super) fn scratch(&mut self, ty: Type) -> u32 {
        let pool = match ty {
            Type::I32 => &mut self.scratch_i32,
            Type::I64 => &mut self.scratch_i64,
        };
        if let Some(&l) = pool.0.get(pool.1) {
            pool.1 += 1;
            return l;
        }
        let l = self.declare(val_type(ty));
        let pool = match ty {
            Type::I32 => &mut self.scratch_i32,
            Type::I64 => &mut self.scratch_i64,
        };
        pool.0.push(l);
        pool.1 += 1;
        l
    }

    /// The declared locals, run-length grouped as a function body declares them.
    pub(super) fn declarations(&self) -> Vec<(u32, ValType)> {
        let mut out: Vec<(u32, ValType)> = Vec::new();
        for &ty in &self.declared {
            match out.last_mut() {
                Some((n, last)) if *last == ty => *n += 1,
                _ => out.push((1, ty)),
            }
        }
        out
    }
}

/// What a temp is to the code generator.
pub(super) enum TempUse {
    /// A value in a local.
    Local,
    /// An immediate.
    Const(u64),
    /// `env`.
    Env,
}

/// Classifies `t`, rejecting globals (prepared IR has none) and out-of-range temps with a [`CompileError`].
pub(super) fn classify(func: &Func, t: Temp, op_index: usize) -> Result<(TempUse, Type), CompileError> {
    let Some(info) = func.temps.get(t.index()) else {
        return Err(CompileError::Invalid {
            op_index,
            why: format!("temp {} does not exist", t.0),
        });
    };
    let u = match info.kind {
        TempKind::Env => TempUse::Env,
        TempKind::Const(v) => TempUse::Const(v),
        TempKind::Tb | TempKind::Ebb => TempUse::Local,
        TempKind::Global { .. } => {
            return Err(CompileError::Invalid {
                op_index,
                why: format!("global temp {} in prepared IR (globals are lowered by prepare)", t.0),
            })
        }
    };
    Ok((u, info.ty))
}
