//! rdtsc, rdtscp and rdpid: edx:eax is the TSC split in halves (upper halves of rax/rdx zero), reads strictly
//! increase across instructions and TBs, rdtscp and rdpid read TSC_AUX, and the TSC comes from the state's
//! clock hook plus `tsc_offset`.

mod harness;

use harness::{mov_imm64, run_with, Machine, Outcome, DATA};
use rqemu_target_i386::TbFlags;

/// `rdtsc; shl rdx, 32; or rax, rdx; mov [rdi], rax; add rdi, 8`, `n` times (a TB end every 4th).
fn reads(n: usize, rdtscp: bool) -> Vec<u8> {
    let mut p = mov_imm64(7, DATA);
    for i in 0..n {
        if rdtscp {
            p.extend([0x0f, 0x01, 0xf9]);
        } else {
            p.extend([0x0f, 0x31]);
        }
        p.extend([
            0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0, 0x48, 0x89, 0x07, 0x48, 0x83, 0xc7, 0x08,
        ]);
        if i % 4 == 3 {
            p.extend([0xeb, 0x00]);
        }
    }
    p
}

#[test]
fn rdtsc_is_strictly_monotonic_across_reads_and_tbs() {
    for rdtscp in [false, true] {
        let n = 64;
        // The host clock: one run (the two pipelines of `run_with` would read different times).
        let mut m = Machine::new(&reads(n, rdtscp));
        assert_eq!(m.run(), Outcome::End);
        let vals: Vec<u64> = (0..n).map(|i| m.read_u64(DATA + 8 * i as u64)).collect();
        for w in vals.windows(2) {
            assert!(w[1] > w[0], "{w:?}");
        }
        assert_eq!(m.cpu.tsc_last, vals[n - 1]);
    }
}

#[test]
fn rdtsc_splits_edx_eax_and_clears_the_upper_halves() {
    let mut p = mov_imm64(0, u64::MAX);
    p.extend(mov_imm64(2, u64::MAX));
    p.extend([0x0f, 0x31]);
    let m = run_with(&p, |m| {
        m.cpu.tsc_clock = |_| 0x1234_5678_9abc_def0;
        m.cpu.tsc_offset = 0x1_0000_0000;
    });
    assert_eq!(m.cpu.regs[0], 0x9abc_def0);
    assert_eq!(m.cpu.regs[2], 0x1234_5679);
}

#[test]
fn the_clock_hook_and_offset_drive_the_tsc_and_a_stopped_clock_still_counts() {
    // A clock that does not move (the wasm32 default): each read is one more than the last.
    let m = run_with(&reads(3, false), |m| {
        m.cpu.tsc_clock = |_| 1000;
        m.cpu.tsc_offset = 5;
    });
    assert_eq!(
        (0..3).map(|i| m.read_u64(DATA + 8 * i)).collect::<Vec<_>>(),
        [1005, 1006, 1007]
    );
    // The clock may read the state (a virtual clock the machine keeps there, for example).
    let m = run_with(&reads(1, false), |m| {
        m.cpu.tsc_clock = |s| s.msrs.misc_enable * 2;
        m.cpu.msrs.misc_enable = 21;
    });
    assert_eq!(m.read_u64(DATA), 42);
}

#[test]
fn rdtscp_and_rdpid_read_tsc_aux() {
    // rdtscp; mov rsi, rcx; rdpid rbx (F3 0F C7 FB)
    let mut p = mov_imm64(1, u64::MAX);
    p.extend(mov_imm64(3, u64::MAX));
    p.extend([0x0f, 0x01, 0xf9, 0x48, 0x89, 0xce, 0xf3, 0x0f, 0xc7, 0xfb]);
    let m = run_with(&p, |m| {
        m.cpu.msrs.tsc_aux = 0x1234_5678;
        m.cpu.tsc_clock = |_| 1;
    });
    assert_eq!(m.cpu.regs[6], 0x1234_5678, "rdtscp: ecx = TSC_AUX, zero-extended");
    assert_eq!(m.cpu.regs[3], 0x1234_5678, "rdpid r64");
    // 32-bit code: rdpid eax.
    let m = run_with(&[0xf3, 0x0f, 0xc7, 0xf8], |m| {
        m.cpu.msrs.tsc_aux = 7;
        m.flags = TbFlags {
            bitness: 32,
            ss32: true,
            cs_base: 0,
            ..TbFlags::LONG
        };
    });
    assert_eq!(m.cpu.regs[0], 7);
}
