//! SSE/SSE2 data moves, pxor/xorps/xorpd, MXCSR and x87 control state, fxsave/fxrstor, through tci.

mod harness;

use harness::{mov_imm64, run_with, Machine, Outcome, CODE, DATA};

const A: u128 = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeff;
const B: u128 = 0xfedc_ba98_7654_3210_0f1e_2d3c_4b5a_6978;

fn setup(m: &mut Machine) {
    m.write_u64(DATA, A as u64);
    m.write_u64(DATA + 8, (A >> 64) as u64);
    m.write_u64(DATA + 16, B as u64);
    m.write_u64(DATA + 24, (B >> 64) as u64);
    m.write_u64(DATA + 0x50, 0x0000_ffc0_0000_1f80 | 0x6000); // ldmxcsr source: 0x7f80, then 0xffc0 (reserved bits clear)
    m.write_u64(DATA + 0x58, 0x027f_0000_0000_0000);
    m.cpu.xmm[9] = B;
}

fn prog(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = mov_imm64(7, DATA);
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

fn mem128(m: &Machine, addr: u64) -> u128 {
    m.read_u64(addr) as u128 | (m.read_u64(addr + 8) as u128) << 64
}

#[test]
fn moves_and_xor() {
    let p = prog(&[
        &[0x66, 0x0f, 0x6f, 0x07],             // movdqa xmm0, [rdi]
        &[0xf3, 0x0f, 0x6f, 0x4f, 0x10],       // movdqu xmm1, [rdi+0x10]
        &[0x0f, 0x29, 0x47, 0x20],             // movaps [rdi+0x20], xmm0
        &[0x0f, 0x10, 0xd1],                   // movups xmm2, xmm1
        &[0x66, 0x0f, 0x28, 0xd8],             // movapd xmm3, xmm0
        &[0x66, 0x0f, 0xef, 0xd9],             // pxor xmm3, xmm1
        &[0x0f, 0x57, 0xe4],                   // xorps xmm4, xmm4
        &[0x66, 0x0f, 0x57, 0x67, 0x10],       // xorpd xmm4, [rdi+0x10]
        &mov_imm64(0, 0x8877_6655_4433_2211),  //
        &[0x66, 0x0f, 0x6e, 0xe8],             // movd xmm5, eax
        &[0x66, 0x48, 0x0f, 0x6e, 0xf0],       // movq xmm6, rax
        &[0x66, 0x48, 0x0f, 0x7e, 0xcb],       // movq rbx, xmm1
        &[0x66, 0x0f, 0x7e, 0xc9],             // movd ecx, xmm1
        &[0xf3, 0x0f, 0x7e, 0xf9],             // movq xmm7, xmm1
        &[0x66, 0x0f, 0xd6, 0x4f, 0x40],       // movq [rdi+0x40], xmm1
        &[0xf3, 0x44, 0x0f, 0x6f, 0x47, 0x01], // movdqu xmm8, [rdi+1]
        &[0x66, 0x0f, 0x7e, 0x4f, 0x48],       // movd [rdi+0x48], xmm1
        &[0x66, 0x44, 0x0f, 0x6e, 0x57, 0x04], // movd xmm10, [rdi+4]
        &[0xf3, 0x44, 0x0f, 0x7e, 0x1f],       // movq xmm11, [rdi]
        &[0x66, 0x44, 0x0f, 0xd6, 0xcc],       // movq xmm4', xmm9 -> movq xmm4, xmm9 (66 0F D6 reg form)
    ]);
    let m = run_with(&p, setup);
    let x = &m.cpu.xmm;
    assert_eq!(x[0], A);
    assert_eq!(x[1], B);
    assert_eq!(mem128(&m, DATA + 0x20), A);
    assert_eq!(x[2], B);
    assert_eq!(x[3], A ^ B);
    assert_eq!(x[5], 0x4433_2211);
    assert_eq!(x[6], 0x8877_6655_4433_2211);
    assert_eq!(m.cpu.regs[3], B as u64);
    assert_eq!(m.cpu.regs[1], B as u32 as u64);
    assert_eq!(x[7], B as u64 as u128);
    assert_eq!(m.read_u64(DATA + 0x40), B as u64);
    assert_eq!(x[8], (A >> 8) | ((B & 0xff) << 120));
    assert_eq!(
        m.read_u64(DATA + 0x48),
        (B as u32 as u64) | (m.read_u64(DATA + 0x48) & !0xffff_ffff)
    );
    assert_eq!(x[10], (A >> 32) as u32 as u128);
    assert_eq!(x[11], A as u64 as u128);
    assert_eq!(x[4], B as u64 as u128); // movq xmm4, xmm9 zeroes the high half
}

fn fault(p: &[u8]) -> Outcome {
    let mut m = Machine::new(p);
    setup(&mut m);
    m.run()
}

#[test]
fn misaligned_aligned_forms_raise_gp() {
    for insn in [
        &[0x66, 0x0f, 0x6f, 0x47, 0x08][..], // movdqa xmm0, [rdi+8]
        &[0x0f, 0x29, 0x47, 0x04],           // movaps [rdi+4], xmm0
        &[0x66, 0x0f, 0x28, 0x47, 0x01],     // movapd xmm0, [rdi+1]
        &[0x66, 0x0f, 0xef, 0x47, 0x08],     // pxor xmm0, [rdi+8]
        &[0x0f, 0x57, 0x47, 0x08],           // xorps xmm0, [rdi+8]
        &[0x0f, 0xae, 0x47, 0x08],           // fxsave [rdi+8]
        &[0x0f, 0xae, 0x4f, 0x08],           // fxrstor [rdi+8]
    ] {
        let p = prog(&[insn]);
        assert_eq!(
            fault(&p),
            Outcome::Fault {
                rip: CODE + 10,
                vector: 13
            },
            "{insn:02x?}"
        );
    }
    // The unaligned forms do not fault.
    let p = prog(&[&[0xf3, 0x0f, 0x6f, 0x47, 0x08], &[0x0f, 0x11, 0x47, 0x04]]);
    run_with(&p, setup);
}

#[test]
fn mxcsr_and_x87_control() {
    let p = prog(&[
        &[0x0f, 0xae, 0x5f, 0x60], // stmxcsr [rdi+0x60]
        &[0x0f, 0xae, 0x57, 0x50], // ldmxcsr [rdi+0x50]
        &[0x0f, 0xae, 0x5f, 0x64], // stmxcsr [rdi+0x64]
        &[0xd9, 0x7f, 0x68],       // fnstcw [rdi+0x68]
        &[0xd9, 0x6f, 0x5e],       // fldcw [rdi+0x5e]
        &[0xd9, 0x7f, 0x6a],       // fnstcw [rdi+0x6a]
        &[0xdb, 0xe3],             // fninit
        &[0x9b, 0xd9, 0x7f, 0x6c], // fstcw [rdi+0x6c]
        &mov_imm64(0, u64::MAX),
        &[0xdf, 0xe0],       // fnstsw ax
        &[0xdd, 0x7f, 0x6e], // fnstsw [rdi+0x6e]
    ]);
    let m = run_with(&p, |m| {
        setup(m);
        m.cpu.fpu.fcw = 0x1234;
        m.cpu.fpu.fsw = 0x3800;
    });
    assert_eq!(m.read_u64(DATA + 0x60) as u32, 0x1f80);
    assert_eq!(m.read_u64(DATA + 0x64) as u32, 0x7f80);
    assert_eq!(m.cpu.mxcsr, 0x7f80);
    let w = m.read_u64(DATA + 0x68);
    assert_eq!(w & 0xffff, 0x1234);
    assert_eq!((w >> 16) & 0xffff, 0x027f);
    assert_eq!((w >> 32) & 0xffff, 0x037f);
    assert_eq!(w >> 48, 0);
    assert_eq!(m.cpu.regs[0], 0xffff_ffff_ffff_0000);
    assert_eq!(m.cpu.fpu.fcw, 0x37f);

    // Reserved MXCSR bits: #GP(0), MXCSR unchanged.
    let p = prog(&[&[0x0f, 0xae, 0x57, 0x54]]); // ldmxcsr [rdi+0x54] = 0xffc0 | high bits below
    let mut m = Machine::new(&p);
    setup(&mut m);
    m.write_u64(DATA + 0x54, 0x1_0000);
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: CODE + 10,
            vector: 13
        }
    );
    assert_eq!(m.cpu.mxcsr, 0x1f80);
}

#[test]
fn fxsave_fxrstor_round_trip() {
    let p = prog(&[
        &[0x0f, 0xae, 0x87, 0x00, 0x01, 0x00, 0x00],       // fxsave [rdi+0x100]
        &[0x48, 0x0f, 0xae, 0x87, 0x00, 0x03, 0x00, 0x00], // fxsave64 [rdi+0x300]
        &[0x66, 0x0f, 0xef, 0xc0],                         // pxor xmm0, xmm0 (changed, then restored)
        &[0xdb, 0xe3],                                     // fninit
        &[0x48, 0x0f, 0xae, 0x8f, 0x00, 0x03, 0x00, 0x00], // fxrstor64 [rdi+0x300]
    ]);
    let m = run_with(&p, |m| {
        setup(m);
        for (i, x) in m.cpu.xmm.iter_mut().enumerate() {
            *x = A.rotate_left(8 * i as u32);
        }
        m.cpu.mxcsr = 0x9fc0;
        m.cpu.fpu.fcw = 0x027f;
        // TOP = 1, ES set: this host's (AMD) fxsave stores FOP/FIP/FDP only while an exception is pending.
        m.cpu.fpu.fsw = 0x0881;
        m.cpu.fpu.ftw = 0x81;
        m.cpu.fpu.fop = 0x5d9;
        m.cpu.fpu.fip = 0x1234_5678_9abc;
        m.cpu.fpu.fdp = 0xdead_beef_0042;
        m.cpu.fpu.regs[3] = [0xaa; 16];
        for i in 0..64 {
            m.write_u64(DATA + 0x100 + 8 * i, u64::MAX);
            m.write_u64(DATA + 0x300 + 8 * i, u64::MAX);
        }
    });
    for base in [DATA + 0x100, DATA + 0x300] {
        let w = m.read_u64(base);
        assert_eq!(w, 0x05d9_0081_0881_027f);
        assert_eq!(m.read_u64(base + 24), 0x0000_ffff_0000_9fc0);
        // Physical register 3 is ST(2) with TOP = 1: the image is in ST order.
        assert_eq!(m.read_u64(base + 32 + 32), 0xaaaa_aaaa_aaaa_aaaa);
        assert_eq!(m.read_u64(base + 32 + 40), 0xaaaa);
        assert_eq!(m.read_u64(base + 32), 0);
        for i in 0..16 {
            assert_eq!(mem128(&m, base + 160 + 16 * i as u64), A.rotate_left(8 * i as u32));
        }
        assert_eq!(m.read_u64(base + 416), u64::MAX, "bytes 416.. are not written");
    }
    assert_eq!(m.read_u64(DATA + 0x108), 0x5678_9abc);
    assert_eq!(m.read_u64(DATA + 0x110), 0xbeef_0042);
    assert_eq!(m.read_u64(DATA + 0x308), 0x1234_5678_9abc);
    assert_eq!(m.read_u64(DATA + 0x310), 0xdead_beef_0042);
    assert_eq!(m.cpu.xmm[0], A);
    assert_eq!(m.cpu.fpu.fcw, 0x027f);
    assert_eq!(m.cpu.fpu.ftw, 0x81);
    assert_eq!(m.cpu.fpu.fip, 0x1234_5678_9abc);
    assert_eq!(m.cpu.fpu.regs[3][..10], [0xaa; 10]);
    assert_eq!(m.cpu.fpu.fsw, 0x0881);
    assert_eq!(m.cpu.mxcsr, 0x9fc0);
}

#[test]
fn fxsave_without_pending_exception_and_top() {
    let p = prog(&[
        &[0x48, 0x0f, 0xae, 0x87, 0x00, 0x01, 0x00, 0x00], // fxsave64 [rdi+0x100]
        &[0xdb, 0xe3],                                     // fninit
        &[0x48, 0x0f, 0xae, 0x8f, 0x00, 0x01, 0x00, 0x00], // fxrstor64 [rdi+0x100]
    ]);
    let m = run_with(&p, |m| {
        setup(m);
        m.cpu.fpu.fsw = 0x3000; // TOP = 6
        m.cpu.fpu.ftw = 0x40;
        m.cpu.fpu.fop = 0x5d9;
        m.cpu.fpu.fip = 0x1234;
        m.cpu.fpu.fdp = 0x5678;
        for (i, r) in m.cpu.fpu.regs.iter_mut().enumerate() {
            *r = [i as u8 + 1; 16];
        }
    });
    let base = DATA + 0x100;
    // No pending exception: FOP, FIP and FDP are stored as zero (AMD).
    assert_eq!(m.read_u64(base), 0x0000_0040_3000_037f);
    assert_eq!(m.read_u64(base + 8), 0);
    assert_eq!(m.read_u64(base + 16), 0);
    for i in 0..8u64 {
        // ST(i) is physical register (6 + i) & 7.
        let p = ((6 + i) & 7) as u8 + 1;
        assert_eq!(m.read_u64(base + 32 + 16 * i), u64::from_le_bytes([p; 8]));
    }
    assert_eq!(m.cpu.fpu.fsw, 0x3000);
    for (i, r) in m.cpu.fpu.regs.iter().enumerate() {
        assert_eq!(r[..10], [i as u8 + 1; 10]);
    }
}
