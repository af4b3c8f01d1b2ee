//! System registers and system instructions: mov to/from CR0, CR2, CR3, CR4, CR8 and DR0-DR7, clts, lmsw,
//! smsw, invlpg, invd/wbinvd, lgdt/lidt/sgdt/sidt, lldt/sldt/ltr/str, rdmsr/wrmsr, syscall/sysret,
//! sysenter/sysexit, swapgs, and stac/clac (SMAP's EFLAGS.AC toggles).
//!
//! # Checks
//! The CPL checks (#GP(0) at CPL > 0, which includes vm86 mode) are made at translation time from the TB
//! flags, which carry the CPL: a TB is only ever run at the CPL it was translated for. Mode checks (#UD where
//! an instruction does not exist) also use the TB flags. Everything that depends on register values (reserved
//! bits, EFER.SCE, MSR indexes, descriptor types) is checked by the `sysreg` helper, which changes nothing
//! when it raises.
//!
//! # The `sysreg(op | n << 8, value) -> i64` helper
//! One helper for the whole family (reads and writes the globals, may fault): `op` says what to do ([`op`]),
//! `n` is the control or debug register number, `value` the operand. State updates are finished before any
//! TLB flush: the flush runs through [`crate::machine::with_sys`] after the last use of the state reference. A CR3
//! load drops the pages [`X86Fill`] filled without the global flag ([`X86Fill::take_nonglobal`]); changes of
//! CR0.PG/WP/PE, CR4.PSE/PAE/PGE/SMEP/SMAP, EFER.NXE and the first CR0/CR3 write of a flat loader state
//! ([`X86Fill::flat`]) flush everything; invlpg flushes its page.
//!
//! # TB ends
//! Writes to CR0/CR3/CR4/CR8, lmsw, clts, invlpg, wrmsr, swapgs and lldt/ltr end the TB at the next
//! instruction with a lookup exit (the mode, the paging state or the TLB may have changed); syscall, sysret,
//! sysenter and sysexit jump to the `rip` the helper wrote, also with a lookup exit (CS, CPL and mode change).
//!
//! # Not emulated
//! Debug registers are stored only (no breakpoints, DR6 never changes by itself, DR7.GD is ignored); MTRRs and
//! PCIDs do not exist (CR4.PCIDE is #GP); the TSS busy bit and I/O bitmap are not used beyond `ltr` setting the
//! busy bit; syscall/sysret outside long mode (AMD's legacy form) are #UD; UMIP is not supported (sgdt, sidt,
//! sldt, str and smsw work at any CPL).

use iced_x86::{Code, Mnemonic, OpKind, Register};
use rqemu_include::MemOp;
use rqemu_softmmu::SoftMmu;
use rqemu_tcg::{Cond, Func, HelperFlags, HelperId, HelperInfo, Opcode, TargetDesc, Temp, Type};

use super::operand::Loc;
use super::{DisasContext, DisasJump};
use crate::cc::Size;
use crate::cpu::{eflags, excp, reg, seg, SegmentCache, X86CpuState, DESC_B, DESC_L, DESC_P, MSR_EFER};
use crate::desc::{global, I386Target};
use crate::machine::X86Fill;
use crate::paging::{PagingMode, PagingRegs, CR0_PG, CR0_WP, CR4_PAE, CR4_PGE, CR4_PSE, CR4_SMAP, CR4_SMEP};
use crate::seg_helper::{self, sys_type, DESC_A, DESC_CS, DESC_DPL_SHIFT, DESC_G, DESC_R, DESC_S, DESC_W};
use crate::sysmem::{Fault, PagedMem};

/// The `sysreg` helper's operations (bits 0..8 of its first argument).
pub mod op {
    /// mov crN, value.
    pub const WRITE_CR: u64 = 0;
    /// mov r, crN -> value.
    pub const READ_CR: u64 = 1;
    /// mov drN, value.
    pub const WRITE_DR: u64 = 2;
    /// mov r, drN -> value.
    pub const READ_DR: u64 = 3;
    /// clts.
    pub const CLTS: u64 = 4;
    /// lmsw value.
    pub const LMSW: u64 = 5;
    /// invlpg at linear address value.
    pub const INVLPG: u64 = 6;
    /// lldt value (selector).
    pub const LLDT: u64 = 7;
    /// ltr value (selector).
    pub const LTR: u64 = 8;
    /// rdmsr (ecx -> edx:eax).
    pub const RDMSR: u64 = 9;
    /// wrmsr (edx:eax -> MSR ecx).
    pub const WRMSR: u64 = 10;
    /// syscall; value is the next rip.
    pub const SYSCALL: u64 = 11;
    /// sysret; n = 1 for the 64-bit form.
    pub const SYSRET: u64 = 12;
    /// sysenter.
    pub const SYSENTER: u64 = 13;
    /// sysexit; n = 1 for the 64-bit form.
    pub const SYSEXIT: u64 = 14;
    /// swapgs.
    pub const SWAPGS: u64 = 15;
}

/// CR0 bits.
pub mod cr0 {
    /// Protection enable.
    pub const PE: u64 = 1 << 0;
    /// Monitor coprocessor.
    pub const MP: u64 = 1 << 1;
    /// x87 emulation.
    pub const EM: u64 = 1 << 2;
    /// Task switched.
    pub const TS: u64 = 1 << 3;
    /// Extension type (hardwired to 1).
    pub const ET: u64 = 1 << 4;
    /// Numeric error.
    pub const NE: u64 = 1 << 5;
    /// Write protect.
    pub const WP: u64 = 1 << 16;
    /// Alignment mask.
    pub const AM: u64 = 1 << 18;
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
    /// Paging.
    pub const PG: u64 = 1 << 31;
    /// The bits that exist; other bits of 31:0 are ignored on writes, bits 63:32 raise #GP(0).
    pub const DEFINED: u64 = PE | MP | EM | TS | ET | NE | WP | AM | NW | CD | PG;
}

/// CR4 bits rqemu accepts (others, PCIDE included, raise #GP(0)): DE, TSD, PSE, PAE, MCE, PGE, PCE, OSFXSR,
/// OSXMMEXCPT, SMEP, SMAP.
pub const CR4_VALID: u64 =
    (1 << 3) | CR4_TSD | CR4_PSE | CR4_PAE | (1 << 6) | CR4_PGE | (1 << 8) | (1 << 9) | (1 << 10) | CR4_SMEP | CR4_SMAP;
/// CR4.TSD: rdtsc/rdtscp only at CPL 0.
pub const CR4_TSD: u64 = 1 << 2;
/// CR4.DE: DR4/DR5 references raise #UD instead of aliasing DR6/DR7.
pub const CR4_DE: u64 = 1 << 3;

/// EFER.SCE: syscall/sysret enabled.
pub const EFER_SCE: u64 = 1 << 0;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active (read-only for wrmsr).
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: execute-disable bit enabled.
pub const EFER_NXE: u64 = 1 << 11;

/// MSR indexes handled outside the [`crate::cpu::MSRS`] table.
pub mod msr {
    /// IA32_TSC: reads the TSC, writes adjust `tsc_offset`.
    pub const TSC: u32 = 0x10;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = 0x176;
    /// IA32_PAT.
    pub const PAT: u32 = 0x277;
    /// LSTAR.
    pub const LSTAR: u32 = 0xc000_0082;
    /// CSTAR.
    pub const CSTAR: u32 = 0xc000_0083;
    /// FS_BASE.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// GS_BASE.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// KERNEL_GS_BASE.
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// TSC_AUX.
    pub const TSC_AUX: u32 = 0xc000_0103;
}

/// Registers the `sysreg` helper on `t` (called by [`I386Target::with_lookup`]).
pub(crate) fn register_sysreg_helper(t: &mut TargetDesc) -> HelperId {
    t.helpers.register(HelperInfo {
        name: "sysreg",
        func: helper_sysreg,
        flags: HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT,
        args: &[Type::I32, Type::I64],
        ret: Some(Type::I64),
    })
}

/// The number of control register `r` that `mov` may name, if any.
fn cr_number(r: Register) -> Option<u64> {
    Some(match r {
        Register::CR0 => 0,
        Register::CR2 => 2,
        Register::CR3 => 3,
        Register::CR4 => 4,
        Register::CR8 => 8,
        _ => return None,
    })
}

/// The number of debug register `r`, if it is DR0-DR7.
fn dr_number(r: Register) -> Option<u64> {
    Some(match r {
        Register::DR0 => 0,
        Register::DR1 => 1,
        Register::DR2 => 2,
        Register::DR3 => 3,
        Register::DR4 => 4,
        Register::DR5 => 5,
        Register::DR6 => 6,
        Register::DR7 => 7,
        _ => return None,
    })
}

/// Whether `r` is a control or debug register (any number: the unusable ones are #UD).
fn is_cr_or_dr(r: Register) -> bool {
    let x = r as u32;
    (Register::CR0 as u32..=Register::CR15 as u32).contains(&x)
        || (Register::DR0 as u32..=Register::DR15 as u32).contains(&x)
}

impl DisasContext<'_> {
    /// Translates the instructions of this file; `None` when the instruction is not one of them.
    pub(super) fn dispatch_sysregs(&mut self, f: &mut Func) -> Option<bool> {
        use Mnemonic as M;
        let i = self.insn;
        let crdr = (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && is_cr_or_dr(i.op_register(n)));
        Some(match i.mnemonic() {
            M::Mov if crdr => self.gen_mov_crdr(f),
            M::Clts => self.gen_priv_op(f, op::CLTS, None, true),
            M::Lmsw => {
                if self.gen_cpl0_check(f) {
                    return Some(true);
                }
                let v = self.load_operand(f, 0, Size::W);
                self.gen_sysreg(f, op::LMSW, 0, v);
                self.gen_end(f);
                true
            }
            M::Smsw => self.gen_smsw(f),
            M::Invlpg => {
                if self.insn.op_kind(0) != OpKind::Memory {
                    return Some(false);
                }
                if self.gen_cpl0_check(f) {
                    return Some(true);
                }
                let Loc::Mem(addr) = self.op_loc(f, 0) else {
                    return Some(false);
                };
                self.gen_sysreg(f, op::INVLPG, 0, addr);
                self.gen_end(f);
                true
            }
            M::Invd | M::Wbinvd => {
                // No caches to invalidate: a privileged no-op.
                self.gen_cpl0_check(f);
                true
            }
            M::Lgdt | M::Lidt => self.gen_load_dt(f),
            M::Sgdt | M::Sidt => self.gen_store_dt(f),
            M::Lldt | M::Ltr => {
                if !self.flags.pe || self.flags.vm86 {
                    return Some(false);
                }
                if self.gen_cpl0_check(f) {
                    return Some(true);
                }
                let v = self.load_operand(f, 0, Size::W);
                let o = if i.mnemonic() == M::Lldt { op::LLDT } else { op::LTR };
                self.gen_sysreg(f, o, 0, v);
                true
            }
            M::Sldt | M::Str => self.gen_store_sel(f),
            M::Stac | M::Clac => {
                // SMAP's AC toggles: #UD above CPL 0 (and in vm86 mode); AC is a TB flag (it selects the MMU
                // index), so the TB ends.
                if self.flags.cpl != 0 {
                    return Some(false);
                }
                let fl = I386Target::global(global::EFLAGS);
                if i.mnemonic() == M::Stac {
                    let ac = f.constant(Type::I64, eflags::AC);
                    f.or(fl, fl, ac);
                } else {
                    let ac = f.constant(Type::I64, !eflags::AC);
                    f.and(fl, fl, ac);
                }
                self.gen_end(f);
                true
            }
            M::Rdmsr => self.gen_priv_op(f, op::RDMSR, None, false),
            M::Wrmsr => self.gen_priv_op(f, op::WRMSR, None, true),
            M::Swapgs => {
                if !self.flags.code64() {
                    return Some(false);
                }
                self.gen_priv_op(f, op::SWAPGS, None, true)
            }
            M::Syscall => {
                if !self.flags.lma {
                    return Some(false);
                }
                let next = f.constant(Type::I64, self.pc_next);
                self.gen_sysreg(f, op::SYSCALL, 0, next);
                self.gen_jump_exit(f);
                true
            }
            M::Sysret | M::Sysretq => {
                if !self.flags.code64() {
                    return Some(false);
                }
                // EFER.SCE (#UD) is checked before the CPL (#GP) by the helper, so no static CPL check here.
                let zero = f.constant(Type::I64, 0);
                self.gen_sysreg(f, op::SYSRET, u64::from(i.mnemonic() == M::Sysretq), zero);
                self.gen_jump_exit(f);
                true
            }
            M::Sysenter => {
                let zero = f.constant(Type::I64, 0);
                self.gen_sysreg(f, op::SYSENTER, 0, zero);
                self.gen_jump_exit(f);
                true
            }
            M::Sysexit | M::Sysexitq => {
                let zero = f.constant(Type::I64, 0);
                self.gen_sysreg(f, op::SYSEXIT, u64::from(i.mnemonic() == M::Sysexitq), zero);
                self.gen_jump_exit(f);
                true
            }
            _ => return None,
        })
    }

    /// #GP(0) unless CPL 0 (CPL 3 in vm86 mode); true when the exception was generated (the TB ended).
    fn gen_cpl0_check(&mut self, f: &mut Func) -> bool {
        if self.flags.cpl != 0 {
            self.gen_exception(f, excp::GP, 0);
            return true;
        }
        false
    }

    /// Calls `sysreg(op | n << 8, value)` and returns its result.
    fn gen_sysreg(&mut self, f: &mut Func, o: u64, n: u64, value: Temp) -> Temp {
        let k = f.constant(Type::I32, o | n << 8);
        let r = f.new_ebb_temp(Type::I64);
        f.call(self.target.helpers.sysreg, Some(r), &[k, value]);
        r
    }

    /// A privileged operation without operands; `end` ends the TB after it.
    fn gen_priv_op(&mut self, f: &mut Func, o: u64, value: Option<Temp>, end: bool) -> bool {
        if self.gen_cpl0_check(f) {
            return true;
        }
        let v = value.unwrap_or_else(|| f.constant(Type::I64, 0));
        self.gen_sysreg(f, o, 0, v);
        if end {
            self.gen_end(f);
        }
        true
    }

    /// Ends the TB at the next instruction with a lookup exit.
    fn gen_end(&mut self, f: &mut Func) {
        let rip = I386Target::global(global::RIP);
        f.movi(rip, self.pc_next);
        self.gen_exit_lookup(f);
        self.is_jmp = DisasJump::NoReturn;
    }

    /// Ends the TB at the `rip` the helper wrote; the flags were replaced by the helper (`cc_op` = Eflags).
    fn gen_jump_exit(&mut self, f: &mut Func) {
        self.forget_cc_op();
        self.gen_exit_lookup(f);
        self.is_jmp = DisasJump::NoReturn;
    }

    /// mov to/from a control or debug register (the register operand is 64-bit in 64-bit mode, 32-bit
    /// otherwise; the decoder gives it the right width).
    fn gen_mov_crdr(&mut self, f: &mut Func) -> bool {
        let i = self.insn;
        let (dst, src) = (i.op_register(0), i.op_register(1));
        let to_sys = is_cr_or_dr(dst);
        let sysreg = if to_sys { dst } else { src };
        let (read_op, write_op, n) = if let Some(n) = cr_number(sysreg) {
            (op::READ_CR, op::WRITE_CR, n)
        } else if let Some(n) = dr_number(sysreg) {
            (op::READ_DR, op::WRITE_DR, n)
        } else {
            return false; // CR1, CR5-7, CR9-15, DR8-15: #UD
        };
        if self.gen_cpl0_check(f) {
            return true;
        }
        if to_sys {
            let v = self.read_reg(f, src);
            self.gen_sysreg(f, write_op, n, v);
            if write_op == op::WRITE_CR && n != 2 {
                self.gen_end(f);
            }
        } else {
            let zero = f.constant(Type::I64, 0);
            let v = self.gen_sysreg(f, read_op, n, zero);
            self.write_reg(f, dst, v);
        }
        true
    }

    /// smsw r16/r32/r64 (the low 16, 32 or 64 bits of CR0) or m16.
    fn gen_smsw(&mut self, f: &mut Func) -> bool {
        let v = f.new_ebb_temp(Type::I64);
        f.load(Opcode::Ld, v, Temp::ENV, cr_offset(0));
        match self.op_loc(f, 0) {
            Loc::Reg(r) => self.write_reg(f, r, v),
            loc @ Loc::Mem(_) => self.gen_st(f, loc, Size::W, v),
        }
        true
    }

    /// sldt/str: the selector, zero-extended into a register or stored as 16 bits. #UD in real and vm86 mode.
    fn gen_store_sel(&mut self, f: &mut Func) -> bool {
        if !self.flags.pe || self.flags.vm86 {
            return false;
        }
        let cache = if self.insn.mnemonic() == Mnemonic::Sldt {
            core::mem::offset_of!(X86CpuState, ldt)
        } else {
            core::mem::offset_of!(X86CpuState, tr)
        };
        let v = f.new_ebb_temp(Type::I64);
        f.load(
            Opcode::Ld16u,
            v,
            Temp::ENV,
            (cache + core::mem::offset_of!(SegmentCache, selector)) as i32,
        );
        match self.op_loc(f, 0) {
            Loc::Reg(r) => self.write_reg(f, r, v),
            loc @ Loc::Mem(_) => self.gen_st(f, loc, Size::W, v),
        }
        true
    }

    /// The GDTR or IDTR cache offset of lgdt/sgdt (GDT) or lidt/sidt (IDT).
    fn dt_offset(&self) -> usize {
        match self.insn.mnemonic() {
            Mnemonic::Lgdt | Mnemonic::Sgdt => core::mem::offset_of!(X86CpuState, gdt),
            _ => core::mem::offset_of!(X86CpuState, idt),
        }
    }

    /// `addr + k`, wrapped to 32 bits outside 64-bit mode.
    fn dt_addr(&self, f: &mut Func, addr: Temp, k: u64) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        let c = f.constant(Type::I64, k);
        f.add(t, addr, c);
        if !self.flags.code64() {
            f.ext32u(t, t);
        }
        t
    }

    /// lgdt/lidt m16&32 or m16&64: limit, then base (24 bits with a 16-bit operand size, 32 outside 64-bit
    /// mode, 64 in 64-bit mode). CPL 0 only. Both loads happen before the registers change.
    fn gen_load_dt(&mut self, f: &mut Func) -> bool {
        if self.insn.op_kind(0) != OpKind::Memory {
            return false;
        }
        if self.gen_cpl0_check(f) {
            return true;
        }
        let Loc::Mem(addr) = self.op_loc(f, 0) else {
            return false;
        };
        let idx = self.mem_index();
        let limit = f.new_ebb_temp(Type::I64);
        f.qemu_ld(limit, addr, MemOp::LEUW, idx);
        let a2 = self.dt_addr(f, addr, 2);
        let base = f.new_ebb_temp(Type::I64);
        let wide = self.flags.code64();
        f.qemu_ld(base, a2, if wide { MemOp::LEUQ } else { MemOp::LEUL }, idx);
        if matches!(self.insn.code(), Code::Lgdt_m1632_16 | Code::Lidt_m1632_16) {
            let m = f.constant(Type::I64, 0xff_ffff);
            f.and(base, base, m);
        }
        let off = self.dt_offset();
        f.store(
            Opcode::St,
            base,
            Temp::ENV,
            (off + core::mem::offset_of!(SegmentCache, base)) as i32,
        );
        f.store(
            Opcode::St32,
            limit,
            Temp::ENV,
            (off + core::mem::offset_of!(SegmentCache, limit)) as i32,
        );
        true
    }

    /// sgdt/sidt m: limit (16 bits), then the base (32 bits outside 64-bit mode, whatever the operand size,
    /// as current CPUs do; 64 bits in 64-bit mode).
    fn gen_store_dt(&mut self, f: &mut Func) -> bool {
        if self.insn.op_kind(0) != OpKind::Memory {
            return false;
        }
        let Loc::Mem(addr) = self.op_loc(f, 0) else {
            return false;
        };
        let off = self.dt_offset();
        let limit = f.new_ebb_temp(Type::I64);
        f.load(
            Opcode::Ld32u,
            limit,
            Temp::ENV,
            (off + core::mem::offset_of!(SegmentCache, limit)) as i32,
        );
        let base = f.new_ebb_temp(Type::I64);
        f.load(
            Opcode::Ld,
            base,
            Temp::ENV,
            (off + core::mem::offset_of!(SegmentCache, base)) as i32,
        );
        let idx = self.mem_index();
        f.qemu_st(limit, addr, MemOp::LEUW, idx);
        let a2 = self.dt_addr(f, addr, 2);
        let wide = self.flags.code64();
        f.qemu_st(base, a2, if wide { MemOp::LEUQ } else { MemOp::LEUL }, idx);
        true
    }

    /// rdtsc/rdtscp under CR4.TSD: #GP(0) at CPL > 0 (in protected mode; CPL is 0 in real mode). Generated
    /// only for TBs above CPL 0, where it tests CR4 at run time.
    pub(super) fn gen_tsd_check(&mut self, f: &mut Func) {
        if self.flags.cpl == 0 {
            return;
        }
        let c = f.new_ebb_temp(Type::I64);
        f.load(Opcode::Ld, c, Temp::ENV, cr_offset(4));
        let bit = f.constant(Type::I64, CR4_TSD);
        f.and(c, c, bit);
        let zero = f.constant(Type::I64, 0);
        let ok = f.new_label();
        f.brcond(Cond::Eq, c, zero, ok);
        self.gen_exception(f, excp::GP, 0);
        f.set_label(ok);
        self.is_jmp = DisasJump::Next;
    }
}

/// Byte offset of `cr[n]` in the state.
fn cr_offset(n: usize) -> i32 {
    (core::mem::offset_of!(X86CpuState, cr) + 8 * n) as i32
}

/// What to do with the TLB once the state is updated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flush {
    None,
    All,
    /// A CR3 load: every page but the global ones ([`X86Fill::take_nonglobal`]).
    NonGlobal,
    Page(u64),
}

/// What an operation did: its result and the flush it needs.
struct Done {
    value: u64,
    flush: Flush,
    /// The guest wrote CR0 or CR3: its page tables are in charge from now on (`X86Fill::flat` ends).
    paging_written: bool,
}

impl Done {
    const fn value(value: u64) -> Done {
        Done {
            value,
            flush: Flush::None,
            paging_written: false,
        }
    }
}

/// The `sysreg(op | n << 8, value) -> i64` helper (the module doc).
unsafe extern "C" fn helper_sysreg(env: *mut u8, a: u64, value: u64, _: u64, _: u64, _: u64) -> u64 {
    let o = a & 0xff;
    let n = (a >> 8) & 0xff;
    let mut run = Some(|s: &mut X86CpuState, soft: Option<&mut SoftMmu<X86Fill>>| {
        let r = sys_op(s, soft, o, n, value);
        if let Err(fault) = &r {
            fault.record(s);
        }
        r
    });
    // SAFETY: generated code passes the CPU state it runs on and holds no reference to it. The state
    // reference lives only inside the closure, while the SoftMmu is used through `space_mut` and page walks,
    // which never touch the TLB tables inside the state (`with_sys`'s rule).
    let done = unsafe {
        crate::machine::with_sys(env, |soft| {
            let s = &mut *env.cast::<X86CpuState>();
            (run.take().expect("called once"))(s, Some(soft))
        })
    };
    let result = match done {
        Some(r) => r,
        None => {
            // No memory attached (translator-only harnesses), or (a host bug) busy.
            // SAFETY: as above; no memory borrow is live.
            let s = unsafe { &mut *env.cast::<X86CpuState>() };
            match run.take() {
                Some(run) => run(s, None),
                None => return 0,
            }
        }
    };
    let Ok(done) = result else {
        return 0;
    };
    if done.flush != Flush::None || done.paging_written {
        // The state reference is gone: flushing touches the TLB tables inside it.
        // SAFETY: generated code passes the CPU state it runs on.
        unsafe {
            crate::machine::with_sys(env, |soft| {
                let mut flush = done.flush;
                if done.paging_written && soft.fill().flat {
                    // Leaving the loader's flat view: its identity entries are not the page tables'.
                    soft.fill_mut().flat = false;
                    flush = Flush::All;
                }
                match flush {
                    Flush::All => {
                        soft.flush_all();
                        soft.fill_mut().reset_nonglobal();
                    }
                    Flush::NonGlobal => match soft.fill_mut().take_nonglobal() {
                        Some(pages) => {
                            for page in pages {
                                soft.flush_page(page);
                            }
                        }
                        None => soft.flush_all(),
                    },
                    Flush::Page(addr) => soft.flush_page(addr),
                    Flush::None => {}
                }
            })
        };
    }
    done.value
}

/// Whether `v` is canonical (48-bit).
fn canonical(v: u64) -> bool {
    seg_helper::is_canonical(v)
}

/// One operation of the helper on the state; `Err` changes nothing.
fn sys_op(s: &mut X86CpuState, soft: Option<&mut SoftMmu<X86Fill>>, o: u64, n: u64, value: u64) -> Result<Done, Fault> {
    let gp = Err(Fault::gp(0));
    match o {
        op::WRITE_CR => match n {
            0 => write_cr0(s, soft, value),
            2 => {
                s.cr[2] = value;
                Ok(Done::value(0))
            }
            3 => write_cr3(s, soft, value),
            4 => write_cr4(s, soft, value),
            8 => {
                if value & !0xf != 0 {
                    return gp;
                }
                s.cr8 = value;
                Ok(Done::value(0))
            }
            _ => Err(Fault::ud()),
        },
        op::READ_CR => Ok(Done::value(match n {
            0 | 2 | 3 | 4 => s.cr[n as usize],
            8 => s.cr8,
            _ => return Err(Fault::ud()),
        })),
        op::WRITE_DR | op::READ_DR => {
            let mut i = n as usize;
            if i == 4 || i == 5 {
                if s.cr[4] & CR4_DE != 0 {
                    return Err(Fault::ud());
                }
                i += 2;
            }
            if o == op::READ_DR {
                return Ok(Done::value(s.dr[i]));
            }
            // 64-bit mode: the upper halves of DR6 and DR7 are reserved (#GP); DR0-3 take any address.
            if i >= 6 && value >> 32 != 0 {
                return gp;
            }
            s.dr[i] = match i {
                // Reserved bits read as 1 (DR6) or as the fixed 1 of bit 10 (DR7).
                6 => (value & 0xe00f) | 0xffff_0ff0,
                7 => (value & 0xffff_2bff) | 0x400,
                _ => value,
            };
            Ok(Done::value(0))
        }
        op::CLTS => {
            s.cr[0] &= !cr0::TS;
            Ok(Done::value(0))
        }
        op::LMSW => {
            // Loads PE, MP, EM, TS; cannot clear PE.
            let v = (s.cr[0] & !0xe) | (value & 0xf);
            let v = v | (s.cr[0] & cr0::PE);
            write_cr0(s, soft, v)
        }
        op::INVLPG => Ok(Done {
            value: 0,
            flush: Flush::Page(value),
            paging_written: false,
        }),
        op::LLDT => load_ldt(s, soft, value as u16).map(|()| Done::value(0)),
        op::LTR => load_tr(s, soft, value as u16).map(|()| Done::value(0)),
        op::RDMSR => {
            let v = read_msr(s, s.regs[reg::RCX] as u32)?;
            s.regs[reg::RAX] = v & 0xffff_ffff;
            s.regs[reg::RDX] = v >> 32;
            Ok(Done::value(0))
        }
        op::WRMSR => {
            let v = (s.regs[reg::RDX] << 32) | (s.regs[reg::RAX] & 0xffff_ffff);
            write_msr(s, s.regs[reg::RCX] as u32, v)
        }
        op::SYSCALL => syscall(s, value).map(|()| Done::value(0)),
        op::SYSRET => sysret(s, n == 1).map(|()| Done::value(0)),
        op::SYSENTER => sysenter(s).map(|()| Done::value(0)),
        op::SYSEXIT => sysexit(s, n == 1).map(|()| Done::value(0)),
        op::SWAPGS => {
            core::mem::swap(&mut s.segs[seg::GS].base, &mut s.msrs.kernel_gs_base);
            Ok(Done::value(0))
        }
        _ => Err(Fault::ud()),
    }
}

/// Whether the PAE PDPTEs at `cr3` are valid (the load a `mov cr3` or a PAE paging enable makes); without
/// memory they cannot be read, which is taken as valid (walks fault later).
fn pdptes_ok(soft: Option<&mut SoftMmu<X86Fill>>, cr3: u64) -> bool {
    match soft {
        Some(soft) => crate::paging::load_pae_pdptes(soft.space_mut(), cr3).is_some(),
        None => true,
    }
}

/// Whether registers `regs` select PAE paging (where the PDPTEs are loaded).
fn is_pae_paging(cr0: u64, cr4: u64, efer: u64) -> bool {
    PagingRegs { cr0, cr3: 0, cr4, efer }.mode() == PagingMode::Pae
}

/// mov cr0 (also lmsw): reserved bits 63:32 #GP(0); PG without PE, NW without CD #GP(0); enabling paging with
/// EFER.LME needs CR4.PAE (#GP) and a CS without L, and activates long mode; clearing PG in 64-bit mode is
/// #GP, in compatibility mode it leaves long mode. ET reads as 1.
fn write_cr0(s: &mut X86CpuState, soft: Option<&mut SoftMmu<X86Fill>>, value: u64) -> Result<Done, Fault> {
    if value >> 32 != 0 {
        return Err(Fault::gp(0));
    }
    let v = (value & cr0::DEFINED) | cr0::ET;
    if (v & cr0::PG != 0 && v & cr0::PE == 0) || (v & cr0::NW != 0 && v & cr0::CD == 0) {
        return Err(Fault::gp(0));
    }
    let old = s.cr[0];
    let mut efer = s.efer;
    let enabling = old & CR0_PG == 0 && v & CR0_PG != 0;
    if enabling && efer & EFER_LME != 0 {
        if s.cr[4] & CR4_PAE == 0 || s.segs[seg::CS].flags & DESC_L != 0 {
            return Err(Fault::gp(0));
        }
        efer |= EFER_LMA;
    }
    if old & CR0_PG != 0 && v & CR0_PG == 0 && efer & EFER_LMA != 0 {
        if seg_helper::is_code64(s) {
            return Err(Fault::gp(0));
        }
        efer &= !EFER_LMA;
    }
    if enabling && is_pae_paging(v, s.cr[4], efer) && !pdptes_ok(soft, s.cr[3]) {
        return Err(Fault::gp(0));
    }
    s.cr[0] = v;
    s.efer = efer;
    let changed = old ^ v;
    Ok(Done {
        value: 0,
        flush: if changed & (CR0_PG | CR0_WP | cr0::PE) != 0 {
            Flush::All
        } else {
            Flush::None
        },
        paging_written: true,
    })
}

/// mov cr3: bits above MAXPHYADDR (63:48) #GP(0) in long mode (outside it the operand is 32 bits); under PAE
/// paging the PDPTEs are loaded and checked (#GP(0)). Flushes every TLB entry but the global pages.
fn write_cr3(s: &mut X86CpuState, soft: Option<&mut SoftMmu<X86Fill>>, value: u64) -> Result<Done, Fault> {
    if value >> crate::paging::MAXPHYADDR != 0 {
        return Err(Fault::gp(0));
    }
    if is_pae_paging(s.cr[0], s.cr[4], s.efer) && !pdptes_ok(soft, value) {
        return Err(Fault::gp(0));
    }
    s.cr[3] = value;
    Ok(Done {
        value: 0,
        flush: Flush::NonGlobal,
        paging_written: true,
    })
}

/// mov cr4: bits outside [`CR4_VALID`] (PCIDE, LA57, PKE, VMXE, ... and bits 63:32) #GP(0); clearing PAE in
/// long mode #GP(0); entering PAE paging loads the PDPTEs (#GP(0)). Changes of PSE, PAE, PGE, SMEP, SMAP flush.
fn write_cr4(s: &mut X86CpuState, soft: Option<&mut SoftMmu<X86Fill>>, value: u64) -> Result<Done, Fault> {
    if value & !CR4_VALID != 0 {
        return Err(Fault::gp(0));
    }
    if s.efer & EFER_LMA != 0 && value & CR4_PAE == 0 {
        return Err(Fault::gp(0));
    }
    let old = s.cr[4];
    let paging_bits = CR4_PSE | CR4_PAE | CR4_PGE | CR4_SMEP | CR4_SMAP;
    if (old ^ value) & (CR4_PAE | CR4_PSE | CR4_PGE) != 0
        && is_pae_paging(s.cr[0], value, s.efer)
        && !pdptes_ok(soft, s.cr[3])
    {
        return Err(Fault::gp(0));
    }
    s.cr[4] = value;
    Ok(Done {
        value: 0,
        flush: if (old ^ value) & paging_bits != 0 {
            Flush::All
        } else {
            Flush::None
        },
        paging_written: false,
    })
}

/// A descriptor load of lldt/ltr through the CPU's memory (implicit supervisor accesses).
fn with_mem<R>(
    s: &mut X86CpuState,
    soft: Option<&mut SoftMmu<X86Fill>>,
    op: impl FnOnce(&mut X86CpuState, &mut dyn crate::sysmem::SysMem) -> Result<R, Fault>,
) -> Result<R, Fault> {
    match soft {
        Some(soft) => {
            let regs = PagingRegs::from_state(s);
            let mut mem = PagedMem { space: soft, regs };
            op(s, &mut mem)
        }
        None => op(s, &mut super::seg::NoMem),
    }
}

/// lldt: a null selector makes the LDT unusable; otherwise the selector must name a GDT entry (TI = 0) within
/// the limit holding an LDT descriptor (#GP(sel)), present (#NP(sel)); in long mode a 16-byte descriptor with a
/// canonical base (#GP(sel)).
fn load_ldt(s: &mut X86CpuState, soft: Option<&mut SoftMmu<X86Fill>>, sel: u16) -> Result<(), Fault> {
    if seg_helper::is_null(sel) {
        let mut unusable = SegmentCache::default();
        unusable.selector = sel;
        s.ldt = unusable;
        return Ok(());
    }
    let err = seg_helper::sel_err(sel);
    if sel & seg_helper::selector::TI != 0 {
        return Err(Fault::gp(err));
    }
    let fetched = with_mem(s, soft, |s, m| seg_helper::fetch_descriptor(s, m, sel))?;
    let Some(fetched) = fetched else {
        return Err(Fault::gp(err));
    };
    let d = fetched.desc;
    if d.is_segment() || d.typ() != sys_type::LDT {
        return Err(Fault::gp(err));
    }
    if !d.present() {
        return Err(Fault::np(err));
    }
    let cache = d.cache(sel);
    if seg_helper::is_long_active(s) && !canonical(cache.base) {
        return Err(Fault::gp(err));
    }
    s.ldt = cache;
    Ok(())
}

/// ltr: a null selector #GP(0); TI = 1, beyond the GDT limit, not an available TSS (16-bit ones only outside
/// long mode) #GP(sel); not present #NP(sel); then the busy bit is set in the descriptor in memory.
fn load_tr(s: &mut X86CpuState, soft: Option<&mut SoftMmu<X86Fill>>, sel: u16) -> Result<(), Fault> {
    if seg_helper::is_null(sel) {
        return Err(Fault::gp(0));
    }
    let err = seg_helper::sel_err(sel);
    if sel & seg_helper::selector::TI != 0 {
        return Err(Fault::gp(err));
    }
    let long = seg_helper::is_long_active(s);
    with_mem(s, soft, |s, m| {
        let Some(fetched) = seg_helper::fetch_descriptor(s, m, sel)? else {
            return Err(Fault::gp(err));
        };
        let d = fetched.desc;
        let ok_type = d.typ() == sys_type::TSS_AVAIL || (!long && d.typ() == sys_type::TSS16_AVAIL);
        if d.is_segment() || !ok_type {
            return Err(Fault::gp(err));
        }
        if !d.present() {
            return Err(Fault::np(err));
        }
        let mut cache = d.cache(sel);
        if long && !canonical(cache.base) {
            return Err(Fault::gp(err));
        }
        // Mark it busy (type bit 1) in the GDT, then in the cache.
        let hi = d.hi | (2 << seg_helper::DESC_TYPE_SHIFT);
        let at = if long {
            fetched.addr.wrapping_add(4)
        } else {
            fetched.addr.wrapping_add(4) & 0xffff_ffff
        };
        m.write(at, 4, u64::from(hi), crate::paging::Privilege::Implicit)?;
        cache.flags |= 2 << seg_helper::DESC_TYPE_SHIFT;
        s.tr = cache;
        Ok(())
    })
}

/// Whether `v` is a valid IA32_PAT image (each byte a memory type: 0, 1, 4, 5, 6 or 7).
fn pat_ok(v: u64) -> bool {
    v.to_le_bytes().iter().all(|&b| matches!(b, 0 | 1 | 4..=7))
}

/// rdmsr of `index`: EFER, TSC, FS_BASE, GS_BASE and the [`crate::cpu::MSRS`] table; #GP(0) otherwise.
fn read_msr(s: &mut X86CpuState, index: u32) -> Result<u64, Fault> {
    Ok(match index {
        MSR_EFER => s.efer,
        msr::TSC => s.read_tsc(),
        msr::FS_BASE => s.segs[seg::FS].base,
        msr::GS_BASE => s.segs[seg::GS].base,
        _ => *s.msrs.slot(index).ok_or(Fault::gp(0))?,
    })
}

/// wrmsr: EFER (SCE, LME, NXE writable; LMA read-only, kept; LME cannot change while paging is on; other bits
/// #GP), TSC (sets `tsc_offset` so the TSC reads the value now), bases (non-canonical #GP), TSC_AUX (bits
/// 63:32 #GP), PAT (invalid memory types #GP), SYSENTER_CS/ESP/EIP, STAR, SFMASK, APIC_BASE and MISC_ENABLE
/// (stored). A change of EFER.NXE flushes the TLB.
fn write_msr(s: &mut X86CpuState, index: u32, v: u64) -> Result<Done, Fault> {
    let gp = Err(Fault::gp(0));
    let mut flush = Flush::None;
    match index {
        MSR_EFER => {
            if v & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0 {
                return gp;
            }
            if (v ^ s.efer) & EFER_LME != 0 && s.cr[0] & CR0_PG != 0 {
                return gp;
            }
            let new = (v & !EFER_LMA) | (s.efer & EFER_LMA);
            if (new ^ s.efer) & EFER_NXE != 0 {
                flush = Flush::All;
            }
            s.efer = new;
        }
        msr::TSC => {
            let clock = (s.tsc_clock)(s);
            s.tsc_offset = v.wrapping_sub(clock);
            s.tsc_last = 0;
        }
        msr::FS_BASE
        | msr::GS_BASE
        | msr::KERNEL_GS_BASE
        | msr::LSTAR
        | msr::CSTAR
        | msr::SYSENTER_ESP
        | msr::SYSENTER_EIP
            if !canonical(v) =>
        {
            return gp;
        }
        msr::FS_BASE => s.segs[seg::FS].base = v,
        msr::GS_BASE => s.segs[seg::GS].base = v,
        msr::TSC_AUX if v >> 32 != 0 => return gp,
        msr::PAT if !pat_ok(v) => return gp,
        _ => *s.msrs.slot(index).ok_or(Fault::gp(0))? = v,
    }
    Ok(Done {
        value: 0,
        flush,
        paging_written: false,
    })
}

/// A flat code segment cache (base 0, limit 4 GiB) for syscall/sysret/sysenter/sysexit: 64-bit (L) or
/// 32-bit (D), at `dpl`.
fn flat_code(sel: u16, dpl: u32, long: bool) -> SegmentCache {
    let size = if long { DESC_L } else { DESC_B };
    let mut c = SegmentCache::flat(
        sel,
        DESC_P | DESC_S | DESC_CS | DESC_R | DESC_A | DESC_G | size | dpl << DESC_DPL_SHIFT,
    );
    c.limit = 0xffff_ffff;
    c
}

/// A flat writable data segment cache (base 0, limit 4 GiB, B) at `dpl`.
fn flat_data(sel: u16, dpl: u32) -> SegmentCache {
    let mut c = SegmentCache::flat(
        sel,
        DESC_P | DESC_S | DESC_W | DESC_A | DESC_G | DESC_B | dpl << DESC_DPL_SHIFT,
    );
    c.limit = 0xffff_ffff;
    c
}

/// syscall (long mode): #UD without EFER.SCE. rcx = the next rip, r11 = RFLAGS (RF cleared); CS =
/// STAR[47:32] & 0xfffc (flat 64-bit code, DPL 0), SS = that + 8 (flat data); RFLAGS &= ~SFMASK, RF
/// cleared; rip = LSTAR from 64-bit mode, CSTAR from compatibility mode.
fn syscall(s: &mut X86CpuState, next_rip: u64) -> Result<(), Fault> {
    if s.efer & EFER_SCE == 0 || s.efer & EFER_LMA == 0 {
        return Err(Fault::ud());
    }
    let code64 = seg_helper::is_code64(s);
    let flags = s.rflags();
    s.regs[reg::RCX] = next_rip;
    s.regs[11] = flags & !eflags::RF;
    let sel = ((s.msrs.star >> 32) as u16) & 0xfffc;
    s.segs[seg::CS] = flat_code(sel, 0, true);
    s.segs[seg::SS] = flat_data(sel.wrapping_add(8), 0);
    s.set_rflags(flags & !s.msrs.fmask & !eflags::RF);
    s.rip = if code64 { s.msrs.lstar } else { s.msrs.cstar };
    Ok(())
}

/// sysret (64-bit mode): #UD without EFER.SCE; #GP(0) at CPL > 0, or for sysretq with a non-canonical rcx.
/// RFLAGS = r11 (RF and VM cleared); sysretq: CS = STAR[63:48] + 16 (64-bit code), rip = rcx; sysretd: CS =
/// STAR[63:48] (32-bit code), rip = ecx; SS = STAR[63:48] + 8; all with RPL 3.
fn sysret(s: &mut X86CpuState, wide: bool) -> Result<(), Fault> {
    if s.efer & EFER_SCE == 0 {
        return Err(Fault::ud());
    }
    if seg_helper::cpl(s) != 0 {
        return Err(Fault::gp(0));
    }
    let rcx = s.regs[reg::RCX];
    if wide && !canonical(rcx) {
        return Err(Fault::gp(0));
    }
    let base = (s.msrs.star >> 48) as u16;
    let (cs, rip) = if wide {
        (flat_code(base.wrapping_add(16) | 3, 3, true), rcx)
    } else {
        (flat_code(base | 3, 3, false), rcx & 0xffff_ffff)
    };
    s.segs[seg::CS] = cs;
    // SS keeps its cached attributes on hardware (only the selector's RPL changes); flat DPL 3 data is what
    // every OS puts there.
    s.segs[seg::SS] = flat_data(base.wrapping_add(8) | 3, 3);
    let r11 = s.regs[11];
    s.set_rflags((r11 & 0x3c_7fd7) | eflags::FIXED);
    s.rip = rip;
    Ok(())
}

/// sysenter: #GP(0) in real mode or with SYSENTER_CS = 0 (its selector bits). CS = SYSENTER_CS & 0xfffc (flat
/// code, 64-bit when long mode is active), SS = CS + 8; VM, IF and RF cleared; rsp = SYSENTER_ESP, rip =
/// SYSENTER_EIP (32 bits outside long mode).
fn sysenter(s: &mut X86CpuState) -> Result<(), Fault> {
    let cs = (s.msrs.sysenter[0] as u16) & 0xfffc;
    if !seg_helper::is_protected(s) || cs == 0 {
        return Err(Fault::gp(0));
    }
    let long = seg_helper::is_long_active(s);
    s.segs[seg::CS] = flat_code(cs, 0, long);
    s.segs[seg::SS] = flat_data(cs.wrapping_add(8), 0);
    let flags = s.rflags() & !(eflags::VM | eflags::IF | eflags::RF);
    s.set_rflags(flags);
    let mask = if long { u64::MAX } else { 0xffff_ffff };
    s.regs[reg::RSP] = s.msrs.sysenter[1] & mask;
    s.rip = s.msrs.sysenter[2] & mask;
    Ok(())
}

/// sysexit: #GP(0) in real mode, at CPL > 0 (vm86 included), or with SYSENTER_CS = 0; with REX.W a
/// non-canonical rdx or rcx #GP(0). sysexitq: CS = SYSENTER_CS + 32 (64-bit code), SS = + 40, rip = rdx,
/// rsp = rcx; otherwise CS = + 16 (32-bit code), SS = + 24, rip = edx, rsp = ecx; RPL 3.
fn sysexit(s: &mut X86CpuState, wide: bool) -> Result<(), Fault> {
    let base = (s.msrs.sysenter[0] as u16) & 0xfffc;
    if !seg_helper::is_protected(s) || seg_helper::cpl(s) != 0 || base == 0 {
        return Err(Fault::gp(0));
    }
    let (rdx, rcx) = (s.regs[reg::RDX], s.regs[reg::RCX]);
    if wide {
        if !canonical(rdx) || !canonical(rcx) {
            return Err(Fault::gp(0));
        }
        s.segs[seg::CS] = flat_code(base.wrapping_add(32) | 3, 3, true);
        s.segs[seg::SS] = flat_data(base.wrapping_add(40) | 3, 3);
        s.rip = rdx;
        s.regs[reg::RSP] = rcx;
    } else {
        s.segs[seg::CS] = flat_code(base.wrapping_add(16) | 3, 3, false);
        s.segs[seg::SS] = flat_data(base.wrapping_add(24) | 3, 3);
        s.rip = rdx & 0xffff_ffff;
        s.regs[reg::RSP] = rcx & 0xffff_ffff;
    }
    Ok(())
}
