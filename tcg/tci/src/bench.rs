//! The tci benchmark: dispatch speed on a fixed loop and translation cost on a frontend-like TB.
//!
//! - **dispatch**: one TB whose loop body is a mix a translated guest loop would have (arithmetic, shifts,
//!   `setcond`/`movcond`, host `ld`/`st` on `env`, a `qemu_ld`/`qemu_st` to a flat memory) runs
//!   [`LOOP_ITERATIONS`] times; the IR ops executed are the body's ops (markers excluded) times the
//!   iterations.
//! - **tb run**: a one-instruction TB as `prepare` leaves it, run [`ENTRY_RUNS`] times: the cost of entering
//!   and leaving a TB, which short TBs pay often.
//! - **translate**: a ~200-op TB as a frontend emits it (globals, `insn_start`s, flag computations, guest
//!   memory, a helper, a conditional exit) goes through [`rqemu_tcg::prepare::prepare`] and
//!   [`Tci::compile_tb`] [`TRANSLATE_REPS`] times; reported per frontend op, and compile alone per prepared op.
//!
//! Each measurement is the fastest of [`REPEATS`]. No `std::time` here: wasm32 has no clock of its own, so
//! the caller passes one.

use core::fmt;
use std::sync::Arc;

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::{CompiledTb, Cond, ExecContext, Func, HelperFlags, HelperInfo, Opcode, TargetDesc, TbExit, Temp, Type};

use crate::Tci;

/// Iterations of the dispatch loop per run.
pub const LOOP_ITERATIONS: u64 = 2_000_000;
/// Every measurement is repeated this many times and the fastest counts: the machine may be shared.
pub const REPEATS: usize = 5;
/// Translations of the frontend-like TB per measurement.
pub const TRANSLATE_REPS: usize = 400;
/// Runs of the short TB that measures entry and exit, per measurement.
pub const ENTRY_RUNS: u64 = 300_000;

/// Guest address and size of the flat memory the loop reads and writes.
const MEM_BASE: u64 = 0x10_0000;
const MEM_SIZE: usize = 0x1000;
/// Size of the fake CPU state, in `u64`s.
const ENV_WORDS: usize = 64;
/// Byte offset of the fault word in the fake CPU state.
const FAULT_OFFSET: i32 = 8 * (ENV_WORDS as i32 - 1);

/// What [`run`] measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// IR ops executed by the fastest dispatch run.
    pub dispatch_ops: u64,
    /// Seconds the fastest dispatch run took.
    pub dispatch_secs: f64,
    /// IR ops of the short TB that [`ENTRY_RUNS`] runs time.
    pub entry_ops: usize,
    /// Seconds for [`ENTRY_RUNS`] runs of the short TB.
    pub entry_secs: f64,
    /// Ops of the frontend-like TB before `prepare`.
    pub translate_ops_in: usize,
    /// Ops after `prepare`.
    pub translate_ops_out: usize,
    /// Seconds for [`TRANSLATE_REPS`] prepare + compile.
    pub translate_secs: f64,
    /// Seconds for [`TRANSLATE_REPS`] compiles of the prepared TB.
    pub compile_secs: f64,
    /// Bytes of bytecode of the prepared TB.
    pub code_size: usize,
}

impl BenchReport {
    /// Millions of IR ops executed per second.
    pub fn dispatch_mops(&self) -> f64 {
        self.dispatch_ops as f64 / self.dispatch_secs / 1e6
    }

    /// Nanoseconds per run of the short TB, entry and exit included.
    pub fn entry_ns(&self) -> f64 {
        self.entry_secs * 1e9 / ENTRY_RUNS as f64
    }

    /// Nanoseconds of prepare + compile per frontend op.
    pub fn translate_ns_per_op(&self) -> f64 {
        self.translate_secs * 1e9 / (TRANSLATE_REPS * self.translate_ops_in) as f64
    }

    /// Nanoseconds of compile per prepared op.
    pub fn compile_ns_per_op(&self) -> f64 {
        self.compile_secs * 1e9 / (TRANSLATE_REPS * self.translate_ops_out) as f64
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tci: dispatch {:.0} Mops/s ({} IR ops executed in {:.4} s)",
            self.dispatch_mops(),
            self.dispatch_ops,
            self.dispatch_secs
        )?;
        writeln!(
            f,
            "tci: tb run {:.1} ns ({}-op TB prepared from a guest instruction, entry and exit included)",
            self.entry_ns(),
            self.entry_ops
        )?;
        writeln!(
            f,
            "tci: translate {:.0} ns/op (prepare + compile, {} ops)",
            self.translate_ns_per_op(),
            self.translate_ops_in
        )?;
        write!(
            f,
            "tci: compile {:.0} ns/op (compile only, {} prepared ops, {} bytes of bytecode)",
            self.compile_ns_per_op(),
            self.translate_ops_out,
            self.code_size
        )
    }
}

/// Runs the benchmarks; `clock` returns monotonic seconds.
///
/// # Panics
/// When a benchmark TB does not compile or does not end as expected: that is a tci or pipeline bug.
pub fn run(clock: &mut dyn FnMut() -> f64) -> BenchReport {
    let (dispatch_ops, dispatch_secs) = dispatch(clock);
    let (entry_ops, entry_secs) = entry(clock);
    let t = translate(clock);
    BenchReport {
        dispatch_ops,
        dispatch_secs,
        entry_ops,
        entry_secs,
        translate_ops_in: t.ops_in,
        translate_ops_out: t.ops_out,
        translate_secs: t.secs,
        compile_secs: t.compile_secs,
        code_size: t.code_size,
    }
}

/// What [`translate`] measured.
struct Translation {
    ops_in: usize,
    ops_out: usize,
    secs: f64,
    compile_secs: f64,
    code_size: usize,
}

fn target() -> Arc<TargetDesc> {
    Arc::new(TargetDesc::new(FAULT_OFFSET))
}

/// The dispatch loop TB, and how many IR ops one iteration executes.
pub fn dispatch_tb() -> (Func, u64) {
    use Type::{I32, I64};
    let mut f = Func::new(target());
    let env = f.env();
    let k = |f: &mut Func, v: u64| f.constant(I64, v);
    let (i, acc, x, m, a) = (
        f.new_temp(I64),
        f.new_temp(I64),
        f.new_temp(I64),
        f.new_temp(I64),
        f.new_temp(I64),
    );
    let t: Vec<Temp> = (0..8).map(|_| f.new_temp(I64)).collect();
    let (y, y2) = (f.new_temp(I32), f.new_temp(I32));
    let (zero, one, three, seven) = (k(&mut f, 0), k(&mut f, 1), k(&mut f, 3), k(&mut f, 7));
    let (k1, k2) = (k(&mut f, 0x9e37_79b9_7f4a_7c15), k(&mut f, 0x0000_0100_0000_01b3));
    let (mask, base) = (k(&mut f, (MEM_SIZE - 8) as u64 & !7), k(&mut f, MEM_BASE));
    let five = f.constant(I32, 5);
    let top = f.new_label();
    let mmu = MmuIdx::default();

    f.insn_start([0x1000, 0, 0]);
    f.load(Opcode::Ld, i, env, 0);
    f.movi(acc, 0x1234_5678);
    f.set_label(top);
    let body_start = f.ops.len();
    f.insn_start([0x1004, 0, 0]);
    f.load(Opcode::Ld, x, env, 8);
    f.load(Opcode::Ld, y, env, 16);
    f.add(t[0], x, acc);
    f.xor(t[1], t[0], k1);
    f.shl(t[2], t[1], three);
    f.shr(t[3], t[0], seven);
    f.and(t[4], t[2], t[3]);
    f.sub(t[5], t[4], i);
    f.setcond(Cond::Ltu, t[6], t[5], x);
    f.movcond(Cond::Ne, t[7], t[6], zero, t[5], t[0]);
    f.or(acc, acc, t[7]);
    f.insn_start([0x1008, 0, 0]);
    f.and(a, acc, mask);
    f.add(a, a, base);
    f.qemu_ld(m, a, MemOp::LEUQ, mmu);
    f.add(m, m, t[7]);
    f.qemu_st(m, a, MemOp::LEUQ, mmu);
    f.insn_start([0x100c, 0, 0]);
    f.extrl_i64_i32(y2, m);
    f.add(y, y, y2);
    f.rotl(y, y, five);
    f.store(Opcode::St, y, env, 16);
    f.store(Opcode::St, m, env, 8);
    f.sar(t[1], m, three);
    f.xor(acc, acc, t[1]);
    f.mul(t[2], t[1], k2);
    f.add(acc, acc, t[2]);
    f.ext32u(t[3], acc);
    f.deposit(acc, acc, t[3], 8, 16);
    f.sub(i, i, one);
    f.brcond(Cond::Ne, i, zero, top);
    let body_ops = f.ops[body_start..]
        .iter()
        .filter(|op| op.opc != Opcode::InsnStart)
        .count() as u64;
    f.store(Opcode::St, acc, env, 24);
    f.exit_tb(0);
    (f, body_ops)
}

/// Seconds of the fastest of [`REPEATS`] calls of `work`.
fn fastest(clock: &mut dyn FnMut() -> f64, mut work: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        let start = clock();
        work();
        best = best.min(clock() - start);
    }
    best
}

/// Times the dispatch loop: (IR ops executed, seconds).
fn dispatch(clock: &mut dyn FnMut() -> f64) -> (u64, f64) {
    let (f, body_ops) = dispatch_tb();
    let tb = Tci::new().compile_tb(&f).expect("the dispatch TB compiles");
    let mut mem = FlatMemory::new(MEM_BASE, MEM_SIZE);
    let secs = fastest(clock, || {
        let mut env = [0u64; ENV_WORDS];
        env[0] = LOOP_ITERATIONS;
        let mut ctx = ExecContext {
            env: env.as_mut_ptr().cast(),
            mem: &mut mem,
        };
        // SAFETY: `env` is large enough for every offset the TB uses and outlives the run; no helpers.
        let exit = unsafe { tb.run(&mut ctx) };
        assert_eq!(exit, TbExit::Exit(0), "the dispatch TB ran to its end");
    });
    (body_ops * LOOP_ITERATIONS, secs)
}

/// A TB of one guest instruction as `prepare` leaves it: load two registers, add, store result and flags,
/// update pc, leave through `goto_tb`.
pub fn entry_tb() -> Func {
    use Type::{I32, I64};
    let mut f = Func::new(target());
    let env = f.env();
    let (a, b, op) = (f.new_ebb_temp(I64), f.new_ebb_temp(I64), f.new_ebb_temp(I32));
    f.insn_start([0x1000, 0, 0]);
    f.load(Opcode::Ld, a, env, 0);
    f.load(Opcode::Ld, b, env, 8);
    f.add(a, a, b);
    f.store(Opcode::St, a, env, 0);
    f.store(Opcode::St, b, env, 16);
    f.store(Opcode::St, a, env, 24);
    f.movi(op, 1);
    f.store(Opcode::St, op, env, 32);
    f.movi(a, 0x1003);
    f.store(Opcode::St, a, env, 40);
    f.goto_tb(0);
    f
}

/// Runs [`entry_tb`] [`ENTRY_RUNS`] times: (its IR ops, seconds).
fn entry(clock: &mut dyn FnMut() -> f64) -> (usize, f64) {
    let f = entry_tb();
    let tb = Tci::new().compile_tb(&f).expect("the entry TB compiles");
    let mut mem = FlatMemory::new(MEM_BASE, 8);
    let mut env = [1u64; ENV_WORDS];
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem: &mut mem,
    };
    let secs = fastest(clock, || {
        for _ in 0..ENTRY_RUNS {
            // SAFETY: `env` is large enough for every offset the TB uses and outlives the runs.
            let exit = unsafe { tb.run(&mut ctx) };
            assert_eq!(exit, TbExit::GotoTb(0));
        }
    });
    let ops = f.ops.iter().filter(|op| op.opc != Opcode::InsnStart).count();
    (ops, secs)
}

unsafe extern "C" fn bench_helper(_env: *mut u8, a: u64, b: u64, _: u64, _: u64, _: u64) -> u64 {
    a.rotate_left(7) ^ b
}

/// A TB as a frontend emits it: 32 guest instructions over 16 registers and flags, with guest memory, a
/// helper, and a conditional exit through both `goto_tb` slots. Deterministic.
pub fn frontend_tb() -> Func {
    use Type::{I32, I64};
    let mut t = TargetDesc::new(FAULT_OFFSET);
    let regs: Vec<usize> = (0..16)
        .map(|r: i32| t.add_global(&format!("r{r}"), I64, 8 * r))
        .collect();
    let cc_src = t.add_global("cc_src", I64, 8 * 16);
    let cc_dst = t.add_global("cc_dst", I64, 8 * 17);
    let cc_op = t.add_global("cc_op", I32, 8 * 18);
    let pc = t.add_global("pc", I64, 8 * 19);
    let helper = t.helpers.register(HelperInfo {
        name: "bench_helper",
        func: bench_helper,
        flags: HelperFlags::READS_GLOBALS | HelperFlags::WRITES_GLOBALS | HelperFlags::MAY_FAULT,
        args: &[I64, I64],
        ret: Some(I64),
    });
    let mut f = Func::new(Arc::new(t));
    let g = |f: &Func, i: usize| f.global(i);
    let (cc_src, cc_dst, cc_op, pc) = (g(&f, cc_src), g(&f, cc_dst), g(&f, cc_op), g(&f, pc));
    let mmu = MmuIdx::default();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let taken = f.new_label();
    let mut guest_pc = 0x40_1000u64;
    for insn in 0..32 {
        f.insn_start([guest_pc, 0, 0]);
        let (rd, rs) = (g(&f, regs[next(16) as usize]), g(&f, regs[next(16) as usize]));
        let tmp = f.new_ebb_temp(I64);
        match insn % 5 {
            // add rd, rs: result and flags
            0 => {
                f.mov(cc_src, rs);
                f.add(rd, rd, rs);
                f.mov(cc_dst, rd);
                f.movi(cc_op, 1);
            }
            // and rd, imm; test-style flags with a setcond
            1 => {
                let imm = f.constant(I64, next(1 << 20));
                f.and(rd, rd, imm);
                f.mov(cc_dst, rd);
                let z = f.constant(I64, 0);
                f.setcond(Cond::Eq, tmp, rd, z);
                f.mov(cc_src, tmp);
                f.movi(cc_op, 2);
            }
            // mov rd, [rs + disp]
            2 => {
                let disp = f.constant(I64, 8 * next(32));
                f.add(tmp, rs, disp);
                f.qemu_ld(rd, tmp, MemOp::LEUQ, mmu);
            }
            // mov [rs + disp], rd; shift rd
            3 => {
                let disp = f.constant(I64, 8 * next(32));
                f.add(tmp, rs, disp);
                f.qemu_st(rd, tmp, MemOp::LEUQ, mmu);
                let sh = f.constant(I64, next(64));
                f.shl(rd, rd, sh);
            }
            // cmov-like: rd = rs < rd ? rs : rd, then a helper
            _ => {
                f.sub(tmp, rd, rs);
                f.mov(cc_dst, tmp);
                f.mov(cc_src, rs);
                f.movcond(Cond::Lt, rd, rs, rd, rs, rd);
                f.call(helper, Some(tmp), &[rd, rs]);
                f.xor(rd, rd, tmp);
            }
        }
        guest_pc += 4;
    }
    f.insn_start([guest_pc, 0, 0]);
    let z = f.constant(I64, 0);
    f.brcond(Cond::Eq, cc_dst, z, taken);
    f.movi(pc, guest_pc + 2);
    f.goto_tb(0);
    f.set_label(taken);
    f.movi(pc, 0x40_0000);
    f.goto_tb(1);
    f
}

/// Times prepare + compile, then compile alone, of [`frontend_tb`].
fn translate(clock: &mut dyn FnMut() -> f64) -> Translation {
    let template = frontend_tb();
    let mut tci = Tci::new();
    let mut prepared = template.clone();
    rqemu_tcg::prepare::prepare(&mut prepared).expect("the frontend TB is valid IR");
    let mut translate_secs = f64::INFINITY;
    for _ in 0..REPEATS {
        // `prepare` works in place: clone outside the timed region.
        let mut funcs: Vec<Func> = (0..TRANSLATE_REPS).map(|_| template.clone()).collect();
        let start = clock();
        for f in &mut funcs {
            rqemu_tcg::prepare::prepare(f).expect("the frontend TB is valid IR");
            tci.compile_tb(f).expect("the prepared TB compiles");
        }
        translate_secs = translate_secs.min(clock() - start);
    }
    let mut code_size = 0;
    let compile_secs = fastest(clock, || {
        for _ in 0..TRANSLATE_REPS {
            code_size = tci.compile_tb(&prepared).expect("the prepared TB compiles").code_size();
        }
    });
    Translation {
        ops_in: template.ops.len(),
        ops_out: prepared.ops.len(),
        secs: translate_secs,
        compile_secs,
        code_size,
    }
}
