//! Temps (the IR's values) and labels.

use crate::Type;

/// An IR value: an index into [`crate::Func::temps`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Temp(pub u32);

impl Temp {
    /// The CPU-state pointer, temp 0 of every function.
    pub const ENV: Temp = Temp(0);

    /// The index as a subscript.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A branch target inside one TB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub u32);

/// Where a temp's value lives and how long it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TempKind {
    /// The CPU-state pointer (temp 0); read-only.
    Env,
    /// A CPU-state field at this byte offset; lives beyond the TB.
    Global {
        /// Byte offset from `env`.
        offset: i32,
        /// Index in [`crate::TargetDesc::globals`].
        index: u32,
    },
    /// Lives for the whole TB, across labels.
    Tb,
    /// Lives until the end of its extended basic block (the next label); dead after it.
    Ebb,
    /// A read-only constant.
    Const(u64),
}

/// Type and kind of one temp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TempInfo {
    /// Value type.
    pub ty: Type,
    /// Kind.
    pub kind: TempKind,
}

impl TempInfo {
    /// Whether this temp is a CPU-state global.
    pub fn is_global(&self) -> bool {
        matches!(self.kind, TempKind::Global { .. })
    }

    /// The constant value, if this temp is a constant.
    pub fn const_value(&self) -> Option<u64> {
        match self.kind {
            TempKind::Const(v) => Some(v),
            _ => None,
        }
    }
}
