//! The builder API frontends use to emit IR. The operation type is taken from the output temp (or, for ops
//! without outputs, from the first input); the verifier checks that every other temp agrees.

use rqemu_include::{MemOp, MmuIdx};

use crate::func::Func;
use crate::helper::HelperId;
use crate::op::Op;
use crate::opcodes::{Opcode, INSN_START_WORDS};
use crate::temp::{Label, Temp};
use crate::types::{Cond, Type};

macro_rules! binary_ops {
    ($($(#[$doc:meta])* $name:ident => $opc:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&mut self, d: Temp, a: Temp, b: Temp) {
            self.emit(Opcode::$opc, self.ty(d), &[d], &[a, b], &[]);
        }
    )*};
}

macro_rules! unary_ops {
    ($($(#[$doc:meta])* $name:ident => $opc:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&mut self, d: Temp, a: Temp) {
            self.emit(Opcode::$opc, self.ty(d), &[d], &[a], &[]);
        }
    )*};
}

impl Func {
    /// Appends any op; the typed methods below are shorthands for this.
    pub fn emit(&mut self, opc: Opcode, ty: Type, outs: &[Temp], ins: &[Temp], consts: &[u64]) {
        self.push(Op::new(opc, ty, outs, ins, consts));
    }

    fn ty(&self, t: Temp) -> Type {
        self.temp(t).ty
    }

    binary_ops! {
        /// `d = a + b`
        add => Add;
        /// `d = a - b`
        sub => Sub;
        /// `d = a * b`
        mul => Mul;
        /// High half of the unsigned product.
        muluh => Muluh;
        /// High half of the signed product.
        mulsh => Mulsh;
        /// Signed division.
        divs => Divs;
        /// Unsigned division.
        divu => Divu;
        /// Signed remainder.
        rems => Rems;
        /// Unsigned remainder.
        remu => Remu;
        /// `d = a & b`
        and => And;
        /// `d = a | b`
        or => Or;
        /// `d = a ^ b`
        xor => Xor;
        /// `d = a & !b`
        andc => Andc;
        /// `d = a | !b`
        orc => Orc;
        /// `d = !(a ^ b)`
        eqv => Eqv;
        /// `d = !(a & b)`
        nand => Nand;
        /// `d = !(a | b)`
        nor => Nor;
        /// `d = a << b`
        shl => Shl;
        /// `d = a >> b` (logical)
        shr => Shr;
        /// `d = a >> b` (arithmetic)
        sar => Sar;
        /// Rotate left.
        rotl => Rotl;
        /// Rotate right.
        rotr => Rotr;
        /// Count leading zeros of `a`, `b` if `a == 0`.
        clz => Clz;
        /// Count trailing zeros of `a`, `b` if `a == 0`.
        ctz => Ctz;
    }

    unary_ops! {
        /// `d = a`
        mov => Mov;
        /// `d = -a`
        neg => Neg;
        /// `d = !a`
        not => Not;
        /// Population count.
        ctpop => Ctpop;
        /// Sign-extend 8 bits.
        ext8s => Ext8s;
        /// Zero-extend 8 bits.
        ext8u => Ext8u;
        /// Sign-extend 16 bits.
        ext16s => Ext16s;
        /// Zero-extend 16 bits.
        ext16u => Ext16u;
        /// Sign-extend 32 bits (i64).
        ext32s => Ext32s;
        /// Zero-extend 32 bits (i64).
        ext32u => Ext32u;
        /// Byte-swap the low 16 bits.
        bswap16 => Bswap16;
        /// Byte-swap the low 32 bits.
        bswap32 => Bswap32;
        /// Byte-swap 64 bits.
        bswap64 => Bswap64;
    }

    /// i64 `d` = sign-extended i32 `a`.
    pub fn ext_i32_i64(&mut self, d: Temp, a: Temp) {
        self.emit(Opcode::ExtI32I64, Type::I64, &[d], &[a], &[]);
    }

    /// i64 `d` = zero-extended i32 `a`.
    pub fn extu_i32_i64(&mut self, d: Temp, a: Temp) {
        self.emit(Opcode::ExtuI32I64, Type::I64, &[d], &[a], &[]);
    }

    /// i32 `d` = low half of i64 `a`.
    pub fn extrl_i64_i32(&mut self, d: Temp, a: Temp) {
        self.emit(Opcode::ExtrlI64I32, Type::I32, &[d], &[a], &[]);
    }

    /// i32 `d` = high half of i64 `a`.
    pub fn extrh_i64_i32(&mut self, d: Temp, a: Temp) {
        self.emit(Opcode::ExtrhI64I32, Type::I32, &[d], &[a], &[]);
    }

    /// `d = value`
    pub fn movi(&mut self, d: Temp, value: u64) {
        let ty = self.ty(d);
        self.emit(Opcode::Movi, ty, &[d], &[], &[value & ty.mask()]);
    }

    /// `(lo, hi) = a * b`, unsigned.
    pub fn mulu2(&mut self, lo: Temp, hi: Temp, a: Temp, b: Temp) {
        self.emit(Opcode::Mulu2, self.ty(lo), &[lo, hi], &[a, b], &[]);
    }

    /// `(lo, hi) = a * b`, signed.
    pub fn muls2(&mut self, lo: Temp, hi: Temp, a: Temp, b: Temp) {
        self.emit(Opcode::Muls2, self.ty(lo), &[lo, hi], &[a, b], &[]);
    }

    /// `d = cond(a, b) ? 1 : 0`
    pub fn setcond(&mut self, cond: Cond, d: Temp, a: Temp, b: Temp) {
        self.emit(Opcode::Setcond, self.ty(d), &[d], &[a, b], &[cond as u64]);
    }

    /// `d = cond(a, b) ? -1 : 0`
    pub fn negsetcond(&mut self, cond: Cond, d: Temp, a: Temp, b: Temp) {
        self.emit(Opcode::Negsetcond, self.ty(d), &[d], &[a, b], &[cond as u64]);
    }

    /// `d = cond(c1, c2) ? v1 : v2`
    pub fn movcond(&mut self, cond: Cond, d: Temp, c1: Temp, c2: Temp, v1: Temp, v2: Temp) {
        self.emit(Opcode::Movcond, self.ty(d), &[d], &[c1, c2, v1, v2], &[cond as u64]);
    }

    /// Branch to `label` when `cond(a, b)`.
    pub fn brcond(&mut self, cond: Cond, a: Temp, b: Temp, label: Label) {
        self.emit(Opcode::Brcond, self.ty(a), &[], &[a, b], &[cond as u64, label.0 as u64]);
    }

    /// `d = a` with bits `pos..pos+len` taken from `b`.
    pub fn deposit(&mut self, d: Temp, a: Temp, b: Temp, pos: u32, len: u32) {
        self.emit(Opcode::Deposit, self.ty(d), &[d], &[a, b], &[pos as u64, len as u64]);
    }

    /// `d` = zero-extended field `pos..pos+len` of `a`.
    pub fn extract(&mut self, d: Temp, a: Temp, pos: u32, len: u32) {
        self.emit(Opcode::Extract, self.ty(d), &[d], &[a], &[pos as u64, len as u64]);
    }

    /// `d` = sign-extended field `pos..pos+len` of `a`.
    pub fn sextract(&mut self, d: Temp, a: Temp, pos: u32, len: u32) {
        self.emit(Opcode::Sextract, self.ty(d), &[d], &[a], &[pos as u64, len as u64]);
    }

    /// `d = (hi:lo) >> shift`, low half.
    pub fn extract2(&mut self, d: Temp, lo: Temp, hi: Temp, shift: u32) {
        self.emit(Opcode::Extract2, self.ty(d), &[d], &[lo, hi], &[shift as u64]);
    }

    /// `(d, carry) = a + b`
    pub fn addco(&mut self, d: Temp, carry: Temp, a: Temp, b: Temp) {
        self.emit(Opcode::Addco, self.ty(d), &[d, carry], &[a, b], &[]);
    }

    /// `d = a + b + (cin != 0)`
    pub fn addci(&mut self, d: Temp, a: Temp, b: Temp, cin: Temp) {
        self.emit(Opcode::Addci, self.ty(d), &[d], &[a, b, cin], &[]);
    }

    /// `(d, carry) = a + b + (cin != 0)`
    pub fn addcio(&mut self, d: Temp, carry: Temp, a: Temp, b: Temp, cin: Temp) {
        self.emit(Opcode::Addcio, self.ty(d), &[d, carry], &[a, b, cin], &[]);
    }

    /// `(d, borrow) = a - b`
    pub fn subbo(&mut self, d: Temp, borrow: Temp, a: Temp, b: Temp) {
        self.emit(Opcode::Subbo, self.ty(d), &[d, borrow], &[a, b], &[]);
    }

    /// `d = a - b - (bin != 0)`
    pub fn subbi(&mut self, d: Temp, a: Temp, b: Temp, bin: Temp) {
        self.emit(Opcode::Subbi, self.ty(d), &[d], &[a, b, bin], &[]);
    }

    /// `(d, borrow) = a - b - (bin != 0)`
    pub fn subbio(&mut self, d: Temp, borrow: Temp, a: Temp, b: Temp, bin: Temp) {
        self.emit(Opcode::Subbio, self.ty(d), &[d, borrow], &[a, b, bin], &[]);
    }

    /// Host load `d = *(base + offset)` with `opc` one of the `ld*` opcodes.
    pub fn load(&mut self, opc: Opcode, d: Temp, base: Temp, offset: i32) {
        self.emit(opc, self.ty(d), &[d], &[base], &[offset as i64 as u64]);
    }

    /// Host store `*(base + offset) = v` with `opc` one of the `st*` opcodes.
    pub fn store(&mut self, opc: Opcode, v: Temp, base: Temp, offset: i32) {
        self.emit(opc, self.ty(v), &[], &[v, base], &[offset as i64 as u64]);
    }

    /// Guest load `d = mem[addr]`.
    pub fn qemu_ld(&mut self, d: Temp, addr: Temp, memop: MemOp, mmu: MmuIdx) {
        self.emit(
            Opcode::QemuLd,
            self.ty(d),
            &[d],
            &[addr],
            &[memop.bits() as u64, mmu.index() as u64],
        );
    }

    /// Guest store `mem[addr] = v`.
    pub fn qemu_st(&mut self, v: Temp, addr: Temp, memop: MemOp, mmu: MmuIdx) {
        self.emit(
            Opcode::QemuSt,
            self.ty(v),
            &[],
            &[v, addr],
            &[memop.bits() as u64, mmu.index() as u64],
        );
    }

    /// Places `label` here.
    pub fn set_label(&mut self, label: Label) {
        self.emit(Opcode::SetLabel, Type::I64, &[], &[], &[label.0 as u64]);
    }

    /// Branches to `label`.
    pub fn br(&mut self, label: Label) {
        self.emit(Opcode::Br, Type::I64, &[], &[], &[label.0 as u64]);
    }

    /// Calls `helper` with `args`, storing its result (if any) in `ret`.
    pub fn call(&mut self, helper: HelperId, ret: Option<Temp>, args: &[Temp]) {
        let outs: &[Temp] = match &ret {
            Some(r) => core::slice::from_ref(r),
            None => &[],
        };
        self.emit(Opcode::Call, Type::I64, outs, args, &[helper.0 as u64]);
    }

    /// Leaves the TB with `value`.
    pub fn exit_tb(&mut self, value: u64) {
        self.emit(Opcode::ExitTb, Type::I64, &[], &[], &[value]);
    }

    /// Leaves the TB through direct-jump slot `slot` (0 or 1).
    pub fn goto_tb(&mut self, slot: u32) {
        self.emit(Opcode::GotoTb, Type::I64, &[], &[], &[slot as u64]);
    }

    /// Continues at the TB handle in `ptr` (0: back to the loop).
    pub fn goto_ptr(&mut self, ptr: Temp) {
        self.emit(Opcode::GotoPtr, Type::I64, &[], &[ptr], &[]);
    }

    /// Marks the start of the guest instruction at `pc` with two target words.
    pub fn insn_start(&mut self, words: [u64; INSN_START_WORDS]) {
        self.emit(Opcode::InsnStart, Type::I64, &[], &[], &words);
    }

    /// Memory barrier of kind `bar`.
    pub fn mb(&mut self, bar: u64) {
        self.emit(Opcode::Mb, Type::I64, &[], &[], &[bar]);
    }

    /// Declares `t` dead.
    pub fn discard(&mut self, t: Temp) {
        self.emit(Opcode::Discard, self.ty(t), &[t], &[], &[]);
    }
}
