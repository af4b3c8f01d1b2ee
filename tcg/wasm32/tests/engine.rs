//! The embedded engine beyond the conformance suite: the inlined TLB fast path on a hand-filled TLB (hits,
//! misses for misalignment and page crossing, byte order and sign), chaining between the members of one
//! module, with and without tail calls, and loops (each program checked against a Rust model of it, and for
//! whether it took the structured form or the dispatch fallback, see `codegen/control.rs`).

mod common;

use std::sync::Arc;

use rqemu_include::tlb::{tlb_index, TLB_OFFSET_ADDEND, TLB_OFFSET_READ, TLB_OFFSET_WRITE};
use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::parse::parse;
use rqemu_tcg::prepare::prepare;
use rqemu_tcg::semantics::eval_cond;
use rqemu_tcg::{Backend, CompiledTb, ExecContext, Func, TargetDesc, TbExit, Type};
use rqemu_tcg_wasm32::engine::EmbeddedWasm32;
use rqemu_tcg_wasm32::{ModuleStats, TlbAbi};

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

/// Compiles `text` alone on a fresh engine and runs it for each `x1` in `inputs`, comparing `(exit word, x0)`
/// with `model(x1)`. Returns the engine's statistics (`structured_loops`, `dispatched_branches`).
fn check_program(text: &str, inputs: impl IntoIterator<Item = u64>, model: impl Fn(u64) -> (u64, u64)) -> ModuleStats {
    let mut be = common::Validating::new(EmbeddedWasm32::new());
    let tb = be.compile(&func(text)).expect("compiles");
    let mut mem = FlatMemory::new(0, 8);
    for n in inputs {
        let mut env = state();
        env[16..24].copy_from_slice(&n.to_le_bytes());
        let exit = run(&*tb, &mut env, &mut mem);
        let (word, x0) = model(n);
        assert_eq!((exit, get(&env, 8, 8)), (TbExit::Exit(word), x0), "x1 = {n}");
    }
    be.inner.stats().0
}

/// Two nested loops; the inner one is left forward to the outer one's latch, to the normal exit and to an
/// early exit after both loops.
#[test]
fn nested_loops_with_forward_exits_are_structured() {
    let text = "insn_start 0x0, 0x0, 0x0
movi_i64 t20, 0x0
movi_i64 t21, 0x0
set_label L0
brcond_i64 t21, x1, geu, L3
movi_i64 t22, 0x0
set_label L1
brcond_i64 t22, t21, geu, L2
add_i64 t20, t20, t22
brcond_i64 t20, $0x64, gtu, L4
add_i64 t22, t22, $0x1
br L1
set_label L2
add_i64 t21, t21, $0x1
br L0
set_label L3
mov_i64 x0, t20
exit_tb 0x0
set_label L4
mov_i64 x0, t20
exit_tb 0x1
";
    let model = |n: u64| {
        let mut acc = 0;
        for i in 0..n {
            for j in 0..i {
                acc += j;
                if acc > 100 {
                    return (1, acc);
                }
            }
        }
        (0, acc)
    };
    let stats = check_program(text, 0..16, model);
    assert_eq!((stats.structured_loops, stats.dispatched_branches), (2, 0));
}

/// One loop closed by two back edges (a `brcond` and a `br`), entered by a forward branch to its header
/// that skips the code before it.
#[test]
fn two_back_edges_to_one_label_are_one_loop() {
    let text = "insn_start 0x0, 0x0, 0x0
movi_i64 t20, 0x0
brcond_i64 x1, $0x5, eq, L0
movi_i64 t20, 0x64
set_label L0
add_i64 t20, t20, $0x1
brcond_i64 t20, x1, geu, L2
and_i64 t21, t20, $0x1
brcond_i64 t21, $0x0, eq, L0
add_i64 t20, t20, $0x2
br L0
set_label L2
mov_i64 x0, t20
exit_tb 0x0
";
    let model = |n: u64| {
        let mut acc = if n == 5 { 0 } else { 100 };
        loop {
            acc += 1;
            if acc >= n {
                return (0, acc);
            }
            if acc & 1 != 0 {
                acc += 2;
            }
        }
    };
    let stats = check_program(text, (0..20).chain([5, 120, 1000]), model);
    assert_eq!((stats.structured_loops, stats.dispatched_branches), (1, 0));
}

/// A do-while loop at i32 closed by a backward `brcond` (Fibonacci): the back edge is a `br_if` to the loop.
#[test]
fn brcond_back_edge_closes_a_do_while_loop() {
    let text = "insn_start 0x0, 0x0, 0x0
movi_i32 t20, 0x0
movi_i32 t21, 0x1
extrl_i64_i32 t23, x1
set_label L0
add_i32 t22, t20, t21
mov_i32 t20, t21
mov_i32 t21, t22
sub_i32 t23, t23, $0x1
brcond_i32 t23, $0x0, ne, L0
extu_i32_i64 x0, t20
exit_tb 0x0
";
    let model = |n: u64| {
        let (mut a, mut b) = (0u32, 1u32);
        for _ in 0..n {
            (a, b) = (b, a.wrapping_add(b));
        }
        (0, a as u64)
    };
    let stats = check_program(text, [1, 2, 3, 10, 47, 48, 100], model);
    assert_eq!((stats.structured_loops, stats.dispatched_branches), (1, 0));
}

/// A backward branch into the middle of another loop (to `L1`, inside the loop of `L0`): the two loops
/// overlap, `L0`'s is extended to contain `L1`'s, and both stay structured.
#[test]
fn backward_branch_into_another_loop_nests_the_loops() {
    let text = "insn_start 0x0, 0x0, 0x0
movi_i64 t20, 0x0
movi_i64 t21, 0x0
set_label L0
add_i64 t20, t20, $0x1
set_label L1
add_i64 t21, t21, $0x1
add_i64 t20, t20, t21
brcond_i64 t20, x1, ltu, L0
brcond_i64 t21, $0x8, geu, L3
and_i64 t22, t21, $0x1
brcond_i64 t22, $0x0, eq, L2
add_i64 t20, t20, $0x5
set_label L2
mul_i64 t20, t20, $0x3
brcond_i64 t20, $0x1000, ltu, L1
set_label L3
mov_i64 x0, t20
exit_tb 0x0
";
    let model = |n: u64| {
        let (mut acc, mut k) = (0u64, 0u64);
        'l0: loop {
            acc += 1;
            loop {
                k += 1;
                acc += k;
                if acc < n {
                    continue 'l0;
                }
                if k >= 8 {
                    return (0, acc);
                }
                if k & 1 != 0 {
                    acc += 5;
                }
                acc *= 3;
                if acc >= 0x1000 {
                    return (0, acc);
                }
            }
        }
    };
    let stats = check_program(text, [0, 1, 2, 5, 10, 30, 50, 100, 1000], model);
    assert_eq!((stats.structured_loops, stats.dispatched_branches), (2, 0));
}

/// A loop with a second entry: a forward branch from before it into its middle, which the back edge to
/// `L0` then closes over. Irreducible: the function falls back to the dispatch loop.
#[test]
fn second_entry_into_a_loop_falls_back_to_dispatch() {
    let text = "insn_start 0x0, 0x0, 0x0
movi_i64 t20, 0x0
brcond_i64 x1, $0x0, ne, L1
set_label L0
add_i64 t20, t20, $0x3
set_label L1
add_i64 t20, t20, $0x1
brcond_i64 t20, $0x14, ltu, L0
mov_i64 x0, t20
exit_tb 0x0
";
    let model = |n: u64| {
        let mut acc = if n == 0 { 3 } else { 0 };
        loop {
            acc += 1;
            if acc >= 20 {
                return (0, acc);
            }
            acc += 3;
        }
    };
    let stats = check_program(text, [0, 1, 7], model);
    assert_eq!((stats.structured_loops, stats.dispatched_branches), (0, 1));
}

/// The same irreducible entry, but by a backward branch: after a first loop, a branch goes back into the
/// middle of it from below, while that region is also reachable by a forward branch skipping the loop's
/// header. Falls back to dispatch.
#[test]
fn backward_branch_into_a_loop_with_a_second_entry_falls_back() {
    let text = "insn_start 0x0, 0x0, 0x0
movi_i64 t20, 0x0
brcond_i64 x1, $0x3, ltu, L1
set_label L0
add_i64 t20, t20, $0x2
set_label L1
add_i64 t20, t20, $0x1
brcond_i64 t20, $0xa, ltu, L0
add_i64 t20, t20, $0x7
brcond_i64 t20, $0x28, ltu, L1
mov_i64 x0, t20
exit_tb 0x0
";
    let model = |n: u64| {
        let mut acc = 0u64;
        let mut at_l1 = n < 3;
        loop {
            if !at_l1 {
                acc += 2;
            }
            at_l1 = false;
            acc += 1;
            if acc < 10 {
                continue;
            }
            acc += 7;
            if acc < 40 {
                at_l1 = true;
                continue;
            }
            return (0, acc);
        }
    };
    let stats = check_program(text, [0, 2, 3, 9], model);
    assert_eq!(stats.structured_loops, 0);
    assert!(stats.dispatched_branches >= 2);
}

/// A random program for [`random_control_flow_matches_a_model`]: segments `0..n`, segment `i` starting at
/// label `Li`; label `Ln` is the exit.
struct RandomProgram {
    segs: Vec<Segment>,
}

struct Segment {
    /// `acc = acc op imm` with op 0: add, 1: xor, 2: mul.
    ops: Vec<(u8, u64)>,
    /// A branch to label `.1` at the end of the segment: unconditional, or taken when `acc <u .0`.
    branch: Option<(Option<u64>, usize)>,
}

/// xorshift64: a reproducible stream without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fuel: every segment entered costs one; at zero the program leaves through the exit label.
const FUEL: u64 = 40;

impl RandomProgram {
    fn new(rng: &mut Rng) -> RandomProgram {
        let n = 1 + rng.below(7) as usize;
        let segs = (0..n)
            .map(|_| Segment {
                ops: (0..rng.below(3))
                    .map(|_| (rng.below(3) as u8, rng.below(1000)))
                    .collect(),
                branch: (rng.below(4) != 0).then(|| {
                    let cond = (rng.below(3) != 0).then(|| rng.below(1 << 12));
                    (cond, rng.below(n as u64 + 1) as usize)
                }),
            })
            .collect();
        RandomProgram { segs }
    }

    fn ir(&self) -> String {
        let n = self.segs.len();
        let mut s = format!("insn_start 0x0, 0x0, 0x0\nmov_i64 t20, x1\nmovi_i64 t21, {FUEL:#x}\n");
        for (i, seg) in self.segs.iter().enumerate() {
            s += &format!("set_label L{i}\nsub_i64 t21, t21, $0x1\nbrcond_i64 t21, $0x0, eq, L{n}\n");
            for &(op, imm) in &seg.ops {
                let name = ["add", "xor", "mul"][op as usize];
                s += &format!("{name}_i64 t20, t20, ${imm:#x}\n");
            }
            match seg.branch {
                Some((Some(c), t)) => s += &format!("brcond_i64 t20, ${c:#x}, ltu, L{t}\n"),
                Some((None, t)) => s += &format!("br L{t}\n"),
                None => {}
            }
        }
        s + &format!("set_label L{n}\nmov_i64 x0, t20\nmov_i64 x1, t21\nexit_tb 0x0\n")
    }

    /// Runs the program on `x1`; returns `(x0, x1)` at the exit.
    fn model(&self, x1: u64) -> (u64, u64) {
        let (mut acc, mut fuel, mut at) = (x1, FUEL, 0);
        while let Some(seg) = self.segs.get(at) {
            fuel -= 1;
            if fuel == 0 {
                break;
            }
            for &(op, imm) in &seg.ops {
                acc = match op {
                    0 => acc.wrapping_add(imm),
                    1 => acc ^ imm,
                    _ => acc.wrapping_mul(imm),
                };
            }
            at = match seg.branch {
                Some((Some(c), t)) if acc < c => t,
                Some((None, t)) => t,
                _ => at + 1,
            };
        }
        (acc, fuel)
    }
}

/// Random branchy programs (forward and backward branches to any label, loops of every shape, a forward exit
/// from every segment): each module validates, runs like the model, and both forms occur.
#[test]
fn random_control_flow_matches_a_model() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut mem = FlatMemory::new(0, 8);
    let mut be = common::Validating::new(EmbeddedWasm32::new());
    for _ in 0..2000 {
        let p = RandomProgram::new(&mut rng);
        let text = p.ir();
        let tb = be.compile(&func(&text)).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for x1 in [0, 1, 500, 4000, u64::MAX] {
            let mut env = state();
            env[16..24].copy_from_slice(&x1.to_le_bytes());
            assert_eq!(run(&*tb, &mut env, &mut mem), TbExit::Exit(0), "{text}");
            assert_eq!((get(&env, 8, 8), get(&env, 16, 8)), p.model(x1), "x1 = {x1}\n{text}");
        }
    }
    let stats = be.inner.stats().0;
    println!("{stats:?}");
    assert!(
        stats.structured_loops > 500 && stats.dispatched_branches > 100,
        "{stats:?}"
    );
}

/// `movcond` at both widths, for every condition, against a zero, a nonzero constant and a temp, choosing
/// between a temp and a constant either way round, into a fresh temp and into its own first value (the
/// x86 frontend's "flags unchanged when the shift count masks to 0" is `movcond d, c, 0, d, k, eq`).
/// wasmi 2.0.0 miscompiled `local.get d; i32.const 51; local.get c; i32.eqz; select; local.set d` (it
/// stored 51 with `c` = 0), and any i32 `select` on `i32.eqz x` or `i32.ne x, 0` (whatever the output and
/// the arms): the codegen selects on `x` itself instead (`Movcond` in `codegen/ops.rs`).
#[test]
fn movcond_matches_the_ir_semantics() {
    let conds = [
        "never", "always", "eq", "ne", "lt", "ge", "le", "gt", "ltu", "geu", "leu", "gtu", "tsteq", "tstne",
    ];
    let values = [
        (4u64, 0u64),
        (4, 1),
        (0x33, 0),
        (0, 7),
        (0, 0),
        (9, 0x1_0000_0000),
        (5, 5),
        (u64::MAX, 5),
    ];
    for (ty, irty, off, len) in [("i64", Type::I64, 8, 8), ("i32", Type::I32, 24, 4)] {
        let load = if ty == "i64" {
            "mov_i64 t20, x0\nmov_i64 t21, x1"
        } else {
            "mov_i32 t20, w0\nextrl_i64_i32 t21, x1"
        };
        let global = if ty == "i64" { "x0" } else { "w0" };
        for cond in conds {
            for (c1, c2) in [("t21", "$0x0"), ("t21", "$0x5"), ("t21", "t20"), ("$0x0", "t21")] {
                for (v1, v2) in [("t20", "$0x33"), ("$0x33", "t20"), ("t20", "t21")] {
                    for out in ["t20", "t22"] {
                        let text = format!(
                            "insn_start 0x0, 0x0, 0x0\n{load}\nmovcond_{ty} {out}, {c1}, {c2}, {v1}, {v2}, {cond}\n\
                             mov_{ty} {global}, {out}\nexit_tb 0x0\n"
                        );
                        let mut be = common::Validating::new(EmbeddedWasm32::new());
                        let tb = be.compile(&func(&text)).expect("compiles");
                        let mut mem = FlatMemory::new(0, 8);
                        for (old, x1) in values {
                            let mut env = state();
                            env[off..off + len].copy_from_slice(&old.to_le_bytes()[..len]);
                            env[16..24].copy_from_slice(&x1.to_le_bytes());
                            let exit = run(&*tb, &mut env, &mut mem);
                            let (d, c) = (old & irty.mask(), x1 & irty.mask());
                            let val = |v: &str| match v {
                                "t20" => d,
                                "t21" => c,
                                "$0x0" => 0,
                                "$0x5" => 5,
                                _ => 0x33,
                            };
                            let cond = rqemu_tcg::Cond::from_name(cond).expect("condition");
                            let want = if eval_cond(cond, irty, val(c1), val(c2)) {
                                val(v1)
                            } else {
                                val(v2)
                            };
                            assert_eq!(
                                (exit, get(&env, off, len)),
                                (TbExit::Exit(0), want),
                                "{text}old = {old:#x}, x1 = {x1:#x}"
                            );
                        }
                    }
                }
            }
        }
    }
}
