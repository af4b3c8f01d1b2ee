//! Frame slots for TB and EBB temps: live ranges in program order, widened over loops, then a linear scan
//! that lets temps whose ranges do not overlap share a slot.
//!
//! Ranges are in points: op `i` reads its inputs at `2 * i` and writes its outputs at `2 * i + 1`, so a temp
//! read for the last time by an op can hand its slot to that op's output (every bytecode instruction reads
//! all its inputs before it writes), while two outputs of one op never share. A range is the hull of a temp's
//! points, reads and writes alike (`discard` does not count). That is enough without loops: a value can only
//! flow forward. A backward branch from op `b` to a label at op `l` can carry a value around, so every range
//! that overlaps `[2l, 2b + 1]` is widened to cover it, until no loop overlaps a range without being inside
//! it. Then no path between two occurrences of a temp leaves its range (leaving it forward or backward needs
//! a branch that, overlapping the range, is inside it), so no other temp can overwrite the slot while the
//! value is live.
//!
//! `rqemu_tcg::liveness::analyze` gives tighter ranges from a data-flow solution, but costs about three times
//! this whole backend's compile time per op; TBs rarely loop, where the two agree.
//!
//! Constants and `env` do not come through here: they have fixed slots (see `crate::compile`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Marks a temp that does not occur.
const UNUSED: u32 = u32::MAX;

/// Live ranges of one TB's temps and the backward branches seen, reusable from TB to TB.
#[derive(Default)]
pub(crate) struct LiveRanges {
    start: Vec<u32>,
    end: Vec<u32>,
    /// `(label position, branch position)` of each backward branch.
    loops: Vec<(u32, u32)>,
    order: Vec<u32>,
    active: BinaryHeap<Reverse<(u32, u32)>>,
    free: Vec<u32>,
}

impl LiveRanges {
    /// Forgets the previous TB; `nb_temps` temps may occur.
    pub(crate) fn reset(&mut self, nb_temps: usize) {
        self.start.clear();
        self.start.resize(nb_temps, UNUSED);
        self.end.clear();
        self.end.resize(nb_temps, UNUSED);
        self.loops.clear();
    }

    /// Temp `temp` is read (`write == false`) or written by the op at position `pos`.
    #[inline]
    pub(crate) fn occur(&mut self, temp: usize, pos: u32, write: bool) {
        let point = 2 * pos + write as u32;
        if self.start[temp] == UNUSED {
            self.start[temp] = point;
            self.end[temp] = point;
        } else {
            self.start[temp] = self.start[temp].min(point);
            self.end[temp] = self.end[temp].max(point);
        }
    }

    /// The op at `branch` may jump back to the label placed at op `label` (`label <= branch`).
    pub(crate) fn backward_branch(&mut self, label: u32, branch: u32) {
        self.loops.push((2 * label, 2 * branch + 1));
    }

    /// Gives every temp that occurs a slot number from `first_slot` on, writing it to `slot_of[temp]`, and
    /// returns the number of slots used. Temps that do not occur are left alone.
    pub(crate) fn assign(&mut self, first_slot: u32, slot_of: &mut [u32]) -> u32 {
        self.widen_over_loops();
        self.order.clear();
        self.order
            .extend((0..self.start.len() as u32).filter(|&t| self.start[t as usize] != UNUSED));
        let start = &self.start;
        self.order.sort_unstable_by_key(|&t| start[t as usize]);

        self.active.clear();
        self.free.clear();
        let mut used = 0;
        for &t in &self.order {
            let (s, e) = (self.start[t as usize], self.end[t as usize]);
            while let Some(&Reverse((end, slot))) = self.active.peek() {
                if end >= s {
                    break;
                }
                self.active.pop();
                self.free.push(slot);
            }
            let slot = self.free.pop().unwrap_or_else(|| {
                used += 1;
                first_slot + used - 1
            });
            slot_of[t as usize] = slot;
            self.active.push(Reverse((e, slot)));
        }
        used
    }

    /// Widens each range over every loop it overlaps; a widened range may overlap more loops, so repeat.
    fn widen_over_loops(&mut self) {
        if self.loops.is_empty() {
            return;
        }
        for (s, e) in self.start.iter_mut().zip(&mut self.end) {
            if *s == UNUSED {
                continue;
            }
            loop {
                let mut changed = false;
                for &(l, b) in &self.loops {
                    if *s <= b && *e >= l && (*s > l || *e < b) {
                        *s = (*s).min(l);
                        *e = (*e).max(b);
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges and loops in points; loops as `(label point, branch point)`.
    fn assign(ranges: &[(u32, u32)], loops: &[(u32, u32)]) -> (Vec<u32>, u32) {
        let mut lr = LiveRanges::default();
        lr.reset(ranges.len());
        for (t, &(s, e)) in ranges.iter().enumerate() {
            lr.occur(t, s / 2, s % 2 == 1);
            lr.occur(t, e / 2, e % 2 == 1);
        }
        lr.loops.extend_from_slice(loops);
        let mut slots = vec![UNUSED; ranges.len()];
        let n = lr.assign(10, &mut slots);
        (slots, n)
    }

    #[test]
    fn an_output_may_take_the_slot_of_an_input_that_dies() {
        // Temp 0 is last read by op 1 (point 2), temp 1 written by op 1 (point 3).
        let (slots, n) = assign(&[(0, 2), (3, 5)], &[]);
        assert_eq!((slots[0], n), (slots[1], 1));
        // Two outputs of op 1, one of them dead: never the same slot.
        let (slots, _) = assign(&[(3, 3), (3, 6)], &[]);
        assert_ne!(slots[0], slots[1]);
    }

    #[test]
    fn disjoint_ranges_share_a_slot() {
        let (slots, n) = assign(&[(0, 1), (2, 3), (4, 5)], &[]);
        assert_eq!(n, 1);
        assert_eq!(slots, vec![10, 10, 10]);
    }

    #[test]
    fn overlapping_ranges_do_not() {
        let (slots, n) = assign(&[(0, 2), (2, 3), (1, 5)], &[]);
        assert_eq!(n, 3);
        assert_ne!(slots[0], slots[1]);
        assert_ne!(slots[1], slots[2]);
        assert_ne!(slots[0], slots[2]);
    }

    #[test]
    fn loops_keep_carried_values_alive() {
        // Temp 0 is read at 2 and written at 4 inside the loop [1, 6]: it carries a value around the back
        // edge. Temp 1 lives at [5, 5] only in program order and must not take temp 0's slot.
        let (slots, _) = assign(&[(2, 4), (5, 5)], &[(1, 6)]);
        assert_ne!(slots[0], slots[1]);
        // Without the loop they could share.
        let (slots, _) = assign(&[(2, 4), (5, 5)], &[]);
        assert_eq!(slots[0], slots[1]);
    }

    #[test]
    fn widening_reaches_a_fixpoint_over_nested_loops() {
        // Temp 0 at [3, 3] overlaps the inner loop [3, 4]; widened to it, it overlaps the outer loop [0, 8] and
        // ends up covering that: no temp occurring in [0, 8] may share its slot, one after it may.
        let (slots, _) = assign(&[(3, 3), (8, 8), (7, 7)], &[(3, 4), (0, 8)]);
        assert_ne!(slots[0], slots[1]);
        assert_ne!(slots[0], slots[2]);
        let (slots, _) = assign(&[(3, 3), (9, 9)], &[(3, 4), (0, 8)]);
        assert_eq!(slots[0], slots[1]);
    }
}
