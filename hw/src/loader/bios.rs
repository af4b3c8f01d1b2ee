//! Where `-bios file` puts a flat firmware image: all of it ends at 4 GiB (where the CPU fetches its first
//! instruction, at 0xffff_fff0), and its last 128 KiB (or all of it, if smaller) also ends at 1 MiB, the
//! legacy BIOS window the real-mode reset vector 0xf000:0xfff0 reaches.
//!
//! The rules follow QEMU's PC machine: the image must not be empty and its size must be a multiple of
//! 64 KiB. rqemu adds an upper bound of 16 MiB (the firmware window 0xff00_0000..4 GiB, above the I/O APIC
//! and local APIC pages at 0xfec0_0000 and 0xfee0_0000), where QEMU's limit comes from its flash layout.
//! This module only computes the ranges; the machine makes a ROM block from the file, maps it at
//! [`BiosLayout::high_base`] and maps its last [`BiosLayout::isa_size`] bytes again at
//! [`BiosLayout::isa_base`].

use std::fmt;

/// One 64 KiB unit: image sizes are multiples of it.
pub const BIOS_SIZE_UNIT: u64 = 64 * 1024;
/// The largest image rqemu accepts.
pub const MAX_BIOS_SIZE: u64 = 16 * 1024 * 1024;
/// The most of the image mirrored below 1 MiB.
pub const ISA_BIOS_MAX: u64 = 128 * 1024;
/// The end of the legacy BIOS window (1 MiB).
pub const ISA_BIOS_END: u64 = 0x10_0000;
/// The end of the high window (4 GiB).
pub const HIGH_BIOS_END: u64 = 0x1_0000_0000;

/// Why a BIOS image cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BiosError {
    /// The file is empty.
    Empty,
    /// The size is not a multiple of 64 KiB.
    Unaligned {
        /// The image size in bytes.
        size: u64,
    },
    /// The image is larger than [`MAX_BIOS_SIZE`].
    TooLarge {
        /// The image size in bytes.
        size: u64,
    },
}

impl fmt::Display for BiosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BiosError::Empty => write!(f, "the BIOS image is empty"),
            BiosError::Unaligned { size } => write!(
                f,
                "the BIOS image is {size} bytes; its size must be a multiple of 64 KiB (pad it at the start)"
            ),
            BiosError::TooLarge { size } => write!(
                f,
                "the BIOS image is {size} bytes; at most {} MiB fits below 4 GiB",
                MAX_BIOS_SIZE >> 20
            ),
        }
    }
}

impl std::error::Error for BiosError {}

/// The two places of a BIOS image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiosLayout {
    /// Image size in bytes.
    pub size: u64,
    /// Where the whole image starts: 4 GiB − size.
    pub high_base: u64,
    /// Where the mirrored tail starts: 1 MiB − isa_size.
    pub isa_base: u64,
    /// Bytes mirrored below 1 MiB: min(size, 128 KiB).
    pub isa_size: u64,
    /// Offset in the image of the mirrored tail: size − isa_size.
    pub isa_offset: u64,
}

impl BiosLayout {
    /// The whole image's guest-physical range.
    pub fn high_range(&self) -> std::ops::Range<u64> {
        self.high_base..HIGH_BIOS_END
    }

    /// The mirrored tail's guest-physical range.
    pub fn isa_range(&self) -> std::ops::Range<u64> {
        self.isa_base..ISA_BIOS_END
    }
}

/// Places an image of `size` bytes, or says why it cannot be.
pub fn place_bios(size: u64) -> Result<BiosLayout, BiosError> {
    if size == 0 {
        return Err(BiosError::Empty);
    }
    if size > MAX_BIOS_SIZE {
        return Err(BiosError::TooLarge { size });
    }
    if !size.is_multiple_of(BIOS_SIZE_UNIT) {
        return Err(BiosError::Unaligned { size });
    }
    let isa_size = size.min(ISA_BIOS_MAX);
    Ok(BiosLayout {
        size,
        high_base: HIGH_BIOS_END - size,
        isa_base: ISA_BIOS_END - isa_size,
        isa_size,
        isa_offset: size - isa_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_image_fills_the_top_64k_of_both_windows() {
        let l = place_bios(64 * 1024).unwrap();
        assert_eq!(l.high_range(), 0xffff_0000..0x1_0000_0000);
        assert_eq!(l.isa_range(), 0xf_0000..0x10_0000);
        assert_eq!(l.isa_offset, 0);
    }

    #[test]
    fn large_image_mirrors_only_its_last_128k() {
        let l = place_bios(2 * 1024 * 1024).unwrap();
        assert_eq!(l.high_base, 0xffe0_0000);
        assert_eq!(l.isa_range(), 0xe_0000..0x10_0000);
        assert_eq!(l.isa_offset, 2 * 1024 * 1024 - 128 * 1024);
    }

    #[test]
    fn empty_unaligned_and_oversized_images_are_errors() {
        assert_eq!(place_bios(0), Err(BiosError::Empty));
        assert_eq!(place_bios(4096), Err(BiosError::Unaligned { size: 4096 }));
        let big = MAX_BIOS_SIZE + BIOS_SIZE_UNIT;
        assert_eq!(place_bios(big), Err(BiosError::TooLarge { size: big }));
        assert!(place_bios(MAX_BIOS_SIZE).is_ok());
        assert!(BiosError::Unaligned { size: 1 }.to_string().contains("64 KiB"));
    }
}
