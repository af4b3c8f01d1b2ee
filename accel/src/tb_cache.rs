//! Finding TBs: the hash table by (physical pc, [`TbKey`]) (QEMU's `tb_htable`), the per-CPU jump cache by
//! virtual pc (`tb_jmp_cache`), the index of TBs by physical page for invalidation (`tb-maint`), the
//! `goto_tb` links between TBs and the byte count checked against `tb-size`.
//!
//! Not here: the code ([`crate::Tiering`]), the decision to flush or invalidate ([`crate::cpu_exec`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::cpu::TbKey;
use crate::tb::Tb;
use crate::TbId;

/// log2 of the number of jump-cache entries (QEMU's `TB_JMP_CACHE_BITS`).
pub const JUMP_CACHE_BITS: u32 = 12;

/// The jump cache: a direct-mapped table from virtual pc to the TB last run there. An entry is valid only
/// if its whole key matches; it does not check the physical address, so it must be flushed whenever the
/// guest's virtual-to-physical mapping changes ([`JumpCacheHandle::flush`]).
#[derive(Clone, Debug)]
pub struct JumpCache {
    entries: Vec<Option<(TbKey, TbId)>>,
}

impl Default for JumpCache {
    fn default() -> Self {
        JumpCache {
            entries: vec![None; 1 << JUMP_CACHE_BITS],
        }
    }
}

impl JumpCache {
    fn index(pc: u64) -> usize {
        ((pc ^ (pc >> JUMP_CACHE_BITS)) & ((1 << JUMP_CACHE_BITS) - 1)) as usize
    }

    /// The TB cached for `key`.
    pub fn get(&self, key: &TbKey) -> Option<TbId> {
        match self.entries[Self::index(key.pc)] {
            Some((k, id)) if k == *key => Some(id),
            _ => None,
        }
    }

    /// Caches `id` for `key`, replacing whatever was at its slot.
    pub fn insert(&mut self, key: TbKey, id: TbId) {
        self.entries[Self::index(key.pc)] = Some((key, id));
    }

    /// Forgets `id` if it is cached for `key`.
    pub fn remove(&mut self, key: &TbKey, id: TbId) {
        let slot = &mut self.entries[Self::index(key.pc)];
        if slot.is_some_and(|(_, cached)| cached == id) {
            *slot = None;
        }
    }

    /// Forgets everything.
    pub fn flush(&mut self) {
        self.entries.iter_mut().for_each(|e| *e = None);
    }
}

/// A shared handle on a CPU's jump cache, for the code that changes the guest's page mapping (softmmu's TLB
/// flush, even from a helper inside a TB) and for [`crate::lookup_tb_ptr_helper`].
#[derive(Clone, Debug, Default)]
pub struct JumpCacheHandle(pub(crate) Rc<RefCell<JumpCache>>);

impl JumpCacheHandle {
    /// Forgets every cached TB (QEMU's `tcg_flush_jmp_cache`); call it on every TLB flush.
    pub fn flush(&self) {
        if let Ok(mut jc) = self.0.try_borrow_mut() {
            jc.flush();
        }
    }
}

/// The TB descriptors and the structures to find them.
#[derive(Debug)]
pub struct TbCache {
    /// By [`TbId::index`]; `None` once removed.
    tbs: Vec<Option<Tb>>,
    table: HashMap<(u64, TbKey), TbId>,
    /// Physical page address -> TBs with code on it.
    pages: HashMap<u64, Vec<TbId>>,
    code_bytes: usize,
    page_bits: u32,
    jc: JumpCacheHandle,
}

impl TbCache {
    /// An empty cache for guest pages of `1 << page_bits` bytes.
    pub fn new(page_bits: u32) -> TbCache {
        TbCache {
            tbs: Vec::new(),
            table: HashMap::new(),
            pages: HashMap::new(),
            code_bytes: 0,
            page_bits: page_bits.clamp(1, 63),
            jc: JumpCacheHandle::default(),
        }
    }

    /// Changes the guest page size; every TB is forgotten (call it with [`crate::Tiering::flush`]).
    pub fn set_page_bits(&mut self, page_bits: u32) {
        self.clear();
        self.page_bits = page_bits.clamp(1, 63);
    }

    /// log2 of the guest page size.
    pub fn page_bits(&self) -> u32 {
        self.page_bits
    }

    /// The jump cache.
    pub fn jump_cache(&self) -> &JumpCacheHandle {
        &self.jc
    }

    /// The TB for `key` from the jump cache only.
    pub fn lookup_virtual(&self, key: &TbKey) -> Option<TbId> {
        self.jc.0.try_borrow().ok()?.get(key)
    }

    /// The TB for `key` at physical address `phys_pc` from the hash table; a hit is put in the jump cache.
    pub fn lookup_physical(&mut self, phys_pc: u64, key: &TbKey) -> Option<TbId> {
        let id = *self.table.get(&(phys_pc, *key))?;
        if let Ok(mut jc) = self.jc.0.try_borrow_mut() {
            jc.insert(*key, id);
        }
        Some(id)
    }

    /// Adds `tb` under `id` (the id its code has in [`crate::Tiering`]) and caches it for its key.
    pub fn insert(&mut self, id: TbId, tb: Tb) {
        let index = id.index();
        if self.tbs.len() <= index {
            self.tbs.resize_with(index + 1, || None);
        }
        for page in tb.pages.iter().flatten() {
            self.pages.entry(*page).or_default().push(id);
        }
        self.table.insert((tb.phys_pc, tb.key), id);
        if let Ok(mut jc) = self.jc.0.try_borrow_mut() {
            jc.insert(tb.key, id);
        }
        self.code_bytes += tb.code_bytes;
        self.tbs[index] = Some(tb);
    }

    /// The descriptor of a live TB.
    pub fn get(&self, id: TbId) -> Option<&Tb> {
        self.tbs.get(id.index())?.as_ref()
    }

    /// Live TBs.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there is no live TB.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes of code counted for the live TBs.
    pub fn code_bytes(&self) -> usize {
        self.code_bytes
    }

    /// Where `goto_tb slot` of `from` is linked.
    pub fn jmp_dest(&self, from: TbId, slot: u32) -> Option<TbId> {
        *self.get(from)?.jmp_dest.get(slot as usize)?
    }

    /// Links `goto_tb slot` of `from` to `to` (QEMU's `tb_add_jump`). Returns whether a link was made
    /// (both TBs live, slot 0 or 1, not already linked).
    pub fn link(&mut self, from: TbId, slot: u32, to: TbId) -> bool {
        if slot > 1 || self.get(to).is_none() || self.get(from).map(|t| t.jmp_dest[slot as usize]) != Some(None) {
            return false;
        }
        if let Some(Some(t)) = self.tbs.get_mut(from.index()) {
            t.jmp_dest[slot as usize] = Some(to);
        }
        if let Some(Some(t)) = self.tbs.get_mut(to.index()) {
            t.jmp_incoming.push((from, slot));
        }
        true
    }

    /// Removes a TB: from the hash table, the page index and the jump cache, with every link to and from
    /// it. Returns its descriptor.
    pub fn remove(&mut self, id: TbId) -> Option<Tb> {
        let tb = self.tbs.get_mut(id.index())?.take()?;
        self.table.remove(&(tb.phys_pc, tb.key));
        for page in tb.pages.iter().flatten() {
            if let Some(list) = self.pages.get_mut(page) {
                list.retain(|&t| t != id);
                if list.is_empty() {
                    self.pages.remove(page);
                }
            }
        }
        if let Ok(mut jc) = self.jc.0.try_borrow_mut() {
            jc.remove(&tb.key, id);
        }
        for &(src, slot) in &tb.jmp_incoming {
            if let Some(Some(s)) = self.tbs.get_mut(src.index()) {
                if s.jmp_dest[slot as usize] == Some(id) {
                    s.jmp_dest[slot as usize] = None;
                }
            }
        }
        for dest in tb.jmp_dest.iter().flatten() {
            if let Some(Some(d)) = self.tbs.get_mut(dest.index()) {
                d.jmp_incoming.retain(|&(src, _)| src != id);
            }
        }
        self.code_bytes = self.code_bytes.saturating_sub(tb.code_bytes);
        Some(tb)
    }

    /// Live TBs whose guest code overlaps the physical range `start..end`.
    pub fn tbs_in_range(&self, start: u64, end: u64) -> Vec<TbId> {
        if end <= start {
            return Vec::new();
        }
        let mut found = Vec::new();
        let (first, last) = (start >> self.page_bits, (end - 1) >> self.page_bits);
        let mut page = first;
        loop {
            if let Some(list) = self.pages.get(&(page << self.page_bits)) {
                for &id in list {
                    let overlaps = self
                        .get(id)
                        .is_some_and(|tb| tb.phys_ranges(self.page_bits).any(|(s, e)| s < end && start < e));
                    if overlaps && !found.contains(&id) {
                        found.push(id);
                    }
                }
            }
            if page >= last {
                break;
            }
            page += 1;
            // A huge range: stop walking pages one by one and scan the index instead.
            if page - first > 4096 {
                return self.tbs_in_range_scan(start, end);
            }
        }
        found
    }

    fn tbs_in_range_scan(&self, start: u64, end: u64) -> Vec<TbId> {
        let mut found: Vec<TbId> = self
            .tbs
            .iter()
            .enumerate()
            .filter_map(|(i, tb)| {
                let tb = tb.as_ref()?;
                tb.phys_ranges(self.page_bits)
                    .any(|(s, e)| s < end && start < e)
                    .then_some(TbId::from_index(i))
            })
            .flatten()
            .collect();
        found.sort();
        found
    }

    /// Forgets every TB (with [`crate::Tiering::flush`], which restarts ids from 0).
    pub fn clear(&mut self) {
        self.tbs.clear();
        self.table.clear();
        self.pages.clear();
        self.code_bytes = 0;
        if let Ok(mut jc) = self.jc.0.try_borrow_mut() {
            jc.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tb(pc: u64, size: u64, pages: [Option<u64>; 2]) -> Tb {
        Tb {
            key: TbKey { pc, ..TbKey::default() },
            phys_pc: pc,
            size,
            icount: 1,
            pages,
            code_bytes: 100,
            jmp_dest: [None; 2],
            jmp_incoming: Vec::new(),
        }
    }

    fn id(i: usize) -> TbId {
        TbId::from_index(i).unwrap()
    }

    #[test]
    fn a_tb_crossing_a_page_is_found_from_both_pages() {
        let mut c = TbCache::new(8);
        // 0x1f8..0x208 on pages 0x100 and 0x200; the second page is mapped elsewhere physically.
        let mut t = tb(0x1f8, 0x10, [Some(0x100), Some(0x700)]);
        t.phys_pc = 0x1f8;
        c.insert(id(0), t);
        c.insert(id(1), tb(0x300, 4, [Some(0x300), None]));
        assert_eq!(c.tbs_in_range(0x1fc, 0x1fd), vec![id(0)]);
        assert_eq!(c.tbs_in_range(0x707, 0x708), vec![id(0)]);
        assert_eq!(c.tbs_in_range(0x708, 0x800), vec![]);
        assert_eq!(c.tbs_in_range(0x200, 0x1f8), vec![]);
        assert_eq!(c.tbs_in_range(0, u64::MAX), vec![id(0), id(1)]);
        assert_eq!(c.code_bytes(), 200);
        assert_eq!(
            c.lookup_physical(
                0x300,
                &TbKey {
                    pc: 0x300,
                    ..TbKey::default()
                }
            ),
            Some(id(1))
        );
        assert_eq!(
            c.lookup_physical(
                0x304,
                &TbKey {
                    pc: 0x300,
                    ..TbKey::default()
                }
            ),
            None
        );
    }

    #[test]
    fn removing_a_tb_unlinks_it_both_ways() {
        let mut c = TbCache::new(12);
        for i in 0..3 {
            c.insert(id(i), tb(0x1000 + 0x10 * i as u64, 4, [Some(0x1000), None]));
        }
        assert!(c.link(id(0), 0, id(1)));
        assert!(!c.link(id(0), 0, id(2)), "a linked slot stays linked");
        assert!(!c.link(id(0), 2, id(2)), "no slot 2");
        assert!(c.link(id(1), 1, id(2)));
        assert!(c.link(id(2), 0, id(1)));
        let removed = c.remove(id(1)).unwrap();
        assert_eq!(removed.jmp_incoming, vec![(id(0), 0), (id(2), 0)]);
        assert_eq!(c.jmp_dest(id(0), 0), None);
        assert_eq!(c.jmp_dest(id(2), 0), None);
        assert!(c.get(id(2)).unwrap().jmp_incoming.is_empty());
        assert_eq!(c.lookup_virtual(&removed.key), None);
        assert!(!c.link(id(0), 0, id(1)), "no links to a removed TB");
        assert_eq!(c.remove(id(1)), None);
        assert_eq!((c.len(), c.code_bytes()), (2, 200));
        c.clear();
        assert!(c.is_empty());
    }
}
