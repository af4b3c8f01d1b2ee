//! The benchmark's TBs compile and run as the benchmark expects, so `tci-bench` never measures an error path.

use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::{CompiledTb, ExecContext, Opcode, TbExit};
use rqemu_tcg_tci::{bench, Tci};

#[test]
fn dispatch_tb_loops_the_given_number_of_times() {
    let (f, body_ops) = bench::dispatch_tb();
    assert!((25..=35).contains(&body_ops), "{body_ops} ops per iteration");
    let tb = Tci::new().compile_tb(&f).unwrap();
    let mut mem = FlatMemory::new(0x10_0000, 0x1000);
    let mut env = [0u64; 64];
    env[0] = 1000;
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem: &mut mem,
    };
    // SAFETY: the TB uses the first four words of `env` and no helpers.
    assert_eq!(unsafe { tb.run(&mut ctx) }, TbExit::Exit(0));
    assert_eq!(mem.faults, 0);
    assert_ne!(env[3], 0, "the loop left its accumulator");
}

#[test]
fn frontend_tb_prepares_and_compiles() {
    let mut f = bench::frontend_tb();
    assert!((150..=250).contains(&f.ops.len()), "{} ops", f.ops.len());
    assert!(f.ops.iter().filter(|op| op.opc == Opcode::InsnStart).count() > 20);
    rqemu_tcg::prepare::prepare(&mut f).unwrap();
    Tci::new().compile_tb(&f).unwrap();
}

#[test]
fn entry_tb_leaves_through_goto_tb() {
    let tb = Tci::new().compile_tb(&bench::entry_tb()).unwrap();
    let mut env = [1u64; 64];
    let mut mem = FlatMemory::new(0, 8);
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem: &mut mem,
    };
    // SAFETY: the TB uses the first six words of `env` and no helpers.
    assert_eq!(unsafe { tb.run(&mut ctx) }, TbExit::GotoTb(0));
    assert_eq!(env[..6], [2, 1, 1, 2, 1, 0x1003]);
}
