//! Runs every public entry point on raw random bit patterns and extreme arguments under
//! every control setting. Runs on all hosts; with overflow checks enabled (the test
//! profile) any arithmetic overflow or bad shift inside the crate panics and fails this.

mod common;

use common::Rng;
use rqemu_fpu::*;

fn status(r: &mut Rng) -> FloatStatus {
    FloatStatus {
        rounding: RoundingMode::from_rc(r.next() as u32),
        flags: 0,
        daz: r.chance(2),
        ftz: r.chance(2),
        precision: Precision::from_pc(r.next() as u32),
    }
}

fn f80(r: &mut Rng) -> F80 {
    let se = match r.below(4) {
        0 => 0,
        1 => 0x7fff,
        _ => r.next() as u16 & 0x7fff,
    } | if r.chance(2) { 0x8000 } else { 0 };
    let mant = if r.chance(2) { r.next() } else { r.next() >> r.below(64) };
    F80 { mant, se }
}

#[test]
fn no_panic_on_any_input() {
    let mut r = Rng::new(99);
    let mut sink = 0u64;
    for _ in 0..200_000 {
        let mut st = status(&mut r);
        let (a32, b32) = (r.next() as u32, r.next() as u32);
        let (a64, b64) = (r.next(), r.next());
        let (a, b) = (f80(&mut r), f80(&mut r));
        let n = match r.below(3) {
            0 => i32::MIN,
            1 => i32::MAX,
            _ => r.next() as i32 >> r.below(32),
        };
        let v = r.next() as i64 >> r.below(64);
        let mode = RoundingMode::from_rc(r.next() as u32);
        let st = &mut st;
        sink ^= (f32_add(a32, b32, st) ^ f32_sub(a32, b32, st) ^ f32_mul(a32, b32, st)) as u64;
        sink ^= (f32_div(a32, b32, st) ^ f32_sqrt(a32, st)) as u64;
        sink ^= f64_add(a64, b64, st) ^ f64_sub(a64, b64, st) ^ f64_mul(a64, b64, st);
        sink ^= f64_div(a64, b64, st) ^ f64_sqrt(a64, st);
        for x in [
            f80_add(a, b, st),
            f80_sub(a, b, st),
            f80_mul(a, b, st),
            f80_div(a, b, st),
            f80_sqrt(a, st),
        ] {
            sink ^= x.mant ^ x.se as u64;
        }
        let x = f80_scalbn(a, n, st);
        sink ^= x.mant ^ f80_round_to_int(b, mode, r.chance(2), st).mant;
        sink ^= f32_compare(a32, b32, r.chance(2), st) as u64;
        sink ^= f64_compare(a64, b64, r.chance(2), st) as u64;
        sink ^= f80_compare(a, b, r.chance(2), st) as u64;
        sink ^= f32_to_f64(a32, st) ^ f64_to_f32(a64, st) as u64;
        sink ^= f32_to_f80(a32, st).mant ^ f64_to_f80(a64, st).mant;
        sink ^= (f80_to_f32(a, st) as u64) ^ f80_to_f64(b, st);
        sink ^= (i32_to_f32(v as i32, st) as u64) ^ i32_to_f64(v as i32, st);
        sink ^= (i64_to_f32(v, st) as u64) ^ i64_to_f64(v, st) ^ i64_to_f80(v, st).mant;
        let t = r.chance(2);
        sink ^= (f32_to_i32(a32, t, st) as u64) ^ (f32_to_i64(a32, t, st) as u64);
        sink ^= (f64_to_i32(a64, t, st) as u64) ^ (f64_to_i64(a64, t, st) as u64);
        sink ^= (f80_to_i16(a, t, st) as u64) ^ (f80_to_i32(a, t, st) as u64) ^ (f80_to_i64(a, t, st) as u64);
        sink ^= (f32_round_to_int(a32, mode, t, st) as u64) ^ f64_round_to_int(a64, mode, t, st);
    }
    // Keep the work observable.
    assert_ne!(sink, 0x5eed);
}
