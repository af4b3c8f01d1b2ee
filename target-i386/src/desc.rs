//! The IR view of the x86 CPU: which [`X86CpuState`] fields are globals, which helpers generated code calls,
//! and the [`rqemu_tcg::TargetDesc`] that carries both.
//!
//! Globals (temps 1.. of every function, in this order): `rax`..`r15`, `rip`, `eflags`, `cc_dst`, `cc_src`,
//! `cc_src2` (i64) and `cc_op` (i32). Everything else (segment bases, control registers) is read with plain
//! `ld` from `env` or through helpers.

use std::sync::Arc;

use core::mem::offset_of;
use rqemu_tcg::{HelperFlags, HelperFn, HelperId, HelperInfo, TargetDesc, Temp, Type};

use crate::cc;
use crate::cpu::{self, X86CpuState, NB_REGS};

/// Names of the general-purpose registers, in encoding order.
pub const REG_NAMES: [&str; NB_REGS] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];

/// Global indexes (positions in [`TargetDesc::globals`]); `Func::global(i)` gives the temp.
pub mod global {
    /// `rip`
    pub const RIP: usize = 16;
    /// `eflags` (non-arithmetic bits)
    pub const EFLAGS: usize = 17;
    /// `cc_dst`
    pub const CC_DST: usize = 18;
    /// `cc_src`
    pub const CC_SRC: usize = 19;
    /// `cc_src2`
    pub const CC_SRC2: usize = 20;
    /// `cc_op` (i32)
    pub const CC_OP: usize = 21;
}

/// The helpers the translator calls.
#[derive(Clone, Copy, Debug)]
pub struct Helpers {
    /// `compute_eflags(cc_op: i32, dst, src, src2) -> i64`, PURE.
    pub compute_eflags: HelperId,
    /// `compute_cf(cc_op: i32, dst, src, src2) -> i64`, PURE.
    pub compute_cf: HelperId,
    /// `raise_exception(vector: i32, error_code: i32)`, MAY_FAULT: always faults.
    pub raise_exception: HelperId,
    /// `rotate_carry(mode: i32, value, count, flags) -> result` (rcl/rcr), PURE.
    pub rotate_carry: HelperId,
    /// `rotate_carry_flags(mode: i32, value, count, flags) -> flags`, PURE.
    pub rotate_carry_flags: HelperId,
    /// `divide(mode: i32, divisor: i64)`: div/idiv on rdx:rax; reads and writes globals, may raise #DE.
    pub divide: HelperId,
    /// `cpuid()`: reads eax/ecx, writes rax..rdx.
    pub cpuid: HelperId,
    /// `rdtsc() -> i64`: the TSC ([`X86CpuState::read_tsc`]); no globals.
    pub rdtsc: HelperId,
    /// `raise_interrupt(vector: i32, is_int: i32, next_rip: i64)`, MAY_FAULT: always faults, recording a trap
    /// that returns to `next_rip` (int n, int3, into, int1).
    pub raise_interrupt: HelperId,
    /// `pdep_pext(mode: i32, value, mask) -> i64`, PURE: mode 0 pdep, 1 pext.
    pub pdep_pext: HelperId,
    /// `lookup_tb_ptr() -> ptr`, registered by the execution loop: the handle of the TB at the current `rip`
    /// (0: back to the loop). When absent, indirect jumps end with `exit_tb(EXIT_LOOKUP)`.
    pub lookup_tb_ptr: Option<HelperId>,
    /// Segmentation, far transfers, iret, lar/lsl/verr/verw and the privileged flag rules (cli, sti, popf):
    /// `translate/seg.rs`, each MAY_FAULT and reading (most also writing) the globals.
    pub seg: crate::translate::SegHelpers,
    /// `sysreg(op: i32, value: i64) -> i64`: control/debug registers, MSRs, descriptor-table registers,
    /// syscall/sysenter and their returns (`translate/sysregs.rs`); reads and writes globals, may fault.
    pub sysreg: HelperId,
    /// `io_in(port, size) -> value` and `io_out(port, size, value)`: port I/O through the CPU's port space
    /// (`translate/io.rs`); no globals, no faults.
    pub io: crate::translate::IoHelpers,
    /// `vec_op(word, dst_off, src_off, imm, extra) -> i64`: the SSE/MMX integer operations on CPU-state offsets
    /// ([`crate::vec_helper`]); no globals, no faults.
    pub vec_op: HelperId,
    /// The same function registered READS_GLOBALS, for pcmpestri/pcmpestrm (they read rax and rdx).
    pub vec_op_regs: HelperId,
    /// `x87(op: i32, a: i32, b: i32, c: i32)`: the x87 FPU ([`crate::fpu_helper`]); reads and writes globals
    /// (EFLAGS: fcmov, fcomi), may fault (#NM, #MF).
    pub x87: HelperId,
    /// `sse_fp(op: i32, dst_off: i32, src_off: i32, imm: i32) -> i64`: SSE floating point on CPU-state
    /// offsets ([`crate::sse_fp_helper::helper_sse_fp`]); MAY_FAULT (#XM/#UD), no globals.
    pub sse_fp: HelperId,
}

/// The x86 target: its [`TargetDesc`] and the ids of its helpers. Build it once and share it.
#[derive(Clone, Debug)]
pub struct I386Target {
    /// Globals, helpers, fault word and state size.
    pub desc: Arc<TargetDesc>,
    /// Helper ids.
    pub helpers: Helpers,
}

unsafe extern "C" fn helper_raise_exception(env: *mut u8, vector: u64, code: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
    cpu.raise(vector as u32, code as u32);
    0
}

const CC_ARGS: &[Type] = &[Type::I32, Type::I64, Type::I64, Type::I64];

impl I386Target {
    /// The target without a TB lookup helper.
    pub fn new() -> I386Target {
        I386Target::with_lookup(None)
    }

    /// The target; `lookup_tb_ptr`, when given, is the execution loop's helper that returns the handle of the
    /// TB at the current `rip` (or 0) and lets indirect jumps end with `goto_ptr`.
    pub fn with_lookup(lookup_tb_ptr: Option<HelperFn>) -> I386Target {
        let mut t = TargetDesc::new(cpu::FAULT_OFFSET as i32);
        t.env_size = core::mem::size_of::<X86CpuState>();
        t.tlb_offset = Some(cpu::TLB_OFFSET as i32);
        for (i, name) in REG_NAMES.iter().enumerate() {
            t.add_global(name, Type::I64, cpu::reg_offset(i) as i32);
        }
        let fields = [
            ("rip", offset_of!(X86CpuState, rip), global::RIP),
            ("eflags", offset_of!(X86CpuState, eflags), global::EFLAGS),
            ("cc_dst", offset_of!(X86CpuState, cc_dst), global::CC_DST),
            ("cc_src", offset_of!(X86CpuState, cc_src), global::CC_SRC),
            ("cc_src2", offset_of!(X86CpuState, cc_src2), global::CC_SRC2),
        ];
        for (name, off, index) in fields {
            let got = t.add_global(name, Type::I64, off as i32);
            debug_assert_eq!(got, index);
        }
        let got = t.add_global("cc_op", Type::I32, offset_of!(X86CpuState, cc_op) as i32);
        debug_assert_eq!(got, global::CC_OP);

        let compute_eflags = t.helpers.register(HelperInfo {
            name: "compute_eflags",
            func: cc::helper_compute_eflags,
            flags: HelperFlags::PURE,
            args: CC_ARGS,
            ret: Some(Type::I64),
        });
        let compute_cf = t.helpers.register(HelperInfo {
            name: "compute_cf",
            func: cc::helper_compute_cf,
            flags: HelperFlags::PURE,
            args: CC_ARGS,
            ret: Some(Type::I64),
        });
        let raise_exception = t.helpers.register(HelperInfo {
            name: "raise_exception",
            func: helper_raise_exception,
            flags: HelperFlags::MAY_FAULT,
            args: &[Type::I32, Type::I32],
            ret: None,
        });
        let rotate_carry = t.helpers.register(HelperInfo {
            name: "rotate_carry",
            func: crate::translate::helper_rotate_carry,
            flags: HelperFlags::PURE,
            args: CC_ARGS,
            ret: Some(Type::I64),
        });
        let rotate_carry_flags = t.helpers.register(HelperInfo {
            name: "rotate_carry_flags",
            func: crate::translate::helper_rotate_carry_flags,
            flags: HelperFlags::PURE,
            args: CC_ARGS,
            ret: Some(Type::I64),
        });
        let divide = t.helpers.register(HelperInfo {
            name: "divide",
            func: crate::translate::helper_divide,
            flags: HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT,
            args: &[Type::I32, Type::I64],
            ret: None,
        });
        let cpuid = t.helpers.register(HelperInfo {
            name: "cpuid",
            func: crate::translate::helper_cpuid,
            flags: HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS,
            args: &[],
            ret: None,
        });
        let rdtsc = t.helpers.register(HelperInfo {
            name: "rdtsc",
            func: crate::translate::helper_rdtsc,
            flags: HelperFlags::empty(),
            args: &[],
            ret: Some(Type::I64),
        });
        let raise_interrupt = t.helpers.register(HelperInfo {
            name: "raise_interrupt",
            func: crate::translate::helper_raise_interrupt,
            flags: HelperFlags::MAY_FAULT,
            args: &[Type::I32, Type::I32, Type::I64],
            ret: None,
        });
        let pdep_pext = t.helpers.register(HelperInfo {
            name: "pdep_pext",
            func: crate::translate::helper_pdep_pext,
            flags: HelperFlags::PURE,
            args: &[Type::I32, Type::I64, Type::I64],
            ret: Some(Type::I64),
        });
        const VEC_ARGS: &[Type] = &[Type::I64, Type::I64, Type::I64, Type::I64, Type::I64];
        let vec_op = t.helpers.register(HelperInfo {
            name: "vec_op",
            func: crate::vec_helper::helper_vec_op,
            flags: HelperFlags::empty(),
            args: VEC_ARGS,
            ret: Some(Type::I64),
        });
        let vec_op_regs = t.helpers.register(HelperInfo {
            name: "vec_op_regs",
            func: crate::vec_helper::helper_vec_op,
            flags: HelperFlags::READS_GLOBALS,
            args: VEC_ARGS,
            ret: Some(Type::I64),
        });
        let sse_fp = t.helpers.register(HelperInfo {
            name: "sse_fp",
            func: crate::sse_fp_helper::helper_sse_fp,
            flags: HelperFlags::MAY_FAULT,
            args: &[Type::I32, Type::I32, Type::I32, Type::I32],
            ret: Some(Type::I64),
        });
        let seg = crate::translate::register_seg_helpers(&mut t);
        let sysreg = crate::translate::register_sysreg_helper(&mut t);
        let io = crate::translate::register_io_helpers(&mut t);
        let x87 = t.helpers.register(HelperInfo {
            name: "x87",
            func: crate::fpu_helper::helper_x87,
            flags: HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT,
            args: &[Type::I32, Type::I32, Type::I32, Type::I32],
            ret: None,
        });
        let lookup_tb_ptr = lookup_tb_ptr.map(|func| {
            t.helpers.register(HelperInfo {
                name: "lookup_tb_ptr",
                func,
                flags: HelperFlags::READS_GLOBALS,
                args: &[],
                ret: Some(Type::PTR),
            })
        });
        I386Target {
            desc: Arc::new(t),
            helpers: Helpers {
                compute_eflags,
                compute_cf,
                raise_exception,
                rotate_carry,
                rotate_carry_flags,
                divide,
                cpuid,
                rdtsc,
                raise_interrupt,
                pdep_pext,
                lookup_tb_ptr,
                seg,
                sysreg,
                io,
                vec_op,
                vec_op_regs,
                x87,
                sse_fp,
            },
        }
    }

    /// The temp of general-purpose register `i` in any function built for this target.
    pub fn reg(i: usize) -> Temp {
        debug_assert!(i < NB_REGS, "no general-purpose register {i}");
        Temp(i as u32 + 1)
    }

    /// The temp of global `index` (see [`global`]).
    pub fn global(index: usize) -> Temp {
        Temp(index as u32 + 1)
    }
}

impl Default for I386Target {
    fn default() -> Self {
        I386Target::new()
    }
}
