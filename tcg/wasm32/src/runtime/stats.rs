//! Counters of the wasm32 runtime, shared by the backend and the code it handed out (dropping a TB's code
//! updates them), for `-d` output and benchmarks.

use core::cell::Cell;
use core::fmt;
use std::rc::Rc;

/// What the wasm32 backend has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// TBs compiled to Wasm (members of every module).
    pub tbs_compiled: u64,
    /// Modules instantiated.
    pub modules: u64,
    /// Modules alive now (instances the JS host holds).
    pub instances_live: u64,
    /// Modules released (evicted, invalidated or flushed).
    pub instances_released: u64,
    /// Compilations that failed (the TBs stay on the first tier).
    pub failures: u64,
    /// Bytes of Wasm generated.
    pub wasm_bytes: u64,
    /// IR ops compiled (for bytes per op).
    pub ir_ops: u64,
    /// Milliseconds generating Wasm (IR to bytes).
    pub codegen_ms: f64,
    /// Milliseconds in the engine compiling and instantiating modules.
    pub instantiate_ms: f64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wasm32: {} TBs in {} modules ({} live, {} released, {} failed), {} bytes of Wasm for {} IR ops, \
             codegen {:.2} ms, instantiate {:.2} ms",
            self.tbs_compiled,
            self.modules,
            self.instances_live,
            self.instances_released,
            self.failures,
            self.wasm_bytes,
            self.ir_ops,
            self.codegen_ms,
            self.instantiate_ms
        )
    }
}

/// [`Stats`] shared between the backend and live modules.
pub(crate) type SharedStats = Rc<Cell<Stats>>;

/// Applies `f` to the shared counters.
pub(crate) fn update(stats: &SharedStats, f: impl FnOnce(&mut Stats)) {
    let mut s = stats.get();
    f(&mut s);
    stats.set(s);
}

/// A reader of a backend's [`Stats`] that stays valid after the backend is boxed and handed to the tiering
/// layer.
#[derive(Clone)]
pub struct StatsHandle(pub(crate) SharedStats);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> Stats {
        self.0.get()
    }
}
