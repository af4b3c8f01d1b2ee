//! Helper calls: a direct `call` of the function import (uniform helper type `(env: i32, a0..a4: i64) ->
//! i64`) named after the table slot the [`crate::WasmAbi`] gives for the helper ([`crate::abi`]). i32
//! arguments are zero-extended, missing ones are 0, an i32 result is the low half. After a helper declared
//! `MAY_FAULT` the fault word is tested and a set one ends the TB with the current instruction's index.
//!
//! [`FnImports`] decides, before any code is generated, which functions a module imports: function indices
//! of the members come after the imports, and `return_call` between members needs them.

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{CompileError, HelperFlags, HelperId, Op, Opcode, Type, HELPER_MAX_ARGS};
use wasm_encoder::Instruction as I;

use super::locals::PARAM_ENV;
use super::FnGen;
use crate::abi::WasmAbi;

/// The functions a module imports, by table slot, in the order of their function indices (0, 1, ...).
#[derive(Default)]
pub(super) struct FnImports {
    pub slots: Vec<u32>,
}

impl FnImports {
    /// Every helper and slow path that some member calls, in order of first use. A helper the ABI does not
    /// know is left out (the call is a compile error later).
    pub(super) fn scan(members: &[GroupMember<'_>], abi: &WasmAbi) -> FnImports {
        let mut imports = FnImports::default();
        for op in members.iter().flat_map(|m| m.func.ops.iter()) {
            let slot = match op.opc {
                Opcode::Call => abi.helpers.get(op.konst(0) as u32 as usize).copied(),
                Opcode::QemuLd => Some(abi.ld_slow),
                Opcode::QemuSt => Some(abi.st_slow),
                _ => None,
            };
            if let Some(slot) = slot {
                if !imports.slots.contains(&slot) {
                    imports.slots.push(slot);
                }
            }
        }
        imports
    }

    /// The function index of the import of table slot `slot`.
    fn index(&self, slot: u32) -> Option<u32> {
        self.slots.iter().position(|&s| s == slot).map(|i| i as u32)
    }

    /// Number of imported functions (the first member's function index).
    pub(super) fn len(&self) -> u32 {
        self.slots.len() as u32
    }
}

impl FnGen<'_> {
    /// Pushes `env` and the five 64-bit helper arguments produced by `args` (at most five values) padded
    /// with zeros, then calls the imported function of table slot `slot`.
    pub(super) fn call_helper_abi(&mut self, slot: u32, args: &[ArgSrc]) -> Result<(), CompileError> {
        let Some(func) = self.imports.index(slot) else {
            return Err(self.invalid(format!("table slot {slot} is not imported (code generator bug)")));
        };
        self.code.push(I::LocalGet(PARAM_ENV));
        for i in 0..HELPER_MAX_ARGS {
            match args.get(i) {
                Some(ArgSrc::Temp(t)) => self.get_as(*t, Type::I64)?,
                Some(ArgSrc::Const(v)) => self.code.push(I::I64Const(*v as i64)),
                None => self.code.push(I::I64Const(0)),
            }
        }
        self.code.push(I::Call(func));
        Ok(())
    }

    /// `call helper, outs..., ins...`.
    pub(super) fn call(&mut self, op: &Op) -> Result<(), CompileError> {
        let id = HelperId(op.konst(0) as u32);
        let Some(info) = self.func.target.helpers.get(id) else {
            return Err(self.invalid(format!("helper {} is not registered", id.0)));
        };
        let flags = info.flags;
        let Some(&slot) = self.abi.helpers.get(id.0 as usize) else {
            return Err(self.invalid(format!("helper {} has no table slot in the ABI", info.name)));
        };
        if op.nb_in as usize > HELPER_MAX_ARGS || op.nb_out > 1 {
            return Err(self.invalid("a call has at most five inputs and one output"));
        }
        let args: Vec<ArgSrc> = op.ins().map(ArgSrc::Temp).collect();
        self.call_helper_abi(slot, &args)?;
        if op.nb_out == 1 {
            self.set(op.out(0), Type::I64)?;
        } else {
            self.code.push(I::Drop);
        }
        if flags.contains(HelperFlags::MAY_FAULT) {
            self.check_fault(false)?;
        }
        Ok(())
    }
}

/// Where one helper argument comes from.
pub(super) enum ArgSrc {
    /// A temp (an i32 one is zero-extended).
    Temp(rqemu_tcg::Temp),
    /// An immediate.
    Const(u64),
}
