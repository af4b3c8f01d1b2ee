//! Robustness: random byte strings run as guest code in real mode, 32-bit protected mode and long mode, at
//! CPL 0 with random registers, on tci and on tci with the embedded wasm32 engine as the hot tier. Whatever the
//! bytes decode to (invalid encodings, privileged and system instructions, x87/SSE with random control words,
//! mode switches, wild jumps), the host must not panic: every run ends with some `StopReason` (an exception
//! without a usable IDT ends as a triple fault, a halt, or the budget).

mod sysenv;

use rqemu_accel::StopReason;
use rqemu_target_i386::cpu::reg;
use sysenv::*;

/// A small deterministic generator (xorshift64*), so a failure names a reproducible seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Bytes that make interesting instructions likely: prefixes, the 0F escape maps, x87 escapes, ModRM bytes.
const BIASED: &[u8] = &[
    0x0f, 0x0f, 0x0f, 0x66, 0xf2, 0xf3, 0x48, 0x4c, 0x67, 0xf0, 0x38, 0x3a, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde,
    0xdf, 0x9b, 0xc0, 0x00, 0x04, 0x24, 0xcd, 0xff, 0x8e, 0xc4, 0xc5,
];

/// How many random strings per mode: `RQEMU_RANDOM_CODE_RUNS` (for a long hunt), else `default`.
fn runs(default: u64) -> u64 {
    std::env::var("RQEMU_RANDOM_CODE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_random(mode: Mode, hot: bool, seed: u64, budget: u64) -> StopReason {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut sys = Sys::new(mode, hot);
    let code: Vec<u8> = (0..96)
        .map(|_| {
            let r = rng.next();
            if r & 3 == 0 {
                BIASED[(r >> 8) as usize % BIASED.len()]
            } else {
                (r >> 16) as u8
            }
        })
        .collect();
    let entry = sys.s().rip;
    let at = if mode == Mode::Real { CODE } else { entry };
    sys.write(at, &code);
    for n in 0..16 {
        if n != reg::RSP {
            // Mostly addresses inside RAM, sometimes anything.
            let v = rng.next();
            sys.s_mut().regs[n] = if v & 1 == 0 { DATA + (v >> 40) % 0x1000 } else { v };
        }
    }
    sys.s_mut().mxcsr = (rng.next() & 0xffff) as u32;
    sys.s_mut().fpu.fcw = rng.next() as u16;
    sys.run_budget(budget)
}

#[test]
fn random_code_never_panics_the_host_on_tci() {
    for mode in [Mode::Real, Mode::Prot32, Mode::Long] {
        for seed in 0..runs(250) {
            // A panic would fail the test with the unwinding message; the stop reason itself is free.
            let _ = run_random(mode, false, seed, 64);
        }
    }
}

#[test]
fn random_code_never_panics_the_host_on_the_wasm32_tier() {
    for mode in [Mode::Real, Mode::Prot32, Mode::Long] {
        for seed in 1_000_000..1_000_000 + runs(250) / 10 {
            let _ = run_random(mode, true, seed, 256);
        }
    }
}
