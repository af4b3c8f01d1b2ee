//! SSE/SSE2/SSE3/SSE4.1 floating point on rqemu (tci) against this host's CPU: every instruction form runs on
//! both with the same registers, memory operand and MXCSR (every rounding mode, DAZ/FTZ on and off, random
//! sticky flags, exceptions masked); xmm0, rax, mm0, MXCSR and (comis/ucomis) the arithmetic flags must be
//! bit-identical. rcp/rsqrt are compared within their architectural error bound (1.5 * 2^-12). Unmasked
//! exceptions are checked against the SDM rules (#XM vs #UD, unchanged destination) on rqemu alone.
#![cfg(target_arch = "x86_64")]

mod harness;

use core::arch::asm;
use harness::{Machine, Outcome, CODE, DATA};

/// The state both sides start from and what they end with (offsets are used by the host asm).
#[repr(C, align(16))]
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct St {
    x0: u128,
    x1: u128,
    mem: u128,
    rax: u64,
    mm0: u64,
    mm1: u64,
    csr: u32,
    save: u32,
    flags: u64,
}

macro_rules! host_fn {
    ($bytes:literal) => {{
        fn h(s: &mut St) {
            let p = s as *mut St;
            // SAFETY: reads and writes only `*s`; MXCSR is restored and emms clears the MMX state the
            // instruction may have set before the block ends. xmm0/xmm1/rax/rdi/mm0/mm1 are declared clobbered.
            unsafe {
                asm!(
                    "movdqu xmm0, [rsi]",
                    "movdqu xmm1, [rsi + 16]",
                    "mov rax, [rsi + 48]",
                    "movq mm0, [rsi + 56]",
                    "movq mm1, [rsi + 64]",
                    "emms", // the x87 tags are empty again, so a fault shows whether the instruction set them
                    "lea rdi, [rsi + 32]",
                    "stmxcsr [rsi + 76]",
                    "ldmxcsr [rsi + 72]",
                    concat!(".byte ", $bytes),
                    "stmxcsr [rsi + 72]",
                    "pushfq",
                    "pop qword ptr [rsi + 80]",
                    "ldmxcsr [rsi + 76]",
                    "movdqu [rsi], xmm0",
                    "mov [rsi + 48], rax",
                    "movq [rsi + 56], mm0",
                    "emms",
                    in("rsi") p,
                    out("xmm0") _, out("xmm1") _, out("rax") _, out("rdi") _, out("mm0") _, out("mm1") _,
                );
            }
        }
        h
    }};
}

/// Operand kinds (what the random lanes are) and checks.
const F32: u32 = 1;
const F64: u32 = 2;
const I32: u32 = 4;
const I64: u32 = 8;
const APPROX: u32 = 16;
const FLAGS: u32 = 32;
const GPR: u32 = 64;
const MMX: u32 = 128;

struct Form {
    name: &'static str,
    bytes: &'static [u8],
    kind: u32,
    feature: &'static str,
    host: fn(&mut St),
}

macro_rules! form {
    ($name:ident, $s:literal, [$($b:expr),*], $kind:expr, $feat:literal) => {
        Form { name: stringify!($name), bytes: &[$($b),*], kind: $kind, feature: $feat, host: host_fn!($s) }
    };
}

fn forms() -> Vec<Form> {
    vec![
        form!(addps, "0x0f, 0x58, 0xc1", [0x0f, 0x58, 0xc1], F32, "sse2"),
        form!(addps_m, "0x0f, 0x58, 0x07", [0x0f, 0x58, 0x07], F32, "sse2"),
        form!(addss, "0xf3, 0x0f, 0x58, 0xc1", [0xf3, 0x0f, 0x58, 0xc1], F32, "sse2"),
        form!(addss_m, "0xf3, 0x0f, 0x58, 0x07", [0xf3, 0x0f, 0x58, 0x07], F32, "sse2"),
        form!(addpd, "0x66, 0x0f, 0x58, 0xc1", [0x66, 0x0f, 0x58, 0xc1], F64, "sse2"),
        form!(addpd_m, "0x66, 0x0f, 0x58, 0x07", [0x66, 0x0f, 0x58, 0x07], F64, "sse2"),
        form!(addsd, "0xf2, 0x0f, 0x58, 0xc1", [0xf2, 0x0f, 0x58, 0xc1], F64, "sse2"),
        form!(addsd_m, "0xf2, 0x0f, 0x58, 0x07", [0xf2, 0x0f, 0x58, 0x07], F64, "sse2"),
        form!(mulps, "0x0f, 0x59, 0xc1", [0x0f, 0x59, 0xc1], F32, "sse2"),
        form!(mulps_m, "0x0f, 0x59, 0x07", [0x0f, 0x59, 0x07], F32, "sse2"),
        form!(mulss, "0xf3, 0x0f, 0x59, 0xc1", [0xf3, 0x0f, 0x59, 0xc1], F32, "sse2"),
        form!(mulss_m, "0xf3, 0x0f, 0x59, 0x07", [0xf3, 0x0f, 0x59, 0x07], F32, "sse2"),
        form!(mulpd, "0x66, 0x0f, 0x59, 0xc1", [0x66, 0x0f, 0x59, 0xc1], F64, "sse2"),
        form!(mulpd_m, "0x66, 0x0f, 0x59, 0x07", [0x66, 0x0f, 0x59, 0x07], F64, "sse2"),
        form!(mulsd, "0xf2, 0x0f, 0x59, 0xc1", [0xf2, 0x0f, 0x59, 0xc1], F64, "sse2"),
        form!(mulsd_m, "0xf2, 0x0f, 0x59, 0x07", [0xf2, 0x0f, 0x59, 0x07], F64, "sse2"),
        form!(subps, "0x0f, 0x5c, 0xc1", [0x0f, 0x5c, 0xc1], F32, "sse2"),
        form!(subps_m, "0x0f, 0x5c, 0x07", [0x0f, 0x5c, 0x07], F32, "sse2"),
        form!(subss, "0xf3, 0x0f, 0x5c, 0xc1", [0xf3, 0x0f, 0x5c, 0xc1], F32, "sse2"),
        form!(subss_m, "0xf3, 0x0f, 0x5c, 0x07", [0xf3, 0x0f, 0x5c, 0x07], F32, "sse2"),
        form!(subpd, "0x66, 0x0f, 0x5c, 0xc1", [0x66, 0x0f, 0x5c, 0xc1], F64, "sse2"),
        form!(subpd_m, "0x66, 0x0f, 0x5c, 0x07", [0x66, 0x0f, 0x5c, 0x07], F64, "sse2"),
        form!(subsd, "0xf2, 0x0f, 0x5c, 0xc1", [0xf2, 0x0f, 0x5c, 0xc1], F64, "sse2"),
        form!(subsd_m, "0xf2, 0x0f, 0x5c, 0x07", [0xf2, 0x0f, 0x5c, 0x07], F64, "sse2"),
        form!(minps, "0x0f, 0x5d, 0xc1", [0x0f, 0x5d, 0xc1], F32, "sse2"),
        form!(minps_m, "0x0f, 0x5d, 0x07", [0x0f, 0x5d, 0x07], F32, "sse2"),
        form!(minss, "0xf3, 0x0f, 0x5d, 0xc1", [0xf3, 0x0f, 0x5d, 0xc1], F32, "sse2"),
        form!(minss_m, "0xf3, 0x0f, 0x5d, 0x07", [0xf3, 0x0f, 0x5d, 0x07], F32, "sse2"),
        form!(minpd, "0x66, 0x0f, 0x5d, 0xc1", [0x66, 0x0f, 0x5d, 0xc1], F64, "sse2"),
        form!(minpd_m, "0x66, 0x0f, 0x5d, 0x07", [0x66, 0x0f, 0x5d, 0x07], F64, "sse2"),
        form!(minsd, "0xf2, 0x0f, 0x5d, 0xc1", [0xf2, 0x0f, 0x5d, 0xc1], F64, "sse2"),
        form!(minsd_m, "0xf2, 0x0f, 0x5d, 0x07", [0xf2, 0x0f, 0x5d, 0x07], F64, "sse2"),
        form!(divps, "0x0f, 0x5e, 0xc1", [0x0f, 0x5e, 0xc1], F32, "sse2"),
        form!(divps_m, "0x0f, 0x5e, 0x07", [0x0f, 0x5e, 0x07], F32, "sse2"),
        form!(divss, "0xf3, 0x0f, 0x5e, 0xc1", [0xf3, 0x0f, 0x5e, 0xc1], F32, "sse2"),
        form!(divss_m, "0xf3, 0x0f, 0x5e, 0x07", [0xf3, 0x0f, 0x5e, 0x07], F32, "sse2"),
        form!(divpd, "0x66, 0x0f, 0x5e, 0xc1", [0x66, 0x0f, 0x5e, 0xc1], F64, "sse2"),
        form!(divpd_m, "0x66, 0x0f, 0x5e, 0x07", [0x66, 0x0f, 0x5e, 0x07], F64, "sse2"),
        form!(divsd, "0xf2, 0x0f, 0x5e, 0xc1", [0xf2, 0x0f, 0x5e, 0xc1], F64, "sse2"),
        form!(divsd_m, "0xf2, 0x0f, 0x5e, 0x07", [0xf2, 0x0f, 0x5e, 0x07], F64, "sse2"),
        form!(maxps, "0x0f, 0x5f, 0xc1", [0x0f, 0x5f, 0xc1], F32, "sse2"),
        form!(maxps_m, "0x0f, 0x5f, 0x07", [0x0f, 0x5f, 0x07], F32, "sse2"),
        form!(maxss, "0xf3, 0x0f, 0x5f, 0xc1", [0xf3, 0x0f, 0x5f, 0xc1], F32, "sse2"),
        form!(maxss_m, "0xf3, 0x0f, 0x5f, 0x07", [0xf3, 0x0f, 0x5f, 0x07], F32, "sse2"),
        form!(maxpd, "0x66, 0x0f, 0x5f, 0xc1", [0x66, 0x0f, 0x5f, 0xc1], F64, "sse2"),
        form!(maxpd_m, "0x66, 0x0f, 0x5f, 0x07", [0x66, 0x0f, 0x5f, 0x07], F64, "sse2"),
        form!(maxsd, "0xf2, 0x0f, 0x5f, 0xc1", [0xf2, 0x0f, 0x5f, 0xc1], F64, "sse2"),
        form!(maxsd_m, "0xf2, 0x0f, 0x5f, 0x07", [0xf2, 0x0f, 0x5f, 0x07], F64, "sse2"),
        form!(sqrtps, "0x0f, 0x51, 0xc1", [0x0f, 0x51, 0xc1], F32, "sse2"),
        form!(sqrtps_m, "0x0f, 0x51, 0x07", [0x0f, 0x51, 0x07], F32, "sse2"),
        form!(sqrtss, "0xf3, 0x0f, 0x51, 0xc1", [0xf3, 0x0f, 0x51, 0xc1], F32, "sse2"),
        form!(
            sqrtss_m,
            "0xf3, 0x0f, 0x51, 0x07",
            [0xf3, 0x0f, 0x51, 0x07],
            F32,
            "sse2"
        ),
        form!(sqrtpd, "0x66, 0x0f, 0x51, 0xc1", [0x66, 0x0f, 0x51, 0xc1], F64, "sse2"),
        form!(
            sqrtpd_m,
            "0x66, 0x0f, 0x51, 0x07",
            [0x66, 0x0f, 0x51, 0x07],
            F64,
            "sse2"
        ),
        form!(sqrtsd, "0xf2, 0x0f, 0x51, 0xc1", [0xf2, 0x0f, 0x51, 0xc1], F64, "sse2"),
        form!(
            sqrtsd_m,
            "0xf2, 0x0f, 0x51, 0x07",
            [0xf2, 0x0f, 0x51, 0x07],
            F64,
            "sse2"
        ),
        form!(rcpps, "0x0f, 0x53, 0xc1", [0x0f, 0x53, 0xc1], APPROX, "sse2"),
        form!(rcpps_m, "0x0f, 0x53, 0x07", [0x0f, 0x53, 0x07], APPROX, "sse2"),
        form!(
            rcpss,
            "0xf3, 0x0f, 0x53, 0xc1",
            [0xf3, 0x0f, 0x53, 0xc1],
            APPROX,
            "sse2"
        ),
        form!(
            rcpss_m,
            "0xf3, 0x0f, 0x53, 0x07",
            [0xf3, 0x0f, 0x53, 0x07],
            APPROX,
            "sse2"
        ),
        form!(rsqrtps, "0x0f, 0x52, 0xc1", [0x0f, 0x52, 0xc1], APPROX, "sse2"),
        form!(rsqrtps_m, "0x0f, 0x52, 0x07", [0x0f, 0x52, 0x07], APPROX, "sse2"),
        form!(
            rsqrtss,
            "0xf3, 0x0f, 0x52, 0xc1",
            [0xf3, 0x0f, 0x52, 0xc1],
            APPROX,
            "sse2"
        ),
        form!(
            rsqrtss_m,
            "0xf3, 0x0f, 0x52, 0x07",
            [0xf3, 0x0f, 0x52, 0x07],
            APPROX,
            "sse2"
        ),
        form!(cmpps_0, "0x0f, 0xc2, 0xc1, 0x00", [0x0f, 0xc2, 0xc1, 0x00], F32, "sse2"),
        form!(cmpps_1, "0x0f, 0xc2, 0xc1, 0x01", [0x0f, 0xc2, 0xc1, 0x01], F32, "sse2"),
        form!(cmpps_2, "0x0f, 0xc2, 0xc1, 0x02", [0x0f, 0xc2, 0xc1, 0x02], F32, "sse2"),
        form!(cmpps_3, "0x0f, 0xc2, 0xc1, 0x03", [0x0f, 0xc2, 0xc1, 0x03], F32, "sse2"),
        form!(cmpps_4, "0x0f, 0xc2, 0xc1, 0x04", [0x0f, 0xc2, 0xc1, 0x04], F32, "sse2"),
        form!(cmpps_5, "0x0f, 0xc2, 0xc1, 0x05", [0x0f, 0xc2, 0xc1, 0x05], F32, "sse2"),
        form!(cmpps_6, "0x0f, 0xc2, 0xc1, 0x06", [0x0f, 0xc2, 0xc1, 0x06], F32, "sse2"),
        form!(cmpps_7, "0x0f, 0xc2, 0xc1, 0x07", [0x0f, 0xc2, 0xc1, 0x07], F32, "sse2"),
        // imm8 bits 3..7 of the legacy forms are ignored.
        form!(
            cmpps_hi,
            "0x0f, 0xc2, 0xc1, 0x0d",
            [0x0f, 0xc2, 0xc1, 0x0d],
            F32,
            "sse2"
        ),
        form!(
            cmpsd_hi,
            "0xf2, 0x0f, 0xc2, 0xc1, 0xfa",
            [0xf2, 0x0f, 0xc2, 0xc1, 0xfa],
            F64,
            "sse2"
        ),
        form!(cmpps_m, "0x0f, 0xc2, 0x07, 0x01", [0x0f, 0xc2, 0x07, 0x01], F32, "sse2"),
        form!(
            cmpss_0,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x00",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x00],
            F32,
            "sse2"
        ),
        form!(
            cmpss_1,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x01",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x01],
            F32,
            "sse2"
        ),
        form!(
            cmpss_2,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x02",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x02],
            F32,
            "sse2"
        ),
        form!(
            cmpss_3,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x03",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x03],
            F32,
            "sse2"
        ),
        form!(
            cmpss_4,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x04",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x04],
            F32,
            "sse2"
        ),
        form!(
            cmpss_5,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x05",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x05],
            F32,
            "sse2"
        ),
        form!(
            cmpss_6,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x06",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x06],
            F32,
            "sse2"
        ),
        form!(
            cmpss_7,
            "0xf3, 0x0f, 0xc2, 0xc1, 0x07",
            [0xf3, 0x0f, 0xc2, 0xc1, 0x07],
            F32,
            "sse2"
        ),
        form!(
            cmpss_m,
            "0xf3, 0x0f, 0xc2, 0x07, 0x01",
            [0xf3, 0x0f, 0xc2, 0x07, 0x01],
            F32,
            "sse2"
        ),
        form!(
            cmppd_0,
            "0x66, 0x0f, 0xc2, 0xc1, 0x00",
            [0x66, 0x0f, 0xc2, 0xc1, 0x00],
            F64,
            "sse2"
        ),
        form!(
            cmppd_1,
            "0x66, 0x0f, 0xc2, 0xc1, 0x01",
            [0x66, 0x0f, 0xc2, 0xc1, 0x01],
            F64,
            "sse2"
        ),
        form!(
            cmppd_2,
            "0x66, 0x0f, 0xc2, 0xc1, 0x02",
            [0x66, 0x0f, 0xc2, 0xc1, 0x02],
            F64,
            "sse2"
        ),
        form!(
            cmppd_3,
            "0x66, 0x0f, 0xc2, 0xc1, 0x03",
            [0x66, 0x0f, 0xc2, 0xc1, 0x03],
            F64,
            "sse2"
        ),
        form!(
            cmppd_4,
            "0x66, 0x0f, 0xc2, 0xc1, 0x04",
            [0x66, 0x0f, 0xc2, 0xc1, 0x04],
            F64,
            "sse2"
        ),
        form!(
            cmppd_5,
            "0x66, 0x0f, 0xc2, 0xc1, 0x05",
            [0x66, 0x0f, 0xc2, 0xc1, 0x05],
            F64,
            "sse2"
        ),
        form!(
            cmppd_6,
            "0x66, 0x0f, 0xc2, 0xc1, 0x06",
            [0x66, 0x0f, 0xc2, 0xc1, 0x06],
            F64,
            "sse2"
        ),
        form!(
            cmppd_7,
            "0x66, 0x0f, 0xc2, 0xc1, 0x07",
            [0x66, 0x0f, 0xc2, 0xc1, 0x07],
            F64,
            "sse2"
        ),
        form!(
            cmppd_m,
            "0x66, 0x0f, 0xc2, 0x07, 0x01",
            [0x66, 0x0f, 0xc2, 0x07, 0x01],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_0,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x00",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x00],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_1,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x01",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x01],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_2,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x02",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x02],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_3,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x03",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x03],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_4,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x04",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x04],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_5,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x05",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x05],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_6,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x06",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x06],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_7,
            "0xf2, 0x0f, 0xc2, 0xc1, 0x07",
            [0xf2, 0x0f, 0xc2, 0xc1, 0x07],
            F64,
            "sse2"
        ),
        form!(
            cmpsd_m,
            "0xf2, 0x0f, 0xc2, 0x07, 0x01",
            [0xf2, 0x0f, 0xc2, 0x07, 0x01],
            F64,
            "sse2"
        ),
        form!(comiss, "0x0f, 0x2f, 0xc1", [0x0f, 0x2f, 0xc1], F32 | FLAGS, "sse2"),
        form!(comiss_m, "0x0f, 0x2f, 0x07", [0x0f, 0x2f, 0x07], F32 | FLAGS, "sse2"),
        form!(ucomiss, "0x0f, 0x2e, 0xc1", [0x0f, 0x2e, 0xc1], F32 | FLAGS, "sse2"),
        form!(ucomiss_m, "0x0f, 0x2e, 0x07", [0x0f, 0x2e, 0x07], F32 | FLAGS, "sse2"),
        form!(
            comisd,
            "0x66, 0x0f, 0x2f, 0xc1",
            [0x66, 0x0f, 0x2f, 0xc1],
            F64 | FLAGS,
            "sse2"
        ),
        form!(
            comisd_m,
            "0x66, 0x0f, 0x2f, 0x07",
            [0x66, 0x0f, 0x2f, 0x07],
            F64 | FLAGS,
            "sse2"
        ),
        form!(
            ucomisd,
            "0x66, 0x0f, 0x2e, 0xc1",
            [0x66, 0x0f, 0x2e, 0xc1],
            F64 | FLAGS,
            "sse2"
        ),
        form!(
            ucomisd_m,
            "0x66, 0x0f, 0x2e, 0x07",
            [0x66, 0x0f, 0x2e, 0x07],
            F64 | FLAGS,
            "sse2"
        ),
        form!(
            cvtss2sd,
            "0xf3, 0x0f, 0x5a, 0xc1",
            [0xf3, 0x0f, 0x5a, 0xc1],
            F32,
            "sse2"
        ),
        form!(
            cvtss2sd_m,
            "0xf3, 0x0f, 0x5a, 0x07",
            [0xf3, 0x0f, 0x5a, 0x07],
            F32,
            "sse2"
        ),
        form!(
            cvtsd2ss,
            "0xf2, 0x0f, 0x5a, 0xc1",
            [0xf2, 0x0f, 0x5a, 0xc1],
            F64,
            "sse2"
        ),
        form!(
            cvtsd2ss_m,
            "0xf2, 0x0f, 0x5a, 0x07",
            [0xf2, 0x0f, 0x5a, 0x07],
            F64,
            "sse2"
        ),
        form!(cvtps2pd, "0x0f, 0x5a, 0xc1", [0x0f, 0x5a, 0xc1], F32, "sse2"),
        form!(cvtps2pd_m, "0x0f, 0x5a, 0x07", [0x0f, 0x5a, 0x07], F32, "sse2"),
        form!(
            cvtpd2ps,
            "0x66, 0x0f, 0x5a, 0xc1",
            [0x66, 0x0f, 0x5a, 0xc1],
            F64,
            "sse2"
        ),
        form!(
            cvtpd2ps_m,
            "0x66, 0x0f, 0x5a, 0x07",
            [0x66, 0x0f, 0x5a, 0x07],
            F64,
            "sse2"
        ),
        form!(cvtdq2ps, "0x0f, 0x5b, 0xc1", [0x0f, 0x5b, 0xc1], I32, "sse2"),
        form!(cvtdq2ps_m, "0x0f, 0x5b, 0x07", [0x0f, 0x5b, 0x07], I32, "sse2"),
        form!(
            cvtps2dq,
            "0x66, 0x0f, 0x5b, 0xc1",
            [0x66, 0x0f, 0x5b, 0xc1],
            F32,
            "sse2"
        ),
        form!(
            cvtps2dq_m,
            "0x66, 0x0f, 0x5b, 0x07",
            [0x66, 0x0f, 0x5b, 0x07],
            F32,
            "sse2"
        ),
        form!(
            cvttps2dq,
            "0xf3, 0x0f, 0x5b, 0xc1",
            [0xf3, 0x0f, 0x5b, 0xc1],
            F32,
            "sse2"
        ),
        form!(
            cvttps2dq_m,
            "0xf3, 0x0f, 0x5b, 0x07",
            [0xf3, 0x0f, 0x5b, 0x07],
            F32,
            "sse2"
        ),
        form!(
            cvtdq2pd,
            "0xf3, 0x0f, 0xe6, 0xc1",
            [0xf3, 0x0f, 0xe6, 0xc1],
            I32,
            "sse2"
        ),
        form!(
            cvtdq2pd_m,
            "0xf3, 0x0f, 0xe6, 0x07",
            [0xf3, 0x0f, 0xe6, 0x07],
            I32,
            "sse2"
        ),
        form!(
            cvtpd2dq,
            "0xf2, 0x0f, 0xe6, 0xc1",
            [0xf2, 0x0f, 0xe6, 0xc1],
            F64,
            "sse2"
        ),
        form!(
            cvtpd2dq_m,
            "0xf2, 0x0f, 0xe6, 0x07",
            [0xf2, 0x0f, 0xe6, 0x07],
            F64,
            "sse2"
        ),
        form!(
            cvttpd2dq,
            "0x66, 0x0f, 0xe6, 0xc1",
            [0x66, 0x0f, 0xe6, 0xc1],
            F64,
            "sse2"
        ),
        form!(
            cvttpd2dq_m,
            "0x66, 0x0f, 0xe6, 0x07",
            [0x66, 0x0f, 0xe6, 0x07],
            F64,
            "sse2"
        ),
        form!(
            cvtsi2ss_r32,
            "0xf3, 0x0f, 0x2a, 0xc0",
            [0xf3, 0x0f, 0x2a, 0xc0],
            I32,
            "sse2"
        ),
        form!(
            cvtsi2ss_r64,
            "0xf3, 0x48, 0x0f, 0x2a, 0xc0",
            [0xf3, 0x48, 0x0f, 0x2a, 0xc0],
            I64,
            "sse2"
        ),
        form!(
            cvtsi2ss_m32,
            "0xf3, 0x0f, 0x2a, 0x07",
            [0xf3, 0x0f, 0x2a, 0x07],
            I32,
            "sse2"
        ),
        form!(
            cvtsi2ss_m64,
            "0xf3, 0x48, 0x0f, 0x2a, 0x07",
            [0xf3, 0x48, 0x0f, 0x2a, 0x07],
            I64,
            "sse2"
        ),
        form!(
            cvtsi2sd_r32,
            "0xf2, 0x0f, 0x2a, 0xc0",
            [0xf2, 0x0f, 0x2a, 0xc0],
            I32,
            "sse2"
        ),
        form!(
            cvtsi2sd_r64,
            "0xf2, 0x48, 0x0f, 0x2a, 0xc0",
            [0xf2, 0x48, 0x0f, 0x2a, 0xc0],
            I64,
            "sse2"
        ),
        form!(
            cvtsi2sd_m32,
            "0xf2, 0x0f, 0x2a, 0x07",
            [0xf2, 0x0f, 0x2a, 0x07],
            I32,
            "sse2"
        ),
        form!(
            cvtsi2sd_m64,
            "0xf2, 0x48, 0x0f, 0x2a, 0x07",
            [0xf2, 0x48, 0x0f, 0x2a, 0x07],
            I64,
            "sse2"
        ),
        form!(
            cvtss2si_r32,
            "0xf3, 0x0f, 0x2d, 0xc1",
            [0xf3, 0x0f, 0x2d, 0xc1],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvtss2si_r64,
            "0xf3, 0x48, 0x0f, 0x2d, 0xc1",
            [0xf3, 0x48, 0x0f, 0x2d, 0xc1],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvtss2si_r32m,
            "0xf3, 0x0f, 0x2d, 0x07",
            [0xf3, 0x0f, 0x2d, 0x07],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvtss2si_r64m,
            "0xf3, 0x48, 0x0f, 0x2d, 0x07",
            [0xf3, 0x48, 0x0f, 0x2d, 0x07],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvttss2si_r32,
            "0xf3, 0x0f, 0x2c, 0xc1",
            [0xf3, 0x0f, 0x2c, 0xc1],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvttss2si_r64,
            "0xf3, 0x48, 0x0f, 0x2c, 0xc1",
            [0xf3, 0x48, 0x0f, 0x2c, 0xc1],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvttss2si_r32m,
            "0xf3, 0x0f, 0x2c, 0x07",
            [0xf3, 0x0f, 0x2c, 0x07],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvttss2si_r64m,
            "0xf3, 0x48, 0x0f, 0x2c, 0x07",
            [0xf3, 0x48, 0x0f, 0x2c, 0x07],
            F32 | GPR,
            "sse2"
        ),
        form!(
            cvtsd2si_r32,
            "0xf2, 0x0f, 0x2d, 0xc1",
            [0xf2, 0x0f, 0x2d, 0xc1],
            F64 | GPR,
            "sse2"
        ),
        form!(
            cvtsd2si_r64,
            "0xf2, 0x48, 0x0f, 0x2d, 0xc1",
            [0xf2, 0x48, 0x0f, 0x2d, 0xc1],
            F64 | GPR,
            "sse2"
        ),
        form!(
            cvtsd2si_r32m,
            "0xf2, 0x0f, 0x2d, 0x07",
            [0xf2, 0x0f, 0x2d, 0x07],
            F64 | GPR,
            "sse2"
        ),
        form!(
            cvtsd2si_r64m,
            "0xf2, 0x48, 0x0f, 0x2d, 0x07",
            [0xf2, 0x48, 0x0f, 0x2d, 0x07],
            F64 | GPR,
            "sse2"
        ),
        form!(
            cvttsd2si_r32,
            "0xf2, 0x0f, 0x2c, 0xc1",
            [0xf2, 0x0f, 0x2c, 0xc1],
            F64 | GPR,
            "sse2"
        ),
        form!(
            cvttsd2si_r64,
            "0xf2, 0x48, 0x0f, 0x2c, 0xc1",
            [0xf2, 0x48, 0x0f, 0x2c, 0xc1],
            F64 | GPR,
            "sse2"
        ),
        form!(
            cvttsd2si_r32m,
            "0xf2, 0x0f, 0x2c, 0x07",
            [0xf2, 0x0f, 0x2c, 0x07],
            F64 | GPR,
            "sse2"
        ),
        form!(
            cvttsd2si_r64m,
            "0xf2, 0x48, 0x0f, 0x2c, 0x07",
            [0xf2, 0x48, 0x0f, 0x2c, 0x07],
            F64 | GPR,
            "sse2"
        ),
        form!(cvtpi2ps, "0x0f, 0x2a, 0xc1", [0x0f, 0x2a, 0xc1], I32 | MMX, "sse2"),
        form!(cvtpi2ps_m, "0x0f, 0x2a, 0x07", [0x0f, 0x2a, 0x07], I32, "sse2"),
        form!(
            cvtpi2pd,
            "0x66, 0x0f, 0x2a, 0xc1",
            [0x66, 0x0f, 0x2a, 0xc1],
            I32 | MMX,
            "sse2"
        ),
        form!(
            cvtpi2pd_m,
            "0x66, 0x0f, 0x2a, 0x07",
            [0x66, 0x0f, 0x2a, 0x07],
            I32,
            "sse2"
        ),
        form!(cvtps2pi, "0x0f, 0x2d, 0xc1", [0x0f, 0x2d, 0xc1], F32 | MMX, "sse2"),
        form!(cvtps2pi_m, "0x0f, 0x2d, 0x07", [0x0f, 0x2d, 0x07], F32 | MMX, "sse2"),
        form!(cvttps2pi, "0x0f, 0x2c, 0xc1", [0x0f, 0x2c, 0xc1], F32 | MMX, "sse2"),
        form!(cvttps2pi_m, "0x0f, 0x2c, 0x07", [0x0f, 0x2c, 0x07], F32 | MMX, "sse2"),
        form!(
            cvtpd2pi,
            "0x66, 0x0f, 0x2d, 0xc1",
            [0x66, 0x0f, 0x2d, 0xc1],
            F64 | MMX,
            "sse2"
        ),
        form!(
            cvtpd2pi_m,
            "0x66, 0x0f, 0x2d, 0x07",
            [0x66, 0x0f, 0x2d, 0x07],
            F64 | MMX,
            "sse2"
        ),
        form!(
            cvttpd2pi,
            "0x66, 0x0f, 0x2c, 0xc1",
            [0x66, 0x0f, 0x2c, 0xc1],
            F64 | MMX,
            "sse2"
        ),
        form!(
            cvttpd2pi_m,
            "0x66, 0x0f, 0x2c, 0x07",
            [0x66, 0x0f, 0x2c, 0x07],
            F64 | MMX,
            "sse2"
        ),
        form!(
            addsubps,
            "0xf2, 0x0f, 0xd0, 0xc1",
            [0xf2, 0x0f, 0xd0, 0xc1],
            F32,
            "sse3"
        ),
        form!(
            addsubps_m,
            "0xf2, 0x0f, 0xd0, 0x07",
            [0xf2, 0x0f, 0xd0, 0x07],
            F32,
            "sse3"
        ),
        form!(
            addsubpd,
            "0x66, 0x0f, 0xd0, 0xc1",
            [0x66, 0x0f, 0xd0, 0xc1],
            F64,
            "sse3"
        ),
        form!(
            addsubpd_m,
            "0x66, 0x0f, 0xd0, 0x07",
            [0x66, 0x0f, 0xd0, 0x07],
            F64,
            "sse3"
        ),
        form!(haddps, "0xf2, 0x0f, 0x7c, 0xc1", [0xf2, 0x0f, 0x7c, 0xc1], F32, "sse3"),
        form!(
            haddps_m,
            "0xf2, 0x0f, 0x7c, 0x07",
            [0xf2, 0x0f, 0x7c, 0x07],
            F32,
            "sse3"
        ),
        form!(haddpd, "0x66, 0x0f, 0x7c, 0xc1", [0x66, 0x0f, 0x7c, 0xc1], F64, "sse3"),
        form!(
            haddpd_m,
            "0x66, 0x0f, 0x7c, 0x07",
            [0x66, 0x0f, 0x7c, 0x07],
            F64,
            "sse3"
        ),
        form!(hsubps, "0xf2, 0x0f, 0x7d, 0xc1", [0xf2, 0x0f, 0x7d, 0xc1], F32, "sse3"),
        form!(
            hsubps_m,
            "0xf2, 0x0f, 0x7d, 0x07",
            [0xf2, 0x0f, 0x7d, 0x07],
            F32,
            "sse3"
        ),
        form!(hsubpd, "0x66, 0x0f, 0x7d, 0xc1", [0x66, 0x0f, 0x7d, 0xc1], F64, "sse3"),
        form!(
            hsubpd_m,
            "0x66, 0x0f, 0x7d, 0x07",
            [0x66, 0x0f, 0x7d, 0x07],
            F64,
            "sse3"
        ),
        form!(movddup, "0xf2, 0x0f, 0x12, 0xc1", [0xf2, 0x0f, 0x12, 0xc1], F64, "sse3"),
        form!(
            movddup_m,
            "0xf2, 0x0f, 0x12, 0x07",
            [0xf2, 0x0f, 0x12, 0x07],
            F64,
            "sse3"
        ),
        form!(
            movshdup,
            "0xf3, 0x0f, 0x16, 0xc1",
            [0xf3, 0x0f, 0x16, 0xc1],
            F32,
            "sse3"
        ),
        form!(
            movshdup_m,
            "0xf3, 0x0f, 0x16, 0x07",
            [0xf3, 0x0f, 0x16, 0x07],
            F32,
            "sse3"
        ),
        form!(
            movsldup,
            "0xf3, 0x0f, 0x12, 0xc1",
            [0xf3, 0x0f, 0x12, 0xc1],
            F32,
            "sse3"
        ),
        form!(
            movsldup_m,
            "0xf3, 0x0f, 0x12, 0x07",
            [0xf3, 0x0f, 0x12, 0x07],
            F32,
            "sse3"
        ),
        form!(lddqu_m, "0xf2, 0x0f, 0xf0, 0x07", [0xf2, 0x0f, 0xf0, 0x07], F32, "sse3"),
        form!(
            roundps_0,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x00",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x00],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_1,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x01",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x01],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_2,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x02",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x02],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_3,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x03",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x03],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_4,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x04",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x04],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_8,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x08",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x08],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_9,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x09",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x09],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_a,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x0a",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x0a],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_b,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x0b",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x0b],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_c,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x0c",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0x0c],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_f4,
            "0x66, 0x0f, 0x3a, 0x08, 0xc1, 0xf4",
            [0x66, 0x0f, 0x3a, 0x08, 0xc1, 0xf4],
            F32,
            "sse4.1"
        ),
        form!(
            roundps_m,
            "0x66, 0x0f, 0x3a, 0x08, 0x07, 0x04",
            [0x66, 0x0f, 0x3a, 0x08, 0x07, 0x04],
            F32,
            "sse4.1"
        ),
        form!(
            roundpd_0,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x00",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x00],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_1,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x01",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x01],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_2,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x02",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x02],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_3,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x03",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x03],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_4,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x04",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x04],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_8,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x08",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x08],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_9,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x09",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x09],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_a,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x0a",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x0a],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_b,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x0b",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x0b],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_c,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x0c",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0x0c],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_f4,
            "0x66, 0x0f, 0x3a, 0x09, 0xc1, 0xf4",
            [0x66, 0x0f, 0x3a, 0x09, 0xc1, 0xf4],
            F64,
            "sse4.1"
        ),
        form!(
            roundpd_m,
            "0x66, 0x0f, 0x3a, 0x09, 0x07, 0x04",
            [0x66, 0x0f, 0x3a, 0x09, 0x07, 0x04],
            F64,
            "sse4.1"
        ),
        form!(
            roundss_0,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x00",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x00],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_1,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x01",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x01],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_2,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x02",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x02],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_3,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x03",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x03],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_4,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x04",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x04],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_8,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x08",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x08],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_9,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x09",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x09],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_a,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x0a",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x0a],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_b,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x0b",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x0b],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_c,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x0c",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0x0c],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_f4,
            "0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0xf4",
            [0x66, 0x0f, 0x3a, 0x0a, 0xc1, 0xf4],
            F32,
            "sse4.1"
        ),
        form!(
            roundss_m,
            "0x66, 0x0f, 0x3a, 0x0a, 0x07, 0x04",
            [0x66, 0x0f, 0x3a, 0x0a, 0x07, 0x04],
            F32,
            "sse4.1"
        ),
        form!(
            roundsd_0,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x00",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x00],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_1,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x01",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x01],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_2,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x02",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x02],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_3,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x03",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x03],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_4,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x04",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x04],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_8,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x08",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x08],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_9,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x09",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x09],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_a,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x0a",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x0a],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_b,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x0b",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x0b],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_c,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x0c",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x0c],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_f4,
            "0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0xf4",
            [0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0xf4],
            F64,
            "sse4.1"
        ),
        form!(
            roundsd_m,
            "0x66, 0x0f, 0x3a, 0x0b, 0x07, 0x04",
            [0x66, 0x0f, 0x3a, 0x0b, 0x07, 0x04],
            F64,
            "sse4.1"
        ),
        form!(
            dpps_ff,
            "0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xff",
            [0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xff],
            F32,
            "sse4.1"
        ),
        form!(
            dpps_31,
            "0x66, 0x0f, 0x3a, 0x40, 0xc1, 0x31",
            [0x66, 0x0f, 0x3a, 0x40, 0xc1, 0x31],
            F32,
            "sse4.1"
        ),
        form!(
            dpps_f1,
            "0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xf1",
            [0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xf1],
            F32,
            "sse4.1"
        ),
        form!(
            dpps_7d,
            "0x66, 0x0f, 0x3a, 0x40, 0xc1, 0x7d",
            [0x66, 0x0f, 0x3a, 0x40, 0xc1, 0x7d],
            F32,
            "sse4.1"
        ),
        form!(
            dpps_a5,
            "0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xa5",
            [0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xa5],
            F32,
            "sse4.1"
        ),
        form!(
            dpps_f,
            "0x66, 0x0f, 0x3a, 0x40, 0xc1, 0x0f",
            [0x66, 0x0f, 0x3a, 0x40, 0xc1, 0x0f],
            F32,
            "sse4.1"
        ),
        form!(
            dpps_f0,
            "0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xf0",
            [0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xf0],
            F32,
            "sse4.1"
        ),
        form!(
            dppd_31,
            "0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x31",
            [0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x31],
            F64,
            "sse4.1"
        ),
        form!(
            dppd_33,
            "0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x33",
            [0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x33],
            F64,
            "sse4.1"
        ),
        form!(
            dppd_11,
            "0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x11",
            [0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x11],
            F64,
            "sse4.1"
        ),
        form!(
            dppd_22,
            "0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x22",
            [0x66, 0x0f, 0x3a, 0x41, 0xc1, 0x22],
            F64,
            "sse4.1"
        ),
        form!(
            dppd_f3,
            "0x66, 0x0f, 0x3a, 0x41, 0xc1, 0xf3",
            [0x66, 0x0f, 0x3a, 0x41, 0xc1, 0xf3],
            F64,
            "sse4.1"
        ),
        form!(
            dpps_m,
            "0x66, 0x0f, 0x3a, 0x40, 0x07, 0xff",
            [0x66, 0x0f, 0x3a, 0x40, 0x07, 0xff],
            F32,
            "sse4.1"
        ),
    ]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const E32: &[u32] = &[
    0,
    0x3f80_0000,
    0x3fc0_0000,
    0x4020_0000,
    0x3f00_0000,
    0x7f80_0000,
    0x7fc0_0000,
    0x7fc1_2345,
    0x7f80_0001,
    0x7fa0_0000,
    0x0000_0001,
    0x007f_ffff,
    0x0080_0000,
    0x7f7f_ffff,
    0x4f00_0000,
    0x4eff_ffff,
    0x5f00_0000,
    0x5eff_ffff,
    0x3f7f_ffff,
    0x0040_0000,
    0x0080_0001,
    0x3400_0000,
    0x4b80_0000,
];
const E64: &[u64] = &[
    0,
    0x3ff0_0000_0000_0000,
    0x3ff8_0000_0000_0000,
    0x4004_0000_0000_0000,
    0x7ff0_0000_0000_0000,
    0x7ff8_0000_0000_0000,
    0x7ff8_0000_1234_5678,
    0x7ff0_0000_0000_0001,
    0x7ff4_0000_0000_0000,
    0x0000_0000_0000_0001,
    0x000f_ffff_ffff_ffff,
    0x0010_0000_0000_0000,
    0x7fef_ffff_ffff_ffff,
    0x41e0_0000_0000_0000,
    0x41df_ffff_ffc0_0000,
    0x41e0_0000_0020_0000,
    0x43e0_0000_0000_0000,
    0x43df_ffff_ffff_ffff,
    0x3810_0000_0000_0000,
    0x380f_ffff_ffff_ffff,
    0x47ef_ffff_f000_0000,
    0x47ef_ffff_e000_0000,
    0x36a0_0000_0000_0000,
];

fn r32(r: &mut Rng) -> u32 {
    let sign = (r.below(2) as u32) << 31;
    match r.below(5) {
        0 | 1 => sign | E32[r.below(E32.len() as u64) as usize],
        2 => r.next() as u32,
        3 => sign | ((120 + r.below(20) as u32) << 23) | (r.next() as u32 & 0x7f_ffff),
        _ => sign | ((r.below(6) as u32) << 23) | (r.next() as u32 & 0x7f_ffff),
    }
}

fn r64(r: &mut Rng) -> u64 {
    let sign = r.below(2) << 63;
    match r.below(5) {
        0 | 1 => sign | E64[r.below(E64.len() as u64) as usize],
        2 => r.next(),
        3 => sign | ((1016 + r.below(20)) << 52) | (r.next() & ((1 << 52) - 1)),
        _ => sign | ((r.below(6) + if r.below(2) == 0 { 0 } else { 0x380 - 3 }) << 52) | (r.next() & ((1 << 52) - 1)),
    }
}

fn ri32(r: &mut Rng) -> u32 {
    match r.below(4) {
        0 => [0, 1, u32::MAX, 0x7fff_ffff, 0x8000_0000, 0x0100_0001, 0xfeff_ffff][r.below(7) as usize],
        1 => (r.next() as u32) >> r.below(32),
        _ => r.next() as u32,
    }
}

fn ri64(r: &mut Rng) -> u64 {
    match r.below(4) {
        0 => [
            0,
            1,
            u64::MAX,
            i64::MAX as u64,
            1 << 63,
            (1 << 53) + 1,
            0x20_0000_0000_0001,
        ][r.below(7) as usize],
        1 => r.next() >> r.below(64),
        _ => r.next(),
    }
}

fn lanes(kind: u32, r: &mut Rng) -> u128 {
    let mut v = 0u128;
    for i in 0..4 {
        let x = if kind & F64 != 0 {
            if i % 2 == 1 {
                continue;
            }
            r64(r) as u128
        } else if kind & I64 != 0 {
            if i % 2 == 1 {
                continue;
            }
            ri64(r) as u128
        } else if kind & I32 != 0 {
            ri32(r) as u128
        } else {
            r32(r) as u128
        };
        v |= x << (32 * i);
    }
    v
}

fn random_state(kind: u32, r: &mut Rng) -> St {
    let x1 = lanes(kind, r);
    St {
        x0: lanes(kind, r),
        x1,
        mem: x1,
        rax: if kind & (I32 | I64) != 0 { x1 as u64 } else { r.next() },
        mm0: r.next(),
        mm1: x1 as u64,
        csr: 0x1f80
            | (r.below(4) as u32) << 13
            | (r.below(2) as u32) << 6
            | (r.below(2) as u32) << 15
            | if r.below(4) == 0 { r.below(64) as u32 } else { 0 },
        save: 0,
        flags: 0,
    }
}

/// Runs the form on rqemu from `s` (reusing `m`), returning the same fields the host reports and the outcome.
fn run_rqemu(m: &mut Machine, s: &St) -> (St, Outcome) {
    m.cpu.rip = CODE;
    m.cpu.xmm[0] = s.x0;
    m.cpu.xmm[1] = s.x1;
    m.cpu.regs[0] = s.rax;
    m.cpu.regs[7] = DATA;
    m.cpu.mxcsr = s.csr;
    m.cpu.fpu.ftw = 0;
    m.cpu.fpu.fsw = 0x2800;
    m.cpu.fpu.regs[0][..8].copy_from_slice(&s.mm0.to_le_bytes());
    m.cpu.fpu.regs[1][..8].copy_from_slice(&s.mm1.to_le_bytes());
    m.write_u64(DATA, s.mem as u64);
    m.write_u64(DATA + 8, (s.mem >> 64) as u64);
    m.cpu.set_rflags(0x202);
    let out = m.run();
    let got = St {
        x0: m.cpu.xmm[0],
        x1: m.cpu.xmm[1],
        mem: s.mem,
        rax: m.cpu.regs[0],
        mm0: u64::from_le_bytes(m.cpu.fpu.regs[0][..8].try_into().unwrap()),
        mm1: s.mm1,
        csr: m.cpu.mxcsr,
        save: 0,
        flags: m.cpu.rflags(),
    };
    (got, out)
}

fn supported(feature: &str) -> bool {
    match feature {
        "sse3" => is_x86_feature_detected!("sse3"),
        "sse4.1" => is_x86_feature_detected!("sse4.1"),
        _ => true,
    }
}

/// Whether rcp/rsqrt must match bit for bit: rqemu's tables are this AMD host's; other hosts (Intel) give
/// other approximations, compared within the error bound.
fn exact_rcp() -> bool {
    let mut vendor = [0u8; 12];
    let r = core::arch::x86_64::__cpuid(0);
    vendor[..4].copy_from_slice(&r.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&r.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&r.ecx.to_le_bytes());
    &vendor == b"AuthenticAMD"
}

/// Whether `a` (rqemu) is within the rcp/rsqrt error bound of `b` (host), lane by lane.
fn approx_eq(a: u128, b: u128) -> bool {
    (0..4).all(|i| {
        let (x, y) = ((a >> (32 * i)) as u32, (b >> (32 * i)) as u32);
        if x == y {
            return true;
        }
        let finite = |v: u32| v & 0x7f80_0000 != 0x7f80_0000 && v & 0x7f80_0000 != 0;
        if !finite(x) || !finite(y) || (x ^ y) >> 31 != 0 {
            return false;
        }
        let (fx, fy) = (f32::from_bits(x) as f64, f32::from_bits(y) as f64);
        ((fx - fy) / fy).abs() <= 3.0 / 4096.0
    })
}

/// Serializes the tests that run host code: the SIGFPE handler's statics are process-wide.
static HOST: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn every_form_matches_the_host() {
    let _host = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = Vec::new();
    let mut approx_exact = (0u32, 0u32);
    for form in forms() {
        if !supported(form.feature) {
            continue;
        }
        let mut m = Machine::new(form.bytes);
        for case in 0..400 {
            let s = random_state(form.kind, &mut r);
            let mut host = s;
            (form.host)(&mut host);
            let (got, out) = run_rqemu(&mut m, &s);
            let mut ok = out == Outcome::End && got.csr == host.csr && got.rax == host.rax && got.mm0 == host.mm0;
            if form.kind & APPROX != 0 {
                approx_exact.0 += u32::from(got.x0 == host.x0);
                approx_exact.1 += 1;
                ok &= if exact_rcp() {
                    got.x0 == host.x0
                } else {
                    approx_eq(got.x0, host.x0)
                };
            } else {
                ok &= got.x0 == host.x0;
            }
            if form.kind & FLAGS != 0 {
                ok &= got.flags & 0x8d5 == host.flags & 0x8d5;
            }
            if form.kind & MMX != 0 {
                ok &= m.cpu.fpu.ftw == 0xff && m.cpu.fpu.fsw & 0x3800 == 0;
                if form.name.starts_with("cvtp") && form.name.contains("2pi") {
                    ok &= m.cpu.fpu.regs[0][8..10] == [0xff, 0xff];
                }
            } else if form.kind & (FLAGS | GPR) == 0 {
                ok &= m.cpu.fpu.ftw == 0;
            }
            if !ok && failures.len() < 40 {
                failures.push(format!(
                    "{} case {case}: {out:?}\n  in   {s:x?}\n  host {host:x?}\n  rq   {got:x?}",
                    form.name
                ));
            }
        }
    }
    eprintln!(
        "rcp/rsqrt bit-identical to the host in {}/{} cases",
        approx_exact.0, approx_exact.1
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// SIGFPE plumbing for the unmasked-exception comparison: the handler records MXCSR as the #XM left it, then
/// masks everything in the interrupted context and resumes after the faulting instruction (its address and
/// length are known: the `.byte` block follows `ldmxcsr [rsi + 72]`, which is 4 bytes). Linux only: the
/// `ucontext_t` layout is Linux's.
#[cfg(target_os = "linux")]
mod sigfpe {
    use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

    pub static FAULTED: AtomicBool = AtomicBool::new(false);
    pub static MXCSR: AtomicU32 = AtomicU32::new(0);
    /// The abridged x87 tag word at the fault.
    pub static FTW: AtomicU32 = AtomicU32::new(0);
    pub static LEN: AtomicU64 = AtomicU64::new(0);

    /// glibc's x86-64 `struct sigaction`.
    #[repr(C)]
    struct SigAction {
        handler: usize,
        mask: [u64; 16],
        flags: i32,
        restorer: usize,
    }

    extern "C" {
        fn sigaction(sig: i32, act: *const SigAction, old: *mut SigAction) -> i32;
    }

    const SIGFPE: i32 = 8;
    const SA_SIGINFO: i32 = 4;
    /// Offsets in the x86-64 Linux `ucontext_t`: `uc_mcontext.gregs[REG_RIP]` and `uc_mcontext.fpregs`.
    const RIP_OFFSET: usize = 40 + 16 * 8;
    const FPREGS_OFFSET: usize = 40 + 23 * 8;
    /// MXCSR in the fxsave-format `_libc_fpstate`.
    const FP_MXCSR_OFFSET: usize = 24;
    /// The abridged tag word in the same area.
    const FP_FTW_OFFSET: usize = 4;

    extern "C" fn handler(_sig: i32, _info: *mut u8, uc: *mut u8) {
        // SAFETY: the kernel passes a valid ucontext_t whose fpregs points at the saved fxsave area.
        unsafe {
            let fp = *(uc.add(FPREGS_OFFSET) as *const *mut u8);
            let csr = fp.add(FP_MXCSR_OFFSET) as *mut u32;
            MXCSR.store(*csr, Ordering::SeqCst);
            FTW.store(u32::from(*fp.add(FP_FTW_OFFSET)), Ordering::SeqCst);
            *csr = 0x1f80;
            let rip = uc.add(RIP_OFFSET) as *mut u64;
            *rip += LEN.load(Ordering::SeqCst);
        }
        FAULTED.store(true, Ordering::SeqCst);
    }

    pub fn install() {
        let act = SigAction {
            handler: handler as *const () as usize,
            mask: [0; 16],
            flags: SA_SIGINFO,
            restorer: 0,
        };
        // SAFETY: a valid sigaction for SIGFPE; the handler only touches the interrupted context.
        let rc = unsafe { sigaction(SIGFPE, &act, core::ptr::null_mut()) };
        assert_eq!(rc, 0);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn unmasked_exceptions_match_the_host() {
    use core::sync::atomic::Ordering;
    let _host = HOST.lock().unwrap_or_else(|e| e.into_inner());
    sigfpe::install();
    let mut r = Rng(0x1234_5678_9abc_def1);
    let mut failures = Vec::new();
    let mut faults = 0;
    for form in forms() {
        if !supported(form.feature) || form.name.starts_with("lddqu") || form.name.starts_with("mov") {
            continue;
        }
        let mut m = Machine::new(form.bytes);
        m.cpu.cr[4] |= 1 << 10; // OSXMMEXCPT, as the host OS sets it
        sigfpe::LEN.store(form.bytes.len() as u64, Ordering::SeqCst);
        for case in 0..150 {
            let mut s = random_state(form.kind, &mut r);
            // Clear each mask bit with probability 1/2.
            s.csr &= !((r.next() as u32 & 0x3f) << 7);
            let mut host = s;
            sigfpe::FAULTED.store(false, Ordering::SeqCst);
            (form.host)(&mut host);
            let host_fault = sigfpe::FAULTED.load(Ordering::SeqCst);
            let (got, out) = run_rqemu(&mut m, &s);
            let ok = if host_fault {
                faults += 1;
                let host_csr = sigfpe::MXCSR.load(Ordering::SeqCst);
                out == (Outcome::Fault { rip: CODE, vector: 19 })
                    && got.csr == host_csr
                    && u32::from(m.cpu.fpu.ftw) == sigfpe::FTW.load(Ordering::SeqCst)
                    && got.x0 == s.x0
                    && got.rax == s.rax
                    && got.mm0 == s.mm0
            } else {
                let x_ok = if form.kind & APPROX != 0 && !exact_rcp() {
                    approx_eq(got.x0, host.x0)
                } else {
                    got.x0 == host.x0
                };
                out == Outcome::End && x_ok && got.csr == host.csr && got.rax == host.rax && got.mm0 == host.mm0
            };
            if !ok && failures.len() < 40 {
                let hc = sigfpe::MXCSR.load(Ordering::SeqCst);
                failures.push(format!(
                    "{} case {case}: host fault {host_fault} (mxcsr {hc:#x}), rqemu {out:?}\n  in   {s:x?}\n  \
                     host {host:x?}\n  rq   {got:x?}",
                    form.name
                ));
            }
        }
    }
    eprintln!("{faults} host #XM faults compared");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn xm_or_ud_by_cr4_and_alignment() {
    // addps xmm0, xmm1 with IE unmasked and an SNaN: #XM with OSXMMEXCPT, #UD without; xmm0 unchanged,
    // MXCSR.IE set.
    let snan = 0x7f80_0001u128;
    for (cr4, vector) in [(1u64 << 10, 19), (0, 6)] {
        let mut m = Machine::new(&[0x0f, 0x58, 0xc1]);
        m.cpu.cr[4] = (m.cpu.cr[4] & !(1 << 10)) | cr4;
        m.cpu.mxcsr = 0x1f00;
        m.cpu.xmm[0] = 0x1111_2222_3333_4444_5555_6666_7777_8888;
        m.cpu.xmm[1] = snan;
        assert_eq!(m.run(), Outcome::Fault { rip: CODE, vector });
        assert_eq!(m.cpu.xmm[0], 0x1111_2222_3333_4444_5555_6666_7777_8888);
        assert_eq!(m.cpu.mxcsr, 0x1f01);
    }
    // cvtss2si eax, xmm1 with an unmasked invalid: eax unchanged.
    let mut m = Machine::new(&[0xf3, 0x0f, 0x2d, 0xc1]);
    m.cpu.cr[4] |= 1 << 10;
    m.cpu.mxcsr = 0x1f00;
    m.cpu.regs[0] = 0x1234;
    m.cpu.xmm[1] = 0x7f80_0000;
    assert_eq!(m.run(), Outcome::Fault { rip: CODE, vector: 19 });
    assert_eq!(m.cpu.regs[0], 0x1234);
    // Misaligned 16-byte operands of legacy packed forms: #GP(0); scalar forms and lddqu are unaligned.
    for (code, fault) in [
        (&[0x0f, 0x58, 0x47, 0x08][..], true),               // addps xmm0, [rdi+8]
        (&[0x66, 0x0f, 0x5a, 0x47, 0x08], true),             // cvtpd2ps xmm0, [rdi+8]
        (&[0x66, 0x0f, 0x3a, 0x08, 0x47, 0x04, 0x04], true), // roundps xmm0, [rdi+4], 4
        (&[0xf3, 0x0f, 0x58, 0x47, 0x04], false),            // addss xmm0, [rdi+4]
        (&[0x0f, 0x5a, 0x47, 0x04], false),                  // cvtps2pd xmm0, [rdi+4] (m64)
        (&[0xf2, 0x0f, 0xf0, 0x47, 0x01], false),            // lddqu xmm0, [rdi+1]
    ] {
        let mut m = Machine::new(code);
        m.cpu.regs[7] = DATA;
        let out = m.run();
        if fault {
            assert_eq!(out, Outcome::Fault { rip: CODE, vector: 13 }, "{code:02x?}");
        } else {
            assert_eq!(out, Outcome::End, "{code:02x?}");
        }
    }
}

#[test]
fn results_flow_to_later_instructions_of_the_tb() {
    let code = [
        0x0f, 0x58, 0xc1, // addps xmm0, xmm1
        0x0f, 0x28, 0xd0, // movaps xmm2, xmm0
        0x0f, 0x2f, 0xc1, // comiss xmm0, xmm1
        0x0f, 0x92, 0xc3, // setb bl
        0x0f, 0x94, 0xc1, // sete cl
        0xf3, 0x0f, 0x2c, 0xc2, // cvttss2si eax, xmm2
        0x83, 0xc0, 0x01, // add eax, 1
    ];
    let m = harness::run_with(&code, |m| {
        m.cpu.xmm[0] = 0xbf80_0000; // -1.0
        m.cpu.xmm[1] = 0x3f00_0000; // 0.5
        m.cpu.regs[3] = 0xff;
        m.cpu.regs[1] = 0xff;
    });
    assert_eq!(m.cpu.xmm[2], 0xbf00_0000); // -0.5
    assert_eq!((m.cpu.regs[3], m.cpu.regs[1], m.cpu.regs[0]), (1, 0, 1));
    assert_eq!(m.cpu.mxcsr, 0x1fa0, "cvttss2si of -0.5 is inexact");
}
