//! Text form of the IR, as printed by `-d op` / `-d op_opt` and read back by [`crate::parse`].
//!
//! One op per line: `name[_type] outputs, inputs, constants`. Temps print as `env`, a global's name, `tN` (TB
//! temp N), `eN` (EBB temp N) or `$0x..` (constant); labels as `LN`; conditions, memops and helpers by name.

use core::fmt::{self, Write};

use rqemu_include::MemOp;

use crate::func::Func;
use crate::op::Op;
use crate::opcodes::{ConstKind, Opcode, Types};
use crate::temp::{Temp, TempKind};

impl Func {
    /// Writes temp `t` the way the dump spells it.
    pub fn write_temp(&self, out: &mut impl Write, t: Temp) -> fmt::Result {
        match self.temps.get(t.index()).map(|i| i.kind) {
            Some(TempKind::Env) => out.write_str("env"),
            Some(TempKind::Global { index, .. }) => out.write_str(&self.target.globals[index as usize].name),
            Some(TempKind::Tb) => write!(out, "t{}", t.0),
            Some(TempKind::Ebb) => write!(out, "e{}", t.0),
            Some(TempKind::Const(v)) => write!(out, "$0x{v:x}"),
            None => write!(out, "?{}", t.0),
        }
    }

    /// Writes one op as a line (without the newline).
    pub fn write_op(&self, out: &mut impl Write, op: &Op) -> fmt::Result {
        let def = op.opc.def();
        out.write_str(def.name)?;
        if matches!(def.types, Types::Both | Types::I64) {
            write!(out, "_{}", op.ty)?;
        }
        let mut first = true;
        let mut sep = |out: &mut dyn Write| -> fmt::Result {
            let s = if first { " " } else { ", " };
            first = false;
            out.write_str(s)
        };
        for t in op.outs().chain(op.ins()) {
            sep(out)?;
            self.write_temp(out, t)?;
        }
        for (i, &c) in op.consts().iter().enumerate() {
            sep(out)?;
            let kind = if op.opc == Opcode::Call {
                ConstKind::Helper
            } else {
                def.consts[i]
            };
            write_const(self, out, kind, op, c)?;
        }
        Ok(())
    }

    /// The whole function as text, one op per line.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for op in &self.ops {
            // Writing to a String cannot fail.
            let _ = self.write_op(&mut s, op);
            s.push('\n');
        }
        s
    }
}

fn write_const(f: &Func, out: &mut impl Write, kind: ConstKind, op: &Op, c: u64) -> fmt::Result {
    match kind {
        ConstKind::Imm | ConstKind::Word | ConstKind::Barrier => write!(out, "0x{c:x}"),
        ConstKind::Cond => match crate::Cond::from_raw(c) {
            Some(cond) => out.write_str(cond.name()),
            None => write!(out, "cond?{c}"),
        },
        ConstKind::Label => write!(out, "L{c}"),
        ConstKind::Pos | ConstKind::Len | ConstKind::Shift | ConstKind::TbSlot | ConstKind::MmuIdx => {
            write!(out, "{c}")
        }
        ConstKind::Offset => {
            let v = c as i64;
            if v < 0 {
                write!(out, "-0x{:x}", v.unsigned_abs())
            } else {
                write!(out, "0x{v:x}")
            }
        }
        ConstKind::MemOp => match u32::try_from(c).ok().and_then(|raw| MemOp::from_raw(raw).ok()) {
            Some(m) => write!(out, "{m}"),
            None => write!(out, "memop?0x{c:x}"),
        },
        ConstKind::Helper => match f.target.helpers.get(crate::HelperId(c as u32)) {
            Some(h) => out.write_str(h.name),
            None => write!(out, "helper?{c}"),
        },
        #[allow(unreachable_patterns)]
        _ => write!(out, "0x{c:x} /* {op:?} */"),
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dump())
    }
}
