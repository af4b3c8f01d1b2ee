//! Helper calls: `call_indirect` through table 0 with the uniform helper type `(env: i32, a0..a4: i64) ->
//! i64`, at the table index the [`crate::WasmAbi`] gives for the helper. i32 arguments are zero-extended,
//! missing ones are 0, an i32 result is the low half. After a helper declared `MAY_FAULT` the fault word is
//! tested and a set one ends the TB with the current instruction's index.

use rqemu_tcg::{CompileError, HelperFlags, HelperId, Op, Type, HELPER_MAX_ARGS};
use wasm_encoder::Instruction as I;

use super::locals::PARAM_ENV;
use super::{FnGen, TYPE_HELPER};

impl FnGen<'_> {
    /// Pushes `env` and the five 64-bit helper arguments produced by `args` (at most five values) padded
    /// with zeros, then calls table entry `index`.
    pub(super) fn call_helper_abi(&mut self, index: u32, args: &[ArgSrc]) -> Result<(), CompileError> {
        self.code.push(I::LocalGet(PARAM_ENV));
        for i in 0..HELPER_MAX_ARGS {
            match args.get(i) {
                Some(ArgSrc::Temp(t)) => self.get_as(*t, Type::I64)?,
                Some(ArgSrc::Const(v)) => self.code.push(I::I64Const(*v as i64)),
                None => self.code.push(I::I64Const(0)),
            }
        }
        self.emit([
            I::I32Const(index as i32),
            I::CallIndirect {
                type_index: TYPE_HELPER,
                table_index: 0,
            },
        ]);
        Ok(())
    }

    /// `call helper, outs..., ins...`.
    pub(super) fn call(&mut self, op: &Op) -> Result<(), CompileError> {
        let id = HelperId(op.konst(0) as u32);
        let Some(info) = self.func.target.helpers.get(id) else {
            return Err(self.invalid(format!("helper {} is not registered", id.0)));
        };
        let flags = info.flags;
        let Some(&index) = self.abi.helpers.get(id.0 as usize) else {
            return Err(self.invalid(format!("helper {} has no table index in the ABI", info.name)));
        };
        if op.nb_in as usize > HELPER_MAX_ARGS || op.nb_out > 1 {
            return Err(self.invalid("a call has at most five inputs and one output"));
        }
        let args: Vec<ArgSrc> = op.ins().map(ArgSrc::Temp).collect();
        self.call_helper_abi(index, &args)?;
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
