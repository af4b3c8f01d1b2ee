//! SSE2/SSSE3/SSE4.1/SSE4.2 integer, logic, shuffle and data-movement instructions and their MMX forms.
//!
//! Most operations call the `vec_op` helper ([`crate::vec_helper`]) with the state offsets of their operands:
//! an XMM register, an MMX register (the low 8 bytes of x87 slot `i`, `FpuState::regs[i]`) or, for a memory
//! source, the scratch slot `X86CpuState::xmm_t0` that generated code fills first with guest loads (so faults
//! are precise and happen before anything changes). 128-bit memory operands of the legacy-SSE forms must be
//! 16-byte aligned (#GP(0)), except for pcmpXstrX. The bitwise logic ops and paddq/psubq on XMM registers,
//! and the moves, are inline IR.
//!
//! Enabling: SSE forms raise #UD when CR0.EM is set or CR4.OSFXSR clear, then #NM when CR0.TS is set; MMX forms
//! #UD on CR0.EM and #NM on CR0.TS (checked at translation time on the [`super::TbFlags`]). An MMX instruction
//! makes every x87 tag valid and TOP 0, and writing an MMX register sets its slot's exponent/sign bytes to
//! 0xFFFF; emms empties the tags. The plain moves with MMX or XMM operands are in `sse_int_moves.rs`.

use core::mem::offset_of;

use iced_x86::{Mnemonic as M, OpKind, Register};
use rqemu_include::MemOp;
use rqemu_tcg::{Func, Opcode, Temp, Type};

use super::sse_moves::{xmm, xmm_offset};
use super::DisasContext;
use crate::cc::{CcOp, Size};
use crate::cpu::{excp, reg, FpuState, X86CpuState};
use crate::vec_helper::{op, MMX};

const FPU: usize = offset_of!(X86CpuState, fpu);
const FSW: i32 = (FPU + offset_of!(FpuState, fsw)) as i32;
const FTW: i32 = (FPU + offset_of!(FpuState, ftw)) as i32;
const REGS: i32 = (FPU + offset_of!(FpuState, regs)) as i32;
/// The scratch slot a memory source is loaded into.
pub(super) const T0: i32 = offset_of!(X86CpuState, xmm_t0) as i32;

/// A vector operand.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum V {
    /// XMM register n.
    Xmm(usize),
    /// MMX register n.
    Mmx(usize),
    /// The memory operand.
    Mem,
}

/// MMX register number (0..8) of `r`.
pub(super) fn mmx(r: Register) -> Option<usize> {
    let v = (r as usize).wrapping_sub(Register::MM0 as usize);
    (v < 8).then_some(v)
}

/// Byte offset in the CPU state of MMX register `n` (the low 8 bytes of x87 slot `n`).
pub(super) fn mmx_offset(n: usize) -> i32 {
    REGS + 16 * n as i32
}

/// The state offset of a vector operand (memory: the scratch slot, once loaded).
pub(super) fn voff(v: V) -> i32 {
    match v {
        V::Xmm(n) => xmm_offset(n, 0),
        V::Mmx(n) => mmx_offset(n),
        V::Mem => T0,
    }
}

/// The (kind, lane size) of the two-operand instructions that share one shape in MMX and XMM forms:
/// `dst op= src` (an imm8 third operand, when present, goes to the helper).
fn table(m: M) -> Option<(u64, u64)> {
    Some(match m {
        M::Paddb => (op::ADD, 1),
        M::Paddw => (op::ADD, 2),
        M::Paddd => (op::ADD, 4),
        M::Paddq => (op::ADD, 8),
        M::Psubb => (op::SUB, 1),
        M::Psubw => (op::SUB, 2),
        M::Psubd => (op::SUB, 4),
        M::Psubq => (op::SUB, 8),
        M::Paddsb => (op::ADDS, 1),
        M::Paddsw => (op::ADDS, 2),
        M::Paddusb => (op::ADDUS, 1),
        M::Paddusw => (op::ADDUS, 2),
        M::Psubsb => (op::SUBS, 1),
        M::Psubsw => (op::SUBS, 2),
        M::Psubusb => (op::SUBUS, 1),
        M::Psubusw => (op::SUBUS, 2),
        M::Pmullw => (op::MULLO, 2),
        M::Pmulld => (op::MULLO, 4),
        M::Pmulhw => (op::MULHS, 2),
        M::Pmulhuw => (op::MULHU, 2),
        M::Pmuludq => (op::MULUDQ, 8),
        M::Pmuldq => (op::MULDQ, 8),
        M::Pmaddwd => (op::MADDWD, 4),
        M::Pmaddubsw => (op::MADDUBSW, 2),
        M::Psadbw => (op::SADBW, 8),
        M::Pavgb => (op::AVG, 1),
        M::Pavgw => (op::AVG, 2),
        M::Pminub => (op::MINU, 1),
        M::Pminuw => (op::MINU, 2),
        M::Pminud => (op::MINU, 4),
        M::Pmaxub => (op::MAXU, 1),
        M::Pmaxuw => (op::MAXU, 2),
        M::Pmaxud => (op::MAXU, 4),
        M::Pminsb => (op::MINS, 1),
        M::Pminsw => (op::MINS, 2),
        M::Pminsd => (op::MINS, 4),
        M::Pmaxsb => (op::MAXS, 1),
        M::Pmaxsw => (op::MAXS, 2),
        M::Pmaxsd => (op::MAXS, 4),
        M::Pcmpeqb => (op::CMPEQ, 1),
        M::Pcmpeqw => (op::CMPEQ, 2),
        M::Pcmpeqd => (op::CMPEQ, 4),
        M::Pcmpeqq => (op::CMPEQ, 8),
        M::Pcmpgtb => (op::CMPGT, 1),
        M::Pcmpgtw => (op::CMPGT, 2),
        M::Pcmpgtd => (op::CMPGT, 4),
        M::Pcmpgtq => (op::CMPGT, 8),
        M::Pand | M::Andps | M::Andpd => (op::AND, 8),
        M::Pandn | M::Andnps | M::Andnpd => (op::ANDN, 8),
        M::Por | M::Orps | M::Orpd => (op::OR, 8),
        M::Pxor | M::Xorps | M::Xorpd => (op::XOR, 8),
        M::Psllw => (op::SLL, 2),
        M::Pslld => (op::SLL, 4),
        M::Psllq => (op::SLL, 8),
        M::Psrlw => (op::SRL, 2),
        M::Psrld => (op::SRL, 4),
        M::Psrlq => (op::SRL, 8),
        M::Psraw => (op::SRA, 2),
        M::Psrad => (op::SRA, 4),
        M::Pslldq => (op::SLLDQ, 1),
        M::Psrldq => (op::SRLDQ, 1),
        M::Packsswb => (op::PACKSS, 2),
        M::Packssdw => (op::PACKSS, 4),
        M::Packuswb => (op::PACKUS, 2),
        M::Packusdw => (op::PACKUS, 4),
        M::Punpcklbw => (op::UNPCKL, 1),
        M::Punpcklwd => (op::UNPCKL, 2),
        M::Punpckldq | M::Unpcklps => (op::UNPCKL, 4),
        M::Punpcklqdq | M::Unpcklpd => (op::UNPCKL, 8),
        M::Punpckhbw => (op::UNPCKH, 1),
        M::Punpckhwd => (op::UNPCKH, 2),
        M::Punpckhdq | M::Unpckhps => (op::UNPCKH, 4),
        M::Punpckhqdq | M::Unpckhpd => (op::UNPCKH, 8),
        M::Pshufd => (op::PSHUF, 4),
        M::Pshufw => (op::PSHUF, 2),
        M::Pshuflw => (op::PSHUFLW, 2),
        M::Pshufhw => (op::PSHUFHW, 2),
        M::Shufps => (op::SHUFP, 4),
        M::Shufpd => (op::SHUFP, 8),
        M::Pshufb => (op::PSHUFB, 1),
        M::Phaddw => (op::HADD, 2),
        M::Phaddd => (op::HADD, 4),
        M::Phaddsw => (op::HADDS, 2),
        M::Phsubw => (op::HSUB, 2),
        M::Phsubd => (op::HSUB, 4),
        M::Phsubsw => (op::HSUBS, 2),
        M::Pmulhrsw => (op::MULHRS, 2),
        M::Psignb => (op::SIGN, 1),
        M::Psignw => (op::SIGN, 2),
        M::Psignd => (op::SIGN, 4),
        M::Pabsb => (op::ABS, 1),
        M::Pabsw => (op::ABS, 2),
        M::Pabsd => (op::ABS, 4),
        M::Palignr => (op::PALIGNR, 1),
        M::Pblendw => (op::BLENDI, 2),
        M::Blendps => (op::BLENDI, 4),
        M::Blendpd => (op::BLENDI, 8),
        M::Pblendvb => (op::BLENDV, 1),
        M::Blendvps => (op::BLENDV, 4),
        M::Blendvpd => (op::BLENDV, 8),
        M::Phminposuw => (op::PHMINPOSUW, 2),
        M::Mpsadbw => (op::MPSADBW, 1),
        M::Insertps => (op::INSERTPS, 4),
        _ => return pmovx(m),
    })
}

/// pmovsx/pmovzx: (kind, source lane size); the destination lane size is [`pmovx_to`].
fn pmovx(m: M) -> Option<(u64, u64)> {
    Some(match m {
        M::Pmovsxbw | M::Pmovsxbd | M::Pmovsxbq => (op::PMOVSX, 1),
        M::Pmovsxwd | M::Pmovsxwq => (op::PMOVSX, 2),
        M::Pmovsxdq => (op::PMOVSX, 4),
        M::Pmovzxbw | M::Pmovzxbd | M::Pmovzxbq => (op::PMOVZX, 1),
        M::Pmovzxwd | M::Pmovzxwq => (op::PMOVZX, 2),
        M::Pmovzxdq => (op::PMOVZX, 4),
        _ => return None,
    })
}

fn pmovx_to(m: M) -> u64 {
    match m {
        M::Pmovsxbw | M::Pmovzxbw => 2,
        M::Pmovsxbd | M::Pmovzxbd | M::Pmovsxwd | M::Pmovzxwd => 4,
        _ => 8,
    }
}

/// The size of the memory source of the generic shape (iced-x86 is built without its size tables).
fn mem_bytes(m: M, is_mmx: bool) -> usize {
    match m {
        M::Punpcklbw | M::Punpcklwd | M::Punpckldq if is_mmx => 4,
        _ if is_mmx => 8,
        M::Pmovsxbw | M::Pmovzxbw | M::Pmovsxwd | M::Pmovzxwd | M::Pmovsxdq | M::Pmovzxdq => 8,
        M::Pmovsxbd | M::Pmovzxbd | M::Pmovsxwq | M::Pmovzxwq | M::Insertps => 4,
        M::Pmovsxbq | M::Pmovzxbq => 2,
        _ => 16,
    }
}

/// Instructions this file translates (the dispatcher sends them here).
pub(super) fn handles(m: M) -> bool {
    table(m).is_some()
        || matches!(
            m,
            M::Pmovmskb
                | M::Movmskps
                | M::Movmskpd
                | M::Pinsrb
                | M::Pinsrw
                | M::Pinsrd
                | M::Pinsrq
                | M::Pextrb
                | M::Pextrw
                | M::Pextrd
                | M::Pextrq
                | M::Extractps
                | M::Ptest
                | M::Crc32
                | M::Pcmpestri
                | M::Pcmpestri64
                | M::Pcmpestrm
                | M::Pcmpestrm64
                | M::Pcmpistri
                | M::Pcmpistrm
                | M::Maskmovdqu
                | M::Maskmovq
                | M::Movnti
                | M::Movntdq
                | M::Movntps
                | M::Movntpd
                | M::Movntq
                | M::Movntdqa
                | M::Lfence
                | M::Mfence
                | M::Sfence
                | M::Prefetchnta
                | M::Prefetcht0
                | M::Prefetcht1
                | M::Prefetcht2
                | M::Prefetchw
                | M::Prefetch
                | M::Prefetchwt1
                | M::Movq2dq
                | M::Movdq2q
                | M::Movhps
                | M::Movlps
                | M::Movhpd
                | M::Movlpd
                | M::Movhlps
                | M::Movlhps
                | M::Movss
                | M::Movsd
                | M::Emms
        )
}

impl DisasContext<'_> {
    pub(super) fn vop(&self, i: u32) -> Option<V> {
        match self.insn.op_kind(i) {
            OpKind::Register => {
                let r = self.insn.op_register(i);
                xmm(r).map(V::Xmm).or_else(|| mmx(r).map(V::Mmx))
            }
            OpKind::Memory => Some(V::Mem),
            _ => None,
        }
    }

    /// The enabling checks of an SSE (`mmx` false) or MMX instruction; false when it raised an exception (the
    /// TB ends there).
    pub(super) fn gen_sse_enabled(&mut self, f: &mut Func, mmx: bool) -> bool {
        let fl = self.flags;
        if fl.em || (!mmx && !fl.osfxsr) {
            self.gen_exception(f, excp::UD, 0);
            false
        } else if fl.ts {
            self.gen_exception(f, excp::NM, 0);
            false
        } else {
            true
        }
    }

    /// The x87 part of an MMX instruction's checks, after #UD/#NM: #MF when an unmasked x87 exception is
    /// pending (FSW.ES), as a waiting x87 instruction would raise it.
    pub(super) fn gen_mmx_pending_check(&mut self, f: &mut Func) {
        let t = f.new_ebb_temp(Type::I64);
        f.load(Opcode::Ld16u, t, Temp::ENV, FSW);
        let clear = f.new_label();
        let es = f.constant(Type::I64, 0x80);
        f.brcond(rqemu_tcg::Cond::Tsteq, t, es, clear);
        self.gen_exception(f, excp::MF, 0);
        self.is_jmp = super::DisasJump::Next; // only the pending path ended
        f.set_label(clear);
    }

    /// What any MMX instruction does to the x87 state: all tags valid, TOP = 0.
    pub(super) fn gen_mmx_enter(&mut self, f: &mut Func) {
        let ff = f.constant(Type::I64, 0xff);
        f.store(Opcode::St8, ff, Temp::ENV, FTW);
        let t = f.new_ebb_temp(Type::I64);
        f.load(Opcode::Ld16u, t, Temp::ENV, FSW);
        let keep = f.constant(Type::I64, !0x3800u64 & 0xffff);
        f.and(t, t, keep);
        f.store(Opcode::St16, t, Temp::ENV, FSW);
    }

    /// An MMX register was written: its x87 exponent/sign bytes become 0xFFFF.
    pub(super) fn gen_mmx_written(&mut self, f: &mut Func, n: usize) {
        let ones = f.constant(Type::I64, 0xffff);
        f.store(Opcode::St16, ones, Temp::ENV, mmx_offset(n) + 8);
    }

    /// Loads the memory operand (`bytes` long: 1, 2, 4, 8 or 16) into the scratch slot, zero-filled above.
    pub(super) fn gen_load_t0(&mut self, f: &mut Func, bytes: usize, aligned: bool) {
        let addr = if aligned && bytes == 16 {
            self.gen_check_align16(f)
        } else {
            self.gen_ea(f, 0)
        };
        let mmu = self.mem_index();
        let lo = f.new_ebb_temp(Type::I64);
        let mop = match bytes {
            1 => MemOp::UB,
            2 => MemOp::LEUW,
            4 => MemOp::LEUL,
            _ => MemOp::LEUQ,
        };
        f.qemu_ld(lo, addr, mop, mmu);
        let hi = if bytes == 16 {
            let hi = f.new_ebb_temp(Type::I64);
            let a8 = f.new_ebb_temp(Type::I64);
            let k = f.constant(Type::I64, 8);
            f.add(a8, addr, k);
            f.qemu_ld(hi, a8, MemOp::LEUQ, mmu);
            hi
        } else {
            f.constant(Type::I64, 0)
        };
        f.store(Opcode::St, lo, Temp::ENV, T0);
        f.store(Opcode::St, hi, Temp::ENV, T0 + 8);
    }

    /// Calls `vec_op(word, dst, src, imm, extra)` and returns its result.
    fn call_vec(&mut self, f: &mut Func, word: u64, dst: i32, src: i32, imm: u64, extra: Option<Temp>) -> Temp {
        let args = [
            f.constant(Type::I64, word),
            f.constant(Type::I64, dst as u64),
            f.constant(Type::I64, src as u64),
            f.constant(Type::I64, imm),
            extra.unwrap_or_else(|| f.constant(Type::I64, 0)),
        ];
        let ret = f.new_ebb_temp(Type::I64);
        f.call(self.target().helpers.vec_op, Some(ret), &args);
        ret
    }

    fn imm8(&self) -> Option<u64> {
        let i = &self.insn;
        (0..i.op_count())
            .find(|&n| i.op_kind(n) == OpKind::Immediate8)
            .map(|_| u64::from(i.immediate8()))
    }

    /// The instructions of this file; false: #UD.
    pub(super) fn gen_sse_int(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        match m {
            M::Lfence | M::Mfence | M::Sfence => return true, // one vCPU, program-ordered accesses
            // Hints: no access, no fault, no enabling check.
            M::Prefetchnta
            | M::Prefetcht0
            | M::Prefetcht1
            | M::Prefetcht2
            | M::Prefetchw
            | M::Prefetch
            | M::Prefetchwt1 => return true,
            M::Emms => {
                if self.gen_sse_enabled(f, true) {
                    self.gen_mmx_pending_check(f);
                    // Like every MMX instruction it sets TOP to 0 (measured), then it empties every tag.
                    self.gen_mmx_enter(f);
                    let zero = f.constant(Type::I64, 0);
                    f.store(Opcode::St8, zero, Temp::ENV, FTW);
                }
                return true;
            }
            M::Movnti => return self.gen_movnti(f),
            M::Crc32 => return self.gen_crc32(f),
            _ => {}
        }
        // Every other form has an XMM or MMX operand; an MMX one makes it an MMX instruction.
        let i = self.insn;
        let ops: Vec<Option<V>> = (0..i.op_count()).map(|n| self.vop(n)).collect();
        let is_mmx = ops.iter().any(|v| matches!(v, Some(V::Mmx(_))));
        let has_vec = ops.iter().any(|v| matches!(v, Some(V::Mmx(_) | V::Xmm(_))));
        if !has_vec {
            return false;
        }
        if !self.gen_sse_enabled(f, is_mmx && !matches!(m, M::Movq2dq | M::Movdq2q)) {
            return true;
        }
        if is_mmx {
            self.gen_mmx_pending_check(f);
        }
        let done = match m {
            M::Pmovmskb | M::Movmskps | M::Movmskpd => self.gen_movmsk(f),
            M::Pinsrb | M::Pinsrw | M::Pinsrd | M::Pinsrq => self.gen_pinsr(f),
            M::Pextrb | M::Pextrw | M::Pextrd | M::Pextrq | M::Extractps => self.gen_pextr(f),
            M::Ptest => self.gen_ptest(f),
            M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64 | M::Pcmpistri | M::Pcmpistrm => {
                self.gen_pcmpstr(f)
            }
            M::Maskmovdqu | M::Maskmovq => self.gen_maskmov(f),
            M::Movntdq | M::Movntps | M::Movntpd | M::Movntq | M::Movntdqa => self.gen_movnt(f),
            M::Movq2dq | M::Movdq2q => self.gen_movq2dq(f),
            M::Movhps | M::Movlps | M::Movhpd | M::Movlpd | M::Movhlps | M::Movlhps => self.gen_movhl(f),
            M::Movss | M::Movsd => self.gen_movss(f),
            _ => self.gen_vec2(f),
        };
        if done && is_mmx {
            self.gen_mmx_enter(f);
        }
        done
    }

    /// The generic shape: `dst op= src` with `dst` an XMM or MMX register and `src` the same kind, memory or
    /// (shifts) an imm8.
    fn gen_vec2(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let Some((kind, sz)) = table(m) else {
            return false;
        };
        let Some(d) = self.vop(0).filter(|d| *d != V::Mem) else {
            return false;
        };
        let is_mmx = matches!(d, V::Mmx(_));
        let mut imm = self.imm8().unwrap_or(0);
        let src = match (self.insn.op_count(), self.insn.op_kind(1)) {
            (2, OpKind::Immediate8) => {
                // Shift by imm8: the count goes to the scratch slot; pslldq/psrldq take it as imm.
                if matches!(kind, op::SLL | op::SRL | op::SRA) {
                    let c = f.constant(Type::I64, imm);
                    f.store(Opcode::St, c, Temp::ENV, T0);
                    T0
                } else {
                    voff(d)
                }
            }
            _ => match self.vop(1) {
                Some(V::Mem) => {
                    let bytes = mem_bytes(m, is_mmx);
                    self.gen_load_t0(f, bytes, true);
                    if m == M::Insertps {
                        imm &= 0x3f; // the loaded dword is lane 0
                    }
                    T0
                }
                Some(s) if matches!(s, V::Mmx(_)) == is_mmx && s != V::Mem => voff(s),
                _ => return false,
            },
        };
        if pmovx(m).is_some() {
            imm = pmovx_to(m);
        }
        let word = kind << 8 | sz | if is_mmx { MMX } else { 0 };
        let inline =
            matches!(kind, op::AND | op::ANDN | op::OR | op::XOR) || (matches!(kind, op::ADD | op::SUB) && sz == 8);
        if !is_mmx && inline {
            self.gen_logic_inline(f, kind, voff(d), src);
        } else {
            self.call_vec(f, word, voff(d), src, imm, None);
        }
        if let V::Mmx(n) = d {
            self.gen_mmx_written(f, n);
        }
        true
    }

    /// and/andn/or/xor and paddq/psubq on two 128-bit slots, as two 64-bit halves.
    fn gen_logic_inline(&mut self, f: &mut Func, kind: u64, d: i32, s: i32) {
        for half in 0..2 {
            let a = f.new_ebb_temp(Type::I64);
            let b = f.new_ebb_temp(Type::I64);
            f.load(Opcode::Ld, a, Temp::ENV, d + 8 * half);
            f.load(Opcode::Ld, b, Temp::ENV, s + 8 * half);
            match kind {
                op::AND => f.and(a, a, b),
                op::ANDN => f.andc(a, b, a),
                op::OR => f.or(a, a, b),
                op::XOR => f.xor(a, a, b),
                op::ADD => f.add(a, a, b),
                _ => f.sub(a, a, b),
            }
            f.store(Opcode::St, a, Temp::ENV, d + 8 * half);
        }
    }

    /// pmovmskb r, mm/xmm; movmskps/movmskpd r, xmm.
    fn gen_movmsk(&mut self, f: &mut Func) -> bool {
        let (OpKind::Register, Some(s)) = (self.insn.op_kind(0), self.vop(1)) else {
            return false;
        };
        let dst = self.insn.op_register(0);
        if s == V::Mem || super::operand::gpr(dst).is_none() {
            return false;
        }
        let sz = match self.insn.mnemonic() {
            M::Movmskps => 4,
            M::Movmskpd => 8,
            _ => 1,
        };
        let mm = if matches!(s, V::Mmx(_)) { MMX } else { 0 };
        let r = self.call_vec(f, op::MOVMSK << 8 | sz | mm, voff(s), voff(s), 0, None);
        let n = super::operand::gpr(dst).map_or(0, |g| g.n);
        self.write_reg_n(f, n, Size::Q, r);
        true
    }

    fn lane_size(&self) -> u64 {
        match self.insn.mnemonic() {
            M::Pinsrb | M::Pextrb => 1,
            M::Pinsrw | M::Pextrw => 2,
            M::Pinsrq | M::Pextrq => 8,
            _ => 4,
        }
    }

    /// pinsrb/w/d/q xmm (pinsrw also mm), r32/r64/m, imm8.
    fn gen_pinsr(&mut self, f: &mut Func) -> bool {
        let (Some(d), Some(imm)) = (self.vop(0), self.imm8()) else {
            return false;
        };
        if d == V::Mem {
            return false;
        }
        let sz = self.lane_size();
        let v = match self.insn.op_kind(1) {
            OpKind::Memory => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                let mop = match sz {
                    1 => MemOp::UB,
                    2 => MemOp::LEUW,
                    4 => MemOp::LEUL,
                    _ => MemOp::LEUQ,
                };
                f.qemu_ld(t, addr, mop, self.mem_index());
                t
            }
            OpKind::Register if super::operand::gpr(self.insn.op_register(1)).is_some() => {
                let r = self.insn.op_register(1);
                self.read_reg(f, r)
            }
            _ => return false,
        };
        let mm = if matches!(d, V::Mmx(_)) { MMX } else { 0 };
        self.call_vec(f, op::PINSR << 8 | sz | mm, voff(d), voff(d), imm, Some(v));
        if let V::Mmx(n) = d {
            self.gen_mmx_written(f, n);
        }
        true
    }

    /// pextrb/w/d/q and extractps r/m, xmm, imm8 (pextrw also r, mm).
    fn gen_pextr(&mut self, f: &mut Func) -> bool {
        let (Some(s), Some(imm)) = (self.vop(1), self.imm8()) else {
            return false;
        };
        if s == V::Mem {
            return false;
        }
        let sz = self.lane_size();
        let mm = if matches!(s, V::Mmx(_)) { MMX } else { 0 };
        let r = self.call_vec(f, op::PEXTR << 8 | sz | mm, voff(s), voff(s), imm, None);
        match self.insn.op_kind(0) {
            OpKind::Memory => {
                let addr = self.gen_ea(f, 0);
                let mop = match sz {
                    1 => MemOp::UB,
                    2 => MemOp::LEUW,
                    4 => MemOp::LEUL,
                    _ => MemOp::LEUQ,
                };
                f.qemu_st(r, addr, mop, self.mem_index());
            }
            OpKind::Register => {
                let Some(g) = super::operand::gpr(self.insn.op_register(0)) else {
                    return false;
                };
                // A 32-bit destination is zero-extended; the lane is never wider than the register.
                self.write_reg_n(f, g.n, Size::Q, r);
            }
            _ => return false,
        }
        true
    }

    /// Loads operand 1 if it is memory (aligned unless `unaligned`); its state offset.
    fn src_off(&mut self, f: &mut Func, unaligned: bool) -> Option<i32> {
        match self.vop(1)? {
            V::Mem => {
                let bytes = mem_bytes(self.insn.mnemonic(), false);
                self.gen_load_t0(f, bytes, !unaligned);
                Some(T0)
            }
            s => Some(voff(s)),
        }
    }

    /// ptest xmm, xmm/m128: ZF = (dst & src) == 0, CF = (!dst & src) == 0, other flags clear.
    fn gen_ptest(&mut self, f: &mut Func) -> bool {
        let Some(V::Xmm(d)) = self.vop(0) else {
            return false;
        };
        let Some(s) = self.src_off(f, false) else {
            return false;
        };
        let r = self.call_vec(f, op::PTEST << 8, xmm_offset(d, 0), s, 0, None);
        let zero = f.constant(Type::I64, 0);
        self.set_cc(f, CcOp::EFLAGS, zero, Some(r), None);
        true
    }

    /// pcmpestri/pcmpestrm/pcmpistri/pcmpistrm xmm1, xmm2/m128, imm8 (memory need not be aligned).
    fn gen_pcmpstr(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let (Some(V::Xmm(d)), Some(imm)) = (self.vop(0), self.imm8()) else {
            return false;
        };
        let Some(s) = self.src_off(f, true) else {
            return false;
        };
        let mask = matches!(m, M::Pcmpestrm | M::Pcmpestrm64 | M::Pcmpistrm);
        let explicit = matches!(m, M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64);
        let wide = matches!(m, M::Pcmpestri64 | M::Pcmpestrm64);
        let word = op::PCMPSTR << 8
            | if mask { op::STR_MASK } else { 0 }
            | if explicit { op::STR_EXPLICIT } else { 0 }
            | if wide { op::STR_WIDE } else { 0 };
        let args = [
            f.constant(Type::I64, word),
            f.constant(Type::I64, xmm_offset(d, 0) as u64),
            f.constant(Type::I64, s as u64),
            f.constant(Type::I64, imm),
            f.constant(Type::I64, 0),
        ];
        let r = f.new_ebb_temp(Type::I64);
        let h = if explicit {
            self.target().helpers.vec_op_regs
        } else {
            self.target().helpers.vec_op
        };
        f.call(h, Some(r), &args);
        if !mask {
            let idx = f.new_ebb_temp(Type::I64);
            f.extract(idx, r, 16, 16);
            self.write_reg_n(f, reg::RCX, Size::L, idx);
        }
        let flags = f.new_ebb_temp(Type::I64);
        f.ext16u(flags, r);
        let zero = f.constant(Type::I64, 0);
        self.set_cc(f, CcOp::EFLAGS, zero, Some(flags), None);
        true
    }

    /// crc32 r32/r64, r/m8/16/32/64 (CRC32C, no enabling checks: it is a general-purpose instruction).
    fn gen_crc32(&mut self, f: &mut Func) -> bool {
        if self.insn.op_kind(0) != OpKind::Register {
            return false;
        }
        let Some(dst) = super::operand::gpr(self.insn.op_register(0)) else {
            return false;
        };
        let (v, sz) = match self.insn.op_kind(1) {
            OpKind::Memory => {
                let Some(size) = super::operand::mem_size(self.insn.memory_size()) else {
                    return false;
                };
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                f.qemu_ld(t, addr, super::operand::memop(size), self.mem_index());
                (t, size.bytes() as u64)
            }
            OpKind::Register => {
                let r = self.insn.op_register(1);
                let Some(g) = super::operand::gpr(r) else {
                    return false;
                };
                (self.read_reg(f, r), g.size.bytes() as u64)
            }
            _ => return false,
        };
        let crc = self.read_reg(f, self.insn.op_register(0));
        let args = [
            f.constant(Type::I64, op::CRC32 << 8 | sz),
            f.constant(Type::I64, T0 as u64),
            f.constant(Type::I64, T0 as u64),
            crc,
            v,
        ];
        let r = f.new_ebb_temp(Type::I64);
        f.call(self.target().helpers.vec_op, Some(r), &args);
        self.write_reg_n(f, dst.n, Size::L, r);
        true
    }
}
