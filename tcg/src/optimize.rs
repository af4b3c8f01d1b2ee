//! The IR optimizer: constant folding, constant and copy propagation, algebraic identities, branch folding,
//! unreachable-code and label clean-up, then dead-code elimination ([`crate::liveness`]).
//!
//! Propagation walks each extended basic block forward, knowing for every temp its constant value, an older
//! temp holding the same value, the bits that may be set and how far its sign bit extends. That knowledge is
//! dropped at every `set_label` (control joins there), and for a global whenever an op may change its CPU-state
//! field (calls to helpers that write globals, host stores to its bytes). Computational ops whose inputs are all
//! constants are evaluated with [`crate::semantics::eval`]; ops with side effects are never removed or
//! reordered, only given simpler inputs.
//!
//! Control-flow clean-up removes code that no path from the TB's entry reaches (loops included), labels
//! nobody branches to, and branches to the label that follows anyway. `insn_start` ops
//! are kept even in unreachable code (except at the very end), because fault reports count them.

use rqemu_include::MemOp;

use crate::func::Func;
use crate::liveness::{self, branch_target, build_blocks, effects, StateAccess};
use crate::op::{Op, MAX_OP_ARGS};
use crate::opcodes::{ConstKind, OpFlags, Opcode};
use crate::semantics::{self, sext};
use crate::temp::{Temp, TempKind};
use crate::types::{Cond, Type};

/// Most rounds of propagation and clean-up; a round after the first only sees blocks the clean-up merged.
const MAX_ROUNDS: usize = 4;

/// Optimizes `f` in place; see the module doc. The result means the same as the input.
pub fn optimize(f: &mut Func) {
    simplify(f);
    liveness::eliminate_dead_code(f);
}

/// [`optimize`] without dead-code elimination, for pipelines that eliminate dead code later anyway.
pub fn simplify(f: &mut Func) {
    for _ in 0..MAX_ROUNDS {
        propagate(f);
        // Propagation stops at labels; only removing some gives the next round more to see.
        if !simplify_control_flow(f) {
            break;
        }
    }
}

/// Removes unreachable code, unused labels and branches to the label that follows; returns whether anything
/// changed.
pub fn simplify_control_flow(f: &mut Func) -> bool {
    let mut changed = false;
    loop {
        let before = f.ops.len();
        remove_unreachable(f);
        remove_branches_to_next(&mut f.ops);
        if f.ops.len() == before {
            return changed;
        }
        changed = true;
    }
}

/// How many branches target each label.
fn label_refs<'a>(ops: impl Iterator<Item = &'a Op>) -> Vec<u32> {
    let mut refs = Vec::new();
    for l in ops.filter_map(branch_target) {
        if refs.len() <= l {
            refs.resize(l + 1, 0);
        }
        refs[l] += 1;
    }
    refs
}

/// Removes ops that no path from the TB's entry reaches, and labels nobody branches to.
fn remove_unreachable(f: &mut Func) {
    let blocks = build_blocks(f);
    let mut reached = vec![false; blocks.len()];
    let mut work = vec![0];
    while let Some(b) = work.pop() {
        if b < blocks.len() && !reached[b] {
            reached[b] = true;
            work.extend(blocks[b].succs.iter().flatten());
        }
    }
    let mut keep = vec![false; f.ops.len()];
    let mut last_reached = 0;
    for (b, block) in blocks.iter().enumerate() {
        let range = block.start..block.end;
        for (k, op) in keep[range.clone()].iter_mut().zip(&f.ops[range]) {
            // Instruction markers stay in dead code because fault reports count them, except after the last
            // reachable op, where they mark nothing that can fault.
            *k = reached[b] || op.opc == Opcode::InsnStart;
        }
        if reached[b] {
            last_reached = block.end;
        }
    }
    keep.truncate(last_reached);
    keep.resize(f.ops.len(), false);
    let refs = label_refs(f.ops.iter().zip(&keep).filter(|(_, &k)| k).map(|(op, _)| op));
    for (op, k) in f.ops.iter().zip(keep.iter_mut()) {
        if op.opc == Opcode::SetLabel && refs.get(op.konst(0) as usize).is_none_or(|&n| n == 0) {
            *k = false;
        }
    }
    let mut i = 0;
    f.ops.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

fn remove_branches_to_next(ops: &mut Vec<Op>) {
    let falls_into = |from: usize, label: usize| {
        for op in &ops[from..] {
            match op.opc {
                Opcode::SetLabel if op.konst(0) as usize == label => return true,
                Opcode::SetLabel | Opcode::InsnStart => {}
                _ => return false,
            }
        }
        false
    };
    let keep: Vec<bool> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| branch_target(op).is_none_or(|l| !falls_into(i + 1, l)))
        .collect();
    let mut i = 0;
    ops.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// What is known about the value of a temp at one point of an extended basic block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    /// The value, when it is a known constant.
    value: Option<u64>,
    /// An older temp holding the same value; never itself a copy.
    copy_of: Option<Temp>,
    /// Bits that may be set.
    z_mask: u64,
    /// The value is the sign extension of its low `sign_bits` bits, at its type's width.
    sign_bits: u32,
}

impl Known {
    fn unknown(ty: Type) -> Known {
        Known {
            value: None,
            copy_of: None,
            z_mask: ty.mask(),
            sign_bits: ty.bits(),
        }
    }

    fn constant(ty: Type, v: u64) -> Known {
        let s = sext(ty, v);
        let redundant = if s < 0 { (!s).leading_zeros() } else { s.leading_zeros() };
        Known {
            value: Some(v),
            copy_of: None,
            z_mask: v,
            sign_bits: (65 - redundant).min(ty.bits()),
        }
    }

    /// Knowledge from masks alone; a value whose top bit is known clear is its own sign extension from there.
    fn masks(ty: Type, z_mask: u64, sign_bits: u32) -> Known {
        let z_mask = z_mask & ty.mask();
        let top = 64 - z_mask.leading_zeros(); // bits up to and including the highest that may be set
        let sign_bits = if top < ty.bits() {
            sign_bits.min(top + 1)
        } else {
            sign_bits
        };
        Known {
            value: None,
            copy_of: None,
            z_mask,
            sign_bits: sign_bits.clamp(1, ty.bits()),
        }
    }
}

/// What an op simplifies to.
enum Rewrite {
    /// Nothing simpler is known.
    Keep,
    /// Its outputs take these constant values.
    Values([u64; 2]),
    /// Its single output is a copy of this temp.
    Copy(Temp),
    /// A conditional branch that is always (`true`) or never taken.
    Branch(bool),
}

/// Constant and copy propagation, folding, identities and branch folding, in one forward walk; leaves the ops
/// it makes dead (and unreachable ones after a folded branch) for the other passes.
pub fn propagate(f: &mut Func) {
    let ops = core::mem::take(&mut f.ops);
    let mut p = Propagator {
        known: f.temps.iter().map(|t| Known::unknown(t.ty)).collect(),
        has_copies: vec![false; f.temps.len()],
        out: Vec::with_capacity(ops.len()),
        reachable: true,
        f,
    };
    for op in ops {
        if op.opc == Opcode::SetLabel {
            p.reset();
            p.reachable = true;
            p.out.push(op);
        } else if p.reachable {
            p.op(op);
        } else if op.opc == Opcode::InsnStart {
            p.out.push(op);
        }
    }
    let out = core::mem::take(&mut p.out);
    f.ops = out;
}

struct Propagator<'f> {
    f: &'f mut Func,
    /// Per temp that existed when the pass started (constants created since are looked up directly).
    known: Vec<Known>,
    /// Per temp: some other temp may record it as `copy_of`.
    has_copies: Vec<bool>,
    out: Vec<Op>,
    reachable: bool,
}

impl Propagator<'_> {
    fn ty(&self, t: Temp) -> Type {
        self.f.temp(t).ty
    }

    fn known(&self, t: Temp) -> Known {
        let info = self.f.temp(t);
        match info.kind {
            TempKind::Const(v) => Known::constant(info.ty, v),
            _ => self.known.get(t.index()).copied().unwrap_or(Known::unknown(info.ty)),
        }
    }

    fn reset(&mut self) {
        for (k, info) in self.known.iter_mut().zip(&self.f.temps) {
            *k = Known::unknown(info.ty);
        }
        self.has_copies.fill(false);
    }

    /// Records that `d` now holds a value described by `k`, dropping what relied on its old value.
    fn define(&mut self, d: Temp, k: Known) {
        if d.index() >= self.known.len() {
            return;
        }
        if self.has_copies[d.index()] {
            for other in &mut self.known {
                if other.copy_of == Some(d) {
                    other.copy_of = None;
                }
            }
            self.has_copies[d.index()] = false;
        }
        if let Some(flag) = k.copy_of.and_then(|src| self.has_copies.get_mut(src.index())) {
            *flag = true;
        }
        self.known[d.index()] = k;
    }

    /// Forgets the globals whose CPU-state field `access` may have changed.
    fn forget_globals(&mut self, access: StateAccess) {
        if access == StateAccess::Nothing {
            return;
        }
        for g in 0..self.f.target.globals.len() {
            let def = &self.f.target.globals[g];
            if access.touches(def) {
                let ty = def.ty;
                self.define(self.f.global(g), Known::unknown(ty));
            }
        }
    }

    /// The simplest temp holding the value of `t`: a constant, or the oldest copy.
    fn resolve(&mut self, t: Temp) -> Temp {
        let k = self.known(t);
        match (k.value, self.f.const_value(t)) {
            (Some(v), None) => self.f.constant(self.ty(t), v),
            _ => k.copy_of.unwrap_or(t),
        }
    }

    fn op(&mut self, mut op: Op) {
        for i in 0..op.nb_in as usize {
            let t = self.resolve(op.input(i));
            op.set_input(i, t);
        }
        self.canonicalize(&mut op);
        match self.simplify(&op) {
            Rewrite::Keep => self.emit(op),
            Rewrite::Values(v) => {
                for (i, d) in op.outs().enumerate() {
                    self.emit_movi(d, v[i]);
                }
            }
            Rewrite::Copy(s) => self.emit_mov(op.out(0), s),
            Rewrite::Branch(true) => {
                let label = op.label().0 as u64;
                self.emit(Op::new(Opcode::Br, Type::I64, &[], &[], &[label]));
            }
            Rewrite::Branch(false) => {}
        }
    }

    /// Puts a constant operand second, where backends and the rules below expect it.
    fn canonicalize(&self, op: &mut Op) {
        let def = op.opc.def();
        if op.nb_in < 2 {
            return;
        }
        let (a, b) = (op.input(0), op.input(1));
        if self.f.const_value(a).is_none() || self.f.const_value(b).is_some() {
            return;
        }
        if def.consts.first() == Some(&ConstKind::Cond) {
            op.set_input(0, b);
            op.set_input(1, a);
            op.set_konst(0, op.cond().swap() as u64);
        } else if is_commutative(op.opc) {
            op.set_input(0, b);
            op.set_input(1, a);
        }
    }

    fn simplify(&mut self, op: &Op) -> Rewrite {
        if op.opc == Opcode::Brcond {
            return match self.decide(op.cond(), op.ty, op.input(0), op.input(1)) {
                Some(taken) => Rewrite::Branch(taken),
                None => Rewrite::Keep,
            };
        }
        if !semantics::is_computational(op.opc) {
            return Rewrite::Keep;
        }
        let mut ins = [0u64; MAX_OP_ARGS];
        let all_constant = op
            .ins()
            .zip(&mut ins)
            .all(|(t, v)| self.f.const_value(t).map(|c| *v = c).is_some());
        if all_constant {
            if let Some(v) = semantics::eval(op.opc, op.ty, &ins[..op.nb_in as usize], op.consts()) {
                return Rewrite::Values(v);
            }
        }
        self.identity(op)
    }

    /// Decides a condition without running it, when the operands allow.
    fn decide(&self, cond: Cond, ty: Type, a: Temp, b: Temp) -> Option<bool> {
        use Cond::*;
        let (ca, cb) = (self.f.const_value(a), self.f.const_value(b));
        if let (Some(x), Some(y)) = (ca, cb) {
            return Some(semantics::eval_cond(cond, ty, x, y));
        }
        match cond {
            Always => return Some(true),
            Never => return Some(false),
            _ => {}
        }
        if a == b {
            return match cond {
                Eq | Ge | Le | Geu | Leu => Some(true),
                Ne | Lt | Gt | Ltu | Gtu => Some(false),
                _ => None,
            };
        }
        let c = cb?;
        let z = self.known(a).z_mask;
        match cond {
            Ltu if c == 0 => Some(false),
            Geu if c == 0 => Some(true),
            Leu if c == ty.mask() => Some(true),
            Gtu if c == ty.mask() => Some(false),
            Tsteq if z & c == 0 => Some(true),
            Tstne if z & c == 0 => Some(false),
            _ => None,
        }
    }

    /// Algebraic identities: ops that reduce to a copy of an input or to a constant.
    fn identity(&self, op: &Op) -> Rewrite {
        use Opcode::*;
        use Rewrite::{Copy, Keep, Values};
        let ty = op.ty;
        let (m, bits) = (ty.mask(), ty.bits());
        let konst = |v: u64| Values([v & m, 0]);
        let a = op.input(0);
        let b = (op.nb_in > 1).then(|| op.input(1));
        let (ca, cb) = (self.f.const_value(a), b.and_then(|b| self.f.const_value(b)));
        let ka = self.known(a);
        let same = b == Some(a);
        let fits = |mask: u64| ka.z_mask & !mask == 0;
        match op.opc {
            Mov => Copy(a),
            Add | Sub | Or | Xor | Andc if cb == Some(0) => Copy(a),
            Orc if cb == Some(m) => Copy(a),
            Shl | Shr | Sar | Rotl | Rotr if cb.is_some_and(|c| c & (bits as u64 - 1) == 0) => Copy(a),
            Shl | Shr | Sar | Rotl | Rotr if ca == Some(0) => konst(0),
            Sar | Rotl | Rotr if ca == Some(m) => konst(m),
            Mul | Divs | Divu if cb == Some(1) => Copy(a),
            Mul | And if cb == Some(0) => konst(0),
            Rems | Remu if cb == Some(1) => konst(0),
            Sub | Xor | Andc if same => konst(0),
            And | Or if same => Copy(a),
            Orc | Eqv if same => konst(m),
            Or if cb == Some(m) => konst(m),
            Andc if cb == Some(m) => konst(0),
            Orc if cb == Some(0) => konst(m),
            And if cb.is_some_and(fits) => Copy(a),
            And if cb.is_some_and(|c| ka.z_mask & c == 0) => konst(0),
            Ext8u if fits(0xff) => Copy(a),
            Ext16u if fits(0xffff) => Copy(a),
            Ext32u if fits(0xffff_ffff) => Copy(a),
            Ext8s if ka.sign_bits <= 8 => Copy(a),
            Ext16s if ka.sign_bits <= 16 => Copy(a),
            Ext32s if ka.sign_bits <= 32 => Copy(a),
            Extract | Sextract if op.konst(0) == 0 && op.konst(1) == bits as u64 => Copy(a),
            Extract if op.konst(0) == 0 && fits(field_mask(op.konst(1))) => Copy(a),
            Sextract if op.konst(0) == 0 && ka.sign_bits as u64 <= op.konst(1) => Copy(a),
            Deposit if op.konst(0) == 0 && op.konst(1) == bits as u64 => Copy(op.input(1)),
            Extract2 if op.konst(0) == 0 => Copy(a),
            Extract2 if op.konst(0) == bits as u64 => Copy(op.input(1)),
            Setcond | Negsetcond => match (b.and_then(|b| self.decide(op.cond(), ty, a, b)), op.opc) {
                (Some(c), Setcond) => konst(c as u64),
                (Some(c), _) => konst((c as u64).wrapping_neg()),
                (None, _) => Keep,
            },
            Movcond => {
                let (v1, v2) = (op.input(2), op.input(3));
                match b.and_then(|b| self.decide(op.cond(), ty, a, b)) {
                    _ if v1 == v2 => Copy(v1),
                    Some(true) => Copy(v1),
                    Some(false) => Copy(v2),
                    None => Keep,
                }
            }
            _ => Keep,
        }
    }

    /// Appends `op` as is and records what its outputs hold.
    fn emit(&mut self, op: Op) {
        let mut results = [Known::unknown(Type::I64); MAX_OP_ARGS];
        for (k, r) in results.iter_mut().enumerate().take(op.nb_out as usize) {
            *r = self.result(&op, k);
        }
        let clobber = effects(self.f, &op).clobber;
        self.out.push(op);
        self.forget_globals(clobber);
        for (d, k) in op.outs().zip(results) {
            self.define(d, k);
        }
        if op.opc.def().flags.contains(OpFlags::NO_FALLTHROUGH) {
            self.reachable = false;
        }
    }

    fn emit_movi(&mut self, d: Temp, v: u64) {
        let ty = self.ty(d);
        let v = v & ty.mask();
        if self.known(d).value == Some(v) {
            return;
        }
        self.out.push(Op::new(Opcode::Movi, ty, &[d], &[], &[v]));
        self.define(d, Known::constant(ty, v));
    }

    fn emit_mov(&mut self, d: Temp, s: Temp) {
        if let Some(v) = self.f.const_value(s) {
            return self.emit_movi(d, v);
        }
        if d == s || self.known(d).copy_of == Some(s) {
            return;
        }
        let ty = self.ty(d);
        self.out.push(Op::new(Opcode::Mov, ty, &[d], &[s], &[]));
        let k = Known {
            copy_of: Some(s),
            ..self.known(s)
        };
        self.define(d, k);
    }

    /// What output `k` of `op` holds, from what is known of the inputs.
    fn result(&self, op: &Op, k: usize) -> Known {
        use Opcode::*;
        let ty = self.ty(op.out(k));
        let bits = ty.bits();
        let input = |i: usize| self.known(op.input(i));
        let (mut z, mut s) = (ty.mask(), bits);
        match (op.opc, k) {
            (Ext8u | Ld8u, 0) => z = 0xff,
            (Ext16u | Ld16u | Bswap16, 0) => z = 0xffff,
            (Ext32u | Ld32u | Bswap32, 0) => z = 0xffff_ffff,
            (ExtuI32I64, 0) => z = input(0).z_mask,
            (Ext8s | Ld8s, 0) => s = 8,
            (Ext16s | Ld16s, 0) => s = 16,
            (Ext32s | Ld32s, 0) => s = 32,
            (ExtI32I64, 0) => s = input(0).sign_bits,
            (Setcond, 0) | (Addco | Addcio | Subbo | Subbio, 1) => z = 1,
            (Negsetcond, 0) => s = 1,
            (Extract, 0) => z = field_mask(op.konst(1)),
            (Sextract, 0) => s = op.konst(1) as u32,
            (And, 0) => z = input(0).z_mask & input(1).z_mask,
            (Or | Xor, 0) => z = input(0).z_mask | input(1).z_mask,
            (Shr, 0) => {
                if let Some(c) = self.f.const_value(op.input(1)) {
                    z = input(0).z_mask >> (c & (bits as u64 - 1));
                }
            }
            (Ctpop, 0) => z = 0x7f,
            (Movcond, 0) => {
                z = input(2).z_mask | input(3).z_mask;
                s = input(2).sign_bits.max(input(3).sign_bits);
            }
            (QemuLd, 0) => {
                if let Ok(memop) = MemOp::from_raw(op.konst(0) as u32) {
                    let size = memop.size_bytes() * 8;
                    if size < bits && memop.is_signed() {
                        s = size;
                    } else if size < bits {
                        z = field_mask(size as u64);
                    }
                }
            }
            _ => {}
        }
        Known::masks(ty, z, s)
    }
}

fn field_mask(len: u64) -> u64 {
    if len >= 64 {
        u64::MAX
    } else {
        (1 << len) - 1
    }
}

/// Ops whose first two inputs may be exchanged; a property of their meaning, not of the table.
fn is_commutative(opc: Opcode) -> bool {
    use Opcode::*;
    matches!(
        opc,
        Add | Mul | And | Or | Xor | Eqv | Nand | Nor | Muluh | Mulsh | Mulu2 | Muls2 | Addco | Addci | Addcio
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::two_register_func as func;

    #[test]
    fn known_constant_sign_bits() {
        assert_eq!(Known::constant(Type::I64, 0).sign_bits, 1);
        assert_eq!(Known::constant(Type::I64, u64::MAX).sign_bits, 1);
        assert_eq!(Known::constant(Type::I64, 0x7f).sign_bits, 8);
        assert_eq!(Known::constant(Type::I64, 0x80).sign_bits, 9);
        assert_eq!(Known::constant(Type::I32, 0xffff_ff80).sign_bits, 8);
        assert_eq!(Known::masks(Type::I64, 0xff, 64).sign_bits, 9);
        assert_eq!(Known::masks(Type::I32, 0xffff_ffff, 8).sign_bits, 8);
    }

    #[test]
    fn global_copy_is_not_used_after_the_global_changes() {
        let mut f = func();
        let (rax, rbx) = (f.global(0), f.global(1));
        let t = f.new_temp(Type::I64);
        f.mov(t, rax);
        f.movi(rax, 7);
        f.mov(rbx, t);
        f.exit_tb(0);
        optimize(&mut f);
        assert_eq!(
            f.dump(),
            "mov_i64 t3, rax\nmovi_i64 rax, 0x7\nmov_i64 rbx, t3\nexit_tb 0x0\n"
        );
    }

    #[test]
    fn branch_to_the_next_label_and_the_label_go_away() {
        let mut f = func();
        let rax = f.global(0);
        let l = f.new_label();
        f.brcond(Cond::Eq, rax, rax, l);
        f.movi(rax, 1);
        f.set_label(l);
        f.exit_tb(0);
        optimize(&mut f);
        assert_eq!(f.dump(), "exit_tb 0x0\n");
    }

    #[test]
    fn trailing_unreachable_insn_start_is_dropped_but_inner_ones_stay() {
        let mut f = func();
        let rax = f.global(0);
        let l = f.new_label();
        f.insn_start([0x10, 0, 0]);
        f.brcond(Cond::Ne, rax, rax, l);
        f.br(l);
        f.insn_start([0x14, 0, 0]);
        f.movi(rax, 1);
        f.set_label(l);
        f.exit_tb(0);
        f.insn_start([0x18, 0, 0]);
        f.exit_tb(1);
        optimize(&mut f);
        assert_eq!(
            f.dump(),
            "insn_start 0x10, 0x0, 0x0\ninsn_start 0x14, 0x0, 0x0\nexit_tb 0x0\n"
        );
    }
}
