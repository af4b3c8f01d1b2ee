//! Seeded generation of differential cases: an initial [`CpuState`] plus one instruction (or a short sequence)
//! encoded with iced-x86's encoder. Running cases lives in `native.rs`; comparing, in `compare.rs`.
//!
//! The instruction forms are not listed by hand: each [`Family`] lists its mnemonics (in one place,
//! [`Family::mnemonics`]) and every 64-bit-mode [`Code`] of them is a form (legacy-encoded; VEX for the BMI
//! family) when either its operands are all of a kind this file can fill (GPRs incl. VEX.vvvv, r/m, XMM and
//! XMM/m, immediates incl. imm64, moffs, the fixed AL/CL/AX/DX/EAX/RAX, memory, an LEA address), or
//! `generate/snippets.rs` builds a case around it (stack, string, branch, xlat and x87-control forms). Each case
//! picks a form and fills it:
//! - register operands get edge values of the operand width (0, 1, -1, MIN, MAX, single bits, ...) with random or
//!   all-zero/all-one bits above the width;
//! - memory operands use a base register (and sometimes an index) set so that the effective address lands inside
//!   the scratch data area, misaligned as often as aligned (16-byte operands: aligned three times in four, so the
//!   aligned SSE forms and cmpxchg16b also #GP); the operand's bytes get an edge value (random beyond 8 bytes);
//! - shift/rotate counts (CL or imm8) come from 0, 1, width-1, width, width+1, 31, 32, 63, 64, 255;
//! - RFLAGS gets a random subset of the status flags (so carry-in is set or clear), XMM random, MXCSR default;
//! - divides get a zero or sign-extended high half half of the time (so they do not always raise #DE), CMPXCHG an
//!   accumulator equal to the destination half of the time, BT with a register bit offset on memory an offset that
//!   stays inside the scratch area, memory destinations a LOCK prefix sometimes;
//! - implicit inputs get values too: RAX for cbw..cqo, AH for sahf, RDX for mulx, EDX:EAX (RDX:RAX) equal to the
//!   memory half the time for cmpxchg8b/16b, a valid or reserved-bit image for ldmxcsr (never bit 17: AMD's
//!   misaligned-SSE mode bit, which this host accepts), a random valid MXCSR for stmxcsr, a small start/length
//!   control for bextr/bzhi half the time.
//!
//! 32- and 16-bit code (`GenOptions::bitness`): the forms valid in that mode, encoded for it, EAX..EDI only (no
//! REX); in 16-bit code only the filled forms, with 16-bit addressing (`[bx|bp + si|di + disp16]`) of offsets into
//! the data segment based at `SCRATCH_ADDR` (`Fill::data_base`). The `Legacy` family (BCD, bound, arpl, into)
//! exists only there.
//!
//! Invariants. The base and index registers are reserved for the whole case (no instruction writes them; RAX,
//! RCX, RDX are never chosen, since they are the implicit operands of cbw..cqo, lahf, mul/div, cmpxchg8b/16b,
//! mulx, fnstsw ax), so sequences cannot send a later memory operand outside the scratch area. RSP is never an
//! operand of a filled form and always starts at `SCRATCH_STACK_TOP`. Snippets (see their module) use RSP, RBP,
//! RSI, RDI, RCX, RBX and the stack bytes implicitly; they set these themselves and therefore only ever make a
//! whole case, never a later instruction of a sequence. No generated instruction reads flags an earlier one of
//! the same case may have left undefined (see `try_case`).

use crate::state::{flags, Case, CpuState, CODE_SIZE, MXCSR_DEFAULT, SCRATCH_ADDR, SCRATCH_DATA_LEN, SCRATCH_LEN};
use crate::state::{CODE_ADDR, RSP, SCRATCH_STACK_TOP};
use crate::undefined_flags;
use iced_x86::{Code, Encoder, EncodingKind, Instruction, MemoryOperand, Mnemonic, OpCodeOperandKind as K, Register};

pub mod fp_edges;
mod simd;
mod snippets;
pub mod x87;

/// An instruction of `code` with no operands filled in yet. iced-x86's `Instruction::with` debug-asserts that the
/// code takes no operands; the generator fills operands afterwards (or only asks for the memory size).
pub(crate) fn bare_instruction(code: Code) -> Instruction {
    let mut insn = Instruction::default();
    insn.set_code(code);
    insn
}

/// SplitMix64: a tiny, well-mixed PRNG that needs no crate and gives the same stream on every host.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Groups of mnemonics to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// add adc sub sbb and or xor cmp test
    Alu,
    /// inc dec neg not
    Unary,
    /// rol ror rcl rcr shl sal shr sar
    Shift,
    /// shld shrd
    DoubleShift,
    /// mul imul div idiv
    MulDiv,
    /// bt bts btr btc
    BitTest,
    /// bsf bsr
    BitScan,
    /// movzx movsx movsxd
    Extend,
    /// setcc cmovcc
    Conditional,
    /// lea
    Lea,
    /// bswap
    Bswap,
    /// xchg xadd cmpxchg
    Exchange,
    /// push pop pushf popf leave enter call ret (snippets that keep RSP in the scratch stack)
    Stack,
    /// movs cmps stos lods scas, with and without rep/repe/repne, both directions
    String,
    /// jcc jmp jrcxz jecxz loop loope loopne (forward targets inside the case; bounded backward loops)
    Branch,
    /// mov (all forms), cbw..cqo, xlat, lahf/sahf, clc/stc/cmc/cld/std, nop, pause, popcnt/lzcnt/tzcnt,
    /// cmpxchg8b/cmpxchg16b
    Misc,
    /// SSE/SSE2 data moves, pxor/xorps/xorpd, ldmxcsr/stmxcsr
    SseMove,
    /// fninit/finit, fldcw, fnstcw/fstcw, fnstsw/fstsw, wait: always bracketed by fninit (x87 state is not compared)
    X87Control,
    /// BMI1/BMI2 (VEX) and movbe
    Bmi,
    /// aaa aas daa das aam aad, bound, arpl, into (32-bit code only: #UD in 64-bit mode)
    Legacy,
    /// Every form with an MMX register operand (MMX itself and the MMX forms SSE, SSE2 and SSSE3 added: pavgb,
    /// pshufw, paddq, pshufb, cvtpi2ps, movq2dq, ...), emms (see `generate/simd.rs`)
    Mmx,
    /// SSE2 integer and shuffle instructions on XMM
    Sse2Int,
    /// SSSE3
    Ssse3,
    /// SSE4.1 integer, shuffle, insert/extract and test instructions
    Sse41Int,
    /// SSE4.2: pcmpestri/pcmpestrm/pcmpistri/pcmpistrm, pcmpgtq, crc32
    Sse42,
    /// SSE (single precision): arithmetic, sqrt, min/max, rcp/rsqrt, cmpps/cmpss, comiss/ucomiss, conversions,
    /// logic and shuffles, movss/movhps/..., movmskps
    Sse1Fp,
    /// SSE2 double precision and the conversions
    Sse2Fp,
    /// SSE3: haddps/hsubps/addsubps (and pd), movddup/movshdup/movsldup, lddqu
    Sse3,
    /// SSE4.1 floating point: roundps/ss/pd/sd, dpps/dppd, blend*, insertps/extractps
    Sse41Fp,
    /// x87 loads and stores (float, integer, BCD), constants, fxch, ffree, fincstp/fdecstp, fnclex, fcmovcc,
    /// fnstenv/fldenv/fnsave/frstor
    X87LoadStore,
    /// x87 arithmetic (all forms of fadd..fdivr), fchs, fabs, frndint, fsqrt, fscale, fxtract, fprem, fprem1
    X87Arith,
    /// x87 comparisons: fcom*, fucom*, fcomi*, fucomi*, ficom*, ftst, fxam
    X87Compare,
    /// x87 transcendentals: fsin fcos fsincos fptan fpatan f2xm1 fyl2x fyl2xp1 (compared with a tolerance)
    X87Transcendental,
}

/// Families that exist but are not in the default mix ([`Family::DEFAULT`]) because rqemu does not implement
/// them yet: they would only produce mismatches. Run them explicitly with `cpu-diff --families <name>` (or
/// `--families pending`). The integrator removes a family from this list when the emulator implements it (then
/// `cargo xtask fuzz-cpu` must stay at mismatches=0 with it, and the coverage test checks that what is drawn is
/// implemented), and re-records the vectors (`cargo run --release -p rqemu-tests-cpu-diff --bin
/// cpu-diff-record`, see tests/cpu-diff/README.md).
pub const PENDING_FAMILIES: &[Family] = &[];

/// The floating-point and vector families (issue 5): MMX, the SSE extensions, the x87 beyond its control
/// instructions. Their cases start from random x87/MXCSR control words, so they may end in #MF or #XM.
pub const FP_SIMD_FAMILIES: [Family; 13] = [
    Family::Mmx,
    Family::Sse2Int,
    Family::Ssse3,
    Family::Sse41Int,
    Family::Sse42,
    Family::Sse1Fp,
    Family::Sse2Fp,
    Family::Sse3,
    Family::Sse41Fp,
    Family::X87LoadStore,
    Family::X87Arith,
    Family::X87Compare,
    Family::X87Transcendental,
];

impl Family {
    /// Every family: what `cargo xtask fuzz-cpu` and the recorded vectors draw from (`coverage.rs` checks that
    /// together they cover every mnemonic the frontend implements).
    pub const ALL: [Family; 33] = [
        Family::Alu,
        Family::Unary,
        Family::Shift,
        Family::DoubleShift,
        Family::MulDiv,
        Family::BitTest,
        Family::BitScan,
        Family::Extend,
        Family::Conditional,
        Family::Lea,
        Family::Bswap,
        Family::Exchange,
        Family::Stack,
        Family::String,
        Family::Branch,
        Family::Misc,
        Family::SseMove,
        Family::X87Control,
        Family::Bmi,
        Family::Legacy,
        Family::Mmx,
        Family::Sse2Int,
        Family::Ssse3,
        Family::Sse41Int,
        Family::Sse42,
        Family::Sse1Fp,
        Family::Sse2Fp,
        Family::Sse3,
        Family::Sse41Fp,
        Family::X87LoadStore,
        Family::X87Arith,
        Family::X87Compare,
        Family::X87Transcendental,
    ];

    /// The default mix: every family not in [`PENDING_FAMILIES`].
    pub fn default_mix() -> Vec<Family> {
        Family::ALL
            .into_iter()
            .filter(|f| !PENDING_FAMILIES.contains(f))
            .collect()
    }

    /// Whether the family's instructions work on MMX or XMM registers (only these draw forms with such
    /// operands; see [`Family::owns`]).
    pub fn is_simd(self) -> bool {
        matches!(self, Family::SseMove) || !simd::mnemonics(self).is_empty() || self == Family::Mmx
    }

    /// Whether this family draws `code`: the mnemonic is the family's, and the operands are of its domain: forms
    /// with an MMX register are [`Family::Mmx`]'s alone (so MMX is fuzzed, and can land, apart from SSE),
    /// XMM forms are the other SIMD families' (the String family's movsd/cmpsd are the string instructions
    /// only).
    pub fn owns(self, code: Code) -> bool {
        if !self.mnemonics().contains(&code.mnemonic()) {
            return false;
        }
        if simd::has_mm_operand(code) {
            self == Family::Mmx
        } else if simd::has_simd_operand(code) {
            self.is_simd() && self != Family::Mmx
        } else {
            // The SIMD families' GPR-only forms (crc32, movnti, fences) are theirs; the string movsd/cmpsd are not.
            !self.is_simd() || self == Family::SseMove || !snippets::is_snippet_mnemonic(code.mnemonic())
        }
    }

    /// The mnemonics of this family (the one list per family; forms are derived from it).
    pub fn mnemonics(self) -> &'static [Mnemonic] {
        use Mnemonic as M;
        match self {
            Family::Alu => &[M::Add, M::Adc, M::Sub, M::Sbb, M::And, M::Or, M::Xor, M::Cmp, M::Test],
            Family::Unary => &[M::Inc, M::Dec, M::Neg, M::Not],
            Family::Shift => &[M::Rol, M::Ror, M::Rcl, M::Rcr, M::Shl, M::Sal, M::Shr, M::Sar],
            Family::DoubleShift => &[M::Shld, M::Shrd],
            Family::MulDiv => &[M::Mul, M::Imul, M::Div, M::Idiv],
            Family::BitTest => &[M::Bt, M::Bts, M::Btr, M::Btc],
            Family::BitScan => &[M::Bsf, M::Bsr],
            Family::Extend => &[M::Movzx, M::Movsx, M::Movsxd],
            Family::Conditional => &[
                M::Seto,
                M::Setno,
                M::Setb,
                M::Setae,
                M::Sete,
                M::Setne,
                M::Setbe,
                M::Seta,
                M::Sets,
                M::Setns,
                M::Setp,
                M::Setnp,
                M::Setl,
                M::Setge,
                M::Setle,
                M::Setg,
                M::Cmovo,
                M::Cmovno,
                M::Cmovb,
                M::Cmovae,
                M::Cmove,
                M::Cmovne,
                M::Cmovbe,
                M::Cmova,
                M::Cmovs,
                M::Cmovns,
                M::Cmovp,
                M::Cmovnp,
                M::Cmovl,
                M::Cmovge,
                M::Cmovle,
                M::Cmovg,
            ],
            Family::Lea => &[M::Lea],
            Family::Bswap => &[M::Bswap],
            Family::Exchange => &[M::Xchg, M::Xadd, M::Cmpxchg],
            Family::Stack => &[
                M::Push,
                M::Pop,
                M::Pushf,
                M::Pushfq,
                M::Popf,
                M::Popfq,
                // 32-bit code only.
                M::Pushfd,
                M::Popfd,
                M::Pusha,
                M::Pushad,
                M::Popa,
                M::Popad,
                M::Leave,
                M::Enter,
                M::Call,
                M::Ret,
            ],
            Family::String => &[
                M::Movsb,
                M::Movsw,
                M::Movsd,
                M::Movsq,
                M::Cmpsb,
                M::Cmpsw,
                M::Cmpsd,
                M::Cmpsq,
                M::Stosb,
                M::Stosw,
                M::Stosd,
                M::Stosq,
                M::Lodsb,
                M::Lodsw,
                M::Lodsd,
                M::Lodsq,
                M::Scasb,
                M::Scasw,
                M::Scasd,
                M::Scasq,
            ],
            Family::Branch => &[
                M::Jo,
                M::Jno,
                M::Jb,
                M::Jae,
                M::Je,
                M::Jne,
                M::Jbe,
                M::Ja,
                M::Js,
                M::Jns,
                M::Jp,
                M::Jnp,
                M::Jl,
                M::Jge,
                M::Jle,
                M::Jg,
                M::Jmp,
                M::Jrcxz,
                M::Jecxz,
                // 32-bit code only (0x67 E3: CX).
                M::Jcxz,
                M::Loop,
                M::Loope,
                M::Loopne,
            ],
            Family::Misc => &[
                M::Mov,
                M::Cbw,
                M::Cwde,
                M::Cdqe,
                M::Cwd,
                M::Cdq,
                M::Cqo,
                M::Xlatb,
                M::Lahf,
                M::Sahf,
                M::Clc,
                M::Stc,
                M::Cmc,
                M::Cld,
                M::Std,
                M::Nop,
                M::Pause,
                M::Popcnt,
                M::Lzcnt,
                M::Tzcnt,
                M::Cmpxchg8b,
                M::Cmpxchg16b,
            ],
            Family::SseMove => &[
                M::Movd,
                M::Movq,
                M::Movdqa,
                M::Movdqu,
                M::Movaps,
                M::Movups,
                M::Movapd,
                M::Movupd,
                M::Pxor,
                M::Xorps,
                M::Xorpd,
                M::Ldmxcsr,
                M::Stmxcsr,
            ],
            Family::X87Control => &[
                M::Fninit,
                M::Finit,
                M::Fldcw,
                M::Fnstcw,
                M::Fstcw,
                M::Fnstsw,
                M::Fstsw,
                M::Wait,
            ],
            Family::Bmi => &[
                M::Andn,
                M::Bextr,
                M::Blsi,
                M::Blsmsk,
                M::Blsr,
                M::Bzhi,
                M::Mulx,
                M::Pdep,
                M::Pext,
                M::Rorx,
                M::Sarx,
                M::Shlx,
                M::Shrx,
                M::Movbe,
            ],
            Family::Legacy => &[
                M::Aaa,
                M::Aas,
                M::Daa,
                M::Das,
                M::Aam,
                M::Aad,
                M::Bound,
                M::Arpl,
                M::Into,
            ],
            Family::X87LoadStore => x87::LOAD_STORE,
            Family::X87Arith => x87::ARITH,
            Family::X87Compare => x87::COMPARE,
            Family::X87Transcendental => x87::TRANSCENDENTAL,
            simd_family => simd::mnemonics(simd_family),
        }
    }

    /// Parses a family name as `Debug` prints it, case-insensitively, with `-` and `_` ignored (`sse2-int`,
    /// `x87_arith`; for `cpu-diff --families`).
    pub fn from_name(name: &str) -> Option<Family> {
        let norm = |s: &str| s.replace(['-', '_'], "").to_ascii_lowercase();
        Family::ALL.into_iter().find(|f| norm(&format!("{f:?}")) == norm(name))
    }

    /// Parses a comma-separated list of family names and groups: `default` (the default mix), `pending`
    /// ([`PENDING_FAMILIES`]), `all`, `sse-int` (SSE2/SSSE3/SSE4.1/SSE4.2 integer), `sse-fp` (the four SSE FP
    /// families), `x87` (the four x87 families). `Err` names the first unknown entry.
    pub fn parse_list(list: &str) -> Result<Vec<Family>, String> {
        use Family as F;
        let mut out: Vec<Family> = Vec::new();
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let group: Vec<Family> = match name.to_ascii_lowercase().as_str() {
                "default" => Family::default_mix(),
                "pending" => PENDING_FAMILIES.to_vec(),
                "all" => Family::ALL.to_vec(),
                "sse-int" => vec![F::Sse2Int, F::Ssse3, F::Sse41Int, F::Sse42],
                "sse-fp" => vec![F::Sse1Fp, F::Sse2Fp, F::Sse3, F::Sse41Fp],
                "x87" => vec![F::X87LoadStore, F::X87Arith, F::X87Compare, F::X87Transcendental],
                _ => vec![Family::from_name(name).ok_or_else(|| format!("unknown family `{name}`"))?],
            };
            for f in group {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub families: Vec<Family>,
    /// Instructions per case: 1 (the default) up to this many.
    pub max_insns: usize,
    /// Compact cases for recorded vector sets: XMM registers and the scratch bytes no operand uses start at zero
    /// instead of random (a recorded line shrinks from about 1.5 KB to about 0.4 KB).
    pub compact: bool,
    /// Code size of the cases: 64 (the default) or 32 (32-bit code: forms valid in 32-bit mode, encoded with
    /// bitness 32, EAX..EDI only).
    pub bitness: u32,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            families: Family::default_mix(),
            max_insns: 1,
            compact: false,
            bitness: 64,
        }
    }
}

/// Operand kinds this generator can fill.
fn fillable(kind: K) -> bool {
    matches!(
        kind,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_opcode
            | K::r16_rm
            | K::r32_reg
            | K::r32_opcode
            | K::r32_rm
            | K::r64_reg
            | K::r64_opcode
            | K::r64_rm
            | K::al
            | K::cl
            | K::ax
            | K::dx
            | K::eax
            | K::rax
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::mem
            | K::mem_offs
            | K::r32_vvvv
            | K::r64_vvvv
            | K::xmm_reg
            | K::xmm_rm
            | K::xmm_or_mem
            | K::mm_reg
            | K::mm_rm
            | K::mm_or_mem
            | K::st0
            | K::sti_opcode
    )
}

/// Whether `code` is built by a snippet (`generate/snippets.rs`) rather than filled: the snippet mnemonics'
/// forms, except the SSE ones sharing a string instruction's name (movsd/cmpsd on XMM).
fn is_snippet_code(code: Code) -> bool {
    snippets::is_snippet_mnemonic(code.mnemonic()) && !simd::has_simd_operand(code)
}

/// Every instruction form ([`Code`]) of `families` that the generator can fill or build a snippet around, in
/// iced-x86's order: legacy-encoded (VEX for the BMI family), valid in 64-bit mode.
pub fn forms(families: &[Family]) -> Vec<Code> {
    forms_for(families, 64)
}

/// [`forms`] for code of `bitness` bits (64, 32 or 16): the forms valid in that mode (for 16-bit code only the
/// filled ones, no snippets).
pub fn forms_for(families: &[Family], bitness: u32) -> Vec<Code> {
    Code::values()
        .filter(|code| {
            let op = code.op_code();
            let m = code.mnemonic();
            let encoding_ok = op.encoding() == EncodingKind::Legacy
                || (op.encoding() == EncodingKind::VEX && Family::Bmi.mnemonics().contains(&m));
            let mode_ok = match bitness {
                64 => op.mode64(),
                32 => op.mode32(),
                // 16-bit code: filled forms only (the snippets assume flat addresses).
                _ => op.mode16() && !is_snippet_code(*code),
            };
            op.is_instruction()
                && mode_ok
                // Forms only a decoder option decodes (in 32-bit code the 486 A-step cmpxchg at 0F A6/A7, which
                // today's CPUs raise #UD for) are not the instruction set.
                && (bitness == 64 || op.decoder_option() == iced_x86::DecoderOptions::NONE)
                && encoding_ok
                && families.iter().any(|f| f.owns(*code))
                // 16-bit BSWAP has an undefined result.
                && *code != Code::Bswap_r16
                && if is_snippet_code(*code) {
                    snippets::handles(*code, bitness)
                } else {
                    op.op_kinds().iter().all(|k| fillable(*k))
                }
        })
        .collect()
}

/// GPRs by register number: 8-bit (SPL..DIL for 4..7), 16-, 32- and 64-bit.
const GPRS: [[Register; 16]; 4] = {
    use Register::*;
    [
        [
            AL, CL, DL, BL, SPL, BPL, SIL, DIL, R8L, R9L, R10L, R11L, R12L, R13L, R14L, R15L,
        ],
        [
            AX, CX, DX, BX, SP, BP, SI, DI, R8W, R9W, R10W, R11W, R12W, R13W, R14W, R15W,
        ],
        [
            EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI, R8D, R9D, R10D, R11D, R12D, R13D, R14D, R15D,
        ],
        [
            RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15,
        ],
    ]
};

/// The register of `width` bits with number `n`.
fn gpr(width: u32, n: usize) -> Register {
    let row = match width {
        8 => 0,
        16 => 1,
        32 => 2,
        _ => 3,
    };
    GPRS[row][n]
}

/// The register of `width` bits (8, 16, 32, 64) with number `n` (4..7 at 8 bits: SPL..DIL).
pub(crate) fn gpr_for(width: u32, n: usize) -> Register {
    gpr(width, n)
}

/// The high-byte registers AH, CH, DH, BH (register numbers 0..3, bits 8..15).
const HIGH8: [Register; 4] = [Register::AH, Register::CH, Register::DH, Register::BH];

fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// An edge value of `width` bits (zero-extended).
pub fn edge_value(rng: &mut SplitMix64, width: u32) -> u64 {
    let m = mask(width);
    let min = 1u64 << (width - 1);
    let v = match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => m,
        3 => min,
        4 => min - 1,
        5 => 1u64 << rng.below(width as u64),
        6 => m ^ (1u64 << rng.below(width as u64)),
        7 => 2,
        8 => min + 1,
        9 => m - 1,
        _ => rng.next_u64(),
    };
    v & m
}

/// A shift or rotate count for an operand of `width` bits.
fn shift_count(rng: &mut SplitMix64, width: u32) -> u64 {
    let w = width as u64;
    let (any, below_width) = (rng.below(256), rng.below(w.max(2)));
    rng.pick(&[0, 1, w - 1, w, w + 1, 31, 32, 63, 64, 255, any, below_width])
}

/// Builds cases from a seed.
pub struct Generator {
    forms: Vec<Code>,
    opts: GenOptions,
}

/// Per-case register bookkeeping while filling operands.
struct Fill<'a> {
    rng: &'a mut SplitMix64,
    /// Code size of the case (64, 32 or 16).
    bitness: u32,
    /// Base of the data segments: memory operands hold `address - data_base` (SCRATCH_ADDR in 16-bit code).
    data_base: u64,
    state: CpuState,
    /// Registers operands may use (not RSP, not the reserved base/index).
    pool: Vec<usize>,
    base: usize,
    index: Option<usize>,
    /// The base and index registers hold their values (a memory operand was generated).
    addressing_set: bool,
    /// Scratch offset of an ldmxcsr image: a later operand placed over it could give it bit 17 (see
    /// `implicit_inputs`), which the case is then rejected for.
    mxcsr_image: Option<usize>,
}

enum Opnd {
    Reg(Register),
    Mem(MemoryOperand),
    Imm(i32),
    Imm64(u64),
}

impl Generator {
    pub fn new(opts: GenOptions) -> Generator {
        Generator {
            forms: forms_for(&opts.families, opts.bitness),
            opts,
        }
    }

    /// Where data offset 0 is: 0 for flat 64- and 32-bit code, `SCRATCH_ADDR` for 16-bit code (DS/ES/SS base).
    fn data_base(&self) -> u64 {
        if self.opts.bitness == 16 {
            SCRATCH_ADDR
        } else {
            0
        }
    }

    /// The instruction forms this generator draws from.
    pub fn forms(&self) -> &[Code] {
        &self.forms
    }

    /// Case number `index` of the stream for `seed` (each case has its own derived seed, so any case can be
    /// regenerated alone).
    pub fn case(&self, seed: u64, index: u64) -> Case {
        let mut rng = SplitMix64(seed ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03));
        rng.next_u64();
        loop {
            if let Some(case) = self.try_case(&mut rng) {
                return case;
            }
        }
    }

    /// `count` cases of the stream for `seed`.
    pub fn cases(&self, seed: u64, count: usize) -> Vec<Case> {
        (0..count as u64).map(|i| self.case(seed, i)).collect()
    }

    fn try_case(&self, rng: &mut SplitMix64) -> Option<Case> {
        let mut state = CpuState::default();
        for g in state.gpr.iter_mut() {
            *g = rng.next_u64();
        }
        // 16-bit code addresses the stack through SS based at SCRATCH_ADDR.
        state.gpr[RSP] = SCRATCH_STACK_TOP - self.data_base();
        state.rflags = flags::FIXED1 | flags::IF | (rng.next_u64() & flags::STATUS);
        state.mxcsr = MXCSR_DEFAULT;
        if !self.opts.compact {
            for x in state.xmm.iter_mut() {
                *x = (rng.next_u64() as u128) << 64 | rng.next_u64() as u128;
            }
            for b in state.mem.iter_mut() {
                *b = rng.next_u64() as u8;
            }
            // Half the cases carry a random x87 state (no pending exception) that rqemu must leave alone.
            if rng.one_in(2) {
                x87::random_state(rng, &mut state, false);
            }
        }
        // Base (and index) registers: never RAX/RCX/RDX (implicit operands) nor RSP; no R8-R15 in 32-bit code.
        let reservable: &[usize] = if self.opts.bitness == 64 {
            &[3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
        } else {
            &[3, 5, 6, 7]
        };
        let regs = if self.opts.bitness == 64 { 16 } else { 8 };
        let base = rng.pick(reservable);
        let mut index = if rng.one_in(4) {
            let i = rng.pick(reservable);
            (i != base).then_some(i)
        } else {
            None
        };
        // 16-bit addressing: [bx|bp + si|di] only.
        if self.opts.bitness == 16 && !(matches!(base, 3 | 5) && matches!(index, Some(6 | 7))) {
            index = None;
        }
        let pool = (0..regs)
            .filter(|r| *r != RSP && *r != base && Some(*r) != index)
            .collect();
        let mut fill = Fill {
            rng,
            data_base: self.data_base(),
            bitness: self.opts.bitness,
            state,
            pool,
            base,
            index,
            addressing_set: false,
            mxcsr_image: None,
        };

        let count = 1 + fill.rng.below(self.opts.max_insns.max(1) as u64) as usize;
        let mut code = Vec::new();
        let mut encoder = Encoder::new(self.opts.bitness);
        // In a sequence, nothing may consume what an earlier instruction may have left undefined (the comparison
        // could not tell a bug from a legitimate difference): no flag reader after an instruction with undefined
        // flags, nothing after one that may leave a register undefined.
        let mut flags_maybe_undefined = false;
        for i in 0..count {
            let form = fill.rng.pick(&self.forms);
            if is_snippet_code(form) {
                // A snippet sets up its own registers and stack, so it only ever makes a whole case.
                if i > 0 {
                    break;
                }
                code = snippets::build(&mut fill, form)?;
                break;
            }
            if flags_maybe_undefined && reads_flags(form.mnemonic()) {
                return None;
            }
            let insn = fill.instruction(form, i == 0)?;
            // ldmxcsr only first: an earlier store could write its image (with bit 17) at run time.
            if i > 0 && form.mnemonic() == Mnemonic::Ldmxcsr {
                return None;
            }
            encoder.encode(&insn, CODE_ADDR + code.len() as u64).ok()?;
            code.extend(encoder.take_buffer());
            let worst = undefined_flags::worst_case(&insn);
            flags_maybe_undefined |= worst.flags != 0;
            if worst.gpr.is_some() || worst.mem_dest || ends_sequence(form.mnemonic()) {
                break;
            }
        }
        if let Some(off) = fill.mxcsr_image {
            if fill.state.mem[off + 2] & 2 != 0 {
                return None;
            }
        }
        // 32-bit code sees only the low halves of EAX..EDI: the rest of the GPRs starts at zero (addresses were
        // computed modulo 2^64, so they stay right modulo 2^32).
        (code.len() < CODE_SIZE).then_some(Case {
            init: fill.state.normalized(self.opts.bitness),
            code,
            bitness: self.opts.bitness,
        })
    }
}

/// Whether nothing may follow `m` in a sequence: an x87 transcendental (compared within 1 ulp, so a later
/// instruction could turn an allowed difference into any other) or an x87 environment store (its instruction and
/// data pointer fields hold host addresses natively, rqemu's own otherwise; a later load could read them).
fn ends_sequence(m: Mnemonic) -> bool {
    Family::X87Transcendental.mnemonics().contains(&m)
        || matches!(
            m,
            Mnemonic::Fnstenv | Mnemonic::Fstenv | Mnemonic::Fnsave | Mnemonic::Fsave
        )
}

impl Fill<'_> {
    /// Fills `form`'s operands and the state they read; `None` if this draw cannot be encoded (retry).
    fn instruction(&mut self, form: Code, first: bool) -> Option<Instruction> {
        let op = form.op_code();
        let kinds = op.op_kinds();
        let mnemonic = form.mnemonic();
        // Operand width of the instruction: the widest GPR-like operand (r/m or reg).
        let width = kinds.iter().map(|k| kind_width(*k)).max().unwrap_or(64);
        let mut regs_used: Vec<usize> = Vec::new();
        let mut ops = Vec::new();
        let mut mem_at: Option<(usize, u32)> = None; // scratch offset and access width of the memory operand
        let mut high8 = false;
        let mut needs_rex = false;
        // Bytes a memory operand of this form accesses (r/m and XMM/m forms, cmpxchg8b, ldmxcsr, movbe, ...).
        let mem_bytes = (bare_instruction(form).memory_size().size() as u32).max(1);
        // x87 and MMX forms start from a random x87 state (MMX registers are the x87 registers: their TOP and
        // exponent bits matter), pending #MF included; SSE FP forms from a random MXCSR.
        if first && (x87::is_x87(mnemonic) || simd::has_mm_operand(form)) {
            x87::random_state(self.rng, &mut self.state, true);
        }
        // Float inputs (edge values by element type, random MXCSR) for the FP families' forms, the x87's and the
        // MMX FP conversions; not for the SseMove family, whose moves do not look at values (and whose stream
        // the recorded vectors pin).
        let fp_inputs = x87::is_x87(mnemonic)
            || Family::ALL
                .iter()
                .any(|f| simd::is_fp_family(*f) && f.mnemonics().contains(&mnemonic))
            || (simd::has_mm_operand(form) && simd::element_format(form).is_some());
        if fp_inputs && simd::has_simd_operand(form) && self.state.mxcsr == MXCSR_DEFAULT {
            self.state.mxcsr = simd::mxcsr(self.rng);
        }
        for (i, kind) in kinds.iter().enumerate() {
            let w = kind_width(*kind);
            let opnd = match *kind {
                K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem | K::xmm_or_mem | K::mm_or_mem
                    if self.rng.one_in(2) =>
                {
                    // BT m, r with a register bit offset only comes first: an earlier instruction could change
                    // the offset register and send the access outside the scratch area.
                    if !first && is_bt_family(mnemonic) && kinds.get(i + 1).is_some_and(|k| is_reg_kind(*k)) {
                        return None;
                    }
                    let (m, off) = self.memory(mem_bytes)?;
                    mem_at = Some((off, w));
                    Opnd::Mem(m)
                }
                K::xmm_reg | K::xmm_rm | K::xmm_or_mem => {
                    // (XMM8-15 in 32- and 16-bit code fail to encode: the draw is retried.)
                    let n = self.rng.below(16) as usize;
                    self.state.xmm[n] = if fp_inputs {
                        simd::xmm_value(self.rng, form)
                    } else {
                        (self.rng.next_u64() as u128) << 64 | edge_value(self.rng, 64) as u128
                    };
                    Opnd::Reg(Register::XMM0 + n as u32)
                }
                K::mm_reg | K::mm_rm | K::mm_or_mem => {
                    // MMi is physical x87 register i, which is ST((i - TOP) mod 8); its exponent bits are
                    // usually all ones (as after an MMX write) and sometimes anything.
                    let n = self.rng.below(8) as usize;
                    let top = (self.state.fsw >> crate::state::fsw::TOP_SHIFT) as usize & 7;
                    let exp = if self.rng.one_in(2) {
                        0xffff
                    } else {
                        self.rng.next_u64() as u16
                    };
                    self.state.st[(n + 8 - top) & 7] = (exp as u128) << 64 | edge_value(self.rng, 64) as u128;
                    Opnd::Reg(Register::MM0 + n as u32)
                }
                K::st0 => Opnd::Reg(Register::ST0),
                K::sti_opcode => Opnd::Reg(Register::ST0 + self.rng.below(8) as u32),
                K::mem if mnemonic != Mnemonic::Lea => {
                    let (m, off) = self.memory(mem_bytes)?;
                    mem_at = Some((off, mem_bytes * 8));
                    Opnd::Mem(m)
                }
                K::mem_offs => {
                    let (off, _) = self.place(mem_bytes as usize);
                    let addr = (SCRATCH_ADDR + off as u64 - self.data_base) as i64;
                    mem_at = Some((off, mem_bytes * 8));
                    Opnd::Mem(MemoryOperand::new(
                        Register::None,
                        Register::None,
                        1,
                        addr,
                        (self.bitness / 8).max(2),
                        false,
                        Register::None,
                    ))
                }
                K::r8_or_mem | K::r8_reg | K::r8_opcode => {
                    let (r, n, hi) = self.reg8(&regs_used);
                    regs_used.push(n);
                    high8 |= hi;
                    needs_rex |= !hi && (4..16).contains(&n);
                    Opnd::Reg(r)
                }
                K::r16_or_mem
                | K::r16_reg
                | K::r16_opcode
                | K::r16_rm
                | K::r32_or_mem
                | K::r32_reg
                | K::r32_opcode
                | K::r32_rm
                | K::r64_or_mem
                | K::r64_reg
                | K::r64_opcode
                | K::r64_rm
                | K::r32_vvvv
                | K::r64_vvvv => {
                    let n = self.pick_reg(&regs_used);
                    regs_used.push(n);
                    let v = edge_value(self.rng, w);
                    self.set_reg(n, w, v);
                    Opnd::Reg(gpr(w, n))
                }
                K::al | K::ax | K::eax | K::rax => {
                    let v = edge_value(self.rng, w);
                    self.set_reg(0, w, v);
                    Opnd::Reg(gpr(w, 0))
                }
                K::dx => Opnd::Reg(Register::DX),
                K::cl => {
                    let c = shift_count(self.rng, width);
                    self.set_reg(1, 8, c);
                    Opnd::Reg(Register::CL)
                }
                K::imm8_const_1 => Opnd::Imm(1),
                K::imm8 if is_count_form(mnemonic) => Opnd::Imm(shift_count(self.rng, width) as u8 as i32),
                K::imm8 => Opnd::Imm(edge_value(self.rng, 8) as u8 as i32),
                K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => Opnd::Imm(edge_value(self.rng, 8) as u8 as i8 as i32),
                K::imm16 => Opnd::Imm(edge_value(self.rng, 16) as u16 as i16 as i32),
                K::imm32 | K::imm32sex64 => Opnd::Imm(edge_value(self.rng, 32) as u32 as i32),
                K::imm64 => Opnd::Imm64(edge_value(self.rng, 64)),
                K::mem => Opnd::Mem(self.lea_address()),
                _ => return None,
            };
            ops.push(opnd);
        }
        if high8 && needs_rex {
            return None;
        }
        let mut insn = build(form, &ops)?;
        if let Some((off, _)) = mem_at.filter(|_| fp_inputs) {
            self.fp_memory(form, off, mem_bytes as usize);
        }
        if let Some((off, w)) = mem_at {
            if is_bt_family(mnemonic) {
                if let Some(Opnd::Reg(r)) = ops.get(1) {
                    // The offset register must keep its value for the rest of the case: not RAX/RCX/RDX (implicit
                    // operands of later instructions), and out of the pool from now on.
                    let n = reg_number(*r);
                    if n <= 2 {
                        return None;
                    }
                    let bitoff = self.bt_offset(off, w);
                    self.set_reg(n, w, bitoff & mask(w));
                    self.pool.retain(|p| *p != n);
                }
            }
            if op.can_use_lock_prefix() && matches!(ops.first(), Some(Opnd::Mem(_))) && self.rng.one_in(4) {
                insn.set_has_lock_prefix(true);
            }
            if mnemonic == Mnemonic::Cmpxchg && self.rng.one_in(2) {
                let v = read_le(&self.state.mem[off..off + (w / 8) as usize]);
                self.set_reg(0, w, v);
            }
        } else if mnemonic == Mnemonic::Cmpxchg && self.rng.one_in(2) {
            if let Some(Opnd::Reg(r)) = ops.first() {
                let v = self.state.gpr[reg_number(*r)] & mask(width);
                self.set_reg(0, width, v);
            }
        }
        if matches!(mnemonic, Mnemonic::Div | Mnemonic::Idiv) && self.rng.one_in(2) {
            self.fit_dividend(mnemonic == Mnemonic::Idiv, width);
        }
        self.implicit_inputs(mnemonic, &ops, mem_at);
        Some(insn)
    }

    fn pick_reg(&mut self, used: &[usize]) -> usize {
        loop {
            let n = self.rng.pick(&self.pool);
            if !used.contains(&n) || self.rng.one_in(8) {
                return n;
            }
        }
    }

    /// An 8-bit register: (register, number of the 64-bit register holding it, is AH..BH).
    fn reg8(&mut self, used: &[usize]) -> (Register, usize, bool) {
        let v = edge_value(self.rng, 8);
        if self.rng.one_in(4) {
            let n = self.rng.below(4) as usize;
            if self.pool.contains(&n) {
                let g = &mut self.state.gpr[n];
                *g = (*g & !0xff00) | v << 8;
                return (HIGH8[n], n, true);
            }
        }
        let mut n = self.pick_reg(used);
        // 32- and 16-bit code have no SPL..DIL: register numbers 4..7 at 8 bits are AH..BH there.
        while self.bitness != 64 && n >= 4 {
            n = self.pick_reg(used);
        }
        self.set_reg(n, 8, v);
        (gpr(8, n), n, false)
    }

    /// Sets the low `width` bits of GPR `n` to `v`; the bits above are random, all zero or all one.
    fn set_reg(&mut self, n: usize, width: u32, v: u64) {
        let m = mask(width);
        let above = match self.rng.below(3) {
            0 => 0,
            1 => !m,
            _ => self.rng.next_u64() & !m,
        };
        self.state.gpr[n] = above | (v & m);
    }

    /// A memory operand of `bytes` bytes inside the scratch data area, with an edge value written there.
    /// Later memory operands of the same case keep the base and index values and get a fitting displacement;
    /// `None` if none fits.
    fn memory(&mut self, bytes: u32) -> Option<(MemoryOperand, usize)> {
        let (off, _) = self.place(bytes as usize);
        let target = SCRATCH_ADDR + off as u64 - self.data_base;
        let scale = self.rng.pick(&[1u64, 2, 4, 8]);
        let aw = self.bitness;
        // 16-bit addressing has no scale.
        let scale = if aw == 16 { 1 } else { scale };
        let (index, scale) = match self.index {
            Some(i) => (gpr(aw, i), scale),
            None => (Register::None, 1),
        };
        let disp: i64 = if self.addressing_set {
            // A later memory operand of the case: base and index already hold their values, fit the displacement.
            let index_part = self.index.map_or(0, |i| self.state.gpr[i].wrapping_mul(scale));
            let disp = target.wrapping_sub(self.state.gpr[self.base]).wrapping_sub(index_part);
            if aw == 32 {
                // 32-bit addresses wrap at 4 GiB: any displacement fits.
                disp as u32 as i32 as i64
            } else if aw == 16 {
                disp as u16 as i16 as i64
            } else {
                i32::try_from(disp as i64).ok()? as i64
            }
        } else {
            let disp = match self.rng.below(4) {
                0 => 0,
                1 => self.rng.below(256) as i64 - 128,
                2 => self.rng.below(1 << 20) as i64 - (1 << 19),
                _ => (self.rng.next_u64() as i32) as i64,
            };
            let disp = if aw == 16 { disp as i16 as i64 } else { disp };
            let index_part = match self.index {
                Some(i) => {
                    let iv = self.rng.below(64).wrapping_sub(32);
                    self.state.gpr[i] = iv;
                    iv.wrapping_mul(scale)
                }
                None => 0,
            };
            self.state.gpr[self.base] = target.wrapping_sub(disp as u64).wrapping_sub(index_part);
            self.addressing_set = true;
            disp
        };
        let displ_size = if disp == 0 {
            0
        } else if (-128..128).contains(&disp) {
            1
        } else if aw == 16 {
            2
        } else {
            4
        };
        Some((
            MemoryOperand::new(
                gpr(aw, self.base),
                index,
                scale as u32,
                disp,
                displ_size,
                false,
                Register::None,
            ),
            off,
        ))
    }

    /// Chooses the scratch offset of a `bytes`-byte operand and writes an edge value (random bytes beyond 8) there.
    /// 16-byte operands are 16-byte aligned three times in four (the aligned SSE forms and cmpxchg16b #GP
    /// otherwise); everything else is aligned as often as not.
    fn place(&mut self, bytes: usize) -> (usize, usize) {
        let bytes = bytes.max(1);
        let mut off = self.rng.below((SCRATCH_DATA_LEN - bytes + 1) as u64) as usize;
        if bytes == 16 && !self.rng.one_in(4) {
            off &= !15;
        }
        if bytes <= 8 {
            let value = edge_value(self.rng, bytes as u32 * 8);
            self.state.mem[off..off + bytes].copy_from_slice(&value.to_le_bytes()[..bytes]);
        } else {
            for b in &mut self.state.mem[off..off + bytes] {
                *b = self.rng.next_u64() as u8;
            }
        }
        (off, bytes)
    }

    /// Replaces the memory operand's bytes at scratch offset `off` with values of its type for the FP forms:
    /// float edge values per element, packed BCD for fbld, a plausible control word in fldenv/frstor images.
    fn fp_memory(&mut self, form: Code, off: usize, bytes: usize) {
        use iced_x86::MemorySize as S;
        let dest = &mut self.state.mem[off..off + bytes];
        match bare_instruction(form).memory_size() {
            S::Bcd => dest.copy_from_slice(&x87::bcd(self.rng)[..bytes]),
            S::FpuEnv14 | S::FpuEnv28 | S::FpuState94 | S::FpuState108 => x87::env_image(self.rng, dest),
            _ => {
                if let Some(v) = simd::fp_memory(self.rng, form, bytes) {
                    dest.copy_from_slice(&v);
                }
            }
        }
    }

    /// Values for the implicit inputs of the forms that have them (the explicit operands are already filled);
    /// `mem_at` is the memory operand's scratch offset and width.
    fn implicit_inputs(&mut self, m: Mnemonic, ops: &[Opnd], mem_at: Option<(usize, u32)>) {
        use Mnemonic as M;
        match m {
            M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo => {
                let w = match m {
                    M::Cbw => 8,
                    M::Cwde | M::Cwd => 16,
                    M::Cdqe | M::Cdq => 32,
                    _ => 64,
                };
                let v = edge_value(self.rng, w);
                self.set_reg(0, w, v);
            }
            M::Sahf => {
                let ah = self.rng.below(256);
                self.state.gpr[0] = (self.state.gpr[0] & !0xff00) | ah << 8;
            }
            M::Mulx => {
                let v = edge_value(self.rng, 64);
                self.state.gpr[2] = v;
            }
            M::Cmpxchg8b | M::Cmpxchg16b => {
                // Half the time EDX:EAX (RDX:RAX) equal the memory operand, so the exchange happens.
                if let Some((off, w)) = mem_at.filter(|_| self.rng.one_in(2)) {
                    let half = (w / 16) as usize;
                    self.state.gpr[0] = read_le(&self.state.mem[off..off + half]);
                    self.state.gpr[2] = read_le(&self.state.mem[off + half..off + 2 * half]);
                }
            }
            M::Ldmxcsr => {
                if let Some((off, _)) = mem_at {
                    // A valid image, or one with a reserved bit (not bit 17: AMD's MM mode accepts it).
                    let mut v = self.rng.next_u64() as u32 & 0xffff;
                    if self.rng.one_in(4) {
                        v |= 1 << self.rng.pick(&[16u32, 18, 20, 24, 31]);
                    }
                    self.state.mem[off..off + 4].copy_from_slice(&v.to_le_bytes());
                    self.mxcsr_image = Some(off);
                }
            }
            M::Stmxcsr => self.state.mxcsr = self.rng.next_u64() as u32 & 0xffff,
            M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64 if self.rng.one_in(2) => {
                // Explicit string lengths near the element counts (-20..20; the instruction saturates them).
                for r in [0, 2] {
                    self.state.gpr[r] = (self.rng.below(41) as i64 - 20) as u64;
                }
            }
            M::Aaa | M::Aas | M::Daa | M::Das | M::Aam | M::Aad => {
                // AL near the adjustment boundaries (low nibble 9/10, AL around 0x99/0x9f/0xfa, below 6) half the
                // time; AH any.
                let al = if self.rng.one_in(2) {
                    self.rng.pick(&[
                        0x09u64, 0x0a, 0x0f, 0x99, 0x9a, 0x9f, 0xa0, 0xf9, 0xfa, 0xff, 0x00, 0x05, 0x06,
                    ])
                } else {
                    self.rng.below(256)
                };
                let ah = self.rng.below(256);
                self.state.gpr[0] = (self.state.gpr[0] & !0xffff) | ah << 8 | al;
            }
            M::Bound => {
                // Half the time bounds around the register's value: inside, on either bound, or one outside.
                if let (Some((off, _)), Some(Opnd::Reg(r))) = (mem_at, ops.first()) {
                    if self.rng.one_in(2) {
                        let w = reg_width(*r);
                        let v = self.state.gpr[reg_number(*r)] & mask(w);
                        let k = self.rng.below(4);
                        let (lo, hi) = match self.rng.below(4) {
                            0 => (v.wrapping_sub(k), v.wrapping_add(k)),
                            1 => (v, v.wrapping_add(k)),
                            2 => (v.wrapping_sub(k), v),
                            _ => (v.wrapping_add(1), v.wrapping_add(1 + k)),
                        };
                        let n = (w / 8) as usize;
                        self.state.mem[off..off + n].copy_from_slice(&lo.to_le_bytes()[..n]);
                        self.state.mem[off + n..off + 2 * n].copy_from_slice(&hi.to_le_bytes()[..n]);
                    }
                }
            }
            M::Bextr | M::Bzhi if self.rng.one_in(2) => {
                // A small start/length control, so the interesting in-range cases are common.
                if let Some(Opnd::Reg(r)) = ops.get(2) {
                    let v = self.rng.below(72) | self.rng.below(72) << 8;
                    let n = reg_number(*r);
                    self.state.gpr[n] = (self.state.gpr[n] & !0xffff) | v;
                }
            }
            _ => {}
        }
    }

    /// An LEA address: any registers from the pool, any displacement (nothing is accessed). In 16-bit code one of
    /// the 16-bit forms (`[bx|bp|si|di + disp]`, `[bx|bp + si|di + disp]`); reading a reserved register is fine.
    fn lea_address(&mut self) -> MemoryOperand {
        if self.bitness == 16 {
            let base = self.rng.pick(&[3usize, 5, 6, 7]);
            let index = if matches!(base, 3 | 5) && self.rng.one_in(2) {
                gpr(16, self.rng.pick(&[6usize, 7]))
            } else {
                Register::None
            };
            let disp = match self.rng.below(3) {
                0 => 0,
                1 => self.rng.below(256) as i64 - 128,
                _ => (self.rng.next_u64() as i16) as i64,
            };
            let displ_size = if disp == 0 { 0 } else { 2 };
            return MemoryOperand::new(gpr(16, base), index, 1, disp, displ_size, false, Register::None);
        }
        let base = gpr(self.bitness, self.rng.pick(&self.pool));
        let index = if self.rng.one_in(2) {
            gpr(self.bitness, self.rng.pick(&self.pool))
        } else {
            Register::None
        };
        let scale = self.rng.pick(&[1u32, 2, 4, 8]);
        let disp = match self.rng.below(3) {
            0 => 0,
            1 => self.rng.below(256) as i64 - 128,
            _ => (self.rng.next_u64() as i32) as i64,
        };
        let displ_size = if disp == 0 { 0 } else { 4 };
        MemoryOperand::new(base, index, scale, disp, displ_size, false, Register::None)
    }

    /// A BT bit offset for a memory operand at scratch offset `off` of `width` bits, such that the accessed unit
    /// (`off + width/8 * floor(offset / width)`) stays inside the scratch data area.
    fn bt_offset(&mut self, off: usize, width: u32) -> u64 {
        let unit = (width / 8) as i64;
        let lo = -(off as i64 / unit);
        let hi = (SCRATCH_DATA_LEN as i64 - unit - off as i64) / unit;
        let k = lo + self.rng.below((hi - lo + 1) as u64) as i64;
        (k * width as i64 + self.rng.below(width as u64) as i64) as u64
    }

    /// Makes the high half of a divide's dividend zero (DIV) or the sign extension of the low half (IDIV), so the
    /// quotient fits unless the divisor is 0 (or MIN / -1).
    fn fit_dividend(&mut self, signed: bool, width: u32) {
        if width == 8 {
            let al = self.state.gpr[0] & 0xff;
            let ah = if signed && al & 0x80 != 0 { 0xff } else { 0 };
            self.state.gpr[0] = (self.state.gpr[0] & !0xff00) | ah << 8;
        } else {
            let low = self.state.gpr[0] & mask(width);
            let high = if signed && low >> (width - 1) & 1 != 0 {
                mask(width)
            } else {
                0
            };
            self.set_reg(2, width, high);
        }
    }
}

/// Whether `m` reads status flags (among the generated mnemonics).
fn reads_flags(m: Mnemonic) -> bool {
    use Mnemonic as M;
    let name = format!("{m:?}");
    matches!(
        m,
        M::Adc | M::Sbb | M::Rcl | M::Rcr | M::Lahf | M::Cmc | M::Aaa | M::Aas | M::Daa | M::Das | M::Into
    ) || name.starts_with("Set")
        || name.starts_with("Cmov")
        || name.starts_with("Fcmov")
}

fn is_bt_family(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc)
}

fn is_count_form(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shl | M::Shr | M::Sar | M::Shld | M::Shrd
    )
}

fn is_reg_kind(k: K) -> bool {
    matches!(k, K::r16_reg | K::r32_reg | K::r64_reg)
}

/// Width in bits of a GPR-like operand kind (0 for others).
fn kind_width(k: K) -> u32 {
    match k {
        K::r8_or_mem | K::r8_reg | K::r8_opcode | K::al => 8,
        K::r16_or_mem | K::r16_reg | K::r16_opcode | K::r16_rm | K::ax | K::dx => 16,
        K::r32_or_mem | K::r32_reg | K::r32_opcode | K::r32_rm | K::r32_vvvv | K::eax => 32,
        K::r64_or_mem | K::r64_reg | K::r64_opcode | K::r64_rm | K::r64_vvvv | K::rax => 64,
        _ => 0,
    }
}

/// The 64-bit register number of a GPR (AH..BH map to 0..3); `None` for any other register.
pub(crate) fn gpr_number(r: Register) -> Option<usize> {
    match HIGH8.iter().position(|h| *h == r) {
        Some(n) => Some(n),
        None => GPRS.iter().find_map(|row| row.iter().position(|g| *g == r)),
    }
}

fn reg_number(r: Register) -> usize {
    gpr_number(r).expect("generated operands are general-purpose registers")
}

/// Width in bits of a general-purpose register (0 for any other register).
pub(crate) fn reg_width(r: Register) -> u32 {
    if HIGH8.contains(&r) {
        return 8;
    }
    GPRS.iter()
        .position(|row| row.contains(&r))
        .map_or(0, |row| [8, 16, 32, 64][row])
}

fn read_le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |acc, b| acc << 8 | *b as u64)
}

/// Creates the instruction from filled operands (the combinations the fillable forms produce).
fn build(code: Code, ops: &[Opnd]) -> Option<Instruction> {
    use Opnd::*;
    let r = match ops {
        [] => Ok(bare_instruction(code)),
        [Reg(a)] => Instruction::with1(code, *a),
        [Mem(a)] => Instruction::with1(code, *a),
        [Imm(a)] => Instruction::with1(code, *a),
        [Reg(a), Reg(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Mem(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Imm(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Imm64(b)] => Instruction::with2(code, *a, *b),
        [Mem(a), Reg(b)] => Instruction::with2(code, *a, *b),
        [Mem(a), Imm(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Reg(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        [Reg(a), Reg(b), Imm(c)] => Instruction::with3(code, *a, *b, *c),
        [Reg(a), Mem(b), Imm(c)] => Instruction::with3(code, *a, *b, *c),
        [Mem(a), Reg(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        [Reg(a), Reg(b), Mem(c)] => Instruction::with3(code, *a, *b, *c),
        [Reg(a), Mem(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        [Mem(a), Reg(b), Imm(c)] => Instruction::with3(code, *a, *b, *c),
        _ => return None,
    };
    r.ok()
}

/// Scratch memory past the data area belongs to the stack; keep the type checker aware of the split.
const _: () = assert!(SCRATCH_DATA_LEN < SCRATCH_LEN);

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::Decoder;

    /// Whether iced-x86 has any code of `m` valid in code of `bitness` bits.
    fn exists_in(m: Mnemonic, bitness: u32) -> bool {
        Code::values().any(|c| {
            let op = c.op_code();
            c.mnemonic() == m && op.is_instruction() && if bitness == 64 { op.mode64() } else { op.mode32() }
        })
    }

    #[test]
    fn forms_cover_every_family() {
        for bitness in [64, 32] {
            for f in Family::ALL {
                let forms = forms_for(&[f], bitness);
                let any = f.mnemonics().iter().any(|m| exists_in(*m, bitness));
                assert_eq!(!forms.is_empty(), any, "{f:?} has no forms in {bitness}-bit code");
                for m in f.mnemonics().iter().filter(|m| exists_in(**m, bitness)) {
                    // jrcxz is 64-bit only; its 32-bit twin is jecxz.
                    assert!(
                        forms.iter().any(|c| c.mnemonic() == *m),
                        "{m:?} has no form in {bitness}-bit code"
                    );
                }
            }
        }
        // 32-bit code: no REX-only forms, but the short inc/dec, pushfd/popfd.
        let f32 = forms_for(&Family::ALL, 32);
        for c in [
            Code::Inc_r32,
            Code::Dec_r16,
            Code::Pushfd,
            Code::Popfd,
            Code::Jecxz_rel8_32,
        ] {
            assert!(f32.contains(&c), "{c:?}");
        }
        for c in [
            Code::Add_rm64_r64,
            Code::Movsxd_r64_rm32,
            Code::Cmpxchg16b_m128,
            Code::Jrcxz_rel8_64,
            Code::Cmpxchg486_rm8_r8,
        ] {
            assert!(!f32.contains(&c), "{c:?}");
        }
    }

    /// Waiting x87 forms iced-x86 decodes as `wait` + the no-wait form (9B DB E3 is wait + fninit).
    const DECODED_SPLIT: [Mnemonic; 6] = [
        Mnemonic::Finit,
        Mnemonic::Fstcw,
        Mnemonic::Fstsw,
        Mnemonic::Fclex,
        Mnemonic::Fstenv,
        Mnemonic::Fsave,
    ];

    #[test]
    fn generation_16_bit_decodes_and_addresses_the_data_segment() {
        let g = Generator::new(GenOptions {
            max_insns: 3,
            bitness: 16,
            ..GenOptions::default()
        });
        // No snippets in 16-bit code (movsd/cmpsd with XMM operands share the string instructions' mnemonics).
        assert!(g.forms().iter().all(|c| !is_snippet_code(*c)));
        for case in g.cases(12, 5_000) {
            assert_eq!(case.bitness, 16);
            assert_eq!(case.init.gpr[RSP], SCRATCH_STACK_TOP - SCRATCH_ADDR);
            let mut d = Decoder::with_ip(16, &case.code, 0, 0);
            let insn = d.decode();
            assert!(!insn.is_invalid(), "{:02x?}", case.code);
            if insn.mnemonic() == Mnemonic::Lea {
                continue;
            }
            for i in 0..insn.op_count() {
                if insn.op_kind(i) == iced_x86::OpKind::Memory {
                    let reg = |r: Register| {
                        if r == Register::None {
                            0
                        } else {
                            case.init.gpr[reg_number(r)]
                        }
                    };
                    // 16-bit addressing wraps at 64 KiB, offsets from the data segment at SCRATCH_ADDR.
                    let ea = reg(insn.memory_base())
                        .wrapping_add(reg(insn.memory_index()))
                        .wrapping_add(insn.memory_displacement64())
                        & 0xffff;
                    let size = insn.memory_size().size() as u64;
                    assert!(ea + size <= SCRATCH_DATA_LEN as u64, "{insn} at {ea:#x}");
                }
            }
        }
    }

    #[test]
    fn generation_32_bit_decodes_and_stays_in_eax_to_edi() {
        let g = Generator::new(GenOptions {
            max_insns: 3,
            bitness: 32,
            ..GenOptions::default()
        });
        let mut seen = std::collections::HashSet::new();
        for case in g.cases(11, 20_000) {
            assert_eq!(case.bitness, 32);
            for (n, v) in case.init.gpr.iter().enumerate() {
                assert_eq!(*v & !crate::state::gpr_mask(32, n), 0, "gpr {n} of {:02x?}", case.code);
            }
            let mut d = Decoder::with_ip(32, &case.code, CODE_ADDR, 0);
            while d.can_decode() {
                let insn = d.decode();
                assert!(!insn.is_invalid(), "{:02x?}", case.code);
                seen.insert(insn.mnemonic());
            }
        }
        let decoded_split = DECODED_SPLIT;
        for f in Family::default_mix() {
            for m in f.mnemonics().iter().filter(|m| !decoded_split.contains(m)) {
                let drawable = forms_for(&[f], 32).iter().any(|c| c.mnemonic() == *m);
                assert_eq!(
                    seen.contains(m),
                    drawable,
                    "{m:?} drawn in 32-bit code: {}",
                    seen.contains(m)
                );
            }
        }
    }

    #[test]
    fn generation_is_deterministic_and_decodes() {
        let g = Generator::new(GenOptions {
            max_insns: 3,
            ..GenOptions::default()
        });
        let a = g.cases(7, 500);
        assert_eq!(a, g.cases(7, 500));
        assert_ne!(a, g.cases(8, 500));
        for case in &a {
            let mut d = Decoder::with_ip(64, &case.code, CODE_ADDR, 0);
            while d.can_decode() {
                let insn = d.decode();
                assert!(!insn.is_invalid(), "{:02x?}", case.code);
            }
        }
    }

    #[test]
    fn every_mnemonic_and_edge_count_is_drawn() {
        let g = Generator::new(GenOptions::default());
        let mut seen = std::collections::HashSet::new();
        let mut cl_counts = std::collections::HashSet::new();
        for case in g.cases(2, 20_000) {
            let mut d = Decoder::with_ip(64, &case.code, CODE_ADDR, 0);
            // Snippets put their instruction after a setup (push; ret, the loop body, fninit; ...).
            let insn = d.decode();
            seen.insert(insn.mnemonic());
            while d.can_decode() {
                seen.insert(d.decode().mnemonic());
            }
            if is_count_form(insn.mnemonic()) && (0..insn.op_count()).any(|i| insn.op_register(i) == Register::CL) {
                cl_counts.insert(case.init.gpr[1] & 0xff);
            }
        }
        // iced-x86 decodes 9B DB E3 (finit) as wait + fninit, and likewise the other waiting x87 forms.
        let decoded_split = DECODED_SPLIT;
        for f in Family::default_mix() {
            for m in f
                .mnemonics()
                .iter()
                .filter(|m| !decoded_split.contains(m) && exists_in(**m, 64))
            {
                assert!(seen.contains(m), "{m:?} never drawn");
            }
        }
        for c in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255] {
            assert!(cl_counts.contains(&c), "shift count {c} never drawn");
        }
    }

    /// Each floating-point and vector family alone, in 64- and 32-bit code: every mnemonic with a form
    /// is drawn, every case decodes, and the inputs are what the family needs (x87 forms: a random FCW somewhere;
    /// SSE FP forms: a random MXCSR somewhere; MMX forms: registers with all-ones exponents somewhere).
    #[test]
    fn fp_and_vector_families_draw_all_their_mnemonics() {
        let decoded_split = DECODED_SPLIT;
        for bitness in [64, 32] {
            for f in &FP_SIMD_FAMILIES {
                let families = vec![*f];
                let g = Generator::new(GenOptions {
                    families: families.clone(),
                    bitness,
                    ..GenOptions::default()
                });
                let (mut seen, mut fcw, mut mxcsr) = (std::collections::HashSet::new(), false, false);
                for case in g.cases(3, 6000) {
                    let mut d = Decoder::with_ip(bitness, &case.code, case.ip_base(), 0);
                    while d.can_decode() {
                        let insn = d.decode();
                        assert!(!insn.is_invalid(), "{f:?}: {:02x?}", case.code);
                        seen.insert(insn.mnemonic());
                    }
                    fcw |= case.init.fcw != crate::state::FCW_DEFAULT;
                    mxcsr |= case.init.mxcsr != MXCSR_DEFAULT;
                }
                for m in f.mnemonics().iter().filter(|m| !decoded_split.contains(m)) {
                    let drawable = forms_for(&families, bitness).iter().any(|c| c.mnemonic() == *m);
                    if bitness == 64 {
                        assert!(drawable, "{f:?}: {m:?} has no form");
                    }
                    assert_eq!(seen.contains(m), drawable, "{f:?}: {m:?} drawn in {bitness}-bit code");
                }
                assert!(fcw, "{f:?}: the x87 state is never random");
                if simd::is_fp_family(*f) {
                    assert!(mxcsr, "{f:?}: MXCSR is never random");
                }
            }
        }
        // Nothing is pending any more: the default mix draws MMX forms and SSE floating point too.
        assert!(PENDING_FAMILIES.is_empty());
        let default = forms(&Family::default_mix());
        assert!(default.iter().any(|c| simd::has_mm_operand(*c)));
        assert!(default.contains(&Code::Addps_xmm_xmmm128));
        assert!(default.contains(&Code::Cmpsd_xmm_xmmm64_imm8));
        assert!(forms(&[Family::Sse2Fp]).contains(&Code::Cmpsd_xmm_xmmm64_imm8));
        assert!(!forms(&[Family::Sse2Fp]).contains(&Code::Cmpsd_m32_m32));
        assert!(!forms(&[Family::Sse2Int]).contains(&Code::Paddq_mm_mmm64));
        assert!(forms(&[Family::Mmx]).contains(&Code::Paddq_mm_mmm64));
        assert!(forms(&[Family::Mmx]).contains(&Code::Pshufb_mm_mmm64));
        assert!(!forms(&[Family::Mmx]).contains(&Code::Paddq_xmm_xmmm128));
        assert!(!forms(&[Family::Mmx]).contains(&Code::Movq_xmm_rm64));
    }

    #[test]
    fn family_lists_parse() {
        assert_eq!(
            Family::parse_list("sse2-int,X87_ARITH").unwrap(),
            [Family::Sse2Int, Family::X87Arith]
        );
        assert_eq!(Family::parse_list("pending").unwrap(), PENDING_FAMILIES);
        assert_eq!(Family::parse_list("x87").unwrap().len(), 4);
        assert!(Family::parse_list("sse5").is_err());
        assert_eq!(Family::default_mix().len() + PENDING_FAMILIES.len(), Family::ALL.len());
        // A mnemonic belongs to one SIMD family at most (besides MMX, which has the MMX forms of many).
        let simd: Vec<Family> = Family::ALL
            .into_iter()
            .filter(|f| !simd::mnemonics(*f).is_empty() && *f != Family::Mmx)
            .collect();
        for (i, a) in simd.iter().enumerate() {
            for b in &simd[i + 1..] {
                for m in a.mnemonics() {
                    assert!(!b.mnemonics().contains(m), "{m:?} in {a:?} and {b:?}");
                }
            }
        }
        for m in [Mnemonic::Pshufb, Mnemonic::Palignr] {
            assert!(Family::Ssse3.mnemonics().contains(&m), "{m:?}");
        }
        for m in [
            Mnemonic::Roundps,
            Mnemonic::Dpps,
            Mnemonic::Insertps,
            Mnemonic::Extractps,
            Mnemonic::Blendvpd,
        ] {
            assert!(Family::Sse41Fp.mnemonics().contains(&m), "{m:?}");
        }
        for m in [
            Mnemonic::Pblendvb,
            Mnemonic::Ptest,
            Mnemonic::Pmovzxbw,
            Mnemonic::Pmaxsd,
            Mnemonic::Pminsd,
        ] {
            assert!(Family::Sse41Int.mnemonics().contains(&m), "{m:?}");
        }
        for m in [Mnemonic::Crc32, Mnemonic::Pcmpistri, Mnemonic::Pcmpgtq] {
            assert!(Family::Sse42.mnemonics().contains(&m), "{m:?}");
        }
        for m in [
            Mnemonic::Cvttsd2si,
            Mnemonic::Cvtdq2ps,
            Mnemonic::Comisd,
            Mnemonic::Cmpsd,
        ] {
            assert!(Family::Sse2Fp.mnemonics().contains(&m), "{m:?}");
        }
        for m in [
            Mnemonic::Emms,
            Mnemonic::Paddb,
            Mnemonic::Pshufb,
            Mnemonic::Pavgb,
            Mnemonic::Cvtpi2ps,
            Mnemonic::Pshufw,
            Mnemonic::Movq2dq,
            Mnemonic::Movq,
        ] {
            assert!(Family::Mmx.mnemonics().contains(&m), "{m:?}");
        }
        for m in [Mnemonic::Lddqu, Mnemonic::Movddup, Mnemonic::Haddps] {
            assert!(Family::Sse3.mnemonics().contains(&m), "{m:?}");
        }
    }

    #[test]
    fn memory_operands_stay_in_scratch() {
        let g = Generator::new(GenOptions::default());
        for case in g.cases(1, 2000) {
            let insn = Decoder::with_ip(64, &case.code, CODE_ADDR, 0).decode();
            // lea accesses nothing; xlat's table may run on into the rest of the scratch page (see snippets.rs).
            if matches!(insn.mnemonic(), Mnemonic::Lea | Mnemonic::Xlatb) {
                continue;
            }
            for i in 0..insn.op_count() {
                if insn.op_kind(i) == iced_x86::OpKind::Memory {
                    let reg = |r: Register| {
                        if r == Register::None {
                            0
                        } else {
                            case.init.gpr[reg_number(r)]
                        }
                    };
                    let ea = reg(insn.memory_base())
                        .wrapping_add(reg(insn.memory_index()).wrapping_mul(insn.memory_index_scale() as u64))
                        .wrapping_add(insn.memory_displacement64());
                    let size = insn.memory_size().size() as u64;
                    // RSP-relative operands (push/pop/call [rsp+d]) address the stack part of the scratch area.
                    let limit = if insn.memory_base() == Register::RSP {
                        SCRATCH_LEN
                    } else {
                        SCRATCH_DATA_LEN
                    };
                    assert!(ea >= SCRATCH_ADDR && ea + size <= SCRATCH_ADDR + limit as u64, "{insn}");
                }
            }
        }
    }
}
