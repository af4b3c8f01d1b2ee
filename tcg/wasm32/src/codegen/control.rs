//! Control flow inside a TB as structured Wasm, TB exits, and chaining between members of a module.
//!
//! The IR is a straight sequence of ops with labels; branches may go forward or backward, in any shape. Every
//! label that some branch targets starts a *region*; region 0 is the code before the first one, regions
//! `1..=N` follow in op order. The code of the regions is emitted in that order, and control constructs are
//! opened and closed only at region boundaries:
//!
//! - a region that some branch reaches *forward* ends a `block` (falling through a label is falling out of
//!   the block; a forward branch is a `br`/`br_if` to it);
//! - a region that some branch reaches *backward* (a back edge, including one from the region itself) starts
//!   a `loop` spanning regions `k..=e`, where `e` is the region of its last back edge; a back edge is a
//!   `br`/`br_if` to the loop, and falling off the loop's end continues with region `e + 1`.
//!
//! Two loops whose spans overlap without nesting (`a1 < a2 <= e1 < e2`) are made to nest by extending the
//! outer one to `e2`: a loop may span more code than its back edges need, since falling through its end is
//! the same as running on. The loops then form a tree of *scopes* (the function is the outermost). The block
//! ending at region `k` belongs to the innermost loop `h` with `h < k <= e_h` (the function if none) and is
//! opened at the start of that scope, blocks of one scope nested by their end, the furthest outermost:
//!
//! ```text
//! block $r5                 ;; function scope: forward target 5, after the loop
//!   code of region 0
//!   loop $l1                ;; region 1 heads a loop spanning regions 1..=3
//!     block $r3 block $r2   ;; forward targets inside the loop
//!       code of region 1    ;; br_if $r5 leaves the loop, br_if $r2 skips ahead
//!     end code of region 2
//!     end code of region 3  ;; br_if $l1 is the back edge
//!   end code of region 4
//! end code of region 5
//! ```
//!
//! This nests correctly exactly when every forward branch into a loop scope comes from inside it: a forward
//! branch from before a loop to a region after its header (not the header itself) is a second entry into
//! the loop, an irreducible shape. Then, and only then, the whole function uses the dispatch fallback:
//!
//! ```text
//! loop $dispatch
//!   block $rN ... block $r1
//!     block $r0 (local.get $state) (br_table $r0 $rk ...) end
//!     code of region 0
//!   end  code of region 1 ... end  code of region N
//! end
//! ```
//!
//! where every region ends a block, forward branches are plain `br`s as above, and a backward branch stores
//! its target's dispatch number in `$state` and branches to `$dispatch`, whose `br_table` jumps forward into
//! the region. That handles every shape with no code duplication, at the cost of a `br_table` per back edge
//! and of a loop the engine cannot see through. Functions without backward branches have neither loops nor
//! the table; forward branches cost nothing extra in either form.
//!
//! The generator keeps the open constructs on a stack of [`Frame`]s and computes branch depths from it.
//!
//! Exits store the payload at `$out` and `return` the kind ([`crate::abi`]). `goto_tb n` whose target is a
//! member of the same module is `return_call $tbK` when the ABI allows tail calls; without them it leaves the
//! module like any other `goto_tb`, and the caller chains.

use rqemu_tcg::{CompileError, Func, Label, Op, Opcode, Type};
use wasm_encoder::{BlockType, Instruction as I};

use super::locals::{memarg_aligned, PARAM_ENV, PARAM_OUT};
use super::FnGen;
use crate::abi::{EXIT_FAULT, EXIT_GOTO_PTR, EXIT_GOTO_TB, EXIT_TB};

/// An open construct of the function body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// A `block` that ends where region `k` starts.
    Block(usize),
    /// A `loop` whose label is the start of region `k`.
    Loop(usize),
    /// The dispatch fallback's `loop`.
    Dispatch,
}

/// The dispatch fallback of one function (module doc).
struct Dispatch {
    /// Dispatch number of each region reached by a backward branch (region 0 is always 0).
    state_of: Vec<Option<u32>>,
    /// Regions in dispatch-number order (`br_table` targets).
    order: Vec<usize>,
    /// Local holding the dispatch number, once allocated.
    state_local: Option<u32>,
}

/// Regions and control constructs of one function (see the module doc).
pub(super) struct Layout {
    /// Region started by each label, if any branch targets it.
    label_region: Vec<Option<usize>>,
    /// Whether each region ends a block.
    ends_block: Vec<bool>,
    /// Last region of the loop each region heads, if it heads one.
    loop_end: Vec<Option<usize>>,
    /// Targets of the blocks opened at the start of each scope, outermost first: index 0 is the function,
    /// index `h` the loop headed by region `h`.
    opens: Vec<Vec<usize>>,
    /// The fallback, when structured loops cannot express the function.
    dispatch: Option<Dispatch>,
}

/// A branch between regions.
struct Edge {
    from: usize,
    to: usize,
}

impl Layout {
    /// Finds the regions of `func` and how to express its branches, checking the labels it relies on.
    pub(super) fn analyse(func: &Func) -> Result<Layout, CompileError> {
        let nb = func.nb_labels as usize;
        let mut pos = vec![None; nb];
        let label_of = |i: usize, op: &Op| {
            let l = op.label().0 as usize;
            if l < nb {
                Ok(l)
            } else {
                Err(CompileError::Invalid {
                    op_index: i,
                    why: format!("label {l} does not exist"),
                })
            }
        };
        for (i, op) in func.ops.iter().enumerate() {
            if op.opc == Opcode::SetLabel {
                let l = label_of(i, op)?;
                if pos[l].replace(i).is_some() {
                    return Err(CompileError::Invalid {
                        op_index: i,
                        why: format!("label {l} is set twice"),
                    });
                }
            }
        }
        let mut targeted = vec![false; nb];
        for (i, op) in func.ops.iter().enumerate() {
            if matches!(op.opc, Opcode::Br | Opcode::Brcond) {
                let l = label_of(i, op)?;
                if pos[l].is_none() {
                    return Err(CompileError::Invalid {
                        op_index: i,
                        why: format!("branch to label {l}, which is never set"),
                    });
                }
                targeted[l] = true;
            }
        }
        let mut by_pos: Vec<(usize, usize)> = (0..nb)
            .filter(|&l| targeted[l])
            .filter_map(|l| pos[l].map(|p| (p, l)))
            .collect();
        by_pos.sort_unstable();
        let mut label_region = vec![None; nb];
        for (k, &(_, l)) in by_pos.iter().enumerate() {
            label_region[l] = Some(k + 1);
        }
        let mut edges = Vec::new();
        let mut region = 0;
        for op in &func.ops {
            match op.opc {
                Opcode::SetLabel => {
                    if let Some(Some(k)) = label_region.get(op.label().0 as usize) {
                        region = *k;
                    }
                }
                Opcode::Br | Opcode::Brcond => {
                    if let Some(Some(to)) = label_region.get(op.label().0 as usize) {
                        edges.push(Edge { from: region, to: *to });
                    }
                }
                _ => {}
            }
        }
        let nb_regions = by_pos.len();
        Ok(Layout::structured(label_region.clone(), nb_regions, &edges)
            .unwrap_or_else(|| Layout::dispatched(label_region, nb_regions, &edges)))
    }

    /// The structured form, or `None` when some forward branch enters a loop other than at its header.
    fn structured(label_region: Vec<Option<usize>>, nb_regions: usize, edges: &[Edge]) -> Option<Layout> {
        let n = nb_regions + 1;
        let mut ends_block = vec![false; n];
        let mut loop_end: Vec<Option<usize>> = vec![None; n];
        for e in edges {
            if e.to > e.from {
                ends_block[e.to] = true;
            } else {
                let end = loop_end[e.to].get_or_insert(e.from);
                *end = (*end).max(e.from);
            }
        }
        // Make overlapping loops nest: ends only grow, so this terminates.
        let heads: Vec<usize> = (0..n).filter(|&h| loop_end[h].is_some()).collect();
        let mut changed = true;
        while changed {
            changed = false;
            for (i, &a) in heads.iter().enumerate() {
                for &b in &heads[i + 1..] {
                    let (Some(ea), Some(eb)) = (loop_end[a], loop_end[b]) else {
                        continue;
                    };
                    if b <= ea && eb > ea {
                        loop_end[a] = Some(eb);
                        changed = true;
                    }
                }
            }
        }
        // The scope of region k: the innermost loop h with h < k <= end(h), 0 for the function.
        let scope = |k: usize| {
            heads
                .iter()
                .rev()
                .find(|&&h| h < k && loop_end[h].is_some_and(|e| k <= e))
                .copied()
                .unwrap_or(0)
        };
        if edges.iter().any(|e| e.to > e.from && scope(e.to) > e.from) {
            return None;
        }
        let mut opens = vec![Vec::new(); n];
        for k in (1..n).rev().filter(|&k| ends_block[k]) {
            opens[scope(k)].push(k);
        }
        Some(Layout {
            label_region,
            ends_block,
            loop_end,
            opens,
            dispatch: None,
        })
    }

    /// The dispatch fallback: every region ends a block, all opened at the start, inside one loop if some
    /// branch goes backward.
    fn dispatched(label_region: Vec<Option<usize>>, nb_regions: usize, edges: &[Edge]) -> Layout {
        let n = nb_regions + 1;
        let mut state_of = vec![None; n];
        state_of[0] = Some(0);
        let mut order = vec![0];
        let mut backward: Vec<usize> = edges.iter().filter(|e| e.to <= e.from).map(|e| e.to).collect();
        backward.sort_unstable();
        backward.dedup();
        for k in backward.into_iter().filter(|&k| k > 0) {
            state_of[k] = Some(order.len() as u32);
            order.push(k);
        }
        let mut opens = vec![Vec::new(); n];
        opens[0] = (1..n).rev().collect();
        let mut ends_block = vec![true; n];
        ends_block[0] = false;
        Layout {
            label_region,
            ends_block,
            loop_end: vec![None; n],
            opens,
            dispatch: (order.len() > 1).then_some(Dispatch {
                state_of,
                order,
                state_local: None,
            }),
        }
    }
}

impl FnGen<'_> {
    /// Opens the constructs of the function scope (and the dispatch loop, if any).
    pub(super) fn open_regions(&mut self) {
        if let Some(d) = self.layout.dispatch.as_mut() {
            d.state_local = Some(self.locals.pinned(Type::I32));
            self.code.push(I::Loop(BlockType::Empty));
            self.frames.push(Frame::Dispatch);
        }
        self.open_blocks(0);
        if let Some(d) = &self.layout.dispatch {
            let state = d.state_local.unwrap_or_default();
            // Inside $r0, region k's block is k levels out.
            let targets: Vec<u32> = d.order.iter().map(|&k| k as u32).collect();
            self.emit([I::Block(BlockType::Empty), I::LocalGet(state)]);
            self.code.push(I::BrTable(targets.into(), 0));
            self.code.push(I::End);
        }
    }

    /// Opens the blocks of scope `scope` (module doc).
    fn open_blocks(&mut self, scope: usize) {
        for i in 0..self.layout.opens[scope].len() {
            let k = self.layout.opens[scope][i];
            self.code.push(I::Block(BlockType::Empty));
            self.frames.push(Frame::Block(k));
        }
    }

    /// Closes the loops still open at the end of the function; every block must have been closed.
    pub(super) fn close_regions(&mut self) -> Result<(), CompileError> {
        while let Some(f) = self.frames.pop() {
            if matches!(f, Frame::Block(_)) {
                return Err(self.invalid("a block is open at the end (code generator bug)"));
            }
            self.code.push(I::End);
        }
        Ok(())
    }

    /// `set_label`: a targeted label closes the loops that end before it and its own block, then opens its
    /// loop and that loop's blocks.
    pub(super) fn set_label(&mut self, op: &Op) -> Result<(), CompileError> {
        let Some(k) = self.region_of(op.label())? else {
            return Ok(());
        };
        if k != self.region + 1 {
            return Err(self.invalid("labels out of order (code generator bug)"));
        }
        while let Some(&Frame::Loop(h)) = self.frames.last() {
            if self.layout.loop_end[h].is_some_and(|e| e >= k) {
                break;
            }
            self.code.push(I::End);
            self.frames.pop();
        }
        if self.layout.ends_block[k] {
            if self.frames.last() != Some(&Frame::Block(k)) {
                return Err(self.invalid("badly nested blocks (code generator bug)"));
            }
            self.code.push(I::End);
            self.frames.pop();
        }
        self.region = k;
        if self.layout.loop_end[k].is_some() {
            self.code.push(I::Loop(BlockType::Empty));
            self.frames.push(Frame::Loop(k));
            self.stats.structured_loops += 1;
            self.open_blocks(k);
        }
        Ok(())
    }

    fn region_of(&self, l: Label) -> Result<Option<usize>, CompileError> {
        self.layout
            .label_region
            .get(l.0 as usize)
            .copied()
            .ok_or_else(|| self.invalid(format!("label {} does not exist", l.0)))
    }

    /// The branch depth of `frame`, counting the constructs the current op opened.
    fn depth_of(&self, frame: Frame) -> Result<u32, CompileError> {
        let Some(i) = self.frames.iter().rposition(|&f| f == frame) else {
            return Err(self.invalid(format!("no open {frame:?} to branch to (code generator bug)")));
        };
        Ok(self.depth + (self.frames.len() - 1 - i) as u32)
    }

    /// `br` and `brcond`.
    pub(super) fn branch(&mut self, op: &Op) -> Result<(), CompileError> {
        let Some(k) = self.region_of(op.label())? else {
            return Err(self.invalid("branch to a label without a region (code generator bug)"));
        };
        let conditional = op.opc == Opcode::Brcond;
        if conditional {
            let cond = op.cond();
            match cond {
                rqemu_tcg::Cond::Never => return Ok(()),
                rqemu_tcg::Cond::Always => {}
                _ => {
                    self.cond(cond, op.ty, op.input(0), op.input(1))?;
                    if let Some(frame) = self.direct_frame(k) {
                        let depth = self.depth_of(frame)?;
                        self.code.push(I::BrIf(depth));
                        return Ok(());
                    }
                    self.code.push(I::If(BlockType::Empty));
                    self.depth += 1;
                    self.jump(k)?;
                    self.depth -= 1;
                    self.code.push(I::End);
                    return Ok(());
                }
            }
        }
        self.jump(k)
    }

    /// The frame a branch to region `k` targets directly: its block (forward) or its loop (backward,
    /// structured); `None` for a backward branch through the dispatch loop.
    fn direct_frame(&self, k: usize) -> Option<Frame> {
        if k > self.region {
            Some(Frame::Block(k))
        } else if self.layout.dispatch.is_none() {
            Some(Frame::Loop(k))
        } else {
            None
        }
    }

    /// An unconditional jump to the start of region `k` from the current region.
    fn jump(&mut self, k: usize) -> Result<(), CompileError> {
        if let Some(frame) = self.direct_frame(k) {
            let depth = self.depth_of(frame)?;
            self.code.push(I::Br(depth));
            return Ok(());
        }
        let Some((Some(state), Some(Some(n)))) = self
            .layout
            .dispatch
            .as_ref()
            .map(|d| (d.state_local, d.state_of.get(k).copied()))
        else {
            return Err(self.invalid("backward branch without a dispatch entry (code generator bug)"));
        };
        let depth = self.depth_of(Frame::Dispatch)?;
        self.emit([I::I32Const(n as i32), I::LocalSet(state), I::Br(depth)]);
        self.stats.dispatched_branches += 1;
        Ok(())
    }

    /// Stores the 64-bit payload (pushed by `value`) at `$out` and returns `kind`.
    fn leave(
        &mut self,
        kind: u32,
        value: impl FnOnce(&mut Self) -> Result<(), CompileError>,
    ) -> Result<(), CompileError> {
        self.code.push(I::LocalGet(PARAM_OUT));
        value(self)?;
        self.emit([I::I64Store(memarg_aligned(0, 3)), I::I32Const(kind as i32), I::Return]);
        Ok(())
    }

    /// The payload of a `goto_tb` or fault exit: `low` and this member's index.
    fn member_payload(&self, low: u32) -> i64 {
        (low as u64 | (self.member as u64) << 32) as i64
    }

    /// `exit_tb`, `goto_tb`, `goto_ptr`.
    pub(super) fn exit(&mut self, op: &Op) -> Result<(), CompileError> {
        match op.opc {
            Opcode::ExitTb => {
                let v = op.konst(0) as i64;
                self.leave(EXIT_TB, |g| {
                    g.code.push(I::I64Const(v));
                    Ok(())
                })
            }
            Opcode::GotoTb => {
                let slot = op.konst(0);
                let target = self.jump_targets.get(slot as usize).copied().flatten();
                match target {
                    Some(k) if self.abi.tail_calls && k < self.nb_members => {
                        self.emit([
                            I::LocalGet(PARAM_ENV),
                            I::LocalGet(PARAM_OUT),
                            I::ReturnCall(self.imports.len() + k as u32),
                        ]);
                        self.stats.chained_jumps += 1;
                        Ok(())
                    }
                    _ => {
                        let payload = self.member_payload(slot as u32);
                        self.leave(EXIT_GOTO_TB, |g| {
                            g.code.push(I::I64Const(payload));
                            Ok(())
                        })
                    }
                }
            }
            _ => {
                let p = op.input(0);
                self.leave(EXIT_GOTO_PTR, |g| g.get_as(p, Type::I64))
            }
        }
    }

    /// After a call that may have recorded a fault: if the fault word is set, exit with the current
    /// instruction's index. `clear` resets the word first: the slow paths set it only to signal a failed
    /// guest access (whose details softmmu recorded elsewhere), and such an access leaves the CPU state as
    /// it was, like on every other backend; a fault word a helper set stays set for the loop.
    pub(super) fn check_fault(&mut self, clear: bool) -> Result<(), CompileError> {
        let off = self.func.target.fault_offset;
        self.code.push(I::LocalGet(PARAM_ENV));
        let memarg_offset = if off >= 0 {
            off as u64
        } else {
            self.emit([I::I32Const(off), I::I32Add]);
            0
        };
        self.code.push(I::I32Load(memarg_aligned(memarg_offset, 2)));
        self.code.push(I::If(BlockType::Empty));
        self.depth += 1;
        if clear {
            self.code.push(I::LocalGet(PARAM_ENV));
            if off < 0 {
                self.emit([I::I32Const(off), I::I32Add]);
            }
            self.emit([I::I32Const(0), I::I32Store(memarg_aligned(memarg_offset, 2))]);
        }
        let payload = self.member_payload(self.insn);
        self.leave(EXIT_FAULT, |g| {
            g.code.push(I::I64Const(payload));
            Ok(())
        })?;
        self.depth -= 1;
        self.code.push(I::End);
        Ok(())
    }
}
