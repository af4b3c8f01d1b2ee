//! The native oracle on instructions with known results, its fault classification and its robustness.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use rqemu_tests_cpu_diff::generate::{GenOptions, Generator};
use rqemu_tests_cpu_diff::native::{run_native, try_run_native, NativeOptions};
use rqemu_tests_cpu_diff::state::*;
use std::collections::HashMap;
use std::time::Duration;

const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RBX: usize = 3;
const RBP: usize = 5;

fn case(code: &[u8], f: impl FnOnce(&mut CpuState)) -> Case {
    let mut init = CpuState::default();
    init.gpr[RSP] = SCRATCH_STACK_TOP;
    f(&mut init);
    Case {
        init,
        code: code.to_vec(),
        bitness: 64,
    }
}

fn run_one(c: Case) -> CpuSnapshot {
    run_native(&[c]).pop().unwrap()
}

#[test]
fn add_with_carry_sets_flags() {
    // adc rax, rbx with CF set: -1 + 1 + 1 = 1, carry out, AF, no overflow.
    let r = run_one(case(&[0x48, 0x11, 0xd8], |s| {
        s.gpr[RAX] = u64::MAX;
        s.gpr[RBX] = 1;
        s.rflags |= flags::CF;
    }));
    assert_eq!(r.fault, Fault::None);
    assert_eq!(r.rip, 3);
    assert_eq!(r.state.gpr[RAX], 1);
    assert_eq!(r.state.rflags & flags::STATUS, flags::CF | flags::AF);
    // add rax, rbx: MAX + 1 overflows into MIN.
    let r = run_one(case(&[0x48, 0x01, 0xd8], |s| {
        s.gpr[RAX] = i64::MAX as u64;
        s.gpr[RBX] = 1;
    }));
    assert_eq!(r.state.gpr[RAX], 1 << 63);
    assert_eq!(
        r.state.rflags & flags::STATUS,
        flags::OF | flags::SF | flags::AF | flags::PF
    );
}

#[test]
fn registers_xmm_mxcsr_and_memory_round_trip() {
    // nop: everything comes back as it went in.
    let r = run_one(case(&[0x90], |s| {
        for (i, g) in s.gpr.iter_mut().enumerate() {
            if i != RSP {
                *g = 0x0101_0101_0101_0101 * i as u64;
            }
        }
        for (i, x) in s.xmm.iter_mut().enumerate() {
            *x = u128::MAX / 17 * i as u128;
        }
        s.mxcsr = 0x7f80 | 0x40;
        s.rflags |= flags::OF | flags::ZF;
        for (i, b) in s.mem.iter_mut().enumerate() {
            *b = i as u8;
        }
    }));
    assert_eq!(r.fault, Fault::None);
    assert_eq!(r.state.gpr[RBX], 0x0303_0303_0303_0303);
    assert_eq!(r.state.gpr[15], 0x0f0f_0f0f_0f0f_0f0f);
    assert_eq!(r.state.xmm[15], u128::MAX / 17 * 15);
    assert_eq!(r.state.mxcsr, 0x7fc0);
    assert_eq!(r.state.rflags & flags::STATUS, flags::OF | flags::ZF);
    assert_eq!(r.state.mem[200], 200);
    // mov [rbx+8], rax; push rcx: memory and the scratch stack are captured.
    let r = run_one(case(&[0x48, 0x89, 0x43, 0x08, 0x51], |s| {
        s.gpr[RBX] = SCRATCH_ADDR;
        s.gpr[RAX] = 0x1122_3344_5566_7788;
        s.gpr[RCX] = 0xaabb;
    }));
    assert_eq!(r.fault, Fault::None);
    assert_eq!(&r.state.mem[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
    let top = (SCRATCH_STACK_TOP - SCRATCH_ADDR) as usize;
    assert_eq!(&r.state.mem[top - 8..top], &0xaabbu64.to_le_bytes());
    assert_eq!(r.state.gpr[RSP], SCRATCH_STACK_TOP - 8);
}

#[test]
fn divide_by_zero_is_de() {
    // div rcx with rcx = 0: #DE at the div, state unchanged.
    let c = case(&[0x48, 0xf7, 0xf1], |s| s.gpr[RAX] = 5);
    let r = run_one(c.clone());
    assert_eq!(r.fault, Fault::De);
    assert_eq!(r.rip, 0);
    // Exactly the state before the instruction (RF, set by fault delivery, is not reported).
    assert_eq!(r.state, c.init);
    // idiv ecx: INT_MIN / -1 overflows, also #DE; after a nop the RIP is 1.
    let r = run_one(case(&[0x90, 0xf7, 0xf9], |s| {
        s.gpr[RAX] = 0x8000_0000;
        s.gpr[RDX] = 0xffff_ffff;
        s.gpr[RCX] = 0xffff_ffff;
    }));
    assert_eq!((r.fault, r.rip), (Fault::De, 1));
}

#[test]
fn ud2_is_ud() {
    let r = run_one(case(&[0x0f, 0x0b], |_| {}));
    assert_eq!((r.fault, r.rip), (Fault::Ud, 0));
}

#[test]
fn unmapped_load_is_pf_with_address() {
    // mov rax, [rbx+0x10]
    let r = run_one(case(&[0x48, 0x8b, 0x43, 0x10], |s| s.gpr[RBX] = UNMAPPED_ADDR));
    assert_eq!(
        r.fault,
        Fault::Pf {
            addr: UNMAPPED_ADDR + 0x10,
            write: false
        }
    );
    // mov [rbx], eax: a write.
    let r = run_one(case(&[0x89, 0x03], |s| s.gpr[RBX] = UNMAPPED_ADDR + 4));
    assert_eq!(
        r.fault,
        Fault::Pf {
            addr: UNMAPPED_ADDR + 4,
            write: true
        }
    );
}

#[test]
fn misaligned_movdqa_is_gp() {
    // movdqa xmm0, [rax]
    let r = run_one(case(&[0x66, 0x0f, 0x6f, 0x00], |s| s.gpr[RAX] = SCRATCH_ADDR + 1));
    assert_eq!((r.fault, r.rip), (Fault::Gp, 0));
    let r = run_one(case(&[0x66, 0x0f, 0x6f, 0x00], |s| s.gpr[RAX] = SCRATCH_ADDR + 16));
    assert_eq!(r.fault, Fault::None);
}

#[test]
fn misaligned_access_with_ac_is_ac() {
    // mov eax, [rbx] with RFLAGS.AC set and a misaligned address.
    let r = run_one(case(&[0x8b, 0x03], |s| {
        s.gpr[RBX] = SCRATCH_ADDR + 1;
        s.rflags |= flags::AC;
    }));
    assert_eq!(r.fault, Fault::Ac);
}

#[test]
fn clobbering_rsp_and_rbp_returns_cleanly() {
    // xor esp, esp; mov rbp, -1; then a pop through the clobbered RSP faults, and the next case still runs.
    let clobber = case(&[0x31, 0xe4, 0x48, 0xc7, 0xc5, 0xff, 0xff, 0xff, 0xff], |_| {});
    let pop = case(&[0x31, 0xe4, 0x58], |_| {});
    let after = case(&[0x48, 0xff, 0xc0], |s| s.gpr[RAX] = 41);
    let r = run_native(&[clobber, pop, after]);
    assert_eq!(r[0].fault, Fault::None);
    assert_eq!((r[0].state.gpr[RSP], r[0].state.gpr[RBP]), (0, u64::MAX));
    assert_eq!((r[1].fault, r[1].rip), (Fault::Pf { addr: 0, write: false }, 2));
    assert_eq!((r[2].fault, r[2].state.gpr[RAX]), (Fault::None, 42));
}

#[test]
fn infinite_loop_times_out_and_the_batch_goes_on() {
    let opts = NativeOptions {
        timeout: Duration::from_millis(200),
        ..NativeOptions::default()
    };
    let spin = case(&[0xeb, 0xfe], |_| {});
    let inc = case(&[0x48, 0xff, 0xc0], |_| {});
    let r = try_run_native(&[inc.clone(), spin, inc], &opts).unwrap();
    assert_eq!(r[0].fault, Fault::None);
    assert_eq!(r[1].fault, Fault::Timeout);
    assert_eq!((r[2].fault, r[2].state.gpr[RAX]), (Fault::None, 1));
}

#[test]
fn a_system_call_kills_only_its_case() {
    // syscall (exit_group) under seccomp strict: the child dies, the next case runs in a new one.
    let sys = case(&[0x0f, 0x05], |s| s.gpr[RAX] = 231);
    let inc = case(&[0x48, 0xff, 0xc0], |_| {});
    let r = run_native(&[sys, inc]);
    assert!(matches!(r[0].fault, Fault::Crashed { .. }), "{:?}", r[0].fault);
    assert_eq!(r[1].fault, Fault::None);
}

#[test]
fn generated_cases_run_without_harness_failure_and_deterministically() {
    let g = Generator::new(GenOptions::default());
    let cases = g.cases(0x5eed, 10_000);
    let a = run_native(&cases);
    let b = run_native(&cases);
    assert_eq!(a, b);
    let mut faults: HashMap<String, usize> = HashMap::new();
    for (c, r) in cases.iter().zip(&a) {
        assert!(expected_fault(c, r), "unexpected {} for {:02x?}", r.fault, c.code);
        let kind = r.fault.to_string();
        *faults.entry(kind).or_default() += 1;
        if r.fault == Fault::None {
            assert_eq!(r.rip, c.end_offset());
        }
    }
    // Most cases complete; divides by zero or overflowing divides raise #DE, misaligned SSE and reserved MXCSR
    // bits #GP, branches not taken into their ud2 filler #UD.
    assert!(faults["none"] > 8_500, "{faults:?}");
}

#[test]
fn generated_sequences_stay_inside_the_scratch_area() {
    let g = Generator::new(GenOptions {
        max_insns: 3,
        ..GenOptions::default()
    });
    let cases = g.cases(0xabc, 5_000);
    for (c, r) in cases.iter().zip(run_native(&cases)) {
        assert!(expected_fault(c, &r), "{} for {:02x?}", r.fault, c.code);
    }
}

#[test]
fn native_results_record_and_parse_back() {
    use rqemu_tests_cpu_diff::compare::{comparable, compare};
    use rqemu_tests_cpu_diff::{parse_vectors, record};
    let cases = Generator::new(GenOptions {
        max_insns: 2,
        ..GenOptions::default()
    })
    .cases(11, 1000);
    let results = run_native(&cases);
    let parsed = parse_vectors(&record(&cases, &results)).unwrap();
    for ((c, r), (pc, pr)) in cases.iter().zip(&results).zip(&parsed) {
        assert_eq!((c, r), (pc, pr));
        assert!(comparable(r));
        assert!(compare(c, r, pr).is_empty());
    }
}

/// The flags the manuals call unaffected are unchanged on this CPU (checks the harness's flag capture and the
/// premises of `undefined_flags.rs`).
#[test]
fn unaffected_flags_are_unchanged_natively() {
    use iced_x86::{Mnemonic as M, OpKind};
    use rqemu_tests_cpu_diff::compare::decode_case;
    use rqemu_tests_cpu_diff::undefined_flags::operand_value;
    // The integer families are about half of the default mix since the floating-point ones joined it.
    let cases = Generator::new(GenOptions::default()).cases(0xf1a9, 16_000);
    let results = run_native(&cases);
    let mut checked = 0;
    for (c, r) in cases.iter().zip(&results) {
        if r.fault != Fault::None {
            continue;
        }
        let insn = decode_case(c)[0];
        let m = insn.mnemonic();
        let name = format!("{m:?}");
        let count_op = match m {
            M::Shl | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => Some(1),
            M::Shld | M::Shrd => Some(2),
            _ => None,
        };
        let width_mask = if insn.op_kind(0) == OpKind::Register && insn.op_register(0).is_gpr64()
            || insn.op_kind(0) == OpKind::Memory && insn.memory_size().size() == 8
        {
            0x3f
        } else {
            0x1f
        };
        let unaffected = match m {
            _ if count_op.is_some_and(|op| operand_value(&insn, op, &c.init) & width_mask == 0) => flags::STATUS,
            M::Not | M::Movzx | M::Movsx | M::Movsxd | M::Lea | M::Bswap | M::Xchg | M::Nop => flags::STATUS,
            _ if name.starts_with("Set") || name.starts_with("Cmov") => flags::STATUS,
            M::Inc | M::Dec => flags::CF,
            M::Bt | M::Bts | M::Btr | M::Btc => flags::ZF,
            M::Rol | M::Ror | M::Rcl | M::Rcr => flags::SF | flags::ZF | flags::AF | flags::PF,
            _ => 0,
        };
        assert_eq!(
            (r.state.rflags ^ c.init.rflags) & unaffected,
            0,
            "{insn} changed {unaffected:#x}"
        );
        if unaffected != 0 {
            checked += 1;
        }
    }
    assert!(checked > 2_000, "{checked}");
}

#[test]
fn compact_cases_run_too() {
    let g = Generator::new(GenOptions {
        compact: true,
        ..GenOptions::default()
    });
    let cases = g.cases(77, 2_000);
    // Only the XMM registers an instruction names get values (xmm0 also for the forms that read it
    // implicitly: blendv*, pblendvb, pcmpXstrm, sha*).
    for c in &cases {
        let insn = rqemu_tests_cpu_diff::compare::decode_case(c)[0];
        let named: Vec<usize> = (0..insn.op_count())
            .filter(|&i| insn.op_kind(i) == iced_x86::OpKind::Register && insn.op_register(i).is_xmm())
            .map(|i| insn.op_register(i).number())
            .collect();
        for (n, v) in c.init.xmm.iter().enumerate() {
            assert!(*v == 0 || n == 0 || named.contains(&n), "xmm{n} set for {insn}");
        }
    }
    for (c, r) in cases.iter().zip(run_native(&cases)) {
        assert!(expected_fault(c, &r), "{} for {:02x?}", r.fault, c.code);
    }
}

/// The outcomes generated cases may have: the end, #DE (divides), #GP (misaligned aligned-SSE or cmpxchg16b
/// operands, reserved MXCSR bits), #MF or #XM (an unmasked x87 or SSE exception: the floating-point families
/// start from random control words) or #UD at a `ud2` that a branch should have skipped (the generator's filler).
fn expected_fault(c: &rqemu_tests_cpu_diff::Case, r: &rqemu_tests_cpu_diff::CpuSnapshot) -> bool {
    match r.fault {
        Fault::None | Fault::De | Fault::Gp | Fault::Mf | Fault::Xm => true,
        Fault::Ud => c.code.get(r.rip as usize..r.rip as usize + 2) == Some(&[0x0f, 0x0b][..]),
        _ => false,
    }
}

fn case32(code: &[u8], f: impl FnOnce(&mut CpuState)) -> Case {
    let mut c = case(code, f);
    c.bitness = 32;
    c
}

/// 32-bit cases run in compatibility mode: 0x40 is `inc eax` (a REX prefix in 64-bit mode), the stack is 32-bit,
/// flat DS/ES reach the scratch page, a fault still comes back, and the harness returns to 64-bit mode for the
/// next (64-bit) case of the same batch. 16-bit cases run with segments based at CODE_ADDR and SCRATCH_ADDR, and
/// a 32-bit case after one still has a flat stack.
#[test]
fn thirty_two_bit_cases_run_in_compatibility_mode() {
    let results = run_native(&[
        // inc eax; push eax; mov [ebx], eax
        case32(&[0x40, 0x50, 0x89, 0x03], |s| {
            s.gpr[RAX] = 0xffff_ffff;
            s.gpr[RBX] = SCRATCH_ADDR + 0x10;
            s.mem[0x10..0x14].fill(0xff);
        }),
        // aaa (#UD in 64-bit mode): AL 0x0a -> AX 0x0100, CF and AF
        case32(&[0x37], |s| s.gpr[RAX] = 0x0a),
        // mov eax, [ebx] from an unmapped page: #PF at its address
        case32(&[0x8b, 0x03], |s| s.gpr[RBX] = UNMAPPED_ADDR),
        // a 64-bit case after them: inc eax is 0xff 0xc0 here
        case(&[0xff, 0xc0], |s| s.gpr[RAX] = 0xffff_ffff),
        // 16-bit code: inc ax (0x40); push ax; mov [bx], ax with BX an offset into the data segment at
        // SCRATCH_ADDR; SP is an offset too
        case16(&[0x40, 0x50, 0x89, 0x07], |s| {
            s.gpr[RAX] = 0x1234_ffff;
            s.gpr[RBX] = 0x10;
            s.gpr[RSP] = SCRATCH_STACK_TOP - SCRATCH_ADDR;
            s.mem[0x10..0x12].fill(0xff);
        }),
        // and a 32-bit case after it (its prologue reloads SS)
        case32(&[0x50], |s| s.gpr[RAX] = 7),
    ]);
    let r = &results[0];
    assert_eq!((r.fault, r.rip), (Fault::None, 4));
    assert_eq!(r.state.gpr[RAX], 0);
    assert_eq!(r.state.rflags & flags::ZF, flags::ZF);
    assert_eq!(r.state.gpr[RSP], SCRATCH_STACK_TOP - 4);
    assert_eq!(r.state.mem[0x10..0x14], [0, 0, 0, 0]);
    let r = &results[1];
    assert_eq!((r.fault, r.state.gpr[RAX]), (Fault::None, 0x100));
    assert_eq!(r.state.rflags & (flags::CF | flags::AF), flags::CF | flags::AF);
    assert_eq!(
        results[2].fault,
        Fault::Pf {
            addr: UNMAPPED_ADDR,
            write: false
        }
    );
    let r = &results[3];
    assert_eq!((r.fault, r.state.gpr[RAX]), (Fault::None, 0));
    let r = &results[4];
    assert_eq!((r.fault, r.rip), (Fault::None, 4));
    // inc ax wraps AX alone; ZF from the 16-bit result.
    assert_eq!(r.state.gpr[RAX], 0x1234_0000);
    assert_eq!(r.state.rflags & flags::ZF, flags::ZF);
    assert_eq!(r.state.gpr[RSP], 0xe0 - 2);
    assert_eq!(r.state.mem[0x10..0x12], [0, 0]);
    assert_eq!(r.state.mem[0xde..0xe0], [0, 0]);
    let r = &results[5];
    assert_eq!((r.fault, r.state.gpr[RSP]), (Fault::None, SCRATCH_STACK_TOP - 4));
    assert_eq!(r.state.mem[0xdc..0xe0], [7, 0, 0, 0]);
}

fn case16(code: &[u8], f: impl FnOnce(&mut CpuState)) -> Case {
    let mut c = case(code, f);
    c.bitness = 16;
    c
}

// ---- x87, MMX and SSE floating point ----------------------------------------------------------------------

#[test]
fn x87_state_round_trips_and_fld1_pushes() {
    // nop: FCW, FSW (TOP 5, C3, a masked flag), FTW and all eight registers come back as they went in.
    let setup = |s: &mut CpuState| {
        s.fcw = 0x0b7f;
        s.fsw = 5 << 11 | 0x4000 | 0x20;
        s.ftw = 0b1010_0101;
        for (i, st) in s.st.iter_mut().enumerate() {
            *st = 0x3fff_8000_0000_0000_0000 + i as u128;
        }
    };
    let r = run_one(case(&[0x90], setup));
    let mut want = CpuState::default();
    want.gpr[RSP] = SCRATCH_STACK_TOP;
    setup(&mut want);
    assert_eq!((r.fault, r.state.clone()), (Fault::None, want.clone()));
    // fld1: TOP 5 -> 4, the new ST0 is 1.0, the old ST0..ST6 move down one, physical register 4 becomes valid.
    let r = run_one(case(&[0xd9, 0xe8], setup));
    assert_eq!(r.fault, Fault::None);
    assert_eq!(r.state.fsw >> 11 & 7, 4);
    assert_eq!(r.state.st[0], 0x3fff_8000_0000_0000_0000);
    assert_eq!(r.state.st[1..], want.st[..7]);
    assert_eq!(r.state.ftw, want.ftw | 1 << 4);
}

#[test]
fn pending_x87_exception_raises_mf_and_keeps_fsw() {
    // fwait with ZE flagged and unmasked (ES, B set): #MF at the fwait, FSW unchanged.
    let r = run_one(case(&[0x9b], |s| {
        s.fcw = 0x037b;
        s.fsw = 0x8084;
    }));
    assert_eq!((r.fault, r.rip, r.state.fsw), (Fault::Mf, 0, 0x8084));
    // fnclex is not a waiting instruction: it clears the flags without #MF.
    let r = run_one(case(&[0xdb, 0xe2], |s| {
        s.fcw = 0x037b;
        s.fsw = 0x8084;
    }));
    assert_eq!((r.fault, r.state.fsw), (Fault::None, 0));
}

#[test]
fn unmasked_sse_exception_raises_xm_with_the_flag_set() {
    // divss xmm0, xmm1 with 1.0 / 0.0 and ZE unmasked: #XM, destination unchanged, ZE set in MXCSR.
    let setup = |s: &mut CpuState| {
        s.xmm[0] = 0x3f80_0000;
        s.xmm[1] = 0;
        s.mxcsr = MXCSR_DEFAULT & !(1 << 9);
    };
    let r = run_one(case(&[0xf3, 0x0f, 0x5e, 0xc1], setup));
    assert_eq!((r.fault, r.rip), (Fault::Xm, 0));
    assert_eq!(r.state.xmm[0], 0x3f80_0000);
    assert_eq!(r.state.mxcsr, (MXCSR_DEFAULT & !(1 << 9)) | 1 << 2);
    // Masked: +inf and the flag.
    let r = run_one(case(&[0xf3, 0x0f, 0x5e, 0xc1], |s| {
        setup(s);
        s.mxcsr = MXCSR_DEFAULT;
    }));
    assert_eq!(
        (r.fault, r.state.xmm[0] as u32, r.state.mxcsr),
        (Fault::None, 0x7f80_0000, MXCSR_DEFAULT | 4)
    );
}

#[test]
fn fp_families_run_natively_and_deterministically() {
    use rqemu_tests_cpu_diff::generate::FP_SIMD_FAMILIES;
    for bitness in [64, 32] {
        let g = Generator::new(GenOptions {
            families: FP_SIMD_FAMILIES.to_vec(),
            bitness,
            ..GenOptions::default()
        });
        let cases = g.cases(21, 3000);
        let a = run_native(&cases);
        let b = run_native(&cases);
        assert_eq!(a, b, "two native runs of the same FP cases differ");
        let mut faults: HashMap<String, usize> = HashMap::new();
        for r in &a {
            *faults
                .entry(format!("{:?}", r.fault).split([' ', '{']).next().unwrap().to_string())
                .or_default() += 1;
            // The 80-bit images stay 80 bits, TOP and everything else come from a real FXSAVE image.
            assert!(r.state.st.iter().all(|v| v >> 80 == 0));
        }
        // Most cases complete; unmasked exceptions and misaligned operands show up too.
        assert!(faults["None"] > 1500, "{bitness}: {faults:?}");
        for f in ["Mf", "Xm", "Gp"] {
            assert!(
                faults.get(f).copied().unwrap_or(0) > 10,
                "{bitness}: {f} too rare: {faults:?}"
            );
        }
        assert!(
            !faults.contains_key("Crashed") && !faults.contains_key("Timeout"),
            "{faults:?}"
        );
    }
}

/// A random x87 state (any TOP, tags, 80-bit images, FCW; flags without a pending exception) for the
/// fxsave/fxrstor comparison below.
fn random_x87(rng: &mut rqemu_tests_cpu_diff::generate::SplitMix64, s: &mut CpuState) {
    s.fcw = 0x40 | (rng.next_u64() as u16 & 0x0f3f);
    s.fsw = (rng.below(8) as u16) << 11 | (rng.next_u64() as u16 & 0x4700) | (rng.next_u64() as u16 & s.fcw & 0x3f);
    s.ftw = rng.next_u64() as u8;
    for st in s.st.iter_mut() {
        *st = (rng.next_u64() as u128) << 16 | rng.next_u64() as u128 & 0xffff;
    }
}

#[test]
fn fxsave_and_fxrstor_carry_the_x87_state_as_the_host_does() {
    use rqemu_tests_cpu_diff::compare::{compare, CpuUnderTest};
    use rqemu_tests_cpu_diff::generate::SplitMix64;
    use rqemu_tests_cpu_diff::rqemu::Rqemu;
    let mut rng = SplitMix64(99);
    let mut cases = Vec::new();
    for i in 0..200 {
        if i % 2 == 0 {
            // fxsave64 [rbx]: the image of a random state.
            cases.push(case(&[0x48, 0x0f, 0xae, 0x03], |s| {
                s.gpr[RBX] = SCRATCH_ADDR;
                random_x87(&mut rng, s);
            }));
        } else {
            // fxrstor64 [rbx] from the image of a random state (bytes 256..512 of the image are zero).
            let mut image = CpuState::default();
            random_x87(&mut rng, &mut image);
            cases.push(case(&[0x48, 0x0f, 0xae, 0x0b], |s| {
                s.gpr[RBX] = SCRATCH_ADDR;
                s.mem[0..2].copy_from_slice(&image.fcw.to_le_bytes());
                s.mem[2..4].copy_from_slice(&image.fsw.to_le_bytes());
                s.mem[4] = image.ftw;
                s.mem[24..28].copy_from_slice(&MXCSR_DEFAULT.to_le_bytes());
                for (k, v) in image.st.iter().enumerate() {
                    s.mem[32 + 16 * k..42 + 16 * k].copy_from_slice(&v.to_le_bytes()[..10]);
                }
            }));
        }
    }
    let native = run_native(&cases);
    let mut cpu = Rqemu::tci();
    for (c, n) in cases.iter().zip(&native) {
        let mut r = cpu.run(c);
        assert_eq!(n.fault, Fault::None);
        // FOP/FIP/FDP (bytes 6..24) hold host addresses natively; MXCSR_MASK (28..32) differs by design.
        for i in (6..24).chain(28..32) {
            r.state.mem[i] = n.state.mem[i];
        }
        let diffs = compare(c, n, &r);
        assert!(diffs.is_empty(), "{:02x?}: {diffs:?}", c.code);
    }
}
