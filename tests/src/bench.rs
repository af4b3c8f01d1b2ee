//! Benchmark guests for `cargo xtask bench guest`: multiboot kernels that compute for a while in 64-bit mode
//! and print a checksum, so the same image can be timed under rqemu and under `qemu-system-x86_64 -accel
//! tcg`, and both answers checked against the value computed here on the host.
//!
//! `bench_compute` runs, `rounds` times: a sieve of Eratosthenes over 64 KiB (rep stosq, byte loads and
//! stores, nested loops), a bitwise CRC-32 over the first 4 KiB of the sieve (shifts, masks, tight loops),
//! and a recursive Fibonacci (calls, returns, stack traffic), folding each result into a checksum. That mix is
//! what kernel code mostly is: memory loops, ALU work and calls.

use iced_x86::code_asm::*;

use crate::asm::*;

/// Bytes sieved per round.
const SIEVE_LEN: u32 = 0x1_0000;
/// Bytes of the sieve the CRC covers per round.
const CRC_LEN: u32 = 0x1000;
/// The Fibonacci argument per round.
const FIB_N: u32 = 20;
/// The sieve buffer (identity-mapped RAM above the image).
const BUF: u32 = 0x20_0000;
/// The recursive Fibonacci routine.
const FIB: u32 = AUX;

/// A benchmark guest: its image and the exact debug-console output a correct run gives.
#[derive(Clone, Debug)]
pub struct BenchGuest {
    /// The file name of its image.
    pub name: &'static str,
    /// The multiboot image.
    pub image: Vec<u8>,
    /// The expected debug console output.
    pub output: String,
}

/// The compute kernel with `rounds` rounds (about 1.5 million guest instructions each).
pub fn compute(rounds: u32) -> BenchGuest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        a.xor(r15, r15)?;
        a.mov(r14d, rounds.max(1))?;
        let mut round = a.create_label();
        a.set_label(&mut round)?;
        sieve(a)?;
        a.add(r15, rax)?;
        crc(a)?;
        a.xor(r15, rdx)?;
        a.rol(r15, 5)?;
        a.mov(edi, FIB_N)?;
        a.call(u64::from(FIB))?;
        a.add(r15, rax)?;
        a.dec(r14d)?;
        a.jnz(round)?;
        print(a, "checksum ")?;
        a.mov(rax, r15)?;
        hex(a, 16)?;
        print(a, "\n")?;
        exit(a, 0)
    });
    g.code(FIB, 64, fib);
    BenchGuest {
        name: "bench_compute",
        image: g.image(),
        output: format!("checksum {:016x}\n", expected_checksum(rounds.max(1))),
    }
}

/// Sieves `[BUF, BUF + SIEVE_LEN)` (1 = prime) and leaves the number of primes in rax.
fn sieve(a: &mut CodeAssembler) -> Asm {
    a.mov(rdi, u64::from(BUF))?;
    a.mov(ecx, SIEVE_LEN / 8)?;
    a.mov(rax, 0x0101_0101_0101_0101u64)?;
    a.rep().stosq()?;
    a.mov(word_ptr(u64::from(BUF)), 0)?;
    a.mov(ebx, 2)?;
    let (mut outer, mut inner, mut next, mut count, mut sum) = (
        a.create_label(),
        a.create_label(),
        a.create_label(),
        a.create_label(),
        a.create_label(),
    );
    a.set_label(&mut outer)?;
    a.mov(eax, ebx)?;
    a.imul_2(eax, ebx)?;
    a.cmp(eax, SIEVE_LEN)?;
    a.jae(count)?;
    a.cmp(byte_ptr(rbx + BUF as i32), 0)?;
    a.je(next)?;
    a.set_label(&mut inner)?;
    a.mov(byte_ptr(rax + BUF as i32), 0)?;
    a.add(eax, ebx)?;
    a.cmp(eax, SIEVE_LEN)?;
    a.jb(inner)?;
    a.set_label(&mut next)?;
    a.inc(ebx)?;
    a.jmp(outer)?;
    a.set_label(&mut count)?;
    a.xor(eax, eax)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut sum)?;
    a.movzx(edx, byte_ptr(rcx + BUF as i32))?;
    a.add(eax, edx)?;
    a.inc(ecx)?;
    a.cmp(ecx, SIEVE_LEN)?;
    a.jb(sum)
}

/// The bitwise CRC-32 (reflected, polynomial 0xEDB88320) of `[BUF, BUF + CRC_LEN)` in edx.
fn crc(a: &mut CodeAssembler) -> Asm {
    a.mov(edx, 0xffff_ffffu32)?;
    a.xor(ecx, ecx)?;
    let (mut byte, mut bit) = (a.create_label(), a.create_label());
    a.set_label(&mut byte)?;
    a.movzx(eax, byte_ptr(rcx + BUF as i32))?;
    a.xor(edx, eax)?;
    a.mov(esi, 8)?;
    a.set_label(&mut bit)?;
    a.mov(eax, edx)?;
    a.shr(edx, 1)?;
    a.and(eax, 1)?;
    a.neg(eax)?;
    a.and(eax, 0xedb8_8320u32)?;
    a.xor(edx, eax)?;
    a.dec(esi)?;
    a.jnz(bit)?;
    a.inc(ecx)?;
    a.cmp(ecx, CRC_LEN)?;
    a.jb(byte)?;
    a.not(edx)
}

/// `fib(edi) -> rax`, recursively.
fn fib(a: &mut CodeAssembler) -> Asm {
    let mut rec = a.create_label();
    a.cmp(edi, 2)?;
    a.jae(rec)?;
    a.mov(eax, edi)?;
    a.ret()?;
    a.set_label(&mut rec)?;
    a.push(rdi)?;
    a.dec(edi)?;
    a.call(u64::from(FIB))?;
    a.pop(rdi)?;
    a.push(rax)?;
    a.sub(edi, 2)?;
    a.call(u64::from(FIB))?;
    a.pop(rcx)?;
    a.add(rax, rcx)?;
    a.ret()
}

/// What the guest computes, computed on the host.
fn expected_checksum(rounds: u32) -> u64 {
    let mut buf = vec![1u8; SIEVE_LEN as usize];
    buf[0] = 0;
    buf[1] = 0;
    let mut i = 2usize;
    while i * i < buf.len() {
        if buf[i] != 0 {
            let mut j = i * i;
            while j < buf.len() {
                buf[j] = 0;
                j += i;
            }
        }
        i += 1;
    }
    let primes: u64 = buf.iter().map(|&b| u64::from(b)).sum();
    let mut crc = 0xffff_ffffu32;
    for &b in &buf[..CRC_LEN as usize] {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0u32.wrapping_sub(crc & 1) & 0xedb8_8320);
        }
    }
    let crc = u64::from(!crc);
    let (mut f0, mut f1) = (0u64, 1u64);
    for _ in 0..FIB_N {
        (f0, f1) = (f1, f0 + f1);
    }
    let mut sum = 0u64;
    for _ in 0..rounds {
        sum = (sum.wrapping_add(primes) ^ crc).rotate_left(5).wrapping_add(f0);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{run_guest, Backend};

    #[test]
    fn the_compute_kernel_prints_the_host_checksum() {
        let b = compute(2);
        let r = run_guest(&b.image, Backend::Tci);
        assert_eq!((r.status, r.debugcon.as_str()), (1, b.output.as_str()));
    }
}
