//! The rqemu side of the differential test on hand-written cases, without the oracle: a normal end, the fault
//! mapping (#DE, #UD, #PF with its address and direction) and the scratch memory round trip.

use rqemu_tests_cpu_diff::compare::CpuUnderTest;
use rqemu_tests_cpu_diff::rqemu::Rqemu;
use rqemu_tests_cpu_diff::state::{flags, Case, CpuState, Fault, SCRATCH_ADDR, SCRATCH_STACK_TOP, UNMAPPED_ADDR};

fn case(code: &[u8], setup: impl FnOnce(&mut CpuState)) -> Case {
    let mut init = CpuState::default();
    init.gpr[4] = SCRATCH_STACK_TOP;
    setup(&mut init);
    Case {
        init,
        code: code.to_vec(),
        bitness: 64,
    }
}

#[test]
fn a_case_runs_to_its_terminator() {
    // add rax, rbx; mov [rsi], rax
    let c = case(&[0x48, 0x01, 0xd8, 0x48, 0x89, 0x06], |s| {
        s.gpr[0] = u64::MAX;
        s.gpr[3] = 1;
        s.gpr[6] = SCRATCH_ADDR + 8;
    });
    let r = Rqemu::tci().run(&c);
    assert_eq!(r.fault, Fault::None);
    assert_eq!(r.rip, 6);
    assert_eq!(r.state.gpr[0], 0);
    assert_eq!(
        r.state.rflags & flags::STATUS,
        flags::CF | flags::ZF | flags::PF | flags::AF
    );
    assert_ne!(r.state.rflags & flags::IF, 0);
    assert_eq!(&r.state.mem[8..16], &[0; 8]);
}

#[test]
fn faults_map_to_the_oracle_kinds() {
    let mut cpu = Rqemu::tci();
    // div rbx with rbx = 0, after a nop: #DE at offset 1, state of the faulting instruction.
    let r = cpu.run(&case(&[0x90, 0x48, 0xf7, 0xf3], |_| {}));
    assert_eq!((r.fault, r.rip), (Fault::De, 1));
    // ud2
    let r = cpu.run(&case(&[0x0f, 0x0b], |_| {}));
    assert_eq!((r.fault, r.rip), (Fault::Ud, 0));
    // mov rax, [rsi] / mov [rsi], rax at an unmapped address.
    let r = cpu.run(&case(&[0x48, 0x8b, 0x06], |s| s.gpr[6] = UNMAPPED_ADDR));
    assert_eq!(
        r.fault,
        Fault::Pf {
            addr: UNMAPPED_ADDR,
            write: false
        }
    );
    let r = cpu.run(&case(&[0x48, 0x89, 0x06], |s| s.gpr[6] = UNMAPPED_ADDR + 4));
    assert_eq!(
        r.fault,
        Fault::Pf {
            addr: UNMAPPED_ADDR + 4,
            write: true
        }
    );
}
