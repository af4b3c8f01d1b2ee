//! Control flow inside a TB as structured Wasm, TB exits, and chaining between members of a module.
//!
//! The IR is a straight sequence of ops with labels; branches may go forward or backward, in any shape. Every
//! label that some branch targets starts a *region*; region 0 is the code before the first one. With regions
//! `1..=N` the function body is
//!
//! ```text
//! loop $dispatch                      ;; only if some branch goes backward
//!   block $rN ... block $r1
//!     block $r0 (local.get $state) (br_table $r0 $rk ...) end   ;; only with the loop
//!     code of region 0
//!   end  code of region 1 ... end  code of region N
//! end
//! ```
//!
//! A forward branch from region `j` to region `k > j` is a plain `br`/`br_if` to the end of block `$rk`,
//! which is exactly where region `k` starts. A backward branch (to `k <= j`) stores `k`'s dispatch number in
//! `$state` and branches to `$dispatch`, whose `br_table` jumps forward into region `k`. Falling through a
//! label is falling out of a block. This handles every shape, irreducible ones included, with no code
//! duplication; forward branches (the common case in TBs: conditional exits, skipped blocks) cost nothing
//! extra, backward branches (loops such as `rep movs`) one `br_table`. Functions without backward branches
//! have neither the loop nor the table.
//!
//! Exits store the payload at `$out` and `return` the kind ([`crate::abi`]). `goto_tb n` whose target is a
//! member of the same module is `return_call $tbK` when the ABI allows tail calls; without them it leaves the
//! module like any other `goto_tb`, and the caller chains.

use rqemu_tcg::{CompileError, Func, Label, Op, Opcode, Type};
use wasm_encoder::{BlockType, Instruction as I};

use super::locals::{memarg_aligned, PARAM_ENV, PARAM_OUT};
use super::FnGen;
use crate::abi::{EXIT_FAULT, EXIT_GOTO_PTR, EXIT_GOTO_TB, EXIT_TB};

/// Regions of one function (see the module doc).
pub(super) struct Layout {
    /// Region started by each label, if any branch targets it.
    label_region: Vec<Option<usize>>,
    /// Number of regions after the entry region.
    nb_regions: usize,
    /// Dispatch number of each region reached by a backward branch (region 0 is always 0).
    state_of: Vec<Option<u32>>,
    /// Regions in dispatch-number order (`br_table` targets).
    dispatch: Vec<usize>,
    /// Local holding the dispatch number, when there is a dispatch loop.
    state_local: Option<u32>,
}

impl Layout {
    /// Finds the regions of `func`, checking the labels it relies on.
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
        let mut backward = vec![false; nb];
        for (i, op) in func.ops.iter().enumerate() {
            if matches!(op.opc, Opcode::Br | Opcode::Brcond) {
                let l = label_of(i, op)?;
                let Some(p) = pos[l] else {
                    return Err(CompileError::Invalid {
                        op_index: i,
                        why: format!("branch to label {l}, which is never set"),
                    });
                };
                targeted[l] = true;
                backward[l] |= p < i;
            }
        }
        let mut by_pos: Vec<(usize, usize)> = (0..nb)
            .filter(|&l| targeted[l])
            .filter_map(|l| pos[l].map(|p| (p, l)))
            .collect();
        by_pos.sort_unstable();
        let mut label_region = vec![None; nb];
        let mut state_of = vec![None; by_pos.len() + 1];
        let mut dispatch = vec![0];
        state_of[0] = Some(0);
        for (k, &(_, l)) in by_pos.iter().enumerate() {
            label_region[l] = Some(k + 1);
            if backward[l] {
                state_of[k + 1] = Some(dispatch.len() as u32);
                dispatch.push(k + 1);
            }
        }
        Ok(Layout {
            label_region,
            nb_regions: by_pos.len(),
            state_of,
            dispatch,
            state_local: None,
        })
    }

    fn has_dispatch(&self) -> bool {
        self.dispatch.len() > 1
    }
}

impl FnGen<'_> {
    /// Opens the dispatch loop and the region blocks (module doc).
    pub(super) fn open_regions(&mut self) {
        if self.layout.has_dispatch() {
            let state = self.locals.pinned(Type::I32);
            self.layout.state_local = Some(state);
            self.code.push(I::Loop(BlockType::Empty));
        }
        for _ in 0..self.layout.nb_regions {
            self.code.push(I::Block(BlockType::Empty));
        }
        if let Some(state) = self.layout.state_local {
            // Inside $r0, region k's block is k levels out.
            let targets: Vec<u32> = self.layout.dispatch.iter().map(|&k| k as u32).collect();
            self.emit([I::Block(BlockType::Empty), I::LocalGet(state)]);
            self.code.push(I::BrTable(targets.into(), 0));
            self.code.push(I::End);
        }
    }

    /// Closes the dispatch loop after the last region.
    pub(super) fn close_regions(&mut self) {
        if self.layout.has_dispatch() {
            self.code.push(I::End);
        }
    }

    /// `set_label`: a targeted label ends the block of its region.
    pub(super) fn set_label(&mut self, op: &Op) -> Result<(), CompileError> {
        let Some(k) = self.region_of(op.label())? else {
            return Ok(());
        };
        if k != self.region + 1 {
            return Err(self.invalid("labels out of order (code generator bug)"));
        }
        self.code.push(I::End);
        self.region = k;
        Ok(())
    }

    fn region_of(&self, l: Label) -> Result<Option<usize>, CompileError> {
        self.layout
            .label_region
            .get(l.0 as usize)
            .copied()
            .ok_or_else(|| self.invalid(format!("label {} does not exist", l.0)))
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
                    if k > self.region {
                        let depth = self.depth + (k - self.region - 1) as u32;
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

    /// An unconditional jump to the start of region `k` from the current region.
    fn jump(&mut self, k: usize) -> Result<(), CompileError> {
        if k > self.region {
            let depth = self.depth + (k - self.region - 1) as u32;
            self.code.push(I::Br(depth));
            return Ok(());
        }
        let (Some(state), Some(Some(n))) = (self.layout.state_local, self.layout.state_of.get(k)) else {
            return Err(self.invalid("backward branch without a dispatch entry (code generator bug)"));
        };
        let depth = self.depth + (self.layout.nb_regions - self.region) as u32;
        self.emit([I::I32Const(*n as i32), I::LocalSet(state), I::Br(depth)]);
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
                        self.emit([I::LocalGet(PARAM_ENV), I::LocalGet(PARAM_OUT), I::ReturnCall(k as u32)]);
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
