//! Rounding mode, exception flags and the per-unit control state.

/// IEEE rounding direction, in the order of the x86 RC field (MXCSR bits 13..14, FCW bits 10..11).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RoundingMode {
    /// Round to nearest, ties to even (RC = 0).
    NearestEven,
    /// Round toward negative infinity (RC = 1).
    Down,
    /// Round toward positive infinity (RC = 2).
    Up,
    /// Truncate (RC = 3).
    TowardZero,
}

impl RoundingMode {
    /// Decodes a 2-bit x86 RC field; higher bits are ignored so callers can pass a shifted register.
    pub fn from_rc(bits: u32) -> Self {
        match bits & 3 {
            0 => RoundingMode::NearestEven,
            1 => RoundingMode::Down,
            2 => RoundingMode::Up,
            _ => RoundingMode::TowardZero,
        }
    }
}

/// Exception flag bits, laid out exactly like MXCSR bits 0..5 and FSW bits 0..5 so the
/// emulator can OR them into the guest register without translation.
pub mod flags {
    /// Invalid operation (IE).
    pub const INVALID: u8 = 1;
    /// Denormal operand (DE).
    pub const DENORMAL: u8 = 2;
    /// Division of a finite non-zero value by zero (ZE).
    pub const DIV_BY_ZERO: u8 = 4;
    /// Rounded result too large for the destination (OE).
    pub const OVERFLOW: u8 = 8;
    /// Tiny and inexact result, as reported with underflow masked (UE).
    pub const UNDERFLOW: u8 = 16;
    /// Result was rounded (PE).
    pub const INEXACT: u8 = 32;
}

/// x87 precision control (FCW bits 8..9): the significand width results are rounded to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Precision {
    /// 24-bit significand (PC = 0).
    Single,
    /// 53-bit significand (PC = 2).
    Double,
    /// 64-bit significand (PC = 3, the reset default).
    Extended,
}

impl Precision {
    /// Decodes the 2-bit PC field. The reserved encoding 1 behaves like Extended on the
    /// x86 hosts this crate was tested against.
    pub fn from_pc(bits: u32) -> Self {
        match bits & 3 {
            0 => Precision::Single,
            2 => Precision::Double,
            _ => Precision::Extended,
        }
    }
}

/// Control inputs and sticky exception outputs for one operation (or a sequence of them).
///
/// `flags` is only ever OR-ed into, so the caller can run several operations and read the
/// accumulated exceptions, just like the guest-visible status registers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FloatStatus {
    /// Rounding direction for inexact results.
    pub rounding: RoundingMode,
    /// Sticky exception flags (see [`flags`]).
    pub flags: u8,
    /// Denormals-are-zero: denormal inputs of the f32/f64 operations read as signed zero.
    pub daz: bool,
    /// Flush-to-zero. It means "FTZ set AND underflow masked": x86 only flushes when the
    /// underflow exception is masked, and deciding that is the caller's job
    /// ([`FloatStatus::from_mxcsr`] does it).
    pub ftz: bool,
    /// x87 precision control; honoured by the f80 arithmetic only.
    pub precision: Precision,
}

impl Default for FloatStatus {
    fn default() -> Self {
        FloatStatus {
            rounding: RoundingMode::NearestEven,
            flags: 0,
            daz: false,
            ftz: false,
            precision: Precision::Extended,
        }
    }
}

impl FloatStatus {
    /// Builds the SSE state from an MXCSR value; flags start from MXCSR bits 0..5.
    pub fn from_mxcsr(mxcsr: u32) -> Self {
        let underflow_masked = mxcsr & (1 << 11) != 0;
        FloatStatus {
            rounding: RoundingMode::from_rc(mxcsr >> 13),
            flags: (mxcsr & 0x3f) as u8,
            daz: mxcsr & (1 << 6) != 0,
            ftz: mxcsr & (1 << 15) != 0 && underflow_masked,
            precision: Precision::Extended,
        }
    }

    /// Builds the x87 state from a control word; flags start cleared because they live in
    /// the FSW, not the FCW.
    pub fn from_fcw(fcw: u16) -> Self {
        FloatStatus {
            rounding: RoundingMode::from_rc(u32::from(fcw) >> 10),
            flags: 0,
            daz: false,
            ftz: false,
            precision: Precision::from_pc(u32::from(fcw) >> 8),
        }
    }

    pub(crate) fn raise(&mut self, f: u8) {
        self.flags |= f;
    }
}
