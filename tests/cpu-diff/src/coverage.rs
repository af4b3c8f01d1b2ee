//! Which mnemonics the frontend implements, found by probing rather than listed by hand, and how that compares
//! with what the generator fuzzes.
//!
//! [`probe`] takes every iced-x86 [`Code`] that is legacy- or VEX-encoded and valid in 64-bit mode, builds one
//! sample instruction of it (register forms of r/m operands, `[rbx]` into the scratch page for memory-only
//! operands, immediates 1, branches to the next instruction), and runs it alone on rqemu (tci) from a fixed state.
//! A code is implemented unless it raises #UD at its own address: the frontend turns everything it does not
//! translate into `raise_exception(6)` at translation time, so running is the robust test (a translated
//! instruction may still fault otherwise, e.g. #GP or #PF, which says nothing about #UD). A mnemonic is
//! implemented when any of its codes is.
//!
//! `CPU_DIFF_PROBE_TRACE=1` prints every probe's bytes and outcome to stderr.
//!
//! [`uncovered`] is the claimed set minus [`generated_mnemonics`] minus [`EXCLUDED`]; a test requires it to be
//! empty, so a newly translated mnemonic that nobody fuzzes fails. [`doc_section`] renders the
//! `## Differential coverage` section of docs/target-i386.md, kept in sync by a test (`RQEMU_BLESS=1` rewrites it).

use crate::compare::CpuUnderTest;
use crate::generate::{bare_instruction, forms, forms_for, Family, PENDING_FAMILIES};
use crate::rqemu::Rqemu;
use crate::state::{Case, CpuState, Fault, CODE_ADDR, SCRATCH_ADDR, SCRATCH_STACK_TOP};
use iced_x86::{
    Code, CpuidFeature, Encoder, EncodingKind, Instruction, Mnemonic, OpCodeOperandKind as K, OpKind, Register,
};
use std::collections::{BTreeMap, BTreeSet};

/// Mnemonics rqemu implements that the generator deliberately does not fuzz, with the reason.
pub const EXCLUDED: &[(Mnemonic, &str)] = &[
    (
        Mnemonic::Cpuid,
        "rqemu's CPUID model differs from the host CPU by design",
    ),
    (Mnemonic::Rdtsc, "reads time: differs between any two runs"),
    (
        Mnemonic::Rdtscp,
        "reads time (and TSC_AUX): differs between any two runs",
    ),
    (
        Mnemonic::Rdpid,
        "reads TSC_AUX: natively the kernel's number of the CPU the process runs on",
    ),
    (
        Mnemonic::Int3,
        "the terminator of every case: natively its SIGTRAP means \"case ended\"",
    ),
    (
        Mnemonic::Int,
        "natively the kernel turns int n into signals whose meaning differs from the vector",
    ),
    (Mnemonic::Int1, "natively a SIGTRAP like the terminator's"),
    (
        Mnemonic::Fxsave,
        "the 512-byte area is larger than the 256 compared scratch bytes, and MXCSR_MASK differs by design (this \
         AMD host 0x2ffff, rqemu 0xffff); a hand-made differential test (tests/native_known.rs) compares fxsave64 \
         and fxrstor64 with random x87 states against the host instead",
    ),
    (Mnemonic::Fxsave64, "as fxsave"),
    (
        Mnemonic::Fxrstor,
        "as fxsave: its 512-byte image is larger than the 256 scratch bytes a case sets",
    ),
    (Mnemonic::Fxrstor64, "as fxrstor"),
    (
        Mnemonic::Cli,
        "changes IF: natively #GP at CPL 3 with IOPL 0, while the harness runs rqemu at CPL 0",
    ),
    (Mnemonic::Sti, "as cli"),
    (Mnemonic::Hlt, "privileged: natively #GP at CPL 3; rqemu at CPL 0 halts"),
    (
        Mnemonic::Iret,
        "loads CS and SS from descriptor tables: the host's GDT/LDT are not rqemu's",
    ),
    (Mnemonic::Iretd, "as iret"),
    (Mnemonic::Iretq, "as iret"),
    (Mnemonic::Retf, "as iret (loads CS from a descriptor)"),
    (
        Mnemonic::Lar,
        "reads a GDT/LDT descriptor: the host's tables are not rqemu's",
    ),
    (Mnemonic::Lsl, "as lar"),
    (Mnemonic::Verr, "as lar"),
    (Mnemonic::Verw, "as lar"),
    (
        Mnemonic::Lfs,
        "loads a segment descriptor: the host's GDT/LDT are not rqemu's",
    ),
    (Mnemonic::Lgs, "as lfs"),
    (Mnemonic::Lss, "as lfs"),
    (
        Mnemonic::Sgdt,
        "stores a descriptor-table register: UMIP makes it #GP at CPL 3 on hosts that have it, and the tables \
         are not rqemu's",
    ),
    (Mnemonic::Sidt, "as sgdt"),
    (Mnemonic::Sldt, "as sgdt"),
    (Mnemonic::Smsw, "as sgdt (CR0)"),
    (Mnemonic::Str, "as sgdt"),
    (
        Mnemonic::Sysenter,
        "enters the kernel natively (or #UD, on AMD in long mode)",
    ),
    (
        Mnemonic::Maskmovdqu,
        "stores through the implicit RDI (masked bytes only), which the generator cannot keep inside the scratch \
         area; tests/sse_int.rs in rqemu-target-i386 compares it with the host",
    ),
    (Mnemonic::Maskmovq, "as maskmovdqu"),
    (
        Mnemonic::Prefetch,
        "a hint without architectural effect (AMD's 3DNow! form); rqemu-target-i386's tests/sse_int.rs checks it \
         neither accesses memory nor faults",
    ),
    (Mnemonic::Prefetchw, "as prefetch"),
    (
        Mnemonic::Prefetchwt1,
        "as prefetch (this AMD host does not implement it: #UD natively)",
    ),
    (
        Mnemonic::Feni,
        "an 8087 control that the 387 and later ignore (no state to compare); host-checked in \
         rqemu-target-i386's tests/x87.rs",
    ),
    (Mnemonic::Fneni, "as feni"),
    (Mnemonic::Fdisi, "as feni (8087)"),
    (Mnemonic::Fndisi, "as feni (8087)"),
    (Mnemonic::Fsetpm, "as feni (80287)"),
    (Mnemonic::Fnsetpm, "as feni (80287)"),
];

/// CPUID features of the integer ISA the frontend claims (issue 4's baseline: 8086..486 and x86-64, with CMOV,
/// CX8, CX16, POPCNT, LZCNT, BMI1/BMI2, MOVBE, TSC, the multi-byte nop and CPUID itself).
const INTEGER_ISA: &[CpuidFeature] = &[
    CpuidFeature::INTEL8086,
    CpuidFeature::INTEL186,
    CpuidFeature::INTEL286,
    CpuidFeature::INTEL386,
    CpuidFeature::INTEL486,
    CpuidFeature::X64,
    CpuidFeature::CMOV,
    CpuidFeature::CX8,
    CpuidFeature::CMPXCHG16B,
    CpuidFeature::CPUID,
    CpuidFeature::POPCNT,
    CpuidFeature::LZCNT,
    CpuidFeature::BMI1,
    CpuidFeature::BMI2,
    CpuidFeature::MOVBE,
    CpuidFeature::TSC,
    CpuidFeature::RDTSCP,
    CpuidFeature::MULTIBYTENOP,
    CpuidFeature::PAUSE,
];

/// The floating-point and SIMD extensions whose coverage is reported per extension ([`extension_coverage`]):
/// x87 (iced-x86's FPU, FPU287 and FPU387 features), FXSR, MMX and SSE through SSE4.2.
pub const FP_SIMD: &[CpuidFeature] = &[
    CpuidFeature::FPU,
    CpuidFeature::FPU287,
    CpuidFeature::FPU387,
    CpuidFeature::FXSR,
    CpuidFeature::MMX,
    CpuidFeature::SSE,
    CpuidFeature::SSE2,
    CpuidFeature::SSE3,
    CpuidFeature::SSSE3,
    CpuidFeature::SSE4_1,
    CpuidFeature::SSE4_2,
];

/// Coverage of one CPUID extension: its mnemonics (those with a code that needs only that feature), which of
/// them rqemu translates, which the default mix fuzzes and which only the pending families draw.
#[derive(Clone, Debug)]
pub struct ExtensionCoverage {
    /// The iced-x86 CPUID feature.
    pub feature: CpuidFeature,
    /// Every mnemonic of the extension.
    pub all: BTreeSet<Mnemonic>,
    /// Those rqemu translates (do not raise #UD).
    pub implemented: BTreeSet<Mnemonic>,
    /// Those the default mix ([`Family::default_mix`]) draws.
    pub fuzzed: BTreeSet<Mnemonic>,
    /// Those only the pending families ([`PENDING_FAMILIES`]) draw: fuzzed once their family leaves the list.
    pub pending: BTreeSet<Mnemonic>,
}

/// Every mnemonic the pending families draw in 64-bit code.
pub fn pending_mnemonics() -> BTreeSet<Mnemonic> {
    forms(PENDING_FAMILIES).iter().map(|c| c.mnemonic()).collect()
}

/// Per-extension coverage ([`FP_SIMD`]) from a probe.
pub fn extension_coverage(p: &Probe) -> Vec<ExtensionCoverage> {
    let generated = generated_mnemonics();
    let pending = &pending_mnemonics() - &generated;
    FP_SIMD
        .iter()
        .map(|f| {
            let all = p.in_group(&[*f]);
            ExtensionCoverage {
                feature: *f,
                implemented: &all & &p.implemented,
                fuzzed: &all & &generated,
                pending: &all & &pending,
                all,
            }
        })
        .collect()
}

/// What probing found.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// Mnemonics with at least one code that translates (does not raise #UD).
    pub implemented: BTreeSet<Mnemonic>,
    /// Every probed mnemonic, with the CPUID feature list of each of its codes.
    pub features: BTreeMap<Mnemonic, Vec<&'static [CpuidFeature]>>,
    /// Codes probed, and codes no sample could be built for (far branches, xbegin, EVEX-only kinds).
    pub probed: usize,
    pub unbuildable: usize,
}

impl Probe {
    /// Mnemonics of a group of CPUID features: those with a code that needs only features of `group`.
    fn in_group(&self, group: &[CpuidFeature]) -> BTreeSet<Mnemonic> {
        self.features
            .iter()
            .filter(|(_, codes)| codes.iter().any(|f| f.iter().all(|x| group.contains(x))))
            .map(|(m, _)| *m)
            .collect()
    }

    /// Mnemonics of the claimed integer ISA that still raise #UD.
    pub fn integer_ud(&self) -> BTreeSet<Mnemonic> {
        &self.in_group(INTEGER_ISA) - &self.implemented
    }
}

/// The probe's state: RBX points into the scratch page (memory samples use `[rbx]`), RCX is a small count, RSP
/// is the scratch stack.
fn probe_state() -> CpuState {
    let mut s = CpuState::default();
    for (i, g) in s.gpr.iter_mut().enumerate() {
        *g = i as u64 * 3 + 1;
    }
    s.gpr[3] = SCRATCH_ADDR + 0x40;
    s.gpr[1] = 2;
    s.gpr[4] = SCRATCH_STACK_TOP;
    s
}

/// Register number `n` of the class an operand kind names (None: not a register kind).
fn class_register(kind: K, n: u32) -> Option<Register> {
    let gpr = |w: u32| crate::generate::gpr_for(w, n as usize);
    Some(match kind {
        K::r8_reg | K::r8_opcode | K::r8_or_mem => gpr(8),
        K::r16_reg | K::r16_reg_mem | K::r16_rm | K::r16_opcode | K::r16_or_mem => gpr(16),
        K::r32_reg | K::r32_reg_mem | K::r32_rm | K::r32_opcode | K::r32_vvvv | K::r32_or_mem | K::r32_or_mem_mpx => {
            gpr(32)
        }
        K::r64_reg | K::r64_reg_mem | K::r64_rm | K::r64_opcode | K::r64_vvvv | K::r64_or_mem | K::r64_or_mem_mpx => {
            gpr(64)
        }
        K::mm_reg | K::mm_rm | K::mm_or_mem => Register::MM0 + n,
        K::xmm_reg | K::xmm_rm | K::xmm_vvvv | K::xmmp3_vvvv | K::xmm_is4 | K::xmm_is5 | K::xmm_or_mem => {
            Register::XMM0 + n
        }
        K::ymm_reg | K::ymm_rm | K::ymm_vvvv | K::ymm_is4 | K::ymm_is5 | K::ymm_or_mem => Register::YMM0 + n,
        K::k_reg | K::k_rm | K::k_vvvv | K::k_or_mem => Register::K0 + n,
        K::bnd_reg | K::bnd_or_mem_mpx => Register::BND0 + n % 4,
        K::tmm_reg | K::tmm_rm | K::tmm_vvvv => Register::TMM0 + n,
        K::seg_reg => Register::DS,
        K::cr_reg => Register::CR0,
        K::dr_reg => Register::DR0,
        K::tr_reg => Register::TR3,
        K::es => Register::ES,
        K::cs => Register::CS,
        K::ss => Register::SS,
        K::ds => Register::DS,
        K::fs => Register::FS,
        K::gs => Register::GS,
        K::al => Register::AL,
        K::cl => Register::CL,
        K::ax => Register::AX,
        K::dx => Register::DX,
        K::eax => Register::EAX,
        K::rax => Register::RAX,
        K::st0 => Register::ST0,
        K::sti_opcode => Register::ST1,
        _ => return None,
    })
}

/// A sample instruction of `code` branching (if it branches) to `target`; `None` if an operand kind has no
/// sample.
fn sample(code: Code, target: u64, bitness: u32) -> Option<Instruction> {
    let mut insn = bare_instruction(code);
    let (rbx, rsi) = if bitness == 64 {
        (Register::RBX, Register::RSI)
    } else {
        (Register::EBX, Register::ESI)
    };
    for (i, kind) in code.op_code().op_kinds().iter().enumerate() {
        let i = i as u32;
        let imm = |insn: &mut Instruction, k: OpKind| -> Option<()> {
            insn.set_op_kind(i, k);
            insn.try_set_immediate_i32(i, 1).ok()
        };
        match *kind {
            K::imm8 | K::imm8_const_1 | K::imm4_m2z if i > 0 && insn.op_kind(i - 1) == OpKind::Immediate16 => {
                insn.set_op_kind(i, OpKind::Immediate8_2nd);
                insn.set_immediate8_2nd(1);
            }
            K::imm8 | K::imm8_const_1 | K::imm4_m2z => imm(&mut insn, OpKind::Immediate8)?,
            K::imm8sex16 => imm(&mut insn, OpKind::Immediate8to16)?,
            K::imm8sex32 => imm(&mut insn, OpKind::Immediate8to32)?,
            K::imm8sex64 => imm(&mut insn, OpKind::Immediate8to64)?,
            K::imm16 => imm(&mut insn, OpKind::Immediate16)?,
            K::imm32 => imm(&mut insn, OpKind::Immediate32)?,
            K::imm32sex64 => imm(&mut insn, OpKind::Immediate32to64)?,
            K::imm64 => imm(&mut insn, OpKind::Immediate64)?,
            K::br16_1 | K::br16_2 => {
                insn.set_op_kind(i, OpKind::NearBranch16);
                insn.set_near_branch16(target as u16);
            }
            K::br32_1 | K::br32_4 => {
                insn.set_op_kind(i, OpKind::NearBranch32);
                insn.set_near_branch32(target as u32);
            }
            K::br64_1 | K::br64_4 => {
                insn.set_op_kind(i, OpKind::NearBranch64);
                insn.set_near_branch64(target);
            }
            K::mem | K::mem_mpx | K::mem_mib | K::sibmem => {
                insn.set_op_kind(i, OpKind::Memory);
                insn.set_memory_base(rbx);
                insn.set_memory_index(if *kind == K::sibmem { rsi } else { Register::None });
                insn.set_memory_index_scale(1);
            }
            K::mem_offs => {
                insn.set_op_kind(i, OpKind::Memory);
                insn.set_memory_displacement64(SCRATCH_ADDR + 0x40);
                insn.set_memory_displ_size(if bitness == 64 { 8 } else { 4 });
            }
            K::mem_vsib32x | K::mem_vsib64x | K::mem_vsib32y | K::mem_vsib64y => {
                insn.set_op_kind(i, OpKind::Memory);
                insn.set_memory_base(rbx);
                let index = if matches!(*kind, K::mem_vsib32y | K::mem_vsib64y) {
                    Register::YMM7
                } else {
                    Register::XMM7
                };
                insn.set_memory_index(index);
                insn.set_memory_index_scale(1);
            }
            K::seg_rSI => insn.set_op_kind(i, OpKind::MemorySegRSI),
            K::es_rDI => insn.set_op_kind(i, OpKind::MemoryESRDI),
            K::seg_rDI => insn.set_op_kind(i, OpKind::MemorySegRDI),
            K::seg_rBX_al => {
                // xlat: [rbx + al]
                insn.set_op_kind(i, OpKind::Memory);
                insn.set_memory_base(rbx);
                insn.set_memory_index(Register::AL);
                insn.set_memory_index_scale(1);
            }
            k => {
                insn.set_op_kind(i, OpKind::Register);
                insn.try_set_op_register(i, class_register(k, i + 1)?).ok()?;
            }
        }
    }
    Some(insn)
}

/// The probed codes of code of `bitness` bits: legacy- or VEX-encoded instructions valid in 64-bit mode (64), or
/// valid in 32-bit mode but not in 64-bit mode (32: what only 32-bit code has; decoder-option-only forms left
/// out).
fn probed_codes(bitness: u32) -> impl Iterator<Item = Code> {
    Code::values().filter(move |c| {
        let op = c.op_code();
        let mode = if bitness == 64 {
            op.mode64()
        } else {
            op.mode32() && !op.mode64() && op.decoder_option() == iced_x86::DecoderOptions::NONE
        };
        op.is_instruction() && mode && matches!(op.encoding(), EncodingKind::Legacy | EncodingKind::VEX)
    })
}

/// Encodes a sample of `code` at `CODE_ADDR`, branches to the next instruction.
fn encode_sample(code: Code, bitness: u32) -> Option<Vec<u8>> {
    let mut e = Encoder::new(bitness);
    let len = e.encode(&sample(code, CODE_ADDR, bitness)?, CODE_ADDR).ok()?;
    let _ = e.take_buffer();
    e.encode(&sample(code, CODE_ADDR + len as u64, bitness)?, CODE_ADDR)
        .ok()?;
    Some(e.take_buffer())
}

/// Runs every probed code of 64-bit mode on rqemu (tci) and records which mnemonics translate.
pub fn probe() -> Probe {
    probe_mode(64)
}

/// [`probe`] for the codes only 32-bit code has (valid in 32-bit mode, not in 64-bit mode), run as 32-bit code.
pub fn probe32() -> Probe {
    probe_mode(32)
}

fn probe_mode(bitness: u32) -> Probe {
    let mut cpu = Rqemu::tci();
    let mut p = Probe::default();
    let init = probe_state().normalized(bitness);
    for code in probed_codes(bitness) {
        let m = code.mnemonic();
        p.features.entry(m).or_default().push(code.cpuid_features());
        let trace = std::env::var_os("CPU_DIFF_PROBE_TRACE").is_some();
        let Some(bytes) = encode_sample(code, bitness) else {
            if trace {
                eprintln!("{code:?}: no sample");
            }
            p.unbuildable += 1;
            continue;
        };
        p.probed += 1;
        if p.implemented.contains(&m) {
            continue;
        }
        let case = Case {
            init: init.clone(),
            code: bytes,
            bitness,
        };
        let len = case.code.len() as u64;
        let out = cpu.run(&case);
        // #UD inside the sample's bytes: at its start, or after a wait prefix iced-x86 folds into the mnemonic
        // (fclex = wait + fnclex) when only the wait translates.
        if trace {
            eprintln!("{code:?} {:02x?} -> {} at {:#x}", case.code, out.fault, out.rip);
        }
        // A fetch fault past the sample's bytes: rqemu's decoder reads it as a longer (other) instruction, so it
        // does not implement this one as encoded (e.g. ud0 without a ModRM byte).
        let fetch_past = matches!(out.fault, Fault::Pf { addr, write: false }
            if out.rip == 0 && addr >= CODE_ADDR + len && addr < CODE_ADDR + crate::state::CODE_SIZE as u64);
        if !(fetch_past || out.fault == Fault::Ud && out.rip < len) {
            p.implemented.insert(m);
        }
    }
    p
}

/// Every mnemonic the default mix ([`Family::default_mix`]: all but the pending families) draws in 64-bit code.
pub fn generated_mnemonics() -> BTreeSet<Mnemonic> {
    forms(&Family::default_mix()).iter().map(|c| c.mnemonic()).collect()
}

/// Every mnemonic the default mix draws in 32-bit code.
pub fn generated_mnemonics_32() -> BTreeSet<Mnemonic> {
    forms_for(&Family::default_mix(), 32)
        .iter()
        .map(|c| c.mnemonic())
        .collect()
}

/// Mnemonics only 32-bit code has that rqemu implements and the generator deliberately does not fuzz, with the
/// reason.
pub const EXCLUDED_32: &[(Mnemonic, &str)] = &[
    (
        Mnemonic::Lds,
        "loads a segment descriptor: the host's GDT/LDT are not rqemu's",
    ),
    (Mnemonic::Les, "as lds"),
];

/// 32-bit-only mnemonics rqemu implements that are neither generated in 32-bit code nor in [`EXCLUDED_32`] or
/// [`EXCLUDED`] (must be empty).
pub fn uncovered32(p32: &Probe) -> BTreeSet<Mnemonic> {
    // EXCLUDED's reasons hold in 32-bit code too (rdpid has a 32-bit-only r32 form).
    let excluded: BTreeSet<Mnemonic> = EXCLUDED_32.iter().chain(EXCLUDED).map(|(m, _)| *m).collect();
    let privileged = &privileged(32) | &privileged(64);
    &(&(&p32.implemented - &generated_mnemonics_32()) - &excluded) - &privileged
}

/// Mnemonics whose every probed code of code of `bitness` bits is privileged (CPL 0 only): the user-mode oracle
/// raises #GP for them while the harness runs rqemu at CPL 0, so they cannot be compared. Implemented ones count
/// as excluded.
pub fn privileged(bitness: u32) -> BTreeSet<Mnemonic> {
    let mut all: BTreeMap<Mnemonic, bool> = BTreeMap::new();
    for code in probed_codes(bitness) {
        let p = all.entry(code.mnemonic()).or_insert(true);
        *p &= code.op_code().is_privileged();
    }
    all.into_iter().filter(|(_, p)| *p).map(|(m, _)| m).collect()
}

/// Implemented mnemonics that are neither generated nor excluded (must be empty).
pub fn uncovered(p: &Probe) -> BTreeSet<Mnemonic> {
    let excluded: BTreeSet<Mnemonic> = EXCLUDED.iter().map(|(m, _)| *m).collect();
    &(&(&p.implemented - &generated_mnemonics()) - &excluded) - &privileged(64)
}

fn names(set: impl IntoIterator<Item = Mnemonic>) -> String {
    let v: Vec<String> = set.into_iter().map(|m| format!("{m:?}").to_lowercase()).collect();
    v.join(" ")
}

/// The `## Differential coverage` section of docs/target-i386.md (up to the next `## ` heading).
pub fn doc_section(p: &Probe) -> String {
    let generated = generated_mnemonics();
    let mut s = String::from("## Differential coverage\n");
    s += "Generated by `tests/cpu-diff/src/coverage.rs` (a test keeps it in sync; `cargo xtask bless` rewrites it).\n";
    s += &format!(
        "Probing every legacy- or VEX-encoded iced-x86 code valid in 64-bit mode ({} codes; {} without a buildable \
         sample) on rqemu finds {} implemented mnemonics; the generator's default mix (`Family::default_mix()`, {} \
         forms) fuzzes {} mnemonics against this machine's CPU. The pending families (`PENDING_FAMILIES`, not in \
         the default mix until rqemu implements them; `cargo xtask fuzz-cpu --families pending` runs them) draw \
         {} more forms.\n\n",
        p.probed + p.unbuildable,
        p.unbuildable,
        p.implemented.len(),
        forms(&Family::default_mix()).len(),
        generated.len(),
        forms(PENDING_FAMILIES).len()
    );
    s += "| family | mnemonics |\n|---|---|\n";
    for f in Family::ALL {
        let pending = if PENDING_FAMILIES.contains(&f) {
            " (pending)"
        } else {
            ""
        };
        s += &format!("| {f:?}{pending} | {} |\n", names(f.mnemonics().iter().copied()));
    }
    s += "\nImplemented but not fuzzed (the coverage test allows exactly these):\n\n";
    s += "| mnemonic | why |\n|---|---|\n";
    for (m, why) in EXCLUDED {
        s += &format!("| {} | {why} |\n", names([*m]));
    }
    s += &format!(
        "\nPrivileged (CPL 0 only in every form: the user-mode oracle raises #GP) and therefore not fuzzed, of those \
         implemented: {}.\n",
        names(&p.implemented & &privileged(64))
    );
    s += &format!(
        "\nMnemonics of the claimed integer ISA (iced-x86 CPUID features {}) that raise #UD in rqemu:\n{}.\n",
        names_features(INTEGER_ISA),
        names(p.integer_ud())
    );
    s += &doc_section_32(p);
    s += "\nFloating point and SIMD per extension (a mnemonic counts under an extension when one of its codes needs \
          only that extension; `cmpsd`/`movsd` count through their string forms too; fpu, fpu287 and fpu387 are \
          the x87): how many mnemonics rqemu translates, how many the default mix fuzzes, and how many only the \
          pending families draw so far.\n\n";
    s += "| extension | of | translated | fuzzed | pending | translated mnemonics |\n|---|---|---|---|---|---|\n";
    for e in extension_coverage(p) {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            format!("{:?}", e.feature).to_lowercase(),
            e.all.len(),
            e.implemented.len(),
            e.fuzzed.len(),
            e.pending.len(),
            names(e.implemented)
        );
    }
    s += "\n";
    s
}

/// The 32-bit part of the section: what `--mode 32` fuzzes, what only 32-bit code has, and what of that rqemu
/// does not translate.
fn doc_section_32(p: &Probe) -> String {
    let p32 = probe32();
    let generated = generated_mnemonics();
    let generated32 = generated_mnemonics_32();
    let mut s = format!(
        "\n32-bit code (`cargo xtask fuzz-cpu --mode 32`: compatibility mode natively, a flat 32-bit code segment \
         with EFER.LMA set on rqemu): the generator fuzzes the families' forms valid in 32-bit mode ({} forms, {} \
         mnemonics).\n",
        forms_for(&Family::default_mix(), 32).len(),
        generated32.len()
    );
    s += &format!(
        "Only in 32-bit code: {}.\nNot in 32-bit code (64-bit mode only): {}.\n",
        names(&generated32 - &generated),
        names(&generated - &generated32)
    );
    s += &format!(
        "Probing the {} codes valid only outside 64-bit mode ({} without a buildable sample) as 32-bit code finds \
         {} implemented mnemonics: {}.\n",
        p32.probed + p32.unbuildable,
        p32.unbuildable,
        p32.implemented.len(),
        names(p32.implemented.iter().copied())
    );
    if EXCLUDED_32.is_empty() {
        s += "Implemented but not fuzzed in 32-bit code: only what the table above excludes.\n";
    } else {
        s += "Implemented but not fuzzed in 32-bit code (besides the table above):\n\n| mnemonic | why |\n|---|---|\n";
        for (m, why) in EXCLUDED_32 {
            s += &format!("| {} | {why} |\n", names([*m]));
        }
    }
    let ud32 = &(&p32.in_group(INTEGER_ISA) - &p32.implemented) - &p.implemented;
    s += &format!(
        "\nMnemonics only 32-bit code has, of the claimed integer ISA, that raise #UD in rqemu:\n{}.\n",
        names(ud32)
    );
    let generated16: BTreeSet<Mnemonic> = forms_for(&Family::default_mix(), 16)
        .iter()
        .map(|c| c.mnemonic())
        .collect();
    s += &format!(
        "\n16-bit code (`--mode 16`: compatibility mode natively with 16-bit LDT segments, CS based at the code \
         page and DS/ES/SS at the scratch page; the same segments on rqemu): the filled forms only, no snippets \
         (stack, string, branch, xlat and x87-control forms are not generated) ({} forms, {} mnemonics). Not \
         generated in 16-bit code but in 32-bit code: {}.\n",
        forms_for(&Family::default_mix(), 16).len(),
        generated16.len(),
        names(&generated_mnemonics_32() - &generated16)
    );
    s
}

fn names_features(f: &[CpuidFeature]) -> String {
    let v: Vec<String> = f.iter().map(|x| format!("{x:?}")).collect();
    v.join(", ")
}
