//! Malformed IR becomes a `CompileError`, never a panic: each rule the compiler relies on, then random ops.

use std::sync::Arc;

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::op::MAX_OP_ARGS;
use rqemu_tcg::{Cond, Func, HelperFlags, HelperId, HelperInfo, Label, Op, Opcode, TargetDesc, Temp, Type};
use rqemu_tcg_tci::Tci;
use Type::{I32, I64};

unsafe extern "C" fn nop(_: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    0
}

fn target() -> Arc<TargetDesc> {
    let mut t = TargetDesc::new(0);
    t.add_global("rax", I64, 8);
    t.helpers.register(HelperInfo {
        name: "one_arg",
        func: nop,
        flags: HelperFlags::empty(),
        args: &[I64],
        ret: Some(I64),
    });
    Arc::new(t)
}

/// Builds a function with `build`, ends it with `exit_tb` unless told not to, and expects an error.
fn rejects(what: &str, end: bool, build: impl FnOnce(&mut Func)) {
    let mut f = Func::new(target());
    build(&mut f);
    if end {
        f.exit_tb(0);
    }
    assert!(Tci::new().compile_tb(&f).is_err(), "accepted {what}:\n{}", f.dump());
}

fn raw(f: &mut Func, opc: Opcode, ty: Type, outs: &[Temp], ins: &[Temp], consts: &[u64]) {
    f.push(Op::new(opc, ty, outs, ins, consts));
}

#[test]
fn each_rule() {
    rejects("a global", true, |f| {
        let g = f.global(0);
        f.add(g, g, g);
    });
    rejects("a temp that does not exist", true, |f| {
        raw(f, Opcode::Mov, I64, &[Temp(999)], &[Temp(999)], &[])
    });
    rejects("a write to a constant", true, |f| {
        let k = f.constant(I64, 1);
        f.mov(k, k);
    });
    rejects("a write to env", true, |f| {
        raw(f, Opcode::Movi, Type::PTR, &[Temp::ENV], &[], &[0])
    });
    rejects("a type mismatch", true, |f| {
        let (a, b) = (f.new_temp(I64), f.new_temp(I32));
        raw(f, Opcode::Add, I64, &[a], &[a, b], &[]);
    });
    rejects("an op at a type it lacks", true, |f| {
        let a = f.new_temp(I32);
        raw(f, Opcode::Ext32s, I32, &[a], &[a], &[]);
    });
    rejects("too few inputs", true, |f| {
        let a = f.new_temp(I64);
        raw(f, Opcode::Add, I64, &[a], &[a], &[]);
    });
    rejects("a missing constant", true, |f| {
        raw(f, Opcode::ExitTb, I64, &[], &[], &[])
    });
    rejects("a label never placed", true, |f| {
        let l = f.new_label();
        f.br(l);
    });
    rejects("a label never allocated", true, |f| f.br(Label(7)));
    rejects("a label placed twice", true, |f| {
        let l = f.new_label();
        f.set_label(l);
        f.set_label(l);
    });
    rejects("a label at the very end", false, |f| {
        let l = f.new_label();
        f.br(l);
        f.set_label(l);
    });
    rejects("a branch to the end", false, |f| {
        let l = f.new_label();
        let t = f.new_temp(I64);
        f.movi(t, 0);
        f.brcond(Cond::Eq, t, t, l);
        f.exit_tb(0);
        f.set_label(l);
    });
    rejects("an unregistered helper", true, |f| f.call(HelperId(5), None, &[]));
    rejects("a call with the wrong argument count", true, |f| {
        let t = f.new_temp(I64);
        f.call(HelperId(0), Some(t), &[]);
    });
    rejects("a 16-byte guest load", true, |f| {
        let t = f.new_temp(I64);
        f.qemu_ld(t, t, MemOp::SIZE_128, MmuIdx::default());
    });
    rejects("an 8-byte i32 guest load", true, |f| {
        let (a, t) = (f.new_temp(I64), f.new_temp(I32));
        f.qemu_ld(t, a, MemOp::LEUQ, MmuIdx::default());
    });
    rejects("a memop with unknown bits", true, |f| {
        let t = f.new_temp(I64);
        raw(f, Opcode::QemuLd, I64, &[t], &[t], &[0x100, 0]);
    });
    rejects("an MMU index out of range", true, |f| {
        let t = f.new_temp(I64);
        raw(f, Opcode::QemuLd, I64, &[t], &[t], &[0, 99]);
    });
    rejects("goto_tb 2", false, |f| f.goto_tb(2));
    rejects("a field past the width", true, |f| {
        let t = f.new_temp(I32);
        f.extract(t, t, 30, 8);
    });
    rejects("an empty field", true, |f| {
        let t = f.new_temp(I64);
        f.deposit(t, t, t, 3, 0);
    });
    rejects("extract2 past the width", true, |f| {
        let t = f.new_temp(I32);
        f.extract2(t, t, t, 33);
    });
    rejects("an unknown condition", true, |f| {
        let t = f.new_temp(I64);
        raw(f, Opcode::Setcond, I64, &[t], &[t, t], &[99]);
    });
    rejects("an offset beyond 32 bits", true, |f| {
        let t = f.new_temp(I64);
        raw(f, Opcode::Ld, I64, &[t], &[Temp::ENV], &[1 << 40]);
    });
    rejects("no ops", false, |_| {});
    rejects("a fall through the end", false, |f| {
        let t = f.new_temp(I64);
        f.movi(t, 1);
    });
    rejects("absurdly many labels", true, |f| f.nb_labels = u32::MAX);

    // Argument counts beyond an op's capacity: the fields are public.
    let mut f = Func::new(target());
    let mut op = Op::new(Opcode::Mov, I64, &[], &[], &[]);
    op.nb_out = 200;
    f.push(op);
    f.exit_tb(0);
    assert!(Tci::new().compile_tb(&f).is_err());
}

/// Random opcodes, types, argument counts and arguments: compiling must return, never panic. (They are not
/// run: random host loads would be undefined behaviour, which is the caller's contract, not the compiler's.)
#[test]
fn random_ops_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tci = Tci::new();
    let mut compiled = 0;
    for _ in 0..3000 {
        let mut f = Func::new(target());
        let temps: Vec<Temp> = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    f.new_temp(I64)
                } else {
                    f.new_ebb_temp(I32)
                }
            })
            .collect();
        f.constant(I64, 42);
        for _ in 0..f.new_label().0 + 3 {
            f.new_label();
        }
        for _ in 0..(next() % 12) {
            let opc = Opcode::ALL[(next() % Opcode::ALL.len() as u64) as usize];
            let ty = if next() % 2 == 0 { I32 } else { I64 };
            let def = opc.def();
            let mut op = Op::new(opc, ty, &[], &[], &[]);
            let exact = next() % 4 != 0;
            op.nb_out = if exact {
                def.outs.len() as u8
            } else {
                (next() % 4) as u8
            };
            op.nb_in = if exact { def.ins.len() as u8 } else { (next() % 6) as u8 };
            op.nb_const = if exact {
                def.consts.len() as u8
            } else {
                (next() % 4) as u8
            };
            for a in op.args.iter_mut().take(MAX_OP_ARGS) {
                *a = match next() % 4 {
                    0 => next() % (f.temps.len() as u64 + 2),
                    1 => temps[(next() % 6) as usize].0 as u64,
                    2 => next() % 16,
                    _ => next(),
                };
            }
            f.push(op);
        }
        if next() % 4 != 0 {
            f.exit_tb(0);
        }
        compiled += tci.compile_tb(&f).is_ok() as u32;
    }
    // Some random functions are valid; most are not. Either way nothing panicked.
    assert!(compiled > 0);
}
