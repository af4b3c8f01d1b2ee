//! The pipeline between a frontend and a backend: what turns a frontend's IR into what
//! [`crate::Backend::compile`] accepts.
//!
//! 1. [`crate::verify::verify`]: malformed IR stops here, with the op at fault;
//! 2. [`crate::optimize::optimize`]: folding, propagation, identities, branch and label clean-up, dead code
//!    (before lowering, so that a global is loaded where a live op first reads it);
//! 3. [`crate::lower::lower_globals`]: globals become EBB temps with explicit `ld`/`st` on `env`;
//! 4. [`crate::optimize::propagate`] again, because lowering leaves copies such as `mov e1, t2; st e1, env,
//!    0x8` (a result moved into a global) that become `st t2, env, 0x8`; lowering changes no control flow, so
//!    there is nothing more to simplify;
//! 5. [`crate::liveness::eliminate_dead_code`] for the copies step 4 made dead.
//!
//! Steps 2, 4 and 5 can be turned off ([`PrepareOptions::UNOPTIMIZED`]) to test backends on IR as a frontend
//! wrote it; lowering always runs, so the result never mentions a global.

use crate::func::Func;
use crate::verify::{verify, VerifyError};
use crate::{liveness, lower, optimize};

/// What [`prepare_with`] does besides verifying and lowering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Run the optimizer and dead-code elimination.
    pub optimize: bool,
    /// Verify the result as well, to catch a pass that breaks the IR (tests turn this on).
    pub verify_result: bool,
}

impl PrepareOptions {
    /// The normal pipeline.
    pub const OPTIMIZED: PrepareOptions = PrepareOptions {
        optimize: true,
        verify_result: false,
    };
    /// Verify and lower only: every op the frontend emitted reaches the backend.
    pub const UNOPTIMIZED: PrepareOptions = PrepareOptions {
        optimize: false,
        verify_result: false,
    };
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions::OPTIMIZED
    }
}

/// Sizes before and after, for `-d` statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrepareStats {
    /// Ops the frontend emitted.
    pub ops_in: usize,
    /// Ops handed to the backend.
    pub ops_out: usize,
}

/// Runs the whole pipeline on `f` with the default options.
pub fn prepare(f: &mut Func) -> Result<PrepareStats, VerifyError> {
    prepare_with(f, PrepareOptions::default())
}

/// Runs the pipeline on `f`; on error `f` is unchanged if the input was malformed, or left as the passes
/// made it if the result failed [`PrepareOptions::verify_result`].
pub fn prepare_with(f: &mut Func, opts: PrepareOptions) -> Result<PrepareStats, VerifyError> {
    verify(f)?;
    let ops_in = f.ops.len();
    if opts.optimize {
        optimize::optimize(f);
    }
    lower::lower_globals(f);
    if opts.optimize {
        optimize::propagate(f);
        liveness::eliminate_dead_code(f);
    }
    if opts.verify_result {
        verify(f).map_err(|e| VerifyError {
            message: format!("after prepare: {}", e.message),
            ..e
        })?;
    }
    Ok(PrepareStats {
        ops_in,
        ops_out: f.ops.len(),
    })
}
