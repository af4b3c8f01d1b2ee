//! The suite's result ([`Summary`]) and the recorder that counts cases, failures and covered op x type pairs
//! while the suite runs.

use core::fmt;

use crate::func::Func;
use crate::opcodes::Opcode;
use crate::types::Type;

/// How many failure messages a summary keeps; the count goes on past it.
const MAX_MESSAGES: usize = 20;

/// The result of [`super::run_suite`] on one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The backend's [`crate::Backend::name`].
    pub backend: String,
    /// The host the suite ran on, as the caller named it (a target triple or `wasm32-node`).
    pub host: String,
    /// Distinct op x type pairs that reached the backend in prepared IR of a TB the suite compiled and ran.
    pub ops: usize,
    /// Individual checks performed.
    pub cases: u64,
    /// Checks that failed.
    pub failures: u64,
    /// The first failures (about 20), each naming the op, type, inputs, expected and actual values.
    pub failure_messages: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance: backend={} host={} ops={} cases={} failures={}",
            self.backend, self.host, self.ops, self.cases, self.failures
        )
    }
}

/// Counts checks and remembers which op x type pairs reached the backend.
#[derive(Debug)]
pub(super) struct Recorder {
    cases: u64,
    failures: u64,
    messages: Vec<String>,
    /// Indexed by opcode, then 0 for i32 and 1 for i64.
    covered: Vec<[bool; 2]>,
}

fn type_index(ty: Type) -> usize {
    match ty {
        Type::I32 => 0,
        Type::I64 => 1,
    }
}

impl Recorder {
    /// A recorder with nothing counted.
    pub(super) fn new() -> Recorder {
        Recorder {
            cases: 0,
            failures: 0,
            messages: Vec::new(),
            covered: vec![[false; 2]; Opcode::ALL.len()],
        }
    }

    /// Counts one check; builds its message only when it failed, since most checks pass.
    pub(super) fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if ok {
            self.cases += 1;
        } else {
            self.fail(message());
        }
    }

    /// Counts one failed check (also a case).
    pub(super) fn fail(&mut self, message: String) {
        self.cases += 1;
        self.failures += 1;
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(message);
        }
    }

    /// Marks every op x type pair of `f` (prepared IR that reached the backend) as covered.
    pub(super) fn cover(&mut self, f: &Func) {
        for op in &f.ops {
            self.covered[op.opc as usize][type_index(op.ty)] = true;
        }
    }

    /// Whether `opc` at `ty` reached the backend.
    pub(super) fn is_covered(&self, opc: Opcode, ty: Type) -> bool {
        self.covered[opc as usize][type_index(ty)]
    }

    /// The summary of everything recorded.
    pub(super) fn finish(self, backend: &str, host: &str) -> Summary {
        let ops = self.covered.iter().map(|c| c.iter().filter(|&&b| b).count()).sum();
        Summary {
            backend: backend.to_string(),
            host: host.to_string(),
            ops,
            cases: self.cases,
            failures: self.failures,
            failure_messages: self.messages,
        }
    }
}
