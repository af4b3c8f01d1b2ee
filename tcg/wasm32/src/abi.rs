//! The module ABI shared by the code generator and whoever runs its modules (the wasm32 runtime, the
//! embedded engine): imports, the signature of each TB function, the exit kinds and their payloads, and the
//! configuration ([`WasmAbi`]) that says where helpers, slow paths and the software TLB are.
//!
//! Every module imports `env.memory` (the emulator's linear memory) and, as functions of the helper type
//! `(env: i32, a0..a4: i64) -> i64`, each helper and slow path it calls: `(import "fn" "<slot>" (func))`,
//! where `<slot>` is the function's index in the emulator's funcref table, in decimal ([`import_name`]; on
//! a wasm32 host, its function pointer). The host resolves them (the JS host with `table.get`); generated
//! code calls them with a direct `call`. Modules do not import the table: in V8 every instance importing
//! a table is registered with it, and each later `table.grow`/`table.set` costs time proportional to the
//! number of such instances, which with thousands of live TB modules dominated instantiation.
//! Member `i` of a group is the export `tb{i}` of type `(param $env i32) (param $out i32) (result i32)`: it
//! runs the TB, stores a 64-bit payload little-endian at `$out` and returns the exit kind. On a wasm32 host
//! that is `extern "C" fn(env: *mut u8, out: *mut u64) -> u32`.
//!
//! Payloads: `EXIT_TB` carries the `exit_tb` word, `EXIT_GOTO_PTR` the `goto_ptr` handle (zero-extended).
//! `EXIT_GOTO_TB` and `EXIT_FAULT` carry the slot or the instruction index in the low 32 bits and, in the high
//! 32 bits, the index of the group member that exited: with intra-module chaining the TB that leaves the module
//! need not be the one the caller entered ([`decode_exit_member`]).

use rqemu_include::tlb::{TLB_ENTRIES, TLB_ENTRY_SIZE};
use rqemu_include::NB_MMU_MODES;
use rqemu_tcg::TbExit;

/// Exit kind: `exit_tb`; the payload is its word.
pub const EXIT_TB: u32 = 0;
/// Exit kind: `goto_tb`; the payload is the slot (low half) and the exiting member (high half).
pub const EXIT_GOTO_TB: u32 = 1;
/// Exit kind: `goto_ptr`; the payload is the handle.
pub const EXIT_GOTO_PTR: u32 = 2;
/// Exit kind: a fault; the payload is the guest instruction index (low half) and the exiting member (high half).
pub const EXIT_FAULT: u32 = 3;

/// Module and field names of the imported linear memory.
pub const IMPORT_MEMORY: (&str, &str) = ("env", "memory");
/// Import module of the functions (helpers, slow paths) a module calls; the field is [`import_name`].
pub const IMPORT_FN_MODULE: &str = "fn";

/// The import field of the function at table slot `slot` (module [`IMPORT_FN_MODULE`]).
pub fn import_name(slot: u32) -> String {
    slot.to_string()
}

/// The export name of group member `i`.
pub fn export_name(i: usize) -> String {
    format!("tb{i}")
}

/// Turns what a TB function returned into a [`TbExit`]. An unknown kind (never generated) reads as
/// `Exit(payload)` rather than panicking, so a corrupt return cannot take the emulator down.
pub fn decode_exit(kind: u32, payload: u64) -> TbExit {
    decode_exit_member(kind, payload).0
}

/// Like [`decode_exit`], also returning the group member that exited, for `goto_tb` and fault exits (`None`
/// for the others, whose payload has no room for it). A caller that entered member `m` of a module with
/// intra-module chaining must look `goto_tb` slots and fault instructions up in the TB this names.
pub fn decode_exit_member(kind: u32, payload: u64) -> (TbExit, Option<usize>) {
    let low = payload as u32;
    let member = Some((payload >> 32) as usize);
    match kind {
        EXIT_GOTO_TB => (TbExit::GotoTb(low), member),
        EXIT_GOTO_PTR => (TbExit::GotoPtr(payload as usize), None),
        EXIT_FAULT => (TbExit::Fault { insn: low }, member),
        _ => (TbExit::Exit(payload), None),
    }
}

/// Where the software TLB lives, for inlining the `qemu_ld`/`qemu_st` fast path.
///
/// The table of MMU index `m` starts at `env + offset_from_env + m * TLB_ENTRIES * TLB_ENTRY_SIZE`, one
/// [`rqemu_include::TlbEntry`] per entry as laid out on a wasm32 host: three u64 tags, then the `usize`
/// addend as a 4-byte little-endian word at [`rqemu_include::tlb::TLB_OFFSET_ADDEND`] (generated code reads
/// only those 4 bytes, which are also the low half of an 8-byte addend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbAbi {
    /// Byte offset of the TLB of MMU index 0 from `env` (may be negative).
    pub offset_from_env: i32,
}

impl TlbAbi {
    /// Bytes of one MMU index's table.
    pub const TABLE_BYTES: usize = TLB_ENTRIES * TLB_ENTRY_SIZE;
    /// Bytes of all tables.
    pub const TOTAL_BYTES: usize = Self::TABLE_BYTES * NB_MMU_MODES;
}

/// What generated code needs to know about its host: table slots of the helpers and slow paths (which name
/// their imports), whether the engine has tail calls, and the software TLB (if any). Plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmAbi {
    /// Table slot of each helper (the name of its import), indexed by [`rqemu_tcg::HelperId`]. On a wasm32
    /// host this is the helper's function pointer value; a helper missing here makes a call to it a compile
    /// error.
    pub helpers: Vec<u32>,
    /// Table slot of `ld_slow(env, addr, memop | mmu << 8, 0, 0, 0) -> value` (helper ABI). It sets the fault
    /// word on failure.
    pub ld_slow: u32,
    /// Table slot of `st_slow(env, addr, value, memop | mmu << 8, 0, 0) -> 0` (helper ABI).
    pub st_slow: u32,
    /// Whether the engine validates `return_call`: `goto_tb` to another member then stays in the module.
    pub tail_calls: bool,
    /// The software TLB; `None` sends every guest access to the slow paths.
    pub tlb: Option<TlbAbi>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_decode_with_their_member() {
        assert_eq!(decode_exit(EXIT_TB, u64::MAX), TbExit::Exit(u64::MAX));
        assert_eq!(
            decode_exit_member(EXIT_GOTO_TB, 1 | 3 << 32),
            (TbExit::GotoTb(1), Some(3))
        );
        assert_eq!(decode_exit_member(EXIT_FAULT, 2), (TbExit::Fault { insn: 2 }, Some(0)));
        assert_eq!(decode_exit(EXIT_GOTO_PTR, 0x1234), TbExit::GotoPtr(0x1234));
        assert_eq!(decode_exit(99, 5), TbExit::Exit(5));
    }
}
