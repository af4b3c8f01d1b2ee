//! The conformance suite every backend runs on itself: [`run_suite`] checks each op x type pair the backend
//! supports against [`crate::semantics`] and small programs with independently computed results, and returns
//! a [`Summary`].
//!
//! - `single_op`: every computational op on edge and seeded random values, under every condition, bit field
//!   and shift, with inputs from globals and as constants, with and without the optimizer;
//! - `host_mem`: `ld*`/`st*` on the CPU state; `guest_mem`: `qemu_ld`/`qemu_st` on a [`FlatMemory`] and
//!   faults;
//! - `control`: branches, loops and TB exits; `calls`: helper calls and their declared effects;
//! - `harness` runs one TB and compares the whole CPU state and memory it leaves (`state` lays it out,
//!   `helpers` are the functions it calls); `summary` counts.
//!
//! A case is one run of a TB checked against its expected exit, the whole CPU state (every byte it should not
//! write keeps a canary) and guest memory. [`Summary::ops`] counts the op x type pairs found in the prepared IR
//! of TBs the backend compiled; a pair the backend `supports` that never got there is itself a failure.
//!
//! Every TB goes through [`crate::prepare`] before the backend, so the suite also checks the pipeline. It runs
//! on wasm32 as well: no threads, clock or files, and host pointers are [`crate::Type::PTR`].

mod calls;
mod control;
mod guest_mem;
mod harness;
mod helpers;
mod host_mem;
mod memory;
mod single_op;
mod state;
mod summary;
mod values;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use memory::FlatMemory;
pub use summary::Summary;

use crate::backend::Backend;
use crate::opcodes::Opcode;
use crate::types::Type;

/// Runs the whole suite on `backend`; `host` names the host in the summary (a target triple or `wasm32-node`).
pub fn run_suite(backend: &mut dyn Backend, host: &str) -> Summary {
    let mut h = harness::Harness::new(backend);
    single_op::run(&mut h);
    host_mem::run(&mut h);
    guest_mem::run(&mut h);
    control::run(&mut h);
    calls::run(&mut h);
    h.finish(host)
}

/// Every op x type pair of the opcode table, in table order: what a backend supporting everything must have
/// reach it during the suite.
pub fn coverage_list() -> Vec<(Opcode, Type)> {
    Opcode::ALL
        .iter()
        .flat_map(|&opc| opc.valid_types().iter().map(move |&ty| (opc, ty)))
        .collect()
}
