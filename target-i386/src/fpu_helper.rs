//! The x87 FPU's instruction bodies, run by the `x87` helper (`translate/x87.rs` generates the calls).
//!
//! Registers are kept in physical order in [`FpuState::regs`]: ST(i) is `regs[(TOP + i) & 7]`, so MMX
//! register i is physical register i. The tag word is the abridged one (bit per physical register, 1 = in
//! use); the full two-bit tags of fnstenv/fnsave are derived from the register contents.
//!
//! Memory operands never reach this module: the translator loads them into [`X86CpuState::fp_scratch`]
//! before the call and stores results from it afterwards (see `translate/x87.rs`), so a page fault happens
//! before any x87 state changes.
//!
//! Exceptions follow the SDM's x87 rules, checked bit for bit against the host CPU by `tests/x87.rs`:
//! invalid, denormal and divide-by-zero are pre-computation exceptions (unmasked: the destination and the
//! stack are unchanged), overflow, underflow and precision are post-computation (the result is stored; an
//! unmasked overflow/underflow stores the result with its exponent wrapped by 24576). Any unmasked exception
//! sets ES and B; the next waiting x87 instruction raises #MF (vector 16) — also when CR0.NE is clear, where
//! hardware would signal FERR# to an external interrupt controller (IRQ 13) instead: rqemu does not model
//! that legacy path.

use rqemu_fpu::{
    f32_to_f80, f64_to_f80, f80_add, f80_compare, f80_div, f80_is_denormal, f80_is_invalid_encoding, f80_is_nan,
    f80_mul, f80_round_to_int, f80_scalbn, f80_sqrt, f80_sub, f80_to_f32, f80_to_f64, f80_to_i16, f80_to_i32,
    f80_to_i64, i64_to_f80, FloatStatus, Relation, RoundingMode, F80,
};

use crate::cpu::{excp, X86CpuState};
use crate::fpu_trans::{self, Big};

/// Helper operation numbers (first argument of the `x87` helper).
pub mod op {
    /// #NM / #MF checks. a: 0 waiting x87 instruction, 1 wait/fwait, 2 non-waiting instruction.
    pub const CHECK: u32 = 0;
    /// Push. a: memory kind (see [`super::kind`]) or `kind::ST` with b = i.
    pub const LD: u32 = 1;
    /// Store ST(0). a: kind; b: ST index for `kind::ST`; c: bit 0 pop, bit 1 truncate (fisttp).
    pub const ST: u32 = 2;
    /// Push a constant. a: 0 fld1, 1 fldl2t, 2 fldl2e, 3 fldpi, 4 fldlg2, 5 fldln2, 6 fldz.
    pub const CONST: u32 = 3;
    /// Arithmetic. a: operation ([`super::arith`]) | 0x100 pop; b: destination ST index; c: source ST index, or
    /// 8 + memory kind.
    pub const ARITH: u32 = 4;
    /// Compare ST(0). a: source ST index or 8 + memory kind; b: bit 0 unordered (fucom), bits 1..2 pops,
    /// bit 3 set EFLAGS (fcomi), bit 4 compare with +0 (ftst).
    pub const COM: u32 = 5;
    /// One-operand and stack operations. a: [`super::misc`] number; b: ST index; c: fcmov condition.
    pub const MISC: u32 = 6;
    /// Environment. a: 0 fnstenv, 1 fldenv, 2 fnsave, 3 frstor; b: bit 0 32-bit operand size, bit 1
    /// protected-mode layout.
    pub const ENV: u32 = 7;
    /// fxsave/fxrstor support. a: 0 fill the fxsave image (b: REX.W), 1 rotate registers after fxrstor.
    pub const FX: u32 = 8;
}

/// Memory operand kinds (as found in the scratch area).
pub mod kind {
    /// 32-bit float.
    pub const F32: u32 = 0;
    /// 64-bit float.
    pub const F64: u32 = 1;
    /// 80-bit extended.
    pub const F80: u32 = 2;
    /// 16-bit integer.
    pub const I16: u32 = 3;
    /// 32-bit integer.
    pub const I32: u32 = 4;
    /// 64-bit integer.
    pub const I64: u32 = 5;
    /// 18-digit packed BCD.
    pub const BCD: u32 = 6;
    /// A stack register, not memory.
    pub const ST: u32 = 7;

    /// Size in bytes of a memory operand of kind `k`.
    pub fn size(k: u32) -> usize {
        [4, 8, 10, 2, 4, 8, 10, 0][k as usize & 7]
    }
}

/// Arithmetic operations of [`op::ARITH`]: destination = destination OP source (r: reversed).
pub mod arith {
    /// add
    pub const ADD: u32 = 0;
    /// mul
    pub const MUL: u32 = 1;
    /// sub
    pub const SUB: u32 = 2;
    /// subr
    pub const SUBR: u32 = 3;
    /// div
    pub const DIV: u32 = 4;
    /// divr
    pub const DIVR: u32 = 5;
}

/// Operations of [`op::MISC`].
pub mod misc {
    /// fchs
    pub const FCHS: u32 = 0;
    /// fabs
    pub const FABS: u32 = 1;
    /// fsqrt
    pub const FSQRT: u32 = 2;
    /// frndint
    pub const FRNDINT: u32 = 3;
    /// fxam
    pub const FXAM: u32 = 4;
    /// fscale
    pub const FSCALE: u32 = 5;
    /// fxtract
    pub const FXTRACT: u32 = 6;
    /// fprem
    pub const FPREM: u32 = 7;
    /// fprem1
    pub const FPREM1: u32 = 8;
    /// fincstp
    pub const FINCSTP: u32 = 9;
    /// fdecstp
    pub const FDECSTP: u32 = 10;
    /// fnop (only the bookkeeping of a non-control instruction)
    pub const FNOP: u32 = 11;
    /// fnclex
    pub const FNCLEX: u32 = 12;
    /// ffree ST(b)
    pub const FFREE: u32 = 13;
    /// ffreep ST(b)
    pub const FFREEP: u32 = 14;
    /// fxch ST(b)
    pub const FXCH: u32 = 15;
    /// fcmovcc ST(0), ST(b); c = condition (0 b, 1 e, 2 be, 3 u, 4 nb, 5 ne, 6 nbe, 7 nu)
    pub const FCMOV: u32 = 16;
    /// fninit
    pub const FNINIT: u32 = 17;
    /// After fldcw: ES and B follow the exception bits the new masks leave unmasked.
    pub const SYNC_ES: u32 = 18;
    /// fsin
    pub const FSIN: u32 = 19;
    /// fcos
    pub const FCOS: u32 = 20;
    /// fsincos
    pub const FSINCOS: u32 = 21;
    /// fptan
    pub const FPTAN: u32 = 22;
    /// fpatan
    pub const FPATAN: u32 = 23;
    /// f2xm1
    pub const F2XM1: u32 = 24;
    /// fyl2x
    pub const FYL2X: u32 = 25;
    /// fyl2xp1
    pub const FYL2XP1: u32 = 26;
}

// FSW bits.
const IE: u16 = 0x01;
const DE: u16 = 0x02;
const ZE: u16 = 0x04;
const OE: u16 = 0x08;
const UE: u16 = 0x10;
const PE: u16 = 0x20;
const SF: u16 = 0x40;
const ES: u16 = 0x80;
const C0: u16 = 0x100;
const C1: u16 = 0x200;
const C2: u16 = 0x400;
const C3: u16 = 0x4000;
const B: u16 = 0x8000;
const CC: u16 = C0 | C1 | C2 | C3;

/// Exponent adjustment of the results of unmasked overflow and underflow (SDM: 3 * 2^13).
const WRAP: i32 = 24576;

const ZERO: F80 = F80 { mant: 0, se: 0 };

/// The `x87` helper: `x87(op: i32, a: i32, b: i32, c: i32)`; reads and writes globals (EFLAGS for fcmov and
/// fcomi), may fault (#NM, #MF).
pub(crate) unsafe extern "C" fn helper_x87(env: *mut u8, op: u64, a: u64, b: u64, c: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
    exec(cpu, op as u32, a as u32, b as u32, c as u32);
    0
}

/// Runs one helper operation on `cpu` (the helper's body, callable from tests).
pub fn exec(cpu: &mut X86CpuState, op: u32, a: u32, b: u32, c: u32) {
    match op {
        op::CHECK => check(cpu, a),
        op::LD => load(cpu, a, b),
        op::ST => store(cpu, a, b, c),
        op::CONST => load_const(cpu, a),
        op::ARITH => arith_op(cpu, a, b, c),
        op::COM => compare(cpu, a, b),
        op::MISC => misc_op(cpu, a, b, c),
        op::ENV => env_op(cpu, a, b),
        op::FX => fx_op(cpu, a, b),
        _ => cpu.raise(excp::UD, 0),
    }
}

fn check(cpu: &mut X86CpuState, a: u32) {
    let cr0 = cpu.cr[0];
    let (mp, em, ts, ne) = (cr0 & 2 != 0, cr0 & 4 != 0, cr0 & 8 != 0, cr0 & 0x20 != 0);
    let nm = if a == 1 { ts && mp } else { em || ts };
    if nm {
        cpu.raise(excp::NM, 0);
        return;
    }
    // With CR0.NE clear hardware reports through FERR#/IRQ 13; rqemu raises #MF in both cases.
    let _ = ne;
    if a != 2 && cpu.fpu.fsw & ES != 0 {
        cpu.raise(16, 0);
    }
}

// ---- register file ----

fn top(cpu: &X86CpuState) -> usize {
    usize::from(cpu.fpu.fsw >> 11) & 7
}

fn set_top(cpu: &mut X86CpuState, t: usize) {
    cpu.fpu.fsw = (cpu.fpu.fsw & !0x3800) | ((t as u16 & 7) << 11);
}

fn phys(cpu: &X86CpuState, i: u32) -> usize {
    (top(cpu) + i as usize) & 7
}

fn read_phys(cpu: &X86CpuState, p: usize) -> F80 {
    let r = &cpu.fpu.regs[p];
    F80 {
        mant: u64::from_le_bytes(r[0..8].try_into().unwrap_or([0; 8])),
        se: u16::from_le_bytes([r[8], r[9]]),
    }
}

fn write_phys(cpu: &mut X86CpuState, p: usize, v: F80) {
    let r = &mut cpu.fpu.regs[p];
    r[0..8].copy_from_slice(&v.mant.to_le_bytes());
    r[8..10].copy_from_slice(&v.se.to_le_bytes());
    cpu.fpu.ftw |= 1 << p;
}

fn st(cpu: &X86CpuState, i: u32) -> F80 {
    read_phys(cpu, phys(cpu, i))
}

fn set_st(cpu: &mut X86CpuState, i: u32, v: F80) {
    let p = phys(cpu, i);
    write_phys(cpu, p, v);
}

fn empty(cpu: &X86CpuState, i: u32) -> bool {
    cpu.fpu.ftw & (1 << phys(cpu, i)) == 0
}

fn pop(cpu: &mut X86CpuState) {
    let p = phys(cpu, 0);
    cpu.fpu.ftw &= !(1 << p);
    set_top(cpu, p + 1);
}

fn push(cpu: &mut X86CpuState, v: F80) {
    let t = (top(cpu) + 7) & 7;
    set_top(cpu, t);
    write_phys(cpu, t, v);
}

// ---- exceptions ----

fn unmasked(cpu: &X86CpuState, f: u16) -> bool {
    f & !cpu.fpu.fcw & 0x3f != 0
}

/// ORs exception bits into FSW, with ES and B when one of them is unmasked.
fn raise(cpu: &mut X86CpuState, f: u16) {
    cpu.fpu.fsw |= f;
    // SF is unmasked with IE.
    if unmasked(cpu, f & 0x3f) {
        cpu.fpu.fsw |= ES | B;
    }
}

fn set_c1(cpu: &mut X86CpuState, on: bool) {
    cpu.fpu.fsw = (cpu.fpu.fsw & !C1) | if on { C1 } else { 0 };
}

/// Stack fault: IE | SF with C1 = `overflow`. Returns true when IE is unmasked (the caller changes nothing).
fn stack_fault(cpu: &mut X86CpuState, overflow: bool) -> bool {
    set_c1(cpu, overflow);
    raise(cpu, IE | SF);
    unmasked(cpu, IE)
}

fn status(cpu: &X86CpuState) -> FloatStatus {
    FloatStatus::from_fcw(cpu.fpu.fcw)
}

/// The result of an operation whose exceptions the caller reports with [`commit_flags`].
struct Outcome {
    value: F80,
    flags: u16,
    /// C1: the result was rounded away from zero.
    up: bool,
}

/// Runs `f` under the control word, adding the x87 layer's parts: the wrapped result of an unmasked
/// overflow/underflow (`f` receives the exponent adjustment to apply to its result by scaling) and C1.
fn compute(cpu: &X86CpuState, f: &dyn Fn(&mut FloatStatus, i32) -> F80) -> Outcome {
    let mut s = status(cpu);
    let mut value = f(&mut s, 0);
    let mut flags = u16::from(s.flags);
    if flags & (IE | ZE) != 0 {
        return Outcome {
            value,
            flags,
            up: false,
        };
    }
    let ue_unmasked = unmasked(cpu, UE);
    // Unmasked underflow is raised for tiny results even when exact.
    if ue_unmasked && flags & UE == 0 && f80_is_denormal(value) {
        flags |= UE;
    }
    let mut up = false;
    if flags & OE != 0 && unmasked(cpu, OE) {
        let mut s2 = status(cpu);
        value = f(&mut s2, -WRAP);
        up = rounded_up(cpu, f, -WRAP, value);
        flags = (flags & !PE) | (u16::from(s2.flags) & PE);
    } else if flags & UE != 0 && ue_unmasked {
        let mut s2 = status(cpu);
        value = f(&mut s2, WRAP);
        up = rounded_up(cpu, f, WRAP, value);
        flags = (flags & !PE) | (u16::from(s2.flags) & PE);
    } else if flags & PE != 0 {
        up = rounded_up(cpu, f, 0, value);
    }
    Outcome { value, flags, up }
}

/// Whether `value` was rounded away from zero: it differs from the result rounded toward zero.
fn rounded_up(cpu: &X86CpuState, f: &dyn Fn(&mut FloatStatus, i32) -> F80, scale: i32, value: F80) -> bool {
    let mut s = status(cpu);
    s.rounding = RoundingMode::TowardZero;
    f(&mut s, scale) != value
}

/// Reports an operation's exceptions. Returns false when a pre-computation exception (invalid, denormal,
/// zero divide) is unmasked: then nothing may be written.
fn commit_flags(cpu: &mut X86CpuState, o: &Outcome) -> bool {
    let pre = o.flags & (IE | DE | ZE);
    set_c1(cpu, false);
    if unmasked(cpu, pre) {
        raise(cpu, pre);
        return false;
    }
    set_c1(cpu, o.up);
    raise(cpu, o.flags);
    true
}

/// The effective unbiased exponent of a finite nonzero value's leading bit.
fn eff_exp(v: F80) -> i32 {
    i32::from(v.se & 0x7fff).max(1) - v.mant.leading_zeros() as i32
}

/// Scales a product (`div`: quotient) by 2^n through its operands, splitting `n` so that neither
/// operand leaves the normal exponent range.
fn split_scale(x: F80, y: F80, n: i32, div: bool) -> (F80, F80) {
    if n == 0 || x.mant == 0 || y.mant == 0 || x.se & 0x7fff == 0x7fff || y.se & 0x7fff == 0x7fff {
        return (x, y);
    }
    let ex = eff_exp(x);
    let kx = n.clamp(1 - ex, 32766 - ex);
    let rest = n - kx;
    (scale(x, kx), scale(y, if div { -rest } else { rest }))
}

/// `v * 2^n` for a negative `n`, where a result below the normal range becomes the smallest denormal of
/// the same sign: such an operand of a sum only acts as a sticky bit.
fn scale_sticky(v: F80, n: i32) -> F80 {
    let e = v.se & 0x7fff;
    if e == 0x7fff || v.mant == 0 {
        return v;
    }
    if eff_exp(v) + n < 1 {
        return F80 {
            mant: 1,
            se: v.se & 0x8000,
        };
    }
    scale(v, n)
}

fn scale(v: F80, n: i32) -> F80 {
    if n == 0 {
        return v;
    }
    let mut s = FloatStatus::default();
    f80_scalbn(v, n, &mut s)
}

// ---- loads and stores ----

fn scratch_u64(cpu: &X86CpuState, off: usize) -> u64 {
    u64::from_le_bytes(cpu.fp_scratch[off..off + 8].try_into().unwrap_or([0; 8]))
}

fn scratch_f80(cpu: &X86CpuState) -> F80 {
    F80 {
        mant: scratch_u64(cpu, 0),
        se: u16::from_le_bytes([cpu.fp_scratch[8], cpu.fp_scratch[9]]),
    }
}

/// The memory operand of kind `k` as an F80 (conversion flags in `s`).
fn mem_operand(cpu: &X86CpuState, k: u32, s: &mut FloatStatus) -> F80 {
    let raw = scratch_u64(cpu, 0);
    match k {
        kind::F32 => f32_to_f80(raw as u32, s),
        kind::F64 => f64_to_f80(raw, s),
        kind::F80 => scratch_f80(cpu),
        kind::I16 => i64_to_f80(i64::from(raw as u16 as i16), s),
        kind::I32 => i64_to_f80(i64::from(raw as u32 as i32), s),
        kind::I64 => i64_to_f80(raw as i64, s),
        _ => bcd_to_f80(cpu, s),
    }
}

/// A signaling f32/f64 memory operand widened without quieting it: the NaN choice of the operation
/// still sees a signaling NaN (measured on the host).
fn signaling_mem_nan(cpu: &X86CpuState, k: u32) -> Option<F80> {
    let raw = scratch_u64(cpu, 0);
    let (sign, frac, exp_all, quiet, shift) = match k {
        kind::F32 => {
            let r = raw as u32;
            (
                r >> 31 != 0,
                u64::from(r & 0x7f_ffff),
                r & 0x7f80_0000 == 0x7f80_0000,
                r & 0x40_0000 != 0,
                40,
            )
        }
        kind::F64 => (
            raw >> 63 != 0,
            raw & 0x000f_ffff_ffff_ffff,
            raw & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000,
            raw & 0x0008_0000_0000_0000 != 0,
            11,
        ),
        _ => return None,
    };
    if !exp_all || quiet || frac == 0 {
        return None;
    }
    Some(F80 {
        mant: 1 << 63 | frac << shift,
        se: if sign { 0xffff } else { 0x7fff },
    })
}

fn bcd_to_f80(cpu: &X86CpuState, s: &mut FloatStatus) -> F80 {
    let mut v: i64 = 0;
    for i in (0..9).rev() {
        let byte = cpu.fp_scratch[i];
        v = v.wrapping_mul(10).wrapping_add(i64::from(byte >> 4));
        v = v.wrapping_mul(10).wrapping_add(i64::from(byte & 15));
    }
    let neg = cpu.fp_scratch[9] & 0x80 != 0;
    let mut r = i64_to_f80(v, s);
    if neg {
        r.se |= 0x8000;
    }
    r
}

fn load(cpu: &mut X86CpuState, k: u32, i: u32) {
    set_c1(cpu, false);
    let src_empty = k == kind::ST && empty(cpu, i);
    if src_empty {
        // Underflow outranks overflow.
        if stack_fault(cpu, false) {
            return;
        }
        push(cpu, F80::DEFAULT_NAN);
        return;
    }
    if !empty(cpu, 7) {
        // Stack overflow: the register that would become ST(0) is in use.
        if stack_fault(cpu, true) {
            return;
        }
        push(cpu, F80::DEFAULT_NAN);
        return;
    }
    if k == kind::ST {
        if src_empty {
            if stack_fault(cpu, false) {
                return;
            }
            push(cpu, F80::DEFAULT_NAN);
            return;
        }
        let v = st(cpu, i);
        push(cpu, v);
        return;
    }
    let mut s = status(cpu);
    let v = mem_operand(cpu, k, &mut s);
    let flags = u16::from(s.flags);
    // A denormal source is loaded even when DE is unmasked (measured on the host); only IE blocks.
    if unmasked(cpu, flags & IE) {
        raise(cpu, flags);
        return;
    }
    raise(cpu, flags);
    push(cpu, v);
}

fn load_const(cpu: &mut X86CpuState, k: u32) {
    set_c1(cpu, false);
    if !empty(cpu, 7) {
        if stack_fault(cpu, true) {
            return;
        }
        push(cpu, F80::DEFAULT_NAN);
        return;
    }
    // (significand, biased exponent, the next bits beyond the significand are above one half,
    // they are nonzero): the constants rounded per RC from their exact values.
    let (mant, se, half_up): (u64, u16, bool) = match k {
        0 => (1 << 63, 0x3fff, false),
        1 => (0xd49a_784b_cd1b_8afe, 0x4000, false),
        2 => (0xb8aa_3b29_5c17_f0bb, 0x3fff, true),
        3 => (0xc90f_daa2_2168_c234, 0x4000, true),
        4 => (0x9a20_9a84_fbcf_f798, 0x3ffd, true),
        5 => (0xb172_17f7_d1cf_79ab, 0x3ffe, true),
        _ => (0, 0, false),
    };
    let inexact = (1..=5).contains(&k);
    let rc = (cpu.fpu.fcw >> 10) & 3;
    let bump = inexact
        && match rc {
            0 => half_up,
            2 => true,
            _ => false,
        };
    push(
        cpu,
        F80 {
            mant: mant + u64::from(bump),
            se,
        },
    );
}

/// Integer/float store of ST(0) into the scratch area (kinds F32..BCD) or into ST(i).
fn store(cpu: &mut X86CpuState, k: u32, i: u32, c: u32) {
    let do_pop = c & 1 != 0;
    let truncate = c & 2 != 0;
    set_c1(cpu, false);
    if k == kind::ST {
        let v = if empty(cpu, 0) {
            if stack_fault(cpu, false) {
                return;
            }
            F80::DEFAULT_NAN
        } else {
            st(cpu, 0)
        };
        set_st(cpu, i, v);
        if do_pop {
            pop(cpu);
        }
        return;
    }
    if empty(cpu, 0) {
        if stack_fault(cpu, false) {
            return;
        }
        write_indefinite(cpu, k);
        if do_pop {
            pop(cpu);
        }
        return;
    }
    let v = st(cpu, 0);
    if k == kind::F80 {
        cpu.fp_scratch[0..8].copy_from_slice(&v.mant.to_le_bytes());
        cpu.fp_scratch[8..10].copy_from_slice(&v.se.to_le_bytes());
        if do_pop {
            pop(cpu);
        }
        return;
    }
    let conv = |s: &mut FloatStatus| -> u64 {
        match k {
            kind::F32 => u64::from(f80_to_f32(v, s)),
            kind::F64 => f80_to_f64(v, s),
            kind::I16 => f80_to_i16(v, truncate, s) as u16 as u64,
            kind::I32 => f80_to_i32(v, truncate, s) as u32 as u64,
            kind::I64 => f80_to_i64(v, truncate, s) as u64,
            _ => 0,
        }
    };
    if k == kind::BCD {
        store_bcd(cpu, v, do_pop);
        return;
    }
    let mut s = status(cpu);
    let mut r = conv(&mut s);
    let flags = u16::from(s.flags);
    let mut up = false;
    if flags & PE != 0 {
        let mut z = status(cpu);
        z.rounding = RoundingMode::TowardZero;
        up = conv(&mut z) != r;
    }
    if (k == kind::F32 || k == kind::F64) && flags & (OE | UE) != 0 {
        let ue = flags & UE != 0;
        if unmasked(cpu, if ue { UE } else { OE }) {
            // Unmasked overflow/underflow of a float store: SDM says memory is not written and the
            // stack is not popped; only the flags report it.
            set_c1(cpu, false);
            raise(cpu, flags & (OE | UE));
            return;
        }
    }
    if (k == kind::F32 || k == kind::F64) && flags & UE == 0 && unmasked(cpu, UE) {
        // Tiny exact results underflow when UE is unmasked.
        let tiny = match k {
            kind::F32 => (r as u32) & 0x7f80_0000 == 0 && (r as u32) & 0x007f_ffff != 0,
            _ => r & 0x7ff0_0000_0000_0000 == 0 && r & 0x000f_ffff_ffff_ffff != 0,
        };
        if tiny {
            raise(cpu, UE);
            return;
        }
    }
    let o = Outcome { value: ZERO, flags, up };
    if !commit_flags(cpu, &o) {
        return;
    }
    if flags & IE != 0 && k >= kind::I16 {
        // Masked invalid integer store: the crate already returned the integer indefinite.
    }
    r &= match k {
        kind::F32 | kind::I32 => 0xffff_ffff,
        kind::I16 => 0xffff,
        _ => u64::MAX,
    };
    cpu.fp_scratch[0..8].copy_from_slice(&r.to_le_bytes());
    if do_pop {
        pop(cpu);
    }
}

fn write_indefinite(cpu: &mut X86CpuState, k: u32) {
    let (lo, hi): (u64, u16) = match k {
        kind::F32 => (0xffc0_0000, 0),
        kind::F64 => (0xfff8_0000_0000_0000, 0),
        kind::F80 => (F80::DEFAULT_NAN.mant, F80::DEFAULT_NAN.se),
        kind::I16 => (0x8000, 0),
        kind::I32 => (0x8000_0000, 0),
        kind::I64 => (0x8000_0000_0000_0000, 0),
        _ => (0xc000_0000_0000_0000, 0xffff),
    };
    let n = kind::size(k);
    let mut bytes = [0u8; 10];
    bytes[0..8].copy_from_slice(&lo.to_le_bytes());
    bytes[8..10].copy_from_slice(&hi.to_le_bytes());
    cpu.fp_scratch[0..n].copy_from_slice(&bytes[0..n]);
}

fn store_bcd(cpu: &mut X86CpuState, v: F80, do_pop: bool) {
    let mut s = status(cpu);
    let r = f80_to_i64(v, false, &mut s);
    let mut flags = u16::from(s.flags);
    let mag = r.unsigned_abs();
    if flags & IE == 0 && mag >= 1_000_000_000_000_000_000 {
        flags = IE;
    }
    if flags & IE != 0 {
        let o = Outcome {
            value: ZERO,
            flags: IE,
            up: false,
        };
        if !commit_flags(cpu, &o) {
            return;
        }
        write_indefinite(cpu, kind::BCD);
    } else {
        let mut up = false;
        if flags & PE != 0 {
            let mut z = status(cpu);
            z.rounding = RoundingMode::TowardZero;
            up = f80_to_i64(v, false, &mut z) != r;
        }
        let o = Outcome { value: ZERO, flags, up };
        if !commit_flags(cpu, &o) {
            return;
        }
        let mut m = mag;
        for i in 0..9 {
            let lo = (m % 10) as u8;
            m /= 10;
            let hi = (m % 10) as u8;
            m /= 10;
            cpu.fp_scratch[i] = hi << 4 | lo;
        }
        // The sign of the source, also for -0 and values rounding to 0.
        cpu.fp_scratch[9] = if v.se & 0x8000 != 0 { 0x80 } else { 0 };
    }
    if do_pop {
        pop(cpu);
    }
}

// ---- arithmetic ----

fn arith_op(cpu: &mut X86CpuState, a: u32, dst: u32, src: u32) {
    let operation = a & 0xff;
    let do_pop = a & 0x100 != 0;
    set_c1(cpu, false);
    let src_mem = src >= 8;
    if empty(cpu, dst) || (!src_mem && empty(cpu, src)) || (src_mem && empty(cpu, 0)) {
        if stack_fault(cpu, false) {
            return;
        }
        set_st(cpu, dst, F80::DEFAULT_NAN);
        if do_pop {
            pop(cpu);
        }
        return;
    }
    let d = st(cpu, dst);
    let (sv, mut load_flags) = if src_mem {
        let mut s = status(cpu);
        let v = match signaling_mem_nan(cpu, src - 8) {
            Some(n) => n,
            None => mem_operand(cpu, src - 8, &mut s),
        };
        (v, u16::from(s.flags))
    } else {
        (st(cpu, src), 0)
    };
    // A conversion of an SNaN operand reports IE; fld/fadd m32 of a denormal reports DE (once, from the
    // operation below, which sees the converted value as normal: keep the conversion's).
    load_flags &= IE | DE;
    let (x, y) = match operation {
        arith::SUBR | arith::DIVR => (sv, d),
        _ => (d, sv),
    };
    let f = |s: &mut FloatStatus, n: i32| -> F80 {
        if n < 0 && matches!(operation, arith::ADD | arith::SUB | arith::SUBR) {
            // Overflowing sum: scale both operands by a part of the wrap that keeps the large one normal
            // (a tiny one only contributes a sticky bit), round, then apply the rest exactly.
            let (x, y) = (scale_sticky(x, -16384), scale_sticky(y, -16384));
            let r = if operation == arith::ADD {
                f80_add(x, y, s)
            } else {
                f80_sub(x, y, s)
            };
            return scale(r, n + 16384);
        }
        let (x, y) = match operation {
            arith::ADD | arith::SUB | arith::SUBR => (scale(x, n), scale(y, n)),
            arith::MUL => split_scale(x, y, n, false),
            _ => split_scale(x, y, n, true),
        };
        match operation {
            arith::ADD => f80_add(x, y, s),
            arith::MUL => f80_mul(x, y, s),
            arith::SUB | arith::SUBR => f80_sub(x, y, s),
            _ => f80_div(x, y, s),
        }
    };
    let mut o = compute(cpu, &f);
    // The converted operand's DE counts unless invalid, zero divide or a NaN operand outranks it.
    if o.flags & (IE | ZE) != 0 || f80_is_nan(d) || f80_is_invalid_encoding(d) {
        load_flags &= !DE;
    }
    o.flags |= load_flags;
    if o.flags & IE != 0 {
        o.flags &= !DE;
    }
    if commit_flags(cpu, &o) {
        set_st(cpu, dst, o.value);
        if do_pop {
            pop(cpu);
        }
    }
}

// ---- compares ----

fn compare(cpu: &mut X86CpuState, src: u32, b: u32) {
    let unordered_ok = b & 1 != 0;
    let pops = (b >> 1) & 3;
    let to_eflags = b & 8 != 0;
    let tst = b & 16 != 0;
    // fcomi leaves C1 alone unless the stack faults (measured on the host).
    if !to_eflags {
        set_c1(cpu, false);
    }
    let rel;
    let blocked;
    if empty(cpu, 0) || (src < 8 && !tst && empty(cpu, src)) {
        // Unmasked: the condition codes still say unordered, but nothing is popped.
        blocked = stack_fault(cpu, false);
        rel = Relation::Unordered;
    } else {
        let a = st(cpu, 0);
        let mut s = status(cpu);
        let bv = if tst {
            ZERO
        } else if src >= 8 {
            mem_operand(cpu, src - 8, &mut s)
        } else {
            st(cpu, src)
        };
        let r = f80_compare(a, bv, !unordered_ok, &mut s);
        let flags = u16::from(s.flags) & (IE | DE);
        let flags = if flags & IE != 0 { IE } else { flags };
        blocked = unmasked(cpu, flags);
        raise(cpu, flags);
        rel = r;
    }
    if to_eflags {
        let (zf, pf, cf) = match rel {
            Relation::Greater => (0, 0, 0),
            Relation::Less => (0, 0, 1),
            Relation::Equal => (1, 0, 0),
            Relation::Unordered => (1, 1, 1),
        };
        // ZF, PF, CF from the compare; OF, SF and AF cleared.
        let fl = cpu.rflags() & !0x8d5;
        cpu.set_rflags(fl | zf << 6 | pf << 2 | cf);
    } else {
        let c = match rel {
            Relation::Greater => 0,
            Relation::Less => C0,
            Relation::Equal => C3,
            Relation::Unordered => C0 | C2 | C3,
        };
        cpu.fpu.fsw = (cpu.fpu.fsw & !(C0 | C2 | C3)) | c;
    }
    if !blocked {
        for _ in 0..pops {
            pop(cpu);
        }
    }
}

// ---- one-operand and stack operations ----

fn misc_op(cpu: &mut X86CpuState, a: u32, i: u32, c: u32) {
    match a {
        misc::FNOP => {}
        misc::FNINIT => {
            cpu.fpu.fcw = 0x37f;
            cpu.fpu.fsw = 0;
            cpu.fpu.ftw = 0;
            cpu.fpu.fop = 0;
            cpu.fpu.fip = 0;
            cpu.fpu.fdp = 0;
            cpu.fpu.fcs = 0;
            cpu.fpu.fds = 0;
        }
        misc::FNCLEX => cpu.fpu.fsw &= !(0x7f | ES | B),
        misc::SYNC_ES => sync_es(cpu),
        misc::FINCSTP => {
            set_c1(cpu, false);
            set_top(cpu, top(cpu) + 1);
        }
        misc::FDECSTP => {
            set_c1(cpu, false);
            set_top(cpu, top(cpu) + 7);
        }
        misc::FFREE | misc::FFREEP => {
            set_c1(cpu, false);
            let p = phys(cpu, i);
            cpu.fpu.ftw &= !(1 << p);
            if a == misc::FFREEP {
                pop(cpu);
            }
        }
        misc::FXCH => {
            set_c1(cpu, false);
            let (e0, ei) = (empty(cpu, 0), empty(cpu, i));
            if e0 || ei {
                if stack_fault(cpu, false) {
                    return;
                }
                if e0 {
                    set_st(cpu, 0, F80::DEFAULT_NAN);
                }
                if ei {
                    set_st(cpu, i, F80::DEFAULT_NAN);
                }
            }
            let (x, y) = (st(cpu, 0), st(cpu, i));
            set_st(cpu, 0, y);
            set_st(cpu, i, x);
        }
        misc::FCMOV => {
            let fl = cpu.rflags();
            let (cf, zf, pf) = (fl & 1 != 0, fl & 0x40 != 0, fl & 4 != 0);
            let cond = match c & 3 {
                0 => cf,
                1 => zf,
                2 => cf || zf,
                _ => pf,
            } ^ (c & 4 != 0);
            if empty(cpu, 0) || empty(cpu, i) {
                if stack_fault(cpu, false) {
                    return;
                }
                set_st(cpu, 0, F80::DEFAULT_NAN);
                return;
            }
            // C1 is left as it was (measured on the host).
            if cond {
                let v = st(cpu, i);
                set_st(cpu, 0, v);
            }
        }
        misc::FCHS | misc::FABS => {
            set_c1(cpu, false);
            if empty(cpu, 0) {
                if stack_fault(cpu, false) {
                    return;
                }
                set_st(cpu, 0, F80::DEFAULT_NAN);
                return;
            }
            let mut v = st(cpu, 0);
            v.se = if a == misc::FCHS { v.se ^ 0x8000 } else { v.se & 0x7fff };
            set_st(cpu, 0, v);
        }
        misc::FXAM => fxam(cpu),
        misc::FSQRT | misc::FRNDINT => unary(cpu, a),
        misc::FSCALE => fscale(cpu),
        misc::FXTRACT => fxtract(cpu),
        misc::FPREM | misc::FPREM1 => fprem(cpu, a == misc::FPREM1),
        misc::FSIN | misc::FCOS | misc::FSINCOS | misc::FPTAN => trig(cpu, a),
        misc::F2XM1 => f2xm1(cpu),
        misc::FPATAN | misc::FYL2X | misc::FYL2XP1 => two_operand_transcendental(cpu, a),
        _ => cpu.raise(excp::UD, 0),
    }
}

fn fxam(cpu: &mut X86CpuState) {
    let v = st(cpu, 0);
    let sign = v.se & 0x8000 != 0;
    let e = v.se & 0x7fff;
    let cc = if empty(cpu, 0) {
        C3 | C0
    } else if f80_is_invalid_encoding(v) {
        0
    } else if e == 0x7fff {
        if v.mant << 1 == 0 {
            C2 | C0
        } else {
            C0
        }
    } else if e == 0 {
        if v.mant == 0 {
            C3
        } else {
            C3 | C2
        }
    } else {
        C2
    };
    cpu.fpu.fsw = (cpu.fpu.fsw & !CC) | cc | if sign { C1 } else { 0 };
}

fn unary(cpu: &mut X86CpuState, a: u32) {
    set_c1(cpu, false);
    if empty(cpu, 0) {
        if stack_fault(cpu, false) {
            return;
        }
        set_st(cpu, 0, F80::DEFAULT_NAN);
        return;
    }
    let x = st(cpu, 0);
    let f = |s: &mut FloatStatus, _n: i32| -> F80 {
        if a == misc::FSQRT {
            f80_sqrt(x, s)
        } else {
            // frndint rounds with RC (the status' rounding: the C1 probe replaces it with toward-zero).
            f80_round_to_int(x, s.rounding, false, s)
        }
    };
    let o = compute(cpu, &f);
    if commit_flags(cpu, &o) {
        set_st(cpu, 0, o.value);
    }
}

/// The fscale scale: ST(1) truncated toward zero, clamped (any scale beyond the format's range acts alike).
fn fscale(cpu: &mut X86CpuState) {
    set_c1(cpu, false);
    if empty(cpu, 0) || empty(cpu, 1) {
        if stack_fault(cpu, false) {
            return;
        }
        set_st(cpu, 0, F80::DEFAULT_NAN);
        return;
    }
    let x = st(cpu, 0);
    let y = st(cpu, 1);
    let mut pre = FloatStatus::default();
    let special = fscale_special(x, y, &mut pre);
    if let Some(v) = special {
        let o = Outcome {
            value: v,
            flags: u16::from(pre.flags),
            up: false,
        };
        if commit_flags(cpu, &o) {
            set_st(cpu, 0, o.value);
        }
        return;
    }
    let n = scale_amount(y);
    let yden = f80_is_denormal(y);
    let f = move |s: &mut FloatStatus, w: i32| -> F80 {
        if yden {
            s.flags |= DE as u8;
        }
        let r = f80_scalbn(x, n.saturating_add(w), s);
        if w != 0 {
            // Beyond even the wrapped range: infinity or zero (measured on the host).
            let sign = x.se & 0x8000;
            if w < 0 && s.flags & OE as u8 != 0 {
                return F80 {
                    mant: 1 << 63,
                    se: sign | 0x7fff,
                };
            }
            if w > 0 && s.flags & UE as u8 != 0 && r.se & 0x7fff == 0 {
                return F80 { mant: 0, se: sign };
            }
        }
        r
    };
    let mut o = compute(cpu, &f);
    if o.flags & OE != 0 && unmasked(cpu, OE) && o.value.se & 0x7fff == 0x7fff {
        // Beyond the wrapped range: infinity with C1 set, whatever the rounding (measured on the host).
        o.up = true;
    }
    if commit_flags(cpu, &o) {
        set_st(cpu, 0, o.value);
    }
}

fn scale_amount(y: F80) -> i32 {
    let e = i32::from(y.se & 0x7fff);
    let neg = y.se & 0x8000 != 0;
    if y.mant == 0 || e < 16383 {
        return 0;
    }
    let sh = e - 16383;
    let mag = if sh >= 31 {
        1 << 30
    } else {
        (y.mant >> (63 - sh)) as i32
    };
    if neg {
        -mag
    } else {
        mag
    }
}

/// The fscale cases decided by the operands' classes (NaNs, invalid encodings, infinities, zeros).
fn fscale_special(x: F80, y: F80, s: &mut FloatStatus) -> Option<F80> {
    if f80_is_invalid_encoding(x) || f80_is_invalid_encoding(y) {
        s.flags |= IE as u8;
        return Some(F80::DEFAULT_NAN);
    }
    if f80_is_nan(x) || f80_is_nan(y) {
        // NaN selection as for the two-operand arithmetic.
        return Some(f80_add(x, y, s));
    }
    let xe = x.se & 0x7fff;
    let ye = y.se & 0x7fff;
    let xinf = xe == 0x7fff;
    let yinf = ye == 0x7fff;
    let xzero = xe == 0 && x.mant == 0;
    if yinf {
        let yneg = y.se & 0x8000 != 0;
        if (xzero && !yneg) || (xinf && yneg) {
            s.flags |= IE as u8;
            return Some(F80::DEFAULT_NAN);
        }
        if f80_is_denormal(x) {
            s.flags |= DE as u8;
        }
        if xzero || xinf {
            return Some(x);
        }
        let sign = x.se & 0x8000;
        return Some(if yneg {
            F80 { mant: 0, se: sign }
        } else {
            F80 {
                mant: 1 << 63,
                se: sign | 0x7fff,
            }
        });
    }
    if xzero || xinf {
        if f80_is_denormal(y) {
            s.flags |= DE as u8;
        }
        return Some(x);
    }
    None
}

fn fxtract(cpu: &mut X86CpuState) {
    set_c1(cpu, false);
    if empty(cpu, 0) {
        if stack_fault(cpu, false) {
            return;
        }
        set_st(cpu, 0, F80::DEFAULT_NAN);
        push(cpu, F80::DEFAULT_NAN);
        return;
    }
    if !empty(cpu, 7) {
        if stack_fault(cpu, true) {
            return;
        }
        set_st(cpu, 0, F80::DEFAULT_NAN);
        push(cpu, F80::DEFAULT_NAN);
        return;
    }
    let x = st(cpu, 0);
    let mut s = status(cpu);
    let (expo, sig) = if f80_is_invalid_encoding(x) {
        s.flags |= IE as u8;
        (F80::DEFAULT_NAN, F80::DEFAULT_NAN)
    } else if f80_is_nan(x) {
        let q = f80_add(x, x, &mut s);
        (q, q)
    } else if x.se & 0x7fff == 0x7fff {
        (
            F80 {
                mant: 1 << 63,
                se: 0x7fff,
            },
            x,
        )
    } else if x.mant == 0 {
        s.flags |= ZE as u8;
        (
            F80 {
                mant: 1 << 63,
                se: 0xffff,
            },
            x,
        )
    } else {
        if f80_is_denormal(x) {
            s.flags |= DE as u8;
        }
        let lz = x.mant.leading_zeros() as i32;
        let e = i32::from(x.se & 0x7fff).max(1) - 16383 - lz;
        let ev = i64_to_f80(i64::from(e), &mut s);
        (
            ev,
            F80 {
                mant: x.mant << lz,
                se: (x.se & 0x8000) | 0x3fff,
            },
        )
    };
    let o = Outcome {
        value: sig,
        flags: u16::from(s.flags),
        up: false,
    };
    if commit_flags(cpu, &o) {
        set_st(cpu, 0, expo);
        push(cpu, sig);
    }
}

/// fprem/fprem1: partial remainder of ST(0) by ST(1), at most 63 quotient bits per step (C2 = incomplete).
fn fprem(cpu: &mut X86CpuState, ieee: bool) {
    set_c1(cpu, false);
    if empty(cpu, 0) || empty(cpu, 1) {
        cpu.fpu.fsw &= !C2;
        if stack_fault(cpu, false) {
            return;
        }
        set_st(cpu, 0, F80::DEFAULT_NAN);
        return;
    }
    let x = st(cpu, 0);
    let y = st(cpu, 1);
    let mut s = status(cpu);
    let nan_or_invalid = |s: &mut FloatStatus| f80_add(x, y, s);
    let xe = i32::from(x.se & 0x7fff);
    let ye = i32::from(y.se & 0x7fff);
    let special = if f80_is_invalid_encoding(x) || f80_is_invalid_encoding(y) || f80_is_nan(x) || f80_is_nan(y) {
        Some(nan_or_invalid(&mut s))
    } else if xe == 0x7fff || (ye == 0 && y.mant == 0) {
        s.flags |= IE as u8;
        Some(F80::DEFAULT_NAN)
    } else {
        if f80_is_denormal(x) || f80_is_denormal(y) {
            s.flags |= DE as u8;
        }
        if (xe == 0 && x.mant == 0) || ye == 0x7fff {
            // A pseudo-denormal comes back with the exponent it stands for (measured on the host).
            let e = if xe == 0 && x.mant >> 63 != 0 { 1 } else { 0 };
            Some(F80 {
                mant: x.mant,
                se: x.se | e,
            })
        } else {
            None
        }
    };
    let cc_clear = cpu.fpu.fsw & !(C0 | C1 | C2 | C3);
    if let (Some(v), 0) = (special, s.flags & IE as u8) {
        if !f80_is_nan(v) {
            // Zero dividend or infinite divisor: a complete remainder with quotient 0.
            let mut o = Outcome {
                value: v,
                flags: u16::from(s.flags),
                up: false,
            };
            if f80_is_denormal(v) && unmasked(cpu, UE) {
                // A tiny dividend kept as the remainder: unmasked underflow wraps it.
                let (sign, m, e) = norm(v);
                o.flags |= UE;
                o.value = make(sign, m, e + WRAP, &mut s);
            }
            cpu.fpu.fsw &= !C2;
            if commit_flags(cpu, &o) {
                cpu.fpu.fsw &= !(C0 | C2 | C3);
                set_st(cpu, 0, o.value);
            }
            return;
        }
    }
    if let Some(v) = special {
        let o = Outcome {
            value: v,
            flags: u16::from(s.flags),
            up: false,
        };
        // C0 and C3 are left alone here (measured on the host).
        cpu.fpu.fsw &= !C2;
        if commit_flags(cpu, &o) {
            set_st(cpu, 0, v);
        }
        return;
    }
    // Both finite and nonzero: work on normalized significands.
    let (xs, xm, xexp) = norm(x);
    let (_, ym, yexp) = norm(y);
    let d = xexp - yexp;
    let flags = u16::from(s.flags);
    if unmasked(cpu, flags & DE) {
        cpu.fpu.fsw &= !(C1 | C2);
        raise(cpu, DE);
        return;
    }
    let mut q: u64 = 0;
    let (rm, rexp, rsign, done);
    if d >= 64 {
        // Incomplete: reduce by a multiple of y * 2^(d - n) with n in 32..63 (the hardware's chunk).
        let n = 32 + ((d - 32) & 31);
        let shift = d - n;
        // Remainder of xm * 2^n by ym: (xm mod ym after n doublings).
        let mut r = u128::from(xm) % u128::from(ym);
        for _ in 0..n {
            r = (r << 1) % u128::from(ym);
        }
        rm = r as u64;
        rexp = yexp + shift;
        rsign = xs;
        done = false;
    } else if d < 0 {
        if ieee && d == -1 && xm > ym {
            // |x| in (|y|/2, |y|): the quotient rounds to 1 and the remainder is |y| - |x|, in x's units
            // (|y| = 2 * ym there); it is below ym, so it fits.
            q = 1;
            rm = ((u128::from(ym) << 1) - u128::from(xm)) as u64;
            rexp = xexp;
            rsign = !xs;
            done = true;
        } else {
            rm = xm;
            rexp = xexp;
            rsign = xs;
            done = true;
        }
    } else {
        // q = floor(xm * 2^d / ym), r = xm * 2^d - q * ym.
        let mut r = u128::from(xm);
        let mut qq: u128 = 0;
        let yy = u128::from(ym);
        if r >= yy {
            r -= yy;
            qq = 1;
        }
        for _ in 0..d {
            r <<= 1;
            qq <<= 1;
            if r >= yy {
                r -= yy;
                qq |= 1;
            }
        }
        let mut neg = false;
        if ieee {
            let (r2, q2, n2) = ieee_round(r, yy, qq);
            r = r2;
            qq = q2;
            neg = n2;
        }
        q = qq as u64;
        rm = r as u64;
        rexp = yexp;
        rsign = xs ^ neg;
        done = true;
    }
    let _ = cc_clear;
    let mut value = make(rsign, rm, rexp, &mut s);
    if f80_is_denormal(value) && unmasked(cpu, UE) {
        // Unmasked underflow: the exact remainder with its exponent wrapped.
        s.flags |= UE as u8;
        value = make(rsign, rm, rexp + WRAP, &mut s);
    }
    let mut fsw = cpu.fpu.fsw & !(C0 | C1 | C2 | C3);
    if done {
        if q & 4 != 0 {
            fsw |= C0;
        }
        if q & 2 != 0 {
            fsw |= C3;
        }
        if q & 1 != 0 {
            fsw |= C1;
        }
    } else {
        fsw |= C2;
    }
    cpu.fpu.fsw = fsw;
    raise(cpu, u16::from(s.flags) & (DE | UE));
    set_st(cpu, 0, value);
}

/// fprem1's rounding of the truncated quotient `q` (remainder `r` of the divisor's significand `y`) to
/// nearest, ties to even: returns (|remainder|, quotient, remainder negated).
fn ieee_round(r: u128, y: u128, q: u128) -> (u128, u128, bool) {
    let twice = r << 1;
    if twice > y || (twice == y && q & 1 != 0) {
        (y - r, q + 1, true)
    } else {
        (r, q, false)
    }
}

/// (sign, normalized significand, exponent of its bit 63 as an unbiased power of two).
fn norm(x: F80) -> (bool, u64, i32) {
    let lz = x.mant.leading_zeros() as i32;
    (
        x.se & 0x8000 != 0,
        x.mant << lz,
        i32::from(x.se & 0x7fff).max(1) - 16383 - lz,
    )
}

/// `sign * m * 2^(e - 63)` exactly (the remainder always fits), denormalized below the normal range.
fn make(sign: bool, m: u64, e: i32, s: &mut FloatStatus) -> F80 {
    let sgn = if sign { 0x8000 } else { 0 };
    if m == 0 {
        return F80 { mant: 0, se: sgn };
    }
    let lz = m.leading_zeros() as i32;
    let m = m << lz;
    let e = e - lz;
    let biased = e + 16383;
    if biased >= 1 {
        return F80 {
            mant: m,
            se: sgn | biased as u16,
        };
    }
    let sh = 1 - biased;
    // The remainder is exact: a tiny one is only reported when UE is unmasked (the caller's business).
    if sh >= 64 {
        s.flags |= PE as u8;
        return F80 { mant: 0, se: sgn };
    }
    F80 { mant: m >> sh, se: sgn }
}

// ---- environment ----

/// The full tag word computed from the registers: 00 valid, 01 zero, 10 special, 11 empty.
pub fn full_tag_word(cpu: &X86CpuState) -> u16 {
    let mut t = 0u16;
    for p in 0..8 {
        let tag = if cpu.fpu.ftw & (1 << p) == 0 {
            3
        } else {
            let v = read_phys(cpu, p);
            let e = v.se & 0x7fff;
            if e == 0 && v.mant == 0 {
                1
            } else if e == 0x7fff || e == 0 || v.mant & (1 << 63) == 0 {
                2
            } else {
                0
            }
        };
        t |= tag << (2 * p);
    }
    t
}

fn sw16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn sw32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn rw16(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([buf[off], buf[off + 1]])
}

fn rw32(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
}

/// The environment image's length: 28 bytes with a 32-bit operand size, 14 with 16-bit.
pub fn env_len(format: u32) -> usize {
    if format & 1 != 0 {
        28
    } else {
        14
    }
}

fn store_env(cpu: &X86CpuState, format: u32, buf: &mut [u8]) {
    let f = &cpu.fpu;
    let tw = full_tag_word(cpu);
    let o32 = format & 1 != 0;
    let prot = format & 2 != 0;
    let fop = u32::from(f.fop & 0x7ff);
    if o32 {
        // Reserved upper halves read as ones (measured on the host).
        sw32(buf, 0, 0xffff_0000 | u32::from(f.fcw));
        sw32(buf, 4, 0xffff_0000 | u32::from(f.fsw));
        sw32(buf, 8, 0xffff_0000 | u32::from(tw));
        if prot {
            sw32(buf, 12, f.fip as u32);
            sw32(buf, 16, u32::from(f.fcs) | fop << 16);
            sw32(buf, 20, f.fdp as u32);
            sw32(buf, 24, 0xffff_0000 | u32::from(f.fds));
        } else {
            let ip = (f.fip as u32).wrapping_add(u32::from(f.fcs) << 4);
            let dp = (f.fdp as u32).wrapping_add(u32::from(f.fds) << 4);
            sw32(buf, 12, 0xffff_0000 | (ip & 0xffff));
            sw32(buf, 16, (ip >> 16) << 12 | fop);
            sw32(buf, 20, 0xffff_0000 | (dp & 0xffff));
            sw32(buf, 24, (dp >> 16) << 12);
        }
    } else {
        sw16(buf, 0, f.fcw);
        sw16(buf, 2, f.fsw);
        sw16(buf, 4, tw);
        if prot {
            sw16(buf, 6, f.fip as u16);
            sw16(buf, 8, f.fcs);
            sw16(buf, 10, f.fdp as u16);
            sw16(buf, 12, f.fds);
        } else {
            let ip = (f.fip as u32).wrapping_add(u32::from(f.fcs) << 4);
            let dp = (f.fdp as u32).wrapping_add(u32::from(f.fds) << 4);
            sw16(buf, 6, ip as u16);
            sw16(buf, 8, (((ip >> 16) & 0xf) << 12 | fop) as u16);
            sw16(buf, 10, dp as u16);
            sw16(buf, 12, (((dp >> 16) & 0xf) << 12) as u16);
        }
    }
}

fn load_env(cpu: &mut X86CpuState, format: u32, buf: &[u8]) {
    let o32 = format & 1 != 0;
    let prot = format & 2 != 0;
    let (fcw, fsw, tw) = if o32 {
        (rw16(buf, 0), rw16(buf, 4), rw16(buf, 8))
    } else {
        (rw16(buf, 0), rw16(buf, 2), rw16(buf, 4))
    };
    // Reserved FCW bits as fldcw treats them.
    cpu.fpu.fcw = (fcw & 0x1f3f) | 0x40;
    cpu.fpu.fsw = fsw;
    let mut ftw = 0u8;
    for p in 0..8 {
        if (tw >> (2 * p)) & 3 != 3 {
            ftw |= 1 << p;
        }
    }
    cpu.fpu.ftw = ftw;
    if o32 {
        if prot {
            cpu.fpu.fip = u64::from(rw32(buf, 12));
            cpu.fpu.fcs = rw16(buf, 16);
            cpu.fpu.fop = rw16(buf, 18) & 0x7ff;
            cpu.fpu.fdp = u64::from(rw32(buf, 20));
            cpu.fpu.fds = rw16(buf, 24);
        } else {
            cpu.fpu.fip = u64::from(rw16(buf, 12)) | u64::from(rw32(buf, 16) >> 12) << 16;
            cpu.fpu.fop = rw16(buf, 16) & 0x7ff;
            cpu.fpu.fdp = u64::from(rw16(buf, 20)) | u64::from(rw32(buf, 24) >> 12) << 16;
            cpu.fpu.fcs = 0;
            cpu.fpu.fds = 0;
        }
    } else if prot {
        cpu.fpu.fip = u64::from(rw16(buf, 6));
        cpu.fpu.fcs = rw16(buf, 8);
        cpu.fpu.fdp = u64::from(rw16(buf, 10));
        cpu.fpu.fds = rw16(buf, 12);
    } else {
        cpu.fpu.fip = u64::from(rw16(buf, 6)) | u64::from(rw16(buf, 8) >> 12) << 16;
        cpu.fpu.fop = rw16(buf, 8) & 0x7ff;
        cpu.fpu.fdp = u64::from(rw16(buf, 10)) | u64::from(rw16(buf, 12) >> 12) << 16;
        cpu.fpu.fcs = 0;
        cpu.fpu.fds = 0;
    }
    sync_es(cpu);
}

/// The summary bits follow the exception bits and masks (fldcw, fldenv, frstor).
fn sync_es(cpu: &mut X86CpuState) {
    if unmasked(cpu, cpu.fpu.fsw & 0x3f) {
        cpu.fpu.fsw |= ES | B;
    } else {
        cpu.fpu.fsw &= !(ES | B);
    }
}

fn env_op(cpu: &mut X86CpuState, a: u32, format: u32) {
    let n = env_len(format);
    let mut buf = [0u8; 108];
    match a {
        0 | 2 => {
            store_env(cpu, format, &mut buf);
            if a == 2 {
                for i in 0..8u32 {
                    let v = st(cpu, i);
                    let o = n + 10 * i as usize;
                    buf[o..o + 8].copy_from_slice(&v.mant.to_le_bytes());
                    buf[o + 8..o + 10].copy_from_slice(&v.se.to_le_bytes());
                }
                misc_op(cpu, misc::FNINIT, 0, 0);
            } else {
                // fnstenv masks every exception after storing; with nothing unmasked the summary bits clear
                // (measured on the host).
                cpu.fpu.fcw |= 0x3f;
                sync_es(cpu);
            }
            cpu.fp_scratch[..108].copy_from_slice(&buf);
        }
        _ => {
            buf.copy_from_slice(&cpu.fp_scratch[..108]);
            load_env(cpu, format, &buf);
            if a == 3 {
                for i in 0..8u32 {
                    let o = n + 10 * i as usize;
                    let v = F80 {
                        mant: u64::from_le_bytes(buf[o..o + 8].try_into().unwrap_or([0; 8])),
                        se: rw16(&buf, o + 8),
                    };
                    let p = phys(cpu, i);
                    let r = &mut cpu.fpu.regs[p];
                    r[0..8].copy_from_slice(&v.mant.to_le_bytes());
                    r[8..10].copy_from_slice(&v.se.to_le_bytes());
                }
            }
        }
    }
}

// ---- fxsave/fxrstor ----

fn fx_op(cpu: &mut X86CpuState, a: u32, rex_w: u32) {
    if a == 0 {
        // The image's first 160 bytes: header, MXCSR, MXCSR_MASK, ST0-7 (in ST order).
        let mut buf = [0u8; 160];
        let f = cpu.fpu;
        sw16(&mut buf, 0, f.fcw);
        sw16(&mut buf, 2, f.fsw);
        buf[4] = f.ftw;
        // This host (AMD) stores FOP/FIP/FDP only while an exception is pending (FSW.ES).
        let pending = f.fsw & ES != 0;
        let (fop, fip, fdp) = if pending { (f.fop, f.fip, f.fdp) } else { (0, 0, 0) };
        sw16(&mut buf, 6, fop);
        if rex_w != 0 {
            buf[8..16].copy_from_slice(&fip.to_le_bytes());
            buf[16..24].copy_from_slice(&fdp.to_le_bytes());
        } else {
            sw32(&mut buf, 8, fip as u32);
            sw32(&mut buf, 16, fdp as u32);
            if pending {
                sw16(&mut buf, 12, f.fcs);
                sw16(&mut buf, 20, f.fds);
            }
        }
        sw32(&mut buf, 24, cpu.mxcsr);
        sw32(&mut buf, 28, crate::translate::MXCSR_MASK);
        for i in 0..8u32 {
            let p = phys(cpu, i);
            buf[32 + 16 * i as usize..48 + 16 * i as usize].copy_from_slice(&cpu.fpu.regs[p][..]);
            // Bytes 10..16 of each slot are reserved: stored as zero.
            buf[42 + 16 * i as usize..48 + 16 * i as usize].fill(0);
        }
        cpu.fp_scratch[..160].copy_from_slice(&buf);
    } else {
        // fxrstor wrote the image's slots in ST order into the physical slots: rotate by TOP.
        let t = top(cpu);
        let old = cpu.fpu.regs;
        for (i, r) in old.iter().enumerate() {
            cpu.fpu.regs[(t + i) & 7] = *r;
        }
    }
}

// ---- transcendentals (arithmetic in `fpu_trans`) ----

/// Rounds `b` to extended precision under RC, with C1 = rounded away from zero; flags into `flags`. An
/// unmasked overflow or underflow delivers the exponent-wrapped result, as the arithmetic does.
fn round_big(cpu: &X86CpuState, b: Big, flags: &mut u16) -> (F80, bool) {
    let rc = RoundingMode::from_rc(u32::from(cpu.fpu.fcw >> 10));
    let mut r = fpu_trans::round(b, rc, 0);
    // Transcendental results are never exact (the exact cases are handled before): always inexact.
    let mut f = PE;
    if r.overflow {
        f |= OE;
        if unmasked(cpu, OE) {
            r = fpu_trans::round(b, rc, -WRAP);
        }
    } else if r.tiny {
        f |= UE;
        if unmasked(cpu, UE) {
            r = fpu_trans::round(b, rc, WRAP);
        }
    }
    *flags |= f;
    (r.value, r.up)
}

/// The shared prologue of one-operand results: stack checks, then NaN/invalid/infinity answers. Returns the
/// operand when the caller must compute.
fn trig(cpu: &mut X86CpuState, a: u32) {
    let pushes = a == misc::FSINCOS || a == misc::FPTAN;
    set_c1(cpu, false);
    cpu.fpu.fsw &= !C2;
    if empty(cpu, 0) || (pushes && !empty(cpu, 7)) {
        if stack_fault(cpu, !empty(cpu, 0)) {
            return;
        }
        set_st(cpu, 0, F80::DEFAULT_NAN);
        if pushes {
            push(cpu, F80::DEFAULT_NAN);
        }
        return;
    }
    let x = st(cpu, 0);
    let e = x.se & 0x7fff;
    let mut s = status(cpu);
    let special = if f80_is_invalid_encoding(x) || (e == 0x7fff && x.mant << 1 == 0) {
        s.flags |= IE as u8;
        Some((F80::DEFAULT_NAN, F80::DEFAULT_NAN))
    } else if f80_is_nan(x) {
        let q = f80_add(x, x, &mut s);
        Some((q, q))
    } else if e >= 16383 + 63 {
        // Out of range: C2 set, operand unchanged.
        cpu.fpu.fsw |= C2;
        return;
    } else {
        if f80_is_denormal(x) {
            s.flags |= DE as u8;
        }
        if x.mant == 0 {
            let one = F80 {
                mant: 1 << 63,
                se: 0x3fff,
            };
            Some(match a {
                misc::FSIN => (x, x),
                misc::FCOS => (one, one),
                misc::FSINCOS => (x, one),
                _ => (x, one),
            })
        } else {
            None
        }
    };
    let mut flags = u16::from(s.flags);
    let (r0, r1, up) = match special {
        Some((r0, r1)) => (r0, r1, false),
        None => {
            let b = Big::from_f80(x);
            let (sn, cs) = if a == misc::FPTAN {
                (b, b) // unused: the tangent has its own evaluation
            } else {
                fpu_trans::sin_cos(b)
            };
            match a {
                misc::FSIN => {
                    let (v, up) = round_big(cpu, sn, &mut flags);
                    (v, v, up)
                }
                misc::FCOS => {
                    let (v, up) = round_big(cpu, cs, &mut flags);
                    (v, v, up)
                }
                misc::FSINCOS => {
                    // C1 follows the sine's rounding (measured on the host).
                    let (v0, up) = round_big(cpu, sn, &mut flags);
                    let (v1, _) = round_big(cpu, cs, &mut flags);
                    (v0, v1, up)
                }
                _ => {
                    let (v, up) = round_big(cpu, fpu_trans::tan(b), &mut flags);
                    (
                        v,
                        F80 {
                            mant: 1 << 63,
                            se: 0x3fff,
                        },
                        up,
                    )
                }
            }
        }
    };
    let o = Outcome { value: r0, flags, up };
    if !commit_flags(cpu, &o) {
        return;
    }
    match a {
        misc::FSINCOS => {
            set_st(cpu, 0, r0);
            push(cpu, r1);
        }
        misc::FPTAN => {
            set_st(cpu, 0, r0);
            push(cpu, r1);
        }
        _ => set_st(cpu, 0, r0),
    }
}

fn f2xm1(cpu: &mut X86CpuState) {
    set_c1(cpu, false);
    if empty(cpu, 0) {
        if stack_fault(cpu, false) {
            return;
        }
        set_st(cpu, 0, F80::DEFAULT_NAN);
        return;
    }
    let x = st(cpu, 0);
    let e = x.se & 0x7fff;
    let neg = x.se & 0x8000 != 0;
    let mut s = status(cpu);
    let special = if f80_is_invalid_encoding(x) {
        s.flags |= IE as u8;
        Some(F80::DEFAULT_NAN)
    } else if f80_is_nan(x) {
        Some(f80_add(x, x, &mut s))
    } else if e == 0x7fff {
        Some(if neg {
            F80 {
                mant: 1 << 63,
                se: 0xbfff,
            }
        } else {
            x
        })
    } else {
        if f80_is_denormal(x) {
            s.flags |= DE as u8;
        }
        if x.mant == 0 {
            Some(x)
        } else if e > 16383 || (e == 16383 && x.mant != 1 << 63) {
            // |x| > 1, outside the defined range [-1, 1]: the host returns the operand, reporting precision.
            s.flags |= PE as u8;
            Some(x)
        } else if x.mant == 1 << 63 && e == 16383 && neg {
            // 2^-1 - 1 = -0.5 exactly (still reported inexact, as the host does).
            s.flags |= PE as u8;
            Some(F80 {
                mant: 1 << 63,
                se: 0xbffe,
            })
        } else {
            None
        }
    };
    let mut flags = u16::from(s.flags);
    let (v, up) = match special {
        Some(v) => (v, false),
        // 2^1 - 1: the host's value lies just below 1 (1 with C1 to nearest or up, the largest value below 1
        // down or toward zero).
        None if x.mant == 1 << 63 && x.se == 0x3fff => {
            round_big(cpu, Big::int(1).sub(Big::int(1).scale(-100)), &mut flags)
        }
        None => round_big(cpu, fpu_trans::exp2m1(Big::from_f80(x)), &mut flags),
    };
    let o = Outcome { value: v, flags, up };
    if commit_flags(cpu, &o) {
        set_st(cpu, 0, v);
    }
}

/// `±b` rounded (the constant answers of fpatan); C1 (rounded up) lands in `flags` as the C1 bit.
fn signed_round(cpu: &X86CpuState, b: Big, neg: bool, flags: &mut u16) -> F80 {
    let (v, up) = round_big(cpu, if neg { b.mul(Big::int(-1)) } else { b }, flags);
    if up {
        *flags |= C1;
    }
    v
}

fn inf(neg: bool) -> F80 {
    F80 {
        mant: 1 << 63,
        se: if neg { 0xffff } else { 0x7fff },
    }
}

fn zero(neg: bool) -> F80 {
    F80 {
        mant: 0,
        se: if neg { 0x8000 } else { 0 },
    }
}

/// fpatan, fyl2x, fyl2xp1: ST(1) = f(ST(1), ST(0)), then pop.
fn two_operand_transcendental(cpu: &mut X86CpuState, a: u32) {
    set_c1(cpu, false);
    if empty(cpu, 0) || empty(cpu, 1) {
        if stack_fault(cpu, false) {
            return;
        }
        set_st(cpu, 1, F80::DEFAULT_NAN);
        pop(cpu);
        return;
    }
    let x = st(cpu, 0);
    let y = st(cpu, 1);
    let mut s = status(cpu);
    let cls = |v: F80| -> (bool, bool, bool) {
        let e = v.se & 0x7fff;
        (v.se & 0x8000 != 0, e == 0x7fff, v.mant == 0)
    };
    let (xn, xinf, xz) = cls(x);
    let (yn, yinf, yz) = cls(y);
    let mut const_up = false;
    let special: Option<F80> = if f80_is_invalid_encoding(x) || f80_is_invalid_encoding(y) {
        s.flags |= IE as u8;
        Some(F80::DEFAULT_NAN)
    } else if f80_is_nan(x) || f80_is_nan(y) {
        Some(f80_add(x, y, &mut s))
    } else {
        let r = match a {
            misc::FPATAN => {
                let pi = fpu_trans::pi();
                let mut f = 0u16;
                let r = if yz && !xinf {
                    // atan2(±0, x): ±0 for x > 0 or +0, ±pi for x < 0 or -0.
                    Some(if xn {
                        signed_round(cpu, pi, yn, &mut f)
                    } else {
                        zero(yn)
                    })
                } else if yinf {
                    let q = if !xinf {
                        pi.scale(-1)
                    } else if xn {
                        pi.mul(Big::int(3)).scale(-2)
                    } else {
                        pi.scale(-2)
                    };
                    Some(signed_round(cpu, q, yn, &mut f))
                } else if xinf {
                    // finite y: ±pi or ±0.
                    Some(if xn {
                        signed_round(cpu, pi, yn, &mut f)
                    } else {
                        zero(yn)
                    })
                } else if xz {
                    Some(signed_round(cpu, pi.scale(-1), yn, &mut f))
                } else {
                    None
                };
                s.flags |= f as u8;
                const_up = f & C1 != 0;
                r
            }
            misc::FYL2X => {
                if xn && !xz {
                    s.flags |= IE as u8;
                    Some(F80::DEFAULT_NAN)
                } else if xz {
                    if yz {
                        s.flags |= IE as u8;
                        Some(F80::DEFAULT_NAN)
                    } else {
                        if !yinf {
                            s.flags |= ZE as u8;
                        }
                        Some(inf(!yn))
                    }
                } else if xinf {
                    if yz {
                        s.flags |= IE as u8;
                        Some(F80::DEFAULT_NAN)
                    } else {
                        Some(inf(yn))
                    }
                } else if x.mant == 1 << 63 && x.se == 0x3fff {
                    // log2(1) = +0
                    if yinf {
                        s.flags |= IE as u8;
                        Some(F80::DEFAULT_NAN)
                    } else {
                        Some(zero(yn))
                    }
                } else if yinf || yz {
                    let below_one = (x.se & 0x7fff) < 0x3fff;
                    Some(if yinf {
                        inf(yn ^ below_one)
                    } else {
                        zero(yn ^ below_one)
                    })
                } else {
                    None
                }
            }
            _ => {
                // fyl2xp1: log2(1 + x), x > -1.
                let minus_one_or_less = xn && !xz && (xinf || (x.se & 0x7fff) >= 0x3fff);
                if minus_one_or_less && xinf {
                    s.flags |= IE as u8;
                    Some(F80::DEFAULT_NAN)
                } else if (yinf || yz) && !xz && !xinf {
                    Some(if yinf { inf(yn ^ xn) } else { zero(yn ^ xn) })
                } else if minus_one_or_less {
                    // Outside the domain the host returns x, reporting precision.
                    s.flags |= PE as u8;
                    Some(x)
                } else if xz {
                    if yinf {
                        s.flags |= IE as u8;
                        Some(F80::DEFAULT_NAN)
                    } else {
                        Some(zero(xn ^ yn))
                    }
                } else if xinf {
                    if yz {
                        s.flags |= IE as u8;
                        Some(F80::DEFAULT_NAN)
                    } else {
                        Some(inf(yn))
                    }
                } else if yinf || yz {
                    Some(if yinf { inf(yn ^ xn) } else { zero(yn ^ xn) })
                } else {
                    None
                }
            }
        };
        // Invalid and zero-divide outrank the denormal-operand flag (measured: fyl2x of a negative denormal
        // reports IE alone, fyl2x(denormal, 0) ZE alone).
        if (f80_is_denormal(x) || f80_is_denormal(y)) && u16::from(s.flags) & (IE | ZE) == 0 {
            s.flags |= DE as u8;
        }
        r
    };
    let mut flags = u16::from(s.flags);
    let (v, up) = match special {
        Some(v) => (v, const_up),
        None => {
            let (bx, by) = (Big::from_f80(x), Big::from_f80(y));
            let r = match a {
                misc::FPATAN => fpu_trans::atan2(by, bx),
                misc::FYL2X => by.mul(fpu_trans::log2(bx)),
                _ => by.mul(fpu_trans::log2_1p(bx)),
            };
            round_big(cpu, r, &mut flags)
        }
    };
    let o = Outcome { value: v, flags, up };
    if commit_flags(cpu, &o) {
        set_st(cpu, 1, v);
        pop(cpu);
    }
}
