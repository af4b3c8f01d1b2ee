//! Helper calls: 0 to 5 arguments of each type with and without a result, constant arguments, a pure helper,
//! helpers that read and write globals through `env`, and a helper that records a fault.

use crate::backend::TbExit;
use crate::func::Func;
use crate::helper::{HelperId, HELPER_MAX_ARGS};
use crate::temp::Temp;
use crate::types::Type;

use super::harness::{Harness, Pipeline};
use super::helpers::{mix_families, mix_value, updated_x1};
use super::state::{self, input_slot, output_slot, FAULT_SLOT, HELPER_OUT, W_OUT, X_IN, X_OUT};
use super::values::{hex, Rng};

/// Masks the result so the call's output is used by a computation, not just moved.
const RESULT_XOR: u64 = 0x0f0f_0000_ffff_0001;

/// Runs every call program.
pub(super) fn run(h: &mut Harness) {
    let families = mix_families(&h.helpers).map(|(ids, args, ret)| (ids.to_vec(), args, ret));
    let mut rng = Rng::new(0xca11);
    for (ids, family_args, ret) in &families {
        for (n, &id) in ids.iter().enumerate() {
            let args = &family_args[..n];
            for pipe in Pipeline::ALL {
                mix_call(h, &mut rng, id, args, *ret, pipe, false);
                mix_call(h, &mut rng, id, args, *ret, pipe, true);
            }
        }
    }
    for pipe in Pipeline::ALL {
        pure_call(h, &mut rng, pipe);
        globals_through_env(h, pipe);
        may_fault(h, pipe);
    }
}

/// The slot argument `i` of a helper with argument types `args` is read from: the inputs of its type in
/// order, then the second output global of that type (there are only four inputs of each).
fn arg_slot(args: &[Type], i: usize) -> usize {
    let ty = args[i];
    match args[..i].iter().filter(|&&t| t == ty).count() {
        k @ 0..=3 => input_slot(ty, k),
        _ => output_slot(ty, 1),
    }
}

/// `t = call id(args); out = t ^ K` (and the zero-extended result for i32), or a call without result that
/// writes the helper-output slot. Arguments come from globals, or are constants when `constant_args`.
fn mix_call(
    h: &mut Harness,
    rng: &mut Rng,
    id: HelperId,
    args: &[Type],
    ret: Option<Type>,
    pipe: Pipeline,
    constant_args: bool,
) {
    let vals: Vec<u64> = args.iter().map(|&t| rng.value(t)).collect();
    let mut f = h.func();
    let temps: Vec<Temp> = args
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if constant_args {
                f.constant(t, vals[i])
            } else {
                state::global(arg_slot(args, i))
            }
        })
        .collect();
    f.insn_start([0x600, 0, 0]);
    let result = ret.map(|t| f.new_temp(t));
    f.call(id, result, &temps);
    if let (Some(r), Some(ty)) = (result, ret) {
        let k = f.constant(ty, RESULT_XOR);
        f.xor(state::global(output_slot(ty, 0)), r, k);
        if ty == Type::I32 {
            f.extu_i32_i64(state::global(X_OUT[0]), r);
        }
    }
    f.exit_tb(0);
    let name = h.target.helpers.get(id).map_or("?", |i| i.name);
    let kind = if constant_args { "constant" } else { "global" };
    let what = || format!("call {name} with {kind} arguments");
    let Some(tb) = h.build(f, pipe, &what) else { return };
    let runs = if constant_args { 1 } else { 4 };
    for run in 0..runs {
        let vals: Vec<u64> = if run == 0 {
            vals.clone()
        } else {
            args.iter().map(|&t| rng.value(t)).collect()
        };
        h.reset();
        if !constant_args {
            for (i, &t) in args.iter().enumerate() {
                h.set(arg_slot(args, i), t, vals[i]);
            }
        }
        let mut all = [0u64; HELPER_MAX_ARGS];
        all[..vals.len()].copy_from_slice(&vals);
        let mixed = mix_value(all);
        match ret {
            Some(ty) => {
                h.want.set(output_slot(ty, 0), ty, (mixed ^ RESULT_XOR) & ty.mask());
                if ty == Type::I32 {
                    h.want.set(X_OUT[0], Type::I64, mixed & 0xffff_ffff);
                }
            }
            None => h.want.set(HELPER_OUT, Type::I64, mixed),
        }
        let what = || {
            format!(
                "call {name} [{}, {kind} arguments] args={} expected mix=0x{mixed:x}",
                pipe.name(),
                hex(&vals)
            )
        };
        h.check_run(&tb, TbExit::Exit(0), &what);
    }
}

/// A pure helper whose result is used, and one whose result is not (which may be removed).
fn pure_call(h: &mut Harness, rng: &mut Rng, pipe: Pipeline) {
    let id = h.helpers.pure;
    let mut f = h.func();
    let (r, unused) = (f.new_temp(Type::I64), f.new_temp(Type::I64));
    let (x0, x1) = (state::global(X_IN[0]), state::global(X_IN[1]));
    let one = f.constant(Type::I64, 1);
    f.insn_start([0x610, 0, 0]);
    f.call(id, Some(unused), &[x1, x0]);
    f.call(id, Some(r), &[x0, x1]);
    f.add(state::global(X_OUT[0]), r, one);
    f.exit_tb(0);
    let what = || "call mix_pure".to_string();
    let Some(tb) = h.build(f, pipe, &what) else { return };
    let (a, b) = (rng.value(Type::I64), rng.value(Type::I64));
    h.reset();
    h.set(X_IN[0], Type::I64, a);
    h.set(X_IN[1], Type::I64, b);
    let want = mix_value([a, b, 0, 0, 0]).wrapping_add(1);
    h.want.set(X_OUT[0], Type::I64, want);
    let what = || {
        format!(
            "call mix_pure [{}] args=[0x{a:x}, 0x{b:x}] expected 0x{want:x}",
            pipe.name()
        )
    };
    h.check_run(&tb, TbExit::Exit(0), &what);
}

/// `x0 = x2 + 1; call read_x0` must see the new `x0`; `x1 = 5; t = call update_x1; xo0 = x1 + t` must see the
/// helper's `x1`, not the 5 the IR wrote before the call.
fn globals_through_env(h: &mut Harness, pipe: Pipeline) {
    let (x0, x1, x2) = (state::global(X_IN[0]), state::global(X_IN[1]), state::global(X_IN[2]));
    let mut f = h.func();
    let (seen, t) = (f.new_temp(Type::I64), f.new_temp(Type::I64));
    let (one, five) = (f.constant(Type::I64, 1), f.constant(Type::I64, 5));
    f.insn_start([0x700, 0, 0]);
    f.add(x0, x2, one);
    f.call(h.helpers.read_x0, Some(seen), &[]);
    f.mov(state::global(X_OUT[1]), seen);
    f.insn_start([0x704, 0, 0]);
    f.mov(x1, five);
    f.call(h.helpers.update_x1, Some(t), &[]);
    f.add(state::global(X_OUT[0]), x1, t);
    f.exit_tb(0);
    let what = || "helpers reading and writing globals".to_string();
    let Some(tb) = h.build(f, pipe, &what) else { return };
    for v in [0u64, 41, u64::MAX, 0x8000_0000_0000_0000] {
        h.reset();
        h.set(X_IN[2], Type::I64, v);
        let x0v = v.wrapping_add(1);
        let x1v = updated_x1(x0v);
        h.want.set(X_IN[0], Type::I64, x0v);
        h.want.set(X_IN[1], Type::I64, x1v);
        h.want.set(X_OUT[1], Type::I64, x0v);
        h.want.set(X_OUT[0], Type::I64, x1v.wrapping_add(x0v.wrapping_add(7)));
        let what = || format!("helpers reading and writing globals [{}] x2=0x{v:x}", pipe.name());
        h.check_run(&tb, TbExit::Exit(0), &what);
    }
}

/// A `MAY_FAULT` helper in the second guest instruction: when it sets the fault word the TB ends with
/// `Fault { insn: 1 }` after the first instruction's global was stored; otherwise the TB goes on.
fn may_fault(h: &mut Harness, pipe: Pipeline) {
    let mut f: Func = h.func();
    let t = f.new_temp(Type::I64);
    f.insn_start([0x800, 0, 0]);
    f.movi(state::global(X_OUT[0]), 0x42);
    f.insn_start([0x804, 0, 0]);
    f.call(h.helpers.maybe_fault, Some(t), &[state::global(X_IN[0])]);
    f.mov(state::global(X_OUT[1]), t);
    f.insn_start([0x808, 0, 0]);
    f.movi(state::global(W_OUT[0]), 9);
    f.exit_tb(5);
    let what = || "MAY_FAULT helper".to_string();
    let Some(tb) = h.build(f, pipe, &what) else { return };
    for arg in [0u64, 3, 0, 1 << 40] {
        h.reset();
        h.set(X_IN[0], Type::I64, arg);
        h.want.set(X_OUT[0], Type::I64, 0x42);
        let exit = if arg == 0 {
            h.want.set(X_OUT[1], Type::I64, 0x100);
            h.want.set(W_OUT[0], Type::I32, 9);
            TbExit::Exit(5)
        } else {
            // The loop, not the TB, clears the fault word after handling the fault.
            h.want.set(FAULT_SLOT, Type::I32, 1);
            TbExit::Fault { insn: 1 }
        };
        let what = || format!("MAY_FAULT helper [{}] arg=0x{arg:x}", pipe.name());
        h.check_run(&tb, exit, &what);
    }
}
