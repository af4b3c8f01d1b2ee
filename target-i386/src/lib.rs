//! rqemu's x86-64 guest CPU (QEMU's target/i386): the CPU state, lazy condition codes, the CPUID model, and
//! the translator from guest code (decoded by iced-x86) into TCG IR.
//!
//! - [`cpu`]: [`X86CpuState`], `#[repr(C)]`, read by generated code by offset;
//! - [`cc`]: the CC_OP scheme and [`cc::compute_eflags`];
//! - [`desc`]: the IR globals and helpers ([`I386Target`]);
//! - [`cpuid`]: what the CPU advertises;
//! - [`translate`]: [`translate::DisasContext`] with the translator-loop hooks, and [`translate::translate_tb`];
//! - [`machine`]: [`X86Cpu`], the CPU on the execution loop (`rqemu_accel::CpuOps`) and softmmu: TB flags,
//!   exception delivery ([`ExceptionMode`]), external interrupts ([`InterruptController`]), hlt, reset;
//! - [`seg_helper`], [`excp_helper`], [`sysmem`]: segmentation, far transfers, iret, and interrupt/exception
//!   delivery through the IVT/IDT, called by the translator's helpers and the loop;
//! - [`sse_fp_helper`]: the SSE floating-point helper on the soft-float crate;
//! - [`paging`]: the page-table walker;
//! - [`vec_helper`], [`pcmpstr`]: the bodies of the SSE/MMX integer instructions (`translate/sse_int.rs`);
//! - [`dump`]: the register dump, `IN:` listing and exception line of `-d cpu,in_asm,int`.
//!
//! - [`fpu_helper`]: the x87 FPU's instruction bodies (on the `rqemu-fpu` soft-float crate).
//!
//! What is not here yet: task switches, VME.

pub mod bench;
pub mod cc;
pub mod cpu;
pub mod cpuid;
pub mod desc;
pub mod dump;
pub mod excp_helper;
pub mod fpu_helper;
mod fpu_trans;
pub mod machine;
pub mod paging;
pub mod pcmpstr;
pub mod seg_helper;
pub mod sse_fp_helper;
mod sse_rcp_table;
pub mod sysmem;
pub mod translate;
pub mod vec_helper;

pub use cc::{compute_cf, compute_eflags, CcKind, CcOp, Size};
pub use cpu::X86CpuState;
pub use desc::I386Target;
pub use machine::{
    ExceptionMode, InterruptController, MmuHandle, X86Cpu, X86Exception, X86Fill, STOP_EXCEPTION, STOP_TRIPLE_FAULT,
};
pub use translate::{translate_tb, CodeFetch, DisasContext, FetchFault, TbFlags, TbInfo};
