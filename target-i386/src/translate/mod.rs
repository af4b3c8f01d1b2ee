//! Guest x86 code -> TCG IR: the per-TB [`DisasContext`], its translator-loop hooks, instruction dispatch,
//! and [`translate_tb`], a QEMU-like translator loop that drives the hooks.
//!
//! Files: `operand.rs` (registers with x86's partial-write rules, effective addresses, loads and stores),
//! `flags.rs` (lazy flags: setting them, and the gen_prepare_cc fast path), `alu.rs`, `muldiv.rs`, `bits.rs`,
//! `mov.rs`, `string.rs`, `stack.rs`, `branch.rs`, `system.rs`, `bmi.rs`, `x87.rs` (one instruction family each).
//!
//! # Conventions
//! - **PCs** are `rip` values (offsets in CS); code is fetched at `cs_base + rip`. In 64-bit mode CS's base is 0.
//! - **`insn_start`** words: `[rip, cc_op, 0]`, where `cc_op` is the [`CcOp`] encoding known statically at the
//!   start of the instruction, or 0 (`Dynamic`) when the `cc_op` global holds it. Restoring state at a fault:
//!   `rip = word0`; `cc_op = word1` unless it is 0. Every global (registers, lazy flags) is already stored.
//! - **`rip`** is written only where the TB leaves: exits and faults restore it from `insn_start`.
//! - **TB exits** (documented for the execution loop):
//!   - `goto_tb 0` / `goto_tb 1` after `rip = target` for a direct jump whose target is on the TB's first page
//!     (slot 0: the jump target or the next instruction of a straight-line TB; slot 1: the not-taken side of a
//!     jcc). The loop may chain the slot to the TB at `rip`.
//!   - `goto_ptr` of the loop's `lookup_tb_ptr` helper (when registered) or `exit_tb(EXIT_LOOKUP)`, after
//!     `rip = target`, for indirect jumps, returns and direct targets on another page.
//!   - A fault (TbExit::Fault) for exceptions: the `raise_exception` helper (unimplemented instructions: #UD)
//!     or a failing guest access; also for traps (int3, int n, into, int1) through `raise_interrupt`, which
//!     records the next instruction's rip in `exception_next_rip` and sets `exception_is_trap`: the loop
//!     restores the trapping instruction from `insn_start` as for a fault, then moves rip to the next one
//!     (`X86CpuState::complete_trap`).
//! - **Ends of TBs**: after a jump, call or return, when the next instruction starts on another page than the
//!   first, after `max_insns` instructions, and before an instruction whose bytes cannot be fetched (unless it
//!   is the first: then [`translate_tb`] reports the fetch fault and the loop raises #PF).
//!
//! # What is translated
//! - data movement: mov (all forms incl. imm64 and moffs), movzx, movsx, movsxd, lea, xchg, cbw/cwde/cdqe,
//!   cwd/cdq/cqo, bswap, movbe (load and store, 16/32/64), setcc, cmovcc, nop, pause;
//! - arithmetic: add, adc, sub, sbb, and, or, xor, cmp, test, inc, dec, neg, not, xadd, cmpxchg, cmpxchg8b,
//!   cmpxchg16b (lock accepted on memory forms); mul, imul (all forms), div, idiv (#DE);
//! - shifts and bits: shl/sal, shr, sar, rol, ror, rcl, rcr (imm, 1, CL), shld, shrd; bt, bts, btr, btc;
//!   bsf, bsr; popcnt, lzcnt, tzcnt; xlat;
//! - BMI1/BMI2 (`bmi.rs`, VEX-encoded, 32/64 bits): andn, bextr, blsi, blsmsk, blsr, bzhi, mulx, pdep, pext,
//!   rorx, sarx, shlx, shrx;
//! - flags: clc, stc, cmc, cld, std, lahf, sahf, pushf, popf (privilege rules above CPL 0 or in vm86; ends the
//!   TB);
//! - stack and control: push/pop (register, immediate, r/m), enter (any nesting level), leave, call/ret (near,
//!   ret imm16), jmp (rel, r/m), jcc, jrcxz/jecxz, loop/loope/loopne;
//! - strings: movs, stos, lods, cmps, scas with rep/repe/repne (one iteration per TB run, restartable);
//! - port I/O (`io.rs`): in, out (imm8 and DX ports, 8/16/32 bits), ins, outs (with rep); out/outs end the TB;
//! - cpuid, rdtsc, rdtscp, rdpid (`system.rs`; rdtsc/rdtscp honour CR4.TSD);
//! - system registers and instructions (`sysregs.rs`): mov to/from CR0/CR2/CR3/CR4/CR8 and DR0-DR7, clts,
//!   lmsw, smsw, invlpg, invd, wbinvd, lgdt/lidt/sgdt/sidt, lldt/ltr/sldt/str, rdmsr/wrmsr, syscall/sysret,
//!   sysenter/sysexit, swapgs, stac/clac;
//! - software interrupts and traps, delivered by the loop: int3 (#BP), int n, into (#OF when OF is set; #UD in
//!   64-bit mode), int1/icebp (#DB);
//! - segmentation (`seg.rs`, through `seg_helper`): mov to/from segment registers, push/pop of segment
//!   registers, lds/les/lfs/lgs/lss, far jmp/call (ptr16:16/32, m16:16/32/64), retf (imm16),
//!   iret/iretd/iretq, lar/lsl/verr/verw; cli, sti (interrupt shadow), hlt;
//! - SSE/SSE2 moves (`sse_moves.rs`): movd, movq, movdqa/movdqu, movaps/movups, movapd/movupd;
//! - SSE2/SSSE3/SSE4.1/SSE4.2 integer, logic, shuffle and move instructions and their MMX forms (`sse_int.rs`,
//!   `sse_int_moves.rs`, bodies in `crate::vec_helper`): padd/psub (all, saturating too), pmul*, pmadd*, psadbw, pavg, pmin/pmax,
//!   pcmpeq/pcmpgt, the logic ops (p and ps/pd), shifts, packs, unpacks, shuffles (pshuf*, shufps/pd, pshufb,
//!   palignr), pmovmskb/movmsk*, pinsr/pextr/insertps/extractps, blends, pmovsx/zx, ptest, phadd/phsub, psign,
//!   pabs, pmulhrsw, phminposuw, mpsadbw, pcmpgtq, crc32, pcmpestri/m and pcmpistri/m, maskmov*, movnt*,
//!   movntdqa, fences and prefetches (no-ops), movq2dq/movdq2q, movhps/movlps/movhpd/movlpd/movhlps/movlhps,
//!   movss/movsd, movd/movq with MMX registers, emms; with the CR0.EM/CR0.TS/CR4.OSFXSR checks on the TB flags;
//! - x87/SSE control state (`x87_state.rs`): fnstcw/fldcw, fnstsw, ldmxcsr/stmxcsr, fxsave/fxrstor;
//! - the x87 FPU (`x87.rs`, bodies in `crate::fpu_helper`): loads, stores, integer and BCD conversions, fxch,
//!   fcmovcc, constants, arithmetic in every form, fsqrt/fabs/fchs/frndint/fscale/fxtract/fprem/fprem1, compares
//!   (fcom*, fucom*, ficom*, fcomi*, ftst, fxam), ffree(p), fincstp/fdecstp, fnop, fninit, fnclex, fnstenv/fldenv,
//!   fnsave/frstor, wait, fneni/fndisi/fnsetpm (no-ops), and the transcendentals (fsin, fcos, fsincos, fptan, fpatan, f2xm1, fyl2x, fyl2xp1).
//! - SSE/SSE2/SSE3/SSE4.1 floating point (`sse_fp.rs`, helper in `sse_fp_helper.rs`): add, sub, mul, div,
//!   sqrt, min, max, rcp, rsqrt (ps/ss/pd/sd as they exist), cmpps/ss/pd/sd, comis/ucomis, every cvt form
//!   (MMX-register forms included), addsub/hadd/hsub, movddup/movshdup/movsldup/lddqu, round and dp;
//!
//! Everything else (and any operand that is not a general-purpose register, memory or immediate, outside the
//! segment-register forms above) raises #UD.

mod alu;
mod bcd;
mod bits;
mod bmi;
mod branch;
mod flags;
mod io;
mod mov;
mod muldiv;
mod operand;
mod seg;
mod sse_fp;
mod sse_int;
mod sse_int_moves;
mod sse_moves;
mod stack;
mod string;
mod sysregs;
mod system;
mod x87;
mod x87_state;

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic, OpKind};
use rqemu_include::TARGET_PAGE_MASK;
use rqemu_tcg::{Func, Temp};

use crate::cc::CcOp;
use crate::cpu::excp;
use crate::desc::I386Target;

/// The longest x86 instruction.
pub const MAX_INSN_LEN: usize = 15;

/// `exit_tb` value: `rip` is up to date, the loop looks up the next TB.
pub const EXIT_LOOKUP: u64 = 0;

/// `exit_tb` value of a single-stepped instruction that completed (`TbFlags::tf`): `rip` and the flags are
/// up to date; the loop sets DR6.BS and delivers #DB as a trap at `rip`.
pub const EXIT_SINGLE_STEP: u64 = rqemu_accel::cpu::EXIT_TARGET_BASE;

/// Code bytes as the translator sees them (natively: through the code TLB).
pub trait CodeFetch {
    /// Copies the code bytes at linear address `addr` into `buf`, as many as can be fetched, and returns how many.
    /// Fewer than `buf.len()` means the byte at `addr + returned` cannot be fetched (page fault).
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> usize;
}

/// The part of the CPU state a TB's translation depends on (part of the TB lookup key; `machine::tb_key_of`
/// computes it and `machine::tb_flags_word` packs it). Anything that changes one of these fields ends the TB
/// with a lookup (never `goto_tb`), so the next TB is found with the new flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TbFlags {
    /// Code size: 16, 32 or 64.
    pub bitness: u32,
    /// Stack addresses are 32-bit (SS.B) outside 64-bit mode.
    pub ss32: bool,
    /// CS base (0 in 64-bit mode).
    pub cs_base: u64,
    /// Current privilege level (`seg_helper::cpl`: 0 in real mode, 3 in vm86).
    pub cpl: u8,
    /// CR0.PE: protected mode (also set in vm86 and long mode).
    pub pe: bool,
    /// EFLAGS.VM: virtual-8086 mode.
    pub vm86: bool,
    /// EFER.LMA: long mode active (64-bit or compatibility mode).
    pub lma: bool,
    /// Outside 64-bit mode, DS, ES or SS has a nonzero base: memory operands add segment bases. When clear,
    /// only explicit FS/GS (or CS) overrides add a base (QEMU's ADDSEG: flat code pays nothing).
    pub addseg: bool,
    /// EFLAGS.AC (the SMAP override for supervisor data accesses; selects the MMU index).
    pub ac: bool,
    /// Interrupt shadow: the previous instruction was sti (enabling), mov ss or pop ss. Such a TB holds one
    /// instruction and clears `X86CpuState::interrupt_shadow` as it starts.
    pub inhibit_irq: bool,
    /// EFLAGS.TF: single-step. Such a TB holds one instruction and ends with [`EXIT_SINGLE_STEP`] instead of
    /// a jump or lookup, so the loop raises the #DB trap after it (QEMU's `gen_helper_single_step`).
    pub tf: bool,
    /// Outside 64-bit mode: bit `i` set when data accesses through segment register `i` (`cpu::seg` order)
    /// are checked against its limit and presence (`seg_helper::needs_data_check`). 0 for flat segments, so
    /// flat code pays nothing; a segment load ends the TB, so the bits are exact.
    pub seg_checks: u8,
    /// CR0.EM: x87 emulation; MMX and SSE instructions raise #UD.
    pub em: bool,
    /// CR0.TS: task switched; MMX and SSE instructions raise #NM.
    pub ts: bool,
    /// CR4.OSFXSR: the OS supports SSE; when clear, SSE instructions raise #UD.
    pub osfxsr: bool,
}

impl TbFlags {
    /// 64-bit mode at CPL 0.
    pub const LONG: TbFlags = TbFlags {
        bitness: 64,
        ss32: true,
        cs_base: 0,
        cpl: 0,
        pe: true,
        vm86: false,
        lma: true,
        addseg: false,
        ac: false,
        inhibit_irq: false,
        tf: false,
        seg_checks: 0,
        em: false,
        ts: false,
        osfxsr: true,
    };

    /// Flat 32-bit protected mode (not long mode) at CPL 0: CS base 0, 32-bit stack, no segment bases.
    pub const fn protected32() -> TbFlags {
        TbFlags {
            bitness: 32,
            lma: false,
            ..TbFlags::LONG
        }
    }

    /// 16-bit real mode with CS base 0, a 16-bit stack and zero DS/ES/SS bases (set `cs_base` and
    /// `addseg` for other segments).
    pub const fn real16() -> TbFlags {
        TbFlags {
            bitness: 16,
            ss32: false,
            pe: false,
            lma: false,
            ..TbFlags::LONG
        }
    }

    /// Whether this is 64-bit mode (segment bases other than FS/GS are ignored).
    pub const fn code64(&self) -> bool {
        self.bitness == 64
    }
}

/// Why the translator stopped, QEMU's `DisasJumpType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisasJump {
    /// Continue with the next instruction.
    Next,
    /// Stop and continue at `pc_next` (instruction count, page end, unfetchable next instruction).
    TooMany,
    /// The TB already ended (jump, exception).
    NoReturn,
}

/// The first instruction of a TB could not be fetched: the loop raises #PF at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchFault {
    /// The linear address that could not be fetched.
    pub addr: u64,
}

/// What [`translate_tb`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TbInfo {
    /// First instruction.
    pub pc_first: u64,
    /// Bytes of guest code covered.
    pub size: u64,
    /// Guest instructions translated.
    pub insns: u32,
}

/// The state of translating one TB.
pub struct DisasContext<'t> {
    target: &'t I386Target,
    /// Mode and CS base.
    pub flags: TbFlags,
    /// First instruction of the TB.
    pub pc_first: u64,
    /// The instruction being translated.
    pub pc: u64,
    /// The next instruction.
    pub pc_next: u64,
    /// Instructions started so far.
    pub num_insns: u32,
    /// Limit on instructions.
    pub max_insns: u32,
    /// Whether and how translation stops.
    pub is_jmp: DisasJump,
    /// Set when the first instruction could not be fetched.
    pub fetch_fault: Option<FetchFault>,
    /// The last decoded instruction.
    pub insn: Instruction,
    cc_op: CcOp,
    cc_srct: Option<Temp>,
    insn_ops_mark: usize,
    /// The FOP value of the current instruction when it is an x87 one (`x87.rs`).
    x87_fop: u16,
    /// The instruction is mov ss or pop ss: no single-step trap after it (see [`DisasContext::gen_exit_lookup`]).
    holds_single_step: bool,
}

impl<'t> DisasContext<'t> {
    /// QEMU's `init_disas_context`: a TB at `pc` in mode `flags`, at most `max_insns` instructions.
    pub fn new(target: &'t I386Target, pc: u64, flags: TbFlags, max_insns: u32) -> DisasContext<'t> {
        DisasContext {
            target,
            flags,
            pc_first: pc,
            pc,
            pc_next: pc,
            num_insns: 0,
            max_insns: max_insns.max(1),
            is_jmp: DisasJump::Next,
            fetch_fault: None,
            insn: Instruction::default(),
            cc_op: CcOp::DYNAMIC,
            cc_srct: None,
            insn_ops_mark: 0,
            x87_fop: 0,
            holds_single_step: false,
        }
    }

    /// QEMU's `tb_start` hook: the lazy flags start `Dynamic`; a TB in an interrupt shadow
    /// (`TbFlags::inhibit_irq`) clears `X86CpuState::interrupt_shadow` first (it holds one instruction, and
    /// interrupts are only taken between TBs, so the shadow covers exactly that instruction).
    pub fn tb_start(&mut self, f: &mut Func) {
        if self.flags.inhibit_irq {
            let zero = f.constant(rqemu_tcg::Type::I32, 0);
            f.store(rqemu_tcg::Opcode::St, zero, Temp::ENV, seg::SHADOW_OFFSET);
        }
    }

    /// QEMU's `insn_start` hook: marks the instruction at `pc_next`.
    pub fn insn_start(&mut self, f: &mut Func) {
        self.insn_ops_mark = f.ops.len();
        self.holds_single_step = false;
        self.pc = self.pc_next;
        self.num_insns += 1;
        f.insn_start([self.pc, self.cc_op.raw() as u64, 0]);
    }

    /// QEMU's `translate_insn` hook: decodes and translates the instruction at `pc`, advancing `pc_next` and
    /// setting `is_jmp` when the TB must end.
    pub fn translate_insn(&mut self, f: &mut Func, fetch: &mut dyn CodeFetch) {
        let mut window = [0u8; MAX_INSN_LEN];
        let linear = self.linear(self.pc);
        let avail = fetch.fetch(linear, &mut window);
        let mut decoder = Decoder::with_ip(self.flags.bitness, &window[..avail], self.pc, DecoderOptions::NONE);
        let insn = decoder.decode();
        if insn.is_invalid() && decoder.last_error() == DecoderError::NoMoreBytes && avail < MAX_INSN_LEN {
            // The instruction runs into bytes that cannot be fetched.
            let addr = linear.wrapping_add(avail as u64);
            f.ops.truncate(self.insn_ops_mark);
            if self.num_insns == 1 {
                self.fetch_fault = Some(FetchFault { addr });
                self.is_jmp = DisasJump::NoReturn;
            } else {
                self.num_insns -= 1;
                self.pc_next = self.pc;
                self.is_jmp = DisasJump::TooMany;
            }
            return;
        }
        self.insn = insn;
        // The x87 opcode (FOP): the low 3 bits of the D8..DF byte and the ModRM byte after it (prefixes never
        // fall in that range).
        self.x87_fop = window[..insn.len().min(avail)]
            .windows(2)
            .find(|w| (0xd8..=0xdf).contains(&w[0]))
            .map_or(0, |w| u16::from(w[0] & 7) << 8 | u16::from(w[1]));
        self.pc_next = if insn.is_invalid() {
            self.pc.wrapping_add(1)
        } else {
            insn.next_ip()
        };
        if insn.is_invalid() || !self.dispatch(f) {
            self.gen_exception(f, excp::UD, 0);
        }
        if self.is_jmp == DisasJump::Next
            && (self.num_insns >= self.max_insns
                || self.flags.inhibit_irq
                || self.flags.tf
                || self.linear(self.pc_next) & TARGET_PAGE_MASK != self.linear(self.pc_first) & TARGET_PAGE_MASK)
        {
            self.is_jmp = DisasJump::TooMany;
        }
    }

    /// QEMU's `tb_stop` hook: ends a TB that stopped without a jump.
    pub fn tb_stop(&mut self, f: &mut Func) {
        if self.is_jmp == DisasJump::TooMany {
            if self.flags.inhibit_irq {
                // Back to the loop, which takes a pending interrupt now that the shadow is over.
                self.gen_eob(f);
            } else {
                self.gen_jmp_tb(f, 0, self.pc_next);
            }
        }
    }

    /// `exit_tb` back to the loop with `rip` already written: a lookup, or the single-step trap when
    /// EFLAGS.TF was set as the instruction started (unless it is mov ss/pop ss, which hold the trap over the
    /// next instruction as they hold interrupts).
    pub(super) fn gen_exit_lookup(&mut self, f: &mut Func) {
        if self.flags.tf && !self.holds_single_step {
            f.exit_tb(EXIT_SINGLE_STEP);
        } else {
            f.exit_tb(EXIT_LOOKUP);
        }
    }

    /// The linear address of `rip`.
    pub fn linear(&self, rip: u64) -> u64 {
        let a = self.flags.cs_base.wrapping_add(rip);
        if self.flags.bitness == 64 {
            a
        } else {
            a & 0xffff_ffff
        }
    }

    /// The MMU index of this TB's explicit data accesses: user at CPL 3, else supervisor with SMAP enforced or
    /// overridden by EFLAGS.AC (`machine`'s MMU index table).
    pub fn mem_index(&self) -> rqemu_include::MmuIdx {
        crate::machine::data_mmu_index(self.flags.cpl, self.flags.ac)
    }

    /// The target this context translates for.
    pub fn target(&self) -> &'t I386Target {
        self.target
    }

    /// Translates one instruction; false when it is not implemented (the caller raises #UD).
    fn dispatch(&mut self, f: &mut Func) -> bool {
        // Before the string dispatch: ins/outs have string operands too.
        if let Some(done) = self.dispatch_io(f) {
            return done;
        }
        if matches!(self.insn.mnemonic(), Mnemonic::Maskmovdqu | Mnemonic::Maskmovq) {
            // Before the string dispatch: iced-x86 gives maskmov an implicit [rdi] string-style operand.
            return self.gen_sse_int(f);
        }
        let i = &self.insn;
        if (0..i.op_count()).any(|n| string::is_string_operand(i.op_kind(n))) {
            return self.gen_string(f);
        }
        if let Some(done) = self.dispatch_seg(f) {
            return done;
        }
        if let Some(done) = self.dispatch_sysregs(f) {
            return done;
        }
        if let Some(done) = self.dispatch_x87(f) {
            return done;
        }
        use Mnemonic as M;
        match self.insn.mnemonic() {
            M::Movd | M::Movq if self.has_mmx_operand() => return self.gen_mmx_movq(f),
            M::Movd | M::Movq | M::Movdqa | M::Movdqu | M::Movaps | M::Movups | M::Movapd | M::Movupd => {
                if self.gen_sse_enabled(f, false) {
                    return self.gen_sse_move(f);
                }
                return true;
            }
            m if sse_int::handles(m) => return self.gen_sse_int(f),
            M::Fnstcw | M::Fstcw | M::Fldcw | M::Fnstsw | M::Fstsw => return self.gen_x87_state(f),
            M::Ldmxcsr | M::Stmxcsr => return !self.gen_sse_enabled(f, false) || self.gen_x87_state(f),
            M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 => {
                // #NM for CR0.EM or CR0.TS, known from the TB flags like the SSE checks (CR4.OSFXSR only
                // selects whether XMM state is included).
                if self.flags.em || self.flags.ts {
                    self.gen_exception(f, excp::NM, 0);
                    return true;
                }
                return self.gen_x87_state(f);
            }
            m if sse_fp::is_sse_fp(m) => return self.gen_sse_fp(f),
            _ => {}
        }
        if !self.operands_supported() {
            return false;
        }
        match self.insn.mnemonic() {
            M::Add | M::Adc | M::Sub | M::Sbb | M::And | M::Or | M::Xor | M::Cmp | M::Test => self.gen_alu(f),
            M::Inc | M::Dec | M::Neg | M::Not => self.gen_unary(f),
            M::Shl | M::Sal | M::Shr | M::Sar => self.gen_shift(f),
            M::Shld | M::Shrd => self.gen_shxd(f),
            M::Rol | M::Ror => self.gen_rotate(f),
            M::Rcl | M::Rcr => self.gen_rotate_carry(f),
            M::Bt | M::Bts | M::Btr | M::Btc => self.gen_bt(f),
            M::Bsf | M::Bsr => self.gen_bitscan(f),
            M::Bswap => self.gen_bswap(f),
            M::Popcnt | M::Lzcnt | M::Tzcnt => self.gen_count(f),
            M::Xlatb => self.gen_xlat(f),
            M::Xadd => self.gen_xadd(f),
            M::Cmpxchg => self.gen_cmpxchg(f),
            M::Cmpxchg8b | M::Cmpxchg16b => self.gen_cmpxchg_wide(f),
            M::Cpuid => self.gen_cpuid(f),
            M::Rdtsc | M::Rdtscp => self.gen_rdtsc(f),
            M::Rdpid => self.gen_rdpid(f),
            M::Int3 | M::Int | M::Int1 | M::Into => self.gen_interrupt(f),
            M::Andn
            | M::Bextr
            | M::Blsi
            | M::Blsmsk
            | M::Blsr
            | M::Bzhi
            | M::Mulx
            | M::Pdep
            | M::Pext
            | M::Rorx
            | M::Sarx
            | M::Shlx
            | M::Shrx => self.gen_bmi(f),
            M::Movbe => self.gen_movbe(f),
            M::Enter => self.gen_enter(f),
            M::Jrcxz | M::Jecxz | M::Jcxz | M::Loop | M::Loope | M::Loopne => self.gen_loop(f),
            M::Mul | M::Imul => self.gen_mul(f),
            M::Div | M::Idiv => self.gen_div(f),
            M::Lahf => self.gen_lahf(f),
            M::Sahf => self.gen_sahf(f),
            M::Pushf | M::Pushfd | M::Pushfq => self.gen_pushf(f),
            M::Popf | M::Popfd | M::Popfq => self.gen_popf(f),
            M::Clc | M::Stc | M::Cmc => self.gen_carry_op(f),
            M::Cld | M::Std => self.gen_direction(f),
            M::Mov => self.gen_mov(f),
            M::Movzx | M::Movsx | M::Movsxd => self.gen_movx(f),
            M::Lea => self.gen_lea(f),
            M::Xchg => self.gen_xchg(f),
            M::Cbw | M::Cwde | M::Cdqe => self.gen_widen_acc(f),
            M::Cwd | M::Cdq | M::Cqo => self.gen_sign_to_dx(f),
            M::Nop | M::Pause => true,
            M::Setb
            | M::Setae
            | M::Sete
            | M::Setne
            | M::Setbe
            | M::Seta
            | M::Sets
            | M::Setns
            | M::Setp
            | M::Setnp
            | M::Setl
            | M::Setge
            | M::Setle
            | M::Setg
            | M::Seto
            | M::Setno => self.gen_setcc(f),
            M::Cmovb
            | M::Cmovae
            | M::Cmove
            | M::Cmovne
            | M::Cmovbe
            | M::Cmova
            | M::Cmovs
            | M::Cmovns
            | M::Cmovp
            | M::Cmovnp
            | M::Cmovl
            | M::Cmovge
            | M::Cmovle
            | M::Cmovg
            | M::Cmovo
            | M::Cmovno => self.gen_cmovcc(f),
            M::Push => self.gen_push(f),
            M::Pop => self.gen_pop(f),
            M::Pusha | M::Pushad => self.gen_pusha(f),
            M::Popa | M::Popad => self.gen_popa(f),
            M::Aaa | M::Aas | M::Daa | M::Das | M::Aam | M::Aad | M::Bound | M::Arpl => self.gen_bcd(f),
            M::Leave => self.gen_leave(f),
            M::Jmp => self.gen_jmp(f),
            M::Call => self.gen_call(f),
            M::Ret => self.gen_ret(f),
            M::Jo
            | M::Jno
            | M::Jb
            | M::Jae
            | M::Je
            | M::Jne
            | M::Jbe
            | M::Ja
            | M::Js
            | M::Jns
            | M::Jp
            | M::Jnp
            | M::Jl
            | M::Jge
            | M::Jle
            | M::Jg => self.gen_jcc(f),
            _ => false,
        }
    }

    /// Whether every operand is a general-purpose register, memory, an immediate or a near branch. rep/repne
    /// on anything but a string instruction is ignored, as CPUs do (`rep ret`); where F2/F3 change the
    /// instruction iced-x86 decodes another mnemonic. lock is valid (iced-x86 rejects it elsewhere) only on
    /// read-modify-write memory forms, which one vCPU thread executes atomically anyway.
    fn operands_supported(&self) -> bool {
        let i = &self.insn;
        if i.has_lock_prefix() && i.op_kind(0) != OpKind::Memory {
            return false;
        }
        (0..i.op_count()).all(|n| match i.op_kind(n) {
            OpKind::Register => operand::gpr(i.op_register(n)).is_some(),
            OpKind::Memory
            | OpKind::NearBranch16
            | OpKind::NearBranch32
            | OpKind::NearBranch64
            | OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => true,
            _ => false,
        })
    }

    /// Whether an operand is an MMX register.
    fn has_mmx_operand(&self) -> bool {
        let i = &self.insn;
        (0..i.op_count()).any(|n| {
            i.op_kind(n) == OpKind::Register
                && (i.op_register(n) as usize).wrapping_sub(iced_x86::Register::MM0 as usize) < 8
        })
    }

    /// Raises exception `vector` at the current instruction and ends the TB.
    pub fn gen_exception(&mut self, f: &mut Func, vector: u32, error_code: u32) {
        let v = f.constant(rqemu_tcg::Type::I32, vector as u64);
        let e = f.constant(rqemu_tcg::Type::I32, error_code as u64);
        f.call(self.target.helpers.raise_exception, None, &[v, e]);
        // Not reached: the helper always faults. The IR still needs an exit.
        let rip = I386Target::global(crate::desc::global::RIP);
        f.movi(rip, self.pc);
        f.exit_tb(EXIT_LOOKUP);
        self.is_jmp = DisasJump::NoReturn;
    }
}

/// QEMU's translator loop over the hooks of [`DisasContext`]: translates the TB at `pc` into `f` (which is
/// reset first). The execution loop may drive the hooks itself instead.
pub fn translate_tb(
    target: &I386Target,
    f: &mut Func,
    pc: u64,
    flags: TbFlags,
    max_insns: u32,
    fetch: &mut dyn CodeFetch,
) -> Result<TbInfo, FetchFault> {
    f.reset();
    let mut dc = DisasContext::new(target, pc, flags, max_insns);
    dc.tb_start(f);
    while dc.is_jmp == DisasJump::Next {
        dc.insn_start(f);
        dc.translate_insn(f, fetch);
    }
    if let Some(fault) = dc.fetch_fault {
        return Err(fault);
    }
    dc.tb_stop(f);
    Ok(TbInfo {
        pc_first: pc,
        size: dc.pc_next.wrapping_sub(pc),
        insns: dc.num_insns,
    })
}

/// One line per instruction decoded from `bytes` at `pc`: its address, its bytes and, with the `disas` feature,
/// its Intel-syntax text (`-d in_asm`, mismatch reports). Without the feature the decoder still splits the
/// instructions, so each line holds exactly one instruction's bytes.
pub fn disassemble(bytes: &[u8], pc: u64, bitness: u32) -> String {
    #[cfg(feature = "disas")]
    use iced_x86::{Formatter, IntelFormatter};
    let mut decoder = Decoder::with_ip(bitness, bytes, pc, DecoderOptions::NONE);
    #[cfg(feature = "disas")]
    let mut formatter = IntelFormatter::new();
    let mut out = String::new();
    while decoder.can_decode() {
        let insn = decoder.decode();
        let start = (insn.ip() - pc) as usize;
        let hex: String = bytes[start..start + insn.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        #[cfg(feature = "disas")]
        {
            out.push_str(&format!("0x{:016x}:  {hex:<30} ", insn.ip()));
            formatter.format(&insn, &mut out);
        }
        #[cfg(not(feature = "disas"))]
        out.push_str(&format!("0x{:016x}:  {hex}", insn.ip()));
        out.push('\n');
    }
    out
}

pub(crate) use bits::{helper_rotate_carry, helper_rotate_carry_flags};
pub(crate) use bmi::helper_pdep_pext;
pub(crate) use io::register_io_helpers;
pub use io::IoHelpers;
pub(crate) use muldiv::helper_divide;
pub(crate) use seg::register_seg_helpers;
pub use seg::SegHelpers;
pub(crate) use sysregs::register_sysreg_helper;
pub(crate) use system::{helper_cpuid, helper_raise_interrupt, helper_rdtsc};
pub use x87_state::MXCSR_MASK;
