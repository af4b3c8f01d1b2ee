//! The CPU state the suite's TBs run on, and the test target that describes it.
//!
//! Every global has its own 8-byte slot. An i32 global uses the first four bytes (in host byte order) and
//! the other four hold a canary, so a backend that loads or stores an i32 global as 8 bytes is caught. Every
//! other byte of the state also starts as a canary, and after each run the whole state is compared with the
//! expected one.

use std::sync::Arc;

use crate::target::TargetDesc;
use crate::temp::Temp;
use crate::types::Type;

use super::helpers::{self, HelperIds};

/// Number of 8-byte slots in the state.
pub(super) const SLOTS: usize = 64;
/// Slot of the fault word (a `u32` in its first four bytes, see [`crate::helper`]).
pub(super) const FAULT_SLOT: usize = 0;
/// Slots of the i64 input globals `x0..x3`.
pub(super) const X_IN: [usize; 4] = [1, 2, 3, 4];
/// Slots of the i32 input globals `w0..w3`.
pub(super) const W_IN: [usize; 4] = [5, 6, 7, 8];
/// Slots of the i64 output globals `xo0`, `xo1`.
pub(super) const X_OUT: [usize; 2] = [9, 10];
/// Slots of the i32 output globals `wo0`, `wo1`.
pub(super) const W_OUT: [usize; 2] = [11, 12];
/// Slot of the host-pointer global `p0` ([`Type::PTR`]).
pub(super) const P_IN: usize = 13;
/// Slot a helper without result writes to (not a global).
pub(super) const HELPER_OUT: usize = 14;
/// First slot of the scratch area for host `ld`/`st` programs (not globals).
pub(super) const SCRATCH_SLOT: usize = 32;
/// Byte offset of the scratch area.
pub(super) const SCRATCH: usize = SCRATCH_SLOT * 8;
/// Size of the scratch area in bytes.
pub(super) const SCRATCH_LEN: usize = (SLOTS - SCRATCH_SLOT) * 8;

/// Globals in registration order, so global `i` of the target is `GLOBALS[i]`.
const GLOBALS: [(&str, usize, Type); 13] = [
    ("x0", X_IN[0], Type::I64),
    ("x1", X_IN[1], Type::I64),
    ("x2", X_IN[2], Type::I64),
    ("x3", X_IN[3], Type::I64),
    ("w0", W_IN[0], Type::I32),
    ("w1", W_IN[1], Type::I32),
    ("w2", W_IN[2], Type::I32),
    ("w3", W_IN[3], Type::I32),
    ("xo0", X_OUT[0], Type::I64),
    ("xo1", X_OUT[1], Type::I64),
    ("wo0", W_OUT[0], Type::I32),
    ("wo1", W_OUT[1], Type::I32),
    ("p0", P_IN, Type::PTR),
];

/// The temp of the global living in `slot` (one of the slot constants above).
pub(super) fn global(slot: usize) -> Temp {
    let index = GLOBALS.iter().position(|g| g.1 == slot).unwrap_or(0);
    Temp(index as u32 + 1)
}

/// Slot of the `i`th input of type `ty`.
pub(super) fn input_slot(ty: Type, i: usize) -> usize {
    match ty {
        Type::I32 => W_IN[i],
        Type::I64 => X_IN[i],
    }
}

/// Slot of the `i`th output of type `ty`.
pub(super) fn output_slot(ty: Type, i: usize) -> usize {
    match ty {
        Type::I32 => W_OUT[i],
        Type::I64 => X_OUT[i],
    }
}

/// Name of a slot for failure messages.
pub(super) fn slot_name(slot: usize) -> String {
    match GLOBALS.iter().find(|g| g.1 == slot) {
        Some(g) => g.0.to_string(),
        None if slot == FAULT_SLOT => "fault word".to_string(),
        None if slot == HELPER_OUT => "helper output".to_string(),
        None if slot >= SCRATCH_SLOT => format!("scratch+{}", (slot - SCRATCH_SLOT) * 8),
        None => format!("slot {slot}"),
    }
}

/// The test target: the globals above, the fault word in slot 0 and the suite's helpers.
pub(super) fn target() -> (Arc<TargetDesc>, HelperIds) {
    let mut t = TargetDesc::new((FAULT_SLOT * 8) as i32);
    t.env_size = SLOTS * 8;
    for (name, slot, ty) in GLOBALS {
        t.add_global(name, ty, (slot * 8) as i32);
    }
    let ids = helpers::register(&mut t);
    (Arc::new(t), ids)
}

/// A CPU state: 8-byte aligned words, addressed by byte offset in host byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CpuState {
    words: Vec<u64>,
}

/// The canary a slot starts with: distinct per slot, with no zero byte, never a plausible result.
fn canary(slot: usize) -> u64 {
    0xa5c3_e1f7_d2b4_9687 ^ (slot as u64).wrapping_mul(0x0101_0101_0101_0101)
}

impl CpuState {
    /// The state every run starts from: canaries everywhere, the fault word clear.
    pub(super) fn baseline() -> CpuState {
        let mut s = CpuState {
            words: (0..SLOTS).map(canary).collect(),
        };
        s.set(FAULT_SLOT, Type::I32, 0);
        s
    }

    /// Pointer to the first byte, the `env` of a run.
    pub(super) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast()
    }

    /// Copies `other` into this state without reallocating.
    pub(super) fn copy_from(&mut self, other: &CpuState) {
        self.words.copy_from_slice(&other.words);
    }

    /// The value of type `ty` stored in `slot` (an i32 is the slot's first four bytes).
    pub(super) fn get(&self, slot: usize, ty: Type) -> u64 {
        let w = self.words[slot];
        match ty {
            Type::I64 => w,
            Type::I32 => {
                let b = w.to_ne_bytes();
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64
            }
        }
    }

    /// Stores `v` as a `ty` field in `slot`; an i32 leaves the slot's other four bytes alone.
    pub(super) fn set(&mut self, slot: usize, ty: Type, v: u64) {
        match ty {
            Type::I64 => self.words[slot] = v,
            Type::I32 => {
                let mut b = self.words[slot].to_ne_bytes();
                b[..4].copy_from_slice(&(v as u32).to_ne_bytes());
                self.words[slot] = u64::from_ne_bytes(b);
            }
        }
    }

    /// Byte `offset` of the state.
    pub(super) fn byte(&self, offset: usize) -> u8 {
        self.words[offset / 8].to_ne_bytes()[offset % 8]
    }

    /// Sets byte `offset` of the state.
    pub(super) fn set_byte(&mut self, offset: usize, v: u8) {
        let mut b = self.words[offset / 8].to_ne_bytes();
        b[offset % 8] = v;
        self.words[offset / 8] = u64::from_ne_bytes(b);
    }

    /// The first slots where `self` (expected) and `got` differ, described for a failure message.
    pub(super) fn diff(&self, got: &CpuState) -> Option<String> {
        let bad: Vec<String> = (0..SLOTS)
            .filter(|&s| self.words[s] != got.words[s])
            .take(3)
            .map(|s| self.describe_slot(got, s))
            .collect();
        (!bad.is_empty()).then(|| bad.join("; "))
    }

    /// One differing slot: an i32 field by its value, unless its canary half was overwritten.
    fn describe_slot(&self, got: &CpuState, s: usize) -> String {
        let name = slot_name(s);
        let is_i32 = s == FAULT_SLOT || GLOBALS.iter().any(|g| g.1 == s && g.2 == Type::I32);
        let (want, have) = (self.get(s, Type::I32), got.get(s, Type::I32));
        let canary_intact = self.words[s] ^ got.words[s] == want ^ have;
        if is_i32 && canary_intact {
            format!("{name}: expected 0x{want:x} got 0x{have:x}")
        } else if is_i32 {
            format!(
                "{name}: the 4 bytes after this i32 field were overwritten: slot expected 0x{:x} got 0x{:x}",
                self.words[s], got.words[s]
            )
        } else {
            format!("{name}: expected 0x{:x} got 0x{:x}", self.words[s], got.words[s])
        }
    }
}
