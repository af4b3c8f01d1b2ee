//! Guest RAM blocks: one contiguous, zero-filled host allocation per block.
//!
//! Natively a block is an anonymous private mapping (memmap2), so a multi-GiB guest commits only the pages it
//! touches. On wasm32 it is a plain zeroed allocation in linear memory, because there is no mmap there and
//! generated Wasm code reaches RAM by linear-memory address. Mapping blocks into the guest physical address
//! space is [`crate::AddressSpace`]'s job, not this module's.

use core::fmt;

/// Why a RAM block could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RamError {
    /// Zero bytes were asked for.
    Empty,
    /// The size does not fit the host's address space at all.
    TooLarge {
        /// Requested size in bytes.
        size: u64,
    },
    /// The host refused to provide the memory.
    Alloc {
        /// Requested size in bytes.
        size: u64,
        /// What the host said.
        reason: String,
    },
}

impl fmt::Display for RamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RamError::Empty => write!(f, "guest RAM of 0 bytes"),
            RamError::TooLarge { size } => write!(
                f,
                "guest RAM of {size} bytes ({} MiB) does not fit this host's address space",
                size >> 20
            ),
            RamError::Alloc { size, reason } => write!(
                f,
                "cannot allocate guest RAM of {size} bytes ({} MiB): {reason}",
                size >> 20
            ),
        }
    }
}

impl std::error::Error for RamError {}

/// A byte range outside a RAM block was addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange;

/// One contiguous block of guest RAM.
///
/// The bytes are shared with generated code (which writes them through TLB addends) and with devices doing
/// DMA, so the block never hands out Rust references to them: every access copies through the raw pointer,
/// and `write` takes `&self` like an `UnsafeCell`. The block is neither `Send` nor `Sync` (one vCPU thread).
pub struct RamBlock {
    #[cfg(not(target_arch = "wasm32"))]
    _map: memmap2::MmapMut,
    #[cfg(target_arch = "wasm32")]
    _buf: Vec<u8>,
    /// Start of the bytes; taken once from the allocation so that its provenance covers all of them.
    base: *mut u8,
    len: usize,
}

impl fmt::Debug for RamBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamBlock")
            .field("host_addr", &format_args!("{:#x}", self.base as usize))
            .field("size", &self.len)
            .finish()
    }
}

impl RamBlock {
    /// Creates a zero-filled block of `size` bytes, or an error naming the size when the host cannot give it.
    pub fn new(size: u64) -> Result<RamBlock, RamError> {
        if size == 0 {
            return Err(RamError::Empty);
        }
        let len = usize::try_from(size).map_err(|_| RamError::TooLarge { size })?;
        Self::allocate(size, len)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn allocate(size: u64, len: usize) -> Result<RamBlock, RamError> {
        let mut map = memmap2::MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(|e| RamError::Alloc {
                size,
                reason: e.to_string(),
            })?;
        let base = map.as_mut_ptr();
        Ok(RamBlock { _map: map, base, len })
    }

    #[cfg(target_arch = "wasm32")]
    fn allocate(size: u64, len: usize) -> Result<RamBlock, RamError> {
        let mut buf = Vec::new();
        // `vec![0; n]` would abort on failure; reserving first turns it into an error.
        buf.try_reserve_exact(len).map_err(|e| RamError::Alloc {
            size,
            reason: e.to_string(),
        })?;
        buf.resize(len, 0);
        let base = buf.as_mut_ptr();
        Ok(RamBlock { _buf: buf, base, len })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.len as u64
    }

    /// Host address of the first byte (what TLB addends are computed from).
    pub fn host_addr(&self) -> usize {
        self.base as usize
    }

    /// The host pointer of `offset..offset + len`, when that range is inside the block.
    pub(crate) fn range_ptr(&self, offset: u64, len: usize) -> Result<*mut u8, OutOfRange> {
        let start = usize::try_from(offset).map_err(|_| OutOfRange)?;
        let end = start.checked_add(len).ok_or(OutOfRange)?;
        if end > self.len {
            return Err(OutOfRange);
        }
        // In bounds: checked just above.
        Ok(self.base.wrapping_add(start))
    }

    /// Copies `buf.len()` bytes at `offset` out of the block.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let src = self.range_ptr(offset, buf.len())?;
        // SAFETY: `src..src+len` is inside the allocation (checked) and no reference to it exists.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` into the block at `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let dst = self.range_ptr(offset, data.len())?;
        // SAFETY: as in `read`; `base` was taken from a mutable borrow of the allocation.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_starts_zeroed_and_round_trips() {
        let ram = RamBlock::new(0x3000).unwrap();
        let mut b = [0xaau8; 4];
        ram.read(0x2ffc, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
        ram.write(0x1000, &[1, 2, 3]).unwrap();
        ram.read(0x1000, &mut b[..3]).unwrap();
        assert_eq!(&b[..3], &[1, 2, 3]);
    }

    #[test]
    fn ram_access_out_of_range_is_an_error() {
        let ram = RamBlock::new(0x1000).unwrap();
        assert_eq!(ram.write(0xfff, &[0, 0]), Err(OutOfRange));
        assert_eq!(ram.read(u64::MAX, &mut [0]), Err(OutOfRange));
    }

    #[test]
    fn absurd_ram_size_is_an_error_naming_the_size() {
        let size = 1u64 << 62;
        let err = RamBlock::new(size).unwrap_err();
        assert!(err.to_string().contains(&size.to_string()), "{err}");
        assert_eq!(RamBlock::new(0).unwrap_err(), RamError::Empty);
    }

    #[test]
    fn large_ram_is_reserved_not_committed() {
        // 4 GiB would not fit many CI machines if it were committed up front.
        let ram = RamBlock::new(4 << 30).unwrap();
        ram.write((4 << 30) - 1, &[7]).unwrap();
    }
}
