//! The embedded engine: [`EmbeddedWasm32`], a [`Backend`] that runs the modules of [`crate::compile_module`]
//! in the wasmi interpreter on a native host, so the code generator is tested (conformance suite, golden
//! tests, TLB fast path, chaining) without a browser or Node.
//!
//! It plays the part of a wasm32 host with a linear memory of its own:
//! - the CPU state is copied into linear memory at [`ENV_ADDR`] before each run and back afterwards
//!   ([`TargetDesc::env_size`] bytes; a target that leaves it 0 cannot be compiled here);
//! - helpers and the slow paths are host functions defined in the linker as `fn.<slot>` (the imports of
//!   [`crate::abi`]), with slots numbered by the engine (there is no table); around each call the state is
//!   copied back to the caller's CPU state, the real helper (or [`GuestMemory`]) runs on it with the real
//!   `env` pointer, and the state is copied in again, so helpers see exactly what they would natively;
//! - host pointers cannot be dereferenced: on a real wasm32 host a pointer into the CPU state is a
//!   linear-memory address, here it is a native address outside the engine's memory. A global that the
//!   caller declares a pointer global ([`EmbeddedWasm32::set_pointer_globals`]) is relocated when it points
//!   into the CPU state (host address -> linear-memory address on the way in, back on the way out). Nothing
//!   else is: the IR's pointer type is i64 on a 64-bit build host, like every i64 global, so which globals
//!   hold pointers is the caller's knowledge, never guessed from values.
//!
//! Helpers that run a TB themselves (nested runs) are not supported. Instances live as long as the engine:
//! wasmi cannot free one instance of a store, so dropping a [`CompiledTb`] here frees nothing.

mod host;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{Backend, CompileError, CompiledTb, ExecContext, Func, HelperId, Opcode, TargetDesc, TbExit, Type};
use wasmi::{Engine, Linker, Memory, MemoryType, Module, Store, TypedFunc};

use crate::abi::{self, TlbAbi, WasmAbi};
use crate::ModuleStats;

use host::{HostState, RunContext};

/// Linear-memory address of the exit payload.
pub const OUT_ADDR: u32 = 0x10;
/// Linear-memory address of the CPU state during a run. Below it, `0x1000..ENV_ADDR` is free for tests
/// (guest RAM behind a hand-filled TLB, see [`EmbeddedWasm32::with_memory`]).
pub const ENV_ADDR: u32 = 0x2_0000;
/// What [`CompiledTb::run`] returns when the generated code trapped (a code generator bug; the message is
/// in [`EmbeddedWasm32::last_trap`]).
pub const TRAPPED: u64 = 0x7a4d_7a4d_7a4d_7a4d;
/// Slot (import name) of `ld_slow`; 0 names nothing, so a zero slot fails to link.
const LD_SLOW: u32 = 1;
/// Slot of `st_slow`.
const ST_SLOW: u32 = 2;
/// Slot of the first helper.
const FIRST_HELPER: u32 = 3;
/// Wasm page size.
const PAGE: usize = 0x1_0000;

/// Everything that lives in the wasmi store.
struct Shared {
    store: Store<HostState>,
    linker: Linker<HostState>,
    memory: Memory,
    /// Slot of each helper function registered so far, by function address.
    helper_slots: HashMap<usize, u32>,
    last_trap: Option<String>,
}

/// The wasm32 backend run by an embedded interpreter (name `wasm32`).
pub struct EmbeddedWasm32 {
    shared: Rc<RefCell<Shared>>,
    tail_calls: bool,
    tlb: Option<TlbAbi>,
    pointer_globals: Vec<String>,
    stats: ModuleStats,
    modules: usize,
    wasm_bytes: usize,
    /// The last module generated, kept for tests that print or inspect it.
    last_module: Option<Vec<u8>>,
}

impl Default for EmbeddedWasm32 {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddedWasm32 {
    /// An engine with tail calls, no TLB and no pointer globals.
    pub fn new() -> EmbeddedWasm32 {
        let engine = Engine::default();
        let mut store = Store::new(&engine, HostState::default());
        let pages = (ENV_ADDR as usize).div_ceil(PAGE) as u32 + 1;
        let memory =
            Memory::new(&mut store, MemoryType::new(pages, None)).expect("a fresh store has room for a memory");
        let ld = host::slow_path_func(&mut store, memory, host::Access::Load);
        let st = host::slow_path_func(&mut store, memory, host::Access::Store);
        let mut linker = Linker::new(&engine);
        linker
            .define(abi::IMPORT_MEMORY.0, abi::IMPORT_MEMORY.1, memory)
            .and_then(|l| l.define(abi::IMPORT_FN_MODULE, &abi::import_name(LD_SLOW), ld))
            .and_then(|l| l.define(abi::IMPORT_FN_MODULE, &abi::import_name(ST_SLOW), st))
            .expect("three distinct names");
        EmbeddedWasm32 {
            shared: Rc::new(RefCell::new(Shared {
                store,
                linker,
                memory,
                helper_slots: HashMap::new(),
                last_trap: None,
            })),
            tail_calls: true,
            tlb: None,
            pointer_globals: Vec::new(),
            stats: ModuleStats::default(),
            modules: 0,
            wasm_bytes: 0,
            last_module: None,
        }
    }

    /// Whether generated modules use `return_call` for `goto_tb` between members (default: yes).
    pub fn set_tail_calls(&mut self, on: bool) {
        self.tail_calls = on;
    }

    /// Inlines the TLB fast path for a TLB at this place in the CPU state (default: none, every guest access
    /// takes the slow path).
    pub fn set_tlb(&mut self, tlb: Option<TlbAbi>) {
        self.tlb = tlb;
    }

    /// Names the globals that hold host pointers, relocated when they point into the CPU state (module doc).
    /// The conformance suite's `p0` is one: without it, its loads and stores through `p0` read outside the
    /// engine's copy of the state.
    pub fn set_pointer_globals(&mut self, names: &[&str]) {
        self.pointer_globals = names.iter().map(|n| n.to_string()).collect();
    }

    /// Statistics summed over every module generated so far.
    pub fn stats(&self) -> (ModuleStats, usize, usize) {
        (self.stats, self.modules, self.wasm_bytes)
    }

    /// The binary of the last module generated.
    pub fn last_module(&self) -> Option<&[u8]> {
        self.last_module.as_deref()
    }

    /// The message of the last trap in generated code, if any.
    pub fn last_trap(&self) -> Option<String> {
        self.shared.borrow().last_trap.clone()
    }

    /// Gives `f` the whole linear memory (at least `ENV_ADDR + 64 KiB` bytes), e.g. to place guest RAM and
    /// a TLB that TBs reach through the inlined fast path. The CPU state at [`ENV_ADDR`] is overwritten by
    /// each run.
    pub fn with_memory<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut sh = self.shared.borrow_mut();
        let Shared { store, memory, .. } = &mut *sh;
        f(memory.data_mut(store))
    }

    /// The ABI for TBs of `target`: defines each of its helpers as an import on first sight.
    fn abi(&mut self, target: &TargetDesc) -> Result<WasmAbi, CompileError> {
        let mut sh = self.shared.borrow_mut();
        let mut helpers = Vec::with_capacity(target.helpers.len());
        for i in 0..target.helpers.len() as u32 {
            let Some(info) = target.helpers.get(HelperId(i)) else {
                helpers.push(0);
                continue;
            };
            let key = info.func as usize;
            let slot = match sh.helper_slots.get(&key) {
                Some(&s) => s,
                None => {
                    let slot = u32::try_from(sh.helper_slots.len())
                        .ok()
                        .and_then(|n| n.checked_add(FIRST_HELPER))
                        .ok_or_else(|| CompileError::Host("too many helpers".into()))?;
                    let Shared {
                        store, linker, memory, ..
                    } = &mut *sh;
                    let func = host::helper_func(store, *memory, info.func);
                    linker
                        .define(abi::IMPORT_FN_MODULE, &abi::import_name(slot), func)
                        .map_err(|e| CompileError::Host(e.to_string()))?;
                    sh.helper_slots.insert(key, slot);
                    slot
                }
            };
            helpers.push(slot);
        }
        Ok(WasmAbi {
            helpers,
            ld_slow: LD_SLOW,
            st_slow: ST_SLOW,
            tail_calls: self.tail_calls,
            tlb: self.tlb,
        })
    }

    /// Makes the memory large enough for a CPU state of `env_size` bytes at [`ENV_ADDR`].
    fn reserve_env(&mut self, env_size: usize) -> Result<(), CompileError> {
        let mut sh = self.shared.borrow_mut();
        let Shared { store, memory, .. } = &mut *sh;
        let need = ENV_ADDR as usize + env_size;
        let have = memory.data(&*store).len();
        if need > have {
            let pages = (need - have).div_ceil(PAGE) as u64;
            memory
                .grow(&mut *store, pages)
                .map_err(|e| CompileError::Host(format!("growing linear memory: {e}")))?;
        }
        Ok(())
    }
}

/// One TB of an instantiated module.
struct EmbeddedTb {
    shared: Rc<RefCell<Shared>>,
    func: TypedFunc<(i32, i32), i32>,
    /// This TB's index in its module, to tell whether another member exited.
    member: usize,
    env_size: usize,
    fault_offset: i32,
    /// Offsets of the declared pointer globals (relocated when they point into the CPU state).
    ptr_globals: Vec<i32>,
    code_size: usize,
}

impl CompiledTb for EmbeddedTb {
    unsafe fn run(&self, ctx: &mut ExecContext<'_>) -> TbExit {
        // SAFETY: the caller's promise.
        unsafe { self.run_chained(ctx) }.0
    }

    unsafe fn run_chained(&self, ctx: &mut ExecContext<'_>) -> (TbExit, Option<usize>) {
        let mut sh = self.shared.borrow_mut();
        let Shared {
            store,
            memory,
            last_trap,
            ..
        } = &mut *sh;
        let run = RunContext {
            // SAFETY (lifetime erasure): the pointer is removed from the store before `ctx` is released.
            mem: unsafe { host::erase(ctx.mem) },
            host_env: ctx.env,
            env_size: self.env_size,
            fault_offset: self.fault_offset,
            ptr_globals: self.ptr_globals.clone(),
        };
        // SAFETY: `ctx.env` points to a CPU state of `env_size` bytes (the `run` contract and the target).
        unsafe { run.copy_in(memory.data_mut(&mut *store)) };
        store.data_mut().run = Some(run);
        let result = self.func.call(&mut *store, (ENV_ADDR as i32, OUT_ADDR as i32));
        let run = store.data_mut().run.take();
        if let Some(run) = run {
            // SAFETY: as for `copy_in`.
            unsafe { run.copy_out(memory.data(&*store)) };
        }
        let payload = {
            let data = memory.data(&*store);
            let at = OUT_ADDR as usize;
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[at..at + 8]);
            u64::from_le_bytes(b)
        };
        match result {
            Ok(kind) => {
                let (exit, member) = abi::decode_exit_member(kind as u32, payload);
                (exit, member.filter(|&m| m != self.member))
            }
            Err(e) => {
                *last_trap = Some(e.to_string());
                (TbExit::Exit(TRAPPED), None)
            }
        }
    }

    fn code_size(&self) -> usize {
        self.code_size
    }
}

impl Backend for EmbeddedWasm32 {
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
        let target = first.func.target.clone();
        if target.env_size == 0 {
            return Err(CompileError::Host(
                "the target does not say how large its CPU state is (TargetDesc::env_size)".into(),
            ));
        }
        if members.iter().any(|m| !std::sync::Arc::ptr_eq(&m.func.target, &target)) {
            return Err(CompileError::Host("members of one group must share a target".into()));
        }
        self.reserve_env(target.env_size)?;
        let abi = self.abi(&target)?;
        let module = crate::compile_module(members, &abi)?;
        self.stats.ir_ops += module.stats.ir_ops;
        self.stats.chained_jumps += module.stats.chained_jumps;
        self.stats.inlined_accesses += module.stats.inlined_accesses;
        self.stats.dispatched_branches += module.stats.dispatched_branches;
        self.stats.structured_loops += module.stats.structured_loops;
        self.modules += 1;
        self.wasm_bytes += module.bytes.len();
        let ptr_globals: Vec<i32> = target
            .globals
            .iter()
            .filter(|g| g.ty == Type::I64 && self.pointer_globals.contains(&g.name))
            .map(|g| g.offset)
            .collect();
        let mut sh = self.shared.borrow_mut();
        let Shared { store, linker, .. } = &mut *sh;
        let compiled = Module::new(store.engine(), &module.bytes).map_err(|e| CompileError::Host(e.to_string()))?;
        let instance = linker
            .instantiate_and_start(&mut *store, &compiled)
            .map_err(|e| CompileError::Host(e.to_string()))?;
        let share = module.bytes.len() / members.len();
        let mut out: Vec<Box<dyn CompiledTb>> = Vec::with_capacity(members.len());
        for (member, name) in module.exports.iter().enumerate() {
            let func = instance
                .get_typed_func::<(i32, i32), i32>(&*store, name)
                .map_err(|e| CompileError::Host(e.to_string()))?;
            out.push(Box::new(EmbeddedTb {
                shared: self.shared.clone(),
                func,
                member,
                env_size: target.env_size,
                fault_offset: target.fault_offset,
                ptr_globals: ptr_globals.clone(),
                code_size: share,
            }));
        }
        drop(sh);
        self.last_module = Some(module.bytes);
        Ok(out)
    }
}
