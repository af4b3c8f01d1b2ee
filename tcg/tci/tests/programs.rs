//! Small TBs through the tci compiler and interpreter: control flow, exits, helper calls, faults, slot reuse
//! and the i32 zero-extension invariant. The IR is built by hand without globals, as `prepare` leaves it.

use std::sync::Arc;

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::{
    CompiledTb, Cond, ExecContext, Func, HelperFlags, HelperId, HelperInfo, Opcode, TargetDesc, TbExit, Temp, Type,
};
use rqemu_tcg_tci::Tci;
use Type::{I32, I64};

/// Words of the fake CPU state; the fault word is the last one.
const ENV_WORDS: usize = 32;
const FAULT_WORD: usize = ENV_WORDS - 1;
const MEM_BASE: u64 = 0x8000;

fn target_with(helpers: &[HelperInfo]) -> Arc<TargetDesc> {
    let mut t = TargetDesc::new(8 * FAULT_WORD as i32);
    for h in helpers {
        t.helpers.register(h.clone());
    }
    Arc::new(t)
}

fn func() -> Func {
    Func::new(target_with(&[]))
}

/// Compiles `f` and runs it once on `env`.
fn run_with(f: &Func, env: &mut [u64; ENV_WORDS], mem: &mut FlatMemory) -> TbExit {
    let tb = Tci::new().compile_tb(f).unwrap_or_else(|e| panic!("{e}\n{}", f.dump()));
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem,
    };
    // SAFETY: every TB here uses offsets inside `env` and helpers that accept it.
    unsafe { tb.run(&mut ctx) }
}

fn run(f: &Func) -> (TbExit, [u64; ENV_WORDS]) {
    let mut env = [0u64; ENV_WORDS];
    let exit = run_with(f, &mut env, &mut FlatMemory::new(MEM_BASE, 0x100));
    (exit, env)
}

fn store(f: &mut Func, v: Temp, word: i32) {
    let opc = Opcode::St;
    f.store(opc, v, Temp::ENV, 8 * word);
}

#[test]
fn counting_loop_sums() {
    let mut f = func();
    let (i, sum) = (f.new_temp(I64), f.new_temp(I64));
    let (zero, one, hundred) = (f.constant(I64, 0), f.constant(I64, 1), f.constant(I64, 100));
    let top = f.new_label();
    f.movi(i, 0);
    f.movi(sum, 0);
    f.set_label(top);
    f.add(i, i, one);
    f.add(sum, sum, i);
    f.brcond(Cond::Ltu, i, hundred, top);
    store(&mut f, sum, 0);
    store(&mut f, zero, 1);
    f.exit_tb(7);
    let (exit, env) = run(&f);
    assert_eq!(exit, TbExit::Exit(7));
    assert_eq!(env[0], 5050);
}

#[test]
fn every_branch_condition_at_both_types() {
    let values = [0u64, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 63, u64::MAX];
    for ty in [I32, I64] {
        for cond in Cond::ALL {
            for &a in &values {
                for &b in &values {
                    let (a, b) = (a & ty.mask(), b & ty.mask());
                    let mut f = func();
                    let (ta, tb) = (f.new_temp(ty), f.new_temp(ty));
                    let (ka, kb) = (f.constant(ty, a), f.constant(ty, b));
                    let taken = f.new_label();
                    f.mov(ta, ka);
                    f.mov(tb, kb);
                    f.brcond(cond, ta, tb, taken);
                    f.exit_tb(0);
                    f.set_label(taken);
                    f.exit_tb(1);
                    let want = rqemu_tcg::semantics::eval_cond(cond, ty, a, b);
                    assert_eq!(
                        run(&f).0,
                        TbExit::Exit(want as u64),
                        "brcond_{ty} {cond} {a:#x}, {b:#x}"
                    );
                }
            }
        }
    }
}

#[test]
fn forward_branches_skip_code() {
    let mut f = func();
    let t = f.new_temp(I64);
    let (k5, k9) = (f.constant(I64, 5), f.constant(I64, 9));
    let (skip, end) = (f.new_label(), f.new_label());
    f.mov(t, k5);
    f.br(skip);
    f.mov(t, k9); // skipped
    f.set_label(skip);
    store(&mut f, t, 0);
    f.brcond(Cond::Eq, t, k5, end);
    f.exit_tb(1);
    f.set_label(end);
    f.exit_tb(2);
    let (exit, env) = run(&f);
    assert_eq!((exit, env[0]), (TbExit::Exit(2), 5));
}

#[test]
fn tb_exits() {
    let mut f = func();
    f.exit_tb(0xdead_beef_0000_0001);
    assert_eq!(run(&f).0, TbExit::Exit(0xdead_beef_0000_0001));

    for slot in 0..2 {
        let mut f = func();
        f.goto_tb(slot);
        assert_eq!(run(&f).0, TbExit::GotoTb(slot));
    }

    let mut f = func();
    let p = f.new_temp(Type::PTR);
    f.load(Opcode::Ld, p, Temp::ENV, 8);
    f.goto_ptr(p);
    let mut env = [0u64; ENV_WORDS];
    env[1] = 0x1234_5678;
    let exit = run_with(&f, &mut env, &mut FlatMemory::new(MEM_BASE, 16));
    assert_eq!(exit, TbExit::GotoPtr(0x1234_5678));
}

#[test]
fn i32_values_stay_zero_extended() {
    let mut f = func();
    let (big, x, y) = (f.new_temp(I64), f.new_temp(I32), f.new_temp(I32));
    let wide = f.new_temp(I64);
    let all = f.constant(I64, u64::MAX);
    let (m1, one) = (f.constant(I32, u32::MAX as u64), f.constant(I32, 1));
    // An i64 temp with high bits dies first so an i32 temp may take its slot.
    f.mov(big, all);
    store(&mut f, big, 0);
    f.add(x, m1, one); // wraps to 0
    f.extu_i32_i64(wide, x);
    store(&mut f, wide, 1);
    f.neg(y, one); // 0xffff_ffff
    f.extu_i32_i64(wide, y);
    store(&mut f, wide, 2);
    f.sar(y, y, one);
    f.not(x, y); // 0
    f.or(x, x, m1);
    f.shl(x, x, one);
    f.extu_i32_i64(wide, x);
    store(&mut f, wide, 3);
    f.load(Opcode::Ld8s, x, Temp::ENV, 0); // 0xff sign-extended to 32 bits only
    f.extu_i32_i64(wide, x);
    store(&mut f, wide, 4);
    f.exit_tb(0);
    let (_, env) = run(&f);
    assert_eq!(env[..5], [u64::MAX, 0, 0xffff_ffff, 0xffff_fffe, 0xffff_ffff]);
}

#[test]
fn loop_carried_values_keep_their_slots() {
    // `base` is set before the loop and last read, in program order, at the top of the body; `carry` is read
    // at the top (last iteration's value) and written at the bottom. The short-lived temps in between would
    // take their slots if slot reuse ignored the back edge.
    let mut f = func();
    let (i, base, carry, out) = (f.new_temp(I64), f.new_temp(I64), f.new_temp(I64), f.new_temp(I64));
    let short: Vec<Temp> = (0..6).map(|_| f.new_ebb_temp(I64)).collect();
    let (one, ten) = (f.constant(I64, 1), f.constant(I64, 10));
    let top = f.new_label();
    f.movi(i, 0);
    f.movi(base, 1000);
    f.movi(carry, 0);
    f.movi(out, 0);
    f.set_label(top);
    f.add(out, out, carry);
    f.add(short[0], i, base);
    for n in 1..short.len() {
        f.add(short[n], short[n - 1], one);
    }
    f.add(out, out, short[5]);
    f.mov(carry, i);
    f.add(i, i, one);
    f.brcond(Cond::Ne, i, ten, top);
    store(&mut f, out, 0);
    f.exit_tb(0);
    let (_, env) = run(&f);
    let want: u64 = (0..10).map(|i| (i + 1000 + 5) + i.max(1) - 1).sum();
    assert_eq!(env[0], want);
}

#[test]
fn big_frames_run_from_the_heap() {
    // 400 temps live at once: more than the stack frame holds.
    let mut f = func();
    let temps: Vec<Temp> = (0..400).map(|_| f.new_temp(I64)).collect();
    for (n, &t) in temps.iter().enumerate() {
        f.movi(t, n as u64 + 1);
    }
    let sum = f.new_temp(I64);
    f.movi(sum, 0);
    for &t in &temps {
        f.add(sum, sum, t);
    }
    store(&mut f, sum, 0);
    f.exit_tb(0);
    let tb = Tci::new().compile_tb(&f).unwrap();
    assert!(tb.frame_len() > 400);
    assert_eq!(run(&f).1[0], 400 * 401 / 2);
}

#[test]
fn host_loads_and_stores_every_width() {
    let mut f = func();
    let x = f.new_temp(I64);
    let y = f.new_temp(I32);
    let loads = [
        (Opcode::Ld8u, 0x80),
        (Opcode::Ld8s, 0xffff_ffff_ffff_ff80),
        (Opcode::Ld16u, 0x8180),
        (Opcode::Ld16s, 0xffff_ffff_ffff_8180),
        (Opcode::Ld32u, 0x8382_8180),
        (Opcode::Ld32s, 0xffff_ffff_8382_8180),
        (Opcode::Ld, 0x8786_8584_8382_8180),
    ];
    for (n, (opc, _)) in loads.iter().enumerate() {
        f.load(*opc, x, Temp::ENV, 8);
        store(&mut f, x, 2 + n as i32);
    }
    f.load(Opcode::Ld16s, y, Temp::ENV, 8 + 1); // unaligned, i32
    let w = f.new_temp(I64);
    f.extu_i32_i64(w, y);
    store(&mut f, w, 10);
    let k = f.constant(I64, 0x1122_3344_5566_7788);
    f.store(Opcode::St8, k, Temp::ENV, 8 * 11);
    f.store(Opcode::St16, k, Temp::ENV, 8 * 12 + 1);
    f.store(Opcode::St32, k, Temp::ENV, 8 * 13);
    f.exit_tb(0);
    let mut env = [0u64; ENV_WORDS];
    env[1] = 0x8786_8584_8382_8180;
    env[11] = u64::MAX;
    env[12] = u64::MAX;
    env[13] = u64::MAX;
    run_with(&f, &mut env, &mut FlatMemory::new(MEM_BASE, 16));
    for (n, (opc, want)) in loads.iter().enumerate() {
        assert_eq!(env[2 + n], *want, "{opc:?}");
    }
    assert_eq!(env[10], 0xffff_8281);
    assert_eq!(env[11], 0xffff_ffff_ffff_ff88);
    assert_eq!(env[12], 0xffff_ffff_ff77_88ff);
    assert_eq!(env[13], 0xffff_ffff_5566_7788);
}

#[test]
fn guest_loads_extend_and_fault_at_their_instruction() {
    let mmu = MmuIdx::default();
    let mut f = func();
    let (addr, v) = (f.new_temp(I64), f.new_temp(I64));
    let w = f.new_temp(I32);
    f.insn_start([0x100, 0, 0]);
    f.load(Opcode::Ld, addr, Temp::ENV, 0);
    f.qemu_ld(v, addr, MemOp::LESW, mmu);
    store(&mut f, v, 1);
    f.insn_start([0x104, 0, 0]);
    f.qemu_ld(w, addr, MemOp::LESW, mmu);
    let wide = f.new_temp(I64);
    f.extu_i32_i64(wide, w);
    store(&mut f, wide, 2);
    f.qemu_st(v, addr, MemOp::UB, mmu);
    f.insn_start([0x108, 0, 0]);
    let eight = f.constant(I64, 8);
    f.add(addr, addr, eight);
    f.qemu_ld(v, addr, MemOp::LEUQ, mmu);
    f.exit_tb(0);

    let mut mem = FlatMemory::new(MEM_BASE, 16);
    mem.bytes_mut()[..2].copy_from_slice(&[0x34, 0x92]);
    let mut env = [0u64; ENV_WORDS];
    env[0] = MEM_BASE;
    assert_eq!(run_with(&f, &mut env, &mut mem), TbExit::Exit(0));
    assert_eq!(env[1], 0xffff_ffff_ffff_9234);
    assert_eq!(env[2], 0xffff_9234);
    assert_eq!(mem.bytes()[0], 0x34);

    // The last access leaves the memory: the third guest instruction faults.
    env[0] = MEM_BASE + 8;
    assert_eq!(run_with(&f, &mut env, &mut mem), TbExit::Fault { insn: 2 });
    // The first one: its load is the first access.
    env[0] = 0;
    assert_eq!(run_with(&f, &mut env, &mut mem), TbExit::Fault { insn: 0 });
}

#[test]
fn a_fault_before_any_insn_start_is_reported_at_the_first_instruction() {
    let mut f = func();
    let v = f.new_temp(I64);
    let bad = f.constant(I64, 0);
    f.qemu_ld(v, bad, MemOp::LEUQ, MmuIdx::default());
    f.exit_tb(0);
    assert_eq!(run(&f).0, TbExit::Fault { insn: 0 });
}

unsafe extern "C" fn sum5(env: *mut u8, a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    // Record the arguments so the test can check they arrived zero-extended and in order.
    let words = env.cast::<u64>();
    for (i, v) in [a, b, c, d, e].into_iter().enumerate() {
        *words.add(8 + i) = v;
    }
    a.wrapping_add(b).wrapping_add(c).wrapping_add(d).wrapping_add(e)
}

unsafe extern "C" fn fault_if_odd(env: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    if a & 1 == 1 {
        *env.cast::<u32>().add(2 * FAULT_WORD) = 1;
    }
    a * 2
}

fn helper(name: &'static str, func: rqemu_tcg::HelperFn, args: &'static [Type], ret: Option<Type>) -> HelperInfo {
    HelperInfo {
        name,
        func,
        flags: HelperFlags::empty(),
        args,
        ret,
    }
}

#[test]
fn helper_calls_pass_arguments_and_mask_results() {
    let target = target_with(&[
        helper("sum5", sum5, &[I64, I32, I64, I32, I64], Some(I32)),
        helper("sum2", sum5, &[I64, I64], None),
    ]);
    let mut f = Func::new(target);
    let args = [
        f.constant(I64, 0xffff_ffff_0000_0001),
        f.constant(I32, 0xffff_ffff),
        f.constant(I64, 3),
        f.constant(I32, 4),
        f.constant(I64, 5),
    ];
    let (r, wide) = (f.new_temp(I32), f.new_temp(I64));
    f.call(HelperId(0), Some(r), &args);
    f.extu_i32_i64(wide, r);
    store(&mut f, wide, 0);
    f.call(
        HelperId(1),
        None,
        &args[..1].iter().chain(&args[2..3]).copied().collect::<Vec<_>>(),
    );
    f.exit_tb(0);
    let (exit, env) = run(&f);
    assert_eq!(exit, TbExit::Exit(0));
    // 0xffff_ffff_0000_0001 + 0xffff_ffff + 3 + 4 + 5, low half.
    assert_eq!(env[0], 0x0000_000c);
    // The second call passed two arguments and zeros for the rest.
    assert_eq!(env[8..13], [0xffff_ffff_0000_0001, 3, 0, 0, 0]);
}

#[test]
fn faulting_helpers_end_the_tb_at_their_instruction() {
    let mut info = helper("fault_if_odd", fault_if_odd, &[I64], Some(I64));
    info.flags = HelperFlags::MAY_FAULT;
    let unchecked = helper("unchecked", fault_if_odd, &[I64], Some(I64));
    let mut f = Func::new(target_with(&[info, unchecked]));
    let (a, r) = (f.new_temp(I64), f.new_temp(I64));
    f.insn_start([0x10, 0, 0]);
    f.load(Opcode::Ld, a, Temp::ENV, 0);
    f.call(HelperId(1), Some(r), &[a]); // may set the fault word, but is not declared to
    store(&mut f, r, 1);
    f.insn_start([0x14, 0, 0]);
    f.call(HelperId(0), Some(r), &[a]);
    store(&mut f, r, 2);
    f.exit_tb(0);

    let mut env = [0u64; ENV_WORDS];
    env[0] = 4;
    let mem = &mut FlatMemory::new(MEM_BASE, 16);
    assert_eq!(run_with(&f, &mut env, mem), TbExit::Exit(0));
    assert_eq!(env[1..3], [8, 8]);

    let mut env = [0u64; ENV_WORDS];
    env[0] = 5;
    assert_eq!(run_with(&f, &mut env, mem), TbExit::Fault { insn: 1 });
    // The result of the faulting call is written, the op after it is not run.
    assert_eq!(env[1..3], [10, 0]);
}

#[test]
fn code_size_and_disassembly() {
    let mut f = func();
    let t = f.new_temp(I64);
    let k = f.constant(I64, 3);
    let l = f.new_label();
    f.mov(t, k);
    f.brcond(Cond::Ge, t, k, l); // canonicalised to `le` with swapped operands
    f.set_label(l);
    f.exit_tb(0);
    let tb = Tci::new().compile_tb(&f).unwrap();
    assert_eq!(tb.insn_count(), 3);
    assert!(tb.code_size() >= 3 * 12);
    let text = tb.disassemble();
    assert!(text.contains("BrLe64 { a: s1, b: s2, target: 2 }"), "{text}");
}
