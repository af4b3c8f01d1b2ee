//! MemOp: how a guest memory access is performed (size, sign, byte order, alignment requirement).
//!
//! Encoding (one `u32`, stable because backends and bytecode store it):
//! - bits 0..=2: log2 of the size in bytes (0 = 1 byte ... 4 = 16 bytes)
//! - bit 3: sign-extend the loaded value
//! - bit 4: byte-swap relative to little-endian (guest memory is little-endian unless this is set)
//! - bits 5..=7: alignment requirement: 0 none, 1..=6 require 2^n bytes, 7 natural (the access size)

use bitflags::bitflags;
use core::fmt;

bitflags! {
    /// Size, sign, byte order and alignment of one guest memory access.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MemOp: u32 {
        /// One byte (the size field is zero).
        const SIZE_8 = 0;
        /// Two bytes.
        const SIZE_16 = 1;
        /// Four bytes.
        const SIZE_32 = 2;
        /// Eight bytes.
        const SIZE_64 = 3;
        /// Sixteen bytes.
        const SIZE_128 = 4;
        /// Mask of the size field.
        const SIZE_MASK = 7;
        /// Sign-extend loads.
        const SIGN = 1 << 3;
        /// Byte-swap relative to little-endian (big-endian access).
        const BSWAP = 1 << 4;
        /// Mask of the alignment field.
        const ALIGN_MASK = 7 << 5;
        /// Require natural alignment (the access size).
        const ALIGN = 7 << 5;
        /// Require 2-byte alignment.
        const ALIGN_2 = 1 << 5;
        /// Require 4-byte alignment.
        const ALIGN_4 = 2 << 5;
        /// Require 8-byte alignment.
        const ALIGN_8 = 3 << 5;
        /// Require 16-byte alignment.
        const ALIGN_16 = 4 << 5;
        /// Require 32-byte alignment.
        const ALIGN_32 = 5 << 5;
        /// Require 64-byte alignment.
        const ALIGN_64 = 6 << 5;

        /// Unsigned byte.
        const UB = 0;
        /// Signed byte.
        const SB = Self::SIGN.bits();
        /// Little-endian unsigned 16-bit.
        const LEUW = Self::SIZE_16.bits();
        /// Little-endian signed 16-bit.
        const LESW = Self::SIZE_16.bits() | Self::SIGN.bits();
        /// Little-endian unsigned 32-bit.
        const LEUL = Self::SIZE_32.bits();
        /// Little-endian signed 32-bit.
        const LESL = Self::SIZE_32.bits() | Self::SIGN.bits();
        /// Little-endian 64-bit.
        const LEUQ = Self::SIZE_64.bits();
    }
}

/// Why a raw `u32` is not a valid [`MemOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemOpError {
    /// Bits outside the defined fields are set.
    UnknownBits(u32),
    /// The size field is 5, 6 or 7.
    BadSize(u32),
}

impl fmt::Display for MemOpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemOpError::UnknownBits(b) => write!(f, "memop 0x{b:x} has undefined bits set"),
            MemOpError::BadSize(s) => write!(f, "memop size field {s} is not 0..=4"),
        }
    }
}

impl std::error::Error for MemOpError {}

impl MemOp {
    /// Checks a raw encoding (as stored in IR constant arguments).
    pub fn from_raw(raw: u32) -> Result<MemOp, MemOpError> {
        if raw & !0xff != 0 {
            return Err(MemOpError::UnknownBits(raw));
        }
        if raw & 7 > 4 {
            return Err(MemOpError::BadSize(raw & 7));
        }
        Ok(MemOp::from_bits_retain(raw))
    }

    /// log2 of the access size in bytes.
    pub const fn size_log2(self) -> u32 {
        self.bits() & 7
    }

    /// Access size in bytes (1, 2, 4, 8 or 16).
    pub const fn size_bytes(self) -> u32 {
        1 << self.size_log2()
    }

    /// Whether loads sign-extend.
    pub const fn is_signed(self) -> bool {
        self.bits() & Self::SIGN.bits() != 0
    }

    /// Whether the value is byte-swapped relative to little-endian.
    pub const fn is_bswap(self) -> bool {
        self.bits() & Self::BSWAP.bits() != 0
    }

    /// Required alignment in bytes (1 when unaligned accesses are allowed).
    pub const fn align_bytes(self) -> u32 {
        match (self.bits() >> 5) & 7 {
            0 => 1,
            7 => self.size_bytes(),
            n => 1 << n,
        }
    }

    /// The same access with a different size field.
    pub const fn with_size_log2(self, log2: u32) -> MemOp {
        MemOp::from_bits_retain((self.bits() & !7) | (log2 & 7))
    }
}

impl fmt::Display for MemOp {
    /// QEMU-like spelling: `ub`, `sb`, `leuw`, `besl`, `leuq`, optionally prefixed by `al<N>+`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let align = (self.bits() >> 5) & 7;
        match align {
            0 => {}
            7 => write!(f, "al+")?,
            n => write!(f, "al{}+", 1u32 << n)?,
        }
        let sign = if self.is_signed() { "s" } else { "u" };
        if self.size_log2() == 0 {
            return write!(f, "{sign}b");
        }
        let order = if self.is_bswap() { "be" } else { "le" };
        let size = ["b", "w", "l", "q", "o"][self.size_log2() as usize];
        write!(f, "{order}{sign}{size}")
    }
}

impl core::str::FromStr for MemOp {
    type Err = String;

    /// Parses the spelling produced by `Display`.
    fn from_str(s: &str) -> Result<MemOp, String> {
        let bad = || format!("bad memop `{s}`");
        let (align, rest) = match s.split_once('+') {
            Some((a, r)) => {
                let a = a.strip_prefix("al").ok_or_else(bad)?;
                let field = if a.is_empty() {
                    7
                } else {
                    let n: u32 = a.parse().map_err(|_| bad())?;
                    if !n.is_power_of_two() || !(2..=64).contains(&n) {
                        return Err(bad());
                    }
                    n.trailing_zeros()
                };
                (field << 5, r)
            }
            None => (0, s),
        };
        let (order, rest) = if let Some(r) = rest.strip_prefix("le") {
            (0, r)
        } else if let Some(r) = rest.strip_prefix("be") {
            (MemOp::BSWAP.bits(), r)
        } else {
            (0, rest)
        };
        let mut chars = rest.chars();
        let sign = match chars.next() {
            Some('s') => MemOp::SIGN.bits(),
            Some('u') => 0,
            _ => return Err(bad()),
        };
        let size = match chars.as_str() {
            "b" => 0,
            "w" => 1,
            "l" => 2,
            "q" => 3,
            "o" => 4,
            _ => return Err(bad()),
        };
        if size == 0 && order != 0 {
            return Err(bad());
        }
        Ok(MemOp::from_bits_retain(align | order | sign | size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_alignment() {
        assert_eq!(MemOp::LEUQ.size_bytes(), 8);
        assert_eq!(MemOp::UB.size_bytes(), 1);
        assert_eq!((MemOp::LEUL | MemOp::ALIGN).align_bytes(), 4);
        assert_eq!((MemOp::LEUQ | MemOp::ALIGN_16).align_bytes(), 16);
        assert_eq!(MemOp::LEUQ.align_bytes(), 1);
        assert!(MemOp::LESW.is_signed());
        assert!(!MemOp::LEUW.is_signed());
    }

    #[test]
    fn text_round_trip() {
        for raw in 0..256u32 {
            let Ok(m) = MemOp::from_raw(raw) else {
                continue;
            };
            if m.size_log2() == 0 && m.is_bswap() {
                continue; // a byte has no byte order; that spelling is not produced
            }
            let text = m.to_string();
            assert_eq!(text.parse::<MemOp>(), Ok(m), "{text}");
        }
    }

    #[test]
    fn rejects_bad_raw() {
        assert_eq!(MemOp::from_raw(5), Err(MemOpError::BadSize(5)));
        assert!(MemOp::from_raw(0x100).is_err());
    }
}
