//! `cargo xtask test`, `test-wasm` and `bless`.
//!
//! `test` runs the native tests (`cargo test --workspace --no-fail-fast`, showing the output of passing tests
//! so the conformance summary lines are in the log), then the wasm32 part, and ends with a summary naming each
//! part, its time and its `conformance:` and `cpu-diff:` lines. A part that prints no `backend=tci` conformance
//! line fails: the suite must have run on tci. Between the two, the `cpu-diff` part runs `fuzz-cpu` at CI size
//! on tci (50,000 cases, fixed seed), then on wasm32 (20,000 cases, same seed), then the same for 32- and
//! 16-bit code (`--mode 32`, `--mode 16`: 20,000 cases on tci, 5,000 on wasm32 each), and requires
//! `mismatches=0` of each. The wasm32 part runs the JS TB host's tests (`node --test
//! tcg/wasm32/js/`), builds `tests/wasm` and runs, under Node: `selftest` (64-bit arithmetic on the 32-bit
//! host), `selftest_panic` (a panic must print its message and trap), `conformance_tci`, then the wasm32
//! backend for real: `wasm32_smoke`, `conformance_wasm32` (a `backend=wasm32` line is required) and
//! `tiering_wasm32` (tiering, eviction, flush and chaining), and `cpu_replay` (vectors of 64-, 32- and 16-bit code
//! recorded on the CPU, `tests/cpu-diff/vectors/`, replayed on tci and wasm32 with `mismatches=0` required for
//! each backend and mode). Last, the guest tests: the native `guest-images` binary of `rqemu-tests` writes
//! the bare-metal guest images and their expectations to `target/guest-images`, and `run.mjs guest` runs each
//! on the PC machine inside the module (tci + the wasm32 hot tier); a `guest-tests: host=wasm32-node
//! images=N failures=0` line with N > 0 is required. Until the `rqemu-tests` package exists, the step is
//! skipped with a message.

use std::path::Path;
use std::time::Instant;

use crate::cmd::Cmd;
use crate::{failed, fuzz, wasm, Result};

/// One part of the test run, as the summary reports it.
struct Part {
    name: &'static str,
    result: Result,
    seconds: f64,
    /// Lines worth repeating in the summary: `conformance:` lines and failed tests.
    lines: Vec<String>,
}

fn is_conformance_line(line: &str) -> bool {
    line.starts_with("conformance: ")
}

/// A `conformance:` line or libtest's `test <name> ... FAILED`.
fn is_summary_line(line: &str) -> bool {
    is_conformance_line(line) || (line.starts_with("test ") && line.ends_with(" ... FAILED"))
}

/// What the wasm32 part repeats in the summary: conformance lines, the tiering verdicts and the JS tests'.
fn is_wasm32_summary_line(line: &str) -> bool {
    is_conformance_line(line)
        || line.starts_with("tiering-wasm32: ")
        || line.starts_with("wasm32-smoke: ok")
        || line.starts_with("cpu-diff: ")
        || line.starts_with("guest-tests: ")
        || line.contains("FAILED")
        || line.starts_with("# pass ")
        || line.starts_with("# fail ")
}

/// The Node tests of the JS TB host.
const TB_HOST_TESTS: &str = "tcg/wasm32/js/";

/// Every test; fails if any part fails.
pub fn test() -> Result {
    let parts = [native(), cpu_diff(), wasm32()];
    summarize("test", &parts)
}

/// Only the wasm32 part.
pub fn test_wasm() -> Result {
    summarize("test-wasm", &[wasm32()])
}

/// Re-runs the tests with `RQEMU_BLESS=1`: every golden test (`rqemu-tcg`'s `golden` and `op_list_doc`, and
/// any later one) rewrites its expected file instead of comparing. Then shows what changed.
pub fn bless() -> Result {
    let result = Cmd::cargo()
        .env("RQEMU_BLESS", "1")
        .args(["test", "--workspace", "--no-fail-fast"])
        .run();
    let _ = Cmd::new("git").args(["status", "--short"]).run();
    result
}

fn native() -> Part {
    timed("native", || {
        let tee = Cmd::cargo()
            .args(["test", "--workspace", "--no-fail-fast", "--", "--show-output"])
            .run_tee(is_summary_line);
        (require_conformance(tee.result, &tee.kept, "tci"), tee.kept)
    })
}

/// Cases and seed of the differential CPU test `test` runs (issue 4: CI runs at least 50,000 cases on tci).
const CPU_DIFF_CASES: u64 = 50_000;
const CPU_DIFF_SEED: u64 = 20_261_124;
/// Cases of the same test through the wasm32 backend on its embedded engine (same seed).
const CPU_DIFF_CASES_WASM32: u64 = 20_000;
/// Cases of 32-bit and of 16-bit code (compatibility mode natively) on tci, and on wasm32 (same seed).
const CPU_DIFF_CASES_32: u64 = 20_000;
const CPU_DIFF_CASES_32_WASM32: u64 = 5_000;

/// `fuzz-cpu` on tci at CI size, then on wasm32, for 64-bit, 32-bit and 16-bit code (x86-64 Linux hosts only:
/// the oracle is the host CPU). Each run's `cpu-diff:` line must say `mismatches=0`.
fn cpu_diff() -> Part {
    timed("cpu-diff", || {
        if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            return (
                Ok(()),
                vec!["cpu-diff: skipped (needs an x86-64 Linux host)".to_string()],
            );
        }
        let mut result = Ok(());
        let mut lines = Vec::new();
        for (backend, name, mode, cases) in [
            (fuzz::Backend::Tci, "tci", 64, CPU_DIFF_CASES),
            (fuzz::Backend::Wasm32, "wasm32", 64, CPU_DIFF_CASES_WASM32),
            (fuzz::Backend::Tci, "tci", 32, CPU_DIFF_CASES_32),
            (fuzz::Backend::Wasm32, "wasm32", 32, CPU_DIFF_CASES_32_WASM32),
            (fuzz::Backend::Tci, "tci", 16, CPU_DIFF_CASES_32),
            (fuzz::Backend::Wasm32, "wasm32", 16, CPU_DIFF_CASES_32_WASM32),
        ] {
            let tee = fuzz::run(fuzz::FuzzOptions {
                cases,
                seed: CPU_DIFF_SEED,
                backend,
                mode,
                families: None,
            });
            let this = tee.result.and_then(|()| {
                let want = format!(" backend={name} mode={mode} ");
                if tee
                    .kept
                    .iter()
                    .any(|l| l.contains(&want) && l.ends_with(" mismatches=0"))
                {
                    Ok(())
                } else {
                    Err(failed(format!(
                        "no `cpu-diff: backend={name} mode={mode} ... mismatches=0` line was printed"
                    )))
                }
            });
            lines.extend(tee.kept);
            if result.is_ok() {
                result = this;
            }
        }
        (result, lines)
    })
}

fn wasm32() -> Part {
    timed("wasm32", || {
        let mut lines = Vec::new();
        let result = wasm::toolchain()
            .and_then(|tc| {
                let tee = Cmd::new("node")
                    .args(["--test", TB_HOST_TESTS])
                    .run_tee(is_wasm32_summary_line);
                lines.extend(tee.kept);
                tee.result?;
                wasm::build_tests(&tc)
            })
            .and_then(|module| {
                wasm::node(&module, "selftest").run()?;
                check_panic_path(&module)?;
                let mut errors = Vec::new();
                // Every export runs even when an earlier one failed, so one report shows everything.
                for export in [
                    "conformance_tci",
                    "wasm32_smoke",
                    "conformance_wasm32",
                    "tiering_wasm32",
                    "cpu_replay",
                ] {
                    let tee = wasm::node(&module, export).run_tee(is_wasm32_summary_line);
                    lines.extend(tee.kept);
                    if let Err(e) = tee.result {
                        errors.push(format!("{export}: {e}"));
                    }
                }
                for backend in ["tci", "wasm32"] {
                    if let Err(e) = require_conformance(Ok(()), &lines, backend) {
                        errors.push(e.to_string());
                    }
                    // `cpu_replay`: the natively recorded vectors of 64-, 32- and 16-bit code, replayed without
                    // mismatches.
                    for mode in [64, 32, 16] {
                        let replayed = format!("cpu-diff: backend={backend} host=wasm32-node mode={mode} ");
                        if !lines
                            .iter()
                            .any(|l| l.starts_with(&replayed) && l.ends_with(" mismatches=0"))
                        {
                            errors.push(format!("no `{replayed}... mismatches=0` line was printed"));
                        }
                    }
                }
                if let Err(e) = guest_tests(&module, &mut lines) {
                    errors.push(e.to_string());
                }
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(failed(errors.join("; ")))
                }
            });
        (result, lines)
    })
}

/// The package and binary that write the guest images, and where they go.
const GUEST_PACKAGE: &str = "rqemu-tests";
const GUEST_BIN: &str = "guest-images";
const GUEST_BIN_SOURCE: &str = "tests/src/bin/guest-images.rs";
const GUEST_DIR: &str = "target/guest-images";

/// Writes the guest images natively, then runs them under Node on `module`; its lines go to `lines`.
fn guest_tests(module: &Path, lines: &mut Vec<String>) -> Result {
    if !Path::new("tests/Cargo.toml").is_file() || !Path::new(GUEST_BIN_SOURCE).is_file() {
        let msg = format!(
            "guest-tests: skipped (the package `{GUEST_PACKAGE}` with its `{GUEST_BIN}` binary does not exist yet)"
        );
        eprintln!("xtask: {msg}");
        lines.push(msg);
        return Ok(());
    }
    // Stale images of a removed test must not run.
    let _ = std::fs::remove_dir_all(GUEST_DIR);
    Cmd::cargo()
        .args(["run", "-p", GUEST_PACKAGE, "--bin", GUEST_BIN, "--", GUEST_DIR])
        .run()?;
    let tee = wasm::node(module, "guest")
        .arg(GUEST_DIR)
        .run_tee(is_wasm32_summary_line);
    let passed = tee.kept.iter().any(|l| {
        l.strip_prefix("guest-tests: host=wasm32-node images=")
            .and_then(|rest| rest.strip_suffix(" failures=0"))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    lines.extend(tee.kept);
    tee.result.map_err(|e| failed(format!("guest tests: {e}")))?;
    if passed {
        Ok(())
    } else {
        Err(failed(
            "no `guest-tests: host=wasm32-node images=N failures=0` line (N > 0) was printed",
        ))
    }
}

/// A panic in the module must print `panic: <message>` through the host and end in a trap (exit 3).
fn check_panic_path(module: &Path) -> Result {
    eprintln!("xtask: the next export panics on purpose; a trap report is expected");
    let tee = wasm::node(module, "selftest_panic").run_tee(|l| l.starts_with("panic: "));
    if tee.code == Some(3) && !tee.kept.is_empty() {
        eprintln!("xtask: ok: the panic was printed and trapped, as expected");
        Ok(())
    } else {
        Err(failed(format!(
            "selftest_panic: expected a `panic:` line and exit code 3, got {} line(s) and {:?}",
            tee.kept.len(),
            tee.code
        )))
    }
}

/// The suite must have run on `backend`: `result`, and a `conformance: backend=<backend> ...` line among
/// `lines`.
fn require_conformance(result: Result, lines: &[String], backend: &str) -> Result {
    result?;
    let needle = format!(" backend={backend} ");
    if !lines.iter().any(|l| is_conformance_line(l) && l.contains(&needle)) {
        return Err(failed(format!(
            "no `conformance: backend={backend} ...` line was printed: the suite did not run on {backend}"
        )));
    }
    Ok(())
}

fn timed(name: &'static str, f: impl FnOnce() -> (Result, Vec<String>)) -> Part {
    eprintln!("\n==== {name} ====");
    let start = Instant::now();
    let (result, lines) = f();
    Part {
        name,
        result,
        seconds: start.elapsed().as_secs_f64(),
        lines,
    }
}

fn summarize(command: &str, parts: &[Part]) -> Result {
    let failures: Vec<&Part> = parts.iter().filter(|p| p.result.is_err()).collect();
    let total: f64 = parts.iter().map(|p| p.seconds).sum();
    let verdict = if failures.is_empty() { "ok" } else { "FAILED" };
    println!("\n==== cargo xtask {command}: {verdict} ({total:.1} s) ====");
    for p in parts {
        let status = if p.result.is_ok() { "ok" } else { "FAILED" };
        println!("{:8} {status:7} {:7.1} s", p.name, p.seconds);
        for line in &p.lines {
            println!("         {line}");
        }
        if let Err(e) = &p.result {
            println!("         error: {e}");
        }
    }
    match failures.as_slice() {
        [] => Ok(()),
        _ => {
            let names: Vec<&str> = failures.iter().map(|p| p.name).collect();
            Err(failed(format!("failed: {}", names.join(", "))))
        }
    }
}
