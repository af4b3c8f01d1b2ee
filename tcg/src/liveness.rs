//! Liveness analysis and dead-code elimination, and the effect model every pass shares.
//!
//! - [`effects`]: what an op does besides computing its outputs (may it be deleted, which globals must be in the
//!   CPU state before it, which globals it may change there), with calls resolved through their helper;
//! - [`analyze`]: per-op death bits and per-temp live ranges, for backends that allocate slots or registers,
//!   and [`assign_slots`], a linear-scan slot assignment over those ranges;
//! - [`eliminate_dead_code`]: deletes ops whose results are never read.
//!
//! Liveness is computed backward over the control-flow graph until it is stable, so values live around a
//! loop inside a TB stay live. Rules:
//! - every global is read at each op that ends a basic block (branches, labels, TB exits) and at each op that
//!   needs the CPU state exact (may fault, calls that read or write globals, host loads and stores of a
//!   global's bytes); that is where [`crate::lower`] stores dirty globals;
//! - EBB temps are dead at every `set_label`; TB temps flow across labels and branches;
//! - `env` and constants are never tracked: they need no slot and never die.
//!
//! Dead-code elimination solves the same equations ignoring the inputs of ops that are themselves dead, so a
//! computation whose only reader is dead (or a counter that only feeds itself around a loop) goes away in one
//! run.

use crate::func::Func;
use crate::helper::{HelperFlags, HelperId};
use crate::op::Op;
use crate::opcodes::{ArgKind, ConstKind, OpFlags, Opcode};
use crate::target::GlobalDef;
use crate::temp::{Temp, TempKind};
use crate::Type;

/// Bytes of the CPU state an op reads or writes outside the IR's view of globals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateAccess {
    /// None at all.
    Nothing,
    /// Possibly any byte: helpers, TB exits, host accesses through a pointer other than `env`.
    All,
    /// `len` bytes at `offset` from `env`.
    Bytes {
        /// Byte offset from `env`.
        offset: i64,
        /// Number of bytes.
        len: u32,
    },
}

impl StateAccess {
    /// Whether the access may touch the field of global `g`.
    pub fn touches(self, g: &GlobalDef) -> bool {
        match self {
            StateAccess::Nothing => false,
            StateAccess::All => true,
            StateAccess::Bytes { offset, len } => {
                let (g_start, g_len) = (g.offset as i64, (g.ty.bits() / 8) as i64);
                offset < g_start + g_len && g_start < offset + len as i64
            }
        }
    }
}

/// How an op interacts with the CPU state and whether it may be deleted; see [`effects`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effects {
    /// The op may be deleted when none of its outputs is read.
    pub removable: bool,
    /// Globals whose field this touches must hold their current value in the CPU state before the op runs:
    /// the op reads them there, or the TB may exit at it.
    pub sync: StateAccess,
    /// Globals whose field this touches may hold a different value in the CPU state after the op.
    pub clobber: StateAccess,
}

/// The effects of `op` in `f`: from the opcode table, or from the helper's declaration for calls.
///
/// Host loads and stores based on `env` touch exactly the bytes they access, so a frontend may keep non-global
/// CPU-state fields next to globals; through any other base they may touch every global. Guest memory
/// (`qemu_ld`/`qemu_st`) never aliases the CPU state.
pub fn effects(f: &Func, op: &Op) -> Effects {
    let def = op.opc.def();
    if op.opc == Opcode::Call {
        let helper = op
            .consts()
            .first()
            .and_then(|&id| f.target.helpers.get(HelperId(id as u32)));
        // An unregistered helper (rejected by the verifier) is treated as doing everything.
        let flags = helper.map_or(HelperFlags::all() - HelperFlags::PURE, |h| h.flags);
        let touches_state =
            flags.intersects(HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT);
        return Effects {
            // Reading globals is no effect, but faulting or writing them is, whatever the declaration says.
            removable: flags.contains(HelperFlags::PURE)
                && !flags.intersects(HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT),
            sync: if touches_state {
                StateAccess::All
            } else {
                StateAccess::Nothing
            },
            clobber: if flags.contains(HelperFlags::WRITES_GLOBALS) {
                StateAccess::All
            } else {
                StateAccess::Nothing
            },
        };
    }
    let keep = OpFlags::SIDE_EFFECTS | OpFlags::MAY_FAULT | OpFlags::BB_END;
    let mut e = Effects {
        // An op without outputs exists for its effect (`insn_start` marks instruction boundaries).
        removable: !def.flags.intersects(keep) && op.nb_out > 0,
        sync: StateAccess::Nothing,
        clobber: StateAccess::Nothing,
    };
    if def.flags.intersects(OpFlags::BB_END | OpFlags::MAY_FAULT) {
        e.sync = StateAccess::All;
        return e;
    }
    if !def.flags.intersects(OpFlags::READS_MEMORY | OpFlags::WRITES_MEMORY) {
        return e;
    }
    if let Some(access) = host_access(op) {
        e.sync = access;
        if def.flags.contains(OpFlags::WRITES_MEMORY) {
            e.clobber = access;
        }
    }
    e
}

/// The CPU-state bytes a host load or store (an op with a pointer input and an offset) may access.
fn host_access(op: &Op) -> Option<StateAccess> {
    let def = op.opc.def();
    let base = def.ins.iter().position(|k| *k == ArgKind::Ptr)?;
    let offset = def.consts.iter().position(|k| *k == ConstKind::Offset)?;
    if op.input(base) != Temp::ENV {
        return Some(StateAccess::All);
    }
    Some(StateAccess::Bytes {
        offset: op.konst(offset) as i64,
        len: host_access_bytes(op.opc, op.ty),
    })
}

/// Size of a host load or store; the width is part of the op's meaning, so it is spelled out here.
fn host_access_bytes(opc: Opcode, ty: Type) -> u32 {
    use Opcode::*;
    match opc {
        Ld8u | Ld8s | St8 => 1,
        Ld16u | Ld16s | St16 => 2,
        Ld32u | Ld32s | St32 => 4,
        _ => ty.bits() / 8,
    }
}

/// A set of temps, one bit each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TempSet {
    words: Vec<u64>,
}

impl TempSet {
    pub(crate) fn new(nb_temps: usize) -> TempSet {
        TempSet {
            words: vec![0; nb_temps.div_ceil(64)],
        }
    }

    pub(crate) fn insert(&mut self, t: Temp) {
        if let Some(w) = self.words.get_mut(t.index() / 64) {
            *w |= 1 << (t.index() % 64);
        }
    }

    pub(crate) fn remove(&mut self, t: Temp) {
        if let Some(w) = self.words.get_mut(t.index() / 64) {
            *w &= !(1 << (t.index() % 64));
        }
    }

    pub(crate) fn contains(&self, t: Temp) -> bool {
        self.words
            .get(t.index() / 64)
            .is_some_and(|w| w & (1 << (t.index() % 64)) != 0)
    }

    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
    }

    pub(crate) fn union_with(&mut self, other: &TempSet) {
        self.union_words(&other.words);
    }

    fn union_words(&mut self, other: &[u64]) {
        for (a, b) in self.words.iter_mut().zip(other) {
            *a |= b;
        }
    }

    pub(crate) fn subtract(&mut self, other: &TempSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Temp> + '_ {
        // Set bits only, lowest first: sets are sparse (a few globals among thousands of temps).
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut rest = w;
            core::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let b = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    Temp((i * 64 + b) as u32)
                })
            })
        })
    }
}

/// Which arguments of one op hold values that end there; see [`Liveness::life`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgLife {
    dead_outs: u8,
    dying_ins: u8,
}

impl ArgLife {
    /// Whether the value written to output `i` is never read.
    pub fn output_dead(self, i: usize) -> bool {
        i < 8 && self.dead_outs & (1 << i) != 0
    }

    /// Whether the value read by input `i` is not needed after the op. Set once per temp, on its first
    /// position among the inputs; a temp that is also an output gets a new value from the op, so its input
    /// may still die. Never set for `env` or constants.
    pub fn input_dies(self, i: usize) -> bool {
        i < 8 && self.dying_ins & (1 << i) != 0
    }
}

/// The program points at which a temp holds a value that may still be read.
///
/// Points number the reads and writes of the op list: op `i` reads its inputs at `2 * i` and writes its outputs
/// at `2 * i + 1`. The range is the hull of every point where the temp is live, written or read, so it spans
/// whole loops that carry it. Two temps whose ranges do not overlap may share a slot or register for the whole
/// TB; a temp read for the last time by an op may hand its slot to an output of that same op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveRange {
    /// First point (inclusive).
    pub start: u32,
    /// Last point (inclusive).
    pub end: u32,
}

impl LiveRange {
    /// The point at which op `op_index` reads its inputs.
    pub const fn read_point(op_index: usize) -> u32 {
        2 * op_index as u32
    }

    /// The point at which op `op_index` writes its outputs.
    pub const fn write_point(op_index: usize) -> u32 {
        2 * op_index as u32 + 1
    }

    /// Whether the two ranges share a point.
    pub fn overlaps(&self, other: &LiveRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    fn extend(range: &mut Option<LiveRange>, point: u32) {
        *range = Some(match *range {
            None => LiveRange {
                start: point,
                end: point,
            },
            Some(r) => LiveRange {
                start: r.start.min(point),
                end: r.end.max(point),
            },
        });
    }
}

/// The result of [`analyze`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// For each op (indexed like [`Func::ops`]), which outputs are dead and which inputs die there: enough to
    /// free a slot or register as soon as its value ends.
    pub life: Vec<ArgLife>,
    /// For each temp (indexed like [`Func::temps`]), where it is live; `None` for `env`, constants and temps
    /// that no op mentions.
    pub ranges: Vec<Option<LiveRange>>,
}

/// Computes liveness for `f` as it is (dead ops count as live; run [`eliminate_dead_code`] first).
pub fn analyze(f: &Func) -> Liveness {
    let solver = Solver::new(f, false);
    let live_in = solver.solve();
    let mut result = Liveness {
        life: vec![ArgLife::default(); f.ops.len()],
        ranges: vec![None; f.temps.len()],
    };
    let mut live = TempSet::new(f.temps.len());
    for b in 0..solver.blocks.len() {
        let block = solver.blocks[b];
        solver.live_out(b, &live_in, &mut live);
        for t in live.iter() {
            LiveRange::extend(&mut result.ranges[t.index()], LiveRange::write_point(block.end - 1));
        }
        solver.scan_block(b, &mut live, |i, op, life| {
            result.life[i] = life;
            // A discarded temp needs no storage for its undefined value.
            for t in op.outs().filter(|&t| solver.tracked(t) && op.opc != Opcode::Discard) {
                LiveRange::extend(&mut result.ranges[t.index()], LiveRange::write_point(i));
            }
            for t in op.ins().filter(|&t| solver.tracked(t)) {
                LiveRange::extend(&mut result.ranges[t.index()], LiveRange::read_point(i));
            }
        });
        for t in live.iter() {
            LiveRange::extend(&mut result.ranges[t.index()], LiveRange::read_point(block.start));
        }
    }
    result
}

/// A slot (frame cell, Wasm local, spill location) for every temp that needs one; see [`assign_slots`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slots {
    /// For each temp (indexed like [`Func::temps`]), its slot; `None` for temps without a live range.
    pub of_temp: Vec<Option<u32>>,
    /// Number of slots used; slots are `0..count`.
    pub count: u32,
}

/// Gives every temp with a live range a slot, so that temps whose [`LiveRange`]s overlap never share one and
/// a slot is reused as soon as its last temp's range ends (linear scan). With `by_type`, a slot only ever
/// holds temps of one type (Wasm locals are typed); otherwise slots are untyped 64-bit cells.
pub fn assign_slots(f: &Func, live: &Liveness, by_type: bool) -> Slots {
    let mut order: Vec<(LiveRange, Temp)> = live
        .ranges
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (r, Temp(i as u32))))
        .collect();
    order.sort_by_key(|(r, t)| (r.start, *t));
    let mut slots = Slots {
        of_temp: vec![None; live.ranges.len()],
        count: 0,
    };
    let mut active: Vec<(u32, u32, Type)> = Vec::new(); // (end, slot, type)
    let mut free: Vec<(u32, Type)> = Vec::new();
    for (range, t) in order {
        active.retain(|&(end, slot, ty)| {
            let ended = end < range.start;
            if ended {
                free.push((slot, ty));
            }
            !ended
        });
        let ty = f.temps.get(t.index()).map_or(Type::I64, |i| i.ty);
        let reuse = free
            .iter()
            .enumerate()
            .filter(|(_, (_, fty))| !by_type || *fty == ty)
            .min_by_key(|(_, (s, _))| *s);
        let slot = match reuse.map(|(i, _)| i) {
            Some(i) => free.swap_remove(i).0,
            None => {
                slots.count += 1;
                slots.count - 1
            }
        };
        slots.of_temp[t.index()] = Some(slot);
        active.push((range.end, slot, ty));
    }
    slots
}

/// Deletes every op whose outputs are never read and that [`effects`] says may be deleted; returns how many.
///
/// `discard` counts as a write of an undefined value, so it disappears unless something (wrongly) reads the
/// temp after it.
pub fn eliminate_dead_code(f: &mut Func) -> usize {
    let solver = Solver::new(f, true);
    let live_in = solver.solve();
    let mut dead = vec![true; f.ops.len()];
    let mut live = TempSet::new(f.temps.len());
    for b in 0..solver.blocks.len() {
        solver.live_out(b, &live_in, &mut live);
        solver.scan_block(b, &mut live, |i, _, _| dead[i] = false);
    }
    let before = f.ops.len();
    let mut i = 0;
    f.ops.retain(|_| {
        i += 1;
        !dead[i - 1]
    });
    before - f.ops.len()
}

/// A basic block: ops `start..end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Successor blocks; `None` where control leaves the TB.
    pub(crate) succs: [Option<usize>; 2],
    /// Control may leave the TB by falling off the end of the op list.
    falls_off: bool,
}

/// The globals an op needs in the CPU state, among those the function mentions.
enum Sync {
    Nothing,
    All,
    Some(Vec<Temp>),
}

struct Solver<'a> {
    f: &'a Func,
    blocks: Vec<Block>,
    /// Per op: may it be deleted when its outputs are dead, and the globals it needs in the CPU state.
    ops: Vec<(bool, Sync)>,
    /// Temps liveness follows: globals the function mentions, TB and EBB temps.
    tracked: TempSet,
    globals: TempSet,
    ebb: TempSet,
}

impl<'a> Solver<'a> {
    fn new(f: &'a Func, eliminate: bool) -> Solver<'a> {
        let n = f.temps.len();
        let (mut tracked, mut globals, mut ebb) = (TempSet::new(n), TempSet::new(n), TempSet::new(n));
        for (i, info) in f.temps.iter().enumerate() {
            match info.kind {
                TempKind::Ebb => ebb.insert(Temp(i as u32)),
                TempKind::Tb => tracked.insert(Temp(i as u32)),
                _ => {}
            }
        }
        tracked.union_with(&ebb);
        // Only globals the function mentions are tracked, so lowered IR gives none of them a live range.
        for op in &f.ops {
            for t in op.outs().chain(op.ins()) {
                if f.temps.get(t.index()).is_some_and(|i| i.is_global()) {
                    globals.insert(t);
                }
            }
        }
        tracked.union_with(&globals);
        // The mentioned globals with their definitions, once: ops that reach the CPU state check them all.
        let mentioned: Vec<(Temp, &GlobalDef)> = globals
            .iter()
            .filter_map(|g| match f.temp(g).kind {
                TempKind::Global { index, .. } => Some((g, &f.target.globals[index as usize])),
                _ => None,
            })
            .collect();
        let ops = f
            .ops
            .iter()
            .map(|op| {
                let e = effects(f, op);
                let sync = match e.sync {
                    StateAccess::Nothing => Sync::Nothing,
                    StateAccess::All => Sync::All,
                    access => Sync::Some(
                        mentioned
                            .iter()
                            .filter(|(_, def)| access.touches(def))
                            .map(|&(g, _)| g)
                            .collect(),
                    ),
                };
                (e.removable && eliminate, sync)
            })
            .collect();
        Solver {
            f,
            blocks: build_blocks(f),
            ops,
            tracked,
            globals,
            ebb,
        }
    }

    fn tracked(&self, t: Temp) -> bool {
        self.tracked.contains(t)
    }

    /// Live-in sets of every block, iterated to a fixed point.
    fn solve(&self) -> BlockSets {
        let n = self.f.temps.len();
        let mut live_in = BlockSets::new(self.blocks.len(), n);
        let mut live = TempSet::new(n);
        // Blocks are visited last to first, so without backward branches every successor is final before its
        // predecessors and one pass is enough.
        let back_edges = self
            .blocks
            .iter()
            .enumerate()
            .any(|(b, block)| block.succs.iter().flatten().any(|&s| s <= b));
        loop {
            let mut changed = false;
            for b in (0..self.blocks.len()).rev() {
                self.live_out(b, &live_in, &mut live);
                self.scan_block(b, &mut live, |_, _, _| {});
                changed |= live_in.store(b, &live);
            }
            if !changed || !back_edges {
                return live_in;
            }
        }
    }

    /// Fills `live` with what is live at the end of block `b`.
    fn live_out(&self, b: usize, live_in: &BlockSets, live: &mut TempSet) {
        live.clear();
        for &s in self.blocks[b].succs.iter().flatten() {
            live.union_words(live_in.get(s));
        }
        if self.blocks[b].falls_off {
            live.union_with(&self.globals);
        }
    }

    /// Walks block `b` backward, turning `live` from its live-out into its live-in set, and calls `visit` for
    /// every op that stays (with its index, the op and its argument life).
    fn scan_block(&self, b: usize, live: &mut TempSet, mut visit: impl FnMut(usize, &Op, ArgLife)) {
        let block = self.blocks[b];
        for i in (block.start..block.end).rev() {
            let op = &self.f.ops[i];
            let (removable, sync) = &self.ops[i];
            if *removable && op.outs().all(|t| !live.contains(t)) {
                continue;
            }
            let mut life = ArgLife::default();
            for (k, t) in op.outs().enumerate() {
                if !live.contains(t) {
                    life.dead_outs |= 1 << k;
                }
            }
            for t in op.outs() {
                live.remove(t);
            }
            if op.opc == Opcode::SetLabel {
                live.subtract(&self.ebb);
            }
            for (k, t) in op.ins().enumerate() {
                if self.tracked(t) && !live.contains(t) {
                    life.dying_ins |= 1 << k;
                    live.insert(t);
                }
            }
            match sync {
                Sync::Nothing => {}
                Sync::All => live.union_with(&self.globals),
                Sync::Some(globals) => globals.iter().for_each(|&g| live.insert(g)),
            }
            visit(i, op, life);
        }
    }
}

/// One set of temps per block, in a single allocation.
struct BlockSets {
    words: usize,
    data: Vec<u64>,
}

impl BlockSets {
    fn new(nb_blocks: usize, nb_temps: usize) -> BlockSets {
        let words = nb_temps.div_ceil(64);
        BlockSets {
            words,
            data: vec![0; nb_blocks * words],
        }
    }

    fn get(&self, b: usize) -> &[u64] {
        &self.data[b * self.words..(b + 1) * self.words]
    }

    /// Replaces the set of block `b`; returns whether it changed.
    fn store(&mut self, b: usize, set: &TempSet) -> bool {
        let slot = &mut self.data[b * self.words..(b + 1) * self.words];
        let changed = slot != set.words.as_slice();
        slot.copy_from_slice(&set.words);
        changed
    }
}

/// Splits the op list into basic blocks: a block starts at a `set_label` and ends after a branch or exit.
pub(crate) fn build_blocks(f: &Func) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut start = 0;
    for (i, op) in f.ops.iter().enumerate() {
        if op.opc == Opcode::SetLabel && i > start {
            blocks.push((start, i));
            start = i;
        }
        let flags = op.opc.def().flags;
        if flags.contains(OpFlags::BB_END) && op.opc != Opcode::SetLabel {
            blocks.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < f.ops.len() {
        blocks.push((start, f.ops.len()));
    }

    // Sized by the labels branched to, so a label nobody uses cannot make this large.
    let nb_labels = f.ops.iter().filter_map(branch_target).max().map_or(0, |l| l + 1);
    let mut label_block = vec![None; nb_labels];
    for (b, &(start, _)) in blocks.iter().enumerate() {
        let op = &f.ops[start];
        if op.opc == Opcode::SetLabel {
            if let Some(slot) = label_block.get_mut(op.konst(0) as usize) {
                *slot = Some(b);
            }
        }
    }
    let count = blocks.len();
    blocks
        .iter()
        .enumerate()
        .map(|(b, &(start, end))| {
            let last = &f.ops[end - 1];
            let falls_through = !last.opc.def().flags.contains(OpFlags::NO_FALLTHROUGH);
            let next = if falls_through && b + 1 < count {
                Some(b + 1)
            } else {
                None
            };
            let target = branch_target(last).and_then(|l| label_block.get(l).copied().flatten());
            Block {
                start,
                end,
                succs: [next, target],
                falls_off: falls_through && b + 1 == count,
            }
        })
        .collect()
}

/// The label a branch (`br`, `brcond`) may jump to.
pub(crate) fn branch_target(op: &Op) -> Option<usize> {
    if op.opc == Opcode::SetLabel || !op.opc.def().flags.contains(OpFlags::BB_END) {
        return None;
    }
    let k = op.opc.def().consts.iter().position(|c| *c == ConstKind::Label)?;
    (k < op.nb_const as usize).then(|| op.konst(k) as usize)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::helper::HelperInfo;
    use crate::{lower, Cond, TargetDesc};

    unsafe extern "C" fn nop(_: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        0
    }

    fn target() -> Arc<TargetDesc> {
        let mut t = TargetDesc::new(0x100);
        t.add_global("rax", Type::I64, 0);
        t.add_global("rbx", Type::I64, 8);
        t.add_global("flags", Type::I32, 16);
        for (name, flags) in [("pure", HelperFlags::PURE), ("reads", HelperFlags::READS_GLOBALS)] {
            t.helpers.register(HelperInfo {
                name,
                func: nop,
                flags,
                args: &[Type::I64],
                ret: Some(Type::I64),
            });
        }
        Arc::new(t)
    }

    #[test]
    fn loop_carried_temp_stays_live() {
        // t = 0; L: t = t + 1; brcond t < 10, L; rax = 0; exit
        let mut f = Func::new(target());
        let rax = f.global(0);
        let t = f.new_temp(Type::I64);
        let (zero, one, ten) = (
            f.constant(Type::I64, 0),
            f.constant(Type::I64, 1),
            f.constant(Type::I64, 10),
        );
        let l = f.new_label();
        f.movi(t, 0);
        f.set_label(l);
        f.add(t, t, one);
        f.brcond(Cond::Lt, t, ten, l);
        f.mov(rax, zero);
        f.exit_tb(0);
        let live = analyze(&f);
        let r = live.ranges[t.index()].unwrap();
        // Written by op 0, live across the back edge (after op 3): the range covers the whole loop.
        assert_eq!((r.start, r.end), (LiveRange::write_point(0), LiveRange::write_point(3)));
        // The add replaces the value it reads; the branch's read is not the last one, the loop reads it again.
        assert!(live.life[2].input_dies(0));
        assert!(!live.life[3].input_dies(0));
        assert_eq!(live.ranges[zero.index()], None);
        // The counter only feeds the branch, which stays, so nothing is dead.
        assert_eq!(eliminate_dead_code(&mut f), 0);
    }

    #[test]
    fn dead_cycle_around_a_loop_is_removed() {
        let mut f = Func::new(target());
        let t = f.new_temp(Type::I64);
        let u = f.new_temp(Type::I64);
        let one = f.constant(Type::I64, 1);
        let l = f.new_label();
        f.movi(t, 0);
        f.movi(u, 0);
        f.set_label(l);
        f.add(t, t, one); // feeds only itself
        f.add(u, u, one);
        f.brcond(Cond::Ne, u, one, l);
        f.exit_tb(0);
        assert_eq!(eliminate_dead_code(&mut f), 2);
        assert_eq!(
            f.dump(),
            "movi_i64 t5, 0x0\nset_label L0\nadd_i64 t5, t5, $0x1\nbrcond_i64 t5, $0x1, ne, L0\nexit_tb 0x0\n"
        );
    }

    #[test]
    fn globals_are_live_at_block_ends_and_before_reading_calls() {
        let mut f = Func::new(target());
        let (rax, rbx) = (f.global(0), f.global(1));
        let t = f.new_temp(Type::I64);
        f.movi(rax, 1); // overwritten before any block end: dead
        f.movi(rax, 2);
        f.call(HelperId(1), Some(t), &[t]); // reads globals: rax = 2 must be visible
        f.movi(rbx, 3); // dead: overwritten below
        f.movi(rbx, 4);
        f.movi(t, 5); // dead: t is never read
        f.exit_tb(0);
        // The call reads t before it is written; that does not matter here.
        assert_eq!(eliminate_dead_code(&mut f), 3);
        assert_eq!(f.ops.len(), 4);
    }

    #[test]
    fn host_accesses_touch_only_their_bytes() {
        let mut f = Func::new(target());
        let t = f.new_temp(Type::I64);
        f.load(Opcode::Ld8u, t, Temp::ENV, 9);
        let e = effects(&f, &f.ops[0]);
        assert!(e.removable);
        assert!(!e.sync.touches(&f.target.globals[0]));
        assert!(e.sync.touches(&f.target.globals[1]));
        assert_eq!(e.clobber, StateAccess::Nothing);
        f.store(Opcode::St, t, t, 0);
        assert_eq!(effects(&f, &f.ops[1]).clobber, StateAccess::All);
    }

    #[test]
    fn slots_are_reused_once_ranges_end_but_never_shared_while_live() {
        let mut f = Func::new(target());
        let rax = f.global(0);
        let (a, b, c, d) = (
            f.new_temp(Type::I64),
            f.new_temp(Type::I64),
            f.new_temp(Type::I64),
            f.new_temp(Type::I64),
        );
        let w = f.new_temp(Type::I32);
        let one = f.constant(Type::I64, 1);
        let l = f.new_label();
        f.movi(c, 0);
        f.set_label(l);
        f.movi(a, 1);
        f.add(b, a, one); // a's last read: b may take its slot
        f.extrl_i64_i32(w, b);
        f.ext_i32_i64(d, w);
        f.add(c, c, d); // c lives around the loop
        f.brcond(Cond::Ne, c, one, l);
        f.mov(rax, c);
        f.exit_tb(0);
        lower::lower_globals(&mut f);
        let live = analyze(&f);
        let slots = assign_slots(&f, &live, false);
        let slot = |t: Temp| slots.of_temp[t.index()].unwrap();
        for (i, ri) in live.ranges.iter().enumerate() {
            for (j, rj) in live.ranges.iter().enumerate().skip(i + 1) {
                if let (Some(ri), Some(rj)) = (ri, rj) {
                    if ri.overlaps(rj) {
                        assert_ne!(slots.of_temp[i], slots.of_temp[j], "t{i} and t{j} overlap");
                    }
                }
            }
        }
        assert_eq!(slot(a), slot(b), "b takes a's slot at a's last read");
        assert_ne!(slot(a), slot(c));
        assert_eq!(slots.of_temp[one.index()], None);
        let typed = assign_slots(&f, &live, true);
        assert_ne!(
            typed.of_temp[w.index()],
            typed.of_temp[a.index()],
            "i32 and i64 never share a typed slot"
        );
        assert!(slots.count < typed.count);
    }

    #[test]
    fn ebb_temps_die_at_labels() {
        let mut f = Func::new(target());
        let e = f.new_ebb_temp(Type::I64);
        let l = f.new_label();
        f.movi(e, 1);
        f.brcond(Cond::Eq, e, e, l);
        f.set_label(l);
        f.exit_tb(0);
        let live = analyze(&f);
        assert_eq!(
            live.ranges[e.index()],
            Some(LiveRange {
                start: LiveRange::write_point(0),
                end: LiveRange::read_point(1)
            })
        );
    }
}
