//! `cpu_replay() -> u32`: the x86 test vectors recorded natively on a real CPU
//! (`tests/cpu-diff/vectors/x86-64-baseline.txt`, `x86-32-baseline.txt` and `x86-16-baseline.txt` for 64-, 32- and
//! 16-bit code, embedded) replayed through rqemu's x86 frontend on this host, without the CPU: on tci, and on wasm32 hosts
//! also on the wasm32 backend for real (`Wasm32`, every TB compiled directly into a module of its own, guest
//! memory through the slow path). Prints one `cpu-diff: backend=<tci|wasm32> host=<host> mode=<64|32|16> cases=N
//! mnemonics=M mismatches=K` line per backend and file (and the first mismatches) and returns the total mismatch
//! count (a file that does not parse counts as one).
//!
//! Natively the export replays on tci only (the wasm32 backend's runtime needs a Wasm host); the cpu-diff crate's
//! own tests check the file against the oracle.

use rqemu_tests_cpu_diff::compare::{run_diff, CpuUnderTest, Report};
use rqemu_tests_cpu_diff::rqemu::Rqemu;
use rqemu_tests_cpu_diff::{parse_vectors, Case, CpuSnapshot};

use crate::host::{self, outln};

/// The recorded vectors (`cpu-diff-record --compact`; see the file's comments).
pub const VECTORS: &str = include_str!("../../cpu-diff/vectors/x86-64-baseline.txt");
/// The recorded vectors of 32-bit code (`cpu-diff-record --mode 32 --compact`).
pub const VECTORS_32: &str = include_str!("../../cpu-diff/vectors/x86-32-baseline.txt");
/// The recorded vectors of 16-bit code (`cpu-diff-record --mode 16 --compact`).
pub const VECTORS_16: &str = include_str!("../../cpu-diff/vectors/x86-16-baseline.txt");

/// Mismatches printed per backend.
const SHOW: usize = 10;

/// The host name in the summary lines.
const HOST: &str = if cfg!(target_arch = "wasm32") {
    "wasm32-node"
} else {
    "native"
};

/// Replays the embedded vectors on every backend of this host; returns the number of mismatches.
#[no_mangle]
pub extern "C" fn cpu_replay() -> u32 {
    host::install_panic_hook();
    let mut total = 0usize;
    for (name, text) in [
        ("x86-64-baseline.txt", VECTORS),
        ("x86-32-baseline.txt", VECTORS_32),
        ("x86-16-baseline.txt", VECTORS_16),
    ] {
        let vectors = match parse_vectors(text) {
            Ok(v) => v,
            Err(e) => {
                outln!("cpu-diff: FAILED: the embedded {name} does not parse: {}", e.0);
                total += 1;
                continue;
            }
        };
        total += replay(&vectors, &mut Rqemu::tci());
        #[cfg(target_arch = "wasm32")]
        {
            let backend = rqemu_tcg_wasm32::runtime::Wasm32::new();
            let stats = backend.stats_handle();
            total += replay(&vectors, &mut Rqemu::new(Box::new(backend)));
            outln!("  {}", stats.get());
        }
    }
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Replays `vectors` on `cpu`, prints the first mismatches and the summary line; returns the mismatch count.
fn replay(vectors: &[(Case, CpuSnapshot)], cpu: &mut Rqemu) -> usize {
    let backend = cpu.backend_name();
    let start = host::now();
    let report: Report = run_diff(vectors, cpu as &mut dyn CpuUnderTest);
    let ms = (host::now() - start) * 1000.0;
    for m in report.mismatches.iter().take(SHOW) {
        for line in m.to_string().lines() {
            outln!("  {line}");
        }
    }
    if report.mismatches.len() > SHOW {
        outln!("  ... {} more mismatches not shown", report.mismatches.len() - SHOW);
    }
    if report.skipped > 0 {
        outln!("  skipped {} cases the oracle could not finish", report.skipped);
    }
    outln!("cpu-replay: backend={backend} replayed in {ms:.0} ms");
    outln!("{}", report.summary_on(backend, HOST));
    report.mismatches.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_vectors_replay_on_tci_without_mismatches() {
        assert_eq!(super::cpu_replay(), 0);
    }
}
