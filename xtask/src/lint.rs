//! `cargo xtask lint`: formatting and clippy over the whole workspace (native target).

use crate::cmd::Cmd;
use crate::{failed, Result};

/// Runs both checks, then fails if either failed.
pub fn lint() -> Result {
    let fmt = Cmd::cargo().args(["fmt", "--all", "--check"]).run();
    let clippy = Cmd::cargo()
        .args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
        .run();
    let errors: Vec<String> = [fmt, clippy]
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failed(errors.join("; ")))
    }
}
