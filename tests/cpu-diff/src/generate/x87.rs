//! The x87 families (load/store, arithmetic, compare, transcendental) and the x87 state of a case: a random
//! control word, a random TOP and tags, stack contents from the 80-bit edge values and status flags that leave
//! an unmasked exception pending (so the first waiting instruction raises #MF) in one case in eight.
//!
//! Memory operands of x87 forms get values of their type (`fp_memory`: 32/64/80-bit floats by element type;
//! integers keep the integer edge values the generic filler writes, which include the integer-indefinite
//! boundaries; packed BCD gets valid digits three times in four). The environment and state images of fldenv and
//! frstor are random bytes with a plausible control word.

use super::fp_edges::{fp_edge, random_fcw, FpFormat};
use super::SplitMix64;
use crate::state::{fsw, CpuState};
use iced_x86::Mnemonic;

/// fld/fst/fild/fist/fisttp/fbld/fbstp, the constants, fxch, ffree, fincstp/fdecstp, fnclex, fcmovcc, the
/// environment and state saves and loads, fnop.
pub(crate) const LOAD_STORE: &[Mnemonic] = {
    use Mnemonic as M;
    &[
        M::Fld,
        M::Fst,
        M::Fstp,
        M::Fild,
        M::Fist,
        M::Fistp,
        M::Fisttp,
        M::Fbld,
        M::Fbstp,
        M::Fld1,
        M::Fldz,
        M::Fldpi,
        M::Fldl2e,
        M::Fldl2t,
        M::Fldlg2,
        M::Fldln2,
        M::Fxch,
        M::Ffree,
        M::Ffreep,
        M::Fincstp,
        M::Fdecstp,
        M::Fnclex,
        M::Fclex,
        M::Fcmovb,
        M::Fcmove,
        M::Fcmovbe,
        M::Fcmovu,
        M::Fcmovnb,
        M::Fcmovne,
        M::Fcmovnbe,
        M::Fcmovnu,
        M::Fnstenv,
        M::Fstenv,
        M::Fldenv,
        M::Fnsave,
        M::Fsave,
        M::Frstor,
        M::Fnop,
    ]
};

/// The arithmetic: fadd..fdivr in every form (popping and integer-memory ones included), fchs, fabs, frndint,
/// fsqrt, fscale, fxtract, fprem, fprem1.
pub(crate) const ARITH: &[Mnemonic] = {
    use Mnemonic as M;
    &[
        M::Fadd,
        M::Faddp,
        M::Fiadd,
        M::Fsub,
        M::Fsubp,
        M::Fisub,
        M::Fsubr,
        M::Fsubrp,
        M::Fisubr,
        M::Fmul,
        M::Fmulp,
        M::Fimul,
        M::Fdiv,
        M::Fdivp,
        M::Fidiv,
        M::Fdivr,
        M::Fdivrp,
        M::Fidivr,
        M::Fchs,
        M::Fabs,
        M::Frndint,
        M::Fsqrt,
        M::Fscale,
        M::Fxtract,
        M::Fprem,
        M::Fprem1,
    ]
};

/// The comparisons and classifications.
pub(crate) const COMPARE: &[Mnemonic] = {
    use Mnemonic as M;
    &[
        M::Fcom,
        M::Fcomp,
        M::Fcompp,
        M::Fucom,
        M::Fucomp,
        M::Fucompp,
        M::Fcomi,
        M::Fcomip,
        M::Fucomi,
        M::Fucomip,
        M::Ficom,
        M::Ficomp,
        M::Ftst,
        M::Fxam,
    ]
};

/// The transcendentals, compared with a tolerance (see `compare.rs`).
pub const TRANSCENDENTAL: &[Mnemonic] = {
    use Mnemonic as M;
    &[
        M::Fsin,
        M::Fcos,
        M::Fsincos,
        M::Fptan,
        M::Fpatan,
        M::F2xm1,
        M::Fyl2x,
        M::Fyl2xp1,
    ]
};

/// Gives `state` a random x87 state: control word ([`random_fcw`]), TOP, tags (each register valid three times in
/// four), 80-bit edge values in every register (empty ones too: MMX and FXSAVE see them), random C0..C3, and
/// sticky exception flags: none half the time, otherwise a random set; ES and B are set exactly when a flag is
/// unmasked, as the CPU keeps them. Without `x87_case` no unmasked flag is set and TOP is 0: for cases of the
/// other families, where the random state only checks that rqemu carries the x87 state through. (TOP stays 0
/// there because the x87-control snippets' fninit resets it, which rotates the stack-order view FXSAVE gives;
/// rqemu's fninit does not rotate its stack-order `FpuState::regs` yet, which the x87 families will show.)
pub(crate) fn random_state(rng: &mut SplitMix64, state: &mut CpuState, x87_case: bool) {
    let allow_pending = x87_case;
    state.fcw = random_fcw(rng);
    let top = if x87_case { rng.below(8) as u16 } else { 0 };
    state.ftw = (0..8).fold(0u8, |acc, i| acc | u8::from(!rng.one_in(4)) << i);
    for st in state.st.iter_mut() {
        *st = fp_edge(rng, FpFormat::F80);
    }
    let mut flags = if rng.one_in(2) {
        0
    } else {
        rng.next_u64() as u16 & (fsw::EXCEPTIONS | fsw::SF)
    };
    // Keep pending exceptions to about one case in eight: most cases should run their instruction.
    if flags & !state.fcw & fsw::EXCEPTIONS != 0 && (!allow_pending || !rng.one_in(4)) {
        flags &= state.fcw | fsw::SF;
    }
    let cc = rng.next_u64() as u16 & (fsw::C0 | fsw::C1 | fsw::C2 | fsw::C3);
    let pending = flags & !state.fcw & fsw::EXCEPTIONS != 0;
    state.fsw = top << fsw::TOP_SHIFT | cc | flags | if pending { fsw::ES | fsw::B } else { 0 };
}

/// Ten bytes of packed BCD for fbld: 18 digits and a sign byte; one time in four any bytes (invalid digits).
pub(crate) fn bcd(rng: &mut SplitMix64) -> [u8; 10] {
    let mut out = [0u8; 10];
    if rng.one_in(4) {
        for b in out.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        return out;
    }
    let digits = rng.below(19) as usize;
    for i in 0..digits {
        let d = if rng.one_in(3) { 9 } else { rng.below(10) as u8 };
        out[i / 2] |= d << (4 * (i % 2));
    }
    out[9] = if rng.one_in(2) { 0x80 } else { 0 };
    out
}

/// Fixes up an environment or state image at `bytes` (random so far) for fldenv/frstor: the control word gets a
/// plausible value so that the loaded state is not mostly reserved bits (its first two bytes in both the 14-
/// and 28-byte layouts).
pub(crate) fn env_image(rng: &mut SplitMix64, bytes: &mut [u8]) {
    let fcw = random_fcw(rng);
    bytes[..2].copy_from_slice(&fcw.to_le_bytes());
}

/// Whether `m` is an x87 mnemonic of these families.
pub(crate) fn is_x87(m: Mnemonic) -> bool {
    LOAD_STORE.contains(&m) || ARITH.contains(&m) || COMPARE.contains(&m) || TRANSCENDENTAL.contains(&m)
}
