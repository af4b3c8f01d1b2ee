//! Hand-checked results that run on every host (the differential tests need x86-64).

use rqemu_fpu::flags::*;
use rqemu_fpu::*;

fn st() -> FloatStatus {
    FloatStatus::default()
}

fn x87(pc: u16) -> FloatStatus {
    FloatStatus::from_fcw(0x007f | (pc << 8))
}

const ONE80: F80 = F80 {
    mant: 1 << 63,
    se: 0x3fff,
};
const THREE80: F80 = F80 {
    mant: 0xc000_0000_0000_0000,
    se: 0x4000,
};

#[test]
fn thirds() {
    let mut s = st();
    assert_eq!(f32_div(0x3f80_0000, 0x4040_0000, &mut s), 0x3eaa_aaab);
    assert_eq!(
        f64_div(0x3ff0_0000_0000_0000, 0x4008_0000_0000_0000, &mut s),
        0x3fd5_5555_5555_5555
    );
    assert_eq!(s.flags, INEXACT);
    // Precision control rounds the same quotient to 64, 53 and 24 bits.
    let expect = [
        (3, 0xaaaa_aaaa_aaaa_aaab),
        (2, 0xaaaa_aaaa_aaaa_a800),
        (0, 0xaaaa_ab00_0000_0000),
    ];
    for (pc, mant) in expect {
        let mut s = x87(pc);
        assert_eq!(f80_div(ONE80, THREE80, &mut s), F80 { mant, se: 0x3ffd }, "pc={pc}");
        assert_eq!(s.flags, INEXACT);
    }
}

#[test]
fn sqrt_values() {
    let mut s = st();
    assert_eq!(f32_sqrt(0x4000_0000, &mut s), 0x3fb5_04f3);
    assert_eq!(f32_sqrt(0x8000_0000, &mut s), 0x8000_0000);
    assert_eq!(f64_sqrt(0x4010_0000_0000_0000, &mut s), 0x4000_0000_0000_0000);
    assert_eq!(s.flags, INEXACT);
    let mut s = st();
    assert_eq!(f32_sqrt(0xbf80_0000, &mut s), 0xffc0_0000);
    assert_eq!(s.flags, INVALID);
}

#[test]
fn compares() {
    let mut s = st();
    assert_eq!(f32_compare(0x8000_0000, 0, false, &mut s), Relation::Equal);
    assert_eq!(
        f64_compare(0xbff0_0000_0000_0000, 0x3ff0_0000_0000_0000, false, &mut s),
        Relation::Less
    );
    assert_eq!(f80_compare(THREE80, ONE80, false, &mut s), Relation::Greater);
    assert_eq!(f32_compare(0x7fc0_0000, 0, false, &mut s), Relation::Unordered);
    assert_eq!(s.flags, 0);
    assert_eq!(f32_compare(0x7fc0_0000, 0, true, &mut s), Relation::Unordered);
    assert_eq!(s.flags, INVALID);
}

#[test]
fn nan_handling() {
    let mut s = st();
    assert_eq!(f32_to_f64(0x7f80_0001, &mut s), 0x7ff8_0000_2000_0000);
    assert_eq!(s.flags, INVALID);
    // x87: a QNaN beats an SNaN regardless of operand order.
    let q = F80 {
        mant: 0xc000_0000_0000_0001,
        se: 0x7fff,
    };
    let sn = F80 {
        mant: 0x8000_0000_0000_0009,
        se: 0x7fff,
    };
    let mut s = x87(3);
    assert_eq!(f80_add(sn, q, &mut s), q);
    assert_eq!(s.flags, INVALID);
    let mut s = x87(3);
    let inf = F80 {
        mant: 1 << 63,
        se: 0x7fff,
    };
    assert_eq!(f80_sub(inf, inf, &mut s), F80::DEFAULT_NAN);
    // An unnormal is an invalid operand.
    let mut s = x87(3);
    assert_eq!(
        f80_mul(
            F80 {
                mant: 1 << 62,
                se: 0x3fff
            },
            ONE80,
            &mut s
        ),
        F80::DEFAULT_NAN
    );
    assert_eq!(s.flags, INVALID);
    assert!(f80_is_invalid_encoding(F80 { mant: 0, se: 0x7fff }));
}

#[test]
fn underflow_daz_ftz() {
    let mut s = st();
    // Smallest denormal halved: a tie that rounds to even zero.
    assert_eq!(f32_mul(1, 0x3f00_0000, &mut s), 0);
    assert_eq!(s.flags, DENORMAL | UNDERFLOW | INEXACT);
    let mut s = st();
    assert_eq!(f32_add(1, 0, &mut s), 1);
    assert_eq!(s.flags, DENORMAL);
    let mut s = FloatStatus { daz: true, ..st() };
    assert_eq!(f32_add(1, 0, &mut s), 0);
    assert_eq!(s.flags, 0);
    let mut s = FloatStatus::from_mxcsr(0x9f80);
    assert!(s.ftz);
    assert_eq!(f64_mul(0x0010_0000_0000_0000, 0x3fe0_0000_0000_0000, &mut s), 0);
    assert_eq!(s.flags, UNDERFLOW | INEXACT);
    // FTZ only counts when underflow is masked.
    assert!(!FloatStatus::from_mxcsr(0x9780).ftz);
}

#[test]
fn overflow() {
    let mut s = st();
    assert_eq!(f64_to_f32(0x7e37_e43c_8800_759c, &mut s), 0x7f80_0000); // 1e300
    assert_eq!(s.flags, OVERFLOW | INEXACT);
    let mut s = FloatStatus {
        rounding: RoundingMode::Down,
        ..st()
    };
    assert_eq!(f32_add(0x7f7f_ffff, 0x7f7f_ffff, &mut s), 0x7f7f_ffff);
}

#[test]
fn integer_conversions() {
    let mut s = st();
    assert_eq!(i64_to_f32(i64::MAX, &mut s), 0x5f00_0000);
    assert_eq!(s.flags, INEXACT);
    let mut s = st();
    assert_eq!(f64_to_i64(0xc3e0_0000_0000_0000, false, &mut s), i64::MIN);
    assert_eq!(s.flags, 0);
    assert_eq!(
        f80_to_i16(
            F80 {
                mant: 1 << 63,
                se: 0x400e
            },
            false,
            &mut s
        ),
        i16::MIN
    ); // 32768
    assert_eq!(s.flags, INVALID);
    let mut s = st();
    assert_eq!(f32_to_i64(0x7fc0_0000, true, &mut s), i64::MIN);
    assert_eq!(s.flags, INVALID);
    let mut s = st();
    assert_eq!(i32_to_f64(-7, &mut s), 0xc01c_0000_0000_0000);
    assert_eq!(i64_to_f80(0, &mut s), F80 { mant: 0, se: 0 });
    assert_eq!(s.flags, 0);
}

#[test]
fn round_to_integral_and_scale() {
    let two_and_half = 0x4004_0000_0000_0000;
    let mut s = st();
    assert_eq!(
        f64_round_to_int(two_and_half, RoundingMode::NearestEven, false, &mut s),
        0x4000_0000_0000_0000
    );
    assert_eq!(s.flags, INEXACT);
    let mut s = st();
    assert_eq!(
        f64_round_to_int(two_and_half, RoundingMode::Up, true, &mut s),
        0x4008_0000_0000_0000
    );
    assert_eq!(s.flags, 0);
    assert_eq!(
        f32_round_to_int(0xbf00_0000, RoundingMode::NearestEven, false, &mut s),
        0x8000_0000
    ); // -0.5 -> -0
    let mut s = x87(3);
    assert_eq!(
        f80_scalbn(ONE80, 3, &mut s),
        F80 {
            mant: 1 << 63,
            se: 0x4002
        }
    );
    assert_eq!(
        f80_scalbn(ONE80, i32::MAX, &mut s),
        F80 {
            mant: 1 << 63,
            se: 0x7fff
        }
    );
    assert_eq!(s.flags, OVERFLOW | INEXACT);
    assert_eq!(
        f80_round_to_int(THREE80, RoundingMode::Down, false, &mut x87(3)),
        THREE80
    );
}

#[test]
fn control_word_decoding() {
    let s = FloatStatus::from_fcw(0x0a7f);
    assert_eq!(s.rounding, RoundingMode::Up);
    assert_eq!(s.precision, Precision::Double);
    assert_eq!(FloatStatus::from_fcw(0x017f).precision, Precision::Extended);
    let s = FloatStatus::from_mxcsr(0x7fc0 | 0x21);
    assert_eq!(s.rounding, RoundingMode::TowardZero);
    assert!(s.daz && !s.ftz);
    assert_eq!(s.flags, INVALID | INEXACT);
}
