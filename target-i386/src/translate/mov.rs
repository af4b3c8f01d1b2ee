//! Data movement: mov (every form, imm64 and moffs included), movzx, movsx, movsxd, lea, xchg, movbe,
//! cbw/cwde/cdqe, cwd/cdq/cqo, and the condition consumers that move data: setcc and cmovcc.

use iced_x86::{Mnemonic, OpKind, Register};
use rqemu_tcg::{Func, Type};

use super::operand::{gen_ext, Loc};
use super::DisasContext;
use crate::cc::Size;
use crate::cpu::reg;
use crate::desc::I386Target;

impl DisasContext<'_> {
    /// The x86 condition encoding (0..16) of a jcc/setcc/cmovcc.
    pub(super) fn jcc_code(&self) -> u8 {
        use Mnemonic as M;
        const TABLE: [[Mnemonic; 3]; 16] = [
            [M::Jo, M::Seto, M::Cmovo],
            [M::Jno, M::Setno, M::Cmovno],
            [M::Jb, M::Setb, M::Cmovb],
            [M::Jae, M::Setae, M::Cmovae],
            [M::Je, M::Sete, M::Cmove],
            [M::Jne, M::Setne, M::Cmovne],
            [M::Jbe, M::Setbe, M::Cmovbe],
            [M::Ja, M::Seta, M::Cmova],
            [M::Js, M::Sets, M::Cmovs],
            [M::Jns, M::Setns, M::Cmovns],
            [M::Jp, M::Setp, M::Cmovp],
            [M::Jnp, M::Setnp, M::Cmovnp],
            [M::Jl, M::Setl, M::Cmovl],
            [M::Jge, M::Setge, M::Cmovge],
            [M::Jle, M::Setle, M::Cmovle],
            [M::Jg, M::Setg, M::Cmovg],
        ];
        let m = self.insn.mnemonic();
        TABLE.iter().position(|row| row.contains(&m)).unwrap_or(0) as u8
    }

    /// mov r/m, r | r, r/m | r, imm | r/m, imm | moffs.
    pub(super) fn gen_mov(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let v = self.load_operand(f, 1, size);
        let loc = self.op_loc(f, 0);
        self.gen_st(f, loc, size, v);
        true
    }

    /// movzx, movsx, movsxd.
    pub(super) fn gen_movx(&mut self, f: &mut Func) -> bool {
        let (Some(dsize), Some(ssize)) = (self.op_size(0), self.op_size(1)) else {
            return false;
        };
        let v = self.load_operand(f, 1, ssize);
        let signed = self.insn.mnemonic() != Mnemonic::Movzx;
        let x = gen_ext(f, ssize, signed, v);
        self.gen_st(f, Loc::Reg(self.insn.op_register(0)), dsize, x);
        true
    }

    /// movbe r, m | m, r (16, 32, 64 bits): a load or store with the bytes swapped. The 16-bit load merges
    /// into the register like any 16-bit write; flags are untouched.
    pub(super) fn gen_movbe(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0).filter(|&s| s != Size::B) else {
            return false;
        };
        let v = self.load_operand(f, 1, size);
        let t = f.new_ebb_temp(Type::I64);
        match size {
            Size::W => f.bswap16(t, v),
            Size::L => f.bswap32(t, v),
            _ => f.bswap64(t, v),
        }
        let loc = self.op_loc(f, 0);
        self.gen_st(f, loc, size, t);
        true
    }

    /// lea: the effective address, without segment base, truncated to the operand size.
    pub(super) fn gen_lea(&mut self, f: &mut Func) -> bool {
        if self.insn.op_kind(1) != OpKind::Memory {
            return false;
        }
        let a = self.gen_lea_addr(f, 0);
        self.write_reg(f, self.insn.op_register(0), a);
        true
    }

    /// xchg r/m, r (with memory it is atomic, which one vCPU thread gets for free).
    pub(super) fn gen_xchg(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let l0 = self.op_loc(f, 0);
        let l1 = self.op_loc(f, 1);
        let a = self.gen_ld(f, l0, size);
        let b = self.gen_ld(f, l1, size);
        // Memory first, so that a faulting store leaves the registers alone.
        if let Loc::Mem(_) = l1 {
            self.gen_st(f, l1, size, a);
            self.gen_st(f, l0, size, b);
        } else {
            self.gen_st(f, l0, size, b);
            self.gen_st(f, l1, size, a);
        }
        true
    }

    /// cbw, cwde, cdqe: sign-extend the lower half of the accumulator into all of it.
    pub(super) fn gen_widen_acc(&mut self, f: &mut Func) -> bool {
        let (from, to) = match self.insn.mnemonic() {
            Mnemonic::Cbw => (Size::B, Size::W),
            Mnemonic::Cwde => (Size::W, Size::L),
            _ => (Size::L, Size::Q),
        };
        let v = self.read_reg(f, Register::RAX);
        let x = gen_ext(f, from, true, v);
        self.write_reg_n(f, reg::RAX, to, x);
        true
    }

    /// cwd, cdq, cqo: fill rdx with the sign of the accumulator.
    pub(super) fn gen_sign_to_dx(&mut self, f: &mut Func) -> bool {
        let size = match self.insn.mnemonic() {
            Mnemonic::Cwd => Size::W,
            Mnemonic::Cdq => Size::L,
            _ => Size::Q,
        };
        let v = self.read_reg(f, Register::RAX);
        let x = gen_ext(f, size, true, v);
        let t = f.new_ebb_temp(Type::I64);
        let shift = f.constant(Type::I64, 63);
        f.sar(t, x, shift);
        self.write_reg_n(f, reg::RDX, size, t);
        true
    }

    /// setcc r/m8.
    pub(super) fn gen_setcc(&mut self, f: &mut Func) -> bool {
        let cc = self.gen_prepare_cc(f, self.jcc_code());
        let t = f.new_ebb_temp(Type::I64);
        f.setcond(cc.cond, t, cc.a, cc.b);
        let loc = self.op_loc(f, 0);
        self.gen_st(f, loc, Size::B, t);
        true
    }

    /// cmovcc r, r/m: the source is always read (a memory source may fault even when the condition is false)
    /// and a 32-bit destination is always zero-extended.
    pub(super) fn gen_cmovcc(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let src = self.load_operand(f, 1, size);
        let dst_reg = self.insn.op_register(0);
        let old = self.read_reg(f, dst_reg);
        let cc = self.gen_prepare_cc(f, self.jcc_code());
        let t = f.new_ebb_temp(Type::I64);
        f.movcond(cc.cond, t, cc.a, cc.b, src, old);
        self.write_reg(f, dst_reg, t);
        true
    }

    /// xlat: al = [seg:rbx + al] (address size of the mode).
    pub(super) fn gen_xlat(&mut self, f: &mut Func) -> bool {
        let al = self.read_reg(f, Register::AL);
        let a = f.new_ebb_temp(Type::I64);
        f.add(a, I386Target::reg(reg::RBX), al);
        // The address size (mode and 67 prefix) is the size of the base register iced-x86 names.
        let asize = super::operand::gpr(self.insn.memory_base()).map_or(Size::Q, |g| g.size);
        let a = gen_ext(f, asize, false, a);
        let seg = self.mem_seg_index();
        let addr = self.add_seg_base(f, a, seg, 1);
        let v = f.new_ebb_temp(Type::I64);
        f.qemu_ld(v, addr, rqemu_include::MemOp::UB, self.mem_index());
        self.write_reg(f, Register::AL, v);
        true
    }
}
