//! Port I/O: `in` and `out` (imm8 and DX port forms; 8, 16 and 32 bits) and `ins`/`outs` (with `rep`).
//!
//! Generated code reaches the machine's port-I/O space through two helpers, `io_in(port, size) -> value`
//! and `io_out(port, size, value)`. They reach the [`rqemu_softmmu::IoSpace`] of the CPU's `SoftMmu` through
//! the state's `sys` link ([`crate::machine::with_sys`]); a state with no link (a bare state, as the
//! differential tester runs) reads all ones and drops writes, like an empty bus.
//!
//! - After every `out`/`outs` the TB ends with a return to the loop (`exit_tb`, not a chained jump): the
//!   device may have asked the machine to stop (isa-debug-exit), and the loop checks that only at its
//!   boundaries. `in` does not end the TB.
//! - `ins`/`outs` run one iteration per TB execution, like the other string instructions (`string.rs`), so a
//!   `rep` is restartable after every element. `ins` reads the port before storing to ES:rDI: a store that
//!   faults loses the element (QEMU probes the destination first).
//! - I/O permission ([`check_io`], through the `io_check(port, size)` helper): in protected mode at
//!   CPL > IOPL, and always in vm86 mode, the ports accessed must be allowed by the I/O permission bitmap of
//!   the current 32/64-bit TSS, else #GP(0). The check runs before the access and before any state change
//!   (ins/outs: before each element, also when a `rep` count is 0, as QEMU does). The translator emits it only
//!   when the TB flags allow a CPL > IOPL (protected mode at CPL > 0, or vm86): CPL 0 and real mode pay
//!   nothing. IOPL is read from EFLAGS at run time (it is not in the TB flags).

use iced_x86::{Mnemonic, OpKind, Register};
use rqemu_tcg::{Cond, Func, HelperFlags, HelperId, HelperInfo, TargetDesc, Temp, Type};

use super::operand::{gen_ext, memop};
use super::{DisasContext, DisasJump};
use crate::cc::Size;
use crate::cpu::{eflags, reg, seg, X86CpuState, DESC_P};
use crate::desc::{global, I386Target};
use crate::machine::with_sys;
use crate::paging::Privilege;
use crate::seg_helper::{cpl, is_long_active, is_protected, is_vm86, DESC_TYPE_MASK, DESC_TYPE_SHIFT};
use crate::sysmem::{Fault, SysMem};

/// Offset of the 16-bit I/O map base field in a 32-bit or 64-bit TSS.
const TSS_IO_MAP_BASE: u64 = 0x66;

/// The I/O permission check of an access to ports `port..port + size` (`size` 1, 2 or 4) in state `s`,
/// reading the TSS through `mem` with [`Privilege::Implicit`]:
/// - real mode, or protected mode (not vm86) with CPL ≤ IOPL: allowed, nothing read;
/// - otherwise TR must hold a present 32/64-bit TSS (available or busy type) whose limit covers the I/O map
///   base (offset 0x66); the two bitmap bytes at `base + port / 8` must lie within the TSS limit, and every
///   bit of the accessed ports must be 0. Anything else is #GP(0); a fault reading the TSS (#PF) is returned
///   as it is.
pub(crate) fn check_io<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, port: u16, size: u8) -> Result<(), Fault> {
    if !is_protected(s) {
        return Ok(());
    }
    let iopl = ((s.eflags & eflags::IOPL) >> 12) as u8;
    if !is_vm86(s) && cpl(s) <= iopl {
        return Ok(());
    }
    let tr = &s.tr;
    let typ = (tr.flags & DESC_TYPE_MASK) >> DESC_TYPE_SHIFT;
    let limit = u64::from(tr.limit);
    if tr.flags & DESC_P == 0 || (typ != 9 && typ != 11) || limit < TSS_IO_MAP_BASE + 1 {
        return Err(Fault::gp(0));
    }
    let long = is_long_active(s);
    let linear = |off: u64| {
        let a = tr.base.wrapping_add(off);
        if long {
            a
        } else {
            a & 0xffff_ffff
        }
    };
    let base = mem.read(linear(TSS_IO_MAP_BASE), 2, Privilege::Implicit)?;
    let at = base + u64::from(port >> 3);
    if at + 1 > limit {
        return Err(Fault::gp(0));
    }
    let bits = mem.read(linear(at), 2, Privilege::Implicit)?;
    let mask = ((1u64 << size.clamp(1, 4)) - 1) << (port & 7);
    if bits & mask != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

/// `io_check(port, size)`: [`check_io`]; records #GP(0) (or the #PF of the TSS read) when denied.
pub(crate) unsafe extern "C" fn helper_io_check(env: *mut u8, port: u64, size: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on; no reference to it is live.
    unsafe { super::seg::run_sys(env, |s, m| check_io(s, m, port as u16, size as u8)) };
    0
}

/// All ones at `size` bytes: what an access with no port space reads.
fn ones(size: u64) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

/// `io_in(port, size) -> value`: reads `size` bytes (1, 2 or 4) from `port`.
pub(crate) unsafe extern "C" fn helper_io_in(env: *mut u8, port: u64, size: u64, _: u64, _: u64, _: u64) -> u64 {
    let size = size.clamp(1, 4);
    // SAFETY: generated code passes the CPU state it runs on.
    unsafe { with_sys(env, |m| m.io().read(port as u16, size as u32)) }.unwrap_or(ones(size)) & ones(size)
}

/// `io_out(port, size, value)`: writes the low `size` bytes of `value` to `port`.
pub(crate) unsafe extern "C" fn helper_io_out(env: *mut u8, port: u64, size: u64, value: u64, _: u64, _: u64) -> u64 {
    let size = size.clamp(1, 4);
    // SAFETY: as in `helper_io_in`.
    unsafe { with_sys(env, |m| m.io().write(port as u16, size as u32, value & ones(size))) };
    0
}

/// The ids of the port-I/O helpers.
#[derive(Clone, Copy, Debug)]
pub struct IoHelpers {
    /// `io_in(port, size) -> value`.
    pub io_in: HelperId,
    /// `io_out(port, size, value)`.
    pub io_out: HelperId,
    /// `io_check(port, size)`: the I/O permission check ([`check_io`]). Reads globals, may fault.
    pub io_check: HelperId,
}

/// Registers the port-I/O helpers. `io_in` and `io_out` neither read nor write the globals and never fault
/// (the permission check is `io_check`, emitted before them when needed); both have side effects (devices),
/// so they are not PURE. `io_check` reads the globals (EFLAGS.IOPL, the segment state) and may fault.
pub(crate) fn register_io_helpers(t: &mut TargetDesc) -> IoHelpers {
    let io_in = t.helpers.register(HelperInfo {
        name: "io_in",
        func: helper_io_in,
        flags: HelperFlags::empty(),
        args: &[Type::I64, Type::I64],
        ret: Some(Type::I64),
    });
    let io_out = t.helpers.register(HelperInfo {
        name: "io_out",
        func: helper_io_out,
        flags: HelperFlags::empty(),
        args: &[Type::I64, Type::I64, Type::I64],
        ret: None,
    });
    let io_check = t.helpers.register(HelperInfo {
        name: "io_check",
        func: helper_io_check,
        flags: HelperFlags::READS_GLOBALS | HelperFlags::MAY_FAULT,
        args: &[Type::I64, Type::I64],
        ret: None,
    });
    IoHelpers {
        io_in,
        io_out,
        io_check,
    }
}

impl DisasContext<'_> {
    /// in/out/ins/outs go to [`DisasContext::gen_io`] (before the string-operand dispatch, which would take
    /// ins/outs for string moves); `None` for every other instruction.
    pub(super) fn dispatch_io(&mut self, f: &mut Func) -> Option<bool> {
        use Mnemonic as M;
        match self.insn.mnemonic() {
            M::In | M::Out | M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => Some(self.gen_io(f)),
            _ => None,
        }
    }

    /// The operand size of an in/out/ins/outs: from the accumulator operand, or the mnemonic for ins/outs.
    fn io_size(&self) -> Option<Size> {
        use Mnemonic as M;
        match self.insn.mnemonic() {
            M::Insb | M::Outsb => Some(Size::B),
            M::Insw | M::Outsw => Some(Size::W),
            M::Insd | M::Outsd => Some(Size::L),
            _ => {
                let acc = if self.insn.mnemonic() == M::In { 0 } else { 1 };
                match self.insn.op_register(acc) {
                    Register::AL => Some(Size::B),
                    Register::AX => Some(Size::W),
                    Register::EAX => Some(Size::L),
                    _ => None,
                }
            }
        }
    }

    /// The port operand `n`: an immediate, or DX.
    fn io_port(&mut self, f: &mut Func, n: u32) -> Temp {
        if self.insn.op_kind(n) == OpKind::Immediate8 {
            return f.constant(Type::I64, u64::from(self.insn.immediate8()));
        }
        let t = f.new_ebb_temp(Type::I64);
        f.ext16u(t, I386Target::reg(reg::RDX));
        t
    }

    /// Emits the I/O permission check of port operand `n` for `size` bytes, when the TB flags allow
    /// CPL > IOPL (protected mode at CPL > 0, or vm86 mode); at CPL 0 and in real mode it is always allowed.
    fn gen_io_check(&mut self, f: &mut Func, n: u32, size: Size) {
        if !(self.flags.pe && (self.flags.cpl > 0 || self.flags.vm86)) {
            return;
        }
        let port = self.io_port(f, n);
        let bytes = f.constant(Type::I64, size.bytes() as u64);
        f.call(self.target.helpers.io.io_check, None, &[port, bytes]);
    }

    /// Ends the TB after an output at `dest`, back through the loop.
    fn io_exit(&mut self, f: &mut Func, dest: u64) {
        let rip = I386Target::global(global::RIP);
        f.movi(rip, dest);
        self.gen_exit_lookup(f);
        self.is_jmp = DisasJump::NoReturn;
    }

    /// in, out, ins, outs (and their rep forms); false for anything else.
    pub(super) fn gen_io(&mut self, f: &mut Func) -> bool {
        use Mnemonic as M;
        let Some(size) = self.io_size() else {
            return false;
        };
        let bytes = f.constant(Type::I64, size.bytes() as u64);
        match self.insn.mnemonic() {
            M::In => {
                self.gen_io_check(f, 1, size);
                let port = self.io_port(f, 1);
                let v = f.new_ebb_temp(Type::I64);
                f.call(self.target.helpers.io.io_in, Some(v), &[port, bytes]);
                self.write_reg_n(f, reg::RAX, size, v);
                true
            }
            M::Out => {
                self.gen_io_check(f, 0, size);
                let port = self.io_port(f, 0);
                let v = self.read_reg_n(f, reg::RAX, size);
                f.call(self.target.helpers.io.io_out, None, &[port, bytes, v]);
                let next = self.pc_next;
                self.io_exit(f, next);
                true
            }
            M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => self.gen_io_string(f, size),
            _ => false,
        }
    }

    /// ins and outs: one element per TB run (see the module doc).
    fn gen_io_string(&mut self, f: &mut Func, size: Size) -> bool {
        let input = matches!(self.insn.mnemonic(), Mnemonic::Insb | Mnemonic::Insw | Mnemonic::Insd);
        let (index_op, port_op) = if input { (0, 1) } else { (1, 0) };
        let asize = match self.insn.op_kind(index_op) {
            OpKind::MemoryESDI | OpKind::MemorySegSI => Size::W,
            OpKind::MemoryESEDI | OpKind::MemorySegESI => Size::L,
            _ => Size::Q,
        };
        self.gen_io_check(f, port_op, size);
        let rep = self.insn.has_rep_prefix() || self.insn.has_repne_prefix();
        let zero = f.constant(Type::I64, 0);
        let done = rep.then(|| {
            let done = f.new_label();
            let c = gen_ext(f, asize, false, I386Target::reg(reg::RCX));
            f.brcond(Cond::Eq, c, zero, done);
            done
        });
        // delta = DF ? -size : size
        let df = f.new_ebb_temp(Type::I64);
        f.extract(df, I386Target::global(global::EFLAGS), 10, 1);
        let delta = f.new_ebb_temp(Type::I64);
        let shift = f.constant(Type::I64, size.bytes().trailing_zeros() as u64 + 1);
        f.shl(delta, df, shift);
        let nbytes = f.constant(Type::I64, size.bytes() as u64);
        f.sub(delta, nbytes, delta);
        let port = self.io_port(f, port_op);
        let width = f.constant(Type::I64, size.bytes() as u64);
        let mmu = self.mem_index();
        let index = if input { reg::RDI } else { reg::RSI };
        // ins: ES always; outs: DS unless overridden.
        let seg_index = if input { seg::ES } else { self.mem_seg_index() };
        let off = gen_ext(f, asize, false, I386Target::reg(index));
        let a = f.new_ebb_temp(Type::I64);
        f.mov(a, off);
        let addr = self.add_seg_base(f, a, seg_index, size.bytes() as u64);
        if input {
            let v = f.new_ebb_temp(Type::I64);
            f.call(self.target.helpers.io.io_in, Some(v), &[port, width]);
            f.qemu_st(v, addr, memop(size), mmu);
        } else {
            let v = f.new_ebb_temp(Type::I64);
            f.qemu_ld(v, addr, memop(size), mmu);
            f.call(self.target.helpers.io.io_out, None, &[port, width, v]);
        }
        let t = f.new_ebb_temp(Type::I64);
        f.add(t, I386Target::reg(index), delta);
        self.write_reg_n(f, index, asize, t);
        let (again, next) = (self.pc, self.pc_next);
        let Some(done) = done else {
            if input {
                return true;
            }
            self.io_exit(f, next);
            return true;
        };
        let one = f.constant(Type::I64, 1);
        let c = f.new_ebb_temp(Type::I64);
        f.sub(c, I386Target::reg(reg::RCX), one);
        self.write_reg_n(f, reg::RCX, asize, c);
        let c = gen_ext(f, asize, false, I386Target::reg(reg::RCX));
        f.brcond(Cond::Eq, c, zero, done);
        if input {
            self.gen_jmp_tb(f, 0, again);
        } else {
            self.io_exit(f, again);
        }
        f.set_label(done);
        if input {
            self.gen_jmp_tb(f, 1, next);
        } else {
            self.io_exit(f, next);
        }
        self.is_jmp = DisasJump::NoReturn;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::X86CpuState;

    #[test]
    fn a_bare_state_reads_all_ones_and_drops_writes() {
        let mut s = Box::new(X86CpuState::new());
        let env: *mut u8 = (&mut *s as *mut X86CpuState).cast();
        // SAFETY: `env` is a live state with no memory link.
        unsafe {
            assert_eq!(helper_io_in(env, 0x80, 1, 0, 0, 0), 0xff);
            assert_eq!(helper_io_in(env, 0x80, 2, 0, 0, 0), 0xffff);
            assert_eq!(helper_io_in(env, 0x80, 4, 0, 0, 0), 0xffff_ffff);
            assert_eq!(helper_io_out(env, 0x80, 1, 5, 0, 0), 0);
        }
    }
}
