//! The TCG conformance suite on the wasm32 backend, natively: modules run in the embedded engine (wasmi),
//! each one validated with wasmparser first.

mod common;

use rqemu_tcg_wasm32::engine::EmbeddedWasm32;

#[test]
fn conformance() {
    let mut engine = EmbeddedWasm32::new();
    // The suite's `p0` holds a host pointer into the CPU state (see the test below).
    engine.set_pointer_globals(&["p0"]);
    let mut backend = common::Validating::new(engine);
    let summary = rqemu_tcg::conformance::run_suite(&mut backend, rqemu_tcg::HOST_TRIPLE);
    let (stats, _, _) = backend.inner.stats();
    println!(
        "{summary} (modules validated: {}, structured loops: {}, dispatched branches: {})",
        backend.modules, stats.structured_loops, stats.dispatched_branches
    );
    if let Some(t) = backend.inner.last_trap() {
        println!("last trap: {t}");
    }
    assert_eq!(summary.failures, 0, "{:#?}", summary.failure_messages);
    // The suite's loops (counted sum, Fibonacci do-while) are natural loops: no dispatch fallback.
    assert!(stats.structured_loops > 0);
    assert_eq!(stats.dispatched_branches, 0);
}

/// Without declaring `p0` a pointer global, exactly the suite's host loads and stores through the pointer global
/// `p0` fail: the TB dereferences a host address that means nothing in the engine's separate linear memory
/// (on a real wasm32 host it is a linear-memory address and works).
#[test]
fn without_pointer_globals_only_accesses_through_p0_fail() {
    let mut engine = EmbeddedWasm32::new();
    let summary = rqemu_tcg::conformance::run_suite(&mut engine, rqemu_tcg::HOST_TRIPLE);
    assert!(summary.failures > 0);
    for m in &summary.failure_messages {
        assert!(m.contains("from Global") || m.contains("to Global"), "{m}");
    }
}
