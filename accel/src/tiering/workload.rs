//! Small guest-like workloads of linked TBs, for tiering tests and benchmarks on every host.
//!
//! - [`workload`]: a loop of two TBs (`A` at 0x100, `B` at 0x200) that jump to each other through `goto_tb`,
//!   and an exit TB (`C` at 0x300). The CPU state holds `pc`, a counter, an accumulator and a mixer as
//!   globals; `A` reads and writes guest memory (a [`FlatMemory`]); `B` branches inside the TB.
//!   [`reference`] computes the same in Rust.
//! - [`chain`]: a loop of three TBs `A -> B -> C -> A` whose last one loads from guest memory, faulting once
//!   every 64 iterations, and leaves to an exit TB; [`run_chain`] runs it with a small fault handler. Hot,
//!   the loop is one module whose faults and final `goto_tb` come from its third member, which is what
//!   exercises [`crate::RunExit`] attribution.

use std::sync::Arc;

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::{Cond, ExecContext, Func, Opcode, TargetDesc, TbExit, Type};

use super::{RunExit, TbId, Tiering};

/// Words of the CPU state: `pc`, `i`, `acc`, `x`, the result word, two spare words, the fault word.
pub const ENV_WORDS: usize = 8;
/// Byte offset of the fault word.
pub const FAULT_OFFSET: i32 = 56;
/// Guest address of the flat memory.
pub const MEM_BASE: u64 = 0x10_0000;
/// Bytes of flat memory.
pub const MEM_SIZE: usize = 0x200;
/// Guest pc of the first TB.
pub const ENTRY_PC: u64 = 0x100;
/// The exit of the last TB.
pub const EXIT: TbExit = TbExit::Exit(0x1234);
/// CPU-state word indexes.
pub const PC: usize = 0;
/// The loop counter.
pub const I: usize = 1;
/// The accumulator.
pub const ACC: usize = 2;
/// The mixer.
pub const X: usize = 3;
/// Written by the exit TB.
pub const RESULT: usize = 4;
/// Read and written by `A` instead of guest memory in [`workload_with`]`(false)`.
pub const SPARE: usize = 5;
/// The register [`chain`]'s `C` loads into.
pub const R: usize = 6;

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0x0000_0100_0000_01b3;

/// The TBs by guest pc, and the IR ops (`insn_start` excluded) one loop iteration executes.
pub struct Workload {
    /// `(pc, IR)` of every TB, entry first.
    pub tbs: Vec<(u64, Func)>,
    /// IR ops of `A` plus `B`'s looping path, as the frontend wrote them.
    pub ops_per_iteration: u64,
}

fn ops(f: &Func) -> u64 {
    f.ops.iter().filter(|op| op.opc != Opcode::InsnStart).count() as u64
}

/// Builds the workload.
pub fn workload() -> Workload {
    workload_with(true)
}

/// Builds the workload; without `guest_memory`, `A`'s guest load and store become host `ld`/`st` of the
/// spare CPU-state word [`SPARE`] (a loop on registers only, which isolates code quality from the memory
/// path).
pub fn workload_with(guest_memory: bool) -> Workload {
    use Type::I64;
    let mut t = TargetDesc::new(FAULT_OFFSET);
    t.env_size = ENV_WORDS * 8;
    let g: Vec<usize> = ["pc", "i", "acc", "x", "result"]
        .iter()
        .enumerate()
        .map(|(w, name)| t.add_global(name, I64, 8 * w as i32))
        .collect();
    let t = Arc::new(t);
    let new = |t: &Arc<TargetDesc>| Func::new(t.clone());
    let glob = |f: &Func, w: usize| f.global(g[w]);
    let mmu = MmuIdx::default();

    // A: acc = acc * K1 + i; x ^= acc >> 13; mem[(i & 63) * 8] += acc (plus a few more mixing ops).
    let mut a = new(&t);
    let (pc, i, acc, x) = (glob(&a, PC), glob(&a, I), glob(&a, ACC), glob(&a, X));
    let (t0, t1, addr, m) = (a.new_temp(I64), a.new_temp(I64), a.new_temp(I64), a.new_temp(I64));
    let (k1, k13, k63, k3, base) = (
        a.constant(I64, K1),
        a.constant(I64, 13),
        a.constant(I64, 63),
        a.constant(I64, 3),
        a.constant(I64, MEM_BASE),
    );
    a.insn_start([ENTRY_PC, 0, 0]);
    a.mul(t0, acc, k1);
    a.add(acc, t0, i);
    a.shr(t1, acc, k13);
    a.xor(x, x, t1);
    a.insn_start([ENTRY_PC + 4, 0, 0]);
    a.and(addr, i, k63);
    a.shl(addr, addr, k3);
    a.add(addr, addr, base);
    let env = a.env();
    let spare = 8 * SPARE as i32;
    if guest_memory {
        a.qemu_ld(m, addr, MemOp::LEUQ, mmu);
    } else {
        a.load(Opcode::Ld, m, env, spare);
    }
    a.add(m, m, acc);
    if guest_memory {
        a.qemu_st(m, addr, MemOp::LEUQ, mmu);
    } else {
        a.store(Opcode::St, m, env, spare);
    }
    a.insn_start([ENTRY_PC + 8, 0, 0]);
    a.sub(t0, x, m);
    a.setcond(Cond::Ltu, t1, t0, acc);
    a.add(x, x, t1);
    a.movi(pc, 0x200);
    a.goto_tb(0);

    // B: acc = rotl(acc, 5) ^ x; x = x * K2; i -= 1; loop to A or leave to C.
    let mut b = new(&t);
    let (pc, i, acc, x) = (glob(&b, PC), glob(&b, I), glob(&b, ACC), glob(&b, X));
    let (t0, done) = (b.new_temp(I64), b.new_label());
    let (k5, k2, one, zero) = (
        b.constant(I64, 5),
        b.constant(I64, K2),
        b.constant(I64, 1),
        b.constant(I64, 0),
    );
    b.insn_start([0x200, 0, 0]);
    b.rotl(t0, acc, k5);
    b.xor(acc, t0, x);
    b.mul(x, x, k2);
    b.sub(i, i, one);
    b.brcond(Cond::Eq, i, zero, done);
    b.movi(pc, ENTRY_PC);
    b.goto_tb(0);
    b.set_label(done);
    b.movi(pc, 0x300);
    b.goto_tb(1);
    // B's looping path: everything but the two ops after `done` and the label.
    let b_loop = ops(&b) - 3;

    // C: result = acc ^ x; exit.
    let mut c = new(&t);
    let (acc, x, result) = (glob(&c, ACC), glob(&c, X), glob(&c, RESULT));
    c.insn_start([0x300, 0, 0]);
    c.xor(result, acc, x);
    c.exit_tb(0x1234);

    Workload {
        ops_per_iteration: ops(&a) + b_loop,
        tbs: vec![(ENTRY_PC, a), (0x200, b), (0x300, c)],
    }
}

/// The CPU state before a run of `iterations` (at least 1) loop iterations.
pub fn initial_env(iterations: u64) -> [u64; ENV_WORDS] {
    let mut env = [0u64; ENV_WORDS];
    env[PC] = ENTRY_PC;
    env[I] = iterations.max(1);
    env[ACC] = 0x1234_5678;
    env[X] = 0xdead_beef;
    env
}

/// A fresh guest memory for the workload.
pub fn memory() -> FlatMemory {
    FlatMemory::new(MEM_BASE, MEM_SIZE)
}

/// What the workload computes from `env` on `mem` (bytes at [`MEM_BASE`]), in plain Rust.
pub fn reference(env: &mut [u64; ENV_WORDS], mem: &mut [u8]) {
    reference_with(true, env, mem)
}

/// What [`workload_with`]`(guest_memory)` computes, in plain Rust.
pub fn reference_with(guest_memory: bool, env: &mut [u64; ENV_WORDS], mem: &mut [u8]) {
    loop {
        // A
        env[ACC] = env[ACC].wrapping_mul(K1).wrapping_add(env[I]);
        env[X] ^= env[ACC] >> 13;
        let at = ((env[I] & 63) * 8) as usize;
        let m = if guest_memory {
            let mut word = [0u8; 8];
            word.copy_from_slice(&mem[at..at + 8]);
            let m = u64::from_le_bytes(word).wrapping_add(env[ACC]);
            mem[at..at + 8].copy_from_slice(&m.to_le_bytes());
            m
        } else {
            env[SPARE] = env[SPARE].wrapping_add(env[ACC]);
            env[SPARE]
        };
        env[X] = env[X].wrapping_add(u64::from(env[X].wrapping_sub(m) < env[ACC]));
        // B
        env[ACC] = env[ACC].rotate_left(5) ^ env[X];
        env[X] = env[X].wrapping_mul(K2);
        env[I] = env[I].wrapping_sub(1);
        if env[I] == 0 {
            break;
        }
    }
    // C
    env[RESULT] = env[ACC] ^ env[X];
    env[PC] = 0x300;
}

/// Guest pcs of [`chain`]'s TBs: `A`, `B`, `C`, `C2` (the tail of `C`, from its second instruction, which the
/// fault handler resumes at) and the exit TB `D`.
pub const CHAIN_PCS: [u64; 5] = [0x100, 0x200, 0x300, 0x304, 0x400];
/// The pc of `C`'s loading instruction (its instruction 0).
pub const CHAIN_LOAD_PC: u64 = 0x300;

/// Builds the chain workload:
///
/// ```text
/// A  0x100: acc = acc * K1 + i; x ^= acc >> 13;                      goto_tb 0 (B)
/// B  0x200: acc = rotl(acc, 5) ^ x; x *= K2;                         goto_tb 0 (C)
/// C  0x300: r = mem64[MEM_BASE + (i & 63) * 8 - 8]     (faults when i & 63 == 0: below the memory)
///    0x304: mem64[MEM_BASE + (i & 7) * 8] += acc; acc += r; i -= 1; i == 0 ? goto_tb 1 (D) : goto_tb 0 (A)
/// C2 0x304: the same as C's second instruction
/// D  0x400: result = acc ^ x;                                        exit_tb 0x1234
/// ```
pub fn chain() -> Vec<(u64, Func)> {
    use Type::I64;
    let mut t = TargetDesc::new(FAULT_OFFSET);
    t.env_size = ENV_WORDS * 8;
    let names = ["pc", "i", "acc", "x", "result", "spare", "r"];
    let g: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(w, name)| t.add_global(name, I64, 8 * w as i32))
        .collect();
    let t = Arc::new(t);
    let mmu = MmuIdx::default();
    let [a_pc, b_pc, c_pc, c2_pc, d_pc] = CHAIN_PCS;

    let mut a = Func::new(t.clone());
    let (pc, i, acc, x) = (a.global(g[PC]), a.global(g[I]), a.global(g[ACC]), a.global(g[X]));
    let (t0, k1, k13) = (a.new_temp(I64), a.constant(I64, K1), a.constant(I64, 13));
    a.insn_start([a_pc, 0, 0]);
    a.mul(t0, acc, k1);
    a.add(acc, t0, i);
    a.shr(t0, acc, k13);
    a.xor(x, x, t0);
    a.movi(pc, b_pc);
    a.goto_tb(0);

    let mut b = Func::new(t.clone());
    let (pc, acc, x) = (b.global(g[PC]), b.global(g[ACC]), b.global(g[X]));
    let (t0, k5, k2) = (b.new_temp(I64), b.constant(I64, 5), b.constant(I64, K2));
    b.insn_start([b_pc, 0, 0]);
    b.rotl(t0, acc, k5);
    b.xor(acc, t0, x);
    b.mul(x, x, k2);
    b.movi(pc, c_pc);
    b.goto_tb(0);

    // C's second instruction, alone in C2 or after the load in C.
    let tail = |f: &mut Func| {
        let (pc, i, acc, r) = (f.global(g[PC]), f.global(g[I]), f.global(g[ACC]), f.global(g[R]));
        let (addr, m, done) = (f.new_temp(I64), f.new_temp(I64), f.new_label());
        let (k7, k3, base, one, zero) = (
            f.constant(I64, 7),
            f.constant(I64, 3),
            f.constant(I64, MEM_BASE),
            f.constant(I64, 1),
            f.constant(I64, 0),
        );
        f.insn_start([c2_pc, 0, 0]);
        f.and(addr, i, k7);
        f.shl(addr, addr, k3);
        f.add(addr, addr, base);
        f.qemu_ld(m, addr, MemOp::LEUQ, mmu);
        f.add(m, m, acc);
        f.qemu_st(m, addr, MemOp::LEUQ, mmu);
        f.add(acc, acc, r);
        f.sub(i, i, one);
        f.brcond(Cond::Eq, i, zero, done);
        f.movi(pc, a_pc);
        f.goto_tb(0);
        f.set_label(done);
        f.movi(pc, d_pc);
        f.goto_tb(1);
    };

    let mut c = Func::new(t.clone());
    let (i, r) = (c.global(g[I]), c.global(g[R]));
    let addr = c.new_temp(I64);
    let (k63, k3, base) = (
        c.constant(I64, 63),
        c.constant(I64, 3),
        c.constant(I64, MEM_BASE.wrapping_sub(8)),
    );
    c.insn_start([c_pc, 0, 0]);
    c.and(addr, i, k63);
    c.shl(addr, addr, k3);
    c.add(addr, addr, base);
    c.qemu_ld(r, addr, MemOp::LEUQ, mmu);
    tail(&mut c);

    let mut c2 = Func::new(t.clone());
    tail(&mut c2);

    let mut d = Func::new(t);
    let (acc, x, result) = (d.global(g[ACC]), d.global(g[X]), d.global(g[RESULT]));
    d.insn_start([d_pc, 0, 0]);
    d.xor(result, acc, x);
    d.exit_tb(0x1234);

    vec![(a_pc, a), (b_pc, b), (c_pc, c), (c2_pc, c2), (d_pc, d)]
}

/// What a [`run_chain`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainRun {
    /// The final exit.
    pub exit: Option<TbExit>,
    /// Each fault: the TB it was attributed to and its guest pc (restored from `insn_start`).
    pub faults: Vec<(TbId, u64)>,
    /// Entries from the loop (TB runs `run_until_exit` counted).
    pub runs: u64,
}

/// Runs [`chain`]'s TBs (`ids` by pc) from `A` until an exit other than a fault, handling each fault the way
/// an emulated device access would: the guest pc is restored from the faulting TB's `insn_start` words, the
/// load's register gets `pc ^ x`, and execution resumes at the next instruction (`C2`). A fault attributed
/// to the wrong TB restores the wrong pc, and the lookup of the resume point fails.
///
/// # Safety
/// `env` must point to a CPU state of at least [`ENV_WORDS`] words, laid out as [`chain`]'s target says,
/// and stay valid for the run; `ctx.env` is `env`.
pub unsafe fn run_chain(t: &mut Tiering, ids: &[(u64, TbId)], ctx: &mut ExecContext<'_>) -> ChainRun {
    let words = ctx.env.cast::<u64>();
    let lookup_pc = |pc: u64| ids.iter().find(|(p, _)| *p == pc).map(|(_, id)| *id);
    let mut lookup = |env: *mut u8| {
        // SAFETY: `env` is the live CPU state (the caller's promise).
        lookup_pc(unsafe { env.cast::<u64>().read() })
    };
    let mut out = ChainRun::default();
    let mut next = lookup_pc(CHAIN_PCS[0]);
    while let Some(tb) = next {
        // SAFETY: the caller's promise.
        let (exit, runs) = unsafe { t.run_until_exit(tb, ctx, &mut lookup, u64::MAX) };
        out.runs += runs;
        let Some(RunExit {
            exit: TbExit::Fault { insn },
            tb: from,
        }) = exit
        else {
            out.exit = exit.map(|e| e.exit);
            break;
        };
        let pc = t.insn_start(from, insn).map_or(u64::MAX, |w| w[0]);
        out.faults.push((from, pc));
        // SAFETY: the words are inside the CPU state (the caller's promise).
        unsafe {
            words.add(FAULT_OFFSET as usize / 8).write(0);
            words.add(R).write(pc ^ words.add(X).read());
            words.add(PC).write(pc.wrapping_add(4));
        }
        next = lookup_pc(pc.wrapping_add(4));
        if next.is_none() {
            out.exit = exit.map(|e| e.exit);
        }
    }
    out
}
