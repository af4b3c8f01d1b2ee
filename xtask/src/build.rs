//! `cargo xtask build --target <triple>`: the hosts rqemu builds for and how each is built.

use crate::cmd::Cmd;
use crate::{wasm, Error, Result};

/// A host rqemu runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// x86-64 Linux, built by the rustup toolchain in `target/`.
    X86_64Linux,
    /// wasm32-unknown-unknown, built by rustc-web in `target/wasm32` (see [`wasm`]).
    Wasm32,
}

impl Host {
    /// The host named by a target triple.
    pub fn from_triple(triple: &str) -> Result<Host> {
        match triple {
            "x86_64-unknown-linux-gnu" => Ok(Host::X86_64Linux),
            wasm::TRIPLE => Ok(Host::Wasm32),
            other => Err(Error::Usage(format!(
                "unknown target `{other}` (known: x86_64-unknown-linux-gnu, {})",
                wasm::TRIPLE
            ))),
        }
    }
}

/// Builds everything that exists for `host`.
pub fn build(host: Host, release: bool) -> Result {
    match host {
        Host::X86_64Linux => Cmd::cargo()
            .args(["build", "--workspace"])
            .args(release.then_some("--release"))
            .run(),
        Host::Wasm32 => {
            let tc = wasm::toolchain()?;
            let dir = wasm::build(&tc, wasm::PACKAGES, release)?;
            eprintln!("xtask: wasm32 modules are in {}", dir.display());
            Ok(())
        }
    }
}
