//! `-d in_asm,op,op_opt,out_asm,exec,cpu,int,nochain` (`rqemu_accel::log`) with the x86-64 CPU on the
//! execution loop and softmmu: a small guest program (a counting loop, then a load from an unmapped page)
//! run with each item on, its log captured into a buffer; nothing logged with the mask empty.
//! `cargo test -p rqemu-target-i386 --test logging -- --nocapture` prints the whole log of every item.

use iced_x86::code_asm::*;
use rqemu_accel::log::{self, LogMask};
use rqemu_accel::{AccelOptions, CpuExec, ExecStats, StopReason};
use rqemu_softmmu::{AddressSpace, RamBlock};
use rqemu_target_i386::cpu::excp;
use rqemu_target_i386::{X86Cpu, X86CpuState, STOP_EXCEPTION};
use rqemu_tcg_tci::Tci;

const RAM_SIZE: u64 = 0x10_0000;
const CODE: u64 = 0x1000;
const UNMAPPED: u64 = 0x9_0000;

/// `rax = 3 + 2 + 1` in a loop, then a load from an unmapped page (#PF).
fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.mov(ecx, 3u32).unwrap();
    a.set_label(&mut top).unwrap();
    a.add(rax, rcx).unwrap();
    a.dec(rcx).unwrap();
    a.jne(top).unwrap();
    a.mov(rsi, UNMAPPED + 8).unwrap();
    a.mov(rdx, qword_ptr(rsi)).unwrap();
    a.ud2().unwrap();
    a.assemble(CODE).unwrap()
}

/// Runs the program with `mask` on; returns the stop reason, the loop's counters and the log.
fn run_logged(mask: LogMask) -> (StopReason, ExecStats, X86CpuState, String) {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(RAM_SIZE).unwrap());
    space.map_ram(0, RAM_SIZE, ram, 0).unwrap();
    let mut state = X86CpuState::new_long_mode(CODE);
    state.regs[4] = 0x8_0000;
    let mut cpu = X86Cpu::new(space, state);
    // No IDT: exceptions stop the loop (STOP_EXCEPTION | vector).
    cpu.set_exception_mode(rqemu_target_i386::ExceptionMode::Stop);
    let mut mem = cpu.memory();
    mem.with(|m| {
        m.fill_mut().identity.limit = UNMAPPED;
        m.space_mut().write_bytes(CODE, &program());
    });
    let mut ex = CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default());
    let (guard, buffer) = log::capture(mask);
    let stop = ex.run(&mut cpu, &mut mem, u64::MAX);
    drop(guard);
    let text = buffer.take();
    println!("==== -d {mask} ====\n{text}");
    (stop, ex.stats(), cpu.state().clone(), text)
}

const PF: StopReason = StopReason::Cpu(STOP_EXCEPTION | excp::PF as u64);

#[test]
fn in_asm_lists_each_translated_tb() {
    let (stop, _, _, text) = run_logged(LogMask::IN_ASM);
    assert_eq!(stop, PF);
    // The entry TB (mov ecx, add, dec, jne), the loop body, the tail (mov rsi, the faulting load, ...).
    assert_eq!(text.matches("----------------\nIN:\n").count(), 3, "{text}");
    assert!(text.contains("\n0x0000000000001000:  b903000000"), "{text}");
    #[cfg(feature = "disas")]
    for insn in [
        "mov ecx,3",
        "add rax,rcx",
        "dec rcx",
        "jne ",
        "mov rsi,90008h",
        "mov rdx,[rsi]",
    ] {
        assert!(text.contains(insn), "{insn}: {text}");
    }
}

#[test]
fn op_and_op_opt_show_the_ir_before_and_after_prepare() {
    let (_, _, _, op) = run_logged(LogMask::OP);
    assert_eq!(op.matches("OP:\n").count(), 3, "{op}");
    assert!(op.contains("insn_start"), "{op}");
    let (_, _, _, opt) = run_logged(LogMask::OP_OPT);
    assert_eq!(
        opt.matches("OP after optimization and liveness analysis:\n").count(),
        3,
        "{opt}"
    );
    // Prepare lowers globals to loads and stores on env, so the two listings differ.
    assert_ne!(
        op.replace("OP:\n", ""),
        opt.replace("OP after optimization and liveness analysis:\n", "")
    );
}

#[test]
fn out_asm_shows_the_tci_bytecode() {
    let (_, _, _, text) = run_logged(LogMask::OUT_ASM);
    assert_eq!(text.matches("OUT: tb#").count(), 3, "{text}");
    assert!(
        text.starts_with("OUT: tb#0 pc=0x0000000000001000 [tci] size="),
        "{text}"
    );
    assert!(text.contains("\n   0: "), "a bytecode listing: {text}");
}

#[test]
fn exec_and_cpu_trace_every_tb_with_the_state_before_it() {
    let (_, stats, _, text) = run_logged(LogMask::EXEC | LogMask::CPU);
    let traces: Vec<&str> = text.lines().filter(|l| l.starts_with("Trace 0: ")).collect();
    assert_eq!(traces.len() as u64, stats.tbs_run, "{text}");
    // 64-bit code (2), 64-bit stack (4), CPL 0, PE (0x20), LMA (0x80): flags 0xa6.
    assert_eq!(
        traces[0],
        "Trace 0: tb#0 [0000000000000000/0000000000001000/000000a6/00000000]"
    );
    let rips: Vec<&str> = text.lines().filter(|l| l.starts_with("RIP=")).collect();
    assert_eq!(rips.len(), traces.len(), "one dump per TB: {text}");
    assert!(
        rips[0].starts_with("RIP=0000000000001000 RFL=00000002 [-------] CPL=0"),
        "{text}"
    );
    // The dump follows its trace line and shows the state before the TB: rax after the entry TB is 3.
    let second = text.split("Trace 0: ").nth(2).unwrap();
    assert!(second.contains("RAX=0000000000000003 "), "{second}");
    assert!(second.contains("CS =0008 "), "{second}");
}

#[test]
fn int_logs_the_exception_with_cr2_and_the_registers() {
    let (stop, _, state, text) = run_logged(LogMask::INT);
    assert_eq!(stop, PF);
    assert!(text.starts_with("check_exception new 0xe (#PF)\n"), "{text}");
    let line = text.lines().nth(1).unwrap();
    assert!(line.starts_with("     0: v=0e e=0000 i=0 cpl=0 IP=0008:"), "{line}");
    assert!(line.contains(&format!("pc={:016x}", state.rip)), "{line}");
    assert!(line.ends_with("CR2=0000000000090008"), "{line}");
    assert!(text.contains(&format!("RIP={:016x}", state.rip)), "{text}");
    assert!(text.contains("RAX=0000000000000006 "), "{text}");
}

#[test]
fn an_empty_mask_logs_nothing_and_nochain_traces_without_links() {
    let (stop, quiet, state, text) = run_logged(LogMask::NONE);
    assert_eq!((stop, text.as_str()), (PF, ""));
    let (_, stats, logged_state, text) = run_logged("in_asm,op,op_opt,out_asm,exec,cpu,int".parse().unwrap());
    assert!(!text.is_empty());
    // Logging changes nothing the guest or the loop does.
    assert_eq!(stats, quiet);
    assert_eq!((logged_state.regs, logged_state.rip), (state.regs, state.rip));
    assert!(quiet.links > 0, "the loop's back edge is linked: {quiet}");

    let (stop, stats, _, text) = run_logged(LogMask::EXEC | LogMask::NOCHAIN);
    assert_eq!(stop, PF);
    assert_eq!((stats.links, stats.chained), (0, 0), "{stats}");
    assert_eq!(text.lines().count() as u64, stats.tbs_run, "{text}");
}
