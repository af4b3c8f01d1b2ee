//! The test target of the golden and random tests: globals like an x86 CPU's, and helpers with every kind of
//! declared effect.

use std::sync::Arc;

use rqemu_tcg::helper::{HelperFlags, HelperInfo};
use rqemu_tcg::{HelperFn, TargetDesc, Type};

pub const ENV_SIZE: usize = 0x100;
pub const FAULT_OFFSET: usize = 0x30;
/// A CPU-state field that is not a global (`helper_count` increments it).
const COUNTER_OFFSET: usize = 0x40;
const RBX_OFFSET: usize = 0x8;
const RCX_OFFSET: usize = 0x10;

fn read_u64(env: *mut u8, offset: usize) -> u64 {
    // SAFETY: helpers are only called with the interpreter's ENV_SIZE-byte CPU state.
    unsafe { env.add(offset).cast::<u64>().read_unaligned() }
}

fn write_u64(env: *mut u8, offset: usize, v: u64) {
    // SAFETY: as above.
    unsafe { env.add(offset).cast::<u64>().write_unaligned(v) }
}

unsafe extern "C" fn helper_add3(_: *mut u8, a: u64, b: u64, c: u64, _: u64, _: u64) -> u64 {
    a.wrapping_add(b).wrapping_add(c)
}

unsafe extern "C" fn helper_read_rax(env: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    read_u64(env, 0) ^ a
}

unsafe extern "C" fn helper_write_rbx(env: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    write_u64(env, RBX_OFFSET, a);
    0
}

unsafe extern "C" fn helper_check(env: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    if a == 0 {
        write_u64(env, FAULT_OFFSET, 1);
    }
    0
}

unsafe extern "C" fn helper_count(env: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let n = read_u64(env, COUNTER_OFFSET).wrapping_add(1);
    write_u64(env, COUNTER_OFFSET, n);
    n
}

unsafe extern "C" fn helper_rw_rcx(env: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let old = read_u64(env, RCX_OFFSET);
    write_u64(env, RCX_OFFSET, old.wrapping_mul(3).wrapping_add(a));
    old
}

unsafe extern "C" fn helper_neg32(_: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    (a as u32).wrapping_neg() as u64
}

pub fn target() -> Arc<TargetDesc> {
    let mut t = TargetDesc::new(FAULT_OFFSET as i32);
    for (name, ty, offset) in [
        ("rax", Type::I64, 0x00),
        ("rbx", Type::I64, 0x08),
        ("rcx", Type::I64, 0x10),
        ("rdx", Type::I64, 0x18),
        ("cc", Type::I64, 0x20),
        ("cc_op", Type::I32, 0x28),
        ("df", Type::I32, 0x2c),
    ] {
        t.add_global(name, ty, offset);
    }
    let mut helper = |name, func: HelperFn, flags, args, ret| {
        t.helpers.register(HelperInfo {
            name,
            func,
            flags,
            args,
            ret,
        });
    };
    use HelperFlags as H;
    helper("helper_add3", helper_add3, H::PURE, &[Type::I64; 3], Some(Type::I64));
    helper(
        "helper_read_rax",
        helper_read_rax,
        H::READS_GLOBALS,
        &[Type::I64],
        Some(Type::I64),
    );
    helper(
        "helper_write_rbx",
        helper_write_rbx,
        H::WRITES_GLOBALS,
        &[Type::I64],
        None,
    );
    helper("helper_check", helper_check, H::MAY_FAULT, &[Type::I64], None);
    helper("helper_count", helper_count, H::empty(), &[], Some(Type::I64));
    helper(
        "helper_rw_rcx",
        helper_rw_rcx,
        H::READS_GLOBALS | H::WRITES_GLOBALS,
        &[Type::I64],
        Some(Type::I64),
    );
    helper("helper_neg32", helper_neg32, H::PURE, &[Type::I32], Some(Type::I32));
    Arc::new(t)
}
