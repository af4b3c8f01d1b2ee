//! The descriptor of one translation block as the TB cache keeps it (QEMU's `TranslationBlock` without the
//! code, which [`crate::Tiering`] owns): its key, where its guest code lives physically, and its links.
//!
//! Not here: lookup structures ([`crate::tb_cache`]), the code and its `insn_start` words (kept with the
//! prepared IR by [`crate::Tiering`], see [`crate::Tiering::insn_start`]).

use crate::cpu::TbKey;
use crate::TbId;

/// One TB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tb {
    /// The key it was translated for.
    pub key: TbKey,
    /// Physical address of its first instruction.
    pub phys_pc: u64,
    /// Bytes of guest code it covers (`pc_next - pc` at the end of translation).
    pub size: u64,
    /// Guest instructions in it.
    pub icount: u32,
    /// Physical addresses of the (at most two) guest pages its code touches: the page of `phys_pc` and,
    /// when the last instruction crosses a page boundary, the page that follows.
    pub pages: [Option<u64>; 2],
    /// Bytes of code held for it when it was added (first tier), counted against `tb-size`.
    pub code_bytes: usize,
    /// `goto_tb` slot `n` is linked to this TB.
    pub jmp_dest: [Option<TbId>; 2],
    /// Slots of other TBs linked to this one, unlinked when it is invalidated.
    pub jmp_incoming: Vec<(TbId, u32)>,
}

impl Tb {
    /// The physical byte ranges of its code, as `(start, end)` pairs (end exclusive), given the page size.
    pub fn phys_ranges(&self, page_bits: u32) -> impl Iterator<Item = (u64, u64)> {
        let page_size = 1u64 << page_bits;
        let first_end = (self.phys_pc | (page_size - 1)).wrapping_add(1);
        let in_first = self.size.min(first_end.wrapping_sub(self.phys_pc));
        let first = (self.phys_pc, self.phys_pc.wrapping_add(in_first.max(1)));
        let rest = self.size - in_first;
        let second = self.pages[1].filter(|_| rest > 0).map(|p| (p, p.wrapping_add(rest)));
        core::iter::once(first).chain(second)
    }
}
