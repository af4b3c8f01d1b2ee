//! The recorded vector set `vectors/x86-64-baseline.txt` (replayed on wasm32 under Node by `tests/wasm`'s
//! `cpu_replay`) must stay current: it parses, its cases are still what the generator makes from the recorded
//! seeds, rqemu on tci matches it with 0 mismatches, and (on x86-64 Linux) this machine's CPU still agrees
//! with the recorded results up to undefined flags.
//!
//! To re-record after a generator change (then check `git diff --stat` stays small and the file under ~2 MB):
//! ```text
//! R=target/release/cpu-diff-record; F=tests/cpu-diff/vectors/x86-64-baseline.txt
//! { $R --cases 4200 --seed 4 --compact
//!   echo "# multi-instruction: cpu-diff-record --cases 300 --seed 5 --max-insns 4 --compact"
//!   $R --cases 300 --seed 5 --max-insns 4 --compact | tail -n +2; } > $F
//! ```

use rqemu_tests_cpu_diff::compare::run_diff;
use rqemu_tests_cpu_diff::generate::{GenOptions, Generator};
use rqemu_tests_cpu_diff::rqemu::Rqemu;
use rqemu_tests_cpu_diff::vectors::HEADER;
use rqemu_tests_cpu_diff::{parse_vectors, Case, CpuSnapshot};

const VECTORS: &str = include_str!("../vectors/x86-64-baseline.txt");

/// The recorded runs: (seed, cases, max_insns), in file order.
const RUNS: [(u64, usize, usize); 2] = [(4, 4200, 1), (5, 300, 4)];

fn vectors() -> Vec<(Case, CpuSnapshot)> {
    assert!(VECTORS.starts_with(HEADER), "the vector file starts with its header");
    parse_vectors(VECTORS).expect("the recorded vectors parse")
}

#[test]
fn the_cases_are_what_the_generator_makes() {
    let recorded = vectors();
    let mut expected = Vec::new();
    for (seed, cases, max_insns) in RUNS {
        let generator = Generator::new(GenOptions {
            max_insns,
            compact: true,
            ..GenOptions::default()
        });
        expected.extend(generator.cases(seed, cases));
    }
    assert_eq!(recorded.len(), expected.len(), "vector count");
    for (i, ((case, _), want)) in recorded.iter().zip(&expected).enumerate() {
        assert_eq!(
            case, want,
            "vector {i} is stale: the generator now makes another case; re-record the file"
        );
    }
}

#[test]
fn rqemu_on_tci_matches_the_recorded_results() {
    let recorded = vectors();
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
    let mut recorded = vectors();
    recorded.truncate(50);
    recorded[7].1.state.gpr[0] ^= 1 << 40;
    let report = run_diff(&recorded, &mut Rqemu::tci());
    assert_eq!(report.mismatches.len(), 1, "{}", report.summary("tci"));
}

/// The embedded engine (wasmi) runs the same modules as Node's V8 does under `cpu_replay` (`--features wasm32`).
#[cfg(feature = "wasm32")]
#[test]
fn rqemu_on_the_embedded_wasm32_engine_matches_the_recorded_results() {
    let recorded = vectors();
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
    let recorded = vectors();
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
