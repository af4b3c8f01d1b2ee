//! Reference semantics of every computational op, written once.
//!
//! The optimizer folds constants with these functions and the conformance suite checks every backend against
//! them. Values are `u64`; an i32 value is the low 32 bits, zero-extended, and every result is returned that way.
//! Every input has a defined result and nothing here can panic:
//! - `x / 0 = 0`, `x % 0 = x` (signed and unsigned); `MIN / -1 = MIN`, `MIN % -1 = 0`;
//! - shift and rotate counts are taken modulo the width;
//! - `clz`/`ctz` of zero give the second input;
//! - carry and borrow inputs count as 1 when nonzero.

use crate::opcodes::Opcode;
use crate::types::{Cond, Type};

/// Sign-extends an i32 or i64 value to `i64`.
pub fn sext(ty: Type, v: u64) -> i64 {
    match ty {
        Type::I32 => v as u32 as i32 as i64,
        Type::I64 => v as i64,
    }
}

/// Evaluates `cond(a, b)` at type `ty`.
pub fn eval_cond(cond: Cond, ty: Type, a: u64, b: u64) -> bool {
    let (a, b) = (a & ty.mask(), b & ty.mask());
    let (sa, sb) = (sext(ty, a), sext(ty, b));
    match cond {
        Cond::Never => false,
        Cond::Always => true,
        Cond::Eq => a == b,
        Cond::Ne => a != b,
        Cond::Lt => sa < sb,
        Cond::Ge => sa >= sb,
        Cond::Le => sa <= sb,
        Cond::Gt => sa > sb,
        Cond::Ltu => a < b,
        Cond::Geu => a >= b,
        Cond::Leu => a <= b,
        Cond::Gtu => a > b,
        Cond::Tsteq => a & b == 0,
        Cond::Tstne => a & b != 0,
    }
}

fn field_mask(len: u32) -> u64 {
    if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    }
}

fn sign_extend_bits(v: u64, len: u32) -> u64 {
    if len == 0 || len >= 64 {
        return v;
    }
    let shift = 64 - len;
    (((v << shift) as i64) >> shift) as u64
}

/// Whether [`eval`] defines `opc` (pure computational ops: no memory, control flow or calls).
pub fn is_computational(opc: Opcode) -> bool {
    use Opcode::*;
    !matches!(
        opc,
        Ld8u | Ld8s
            | Ld16u
            | Ld16s
            | Ld32u
            | Ld32s
            | Ld
            | St8
            | St16
            | St32
            | St
            | QemuLd
            | QemuSt
            | SetLabel
            | Br
            | Brcond
            | Call
            | ExitTb
            | GotoTb
            | GotoPtr
            | InsnStart
            | Mb
            | Discard
    )
}

/// Computes the outputs of a computational op from its inputs and constants.
///
/// Returns `None` for ops that [`is_computational`] rejects or when an argument is missing. Outputs are
/// masked to their types; unused output slots are zero.
pub fn eval(opc: Opcode, ty: Type, ins: &[u64], consts: &[u64]) -> Option<[u64; 2]> {
    use Opcode::*;
    let bits = ty.bits();
    let m = ty.mask();
    let arg = |i: usize| ins.get(i).map(|v| v & m);
    let k = |i: usize| consts.get(i).copied();
    let one = |v: u64| Some([v & m, 0]);
    let two = |a: u64, b: u64| Some([a & m, b & m]);
    let wide = |v: u128| two(v as u64, (v >> bits) as u64);
    match opc {
        Mov => one(arg(0)?),
        Movi => one(k(0)?),
        Add => one(arg(0)?.wrapping_add(arg(1)?)),
        Sub => one(arg(0)?.wrapping_sub(arg(1)?)),
        Mul => one(arg(0)?.wrapping_mul(arg(1)?)),
        Neg => one(arg(0)?.wrapping_neg()),
        Mulu2 => wide(arg(0)? as u128 * arg(1)? as u128),
        Muls2 => wide((sext(ty, arg(0)?) as i128 * sext(ty, arg(1)?) as i128) as u128),
        Muluh => one(((arg(0)? as u128 * arg(1)? as u128) >> bits) as u64),
        Mulsh => one(((sext(ty, arg(0)?) as i128 * sext(ty, arg(1)?) as i128) >> bits) as u64),
        Divs => {
            let (a, b) = (sext(ty, arg(0)?), sext(ty, arg(1)?));
            // At i32 the MIN / -1 case wraps to i32::MIN once masked; i64 needs the explicit wrap.
            one(if b == 0 { 0 } else { a.wrapping_div(b) as u64 })
        }
        Divu => {
            let (a, b) = (arg(0)?, arg(1)?);
            one(a.checked_div(b).unwrap_or(0))
        }
        Rems => {
            let (a, b) = (sext(ty, arg(0)?), sext(ty, arg(1)?));
            one(if b == 0 { a as u64 } else { a.wrapping_rem(b) as u64 })
        }
        Remu => {
            let (a, b) = (arg(0)?, arg(1)?);
            one(a.checked_rem(b).unwrap_or(a))
        }
        And => one(arg(0)? & arg(1)?),
        Or => one(arg(0)? | arg(1)?),
        Xor => one(arg(0)? ^ arg(1)?),
        Andc => one(arg(0)? & !arg(1)?),
        Orc => one(arg(0)? | !arg(1)?),
        Eqv => one(!(arg(0)? ^ arg(1)?)),
        Nand => one(!(arg(0)? & arg(1)?)),
        Nor => one(!(arg(0)? | arg(1)?)),
        Not => one(!arg(0)?),
        Shl => one(arg(0)? << (arg(1)? as u32 & (bits - 1))),
        Shr => one(arg(0)? >> (arg(1)? as u32 & (bits - 1))),
        Sar => one((sext(ty, arg(0)?) >> (arg(1)? as u32 & (bits - 1))) as u64),
        Rotl | Rotr => {
            let (a, n) = (arg(0)?, arg(1)? as u32 & (bits - 1));
            let n = if opc == Rotr { (bits - n) & (bits - 1) } else { n };
            one(if n == 0 { a } else { (a << n) | (a >> (bits - n)) })
        }
        Clz => {
            let a = arg(0)?;
            one(if a == 0 {
                arg(1)?
            } else {
                (a.leading_zeros() - (64 - bits)) as u64
            })
        }
        Ctz => {
            let a = arg(0)?;
            one(if a == 0 { arg(1)? } else { a.trailing_zeros() as u64 })
        }
        Ctpop => one(arg(0)?.count_ones() as u64),
        Setcond => one(eval_cond(Cond::from_raw(k(0)?)?, ty, arg(0)?, arg(1)?) as u64),
        Negsetcond => one((eval_cond(Cond::from_raw(k(0)?)?, ty, arg(0)?, arg(1)?) as u64).wrapping_neg()),
        Movcond => {
            let c = eval_cond(Cond::from_raw(k(0)?)?, ty, arg(0)?, arg(1)?);
            one(if c { arg(2)? } else { arg(3)? })
        }
        Deposit => {
            let (pos, len) = (k(0)? as u32, k(1)? as u32);
            if pos >= 64 {
                return None;
            }
            let mask = field_mask(len) << pos;
            one((arg(0)? & !mask) | ((arg(1)? << pos) & mask))
        }
        Extract | Sextract => {
            let (pos, len) = (k(0)? as u32, k(1)? as u32);
            if pos >= 64 {
                return None;
            }
            let field = (arg(0)? >> pos) & field_mask(len);
            one(if opc == Sextract {
                sign_extend_bits(field, len)
            } else {
                field
            })
        }
        Extract2 => {
            let (lo, hi, s) = (arg(0)?, arg(1)?, k(0)? as u32);
            one(match s {
                0 => lo,
                s if s >= bits => hi,
                s => (lo >> s) | (hi << (bits - s)),
            })
        }
        Ext8s => one(arg(0)? as u8 as i8 as i64 as u64),
        Ext8u => one(arg(0)? as u8 as u64),
        Ext16s => one(arg(0)? as u16 as i16 as i64 as u64),
        Ext16u => one(arg(0)? as u16 as u64),
        Ext32s => one(arg(0)? as u32 as i32 as i64 as u64),
        Ext32u => one(arg(0)? as u32 as u64),
        ExtI32I64 => Some([*ins.first()? as u32 as i32 as i64 as u64, 0]),
        ExtuI32I64 => Some([ins.first()? & u32::MAX as u64, 0]),
        ExtrlI64I32 => Some([ins.first()? & u32::MAX as u64, 0]),
        ExtrhI64I32 => Some([ins.first()? >> 32, 0]),
        Bswap16 => one((arg(0)? as u16).swap_bytes() as u64),
        Bswap32 => one((arg(0)? as u32).swap_bytes() as u64),
        Bswap64 => one(arg(0)?.swap_bytes()),
        Addco | Addci | Addcio => {
            let cin = if opc == Addco { 0 } else { (arg(2)? != 0) as u128 };
            let full = arg(0)? as u128 + arg(1)? as u128 + cin;
            two(full as u64, (full >> bits) as u64 & 1)
        }
        Subbo | Subbi | Subbio => {
            let bin = if opc == Subbo { 0 } else { (arg(2)? != 0) as u64 };
            let (a, b) = (arg(0)?, arg(1)?);
            let borrow = (a as u128) < b as u128 + bin as u128;
            two(a.wrapping_sub(b).wrapping_sub(bin), borrow as u64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Opcode::*;
    use Type::{I32, I64};

    fn ev(opc: Opcode, ty: Type, ins: &[u64], consts: &[u64]) -> u64 {
        eval(opc, ty, ins, consts).unwrap()[0]
    }

    #[test]
    fn division_edges_are_defined() {
        assert_eq!(ev(Divs, I32, &[0x8000_0000, 0xffff_ffff], &[]), 0x8000_0000);
        assert_eq!(ev(Rems, I32, &[0x8000_0000, 0xffff_ffff], &[]), 0);
        assert_eq!(ev(Divs, I64, &[1 << 63, u64::MAX], &[]), 1 << 63);
        assert_eq!(ev(Divu, I64, &[7, 0], &[]), 0);
        assert_eq!(ev(Remu, I64, &[7, 0], &[]), 7);
        assert_eq!(ev(Rems, I32, &[(-7i32) as u32 as u64, 2], &[]), (-1i32) as u32 as u64);
    }

    #[test]
    fn shifts_wrap_their_count() {
        assert_eq!(ev(Shl, I32, &[1, 33], &[]), 2);
        assert_eq!(ev(Sar, I32, &[0x8000_0000, 31], &[]), 0xffff_ffff);
        assert_eq!(ev(Rotr, I64, &[1, 1], &[]), 1 << 63);
        assert_eq!(ev(Rotl, I32, &[0x8000_0001, 1], &[]), 3);
    }

    #[test]
    fn wide_products_and_carries() {
        assert_eq!(
            eval(Mulu2, I32, &[0xffff_ffff, 0xffff_ffff], &[]),
            Some([1, 0xffff_fffe])
        );
        assert_eq!(eval(Muls2, I64, &[u64::MAX, 2], &[]), Some([u64::MAX - 1, u64::MAX]));
        assert_eq!(eval(Addcio, I64, &[u64::MAX, 0, 1], &[]), Some([0, 1]));
        assert_eq!(eval(Subbio, I32, &[0, 0, 5], &[]), Some([0xffff_ffff, 1]));
        assert_eq!(eval(Addco, I32, &[0x8000_0000, 0x8000_0000], &[]), Some([0, 1]));
    }

    #[test]
    fn bit_fields() {
        assert_eq!(ev(Deposit, I64, &[u64::MAX, 0], &[8, 8]), !0xff00);
        assert_eq!(ev(Sextract, I32, &[0x80], &[4, 4]), 0xffff_fff8);
        assert_eq!(ev(Extract2, I32, &[0x1234_5678, 0x9abc_def0], &[8]), 0xf012_3456);
        assert_eq!(ev(Clz, I32, &[0, 99], &[]), 99);
        assert_eq!(ev(Clz, I32, &[1, 99], &[]), 31);
    }
}
