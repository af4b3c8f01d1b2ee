//! The CPU execution loop (QEMU's `cpu_exec`): at every TB boundary it honours exit requests, halts and
//! interrupts through the target's hooks, finds the next TB (a followed `goto_tb` link, a `goto_ptr`
//! handle, the jump cache, the hash table, or a new translation), runs it through [`Tiering`], links the
//! `goto_tb` slot it left by, and handles the exit: a target value, or a fault, after which it restores the
//! guest state at the faulting instruction from its `insn_start` words and delivers the exception.
//!
//! It also owns TB generation (`tb_gen_code`: translate, prepare and compile, counted against `tb-size`,
//! flushing everything when the bound is reached) and invalidation by physical range (`tb-maint`).
//!
//! Not here: the descriptors and lookup structures ([`crate::tb_cache`]), the code and tiers
//! ([`Tiering`]), the translator loop ([`crate::translator`]).

use core::cell::RefCell;
use core::fmt;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rqemu_tcg::{
    Backend, BackendError, BackendKind, CompileError, ExecContext, Func, GuestMemory, HelperFlags, HelperInfo, TbExit,
    Type,
};

use crate::accel_options::AccelOptions;
use crate::backends::create_backend;
use crate::cpu::{CpuAction, CpuOps, TbKey, TbKeyFn, TranslateError, CFLAGS_COUNT_MASK, EXIT_LOOKUP, EXIT_REQUESTED};
use crate::log::{self, CompileLog, LogBackend, LogMask};
use crate::tb::Tb;
use crate::tb_cache::{JumpCacheHandle, TbCache};
use crate::tiering::{RunExit, TbId, TierStats, Tiering};
use crate::translator::{DisasBase, DEFAULT_MAX_INSNS};

/// Asks the loop to return to the main loop at the next TB boundary. Cheap to clone; may be set from any
/// thread (a timer, the stdin thread) or from device code.
#[derive(Clone, Debug, Default)]
pub struct ExitRequest(Arc<AtomicBool>);

impl ExitRequest {
    /// Requests an exit.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether an exit is requested and not yet honoured.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn take(&self) -> bool {
        // The loop asks at every TB boundary and the answer is almost always no: a plain load first, since
        // the swap is a locked (fully fenced) instruction that cost about a tenth of the loop's time.
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::AcqRel)
    }
}

/// The loop's shared view of guest code for stores made while a TB runs (QEMU's `tb_invalidate_phys_page_fast`
/// side of tb-maint): physical ranges whose TBs must be invalidated, queued by code that cannot reach the
/// [`CpuExec`] (a helper or device model writing guest code while a TB runs) and applied by the loop at the
/// next TB boundary, before it looks up or follows a link; and where the code of TBs with more than one
/// instruction lies, so a store from generated code can tell whether it may be rewriting instructions of
/// the TB that is running it ([`InvalidateQueue::hits_multi_insn_code`]). Single-threaded: keep it on the
/// vCPU's thread.
#[derive(Clone, Debug, Default)]
pub struct InvalidateQueue(Rc<RefCell<CodeWatch>>);

#[derive(Debug, Default)]
struct CodeWatch {
    pending: Vec<(u64, u64)>,
    /// Physical page -> byte ranges of multi-instruction TBs on it.
    multi: HashMap<u64, Vec<(u64, u64)>>,
    page_bits: u32,
}

impl InvalidateQueue {
    /// Queues the physical range `start..end`.
    pub fn push(&self, start: u64, end: u64) {
        if let Ok(mut q) = self.0.try_borrow_mut() {
            q.pending.push((start, end));
        }
    }

    /// Whether the physical range `start..end` overlaps the code of a live TB with more than one
    /// instruction. Only such a TB can go on to run instructions after the one storing into it, so a store
    /// from generated code that hits one must not complete inside it: the target aborts the store, and the
    /// loop re-runs the instruction alone once the TB is gone (QEMU's `cflags_next_tb = 1`).
    pub fn hits_multi_insn_code(&self, start: u64, end: u64) -> bool {
        let Ok(q) = self.0.try_borrow() else { return false };
        if q.multi.is_empty() || end <= start {
            return false;
        }
        let bits = q.page_bits;
        (start >> bits..=(end - 1) >> bits).any(|page| {
            q.multi
                .get(&(page << bits))
                .is_some_and(|v| v.iter().any(|&(s, e)| s < end && start < e))
        })
    }

    fn take(&self) -> Vec<(u64, u64)> {
        match self.0.try_borrow_mut() {
            Ok(mut q) if !q.pending.is_empty() => std::mem::take(&mut q.pending),
            _ => Vec::new(),
        }
    }

    /// Records the code of a new TB (only multi-instruction ones matter).
    fn add_tb(&self, tb: &Tb, page_bits: u32) {
        if tb.icount < 2 {
            return;
        }
        if let Ok(mut q) = self.0.try_borrow_mut() {
            q.page_bits = page_bits;
            for r in tb.phys_ranges(page_bits) {
                q.multi.entry(r.0 >> page_bits << page_bits).or_default().push(r);
            }
        }
    }

    /// Forgets the code of a removed TB.
    fn remove_tb(&self, tb: &Tb, page_bits: u32) {
        if tb.icount < 2 {
            return;
        }
        if let Ok(mut q) = self.0.try_borrow_mut() {
            for r in tb.phys_ranges(page_bits) {
                let page = r.0 >> page_bits << page_bits;
                if let Some(v) = q.multi.get_mut(&page) {
                    if let Some(i) = v.iter().position(|&x| x == r) {
                        v.swap_remove(i);
                    }
                    if v.is_empty() {
                        q.multi.remove(&page);
                    }
                }
            }
        }
    }

    /// Forgets all code (a flush).
    fn clear_code(&self) {
        if let Ok(mut q) = self.0.try_borrow_mut() {
            q.multi.clear();
        }
    }
}

/// Sets the "exit requested" half of the CPU state's exit word ([`CpuOps::exit_word_offset`]), so that the
/// next TB start leaves to the loop, even inside chained hot code. For helpers and device code that run
/// inside a TB and hold `env`.
///
/// # Safety
/// `env + offset` must be the exit word of a live CPU state.
pub unsafe fn request_exit_in_env(env: *mut u8, offset: i32) {
    // The high half of the little-endian u32 (every supported host is little-endian).
    // SAFETY: the caller's promise.
    unsafe { env.offset(offset as isize + 2).cast::<u16>().write_unaligned(0xffff) };
}

/// Why [`CpuExec::run`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An [`ExitRequest`] or the exit word's request half was set.
    ExitRequested,
    /// The CPU is halted with nothing to do.
    Halted,
    /// The budget of TBs ran out.
    Budget,
    /// A target hook said stop, with its code.
    Cpu(u64),
    /// Something failed; the guest state is as it was at the last TB boundary.
    Error(ExecError),
}

/// A failure of the loop itself (never a guest exception).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecError {
    /// The frontend could not translate.
    Translate(TranslateError),
    /// The IR did not prepare or the first tier refused it.
    Compile(CompileError),
    /// A fault exit named an instruction the TB does not have.
    BadFault {
        /// The TB's key.
        key: TbKey,
        /// The instruction index.
        insn: u32,
    },
    /// A TB disappeared under the loop (a bug).
    Vanished,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Translate(e) => write!(f, "{e}"),
            ExecError::Compile(e) => write!(f, "TB did not compile: {e}"),
            ExecError::BadFault { key, insn } => write!(f, "fault at instruction {insn} of the TB at {:#x}", key.pc),
            ExecError::Vanished => f.write_str("TB vanished while the loop used it"),
        }
    }
}

impl std::error::Error for ExecError {}

/// Counters for `-d` statistics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// TBs the loop entered.
    pub tbs_run: u64,
    /// TBs translated.
    pub translations: u64,
    /// Lookups answered by the jump cache.
    pub jc_hits: u64,
    /// Lookups answered by the hash table.
    pub hash_hits: u64,
    /// Successors found by following a `goto_tb` link (no lookup at all).
    pub chained: u64,
    /// Links made.
    pub links: u64,
    /// Successors given by a `goto_ptr` handle.
    pub goto_ptr: u64,
    /// Fault exits handled (state restored, exception delivered).
    pub faults: u64,
    /// Fetch faults delivered before translation.
    pub fetch_faults: u64,
    /// Interrupts delivered.
    pub interrupts: u64,
    /// Exit requests honoured.
    pub exit_requests: u64,
    /// Full flushes because the cache reached `tb-size`.
    pub size_flushes: u64,
    /// TBs invalidated by physical range.
    pub invalidated: u64,
}

impl fmt::Display for ExecStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exec: {} TBs run, {} translated, lookups {} jc / {} hash, {} chained ({} links), {} goto_ptr, \
             {} faults, {} fetch faults, {} interrupts, {} exit requests, {} size flushes, {} invalidated",
            self.tbs_run,
            self.translations,
            self.jc_hits,
            self.hash_hits,
            self.chained,
            self.links,
            self.goto_ptr,
            self.faults,
            self.fetch_faults,
            self.interrupts,
            self.exit_requests,
            self.size_flushes,
            self.invalidated
        )
    }
}

/// How the loop finds the next TB.
#[derive(Clone, Copy, Debug)]
enum Next {
    Lookup,
    /// Through `goto_tb slot` of this TB: follow its link, or look up and link.
    Chain(TbId, u32),
    /// A `goto_ptr` handle.
    Direct(TbId),
}

/// One vCPU's execution engine: the TB cache, the tiers and the loop.
pub struct CpuExec {
    tiering: Tiering,
    cache: TbCache,
    opts: AccelOptions,
    exit_request: ExitRequest,
    invalidations: InvalidateQueue,
    stats: ExecStats,
    /// Advances on every flush: TB ids from before it mean nothing after.
    generation: u64,
    /// What the first tier's compile left for `-d op_opt,out_asm` (see [`LogBackend`]).
    compile_log: Rc<RefCell<CompileLog>>,
}

impl CpuExec {
    /// An engine with tci as the first tier and the hot backend `opts` names (an error if this build lacks
    /// it).
    pub fn new(opts: AccelOptions) -> Result<CpuExec, BackendError> {
        let cold = create_backend(BackendKind::Tci)?;
        let hot = opts.hot_backend.map(create_backend).transpose()?;
        Ok(CpuExec::with_backends(cold, hot, opts))
    }

    /// An engine over given backends (tests, benchmarks); `opts.hot_backend` is ignored.
    pub fn with_backends(cold: Box<dyn Backend>, hot: Option<Box<dyn Backend>>, opts: AccelOptions) -> CpuExec {
        let compile_log = Rc::new(RefCell::new(CompileLog::default()));
        let cold: Box<dyn Backend> = Box::new(LogBackend::cold(cold, compile_log.clone()));
        let hot = hot.map(|h| Box::new(LogBackend::hot(h)) as Box<dyn Backend>);
        CpuExec {
            compile_log,
            tiering: Tiering::new(cold, hot, opts.tier),
            cache: TbCache::new(12),
            opts,
            exit_request: ExitRequest::default(),
            invalidations: InvalidateQueue::default(),
            stats: ExecStats::default(),
            generation: 0,
        }
    }

    /// A handle that makes [`CpuExec::run`] return at the next TB boundary.
    pub fn exit_request(&self) -> ExitRequest {
        self.exit_request.clone()
    }

    /// A handle that queues invalidations for the next TB boundary.
    pub fn invalidate_queue(&self) -> InvalidateQueue {
        self.invalidations.clone()
    }

    /// The jump cache, to flush when the guest's page mapping changes.
    pub fn jump_cache(&self) -> JumpCacheHandle {
        self.cache.jump_cache().clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> ExecStats {
        self.stats
    }

    /// The tiering policy's counters.
    pub fn tier_stats(&self) -> TierStats {
        self.tiering.stats()
    }

    /// The options in force.
    pub fn options(&self) -> &AccelOptions {
        &self.opts
    }

    /// The TB cache (descriptors, links), for inspection.
    pub fn cache(&self) -> &TbCache {
        &self.cache
    }

    /// The tiers, for inspection.
    pub fn tiering(&self) -> &Tiering {
        &self.tiering
    }

    /// Bytes counted against `tb-size`: first-tier code of live TBs plus live hot code.
    pub fn code_bytes(&self) -> usize {
        self.cache.code_bytes() + self.tiering.stats().hot_bytes as usize
    }

    /// Drops every TB and all code (QEMU's `tb_flush`).
    pub fn flush(&mut self) {
        self.tiering.flush();
        self.cache.clear();
        self.invalidations.clear_code();
        self.generation += 1;
    }

    /// Invalidates every TB whose guest code overlaps the physical range `start..end` (a guest write to
    /// code, a DMA, a RAM remap); returns how many. Links to them are removed and hot modules holding them
    /// dropped. Call it between runs (from the main loop or the target's hooks), not from inside a TB.
    pub fn invalidate_phys_range(&mut self, start: u64, end: u64) -> usize {
        let ids = self.cache.tbs_in_range(start, end);
        for &id in &ids {
            if let Some(tb) = self.cache.remove(id) {
                self.invalidations.remove_tb(&tb, self.cache.page_bits());
            }
            self.tiering.invalidate(id);
        }
        self.stats.invalidated += ids.len() as u64;
        ids.len()
    }

    /// Runs guest code until the CPU halts, an exit is requested, a target hook stops, or `budget` TBs were
    /// entered (TBs that hot code chains to inside a module are not counted; the exit word bounds them).
    ///
    /// The thread's log items ([`crate::log`]) are read once, here: `exec` and `cpu` log every TB the loop
    /// enters; `nochain` makes every TB come back to a lookup (no links, no `goto_ptr`), so no TB runs
    /// without going through the loop.
    pub fn run<C: CpuOps + ?Sized>(&mut self, cpu: &mut C, mem: &mut dyn GuestMemory, budget: u64) -> StopReason {
        if cpu.page_bits().clamp(1, 63) != self.cache.page_bits() {
            if !self.cache.is_empty() {
                self.flush();
            }
            self.cache.set_page_bits(cpu.page_bits());
        }
        let env = cpu.env();
        let fault_offset = cpu.target_desc().fault_offset;
        let exit_word = cpu.exit_word_offset();
        let _lookup = LookupGuard::install(self.cache.jump_cache().clone(), cpu.tb_key_fn());
        let mut entered = 0u64;
        let mut next = Next::Lookup;
        let log_mask = log::mask();
        let nochain = log_mask.contains(LogMask::NOCHAIN);
        let log_each_tb = log_mask.intersects(LogMask::EXEC | LogMask::CPU);
        loop {
            // SAFETY: the exit word is part of the CPU state (the target's promise for `exit_word_offset`).
            let env_request = exit_word.is_some_and(|o| unsafe { take_env_request(env, o) });
            for (start, end) in self.invalidations.take() {
                self.invalidate_phys_range(start, end);
            }
            if self.exit_request.take() | env_request {
                self.stats.exit_requests += 1;
                return StopReason::ExitRequested;
            }
            if cpu.check_halted() {
                return StopReason::Halted;
            }
            match cpu.handle_interrupt() {
                None => {}
                Some(CpuAction::Continue | CpuAction::Halt) => {
                    self.stats.interrupts += 1;
                    next = Next::Lookup;
                    continue;
                }
                Some(CpuAction::Stop(code)) => return StopReason::Cpu(code),
            }
            if entered >= budget {
                return StopReason::Budget;
            }
            let tb = match self.find_tb(cpu, mem, next) {
                Ok(Some(tb)) => tb,
                Ok(None) => {
                    self.stats.fetch_faults += 1;
                    next = Next::Lookup;
                    match cpu.handle_exception() {
                        CpuAction::Continue | CpuAction::Halt => continue,
                        CpuAction::Stop(code) => return StopReason::Cpu(code),
                    }
                }
                Err(e) => return StopReason::Error(e),
            };
            if let Some(offset) = exit_word {
                // SAFETY: as above; the low half of the little-endian word.
                unsafe {
                    env.offset(offset as isize)
                        .cast::<u16>()
                        .write_unaligned(self.opts.chain_limit)
                };
            }
            if log_each_tb {
                self.log_tb(&*cpu, tb, log_mask);
            }
            let mut ctx = ExecContext { env, mem };
            // SAFETY: `env` is the CPU state the target's IR was built for (the target's promise).
            let Some(RunExit { exit, tb: from }) = (unsafe { self.tiering.run(tb, &mut ctx) }) else {
                return StopReason::Error(ExecError::Vanished);
            };
            entered += 1;
            self.stats.tbs_run += 1;
            next = Next::Lookup;
            let action = match exit {
                TbExit::GotoTb(_) if nochain => CpuAction::Continue,
                TbExit::GotoTb(slot) => {
                    next = Next::Chain(from, slot);
                    CpuAction::Continue
                }
                TbExit::GotoPtr(_) if nochain => CpuAction::Continue,
                TbExit::GotoPtr(handle) => {
                    let id = handle.checked_sub(1).and_then(TbId::from_index);
                    if let Some(id) = id.filter(|&id| self.cache.get(id).is_some()) {
                        next = Next::Direct(id);
                    }
                    CpuAction::Continue
                }
                TbExit::Exit(EXIT_LOOKUP | EXIT_REQUESTED) => CpuAction::Continue,
                TbExit::Exit(value) => cpu.handle_exit(value),
                TbExit::Fault { insn } => {
                    let key = self.cache.get(from).map(|t| t.key).unwrap_or_default();
                    let Some(words) = self.tiering.insn_start(from, insn) else {
                        return StopReason::Error(ExecError::BadFault { key, insn });
                    };
                    cpu.restore_state_to_opc(&key, &words);
                    // SAFETY: the fault word is inside the CPU state (TargetDesc's promise).
                    unsafe { env.offset(fault_offset as isize).cast::<u32>().write_unaligned(0) };
                    self.stats.faults += 1;
                    cpu.handle_exception()
                }
            };
            match action {
                CpuAction::Continue | CpuAction::Halt => {}
                CpuAction::Stop(code) => return StopReason::Cpu(code),
            }
        }
    }

    /// `-d exec` (QEMU's `Trace` line: CPU index, TB, `[cs_base/pc/flags/cflags]`) and `-d cpu` (the
    /// target's register dump) for the TB about to run.
    #[cold]
    fn log_tb<C: CpuOps + ?Sized>(&self, cpu: &C, tb: TbId, mask: LogMask) {
        if mask.contains(LogMask::EXEC) {
            let key = self.cache.get(tb).map(|t| t.key).unwrap_or_default();
            log::log(
                LogMask::EXEC,
                &format!(
                    "Trace 0: tb#{} [{:016x}/{:016x}/{:08x}/{:08x}]",
                    tb.index(),
                    key.cs_base,
                    key.pc,
                    key.flags,
                    key.cflags
                ),
            );
        }
        if mask.contains(LogMask::CPU) {
            log::log(LogMask::CPU, &cpu.dump_state());
        }
    }

    /// The TB to run next; `None` when fetching its first instruction faulted (the exception is recorded).
    fn find_tb<C: CpuOps + ?Sized>(
        &mut self,
        cpu: &mut C,
        mem: &mut dyn GuestMemory,
        next: Next,
    ) -> Result<Option<TbId>, ExecError> {
        match next {
            Next::Direct(id) if self.cache.get(id).is_some() => {
                self.stats.goto_ptr += 1;
                return Ok(Some(id));
            }
            Next::Direct(_) => {}
            Next::Chain(from, slot) => {
                if let Some(to) = self.cache.jmp_dest(from, slot) {
                    self.stats.chained += 1;
                    return Ok(Some(to));
                }
            }
            Next::Lookup => {}
        }
        let mut key = cpu.tb_key();
        if let Some(cflags) = cpu.take_cflags_next_tb() {
            key.cflags = cflags;
        }
        if self.opts.one_insn_per_tb {
            key.cflags = (key.cflags & !CFLAGS_COUNT_MASK) | 1;
        }
        let generation = self.generation;
        let id = if let Some(id) = self.cache.lookup_virtual(&key) {
            self.stats.jc_hits += 1;
            id
        } else {
            let Ok(phys) = cpu.code_phys_addr(mem, key.pc) else {
                return Ok(None);
            };
            if let Some(id) = self.cache.lookup_physical(phys, &key) {
                self.stats.hash_hits += 1;
                id
            } else {
                match self.translate(cpu, mem, key, phys)? {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        if let (Next::Chain(from, slot), true) = (next, generation == self.generation) {
            if self.cache.link(from, slot, id) {
                self.tiering.link(from, slot, id);
                self.stats.links += 1;
            }
        }
        Ok(Some(id))
    }

    /// Translates, prepares and compiles the TB for `key` (QEMU's `tb_gen_code`), flushing first when the
    /// cache has reached `tb-size`.
    fn translate<C: CpuOps + ?Sized>(
        &mut self,
        cpu: &mut C,
        mem: &mut dyn GuestMemory,
        key: TbKey,
        phys_pc: u64,
    ) -> Result<Option<TbId>, ExecError> {
        if self.code_bytes() >= self.opts.tb_size_bytes {
            self.flush();
            self.stats.size_flushes += 1;
        }
        let mut func = Func::new(cpu.target_desc());
        let max_insns = match key.cflags & CFLAGS_COUNT_MASK {
            0 => DEFAULT_MAX_INSNS,
            n => n,
        };
        let page_bits = self.cache.page_bits();
        let mut db = DisasBase::new(key, max_insns, page_bits);
        match cpu.gen_code(mem, &mut db, &mut func) {
            Ok(()) => {}
            Err(TranslateError::Fault) => return Ok(None),
            Err(e) => return Err(ExecError::Translate(e)),
        }
        if log::enabled(LogMask::OP) {
            log::log(LogMask::OP, &format!("OP:\n{}\n", func.dump()));
        }
        let size = db.size();
        let page_mask = !((1u64 << page_bits) - 1);
        let last = key.pc.wrapping_add(size.max(1) - 1);
        let second = if (last ^ key.pc) >> page_bits != 0 {
            let phys = cpu.code_phys_addr(mem, last).map_err(|_| {
                ExecError::Translate(TranslateError::Other(format!(
                    "the page of {last:#x} translated but has no physical address"
                )))
            })?;
            Some(phys & page_mask)
        } else {
            None
        };
        self.compile_log.replace(CompileLog::default());
        let id = self.tiering.add(func).map_err(ExecError::Compile)?;
        if log::enabled(LogMask::OP_OPT | LogMask::OUT_ASM) {
            self.log_compiled(key, id);
        }
        let code_bytes = self.tiering.code_size(id).unwrap_or(0);
        let tb = Tb {
            key,
            phys_pc,
            size,
            icount: db.num_insns,
            pages: [Some(phys_pc & page_mask), second],
            code_bytes,
            jmp_dest: [None; 2],
            jmp_incoming: Vec::new(),
        };
        self.invalidations.add_tb(&tb, page_bits);
        self.cache.insert(id, tb);
        self.stats.translations += 1;
        Ok(Some(id))
    }
}

impl CpuExec {
    /// `-d op_opt,out_asm` for the TB just added, from what the first tier's compile recorded.
    #[cold]
    fn log_compiled(&self, key: TbKey, id: TbId) {
        let record = self.compile_log.take();
        if let Some(ops) = record.op_opt {
            log::log(
                LogMask::OP_OPT,
                &format!("OP after optimization and liveness analysis:\n{ops}\n"),
            );
        }
        if let Some(code) = record.out_asm {
            log::log(
                LogMask::OUT_ASM,
                &format!("OUT: tb#{} pc=0x{:016x} {code}\n", id.index(), key.pc),
            );
        }
    }
}

/// Reads and clears the request half of the exit word.
///
/// # Safety
/// `env + offset` must be the exit word.
unsafe fn take_env_request(env: *mut u8, offset: i32) -> bool {
    // SAFETY: the caller's promise.
    unsafe {
        let high = env.offset(offset as isize + 2).cast::<u16>();
        if high.read_unaligned() == 0 {
            return false;
        }
        high.write_unaligned(0);
    }
    true
}

/// What [`helper_lookup_tb_ptr`] consults: the running CPU's jump cache and how to read its key.
struct LookupCtx {
    jc: JumpCacheHandle,
    key_fn: Option<TbKeyFn>,
}

thread_local! {
    static LOOKUP: RefCell<Option<LookupCtx>> = const { RefCell::new(None) };
}

/// Installs the lookup context for one [`CpuExec::run`] and restores the previous one when dropped.
struct LookupGuard(Option<LookupCtx>);

impl LookupGuard {
    fn install(jc: JumpCacheHandle, key_fn: Option<TbKeyFn>) -> LookupGuard {
        LookupGuard(LOOKUP.with(|l| l.replace(Some(LookupCtx { jc, key_fn }))))
    }
}

impl Drop for LookupGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        LOOKUP.with(|l| *l.borrow_mut() = previous);
    }
}

/// QEMU's `helper_lookup_tb_ptr`: the handle of the TB for the CPU state's current key if the jump cache
/// has it, else 0 (back to the loop). Register it with [`lookup_tb_ptr_helper`] and pass its result to
/// `goto_ptr`.
///
/// # Safety
/// `env` must be the CPU state of the [`CpuExec::run`] in progress on this thread.
pub unsafe extern "C" fn helper_lookup_tb_ptr(env: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    LOOKUP.with(|l| {
        let Ok(l) = l.try_borrow() else { return 0 };
        let Some(LookupCtx {
            jc,
            key_fn: Some(key_fn),
        }) = l.as_ref()
        else {
            return 0;
        };
        // SAFETY: the caller's promise; `key_fn` came from the CPU that owns `env`.
        let key = unsafe { key_fn(env) };
        let Ok(jc) = jc.0.try_borrow() else { return 0 };
        jc.get(&key).map_or(0, |id| id.index() as u64 + 1)
    })
}

/// The declaration of [`helper_lookup_tb_ptr`] for a target's helper table: no arguments, reads the
/// globals of the key, returns a pointer-sized handle.
pub fn lookup_tb_ptr_helper() -> HelperInfo {
    HelperInfo {
        name: "lookup_tb_ptr",
        func: helper_lookup_tb_ptr,
        flags: HelperFlags::READS_GLOBALS,
        args: &[],
        ret: Some(Type::PTR),
    }
}
