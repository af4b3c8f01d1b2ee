//! MMU indexes: which translation regime (privilege, SMAP state, paging on/off...) a memory access uses.
//!
//! The target decides what each index means; the software TLB keeps one table per index.

/// Number of MMU indexes every TLB provides.
pub const NB_MMU_MODES: usize = 8;

/// Selects one of the [`NB_MMU_MODES`] software-TLB tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MmuIdx(u8);

impl MmuIdx {
    /// Creates an index, or `None` when it is out of range.
    pub const fn new(idx: u8) -> Option<Self> {
        if (idx as usize) < NB_MMU_MODES {
            Some(MmuIdx(idx))
        } else {
            None
        }
    }

    /// The index as a table subscript.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}
