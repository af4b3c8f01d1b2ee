//! What a frontend registers once: its globals (CPU-state fields as IR temps), its helpers, and where the CPU
//! state holds the fault word.

use crate::helper::HelperTable;
use crate::Type;

/// A CPU-state field exposed to the IR as a global temp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalDef {
    /// Name used in dumps (`rax`, `cc_src`, ...).
    pub name: String,
    /// Value type.
    pub ty: Type,
    /// Byte offset from the CPU-state pointer.
    pub offset: i32,
}

/// Everything about a guest target that IR passes and backends need.
#[derive(Clone, Debug, Default)]
pub struct TargetDesc {
    /// Globals; they become temps `1..=globals.len()` of every function (temp 0 is `env`).
    pub globals: Vec<GlobalDef>,
    /// Helpers callable from the IR.
    pub helpers: HelperTable,
    /// Offset of a `u32` in the CPU state that a faulting helper sets nonzero (see [`crate::helper`]).
    pub fault_offset: i32,
    /// Size in bytes of the CPU state `env` points to, 0 when unknown. Backends that run generated code in a
    /// separate address space (the wasm32 backend's embedded engine) copy this many bytes in and out.
    pub env_size: usize,
    /// Offset from `env` of the softmmu TLB tables (`rqemu_include::tlb` layout, one table per MMU index)
    /// when the target keeps them in its CPU state and fills them through the guest memory the loop passes:
    /// backends may then inline the fast path of guest loads and stores against them. `None`: every access
    /// goes through the guest memory.
    pub tlb_offset: Option<i32>,
}

impl TargetDesc {
    /// A description with no globals and no helpers, the fault word at `fault_offset`.
    pub fn new(fault_offset: i32) -> Self {
        TargetDesc {
            globals: Vec::new(),
            helpers: HelperTable::new(),
            fault_offset,
            env_size: 0,
            tlb_offset: None,
        }
    }

    /// Adds a global and returns its index among the globals.
    ///
    /// # Panics
    /// When the name is taken (a frontend programming error).
    pub fn add_global(&mut self, name: &str, ty: Type, offset: i32) -> usize {
        assert!(
            self.globals.iter().all(|g| g.name != name),
            "global {name} defined twice"
        );
        self.globals.push(GlobalDef {
            name: name.to_string(),
            ty,
            offset,
        });
        self.globals.len() - 1
    }
}
