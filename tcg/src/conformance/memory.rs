//! A flat guest memory for tests: one little-endian byte array at a fixed guest address.
//!
//! It enforces what softmmu will: a `MemOp` alignment requirement (a misaligned access faults) and the bounds
//! of the array (an access that does not fit entirely faults). Faults are counted here; nothing is written to
//! the CPU state, so a test sees exactly what the backend itself stored.

use rqemu_include::{MemOp, MmuIdx};

use crate::backend::{GuestMemory, MemFault};

/// Guest memory backed by a byte array covering `base..base + len`.
#[derive(Clone, Debug)]
pub struct FlatMemory {
    base: u64,
    bytes: Vec<u8>,
    /// Number of accesses that faulted.
    pub faults: u64,
    /// MMU index of the last access, faulting or not.
    pub last_mmu: Option<MmuIdx>,
    /// `env` pointer of the last access, as an address (compared, never dereferenced).
    pub last_env: usize,
}

impl FlatMemory {
    /// A zeroed memory of `len` bytes at guest address `base`.
    pub fn new(base: u64, len: usize) -> FlatMemory {
        FlatMemory {
            base,
            bytes: vec![0; len],
            faults: 0,
            last_mmu: None,
            last_env: 0,
        }
    }

    /// Guest address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The contents, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Index of the first byte of a `memop` access at `addr`, if it is aligned and inside the array.
    fn locate(&mut self, env: *mut u8, addr: u64, memop: MemOp, mmu: MmuIdx) -> Result<usize, MemFault> {
        self.last_mmu = Some(mmu);
        self.last_env = env as usize;
        let size = memop.size_bytes() as u64;
        let ok = addr & (memop.align_bytes() as u64 - 1) == 0 && size <= 8;
        let start = addr.checked_sub(self.base).filter(|_| ok);
        match start.filter(|&s| s.checked_add(size).is_some_and(|end| end <= self.bytes.len() as u64)) {
            Some(s) => Ok(s as usize),
            None => {
                self.faults += 1;
                Err(MemFault)
            }
        }
    }
}

impl GuestMemory for FlatMemory {
    fn load(&mut self, env: *mut u8, addr: u64, memop: MemOp, mmu: MmuIdx) -> Result<u64, MemFault> {
        let start = self.locate(env, addr, memop, mmu)?;
        let size = memop.size_bytes() as usize;
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(&self.bytes[start..start + size]);
        if memop.is_bswap() {
            raw[..size].reverse();
        }
        let v = u64::from_le_bytes(raw);
        let shift = 64 - 8 * size as u32;
        Ok(if memop.is_signed() {
            (((v << shift) as i64) >> shift) as u64
        } else {
            v
        })
    }

    fn store(&mut self, env: *mut u8, addr: u64, value: u64, memop: MemOp, mmu: MmuIdx) -> Result<(), MemFault> {
        let start = self.locate(env, addr, memop, mmu)?;
        let size = memop.size_bytes() as usize;
        let mut raw = value.to_le_bytes();
        if memop.is_bswap() {
            raw[..size].reverse();
        }
        self.bytes[start..start + size].copy_from_slice(&raw[..size]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_sign_and_faults() {
        let mut m = FlatMemory::new(0x1000, 16);
        m.bytes_mut()[..4].copy_from_slice(&[0x80, 0x01, 0x02, 0x83]);
        let env = core::ptr::null_mut();
        let mmu = MmuIdx::default();
        assert_eq!(m.load(env, 0x1000, MemOp::LEUW, mmu), Ok(0x0180));
        assert_eq!(m.load(env, 0x1000, MemOp::LEUW | MemOp::BSWAP, mmu), Ok(0x8001));
        assert_eq!(m.load(env, 0x1000, MemOp::SB, mmu), Ok(0xffff_ffff_ffff_ff80));
        assert_eq!(m.load(env, 0x1000, MemOp::LESL, mmu), Ok(0xffff_ffff_8302_0180));
        assert_eq!(m.load(env, 0x1001, MemOp::LEUW | MemOp::ALIGN, mmu), Err(MemFault));
        assert_eq!(m.load(env, 0x100f, MemOp::LEUW, mmu), Err(MemFault));
        assert_eq!(m.load(env, 0xfff, MemOp::UB, mmu), Err(MemFault));
        assert_eq!(m.store(env, 0x1002, 0xaabb, MemOp::LEUW | MemOp::BSWAP, mmu), Ok(()));
        assert_eq!(&m.bytes()[..4], &[0x80, 0x01, 0xaa, 0xbb]);
        assert_eq!(m.faults, 3);
    }
}
