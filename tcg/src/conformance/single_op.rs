//! Single-op cases: every computational op x type the backend supports, under every condition, bit field and
//! shift its constant arguments allow, on edge values and seeded random inputs, each compared with
//! [`crate::semantics::eval`].
//!
//! Inputs come from globals, so one TB per (op, type, constants) serves thousands of inputs: the suite writes
//! them into the CPU state and runs the same compiled code again. A few inputs per TB are also tried as
//! constant temps (all of them, or one operand), through the full pipeline (where the optimizer folds them)
//! and without the optimizer (where the backend must encode them as immediates).

use crate::backend::TbExit;
use crate::func::Func;
use crate::opcodes::{Opcode, Types};
use crate::semantics;
use crate::temp::Temp;
use crate::types::{Cond, Type};

use super::harness::{Harness, Pipeline};
use super::state::{self, input_slot, output_slot};
use super::values::{compare_edges, edges, hex, shift_counts, small_edges, Rng};

/// Up to four inputs; unused ones are zero.
type Inputs = [u64; 4];

/// Where a TB's inputs come from and where its outputs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// Inputs from globals, outputs to globals.
    Globals,
    /// As `Globals`, with each i32 output also zero-extended into an i64 global: catches a backend that keeps
    /// garbage above an i32 result held in a wider register.
    Extended,
    /// The inputs in the mask (bit `i`: input `i`) are constants, the others globals.
    Constants(u8),
}

impl Variant {
    fn const_mask(self) -> u8 {
        match self {
            Variant::Constants(m) => m,
            _ => 0,
        }
    }

    fn name(self) -> String {
        match self {
            Variant::Globals => "globals".to_string(),
            Variant::Extended => "globals, i32 results zero-extended".to_string(),
            Variant::Constants(m) => format!("constant inputs {m:#06b}"),
        }
    }
}

/// One op at one type with fixed constant arguments, and the types of its temps.
struct Shape {
    opc: Opcode,
    ty: Type,
    consts: Vec<u64>,
    ins: Vec<Type>,
    outs: Vec<Type>,
    /// Whether the op has many constant configurations, so each gets fewer inputs.
    many_configs: bool,
}

impl Shape {
    fn new(opc: Opcode, ty: Type, consts: Vec<u64>, many_configs: bool) -> Shape {
        let def = opc.def();
        Shape {
            opc,
            ty,
            consts,
            ins: def.ins.iter().map(|&k| k.type_in(ty)).collect(),
            outs: def.outs.iter().map(|&k| k.type_in(ty)).collect(),
            many_configs,
        }
    }

    /// The op's name as dumps spell it (`add_i32`, `ext_i32_i64`).
    fn name(&self) -> String {
        let def = self.opc.def();
        match def.types {
            Types::Both | Types::I64 => format!("{}_{}", def.name, self.ty),
            _ => def.name.to_string(),
        }
    }

    /// Describes one case for a failure message.
    fn describe(&self, vals: &[u64], variant: Variant, pipe: Pipeline, want: &[u64; 2]) -> String {
        let consts = match self.opc {
            Opcode::Setcond | Opcode::Negsetcond | Opcode::Movcond => {
                let c = Cond::from_raw(self.consts[0]).unwrap_or(Cond::Never);
                format!(" cond={c}")
            }
            _ if self.consts.is_empty() => String::new(),
            _ => format!(" consts={}", hex(&self.consts)),
        };
        format!(
            "{}{consts} [{}, {}] inputs={} expected={}",
            self.name(),
            variant.name(),
            pipe.name(),
            hex(&vals[..self.ins.len()]),
            hex(&want[..self.outs.len()])
        )
    }
}

/// Runs every single-op case the backend supports.
pub(super) fn run(h: &mut Harness) {
    for &opc in Opcode::ALL {
        if !semantics::is_computational(opc) {
            continue;
        }
        for &ty in opc.valid_types() {
            if !h.supports(opc, ty) {
                continue;
            }
            let configs = const_configs(opc, ty);
            let many = configs.len() > Cond::ALL.len();
            for consts in configs {
                run_shape(h, &Shape::new(opc, ty, consts, many));
            }
        }
    }
}

/// Every constant-argument configuration tried for `opc` at `ty`.
fn const_configs(opc: Opcode, ty: Type) -> Vec<Vec<u64>> {
    let bits = ty.bits() as u64;
    match opc {
        Opcode::Setcond | Opcode::Negsetcond | Opcode::Movcond => Cond::ALL.iter().map(|&c| vec![c as u64]).collect(),
        Opcode::Deposit | Opcode::Extract | Opcode::Sextract => (0..bits)
            .flat_map(|pos| (1..=bits - pos).map(move |len| vec![pos, len]))
            .collect(),
        Opcode::Extract2 => (0..=bits).map(|s| vec![s]).collect(),
        Opcode::Movi => {
            let mut rng = Rng::for_op(opc, ty, &[]);
            let mut v = edges(ty);
            v.extend((0..8).map(|_| rng.value(ty)));
            v.into_iter().map(|imm| vec![imm]).collect()
        }
        _ => vec![Vec::new()],
    }
}

/// Whether a bit field is one of the few whose constant-input variants are tried.
fn is_edge_field(consts: &[u64], bits: u64) -> bool {
    match *consts {
        [pos, len] => {
            [0, 1, 7, 8, bits / 2, bits - 1].contains(&pos) && [1, 7, 8, 16, bits / 2, bits - pos].contains(&len)
        }
        [shift] => [0, 1, 8, bits / 2, bits - 1, bits].contains(&shift),
        _ => true,
    }
}

fn run_shape(h: &mut Harness, shape: &Shape) {
    let mut rng = Rng::for_op(shape.opc, shape.ty, &shape.consts);
    let cases = input_cases(shape, &mut rng);
    for pipe in Pipeline::ALL {
        // Without the optimizer the TB is the same as with it when every input is a global: a sample is enough.
        let stride = if pipe == Pipeline::Optimized { 1 } else { 4 };
        let f = build_func(h, shape, Variant::Globals, &[0; 4]);
        let what = || format!("{} with global inputs", shape.name());
        if let Some(tb) = h.build(f, pipe, &what) {
            for vals in cases.iter().step_by(stride) {
                run_case(h, &tb, shape, vals, Variant::Globals, pipe);
            }
        }
    }
    if shape.outs.contains(&Type::I32) {
        let f = build_func(h, shape, Variant::Extended, &[0; 4]);
        let what = || format!("{} with i32 results zero-extended", shape.name());
        if let Some(tb) = h.build(f, Pipeline::Optimized, &what) {
            for vals in cases.iter().step_by(4) {
                run_case(h, &tb, shape, vals, Variant::Extended, Pipeline::Optimized);
            }
        }
    }
    let n = shape.ins.len();
    if n == 0 || (shape.many_configs && !is_edge_field(&shape.consts, shape.ty.bits() as u64)) {
        return;
    }
    let picks = if shape.many_configs { 2 } else { 4 };
    let mut variants: Vec<(u8, Inputs)> = Vec::new();
    for &mask in const_masks(n) {
        // Evenly spread, ending with the last case, which is random: the first ones are all zeros.
        variants.extend((1..=picks).map(|k| (mask, cases[k * cases.len() / picks - 1])));
    }
    if n >= 2 && !shape.many_configs {
        for imm in immediates(shape.opc, shape.ins[1]) {
            let mut vals = [0; 4];
            for (v, &t) in vals.iter_mut().zip(&shape.ins) {
                *v = rng.value(t);
            }
            vals[1] = imm;
            variants.push((0b10, vals));
        }
    }
    for (mask, vals) in &variants {
        for pipe in Pipeline::ALL {
            let f = build_func(h, shape, Variant::Constants(*mask), vals);
            let what = || {
                format!(
                    "{} with constant inputs {mask:#06b} inputs={}",
                    shape.name(),
                    hex(&vals[..n])
                )
            };
            if let Some(tb) = h.build(f, pipe, &what) {
                run_case(h, &tb, shape, vals, Variant::Constants(*mask), pipe);
            }
        }
    }
}

/// Second operands tried as constants: every shift count, or a value of each class of immediate encodings
/// (sign-extended 8 and 32 bits, zero-extended 32 bits, full width) and the values just outside it.
fn immediates(opc: Opcode, ty: Type) -> Vec<u64> {
    let bits = ty.bits() as u64;
    if matches!(
        opc,
        Opcode::Shl | Opcode::Shr | Opcode::Sar | Opcode::Rotl | Opcode::Rotr
    ) {
        return (0..bits).chain([bits, bits + 1, 2 * bits - 1]).collect();
    }
    let signed: [i64; 13] = [
        0,
        1,
        -1,
        0x7f,
        0x80,
        -0x80,
        -0x81,
        0x7fff_ffff,
        0x8000_0000,
        -0x8000_0000,
        -0x8000_0001,
        0xffff_ffff,
        0x1_0000_0000,
    ];
    let mut v: Vec<u64> = signed.iter().map(|&x| x as u64 & ty.mask()).collect();
    v.extend([1 << (bits - 1), ty.mask() >> 1, 0x0123_4567_89ab_cdef & ty.mask()]);
    v.sort_unstable();
    v.dedup();
    v
}

/// Which inputs are made constants (bit `i`: input `i`): all of them, and single operands where backends
/// commonly take an immediate.
fn const_masks(n: usize) -> &'static [u8] {
    match n {
        1 => &[0b1],
        2 => &[0b11, 0b10, 0b01],
        3 => &[0b111, 0b010, 0b100],
        _ => &[0b1111, 0b0010, 0b1000, 0b1100],
    }
}

/// `insn_start; op outputs, inputs, constants; exit_tb 0`, with the inputs in `const_mask` as constants of
/// `vals` and the others read from the input globals; outputs go to the output globals.
fn build_func(h: &Harness, shape: &Shape, variant: Variant, vals: &Inputs) -> Func {
    let const_mask = variant.const_mask();
    let mut f = h.func();
    let ins: Vec<Temp> = shape
        .ins
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if const_mask & (1 << i) != 0 {
                f.constant(t, vals[i])
            } else {
                state::global(input_slot(t, i))
            }
        })
        .collect();
    let extended = variant == Variant::Extended;
    let outs: Vec<Temp> = shape
        .outs
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if extended && t == Type::I32 {
                f.new_temp(t)
            } else {
                state::global(output_slot(t, i))
            }
        })
        .collect();
    f.insn_start([0x1000, 0, 0]);
    f.emit(shape.opc, shape.ty, &outs, &ins, &shape.consts);
    for (i, (&t, &out)) in shape.outs.iter().zip(&outs).enumerate() {
        if extended && t == Type::I32 {
            f.mov(state::global(output_slot(t, i)), out);
            f.extu_i32_i64(state::global(output_slot(Type::I64, i)), out);
        }
    }
    f.exit_tb(0);
    f
}

fn run_case(h: &mut Harness, tb: &super::harness::Tb, shape: &Shape, vals: &Inputs, variant: Variant, pipe: Pipeline) {
    let const_mask = variant.const_mask();
    let n = shape.ins.len();
    let Some(want) = semantics::eval(shape.opc, shape.ty, &vals[..n], &shape.consts) else {
        h.rec.fail(format!(
            "{}: no reference semantics for {}",
            shape.name(),
            hex(&vals[..n])
        ));
        return;
    };
    h.reset();
    for (i, &t) in shape.ins.iter().enumerate() {
        if const_mask & (1 << i) == 0 {
            h.set(input_slot(t, i), t, vals[i]);
        }
    }
    for (i, &t) in shape.outs.iter().enumerate() {
        h.want.set(output_slot(t, i), t, want[i]);
        if variant == Variant::Extended && t == Type::I32 {
            h.want.set(output_slot(Type::I64, i), Type::I64, want[i]);
        }
    }
    h.check_run(tb, TbExit::Exit(0), &|| shape.describe(vals, variant, pipe, &want));
}

/// The inputs tried for one shape: edge values (crossed for binary ops) then random ones.
fn input_cases(shape: &Shape, rng: &mut Rng) -> Vec<Inputs> {
    use Opcode::*;
    let ty = shape.ty;
    let bits = ty.bits() as u64;
    let m = ty.mask();
    let random = if shape.many_configs { 8 } else { 64 };
    let tiny = |t: Type| {
        let m = t.mask();
        vec![
            0,
            m,
            0x5555_5555_5555_5555 & m,
            0xaaaa_aaaa_aaaa_aaaa & m,
            0x0123_4567_89ab_cdef & m,
            1 << (t.bits() - 1),
        ]
    };
    let mut cases: Vec<Inputs> = Vec::new();
    let cross = |cases: &mut Vec<Inputs>, a: &[u64], b: &[u64], c: &[u64], d: &[u64]| {
        for &x in a {
            for &y in b {
                for &z in c {
                    for &w in d {
                        cases.push([x, y, z, w]);
                    }
                }
            }
        }
    };
    let ins = &shape.ins;
    match (shape.opc, ins.len()) {
        (_, 0) => cases.push([0; 4]),
        (_, 1) => {
            let vals = if shape.many_configs {
                small_edges(ins[0])
            } else {
                edges(ins[0])
            };
            cross(&mut cases, &vals, &[0], &[0], &[0]);
            cases.extend((0..random).map(|_| [rng.value(ins[0]), 0, 0, 0]));
        }
        (Shl | Shr | Sar | Rotl | Rotr, _) => {
            cross(&mut cases, &small_edges(ty), &shift_counts(ty), &[0], &[0]);
            cases.extend((0..random).map(|_| [rng.value(ty), rng.below(bits), 0, 0]));
            cases.extend((0..random).map(|_| [rng.value(ty), rng.value(ty), 0, 0]));
        }
        (Clz | Ctz, _) => {
            cross(&mut cases, &edges(ty), &[0, bits, 0x1234, m], &[0], &[0]);
            cases.extend((0..random).map(|_| [rng.value(ty), rng.value(ty), 0, 0]));
        }
        (Deposit | Extract2, _) => {
            cross(&mut cases, &tiny(ty), &tiny(ty), &[0], &[0]);
            cases.extend((0..random).map(|_| [rng.value(ty), rng.value(ty), 0, 0]));
        }
        (Setcond | Negsetcond, _) => {
            cross(&mut cases, &compare_edges(ty), &compare_edges(ty), &[0], &[0]);
            pairs(&mut cases, rng, ty, 16, [0, 0]);
        }
        (_, 2) => {
            cross(&mut cases, &edges(ty), &edges(ty), &[0], &[0]);
            pairs(&mut cases, rng, ty, random, [0, 0]);
        }
        (_, 3) => {
            let e = small_edges(ty);
            cross(&mut cases, &e, &e, &[0, 1, 2, m], &[0]);
            for _ in 0..random {
                let c = match rng.below(3) {
                    0 => 0,
                    1 => 1,
                    _ => rng.value(ty),
                };
                cases.push([rng.value(ty), rng.value(ty), c, 0]);
            }
        }
        _ => {
            let (v1, v2) = (0x1111_2222_3333_4444 & m, 0x9999_aaaa_bbbb_cccc & m);
            cross(&mut cases, &compare_edges(ty), &compare_edges(ty), &[v1], &[v2]);
            let (r1, r2) = (rng.value(ty), rng.value(ty));
            pairs(&mut cases, rng, ty, 16, [r1, r2]);
        }
    }
    cases
}

/// `count` random pairs, and a quarter as many equal pairs (comparisons, `sub`, `xor` and division by
/// oneself care), with `rest` as the remaining inputs.
fn pairs(cases: &mut Vec<Inputs>, rng: &mut Rng, ty: Type, count: usize, rest: [u64; 2]) {
    for _ in 0..count {
        cases.push([rng.value(ty), rng.value(ty), rest[0], rest[1]]);
    }
    for _ in 0..count / 4 {
        let v = rng.value(ty);
        cases.push([v, v, rest[0], rest[1]]);
    }
}
