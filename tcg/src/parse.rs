//! Reads the text form that [`crate::dump`] writes back into a [`Func`], for tests and golden files.
//!
//! One op per line, `name[_i32|_i64] outputs, inputs, constants`; blank lines and `#` comments are skipped.
//! Temps: `env`, a global's name, `tN` (TB temp), `eN` (EBB temp), `$value` (a constant of the type the
//! argument has). A `tN`/`eN` is created on its first mention with the type the op's signature gives that
//! argument, and gets index `N` when that index is free so that dumps read back unchanged (the gaps become
//! unused temps); otherwise it gets a fresh index. Constants: immediates and words in hex or decimal (an
//! immediate may be negative), labels `LN`, conditions, memops and helpers by name, offsets as signed hex.
//! For `call` the last argument is the helper; its declaration says whether the first temp is an output.
//!
//! The parser checks the syntax and the argument counts; everything else (types of reused temps, values in
//! range, labels placed) is the verifier's job, so malformed IR can be written down for its tests.

use core::fmt;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use rqemu_include::MemOp;

use crate::func::Func;
use crate::helper::HelperId;
use crate::op::{Op, MAX_OP_ARGS};
use crate::opcodes::{ArgKind, ConstKind, Opcode, Types};
use crate::target::TargetDesc;
use crate::temp::Temp;
use crate::types::{Cond, Type};

/// Why a text is not valid IR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Largest gap of unused temps the parser creates to give a temp its written number.
const MAX_INDEX_GAP: usize = 1024;

/// Parses `text` into a function for `target`; see the module doc for the format.
pub fn parse(target: Arc<TargetDesc>, text: &str) -> Result<Func, ParseError> {
    let mut f = Func::new(target);
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let code = raw.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            continue;
        }
        let line = parse_line(&f, code).map_err(|message| ParseError { line: i + 1, message })?;
        lines.push((i + 1, line));
    }
    let names = name_temps(&mut f, &lines);
    for (no, line) in &lines {
        let op = build_op(&mut f, &names, line).map_err(|message| ParseError { line: *no, message })?;
        for l in op
            .consts()
            .iter()
            .zip(const_kinds(&op))
            .filter(|(_, k)| *k == ConstKind::Label)
        {
            f.nb_labels = f.nb_labels.max(*l.0 as u32 + 1);
        }
        f.push(op);
    }
    Ok(f)
}

/// One line, split and checked against the op's signature, temps not yet resolved.
struct Line<'a> {
    opc: Opcode,
    ty: Type,
    /// Temp arguments with the type their position gives them.
    temps: Vec<(&'a str, Type)>,
    nb_out: usize,
    consts: Vec<u64>,
}

/// A `tN` or `eN` name: (is an EBB temp, N).
type TempName = (bool, u32);

fn parse_line<'a>(f: &Func, code: &'a str) -> Result<Line<'a>, String> {
    let (name, rest) = code.split_once(char::is_whitespace).unwrap_or((code, ""));
    let (opc, ty) = lookup_opcode(name)?;
    let rest = rest.trim();
    let args: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(',').map(str::trim).collect()
    };
    if args.iter().any(|a| a.is_empty()) {
        return Err("empty argument".into());
    }
    let def = opc.def();
    if opc == Opcode::Call {
        let (helper, temps) = args.split_last().ok_or("call needs a helper")?;
        let id = f
            .target
            .helpers
            .find(helper)
            .ok_or_else(|| format!("unknown helper `{helper}`"))?;
        let info = f.target.helpers.get(id).ok_or("helper table changed")?;
        let nb_out = usize::from(info.ret.is_some());
        if temps.len() < nb_out {
            return Err(format!(
                "helper `{helper}` returns a value: the first argument is its output"
            ));
        }
        if args.len() > MAX_OP_ARGS {
            return Err(format!("a call takes at most {} temps", MAX_OP_ARGS - 1));
        }
        let types = info
            .ret
            .into_iter()
            .chain((0..).map(|i| info.args.get(i).copied().unwrap_or(Type::I64)));
        return Ok(Line {
            opc,
            ty,
            temps: temps.iter().copied().zip(types).collect(),
            nb_out,
            consts: vec![id.0 as u64],
        });
    }
    let kinds: Vec<ArgKind> = def.outs.iter().chain(def.ins).copied().collect();
    if args.len() != kinds.len() + def.consts.len() {
        return Err(format!(
            "`{name}` takes {} arguments ({} outputs, {} inputs, {} constants), found {}",
            kinds.len() + def.consts.len(),
            def.outs.len(),
            def.ins.len(),
            def.consts.len(),
            args.len()
        ));
    }
    let (temp_args, const_args) = args.split_at(kinds.len());
    let consts = const_args
        .iter()
        .zip(def.consts)
        .map(|(text, kind)| parse_const(f, *kind, ty, text))
        .collect::<Result<_, _>>()?;
    Ok(Line {
        opc,
        ty,
        temps: temp_args
            .iter()
            .copied()
            .zip(kinds.iter().map(|k| k.type_in(ty)))
            .collect(),
        nb_out: def.outs.len(),
        consts,
    })
}

fn lookup_opcode(name: &str) -> Result<(Opcode, Type), String> {
    if let Some(opc) = Opcode::from_name(name) {
        return match opc.def().types {
            Types::Fixed(ty) => Ok((opc, ty)),
            Types::None => Ok((opc, Type::I64)),
            Types::Both | Types::I64 => Err(format!("`{name}` needs a type suffix (_i32 or _i64)")),
        };
    }
    for (suffix, ty) in [("_i32", Type::I32), ("_i64", Type::I64)] {
        let Some(opc) = name.strip_suffix(suffix).and_then(Opcode::from_name) else {
            continue;
        };
        return match opc.def().types {
            Types::Both | Types::I64 if opc.has_type(ty) => Ok((opc, ty)),
            Types::Both | Types::I64 => Err(format!("`{}` does not exist at {ty}", opc.def().name)),
            _ => Err(format!("`{}` takes no type suffix", opc.def().name)),
        };
    }
    Err(format!("unknown op `{name}`"))
}

/// Kinds of the constant arguments of a built op (calls have a helper).
fn const_kinds(op: &Op) -> Vec<ConstKind> {
    if op.opc == Opcode::Call {
        vec![ConstKind::Helper]
    } else {
        op.opc.def().consts.to_vec()
    }
}

/// A number in hex (`0x..`) or decimal, optionally negative; returned as a 128-bit value so callers can check
/// ranges.
fn parse_number(text: &str) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let v = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    } as i128;
    Some(if neg { -v } else { v })
}

/// A value of `bits` bits written unsigned, or negative in two's complement.
fn parse_value(text: &str, bits: u32) -> Result<u64, String> {
    let v = parse_number(text).ok_or_else(|| format!("bad number `{text}`"))?;
    let lo = -(1i128 << (bits - 1));
    let hi = (1i128 << bits) - 1;
    if v < lo || v > hi {
        return Err(format!("`{text}` does not fit {bits} bits"));
    }
    Ok(v as u64 & (u64::MAX >> (64 - bits)))
}

fn parse_const(f: &Func, kind: ConstKind, ty: Type, text: &str) -> Result<u64, String> {
    let small = |text: &str| parse_value(text, 32);
    match kind {
        ConstKind::Imm => parse_value(text, ty.bits()),
        ConstKind::Word | ConstKind::Barrier => parse_value(text, 64),
        ConstKind::Cond => Cond::from_name(text)
            .map(|c| c as u64)
            .ok_or_else(|| format!("unknown condition `{text}`")),
        ConstKind::Label => text
            .strip_prefix('L')
            .and_then(|n| n.parse::<u32>().ok())
            .map(u64::from)
            .ok_or_else(|| format!("bad label `{text}`")),
        ConstKind::Pos | ConstKind::Len | ConstKind::Shift | ConstKind::TbSlot | ConstKind::MmuIdx => small(text),
        ConstKind::Offset => {
            let v = parse_number(text).ok_or_else(|| format!("bad offset `{text}`"))?;
            let v = i32::try_from(v).map_err(|_| format!("offset `{text}` does not fit 32 bits"))?;
            Ok(v as i64 as u64)
        }
        ConstKind::MemOp => text.parse::<MemOp>().map(|m| m.bits() as u64),
        ConstKind::Helper => f
            .target
            .helpers
            .find(text)
            .map(|HelperId(id)| id as u64)
            .ok_or_else(|| format!("unknown helper `{text}`")),
    }
}

/// A `tN` or `eN` name (that is not a global's name).
fn temp_name(f: &Func, text: &str) -> Option<TempName> {
    if f.global_by_name(text).is_some() {
        return None;
    }
    let (ebb, digits) = match text.as_bytes().first()? {
        b't' => (false, &text[1..]),
        b'e' => (true, &text[1..]),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ebb, digits.parse().ok()?))
}

/// Creates every `tN`/`eN` the lines mention, at index `N` where that is free.
fn name_temps(f: &mut Func, lines: &[(usize, Line<'_>)]) -> HashMap<TempName, Temp> {
    let mut first_type: BTreeMap<(u32, bool), Type> = BTreeMap::new();
    for (_, line) in lines {
        for &(text, ty) in &line.temps {
            if let Some((ebb, n)) = temp_name(f, text) {
                first_type.entry((n, ebb)).or_insert(ty);
            }
        }
    }
    let mut names = HashMap::new();
    let mut later = Vec::new();
    for (&(n, ebb), &ty) in &first_type {
        let n_index = n as usize;
        if n_index < f.temps.len() || n_index - f.temps.len() > MAX_INDEX_GAP {
            later.push((n, ebb, ty));
            continue;
        }
        while f.temps.len() < n_index {
            f.new_temp(Type::I64);
        }
        names.insert((ebb, n), new_temp(f, ebb, ty));
    }
    for (n, ebb, ty) in later {
        names.insert((ebb, n), new_temp(f, ebb, ty));
    }
    names
}

fn new_temp(f: &mut Func, ebb: bool, ty: Type) -> Temp {
    if ebb {
        f.new_ebb_temp(ty)
    } else {
        f.new_temp(ty)
    }
}

fn build_op(f: &mut Func, names: &HashMap<TempName, Temp>, line: &Line<'_>) -> Result<Op, String> {
    let mut temps = Vec::with_capacity(line.temps.len());
    for &(text, ty) in &line.temps {
        let t = if text == "env" {
            Temp::ENV
        } else if let Some(g) = f.global_by_name(text) {
            g
        } else if let Some(value) = text.strip_prefix('$') {
            let v = parse_value(value, ty.bits())?;
            f.constant(ty, v)
        } else if let Some(name) = temp_name(f, text) {
            names[&name]
        } else {
            return Err(format!("unknown temp `{text}`"));
        };
        temps.push(t);
    }
    let (outs, ins) = temps.split_at(line.nb_out);
    Ok(Op::new(line.opc, line.ty, outs, ins, &line.consts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::{HelperFlags, HelperInfo};
    use rqemu_include::MmuIdx;

    unsafe extern "C" fn nop(_: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        0
    }

    fn target() -> Arc<TargetDesc> {
        let mut t = TargetDesc::new(0x100);
        t.add_global("rax", Type::I64, 0);
        t.add_global("flags", Type::I32, 8);
        t.helpers.register(HelperInfo {
            name: "helper_div",
            func: nop,
            flags: HelperFlags::MAY_FAULT,
            args: &[Type::I64, Type::I32],
            ret: Some(Type::I64),
        });
        t.helpers.register(HelperInfo {
            name: "helper_halt",
            func: nop,
            flags: HelperFlags::empty(),
            args: &[],
            ret: None,
        });
        Arc::new(t)
    }

    #[test]
    fn builder_dump_parse_dump_is_identical() {
        let mut f = Func::new(target());
        let (rax, flags) = (f.global(0), f.global(1));
        let t = f.new_temp(Type::I64);
        let c = f.constant(Type::I64, 0xffff_ffff_ffff_fff8);
        let e = f.new_ebb_temp(Type::I32);
        let l = f.new_label();
        f.insn_start([0x40_1000, 1, 0]);
        f.add(t, rax, c);
        f.extrl_i64_i32(e, t);
        f.deposit(flags, flags, e, 4, 8);
        f.load(Opcode::Ld32s, t, Temp::ENV, -8);
        f.store(Opcode::St16, e, Temp::ENV, 0x20);
        f.qemu_ld(t, rax, MemOp::LESL | MemOp::ALIGN, MmuIdx::new(1).unwrap());
        f.call(HelperId(0), Some(rax), &[t, e]);
        f.call(HelperId(1), None, &[]);
        f.brcond(Cond::Tstne, t, c, l);
        f.movcond(Cond::Ltu, rax, t, c, rax, t);
        f.set_label(l);
        f.mb(0x3);
        f.goto_tb(1);
        let text = f.dump();
        let g = parse(target(), &text).unwrap();
        assert_eq!(g.dump(), text);
        assert_eq!(g.nb_labels, 1);
        assert_eq!(g.temp(Temp(5)).ty, Type::I32);
    }

    #[test]
    fn comments_blank_lines_and_fresh_numbers() {
        let text =
            "# a comment\n\n  movi_i32 t1, -1  # t1 collides with rax's index\nextu_i32_i64 rax, t1\nexit_tb 0x0\n";
        let f = parse(target(), text).unwrap();
        assert_eq!(f.dump(), "movi_i32 t3, 0xffffffff\nextu_i32_i64 rax, t3\nexit_tb 0x0\n");
    }

    #[test]
    fn errors_name_the_line() {
        let err = |text: &str| parse(target(), text).unwrap_err().to_string();
        assert_eq!(
            err("exit_tb 0\nadd t1, t1, t1"),
            "line 2: `add` needs a type suffix (_i32 or _i64)"
        );
        assert_eq!(
            err("add_i64 t1, t1"),
            "line 1: `add_i64` takes 3 arguments (1 outputs, 2 inputs, 0 constants), found 2"
        );
        assert_eq!(err("mov_i64 t9, x9"), "line 1: unknown temp `x9`");
        assert_eq!(
            err("movi_i32 t9, 0x100000000"),
            "line 1: `0x100000000` does not fit 32 bits"
        );
        assert_eq!(
            err("brcond_i64 rax, rax, maybe, L0"),
            "line 1: unknown condition `maybe`"
        );
        assert_eq!(err("call t9, helper_nope"), "line 1: unknown helper `helper_nope`");
        assert_eq!(err("ext32u_i32 t9, t9"), "line 1: `ext32u` does not exist at i32");
        assert_eq!(
            err("ld_i64 t9, env, -0x80000001"),
            "line 1: offset `-0x80000001` does not fit 32 bits"
        );
        assert!(err("qemu_ld_i64 t9, rax, lexq, 0").contains("bad memop"));
    }
}
