//! Running TBs: build IR, send it through the pipeline and the backend, run it on the suite's CPU state and
//! flat memory, and compare everything it changed with what was expected.

use std::sync::Arc;

use crate::backend::{Backend, CompiledTb, ExecContext, TbExit};
use crate::func::Func;
use crate::opcodes::Opcode;
use crate::prepare::{prepare_with, PrepareOptions};
use crate::target::TargetDesc;
use crate::types::Type;

use super::helpers::HelperIds;
use super::memory::FlatMemory;
use super::state::{self, CpuState};
use super::summary::{Recorder, Summary};

/// Guest address of the flat test memory. Above 4 GiB, so a backend that truncates guest addresses to the
/// host pointer width (wasm32) faults instead of passing.
pub(super) const MEM_BASE: u64 = 0x0000_0001_0000_1000;
/// Size of the flat test memory.
pub(super) const MEM_LEN: usize = 256;

/// Which passes a TB goes through before the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pipeline {
    /// The full pipeline, as the execution loop uses it.
    Optimized,
    /// Without the optimizer, so constant operands reach the backend instead of being folded away.
    Unoptimized,
}

impl Pipeline {
    /// Name used in failure messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Pipeline::Optimized => "optimized",
            Pipeline::Unoptimized => "unoptimized",
        }
    }

    /// Every pipeline the suite runs.
    pub(super) const ALL: [Pipeline; 2] = [Pipeline::Optimized, Pipeline::Unoptimized];
}

/// Sends `f` through the passes `pipe` names, verifying the result too: a pass that breaks the IR is a failure
/// of the pipeline the suite checks, not something a backend should have to survive.
fn prepare(f: &mut Func, pipe: Pipeline) -> Result<(), String> {
    let opts = match pipe {
        Pipeline::Optimized => PrepareOptions::OPTIMIZED,
        Pipeline::Unoptimized => PrepareOptions::UNOPTIMIZED,
    };
    let opts = PrepareOptions {
        verify_result: true,
        ..opts
    };
    prepare_with(f, opts).map(|_| ()).map_err(|e| e.to_string())
}

/// A compiled TB.
pub(super) struct Tb {
    code: Box<dyn CompiledTb>,
}

/// The backend under test and everything a run needs.
pub(super) struct Harness<'a> {
    backend: &'a mut dyn Backend,
    /// The test target all TBs are built for.
    pub target: Arc<TargetDesc>,
    /// Its helpers.
    pub helpers: HelperIds,
    /// Counts and failures.
    pub rec: Recorder,
    /// Guest memory of every run.
    pub mem: FlatMemory,
    /// What the guest memory must hold after the next run.
    pub want_mem: Vec<u8>,
    /// The CPU state of the next run.
    pub state: CpuState,
    /// What the CPU state must hold after the next run.
    pub want: CpuState,
    baseline: CpuState,
}

impl<'a> Harness<'a> {
    /// A harness for `backend` with a fresh state and memory.
    pub(super) fn new(backend: &'a mut dyn Backend) -> Harness<'a> {
        let (target, helpers) = state::target();
        let baseline = CpuState::baseline();
        let mem = FlatMemory::new(MEM_BASE, MEM_LEN);
        Harness {
            backend,
            target,
            helpers,
            rec: Recorder::new(),
            want_mem: mem.bytes().to_vec(),
            mem,
            state: baseline.clone(),
            want: baseline.clone(),
            baseline,
        }
    }

    /// Whether the backend implements `opc` at `ty`.
    pub(super) fn supports(&self, opc: Opcode, ty: Type) -> bool {
        self.backend.supports(opc, ty)
    }

    /// An empty function for the test target.
    pub(super) fn func(&self) -> Func {
        Func::new(self.target.clone())
    }

    /// Prepares and compiles `f`. `None` when the TB uses an op the backend does not support (skipped, not a
    /// failure) or when preparing or compiling failed (recorded as a failure described by `what`).
    pub(super) fn build(&mut self, mut f: Func, pipe: Pipeline, what: &dyn Fn() -> String) -> Option<Tb> {
        if let Err(e) = prepare(&mut f, pipe) {
            self.rec.fail(format!(
                "{} [{}]: the pipeline rejected the TB: {e}\n{}",
                what(),
                pipe.name(),
                f.dump()
            ));
            return None;
        }
        if let Some(op) = f
            .ops
            .iter()
            .find(|op| op.outs().chain(op.ins()).any(|t| f.temp(t).is_global()))
        {
            let mut text = String::new();
            let _ = f.write_op(&mut text, op);
            self.rec.fail(format!(
                "{} [{}]: the pipeline left a global in `{text}`",
                what(),
                pipe.name()
            ));
            return None;
        }
        if f.ops.iter().any(|op| !self.backend.supports(op.opc, op.ty)) {
            return None;
        }
        match self.backend.compile(&f) {
            Ok(code) => {
                self.rec.cover(&f);
                Some(Tb { code })
            }
            Err(e) => {
                self.rec
                    .fail(format!("{} [{}]: compile failed: {e}", what(), pipe.name()));
                None
            }
        }
    }

    /// Starts the next run from the baseline state, expecting it to be left unchanged; the memory keeps its
    /// contents.
    pub(super) fn reset(&mut self) {
        self.state.copy_from(&self.baseline);
        self.want.copy_from(&self.baseline);
        self.want_mem.copy_from_slice(self.mem.bytes());
    }

    /// Sets a field in the state of the next run, and in the expected state since the run should keep it.
    pub(super) fn set(&mut self, slot: usize, ty: Type, v: u64) {
        self.state.set(slot, ty, v);
        self.want.set(slot, ty, v);
    }

    /// Sets a byte of the state of the next run, and of the expected state.
    pub(super) fn set_byte(&mut self, offset: usize, v: u8) {
        self.state.set_byte(offset, v);
        self.want.set_byte(offset, v);
    }

    /// Sets a byte of guest memory, and of the expected memory.
    pub(super) fn set_mem_byte(&mut self, index: usize, v: u8) {
        self.mem.bytes_mut()[index] = v;
        self.want_mem[index] = v;
    }

    /// Host address of the state of the next run, as `ld`/`st` bases and `goto_ptr` see it.
    pub(super) fn env_addr(&mut self) -> u64 {
        self.state.as_mut_ptr() as usize as u64
    }

    /// Runs `tb` once on the current state and memory.
    pub(super) fn run(&mut self, tb: &Tb) -> TbExit {
        let mut ctx = ExecContext {
            env: self.state.as_mut_ptr(),
            mem: &mut self.mem,
        };
        // SAFETY: every TB of the suite is built for the test target, whose globals, fault word, helpers and
        // host load/store offsets all lie inside a CpuState.
        unsafe { tb.code.run(&mut ctx) }
    }

    /// Runs `tb` and counts one case: it must exit with `exit` and leave exactly `want` and `want_mem`.
    /// Returns whether it did.
    pub(super) fn check_run(&mut self, tb: &Tb, exit: TbExit, what: &dyn Fn() -> String) -> bool {
        let got = self.run(tb);
        let problem = if got != exit {
            Some(format!("exit expected {exit:?} got {got:?}"))
        } else if let Some(d) = self.want.diff(&self.state) {
            Some(d)
        } else if self.want_mem != self.mem.bytes() {
            Some(mem_diff(&self.want_mem, self.mem.bytes()))
        } else {
            None
        };
        let ok = problem.is_none();
        self.rec
            .check(ok, || format!("{}: {}", what(), problem.unwrap_or_default()));
        ok
    }

    /// Records a failure for every pair the backend supports that no compiled TB contained, and returns the
    /// summary.
    pub(super) fn finish(mut self, host: &str) -> Summary {
        for (opc, ty) in super::coverage_list() {
            if self.backend.supports(opc, ty) && !self.rec.is_covered(opc, ty) {
                self.rec.fail(format!(
                    "{}_{ty}: supported but never reached the backend",
                    opc.def().name
                ));
            }
        }
        let name = self.backend.name();
        self.rec.finish(name, host)
    }
}

/// The first differing byte of guest memory, for a failure message.
fn mem_diff(want: &[u8], got: &[u8]) -> String {
    match want.iter().zip(got).position(|(a, b)| a != b) {
        Some(i) => format!(
            "guest memory at 0x{:x}: expected 0x{:02x} got 0x{:02x}",
            MEM_BASE + i as u64,
            want[i],
            got[i]
        ),
        None => "guest memory changed size".to_string(),
    }
}
