//! Control-flow programs: `brcond` under every condition taken and not taken, forward and backward branches
//! in counted loops, `exit_tb` values, `goto_tb` slots, `goto_ptr`, and the marker ops `insn_start`, `mb` and
//! `discard`.

use crate::backend::TbExit;
use crate::semantics::eval_cond;
use crate::types::{Cond, Type};

use super::harness::{Harness, Pipeline};
use super::state::{self, input_slot, output_slot, P_IN, X_IN, X_OUT};
use super::values::{compare_edges, Rng};

/// Runs every control-flow program.
pub(super) fn run(h: &mut Harness) {
    for ty in [Type::I32, Type::I64] {
        for cond in Cond::ALL {
            for pipe in Pipeline::ALL {
                brcond(h, ty, cond, pipe);
                brcond_immediate(h, ty, cond, pipe);
            }
        }
        for pipe in Pipeline::ALL {
            counted_sum(h, ty, pipe);
            fibonacci(h, ty, pipe);
        }
    }
    for pipe in Pipeline::ALL {
        exits(h, pipe);
        markers(h, pipe);
    }
}

/// `xo0 = 0x77; brcond cond a, b -> L; exit_tb 1; L: wo0 = 1; exit_tb 2`.
fn brcond(h: &mut Harness, ty: Type, cond: Cond, pipe: Pipeline) {
    let (a, b) = (input_slot(ty, 0), input_slot(ty, 1));
    let mut f = h.func();
    let taken = f.new_label();
    f.insn_start([0x200, 0, 0]);
    f.movi(state::global(X_OUT[0]), 0x77);
    f.brcond(cond, state::global(a), state::global(b), taken);
    f.exit_tb(1);
    f.set_label(taken);
    f.movi(state::global(output_slot(Type::I32, 0)), 1);
    f.exit_tb(2);
    let what = || format!("brcond_{ty} {cond}");
    let Some(tb) = h.build(f, pipe, &what) else { return };
    let mut rng = Rng::new(0xb7 ^ cond as u64);
    let e = compare_edges(ty);
    let mut pairs: Vec<(u64, u64)> = e.iter().flat_map(|&x| e.iter().map(move |&y| (x, y))).collect();
    pairs.extend((0..16).map(|_| (rng.value(ty), rng.value(ty))));
    for (x, y) in pairs {
        h.reset();
        h.set(a, ty, x);
        h.set(b, ty, y);
        h.want.set(X_OUT[0], Type::I64, 0x77);
        let is_taken = eval_cond(cond, ty, x, y);
        if is_taken {
            h.want.set(output_slot(Type::I32, 0), Type::I32, 1);
        }
        let exit = TbExit::Exit(if is_taken { 2 } else { 1 });
        let what = || {
            format!(
                "brcond_{ty} {cond} [{}] inputs=[0x{x:x}, 0x{y:x}] expected taken={is_taken}",
                pipe.name()
            )
        };
        h.check_run(&tb, exit, &what);
    }
}

/// `brcond cond a, $imm` ending in `goto_tb 1` (taken) or `goto_tb 0`, as a TB's last branch does.
fn brcond_immediate(h: &mut Harness, ty: Type, cond: Cond, pipe: Pipeline) {
    let a = input_slot(ty, 0);
    let m = ty.mask();
    for imm in [0, 1, 0x80, m, m >> 1] {
        let mut f = h.func();
        let taken = f.new_label();
        let k = f.constant(ty, imm);
        f.insn_start([0x210, 0, 0]);
        f.brcond(cond, state::global(a), k, taken);
        f.goto_tb(0);
        f.set_label(taken);
        f.goto_tb(1);
        let what = || format!("brcond_{ty} {cond} with immediate 0x{imm:x}");
        let Some(tb) = h.build(f, pipe, &what) else { continue };
        for x in [
            0,
            1,
            imm,
            imm.wrapping_sub(1) & m,
            imm.wrapping_add(1) & m,
            m,
            1 << (ty.bits() - 1),
        ] {
            h.reset();
            h.set(a, ty, x);
            let is_taken = eval_cond(cond, ty, x, imm);
            let what = || {
                format!(
                    "brcond_{ty} {cond} [{}] inputs=[0x{x:x}, $0x{imm:x}] expected taken={is_taken}",
                    pipe.name()
                )
            };
            h.check_run(&tb, TbExit::GotoTb(is_taken as u32), &what);
        }
    }
}

/// `s = n + (n - 1) + ... + 1` with the test at the top of the loop (forward exit, backward `br`).
fn counted_sum(h: &mut Harness, ty: Type, pipe: Pipeline) {
    let n_slot = input_slot(ty, 0);
    let mut f = h.func();
    let (i, s) = (f.new_temp(ty), f.new_temp(ty));
    let (top, done) = (f.new_label(), f.new_label());
    let (zero, one) = (f.constant(ty, 0), f.constant(ty, 1));
    f.insn_start([0x300, 0, 0]);
    f.mov(i, state::global(n_slot));
    f.movi(s, 0);
    f.set_label(top);
    f.brcond(Cond::Eq, i, zero, done);
    f.add(s, s, i);
    f.sub(i, i, one);
    f.br(top);
    f.set_label(done);
    f.mov(state::global(output_slot(ty, 0)), s);
    f.exit_tb(0);
    let what = || format!("counted loop sum at {ty}");
    let Some(tb) = h.build(f, pipe, &what) else { return };
    for n in [0u64, 1, 2, 3, 10, 100, 1000] {
        h.reset();
        h.set(n_slot, ty, n);
        let sum = (1..=n).fold(0u64, |a, k| a.wrapping_add(k)) & ty.mask();
        h.want.set(output_slot(ty, 0), ty, sum);
        let what = || format!("counted loop sum at {ty} [{}] n={n} expected={sum}", pipe.name());
        h.check_run(&tb, TbExit::Exit(0), &what);
    }
}

/// Fibonacci in a do-while loop closed by a backward `brcond ltu`, with an EBB temp inside the body.
fn fibonacci(h: &mut Harness, ty: Type, pipe: Pipeline) {
    let n_slot = input_slot(ty, 0);
    let mut f = h.func();
    let (a, b, k) = (f.new_temp(ty), f.new_temp(ty), f.new_temp(ty));
    let t = f.new_ebb_temp(ty);
    let top = f.new_label();
    let one = f.constant(ty, 1);
    f.insn_start([0x310, 0, 0]);
    f.movi(a, 0);
    f.movi(b, 1);
    f.movi(k, 0);
    f.set_label(top);
    f.add(t, a, b);
    f.mov(a, b);
    f.mov(b, t);
    f.add(k, k, one);
    f.brcond(Cond::Ltu, k, state::global(n_slot), top);
    f.mov(state::global(output_slot(ty, 0)), a);
    f.exit_tb(0);
    let what = || format!("fibonacci loop at {ty}");
    let Some(tb) = h.build(f, pipe, &what) else { return };
    for n in [0u64, 1, 2, 10, 50, 93, 100] {
        h.reset();
        h.set(n_slot, ty, n);
        let (mut x, mut y) = (0u64, 1u64);
        for _ in 0..n.max(1) {
            (x, y) = (y, x.wrapping_add(y) & ty.mask());
        }
        h.want.set(output_slot(ty, 0), ty, x);
        let what = || format!("fibonacci loop at {ty} [{}] n={n} expected=0x{x:x}", pipe.name());
        h.check_run(&tb, TbExit::Exit(0), &what);
    }
}

/// `exit_tb` with several values, `goto_tb` 0 and 1, and `goto_ptr` of a global and of a computed pointer,
/// each after writing a global that must be in the state when the TB is left.
fn exits(h: &mut Harness, pipe: Pipeline) {
    let xo0 = state::global(X_OUT[0]);
    for v in [0, 1, 0x8000_0000_0000_0000, u64::MAX, 0x1234_5678_9abc_def0] {
        let mut f = h.func();
        f.insn_start([0x400, 0, 0]);
        f.movi(xo0, v ^ 1);
        f.exit_tb(v);
        run_exit(h, f, pipe, TbExit::Exit(v), v ^ 1, None);
    }
    for slot in [0, 1] {
        let mut f = h.func();
        f.insn_start([0x410, 0, 0]);
        f.movi(xo0, 0x55 + slot as u64);
        f.goto_tb(slot);
        run_exit(h, f, pipe, TbExit::GotoTb(slot), 0x55 + slot as u64, None);
    }
    let top = (Type::PTR.mask() - 0xf) as usize;
    for (offset, p) in [
        (0, 0usize),
        (0, 0x1000),
        (0, top),
        (0x10, 0xdead_bee0),
        (0x10, top - 0x10),
    ] {
        let mut f = h.func();
        f.insn_start([0x420, 0, 0]);
        f.movi(xo0, 0x66);
        let target = if offset == 0 {
            state::global(P_IN)
        } else {
            let t = f.new_temp(Type::PTR);
            let k = f.constant(Type::PTR, offset);
            f.add(t, state::global(P_IN), k);
            t
        };
        f.goto_ptr(target);
        run_exit(h, f, pipe, TbExit::GotoPtr(p + offset as usize), 0x66, Some(p as u64));
    }
}

fn run_exit(h: &mut Harness, f: crate::Func, pipe: Pipeline, exit: TbExit, xo0: u64, p0: Option<u64>) {
    let Some(tb) = h.build(f, pipe, &|| format!("TB ending in {exit:?}")) else {
        return;
    };
    h.reset();
    if let Some(p) = p0 {
        h.set(P_IN, Type::PTR, p);
    }
    h.want.set(X_OUT[0], Type::I64, xo0);
    h.check_run(&tb, exit, &|| format!("TB ending in {exit:?} [{}]", pipe.name()));
}

/// Two guest instructions with `mb` and `discard` between ordinary ops, at both types.
fn markers(h: &mut Harness, pipe: Pipeline) {
    let mut f = h.func();
    let (t, u) = (f.new_temp(Type::I64), f.new_temp(Type::I32));
    let (x0, w0) = (state::global(X_IN[0]), state::global(input_slot(Type::I32, 0)));
    f.insn_start([0x500, 1, 2]);
    f.mov(t, x0);
    f.mov(u, w0);
    f.mb(0x3f);
    f.add(state::global(X_OUT[0]), t, t);
    f.discard(t);
    f.insn_start([0x504, 3, 4]);
    f.mb(0);
    f.add(state::global(output_slot(Type::I32, 0)), u, u);
    f.discard(u);
    f.exit_tb(3);
    let what = || "insn_start, mb and discard".to_string();
    let Some(tb) = h.build(f, pipe, &what) else { return };
    let mut rng = Rng::new(0x3a);
    for _ in 0..4 {
        let (x, w) = (rng.value(Type::I64), rng.value(Type::I32));
        h.reset();
        h.set(X_IN[0], Type::I64, x);
        h.set(input_slot(Type::I32, 0), Type::I32, w);
        h.want.set(X_OUT[0], Type::I64, x.wrapping_mul(2));
        h.want
            .set(output_slot(Type::I32, 0), Type::I32, w.wrapping_mul(2) & 0xffff_ffff);
        let what = || format!("insn_start, mb and discard [{}] x0=0x{x:x} w0=0x{w:x}", pipe.name());
        h.check_run(&tb, TbExit::Exit(3), &what);
    }
}
