//! The IR verifier: rejects malformed IR with a message naming the op.
//!
//! Checked: each op exists at its type; argument counts match the opcode table (or the helper declaration for
//! calls); every temp exists and has the type its position requires; outputs are writable (not `env`, not a
//! constant); TB temps are written before they are first read in program order, EBB temps before they are read
//! in the same extended basic block; labels exist, are placed once and every branch target is placed; constant
//! arguments are in range; the function ends with an op that does not fall through.

use core::fmt;

use rqemu_include::{MemOp, NB_MMU_MODES};

use crate::func::Func;
use crate::op::Op;
use crate::opcodes::{ArgKind, ConstKind, OpFlags, Opcode};
use crate::temp::{Temp, TempKind};
use crate::{HelperId, Type};

/// Why a function is malformed, naming the op (by index and text) when one is at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Index of the offending op, if the problem is tied to one.
    pub op_index: Option<usize>,
    /// What is wrong, including the op's text.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op_index {
            Some(i) => write!(f, "op {i}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Whether a TB or EBB temp currently holds a value, in program order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Defined {
    No,
    Yes,
}

struct Verifier<'a> {
    f: &'a Func,
    defined: Vec<Defined>,
    label_placed: Vec<bool>,
    label_used: Vec<Option<usize>>,
}

/// Checks `f`; see the module doc for the rules.
pub fn verify(f: &Func) -> Result<(), VerifyError> {
    let mut v = Verifier {
        f,
        defined: vec![Defined::No; f.temps.len()],
        label_placed: vec![false; f.nb_labels as usize],
        label_used: vec![None; f.nb_labels as usize],
    };
    for (i, op) in f.ops.iter().enumerate() {
        v.check_op(i, op).map_err(|why| VerifyError {
            op_index: Some(i),
            message: format!("`{}`: {why}", op_text(f, op)),
        })?;
    }
    for (label, used) in v.label_used.iter().enumerate() {
        if let (Some(i), false) = (used, v.label_placed[label]) {
            return Err(VerifyError {
                op_index: Some(*i),
                message: format!("`{}`: label L{label} is never placed", op_text(f, &f.ops[*i])),
            });
        }
    }
    match f.ops.last() {
        None => Err(VerifyError {
            op_index: None,
            message: "the function has no ops".into(),
        }),
        Some(op) if !op.opc.def().flags.contains(OpFlags::NO_FALLTHROUGH) => Err(VerifyError {
            op_index: Some(f.ops.len() - 1),
            message: format!("`{}`: the last op falls through the end of the TB", op_text(f, op)),
        }),
        Some(_) => Ok(()),
    }
}

fn op_text(f: &Func, op: &Op) -> String {
    let mut s = String::new();
    if f.write_op(&mut s, op).is_err() {
        s = format!("{:?}", op.opc);
    }
    s
}

impl Verifier<'_> {
    fn check_op(&mut self, index: usize, op: &Op) -> Result<(), String> {
        let def = op.opc.def();
        if !op.opc.has_type(op.ty) {
            return Err(format!("{} does not exist at type {}", def.name, op.ty));
        }
        if op.nb_const as usize != def.consts.len() {
            return Err(format!(
                "expected {} constant arguments, found {}",
                def.consts.len(),
                op.nb_const
            ));
        }
        let (out_kinds, in_kinds) = self.signature(op)?;
        if op.nb_out as usize != out_kinds.len() || op.nb_in as usize != in_kinds.len() {
            return Err(format!(
                "expected {} outputs and {} inputs, found {} and {}",
                out_kinds.len(),
                in_kinds.len(),
                op.nb_out,
                op.nb_in
            ));
        }
        for (i, (t, kind)) in op.ins().zip(&in_kinds).enumerate() {
            self.check_temp(t, *kind, op.ty)
                .map_err(|e| format!("input {i}: {e}"))?;
            self.check_defined(t).map_err(|e| format!("input {i}: {e}"))?;
        }
        for (i, (t, kind)) in op.outs().zip(&out_kinds).enumerate() {
            self.check_temp(t, *kind, op.ty)
                .map_err(|e| format!("output {i}: {e}"))?;
            match self.f.temp(t).kind {
                TempKind::Env | TempKind::Const(_) => return Err(format!("output {i} is read-only")),
                _ => {}
            }
            self.defined[t.index()] = if op.opc == Opcode::Discard {
                Defined::No
            } else {
                Defined::Yes
            };
        }
        if op.nb_out == 2 && op.out(0) == op.out(1) {
            return Err("both outputs are the same temp".into());
        }
        for (i, kind) in def.consts.iter().enumerate() {
            self.check_const(index, op, *kind, op.konst(i))
                .map_err(|e| format!("constant {i}: {e}"))?;
        }
        if op.opc == Opcode::SetLabel {
            self.forget_ebb_temps();
        }
        Ok(())
    }

    /// Kinds of the outputs and inputs: from the table, or from the helper declaration for calls.
    fn signature(&self, op: &Op) -> Result<(Vec<ArgKind>, Vec<ArgKind>), String> {
        let def = op.opc.def();
        if op.opc != Opcode::Call {
            return Ok((def.outs.to_vec(), def.ins.to_vec()));
        }
        let id = HelperId(op.konst(0) as u32);
        let h = self
            .f
            .target
            .helpers
            .get(id)
            .ok_or_else(|| format!("helper {} is not registered", id.0))?;
        let kind = |t: Type| {
            if t == Type::I32 {
                ArgKind::I32
            } else {
                ArgKind::I64
            }
        };
        Ok((
            h.ret.into_iter().map(kind).collect(),
            h.args.iter().copied().map(kind).collect(),
        ))
    }

    fn check_temp(&self, t: Temp, kind: ArgKind, op_ty: Type) -> Result<(), String> {
        let info = self
            .f
            .temps
            .get(t.index())
            .ok_or_else(|| format!("temp {} does not exist", t.0))?;
        let want = kind.type_in(op_ty);
        if info.ty != want {
            return Err(format!("temp has type {}, expected {want}", info.ty));
        }
        Ok(())
    }

    fn check_defined(&self, t: Temp) -> Result<(), String> {
        match self.f.temp(t).kind {
            TempKind::Tb | TempKind::Ebb if self.defined[t.index()] == Defined::No => {
                let mut name = String::new();
                let _ = self.f.write_temp(&mut name, t);
                Err(format!("{name} is read before it is written"))
            }
            _ => Ok(()),
        }
    }

    fn forget_ebb_temps(&mut self) {
        for (info, d) in self.f.temps.iter().zip(self.defined.iter_mut()) {
            if info.kind == TempKind::Ebb {
                *d = Defined::No;
            }
        }
    }

    fn check_const(&mut self, index: usize, op: &Op, kind: ConstKind, c: u64) -> Result<(), String> {
        let bits = op.ty.bits() as u64;
        match kind {
            ConstKind::Imm if c & !op.ty.mask() != 0 => Err(format!("immediate 0x{c:x} does not fit {}", op.ty)),
            ConstKind::Cond if crate::Cond::from_raw(c).is_none() => Err(format!("no condition {c}")),
            ConstKind::Label => {
                let l = usize::try_from(c).ok().filter(|&l| l < self.label_placed.len());
                let l = l.ok_or_else(|| format!("label L{c} was not allocated"))?;
                if op.opc == Opcode::SetLabel {
                    if self.label_placed[l] {
                        return Err(format!("label L{l} is placed twice"));
                    }
                    self.label_placed[l] = true;
                } else if self.label_used[l].is_none() {
                    self.label_used[l] = Some(index);
                }
                Ok(())
            }
            ConstKind::Pos if c >= bits => Err(format!("bit position {c} is outside {}", op.ty)),
            ConstKind::Len => {
                let pos = op.konst(0);
                if c == 0 || pos.saturating_add(c) > bits {
                    Err(format!("field {pos}+{c} is outside {}", op.ty))
                } else {
                    Ok(())
                }
            }
            ConstKind::Shift if c > bits => Err(format!("shift {c} is outside 0..={bits}")),
            ConstKind::Offset if i32::try_from(c as i64).is_err() => {
                Err(format!("offset 0x{c:x} is not a signed 32-bit value"))
            }
            ConstKind::MemOp => {
                let m = u32::try_from(c).map_err(|_| format!("memop 0x{c:x} is out of range"))?;
                let m = MemOp::from_raw(m).map_err(|e| e.to_string())?;
                if m.size_bytes() as u64 * 8 > bits {
                    Err(format!("a {}-byte access does not fit {}", m.size_bytes(), op.ty))
                } else {
                    Ok(())
                }
            }
            ConstKind::MmuIdx if c >= NB_MMU_MODES as u64 => Err(format!("MMU index {c} is out of range")),
            ConstKind::TbSlot if c > 1 => Err(format!("goto_tb slot {c} is not 0 or 1")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::helper::{HelperFlags, HelperInfo};
    use crate::TargetDesc;

    unsafe extern "C" fn nop_helper(_: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        0
    }

    fn target() -> Arc<TargetDesc> {
        let mut t = TargetDesc::new(0);
        t.add_global("rax", Type::I64, 8);
        t.add_global("eflags", Type::I32, 16);
        t.helpers.register(HelperInfo {
            name: "h1",
            func: nop_helper,
            flags: HelperFlags::empty(),
            args: &[Type::I64],
            ret: Some(Type::I64),
        });
        Arc::new(t)
    }

    fn err(f: &Func) -> String {
        verify(f).expect_err("verifier accepted bad IR").to_string()
    }

    #[test]
    fn accepts_well_formed_ir() {
        let mut f = Func::new(target());
        let rax = f.global(0);
        let t = f.new_temp(Type::I64);
        let one = f.constant(Type::I64, 1);
        let l = f.new_label();
        f.insn_start([0x1000, 0, 0]);
        f.add(t, rax, one);
        f.brcond(crate::Cond::Eq, t, one, l);
        f.call(HelperId(0), Some(rax), &[t]);
        f.set_label(l);
        f.goto_tb(0);
        assert_eq!(verify(&f), Ok(()));
    }

    #[test]
    fn rejects_type_mismatch_naming_the_op() {
        let mut f = Func::new(target());
        let (rax, eflags) = (f.global(0), f.global(1));
        f.add(rax, rax, eflags);
        f.exit_tb(0);
        assert_eq!(
            err(&f),
            "op 0: `add_i64 rax, rax, eflags`: input 1: temp has type i32, expected i64"
        );
    }

    #[test]
    fn rejects_use_before_definition() {
        let mut f = Func::new(target());
        let t = f.new_temp(Type::I64);
        let rax = f.global(0);
        f.mov(rax, t);
        f.exit_tb(0);
        assert!(err(&f).contains("is read before it is written"), "{}", err(&f));
    }

    #[test]
    fn ebb_temps_die_at_labels() {
        let mut f = Func::new(target());
        let e = f.new_ebb_temp(Type::I64);
        let rax = f.global(0);
        let l = f.new_label();
        f.mov(e, rax);
        f.set_label(l);
        f.mov(rax, e);
        f.exit_tb(0);
        assert!(err(&f).starts_with("op 2:"), "{}", err(&f));
    }

    #[test]
    fn rejects_bad_labels() {
        let mut f = Func::new(target());
        let l = f.new_label();
        f.br(l);
        assert!(err(&f).contains("label L0 is never placed"));

        let mut f = Func::new(target());
        f.br(crate::Label(3));
        assert!(err(&f).contains("label L3 was not allocated"));

        let mut f = Func::new(target());
        let l = f.new_label();
        f.set_label(l);
        f.set_label(l);
        f.exit_tb(0);
        assert!(err(&f).contains("placed twice"));
    }

    /// Builds the op under test into a function.
    type Build = Box<dyn Fn(&mut Func)>;

    #[test]
    fn rejects_constant_args_out_of_range() {
        let cases: Vec<(Build, &str)> = vec![
            (
                Box::new(|f: &mut Func| f.extract(f.global(0), f.global(0), 60, 8)),
                "field 60+8 is outside i64",
            ),
            (
                Box::new(|f: &mut Func| f.deposit(f.global(1), f.global(1), f.global(1), 32, 1)),
                "bit position 32",
            ),
            (
                Box::new(|f: &mut Func| f.extract2(f.global(1), f.global(1), f.global(1), 33)),
                "shift 33",
            ),
            (Box::new(|f: &mut Func| f.goto_tb(2)), "slot 2"),
            (
                Box::new(|f: &mut Func| {
                    let (e, a) = (f.global(1), f.global(0));
                    f.qemu_ld(e, a, MemOp::LEUQ, rqemu_include::MmuIdx::default())
                }),
                "8-byte access does not fit i32",
            ),
            (
                Box::new(|f: &mut Func| f.emit(Opcode::Movi, Type::I32, &[f.global(1)], &[], &[1 << 40])),
                "does not fit i32",
            ),
            (
                Box::new(|f: &mut Func| {
                    f.emit(
                        Opcode::Setcond,
                        Type::I64,
                        &[f.global(0)],
                        &[f.global(0), f.global(0)],
                        &[99],
                    )
                }),
                "no condition 99",
            ),
        ];
        for (build, want) in cases {
            let mut f = Func::new(target());
            build(&mut f);
            f.exit_tb(0);
            let e = err(&f);
            assert!(e.starts_with("op 0:") && e.contains(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn rejects_bad_calls_and_writes_to_constants() {
        let mut f = Func::new(target());
        let rax = f.global(0);
        f.call(HelperId(0), None, &[rax]);
        f.exit_tb(0);
        assert!(err(&f).contains("expected 1 outputs and 1 inputs"));

        let mut f = Func::new(target());
        f.call(HelperId(7), None, &[]);
        f.exit_tb(0);
        assert!(err(&f).contains("helper 7 is not registered"));

        let mut f = Func::new(target());
        let c = f.constant(Type::I64, 5);
        let rax = f.global(0);
        f.mov(c, rax);
        f.exit_tb(0);
        assert!(err(&f).contains("read-only"));
    }

    #[test]
    fn rejects_missing_terminator_and_wrong_type_field() {
        let mut f = Func::new(target());
        let rax = f.global(0);
        f.mov(rax, rax);
        assert!(err(&f).contains("falls through the end"));

        let mut f = Func::new(target());
        let e = f.global(1);
        f.emit(Opcode::Ext32s, Type::I32, &[e], &[e], &[]);
        f.exit_tb(0);
        assert!(err(&f).contains("ext32s does not exist at type i32"));
    }
}
