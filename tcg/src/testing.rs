//! Fixtures shared by the unit tests of the passes.

use std::sync::Arc;

use crate::{Func, TargetDesc, Type};

/// An empty function whose target has two i64 globals, `rax` at 0 and `rbx` at 8, and the fault word at 0x100.
pub(crate) fn two_register_func() -> Func {
    let mut t = TargetDesc::new(0x100);
    t.add_global("rax", Type::I64, 0);
    t.add_global("rbx", Type::I64, 8);
    Func::new(Arc::new(t))
}
