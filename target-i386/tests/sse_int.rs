//! SSE2/SSSE3/SSE4.1/SSE4.2 integer instructions and their MMX forms, checked bit for bit against the host CPU
//! (the same instruction run natively through `asm!` on the same random inputs), plus memory forms, alignment
//! #GP, the CR0/CR4 enabling checks and the x87 tag effects of MMX.

#![cfg(target_arch = "x86_64")]

mod harness;

use core::arch::asm;

use harness::{run_with, Machine, Outcome, DATA};
use iced_x86::code_asm::*;
use rqemu_target_i386::TbFlags;

/// Register state an instruction sees and changes: xmm1 (destination), xmm2 (source), xmm0 (implicit mask or
/// pcmpXstrm result), rax/rdx (pcmpestr lengths), rcx (GPR destination), flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
struct St {
    x1: u128,
    x2: u128,
    x0: u128,
    rax: u64,
    rdx: u64,
    rcx: u64,
    flags: u64,
}

/// OF SF ZF AF PF CF.
const ARITH: u64 = 0x8d5;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// 16 bytes biased towards the values that expose saturation, sign and zero-terminator cases.
    fn vec(&mut self) -> u128 {
        let mut b = [0u8; 16];
        let mode = self.next() % 4;
        for x in b.iter_mut() {
            let r = self.next();
            *x = match (mode, r % 8) {
                (0, _) => r as u8 >> 4 & 0x3, // small: string compares, shift counts
                (_, 0) => 0,
                (_, 1) => 0xff,
                (_, 2) => 0x80,
                (_, 3) => 0x7f,
                _ => (r >> 8) as u8,
            };
        }
        u128::from_le_bytes(b)
    }
}

fn inputs(rng: &mut Rng) -> St {
    St {
        x1: rng.vec(),
        x2: rng.vec(),
        x0: rng.vec(),
        rax: rng.next() % 40,
        rdx: (rng.next() % 40).wrapping_sub(20),
        rcx: rng.next(),
        flags: 0,
    }
}

/// Runs the encoded instruction on rqemu with the XMM state `s` (MMX: mm1/mm2 take the low halves of x1/x2).
fn rqemu(code: &[u8], s: St, mmx: bool) -> St {
    let m = run_with(code, |m| {
        m.cpu.xmm[1] = s.x1;
        m.cpu.xmm[2] = s.x2;
        m.cpu.xmm[0] = s.x0;
        m.cpu.regs[0] = s.rax;
        m.cpu.regs[2] = s.rdx;
        m.cpu.regs[1] = s.rcx;
        if mmx {
            m.cpu.fpu.regs[1][..8].copy_from_slice(&(s.x1 as u64).to_le_bytes());
            m.cpu.fpu.regs[2][..8].copy_from_slice(&(s.x2 as u64).to_le_bytes());
        }
    });
    let mut out = St {
        x1: m.cpu.xmm[1],
        x2: m.cpu.xmm[2],
        x0: m.cpu.xmm[0],
        rax: m.cpu.regs[0],
        rdx: m.cpu.regs[2],
        rcx: m.cpu.regs[1],
        flags: m.cpu.rflags() & ARITH,
    };
    if mmx {
        out.x1 = u64::from_le_bytes(m.cpu.fpu.regs[1][..8].try_into().unwrap()) as u128;
        assert_eq!(m.cpu.fpu.ftw, 0xff, "MMX makes every tag valid");
        assert_eq!(m.cpu.fpu.fsw & 0x3800, 0, "MMX sets TOP to 0");
    }
    out
}

fn assemble(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(0x1000).unwrap()
}

/// Host run of an XMM-form instruction: the template loads St into the registers, runs it, stores them back.
macro_rules! host_xmm {
    ($text:expr) => {
        |s: &mut St| unsafe {
            asm!(
                "push 0",
                "popfq",
                "movdqu xmm1, [{p}]",
                "movdqu xmm2, [{p}+16]",
                "movdqu xmm0, [{p}+32]",
                "mov rax, [{p}+48]",
                "mov rdx, [{p}+56]",
                "mov rcx, [{p}+64]",
                $text,
                "movdqu [{p}], xmm1",
                "movdqu [{p}+32], xmm0",
                "mov [{p}+64], rcx",
                "pushfq",
                "pop qword ptr [{p}+72]",
                p = in(reg) s as *mut St,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("rax") _, out("rdx") _, out("rcx") _,
            );
            s.flags &= ARITH;
        }
    };
}

/// Host run of an MMX-form instruction on mm1/mm2 (then emms, so the host's x87 state stays usable).
macro_rules! host_mmx {
    ($text:expr) => {
        |s: &mut St| unsafe {
            asm!(
                "movq mm1, [{p}]",
                "movq mm2, [{p}+16]",
                "mov rcx, [{p}+64]",
                $text,
                "movq [{p}], mm1",
                "mov [{p}+64], rcx",
                "emms",
                p = in(reg) s as *mut St,
                out("rcx") _, out("mm1") _, out("mm2") _,
            );
            s.x1 &= u64::MAX as u128;
            s.flags = 0;
        }
    };
}

fn compare(name: &str, code: &[u8], host: impl Fn(&mut St), mmx: bool, rounds: usize) {
    // A seed per instruction text (FNV-1a), so that each gets its own inputs.
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng(seed | 1);
    for _ in 0..rounds {
        let s = inputs(&mut rng);
        let mut want = s;
        if mmx {
            want.x1 &= u64::MAX as u128;
        }
        host(&mut want);
        let mut got = rqemu(code, s, mmx);
        if mmx {
            // Only mm1 (in x1) and rcx are compared.
            got.x0 = want.x0;
            got.x2 = want.x2;
            got.rax = want.rax;
            got.rdx = want.rdx;
            got.flags = want.flags;
        }
        assert_eq!(got, want, "{name} on {s:x?}");
    }
}

/// `xmm!(mnemonic, args...)`: the XMM form on rqemu and the host; `mmx!` the MMX form.
macro_rules! xmm {
    ($m:ident $(, $arg:tt)*) => {
        compare(
            concat!(stringify!($m), " ", stringify!($($arg),*)),
            &assemble(|a| a.$m($($arg),*)),
            host_xmm!(concat!(stringify!($m), " ", stringify!($($arg),*))),
            false,
            24,
        )
    };
}

macro_rules! mmx {
    ($m:ident $(, $arg:tt)*) => {
        compare(
            concat!(stringify!($m), " ", stringify!($($arg),*)),
            &assemble(|a| a.$m($($arg),*)),
            host_mmx!(concat!(stringify!($m), " ", stringify!($($arg),*))),
            true,
            16,
        )
    };
}

/// Both forms of a two-register instruction.
macro_rules! both {
    ($($m:ident),* $(,)?) => {
        $( xmm!($m, xmm1, xmm2); mmx!($m, mm1, mm2); )*
    };
}

macro_rules! xmm_only {
    ($($m:ident),* $(,)?) => {
        $( xmm!($m, xmm1, xmm2); )*
    };
}

#[test]
fn sse2_arith_vs_host() {
    both!(
        paddb, paddw, paddd, paddq, psubb, psubw, psubd, psubq, paddsb, paddsw, paddusb, paddusw, psubsb, psubsw,
        psubusb, psubusw, pmullw, pmulhw, pmulhuw, pmuludq, pmaddwd, psadbw, pavgb, pavgw, pminub, pmaxub, pminsw,
        pmaxsw, pcmpeqb, pcmpeqw, pcmpeqd, pcmpgtb, pcmpgtw, pcmpgtd, pand, pandn, por, pxor,
    );
    xmm_only!(andps, andnps, orps, andpd, andnpd, orpd, xorps);
}

#[test]
fn sse2_shifts_vs_host() {
    both!(psllw, pslld, psllq, psrlw, psrld, psrlq, psraw, psrad);
    xmm!(psllw, xmm1, 3);
    xmm!(psllw, xmm1, 16);
    xmm!(pslld, xmm1, 31);
    xmm!(psllq, xmm1, 63);
    xmm!(psrlw, xmm1, 15);
    xmm!(psrld, xmm1, 40);
    xmm!(psrlq, xmm1, 1);
    xmm!(psraw, xmm1, 200);
    xmm!(psrad, xmm1, 7);
    xmm!(pslldq, xmm1, 5);
    xmm!(pslldq, xmm1, 17);
    xmm!(psrldq, xmm1, 3);
    xmm!(psrldq, xmm1, 16);
    mmx!(psllw, mm1, 4);
    mmx!(psrlq, mm1, 33);
    mmx!(psrad, mm1, 40);
}

#[test]
fn sse2_shuffle_pack_vs_host() {
    both!(packsswb, packssdw, packuswb, punpcklbw, punpcklwd, punpckldq, punpckhbw, punpckhwd, punpckhdq);
    xmm_only!(punpcklqdq, punpckhqdq, unpcklps, unpckhps, unpcklpd, unpckhpd);
    xmm!(pshufd, xmm1, xmm2, 0x1b);
    xmm!(pshufd, xmm1, xmm2, 0xe4);
    xmm!(pshuflw, xmm1, xmm2, 0x72);
    xmm!(pshufhw, xmm1, xmm2, 0x8d);
    xmm!(shufps, xmm1, xmm2, 0x39);
    xmm!(shufpd, xmm1, xmm2, 2);
    xmm!(shufpd, xmm1, xmm2, 1);
    mmx!(pshufw, mm1, mm2, 0x6c);
    xmm!(pmovmskb, ecx, xmm2);
    mmx!(pmovmskb, ecx, mm2);
    xmm!(movmskps, ecx, xmm2);
    xmm!(movmskpd, ecx, xmm2);
    xmm!(pinsrw, xmm1, ecx, 5);
    mmx!(pinsrw, mm1, ecx, 6);
    xmm!(pextrw, ecx, xmm2, 6);
    mmx!(pextrw, ecx, mm2, 3);
}

#[test]
fn ssse3_vs_host() {
    if !is_x86_feature_detected!("ssse3") {
        return;
    }
    both!(
        pshufb, phaddw, phaddd, phaddsw, phsubw, phsubd, phsubsw, pmaddubsw, pmulhrsw, psignb, psignw, psignd, pabsb,
        pabsw, pabsd,
    );
    for imm in [0, 3, 8, 15, 16, 17, 31, 32] {
        let code = assemble(|a| a.palignr(xmm1, xmm2, imm));
        compare("palignr", &code, palignr_host(imm), false, 8);
    }
    mmx!(palignr, mm1, mm2, 3);
    mmx!(palignr, mm1, mm2, 12);
}

/// palignr with a run-time immediate: one asm block per value tested.
fn palignr_host(imm: u32) -> fn(&mut St) {
    match imm {
        0 => host_xmm!("palignr xmm1, xmm2, 0"),
        3 => host_xmm!("palignr xmm1, xmm2, 3"),
        8 => host_xmm!("palignr xmm1, xmm2, 8"),
        15 => host_xmm!("palignr xmm1, xmm2, 15"),
        16 => host_xmm!("palignr xmm1, xmm2, 16"),
        17 => host_xmm!("palignr xmm1, xmm2, 17"),
        31 => host_xmm!("palignr xmm1, xmm2, 31"),
        _ => host_xmm!("palignr xmm1, xmm2, 32"),
    }
}

#[test]
fn sse41_vs_host() {
    if !is_x86_feature_detected!("sse4.1") {
        return;
    }
    xmm_only!(
        pminsb, pminsd, pminuw, pminud, pmaxsb, pmaxsd, pmaxuw, pmaxud, pmuldq, pmulld, packusdw, pcmpeqq, phminposuw,
        pmovsxbw, pmovsxbd, pmovsxbq, pmovsxwd, pmovsxwq, pmovsxdq, pmovzxbw, pmovzxbd, pmovzxbq, pmovzxwd, pmovzxwq,
        pmovzxdq, ptest, pblendvb, blendvps, blendvpd,
    );
    xmm!(pblendw, xmm1, xmm2, 0xa5);
    xmm!(blendps, xmm1, xmm2, 0x6);
    xmm!(blendpd, xmm1, xmm2, 0x2);
    xmm!(pinsrb, xmm1, ecx, 13);
    xmm!(pinsrd, xmm1, ecx, 2);
    xmm!(pinsrq, xmm1, rcx, 1);
    xmm!(pextrb, ecx, xmm2, 9);
    xmm!(pextrd, ecx, xmm2, 3);
    xmm!(pextrq, rcx, xmm2, 1);
    xmm!(extractps, ecx, xmm2, 2);
    xmm!(insertps, xmm1, xmm2, 0x9a);
    xmm!(insertps, xmm1, xmm2, 0x40);
    xmm!(mpsadbw, xmm1, xmm2, 0x5);
    xmm!(mpsadbw, xmm1, xmm2, 0x2);
}

#[test]
fn sse42_vs_host() {
    if !is_x86_feature_detected!("sse4.2") {
        return;
    }
    xmm_only!(pcmpgtq);
    xmm!(crc32, ecx, eax);
    xmm!(crc32, rcx, rax);
    xmm!(crc32, ecx, ax);
    xmm!(crc32, ecx, al);
    macro_rules! strs {
        ($($imm:literal),*) => {
            $(
                xmm!(pcmpestri, xmm1, xmm2, $imm);
                xmm!(pcmpestrm, xmm1, xmm2, $imm);
                xmm!(pcmpistri, xmm1, xmm2, $imm);
                xmm!(pcmpistrm, xmm1, xmm2, $imm);
            )*
        };
    }
    strs!(
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x14,
        0x18, 0x1c, 0x20, 0x24, 0x28, 0x2c, 0x30, 0x34, 0x38, 0x3c, 0x40, 0x44, 0x48, 0x4c, 0x70, 0x7d, 0x3a, 0x55
    );
}

/// The value of a 16-byte memory source used by the memory-form tests.
const MEMV: u128 = 0x8001_7f02_ff03_0004_8005_7f06_ff07_0008;

fn mem_setup(m: &mut Machine) {
    m.write_u64(DATA, MEMV as u64);
    m.write_u64(DATA + 8, (MEMV >> 64) as u64);
    m.write_u64(DATA + 16, MEMV as u64);
    m.write_u64(DATA + 24, (MEMV >> 64) as u64);
    m.cpu.xmm[1] = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10;
    m.cpu.regs[7] = DATA;
    m.write_u64(DATA + 0x60, 0x1f80);
}

#[test]
fn memory_forms() {
    let a = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128;
    let code = assemble(|a| {
        a.movdqa(xmm3, xmm1)?;
        a.paddb(xmm3, xmmword_ptr(rdi))?;
        a.movdqa(xmm4, xmm1)?;
        a.pmovzxbw(xmm4, qword_ptr(rdi + 1))?; // unaligned, 8 bytes
        a.movdqa(xmm5, xmm1)?;
        a.pshufd(xmm5, xmmword_ptr(rdi + 16), 0x1b)?;
        a.movq(mm1, qword_ptr(rdi))?;
        a.paddw(mm1, qword_ptr(rdi + 8))?;
        a.movntdq(xmmword_ptr(rdi + 0x40), xmm3)?;
        a.pextrw(word_ptr(rdi + 0x50), xmm1, 7)?;
        a.pinsrd(xmm6, dword_ptr(rdi + 4), 3)?;
        a.movhps(xmm7, qword_ptr(rdi))?;
        a.movlps(qword_ptr(rdi + 0x58), xmm1)?;
        a.movss(xmm8, dword_ptr(rdi))?;
        a.movsd_2(xmm9, xmm1)?;
        a.movntdqa(xmm10, xmmword_ptr(rdi))?;
        a.pcmpistri(xmm1, xmmword_ptr(rdi + 3), 0x08)?; // unaligned is fine for pcmpXstrX
        a.prefetchnta(byte_ptr(rdi + 0x7fff_0000))?; // unmapped: no fault
        a.mfence()?;
        a.emms()
    });
    let m = run_with(&code, |m| {
        mem_setup(m);
        m.cpu.xmm[6] = 0;
        m.cpu.xmm[7] = 0x5555;
        m.cpu.xmm[8] = u128::MAX;
        m.cpu.xmm[9] = u128::MAX;
    });
    let bytes = |v: u128| v.to_le_bytes();
    let sum: Vec<u8> = bytes(a)
        .iter()
        .zip(bytes(MEMV))
        .map(|(x, y)| x.wrapping_add(y))
        .collect();
    assert_eq!(m.cpu.xmm[3].to_le_bytes().to_vec(), sum);
    let mut zx = [0u8; 16];
    for i in 0..8 {
        zx[2 * i] = bytes(MEMV)[1 + i];
    }
    assert_eq!(m.cpu.xmm[4], u128::from_le_bytes(zx));
    let dw = |v: u128, i: u32| (v >> (32 * i)) as u32 as u128;
    assert_eq!(
        m.cpu.xmm[5],
        dw(MEMV, 3) | dw(MEMV, 2) << 32 | dw(MEMV, 1) << 64 | dw(MEMV, 0) << 96
    );
    let w = |v: u64, i: u32| (v >> (16 * i)) as u16;
    let lo = MEMV as u64;
    let hi = (MEMV >> 64) as u64;
    let want: u64 = (0..4)
        .map(|i| (w(lo, i).wrapping_add(w(hi, i)) as u64) << (16 * i))
        .sum();
    assert_eq!(&m.cpu.fpu.regs[1][..8], &want.to_le_bytes());
    assert_eq!(
        &m.cpu.fpu.regs[1][8..10],
        &[0xff, 0xff],
        "an MMX write sets the exponent bytes"
    );
    assert_eq!(m.cpu.fpu.ftw, 0, "emms empties the tags");
    assert_eq!(
        m.read_u64(DATA + 0x40) as u128 | (m.read_u64(DATA + 0x48) as u128) << 64,
        m.cpu.xmm[3]
    );
    assert_eq!(m.read_u64(DATA + 0x50) as u16, (a >> 112) as u16);
    assert_eq!(m.cpu.xmm[6], ((MEMV >> 32) as u32 as u128) << 96);
    assert_eq!(m.cpu.xmm[7], 0x5555 | (MEMV as u64 as u128) << 64);
    assert_eq!(m.read_u64(DATA + 0x58), a as u64);
    assert_eq!(m.cpu.xmm[8], MEMV as u32 as u128, "movss load zeroes the rest");
    assert_eq!(
        m.cpu.xmm[9],
        (u128::MAX << 64) | a as u64 as u128,
        "movsd xmm, xmm merges"
    );
    assert_eq!(m.cpu.xmm[10], MEMV);
}

#[test]
fn maskmov_and_moves_between_files() {
    let code = assemble(|a| {
        a.maskmovdqu(xmm1, xmm2)?;
        a.movq2dq(xmm3, mm2)?;
        a.movdq2q(mm3, xmm1)?;
        a.movd(mm4, ecx)?;
        a.movq(rbx, mm4)?;
        a.movq(mm5, mm3)?;
        a.movntq(qword_ptr(rdi + 0x20), mm5)?;
        a.movhlps(xmm4, xmm1)?;
        a.movlhps(xmm5, xmm1)
    });
    let mask: u128 = 0x80_00_ff_7f_81_00_00_80_00_00_00_00_00_00_00_80;
    let m = run_with(&code, |m| {
        mem_setup(m);
        m.cpu.xmm[2] = mask;
        m.cpu.regs[1] = 0xffff_ffff_1234_5678;
        m.cpu.fpu.regs[2][..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        m.cpu.xmm[3] = u128::MAX;
        m.cpu.xmm[4] = u128::MAX;
        m.cpu.xmm[5] = u128::MAX;
    });
    let x1 = m.cpu.xmm[1];
    let mut want = MEMV.to_le_bytes();
    for (i, w) in want.iter_mut().enumerate() {
        if mask.to_le_bytes()[i] & 0x80 != 0 {
            *w = x1.to_le_bytes()[i];
        }
    }
    let got = m.read_u64(DATA) as u128 | (m.read_u64(DATA + 8) as u128) << 64;
    assert_eq!(got, u128::from_le_bytes(want));
    assert_eq!(m.cpu.xmm[3], 0x1122_3344_5566_7788);
    assert_eq!(&m.cpu.fpu.regs[3][..8], &(x1 as u64).to_le_bytes());
    assert_eq!(m.cpu.regs[3], 0x1234_5678);
    assert_eq!(m.read_u64(DATA + 0x20), x1 as u64);
    assert_eq!(m.cpu.xmm[4], (u128::MAX << 64) | x1 >> 64);
    assert_eq!(m.cpu.xmm[5], (x1 << 64) | u64::MAX as u128);
    assert_eq!(m.cpu.fpu.ftw, 0xff);
}

fn outcome(code: &[u8], flags: TbFlags) -> Outcome {
    let mut m = Machine::new(code);
    mem_setup(&mut m);
    m.flags = flags;
    m.run()
}

#[test]
fn alignment_faults() {
    let rip = 0x1000;
    for code in [
        assemble(|a| a.paddb(xmm1, xmmword_ptr(rdi + 8))),
        assemble(|a| a.pshufb(xmm1, xmmword_ptr(rdi + 1))),
        assemble(|a| a.movntdq(xmmword_ptr(rdi + 4), xmm1)),
        assemble(|a| a.movntdqa(xmm1, xmmword_ptr(rdi + 4))),
        assemble(|a| a.ptest(xmm1, xmmword_ptr(rdi + 2))),
    ] {
        assert_eq!(outcome(&code, TbFlags::LONG), Outcome::Fault { rip, vector: 13 });
    }
    // Unaligned MMX and narrower operands are fine.
    for code in [
        assemble(|a| a.paddb(mm1, qword_ptr(rdi + 1))),
        assemble(|a| a.pmovsxbd(xmm1, dword_ptr(rdi + 1))),
        assemble(|a| a.pcmpestri(xmm1, xmmword_ptr(rdi + 1), 0)),
    ] {
        assert_eq!(outcome(&code, TbFlags::LONG), Outcome::End);
    }
}

#[test]
fn faulting_source_changes_nothing() {
    // The scratch load faults before the helper runs: the destination and the MMX tags are untouched.
    let code = assemble(|a| {
        a.mov(rsi, 0x10_0000u64)?;
        a.paddw(mm1, qword_ptr(rsi))
    });
    let mut m = Machine::new(&code);
    mem_setup(&mut m);
    m.cpu.fpu.regs[1] = [7; 16];
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: 0x100a,
            vector: 14
        }
    );
    assert_eq!(m.cpu.fpu.regs[1], [7; 16]);
    assert_eq!(m.cpu.fpu.ftw, 0);
    let code = assemble(|a| {
        a.mov(rsi, 0x10_0000u64)?;
        a.pshufb(xmm1, xmmword_ptr(rsi))
    });
    let mut m = Machine::new(&code);
    mem_setup(&mut m);
    let before = m.cpu.xmm[1];
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: 0x100a,
            vector: 14
        }
    );
    assert_eq!(m.cpu.xmm[1], before);
}

#[test]
fn enabling_checks() {
    let rip = 0x1000;
    let sse = assemble(|a| a.paddb(xmm1, xmm2));
    let mmx = assemble(|a| a.paddb(mm1, mm2));
    let mov = assemble(|a| a.movdqa(xmm1, xmm2));
    let em = TbFlags {
        em: true,
        ..TbFlags::LONG
    };
    let ts = TbFlags {
        ts: true,
        ..TbFlags::LONG
    };
    let nofx = TbFlags {
        osfxsr: false,
        ..TbFlags::LONG
    };
    let both = TbFlags {
        em: true,
        ts: true,
        ..TbFlags::LONG
    };
    let ud = Outcome::Fault { rip, vector: 6 };
    let nm = Outcome::Fault { rip, vector: 7 };
    for code in [&sse, &mov] {
        assert_eq!(outcome(code, em), ud);
        assert_eq!(outcome(code, ts), nm);
        assert_eq!(outcome(code, nofx), ud);
        assert_eq!(outcome(code, both), ud, "EM before TS");
    }
    assert_eq!(outcome(&mmx, em), ud);
    assert_eq!(outcome(&mmx, ts), nm);
    assert_eq!(outcome(&mmx, nofx), Outcome::End, "MMX does not need OSFXSR");
    let ldmxcsr = assemble(|a| a.ldmxcsr(dword_ptr(rdi + 0x60)));
    assert_eq!(outcome(&ldmxcsr, nofx), ud);
    assert_eq!(outcome(&ldmxcsr, ts), nm);
    let fxsave = assemble(|a| a.fxsave(ptr(rdi + 0x100)));
    assert_eq!(outcome(&fxsave, em), nm);
    assert_eq!(outcome(&fxsave, ts), nm);
    assert_eq!(outcome(&fxsave, nofx), Outcome::End);
    // Fences, prefetches and crc32 are not SSE-state instructions.
    let other = assemble(|a| {
        a.lfence()?;
        a.sfence()?;
        a.prefetcht0(byte_ptr(0))?;
        a.prefetchw(byte_ptr(rdi + 0x7fff_0000))?;
        a.prefetch(byte_ptr(0))?;
        a.crc32(eax, ecx)
    });
    assert_eq!(outcome(&other, both), Outcome::End);
}

/// Runs the register form (checked against the host above) and the memory form with the source in memory:
/// both must give the same destination.
fn reg_vs_mem(name: &str, reg: &[u8], mem: &[u8], mmx: bool) {
    let mut rng = Rng(0x5eed ^ name.len() as u64);
    for _ in 0..8 {
        let s = inputs(&mut rng);
        let want = rqemu(reg, s, mmx);
        let m = run_with(mem, |m| {
            m.cpu.xmm[1] = s.x1;
            m.cpu.xmm[0] = s.x0;
            m.cpu.regs[0] = s.rax;
            m.cpu.regs[2] = s.rdx;
            m.cpu.regs[1] = s.rcx;
            m.cpu.regs[7] = DATA;
            m.write_u64(DATA, s.x2 as u64);
            m.write_u64(DATA + 8, (s.x2 >> 64) as u64);
            if mmx {
                m.cpu.fpu.regs[1][..8].copy_from_slice(&(s.x1 as u64).to_le_bytes());
            }
        });
        let got = if mmx {
            u64::from_le_bytes(m.cpu.fpu.regs[1][..8].try_into().unwrap()) as u128
        } else {
            m.cpu.xmm[1]
        };
        assert_eq!(got, want.x1, "{name} memory form on {s:x?}");
        assert_eq!(m.cpu.xmm[0], want.x0, "{name} xmm0");
        assert_eq!(m.cpu.regs[1], want.rcx, "{name} rcx");
        if !mmx {
            assert_eq!(m.cpu.rflags() & ARITH, want.flags, "{name} flags");
        }
    }
}

macro_rules! mem_forms {
    ($($m:ident $(, $imm:literal)?);* $(;)?) => {
        $(
            reg_vs_mem(
                stringify!($m),
                &assemble(|a| a.$m(xmm1, xmm2 $(, $imm)?)),
                &assemble(|a| a.$m(xmm1, xmmword_ptr(rdi) $(, $imm)?)),
                false,
            );
        )*
    };
}

macro_rules! mmx_mem_forms {
    ($($m:ident $(, $imm:literal)?);* $(;)?) => {
        $(
            reg_vs_mem(
                stringify!($m),
                &assemble(|a| a.$m(mm1, mm2 $(, $imm)?)),
                &assemble(|a| a.$m(mm1, qword_ptr(rdi) $(, $imm)?)),
                true,
            );
        )*
    };
}

#[test]
fn memory_sources_match_register_sources() {
    mem_forms!(
        paddb; psubq; paddsw; pmulhuw; pmaddwd; psadbw; pcmpgtd; pand; pandn; andnps; orpd; psllw; psrad;
        packuswb; punpckhbw; punpcklqdq; unpckhps; pshufd, 0x4e; shufps, 0xb1; pshufb; phaddsw; palignr, 7;
        pmulhrsw; pabsw; pblendw, 0x3c; pblendvb; pminud; pmulld; packusdw; ptest; phminposuw; mpsadbw, 6;
        pcmpgtq; pcmpistri, 0x0c; pcmpestrm, 0x44; pcmpistrm, 0x4e;
    );
    mmx_mem_forms!(paddusb; pmullw; psllq; packsswb; pshufw, 0x1b; pshufb; palignr, 5; psignd; psadbw);
}

/// Instruction bytes and the host run of the same bytes.
type Case = (&'static [u8], fn(&mut St));

#[test]
fn pcmpestr_length_registers_32_and_64_bit() {
    if !is_x86_feature_detected!("sse4.2") {
        return;
    }
    // pcmpestri xmm1, xmm2, 0x0c (eax/edx), and with REX.W pcmpestri and pcmpestrm xmm1, xmm2, 0x40 (rax/rdx).
    let cases: [Case; 3] = [
        (
            &[0x66, 0x0f, 0x3a, 0x61, 0xca, 0x0c],
            host_xmm!(".byte 0x66, 0x0f, 0x3a, 0x61, 0xca, 0x0c"),
        ),
        (
            &[0x66, 0x48, 0x0f, 0x3a, 0x61, 0xca, 0x0c],
            host_xmm!(".byte 0x66, 0x48, 0x0f, 0x3a, 0x61, 0xca, 0x0c"),
        ),
        (
            &[0x66, 0x48, 0x0f, 0x3a, 0x60, 0xca, 0x40],
            host_xmm!(".byte 0x66, 0x48, 0x0f, 0x3a, 0x60, 0xca, 0x40"),
        ),
    ];
    let mut rng = Rng(77);
    for (code, host) in cases {
        for len in [
            5u64,
            0x1_0000_0005,
            0xffff_ffff_0000_0003,
            u64::MAX - 2,
            1 << 63,
            0x8000_0000,
        ] {
            let mut s = inputs(&mut rng);
            s.rax = len;
            s.rdx = len.rotate_left(3);
            let mut want = s;
            host(&mut want);
            assert_eq!(rqemu(code, s, false), want, "{code:02x?} with {len:#x}");
        }
    }
}

#[test]
fn maskmovdqu_honours_the_address_size() {
    // In 64-bit mode with a 0x67 prefix the address is edi: rdi's high half is ignored.
    let code = [0x67, 0x66, 0x0f, 0xf7, 0xca]; // maskmovdqu xmm1, xmm2 at [edi]
    let m = run_with(&code, |m| {
        m.cpu.regs[7] = 0xffff_ffff_0000_0000 | DATA;
        m.cpu.xmm[1] = 0xaabb;
        m.cpu.xmm[2] = 0x80;
    });
    assert_eq!(m.data(0), 0xbb);
    assert_eq!(m.data(1), 0);
}

#[test]
fn fxsave_sees_the_mmx_tags_and_registers() {
    let code = assemble(|a| {
        a.movq(mm3, rcx)?;
        a.fxsave(ptr(rdi + 0x100))
    });
    let m = run_with(&code, |m| {
        m.cpu.regs[7] = DATA;
        m.cpu.regs[1] = 0x0123_4567_89ab_cdef;
        m.cpu.fpu.fsw = 0x3800;
    });
    assert_eq!(m.data(0x104), 0xff, "abridged tag word: all valid");
    assert_eq!(m.read_u64(DATA + 0x100) >> 16 & 0xffff, 0, "FSW TOP cleared");
    assert_eq!(m.read_u64(DATA + 0x100 + 32 + 3 * 16), 0x0123_4567_89ab_cdef);
    assert_eq!(m.read_u64(DATA + 0x100 + 40 + 3 * 16) & 0xffff, 0xffff);
}
