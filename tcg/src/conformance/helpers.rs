//! The helpers the suite registers, and the values they are expected to produce.
//!
//! One function (`mix`) serves every argument count: unused arguments are zero by the helper ABI, so a
//! backend that passes garbage in them, swaps two arguments or forgets to zero-extend an i32 gets a different
//! result. The other helpers exercise the declared effects: reading and writing globals through `env`, and
//! recording a fault.

use crate::helper::{HelperFlags, HelperId, HelperInfo, HELPER_MAX_ARGS};
use crate::target::TargetDesc;
use crate::types::Type;

use super::state::{FAULT_SLOT, HELPER_OUT, X_IN};

/// Ids of the registered helpers.
#[derive(Clone, Debug)]
pub(super) struct HelperIds {
    /// `mix` with `n` i64 arguments and an i64 result, for `n` in `0..=5`.
    pub mix_i64: Vec<HelperId>,
    /// `mix` with `n` i32 arguments and an i32 result.
    pub mix_i32: Vec<HelperId>,
    /// `mix` with `n` alternating i32/i64 arguments and an i64 result.
    pub mix_mixed: Vec<HelperId>,
    /// `mix_store` with `n` i64 arguments and no result (writes the helper-output slot).
    pub mix_void: Vec<HelperId>,
    /// `mix` declared pure, two i64 arguments.
    pub pure: HelperId,
    /// Returns global `x0` read from the CPU state; reads globals.
    pub read_x0: HelperId,
    /// Sets `x1 = x0 * 3 + 1` in the CPU state and returns `x0 + 7`; reads and writes globals.
    pub update_x1: HelperId,
    /// Records a fault when its i64 argument is nonzero, else returns it plus 0x100.
    pub maybe_fault: HelperId,
}

static ARGS_I64: [Type; HELPER_MAX_ARGS] = [Type::I64; HELPER_MAX_ARGS];
static ARGS_I32: [Type; HELPER_MAX_ARGS] = [Type::I32; HELPER_MAX_ARGS];
static ARGS_MIXED: [Type; HELPER_MAX_ARGS] = [Type::I32, Type::I64, Type::I32, Type::I64, Type::I32];

/// Names must be `'static`; one table per family keeps them readable in dumps.
const MIX_I64: [&str; 6] = ["mix0", "mix1", "mix2", "mix3", "mix4", "mix5"];
const MIX_I32: [&str; 6] = ["mix0_i32", "mix1_i32", "mix2_i32", "mix3_i32", "mix4_i32", "mix5_i32"];
const MIX_MIXED: [&str; 6] = [
    "mix0_mixed",
    "mix1_mixed",
    "mix2_mixed",
    "mix3_mixed",
    "mix4_mixed",
    "mix5_mixed",
];
const MIX_VOID: [&str; 6] = ["store0", "store1", "store2", "store3", "store4", "store5"];

/// The value `mix` returns; order-sensitive in its arguments and nonzero for all-zero ones.
pub(super) fn mix_value(args: [u64; HELPER_MAX_ARGS]) -> u64 {
    args.iter().fold(0x243f_6a88_85a3_08d3, |h, &a| {
        (h ^ a).wrapping_mul(0x100_0000_01b3).rotate_left(29)
    })
}

/// Argument types of a helper in the `mix` families.
pub(super) fn arg_types(family: &'static [Type; HELPER_MAX_ARGS], n: usize) -> &'static [Type] {
    &family[..n]
}

/// Pointer to the `u64` in `slot` of the state at `env`.
///
/// # Safety
/// `env` must point to a [`super::state::CpuState`] (every run of the suite passes one).
unsafe fn slot_ptr(env: *mut u8, slot: usize) -> *mut u64 {
    env.add(slot * 8).cast()
}

unsafe extern "C" fn mix(_env: *mut u8, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> u64 {
    mix_value([a0, a1, a2, a3, a4])
}

unsafe extern "C" fn mix_store(env: *mut u8, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> u64 {
    // SAFETY: the suite only runs TBs on a CpuState, which has the helper-output slot.
    unsafe { slot_ptr(env, HELPER_OUT).write_unaligned(mix_value([a0, a1, a2, a3, a4])) };
    // Garbage, so a backend that stores the result of a call without one is caught.
    0xbad0_bad0_bad0_bad0
}

unsafe extern "C" fn read_x0(env: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: as in `mix_store`.
    unsafe { slot_ptr(env, X_IN[0]).read_unaligned() }
}

/// What `update_x1` writes to `x1` given `x0`.
pub(super) fn updated_x1(x0: u64) -> u64 {
    x0.wrapping_mul(3).wrapping_add(1)
}

unsafe extern "C" fn update_x1(env: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: as in `mix_store`.
    unsafe {
        let x0 = slot_ptr(env, X_IN[0]).read_unaligned();
        slot_ptr(env, X_IN[1]).write_unaligned(updated_x1(x0));
        x0.wrapping_add(7)
    }
}

unsafe extern "C" fn maybe_fault(env: *mut u8, a0: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    if a0 == 0 {
        return a0 + 0x100;
    }
    // SAFETY: as in `mix_store`; the fault word is the first four bytes of its slot.
    unsafe { env.add(FAULT_SLOT * 8).cast::<u32>().write_unaligned(1) };
    0xdead
}

fn add(
    t: &mut TargetDesc,
    name: &'static str,
    func: crate::HelperFn,
    flags: HelperFlags,
    args: &'static [Type],
    ret: Option<Type>,
) -> HelperId {
    t.helpers.register(HelperInfo {
        name,
        func,
        flags,
        args,
        ret,
    })
}

/// Registers every helper of the suite in `t`.
pub(super) fn register(t: &mut TargetDesc) -> HelperIds {
    let none = HelperFlags::empty();
    let family = |t: &mut TargetDesc, names: [&'static str; 6], args, ret, func: crate::HelperFn| {
        (0..=HELPER_MAX_ARGS)
            .map(|n| add(t, names[n], func, none, arg_types(args, n), ret))
            .collect()
    };
    HelperIds {
        mix_i64: family(t, MIX_I64, &ARGS_I64, Some(Type::I64), mix),
        mix_i32: family(t, MIX_I32, &ARGS_I32, Some(Type::I32), mix),
        mix_mixed: family(t, MIX_MIXED, &ARGS_MIXED, Some(Type::I64), mix),
        mix_void: family(t, MIX_VOID, &ARGS_I64, None, mix_store),
        pure: add(
            t,
            "mix_pure",
            mix,
            HelperFlags::PURE,
            arg_types(&ARGS_I64, 2),
            Some(Type::I64),
        ),
        read_x0: add(t, "read_x0", read_x0, HelperFlags::READS_GLOBALS, &[], Some(Type::I64)),
        update_x1: add(
            t,
            "update_x1",
            update_x1,
            HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS,
            &[],
            Some(Type::I64),
        ),
        maybe_fault: add(
            t,
            "maybe_fault",
            maybe_fault,
            HelperFlags::MAY_FAULT,
            arg_types(&ARGS_I64, 1),
            Some(Type::I64),
        ),
    }
}

/// The `mix` families as (ids, argument types, result type), for the call programs.
pub(super) fn mix_families(ids: &HelperIds) -> [(&[HelperId], &'static [Type; HELPER_MAX_ARGS], Option<Type>); 4] {
    [
        (&ids.mix_i64, &ARGS_I64, Some(Type::I64)),
        (&ids.mix_i32, &ARGS_I32, Some(Type::I32)),
        (&ids.mix_mixed, &ARGS_MIXED, Some(Type::I64)),
        (&ids.mix_void, &ARGS_I64, None),
    ]
}
