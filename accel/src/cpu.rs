//! What a guest target implements for the execution loop ([`CpuOps`], QEMU's `TCGCPUOps` plus the parts of
//! `CPUClass` that `cpu_exec` calls), the key a TB is found by ([`TbKey`]) and the `exit_tb` value
//! convention shared by frontends and the loop.
//!
//! Not here: the loop itself ([`crate::cpu_exec`]), the translator loop and its hooks
//! ([`crate::translator`]).

use core::fmt;
use std::sync::Arc;

use rqemu_tcg::opcodes::INSN_START_WORDS;
use rqemu_tcg::{Func, GuestMemory, TargetDesc};

use crate::translator::DisasBase;

/// `exit_tb 0`: the TB ended with the guest pc (and everything [`CpuOps::tb_key`] reads) stored in the CPU
/// state; the loop finds the next TB by lookup. Used after indirect jumps when no `goto_ptr` is emitted and
/// after instructions that change the TB flags.
pub const EXIT_LOOKUP: u64 = 0;
/// `exit_tb 1`: emitted by the translator loop's TB-start check when the exit word says stop (an exit
/// request, or the chain countdown ran out); nothing of the TB ran. Frontends do not emit it themselves.
pub const EXIT_REQUESTED: u64 = 1;
/// Values from this one up are the target's own: the loop hands them to [`CpuOps::handle_exit`]
/// (for example "HLT executed" or "I/O needs the main loop").
pub const EXIT_TARGET_BASE: u64 = 0x100;

/// What a TB is looked up by: the guest's virtual pc and whatever else the translation depends on. The
/// TB cache adds the physical address of the pc ([`CpuOps::code_phys_addr`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TbKey {
    /// Virtual address of the first instruction.
    pub pc: u64,
    /// The code segment base (x86) or 0.
    pub cs_base: u64,
    /// Target flags the translation depends on (x86: CPL, code size, ...).
    pub flags: u32,
    /// Translation options (QEMU's cflags): the low 9 bits are the largest number of guest instructions
    /// in the TB (0: the loop's default, see [`CFLAGS_COUNT_MASK`]).
    pub cflags: u32,
}

/// Bits of [`TbKey::cflags`] that hold the instruction limit.
pub const CFLAGS_COUNT_MASK: u32 = 0x1ff;

/// The guest instruction could not be fetched: the target recorded the exception in the CPU state (pc at
/// the instruction), and the loop delivers it with [`CpuOps::handle_exception`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeFault;

/// Why a translation did not produce a TB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// Fetching the first instruction faulted; the exception is recorded in the CPU state and the loop
    /// delivers it. (A fetch fault at a later instruction ends the TB before it instead, see
    /// [`crate::translator::TranslatorOps::translate_insn`].)
    Fault,
    /// Anything else (a frontend bug); the loop stops with [`crate::StopReason::Error`].
    Other(String),
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::Fault => f.write_str("instruction fetch faulted"),
            TranslateError::Other(why) => write!(f, "translation failed: {why}"),
        }
    }
}

impl std::error::Error for TranslateError {}

/// What the loop does after a target hook handled an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuAction {
    /// Keep executing guest code from the state as it is now.
    Continue,
    /// The CPU halted (x86 `hlt`): the loop returns [`crate::StopReason::Halted`] unless
    /// [`CpuOps::check_halted`] says there is work.
    Halt,
    /// Return to the main loop with this target code (debug exception, shutdown, reset, ...).
    Stop(u64),
}

/// The hooks a guest CPU gives the execution loop. All of them run between TBs, never inside one, with the
/// CPU state consistent (globals stored).
///
/// Contract for the IR the target generates (through [`CpuOps::gen_code`]):
/// - every guest instruction starts with exactly one `insn_start` whose words
///   [`CpuOps::restore_state_to_opc`] understands (the [`crate::translator::translator_loop`] calls
///   [`crate::translator::TranslatorOps::insn_start`] for this);
/// - before `goto_tb n` the TB stores the new pc (and leaves every other part of the key unchanged), and it
///   emits `goto_tb` only for a destination fixed at translation time on the same guest page as the TB's
///   start ([`DisasBase::use_goto_tb`]): the loop links the slot to the TB it found the first time and
///   follows the link later without a lookup;
/// - `goto_ptr` takes the value of a call to [`crate::lookup_tb_ptr_helper`] (or 0);
/// - `exit_tb` values follow [`EXIT_LOOKUP`], [`EXIT_REQUESTED`] and [`EXIT_TARGET_BASE`].
pub trait CpuOps {
    /// The target description (globals, helpers, fault word) every TB's IR is built on.
    fn target_desc(&self) -> Arc<TargetDesc>;

    /// The CPU state the IR's `env` points to. It must stay valid and at the same address while the loop
    /// runs.
    fn env(&mut self) -> *mut u8;

    /// log2 of the guest page size (x86: 12): TBs do not start instructions beyond their first page and are
    /// invalidated by physical page.
    fn page_bits(&self) -> u32 {
        12
    }

    /// Offset in the CPU state of the `u32` exit word the translator loop checks at every TB start, or
    /// `None` for no check. Its high 16 bits nonzero mean "exit requested" (set them with
    /// [`crate::request_exit_in_env`] from a helper or device code); its low 16 bits count TB starts
    /// down and are refilled by the loop before each TB it enters, so hot code that chains inside a module
    /// still comes back to the loop regularly. Without the word the loop sees requests only between the
    /// TBs it enters.
    fn exit_word_offset(&self) -> Option<i32> {
        None
    }

    /// The key of the TB to run now (QEMU's `cpu_get_tb_cpu_state`).
    fn tb_key(&self) -> TbKey;

    /// Translation options for the next TB the loop looks up, once (QEMU's `cflags_next_tb`): e.g. `1` to
    /// re-run one instruction alone after a store into the running TB was aborted. `None` (the default):
    /// the key's own.
    fn take_cflags_next_tb(&mut self) -> Option<u32> {
        None
    }

    /// The same, read from a CPU state pointer, for [`crate::lookup_tb_ptr_helper`] (which runs inside a
    /// TB, where only `env` is at hand). `None` (the default) makes that helper always answer 0, which sends
    /// `goto_ptr` back to the loop.
    fn tb_key_fn(&self) -> Option<TbKeyFn> {
        None
    }

    /// The physical address of the code at virtual address `pc` (QEMU's `get_page_addr_code`), through the
    /// code TLB. An error means the fetch faults and the exception is recorded in the CPU state.
    fn code_phys_addr(&mut self, mem: &mut dyn GuestMemory, pc: u64) -> Result<u64, CodeFault>;

    /// Translates the TB `db` describes into `func` (QEMU's `gen_intermediate_code`); normally by building
    /// the target's disassembly context and calling [`crate::translator::translator_loop`] with
    /// [`CpuOps::exit_word_offset`] (so every TB starts with the exit check). `db.key.cflags` may limit the
    /// instruction count (`db.max_insns` is already set from it).
    fn gen_code(
        &mut self,
        mem: &mut dyn GuestMemory,
        db: &mut DisasBase,
        func: &mut Func,
    ) -> Result<(), TranslateError>;

    /// Restores the guest state at the start of the instruction whose `insn_start` words are `words`
    /// (QEMU's `restore_state_to_opc`), after a fault exit. Globals are already exact; this sets what the
    /// TB keeps only at translation time (the pc, lazy condition-code state, ...).
    fn restore_state_to_opc(&mut self, key: &TbKey, words: &[u64; INSN_START_WORDS]);

    /// Delivers the exception recorded in the CPU state (QEMU's `do_interrupt` for exceptions): after a
    /// fault exit (state restored, fault word cleared) or a fetch fault.
    fn handle_exception(&mut self) -> CpuAction;

    /// Checks for a pending hardware interrupt at a TB boundary and delivers it if the CPU accepts it
    /// (QEMU's `cpu_exec_interrupt`). `None`: nothing happened; `Some(Continue)`: the state changed (the loop
    /// looks the next TB up afresh); `Halt`/`Stop` end the run.
    fn handle_interrupt(&mut self) -> Option<CpuAction>;

    /// Whether the CPU is halted with nothing to do. A halted CPU that has work (a pending interrupt)
    /// un-halts itself here and answers `false`.
    fn check_halted(&mut self) -> bool;

    /// A TB exited with a target value (`>= EXIT_TARGET_BASE`).
    fn handle_exit(&mut self, value: u64) -> CpuAction;

    /// The CPU state as text, for `-d cpu` before each TB (QEMU's `cpu_dump_state`: registers, flags,
    /// segments, control registers, one group per line, ending with a newline). Called only when that item
    /// is on. The default shows the pc only.
    fn dump_state(&self) -> String {
        format!("PC={:016x}\n", self.tb_key().pc)
    }
}

/// Reads a [`TbKey`] from the CPU state.
///
/// The function is called with the `env` of a running TB.
pub type TbKeyFn = unsafe fn(env: *const u8) -> TbKey;
