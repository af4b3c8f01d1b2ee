//! Control flow: jmp (rel, r/m), call and ret (near), jcc, and the TB exits they end with (see the exit
//! convention in `translate/mod.rs`).

use iced_x86::OpKind;
use rqemu_include::TARGET_PAGE_MASK;
use rqemu_tcg::{Func, Temp, Type};

use super::{DisasContext, DisasJump};
use crate::cc::Size;
use crate::desc::{global, I386Target};

impl DisasContext<'_> {
    /// A branch target truncated to the operand size of the mode.
    fn mask_pc(&self, pc: u64) -> u64 {
        match self.flags.bitness {
            64 => pc,
            32 => pc & 0xffff_ffff,
            _ => pc & 0xffff,
        }
    }

    /// Ends the TB at the direct target `dest` through slot `slot` when `dest` is on the TB's first page,
    /// through the lookup exit otherwise.
    pub(super) fn gen_jmp_tb(&mut self, f: &mut Func, slot: u32, dest: u64) {
        let rip = I386Target::global(global::RIP);
        f.movi(rip, dest);
        let same_page = self.linear(dest) & TARGET_PAGE_MASK == self.linear(self.pc_first) & TARGET_PAGE_MASK;
        if self.flags.tf {
            self.gen_exit_lookup(f);
        } else if same_page {
            f.goto_tb(slot);
        } else {
            self.gen_lookup_exit(f);
        }
        self.is_jmp = DisasJump::NoReturn;
    }

    /// Ends the TB at the address in `rip` (already written).
    pub(super) fn gen_lookup_exit(&mut self, f: &mut Func) {
        match self.target.helpers.lookup_tb_ptr {
            Some(h) if !self.flags.tf => {
                let p = f.new_ebb_temp(Type::PTR);
                f.call(h, Some(p), &[]);
                f.goto_ptr(p);
            }
            _ => self.gen_exit_lookup(f),
        }
        self.is_jmp = DisasJump::NoReturn;
    }

    /// Ends the TB at the computed target `dest`.
    fn gen_jmp_indirect(&mut self, f: &mut Func, dest: Temp) {
        let rip = I386Target::global(global::RIP);
        f.mov(rip, dest);
        self.gen_lookup_exit(f);
    }

    /// The target of an r/m branch, truncated to its operand size.
    fn branch_target_rm(&mut self, f: &mut Func) -> Temp {
        let size = self.stack_op_size(0);
        let t = self.load_operand(f, 0, size);
        super::operand::gen_ext(f, size, false, t)
    }

    fn is_direct(&self) -> bool {
        matches!(
            self.insn.op_kind(0),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        )
    }

    /// jmp rel | r/m.
    pub(super) fn gen_jmp(&mut self, f: &mut Func) -> bool {
        if self.is_direct() {
            let dest = self.mask_pc(self.insn.near_branch_target());
            self.gen_jmp_tb(f, 0, dest);
        } else if matches!(self.insn.op_kind(0), OpKind::Register | OpKind::Memory) {
            let dest = self.branch_target_rm(f);
            self.gen_jmp_indirect(f, dest);
        } else {
            return false; // far jumps
        }
        true
    }

    /// call rel | r/m: the target is read before the return address is pushed.
    pub(super) fn gen_call(&mut self, f: &mut Func) -> bool {
        let size = self.stack_op_size(0);
        let next = f.constant(Type::I64, size.zext(self.pc_next));
        if self.is_direct() {
            let dest = self.mask_pc(self.insn.near_branch_target());
            self.gen_push_v(f, next, size);
            self.gen_jmp_tb(f, 0, dest);
        } else if matches!(self.insn.op_kind(0), OpKind::Register | OpKind::Memory) {
            let dest = self.branch_target_rm(f);
            self.gen_push_v(f, next, size);
            self.gen_jmp_indirect(f, dest);
        } else {
            return false;
        }
        true
    }

    /// ret and ret imm16 (near).
    pub(super) fn gen_ret(&mut self, f: &mut Func) -> bool {
        let size = if self.flags.bitness == 64 {
            Size::Q
        } else {
            self.stack_op_size(1)
        };
        let extra = if self.insn.op_count() > 0 {
            self.insn.immediate(0) & 0xffff
        } else {
            0
        };
        let dest = self.gen_pop_load(f, size);
        self.gen_pop_update(f, size.bytes() as u64 + extra);
        self.gen_jmp_indirect(f, dest);
        true
    }

    /// jcc rel: taken through slot 0, not taken through slot 1.
    pub(super) fn gen_jcc(&mut self, f: &mut Func) -> bool {
        let cc = self.gen_prepare_cc(f, self.jcc_code());
        let taken = f.new_label();
        f.brcond(cc.cond, cc.a, cc.b, taken);
        let next = self.pc_next;
        self.gen_jmp_tb(f, 1, next);
        f.set_label(taken);
        let dest = self.mask_pc(self.insn.near_branch_target());
        self.gen_jmp_tb(f, 0, dest);
        true
    }
}

impl DisasContext<'_> {
    /// jrcxz/jecxz (no decrement), loop, loope, loopne (decrement rcx at the address size, then branch when it
    /// is nonzero and, for loope/loopne, ZF is set/clear).
    pub(super) fn gen_loop(&mut self, f: &mut Func) -> bool {
        use iced_x86::Mnemonic as M;
        let m = self.insn.mnemonic();
        // The count register is the address size's (a 0x67 prefix selects ECX in 64-bit mode, CX in 32-bit
        // mode), not the operand size's; a 32-bit count write zero-extends into RCX like any 32-bit write.
        use iced_x86::Code as C;
        let size = match self.insn.code() {
            C::Jcxz_rel8_16
            | C::Jcxz_rel8_32
            | C::Loop_rel8_16_CX
            | C::Loop_rel8_32_CX
            | C::Loope_rel8_16_CX
            | C::Loope_rel8_32_CX
            | C::Loopne_rel8_16_CX
            | C::Loopne_rel8_32_CX => Size::W,
            C::Jrcxz_rel8_16
            | C::Jrcxz_rel8_64
            | C::Loop_rel8_16_RCX
            | C::Loop_rel8_64_RCX
            | C::Loope_rel8_16_RCX
            | C::Loope_rel8_64_RCX
            | C::Loopne_rel8_16_RCX
            | C::Loopne_rel8_64_RCX => Size::Q,
            _ => Size::L,
        };
        let rcx_n = crate::cpu::reg::RCX;
        let zero = f.constant(Type::I64, 0);
        let take = f.new_ebb_temp(Type::I64);
        if matches!(m, M::Jrcxz | M::Jecxz | M::Jcxz) {
            let c = self.read_reg_n(f, rcx_n, size);
            f.setcond(rqemu_tcg::Cond::Eq, take, c, zero);
        } else {
            let one = f.constant(Type::I64, 1);
            let c = f.new_ebb_temp(Type::I64);
            f.sub(c, I386Target::reg(rcx_n), one);
            self.write_reg_n(f, rcx_n, size, c);
            let c = self.read_reg_n(f, rcx_n, size);
            f.setcond(rqemu_tcg::Cond::Ne, take, c, zero);
            if m != M::Loop {
                // ZF: condition 4 (e) for loope, 5 (ne) for loopne.
                let cc = self.gen_prepare_cc(f, if m == M::Loope { 4 } else { 5 });
                let z = f.new_ebb_temp(Type::I64);
                f.setcond(cc.cond, z, cc.a, cc.b);
                f.and(take, take, z);
            }
        }
        let taken = f.new_label();
        f.brcond(rqemu_tcg::Cond::Ne, take, zero, taken);
        let next = self.pc_next;
        self.gen_jmp_tb(f, 1, next);
        f.set_label(taken);
        let dest = self.mask_pc(self.insn.near_branch_target());
        self.gen_jmp_tb(f, 0, dest);
        true
    }
}
