//! System packages that cargo cannot provide (Debian's `rustc-web` and `rust-web-src` for the wasm32
//! std, `nodejs` to run wasm32 tests): each is checked, and installed with `apt-get` when xtask runs as
//! root on a machine that has it; otherwise the `apt-get install` line to run is printed and the step fails.
//! What counts as usable is decided by the caller's check (see `wasm.rs`).

use crate::cmd::{which, Cmd};
use crate::{failed, Result};

/// Something provided by Debian packages, with a check for whether it is usable now.
pub struct Dep {
    /// The packages that provide it; they are always installed together.
    pub packages: &'static [&'static str],
    /// Ok when usable, otherwise why not.
    pub check: fn() -> std::result::Result<(), String>,
}

/// Makes every dep usable: installs the missing ones as root with apt-get, or fails with the command to run.
pub fn ensure(deps: &[Dep]) -> Result {
    let missing = unmet(deps);
    if missing.is_empty() {
        return Ok(());
    }
    for (packages, why) in &missing {
        eprintln!("xtask: {}: {why}", packages.join(" + "));
    }
    let packages: Vec<&str> = missing.iter().flat_map(|(p, _)| p.iter().copied()).collect();
    if !(is_root() && which("apt-get").is_some()) {
        eprintln!("install with: sudo apt-get install {}", packages.join(" "));
        return Err(failed(format!("missing system packages: {}", packages.join(" "))));
    }
    apt_install(&packages)?;
    match unmet(deps).first() {
        None => Ok(()),
        Some((packages, why)) => Err(failed(format!(
            "{} still unusable after apt-get install: {why}",
            packages.join(" + ")
        ))),
    }
}

/// The deps whose check fails, with the reason.
fn unmet(deps: &[Dep]) -> Vec<(&'static [&'static str], String)> {
    deps.iter()
        .filter_map(|d| (d.check)().err().map(|why| (d.packages, why)))
        .collect()
}

fn is_root() -> bool {
    Cmd::new("id").arg("-u").read().is_ok_and(|uid| uid == "0")
}

/// `apt-get install`, after `apt-get update` if apt does not know one of the packages yet (a fresh machine
/// has empty package lists).
fn apt_install(packages: &[&str]) -> Result {
    let known = |p: &&str| Cmd::new("apt-cache").args(["show", "--no-all-versions", p]).succeeds();
    if !packages.iter().all(known) {
        Cmd::new("apt-get").arg("update").run()?;
    }
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .run()
}
