//! The stack: push and pop (register, immediate, r/m), enter and leave, with the stack primitives call and ret
//! use.
//!
//! Stack accesses are made at `ss_base + rsp` truncated to the stack address size (64 bits in long mode, 32 or
//! 16 outside it); the stack pointer is written only after the access succeeded, so a faulting push or pop
//! leaves it unchanged.

use iced_x86::OpKind;
use rqemu_include::MemOp;
use rqemu_tcg::{Func, Temp, Type};

use super::operand::{memop, Loc};
use super::DisasContext;
use crate::cc::Size;
use crate::cpu::{eflags, reg, seg};
use crate::desc::I386Target;

impl DisasContext<'_> {
    /// Width of stack addresses.
    fn stack_addr_size(&self) -> Size {
        match (self.flags.bitness, self.flags.ss32) {
            (64, _) => Size::Q,
            (_, true) => Size::L,
            _ => Size::W,
        }
    }

    /// `rsp + delta` truncated to the stack address size.
    fn gen_sp_offset(&mut self, f: &mut Func, delta: u64) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, delta);
        f.add(t, I386Target::reg(reg::RSP), k);
        match self.stack_addr_size() {
            Size::L => f.ext32u(t, t),
            Size::W => f.ext16u(t, t),
            _ => {}
        }
        t
    }

    /// Writes a new stack pointer.
    fn gen_set_sp(&mut self, f: &mut Func, sp: Temp) {
        let size = self.stack_addr_size();
        self.write_reg_n(f, reg::RSP, size, sp);
    }

    /// Pushes `v` (`size` bytes); the stack pointer moves after the store succeeded.
    pub(super) fn gen_push_v(&mut self, f: &mut Func, v: Temp, size: Size) {
        let sp = self.gen_sp_offset(f, (size.bytes() as u64).wrapping_neg());
        let addr = self.add_seg_base(f, sp, seg::SS, size.bytes() as u64);
        f.qemu_st(v, addr, memop(size), self.mem_index());
        self.gen_set_sp(f, sp);
    }

    /// Loads the top of the stack (`size` bytes) without popping it.
    pub(super) fn gen_pop_load(&mut self, f: &mut Func, size: Size) -> Temp {
        let sp = self.gen_sp_offset(f, 0);
        let addr = self.add_seg_base(f, sp, seg::SS, size.bytes() as u64);
        let v = f.new_ebb_temp(Type::I64);
        f.qemu_ld(v, addr, memop(size), self.mem_index());
        v
    }

    /// Moves the stack pointer up by `bytes`.
    pub(super) fn gen_pop_update(&mut self, f: &mut Func, bytes: u64) {
        let sp = self.gen_sp_offset(f, bytes);
        self.gen_set_sp(f, sp);
    }

    /// The size of a push/pop/call/ret operand: the operand's own size, or the mode's default.
    pub(super) fn stack_op_size(&self, i: u32) -> Size {
        if self.insn.op_count() > i {
            if let Some(s) = self.op_size(i) {
                if self.flags.bitness == 64 && s == Size::L {
                    return Size::Q; // push imm32 / push r/m in long mode
                }
                return s;
            }
        }
        if self.flags.bitness == 64 {
            Size::Q
        } else if self.flags.bitness == 32 {
            Size::L
        } else {
            Size::W
        }
    }

    /// push r | imm | r/m.
    pub(super) fn gen_push(&mut self, f: &mut Func) -> bool {
        let size = self.stack_op_size(0);
        let v = match self.insn.op_kind(0) {
            OpKind::Register | OpKind::Memory => self.load_operand(f, 0, size),
            _ => f.constant(Type::I64, size.zext(self.insn.immediate(0))),
        };
        self.gen_push_v(f, v, size);
        true
    }

    /// pop r | r/m. `pop rsp` leaves the popped value in rsp; `pop [rsp + d]` addresses with the incremented
    /// rsp; the stack pointer moves only after the destination is written.
    pub(super) fn gen_pop(&mut self, f: &mut Func) -> bool {
        let size = self.stack_op_size(0);
        let v = self.gen_pop_load(f, size);
        match self.insn.op_kind(0) {
            OpKind::Register => {
                self.gen_pop_update(f, size.bytes() as u64);
                self.write_reg(f, self.insn.op_register(0), v);
            }
            _ => {
                let addr = self.gen_ea(f, size.bytes() as u64);
                self.gen_st(f, Loc::Mem(addr), size, v);
                self.gen_pop_update(f, size.bytes() as u64);
            }
        }
        true
    }

    /// pusha / pushad (16- and 32-bit code only): pushes AX..DI (EAX..EDI) with the stack pointer as it was
    /// before the instruction; all eight stores are made before the stack pointer moves, so a fault leaves it
    /// unchanged.
    pub(super) fn gen_pusha(&mut self, f: &mut Func) -> bool {
        if self.flags.bitness == 64 {
            return false;
        }
        let size = if self.insn.mnemonic() == iced_x86::Mnemonic::Pushad {
            Size::L
        } else {
            Size::W
        };
        let bytes = size.bytes() as u64;
        for n in 0..8 {
            let v = self.read_reg_n(f, n, size);
            let sp = self.gen_sp_offset(f, (bytes * (n as u64 + 1)).wrapping_neg());
            let addr = self.add_seg_base(f, sp, seg::SS, bytes);
            f.qemu_st(v, addr, memop(size), self.mem_index());
        }
        let sp = self.gen_sp_offset(f, (bytes * 8).wrapping_neg());
        self.gen_set_sp(f, sp);
        true
    }

    /// popa / popad (16- and 32-bit code only): pops DI, SI, BP, (skips SP), BX, DX, CX, AX; every load is made
    /// before a register changes.
    pub(super) fn gen_popa(&mut self, f: &mut Func) -> bool {
        if self.flags.bitness == 64 {
            return false;
        }
        let size = if self.insn.mnemonic() == iced_x86::Mnemonic::Popad {
            Size::L
        } else {
            Size::W
        };
        let bytes = size.bytes() as u64;
        let mut values = Vec::new();
        for n in (0..8).rev() {
            let sp = self.gen_sp_offset(f, bytes * (7 - n as u64));
            let addr = self.add_seg_base(f, sp, seg::SS, bytes);
            let v = f.new_temp(Type::I64);
            f.qemu_ld(v, addr, memop(size), self.mem_index());
            values.push((n, v));
        }
        for (n, v) in values {
            if n != reg::RSP {
                self.write_reg_n(f, n, size, v);
            }
        }
        self.gen_pop_update(f, bytes * 8);
        true
    }

    /// pushf: RFLAGS with the lazy flags materialized, RF and VM cleared in the pushed image.
    pub(super) fn gen_pushf(&mut self, f: &mut Func) -> bool {
        let size = match self.insn.mnemonic() {
            iced_x86::Mnemonic::Pushfq => Size::Q,
            iced_x86::Mnemonic::Pushfd => Size::L,
            _ => Size::W,
        };
        self.gen_vm86_iopl_check(f);
        let flags = self.gen_compute_eflags(f);
        let t = f.new_ebb_temp(Type::I64);
        let keep = f.constant(Type::I64, !(eflags::RF | eflags::VM | crate::cc::CC_MASK));
        f.and(t, I386Target::global(crate::desc::global::EFLAGS), keep);
        f.or(t, t, flags);
        self.gen_push_v(f, t, size);
        true
    }

    /// popf: the arithmetic flags go to the lazy state (`cc_op = Eflags`), the rest to `eflags`; VM, VIF, VIP
    /// are kept, RF cleared. At CPL 0 outside vm86 mode (known from the TB flags) every other flag is writable
    /// and the update is inline; otherwise the `sys_flags` helper applies the privilege rules (IOPL only at
    /// CPL 0, IF only when CPL <= IOPL, #GP(0) in vm86 mode with IOPL < 3, before rsp moves). The TB ends
    /// with a lookup exit, since IF, TF or AC (a TB flag) may have changed.
    pub(super) fn gen_popf(&mut self, f: &mut Func) -> bool {
        let size = match self.insn.mnemonic() {
            iced_x86::Mnemonic::Popfq => Size::Q,
            iced_x86::Mnemonic::Popfd => Size::L,
            _ => Size::W,
        };
        let v = self.gen_pop_load(f, size);
        if self.flags.cpl != 0 || self.flags.vm86 {
            self.gen_popf_flags(f, v, size);
            self.gen_pop_update(f, size.bytes() as u64);
            self.gen_eob(f);
            return true;
        }
        self.gen_pop_update(f, size.bytes() as u64);
        let writable = crate::cc::CC_MASK
            | eflags::TF
            | eflags::IF
            | eflags::DF
            | eflags::IOPL
            | eflags::NT
            | eflags::AC
            | eflags::ID;
        let writable = writable & size.mask();
        let g = I386Target::global(crate::desc::global::EFLAGS);
        let (keep, take) = (
            f.constant(Type::I64, !(writable | eflags::RF) | eflags::FIXED),
            f.constant(Type::I64, writable & !crate::cc::CC_MASK),
        );
        let (a, b) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.and(a, g, keep);
        f.and(b, v, take);
        f.or(g, a, b);
        let fixed = f.constant(Type::I64, eflags::FIXED);
        f.or(g, g, fixed);
        let cc = f.constant(Type::I64, crate::cc::CC_MASK);
        let src = I386Target::global(crate::desc::global::CC_SRC);
        f.and(src, v, cc);
        self.set_cc_op(f, crate::cc::CcOp::EFLAGS);
        self.gen_eob(f);
        true
    }

    /// enter imm16, imm8: pushes the frame pointer, copies `level - 1` frame pointers of the enclosing frames
    /// (read at `rbp - k * size`) and pushes the new frame pointer (when `level > 0`, taken modulo 32), then
    /// sets the frame pointer (at the operand size) and lowers the stack pointer by the pushes and `imm16`.
    /// The final stack pointer is probed for writing first (as CPUs do); every access is made before any
    /// register changes, so a fault leaves rsp and rbp alone (the stores before it stay).
    pub(super) fn gen_enter(&mut self, f: &mut Func) -> bool {
        let size = self.enter_op_size();
        let alloc = self.insn.immediate(0) & 0xffff;
        let level = self.insn.immediate(1) & 31;
        let bytes = size.bytes() as u64;
        let mo = memop(size);
        let rbp = I386Target::reg(reg::RBP);
        // The frame pointer (FrameTemp): where the old rbp is pushed.
        let frame = self.gen_sp_offset(f, bytes.wrapping_neg());
        let sp = self.gen_stack_offset_of(f, frame, (level * bytes + alloc).wrapping_neg());
        // CPUs check that the final stack pointer can be written (#PF otherwise, even when nothing is pushed
        // there). The IR has no write probe: read the byte and write it back, first, so a fault leaves memory
        // alone. A not-present page therefore faults as a read (error code without W).
        let probe_addr = self.add_seg_base(f, sp, seg::SS, 1);
        let probe = f.new_ebb_temp(Type::I64);
        f.qemu_ld(probe, probe_addr, MemOp::UB, self.mem_index());
        f.qemu_st(probe, probe_addr, MemOp::UB, self.mem_index());
        let addr = self.add_seg_base(f, frame, seg::SS, bytes);
        f.qemu_st(rbp, addr, mo, self.mem_index());
        if level > 0 {
            for i in 1..level {
                let src = self.gen_stack_addr(f, rbp, (i * bytes).wrapping_neg(), bytes);
                let v = f.new_ebb_temp(Type::I64);
                f.qemu_ld(v, src, mo, self.mem_index());
                let dst = self.gen_stack_addr(f, frame, (i * bytes).wrapping_neg(), bytes);
                f.qemu_st(v, dst, mo, self.mem_index());
            }
            let dst = self.gen_stack_addr(f, frame, (level * bytes).wrapping_neg(), bytes);
            f.qemu_st(frame, dst, mo, self.mem_index());
        }
        self.write_reg_n(f, reg::RBP, size, frame);
        self.gen_set_sp(f, sp);
        true
    }

    /// The operand size of enter (and its pushes): 64 or 16 in 64-bit mode, 32 or 16 outside it (iced-x86
    /// already applied the mode and the 66 prefix).
    fn enter_op_size(&self) -> Size {
        match self.insn.code() {
            iced_x86::Code::Enterq_imm16_imm8 => Size::Q,
            iced_x86::Code::Enterd_imm16_imm8 => Size::L,
            _ => Size::W,
        }
    }

    /// `base + delta` truncated to the stack address size.
    fn gen_stack_offset_of(&mut self, f: &mut Func, base: Temp, delta: u64) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, delta);
        f.add(t, base, k);
        match self.stack_addr_size() {
            Size::L => f.ext32u(t, t),
            Size::W => f.ext16u(t, t),
            _ => {}
        }
        t
    }

    /// The linear address of the `len`-byte stack location `base + delta` (stack address size, SS base).
    fn gen_stack_addr(&mut self, f: &mut Func, base: Temp, delta: u64, len: u64) -> Temp {
        let t = self.gen_stack_offset_of(f, base, delta);
        self.add_seg_base(f, t, seg::SS, len)
    }

    /// leave: rsp = rbp, then pop rbp (with a 66 prefix: 16 bits into bp only).
    pub(super) fn gen_leave(&mut self, f: &mut Func) -> bool {
        let size = match self.insn.code() {
            iced_x86::Code::Leaveq => Size::Q,
            iced_x86::Code::Leaved => Size::L,
            _ => Size::W,
        };
        let size_sp = self.stack_addr_size();
        let rbp = I386Target::reg(reg::RBP);
        let sp = f.new_ebb_temp(Type::I64);
        f.mov(sp, rbp);
        if size_sp != Size::Q {
            let t = super::operand::gen_ext(f, size_sp, false, sp);
            f.mov(sp, t);
        }
        let addr = self.add_seg_base(f, sp, seg::SS, size.bytes() as u64);
        let v = f.new_ebb_temp(Type::I64);
        f.qemu_ld(v, addr, memop(size), self.mem_index());
        let k = f.constant(Type::I64, size.bytes() as u64);
        f.add(sp, sp, k);
        self.gen_set_sp(f, sp);
        self.write_reg_n(f, reg::RBP, size, v);
        true
    }
}
