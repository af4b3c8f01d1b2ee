//! The skeleton of issue 4's `cargo xtask bench cpu` (not wired into xtask yet): guest MIPS of three fixed
//! 64-bit flat-mode kernels (an ALU loop, a memcpy-style loop, an FNV-1a hash loop) on the execution loop
//! with tci, natively, and the translation cost (frontend + optimizer, ns per guest instruction).
//!
//! `cargo run --release -p rqemu-target-i386 --example cpu_bench [-- <scale>]`

use std::time::Instant;

use iced_x86::code_asm::*;
use rqemu_accel::{AccelOptions, CpuExec, CpuOps, DisasBase, StopReason};
use rqemu_softmmu::{AddressSpace, RamBlock};
use rqemu_target_i386::{X86Cpu, X86CpuState};
use rqemu_tcg::Func;
use rqemu_tcg_tci::Tci;

const RAM_SIZE: u64 = 0x40_0000;
const CODE: u64 = 0x1000;
const SRC: u64 = 0x10_0000;
const DST: u64 = 0x20_0000;
const BUF_QWORDS: u64 = 4096;

/// A kernel: its code, how many guest instructions it executes, and the rax it must end with.
struct Kernel {
    name: &'static str,
    code: Vec<u8>,
    insns: u64,
    rax: u64,
}

fn src_data() -> Vec<u8> {
    (0..8 * BUF_QWORDS).map(|i| (i * 131 % 251) as u8).collect()
}

fn asm(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("64-bit");
    build(&mut a).expect("assembles");
    a.assemble(CODE).expect("encodes")
}

fn kernels(scale: u64) -> Vec<Kernel> {
    let alu_iters = 2_000_000 * scale;
    let alu = asm(|a| {
        let mut top = a.create_label();
        a.mov(rcx, alu_iters)?;
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
    let copies = 100 * scale;
    let memcpy = asm(|a| {
        let (mut outer, mut inner) = (a.create_label(), a.create_label());
        a.mov(r8, copies)?;
        a.set_label(&mut outer)?;
        a.mov(rsi, SRC)?;
        a.mov(rdi, DST)?;
        a.mov(rcx, BUF_QWORDS)?;
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
    let hashes = 50 * scale;
    let bytes = 8 * BUF_QWORDS;
    let fnv = asm(|a| {
        let (mut outer, mut inner) = (a.create_label(), a.create_label());
        a.mov(r8, hashes)?;
        a.mov(r9, 0x100_0000_01b3u64)?;
        a.mov(rax, 0xcbf2_9ce4_8422_2325u64)?;
        a.set_label(&mut outer)?;
        a.mov(rsi, SRC)?;
        a.mov(rcx, bytes)?;
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
    let alu_rax = (1..=alu_iters).rev().fold(0u64, |acc, n| acc.wrapping_add(n));
    let data = src_data();
    let last_qword = u64::from_le_bytes(data[data.len() - 8..].try_into().expect("8 bytes"));
    let mut fnv_rax = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..hashes {
        for &b in &data {
            fnv_rax = (fnv_rax ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    vec![
        Kernel {
            name: "alu",
            code: alu,
            insns: 1 + 7 * alu_iters + 1,
            rax: alu_rax,
        },
        Kernel {
            name: "memcpy",
            code: memcpy,
            insns: 1 + copies * (3 + 6 * BUF_QWORDS + 2) + 1,
            rax: last_qword,
        },
        Kernel {
            name: "fnv1a",
            code: fnv,
            insns: 3 + hashes * (2 + 6 * bytes + 2) + 1,
            rax: fnv_rax,
        },
    ]
}

fn machine(code: &[u8]) -> X86Cpu {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(RAM_SIZE).expect("RAM"));
    space.map_ram(0, RAM_SIZE, ram, 0).expect("maps");
    let cpu = X86Cpu::new(space, X86CpuState::new_long_mode(CODE));
    cpu.memory().with(|m| {
        let space = m.space_mut();
        space.write_bytes(CODE, code);
        space.write_bytes(SRC, &src_data());
    });
    cpu
}

fn main() {
    let scale: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    println!("cpu-bench: tci, native, scale {scale}");
    for k in kernels(scale) {
        let mut cpu = machine(&k.code);
        let mut ex = CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default());
        let mut mem = cpu.memory();
        let t = Instant::now();
        let stop = ex.run(&mut cpu, &mut mem, u64::MAX);
        let secs = t.elapsed().as_secs_f64();
        let ok = matches!(stop, StopReason::Cpu(c) if c == rqemu_target_i386::STOP_EXCEPTION | 6)
            && cpu.state().regs[0] == k.rax;
        println!(
            "cpu-bench: kernel={} insns={} secs={secs:.3} mips={:.1}{}",
            k.name,
            k.insns,
            k.insns as f64 / secs / 1e6,
            if ok {
                ""
            } else {
                " (WRONG: did not end at its ud2 with the expected rax)"
            }
        );

        // Translation cost: the kernel's first TB, translated and optimized again and again.
        let key = cpu.tb_key();
        let mut key = key;
        key.pc = CODE;
        let rounds = 2000;
        let mut insns = 0u64;
        let t = Instant::now();
        for _ in 0..rounds {
            let mut f = Func::new(cpu.target_desc());
            let mut db = DisasBase::new(key, 512, 12);
            cpu.gen_code(&mut mem, &mut db, &mut f).expect("translates");
            rqemu_tcg::prepare::prepare(&mut f).expect("prepares");
            insns += u64::from(db.num_insns);
        }
        println!(
            "cpu-bench: kernel={} translate ns/insn={:.0}",
            k.name,
            t.elapsed().as_nanos() as f64 / insns as f64
        );
    }
}
