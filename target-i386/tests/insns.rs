//! Representative guest programs for every instruction family the translator implements, run through tci:
//! data movement and partial registers, memory operands and addressing, the stack, calls and branches, carry
//! chains, flag instructions, #UD for what is not implemented, faults and TB boundaries.

mod harness;

use harness::{eval_cc, mov_imm64, run, run_with, Machine, Outcome, CODE, DATA, STACK_TOP};
use rqemu_target_i386::{translate_tb, CodeFetch, I386Target, TbFlags};
use rqemu_tcg::Func;

const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RBX: usize = 3;
const RSP: usize = 4;
const RBP: usize = 5;
const RDI: usize = 7;
const R12: usize = 12;

fn prog(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn partial_register_writes() {
    let p = prog(&[
        &mov_imm64(0, 0x1122_3344_5566_7788),
        &[0xb4, 0xab], // mov ah, 0xab
        &mov_imm64(1, 0x99aa_bbcc_ddee_ff00),
        &[0xb0, 0xcd],             // mov al, 0xcd
        &[0x66, 0xb9, 0x34, 0x12], // mov cx, 0x1234
        &mov_imm64(3, u64::MAX),
        &[0xbb, 0x78, 0x56, 0x34, 0x12], // mov ebx, 0x12345678: zero-extends
        &mov_imm64(2, 0xffff_ffff_0000_0001),
        &[0x01, 0xd2], // add edx, edx: zero-extends
        &mov_imm64(4, STACK_TOP),
        &[0x40, 0xb4, 0x05], // mov spl, 5 (REX: spl, not ah)
        &[0x88, 0xef],       // mov bh, ch
    ]);
    let m = run(&p);
    assert_eq!(m.cpu.regs[RAX], 0x1122_3344_5566_abcd);
    assert_eq!(m.cpu.regs[RCX], 0x99aa_bbcc_ddee_1234);
    assert_eq!(m.cpu.regs[RBX], 0x1234_1278);
    assert_eq!(m.cpu.regs[RDX], 2);
    assert_eq!(m.cpu.regs[RSP], (STACK_TOP & !0xff) | 5);
}

#[test]
fn movzx_movsx_movsxd_lea() {
    let p = prog(&[
        &mov_imm64(3, 0xffff_ffff_ffff_ff80), // rbx
        &mov_imm64(1, 0x8000_0001),           // rcx
        &mov_imm64(7, DATA),
        &[0x66, 0xc7, 0x07, 0x00, 0x90], // mov word [rdi], 0x9000
        &mov_imm64(0, u64::MAX),
        &[0x0f, 0xb6, 0xc3],                         // movzx eax, bl
        &[0x48, 0x0f, 0xbe, 0xd3],                   // movsx rdx, bl
        &[0x48, 0x63, 0xf1],                         // movsxd rsi, ecx
        &[0x4c, 0x0f, 0xbf, 0x07],                   // movsx r8, word [rdi]
        &[0x4c, 0x0f, 0xb7, 0x0f],                   // movzx r9, word [rdi]
        &[0x66, 0x44, 0x0f, 0xbe, 0xd3],             // movsx r10w, bl
        &[0x4c, 0x8d, 0x5c, 0x8b, 0x10],             // lea r11, [rbx + rcx*4 + 0x10]
        &[0x44, 0x8d, 0x64, 0xcb, 0xff],             // lea r12d, [rbx + rcx*8 - 1]
        &[0x4c, 0x8d, 0x2d, 0x20, 0x00, 0x00, 0x00], // lea r13, [rip + 0x20]
    ]);
    let m = run(&p);
    let r = &m.cpu.regs;
    assert_eq!(r[RAX], 0x80);
    assert_eq!(r[RDX], 0xffff_ffff_ffff_ff80);
    assert_eq!(r[6], 0xffff_ffff_8000_0001);
    assert_eq!(r[8], 0xffff_ffff_ffff_9000);
    assert_eq!(r[9], 0x9000);
    assert_eq!(r[10] & 0xffff, 0xff80);
    assert_eq!(r[11], 0xffff_ffff_ffff_ff80u64.wrapping_add(4 * 0x8000_0001 + 0x10));
    assert_eq!(r[12], (0xffff_ff80u64.wrapping_add(8 * 0x8000_0001) - 1) & 0xffff_ffff);
    assert_eq!(r[13], m.end + 0x20);
}

#[test]
fn memory_operands_moffs_and_fs() {
    let mut moffs = vec![0x48, 0xa1]; // mov rax, [abs DATA + 0x10]
    moffs.extend((DATA + 0x10).to_le_bytes());
    let p = prog(&[
        &mov_imm64(7, DATA),
        &mov_imm64(0, 0x0102_0304_0506_0708),
        &[0x48, 0x89, 0x47, 0x08],       // mov [rdi + 8], rax
        &[0x8b, 0x4f, 0x08],             // mov ecx, [rdi + 8]
        &[0x48, 0x83, 0x47, 0x08, 0xff], // add qword [rdi + 8], -1
        &[0xc6, 0x47, 0x10, 0x7f],       // mov byte [rdi + 0x10], 0x7f
        &moffs,
        &[0x64, 0x48, 0x8b, 0x14, 0x25, 0x08, 0x00, 0x00, 0x00], // mov rdx, fs:[8]
        &[0x87, 0x5f, 0x08],                                     // xchg [rdi + 8], ebx
    ]);
    let m = run_with(&p, |m| {
        m.cpu.segs[4].base = DATA; // fs
        m.cpu.regs[RBX] = 0xaaaa_bbbb_cccc_dddd;
    });
    assert_eq!(m.cpu.regs[RCX], 0x0506_0708);
    assert_eq!(m.cpu.regs[RAX], 0x7f);
    assert_eq!(m.cpu.regs[RDX], 0x0102_0304_0506_0707);
    assert_eq!(m.cpu.regs[RBX], 0x0506_0707, "xchg r32 zero-extends");
    assert_eq!(m.read_u64(DATA + 8), 0x0102_0304_cccc_dddd);
}

#[test]
fn xchg_and_accumulator_widening() {
    let cases: &[(&[u8], u64, u64, u64, u64)] = &[
        // (code, rax in, rdx in, rax out, rdx out)
        (&[0x66, 0x98], 0x1111_2222_3333_4480, 0, 0x1111_2222_3333_ff80, 0), // cbw
        (&[0x98], 0x1111_2222_3333_8000, 0, 0xffff_8000, 0),                 // cwde
        (&[0x48, 0x98], 0x1111_2222_8000_0000, 0, 0xffff_ffff_8000_0000, 0), // cdqe
        (
            &[0x66, 0x99],
            0x8000,
            0x5555_5555_5555_5555,
            0x8000,
            0x5555_5555_5555_ffff,
        ), // cwd
        (&[0x99], 0x8000_0000, u64::MAX, 0x8000_0000, 0xffff_ffff),          // cdq
        (&[0x48, 0x99], 1, u64::MAX, 1, 0),                                  // cqo
        (&[0x48, 0x92], 1, 2, 2, 1),                                         // xchg rax, rdx
        (&[0x92], 1 << 40 | 1, 2, 2, 1),                                     // xchg eax, edx
        (&[0x90], 7, 8, 7, 8),                                               // nop
    ];
    for &(code, rax, rdx, want_rax, want_rdx) in cases {
        let m = run_with(code, |m| {
            m.cpu.regs[RAX] = rax;
            m.cpu.regs[RDX] = rdx;
        });
        assert_eq!((m.cpu.regs[RAX], m.cpu.regs[RDX]), (want_rax, want_rdx), "{code:02x?}");
    }
}

#[test]
fn push_pop_every_form() {
    let p = prog(&[
        &mov_imm64(7, DATA),
        &mov_imm64(0, 0x1122_3344_5566_7788),
        &[0x50],                         // push rax
        &[0x6a, 0xff],                   // push -1
        &[0x68, 0x00, 0x00, 0x00, 0x80], // push 0xffffffff80000000
        &[0xff, 0x37],                   // push qword [rdi]
        &[0x41, 0x5c],                   // pop r12
        &[0x8f, 0x47, 0x08],             // pop qword [rdi + 8]
        &[0x5b],                         // pop rbx
        &[0x66, 0x51],                   // push cx
        &[0x66, 0x5a],                   // pop dx
        &[0x59],                         // pop rcx
    ]);
    let m = run_with(&p, |m| {
        m.write_u64(DATA, 0xdead_beef);
        m.cpu.regs[RCX] = 0x4242;
        m.cpu.regs[RDX] = 0xffff_ffff_ffff_0000;
    });
    assert_eq!(m.cpu.regs[R12], 0xdead_beef);
    assert_eq!(m.read_u64(DATA + 8), 0xffff_ffff_8000_0000);
    assert_eq!(m.cpu.regs[RBX], u64::MAX);
    assert_eq!(m.cpu.regs[RDX], 0xffff_ffff_ffff_4242);
    assert_eq!(m.cpu.regs[RCX], 0x1122_3344_5566_7788);
    assert_eq!(m.cpu.regs[RSP], STACK_TOP);
}

#[test]
fn pop_rsp_and_pop_to_rsp_relative_memory() {
    // pop rsp takes the popped value; pop [rsp] addresses with the incremented rsp.
    let p = prog(&[&[0x6a, 0x11], &[0x6a, 0x22], &[0x8f, 0x04, 0x24], &[0x5c]]);
    let m = run(&p);
    assert_eq!(m.cpu.regs[RSP], 0x22);
}

#[test]
fn call_ret_leave() {
    let p = prog(&[
        &[0xe8, 0x07, 0x00, 0x00, 0x00], // 0: call 12
        &[0xbb, 0x02, 0x00, 0x00, 0x00], // 5: mov ebx, 2
        &[0xeb, 0x0a],                   // 10: jmp 22
        &[0x55],                         // 12: push rbp
        &[0x48, 0x89, 0xe5],             // 13: mov rbp, rsp
        &[0x6a, 0x33],                   // 16: push 0x33
        &[0xc9],                         // 18: leave
        &[0xb0, 0x01],                   // 19: mov al, 1
        &[0xc3],                         // 21: ret
    ]);
    let m = run_with(&p, |m| m.cpu.regs[RBP] = 0xbbbb);
    assert_eq!(m.cpu.regs[RAX], 1);
    assert_eq!(m.cpu.regs[RBX], 2);
    assert_eq!(m.cpu.regs[RBP], 0xbbbb);
    assert_eq!(m.cpu.regs[RSP], STACK_TOP);
    assert_eq!(m.read_u64(STACK_TOP - 8), CODE + 5, "return address");
}

#[test]
fn indirect_call_jmp_and_ret_imm() {
    let p = prog(&[
        &mov_imm64(0, CODE + 19),        // 0: rax = the function
        &[0xff, 0xd0],                   // 10: call rax
        &[0x48, 0x83, 0xc1, 0x01],       // 12: add rcx, 1
        &[0xff, 0xe2],                   // 16: jmp rdx (to the end)
        &[0xcc],                         // 18: int3 (skipped)
        &[0x48, 0x83, 0xc1, 0x10],       // 19: add rcx, 0x10
        &[0x6a, 0x00],                   // 23: push 0 (popped by ret 8)
        &[0x48, 0x8b, 0x44, 0x24, 0x08], // 25: mov rax, [rsp+8] (the return address)
        &[0x48, 0x87, 0x04, 0x24],       // 30: xchg [rsp], rax: return address on top, 0 in rax
        &[0xc2, 0x08, 0x00],             // 34: ret 8
    ]);
    let end = CODE + p.len() as u64;
    let m = run_with(&p, |m| m.cpu.regs[RDX] = end);
    assert_eq!(m.cpu.regs[RCX], 0x11);
    assert_eq!(m.cpu.regs[RAX], 0);
    assert_eq!(m.cpu.regs[RSP], STACK_TOP);
}

#[test]
fn counted_loop_with_small_tbs() {
    let p = prog(&[
        &[0xb9, 0x0a, 0x00, 0x00, 0x00], // mov ecx, 10
        &[0x31, 0xc0],                   // xor eax, eax
        &[0x01, 0xc8],                   // L: add eax, ecx
        &[0xff, 0xc9],                   // dec ecx
        &[0x75, 0xfa],                   // jnz L
    ]);
    for max in [1, 2, 512] {
        let mut m = Machine::new(&p);
        m.max_insns = max;
        assert_eq!(m.run(), Outcome::End);
        assert_eq!(m.cpu.regs[RAX], 55, "max_insns={max}");
        assert!(max > 1 || m.tbs >= 30, "one TB per instruction");
    }
}

#[test]
fn jcc_every_condition_after_cmp() {
    let values = [0u64, 1, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, u64::MAX];
    for &a in &values {
        for &b in &values {
            for cc in 0..16u8 {
                let p = prog(&[
                    &[0x31, 0xd2],                   // xor edx, edx
                    &[0x48, 0x39, 0xc8],             // cmp rax, rcx
                    &[0x70 + cc, 0x05],              // jcc +5
                    &[0xba, 0x01, 0x00, 0x00, 0x00], // mov edx, 1
                ]);
                let m = run_with(&p, |m| {
                    m.cpu.regs[RAX] = a;
                    m.cpu.regs[RCX] = b;
                });
                let taken = eval_cc(cc, m.cpu.rflags());
                assert_eq!(m.cpu.regs[RDX], !taken as u64, "cmp {a:#x}, {b:#x}; j{cc}");
                let want_cf = a < b;
                assert_eq!(m.cpu.rflags() & 1, want_cf as u64);
            }
        }
    }
}

#[test]
fn cmov_and_setcc_to_high_byte() {
    let p = prog(&[
        &[0x48, 0x39, 0xc8],       // cmp rax, rcx
        &[0x48, 0x0f, 0x4c, 0xda], // cmovl rbx, rdx (taken)
        &[0x0f, 0x4f, 0xfe],       // cmovg edi, esi (not taken: still zero-extends rdi)
        &[0x0f, 0x9c, 0xc4],       // setl ah
    ]);
    let m = run_with(&p, |m| {
        m.cpu.regs[RAX] = 0xffff_ffff_ffff_0001; // -65535 < 5
        m.cpu.regs[RCX] = 5;
        m.cpu.regs[RDX] = 0x77;
        m.cpu.regs[RDI] = 0xffff_ffff_1234_5678;
        m.cpu.regs[6] = 9;
    });
    assert_eq!(m.cpu.regs[RBX], 0x77);
    assert_eq!(m.cpu.regs[RDI], 0x1234_5678);
    assert_eq!(m.cpu.regs[RAX], 0xffff_ffff_ffff_0101);
}

#[test]
fn adc_sbb_carry_chains() {
    let cases = [
        (u128::MAX, 1u128),
        (0x0000_0000_0000_0001_ffff_ffff_ffff_ffff, 1),
        (
            0x1234_5678_9abc_def0_0fed_cba9_8765_4321,
            0xffff_ffff_ffff_ffff_ffff_ffff_ffff_fff0,
        ),
        (0, 0),
    ];
    for (x, y) in cases {
        let add = prog(&[&[0x48, 0x01, 0xd8], &[0x48, 0x11, 0xca]]); // add rax, rbx; adc rdx, rcx
        let sub = prog(&[&[0x48, 0x29, 0xd8], &[0x48, 0x19, 0xca]]); // sub rax, rbx; sbb rdx, rcx
        for (code, want) in [(add, x.wrapping_add(y)), (sub, x.wrapping_sub(y))] {
            let m = run_with(&code, |m| {
                m.cpu.regs[RAX] = x as u64;
                m.cpu.regs[RDX] = (x >> 64) as u64;
                m.cpu.regs[RBX] = y as u64;
                m.cpu.regs[RCX] = (y >> 64) as u64;
            });
            let got = (m.cpu.regs[RDX] as u128) << 64 | m.cpu.regs[RAX] as u128;
            assert_eq!(got, want, "{x:#x} op {y:#x}");
        }
    }
    // A 32-bit chain across a TB boundary (the carry comes from the dynamic path).
    let p = prog(&[&[0x01, 0xd8], &[0xeb, 0x00], &[0x11, 0xca]]);
    let m = run_with(&p, |m| {
        m.cpu.regs[RAX] = 0xffff_ffff;
        m.cpu.regs[RBX] = 1;
        m.cpu.regs[RDX] = 5;
    });
    assert_eq!((m.cpu.regs[RAX], m.cpu.regs[RDX]), (0, 6));
}

#[test]
fn flag_instructions() {
    // stc; inc rax keeps CF; setc bl; cmc; setc cl; std; clc; setc dl
    let p = prog(&[
        &[0xf9],
        &[0x48, 0xff, 0xc0],
        &[0x0f, 0x92, 0xc3],
        &[0xf5],
        &[0x0f, 0x92, 0xc1],
        &[0xfd],
        &[0xf8],
        &[0x0f, 0x92, 0xc2],
    ]);
    let m = run(&p);
    assert_eq!((m.cpu.regs[RBX], m.cpu.regs[RCX], m.cpu.regs[RDX]), (1, 0, 0));
    assert_eq!(m.cpu.rflags() & 0x400, 0x400, "DF set");
    let m = run(&[0xfd, 0xfc]); // std; cld
    assert_eq!(m.cpu.rflags() & 0x400, 0);
}

#[test]
fn unimplemented_instructions_raise_ud() {
    let cases: &[&[u8]] = &[
        &[0x0f, 0x0b],                         // ud2
        &[0x0f, 0xff, 0xc0],                   // ud0 eax, eax
        &[0x66, 0x0f, 0x3a, 0x44, 0xc1, 0x00], // pclmulqdq xmm0, xmm1, 0 (not advertised)
        &[0x0f, 0xae, 0x20],                   // xsave [rax] (the xsave family: not advertised)
        &[0xc5, 0xf8, 0x58, 0xc1],             // vaddps xmm0, xmm0, xmm1 (AVX: not advertised)
        &[0x8e, 0xc8],                         // mov cs, eax (never valid)
        &[0xf0, 0x01, 0xc0],                   // lock add eax, eax (invalid encoding)
        &[0x06],                               // push es (invalid in 64-bit mode)
    ];
    for code in cases {
        let p = prog(&[&[0xb8, 0x05, 0x00, 0x00, 0x00], code, &[0x90]]); // mov eax, 5; <insn>; nop
        let mut m = Machine::new(&p);
        assert_eq!(
            m.run(),
            Outcome::Fault {
                rip: CODE + 5,
                vector: 6
            },
            "{code:02x?}"
        );
        assert_eq!(m.cpu.regs[RAX], 5, "instructions before the fault are done");
    }
}

#[test]
fn faulting_access_restores_rip_and_keeps_earlier_state() {
    let p = prog(&[
        &[0x48, 0x83, 0xc0, 0x01], // add rax, 1
        &[0x48, 0x8b, 0x0b],       // mov rcx, [rbx] (unmapped)
        &[0x48, 0x83, 0xc0, 0x01], // add rax, 1
    ]);
    let mut m = Machine::new(&p);
    m.cpu.regs[RBX] = 0x10_0000;
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: CODE + 4,
            vector: 14
        }
    );
    assert_eq!(m.cpu.regs[RAX], 1);
    // The lazy flags are those of the first add.
    assert_eq!(m.cpu.rflags() & 0x8d5, 0);
}

struct Window(Vec<u8>, u64);

impl CodeFetch for Window {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> usize {
        let off = (addr - self.1) as usize;
        let n = buf.len().min(self.0.len().saturating_sub(off));
        buf[..n].copy_from_slice(&self.0[off..off + n]);
        n
    }
}

#[test]
fn fetch_faults_end_tbs_or_are_reported() {
    let target = I386Target::new();
    let mut f = Func::new(target.desc.clone());
    // The second instruction runs into an unfetchable byte: the TB ends before it.
    let mut w = Window(vec![0x90, 0x48, 0xb8, 1, 2, 3], 0x1000);
    let info = translate_tb(&target, &mut f, 0x1000, TbFlags::LONG, 16, &mut w).unwrap();
    assert_eq!((info.insns, info.size), (1, 1));
    // The first one: reported with the address that could not be fetched.
    let err = translate_tb(&target, &mut f, 0x1001, TbFlags::LONG, 16, &mut w).unwrap_err();
    assert_eq!(err.addr, 0x1006);
}

#[test]
fn tbs_end_at_the_page_boundary() {
    let target = I386Target::new();
    let mut f = Func::new(target.desc.clone());
    let mut w = Window(vec![0x90; 32], 0x1ff0);
    let info = translate_tb(&target, &mut f, 0x1ff0, TbFlags::LONG, 512, &mut w).unwrap();
    assert_eq!(info.insns, 16);
}

#[cfg(feature = "disas")]
#[test]
fn disassembly() {
    let text = rqemu_target_i386::translate::disassemble(&[0x48, 0x01, 0xd8, 0xc3], 0x1000, 64);
    assert!(text.contains("add rax,rbx") && text.contains("ret"), "{text}");
}

/// The IR of one TB of `code`, prepared.
fn prepared_ir(code: &[u8]) -> String {
    let target = I386Target::new();
    let mut f = Func::new(target.desc.clone());
    translate_tb(
        &target,
        &mut f,
        0x1000,
        TbFlags::LONG,
        16,
        &mut Window(code.to_vec(), 0x1000),
    )
    .unwrap();
    rqemu_tcg::prepare::prepare(&mut f).unwrap();
    f.dump()
}

#[test]
fn conditions_after_known_operations_need_no_helper() {
    // cmp/jl, sub/jbe, test/jle, add/jb, inc/jz: one comparison on the operands.
    let fast: &[&[u8]] = &[
        &[0x48, 0x39, 0xc8, 0x7c, 0x00],
        &[0x29, 0xc8, 0x76, 0x00],
        &[0x84, 0xc0, 0x7e, 0x00],
        &[0x48, 0x01, 0xc8, 0x72, 0x00],
        &[0xff, 0xc0, 0x74, 0x00],
        &[0x48, 0x39, 0xc8, 0x0f, 0x9f, 0xc0], // cmp; setg al
    ];
    for code in fast {
        let ir = prepared_ir(code);
        // (inc at the start of a TB computes the CF it keeps, but the jz does not need the helper.)
        assert!(!ir.contains("compute_eflags"), "{code:02x?}\n{ir}");
        assert!(ir.contains("brcond") || ir.contains("setcond"), "{ir}");
    }
    // jo after cmp and any condition at the start of a TB go through compute_eflags.
    for code in [&[0x48, 0x39, 0xc8, 0x70, 0x00][..], &[0x7c, 0x00]] {
        assert!(prepared_ir(code).contains("compute_eflags"), "{code:02x?}");
    }
}

#[test]
fn loop_and_jrcxz() {
    let p = prog(&[
        &[0xb9, 0x05, 0x00, 0x00, 0x00], // 0: mov ecx, 5
        &[0x48, 0xff, 0xc0],             // 5: L: inc rax
        &[0xe2, 0xfb],                   // 8: loop L
        &[0xe3, 0x02],                   // 10: jrcxz +2 (taken: rcx = 0)
        &[0xb3, 0x01],                   // 12: mov bl, 1 (skipped)
        &[0xb1, 0x03],                   // 14: mov cl, 3
        &[0x48, 0xff, 0xc2],             // 16: M: inc rdx
        &[0x48, 0x83, 0xfa, 0x02],       // 19: cmp rdx, 2
        &[0xe0, 0xf7],                   // 23: loopne M (stops when rdx == 2)
    ]);
    let m = run(&p);
    assert_eq!(m.cpu.regs[RAX], 5);
    assert_eq!(m.cpu.regs[RBX], 0);
    assert_eq!(m.cpu.regs[RDX], 2);
    assert_eq!(m.cpu.regs[RCX], 1);
}

#[test]
fn lock_prefixed_read_modify_write() {
    let p = prog(&[
        &mov_imm64(7, DATA),
        &[0xf0, 0x48, 0x0f, 0xc1, 0x07], // lock xadd [rdi], rax
        &[0xf0, 0x48, 0xff, 0x47, 0x08], // lock inc qword [rdi + 8]
        &[0xf0, 0x48, 0x0f, 0xb1, 0x0f], // lock cmpxchg [rdi], rcx
    ]);
    let m = run_with(&p, |m| {
        m.cpu.regs[RAX] = 5;
        m.cpu.regs[RCX] = 99;
        m.write_u64(DATA, 10);
        m.write_u64(DATA + 8, 41);
    });
    // xadd: [rdi] = 15, rax = 10; cmpxchg: 10 != 15 -> rax = 15, memory unchanged.
    assert_eq!(m.read_u64(DATA), 15);
    assert_eq!(m.cpu.regs[RAX], 15);
    assert_eq!(m.read_u64(DATA + 8), 42);
}

#[test]
fn protected_mode_32_bit_code() {
    // push 0x11223344; call f; pop ebx (the pushed value); ... f: mov eax, [esp + 4]; ret
    let code = prog(&[
        &[0x68, 0x44, 0x33, 0x22, 0x11], // 0: push 0x11223344
        &[0xe8, 0x03, 0x00, 0x00, 0x00], // 5: call 13
        &[0x5b],                         // 10: pop ebx
        &[0xeb, 0x05],                   // 11: jmp 18
        &[0x8b, 0x44, 0x24, 0x04],       // 13: mov eax, [esp + 4]
        &[0xc3],                         // 17: ret
        &[0x40],                         // 18: inc eax (one byte in 32-bit mode)
    ]);
    let mut m = Machine::new(&code);
    m.flags = TbFlags {
        bitness: 32,
        ss32: true,
        cs_base: 0,
        ..TbFlags::LONG
    };
    m.cpu.regs[RSP] = STACK_TOP;
    assert_eq!(m.run(), Outcome::End);
    assert_eq!(m.cpu.regs[RAX], 0x1122_3345);
    assert_eq!(m.cpu.regs[RBX], 0x1122_3344);
    assert_eq!(m.cpu.regs[RSP], STACK_TOP);
    assert_eq!(
        m.read_u64(STACK_TOP - 8) & 0xffff_ffff,
        CODE + 10,
        "32-bit return address"
    );
}

#[test]
fn string_instructions_with_and_without_rep() {
    let src = DATA;
    let dst = DATA + 0x100;
    let p = prog(&[
        &mov_imm64(6, src),
        &mov_imm64(7, dst),
        &mov_imm64(1, 5),
        &[0xf3, 0xa4], // rep movsb (5 bytes)
        &[0x48, 0xa5], // movsq (one quadword)
        &mov_imm64(0, 0x4141_4141_4141_4141),
        &mov_imm64(1, 3),
        &[0xf3, 0x66, 0xab], // rep stosw (3 words)
        &mov_imm64(6, src),
        &[0xad], // lodsd: eax = [src], zero-extends
        &mov_imm64(6, src),
        &mov_imm64(7, dst),
        &mov_imm64(1, 16),
        &[0xf3, 0xa6],       // repe cmpsb: stops after the first difference (byte 13)
        &[0x49, 0x89, 0xc8], // mov r8, rcx
        &mov_imm64(0, 0x41),
        &mov_imm64(7, dst),
        &mov_imm64(1, 100),
        &[0xf2, 0xae], // repne scasb: finds the first 0x41 (byte 13)
    ]);
    let m = run_with(&p, |m| {
        for i in 0..16u64 {
            let o = (src - harness::MEM_BASE + i) as usize;
            m.mem.bytes_mut()[o] = 0x10 + i as u8;
        }
    });
    let dst_bytes = |m: &Machine, n: usize| {
        let o = (dst - harness::MEM_BASE) as usize;
        m.mem.bytes()[o..o + n].to_vec()
    };
    let mut want: Vec<u8> = (0x10..0x1d).collect();
    want.extend([0x41; 6]);
    assert_eq!(dst_bytes(&m, 19), want);
    assert_eq!(m.cpu.regs[RAX], 0x41);
    assert_eq!(m.cpu.regs[8], 16 - 14, "repe cmpsb compared 14 bytes");
    assert_eq!(
        m.cpu.regs[RDI],
        dst + 14,
        "repne scasb stopped after the first 0x41 at byte 13"
    );
    assert_eq!(m.cpu.regs[RCX], 100 - 14);
}

#[test]
fn string_direction_flag_and_rep_with_zero_count() {
    let p = prog(&[
        &mov_imm64(7, DATA + 7),
        &mov_imm64(0, 0x99),
        &mov_imm64(1, 4),
        &[0xfd],       // std
        &[0xf3, 0xaa], // rep stosb downwards
        &[0xfc],       // cld
        &[0xf3, 0xaa], // rcx = 0: nothing
    ]);
    let m = run(&p);
    let o = (DATA - harness::MEM_BASE) as usize;
    assert_eq!(m.mem.bytes()[o..o + 8], [0, 0, 0, 0, 0x99, 0x99, 0x99, 0x99]);
    assert_eq!(m.cpu.regs[RDI], DATA + 3);
    assert_eq!(m.cpu.regs[RCX], 0);
}

#[test]
fn rep_ret_ignores_the_prefix() {
    let p = prog(&[
        &[0xe8, 0x02, 0x00, 0x00, 0x00], // call +2
        &[0xeb, 0x02],                   // jmp to the end
        &[0xf3, 0xc3],                   // rep ret
    ]);
    let m = run(&p);
    assert_eq!(m.cpu.regs[RSP], STACK_TOP);
}

#[test]
fn popf_restores_every_arithmetic_flag_and_df() {
    for flags in [0x8d5u64 | 0x400, 0, 0x41, 0x880] {
        let p = prog(&[
            &mov_imm64(0, flags | 0x2),
            &[0x50], // push rax
            &[0x9d], // popfq
            &[0x9c], // pushfq
            &[0x5a], // pop rdx
        ]);
        let m = run(&p);
        assert_eq!(m.cpu.regs[RDX] & 0xcd5, flags & 0xcd5, "popf {flags:#x}");
        assert_eq!(m.cpu.rflags() & 0xcd5, flags & 0xcd5);
    }
}

#[test]
fn xlat_translates_through_the_table() {
    let p = prog(&[&mov_imm64(3, DATA), &[0xb0, 0x05], &[0xd7]]); // rbx = table; mov al, 5; xlat
    let m = run_with(&p, |m| {
        let o = (DATA - harness::MEM_BASE) as usize;
        m.mem.bytes_mut()[o + 5] = 0xab;
        m.cpu.regs[RAX] = 0xffff_ff00;
    });
    assert_eq!(m.cpu.regs[RAX], 0xffff_ffab);
}

#[test]
fn cmpxchg8b_and_cmpxchg16b() {
    let p = prog(&[
        &mov_imm64(7, DATA),
        &[0x0f, 0xc7, 0x0f],             // cmpxchg8b [rdi]: equal -> [rdi] = ecx:ebx, ZF = 1
        &[0x41, 0x0f, 0x94, 0xc0],       // sete r8b
        &[0x0f, 0xc7, 0x0f],             // again: now different -> edx:eax = [rdi], ZF = 0
        &[0x41, 0x0f, 0x94, 0xc1],       // sete r9b
        &[0x48, 0x0f, 0xc7, 0x4f, 0x10], // cmpxchg16b [rdi + 16]: different -> rdx:rax = m128
    ]);
    let m = run_with(&p, |m| {
        m.write_u64(DATA, 0x1111_1111_2222_2222);
        m.write_u64(DATA + 16, 0x5555);
        m.write_u64(DATA + 24, 0x6666);
        m.cpu.regs[RAX] = 0xffff_ffff_2222_2222;
        m.cpu.regs[RDX] = 0x1111_1111;
        m.cpu.regs[RBX] = 0x4444_4444;
        m.cpu.regs[RCX] = 0x3333_3333;
    });
    assert_eq!(m.read_u64(DATA), 0x3333_3333_4444_4444);
    assert_eq!((m.cpu.regs[8], m.cpu.regs[9]), (1, 0));
    assert_eq!((m.cpu.regs[RAX], m.cpu.regs[RDX]), (0x5555, 0x6666));
    // Misaligned cmpxchg16b: #GP(0).
    let p = prog(&[&mov_imm64(7, DATA + 8), &[0x48, 0x0f, 0xc7, 0x0f]]);
    let mut m = Machine::new(&p);
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: CODE + 10,
            vector: 13
        }
    );
}

#[test]
fn every_byte_word_and_dword_register_maps_to_its_full_register() {
    // mov r/m8 with REX: every byte register 0..16 gets 0x40 + n; then mov r16 and r32 the same way.
    for (prefix, opcode, width) in [(0x40u8, 0xc6u8, 1u32), (0x66, 0xc7, 2), (0x00, 0xc7, 4)] {
        let mut p = Vec::new();
        for n in 0..16u8 {
            if n == 4 {
                continue; // leave rsp alone
            }
            let rex = 0x40 | (n >> 3);
            if prefix == 0x66 {
                p.push(0x66);
            }
            if prefix == 0x40 || n >= 8 {
                p.push(rex);
            }
            p.extend([opcode, 0xc0 | (n & 7)]);
            p.extend(&(0x40 + n as u32).to_le_bytes()[..width as usize]);
        }
        let m = run_with(&p, |m| {
            for n in 0..16 {
                if n != 4 {
                    m.cpu.regs[n] = 0xffff_ffff_ffff_ffff;
                }
            }
        });
        for n in 0..16usize {
            if n == 4 {
                continue;
            }
            let want = match width {
                1 => 0xffff_ffff_ffff_ff00 | (0x40 + n as u64),
                2 => 0xffff_ffff_ffff_0000 | (0x40 + n as u64),
                _ => 0x40 + n as u64,
            };
            assert_eq!(m.cpu.regs[n], want, "register {n} width {width}");
        }
    }
}

#[test]
fn cmpxchg_with_the_accumulator_as_destination() {
    // The accumulator always equals itself: ZF = 1 and the destination (the accumulator) takes the source; the
    // accumulator is not written back on success (found by cpu-diff).
    for (code, rax, src, want) in [
        (&[0x0f, 0xb0, 0xd8][..], 0xdf_u64, 0x80_u64, 0x80_u64), // cmpxchg al, bl
        (&[0x66, 0x0f, 0xb1, 0xd8][..], 0x1111_5153, 0x2, 0x1111_0002), // cmpxchg ax, bx
        (&[0x48, 0x0f, 0xb1, 0xd8][..], u64::MAX, 1 << 63, 1 << 63), // cmpxchg rax, rbx
        (&[0x0f, 0xb1, 0xd8][..], u64::MAX, 7, 7),               // cmpxchg eax, ebx
    ] {
        let m = run_with(code, |m| {
            m.cpu.regs[RAX] = rax;
            m.cpu.regs[3] = src;
        });
        assert_eq!(m.cpu.regs[RAX], want, "{code:02x?}");
        assert_ne!(m.cpu.rflags() & 0x40, 0, "ZF");
    }
}
