//! String instructions: movs, stos, lods, cmps, scas at every width, with rep (F3 or F2 on movs/stos/lods),
//! repe (F3) and repne (F2) on cmps/scas.
//!
//! A repeated instruction runs one iteration per execution of its TB and then jumps back to itself (or on to
//! the next instruction when rcx reaches 0 or the repe/repne condition fails), so the state is exact after
//! every iteration: an interrupt or a fault in the middle restarts it where it stopped, as on a CPU. The
//! direction comes from DF at run time.

use iced_x86::{Mnemonic, OpKind};
use rqemu_tcg::{Cond, Func, Temp, Type};

use super::operand::{gen_ext, mem_size, memop};
use super::{DisasContext, DisasJump};
use crate::cc::Size;
use crate::cpu::{reg, seg};
use crate::desc::{global, I386Target};

/// Whether operand kind `k` is one of the implicit string operands.
pub(super) fn is_string_operand(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::MemorySegSI
            | OpKind::MemorySegESI
            | OpKind::MemorySegRSI
            | OpKind::MemorySegDI
            | OpKind::MemorySegEDI
            | OpKind::MemorySegRDI
            | OpKind::MemoryESDI
            | OpKind::MemoryESEDI
            | OpKind::MemoryESRDI
    )
}

impl DisasContext<'_> {
    /// Address size of the string operands.
    fn string_addr_size(&self) -> Size {
        let i = &self.insn;
        for n in 0..i.op_count() {
            match i.op_kind(n) {
                OpKind::MemorySegSI | OpKind::MemorySegDI | OpKind::MemoryESDI => return Size::W,
                OpKind::MemorySegESI | OpKind::MemorySegEDI | OpKind::MemoryESEDI => return Size::L,
                OpKind::MemorySegRSI | OpKind::MemorySegRDI | OpKind::MemoryESRDI => return Size::Q,
                _ => {}
            }
        }
        Size::Q
    }

    /// The linear address of a string operand of `len` bytes: `seg_base + reg` truncated to the address size.
    fn string_addr(&mut self, f: &mut Func, reg_n: usize, seg_index: usize, asize: Size, len: u64) -> Temp {
        let r = gen_ext(f, asize, false, I386Target::reg(reg_n));
        let a = f.new_ebb_temp(Type::I64);
        f.mov(a, r);
        self.add_seg_base(f, a, seg_index, len)
    }

    /// Adds `delta` to register `reg_n` at the address size.
    fn string_advance(&mut self, f: &mut Func, reg_n: usize, delta: Temp, asize: Size) {
        let t = f.new_ebb_temp(Type::I64);
        f.add(t, I386Target::reg(reg_n), delta);
        self.write_reg_n(f, reg_n, asize, t);
    }

    /// movs, stos, lods, cmps, scas with their prefixes; false for anything else.
    pub(super) fn gen_string(&mut self, f: &mut Func) -> bool {
        use Mnemonic as M;
        let m = self.insn.mnemonic();
        let kind = match m {
            M::Movsb | M::Movsw | M::Movsd | M::Movsq => M::Movsb,
            M::Stosb | M::Stosw | M::Stosd | M::Stosq => M::Stosb,
            M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => M::Lodsb,
            M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq => M::Cmpsb,
            M::Scasb | M::Scasw | M::Scasd | M::Scasq => M::Scasb,
            _ => return false,
        };
        let Some(size) = mem_size(self.insn.memory_size()) else {
            return false;
        };
        let asize = self.string_addr_size();
        let src_seg = self.mem_seg_index();
        let repz = self.insn.has_rep_prefix();
        let repnz = self.insn.has_repne_prefix();
        let rep = repz || repnz;
        let compares = matches!(kind, M::Cmpsb | M::Scasb);
        let zero = f.constant(Type::I64, 0);
        let done = if rep {
            let done = f.new_label();
            let c = gen_ext(f, asize, false, I386Target::reg(reg::RCX));
            f.brcond(Cond::Eq, c, zero, done);
            Some(done)
        } else {
            None
        };
        // delta = DF ? -size : size
        let df = f.new_ebb_temp(Type::I64);
        f.extract(df, I386Target::global(global::EFLAGS), 10, 1);
        let delta = f.new_ebb_temp(Type::I64);
        let shift = f.constant(Type::I64, size.bytes().trailing_zeros() as u64 + 1);
        f.shl(delta, df, shift);
        let bytes = f.constant(Type::I64, size.bytes() as u64);
        f.sub(delta, bytes, delta);
        let mmu = self.mem_index();
        let (mut a, mut b) = (zero, zero);
        match kind {
            M::Movsb => {
                let s = self.string_addr(f, reg::RSI, src_seg, asize, size.bytes() as u64);
                let d = self.string_addr(f, reg::RDI, seg::ES, asize, size.bytes() as u64);
                let v = f.new_ebb_temp(Type::I64);
                f.qemu_ld(v, s, memop(size), mmu);
                f.qemu_st(v, d, memop(size), mmu);
                self.string_advance(f, reg::RSI, delta, asize);
                self.string_advance(f, reg::RDI, delta, asize);
            }
            M::Stosb => {
                let d = self.string_addr(f, reg::RDI, seg::ES, asize, size.bytes() as u64);
                let v = self.read_reg_n(f, reg::RAX, size);
                f.qemu_st(v, d, memop(size), mmu);
                self.string_advance(f, reg::RDI, delta, asize);
            }
            M::Lodsb => {
                let s = self.string_addr(f, reg::RSI, src_seg, asize, size.bytes() as u64);
                let v = f.new_ebb_temp(Type::I64);
                f.qemu_ld(v, s, memop(size), mmu);
                self.write_reg_n(f, reg::RAX, size, v);
                self.string_advance(f, reg::RSI, delta, asize);
            }
            M::Cmpsb => {
                let s = self.string_addr(f, reg::RSI, src_seg, asize, size.bytes() as u64);
                let d = self.string_addr(f, reg::RDI, seg::ES, asize, size.bytes() as u64);
                (a, b) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
                f.qemu_ld(a, s, memop(size), mmu);
                f.qemu_ld(b, d, memop(size), mmu);
                self.string_advance(f, reg::RSI, delta, asize);
                self.string_advance(f, reg::RDI, delta, asize);
            }
            _ => {
                let d = self.string_addr(f, reg::RDI, seg::ES, asize, size.bytes() as u64);
                a = self.read_reg_n(f, reg::RAX, size);
                b = f.new_ebb_temp(Type::I64);
                f.qemu_ld(b, d, memop(size), mmu);
                self.string_advance(f, reg::RDI, delta, asize);
            }
        }
        if compares {
            let r = f.new_ebb_temp(Type::I64);
            f.sub(r, a, b);
            self.set_cc_sub(f, size, a, b, r);
        }
        let Some(done) = done else {
            return true; // one iteration; translation goes on
        };
        let one = f.constant(Type::I64, 1);
        let c = f.new_ebb_temp(Type::I64);
        f.sub(c, I386Target::reg(reg::RCX), one);
        self.write_reg_n(f, reg::RCX, asize, c);
        let c = gen_ext(f, asize, false, I386Target::reg(reg::RCX));
        f.brcond(Cond::Eq, c, zero, done);
        if compares {
            // repe stops when the operands differ, repne when they are equal.
            let (x, y) = (gen_ext(f, size, false, a), gen_ext(f, size, false, b));
            let stop = if repz { Cond::Ne } else { Cond::Eq };
            f.brcond(stop, x, y, done);
        }
        let again = self.pc;
        self.gen_jmp_tb(f, 0, again);
        f.set_label(done);
        let next = self.pc_next;
        self.gen_jmp_tb(f, 1, next);
        self.is_jmp = DisasJump::NoReturn;
        true
    }
}
