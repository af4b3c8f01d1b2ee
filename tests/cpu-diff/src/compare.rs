//! Comparing the snapshot rqemu produces for a case with the oracle's (the native CPU's, live or recorded), masking
//! what the manuals leave undefined (`undefined_flags.rs`). Producing either snapshot lives elsewhere.
//!
//! # How the rqemu side plugs in
//! For each [`Case`] the emulator side builds a 64-bit flat-mode CPU, maps the code page at [`CODE_ADDR`] with the
//! case's bytes followed by [`TERMINATOR`] (`int3`) and the scratch page at [`SCRATCH_ADDR`] with
//! `case.init.mem` (the rest of that page zero), loads GPRs, RFLAGS, XMM and MXCSR from `case.init`, sets RIP to
//! `CODE_ADDR`, and runs until the `int3` raises #BP (or until RIP reaches `CODE_ADDR + case.end_offset()`) or a
//! fault is raised. It then fills a [`CpuSnapshot`]: the registers and the first [`SCRATCH_LEN`] scratch bytes;
//! `rip` as an offset from `CODE_ADDR` (the terminator's offset after a normal end, the faulting instruction's
//! after a fault); `fault` from the exception vector (#DE → `De`, #UD → `Ud`, #GP → `Gp`, #SS → `Ss`,
//! #PF → `Pf { addr: CR2, write: error code bit 1 }`, #AC → `Ac`). Then [`compare`] gives the differences.
//!
//! 32-bit cases ([`Case::bitness`]) run in 32-bit code (compatibility mode natively, flat 32-bit protected mode
//! with EFER.LMA on rqemu); of their GPRs only the low halves of EAX..EDI are compared ([`gpr_mask`]).
//!
//! What is compared: all 16 GPRs, RIP, RFLAGS (all bits, less the undefined ones of the instructions that ran),
//! XMM0-15, MXCSR, the scratch bytes and the fault. RFLAGS.IF is set in every generated initial state, as a user
//! process always has it. The oracle's `Timeout` and `Crashed` outcomes say nothing about the CPU: such cases are
//! skipped ([`comparable`]).
//!
//! The x87/MMX state (FCW, FSW with TOP and C0..C3, the abridged tag word, ST0-7 as 80-bit images in stack
//! order) is compared bit for bit, with two exceptions:
//! - after a transcendental (`generate::x87::TRANSCENDENTAL`: fsin fcos fsincos fptan fpatan f2xm1 fyl2x
//!   fyl2xp1) a register may differ from the host's by one unit in the last place of the 64-bit significand
//!   (same sign, adjacent in the ordering of 80-bit values), unless the host's result is exact (FSW.PE clear
//!   after the case: the flag is sticky, so a clear PE proves no rounding happened, and then the bits must
//!   match); and C1 (the round-up indicator, which depends on that last bit) is not compared. The manuals give
//!   the transcendentals' accuracy only as a bound of about one ulp, and Intel and AMD implementations differ.
//! - fnstenv/fstenv/fnsave/fsave store the last-instruction and last-data pointers and the opcode (bytes 6..14
//!   of the 14-byte layout, 12..28 of the 28-byte one): natively these are host addresses (and AMD stores them
//!   only when an exception is pending), so those stored bytes are not compared. Everything else they store is.
//!
//! Faults: #MF is reported at the waiting x87 instruction that found the exception pending, with FSW as it was
//! (ES and the flag set; the kernel does not clear them); #XM at the SSE instruction, with MXCSR's flag set and
//! the destination unchanged. Both are compared like any fault, with the state at the faulting instruction.
//!
//! For a sequence, the first instruction's undefined set is computed from the initial state; later instructions,
//! whose input state is not known here, contribute their worst case ([`undefined_flags::worst_case`]).

use crate::generate::x87::TRANSCENDENTAL;
use crate::state::{fsw, gpr_mask, Case, CpuSnapshot, Fault, GPR_NAMES, SCRATCH_ADDR, SCRATCH_LEN};
#[cfg(doc)]
use crate::state::{CODE_ADDR, TERMINATOR};
use crate::undefined_flags::{self, Undefined};
use iced_x86::{Decoder, Formatter, Instruction, IntelFormatter, Mnemonic, Register};
use std::fmt;

/// One field that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {} got {}", self.field, self.expected, self.actual)
    }
}

/// Whether the oracle's outcome can be compared at all (it is not a timeout or a harness crash).
pub fn comparable(oracle: &CpuSnapshot) -> bool {
    !matches!(oracle.fault, Fault::Timeout | Fault::Crashed { .. })
}

/// The instructions of a case, decoded at their addresses.
pub fn decode_case(case: &Case) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(case.bitness, &case.code, case.ip_base(), 0);
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

/// Intel-syntax disassembly of a case, instructions separated by `; `.
pub fn disassemble(case: &Case) -> String {
    let mut f = IntelFormatter::new();
    let mut out = String::new();
    for insn in decode_case(case) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        f.format(&insn, &mut out);
    }
    out
}

/// What is not compared after `case` ran up to offset `stop` (the faulting instruction, or the end).
pub fn undefined_for(case: &Case, stop: u64) -> Undefined {
    let mut acc = Undefined::default();
    for (i, insn) in decode_case(case).iter().enumerate() {
        if insn.ip() - case.ip_base() >= stop {
            break;
        }
        let u = if i == 0 {
            undefined_flags::undefined(insn, &case.init)
        } else {
            undefined_flags::worst_case(insn)
        };
        acc = acc.union(u);
    }
    acc
}

/// The differences between the oracle's snapshot and rqemu's for `case`, undefined parts masked. Empty when they
/// agree. Call only for [`comparable`] oracle snapshots.
pub fn compare(case: &Case, oracle: &CpuSnapshot, actual: &CpuSnapshot) -> Vec<FieldDiff> {
    let mut diffs = Vec::new();
    let mut diff = |field: String, e: String, a: String| {
        diffs.push(FieldDiff {
            field,
            expected: e,
            actual: a,
        })
    };
    if oracle.fault != actual.fault {
        diff("fault".into(), oracle.fault.to_string(), actual.fault.to_string());
    }
    if oracle.rip != actual.rip {
        diff("rip".into(), format!("{:#x}", oracle.rip), format!("{:#x}", actual.rip));
    }
    let undef = undefined_for(case, oracle.rip);
    let (e, a) = (&oracle.state, &actual.state);
    for (i, name) in GPR_NAMES.iter().enumerate() {
        if (e.gpr[i] ^ a.gpr[i]) & gpr_mask(case.bitness, i) != 0 && undef.gpr != Some(i) {
            diff(name.to_string(), format!("{:#x}", e.gpr[i]), format!("{:#x}", a.gpr[i]));
        }
    }
    if (e.rflags ^ a.rflags) & !undef.flags != 0 {
        diff(
            "rflags".into(),
            format!("{:#x} (undefined {:#x})", e.rflags, undef.flags),
            format!("{:#x}", a.rflags),
        );
    }
    for i in 0..16 {
        if e.xmm[i] != a.xmm[i] {
            diff(
                format!("xmm{i}"),
                format!("{:#x}", e.xmm[i]),
                format!("{:#x}", a.xmm[i]),
            );
        }
    }
    if e.mxcsr != a.mxcsr {
        diff("mxcsr".into(), format!("{:#x}", e.mxcsr), format!("{:#x}", a.mxcsr));
    }
    if e.fcw != a.fcw {
        diff("fcw".into(), format!("{:#x}", e.fcw), format!("{:#x}", a.fcw));
    }
    let insns: Vec<Instruction> = decode_case(case)
        .into_iter()
        .take_while(|i| i.ip() - case.ip_base() <= oracle.rip)
        .collect();
    let transcendental = insns.iter().any(|i| TRANSCENDENTAL.contains(&i.mnemonic()));
    let fsw_compared = if transcendental { !fsw::C1 } else { !0 };
    if (e.fsw ^ a.fsw) & fsw_compared != 0 {
        diff("fsw".into(), format!("{:#x}", e.fsw), format!("{:#x}", a.fsw));
    }
    if e.ftw != a.ftw {
        diff("ftw".into(), format!("{:#x}", e.ftw), format!("{:#x}", a.ftw));
    }
    let inexact = e.fsw & fsw::PE != 0;
    for i in 0..8 {
        if e.st[i] != a.st[i] && !(transcendental && inexact && within_one_ulp(e.st[i], a.st[i])) {
            diff(format!("st{i}"), format!("{:#x}", e.st[i]), format!("{:#x}", a.st[i]));
        }
    }
    let ignored = ignored_memory(case, &insns);
    let mem_differs = (0..e.mem.len()).any(|i| e.mem[i] != a.mem[i] && !ignored[i]);
    if mem_differs && !undef.mem_dest {
        diff("memory".into(), e.to_text_diff(&case.init), a.to_text_diff(&case.init));
    }
    diffs
}

/// Whether two 80-bit values have the same sign and integer bit and are at most one apart in the ordering of
/// their exponent and fraction (adjacent representable values, also across a binade boundary).
pub fn within_one_ulp(a: u128, b: u128) -> bool {
    let sign_j = |v: u128| (v >> 79, v >> 63 & 1);
    let ordinal = |v: u128| ((v >> 64) & 0x7fff) << 63 | (v & ((1 << 63) - 1));
    sign_j(a) == sign_j(b) && ordinal(a).abs_diff(ordinal(b)) <= 1
}

/// Scratch bytes that are not compared: the instruction and data pointer fields the environment stores of
/// `insns` write (see the module doc). Their addresses come from the initial registers: the generator keeps
/// base and index registers unchanged for the whole case.
fn ignored_memory(case: &Case, insns: &[Instruction]) -> [bool; SCRATCH_LEN] {
    use iced_x86::MemorySize as S;
    let mut ignored = [false; SCRATCH_LEN];
    for insn in insns {
        let range = match insn.memory_size() {
            S::FpuEnv14 | S::FpuState94 => 6..14,
            S::FpuEnv28 | S::FpuState108 => 12..28,
            _ => continue,
        };
        if !matches!(
            insn.mnemonic(),
            Mnemonic::Fnstenv | Mnemonic::Fstenv | Mnemonic::Fnsave | Mnemonic::Fsave
        ) {
            continue;
        }
        let reg = |r: Register| match crate::generate::gpr_number(r) {
            Some(n) if r != Register::None => case.init.gpr[n],
            _ => 0,
        };
        let mut ea = reg(insn.memory_base())
            .wrapping_add(reg(insn.memory_index()).wrapping_mul(insn.memory_index_scale() as u64))
            .wrapping_add(insn.memory_displacement64());
        ea = match case.bitness {
            16 => (ea & 0xffff) + SCRATCH_ADDR,
            32 => ea & 0xffff_ffff,
            _ => ea,
        };
        for off in range {
            if let Some(i) = (ea + off).checked_sub(SCRATCH_ADDR).filter(|i| *i < SCRATCH_LEN as u64) {
                ignored[i as usize] = true;
            }
        }
    }
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{flags, CpuState};

    fn case(code: &[u8]) -> Case {
        Case {
            init: CpuState::default(),
            code: code.to_vec(),
            bitness: 64,
        }
    }

    #[test]
    fn undefined_flags_are_masked_and_others_are_not() {
        let c = case(&[0x48, 0xf7, 0xe3]); // mul rbx
        let oracle = CpuSnapshot {
            state: c.init.clone(),
            rip: 3,
            fault: Fault::None,
        };
        let mut actual = oracle.clone();
        actual.state.rflags ^= flags::SF | flags::ZF | flags::AF | flags::PF;
        assert_eq!(compare(&c, &oracle, &actual), vec![]);
        actual.state.rflags ^= flags::CF;
        actual.state.gpr[2] = 1;
        let d = compare(&c, &oracle, &actual);
        assert_eq!(
            d.iter().map(|d| d.field.as_str()).collect::<Vec<_>>(),
            ["rdx", "rflags"]
        );
    }

    #[test]
    fn x87_state_is_compared_and_transcendentals_get_one_ulp() {
        // fadd st(0), st(1): exact comparison of every x87 field.
        let c = case(&[0xd8, 0xc1]);
        let mut oracle = CpuSnapshot {
            state: c.init.clone(),
            rip: 2,
            fault: Fault::None,
        };
        oracle.state.st[0] = 0x3fff_8000_0000_0000_0001;
        oracle.state.fsw = fsw::PE | fsw::C1;
        let mut actual = oracle.clone();
        actual.state.st[0] += 1;
        actual.state.fsw &= !fsw::C1;
        actual.state.ftw = 1;
        let fields = |d: Vec<FieldDiff>| d.into_iter().map(|d| d.field).collect::<Vec<_>>();
        assert_eq!(fields(compare(&c, &oracle, &actual)), ["fsw", "ftw", "st0"]);
        // fsin: one ulp and C1 are tolerated when inexact, two ulps are not.
        let c = case(&[0xd9, 0xfe]);
        actual.state.ftw = 0;
        assert_eq!(fields(compare(&c, &oracle, &actual)), Vec::<String>::new());
        actual.state.st[0] += 1;
        assert_eq!(fields(compare(&c, &oracle, &actual)), ["st0"]);
        // An exact host result must match exactly.
        actual.state.st[0] -= 1;
        oracle.state.fsw = 0;
        actual.state.fsw = 0;
        assert_eq!(fields(compare(&c, &oracle, &actual)), ["st0"]);
        assert!(within_one_ulp(0x3fff_ffff_ffff_ffff_ffff, 0x4000_8000_0000_0000_0000));
        assert!(!within_one_ulp(0xbfff_8000_0000_0000_0000, 0x3fff_8000_0000_0000_0000));
    }

    #[test]
    fn fnstenv_pointer_fields_are_not_compared() {
        // fnstenv [rbx] with rbx at the scratch start: bytes 12..28 hold FIP/FCS/FOP/FDP/FDS.
        let mut c = case(&[0xd9, 0x33]);
        c.init.gpr[3] = SCRATCH_ADDR;
        let oracle = CpuSnapshot {
            state: c.init.clone(),
            rip: 2,
            fault: Fault::None,
        };
        let mut actual = oracle.clone();
        actual.state.mem[12] = 0x55;
        actual.state.mem[27] = 0x55;
        assert!(compare(&c, &oracle, &actual).is_empty());
        actual.state.mem[0] = 0x55;
        assert_eq!(compare(&c, &oracle, &actual).len(), 1);
    }

    #[test]
    fn a_fault_at_the_first_instruction_masks_nothing() {
        let c = case(&[0x48, 0xf7, 0xf3]); // div rbx
        let oracle = CpuSnapshot {
            state: c.init.clone(),
            rip: 0,
            fault: Fault::De,
        };
        let mut actual = oracle.clone();
        actual.state.rflags ^= flags::CF;
        assert_eq!(compare(&c, &oracle, &actual).len(), 1);
        actual.fault = Fault::None;
        actual.rip = 3;
        assert_eq!(compare(&c, &oracle, &actual).len(), 3);
        assert_eq!(disassemble(&c), "div rbx");
    }
}

/// The CPU being tested: rqemu's frontend on some backend, behind whatever builds its CPU state. Implemented by the
/// emulator side; the oracle's snapshots come from `native::run_native` or from recorded vectors.
pub trait CpuUnderTest {
    /// Runs `case` as described in the module doc and returns the state after it.
    fn run(&mut self, case: &Case) -> CpuSnapshot;
}

/// A case on which the CPU under test disagreed with the oracle.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub case: Case,
    pub oracle: CpuSnapshot,
    pub actual: CpuSnapshot,
    pub diffs: Vec<FieldDiff>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = String::new();
        crate::state::push_hex_bytes(&mut bytes, &self.case.code);
        writeln!(f, "mismatch: {} [{}]", disassemble(&self.case), bytes)?;
        writeln!(f, "  input:  {}", self.case.init.to_text_diff(&Default::default()))?;
        let show = |s: &CpuSnapshot| {
            format!(
                "rip={:#x} fault={} {}",
                s.rip,
                s.fault,
                s.state.to_text_diff(&self.case.init)
            )
        };
        writeln!(f, "  oracle: {}", show(&self.oracle))?;
        writeln!(f, "  rqemu:  {}", show(&self.actual))?;
        for d in &self.diffs {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

/// The outcome of a differential run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Cases given.
    pub cases: usize,
    /// Cases skipped because the oracle timed out or crashed on them.
    pub skipped: usize,
    /// Distinct mnemonics among the compared cases.
    pub mnemonics: std::collections::BTreeSet<String>,
    /// Code sizes of the cases given (64, 32).
    pub modes: std::collections::BTreeSet<u32>,
    pub mismatches: Vec<Mismatch>,
}

impl Report {
    /// The summary line `cargo xtask fuzz-cpu` prints.
    pub fn summary(&self, backend: &str) -> String {
        format!(
            "cpu-diff: backend={backend} mode={} cases={} mnemonics={} mismatches={}",
            self.mode_name(),
            self.cases,
            self.mnemonics.len(),
            self.mismatches.len()
        )
    }

    /// The code sizes of the cases: `64`, `32`, or `32+64` for a mixed run (`64` for no cases).
    pub fn mode_name(&self) -> String {
        if self.modes.is_empty() {
            return "64".into();
        }
        let names: Vec<String> = self.modes.iter().map(u32::to_string).collect();
        names.join("+")
    }

    /// The summary line with the host the replay ran on: `cpu-diff: backend=<b> host=<h> mode=<m> cases=N mnemonics=M
    /// mismatches=K` (recorded vectors replayed, e.g. on wasm32 under Node).
    pub fn summary_on(&self, backend: &str, host: &str) -> String {
        self.summary(backend).replacen(
            &format!("backend={backend} "),
            &format!("backend={backend} host={host} "),
            1,
        )
    }
}

/// Runs every vector (case with the oracle's snapshot) on `cpu` and compares.
pub fn run_diff(vectors: &[(Case, CpuSnapshot)], cpu: &mut dyn CpuUnderTest) -> Report {
    let mut report = Report {
        cases: vectors.len(),
        ..Report::default()
    };
    for (case, oracle) in vectors {
        report.modes.insert(case.bitness);
        if !comparable(oracle) {
            report.skipped += 1;
            continue;
        }
        for insn in decode_case(case) {
            report.mnemonics.insert(format!("{:?}", insn.mnemonic()).to_lowercase());
        }
        let actual = cpu.run(case);
        let diffs = compare(case, oracle, &actual);
        if !diffs.is_empty() {
            report.mismatches.push(Mismatch {
                case: case.clone(),
                oracle: oracle.clone(),
                actual,
                diffs,
            });
        }
    }
    report
}

#[cfg(test)]
mod run_diff_tests {
    use super::*;
    use crate::generate::{GenOptions, Generator};
    use crate::state::flags;

    /// Answers with the recorded result, optionally corrupting CF.
    struct Replay<'a> {
        vectors: &'a [(Case, CpuSnapshot)],
        flip_cf: bool,
    }

    impl CpuUnderTest for Replay<'_> {
        fn run(&mut self, case: &Case) -> CpuSnapshot {
            let mut s = self.vectors.iter().find(|(c, _)| c == case).unwrap().1.clone();
            if self.flip_cf {
                s.state.rflags ^= flags::CF;
            }
            s
        }
    }

    #[test]
    fn a_faithful_cpu_has_no_mismatch_and_a_wrong_cf_is_reported() {
        let cases = Generator::new(GenOptions {
            families: vec![crate::generate::Family::Alu],
            ..GenOptions::default()
        })
        .cases(9, 50);
        let vectors: Vec<(Case, CpuSnapshot)> = cases
            .into_iter()
            .map(|c| {
                let s = CpuSnapshot {
                    state: c.init.clone(),
                    rip: c.end_offset(),
                    fault: Fault::None,
                };
                (c, s)
            })
            .collect();
        let report = run_diff(
            &vectors,
            &mut Replay {
                vectors: &vectors,
                flip_cf: false,
            },
        );
        assert!(report.mismatches.is_empty());
        assert!(report
            .summary("tci")
            .starts_with("cpu-diff: backend=tci mode=64 cases=50 mnemonics="));
        let report = run_diff(
            &vectors,
            &mut Replay {
                vectors: &vectors,
                flip_cf: true,
            },
        );
        assert_eq!(report.mismatches.len(), 50);
        let text = report.mismatches[0].to_string();
        assert!(text.contains("mismatch: ") && text.contains("rflags"), "{text}");
    }
}
