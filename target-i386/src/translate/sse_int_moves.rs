//! Moves with MMX or XMM operands that need no helper (`sse_int.rs` dispatches here after the enabling checks):
//! movnti, movntdq/movntps/movntpd/movntq, movntdqa, maskmovdqu/maskmovq, movq2dq/movdq2q, movhps/movlps/
//! movhpd/movlpd/movhlps/movlhps, movss/movsd, and movd/movq with MMX registers.

use iced_x86::{Mnemonic as M, OpKind};
use rqemu_include::MemOp;
use rqemu_tcg::{Func, Opcode, Temp, Type};

use super::sse_int::{mmx, mmx_offset, voff, T0, V};
use super::sse_moves::xmm_offset;
use super::DisasContext;
use crate::cc::Size;
use crate::cpu::reg;

impl DisasContext<'_> {
    /// movnti m32/m64, r: a plain store.
    pub(super) fn gen_movnti(&mut self, f: &mut Func) -> bool {
        if self.insn.op_kind(0) != OpKind::Memory || self.insn.op_kind(1) != OpKind::Register {
            return false;
        }
        let r = self.insn.op_register(1);
        let Some(g) = super::operand::gpr(r) else {
            return false;
        };
        let v = self.read_reg(f, r);
        let addr = self.gen_ea(f, 0);
        f.qemu_st(v, addr, super::operand::memop(g.size), self.mem_index());
        true
    }

    /// movntdq/movntps/movntpd m128, xmm (aligned), movntq m64, mm: plain stores; movntdqa xmm, m128 (aligned):
    /// a plain load.
    pub(super) fn gen_movnt(&mut self, f: &mut Func) -> bool {
        let mmu = self.mem_index();
        match (self.vop(0), self.vop(1)) {
            (Some(V::Mem), Some(V::Xmm(s))) => {
                let addr = self.gen_check_align16(f);
                for half in 0..2 {
                    let t = self.xmm_ld(f, s, half);
                    let a = f.new_ebb_temp(Type::I64);
                    let k = f.constant(Type::I64, 8 * half as u64);
                    f.add(a, addr, k);
                    f.qemu_st(t, a, MemOp::LEUQ, mmu);
                }
            }
            (Some(V::Mem), Some(V::Mmx(s))) => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                f.load(Opcode::Ld, t, Temp::ENV, mmx_offset(s));
                f.qemu_st(t, addr, MemOp::LEUQ, mmu);
            }
            (Some(V::Xmm(d)), Some(V::Mem)) => {
                self.gen_load_t0(f, 16, true);
                for half in 0..2 {
                    let t = f.new_ebb_temp(Type::I64);
                    f.load(Opcode::Ld, t, Temp::ENV, T0 + 8 * half as i32);
                    self.xmm_st(f, d, half, t);
                }
            }
            _ => return false,
        }
        true
    }

    /// maskmovdqu xmm, xmm / maskmovq mm, mm: stores the bytes of operand 0 whose mask byte (operand 1) has
    /// bit 7 set to [rdi] (DS, or the override; edi/di with a smaller address size). Bytes are stored one by
    /// one, so masked-off bytes are never accessed.
    pub(super) fn gen_maskmov(&mut self, f: &mut Func) -> bool {
        let regs: Vec<V> = (0..self.insn.op_count())
            .filter_map(|k| self.vop(k))
            .filter(|v| *v != V::Mem)
            .collect();
        let [d, s] = regs[..] else {
            return false;
        };
        let n = if matches!(d, V::Mmx(_)) { 8 } else { 16 };
        let i = self.insn;
        let asize = (0..i.op_count())
            .find_map(|k| match i.op_kind(k) {
                OpKind::MemorySegDI => Some(Size::W),
                OpKind::MemorySegEDI => Some(Size::L),
                OpKind::MemorySegRDI => Some(Size::Q),
                _ => None,
            })
            .unwrap_or(if self.flags.bitness == 64 { Size::Q } else { Size::L });
        let seg = self.mem_seg_index();
        let rdi = super::operand::gen_ext(f, asize, false, crate::desc::I386Target::reg(reg::RDI));
        let off = f.new_ebb_temp(Type::I64);
        f.mov(off, rdi);
        // The segment check covers the whole masked range (16 bytes, 8 for maskmovq), stored or not.
        let len = i.memory_size().size().max(1) as u64;
        let ea = self.add_seg_base(f, off, seg, len);
        let addr = f.new_temp(Type::I64);
        f.mov(addr, ea);
        let mmu = self.mem_index();
        for i in 0..n {
            let skip = f.new_label();
            let mb = f.new_temp(Type::I64);
            f.load(Opcode::Ld8u, mb, Temp::ENV, voff(s) + i);
            let bit = f.constant(Type::I64, 0x80);
            f.brcond(rqemu_tcg::Cond::Tsteq, mb, bit, skip);
            let b = f.new_ebb_temp(Type::I64);
            f.load(Opcode::Ld8u, b, Temp::ENV, voff(d) + i);
            let a = f.new_ebb_temp(Type::I64);
            let k = f.constant(Type::I64, i as u64);
            f.add(a, addr, k);
            f.qemu_st(b, a, MemOp::UB, mmu);
            f.set_label(skip);
        }
        true
    }

    /// movq2dq xmm, mm (zeroes the high quadword) and movdq2q mm, xmm.
    pub(super) fn gen_movq2dq(&mut self, f: &mut Func) -> bool {
        match (self.vop(0), self.vop(1)) {
            (Some(V::Xmm(d)), Some(V::Mmx(s))) => {
                let t = f.new_ebb_temp(Type::I64);
                f.load(Opcode::Ld, t, Temp::ENV, mmx_offset(s));
                let zero = f.constant(Type::I64, 0);
                self.xmm_st(f, d, 0, t);
                self.xmm_st(f, d, 1, zero);
            }
            (Some(V::Mmx(d)), Some(V::Xmm(s))) => {
                let t = self.xmm_ld(f, s, 0);
                f.store(Opcode::St, t, Temp::ENV, mmx_offset(d));
                self.gen_mmx_written(f, d);
            }
            _ => return false,
        }
        true
    }

    /// movhps/movhpd/movlps/movlpd (xmm <-> m64: one quadword, the other kept), movhlps/movlhps (xmm, xmm).
    pub(super) fn gen_movhl(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let high = matches!(m, M::Movhps | M::Movhpd);
        match (m, self.vop(0), self.vop(1)) {
            (M::Movhlps, Some(V::Xmm(d)), Some(V::Xmm(s))) => {
                let t = self.xmm_ld(f, s, 1);
                self.xmm_st(f, d, 0, t);
            }
            (M::Movlhps, Some(V::Xmm(d)), Some(V::Xmm(s))) => {
                let t = self.xmm_ld(f, s, 0);
                self.xmm_st(f, d, 1, t);
            }
            (M::Movhlps | M::Movlhps, _, _) => return false,
            (_, Some(V::Xmm(d)), Some(V::Mem)) => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                f.qemu_ld(t, addr, MemOp::LEUQ, self.mem_index());
                self.xmm_st(f, d, usize::from(high), t);
            }
            (_, Some(V::Mem), Some(V::Xmm(s))) => {
                let addr = self.gen_ea(f, 0);
                let t = self.xmm_ld(f, s, usize::from(high));
                f.qemu_st(t, addr, MemOp::LEUQ, self.mem_index());
            }
            _ => return false,
        }
        true
    }

    /// movss/movsd (the SSE forms): xmm, xmm merges the low element; xmm, m32/m64 zeroes the rest; m, xmm
    /// stores the low element.
    pub(super) fn gen_movss(&mut self, f: &mut Func) -> bool {
        let (ld, st, mop) = if self.insn.mnemonic() == M::Movss {
            (Opcode::Ld32u, Opcode::St32, MemOp::LEUL)
        } else {
            (Opcode::Ld, Opcode::St, MemOp::LEUQ)
        };
        match (self.vop(0), self.vop(1)) {
            (Some(V::Xmm(d)), Some(V::Xmm(s))) => {
                let t = f.new_ebb_temp(Type::I64);
                f.load(ld, t, Temp::ENV, xmm_offset(s, 0));
                f.store(st, t, Temp::ENV, xmm_offset(d, 0));
            }
            (Some(V::Xmm(d)), Some(V::Mem)) => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                f.qemu_ld(t, addr, mop, self.mem_index());
                let zero = f.constant(Type::I64, 0);
                self.xmm_st(f, d, 0, t);
                self.xmm_st(f, d, 1, zero);
            }
            (Some(V::Mem), Some(V::Xmm(s))) => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                f.load(ld, t, Temp::ENV, xmm_offset(s, 0));
                f.qemu_st(t, addr, mop, self.mem_index());
            }
            _ => return false,
        }
        true
    }

    /// movd/movq with an MMX operand: mm <- r/m32 (zero-extended), r/m64, mm/m64; r/m32, r/m64, mm/m64 <- mm.
    pub(super) fn gen_mmx_movq(&mut self, f: &mut Func) -> bool {
        let size = if self.insn.mnemonic() == M::Movd {
            Size::L
        } else {
            Size::Q
        };
        let mmu = self.mem_index();
        let d = self.insn.op_kind(0);
        let s = self.insn.op_kind(1);
        let (dm, sm) = (
            mmx(self.insn.op_register(0)).filter(|_| d == OpKind::Register),
            mmx(self.insn.op_register(1)).filter(|_| s == OpKind::Register),
        );
        if dm.is_none() && sm.is_none() {
            return false;
        }
        if !self.gen_sse_enabled(f, true) {
            return true;
        }
        self.gen_mmx_pending_check(f);
        self.gen_mmx_enter(f);
        let v = if let Some(sn) = sm {
            let t = f.new_ebb_temp(Type::I64);
            f.load(Opcode::Ld, t, Temp::ENV, mmx_offset(sn));
            t
        } else if s == OpKind::Memory {
            let addr = self.gen_ea(f, 0);
            let t = f.new_ebb_temp(Type::I64);
            f.qemu_ld(t, addr, super::operand::memop(size), mmu);
            t
        } else if s == OpKind::Register && super::operand::gpr(self.insn.op_register(1)).is_some() {
            let r = self.insn.op_register(1);
            self.read_reg(f, r)
        } else {
            return false;
        };
        if let Some(dn) = dm {
            let t = f.new_ebb_temp(Type::I64);
            if size == Size::L {
                f.ext32u(t, v);
            } else {
                f.mov(t, v);
            }
            f.store(Opcode::St, t, Temp::ENV, mmx_offset(dn));
            self.gen_mmx_written(f, dn);
        } else if d == OpKind::Memory {
            let addr = self.gen_ea(f, 0);
            f.qemu_st(v, addr, super::operand::memop(size), mmu);
        } else if d == OpKind::Register && super::operand::gpr(self.insn.op_register(0)).is_some() {
            let r = self.insn.op_register(0);
            self.write_reg(f, r, v);
        } else {
            return false;
        }
        true
    }
}
