//! The wasm32-unknown-unknown host: its toolchain, building for it and running modules under Node.
//!
//! rustup's toolchain has no wasm32 std and cannot download one, so wasm32 builds use Debian's `rustc-web`
//! (`/usr/bin/rustc`) with the std source of `rust-web-src` and `-Zbuild-std` (allowed by
//! `RUSTC_BOOTSTRAP=1`), linked by the `rust-lld` of rustup's toolchain. The artifacts go to
//! `target/wasm32`, so the two compilers never share a target dir. Missing packages are installed by
//! [`crate::setup::deps`]. Node runs the modules through `tests/wasm/run.mjs`.

use std::path::{Path, PathBuf};

use crate::cmd::{which, Cmd};
use crate::setup::deps::{self, Dep};
use crate::{failed, Result};

/// The target triple.
pub const TRIPLE: &str = "wasm32-unknown-unknown";
/// The packages a wasm32 build builds.
pub const PACKAGES: &[&str] = &[TESTS_PACKAGE];
/// The test module's package.
pub const TESTS_PACKAGE: &str = "rqemu-tests-wasm";
/// The test module's file name.
const TESTS_FILE: &str = "rqemu_tests_wasm.wasm";
/// The Node script that runs one export of a module.
const RUNNER: &str = "tests/wasm/run.mjs";

const TARGET_DIR: &str = "target/wasm32";
const WEB_RUSTC: &str = "/usr/bin/rustc";
const STD_SOURCE: &str = "/usr/lib/rustlib/src/rust/library";
/// The oldest rustc-web verified to build the workspace's std (Debian bookworm-security ships it).
const MIN_WEB_RUSTC: (u32, u32) = (1, 96);

const DEPS: &[Dep] = &[
    Dep {
        packages: &["rustc-web", "rust-web-src"],
        check: check_web_rust,
    },
    Dep {
        packages: &["nodejs"],
        check: check_node,
    },
];

/// A usable wasm32 toolchain.
pub struct Toolchain {
    linker: PathBuf,
    /// `rustc -V` of the wasm32 compiler.
    pub rustc_version: String,
    /// `node --version`.
    pub node_version: String,
}

/// Finds the toolchain, installing missing packages when possible, and prints what it found.
pub fn toolchain() -> Result<Toolchain> {
    deps::ensure(DEPS)?;
    let linker = rust_lld()?;
    let tc = Toolchain {
        linker,
        rustc_version: Cmd::new(WEB_RUSTC).arg("-V").read()?,
        node_version: Cmd::new("node").arg("--version").read()?,
    };
    eprintln!(
        "xtask: wasm32 toolchain: {} at {WEB_RUSTC}, std source {STD_SOURCE}, linker {}, node {}",
        tc.rustc_version,
        tc.linker.display(),
        tc.node_version
    );
    Ok(tc)
}

/// Builds `packages` for wasm32 and returns the folder holding the `.wasm` files.
pub fn build(tc: &Toolchain, packages: &[&str], release: bool) -> Result<PathBuf> {
    let mut cmd = Cmd::cargo()
        .env("RUSTC", WEB_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", &tc.linker)
        .env("CARGO_TARGET_DIR", TARGET_DIR)
        .args(["build", "-Zbuild-std=std,panic_abort", "--target", TRIPLE]);
    for p in packages {
        cmd = cmd.args(["-p", p]);
    }
    if release {
        cmd = cmd.arg("--release");
    }
    cmd.run()?;
    let profile = if release { "release" } else { "debug" };
    Ok(Path::new(TARGET_DIR).join(TRIPLE).join(profile))
}

/// Builds the test module (release) and returns its path.
pub fn build_tests(tc: &Toolchain) -> Result<PathBuf> {
    Ok(build(tc, &[TESTS_PACKAGE], true)?.join(TESTS_FILE))
}

/// The command that runs `export` of `module` under Node.
pub fn node(module: &Path, export: &str) -> Cmd {
    Cmd::new("node").arg(RUNNER).arg(module).arg(export)
}

fn check_web_rust() -> std::result::Result<(), String> {
    if !Path::new(WEB_RUSTC).is_file() {
        return Err(format!("no {WEB_RUSTC}"));
    }
    let version = Cmd::new(WEB_RUSTC).arg("-V").read().map_err(|e| e.to_string())?;
    match parse_version(&version) {
        Some(v) if v >= MIN_WEB_RUSTC => {}
        _ => {
            let (major, minor) = MIN_WEB_RUSTC;
            return Err(format!(
                "{WEB_RUSTC} is `{version}`; wasm32 builds need rustc-web >= {major}.{minor} \
                 (from Debian's bookworm-security)"
            ));
        }
    }
    if !Path::new(STD_SOURCE).join("std/Cargo.toml").is_file() {
        return Err(format!("no std source in {STD_SOURCE}"));
    }
    // The std source must be the compiler's own; the packages say so when dpkg knows them.
    let dpkg_version = |p| Cmd::new("dpkg-query").args(["-W", "-f", "${Version}", p]).read().ok();
    if let (Some(rustc), Some(src)) = (dpkg_version("rustc-web"), dpkg_version("rust-web-src")) {
        if rustc != src {
            return Err(format!("rustc-web is {rustc} but rust-web-src is {src}"));
        }
    }
    Ok(())
}

fn check_node() -> std::result::Result<(), String> {
    match which("node") {
        Some(_) => Ok(()),
        None => Err("no `node` on PATH".into()),
    }
}

/// `(major, minor)` from `rustc 1.96.0 (...)`.
fn parse_version(rustc_v: &str) -> Option<(u32, u32)> {
    let mut parts = rustc_v.split_whitespace().nth(1)?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// rustup's `rust-lld` (the wasm linker), from the sysroot of the rustc beside the cargo running xtask.
fn rust_lld() -> Result<PathBuf> {
    let rustc = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| Some(cargo.parent()?.join("rustc")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "rustc".into());
    let info = Cmd::new(&rustc).arg("-vV").read()?;
    let host = info
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or_else(|| failed(format!("`{} -vV` names no host", rustc.display())))?;
    let sysroot = Cmd::new(&rustc).args(["--print", "sysroot"]).read()?;
    let lld = Path::new(&sysroot).join("lib/rustlib").join(host).join("bin/rust-lld");
    if lld.is_file() {
        Ok(lld)
    } else {
        Err(failed(format!(
            "no rust-lld at {} (it ships with rustup's rustc component)",
            lld.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_rustc_versions() {
        let v = "rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)";
        assert_eq!(super::parse_version(v), Some((1, 96)));
        assert_eq!(super::parse_version("rustc 1.63.0"), Some((1, 63)));
        assert_eq!(super::parse_version("garbage"), None);
    }
}
