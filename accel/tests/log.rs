//! `-d`/`-D` logging (`rqemu_accel::log`) on the toy target (`toy/`): parsing the item list, each item's
//! output captured into a buffer, nothing with an empty mask, `nochain` making the `exec` trace complete
//! when the wasm32 hot tier (embedded engine) would otherwise chain inside its modules, and `-D` to a file.

mod toy;

use rqemu_accel::log::{self, LogBuffer, LogError, LogMask, LogOptions};
use rqemu_accel::{AccelOptions, CpuExec, StopReason, TierConfig};
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::engine::EmbeddedWasm32;

use toy::*;

fn exec() -> CpuExec {
    CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default())
}

fn hot_exec() -> CpuExec {
    let opts = AccelOptions {
        chain_limit: 256,
        tier: TierConfig {
            threshold: 10,
            ..TierConfig::default()
        },
        ..AccelOptions::default()
    };
    CpuExec::with_backends(Box::new(Tci::new()), Some(Box::new(EmbeddedWasm32::new())), opts)
}

/// `r2 += 1` `n` times in a one-TB loop that jumps to itself, then halts.
fn counting_loop(n: u16) -> Vec<u32> {
    vec![li(1, n), addi(2, 2, 1), addi(1, 1, -1), bnz(1, -3), hlt()]
}

/// Runs `program` on `ex` with `mask` on, returning the stop reason and the log.
fn run_logged(ex: &mut CpuExec, program: &[u32], mask: LogMask) -> (StopReason, String) {
    let mut mem = ToyMem::new();
    mem.load_program(0, program);
    let mut cpu = ToyCpu::new();
    let (guard, buffer) = log::capture(mask);
    let stop = ex.run(&mut cpu, &mut mem, u64::MAX);
    drop(guard);
    (stop, buffer.take())
}

#[test]
fn the_d_list_parses_like_qemus() {
    let m: LogMask = "in_asm,op,op_opt,out_asm,exec,cpu,int".parse().unwrap();
    for item in [
        LogMask::IN_ASM,
        LogMask::OP,
        LogMask::OP_OPT,
        LogMask::OUT_ASM,
        LogMask::EXEC,
        LogMask::CPU,
        LogMask::INT,
    ] {
        assert!(m.contains(item), "{item:?} in {m}");
    }
    assert!(!m.contains(LogMask::NOCHAIN));
    // Round trip through Display, empty items skipped, and the empty list.
    assert_eq!(m.to_string().parse::<LogMask>().unwrap(), m);
    assert_eq!(
        "exec,,nochain,".parse::<LogMask>().unwrap(),
        LogMask::EXEC | LogMask::NOCHAIN
    );
    assert_eq!("".parse::<LogMask>().unwrap(), LogMask::NONE);
}

#[test]
fn unknown_items_are_named_and_help_lists_every_item() {
    match "exec,bogus,cpu".parse::<LogMask>() {
        Err(e @ LogError::UnknownItem(_)) => assert!(e.to_string().contains("`bogus`"), "{e}"),
        other => panic!("{other:?}"),
    }
    let help = match "exec,help".parse::<LogMask>() {
        Err(e @ LogError::Help) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(help, LogMask::help());
    for (name, _, what) in LogMask::ITEMS {
        assert!(
            help.lines().any(|l| l.starts_with(name) && l.ends_with(what)),
            "{name}: {help}"
        );
    }
    assert_eq!(help.lines().count(), LogMask::ITEMS.len() + 1);
}

#[test]
fn options_parse_d_and_capital_d() {
    let o = LogOptions::parse(Some("int"), Some("/tmp/x.log")).unwrap();
    assert_eq!(o.mask, LogMask::INT);
    assert_eq!(o.file.as_deref(), Some(std::path::Path::new("/tmp/x.log")));
    assert_eq!(LogOptions::parse(None, None).unwrap(), LogOptions::default());
    assert!(matches!(LogOptions::parse(Some("nope"), None), Err(LogError::UnknownItem(i)) if i == "nope"));
}

#[test]
fn each_item_produces_its_block_in_qemus_order() {
    let program = counting_loop(3);
    let (stop, text) = run_logged(&mut exec(), &program, LogMask::IN_ASM);
    assert_eq!(stop, StopReason::Halted);
    // The toy has no disassembler: the default line, one block per TB (entry, loop, hlt).
    assert_eq!(text.matches("----------------\nIN:\n").count(), 3, "{text}");
    assert!(
        text.contains("0x0000000000000000:  16 bytes, 4 instructions (no disassembler)"),
        "{text}"
    );

    let (_, text) = run_logged(&mut exec(), &program, LogMask::OP);
    assert_eq!(text.matches("OP:\n").count(), 3, "{text}");
    assert!(text.contains("insn_start"), "{text}");

    let (_, text) = run_logged(&mut exec(), &program, LogMask::OP_OPT);
    assert_eq!(
        text.matches("OP after optimization and liveness analysis:\n").count(),
        3,
        "{text}"
    );

    let (_, text) = run_logged(&mut exec(), &program, LogMask::OUT_ASM);
    assert_eq!(text.matches("OUT: tb#").count(), 3, "{text}");
    assert!(
        text.starts_with("OUT: tb#0 pc=0x0000000000000000 [tci] size="),
        "{text}"
    );

    // The entry TB (the first pass of the loop body), the loop TB twice, the hlt.
    let (_, text) = run_logged(&mut exec(), &program, LogMask::EXEC);
    let traces: Vec<&str> = text.lines().collect();
    assert_eq!(traces.len(), 4, "{text}");
    assert_eq!(
        traces[0],
        "Trace 0: tb#0 [0000000000000000/0000000000000000/00000000/00000000]"
    );
    assert!(traces[1].contains("/0000000000000004/"), "{text}");

    let (_, text) = run_logged(&mut exec(), &program, LogMask::CPU);
    // The toy keeps the default dump: the pc before each TB.
    assert_eq!(
        text,
        "PC=0000000000000000\nPC=0000000000000004\nPC=0000000000000004\nPC=0000000000000010\n"
    );

    // Everything at once comes out in QEMU's order: IN, OP, OP after, OUT, then the trace of the TB.
    let all = LogMask::IN_ASM | LogMask::OP | LogMask::OP_OPT | LogMask::OUT_ASM | LogMask::EXEC;
    let (_, text) = run_logged(&mut exec(), &program, all);
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} missing in {text}"));
    assert!(
        at("IN:") < at("OP:") && at("OP:") < at("OP after") && at("OP after") < at("OUT:"),
        "{text}"
    );
    assert!(at("OUT:") < at("Trace 0:"), "{text}");
}

#[test]
fn an_empty_mask_logs_nothing_and_runs_the_same() {
    let program = counting_loop(50);
    let mut ex = exec();
    let (stop, text) = run_logged(&mut ex, &program, LogMask::NONE);
    assert_eq!((stop, text.as_str()), (StopReason::Halted, ""));
    let quiet = ex.stats();
    let mut ex = exec();
    let (_, text) = run_logged(&mut ex, &program, "exec,cpu,in_asm,op,op_opt,out_asm".parse().unwrap());
    assert!(!text.is_empty());
    // Logging does not change what the loop does.
    assert_eq!(ex.stats(), quiet);
}

#[test]
fn nochain_makes_the_exec_trace_complete_on_the_hot_tier() {
    let program = counting_loop(300);
    // Chained in its Wasm module, the hot loop runs many times per trace line.
    let mut ex = hot_exec();
    let (stop, text) = run_logged(&mut ex, &program, LogMask::EXEC);
    assert_eq!(stop, StopReason::Halted);
    let chained = text.lines().count();
    assert!(
        chained < 301 && chained as u64 == ex.stats().tbs_run,
        "{chained} lines: {}",
        ex.stats()
    );

    let mut ex = hot_exec();
    let (stop, text) = run_logged(&mut ex, &program, LogMask::EXEC | LogMask::NOCHAIN | LogMask::OUT_ASM);
    assert_eq!(stop, StopReason::Halted);
    // Entry, 299 loop passes, hlt: every one through the loop, none linked.
    assert_eq!(text.matches("Trace 0:").count(), 301, "{}", ex.stats());
    assert_eq!((ex.stats().links, ex.stats().chained), (0, 0), "{}", ex.stats());
    // The hot tier compiled the loop: its out_asm line names the backend and the member's pc.
    assert!(
        text.contains("OUT: [wasm32] module of 1 TBs\nmember 0 pc=0x0000000000000004: [wasm32] size="),
        "{text}"
    );
}

#[test]
fn capital_d_writes_the_log_to_a_file() {
    let path = std::env::temp_dir().join(format!("rqemu-log-test-{}.log", std::process::id()));
    let opts = LogOptions::parse(Some("exec"), path.to_str()).unwrap();
    {
        let _guard = opts.install().unwrap();
        let mut mem = ToyMem::new();
        mem.load_program(0, &[hlt()]);
        assert_eq!(exec().run(&mut ToyCpu::new(), &mut mem, u64::MAX), StopReason::Halted);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        text,
        "Trace 0: tb#0 [0000000000000000/0000000000000000/00000000/00000000]\n"
    );
    let bad = LogOptions::parse(None, Some("/nonexistent-dir/x.log")).unwrap();
    assert!(matches!(bad.install(), Err(LogError::File { .. })));
    // The buffer type is public for harnesses that install their own sink.
    let _ = LogBuffer::new();
}
