//! Operands: general-purpose registers with x86's partial-register rules, effective addresses, and guest
//! loads and stores of operands.
//!
//! Values are i64 temps holding the operand zero-extended to its width. Register writes follow x86: a 32-bit
//! write zero-extends into the full register, 8- and 16-bit writes merge, and AH/CH/DH/BH name bits 8..16 of
//! rax/rcx/rdx/rbx.

use iced_x86::{MemorySize, OpKind, Register};
use rqemu_include::MemOp;
use rqemu_tcg::{Func, Temp, Type};

use super::DisasContext;
use crate::cc::Size;
use crate::cpu;
use crate::desc::I386Target;

/// Where an operand lives.
#[derive(Clone, Copy, Debug)]
pub(super) enum Loc {
    /// A general-purpose register (any width).
    Reg(Register),
    /// Guest memory at this linear address.
    Mem(Temp),
}

/// The MemOp of a little-endian access of `size`.
pub(super) fn memop(size: Size) -> MemOp {
    [MemOp::UB, MemOp::LEUW, MemOp::LEUL, MemOp::LEUQ][size as usize]
}

/// A general-purpose register: its number (0..16), width, and whether it is AH, CH, DH or BH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gpr {
    pub n: usize,
    pub size: Size,
    pub high: bool,
}

/// Decodes iced-x86's register numbering without its `instr_info` tables: AX..R15W, EAX..R15D, RAX..R15 are in
/// encoding order; the byte registers are AL, CL, DL, BL, AH, CH, DH, BH, then SPL, BPL, SIL, DIL, R8L..R15L.
pub(super) fn gpr(r: Register) -> Option<Gpr> {
    let v = r as usize;
    let (first, size) = match v {
        1..=20 => (Register::AL as usize, Size::B),
        21..=36 => (Register::AX as usize, Size::W),
        37..=52 => (Register::EAX as usize, Size::L),
        53..=68 => (Register::RAX as usize, Size::Q),
        _ => return None,
    };
    let k = v - first;
    Some(match (size, k) {
        (Size::B, 4..=7) => Gpr {
            n: k - 4,
            size,
            high: true,
        },
        (Size::B, 8..) => Gpr {
            n: k - 4,
            size,
            high: false,
        },
        _ => Gpr {
            n: k,
            size,
            high: false,
        },
    })
}

/// The width of a memory operand the integer unit handles.
pub(super) fn mem_size(m: MemorySize) -> Option<Size> {
    match m {
        MemorySize::UInt8 | MemorySize::Int8 => Some(Size::B),
        MemorySize::UInt16 | MemorySize::Int16 | MemorySize::WordOffset => Some(Size::W),
        MemorySize::UInt32 | MemorySize::Int32 | MemorySize::DwordOffset => Some(Size::L),
        MemorySize::UInt64 | MemorySize::Int64 | MemorySize::QwordOffset => Some(Size::Q),
        _ => None,
    }
}

/// A temp holding `v` zero- or sign-extended from `size`.
pub(super) fn gen_ext(f: &mut Func, size: Size, signed: bool, v: Temp) -> Temp {
    if size == Size::Q {
        return v;
    }
    let t = f.new_ebb_temp(Type::I64);
    match (size, signed) {
        (Size::B, false) => f.ext8u(t, v),
        (Size::B, true) => f.ext8s(t, v),
        (Size::W, false) => f.ext16u(t, v),
        (Size::W, true) => f.ext16s(t, v),
        (_, false) => f.ext32u(t, v),
        (_, true) => f.ext32s(t, v),
    }
    t
}

impl DisasContext<'_> {
    /// The width of operand `i`, if it has one the integer unit handles.
    pub(super) fn op_size(&self, i: u32) -> Option<Size> {
        let insn = &self.insn;
        match insn.op_kind(i) {
            OpKind::Register => gpr(insn.op_register(i)).map(|g| g.size),
            OpKind::Memory => mem_size(insn.memory_size()),
            OpKind::Immediate8 => Some(Size::B),
            OpKind::Immediate16 | OpKind::Immediate8to16 => Some(Size::W),
            OpKind::Immediate32 | OpKind::Immediate8to32 => Some(Size::L),
            OpKind::Immediate64 | OpKind::Immediate8to64 | OpKind::Immediate32to64 => Some(Size::Q),
            _ => None,
        }
    }

    /// A copy of register `r` (any width), zero-extended.
    pub(super) fn read_reg(&mut self, f: &mut Func, r: Register) -> Temp {
        let Some(r) = gpr(r) else {
            return f.constant(Type::I64, 0); // operands_supported() admits only general-purpose registers
        };
        let g = I386Target::reg(r.n);
        let t = f.new_ebb_temp(Type::I64);
        match (r.size, r.high) {
            (Size::B, true) => f.extract(t, g, 8, 8),
            (Size::B, false) => f.ext8u(t, g),
            (Size::W, _) => f.ext16u(t, g),
            (Size::L, _) => f.ext32u(t, g),
            (Size::Q, _) => f.mov(t, g),
        }
        t
    }

    /// Writes `v` to register `r` with x86's partial-register rules.
    pub(super) fn write_reg(&mut self, f: &mut Func, r: Register, v: Temp) {
        let Some(r) = gpr(r) else {
            return;
        };
        if r.high {
            let g = I386Target::reg(r.n);
            f.deposit(g, g, v, 8, 8);
        } else {
            self.write_reg_n(f, r.n, r.size, v);
        }
    }

    /// Writes `v` to the full register number `n` at width `size`.
    pub(super) fn write_reg_n(&mut self, f: &mut Func, n: usize, size: Size, v: Temp) {
        let g = I386Target::reg(n);
        match size {
            Size::B => f.deposit(g, g, v, 0, 8),
            Size::W => f.deposit(g, g, v, 0, 16),
            Size::L => f.ext32u(g, v),
            Size::Q => f.mov(g, v),
        }
    }

    /// The effective address of the memory operand (base + index * scale + displacement, or RIP-relative),
    /// truncated to the address size, without the segment base (lea). `extra` is added to the base register
    /// when it is the stack pointer (pop r/m computes the address after incrementing it).
    pub(super) fn gen_lea_addr(&mut self, f: &mut Func, extra_rsp: u64) -> Temp {
        let insn = self.insn;
        let t = f.new_ebb_temp(Type::I64);
        if insn.is_ip_rel_memory_operand() {
            f.movi(t, insn.ip_rel_memory_address());
            return t;
        }
        let base = insn.memory_base();
        let index = insn.memory_index();
        let mut addr_bytes = self.flags.bitness / 8;
        let disp = insn.memory_displacement64();
        f.movi(t, disp);
        if let Some(base) = gpr(base) {
            addr_bytes = base.size.bytes();
            let mut b = I386Target::reg(base.n);
            if extra_rsp != 0 && base.n == cpu::reg::RSP {
                let adj = f.new_ebb_temp(Type::I64);
                let k = f.constant(Type::I64, extra_rsp);
                f.add(adj, b, k);
                b = adj;
            }
            f.add(t, t, b);
        }
        if let Some(index) = gpr(index) {
            addr_bytes = index.size.bytes();
            let i = I386Target::reg(index.n);
            let scaled = f.new_ebb_temp(Type::I64);
            let shift = f.constant(Type::I64, insn.memory_index_scale().trailing_zeros() as u64);
            f.shl(scaled, i, shift);
            f.add(t, t, scaled);
        }
        match addr_bytes {
            4 => f.ext32u(t, t),
            2 => f.ext16u(t, t),
            _ => {}
        }
        t
    }

    /// The linear address of the memory operand: the effective address plus the segment base where it counts
    /// (see [`DisasContext::add_seg_base`]). iced-x86's `memory_segment` already applies the defaults (DS; SS
    /// for rBP/rSP-based addresses) and any override prefix.
    pub(super) fn gen_ea(&mut self, f: &mut Func, extra_rsp: u64) -> Temp {
        let ea = self.gen_lea_addr(f, extra_rsp);
        let Some(seg_index) = super::seg::sreg(self.insn.memory_segment()) else {
            return ea;
        };
        let len = u64::from(self.insn.memory_size().size().max(1) as u32);
        self.add_seg_base(f, ea, seg_index, len)
    }

    /// The segment register number of the memory operand (iced-x86 applies the defaults and any override;
    /// DS when it names none).
    pub(super) fn mem_seg_index(&self) -> usize {
        super::seg::sreg(self.insn.memory_segment()).unwrap_or(cpu::seg::DS)
    }

    /// `addr` (an offset already wrapped to the address size) plus the base of segment `seg_index` where the
    /// mode uses it, truncated to 32 bits outside 64-bit mode. In 64-bit mode only FS and GS have a base.
    /// Outside it, DS/ES/SS bases are added only when `TbFlags::addseg` says one of them is nonzero (QEMU's
    /// ADDSEG: flat code pays nothing; a segment load ends the TB, so the flag is exact); CS uses the TB's
    /// known `cs_base`; FS and GS are always read from the state.
    ///
    /// Outside 64-bit mode, an access of `len` bytes through a segment that `TbFlags::seg_checks` marks (not
    /// a flat 4 GiB segment) is checked first by the `seg_check` helper: its limit (expand-up or down) and
    /// presence, #GP(0) or #SS(0). Read/write rights of ordinary accesses are not checked.
    pub(super) fn add_seg_base(&mut self, f: &mut Func, addr: Temp, seg_index: usize, len: u64) -> Temp {
        let code64 = self.flags.code64();
        if !code64 && self.flags.seg_checks & (1 << seg_index) != 0 {
            let s = f.constant(Type::I32, seg_index as u64);
            let n = f.constant(Type::I32, len);
            f.call(self.target.helpers.seg.seg_check, None, &[s, addr, n]);
        }
        let base = match seg_index {
            cpu::seg::FS | cpu::seg::GS => None,
            cpu::seg::CS if !code64 => {
                if self.flags.cs_base == 0 {
                    return addr;
                }
                Some(self.flags.cs_base)
            }
            _ if !code64 && self.flags.addseg => None,
            _ => return addr,
        };
        let base = match base {
            Some(b) => f.constant(Type::I64, b),
            None => {
                let t = f.new_ebb_temp(Type::I64);
                f.load(
                    rqemu_tcg::Opcode::Ld,
                    t,
                    Temp::ENV,
                    cpu::seg_base_offset(seg_index) as i32,
                );
                t
            }
        };
        let t = f.new_ebb_temp(Type::I64);
        f.add(t, addr, base);
        if !code64 {
            f.ext32u(t, t);
        }
        t
    }

    /// The location of operand `i` (register or memory; computes the address once).
    pub(super) fn op_loc(&mut self, f: &mut Func, i: u32) -> Loc {
        match self.insn.op_kind(i) {
            OpKind::Register => Loc::Reg(self.insn.op_register(i)),
            _ => Loc::Mem(self.gen_ea(f, 0)),
        }
    }

    /// Loads `loc` at width `size` (registers use their own width).
    pub(super) fn gen_ld(&mut self, f: &mut Func, loc: Loc, size: Size) -> Temp {
        match loc {
            Loc::Reg(r) => self.read_reg(f, r),
            Loc::Mem(addr) => {
                let t = f.new_ebb_temp(Type::I64);
                f.qemu_ld(t, addr, memop(size), self.mem_index());
                t
            }
        }
    }

    /// Stores `v` to `loc` at width `size`.
    pub(super) fn gen_st(&mut self, f: &mut Func, loc: Loc, size: Size, v: Temp) {
        match loc {
            Loc::Reg(r) => self.write_reg(f, r, v),
            Loc::Mem(addr) => f.qemu_st(v, addr, memop(size), self.mem_index()),
        }
    }

    /// The value of operand `i`: a register, memory at width `size`, or an immediate truncated to `size`.
    pub(super) fn load_operand(&mut self, f: &mut Func, i: u32, size: Size) -> Temp {
        match self.insn.op_kind(i) {
            OpKind::Register | OpKind::Memory => {
                let loc = self.op_loc(f, i);
                self.gen_ld(f, loc, size)
            }
            _ => f.constant(Type::I64, size.zext(self.insn.immediate(i))),
        }
    }
}
