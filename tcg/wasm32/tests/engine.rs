//! The embedded engine beyond the conformance suite: the inlined TLB fast path on a hand-filled TLB (hits,
//! misses for misalignment and page crossing, byte order and sign) and chaining between the members of one
//! module, with and without tail calls.

mod common;

use std::sync::Arc;

use rqemu_include::tlb::{tlb_index, TLB_OFFSET_ADDEND, TLB_OFFSET_READ, TLB_OFFSET_WRITE};
use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::parse::parse;
use rqemu_tcg::prepare::prepare;
use rqemu_tcg::{Backend, CompiledTb, ExecContext, Func, TargetDesc, TbExit, Type};
use rqemu_tcg_wasm32::engine::EmbeddedWasm32;
use rqemu_tcg_wasm32::TlbAbi;

/// Where the TLB lives in the CPU state.
const TLB_OFFSET: usize = 0x100;
/// Guest page mapped by the test TLB (above 4 GiB, so truncation would show).
const PAGE: u64 = 0x1_2345_6000;
/// Linear-memory address backing that page.
const RAM: usize = 0x1000;
/// MMU index of the accesses.
const MMU: usize = 1;

/// Globals `x0`, `x1` (i64), `w0` (i32); fault word at 0; a TLB at [`TLB_OFFSET`].
fn target() -> Arc<TargetDesc> {
    let mut t = TargetDesc::new(0);
    t.add_global("x0", Type::I64, 8);
    t.add_global("x1", Type::I64, 16);
    t.add_global("w0", Type::I32, 24);
    t.env_size = TLB_OFFSET + TlbAbi::TOTAL_BYTES;
    Arc::new(t)
}

fn func(text: &str) -> Func {
    func_for(&target(), text)
}

fn func_for(t: &Arc<TargetDesc>, text: &str) -> Func {
    let mut f = parse(t.clone(), text).expect("test IR parses");
    prepare(&mut f).expect("test IR is valid");
    f
}

/// A CPU state with the TLB entry of [`PAGE`] filled for reads and writes (addend for a wasm32 host: 4 bytes).
fn state() -> Vec<u8> {
    let mut env = vec![0u8; target().env_size];
    for e in env[TLB_OFFSET..].chunks_mut(32) {
        e[..24].fill(0xff); // empty entries: all-ones tags
    }
    let entry = TLB_OFFSET + MMU * TlbAbi::TABLE_BYTES + tlb_index(PAGE) * 32;
    env[entry + TLB_OFFSET_READ..][..8].copy_from_slice(&PAGE.to_le_bytes());
    env[entry + TLB_OFFSET_WRITE..][..8].copy_from_slice(&PAGE.to_le_bytes());
    let addend = (RAM as u32).wrapping_sub(PAGE as u32);
    env[entry + TLB_OFFSET_ADDEND..][..4].copy_from_slice(&addend.to_le_bytes());
    env
}

fn get(env: &[u8], off: usize, len: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..len].copy_from_slice(&env[off..off + len]);
    u64::from_le_bytes(b)
}

fn run(tb: &dyn CompiledTb, env: &mut [u8], mem: &mut FlatMemory) -> TbExit {
    let mut ctx = ExecContext {
        env: env.as_mut_ptr(),
        mem,
    };
    // SAFETY: `env` is a CPU state of the target's size.
    unsafe { tb.run(&mut ctx) }
}

fn tlb_engine() -> common::Validating {
    let mut e = EmbeddedWasm32::new();
    e.set_tlb(Some(TlbAbi {
        offset_from_env: TLB_OFFSET as i32,
    }));
    common::Validating::new(e)
}

#[test]
fn tlb_fast_path_hits_and_misses() {
    let mut be = tlb_engine();
    // The page's RAM in linear memory: bytes 0, 1, 2, ...; the slow path's memory (same guest page) is 0xee.
    be.inner.with_memory(|m| {
        for (i, b) in m[RAM..RAM + 4096].iter_mut().enumerate() {
            *b = i as u8;
        }
    });
    let mut slow = FlatMemory::new(PAGE, 8192);
    slow.bytes_mut().fill(0xee);
    let load = be
        .compile(&func(
            "insn_start 0x0, 0x0, 0x0\nqemu_ld_i64 x0, x1, leuq, 1\nexit_tb 0x0\n",
        ))
        .unwrap();

    let mut env = state();
    env[16..24].copy_from_slice(&(PAGE + 8).to_le_bytes());
    assert_eq!(run(&*load, &mut env, &mut slow), TbExit::Exit(0));
    assert_eq!(
        get(&env, 8, 8),
        u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        "fast path"
    );
    assert_eq!(slow.last_mmu, None, "the slow path was not used");

    env[16..24].copy_from_slice(&(PAGE + 0xffc).to_le_bytes());
    assert_eq!(run(&*load, &mut env, &mut slow), TbExit::Exit(0));
    assert_eq!(
        get(&env, 8, 8),
        0xeeee_eeee_eeee_eeee,
        "crossing the page takes the slow path"
    );
    assert!(slow.last_mmu.is_some());

    // Signed big-endian 16-bit load at an i32: bytes 0x80, 0x81 -> 0x8081 sign-extended.
    let be16 = be
        .compile(&func(
            "insn_start 0x0, 0x0, 0x0\nqemu_ld_i32 w0, x1, besw, 1\nexit_tb 0x0\n",
        ))
        .unwrap();
    env[16..24].copy_from_slice(&(PAGE + 0x80).to_le_bytes());
    assert_eq!(run(&*be16, &mut env, &mut slow), TbExit::Exit(0));
    assert_eq!(get(&env, 24, 4), 0xffff_8081);

    // Aligned big-endian store hits; a misaligned one misses and faults in the slow path.
    let store = be
        .compile(&func(
            "insn_start 0x0, 0x0, 0x0\ninsn_start 0x4, 0x0, 0x0\nqemu_st_i32 w0, x1, al+beul, 1\nexit_tb 0x0\n",
        ))
        .unwrap();
    env[24..28].copy_from_slice(&0x1122_3344u32.to_le_bytes());
    env[16..24].copy_from_slice(&(PAGE + 0x40).to_le_bytes());
    slow.last_mmu = None;
    assert_eq!(run(&*store, &mut env, &mut slow), TbExit::Exit(0));
    be.inner
        .with_memory(|m| assert_eq!(&m[RAM + 0x40..RAM + 0x44], &[0x11, 0x22, 0x33, 0x44]));
    assert_eq!(slow.last_mmu, None);
    env[16..24].copy_from_slice(&(PAGE + 0x41).to_le_bytes());
    assert_eq!(run(&*store, &mut env, &mut slow), TbExit::Fault { insn: 1 });
    assert_eq!(get(&env, 0, 4), 0, "a failed guest access leaves the fault word clear");
}

#[test]
fn chaining_stays_in_the_module_with_tail_calls() {
    let t = target();
    let a = func_for(&t, "insn_start 0x0, 0x0, 0x0\nmovi_i64 x0, 0x5\ngoto_tb 0\n");
    let b = func_for(&t, "insn_start 0x0, 0x0, 0x0\nadd_i64 x0, x0, $0x1\nexit_tb 0x77\n");
    for tail_calls in [true, false] {
        let mut e = EmbeddedWasm32::new();
        e.set_tail_calls(tail_calls);
        let mut be = common::Validating::new(e);
        let members = [
            GroupMember {
                func: &a,
                jump_targets: [Some(1), None],
            },
            GroupMember {
                func: &b,
                jump_targets: [None, None],
            },
        ];
        let tbs = be.compile_group(&members).unwrap();
        let mut env = state();
        let mut mem = FlatMemory::new(0, 8);
        let exit = run(&*tbs[0], &mut env, &mut mem);
        if tail_calls {
            assert_eq!(exit, TbExit::Exit(0x77));
            assert_eq!(get(&env, 8, 8), 6);
            assert_eq!(be.inner.stats().0.chained_jumps, 1);
        } else {
            assert_eq!(exit, TbExit::GotoTb(0));
            assert_eq!(get(&env, 8, 8), 5);
        }
    }
}
