//! The x86-64 guest CPU benchmark (`cargo xtask bench cpu`): fixed 64-bit flat-mode kernels (an ALU loop, a
//! memcpy-style loop twice, once with source and destination pages aliasing in the direct-mapped TLB, an
//! FNV-1a hash loop; and the floating-point ones: an SSE2 double dot product, a movdqu memcpy and an x87
//! polynomial) run on the execution loop (`rqemu_accel::CpuExec`) and softmmu, timed in guest MIPS, plus
//! the translation cost (frontend + optimizer, ns per guest instruction).
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

/// `outer: mov esi,FP_A; mov edi,FP_B; mov ecx,FP_LEN/2; inner: movapd xmm1,[rsi]; mulpd xmm1,[rdi];
/// addpd xmm0,xmm1; add rsi,16; add rdi,16; dec rcx; jne inner; dec r8; jne outer; movapd xmm1,xmm0;
/// unpckhpd xmm1,xmm1; addsd xmm0,xmm1; movq rax,xmm0; ud2` (r8 = passes).
const DOT_SSE2: &[u8] = &[
    0xbe, 0x00, 0x00, 0x30, 0x00, 0xbf, 0x00, 0x40, 0x30, 0x00, 0xb9, 0x00, 0x04, 0x00, 0x00, 0x66, 0x0f, 0x28, 0x0e,
    0x66, 0x0f, 0x59, 0x0f, 0x66, 0x0f, 0x58, 0xc1, 0x48, 0x83, 0xc6, 0x10, 0x48, 0x83, 0xc7, 0x10, 0x48, 0xff, 0xc9,
    0x75, 0xe7, 0x49, 0xff, 0xc8, 0x75, 0xd3, 0x66, 0x0f, 0x28, 0xc8, 0x66, 0x0f, 0x15, 0xc9, 0xf2, 0x0f, 0x58, 0xc1,
    0x66, 0x48, 0x0f, 0x7e, 0xc0, 0x0f, 0x0b,
];
/// `outer: mov esi,SRC; mov edi,DST_APART; mov ecx,BUF_QWORDS/2; inner: movdqu xmm0,[rsi]; movdqu [rdi],xmm0;
/// add rsi,16; add rdi,16; dec rcx; jne inner; dec r8; jne outer; mov rax,[rdi-8]; ud2` (r8 = copies).
const MEMCPY_MOVDQU: &[u8] = &[
    0xbe, 0x00, 0x00, 0x10, 0x00, 0xbf, 0x00, 0x80, 0x20, 0x00, 0xb9, 0x00, 0x08, 0x00, 0x00, 0xf3, 0x0f, 0x6f, 0x06,
    0xf3, 0x0f, 0x7f, 0x07, 0x48, 0x83, 0xc6, 0x10, 0x48, 0x83, 0xc7, 0x10, 0x48, 0xff, 0xc9, 0x75, 0xeb, 0x49, 0xff,
    0xc8, 0x75, 0xd7, 0x48, 0x8b, 0x47, 0xf8, 0x0f, 0x0b,
];
/// `outer: mov esi,XS; mov ecx,NX; inner: fld qword [rsi]; fld qword [COEF]; 7 x (fmul st0,st1;
/// fadd qword [COEF+8k]); fadd qword [SUM]; fstp qword [SUM]; fstp st0; add rsi,8; dec rcx; jne inner; dec r8;
/// jne outer; mov rax,[SUM]; ud2` (r8 = passes): Horner's rule for a degree-7 polynomial at each x, summed.
const POLY_X87: &[u8] = &[
    0xbe, 0x00, 0x80, 0x30, 0x00, 0xb9, 0x00, 0x04, 0x00, 0x00, 0xdd, 0x06, 0xdd, 0x04, 0x25, 0x00, 0xa0, 0x30, 0x00,
    0xd8, 0xc9, 0xdc, 0x04, 0x25, 0x08, 0xa0, 0x30, 0x00, 0xd8, 0xc9, 0xdc, 0x04, 0x25, 0x10, 0xa0, 0x30, 0x00, 0xd8,
    0xc9, 0xdc, 0x04, 0x25, 0x18, 0xa0, 0x30, 0x00, 0xd8, 0xc9, 0xdc, 0x04, 0x25, 0x20, 0xa0, 0x30, 0x00, 0xd8, 0xc9,
    0xdc, 0x04, 0x25, 0x28, 0xa0, 0x30, 0x00, 0xd8, 0xc9, 0xdc, 0x04, 0x25, 0x30, 0xa0, 0x30, 0x00, 0xd8, 0xc9, 0xdc,
    0x04, 0x25, 0x38, 0xa0, 0x30, 0x00, 0xdc, 0x04, 0x25, 0x00, 0xa1, 0x30, 0x00, 0xdd, 0x1c, 0x25, 0x00, 0xa1, 0x30,
    0x00, 0xdd, 0xd8, 0x48, 0x83, 0xc6, 0x08, 0x48, 0xff, 0xc9, 0x75, 0x9f, 0x49, 0xff, 0xc8, 0x75, 0x90, 0x48, 0xa1,
    0x00, 0xa1, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x0b,
];

/// The dot product's first vector (`FP_LEN` doubles, 16-byte aligned).
pub const FP_A: u64 = 0x30_0000;
/// Its second vector.
pub const FP_B: u64 = 0x30_4000;
/// Doubles per dot-product vector.
pub const FP_LEN: u64 = 2048;
/// The polynomial's arguments (`NX` doubles).
pub const XS: u64 = 0x30_8000;
/// Arguments per polynomial pass.
pub const NX: u64 = 1024;
/// The polynomial's coefficients, leading first (8 doubles).
pub const COEF: u64 = 0x30_a000;
/// The polynomial kernel's running sum (a double, starts at 0).
pub const SUM: u64 = 0x30_a100;
/// The coefficients at [`COEF`].
const COEFS: [f64; 8] = [3.0, -2.0, 5.0, 1.0, -4.0, 2.0, 7.0, -1.0];

/// The dot product's vectors: small dyadic values (exact products), as two arrays.
fn dot_vectors() -> (Vec<f64>, Vec<f64>) {
    let a = (0..FP_LEN).map(|i| ((i * 7) % 13) as f64 * 0.5 - 3.0).collect();
    let b = (0..FP_LEN).map(|i| ((i * 5) % 11) as f64 * 0.25 + 1.0).collect();
    (a, b)
}

/// The polynomial's arguments: quarters in [0, 3.75], so every Horner step and the sum are exact doubles.
fn poly_args() -> Vec<f64> {
    (0..NX).map(|k| (k % 16) as f64 / 4.0).collect()
}

/// The floating-point data: the dot-product vectors, the polynomial's arguments and coefficients, as
/// `(address, bytes)` pieces.
pub fn fp_data() -> Vec<(u64, Vec<u8>)> {
    let bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (a, b) = dot_vectors();
    vec![
        (FP_A, bytes(&a)),
        (FP_B, bytes(&b)),
        (XS, bytes(&poly_args())),
        (COEF, bytes(&COEFS)),
    ]
}

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

/// The kernels; `scale` multiplies their loop counts (1: about 14, 2.5, 2.5, 10, 2.9, 2.5 and 2.3 million
/// instructions).
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
    let dot_passes = 400 * scale;
    let (a, b) = dot_vectors();
    let mut lanes = [0.0f64; 2];
    for _ in 0..dot_passes {
        for i in 0..FP_LEN as usize {
            lanes[i % 2] += a[i] * b[i];
        }
    }
    let movdqu_copies = 200 * scale;
    let poly_passes = 100 * scale;
    let mut sum = 0.0f64;
    for _ in 0..poly_passes {
        for x in poly_args() {
            let p = COEFS[1..].iter().fold(COEFS[0], |acc, &c| acc * x + c);
            sum += p;
        }
    }
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
        Kernel {
            name: "dot-sse2",
            code: DOT_SSE2.to_vec(),
            regs: vec![(R8, dot_passes)],
            insns: dot_passes * (3 + 7 * FP_LEN / 2 + 2) + 5,
            rax: (lanes[0] + lanes[1]).to_bits(),
        },
        Kernel {
            name: "memcpy-movdqu",
            code: MEMCPY_MOVDQU.to_vec(),
            regs: vec![(R8, movdqu_copies)],
            insns: movdqu_copies * (3 + 6 * BUF_QWORDS / 2 + 2) + 2,
            rax: last_qword,
        },
        Kernel {
            name: "poly-x87",
            code: POLY_X87.to_vec(),
            regs: vec![(R8, poly_passes)],
            insns: poly_passes * (2 + 22 * NX + 2) + 2,
            rax: sum.to_bits(),
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
        for (at, bytes) in fp_data() {
            space.write_bytes(at, &bytes);
        }
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

    #[test]
    fn the_floating_point_kernels_are_what_their_comments_say() {
        let loop2 = |a: &mut CodeAssembler,
                     setup: &dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>,
                     body: &dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>| {
            let (mut outer, mut inner) = (a.create_label(), a.create_label());
            a.set_label(&mut outer)?;
            setup(a)?;
            a.set_label(&mut inner)?;
            body(a)?;
            a.dec(rcx)?;
            a.jne(inner)?;
            a.dec(r8)?;
            a.jne(outer)
        };
        let dot = asm(|a| {
            loop2(
                a,
                &|a| {
                    a.mov(esi, FP_A as u32)?;
                    a.mov(edi, FP_B as u32)?;
                    a.mov(ecx, (FP_LEN / 2) as u32)
                },
                &|a| {
                    a.movapd(xmm1, xmmword_ptr(rsi))?;
                    a.mulpd(xmm1, xmmword_ptr(rdi))?;
                    a.addpd(xmm0, xmm1)?;
                    a.add(rsi, 16i32)?;
                    a.add(rdi, 16i32)
                },
            )?;
            a.movapd(xmm1, xmm0)?;
            a.unpckhpd(xmm1, xmm1)?;
            a.addsd(xmm0, xmm1)?;
            a.movq(rax, xmm0)?;
            a.ud2()
        });
        let movdqu = asm(|a| {
            loop2(
                a,
                &|a| {
                    a.mov(esi, SRC as u32)?;
                    a.mov(edi, DST_APART as u32)?;
                    a.mov(ecx, (BUF_QWORDS / 2) as u32)
                },
                &|a| {
                    a.movdqu(xmm0, xmmword_ptr(rsi))?;
                    a.movdqu(xmmword_ptr(rdi), xmm0)?;
                    a.add(rsi, 16i32)?;
                    a.add(rdi, 16i32)
                },
            )?;
            a.mov(rax, qword_ptr(rdi - 8))?;
            a.ud2()
        });
        let poly = asm(|a| {
            loop2(
                a,
                &|a| {
                    a.mov(esi, XS as u32)?;
                    a.mov(ecx, NX as u32)
                },
                &|a| {
                    a.fld(qword_ptr(rsi))?;
                    a.fld(qword_ptr(COEF))?;
                    for k in 1..8u64 {
                        a.fmul_2(st0, st1)?;
                        a.fadd(qword_ptr(COEF + 8 * k))?;
                    }
                    a.fadd(qword_ptr(SUM))?;
                    a.fstp(qword_ptr(SUM))?;
                    a.fstp(st0)?;
                    a.add(rsi, 8i32)
                },
            )?;
            a.mov(rax, qword_ptr(SUM))?;
            a.ud2()
        });
        assert_eq!((DOT_SSE2, MEMCPY_MOVDQU, POLY_X87), (&dot[..], &movdqu[..], &poly[..]));
    }

    /// Every kernel ends at its ud2 with the rax computed on the host, on tci (scale 1 is the smallest).
    #[test]
    fn every_kernel_computes_its_result_on_tci() {
        for k in kernels(1) {
            let mut ex = CpuExec::with_backends(
                Box::new(rqemu_tcg_tci::Tci::new()),
                None,
                rqemu_accel::AccelOptions::default(),
            );
            let run = run_kernel(&k, &mut ex, &mut || 0.0);
            assert!(run.ok, "{} ended wrong: {}", k.name, run.stats);
        }
    }
}
