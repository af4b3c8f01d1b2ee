//! Memory accesses: host `ld*`/`st*` on the CPU state and guest `qemu_ld`/`qemu_st`.
//!
//! Host accesses address linear memory at `base + offset`; a non-negative offset goes into the memarg, a
//! negative one is added with a wrapping `i32.add` (memargs are unsigned). A 64-bit host pointer (IR built on
//! a 64-bit host) is truncated to its low 32 bits.
//!
//! Guest accesses, when the [`crate::WasmAbi`] has no TLB, call the slow-path helper for every access. With a
//! TLB they inline the fast path of `include/src/tlb.rs`:
//!
//! ```text
//! entry = env + tlb_offset + mmu * TABLE_BYTES + ((addr >> PAGE_BITS) & (ENTRIES - 1)) * 32
//! if ((addr + size - align) & (PAGE_MASK | (align - 1))) == entry.tag   ;; addr_read or addr_write
//!     host = (addr as u32) + entry.addend                               ;; 4-byte addend (wasm32 usize)
//!     load/store with the width, sign and byte order of the MemOp
//! else
//!     slow path; fault check
//! ```
//!
//! The slow paths' results are re-extended here per MemOp and op type, so a slow path that returns the raw
//! bytes or an already-extended value gives the same result.

use rqemu_include::tlb::{TLB_ENTRIES, TLB_ENTRY_SIZE, TLB_OFFSET_ADDEND, TLB_OFFSET_READ, TLB_OFFSET_WRITE};
use rqemu_include::{MemOp, NB_MMU_MODES, TARGET_PAGE_BITS, TARGET_PAGE_MASK};
use rqemu_tcg::{CompileError, Op, Opcode, Temp, Type};
use wasm_encoder::{BlockType, Instruction as I, MemArg};

use super::calls::ArgSrc;
use super::locals::{memarg_aligned, pick, val_type, PARAM_ENV};
use super::FnGen;
use crate::abi::TlbAbi;

/// A memarg with no alignment promise (guest and CPU-state accesses may be unaligned; the hint is only a
/// hint, and 0 never makes a module invalid).
fn memarg(offset: u64) -> MemArg {
    memarg_aligned(offset, 0)
}

/// A checked guest access: its MemOp and MMU index.
struct GuestAccess {
    memop: MemOp,
    mmu: u32,
}

impl FnGen<'_> {
    /// Pushes the address `base + offset` and returns the memarg offset to use with it.
    fn host_address(&mut self, base: Temp, offset: i64) -> Result<u64, CompileError> {
        self.get_addr32(base)?;
        if (0..=u32::MAX as i64).contains(&offset) {
            return Ok(offset as u64);
        }
        self.emit([I::I32Const(offset as i32), I::I32Add]);
        Ok(0)
    }

    /// `ld*` and `st*` on host memory.
    pub(super) fn host_access(&mut self, op: &Op) -> Result<(), CompileError> {
        use Opcode::*;
        let ty = op.ty;
        let offset = op.konst(0) as i32 as i64;
        match op.opc {
            Ld8u | Ld8s | Ld16u | Ld16s | Ld32u | Ld32s | Ld => {
                let off = self.host_address(op.input(0), offset)?;
                let m = memarg(off);
                let ins = match (op.opc, ty) {
                    (Ld8u, Type::I32) => I::I32Load8U(m),
                    (Ld8s, Type::I32) => I::I32Load8S(m),
                    (Ld16u, Type::I32) => I::I32Load16U(m),
                    (Ld16s, Type::I32) => I::I32Load16S(m),
                    (Ld, Type::I32) => I::I32Load(m),
                    (Ld8u, _) => I::I64Load8U(m),
                    (Ld8s, _) => I::I64Load8S(m),
                    (Ld16u, _) => I::I64Load16U(m),
                    (Ld16s, _) => I::I64Load16S(m),
                    (Ld32u, _) => I::I64Load32U(m),
                    (Ld32s, _) => I::I64Load32S(m),
                    (Ld, _) => I::I64Load(m),
                    _ => return Err(self.unsupported(op)),
                };
                self.code.push(ins);
                self.set(op.out(0), ty)
            }
            _ => {
                // Inputs: value, base.
                let off = self.host_address(op.input(1), offset)?;
                self.get_as(op.input(0), ty)?;
                let m = memarg(off);
                let ins = match (op.opc, ty) {
                    (St8, Type::I32) => I::I32Store8(m),
                    (St16, Type::I32) => I::I32Store16(m),
                    (St, Type::I32) => I::I32Store(m),
                    (St8, _) => I::I64Store8(m),
                    (St16, _) => I::I64Store16(m),
                    (St32, _) => I::I64Store32(m),
                    (St, _) => I::I64Store(m),
                    _ => return Err(self.unsupported(op)),
                };
                self.code.push(ins);
                Ok(())
            }
        }
    }

    /// Decodes and checks the MemOp and MMU index of a guest access.
    fn guest_access(&self, op: &Op) -> Result<GuestAccess, CompileError> {
        let raw = u32::try_from(op.konst(0)).map_err(|_| self.invalid("memop out of range"))?;
        let memop = MemOp::from_raw(raw).map_err(|e| self.invalid(e.to_string()))?;
        if memop.size_bytes() * 8 > op.ty.bits() {
            return Err(self.invalid(format!("a {memop} access does not fit {}", op.ty)));
        }
        let mmu = op.konst(1);
        if mmu >= NB_MMU_MODES as u64 {
            return Err(self.invalid(format!("MMU index {mmu} out of range")));
        }
        Ok(GuestAccess { memop, mmu: mmu as u32 })
    }

    /// Re-extends the i64 a slow path returned to the op type, as the MemOp says.
    fn extend_loaded(&mut self, ty: Type, memop: MemOp) {
        let size = memop.size_bytes();
        let signed = memop.is_signed();
        if ty == Type::I32 {
            self.code.push(I::I32WrapI64);
        }
        let p = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        match (size, signed) {
            (1, true) => self.code.push(p(I::I32Extend8S, I::I64Extend8S)),
            (2, true) => self.code.push(p(I::I32Extend16S, I::I64Extend16S)),
            (4, true) if ty == Type::I64 => self.code.push(I::I64Extend32S),
            (1 | 2, false) => {
                let mask = if size == 1 { 0xff } else { 0xffff };
                self.emit([p(I::I32Const(mask), I::I64Const(mask as i64)), p(I::I32And, I::I64And)]);
            }
            (4, false) if ty == Type::I64 => self.emit([I::I64Const(0xffff_ffff), I::I64And]),
            _ => {}
        }
    }

    /// The slow-path argument `memop | mmu << 8`.
    fn slow_info(a: &GuestAccess) -> u64 {
        a.memop.bits() as u64 | (a.mmu as u64) << 8
    }

    /// `qemu_ld`: out = load(addr).
    pub(super) fn qemu_ld(&mut self, op: &Op) -> Result<(), CompileError> {
        let a = self.guest_access(op)?;
        let ty = op.ty;
        let addr = op.input(0);
        let info = Self::slow_info(&a);
        let slow = |g: &mut Self| -> Result<(), CompileError> {
            g.call_helper_abi(g.abi.ld_slow, &[ArgSrc::Temp(addr), ArgSrc::Const(info)])?;
            g.extend_loaded(ty, a.memop);
            Ok(())
        };
        let Some(tlb) = self.abi.tlb else {
            slow(self)?;
            self.set(op.out(0), ty)?;
            return self.check_fault(true);
        };
        let entry = self.tlb_probe(tlb, addr, &a, TLB_OFFSET_READ)?;
        self.code.push(I::If(BlockType::Result(val_type(ty))));
        self.depth += 1;
        self.fast_host_address(addr, entry)?;
        self.fast_load(ty, a.memop);
        self.code.push(I::Else);
        slow(self)?;
        // The fault check needs the stack empty of the value: park it.
        let v = self.locals.scratch(ty);
        self.code.push(I::LocalSet(v));
        self.check_fault(true)?;
        self.code.push(I::LocalGet(v));
        self.depth -= 1;
        self.code.push(I::End);
        self.stats.inlined_accesses += 1;
        self.set(op.out(0), ty)
    }

    /// `qemu_st`: store(addr, value).
    pub(super) fn qemu_st(&mut self, op: &Op) -> Result<(), CompileError> {
        let a = self.guest_access(op)?;
        let ty = op.ty;
        let (value, addr) = (op.input(0), op.input(1));
        let info = Self::slow_info(&a);
        let slow = |g: &mut Self| -> Result<(), CompileError> {
            let args = [ArgSrc::Temp(addr), ArgSrc::Temp(value), ArgSrc::Const(info)];
            g.call_helper_abi(g.abi.st_slow, &args)?;
            g.code.push(I::Drop);
            g.check_fault(true)
        };
        let Some(tlb) = self.abi.tlb else {
            return slow(self);
        };
        let entry = self.tlb_probe(tlb, addr, &a, TLB_OFFSET_WRITE)?;
        self.code.push(I::If(BlockType::Empty));
        self.depth += 1;
        self.fast_host_address(addr, entry)?;
        self.fast_store(value, ty, a.memop)?;
        self.code.push(I::Else);
        slow(self)?;
        self.depth -= 1;
        self.code.push(I::End);
        self.stats.inlined_accesses += 1;
        Ok(())
    }

    /// Computes the TLB entry address into a scratch local (returned) and pushes `probe == tag` as an i32.
    fn tlb_probe(&mut self, tlb: TlbAbi, addr: Temp, a: &GuestAccess, tag: usize) -> Result<u32, CompileError> {
        let table = tlb.offset_from_env as i64 + a.mmu as i64 * TlbAbi::TABLE_BYTES as i64;
        let table = i32::try_from(table).map_err(|_| self.invalid("TLB offset out of range"))?;
        let entry = self.locals.scratch(Type::I32);
        self.get_as(addr, Type::I64)?;
        self.emit([
            I::I64Const(TARGET_PAGE_BITS as i64),
            I::I64ShrU,
            I::I32WrapI64,
            I::I32Const(TLB_ENTRIES as i32 - 1),
            I::I32And,
            I::I32Const(TLB_ENTRY_SIZE.trailing_zeros() as i32),
            I::I32Shl,
            I::LocalGet(PARAM_ENV),
            I::I32Add,
        ]);
        if table != 0 {
            self.emit([I::I32Const(table), I::I32Add]);
        }
        self.code.push(I::LocalSet(entry));
        let (size, align) = (a.memop.size_bytes(), a.memop.align_bytes());
        self.get_as(addr, Type::I64)?;
        if size > align {
            // An access that crosses into the next page probes that page and misses.
            self.emit([I::I64Const((size - align) as i64), I::I64Add]);
        }
        let mask = TARGET_PAGE_MASK | (align as u64 - 1);
        self.emit([
            I::I64Const(mask as i64),
            I::I64And,
            I::LocalGet(entry),
            I::I64Load(memarg_aligned(tag as u64, 3)),
            I::I64Eq,
        ]);
        Ok(entry)
    }

    /// Pushes the host address `(addr as u32) + entry.addend`.
    fn fast_host_address(&mut self, addr: Temp, entry: u32) -> Result<(), CompileError> {
        self.get_as(addr, Type::I64)?;
        self.emit([
            I::I32WrapI64,
            I::LocalGet(entry),
            I::I32Load(memarg_aligned(TLB_OFFSET_ADDEND as u64, 2)),
            I::I32Add,
        ]);
        Ok(())
    }

    /// Loads from the host address on the stack with the MemOp's width, byte order and sign, as `ty`.
    fn fast_load(&mut self, ty: Type, memop: MemOp) {
        let m = memarg(0);
        let (size, signed, swap) = (
            memop.size_bytes(),
            memop.is_signed(),
            memop.is_bswap() && memop.size_bytes() > 1,
        );
        let p = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        if !swap {
            let ins = match (size, signed) {
                (1, false) => p(I::I32Load8U(m), I::I64Load8U(m)),
                (1, true) => p(I::I32Load8S(m), I::I64Load8S(m)),
                (2, false) => p(I::I32Load16U(m), I::I64Load16U(m)),
                (2, true) => p(I::I32Load16S(m), I::I64Load16S(m)),
                (4, false) => p(I::I32Load(m), I::I64Load32U(m)),
                (4, true) => p(I::I32Load(m), I::I64Load32S(m)),
                _ => I::I64Load(m),
            };
            self.code.push(ins);
            return;
        }
        match size {
            2 => {
                self.code.push(p(I::I32Load16U(m), I::I64Load16U(m)));
                self.bswap16(ty);
                if signed {
                    self.code.push(p(I::I32Extend16S, I::I64Extend16S));
                }
            }
            4 => {
                self.code.push(I::I32Load(m));
                self.bswap32();
                if ty == Type::I64 {
                    self.code.push(if signed { I::I64ExtendI32S } else { I::I64ExtendI32U });
                }
            }
            _ => {
                self.code.push(I::I64Load(m));
                self.bswap64();
            }
        }
    }

    /// Stores `value` (of type `ty`) at the host address on the stack with the MemOp's width and byte order.
    fn fast_store(&mut self, value: Temp, ty: Type, memop: MemOp) -> Result<(), CompileError> {
        let m = memarg(0);
        let (size, swap) = (memop.size_bytes(), memop.is_bswap());
        let p = |i32: I<'static>, i64: I<'static>| pick(ty, i32, i64);
        match size {
            1 => {
                self.get_as(value, ty)?;
                self.code.push(p(I::I32Store8(m), I::I64Store8(m)));
            }
            2 => {
                self.get_as(value, ty)?;
                if swap {
                    self.bswap16(ty);
                }
                self.code.push(p(I::I32Store16(m), I::I64Store16(m)));
            }
            4 => {
                self.get_as(value, Type::I32)?;
                if swap {
                    self.bswap32();
                }
                self.code.push(I::I32Store(m));
            }
            _ => {
                self.get_as(value, Type::I64)?;
                if swap {
                    self.bswap64();
                }
                self.code.push(I::I64Store(m));
            }
        }
        Ok(())
    }
}
