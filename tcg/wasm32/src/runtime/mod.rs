//! The wasm32 backend on a real WebAssembly host: [`Wasm32`] compiles TBs with [`crate::compile_module`],
//! has the JS host (`tcg/wasm32/js/tb-host.mjs`) instantiate each module against the emulator's own memory
//! (helpers and slow paths are imported by their function pointers, which the host resolves in the
//! emulator's function table), and calls the exported functions through the table slots the host places
//! them in; on wasm32 a table slot is a function pointer.
//!
//! - `host`: the `rqemu_tb` imports; an `Instance` releases its module when dropped;
//! - `slow_path`: the `qemu_ld`/`qemu_st` slow paths generated code calls, and the guard that gives them the
//!   running TB's guest memory;
//! - `stats`: the counters [`Wasm32::stats`] returns.
//!
//! Ownership: every TB of a module holds the module's `Instance` through an `Rc`, so the module is released
//! when the last of its TBs' `CompiledTb`s is dropped (eviction and flush are decided in rqemu-accel's
//! tiering, which drops them).

mod host;
mod slow_path;
mod stats;

use std::rc::Rc;

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{
    Backend, CompileError, CompiledTb, ExecContext, Func, HelperFn, HelperId, Opcode, TargetDesc, TbExit, Type,
};

pub use slow_path::{ld_slow, st_slow};
pub use stats::{Stats, StatsHandle};

use stats::SharedStats;

/// A TB function as the emulator calls it: `(env, out) -> exit kind`, the payload stored at `out`.
type TbFn = unsafe extern "C" fn(env: *mut u8, out: *mut u64) -> u32;

/// The wasm32 backend for WebAssembly hosts (name `wasm32`).
pub struct Wasm32 {
    tail_calls: bool,
    tlb: Option<crate::TlbAbi>,
    stats: SharedStats,
}

impl Default for Wasm32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Wasm32 {
    /// A backend; asks the JS host once whether the engine has tail calls.
    pub fn new() -> Wasm32 {
        Wasm32 {
            tail_calls: host::tail_calls(),
            tlb: None,
            stats: SharedStats::default(),
        }
    }

    /// Inlines the software-TLB fast path for a TLB at this place in the CPU state. Default (`None`): where
    /// the target's `TargetDesc::tlb_offset` says, or nowhere (every guest access takes the slow path).
    /// Applies to modules compiled from now on.
    pub fn set_tlb(&mut self, tlb: Option<crate::TlbAbi>) {
        self.tlb = tlb;
    }

    /// Whether generated modules may use `return_call` (the engine validated it at start-up).
    pub fn tail_calls(&self) -> bool {
        self.tail_calls
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats.get()
    }

    /// A reader of the counters that outlives `&self` borrows (the tiering layer owns the backend).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.stats.clone())
    }

    /// The module ABI for TBs of `target`: helpers and slow paths by their table slots.
    fn abi(&self, target: &TargetDesc) -> crate::WasmAbi {
        let helpers = (0..target.helpers.len() as u32)
            .map(|i| target.helpers.get(HelperId(i)).map_or(0, |h| h.func as usize as u32))
            .collect();
        crate::WasmAbi {
            helpers,
            ld_slow: ld_slow as HelperFn as usize as u32,
            st_slow: st_slow as HelperFn as usize as u32,
            tail_calls: self.tail_calls,
            // An explicit `set_tlb` wins; otherwise the target says where its TLB lives, if it does.
            tlb: self.tlb.or(target
                .tlb_offset
                .map(|offset_from_env| crate::TlbAbi { offset_from_env })),
        }
    }
}

/// A module alive in the JS host; its counters are updated when the last TB using it is dropped.
struct Module {
    _instance: host::Instance,
    stats: SharedStats,
}

impl Drop for Module {
    fn drop(&mut self) {
        stats::update(&self.stats, |s| {
            s.instances_live -= 1;
            s.instances_released += 1;
        });
    }
}

/// One TB of a live module.
pub struct WasmTb {
    func: TbFn,
    /// This TB's index in its module (`tb{member}`), to tell whether another member exited.
    member: usize,
    fault_offset: i32,
    code_size: usize,
    _module: Rc<Module>,
}

impl CompiledTb for WasmTb {
    unsafe fn run(&self, ctx: &mut ExecContext<'_>) -> TbExit {
        // SAFETY: the caller's promise.
        unsafe { self.run_chained(ctx) }.0
    }

    unsafe fn run_chained(&self, ctx: &mut ExecContext<'_>) -> (TbExit, Option<usize>) {
        let mut payload = 0u64;
        // SAFETY: the guard lives until the call returns, and `ctx.mem` is not used meanwhile.
        let _running = unsafe { slow_path::Running::enter(ctx.mem, self.fault_offset) };
        // SAFETY: `func` is a table slot holding this TB's export (kept alive by `_module`), of the type
        // `TbFn`; `env` satisfies the caller's contract; `payload` is a live u64.
        let kind = unsafe { (self.func)(ctx.env, &mut payload) };
        let (exit, member) = crate::abi::decode_exit_member(kind, payload);
        (exit, member.filter(|&m| m != self.member))
    }

    fn code_size(&self) -> usize {
        self.code_size
    }
}

impl Backend for Wasm32 {
    fn name(&self) -> &'static str {
        "wasm32"
    }

    fn supports(&self, opc: Opcode, ty: Type) -> bool {
        crate::supports(opc, ty)
    }

    fn compile(&mut self, func: &Func) -> Result<Box<dyn CompiledTb>, CompileError> {
        crate::compile_alone(self, func)
    }

    fn compile_group(&mut self, members: &[GroupMember<'_>]) -> Result<Vec<Box<dyn CompiledTb>>, CompileError> {
        let Some(first) = members.first() else {
            return Ok(Vec::new());
        };
        let result = self.instantiate_group(members, &first.func.target);
        if result.is_err() {
            stats::update(&self.stats, |s| s.failures += 1);
        }
        result
    }
}

impl Wasm32 {
    fn instantiate_group(
        &mut self,
        members: &[GroupMember<'_>],
        target: &TargetDesc,
    ) -> Result<Vec<Box<dyn CompiledTb>>, CompileError> {
        let start = host::now_ms();
        let module = crate::compile_module(members, &self.abi(target))?;
        let generated = host::now_ms();
        let (instance, slots) = host::Instance::new(&module.bytes, members.len()).map_err(CompileError::Host)?;
        let done = host::now_ms();
        let bytes = module.bytes.len();
        let ops: usize = members.iter().map(|m| m.func.ops.len()).sum();
        stats::update(&self.stats, |s| {
            s.tbs_compiled += members.len() as u64;
            s.modules += 1;
            s.instances_live += 1;
            s.wasm_bytes += bytes as u64;
            s.ir_ops += ops as u64;
            s.codegen_ms += generated - start;
            s.instantiate_ms += done - generated;
        });
        let module = Rc::new(Module {
            _instance: instance,
            stats: self.stats.clone(),
        });
        let share = bytes / members.len();
        Ok(members
            .iter()
            .zip(slots)
            .enumerate()
            .map(|(member, (m, slot))| {
                // SAFETY: on wasm32 a function pointer is a table index; the host placed export `tb{i}`,
                // of type (i32, i32) -> i32 like `TbFn`, at `slot`, and `module` keeps it there.
                let func = unsafe { core::mem::transmute::<usize, TbFn>(slot as usize) };
                Box::new(WasmTb {
                    func,
                    member,
                    fault_offset: m.func.target.fault_offset,
                    code_size: share,
                    _module: module.clone(),
                }) as Box<dyn CompiledTb>
            })
            .collect())
    }
}
