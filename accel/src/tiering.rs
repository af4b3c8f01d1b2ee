//! The tiering policy: every TB starts on the first tier (tci) and counts its executions there; past a
//! threshold it is queued, compiled by the hot backend (wasm32 on a Wasm host) together with its hot direct
//! successors into one module, and from then on runs that code. Hot code can be evicted (a cap on live
//! modules, least recently used first) or invalidated, and a flush drops everything; a TB without hot code
//! simply runs on the first tier again and may be compiled again later.
//!
//! This is the accel-facing form the CPU loop will use: [`Tiering`] owns the TBs' code, the loop owns the TB
//! lookup. It hands [`Tiering::add`] the IR of a new TB, [`Tiering::link`] a `goto_tb` slot it resolved, and
//! runs TBs with [`Tiering::run`]; the real loop is [`crate::cpu_exec`]. [`Tiering::run_until_exit`] is a
//! minimal loop (successor found by a lookup function) for this module's tests and benchmarks.
//!
//! A module is the unit of eviction: the hot backend may compile jumps between its members into direct
//! jumps, so a member cannot lose its code without the others. Dropping a module's `CompiledTb`s is what
//! releases it (for wasm32: the instance and its table slots).
//!
//! Because of those direct jumps, the TB that leaves a module need not be the one the loop entered: hot code
//! runs through [`CompiledTb::run_chained`], and every exit comes back as a [`RunExit`] naming the TB it
//! belongs to. `goto_tb` slots are linked, and fault instruction indexes resolved ([`Tiering::insn_start`]),
//! in that TB.
//!
//! [`workload`] is a small program of linked TBs with a Rust reference, for tests and benchmarks.
//!
//! Not here: the TB cache and hashing (the loop's), options parsing beyond `tier-*` (`config`).

mod config;
#[cfg(test)]
mod tests;
pub mod workload;

use std::collections::VecDeque;

use core::fmt;

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::opcodes::INSN_START_WORDS;
use rqemu_tcg::{Backend, CompileError, CompiledTb, ExecContext, Func, Opcode, TbExit};

pub use config::{TierConfig, TierOptionError, DEFAULT_MAX_GROUP, DEFAULT_MAX_MODULES, DEFAULT_THRESHOLD};

/// A TB known to [`Tiering`]. Ids are not reused until [`Tiering::flush`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TbId(u32);

impl TbId {
    /// The id as an index (ids count from 0 in order of [`Tiering::add`]).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id whose [`TbId::index`] is `index`, if an id can have it (the TB cache indexes by it).
    pub fn from_index(index: usize) -> Option<TbId> {
        u32::try_from(index).ok().map(TbId)
    }
}

/// How a run of hot or cold code ended, and which TB's IR the exit refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunExit {
    /// The exit.
    pub exit: TbExit,
    /// The TB that exited: the one that was run, or another member of its module that hot code jumped to.
    /// A `GotoTb` slot and a `Fault` instruction index are this TB's.
    pub tb: TbId,
}

/// Which code a TB runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The first tier; the TB is counting towards the threshold.
    Cold,
    /// Queued for the hot backend.
    Queued,
    /// Hot code in a live module.
    Hot,
    /// The hot backend refused it; it stays on the first tier until a flush.
    ColdForever,
}

/// Counters for `-d` output and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierStats {
    /// TBs added.
    pub tbs: u64,
    /// Runs on the first tier.
    pub cold_runs: u64,
    /// Runs of hot code (entries from the loop; jumps inside a module are not seen).
    pub hot_runs: u64,
    /// TBs compiled hot (every member of every module).
    pub hot_tbs: u64,
    /// Modules compiled.
    pub modules: u64,
    /// Modules alive now.
    pub modules_live: u64,
    /// Modules dropped because of the cap.
    pub evictions: u64,
    /// Modules dropped because a member was invalidated.
    pub invalidations: u64,
    /// Flushes.
    pub flushes: u64,
    /// Hot compilations that failed.
    pub failures: u64,
    /// Bytes of hot code alive now.
    pub hot_bytes: u64,
}

impl fmt::Display for TierStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tiering: {} TBs, runs {} cold / {} hot, {} TBs hot in {} modules ({} live, {} bytes), \
             {} evictions, {} invalidations, {} flushes, {} failures",
            self.tbs,
            self.cold_runs,
            self.hot_runs,
            self.hot_tbs,
            self.modules,
            self.modules_live,
            self.hot_bytes,
            self.evictions,
            self.invalidations,
            self.flushes,
            self.failures
        )
    }
}

struct Entry {
    /// Prepared IR, kept to compile hot (again, after an eviction).
    func: Func,
    cold: Box<dyn CompiledTb>,
    hot: Option<Hot>,
    tier: Tier,
    count: u32,
    /// `goto_tb` successors the loop resolved.
    links: [Option<TbId>; 2],
    alive: bool,
}

struct Hot {
    code: Box<dyn CompiledTb>,
    module: usize,
}

struct Module {
    members: Vec<TbId>,
    last_used: u64,
}

/// The two tiers, the TBs and their hot modules.
pub struct Tiering {
    cold: Box<dyn Backend>,
    hot: Option<Box<dyn Backend>>,
    config: TierConfig,
    tbs: Vec<Entry>,
    /// Live modules by slot; `None` slots are reused.
    modules: Vec<Option<Module>>,
    queue: VecDeque<TbId>,
    /// Advances on every hot run: the LRU clock.
    tick: u64,
    stats: TierStats,
}

impl Tiering {
    /// Tiering from `cold` (every TB) to `hot` (hot TBs; `None` runs everything on `cold`).
    pub fn new(cold: Box<dyn Backend>, hot: Option<Box<dyn Backend>>, config: TierConfig) -> Tiering {
        let config = TierConfig {
            threshold: config.threshold.max(1),
            max_modules: config.max_modules.max(1),
            max_group: config.max_group.max(1),
        };
        Tiering {
            cold,
            hot,
            config,
            tbs: Vec::new(),
            modules: Vec::new(),
            queue: VecDeque::new(),
            tick: 0,
            stats: TierStats::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> TierConfig {
        self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> TierStats {
        self.stats
    }

    /// The hot backend, to read its own statistics.
    pub fn hot_backend(&self) -> Option<&dyn Backend> {
        self.hot.as_deref()
    }

    /// Runs `func` through [`rqemu_tcg::prepare::prepare`], compiles it on the first tier and returns its id.
    /// Malformed IR or a first-tier failure is an error and no TB is added.
    pub fn add(&mut self, mut func: Func) -> Result<TbId, CompileError> {
        rqemu_tcg::prepare::prepare(&mut func).map_err(|e| CompileError::Invalid {
            op_index: e.op_index.unwrap_or(0),
            why: e.message,
        })?;
        let cold = self.cold.compile(&func)?;
        let id = u32::try_from(self.tbs.len()).map_err(|_| CompileError::TooLarge("too many TBs".into()))?;
        self.tbs.push(Entry {
            func,
            cold,
            hot: None,
            tier: Tier::Cold,
            count: 0,
            links: [None, None],
            alive: true,
        });
        self.stats.tbs += 1;
        Ok(TbId(id))
    }

    /// Records that `goto_tb slot` of `from` leads to `to`: the hot backend may then compile that jump
    /// directly when both land in one module. The loop must only link a slot whose target never changes
    /// (a direct jump), and `from` must be the TB the exit names ([`RunExit::tb`]), not the one it entered:
    /// hot code may have run several members of a module before leaving. Unknown ids are ignored.
    pub fn link(&mut self, from: TbId, slot: u32, to: TbId) {
        let to_alive = self.entry(to).is_some();
        if let (Some(e), true) = (self.tbs.get_mut(from.index()).filter(|e| e.alive), to_alive) {
            if let Some(l) = e.links.get_mut(slot as usize) {
                *l = Some(to);
            }
        }
    }

    /// The `goto_tb` successors linked so far; `None` for an unknown or invalidated TB.
    pub fn links(&self, tb: TbId) -> Option<[Option<TbId>; 2]> {
        self.entry(tb).map(|e| e.links)
    }

    /// The `insn_start` words of guest instruction `insn` of `tb` (counting from 0, as
    /// [`TbExit::Fault`] does), from which the loop restores the guest pc and the rest of the state after a
    /// fault. `None` for an unknown TB or index.
    pub fn insn_start(&self, tb: TbId, insn: u32) -> Option<[u64; INSN_START_WORDS]> {
        let op = self
            .entry(tb)?
            .func
            .ops
            .iter()
            .filter(|op| op.opc == Opcode::InsnStart)
            .nth(insn as usize)?;
        let mut words = [0; INSN_START_WORDS];
        words.copy_from_slice(&op.args[..INSN_START_WORDS]);
        Some(words)
    }

    /// Bytes of code `tb` holds now (first-tier bytecode plus its share of hot code), for the TB cache's
    /// size bound; `None` for an unknown or invalidated TB.
    pub fn code_size(&self, tb: TbId) -> Option<usize> {
        let e = self.entry(tb)?;
        Some(e.cold.code_size() + e.hot.as_ref().map_or(0, |h| h.code.code_size()))
    }

    /// Which code `tb` runs now; `None` for an unknown or invalidated TB.
    pub fn tier(&self, tb: TbId) -> Option<Tier> {
        self.entry(tb).map(|e| e.tier)
    }

    /// Runs `tb` once on its best code; `None` when the TB is unknown or was invalidated (translate again).
    /// First-tier runs count, and the run that reaches the threshold queues the TB and compiles the queue.
    /// Hot code may leave from another member of `tb`'s module; the exit says which.
    ///
    /// # Safety
    /// As [`CompiledTb::run`]: `ctx.env` must be a CPU state valid for the TB's IR.
    pub unsafe fn run(&mut self, tb: TbId, ctx: &mut ExecContext<'_>) -> Option<RunExit> {
        let index = tb.index();
        let hot_module = self.tbs.get(index).filter(|e| e.alive)?.hot.as_ref().map(|h| h.module);
        if let Some(m) = hot_module {
            self.tick += 1;
            let module = self.modules.get_mut(m).and_then(Option::as_mut)?;
            module.last_used = self.tick;
            self.stats.hot_runs += 1;
            let hot = self.tbs[index].hot.as_ref()?;
            // SAFETY: the caller's promise.
            let (exit, member) = unsafe { hot.code.run_chained(ctx) };
            // A member index the module does not have (never produced) is read as the TB itself.
            let from = member.and_then(|i| module.members.get(i).copied()).unwrap_or(tb);
            return Some(RunExit { exit, tb: from });
        }
        let e = &mut self.tbs[index];
        self.stats.cold_runs += 1;
        // SAFETY: the caller's promise.
        let exit = unsafe { e.cold.run(ctx) };
        e.count = e.count.saturating_add(1);
        if e.tier == Tier::Cold && e.count >= self.config.threshold && self.hot.is_some() {
            e.tier = Tier::Queued;
            self.queue.push_back(tb);
            self.compile_pending();
        }
        Some(RunExit { exit, tb })
    }

    /// TBs waiting for the hot backend.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Compiles every queued TB with its hot successors. [`Tiering::run`] calls it when it queues a TB; a
    /// loop that prefers to batch may call it at any time.
    pub fn compile_pending(&mut self) {
        while let Some(root) = self.queue.pop_front() {
            if self.entry(root).is_some_and(|e| e.tier == Tier::Queued) {
                self.compile_group_from(root);
            }
        }
    }

    /// Drops the module holding `tb` (if any) and forgets `tb`; other members fall back to the first tier.
    pub fn invalidate(&mut self, tb: TbId) {
        let Some(module) = self.entry(tb).and_then(|e| e.hot.as_ref()).map(|h| h.module) else {
            if let Some(e) = self.tbs.get_mut(tb.index()) {
                e.alive = false;
            }
            return;
        };
        self.drop_module(module);
        self.stats.invalidations += 1;
        if let Some(e) = self.tbs.get_mut(tb.index()) {
            e.alive = false;
        }
    }

    /// Drops every TB and all their code (`tb_flush`). Ids start again from 0.
    pub fn flush(&mut self) {
        self.queue.clear();
        // Modules first: their code may refer to nothing else, but dropping in this order keeps the
        // live-module count exact at every step.
        for m in 0..self.modules.len() {
            self.drop_module(m);
        }
        self.modules.clear();
        self.tbs.clear();
        self.stats.flushes += 1;
    }

    /// A minimal execution loop: runs from `start`, and after each `goto_tb` asks `lookup` (given the CPU
    /// state) for the next TB and links the slot of the TB that exited (which, after hot code, may be another
    /// member of the module entered). Stops at any other exit (a fault among them: its instruction index is
    /// the exit's TB's), when `lookup` has no TB, or after `budget` TB runs; returns the last exit (`None`
    /// when the budget ran out or `start` is unknown) and the runs.
    ///
    /// # Safety
    /// As [`Tiering::run`], for every TB reached.
    pub unsafe fn run_until_exit(
        &mut self,
        start: TbId,
        ctx: &mut ExecContext<'_>,
        lookup: &mut dyn FnMut(*mut u8) -> Option<TbId>,
        budget: u64,
    ) -> (Option<RunExit>, u64) {
        let mut tb = start;
        let mut runs = 0;
        while runs < budget {
            // SAFETY: the caller's promise.
            let exit = unsafe { self.run(tb, ctx) };
            runs += 1;
            let Some(RunExit {
                exit: TbExit::GotoTb(slot),
                tb: from,
            }) = exit
            else {
                return (exit, runs);
            };
            let Some(next) = lookup(ctx.env) else {
                return (exit, runs);
            };
            self.link(from, slot, next);
            tb = next;
        }
        (None, runs)
    }

    fn entry(&self, tb: TbId) -> Option<&Entry> {
        self.tbs.get(tb.index()).filter(|e| e.alive)
    }

    /// A TB that may join a group: alive, without hot code, not refused before, and hot or nearly so (a
    /// successor in a loop is usually one run behind the TB that crossed the threshold).
    fn joinable(&self, tb: TbId) -> bool {
        self.entry(tb).is_some_and(|e| {
            matches!(e.tier, Tier::Cold | Tier::Queued) && e.count.saturating_mul(2) >= self.config.threshold
        })
    }

    /// `root` and its joinable successors, breadth first along the links, at most `max_group`.
    fn collect_group(&self, root: TbId) -> Vec<TbId> {
        let mut group = vec![root];
        let mut i = 0;
        while i < group.len() && group.len() < self.config.max_group {
            let links = self.tbs[group[i].index()].links;
            for next in links.into_iter().flatten() {
                if group.len() < self.config.max_group && !group.contains(&next) && self.joinable(next) {
                    group.push(next);
                }
            }
            i += 1;
        }
        group
    }

    fn compile_group_from(&mut self, root: TbId) {
        let group = self.collect_group(root);
        if self.try_compile(&group).is_ok() {
            return;
        }
        // One member may be what the hot backend refuses: try the root alone before giving up on it.
        if group.len() > 1 && self.try_compile(&[root]).is_ok() {
            return;
        }
        if let Some(e) = self.tbs.get_mut(root.index()) {
            e.tier = Tier::ColdForever;
        }
    }

    fn try_compile(&mut self, group: &[TbId]) -> Result<(), CompileError> {
        let Some(hot) = self.hot.as_mut() else {
            return Err(CompileError::Host("no hot backend".into()));
        };
        let members: Vec<GroupMember<'_>> = group
            .iter()
            .map(|&tb| {
                let e = &self.tbs[tb.index()];
                GroupMember {
                    func: &e.func,
                    jump_targets: e.links.map(|l| l.and_then(|t| group.iter().position(|&g| g == t))),
                }
            })
            .collect();
        let codes = match hot.compile_group(&members) {
            Ok(codes) if codes.len() == group.len() => codes,
            Ok(_) => {
                self.stats.failures += 1;
                return Err(CompileError::Host(
                    "compile_group returned the wrong number of TBs".into(),
                ));
            }
            Err(e) => {
                self.stats.failures += 1;
                return Err(e);
            }
        };
        if self.live_modules() >= self.config.max_modules {
            self.evict_lru();
        }
        self.tick += 1;
        let module = Module {
            members: group.to_vec(),
            last_used: self.tick,
        };
        let slot = match self.modules.iter().position(Option::is_none) {
            Some(s) => {
                self.modules[s] = Some(module);
                s
            }
            None => {
                self.modules.push(Some(module));
                self.modules.len() - 1
            }
        };
        for (&tb, code) in group.iter().zip(codes) {
            self.stats.hot_bytes += code.code_size() as u64;
            let e = &mut self.tbs[tb.index()];
            e.hot = Some(Hot { code, module: slot });
            e.tier = Tier::Hot;
        }
        self.stats.hot_tbs += group.len() as u64;
        self.stats.modules += 1;
        self.stats.modules_live += 1;
        Ok(())
    }

    fn live_modules(&self) -> usize {
        self.modules.iter().flatten().count()
    }

    fn evict_lru(&mut self) {
        let lru = self
            .modules
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (m.last_used, i)))
            .min();
        if let Some((_, i)) = lru {
            self.drop_module(i);
            self.stats.evictions += 1;
        }
    }

    /// Drops a module's code; its members go back to counting on the first tier.
    fn drop_module(&mut self, slot: usize) {
        let Some(module) = self.modules.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for tb in module.members {
            if let Some(e) = self.tbs.get_mut(tb.index()) {
                if let Some(hot) = e.hot.take() {
                    self.stats.hot_bytes = self.stats.hot_bytes.saturating_sub(hot.code.code_size() as u64);
                }
                e.tier = Tier::Cold;
                e.count = 0;
            }
        }
        self.stats.modules_live -= 1;
    }
}
