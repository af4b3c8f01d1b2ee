//! The recorded vector sets `vectors/x86-64-baseline.txt` (64-bit code), `vectors/x86-32-baseline.txt` (32-bit
//! code) and `vectors/x86-16-baseline.txt` (16-bit code), replayed on wasm32 under Node by `tests/wasm`'s `cpu_replay`, must stay current: they parse, their
//! cases are still what the generator makes from the recorded seeds, rqemu on tci matches them with 0 mismatches,
//! and (on x86-64 Linux) this machine's CPU still agrees with the recorded results up to undefined flags.
//!
//! To re-record after a generator change (then check `git diff --stat` stays small and the file under ~2 MB):
//! ```text
//! R=target/release/cpu-diff-record; F=tests/cpu-diff/vectors/x86-64-baseline.txt
//! { $R --cases 3800 --seed 4 --compact
//!   echo "# multi-instruction: cpu-diff-record --cases 300 --seed 5 --max-insns 4 --compact"
//!   $R --cases 300 --seed 5 --max-insns 4 --compact | tail -n +3; } > $F
//! F=tests/cpu-diff/vectors/x86-32-baseline.txt
//! { $R --mode 32 --cases 1400 --seed 4 --compact
//!   echo "# multi-instruction: cpu-diff-record --mode 32 --cases 100 --seed 5 --max-insns 4 --compact"
//!   $R --mode 32 --cases 100 --seed 5 --max-insns 4 --compact | tail -n +3; } > $F
//! F=tests/cpu-diff/vectors/x86-16-baseline.txt
//! { $R --mode 16 --cases 1000 --seed 4 --compact
//!   echo "# multi-instruction: cpu-diff-record --mode 16 --cases 100 --seed 5 --max-insns 4 --compact"
//!   $R --mode 16 --cases 100 --seed 5 --max-insns 4 --compact | tail -n +3; } > $F
//! ```

use rqemu_tests_cpu_diff::compare::run_diff;
use rqemu_tests_cpu_diff::generate::{GenOptions, Generator};
use rqemu_tests_cpu_diff::rqemu::Rqemu;
use rqemu_tests_cpu_diff::vectors::HEADER;
use rqemu_tests_cpu_diff::{parse_vectors, Case, CpuSnapshot};

/// A recorded file: its text, the code size of its cases, and the recorded runs (seed, cases, max_insns), in file
/// order.
struct Set {
    name: &'static str,
    text: &'static str,
    bitness: u32,
    runs: &'static [(u64, usize, usize)],
}

const SETS: [Set; 3] = [
    Set {
        name: "x86-64-baseline.txt",
        text: include_str!("../vectors/x86-64-baseline.txt"),
        bitness: 64,
        runs: &[(4, 3800, 1), (5, 300, 4)],
    },
    Set {
        name: "x86-32-baseline.txt",
        text: include_str!("../vectors/x86-32-baseline.txt"),
        bitness: 32,
        runs: &[(4, 1400, 1), (5, 100, 4)],
    },
    Set {
        name: "x86-16-baseline.txt",
        text: include_str!("../vectors/x86-16-baseline.txt"),
        bitness: 16,
        runs: &[(4, 1000, 1), (5, 100, 4)],
    },
];

fn vectors(set: &Set) -> Vec<(Case, CpuSnapshot)> {
    assert!(set.text.starts_with(HEADER), "{} starts with its header", set.name);
    parse_vectors(set.text).unwrap_or_else(|e| panic!("{} parses: {e}", set.name))
}

/// Both sets, parsed.
fn all_vectors() -> Vec<(Case, CpuSnapshot)> {
    SETS.iter().flat_map(vectors).collect()
}

#[test]
fn the_cases_are_what_the_generator_makes() {
    for set in &SETS {
        let recorded = vectors(set);
        let mut expected = Vec::new();
        for &(seed, cases, max_insns) in set.runs {
            let generator = Generator::new(GenOptions {
                max_insns,
                compact: true,
                bitness: set.bitness,
                ..GenOptions::default()
            });
            expected.extend(generator.cases(seed, cases));
        }
        assert_eq!(recorded.len(), expected.len(), "vector count of {}", set.name);
        for (i, ((case, _), want)) in recorded.iter().zip(&expected).enumerate() {
            assert_eq!(
                case, want,
                "vector {i} of {} is stale: the generator now makes another case; re-record the file",
                set.name
            );
        }
    }
}

#[test]
fn rqemu_on_tci_matches_the_recorded_results() {
    let recorded = all_vectors();
    let report = run_diff(&recorded, &mut Rqemu::tci());
    for m in report.mismatches.iter().take(10) {
        print!("{m}");
    }
    assert_eq!(report.skipped, 0, "the recorded oracle finished every case");
    assert!(
        report.mnemonics.len() >= 60,
        "mnemonics covered: {}",
        report.mnemonics.len()
    );
    assert_eq!(report.mismatches.len(), 0, "{}", report.summary("tci"));
}

#[test]
fn a_wrong_recorded_result_is_a_mismatch() {
    let mut recorded = vectors(&SETS[0]);
    recorded.truncate(50);
    recorded[7].1.state.gpr[0] ^= 1 << 40;
    let report = run_diff(&recorded, &mut Rqemu::tci());
    assert_eq!(report.mismatches.len(), 1, "{}", report.summary("tci"));
    // In 32-bit code only EAX..EDI's low halves count.
    let mut recorded = vectors(&SETS[1]);
    recorded.truncate(50);
    recorded[7].1.state.gpr[0] ^= 1 << 40;
    recorded[8].1.state.gpr[9] ^= 1;
    recorded[9].1.state.gpr[3] ^= 1 << 31;
    let report = run_diff(&recorded, &mut Rqemu::tci());
    assert_eq!(report.mismatches.len(), 1, "{}", report.summary("tci"));
    assert!(report.summary("tci").contains(" mode=32 "));
}

/// The embedded engine (wasmi) runs the same modules as Node's V8 does under `cpu_replay` (`--features wasm32`).
#[cfg(feature = "wasm32")]
#[test]
fn rqemu_on_the_embedded_wasm32_engine_matches_the_recorded_results() {
    let recorded = all_vectors();
    let report = run_diff(&recorded, &mut Rqemu::wasm32());
    for m in report.mismatches.iter().take(3) {
        print!("{m}");
    }
    assert_eq!(report.mismatches.len(), 0, "{}", report.summary("wasm32"));
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn this_cpu_still_agrees_with_the_recorded_results() {
    use rqemu_tests_cpu_diff::compare::compare;
    let recorded = all_vectors();
    let cases: Vec<Case> = recorded.iter().map(|(c, _)| c.clone()).collect();
    let now = rqemu_tests_cpu_diff::run_native(&cases);
    let mut bad = Vec::new();
    for (i, ((case, then), now)) in recorded.iter().zip(&now).enumerate() {
        let diffs = compare(case, then, now);
        if !diffs.is_empty() {
            bad.push(format!("vector {i}: {diffs:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} recorded results differ from this CPU's:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}
