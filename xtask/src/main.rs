//! `cargo xtask`: rqemu's build, test and bench driver (std only).
//!
//! This file parses the command line and dispatches; each command lives in its own module:
//! [`build`] (per host triple), [`test`] (every test, the wasm32 part, bless), [`bench`], [`lint`], [`fuzz`]
//! (`fuzz-cpu`, the differential CPU test).
//! The wasm32 toolchain (Debian's `rustc-web` with `-Zbuild-std`, rustup's `rust-lld`, Node) is found or
//! installed by [`wasm`] and [`setup`]; [`cmd`] runs and echoes child processes.

mod bench;
mod bench_guest;
mod build;
mod cmd;
mod fuzz;
mod lint;
mod setup;
mod test;
mod wasm;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build --target <triple> [--release]
                  build for a host: x86_64-unknown-linux-gnu (the workspace) or
                  wasm32-unknown-unknown (tests/wasm, with Debian's rustc-web and -Zbuild-std,
                  into target/wasm32)
  test            every test: `cargo test --workspace`, then test-wasm; fails if any part fails
  test-wasm       build tests/wasm for wasm32 (release) and run its self-test and the tci
                  conformance suite under Node
  bench tci       the tci benchmark, natively and on wasm32 under Node
  bench wasm32    the wasm32 backend under Node: hot loop vs tci, compile cost, thresholds
  bench cpu       x86-64 guest kernels (issue 4): tci natively, tci and tci + wasm32 under Node
  bench guest     a multiboot guest kernel under qemu-system-x86_64 -accel tcg and rqemu (native, Node)
  fuzz-cpu [--cases N] [--seed S] [--backend tci|wasm32] [--mode 64|32|16] [--families F,..]
                  differential test of the x86 frontend against this machine's CPU (x86-64
                  Linux): N generated cases (default 10000) from seed S (default 1) of 64-bit code
                  (default), 32- or 16-bit code (compatibility mode natively), run natively and on rqemu;
                  prints mismatches and a `cpu-diff:` line, fails on any mismatch; --families picks
                  generator families or groups (default, pending, all, sse-int, sse-fp, x87, x87-arith, ...)
  bless           re-run the tests with RQEMU_BLESS=1: golden tests rewrite their expected files
  lint            `cargo fmt --all --check` and `cargo clippy --workspace --all-targets -- -D warnings`
  help            this text

The wasm32 commands install rustc-web, rust-web-src and nodejs with apt-get when run as root.
";

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Error {
    /// The command line was wrong: usage is printed and the exit status is 2.
    Usage(String),
    /// Something ran and failed: the exit status is 1.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(why) | Error::Failed(why) => f.write_str(why),
        }
    }
}

/// The result of an xtask step.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// Shorthand for a [`Error::Failed`] error.
pub fn failed(why: impl Into<String>) -> Error {
    Error::Failed(why.into())
}

/// The workspace root (the parent of this crate's folder); every command runs there.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a subfolder of the workspace")
        .to_path_buf()
}

/// The arguments after the command name, consumed as the command reads its options.
struct Args(Vec<String>);

impl Args {
    /// Removes `--name` and says whether it was there.
    fn flag(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|a| a != name);
        self.0.len() != before
    }

    /// Removes `--name value` or `--name=value` and returns the value.
    fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        if let Some(i) = self.0.iter().position(|a| a.starts_with(&prefix)) {
            return Ok(Some(self.0.remove(i)[prefix.len()..].to_string()));
        }
        match self.0.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) if i + 1 < self.0.len() => {
                self.0.remove(i);
                Ok(Some(self.0.remove(i)))
            }
            Some(_) => Err(Error::Usage(format!("{name} needs a value"))),
        }
    }

    /// Removes the next positional argument.
    fn positional(&mut self, what: &str) -> Result<String> {
        match self.0.iter().position(|a| !a.starts_with('-')) {
            Some(i) => Ok(self.0.remove(i)),
            None => Err(Error::Usage(format!("missing {what}"))),
        }
    }

    /// Fails if anything was not consumed.
    fn finish(self) -> Result {
        match self.0.first() {
            None => Ok(()),
            Some(a) => Err(Error::Usage(format!("unexpected argument `{a}`"))),
        }
    }
}

fn dispatch(mut argv: Vec<String>) -> Result {
    if argv.is_empty() {
        return Err(Error::Usage("missing command".into()));
    }
    let command = argv.remove(0);
    let mut args = Args(argv);
    match command.as_str() {
        "build" => {
            let release = args.flag("--release");
            let triple = args
                .value("--target")?
                .ok_or_else(|| Error::Usage("build needs --target <triple>".into()))?;
            args.finish()?;
            build::build(build::Host::from_triple(&triple)?, release)
        }
        "test" => args.finish().and_then(|()| test::test()),
        "test-wasm" => args.finish().and_then(|()| test::test_wasm()),
        "bench" => {
            let which = args.positional("benchmark name (tci, wasm32, cpu, guest)")?;
            args.finish()?;
            match which.as_str() {
                "tci" => bench::tci(),
                "wasm32" => bench::wasm32(),
                "cpu" => bench::cpu(),
                "guest" => bench_guest::guest(),
                other => Err(Error::Usage(format!(
                    "unknown benchmark `{other}` (known: tci, wasm32, cpu, guest)"
                ))),
            }
        }
        "fuzz-cpu" => {
            let cases = fuzz::number("--cases", args.value("--cases")?, 10_000)?;
            let seed = fuzz::number("--seed", args.value("--seed")?, 1)?;
            let backend = match args.value("--backend")? {
                Some(b) => fuzz::Backend::parse(&b)?,
                None => fuzz::Backend::Tci,
            };
            let mode = fuzz::parse_mode(args.value("--mode")?)?;
            let families = args.value("--families")?;
            args.finish()?;
            fuzz::fuzz_cpu(fuzz::FuzzOptions {
                cases,
                seed,
                backend,
                mode,
                families,
            })
        }
        "bless" => args.finish().and_then(|()| test::bless()),
        "lint" => args.finish().and_then(|()| lint::lint()),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(Error::Usage(format!("unknown command `{other}`"))),
    }
}

fn main() -> ExitCode {
    if let Err(e) = std::env::set_current_dir(root()) {
        eprintln!("xtask: cannot enter the workspace root: {e}");
        return ExitCode::FAILURE;
    }
    match dispatch(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(why)) => {
            eprintln!("xtask: {why}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Error::Failed(why)) => {
            eprintln!("xtask: error: {why}");
            ExitCode::FAILURE
        }
    }
}
