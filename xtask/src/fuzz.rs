//! `cargo xtask fuzz-cpu`: differential testing of the x86-64 frontend against this machine's CPU (issue 4,
//! item 4). Builds and runs `tests/cpu-diff`'s `cpu-diff` binary in release mode, which generates the cases from
//! the seed, runs them natively (the oracle, in a sandboxed child) and on rqemu, prints the first mismatches and
//! the `cpu-diff: backend=<b> mode=<64|32> cases=<n> mnemonics=<m> mismatches=<k>` summary line, and exits
//! non-zero on any mismatch. `--families a,b` chooses the generator families (e.g. `pending`, `x87`, `sse2-int`; see
//! `Family::parse_list`). `--mode 32` fuzzes 32-bit code (compatibility mode natively). x86-64 Linux hosts only (the oracle runs the cases on the host CPU).

use crate::cmd::{Cmd, Tee};
use crate::{Error, Result};

/// Which backend runs rqemu's generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The TCG interpreter.
    Tci,
    /// The wasm32 backend on its embedded engine.
    Wasm32,
}

impl Backend {
    /// Parses `--backend`'s value.
    pub fn parse(name: &str) -> Result<Backend> {
        match name {
            "tci" => Ok(Backend::Tci),
            "wasm32" => Ok(Backend::Wasm32),
            other => Err(Error::Usage(format!("unknown backend `{other}` (known: tci, wasm32)"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Tci => "tci",
            Backend::Wasm32 => "wasm32",
        }
    }
}

/// The options of one run.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    pub cases: u64,
    pub seed: u64,
    pub backend: Backend,
    /// Code size of the cases: 64, 32 or 16.
    pub mode: u32,
    /// `--families` for cpu-diff (None: its default mix, which leaves out the pending families).
    pub families: Option<String>,
}

/// Parses `--mode`'s value (64, 32 or 16).
pub fn parse_mode(value: Option<String>) -> Result<u32> {
    match value.as_deref() {
        None | Some("64") => Ok(64),
        Some("32") => Ok(32),
        Some("16") => Ok(16),
        Some(other) => Err(Error::Usage(format!("unknown mode `{other}` (known: 64, 32, 16)"))),
    }
}

/// Whether a line of the run is the summary line.
pub fn is_summary_line(line: &str) -> bool {
    line.starts_with("cpu-diff: ")
}

/// Runs the differential test; the returned [`Tee`] keeps the summary line.
pub fn run(opts: FuzzOptions) -> Tee {
    let mut cmd = Cmd::cargo().args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "rqemu-tests-cpu-diff",
        "--bin",
        "cpu-diff",
    ]);
    if opts.backend == Backend::Wasm32 {
        cmd = cmd.args(["--features", "wasm32"]);
    }
    cmd = cmd
        .arg("--")
        .arg("--cases")
        .arg(opts.cases.to_string())
        .arg("--seed")
        .arg(opts.seed.to_string())
        .arg("--backend")
        .arg(opts.backend.name())
        .arg("--mode")
        .arg(opts.mode.to_string());
    if let Some(f) = &opts.families {
        cmd = cmd.arg("--families").arg(f.clone());
    }
    cmd.run_tee(is_summary_line)
}

/// `cargo xtask fuzz-cpu`.
pub fn fuzz_cpu(opts: FuzzOptions) -> Result {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return Err(crate::failed(
            "fuzz-cpu needs an x86-64 Linux host (the oracle is its CPU)",
        ));
    }
    let tee = run(opts);
    if tee.kept.is_empty() && tee.result.is_ok() {
        return Err(crate::failed("cpu-diff printed no `cpu-diff:` summary line"));
    }
    tee.result
}

/// Parses a number option.
pub fn number(name: &str, value: Option<String>, default: u64) -> Result<u64> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Error::Usage(format!("{name} needs a number, got `{v}`"))),
    }
}
