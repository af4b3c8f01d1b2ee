//! Segmentation and privileged-flag instructions, translated into calls of the [`crate::seg_helper`] functions
//! through helpers: mov to/from segment registers, push/pop of segment registers, lds/les/lfs/lgs/lss, far
//! jmp/call (direct and through memory), retf (imm16), iret/iretd/iretq, lar/lsl/verr/verw, and cli, sti,
//! hlt (the IOPL and CPL rules; popf's are in `stack.rs`, through [`helper_sys_flags`]).
//!
//! # Helpers
//! Each helper reaches memory through [`crate::machine::with_sys`] as a [`PagedMem`] over the CPU's
//! `SoftMmu` (a page walk per access, writes through `write_phys`, so pushes into translated code invalidate
//! it). A state without memory (`X86CpuState::sys` = 0: translator-only harnesses) gets [`NoMem`], whose every
//! access is #GP(0): real-mode segment loads and the flag instructions still work there. A helper that fails
//! records the fault ([`Fault::record`]) and the TB exits; the loop restores the instruction from
//! `insn_start`, so the instruction is restartable (the helpers change the state only on success; memory
//! pushed before a fault stays written, as on hardware).
//!
//! # TB ends
//! Anything that may change a [`super::TbFlags`] field ends the TB: segment loads outside 64-bit mode (bases,
//! `ss32`, `addseg`), SS loads in every mode (interrupt shadow), far transfers and iret (CS, CPL, mode; iret and
//! sti with a lookup exit so the loop checks for interrupts before the next TB), sti, popf, hlt.

use iced_x86::{Code, MemorySize, Mnemonic, OpKind, Register};
use rqemu_tcg::{Cond, Func, HelperFlags, HelperId, HelperInfo, Opcode, TargetDesc, Temp, Type};

use super::operand::Loc;
use super::{DisasContext, DisasJump};
use crate::cc::{CcOp, Size};
use crate::cpu::{eflags, excp, seg, SegmentCache, X86CpuState};
use crate::desc::{global, I386Target};
use crate::paging::Privilege;
use crate::seg_helper::{self, OpSize};
use crate::sysmem::{Fault, PagedMem, SysMem};

/// The ids of the segmentation helpers (registered with the target by `I386Target::with_lookup`).
#[derive(Clone, Copy, Debug)]
pub struct SegHelpers {
    /// `load_seg(seg_reg: i32, sel: i32)`: [`seg_helper::load_seg`]. Reads globals, may fault.
    pub load_seg: HelperId,
    /// `far_jmp(sel: i32, offset: i64)`: [`seg_helper::far_jmp`]. Writes rip; may fault.
    pub far_jmp: HelperId,
    /// `far_call(sel | size << 16: i32, offset: i64, next_rip: i64)`: [`seg_helper::far_call`].
    pub far_call: HelperId,
    /// `far_ret(size | imm16 << 8: i32)`: [`seg_helper::far_ret`].
    pub far_ret: HelperId,
    /// `iret(size: i32)`: [`seg_helper::iret`].
    pub iret: HelperId,
    /// `lar_lsl(op: i32, sel: i32) -> i64`: lar (0), lsl (1), verr (2), verw (3); sets ZF, returns the value
    /// with bit 32 set when ZF = 1.
    pub lar_lsl: HelperId,
    /// `sys_flags(op: i32, value: i64, size: i32)`: cli (0), sti (1), popf (2), the vm86 IOPL check of pushf (3).
    pub sys_flags: HelperId,
    /// `seg_check(seg_reg: i32, offset: i64, len: i32)`: [`seg_helper::check_data_access`]; may fault.
    pub seg_check: HelperId,
}

/// Registers the segmentation helpers on `t` (called by [`I386Target::with_lookup`]).
pub(crate) fn register_seg_helpers(t: &mut TargetDesc) -> SegHelpers {
    let rw = HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT;
    let mut reg = |name: &'static str, func, flags, args: &'static [Type], ret| {
        t.helpers.register(HelperInfo {
            name,
            func,
            flags,
            args,
            ret,
        })
    };
    SegHelpers {
        load_seg: reg(
            "load_seg",
            helper_load_seg,
            HelperFlags::READS_GLOBALS | HelperFlags::MAY_FAULT,
            &[Type::I32, Type::I32],
            None,
        ),
        far_jmp: reg("far_jmp", helper_far_jmp, rw, &[Type::I32, Type::I64], None),
        seg_check: reg(
            "seg_check",
            helper_seg_check,
            HelperFlags::MAY_FAULT,
            &[Type::I32, Type::I64, Type::I32],
            None,
        ),
        far_call: reg(
            "far_call",
            helper_far_call,
            rw,
            &[Type::I32, Type::I64, Type::I64],
            None,
        ),
        far_ret: reg("far_ret", helper_far_ret, rw, &[Type::I32], None),
        iret: reg("iret", helper_iret, rw, &[Type::I32], None),
        lar_lsl: reg("lar_lsl", helper_lar_lsl, rw, &[Type::I32, Type::I32], Some(Type::I64)),
        sys_flags: reg(
            "sys_flags",
            helper_sys_flags,
            rw,
            &[Type::I32, Type::I64, Type::I32],
            None,
        ),
    }
}

/// The segment register number of `r` (ES..GS), if it is one.
pub(super) fn sreg(r: Register) -> Option<usize> {
    Some(match r {
        Register::ES => seg::ES,
        Register::CS => seg::CS,
        Register::SS => seg::SS,
        Register::DS => seg::DS,
        Register::FS => seg::FS,
        Register::GS => seg::GS,
        _ => return None,
    })
}

/// Byte offset of the selector of segment register `i` in the state.
fn sel_offset(i: usize) -> i32 {
    (core::mem::offset_of!(X86CpuState, segs)
        + i * core::mem::size_of::<SegmentCache>()
        + core::mem::offset_of!(SegmentCache, selector)) as i32
}

/// Byte offset of `interrupt_shadow`.
pub(super) const SHADOW_OFFSET: i32 = core::mem::offset_of!(X86CpuState, interrupt_shadow) as i32;

/// The operand size of push/pop of a segment register.
fn sreg_stack_size(code: Code) -> Size {
    use Code as C;
    match code {
        C::Pushd_ES | C::Popd_ES | C::Pushd_CS | C::Pushd_SS | C::Popd_SS | C::Pushd_DS | C::Popd_DS => Size::L,
        C::Pushd_FS | C::Popd_FS | C::Pushd_GS | C::Popd_GS => Size::L,
        C::Pushq_FS | C::Popq_FS | C::Pushq_GS | C::Popq_GS => Size::Q,
        _ => Size::W,
    }
}

/// The helper encoding of an operand size.
fn op_size_code(size: Size) -> u64 {
    match size {
        Size::Q => 2,
        Size::L => 1,
        _ => 0,
    }
}

fn op_size_of(code: u64) -> OpSize {
    match code & 3 {
        2 => OpSize::Qword,
        1 => OpSize::Dword,
        _ => OpSize::Word,
    }
}

impl DisasContext<'_> {
    /// Translates the instructions of this file; `None` when the instruction is not one of them.
    pub(super) fn dispatch_seg(&mut self, f: &mut Func) -> Option<bool> {
        use Mnemonic as M;
        let i = &self.insn;
        let has_sreg = (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && sreg(i.op_register(n)).is_some());
        Some(match i.mnemonic() {
            M::Mov if has_sreg => self.gen_mov_sreg(f),
            M::Push | M::Pop if has_sreg => self.gen_push_pop_sreg(f),
            M::Lds | M::Les | M::Lfs | M::Lgs | M::Lss => self.gen_load_far_ptr(f),
            M::Jmp | M::Call
                if matches!(i.op_kind(0), OpKind::FarBranch16 | OpKind::FarBranch32)
                    || (i.op_kind(0) == OpKind::Memory
                        && matches!(
                            i.memory_size(),
                            MemorySize::SegPtr16 | MemorySize::SegPtr32 | MemorySize::SegPtr64
                        )) =>
            {
                self.gen_far_branch(f)
            }
            M::Retf => self.gen_retf(f),
            M::Iret | M::Iretd | M::Iretq => self.gen_iret(f),
            M::Lar | M::Lsl | M::Verr | M::Verw => self.gen_lar_lsl(f),
            M::Cli | M::Sti => self.gen_cli_sti(f),
            M::Hlt => self.gen_hlt(f),
            _ => return None,
        })
    }

    /// The 16-bit selector operand `n` (register: its low 16 bits; memory: a 16-bit load).
    fn load_selector(&mut self, f: &mut Func, n: u32) -> Option<Temp> {
        match self.insn.op_kind(n) {
            OpKind::Register => {
                let v = self.read_reg(f, self.insn.op_register(n));
                Some(super::operand::gen_ext(f, Size::W, false, v))
            }
            OpKind::Memory => {
                let loc = self.op_loc(f, n);
                Some(self.gen_ld(f, loc, Size::W))
            }
            _ => None,
        }
    }

    /// Ends the TB at the next instruction with a plain lookup exit: the loop recomputes the TB flags and
    /// checks for interrupts first (QEMU's `gen_eob`).
    pub(super) fn gen_eob(&mut self, f: &mut Func) {
        let rip = I386Target::global(global::RIP);
        f.movi(rip, self.pc_next);
        self.gen_exit_lookup(f);
        self.is_jmp = DisasJump::NoReturn;
    }

    /// Ends the TB at the `rip` a helper wrote (far transfers).
    fn gen_eob_rip(&mut self, f: &mut Func, lookup: bool) {
        if lookup {
            self.gen_lookup_exit(f);
        } else {
            self.gen_exit_lookup(f);
        }
        self.is_jmp = DisasJump::NoReturn;
    }

    /// Calls `load_seg(seg_reg, sel)`; then, for mov ss and pop ss (`shadow`; not lss), starts the interrupt
    /// shadow. Returns whether the TB must end (the TB flags may have changed).
    fn gen_load_seg(&mut self, f: &mut Func, seg_reg: usize, sel: Temp, shadow: bool) -> bool {
        let r = f.constant(Type::I32, seg_reg as u64);
        let s = f.new_ebb_temp(Type::I32);
        f.extrl_i64_i32(s, sel);
        f.call(self.target.helpers.seg.load_seg, None, &[r, s]);
        if seg_reg == seg::SS && shadow {
            self.holds_single_step = true;
            let one = f.constant(Type::I32, 1);
            f.store(Opcode::St, one, Temp::ENV, SHADOW_OFFSET);
        }
        // In 64-bit mode only SS (shadow) matters for the TB flags: FS/GS bases are read at run time.
        seg_reg == seg::SS || !self.flags.code64()
    }

    /// mov Sreg, r/m16 and mov r/m, Sreg.
    fn gen_mov_sreg(&mut self, f: &mut Func) -> bool {
        let i = self.insn;
        if i.op_kind(0) == OpKind::Register {
            if let Some(dst) = sreg(i.op_register(0)) {
                if dst == seg::CS {
                    return false; // mov cs: #UD
                }
                let Some(sel) = self.load_selector(f, 1) else {
                    return false;
                };
                if self.gen_load_seg(f, dst, sel, true) {
                    self.gen_eob(f);
                }
                return true;
            }
        }
        let Some(src) = sreg(i.op_register(1)) else {
            return false;
        };
        let v = f.new_ebb_temp(Type::I64);
        f.load(Opcode::Ld16u, v, Temp::ENV, sel_offset(src));
        match i.op_kind(0) {
            // A register destination gets the selector zero-extended to its size.
            OpKind::Register => self.write_reg(f, i.op_register(0), v),
            _ => {
                let loc = self.op_loc(f, 0);
                self.gen_st(f, loc, Size::W, v);
            }
        }
        true
    }

    /// push Sreg (the selector zero-extended to the operand size) and pop Sreg (ES, SS, DS outside 64-bit
    /// mode; FS, GS everywhere). pop loads the value, loads the segment (which may fault, rsp unchanged), then
    /// moves rsp.
    fn gen_push_pop_sreg(&mut self, f: &mut Func) -> bool {
        let i = self.insn;
        let Some(r) = sreg(i.op_register(0)) else {
            return false;
        };
        let size = sreg_stack_size(i.code());
        if i.mnemonic() == Mnemonic::Push {
            let v = f.new_ebb_temp(Type::I64);
            f.load(Opcode::Ld16u, v, Temp::ENV, sel_offset(r));
            self.gen_push_v(f, v, size);
            return true;
        }
        if r == seg::CS {
            return false;
        }
        let v = self.gen_pop_load(f, size);
        let end = self.gen_load_seg(f, r, v, true);
        self.gen_pop_update(f, size.bytes() as u64);
        if end {
            self.gen_eob(f);
        }
        true
    }

    /// lds/les/lfs/lgs/lss r, m16:16/32/64: the offset (operand size) then the selector after it; both are
    /// read before the segment is loaded and the register written.
    fn gen_load_far_ptr(&mut self, f: &mut Func) -> bool {
        let i = self.insn;
        let r = match i.mnemonic() {
            Mnemonic::Lds => seg::DS,
            Mnemonic::Les => seg::ES,
            Mnemonic::Lfs => seg::FS,
            Mnemonic::Lgs => seg::GS,
            _ => seg::SS,
        };
        if i.op_kind(0) != OpKind::Register || i.op_kind(1) != OpKind::Memory {
            return false;
        }
        let Some(size) = super::operand::gpr(i.op_register(0)).map(|g| g.size) else {
            return false;
        };
        let (offset, sel) = self.gen_load_far_pointer(f, size);
        let end = self.gen_load_seg(f, r, sel, false);
        self.write_reg(f, i.op_register(0), offset);
        if end {
            self.gen_eob(f);
        }
        true
    }

    /// Loads a far pointer (offset of `size`, then a 16-bit selector) from the memory operand.
    fn gen_load_far_pointer(&mut self, f: &mut Func, size: Size) -> (Temp, Temp) {
        let addr = self.gen_ea(f, 0);
        let offset = self.gen_ld(f, Loc::Mem(addr), size);
        let a2 = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, size.bytes() as u64);
        f.add(a2, addr, k);
        if !self.flags.code64() {
            f.ext32u(a2, a2);
        }
        let sel = self.gen_ld(f, Loc::Mem(a2), Size::W);
        (offset, sel)
    }

    /// jmp/call ptr16:16/32 and m16:16/32/64.
    fn gen_far_branch(&mut self, f: &mut Func) -> bool {
        let i = self.insn;
        let (size, sel, offset) = match i.op_kind(0) {
            OpKind::FarBranch16 => (
                Size::W,
                f.constant(Type::I64, u64::from(i.far_branch_selector())),
                f.constant(Type::I64, u64::from(i.far_branch16())),
            ),
            OpKind::FarBranch32 => (
                Size::L,
                f.constant(Type::I64, u64::from(i.far_branch_selector())),
                f.constant(Type::I64, u64::from(i.far_branch32())),
            ),
            _ => {
                let size = match i.memory_size() {
                    MemorySize::SegPtr64 => Size::Q,
                    MemorySize::SegPtr32 => Size::L,
                    _ => Size::W,
                };
                let (offset, sel) = self.gen_load_far_pointer(f, size);
                (size, sel, offset)
            }
        };
        let sel32 = f.new_ebb_temp(Type::I32);
        f.extrl_i64_i32(sel32, sel);
        if i.mnemonic() == Mnemonic::Jmp {
            f.call(self.target.helpers.seg.far_jmp, None, &[sel32, offset]);
        } else {
            let k = f.constant(Type::I32, op_size_code(size) << 16);
            f.or(sel32, sel32, k);
            let next = f.constant(Type::I64, self.pc_next);
            f.call(self.target.helpers.seg.far_call, None, &[sel32, offset, next]);
        }
        self.forget_cc_op();
        self.gen_eob_rip(f, true);
        true
    }

    /// retf and retf imm16.
    fn gen_retf(&mut self, f: &mut Func) -> bool {
        let i = self.insn;
        let size = match i.code() {
            Code::Retfq | Code::Retfq_imm16 => Size::Q,
            Code::Retfd | Code::Retfd_imm16 => Size::L,
            _ => Size::W,
        };
        let imm = if i.op_count() > 0 { i.immediate(0) & 0xffff } else { 0 };
        let a = f.constant(Type::I32, op_size_code(size) | imm << 8);
        f.call(self.target.helpers.seg.far_ret, None, &[a]);
        self.forget_cc_op();
        self.gen_eob_rip(f, true);
        true
    }

    /// iret/iretd/iretq: ends with a plain exit, so the loop checks for interrupts (IF may be set).
    fn gen_iret(&mut self, f: &mut Func) -> bool {
        let size = match self.insn.code() {
            Code::Iretq => Size::Q,
            Code::Iretd => Size::L,
            _ => Size::W,
        };
        let a = f.constant(Type::I32, op_size_code(size));
        f.call(self.target.helpers.seg.iret, None, &[a]);
        self.forget_cc_op();
        self.gen_eob_rip(f, false);
        true
    }

    /// lar/lsl r, r/m16 (the destination written only when ZF = 1) and verr/verw r/m16 (ZF only).
    fn gen_lar_lsl(&mut self, f: &mut Func) -> bool {
        let i = self.insn;
        let (op, sel_operand) = match i.mnemonic() {
            Mnemonic::Lar => (0, 1),
            Mnemonic::Lsl => (1, 1),
            Mnemonic::Verr => (2, 0),
            _ => (3, 0),
        };
        let Some(sel) = self.load_selector(f, sel_operand) else {
            return false;
        };
        let s = f.new_ebb_temp(Type::I32);
        f.extrl_i64_i32(s, sel);
        let k = f.constant(Type::I32, op);
        let ret = f.new_ebb_temp(Type::I64);
        f.call(self.target.helpers.seg.lar_lsl, Some(ret), &[k, s]);
        // The helper materialized RFLAGS with the new ZF.
        self.forget_cc_op();
        self.set_cc_op(f, CcOp::EFLAGS);
        if op < 2 {
            let dst = i.op_register(0);
            let skip = f.new_label();
            let zf = f.new_ebb_temp(Type::I64);
            f.extract(zf, ret, 32, 1);
            let zero = f.constant(Type::I64, 0);
            f.brcond(Cond::Eq, zf, zero, skip);
            let v = f.new_ebb_temp(Type::I64);
            f.ext32u(v, ret);
            self.write_reg(f, dst, v);
            f.set_label(skip);
        }
        true
    }

    /// cli and sti (IOPL rules in the helper); sti ends the TB, so the one-instruction interrupt shadow
    /// (when it set IF) starts at the next TB and pending interrupts are taken after it.
    fn gen_cli_sti(&mut self, f: &mut Func) -> bool {
        let op = u64::from(self.insn.mnemonic() == Mnemonic::Sti);
        let k = f.constant(Type::I32, op);
        let zero = f.constant(Type::I64, 0);
        let z32 = f.constant(Type::I32, 0);
        f.call(self.target.helpers.seg.sys_flags, None, &[k, zero, z32]);
        if op == 1 {
            self.gen_eob(f);
        }
        true
    }

    /// hlt: #GP(0) above CPL 0; otherwise `halted = 1` and a plain exit to the loop at the next instruction
    /// (the loop's `check_halted` then stops until an interrupt wakes the CPU).
    fn gen_hlt(&mut self, f: &mut Func) -> bool {
        if self.flags.cpl != 0 {
            self.gen_exception(f, excp::GP, 0);
            return true;
        }
        let one = f.constant(Type::I32, 1);
        f.store(
            Opcode::St,
            one,
            Temp::ENV,
            core::mem::offset_of!(X86CpuState, halted) as i32,
        );
        self.gen_eob(f);
        true
    }

    /// pushf in vm86 mode: #GP(0) unless IOPL = 3 (no VME).
    pub(super) fn gen_vm86_iopl_check(&mut self, f: &mut Func) {
        if self.flags.vm86 {
            let k = f.constant(Type::I32, 3);
            let zero = f.constant(Type::I64, 0);
            let z32 = f.constant(Type::I32, 0);
            f.call(self.target.helpers.seg.sys_flags, None, &[k, zero, z32]);
        }
    }

    /// popf's flag update through the `sys_flags` helper (privilege rules there); `v` is the popped value.
    pub(super) fn gen_popf_flags(&mut self, f: &mut Func, v: Temp, size: Size) {
        let k = f.constant(Type::I32, 2);
        let s = f.constant(Type::I32, op_size_code(size));
        f.call(self.target.helpers.seg.sys_flags, None, &[k, v, s]);
        self.forget_cc_op();
        self.set_cc_op(f, CcOp::EFLAGS);
    }
}

/// Linear memory for a state without the machine's memory attached: every access is #GP(0).
pub struct NoMem;

impl SysMem for NoMem {
    fn read(&mut self, _linear: u64, _size: u8, _privilege: Privilege) -> Result<u64, Fault> {
        Err(Fault::gp(0))
    }

    fn write(&mut self, _linear: u64, _size: u8, _value: u64, _privilege: Privilege) -> Result<(), Fault> {
        Err(Fault::gp(0))
    }
}

/// Runs `op` on the CPU state at `env` with the CPU's memory ([`PagedMem`] over its `SoftMmu`, or [`NoMem`]);
/// on `Err` records the fault (the helper then returns and the TB exits). `None` when it faulted.
///
/// # Safety
/// `env` is the [`X86CpuState`] generated code runs on, and no reference to it is live.
pub(crate) unsafe fn run_sys<R>(
    env: *mut u8,
    op: impl FnOnce(&mut X86CpuState, &mut dyn SysMem) -> Result<R, Fault>,
) -> Option<R> {
    let mut op = Some(op);
    // SAFETY: the caller's promise. The state reference lives only inside the closure, while the SoftMmu is
    // used through `space_mut`/`write_phys` and page walks, which never touch the TLB tables in the state
    // (`with_sys`'s rule).
    let done = unsafe {
        crate::machine::with_sys(env, |soft| {
            let s = &mut *env.cast::<X86CpuState>();
            let regs = crate::machine::sys_paging_regs(soft, s);
            let mut mem = PagedMem { space: soft, regs };
            let op = op.take().expect("called once");
            op(s, &mut mem)
        })
    };
    // SAFETY: as above; the memory borrow has ended.
    let s = unsafe { &mut *env.cast::<X86CpuState>() };
    let result = match (done, op.take()) {
        (Some(r), _) => r,
        (None, Some(op)) => op(s, &mut NoMem),
        (None, None) => Err(Fault::gp(0)),
    };
    match result {
        Ok(v) => Some(v),
        Err(fault) => {
            fault.record(s);
            None
        }
    }
}

/// `load_seg(seg_reg, sel)`.
unsafe extern "C" fn helper_load_seg(env: *mut u8, r: u64, sel: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    unsafe { run_sys(env, |s, m| seg_helper::load_seg(s, m, (r & 0xff) as usize, sel as u16)) };
    0
}

/// `seg_check(seg_reg, offset, len)`.
unsafe extern "C" fn helper_seg_check(env: *mut u8, r: u64, offset: u64, len: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on; no reference to it is live.
    let s = unsafe { &mut *env.cast::<X86CpuState>() };
    if let Err(e) = seg_helper::check_data_access(s, (r % 6) as usize, offset, len & 0xffff) {
        s.raise(e.vector, e.error_code);
    }
    0
}

/// `far_jmp(sel, offset)`.
unsafe extern "C" fn helper_far_jmp(env: *mut u8, sel: u64, offset: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    unsafe { run_sys(env, |s, m| seg_helper::far_jmp(s, m, sel as u16, offset)) };
    0
}

/// `far_call(sel | size << 16, offset, next_rip)`.
unsafe extern "C" fn helper_far_call(env: *mut u8, a: u64, offset: u64, next: u64, _: u64, _: u64) -> u64 {
    let size = op_size_of(a >> 16);
    // SAFETY: generated code passes the CPU state it runs on.
    unsafe { run_sys(env, |s, m| seg_helper::far_call(s, m, a as u16, offset, size, next)) };
    0
}

/// `far_ret(size | imm16 << 8)`.
unsafe extern "C" fn helper_far_ret(env: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let size = op_size_of(a);
    let imm = (a >> 8) as u16;
    // SAFETY: generated code passes the CPU state it runs on.
    unsafe { run_sys(env, |s, m| seg_helper::far_ret(s, m, size, imm)) };
    0
}

/// `iret(size)`.
unsafe extern "C" fn helper_iret(env: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let size = op_size_of(a);
    // SAFETY: generated code passes the CPU state it runs on.
    unsafe { run_sys(env, |s, m| seg_helper::iret(s, m, size)) };
    0
}

/// `lar_lsl(op, sel) -> value | ZF << 32`: lar (0), lsl (1), verr (2), verw (3); RFLAGS.ZF set accordingly.
unsafe extern "C" fn helper_lar_lsl(env: *mut u8, op: u64, sel: u64, _: u64, _: u64, _: u64) -> u64 {
    let sel = sel as u16;
    // SAFETY: generated code passes the CPU state it runs on.
    let r = unsafe {
        run_sys(env, |s, m| {
            let v = match op & 3 {
                0 => seg_helper::lar(s, m, sel)?,
                1 => seg_helper::lsl(s, m, sel)?,
                2 => seg_helper::verr(s, m, sel)?.then_some(0),
                _ => seg_helper::verw(s, m, sel)?.then_some(0),
            };
            let zf = crate::cc::CC_Z;
            let flags = s.rflags() & !zf;
            s.set_rflags(if v.is_some() { flags | zf } else { flags });
            Ok(v.map_or(0, |v| u64::from(v) | 1 << 32))
        })
    };
    r.unwrap_or(0)
}

/// `sys_flags(op, value, size)`: the privilege rules of cli (0), sti (1), popf (2) and pushf (3):
/// - vm86 mode with IOPL < 3: #GP(0) for all four (VME is not emulated);
/// - protected mode: cli/sti need CPL ≤ IOPL (#GP(0));
/// - popf loads the arithmetic flags, TF, DF, NT, AC, ID (only the low 16 bits for a 16-bit popf), IOPL only
///   at CPL 0 (and not in vm86 mode), IF only when CPL ≤ IOPL (silently kept otherwise); RF is cleared, VM,
///   VIF and VIP are kept;
/// - sti that sets IF starts the interrupt shadow.
unsafe extern "C" fn helper_sys_flags(env: *mut u8, op: u64, value: u64, size: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let s = unsafe { &mut *env.cast::<X86CpuState>() };
    let cpl = seg_helper::cpl(s);
    let iopl = ((s.eflags & eflags::IOPL) >> 12) as u8;
    let vm86 = seg_helper::is_vm86(s);
    if vm86 && iopl < 3 {
        s.raise(excp::GP, 0);
        return 0;
    }
    match op & 3 {
        0 | 1 => {
            if seg_helper::is_protected(s) && cpl > iopl {
                s.raise(excp::GP, 0);
                return 0;
            }
            if op & 1 == 1 {
                if s.eflags & eflags::IF == 0 {
                    s.interrupt_shadow = 1;
                }
                s.eflags |= eflags::IF;
            } else {
                s.eflags &= !eflags::IF;
            }
        }
        2 => {
            let mut writable = crate::cc::CC_MASK | eflags::TF | eflags::DF | eflags::NT | eflags::AC | eflags::ID;
            if cpl == 0 && !vm86 {
                writable |= eflags::IOPL;
            }
            if cpl <= iopl {
                writable |= eflags::IF;
            }
            if size & 3 == 0 {
                writable &= 0xffff;
            }
            let old = s.rflags();
            s.set_rflags((old & !writable & !eflags::RF) | (value & writable));
        }
        _ => {}
    }
    0
}
