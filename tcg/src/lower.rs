//! Lowering globals to temps with explicit loads and stores, so backends only ever see `env`, TB and EBB
//! temps and constants.
//!
//! Within an extended basic block each global lives in an EBB temp of its own: it is loaded (`ld` at its
//! offset from `env`) before its first read, not before, and marked dirty when written. Dirty globals are
//! stored (`st`) where the CPU state must be exact, as [`crate::liveness::effects`] says: before every op that
//! ends a basic block (so each branch target, label and TB exit sees the CPU state), before ops and helpers
//! that may fault, before calls to helpers that read or write globals, and before host loads and stores of a
//! global's bytes. A global written several times is stored once, with its last value. After a call that may
//! write globals, or a host store to a global's bytes, the cached copy is dropped and reloaded on the next
//! read; at `set_label` every cached copy is dropped. The fall-through path of a `brcond` keeps the (now
//! clean) copies. `discard` of a global drops its cached copy without storing it.

use crate::func::Func;
use crate::liveness::{effects, StateAccess};
use crate::op::Op;
use crate::opcodes::{OpFlags, Opcode};
use crate::temp::{Temp, TempKind};

/// Where the value of a global is while lowering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cached {
    /// Only in the CPU state.
    No,
    /// In its temp and equal to the CPU state.
    Clean,
    /// In its temp, newer than the CPU state.
    Dirty,
}

/// Replaces every global in `f` by explicit loads and stores around temps; see the module doc.
pub fn lower_globals(f: &mut Func) {
    let ops = core::mem::take(&mut f.ops);
    let n = f.target.globals.len();
    let mut l = Lowering {
        out: Vec::with_capacity(ops.len() + ops.len() / 2),
        cached: vec![Cached::No; n],
        temps: vec![None; n],
    };
    for op in ops {
        l.op(f, op);
    }
    if l.out
        .last()
        .is_none_or(|op| !op.opc.def().flags.contains(OpFlags::NO_FALLTHROUGH))
    {
        // The verifier rejects a TB that falls off its end; keep it exact anyway.
        l.sync(f, StateAccess::All);
    }
    f.ops = l.out;
}

struct Lowering {
    out: Vec<Op>,
    /// Per global (in target order).
    cached: Vec<Cached>,
    /// The temp holding each global, created on first use.
    temps: Vec<Option<Temp>>,
}

impl Lowering {
    fn op(&mut self, f: &mut Func, mut op: Op) {
        let e = effects(f, &op);
        self.sync(f, e.sync);
        if op.opc == Opcode::Discard {
            if let Some(g) = global_index(f, op.out(0)) {
                self.cached[g] = Cached::No;
                return;
            }
        }
        for i in 0..op.nb_in as usize {
            if let Some(g) = global_index(f, op.input(i)) {
                let t = self.load(f, g);
                op.set_input(i, t);
            }
        }
        let original = op;
        for i in 0..op.nb_out as usize {
            if let Some(g) = global_index(f, op.out(i)) {
                op.set_out(i, self.temp(f, g));
            }
        }
        self.out.push(op);
        self.forget(f, e.clobber);
        for t in original.outs() {
            if let Some(g) = global_index(f, t) {
                self.cached[g] = Cached::Dirty;
            }
        }
        let flags = op.opc.def().flags;
        if op.opc == Opcode::SetLabel || flags.contains(OpFlags::NO_FALLTHROUGH) {
            // Control arrives here from elsewhere (or nowhere): nothing cached is known to be current.
            self.cached.fill(Cached::No);
        }
    }

    /// Stores every dirty global that `access` touches.
    fn sync(&mut self, f: &mut Func, access: StateAccess) {
        if access == StateAccess::Nothing {
            return;
        }
        for g in 0..self.cached.len() {
            if self.cached[g] == Cached::Dirty && access.touches(&f.target.globals[g]) {
                let def = &f.target.globals[g];
                let (ty, offset) = (def.ty, def.offset);
                let t = self.temp(f, g);
                emit_mem(&mut self.out, Opcode::St, ty, &[], &[t, Temp::ENV], offset);
                self.cached[g] = Cached::Clean;
            }
        }
    }

    /// Drops the cached copy of every global that `access` touches (they are clean: `sync` ran before).
    fn forget(&mut self, f: &Func, access: StateAccess) {
        if access == StateAccess::Nothing {
            return;
        }
        for g in 0..self.cached.len() {
            if access.touches(&f.target.globals[g]) {
                self.cached[g] = Cached::No;
            }
        }
    }

    /// The temp holding global `g`, loading it first if it is not cached.
    fn load(&mut self, f: &mut Func, g: usize) -> Temp {
        let t = self.temp(f, g);
        if self.cached[g] == Cached::No {
            let def = &f.target.globals[g];
            emit_mem(&mut self.out, Opcode::Ld, def.ty, &[t], &[Temp::ENV], def.offset);
            self.cached[g] = Cached::Clean;
        }
        t
    }

    fn temp(&mut self, f: &mut Func, g: usize) -> Temp {
        // An EBB temp is enough: the cached copy never crosses a label.
        *self.temps[g].get_or_insert_with(|| f.new_ebb_temp(f.target.globals[g].ty))
    }
}

/// Appends a host load or store of a global's field.
fn emit_mem(out: &mut Vec<Op>, opc: Opcode, ty: crate::Type, outs: &[Temp], ins: &[Temp], offset: i32) {
    out.push(Op::new(opc, ty, outs, ins, &[offset as i64 as u64]));
}

/// The index of `t` among the target's globals, if it is one.
fn global_index(f: &Func, t: Temp) -> Option<usize> {
    match f.temps.get(t.index())?.kind {
        TempKind::Global { index, .. } => Some(index as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cond, Type};

    use crate::testing::two_register_func as func;

    #[test]
    fn loads_once_and_stores_the_last_value_once() {
        let mut f = func();
        let (rax, rbx) = (f.global(0), f.global(1));
        let one = f.constant(Type::I64, 1);
        f.add(rax, rax, one);
        f.add(rax, rax, rbx);
        f.exit_tb(0);
        lower_globals(&mut f);
        assert_eq!(
            f.dump(),
            "ld_i64 e4, env, 0x0\nadd_i64 e4, e4, $0x1\nld_i64 e5, env, 0x8\nadd_i64 e4, e4, e5\n\
             st_i64 e4, env, 0x0\nexit_tb 0x0\n"
        );
    }

    #[test]
    fn host_store_to_a_global_field_syncs_and_reloads() {
        let mut f = func();
        let rax = f.global(0);
        let t = f.new_temp(Type::I64);
        let l = f.new_label();
        f.movi(rax, 5);
        f.store(Opcode::St32, t, Temp::ENV, 4); // overlaps rax's high half
        f.brcond(Cond::Eq, rax, t, l);
        f.set_label(l);
        f.exit_tb(0);
        lower_globals(&mut f);
        let text = f.dump();
        assert_eq!(
            text,
            "movi_i64 e4, 0x5\nst_i64 e4, env, 0x0\nst32_i64 t3, env, 0x4\nld_i64 e4, env, 0x0\n\
             brcond_i64 e4, t3, eq, L0\nset_label L0\nexit_tb 0x0\n"
        );
    }
}
