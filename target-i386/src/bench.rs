//! The x86-64 guest CPU benchmark of issue 4 (`cargo xtask bench cpu`): fixed 64-bit flat-mode kernels
//! (an ALU loop, a memcpy-style loop twice, once with source and destination pages aliasing in the
//! direct-mapped TLB, an FNV-1a hash loop) run on the execution loop (`rqemu_accel::CpuExec`)
//! and softmmu, timed in guest MIPS, plus the translation cost (frontend + optimizer, ns per guest
//! instruction).
//!
//! Shared by the native runner (`examples/cpu_bench.rs`) and the wasm32 test module (`bench_cpu` in
//! `tests/wasm`): no clock of its own (the caller passes one, seconds as `f64`) and no backend of its own (the
//! caller builds each [`CpuExec`]), so it builds for wasm32 with `--no-default-features`.
//!
//! The kernels are machine code (encoded once with iced-x86's assembler; the unit test below re-assembles
//! them), their loop counts taken from the initial registers so the code does not depend on the scale.

use std::fmt::Write as _;

use rqemu_accel::{CpuExec, CpuOps, DisasBase, StopReason};
use rqemu_softmmu::{AddressSpace, RamBlock};
use rqemu_tcg::Func;

use crate::cpu::excp;
use crate::{X86Cpu, X86CpuState, STOP_EXCEPTION};

/// Guest RAM (mapped at 0).
pub const RAM_SIZE: u64 = 0x40_0000;
/// Where the kernel's code is loaded and starts.
pub const CODE: u64 = 0x1000;
/// The source buffer (filled by [`src_data`]).
pub const SRC: u64 = 0x10_0000;
/// The memcpy kernel's destination in its code template ([`MEMCPY`]): 1 MiB after [`SRC`], so with the
/// 256-entry direct-mapped TLB every destination page evicts its source page (the `memcpy-alias` kernel).
pub const DST: u64 = 0x20_0000;
/// The `memcpy` kernel's destination: after the source's TLB indices, so no page evicts another.
pub const DST_APART: u64 = 0x20_8000;
/// Where [`MEMCPY`] holds the destination (the imm32 of `mov edi, DST`).
const MEMCPY_DST_AT: usize = 6;
/// Qwords per buffer (32 KiB).
pub const BUF_QWORDS: u64 = 4096;

/// `top: add rax,rcx; xor rbx,rax; rol rbx,3; imul rdx,rax,7; sub rsi,rbx; dec rcx; jne top; ud2`
/// (rcx = iterations).
const ALU: &[u8] = &[
    0x48, 0x01, 0xc8, 0x48, 0x31, 0xc3, 0x48, 0xc1, 0xc3, 0x03, 0x48, 0x6b, 0xd0, 0x07, 0x48, 0x29, 0xde, 0x48, 0xff,
    0xc9, 0x75, 0xea, 0x0f, 0x0b,
];
/// `outer: mov esi,SRC; mov edi,DST; mov ecx,BUF_QWORDS; inner: mov rax,[rsi]; mov [rdi],rax; add rsi,8;
/// add rdi,8; dec rcx; jne inner; dec r8; jne outer; ud2` (r8 = copies).
const MEMCPY: &[u8] = &[
    0xbe, 0x00, 0x00, 0x10, 0x00, 0xbf, 0x00, 0x00, 0x20, 0x00, 0xb9, 0x00, 0x10, 0x00, 0x00, 0x48, 0x8b, 0x06, 0x48,
    0x89, 0x07, 0x48, 0x83, 0xc6, 0x08, 0x48, 0x83, 0xc7, 0x08, 0x48, 0xff, 0xc9, 0x75, 0xed, 0x49, 0xff, 0xc8, 0x75,
    0xd9, 0x0f, 0x0b,
];
/// `outer: mov esi,SRC; mov ecx,8*BUF_QWORDS; inner: movzx edx,byte [rsi]; xor rax,rdx; imul rax,r9; inc rsi;
/// dec rcx; jne inner; dec r8; jne outer; ud2` (r8 = hashes, r9 = FNV prime, rax = FNV offset basis).
const FNV1A: &[u8] = &[
    0xbe, 0x00, 0x00, 0x10, 0x00, 0xb9, 0x00, 0x80, 0x00, 0x00, 0x0f, 0xb6, 0x16, 0x48, 0x31, 0xd0, 0x49, 0x0f, 0xaf,
    0xc1, 0x48, 0xff, 0xc6, 0x48, 0xff, 0xc9, 0x75, 0xee, 0x49, 0xff, 0xc8, 0x75, 0xdf, 0x0f, 0x0b,
];

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x100_0000_01b3;
const RAX: usize = 0;
const RCX: usize = 1;
const R8: usize = 8;
const R9: usize = 9;

/// A kernel: its code, its initial registers, how many guest instructions it executes, and the rax it must
/// end with.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub code: Vec<u8>,
    pub regs: Vec<(usize, u64)>,
    pub insns: u64,
    pub rax: u64,
}

/// The source buffer's bytes.
pub fn src_data() -> Vec<u8> {
    (0..8 * BUF_QWORDS).map(|i| (i * 131 % 251) as u8).collect()
}

/// The kernels; `scale` multiplies their loop counts (1: about 14, 2.5, 2.5 and 10 million instructions).
pub fn kernels(scale: u64) -> Vec<Kernel> {
    let alu_iters = 2_000_000 * scale;
    let copies = 100 * scale;
    let hashes = 50 * scale;
    let bytes = 8 * BUF_QWORDS;
    let data = src_data();
    let last_qword = u64::from_le_bytes(data[data.len() - 8..].try_into().expect("8 bytes"));
    let mut fnv_rax = FNV_BASIS;
    for _ in 0..hashes {
        for &b in &data {
            fnv_rax = (fnv_rax ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    let n = u128::from(alu_iters);
    let memcpy_to = |dst: u64| {
        let mut code = MEMCPY.to_vec();
        code[MEMCPY_DST_AT..MEMCPY_DST_AT + 4].copy_from_slice(&(dst as u32).to_le_bytes());
        code
    };
    let memcpy_insns = copies * (3 + 6 * BUF_QWORDS + 2) + 1;
    vec![
        Kernel {
            name: "alu",
            code: ALU.to_vec(),
            regs: vec![(RCX, alu_iters)],
            insns: 7 * alu_iters + 1,
            rax: (n * (n + 1) / 2) as u64,
        },
        Kernel {
            name: "memcpy",
            code: memcpy_to(DST_APART),
            regs: vec![(R8, copies)],
            insns: memcpy_insns,
            rax: last_qword,
        },
        Kernel {
            name: "memcpy-alias",
            code: memcpy_to(DST),
            regs: vec![(R8, copies)],
            insns: memcpy_insns,
            rax: last_qword,
        },
        Kernel {
            name: "fnv1a",
            code: FNV1A.to_vec(),
            regs: vec![(R8, hashes), (R9, FNV_PRIME), (RAX, FNV_BASIS)],
            insns: hashes * (2 + 6 * bytes + 2) + 1,
            rax: fnv_rax,
        },
    ]
}

/// A CPU in 64-bit flat mode at [`CODE`] over [`RAM_SIZE`] of RAM holding the kernel and [`src_data`].
pub fn machine(k: &Kernel) -> X86Cpu {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(RAM_SIZE).expect("RAM"));
    space.map_ram(0, RAM_SIZE, ram, 0).expect("maps");
    let mut state = X86CpuState::new_long_mode(CODE);
    for &(r, v) in &k.regs {
        state.regs[r] = v;
    }
    let mut cpu = X86Cpu::new(space, state);
    // The kernels end with ud2 and there is no IDT: the loop stops on it.
    cpu.set_exception_mode(crate::machine::ExceptionMode::Stop);
    cpu.memory().with(|m| {
        let space = m.space_mut();
        space.write_bytes(CODE, &k.code);
        space.write_bytes(SRC, &src_data());
    });
    cpu
}

/// One timed run of a kernel.
#[derive(Clone, Debug)]
pub struct Run {
    pub secs: f64,
    /// Whether it ended at its `ud2` with the expected rax.
    pub ok: bool,
    /// The loop's and the tiering's counters.
    pub stats: String,
}

impl Run {
    /// Guest MIPS of this run of `k`.
    pub fn mips(&self, k: &Kernel) -> f64 {
        k.insns as f64 / self.secs / 1e6
    }
}

/// Runs `k` once on `ex` (a fresh machine), timed with `clock`.
pub fn run_kernel(k: &Kernel, ex: &mut CpuExec, clock: &mut dyn FnMut() -> f64) -> Run {
    let mut cpu = machine(k);
    let mut mem = cpu.memory();
    let start = clock();
    let stop = ex.run(&mut cpu, &mut mem, u64::MAX);
    let secs = clock() - start;
    let ok = stop == StopReason::Cpu(STOP_EXCEPTION | excp::UD as u64) && cpu.state().regs[RAX] == k.rax;
    Run {
        secs,
        ok,
        stats: format!("{}; {}", ex.stats(), ex.tier_stats()),
    }
}

/// Translation cost of `k`'s first TB: translated and prepared (optimized) `rounds` times; ns per guest insn.
pub fn translate_ns_per_insn(k: &Kernel, rounds: u32, clock: &mut dyn FnMut() -> f64) -> f64 {
    let mut cpu = machine(k);
    let mut mem = cpu.memory();
    let mut key = cpu.tb_key();
    key.pc = CODE;
    let mut insns = 0u64;
    let start = clock();
    for _ in 0..rounds {
        let mut f = Func::new(cpu.target_desc());
        let mut db = DisasBase::new(key, 512, 12);
        cpu.gen_code(&mut mem, &mut db, &mut f).expect("translates");
        rqemu_tcg::prepare::prepare(&mut f).expect("prepares");
        insns += u64::from(db.num_insns);
    }
    (clock() - start) * 1e9 / insns as f64
}

/// A way to run the kernels: a column name and a maker of fresh execution loops.
pub type Config<'a> = (&'a str, &'a mut dyn FnMut() -> CpuExec);

/// Runs every kernel on every config (the first is the baseline of the ratio columns) and returns a Markdown
/// table: guest MIPS per config, the ratio to the first, and the translation ns per guest instruction. Each
/// run is on a fresh loop and machine, so the first run of a tiered config includes its tier-up. Kernels
/// that end wrong are flagged in the table and counted in the returned number.
pub fn report(configs: &mut [Config<'_>], scale: u64, clock: &mut dyn FnMut() -> f64) -> (String, u32) {
    let mut out = String::new();
    let mut notes = String::new();
    let mut wrong = 0;
    let mut header = String::from("| kernel | guest insns |");
    let mut rule = String::from("|---|---|");
    for (i, (name, _)) in configs.iter().enumerate() {
        header += &format!(" {name} MIPS |");
        rule += "---|";
        if i > 0 {
            header += &format!(" {name} / {} |", configs[0].0);
            rule += "---|";
        }
    }
    header += " translate ns/insn |";
    rule += "---|";
    let _ = writeln!(out, "{header}\n{rule}");
    for k in kernels(scale) {
        let mut row = format!("| {} | {} |", k.name, k.insns);
        let mut base = 0.0;
        for (i, (name, make)) in configs.iter_mut().enumerate() {
            let mut ex = make();
            let run = run_kernel(&k, &mut ex, clock);
            let mips = run.mips(&k);
            row += &format!(" {mips:.1} |");
            if !run.ok {
                row.insert_str(row.len() - 1, "(WRONG)");
                wrong += 1;
            }
            if i == 0 {
                base = mips;
            } else {
                row += &format!(" **{:.1}x** |", mips / base);
            }
            let _ = writeln!(notes, "- {} on {name}: {:.3} s; {}", k.name, run.secs, run.stats);
        }
        row += &format!(" {:.0} |", translate_ns_per_insn(&k, 2000, clock));
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out, "\n{notes}");
    (out, wrong)
}

#[cfg(test)]
mod tests {
    use iced_x86::code_asm::*;

    use super::*;

    fn asm(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
        let mut a = CodeAssembler::new(64).unwrap();
        build(&mut a).unwrap();
        a.assemble(CODE).unwrap()
    }

    #[test]
    fn the_kernels_are_what_their_comments_say() {
        let alu = asm(|a| {
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            a.add(rax, rcx)?;
            a.xor(rbx, rax)?;
            a.rol(rbx, 3u32)?;
            a.imul_3(rdx, rax, 7)?;
            a.sub(rsi, rbx)?;
            a.dec(rcx)?;
            a.jne(top)?;
            a.ud2()
        });
        let memcpy = asm(|a| {
            let (mut outer, mut inner) = (a.create_label(), a.create_label());
            a.set_label(&mut outer)?;
            a.mov(esi, SRC as u32)?;
            a.mov(edi, DST as u32)?;
            a.mov(ecx, BUF_QWORDS as u32)?;
            a.set_label(&mut inner)?;
            a.mov(rax, qword_ptr(rsi))?;
            a.mov(qword_ptr(rdi), rax)?;
            a.add(rsi, 8i32)?;
            a.add(rdi, 8i32)?;
            a.dec(rcx)?;
            a.jne(inner)?;
            a.dec(r8)?;
            a.jne(outer)?;
            a.ud2()
        });
        let fnv = asm(|a| {
            let (mut outer, mut inner) = (a.create_label(), a.create_label());
            a.set_label(&mut outer)?;
            a.mov(esi, SRC as u32)?;
            a.mov(ecx, (8 * BUF_QWORDS) as u32)?;
            a.set_label(&mut inner)?;
            a.movzx(edx, byte_ptr(rsi))?;
            a.xor(rax, rdx)?;
            a.imul_2(rax, r9)?;
            a.inc(rsi)?;
            a.dec(rcx)?;
            a.jne(inner)?;
            a.dec(r8)?;
            a.jne(outer)?;
            a.ud2()
        });
        assert_eq!((ALU, MEMCPY, FNV1A), (&alu[..], &memcpy[..], &fnv[..]));
    }
}
