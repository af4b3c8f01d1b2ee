//! Differential testing of rqemu's x86 frontend against this machine's CPU (issue 4, item 4), for 64-, 32- and
//! 16-bit code (`Case::bitness`; 32- and 16-bit code run in compatibility mode natively).
//!
//! - `state`: the case and snapshot types, fixed addresses, and their text form;
//! - `generate`: seeded generation of single-instruction cases (or short sequences) with edge operands (iced-x86's
//!   encoder); the MMX, SSE..SSE4.2 and x87 families (`generate/simd.rs`, `generate/x87.rs`, float edge values in
//!   `generate/fp_edges.rs`) start out in `generate::PENDING_FAMILIES`, outside the default mix;
//! - `undefined_flags`: which RFLAGS bits the manuals leave undefined, per instruction;
//! - `compare`: comparing a snapshot from rqemu with the oracle's, masking undefined flags; the `CpuUnderTest`
//!   trait the emulator side implements and `run_diff`, which prints the `cpu-diff:` summary line;
//! - `vectors`: the recorded-vector text format (record natively, replay anywhere, e.g. on wasm32);
//! - `rqemu`: the CPU under test, rqemu's frontend on tci (or wasm32, feature `wasm32`);
//! - `coverage`: which mnemonics rqemu implements (probed on tci) against those the generator fuzzes, and the
//!   coverage section of docs/target-i386.md;
//! - `native` (x86-64 Linux only): the oracle that runs cases on the host CPU in a sandboxed child.
//!
//! Everything but `native` builds on every target, so recorded vectors can be replayed where no x86-64 CPU is.
//! README.md beside this crate describes the shared addresses, the comparison and the sandbox.

pub mod compare;
pub mod coverage;
pub mod generate;
pub mod rqemu;
pub mod state;
pub mod undefined_flags;
pub mod vectors;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod native;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use native::run_native;
pub use state::{Case, CpuSnapshot, CpuState, Fault, ParseError};
pub use vectors::{parse_vectors, record};
