//! The wasm32 test module: a `cdylib` whose exports the Node runner (`tests/wasm/run.mjs`) calls.
//!
//! Exports (all `extern "C"`, no arguments):
//! - `selftest() -> u32`: 64-bit integer arithmetic on the 32-bit host, printed and checked against
//!   values computed on x86-64; returns the number of mismatches.
//! - `selftest_panic()`: panics on purpose; the runner must print the message and report a trap.
//! - `conformance_tci() -> u32`: the TCG conformance suite on the tci backend; returns the failure count.
//! - `bench_tci()`: the tci benchmark, timed with the host's clock.
//! - `cpu_replay() -> u32`: the natively recorded x86-64 vectors replayed on rqemu ([`cpu_replay`]).
//! - on wasm32 only, the wasm32 backend for real ([`wasm32`]): `wasm32_smoke() -> u32`,
//!   `conformance_wasm32() -> u32`, `tiering_wasm32() -> u32`, `bench_wasm32()` ([`bench_wasm32`]), and
//!   `bench_cpu() -> u32` ([`bench_cpu`]: the x86-64 guest kernels on tci and tci + wasm32).
//! - `guest_alloc`, `guest_run`, `guest_output_ptr`, `guest_output_len`, `guest_free` ([`guest`]): the PC
//!   run from a multiboot image the runner copies in (`run.mjs guest <dir>`); these take arguments.
//!
//! Only the wasm32 build is meaningful; natively the crate compiles to the same exports writing to stdout
//! (minus the wasm32 backend's, which needs a Wasm host), so `cargo test --workspace` checks it too. Host
//! imports and the panic hook live in [`host`].

#[cfg(target_arch = "wasm32")]
pub mod bench_cpu;
#[cfg(target_arch = "wasm32")]
pub mod bench_wasm32;
pub mod cpu_replay;
pub mod guest;
mod host;
#[cfg(target_arch = "wasm32")]
pub mod wasm32;

use host::outln;

/// One 64-bit arithmetic check: a name, the computation, the value x86-64 computes.
type Check = (&'static str, fn(u64, u64) -> u64, u64);

const A: u64 = 0x0123_4567_89ab_cdef;
const B: u64 = 0xfedc_ba98_7654_3210;

/// Operations whose 32-bit lowering differs from x86-64's: carries between halves, 128-bit products
/// (compiler-builtins), division, signed division and rotates.
const CHECKS: &[Check] = &[
    ("add", |a, b| a.wrapping_add(b), 0xffff_ffff_ffff_ffff),
    ("sub", |a, b| a.wrapping_sub(b), 0x0246_8acf_1357_9bdf),
    ("mul", |a, b| a.wrapping_mul(b), 0x2236_d88f_e561_8cf0),
    (
        "mulhi",
        |a, b| ((a as u128 * b as u128) >> 64) as u64,
        0x0121_fa00_ad77_d742,
    ),
    ("divu", |_, b| b / 0x1234_5678, 0xe_0000_0077),
    ("remu", |_, b| b % 0x1234_5678, 0x48),
    ("divs", |_, b| (b as i64 / -7) as u64, 0x0029_9c33_5ccf_6690),
    ("rotl", |a, _| a.rotate_left(13), 0x68ac_f135_79bd_e024),
];

/// Runs [`CHECKS`] and prints each result; returns the number of mismatches.
#[no_mangle]
pub extern "C" fn selftest() -> u32 {
    host::install_panic_hook();
    let (a, b) = (std::hint::black_box(A), std::hint::black_box(B));
    let mut bad = 0;
    for (name, f, want) in CHECKS {
        let got = f(a, b);
        let verdict = if got == *want { "ok" } else { "MISMATCH" };
        outln!("selftest: {name:5} = {got:#018x} (want {want:#018x}) {verdict}");
        bad += u32::from(got != *want);
    }
    let ptr_bits = usize::BITS;
    outln!("selftest: usize is {ptr_bits} bits, {} mismatches", bad);
    bad
}

/// Panics on purpose, so the runner's panic path (message printed, then a trap) is checked.
#[no_mangle]
pub extern "C" fn selftest_panic() {
    host::install_panic_hook();
    panic!(
        "selftest_panic: deliberate panic with a {}-bit value {:#x}",
        u64::BITS,
        A
    );
}

/// Runs the conformance suite on tci and prints its summary line and first failures; returns the failure count.
#[no_mangle]
pub extern "C" fn conformance_tci() -> u32 {
    host::install_panic_hook();
    let summary = rqemu_tcg::conformance::run_suite(&mut rqemu_tcg_tci::Tci::new(), "wasm32-node");
    outln!("{summary}");
    for message in &summary.failure_messages {
        outln!("  failure: {message}");
    }
    u32::try_from(summary.failures).unwrap_or(u32::MAX)
}

/// Runs the tci benchmark with the host's clock and prints the report.
#[no_mangle]
pub extern "C" fn bench_tci() {
    host::install_panic_hook();
    let report = rqemu_tcg_tci::bench::run(&mut host::now);
    outln!("{report}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn selftest_expectations_hold_on_the_build_host() {
        assert_eq!(super::selftest(), 0);
    }
}
