//! The bytecode: what [`crate::compile`] produces and [`crate::interp`] runs.
//!
//! One [`Insn`] per executed IR op, specialised by opcode, by type where i32 and i64 differ, and by condition,
//! so the interpreter never branches on a type or a condition code at run time. Operands are frame [`Slot`]s;
//! branch targets are instruction indexes. Data too large for an instruction (helper calls, `exit_tb` values)
//! lives in side tables of the TB. Nothing here checks anything: the compiler establishes the invariants the
//! interpreter relies on (see [`crate::interp`]).

use core::fmt;

use rqemu_include::MmuIdx;
use rqemu_tcg::HelperFn;

/// A frame slot, stored as its byte offset in the frame so the interpreter indexes without scaling
/// (on wasm32 that saves a shift per operand).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u16);

impl Slot {
    /// Slot 0, which holds `env`.
    pub(crate) const ENV: Slot = Slot(0);

    /// Number of slots a frame can have.
    pub(crate) const LIMIT: usize = (u16::MAX as usize + 1) / 8;

    /// Slot `index`, or `None` past [`Slot::LIMIT`].
    pub(crate) fn new(index: usize) -> Option<Slot> {
        (index < Self::LIMIT).then(|| Slot((index * 8) as u16))
    }

    /// Byte offset in the frame.
    #[inline(always)]
    pub(crate) fn byte_offset(self) -> usize {
        self.0 as usize
    }

    /// Index in the frame.
    pub(crate) fn index(self) -> usize {
        self.0 as usize / 8
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.index())
    }
}

/// A condition reduced to the forms the bytecode has: operands of `ge`/`gt` are swapped into `le`/`lt`, and
/// unsigned and equality tests need no type because i32 values are zero-extended in their slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cc {
    Never,
    Always,
    Eq,
    Ne,
    Ltu,
    Leu,
    Lt32,
    Le32,
    Lt64,
    Le64,
    Tsteq,
    Tstne,
}

/// Declares [`Insn`] and the slot visitor that [`crate::tb::TciTb`] validates the bytecode with, from one
/// list of variants.
macro_rules! define_insns {
    ($( $(#[$doc:meta])* $variant:ident { $($field:ident: $ty:ty),* $(,)? }, )*) => {
        /// One bytecode instruction. Field names: `d` (and `d2`) outputs, `a`, `b`, `c`, `e` inputs, `off` a
        /// host-memory offset, `target` an instruction index, `insn` the guest instruction a fault is reported at.
        #[derive(Clone, Copy, Debug)]
        pub(crate) enum Insn {
            $( $(#[$doc])* $variant { $($field: $ty),* }, )*
        }

        impl Insn {
            /// Calls `f` with every slot the instruction reads or writes.
            pub(crate) fn for_each_slot(&self, f: &mut impl FnMut(Slot)) {
                match self {
                    $( Insn::$variant { $($field),* } => { $( Field::visit($field, f); )* } )*
                }
            }
        }
    };
}

define_insns! {
    // Moves.
    Mov { d: Slot, a: Slot },
    Movi { d: Slot, imm: u32 },

    // Arithmetic; a `32` suffix masks or sign-handles at 32 bits, no suffix serves both types.
    Add32 { d: Slot, a: Slot, b: Slot },
    Add64 { d: Slot, a: Slot, b: Slot },
    Sub32 { d: Slot, a: Slot, b: Slot },
    Sub64 { d: Slot, a: Slot, b: Slot },
    Mul32 { d: Slot, a: Slot, b: Slot },
    Mul64 { d: Slot, a: Slot, b: Slot },
    Neg32 { d: Slot, a: Slot },
    Neg64 { d: Slot, a: Slot },
    Mulu2_32 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Mulu2_64 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Muls2_32 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Muls2_64 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Muluh32 { d: Slot, a: Slot, b: Slot },
    Muluh64 { d: Slot, a: Slot, b: Slot },
    Mulsh32 { d: Slot, a: Slot, b: Slot },
    Mulsh64 { d: Slot, a: Slot, b: Slot },
    Divs32 { d: Slot, a: Slot, b: Slot },
    Divs64 { d: Slot, a: Slot, b: Slot },
    Divu { d: Slot, a: Slot, b: Slot },
    Rems32 { d: Slot, a: Slot, b: Slot },
    Rems64 { d: Slot, a: Slot, b: Slot },
    Remu { d: Slot, a: Slot, b: Slot },

    // Logic.
    And { d: Slot, a: Slot, b: Slot },
    Or { d: Slot, a: Slot, b: Slot },
    Xor { d: Slot, a: Slot, b: Slot },
    Andc { d: Slot, a: Slot, b: Slot },
    Orc32 { d: Slot, a: Slot, b: Slot },
    Orc64 { d: Slot, a: Slot, b: Slot },
    Eqv32 { d: Slot, a: Slot, b: Slot },
    Eqv64 { d: Slot, a: Slot, b: Slot },
    Nand32 { d: Slot, a: Slot, b: Slot },
    Nand64 { d: Slot, a: Slot, b: Slot },
    Nor32 { d: Slot, a: Slot, b: Slot },
    Nor64 { d: Slot, a: Slot, b: Slot },
    Not32 { d: Slot, a: Slot },
    Not64 { d: Slot, a: Slot },

    // Shifts and bit counts.
    Shl32 { d: Slot, a: Slot, b: Slot },
    Shl64 { d: Slot, a: Slot, b: Slot },
    Shr32 { d: Slot, a: Slot, b: Slot },
    Shr64 { d: Slot, a: Slot, b: Slot },
    Sar32 { d: Slot, a: Slot, b: Slot },
    Sar64 { d: Slot, a: Slot, b: Slot },
    Rotl32 { d: Slot, a: Slot, b: Slot },
    Rotl64 { d: Slot, a: Slot, b: Slot },
    Rotr32 { d: Slot, a: Slot, b: Slot },
    Rotr64 { d: Slot, a: Slot, b: Slot },
    Clz32 { d: Slot, a: Slot, b: Slot },
    Clz64 { d: Slot, a: Slot, b: Slot },
    Ctz { d: Slot, a: Slot, b: Slot },
    Ctpop { d: Slot, a: Slot },

    // Conditions, one instruction per canonical condition (see [`Cc`]).
    SetEq { d: Slot, a: Slot, b: Slot },
    SetNe { d: Slot, a: Slot, b: Slot },
    SetLtu { d: Slot, a: Slot, b: Slot },
    SetLeu { d: Slot, a: Slot, b: Slot },
    SetLt32 { d: Slot, a: Slot, b: Slot },
    SetLe32 { d: Slot, a: Slot, b: Slot },
    SetLt64 { d: Slot, a: Slot, b: Slot },
    SetLe64 { d: Slot, a: Slot, b: Slot },
    SetTsteq { d: Slot, a: Slot, b: Slot },
    SetTstne { d: Slot, a: Slot, b: Slot },
    // `negsetcond` is rare enough to test its condition at run time.
    NegSetcond32 { d: Slot, a: Slot, b: Slot, cc: Cc },
    NegSetcond64 { d: Slot, a: Slot, b: Slot, cc: Cc },
    // `movcond d, a, b, c, e`: `d = cc(a, b) ? c : e`.
    MovEq { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovNe { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovLtu { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovLeu { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovLt32 { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovLe32 { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovLt64 { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovLe64 { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovTsteq { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },
    MovTstne { d: Slot, a: Slot, b: Slot, c: Slot, e: Slot },

    // Bit fields. `Extract*` keep the two shifts `(a << shl) >> shr` that isolate the field.
    Deposit { d: Slot, a: Slot, b: Slot, pos: u8, len: u8 },
    Extract { d: Slot, a: Slot, shl: u8, shr: u8 },
    Sextract32 { d: Slot, a: Slot, shl: u8, shr: u8 },
    Sextract64 { d: Slot, a: Slot, shl: u8, shr: u8 },
    /// `shift` is strictly between 0 and the width (the ends compile to moves).
    Extract2_32 { d: Slot, a: Slot, b: Slot, shift: u8 },
    Extract2_64 { d: Slot, a: Slot, b: Slot, shift: u8 },

    // Extensions and byte swaps.
    Ext8s32 { d: Slot, a: Slot },
    Ext8s64 { d: Slot, a: Slot },
    Ext8u { d: Slot, a: Slot },
    Ext16s32 { d: Slot, a: Slot },
    Ext16s64 { d: Slot, a: Slot },
    Ext16u { d: Slot, a: Slot },
    Ext32s { d: Slot, a: Slot },
    Ext32u { d: Slot, a: Slot },
    High32 { d: Slot, a: Slot },
    Bswap16 { d: Slot, a: Slot },
    Bswap32 { d: Slot, a: Slot },
    Bswap64 { d: Slot, a: Slot },

    // Carries and borrows: `d2` is the carry/borrow out, `c` the carry/borrow in.
    Addco32 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Addco64 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Addci32 { d: Slot, a: Slot, b: Slot, c: Slot },
    Addci64 { d: Slot, a: Slot, b: Slot, c: Slot },
    Addcio32 { d: Slot, d2: Slot, a: Slot, b: Slot, c: Slot },
    Addcio64 { d: Slot, d2: Slot, a: Slot, b: Slot, c: Slot },
    Subbo32 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Subbo64 { d: Slot, d2: Slot, a: Slot, b: Slot },
    Subbi32 { d: Slot, a: Slot, b: Slot, c: Slot },
    Subbi64 { d: Slot, a: Slot, b: Slot, c: Slot },
    Subbio32 { d: Slot, d2: Slot, a: Slot, b: Slot, c: Slot },
    Subbio64 { d: Slot, d2: Slot, a: Slot, b: Slot, c: Slot },

    // Host memory at `a + off` (`a` holds a host pointer). `Ld32u` also serves `ld_i32`, `St32` `st_i32`.
    Ld8u { d: Slot, a: Slot, off: i32 },
    Ld8s32 { d: Slot, a: Slot, off: i32 },
    Ld8s64 { d: Slot, a: Slot, off: i32 },
    Ld16u { d: Slot, a: Slot, off: i32 },
    Ld16s32 { d: Slot, a: Slot, off: i32 },
    Ld16s64 { d: Slot, a: Slot, off: i32 },
    Ld32u { d: Slot, a: Slot, off: i32 },
    Ld32s { d: Slot, a: Slot, off: i32 },
    Ld64 { d: Slot, a: Slot, off: i32 },
    St8 { v: Slot, a: Slot, off: i32 },
    St16 { v: Slot, a: Slot, off: i32 },
    St32 { v: Slot, a: Slot, off: i32 },
    St64 { v: Slot, a: Slot, off: i32 },

    // The same at `env + off`, which is most of them once globals are lowered: no base slot to read.
    LdEnv8u { d: Slot, off: i32 },
    LdEnv8s32 { d: Slot, off: i32 },
    LdEnv8s64 { d: Slot, off: i32 },
    LdEnv16u { d: Slot, off: i32 },
    LdEnv16s32 { d: Slot, off: i32 },
    LdEnv16s64 { d: Slot, off: i32 },
    LdEnv32u { d: Slot, off: i32 },
    LdEnv32s { d: Slot, off: i32 },
    LdEnv64 { d: Slot, off: i32 },
    StEnv8 { v: Slot, off: i32 },
    StEnv16 { v: Slot, off: i32 },
    StEnv32 { v: Slot, off: i32 },
    StEnv64 { v: Slot, off: i32 },

    // Guest memory through `ExecContext::mem`; `memop` is the raw `MemOp` (at most 8 bits).
    QemuLd32 { d: Slot, a: Slot, memop: u8, mmu: MmuIdx, insn: u32 },
    QemuLd64 { d: Slot, a: Slot, memop: u8, mmu: MmuIdx, insn: u32 },
    QemuSt { v: Slot, a: Slot, memop: u8, mmu: MmuIdx, insn: u32 },

    // Helper calls: `site` indexes [`crate::tb::TciTb::calls`].
    Call { site: u32 },

    // Branches.
    Br { target: u32 },
    BrEq { a: Slot, b: Slot, target: u32 },
    BrNe { a: Slot, b: Slot, target: u32 },
    BrLtu { a: Slot, b: Slot, target: u32 },
    BrLeu { a: Slot, b: Slot, target: u32 },
    BrLt32 { a: Slot, b: Slot, target: u32 },
    BrLe32 { a: Slot, b: Slot, target: u32 },
    BrLt64 { a: Slot, b: Slot, target: u32 },
    BrLe64 { a: Slot, b: Slot, target: u32 },
    BrTsteq { a: Slot, b: Slot, target: u32 },
    BrTstne { a: Slot, b: Slot, target: u32 },

    // TB exits: `exit` indexes [`crate::tb::TciTb::exits`].
    ExitTb { exit: u32 },
    GotoTb { slot: u32 },
    GotoPtr { a: Slot },
}

impl Insn {
    /// Whether control never continues with the next instruction.
    pub(crate) fn is_terminator(&self) -> bool {
        matches!(
            self,
            Insn::Br { .. } | Insn::ExitTb { .. } | Insn::GotoTb { .. } | Insn::GotoPtr { .. }
        )
    }

    /// The branch target, for instructions that have one.
    pub(crate) fn target_mut(&mut self) -> Option<&mut u32> {
        match self {
            Insn::Br { target }
            | Insn::BrEq { target, .. }
            | Insn::BrNe { target, .. }
            | Insn::BrLtu { target, .. }
            | Insn::BrLeu { target, .. }
            | Insn::BrLt32 { target, .. }
            | Insn::BrLe32 { target, .. }
            | Insn::BrLt64 { target, .. }
            | Insn::BrLe64 { target, .. }
            | Insn::BrTsteq { target, .. }
            | Insn::BrTstne { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// An instruction field; slots report themselves to [`Insn::for_each_slot`], everything else is silent.
trait Field {
    fn visit(&self, _f: &mut impl FnMut(Slot)) {}
}

impl Field for Slot {
    fn visit(&self, f: &mut impl FnMut(Slot)) {
        f(*self)
    }
}

impl Field for u8 {}
impl Field for u16 {}
impl Field for u32 {}
impl Field for i32 {}
impl Field for MmuIdx {}
impl Field for Cc {}

/// A helper call: everything [`Insn::Call`] needs that does not fit in an instruction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallSite {
    pub func: HelperFn,
    /// Argument slots; unused arguments read a slot holding zero.
    pub args: [Slot; rqemu_tcg::HELPER_MAX_ARGS],
    /// Where the result goes, and the mask of its type.
    pub ret: Option<(Slot, u64)>,
    /// Whether to check the fault word after the call.
    pub may_fault: bool,
    /// The guest instruction a fault is reported at.
    pub insn: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_stay_small() {
        // Twelve bytes with 4-byte alignment: a larger variant would grow every instruction.
        assert_eq!(core::mem::size_of::<Insn>(), 12);
        assert_eq!(core::mem::align_of::<Insn>(), 4);
    }

    #[test]
    fn slots_are_byte_offsets() {
        assert_eq!(Slot::new(3).map(Slot::byte_offset), Some(24));
        assert_eq!(Slot::new(Slot::LIMIT - 1).map(Slot::index), Some(Slot::LIMIT - 1));
        assert!(Slot::new(Slot::LIMIT).is_none());
    }
}
