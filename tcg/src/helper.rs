//! Helpers: host functions that generated code calls, with one uniform ABI and declared effects.
//!
//! Every helper takes the CPU-state pointer and exactly [`HELPER_MAX_ARGS`] 64-bit arguments and returns a
//! 64-bit value, so any backend can call any helper without per-signature glue (on wasm32 they share one
//! function type, so `call_indirect` through the emulator's own table works). Unused arguments are zero; i32
//! arguments are passed zero-extended and an i32 result is the low half of the return value.
//!
//! A helper that faults records the exception in the CPU state, sets the word at
//! [`crate::TargetDesc::fault_offset`] to a nonzero value and returns; it never unwinds. Generated code leaves
//! the word set when it exits with [`crate::TbExit::Fault`]; the execution loop clears it once it has delivered
//! the exception.

use crate::Type;
use bitflags::bitflags;

/// Number of 64-bit arguments every helper receives after the CPU-state pointer.
pub const HELPER_MAX_ARGS: usize = 5;

/// The uniform helper signature.
pub type HelperFn = unsafe extern "C" fn(env: *mut u8, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> u64;

bitflags! {
    /// What a helper may do besides computing its result.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct HelperFlags: u8 {
        /// Reads globals from the CPU state: they are stored before the call.
        const READS_GLOBALS = 1 << 0;
        /// Writes globals in the CPU state: cached copies are dropped after the call.
        const WRITES_GLOBALS = 1 << 1;
        /// May record a fault; the TB exits after it when the fault word is set.
        const MAY_FAULT = 1 << 2;
        /// No effect besides the result: the call may be removed when the result is unused.
        const PURE = 1 << 3;
    }
}

/// The declaration of one helper.
#[derive(Clone, Debug)]
pub struct HelperInfo {
    /// Name used in dumps and in the text format.
    pub name: &'static str,
    /// The function.
    pub func: HelperFn,
    /// Declared effects.
    pub flags: HelperFlags,
    /// Types of the arguments actually used (at most [`HELPER_MAX_ARGS`]).
    pub args: &'static [Type],
    /// Type of the result, if any.
    pub ret: Option<Type>,
}

/// Index of a helper in its [`HelperTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HelperId(pub u32);

/// The helpers a target registers once; calls refer to them by [`HelperId`].
#[derive(Clone, Debug, Default)]
pub struct HelperTable {
    infos: Vec<HelperInfo>,
}

impl HelperTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a helper and returns its id.
    ///
    /// # Panics
    /// When the declaration has more than [`HELPER_MAX_ARGS`] arguments, its name is taken, or it is declared
    /// `PURE` together with `WRITES_GLOBALS` or `MAY_FAULT`: all are
    /// programming errors in a frontend, found the first time it starts.
    pub fn register(&mut self, info: HelperInfo) -> HelperId {
        assert!(
            info.args.len() <= HELPER_MAX_ARGS,
            "helper {} has too many arguments",
            info.name
        );
        assert!(self.find(info.name).is_none(), "helper {} registered twice", info.name);
        assert!(
            !info.flags.contains(HelperFlags::PURE)
                || !info
                    .flags
                    .intersects(HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT),
            "helper {} is declared pure but writes globals or may fault",
            info.name
        );
        self.infos.push(info);
        HelperId(self.infos.len() as u32 - 1)
    }

    /// The declaration of `id`, if it exists.
    pub fn get(&self, id: HelperId) -> Option<&HelperInfo> {
        self.infos.get(id.0 as usize)
    }

    /// Finds a helper by name.
    pub fn find(&self, name: &str) -> Option<HelperId> {
        self.infos
            .iter()
            .position(|h| h.name == name)
            .map(|i| HelperId(i as u32))
    }

    /// Number of registered helpers.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether no helper is registered.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }
}
