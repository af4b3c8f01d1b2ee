//! The opcode table: the single source of truth for the IR.
//!
//! Every op is one row: its name, the kinds of its output, input and constant arguments, the types it exists
//! for and its flags. The builder, dumper, parser, verifier, optimizer, liveness and every backend read this
//! table; none of them keeps its own list of operand counts or effects.

use bitflags::bitflags;

bitflags! {
    /// Properties of an opcode that passes and backends must respect.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct OpFlags: u16 {
        /// Ends a basic block (branches, labels, TB exits).
        const BB_END = 1 << 0;
        /// Control never falls through to the next op.
        const NO_FALLTHROUGH = 1 << 1;
        /// Conditional branch.
        const COND_BRANCH = 1 << 2;
        /// Must be kept even if its outputs are unused.
        const SIDE_EFFECTS = 1 << 3;
        /// May exit the TB with a fault; every global must be in the CPU state before it runs.
        const MAY_FAULT = 1 << 4;
        /// Argument counts and effects come from the op itself (calls), not from this table.
        const VARIADIC = 1 << 5;
        /// Reads guest memory or host memory that globals alias.
        const READS_MEMORY = 1 << 6;
        /// Writes guest memory or host memory that globals alias.
        const WRITES_MEMORY = 1 << 7;
    }
}

/// The kind of a temp argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Has the op's own type.
    Op,
    /// Always i32.
    I32,
    /// Always i64 (guest addresses are i64 on every host).
    I64,
    /// A host pointer ([`crate::Type::PTR`]).
    Ptr,
}

impl ArgKind {
    /// The type a temp of this kind has in an op of type `op_ty`.
    pub const fn type_in(self, op_ty: crate::Type) -> crate::Type {
        match self {
            ArgKind::Op => op_ty,
            ArgKind::I32 => crate::Type::I32,
            ArgKind::I64 => crate::Type::I64,
            ArgKind::Ptr => crate::Type::PTR,
        }
    }
}

/// The kind of a constant argument, which fixes its valid range and its spelling in dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstKind {
    /// An immediate of the op's type.
    Imm,
    /// A [`crate::Cond`].
    Cond,
    /// A label number.
    Label,
    /// A bit position `0..bits`.
    Pos,
    /// A field length `1..=bits - pos`.
    Len,
    /// A bit position `0..=bits` (`extract2`).
    Shift,
    /// A signed 32-bit byte offset from a host pointer.
    Offset,
    /// A guest memory access kind ([`rqemu_include::MemOp`]).
    MemOp,
    /// An MMU index.
    MmuIdx,
    /// A registered helper.
    Helper,
    /// A direct-jump slot of the TB: 0 or 1.
    TbSlot,
    /// An arbitrary 64-bit word (exit values, `insn_start` data).
    Word,
    /// Memory-barrier kind bits.
    Barrier,
}

/// Which values the `ty` field of an op may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Types {
    /// i32 and i64; the dump name gets a `_i32`/`_i64` suffix.
    Both,
    /// Only i64; the dump name gets the `_i64` suffix.
    I64,
    /// Exactly this type, which is part of the op's name; no suffix.
    Fixed(crate::Type),
    /// The type field is meaningless (control flow, markers); stored as i64, no suffix.
    None,
}

/// One row of the opcode table.
#[derive(Debug)]
pub struct OpDef {
    /// Base name used in dumps and in the text format.
    pub name: &'static str,
    /// Kinds of the output temps.
    pub outs: &'static [ArgKind],
    /// Kinds of the input temps.
    pub ins: &'static [ArgKind],
    /// Kinds of the constant arguments.
    pub consts: &'static [ConstKind],
    /// Types the op exists for.
    pub types: Types,
    /// Effects and control-flow properties.
    pub flags: OpFlags,
}

/// Number of `insn_start` words: the guest pc plus two target-defined words.
pub const INSN_START_WORDS: usize = 3;

macro_rules! define_opcodes {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, [$($o:ident),*], [$($i:ident),*], [$($c:ident),*], $types:expr, $flags:expr; )*) => {
        /// An IR opcode. The table [`OPDEFS`] describes each one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Opcode {
            $( $(#[$doc])* $variant, )*
        }

        /// The opcode table, indexed by `Opcode as usize`.
        pub static OPDEFS: &[OpDef] = &[
            $( OpDef {
                name: $name,
                outs: &[$(ArgKind::$o),*],
                ins: &[$(ArgKind::$i),*],
                consts: &[$(ConstKind::$c),*],
                types: $types,
                flags: $flags,
            }, )*
        ];

        impl Opcode {
            /// Every opcode in table order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$variant),*];
        }
    };
}

const NONE: OpFlags = OpFlags::empty();
const TERM: OpFlags = OpFlags::BB_END
    .union(OpFlags::NO_FALLTHROUGH)
    .union(OpFlags::SIDE_EFFECTS);
const GUEST_MEM: OpFlags = OpFlags::SIDE_EFFECTS.union(OpFlags::MAY_FAULT);
use Types::{Both, None as NoType, I64 as Only64};

define_opcodes! {
    /// `out = in`
    Mov = "mov", [Op], [Op], [], Both, NONE;
    /// `out = imm`
    Movi = "movi", [Op], [], [Imm], Both, NONE;
    /// Wrapping addition.
    Add = "add", [Op], [Op, Op], [], Both, NONE;
    /// Wrapping subtraction.
    Sub = "sub", [Op], [Op, Op], [], Both, NONE;
    /// Wrapping multiplication (low half).
    Mul = "mul", [Op], [Op, Op], [], Both, NONE;
    /// Two's-complement negation.
    Neg = "neg", [Op], [Op], [], Both, NONE;
    /// Unsigned double-width product: `(lo, hi) = a * b`.
    Mulu2 = "mulu2", [Op, Op], [Op, Op], [], Both, NONE;
    /// Signed double-width product: `(lo, hi) = a * b`.
    Muls2 = "muls2", [Op, Op], [Op, Op], [], Both, NONE;
    /// High half of the unsigned product.
    Muluh = "muluh", [Op], [Op, Op], [], Both, NONE;
    /// High half of the signed product.
    Mulsh = "mulsh", [Op], [Op, Op], [], Both, NONE;
    /// Signed division, truncating; `x / 0 = 0`, `MIN / -1 = MIN`.
    Divs = "divs", [Op], [Op, Op], [], Both, NONE;
    /// Unsigned division; `x / 0 = 0`.
    Divu = "divu", [Op], [Op, Op], [], Both, NONE;
    /// Signed remainder (sign of the dividend); `x % 0 = x`, `MIN % -1 = 0`.
    Rems = "rems", [Op], [Op, Op], [], Both, NONE;
    /// Unsigned remainder; `x % 0 = x`.
    Remu = "remu", [Op], [Op, Op], [], Both, NONE;
    /// Bitwise and.
    And = "and", [Op], [Op, Op], [], Both, NONE;
    /// Bitwise or.
    Or = "or", [Op], [Op, Op], [], Both, NONE;
    /// Bitwise exclusive or.
    Xor = "xor", [Op], [Op, Op], [], Both, NONE;
    /// `a & !b`
    Andc = "andc", [Op], [Op, Op], [], Both, NONE;
    /// `a | !b`
    Orc = "orc", [Op], [Op, Op], [], Both, NONE;
    /// `!(a ^ b)`
    Eqv = "eqv", [Op], [Op, Op], [], Both, NONE;
    /// `!(a & b)`
    Nand = "nand", [Op], [Op, Op], [], Both, NONE;
    /// `!(a | b)`
    Nor = "nor", [Op], [Op, Op], [], Both, NONE;
    /// Bitwise not.
    Not = "not", [Op], [Op], [], Both, NONE;
    /// Shift left; the count is taken modulo the width.
    Shl = "shl", [Op], [Op, Op], [], Both, NONE;
    /// Logical shift right; the count is taken modulo the width.
    Shr = "shr", [Op], [Op, Op], [], Both, NONE;
    /// Arithmetic shift right; the count is taken modulo the width.
    Sar = "sar", [Op], [Op, Op], [], Both, NONE;
    /// Rotate left; the count is taken modulo the width.
    Rotl = "rotl", [Op], [Op, Op], [], Both, NONE;
    /// Rotate right; the count is taken modulo the width.
    Rotr = "rotr", [Op], [Op, Op], [], Both, NONE;
    /// Count leading zeros; the second input is the result for a zero first input.
    Clz = "clz", [Op], [Op, Op], [], Both, NONE;
    /// Count trailing zeros; the second input is the result for a zero first input.
    Ctz = "ctz", [Op], [Op, Op], [], Both, NONE;
    /// Population count.
    Ctpop = "ctpop", [Op], [Op], [], Both, NONE;
    /// `out = cond(a, b) ? 1 : 0`
    Setcond = "setcond", [Op], [Op, Op], [Cond], Both, NONE;
    /// `out = cond(a, b) ? -1 : 0`
    Negsetcond = "negsetcond", [Op], [Op, Op], [Cond], Both, NONE;
    /// `out = cond(c1, c2) ? v1 : v2`
    Movcond = "movcond", [Op], [Op, Op, Op, Op], [Cond], Both, NONE;
    /// Branch to the label when `cond(a, b)`.
    Brcond = "brcond", [], [Op, Op], [Cond, Label], Both, OpFlags::BB_END.union(OpFlags::COND_BRANCH);
    /// `out = a` with bits `pos..pos+len` replaced by the low `len` bits of `b`.
    Deposit = "deposit", [Op], [Op, Op], [Pos, Len], Both, NONE;
    /// Zero-extended bit field `pos..pos+len` of the input.
    Extract = "extract", [Op], [Op], [Pos, Len], Both, NONE;
    /// Sign-extended bit field `pos..pos+len` of the input.
    Sextract = "sextract", [Op], [Op], [Pos, Len], Both, NONE;
    /// `out = (hi:lo) >> shift`, low half (inputs are `lo, hi`).
    Extract2 = "extract2", [Op], [Op, Op], [Shift], Both, NONE;
    /// Sign-extend the low 8 bits.
    Ext8s = "ext8s", [Op], [Op], [], Both, NONE;
    /// Zero-extend the low 8 bits.
    Ext8u = "ext8u", [Op], [Op], [], Both, NONE;
    /// Sign-extend the low 16 bits.
    Ext16s = "ext16s", [Op], [Op], [], Both, NONE;
    /// Zero-extend the low 16 bits.
    Ext16u = "ext16u", [Op], [Op], [], Both, NONE;
    /// Sign-extend the low 32 bits.
    Ext32s = "ext32s", [Op], [Op], [], Only64, NONE;
    /// Zero-extend the low 32 bits.
    Ext32u = "ext32u", [Op], [Op], [], Only64, NONE;
    /// Sign-extend an i32 to i64.
    ExtI32I64 = "ext_i32_i64", [I64], [I32], [], Types::Fixed(crate::Type::I64), NONE;
    /// Zero-extend an i32 to i64.
    ExtuI32I64 = "extu_i32_i64", [I64], [I32], [], Types::Fixed(crate::Type::I64), NONE;
    /// Low 32 bits of an i64.
    ExtrlI64I32 = "extrl_i64_i32", [I32], [I64], [], Types::Fixed(crate::Type::I32), NONE;
    /// High 32 bits of an i64.
    ExtrhI64I32 = "extrh_i64_i32", [I32], [I64], [], Types::Fixed(crate::Type::I32), NONE;
    /// Swap the bytes of the low 16 bits; the result is zero-extended.
    Bswap16 = "bswap16", [Op], [Op], [], Both, NONE;
    /// Swap the bytes of the low 32 bits; the result is zero-extended.
    Bswap32 = "bswap32", [Op], [Op], [], Both, NONE;
    /// Swap the bytes of all 64 bits.
    Bswap64 = "bswap64", [Op], [Op], [], Only64, NONE;
    /// `(sum, carry_out) = a + b`
    Addco = "addco", [Op, Op], [Op, Op], [], Both, NONE;
    /// `sum = a + b + (cin != 0)`
    Addci = "addci", [Op], [Op, Op, Op], [], Both, NONE;
    /// `(sum, carry_out) = a + b + (cin != 0)`
    Addcio = "addcio", [Op, Op], [Op, Op, Op], [], Both, NONE;
    /// `(diff, borrow_out) = a - b`
    Subbo = "subbo", [Op, Op], [Op, Op], [], Both, NONE;
    /// `diff = a - b - (bin != 0)`
    Subbi = "subbi", [Op], [Op, Op, Op], [], Both, NONE;
    /// `(diff, borrow_out) = a - b - (bin != 0)`
    Subbio = "subbio", [Op, Op], [Op, Op, Op], [], Both, NONE;
    /// Zero-extending 8-bit host load from `base + offset`.
    Ld8u = "ld8u", [Op], [Ptr], [Offset], Both, OpFlags::READS_MEMORY;
    /// Sign-extending 8-bit host load.
    Ld8s = "ld8s", [Op], [Ptr], [Offset], Both, OpFlags::READS_MEMORY;
    /// Zero-extending 16-bit host load.
    Ld16u = "ld16u", [Op], [Ptr], [Offset], Both, OpFlags::READS_MEMORY;
    /// Sign-extending 16-bit host load.
    Ld16s = "ld16s", [Op], [Ptr], [Offset], Both, OpFlags::READS_MEMORY;
    /// Zero-extending 32-bit host load.
    Ld32u = "ld32u", [Op], [Ptr], [Offset], Only64, OpFlags::READS_MEMORY;
    /// Sign-extending 32-bit host load.
    Ld32s = "ld32s", [Op], [Ptr], [Offset], Only64, OpFlags::READS_MEMORY;
    /// Full-width host load.
    Ld = "ld", [Op], [Ptr], [Offset], Both, OpFlags::READS_MEMORY;
    /// 8-bit host store of the value to `base + offset`.
    St8 = "st8", [], [Op, Ptr], [Offset], Both, OpFlags::SIDE_EFFECTS.union(OpFlags::WRITES_MEMORY);
    /// 16-bit host store.
    St16 = "st16", [], [Op, Ptr], [Offset], Both, OpFlags::SIDE_EFFECTS.union(OpFlags::WRITES_MEMORY);
    /// 32-bit host store.
    St32 = "st32", [], [Op, Ptr], [Offset], Only64, OpFlags::SIDE_EFFECTS.union(OpFlags::WRITES_MEMORY);
    /// Full-width host store.
    St = "st", [], [Op, Ptr], [Offset], Both, OpFlags::SIDE_EFFECTS.union(OpFlags::WRITES_MEMORY);
    /// Guest memory load through the softmmu (inputs: guest address).
    QemuLd = "qemu_ld", [Op], [I64], [MemOp, MmuIdx], Both, GUEST_MEM.union(OpFlags::READS_MEMORY);
    /// Guest memory store through the softmmu (inputs: value, guest address).
    QemuSt = "qemu_st", [], [Op, I64], [MemOp, MmuIdx], Both, GUEST_MEM.union(OpFlags::WRITES_MEMORY);
    /// Branch target.
    SetLabel = "set_label", [], [], [Label], NoType, OpFlags::BB_END;
    /// Unconditional branch.
    Br = "br", [], [], [Label], NoType, TERM;
    /// Call a registered helper; outputs, inputs and effects come from the helper's declaration.
    Call = "call", [], [], [Helper], NoType, OpFlags::VARIADIC;
    /// Leave the TB, returning the value to the execution loop.
    ExitTb = "exit_tb", [], [], [Word], NoType, TERM;
    /// Leave the TB through direct-jump slot 0 or 1 (chainable).
    GotoTb = "goto_tb", [], [], [TbSlot], NoType, TERM;
    /// Continue at the TB handle returned by the loop's lookup helper (0: return to the loop).
    GotoPtr = "goto_ptr", [], [Ptr], [], NoType, TERM;
    /// Start of a guest instruction: guest pc and two target words, for precise state restore.
    InsnStart = "insn_start", [], [], [Word, Word, Word], NoType, OpFlags::SIDE_EFFECTS;
    /// Memory barrier.
    Mb = "mb", [], [], [Barrier], NoType, OpFlags::SIDE_EFFECTS;
    /// The temp's value is no longer needed.
    Discard = "discard", [Op], [], [], Both, NONE;
}

impl Opcode {
    /// This opcode's table row.
    pub fn def(self) -> &'static OpDef {
        &OPDEFS[self as usize]
    }

    /// Looks an opcode up by its base name.
    pub fn from_name(name: &str) -> Option<Opcode> {
        Opcode::ALL.iter().copied().find(|o| o.def().name == name)
    }

    /// Whether the op exists for `ty`.
    pub fn has_type(self, ty: crate::Type) -> bool {
        match self.def().types {
            Types::Both => true,
            Types::I64 => ty == crate::Type::I64,
            Types::Fixed(t) => ty == t,
            Types::None => ty == crate::Type::I64,
        }
    }

    /// The types the op exists for, as a list.
    pub fn valid_types(self) -> &'static [crate::Type] {
        use crate::Type::{I32, I64};
        match self.def().types {
            Types::Both => &[I32, I64],
            Types::I64 | Types::None | Types::Fixed(I64) => &[I64],
            Types::Fixed(I32) => &[I32],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_opcode() {
        assert_eq!(OPDEFS.len(), Opcode::ALL.len());
        for (i, op) in Opcode::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
            assert_eq!(Opcode::from_name(op.def().name), Some(*op));
        }
    }

    #[test]
    fn args_fit_in_an_op() {
        for op in Opcode::ALL {
            let d = op.def();
            assert!(
                d.outs.len() + d.ins.len() + d.consts.len() <= crate::op::MAX_OP_ARGS,
                "{}",
                d.name
            );
        }
    }
}
