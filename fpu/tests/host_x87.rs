//! Differential tests of the f80 operations against this host's x87 unit, under every
//! rounding mode and precision control; results and FSW exception bits must match exactly.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{mantissa, Report, Rng, L32, L64};
use core::arch::asm;
use rqemu_fpu::*;

const N: usize = 500_000;

/// Defines a host routine: rsi = operand a, rdi = operand b, rdx = output, rcx = FSW slot,
/// r8 = control word to run with. The caller's control word is saved and restored.
macro_rules! x87fn {
    ($name:ident, $($line:literal),* $(,)?) => {
        fn $name(fcw: u16, a: &[u8; 16], b: &[u8; 16]) -> ([u8; 16], u8) {
            let mut out = [0u8; 16];
            let mut sw = 0u16;
            let mut save = [0u16; 2];
            // SAFETY: the routine leaves the x87 stack as it found it (empty), restores the
            // control word, and only writes `out`, `sw` and `save`.
            unsafe {
                asm!(
                    "fnstcw word ptr [r9]",
                    "fldcw word ptr [r8]",
                    $($line,)*
                    "fldcw word ptr [r9]",
                    in("rsi") a.as_ptr(),
                    in("rdi") b.as_ptr(),
                    in("rdx") out.as_mut_ptr(),
                    in("rcx") &mut sw as *mut u16,
                    in("r8") &fcw as *const u16,
                    in("r9") save.as_mut_ptr(),
                    out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                    out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                    options(nostack)
                );
            }
            (out, (sw & 0x3f) as u8)
        }
    };
}

macro_rules! x87bin {
    ($name:ident, $op:literal) => {
        x87fn!(
            $name,
            "fld tbyte ptr [rdi]",
            "fld tbyte ptr [rsi]",
            "fnclex",
            $op,
            "fnstsw word ptr [rcx]",
            "fstp tbyte ptr [rdx]",
            "fstp st(0)",
        );
    };
}

x87bin!(h_fadd, "fadd st, st(1)");
x87bin!(h_fsub, "fsub st, st(1)");
x87bin!(h_fmul, "fmul st, st(1)");
x87bin!(h_fdiv, "fdiv st, st(1)");
x87bin!(h_fsqrt, "fsqrt");
x87bin!(h_frndint, "frndint");
x87bin!(h_fscale, "fscale");
x87bin!(h_fcom, "fcom st(1)");
x87bin!(h_fucom, "fucom st(1)");

x87fn!(
    h_fld32,
    "fnclex",
    "fld dword ptr [rsi]",
    "fnstsw word ptr [rcx]",
    "fstp tbyte ptr [rdx]"
);
x87fn!(
    h_fld64,
    "fnclex",
    "fld qword ptr [rsi]",
    "fnstsw word ptr [rcx]",
    "fstp tbyte ptr [rdx]"
);
x87fn!(
    h_fild64,
    "fnclex",
    "fild qword ptr [rsi]",
    "fnstsw word ptr [rcx]",
    "fstp tbyte ptr [rdx]"
);
x87fn!(
    h_fst32,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fstp dword ptr [rdx]",
    "fnstsw word ptr [rcx]"
);
x87fn!(
    h_fst64,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fstp qword ptr [rdx]",
    "fnstsw word ptr [rcx]"
);
x87fn!(
    h_fistp16,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fistp word ptr [rdx]",
    "fnstsw word ptr [rcx]"
);
x87fn!(
    h_fistp32,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fistp dword ptr [rdx]",
    "fnstsw word ptr [rcx]"
);
x87fn!(
    h_fistp64,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fistp qword ptr [rdx]",
    "fnstsw word ptr [rcx]"
);
x87fn!(
    h_fisttp16,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fisttp word ptr [rdx]",
    "fnstsw word ptr [rcx]"
);
x87fn!(
    h_fisttp32,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fisttp dword ptr [rdx]",
    "fnstsw word ptr [rcx]"
);
x87fn!(
    h_fisttp64,
    "fld tbyte ptr [rsi]",
    "fnclex",
    "fisttp qword ptr [rdx]",
    "fnstsw word ptr [rcx]"
);

fn enc(a: F80) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&a.mant.to_le_bytes());
    b[8..10].copy_from_slice(&a.se.to_le_bytes());
    b
}

fn dec(b: &[u8; 16]) -> F80 {
    F80 {
        mant: u64::from_le_bytes(b[..8].try_into().unwrap()),
        se: u16::from_le_bytes([b[8], b[9]]),
    }
}

fn u64_of(b: &[u8; 16]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

fn raw(v: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&v.to_le_bytes());
    b
}

const INT: u64 = 1 << 63;

fn f(se: u16, mant: u64) -> F80 {
    F80 { mant, se }
}

fn edges80() -> Vec<F80> {
    let mut v = vec![
        f(0, 0),
        f(0x7fff, INT),
        f(0x7fff, 0xc000_0000_0000_0000),
        f(0x7fff, 0xc000_0000_0000_1234),
        f(0x7fff, INT | 1),
        f(0x7fff, INT | 0x2345_0000_0000),
        f(0x7fff, u64::MAX),
        f(0x7fff, 0x4000_0000_0000_0000), // pseudo-NaN
        f(0x7fff, 0),                     // pseudo-infinity
        f(0x3fff, 0x4000_0000_0000_0000), // unnormal
        f(0x0001, 0x0000_0000_0000_0001), // unnormal
        f(0, 1),
        f(0, INT - 1),
        f(0, INT),     // pseudo-denormal
        f(0, INT | 5), // pseudo-denormal
        f(1, INT),
        f(0x7ffe, u64::MAX),
        f(0x3fff, INT),
        f(0x3fff, INT | 1),
        f(0x3ffe, u64::MAX),
        f(0x3fff, 0xc000_0000_0000_0000),
        f(0x3f81, INT), // f32 min normal
        f(0x3f6a, INT), // f32 min denormal
        f(0x407e, 0xffff_ff00_0000_0000),
        f(0x407e, 0xffff_ff80_0000_0000),
        f(0x3c01, INT),
        f(0x3bcd, INT),
        f(0x43fe, 0xffff_ffff_ffff_f800),
        f(0x43fe, 0xffff_ffff_ffff_fc00),
    ];
    for k in [15u16, 16, 31, 32, 62, 63, 64] {
        v.push(f(0x3fff + k, INT));
        v.push(f(0x3fff + k, INT | 1));
        v.push(f(0x3fff + k - 1, u64::MAX));
        v.push(f(0x3fff + k - 1, 0xffff_8000_0000_0000));
    }
    v
}

fn gen80(r: &mut Rng) -> F80 {
    let sign = if r.chance(2) { 0x8000 } else { 0 };
    let m = mantissa(r, 64);
    let normal = m | INT;
    let x = match r.below(10) {
        0 => {
            let e = edges80();
            e[r.below(e.len() as u64) as usize]
        }
        1 => f(r.below(3) as u16, if r.chance(3) { m } else { normal }),
        2 => f(0x7ffe - r.below(3) as u16, normal),
        3 | 4 => f(0x3fff - 40 + r.below(80) as u16, normal),
        5 => f(0x3fff + r.below(66) as u16, normal),
        // Around the f32 and f64 exponent limits, for stores and precision control.
        6 => f(0x3fff - 160 + r.below(300) as u16, normal),
        7 => f(0x3fff - 1100 + r.below(2200) as u16, normal),
        8 => f(r.next() as u16 & 0x7fff, if r.chance(20) { m } else { normal }),
        _ => f(
            0x3fff - 16 + r.below(32) as u16,
            normal & !(u64::MAX >> r.below(66).min(63)),
        ),
    };
    f(x.se | sign, x.mant)
}

fn gen_pair80(r: &mut Rng, a: F80) -> F80 {
    match r.below(6) {
        0 => f(a.se, a.mant.wrapping_add(r.below(5)).wrapping_sub(2)),
        1 => f(a.se ^ 0x8000, a.mant),
        2 => f(a.se.wrapping_sub(r.below(70) as u16), a.mant ^ r.below(4)),
        _ => gen80(r),
    }
}

fn random_fcw(r: &mut Rng) -> u16 {
    let rc = r.below(4) as u16;
    let pc = r.below(4) as u16;
    0x003f | 0x0040 | (pc << 8) | (rc << 10)
}

type Soft = fn(F80, F80, &mut FloatStatus) -> F80;
type Host = fn(u16, &[u8; 16], &[u8; 16]) -> ([u8; 16], u8);

fn s_sqrt(a: F80, _: F80, st: &mut FloatStatus) -> F80 {
    f80_sqrt(a, st)
}

#[test]
fn x87_arith() {
    let ops: [(&str, Soft, Host, bool); 5] = [
        ("fadd", f80_add, h_fadd, false),
        ("fsub", f80_sub, h_fsub, false),
        ("fmul", f80_mul, h_fmul, false),
        ("fdiv", f80_div, h_fdiv, false),
        ("fsqrt", s_sqrt, h_fsqrt, true),
    ];
    let mut rep = Report::new("x87 fadd/fsub/fmul/fdiv/fsqrt");
    let mut r = Rng::new(11);
    for _ in 0..N {
        let (name, soft, host, unary) = ops[r.below(5) as usize];
        let a = gen80(&mut r);
        let b = if unary { f(0x3fff, INT) } else { gen_pair80(&mut r, a) };
        let fcw = random_fcw(&mut r);
        let mut st = FloatStatus::from_fcw(fcw);
        let got = soft(a, b, &mut st);
        let (out, wf) = host(fcw, &enc(a), &enc(b));
        let want = dec(&out);
        rep.check(got == want && st.flags == wf, || {
            format!(
                "{name} a={a:x?} b={b:x?} fcw={fcw:#x}: soft={got:x?} {:#x} host={want:x?} {wf:#x}",
                st.flags
            )
        });
    }
    rep.finish();
}

#[test]
fn x87_compare() {
    let mut rep = Report::new("x87 fcom/fucom");
    let mut r = Rng::new(12);
    for _ in 0..N {
        let a = gen80(&mut r);
        let b = gen_pair80(&mut r, a);
        let signaling = r.chance(2);
        let fcw = random_fcw(&mut r);
        let mut st = FloatStatus::from_fcw(fcw);
        let got = f80_compare(a, b, signaling, &mut st);
        let (ea, eb) = (enc(a), enc(b));
        let mut sw = 0u16;
        // Re-run to read the condition codes: x87fn only returns the exception bits.
        let wf = {
            let (_, wf) = if signaling {
                h_fcom(fcw, &ea, &eb)
            } else {
                h_fucom(fcw, &ea, &eb)
            };
            sw |= fcom_cc(fcw, &ea, &eb, signaling);
            wf
        };
        let want = match (sw >> 8 & 1, sw >> 10 & 1, sw >> 14 & 1) {
            (0, 0, 0) => Relation::Greater,
            (1, 0, 0) => Relation::Less,
            (0, 0, 1) => Relation::Equal,
            _ => Relation::Unordered,
        };
        rep.check(got == want && st.flags == wf, || {
            format!(
                "sig={signaling} a={a:x?} b={b:x?}: soft={got:?} {:#x} host={want:?} {wf:#x}",
                st.flags
            )
        });
    }
    rep.finish();
}

/// Full status word of fcom/fucom, for C0/C2/C3.
fn fcom_cc(fcw: u16, a: &[u8; 16], b: &[u8; 16], signaling: bool) -> u16 {
    let mut sw = 0u16;
    let mut save = 0u16;
    // SAFETY: as in x87fn.
    unsafe {
        if signaling {
            asm!(
                "fnstcw word ptr [r9]", "fldcw word ptr [r8]", "fld tbyte ptr [rdi]", "fld tbyte ptr [rsi]",
                "fnclex", "fcom st(1)", "fnstsw word ptr [rcx]", "fstp st(0)", "fstp st(0)", "fldcw word ptr [r9]",
                in("rsi") a.as_ptr(), in("rdi") b.as_ptr(), in("rcx") &mut sw as *mut u16,
                in("r8") &fcw as *const u16, in("r9") &mut save as *mut u16,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack)
            );
        } else {
            asm!(
                "fnstcw word ptr [r9]", "fldcw word ptr [r8]", "fld tbyte ptr [rdi]", "fld tbyte ptr [rsi]",
                "fnclex", "fucom st(1)", "fnstsw word ptr [rcx]", "fstp st(0)", "fstp st(0)", "fldcw word ptr [r9]",
                in("rsi") a.as_ptr(), in("rdi") b.as_ptr(), in("rcx") &mut sw as *mut u16,
                in("r8") &fcw as *const u16, in("r9") &mut save as *mut u16,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack)
            );
        }
    }
    sw
}

#[test]
fn x87_conversions() {
    let mut rep = Report::new("x87 fld m32/m64, fst m32/m64, fild m64, fistp/fisttp m16/m32/m64");
    let mut r = Rng::new(13);
    let zero = [0u8; 16];
    for _ in 0..N {
        let fcw = random_fcw(&mut r);
        let mut st = FloatStatus::from_fcw(fcw);
        let kind = r.below(11);
        let (got, want, input): ((u64, u16, u8), (u64, u16, u8), String) = match kind {
            0 => {
                let a = L32.gen(&mut r) as u32;
                let g = f32_to_f80(a, &mut st);
                let (o, wf) = h_fld32(fcw, &raw(a as u64), &zero);
                let w = dec(&o);
                ((g.mant, g.se, st.flags), (w.mant, w.se, wf), format!("fld m32 {a:#x}"))
            }
            1 => {
                let a = L64.gen(&mut r);
                let g = f64_to_f80(a, &mut st);
                let (o, wf) = h_fld64(fcw, &raw(a), &zero);
                let w = dec(&o);
                ((g.mant, g.se, st.flags), (w.mant, w.se, wf), format!("fld m64 {a:#x}"))
            }
            2 => {
                let v = (r.next() as i64) >> r.below(64);
                let g = i64_to_f80(v, &mut st);
                let (o, wf) = h_fild64(fcw, &raw(v as u64), &zero);
                let w = dec(&o);
                ((g.mant, g.se, st.flags), (w.mant, w.se, wf), format!("fild {v}"))
            }
            3 => {
                let a = gen80(&mut r);
                let g = f80_to_f32(a, &mut st);
                let (o, wf) = h_fst32(fcw, &enc(a), &zero);
                (
                    (g as u64, 0, st.flags),
                    (u64_of(&o) & 0xffff_ffff, 0, wf),
                    format!("fst m32 {a:x?}"),
                )
            }
            4 => {
                let a = gen80(&mut r);
                let g = f80_to_f64(a, &mut st);
                let (o, wf) = h_fst64(fcw, &enc(a), &zero);
                ((g, 0, st.flags), (u64_of(&o), 0, wf), format!("fst m64 {a:x?}"))
            }
            _ => {
                let a = gen80(&mut r);
                let trunc = kind >= 8;
                let (g, host): (u64, Host) = match kind {
                    5 => (f80_to_i16(a, false, &mut st) as u16 as u64, h_fistp16),
                    6 => (f80_to_i32(a, false, &mut st) as u32 as u64, h_fistp32),
                    7 => (f80_to_i64(a, false, &mut st) as u64, h_fistp64),
                    8 => (f80_to_i16(a, true, &mut st) as u16 as u64, h_fisttp16),
                    9 => (f80_to_i32(a, true, &mut st) as u32 as u64, h_fisttp32),
                    _ => (f80_to_i64(a, true, &mut st) as u64, h_fisttp64),
                };
                let width = [16, 32, 64][((kind - 5) % 3) as usize];
                let (o, wf) = host(fcw, &enc(a), &zero);
                let w = u64_of(&o) & (u64::MAX >> (64 - width));
                (
                    (g, 0, st.flags),
                    (w, 0, wf),
                    format!("fist{}p m{width} {a:x?}", if trunc { "t" } else { "" }),
                )
            }
        };
        rep.check(got == want, || {
            format!("{input} fcw={fcw:#x}: soft={got:x?} host={want:x?}")
        });
    }
    rep.finish();
}

#[test]
fn x87_frndint_fscale() {
    let mut rep = Report::new("x87 frndint/fscale");
    let mut r = Rng::new(14);
    for i in 0..N {
        let a = gen80(&mut r);
        let fcw = random_fcw(&mut r);
        let mut st = FloatStatus::from_fcw(fcw);
        let (got, host, what) = if i % 2 == 0 {
            let g = f80_round_to_int(a, st.rounding, false, &mut st);
            (g, h_frndint(fcw, &enc(a), &[0; 16]), "frndint".to_string())
        } else {
            let n = match r.below(3) {
                0 => r.below(140) as i32 - 70,
                1 => r.below(40000) as i32 - 20000,
                _ => r.below(8) as i32 - 4,
            };
            let mut tmp = FloatStatus::default();
            let scale = i64_to_f80(n as i64, &mut tmp);
            let g = f80_scalbn(a, n, &mut st);
            (g, h_fscale(fcw, &enc(a), &enc(scale)), format!("fscale n={n}"))
        };
        let want = dec(&host.0);
        let wf = host.1;
        rep.check(got == want && st.flags == wf, || {
            format!(
                "{what} a={a:x?} fcw={fcw:#x}: soft={got:x?} {:#x} host={want:x?} {wf:#x}",
                st.flags
            )
        });
    }
    rep.finish();
}

/// Exhaustive pairs of NaN kinds, signs and payload orders, so the x87 NaN selection rules
/// (including equal significands) are checked deterministically, not only by chance.
#[test]
fn x87_nan_selection() {
    let mut rep = Report::new("x87 NaN selection");
    let payloads = [
        INT | 0x4000_0000_0000_0000 | 5,
        INT | 0x4000_0000_0000_0000 | 9,
        INT | 5,
        INT | 9,
    ];
    for &ma in &payloads {
        for &mb in &payloads {
            for sa in [0u16, 0x8000] {
                for sb in [0u16, 0x8000] {
                    let (a, b) = (f(0x7fff | sa, ma), f(0x7fff | sb, mb));
                    for (name, soft, host) in [("fadd", f80_add as Soft, h_fadd as Host), ("fmul", f80_mul, h_fmul)] {
                        let mut st = FloatStatus::from_fcw(0x37f);
                        let got = soft(a, b, &mut st);
                        let (o, wf) = host(0x37f, &enc(a), &enc(b));
                        let want = dec(&o);
                        rep.check(got == want && st.flags == wf, || {
                            format!(
                                "{name} a={a:x?} b={b:x?}: soft={got:x?} {:#x} host={want:x?} {wf:#x}",
                                st.flags
                            )
                        });
                    }
                }
            }
        }
    }
    rep.finish();
}

/// Every pair of boundary values (both signs) through the arithmetic ops and compares under
/// every rounding mode and precision control.
#[test]
fn x87_edge_pairs() {
    let mut rep = Report::new("x87 edge pairs");
    let edges: Vec<F80> = edges80()
        .into_iter()
        .flat_map(|v| [v, f(v.se | 0x8000, v.mant)])
        .collect();
    let ops: [(&str, Soft, Host); 5] = [
        ("fadd", f80_add, h_fadd),
        ("fsub", f80_sub, h_fsub),
        ("fmul", f80_mul, h_fmul),
        ("fdiv", f80_div, h_fdiv),
        ("fsqrt", s_sqrt, h_fsqrt),
    ];
    for rc in 0..4u16 {
        for pc in [0u16, 2, 3] {
            let fcw = 0x007f | (pc << 8) | (rc << 10);
            for &a in &edges {
                for &b in &edges {
                    let (ea, eb) = (enc(a), enc(b));
                    for (name, soft, host) in ops {
                        let mut st = FloatStatus::from_fcw(fcw);
                        let got = soft(a, b, &mut st);
                        let (o, wf) = host(fcw, &ea, &eb);
                        let want = dec(&o);
                        rep.check(got == want && st.flags == wf, || {
                            format!(
                                "{name} a={a:x?} b={b:x?} fcw={fcw:#x}: soft={got:x?} {:#x} host={want:x?} {wf:#x}",
                                st.flags
                            )
                        });
                    }
                    if pc == 3 {
                        for signaling in [false, true] {
                            let mut st = FloatStatus::from_fcw(fcw);
                            let got = f80_compare(a, b, signaling, &mut st);
                            let (_, wf) = if signaling {
                                h_fcom(fcw, &ea, &eb)
                            } else {
                                h_fucom(fcw, &ea, &eb)
                            };
                            let sw = fcom_cc(fcw, &ea, &eb, signaling);
                            let want = match (sw >> 8 & 1, sw >> 10 & 1, sw >> 14 & 1) {
                                (0, 0, 0) => Relation::Greater,
                                (1, 0, 0) => Relation::Less,
                                (0, 0, 1) => Relation::Equal,
                                _ => Relation::Unordered,
                            };
                            rep.check(got == want && st.flags == wf, || {
                                format!(
                                    "fcom({signaling}) a={a:x?} b={b:x?}: soft={got:?} {:#x} host={want:?} {wf:#x}",
                                    st.flags
                                )
                            });
                        }
                    }
                }
            }
        }
    }
    rep.finish();
}
