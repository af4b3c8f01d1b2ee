//! One IR operation: an opcode, its type and its arguments (output temps, input temps, constants, in order).

use crate::opcodes::Opcode;
use crate::temp::{Label, Temp};
use crate::types::{Cond, Type};

/// Most arguments any op has (a call: one output, five inputs and the helper).
pub const MAX_OP_ARGS: usize = 8;

/// One IR operation.
///
/// `args` holds the output temp indexes, then the input temp indexes, then the constant arguments, as the
/// opcode table describes. For calls the temp counts come from `nb_out`/`nb_in`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The opcode.
    pub opc: Opcode,
    /// The operation type (see [`crate::opcodes::Types`]).
    pub ty: Type,
    /// Number of output temps.
    pub nb_out: u8,
    /// Number of input temps.
    pub nb_in: u8,
    /// Number of constant arguments.
    pub nb_const: u8,
    /// Arguments: outputs, inputs, constants.
    pub args: [u64; MAX_OP_ARGS],
}

impl Op {
    /// Builds an op from its parts.
    ///
    /// # Panics
    /// When there are more than [`MAX_OP_ARGS`] arguments in all (a builder programming error).
    pub fn new(opc: Opcode, ty: Type, outs: &[Temp], ins: &[Temp], consts: &[u64]) -> Op {
        let n = outs.len() + ins.len() + consts.len();
        assert!(n <= MAX_OP_ARGS, "{} has {n} arguments", opc.def().name);
        let mut args = [0u64; MAX_OP_ARGS];
        let temps = outs.iter().chain(ins).map(|t| t.0 as u64);
        for (slot, v) in args.iter_mut().zip(temps.chain(consts.iter().copied())) {
            *slot = v;
        }
        Op {
            opc,
            ty,
            nb_out: outs.len() as u8,
            nb_in: ins.len() as u8,
            nb_const: consts.len() as u8,
            args,
        }
    }

    /// Output temp `i`.
    pub fn out(&self, i: usize) -> Temp {
        debug_assert!(i < self.nb_out as usize);
        Temp(self.args[i] as u32)
    }

    /// Input temp `i`.
    pub fn input(&self, i: usize) -> Temp {
        debug_assert!(i < self.nb_in as usize);
        Temp(self.args[self.nb_out as usize + i] as u32)
    }

    /// Constant argument `i`.
    pub fn konst(&self, i: usize) -> u64 {
        debug_assert!(i < self.nb_const as usize);
        self.args[(self.nb_out + self.nb_in) as usize + i]
    }

    /// Replaces input `i`.
    pub fn set_input(&mut self, i: usize, t: Temp) {
        self.args[self.nb_out as usize + i] = t.0 as u64;
    }

    /// Replaces output `i`.
    pub fn set_out(&mut self, i: usize, t: Temp) {
        self.args[i] = t.0 as u64;
    }

    /// Replaces constant argument `i`.
    pub fn set_konst(&mut self, i: usize, v: u64) {
        self.args[(self.nb_out + self.nb_in) as usize + i] = v;
    }

    /// Output temps.
    pub fn outs(&self) -> impl Iterator<Item = Temp> + '_ {
        self.args[..self.nb_out as usize].iter().map(|&a| Temp(a as u32))
    }

    /// Input temps.
    pub fn ins(&self) -> impl Iterator<Item = Temp> + '_ {
        self.args[self.nb_out as usize..(self.nb_out + self.nb_in) as usize]
            .iter()
            .map(|&a| Temp(a as u32))
    }

    /// Constant arguments.
    pub fn consts(&self) -> &[u64] {
        let start = (self.nb_out + self.nb_in) as usize;
        &self.args[start..start + self.nb_const as usize]
    }

    /// The condition of a `setcond`/`negsetcond`/`movcond`/`brcond` (its first constant).
    pub fn cond(&self) -> Cond {
        Cond::from_raw(self.konst(0)).unwrap_or(Cond::Never)
    }

    /// The label of a `br`/`set_label` (first constant) or `brcond` (second constant).
    pub fn label(&self) -> Label {
        let i = if self.opc == Opcode::Brcond { 1 } else { 0 };
        Label(self.konst(i) as u32)
    }
}
