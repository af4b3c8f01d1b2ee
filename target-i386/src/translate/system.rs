//! System-ish instructions that user code also runs: cpuid (through the `cpuid` helper and the table in
//! `cpuid.rs`); rdtsc, rdtscp and rdpid (the TSC from [`X86CpuState::read_tsc`], TSC_AUX from the MSR file);
//! and the instructions that raise exceptions as traps: int3 (#BP), int n, into (#OF when OF is set; #UD in
//! 64-bit mode, which the decoder already reports) and int1/icebp (#DB).
//!
//! Traps are recorded with [`X86CpuState::raise_trap`] through the `raise_interrupt` helper: the exception
//! returns to the next instruction, whose rip the helper stores in `exception_next_rip`. There is no IDT
//! delivery yet (the loop stops on them like on faults). Under CR4.TSD rdtsc/rdtscp raise #GP(0) above CPL 0
//! (`sysregs.rs`'s `gen_tsd_check`). Privileged instructions are in `sysregs.rs`.

use iced_x86::Mnemonic;
use rqemu_tcg::{Func, Opcode, Temp, Type};

use super::{DisasContext, DisasJump, EXIT_LOOKUP};
use crate::cc::Size;
use crate::cpu::{excp, reg, X86CpuState};
use crate::desc::{global, I386Target};

impl DisasContext<'_> {
    /// cpuid: eax, ebx, ecx, edx from the leaf in eax and subleaf in ecx.
    pub(super) fn gen_cpuid(&mut self, f: &mut Func) -> bool {
        f.call(self.target.helpers.cpuid, None, &[]);
        true
    }

    /// TSC_AUX (32 bits, zero-extended) loaded from the CPU state.
    fn gen_tsc_aux(&mut self, f: &mut Func) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        let off = core::mem::offset_of!(X86CpuState, msrs) + core::mem::offset_of!(crate::cpu::MsrFile, tsc_aux);
        f.load(Opcode::Ld32u, t, Temp::ENV, off as i32);
        t
    }

    /// rdtsc (edx:eax = TSC) and rdtscp (the same, and ecx = TSC_AUX).
    pub(super) fn gen_rdtsc(&mut self, f: &mut Func) -> bool {
        self.gen_tsd_check(f);
        let tsc = f.new_ebb_temp(Type::I64);
        f.call(self.target.helpers.rdtsc, Some(tsc), &[]);
        let hi = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, 32);
        f.shr(hi, tsc, k);
        self.write_reg_n(f, reg::RAX, Size::L, tsc);
        self.write_reg_n(f, reg::RDX, Size::L, hi);
        if self.insn.mnemonic() == Mnemonic::Rdtscp {
            let aux = self.gen_tsc_aux(f);
            self.write_reg_n(f, reg::RCX, Size::L, aux);
        }
        true
    }

    /// rdpid r32/r64: TSC_AUX, zero-extended.
    pub(super) fn gen_rdpid(&mut self, f: &mut Func) -> bool {
        let aux = self.gen_tsc_aux(f);
        self.write_reg(f, self.insn.op_register(0), aux);
        true
    }

    /// int3, int n, int1, into: a trap to the next instruction.
    pub(super) fn gen_interrupt(&mut self, f: &mut Func) -> bool {
        let (vector, is_int) = match self.insn.mnemonic() {
            Mnemonic::Int3 => (excp::BP, true),
            Mnemonic::Int => (self.insn.immediate(0) as u32 & 0xff, true),
            Mnemonic::Int1 => (excp::DB, false),
            Mnemonic::Into => {
                if self.flags.bitness == 64 {
                    return false;
                }
                // Only when OF is set: otherwise nothing happens and the TB goes on.
                let cc = self.gen_prepare_cc(f, 1); // jno
                let skip = f.new_label();
                f.brcond(cc.cond, cc.a, cc.b, skip);
                self.gen_raise_trap(f, excp::OF, true);
                f.set_label(skip);
                self.is_jmp = DisasJump::Next;
                return true;
            }
            _ => return false,
        };
        self.gen_raise_trap(f, vector, is_int);
        true
    }

    /// Calls `raise_interrupt(vector, is_int, next_rip)` and ends the code path (the helper always faults).
    fn gen_raise_trap(&mut self, f: &mut Func, vector: u32, is_int: bool) {
        let v = f.constant(Type::I32, vector as u64);
        let k = f.constant(Type::I32, is_int as u64);
        let next = f.constant(Type::I64, self.pc_next);
        f.call(self.target.helpers.raise_interrupt, None, &[v, k, next]);
        // Not reached. The IR still needs an exit.
        let rip = I386Target::global(global::RIP);
        f.movi(rip, self.pc_next);
        f.exit_tb(EXIT_LOOKUP);
        self.is_jmp = DisasJump::NoReturn;
    }
}

/// The `cpuid` helper: reads eax/ecx, writes rax, rbx, rcx, rdx (zero-extended).
pub(crate) unsafe extern "C" fn helper_cpuid(env: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
    let r = crate::cpuid::cpuid(cpu.regs[reg::RAX] as u32, cpu.regs[reg::RCX] as u32);
    cpu.regs[reg::RAX] = r.eax as u64;
    cpu.regs[reg::RBX] = r.ebx as u64;
    cpu.regs[reg::RCX] = r.ecx as u64;
    cpu.regs[reg::RDX] = r.edx as u64;
    0
}

/// The `rdtsc() -> i64` helper: [`X86CpuState::read_tsc`] (touches only the TSC fields, no globals).
pub(crate) unsafe extern "C" fn helper_rdtsc(env: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
    cpu.read_tsc()
}

/// The `raise_interrupt(vector: i32, is_int: i32, next_rip: i64)` helper: [`X86CpuState::raise_trap`].
pub(crate) unsafe extern "C" fn helper_raise_interrupt(
    env: *mut u8,
    vector: u64,
    is_int: u64,
    next_rip: u64,
    _: u64,
    _: u64,
) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
    cpu.raise_trap(vector as u32, is_int as u32 != 0, next_rip);
    0
}
