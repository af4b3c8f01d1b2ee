//! System-ish instructions that user code also runs: cpuid (through the `cpuid` helper and the table in
//! `cpuid.rs`). Privileged instructions, rdtsc and interrupts are not here yet (#UD).

use rqemu_tcg::Func;

use super::DisasContext;
use crate::cpu::{reg, X86CpuState};

impl DisasContext<'_> {
    /// cpuid: eax, ebx, ecx, edx from the leaf in eax and subleaf in ecx.
    pub(super) fn gen_cpuid(&mut self, f: &mut Func) -> bool {
        f.call(self.target.helpers.cpuid, None, &[]);
        true
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
