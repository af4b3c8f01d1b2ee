//! The computational ops: arithmetic, logic, shifts, comparisons, bit fields, extensions, byte swaps,
//! double-width products and carries, each at i32 and i64 with the Wasm instruction of that width.
//!
//! Where Wasm and the IR disagree the code bridges the gap: division traps in Wasm on a zero divisor and on
//! `MIN / -1`, so `divs`/`divu`/`rems`/`remu` branch around those cases to the IR's defined results
//! (`rems` only guards zero: Wasm defines `MIN % -1 = 0`); Wasm has no 64x64->128 product, so the high half
//! of an i64 product is built from 32-bit limbs. Shift and rotate counts are taken modulo the width by Wasm
//! itself. Outputs are written only after every input was read, because an output may be an input too.

use rqemu_tcg::{CompileError, Cond, Op, Opcode, Temp, Type};
use wasm_encoder::{BlockType, Instruction as I};

use super::locals::{konst, pick, val_type};
use super::FnGen;

/// Mask of the low `len` bits (all bits for 64).
fn field_mask(len: u32) -> u64 {
    if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    }
}

impl FnGen<'_> {
    /// Pushes `cond(a, b)` at type `ty` as an i32 0 or 1.
    pub(super) fn cond(&mut self, cond: Cond, ty: Type, a: Temp, b: Temp) -> Result<(), CompileError> {
        use Cond::*;
        let cmp = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        let ins = match cond {
            Never => {
                self.code.push(I::I32Const(0));
                return Ok(());
            }
            Always => {
                self.code.push(I::I32Const(1));
                return Ok(());
            }
            Eq if self.func.const_value(b) == Some(0) => {
                self.get_as(a, ty)?;
                self.code.push(cmp(I::I32Eqz, I::I64Eqz));
                return Ok(());
            }
            Tsteq | Tstne => {
                self.get_as(a, ty)?;
                self.get_as(b, ty)?;
                self.emit([cmp(I::I32And, I::I64And), cmp(I::I32Eqz, I::I64Eqz)]);
                if cond == Tstne {
                    self.code.push(I::I32Eqz);
                }
                return Ok(());
            }
            Eq => cmp(I::I32Eq, I::I64Eq),
            Ne => cmp(I::I32Ne, I::I64Ne),
            Lt => cmp(I::I32LtS, I::I64LtS),
            Ge => cmp(I::I32GeS, I::I64GeS),
            Le => cmp(I::I32LeS, I::I64LeS),
            Gt => cmp(I::I32GtS, I::I64GtS),
            Ltu => cmp(I::I32LtU, I::I64LtU),
            Geu => cmp(I::I32GeU, I::I64GeU),
            Leu => cmp(I::I32LeU, I::I64LeU),
            Gtu => cmp(I::I32GtU, I::I64GtU),
        };
        self.get_as(a, ty)?;
        self.get_as(b, ty)?;
        self.code.push(ins);
        Ok(())
    }

    /// Pushes input `i` of `op` in the op's type.
    fn input(&mut self, op: &Op, i: usize) -> Result<(), CompileError> {
        self.get_as(op.input(i), op.ty)
    }

    /// `out0 = a <ins> b` for the plain binary ops.
    fn binary(&mut self, op: &Op, ins: I<'static>) -> Result<(), CompileError> {
        self.input(op, 0)?;
        self.input(op, 1)?;
        self.code.push(ins);
        self.set(op.out(0), op.ty)
    }

    /// Pushes the constant `-1` of the op's type.
    fn all_ones(&mut self, ty: Type) {
        self.code.push(konst(ty, u64::MAX));
    }

    /// Copies input `i` into a fresh scratch local (so outputs can be written while it is still needed).
    fn input_to_scratch(&mut self, op: &Op, i: usize) -> Result<u32, CompileError> {
        self.input(op, i)?;
        let l = self.locals.scratch(op.ty);
        self.code.push(I::LocalSet(l));
        Ok(l)
    }

    /// Compiles a computational op.
    pub(super) fn compute(&mut self, op: &Op) -> Result<(), CompileError> {
        use Opcode::*;
        let ty = op.ty;
        let p = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        match op.opc {
            Mov => {
                self.input(op, 0)?;
                self.set(op.out(0), ty)
            }
            Movi => {
                self.code.push(konst(ty, op.konst(0)));
                self.set(op.out(0), ty)
            }
            Add => self.binary(op, p(I::I32Add, I::I64Add)),
            Sub => self.binary(op, p(I::I32Sub, I::I64Sub)),
            Mul => self.binary(op, p(I::I32Mul, I::I64Mul)),
            And => self.binary(op, p(I::I32And, I::I64And)),
            Or => self.binary(op, p(I::I32Or, I::I64Or)),
            Xor => self.binary(op, p(I::I32Xor, I::I64Xor)),
            Shl => self.binary(op, p(I::I32Shl, I::I64Shl)),
            Shr => self.binary(op, p(I::I32ShrU, I::I64ShrU)),
            Sar => self.binary(op, p(I::I32ShrS, I::I64ShrS)),
            Rotl => self.binary(op, p(I::I32Rotl, I::I64Rotl)),
            Rotr => self.binary(op, p(I::I32Rotr, I::I64Rotr)),
            Neg => {
                self.code.push(konst(ty, 0));
                self.input(op, 0)?;
                self.code.push(p(I::I32Sub, I::I64Sub));
                self.set(op.out(0), ty)
            }
            Not => {
                self.input(op, 0)?;
                self.all_ones(ty);
                self.code.push(p(I::I32Xor, I::I64Xor));
                self.set(op.out(0), ty)
            }
            Andc | Orc => {
                self.input(op, 0)?;
                self.input(op, 1)?;
                self.all_ones(ty);
                self.code.push(p(I::I32Xor, I::I64Xor));
                self.code.push(if op.opc == Andc {
                    p(I::I32And, I::I64And)
                } else {
                    p(I::I32Or, I::I64Or)
                });
                self.set(op.out(0), ty)
            }
            Eqv | Nand | Nor => {
                let inner = match op.opc {
                    Eqv => p(I::I32Xor, I::I64Xor),
                    Nand => p(I::I32And, I::I64And),
                    _ => p(I::I32Or, I::I64Or),
                };
                self.input(op, 0)?;
                self.input(op, 1)?;
                self.code.push(inner);
                self.all_ones(ty);
                self.code.push(p(I::I32Xor, I::I64Xor));
                self.set(op.out(0), ty)
            }
            Clz | Ctz => {
                // select(count(a), b, a != 0)
                self.input(op, 0)?;
                self.code.push(match op.opc {
                    Clz => p(I::I32Clz, I::I64Clz),
                    _ => p(I::I32Ctz, I::I64Ctz),
                });
                self.input(op, 1)?;
                self.input(op, 0)?;
                if ty == Type::I64 {
                    self.emit([I::I64Const(0), I::I64Ne]);
                }
                self.code.push(I::Select);
                self.set(op.out(0), ty)
            }
            Ctpop => {
                self.input(op, 0)?;
                self.code.push(p(I::I32Popcnt, I::I64Popcnt));
                self.set(op.out(0), ty)
            }
            Setcond | Negsetcond => {
                if op.opc == Negsetcond {
                    self.code.push(konst(ty, 0));
                }
                self.cond(op.cond(), ty, op.input(0), op.input(1))?;
                if ty == Type::I64 {
                    self.code.push(I::I64ExtendI32U);
                }
                if op.opc == Negsetcond {
                    self.code.push(p(I::I32Sub, I::I64Sub));
                }
                self.set(op.out(0), ty)
            }
            Movcond => {
                // An i32 `select` on `x == 0` / `x != 0` selects on `x` itself (arms swapped for `==`): wasmi
                // 2.0.0 miscompiles an i32 `select` whose condition is `i32.eqz x` or `i32.ne x, 0` (it picks
                // the wrong arm; test `movcond_matches_the_ir_semantics`). Free in optimizing engines.
                let zero = |t: Temp| self.func.const_value(t) == Some(0);
                let tested = match (op.input(0), op.input(1)) {
                    (x, z) | (z, x) if ty == Type::I32 && zero(z) && matches!(op.cond(), Cond::Eq | Cond::Ne) => {
                        Some(x)
                    }
                    _ => None,
                };
                if let Some(x) = tested {
                    let (yes, no) = if op.cond() == Cond::Eq { (3, 2) } else { (2, 3) };
                    self.input(op, yes)?;
                    self.input(op, no)?;
                    self.get_as(x, ty)?;
                } else {
                    self.input(op, 2)?;
                    self.input(op, 3)?;
                    self.cond(op.cond(), ty, op.input(0), op.input(1))?;
                }
                self.code.push(I::Select);
                self.set(op.out(0), ty)
            }
            Divs | Divu | Rems | Remu => self.division(op),
            Mulu2 | Muls2 | Muluh | Mulsh => self.wide_product(op),
            Deposit => {
                let (pos, len) = self.field(op)?;
                let mask = (field_mask(len) << pos) & ty.mask();
                self.input(op, 0)?;
                self.emit([konst(ty, !mask), p(I::I32And, I::I64And)]);
                self.input(op, 1)?;
                self.emit([
                    konst(ty, pos as u64),
                    p(I::I32Shl, I::I64Shl),
                    konst(ty, mask),
                    p(I::I32And, I::I64And),
                    p(I::I32Or, I::I64Or),
                ]);
                self.set(op.out(0), ty)
            }
            Extract => {
                let (pos, len) = self.field(op)?;
                self.input(op, 0)?;
                if pos != 0 {
                    self.emit([konst(ty, pos as u64), p(I::I32ShrU, I::I64ShrU)]);
                }
                if pos + len < ty.bits() {
                    self.emit([konst(ty, field_mask(len)), p(I::I32And, I::I64And)]);
                }
                self.set(op.out(0), ty)
            }
            Sextract => {
                let (pos, len) = self.field(op)?;
                let bits = ty.bits();
                self.input(op, 0)?;
                let up = bits - pos - len;
                if up != 0 {
                    self.emit([konst(ty, up as u64), p(I::I32Shl, I::I64Shl)]);
                }
                if bits - len != 0 {
                    self.emit([konst(ty, (bits - len) as u64), p(I::I32ShrS, I::I64ShrS)]);
                }
                self.set(op.out(0), ty)
            }
            Extract2 => {
                let s = op.konst(0);
                let bits = ty.bits() as u64;
                if s == 0 {
                    self.input(op, 0)?;
                } else if s >= bits {
                    self.input(op, 1)?;
                } else {
                    self.input(op, 0)?;
                    self.emit([konst(ty, s), p(I::I32ShrU, I::I64ShrU)]);
                    self.input(op, 1)?;
                    self.emit([konst(ty, bits - s), p(I::I32Shl, I::I64Shl), p(I::I32Or, I::I64Or)]);
                }
                self.set(op.out(0), ty)
            }
            Ext8s | Ext16s | Ext32s => {
                self.input(op, 0)?;
                self.code.push(match (op.opc, ty) {
                    (Ext8s, Type::I32) => I::I32Extend8S,
                    (Ext16s, Type::I32) => I::I32Extend16S,
                    (Ext8s, _) => I::I64Extend8S,
                    (Ext16s, _) => I::I64Extend16S,
                    (_, Type::I64) => I::I64Extend32S,
                    _ => return Err(self.unsupported(op)),
                });
                self.set(op.out(0), ty)
            }
            Ext8u | Ext16u | Ext32u => {
                let mask = match op.opc {
                    Ext8u => 0xff,
                    Ext16u => 0xffff,
                    _ => 0xffff_ffff,
                };
                self.input(op, 0)?;
                self.emit([konst(ty, mask), p(I::I32And, I::I64And)]);
                self.set(op.out(0), ty)
            }
            ExtI32I64 | ExtuI32I64 => {
                self.get_as(op.input(0), Type::I32)?;
                self.code.push(if op.opc == ExtI32I64 {
                    I::I64ExtendI32S
                } else {
                    I::I64ExtendI32U
                });
                self.set(op.out(0), Type::I64)
            }
            ExtrlI64I32 | ExtrhI64I32 => {
                self.get_as(op.input(0), Type::I64)?;
                if op.opc == ExtrhI64I32 {
                    self.emit([I::I64Const(32), I::I64ShrU]);
                }
                self.code.push(I::I32WrapI64);
                self.set(op.out(0), Type::I32)
            }
            Bswap16 => {
                self.input(op, 0)?;
                self.bswap16(ty);
                self.set(op.out(0), ty)
            }
            Bswap32 => {
                self.input(op, 0)?;
                if ty == Type::I64 {
                    self.code.push(I::I32WrapI64);
                }
                self.bswap32();
                if ty == Type::I64 {
                    self.code.push(I::I64ExtendI32U);
                }
                self.set(op.out(0), ty)
            }
            Bswap64 => {
                self.get_as(op.input(0), Type::I64)?;
                self.bswap64();
                self.set(op.out(0), Type::I64)
            }
            Addco | Addci | Addcio | Subbo | Subbi | Subbio => self.carry(op),
            _ => Err(self.unsupported(op)),
        }
    }

    /// The `pos, len` constants of a bit-field op, checked against the op's width.
    fn field(&self, op: &Op) -> Result<(u32, u32), CompileError> {
        let (pos, len) = (op.konst(0), op.konst(1));
        let bits = op.ty.bits() as u64;
        if pos >= bits || len == 0 || len > bits - pos {
            return Err(self.invalid(format!("bit field pos={pos} len={len} does not fit {}", op.ty)));
        }
        Ok((pos as u32, len as u32))
    }

    /// Swaps the bytes of the low 16 bits of the value on the stack; the result is zero-extended.
    pub(super) fn bswap16(&mut self, ty: Type) {
        let p = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        let s = self.locals.scratch(ty);
        self.emit([
            I::LocalTee(s),
            konst(ty, 8),
            p(I::I32ShrU, I::I64ShrU),
            konst(ty, 0xff),
            p(I::I32And, I::I64And),
            I::LocalGet(s),
            konst(ty, 0xff),
            p(I::I32And, I::I64And),
            konst(ty, 8),
            p(I::I32Shl, I::I64Shl),
            p(I::I32Or, I::I64Or),
        ]);
    }

    /// Reverses the bytes of the i32 on the stack.
    pub(super) fn bswap32(&mut self) {
        // (x & 0x00ff00ff) rotr 8 puts bytes 0 and 2 in place, (x rotl 8) & 0x00ff00ff bytes 1 and 3.
        let s = self.locals.scratch(Type::I32);
        self.emit([
            I::LocalTee(s),
            I::I32Const(0x00ff_00ff),
            I::I32And,
            I::I32Const(8),
            I::I32Rotr,
            I::LocalGet(s),
            I::I32Const(8),
            I::I32Rotl,
            I::I32Const(0x00ff_00ff),
            I::I32And,
            I::I32Or,
        ]);
    }

    /// Reverses the bytes of the i64 on the stack: swap the halves, then the 16-bit, then the 8-bit lanes.
    pub(super) fn bswap64(&mut self) {
        let s = self.locals.scratch(Type::I64);
        const M16: i64 = 0x0000_ffff_0000_ffff;
        const M8: i64 = 0x00ff_00ff_00ff_00ff;
        self.emit([I::I64Const(32), I::I64Rotl, I::LocalTee(s)]);
        for (mask, shift) in [(M16, 16), (M8, 8)] {
            self.emit([
                I::I64Const(mask),
                I::I64And,
                I::I64Const(shift),
                I::I64Shl,
                I::LocalGet(s),
                I::I64Const(shift),
                I::I64ShrU,
                I::I64Const(mask),
                I::I64And,
                I::I64Or,
            ]);
            if shift == 16 {
                self.code.push(I::LocalTee(s));
            }
        }
    }

    /// Division and remainder with the IR's results where Wasm would trap.
    fn division(&mut self, op: &Op) -> Result<(), CompileError> {
        use Opcode::*;
        let ty = op.ty;
        let p = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        let result = BlockType::Result(val_type(ty));
        let a = self.input_to_scratch(op, 0)?;
        let b = self.input_to_scratch(op, 1)?;
        // if b == 0 { x / 0 = 0, x % 0 = x } else { ... }
        self.emit([I::LocalGet(b), p(I::I32Eqz, I::I64Eqz), I::If(result)]);
        match op.opc {
            Divs | Divu => self.code.push(konst(ty, 0)),
            _ => self.code.push(I::LocalGet(a)),
        }
        self.code.push(I::Else);
        match op.opc {
            Divs => {
                // MIN / -1 traps in Wasm; any x / -1 is -x (wrapping), which gives MIN for MIN.
                self.emit([
                    I::LocalGet(b),
                    konst(ty, u64::MAX),
                    p(I::I32Eq, I::I64Eq),
                    I::If(result),
                    konst(ty, 0),
                    I::LocalGet(a),
                    p(I::I32Sub, I::I64Sub),
                    I::Else,
                    I::LocalGet(a),
                    I::LocalGet(b),
                    p(I::I32DivS, I::I64DivS),
                    I::End,
                ]);
            }
            Divu => self.emit([I::LocalGet(a), I::LocalGet(b), p(I::I32DivU, I::I64DivU)]),
            // Wasm defines MIN % -1 = 0, as the IR does.
            Rems => self.emit([I::LocalGet(a), I::LocalGet(b), p(I::I32RemS, I::I64RemS)]),
            _ => self.emit([I::LocalGet(a), I::LocalGet(b), p(I::I32RemU, I::I64RemU)]),
        }
        self.code.push(I::End);
        self.set(op.out(0), ty)
    }

    /// `mulu2`, `muls2`, `muluh`, `mulsh`.
    fn wide_product(&mut self, op: &Op) -> Result<(), CompileError> {
        use Opcode::*;
        let signed = matches!(op.opc, Muls2 | Mulsh);
        let both = matches!(op.opc, Mulu2 | Muls2);
        if op.ty == Type::I32 {
            // The whole product fits an i64.
            let ext = if signed { I::I64ExtendI32S } else { I::I64ExtendI32U };
            self.input(op, 0)?;
            self.code.push(ext.clone());
            self.input(op, 1)?;
            self.emit([ext, I::I64Mul]);
            let prod = self.locals.scratch(Type::I64);
            self.code.push(I::LocalSet(prod));
            if both {
                self.emit([I::LocalGet(prod), I::I32WrapI64]);
            }
            self.emit([I::LocalGet(prod), I::I64Const(32), I::I64ShrU, I::I32WrapI64]);
            let hi_out = if both { op.out(1) } else { op.out(0) };
            self.set(hi_out, Type::I32)?;
            if both {
                self.set(op.out(0), Type::I32)?;
            }
            return Ok(());
        }
        let a = self.input_to_scratch(op, 0)?;
        let b = self.input_to_scratch(op, 1)?;
        if both {
            self.emit([I::LocalGet(a), I::LocalGet(b), I::I64Mul]);
        }
        self.umulh64(a, b);
        if signed {
            // hi_s = hi_u - (a < 0 ? b : 0) - (b < 0 ? a : 0)
            for (x, y) in [(a, b), (b, a)] {
                self.emit([
                    I::LocalGet(x),
                    I::I64Const(63),
                    I::I64ShrS,
                    I::LocalGet(y),
                    I::I64And,
                    I::I64Sub,
                ]);
            }
        }
        let hi_out = if both { op.out(1) } else { op.out(0) };
        self.set(hi_out, Type::I64)?;
        if both {
            self.set(op.out(0), Type::I64)?;
        }
        Ok(())
    }

    /// Pushes the high 64 bits of the unsigned product of the i64 locals `a` and `b`, from 32-bit limbs.
    fn umulh64(&mut self, a: u32, b: u32) {
        // a = ah:al, b = bh:bl; lo*lo, lo*hi, hi*lo, hi*hi are exact u64 products.
        let (lh, hl) = (self.locals.scratch(Type::I64), self.locals.scratch(Type::I64));
        let lo = |l: u32| [I::LocalGet(l), I::I64Const(0xffff_ffff), I::I64And];
        let hi = |l: u32| [I::LocalGet(l), I::I64Const(32), I::I64ShrU];
        self.emit(lo(a));
        self.emit(hi(b));
        self.emit([I::I64Mul, I::LocalSet(lh)]);
        self.emit(hi(a));
        self.emit(lo(b));
        self.emit([I::I64Mul, I::LocalSet(hl)]);
        // hi*hi + (lh >> 32) + (hl >> 32) + (((lo*lo) >> 32) + (lh & m) + (hl & m)) >> 32
        self.emit(hi(a));
        self.emit(hi(b));
        self.emit([I::I64Mul]);
        self.emit([I::LocalGet(lh), I::I64Const(32), I::I64ShrU, I::I64Add]);
        self.emit([I::LocalGet(hl), I::I64Const(32), I::I64ShrU, I::I64Add]);
        self.emit(lo(a));
        self.emit(lo(b));
        self.emit([I::I64Mul, I::I64Const(32), I::I64ShrU]);
        self.emit([I::LocalGet(lh), I::I64Const(0xffff_ffff), I::I64And, I::I64Add]);
        self.emit([I::LocalGet(hl), I::I64Const(0xffff_ffff), I::I64And, I::I64Add]);
        self.emit([I::I64Const(32), I::I64ShrU, I::I64Add]);
    }

    /// `addco`..`subbio`: the result, and the carry or borrow out as 0/1.
    fn carry(&mut self, op: &Op) -> Result<(), CompileError> {
        use Opcode::*;
        let ty = op.ty;
        let p = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        let is_add = matches!(op.opc, Addco | Addci | Addcio);
        let has_cin = !matches!(op.opc, Addco | Subbo);
        let has_cout = matches!(op.opc, Addco | Addcio | Subbo | Subbio);
        let a = self.input_to_scratch(op, 0)?;
        let b = self.input_to_scratch(op, 1)?;
        let cin = if has_cin {
            // A carry input counts as 1 when nonzero.
            self.input(op, 2)?;
            self.emit([p(I::I32Eqz, I::I64Eqz), I::I32Eqz]);
            let c = self.locals.scratch(Type::I32);
            self.code.push(I::LocalSet(c));
            Some(c)
        } else {
            None
        };
        let (arith, widen) = (p(I::I32Add, I::I64Add), ty == Type::I64);
        let arith = if is_add { arith } else { p(I::I32Sub, I::I64Sub) };
        self.emit([I::LocalGet(a), I::LocalGet(b), arith.clone()]);
        if let Some(c) = cin {
            self.code.push(I::LocalGet(c));
            if widen {
                self.code.push(I::I64ExtendI32U);
            }
            self.code.push(arith);
        }
        if !has_cout {
            return self.set(op.out(0), ty);
        }
        let r = self.locals.scratch(ty);
        self.code.push(I::LocalTee(r));
        // add: carry = r < a, or r <= a with a carry in; sub: borrow = a < b, or a <= b with a borrow in.
        let (x, y) = if is_add { (r, a) } else { (a, b) };
        if let Some(c) = cin {
            // select(x <= y, x < y, cin)
            self.emit([I::LocalGet(x), I::LocalGet(y), p(I::I32LeU, I::I64LeU)]);
            self.emit([I::LocalGet(x), I::LocalGet(y), p(I::I32LtU, I::I64LtU)]);
            self.emit([I::LocalGet(c), I::Select]);
        } else {
            self.emit([I::LocalGet(x), I::LocalGet(y), p(I::I32LtU, I::I64LtU)]);
        }
        self.set(op.out(1), Type::I32)?;
        self.set(op.out(0), ty)
    }
}
