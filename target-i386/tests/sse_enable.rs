//! The MMX/SSE enabling checks on the real execution loop (`CpuExec`, tci): the TB flags follow CR0.EM, CR0.TS
//! and CR4.OSFXSR as guest code changes them (mov to CR0/CR4, clts), in long and 32-bit protected mode.
//! Exceptions are observed in the loop's STOP mode.

mod sysenv;

use iced_x86::code_asm::*;
use rqemu_accel::StopReason;
use rqemu_target_i386::{ExceptionMode, STOP_EXCEPTION};
use sysenv::*;

const UD: u32 = 6;
const NM: u32 = 7;

/// Runs the mode's code to hlt: `Ok(())`, or `Err(vector)` for the first exception.
fn run(mode: Mode, body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> (Sys, Result<(), u32>) {
    let mut sys = Sys::new(mode, false);
    sys.code(body);
    sys.cpu.set_exception_mode(ExceptionMode::Stop);
    let r = match sys.run() {
        StopReason::Halted => Ok(()),
        StopReason::Cpu(c) if c & STOP_EXCEPTION != 0 => Err(sys.cpu.last_exception.unwrap().vector),
        other => panic!("stopped with {other:?}"),
    };
    (sys, r)
}

#[test]
fn cr0_ts_raises_nm_until_clts() {
    let set_ts = |a: &mut CodeAssembler| -> Result<(), IcedError> {
        a.mov(rax, cr0)?;
        a.or(rax, 8)?;
        a.mov(cr0, rax)
    };
    let (_, r) = run(Mode::Long, |a| {
        set_ts(a)?;
        a.paddb(xmm1, xmm2)?;
        a.hlt()
    });
    assert_eq!(r, Err(NM));
    let (_, r) = run(Mode::Long, |a| {
        set_ts(a)?;
        a.paddb(mm1, mm2)?;
        a.hlt()
    });
    assert_eq!(r, Err(NM), "MMX too");
    let (sys, r) = run(Mode::Long, |a| {
        set_ts(a)?;
        a.clts()?;
        a.paddb(xmm1, xmm2)?;
        a.movdqa(xmm3, xmm1)?;
        a.hlt()
    });
    assert_eq!(r, Ok(()));
    assert_eq!(sys.s().cr[0] & 8, 0);
}

#[test]
fn cr0_em_and_cr4_osfxsr() {
    let (_, r) = run(Mode::Long, |a| {
        a.mov(rax, cr0)?;
        a.or(rax, 4)?;
        a.mov(cr0, rax)?;
        a.pxor(mm1, mm1)?;
        a.hlt()
    });
    assert_eq!(r, Err(UD), "CR0.EM: MMX is #UD");
    let clear_osfxsr = |a: &mut CodeAssembler| -> Result<(), IcedError> {
        a.mov(rax, cr4)?;
        a.and(rax, !0x200)?;
        a.mov(cr4, rax)
    };
    let (_, r) = run(Mode::Long, |a| {
        clear_osfxsr(a)?;
        a.pshufb(xmm1, xmm2)?;
        a.hlt()
    });
    assert_eq!(r, Err(UD), "SSE needs CR4.OSFXSR");
    let (_, r) = run(Mode::Long, |a| {
        clear_osfxsr(a)?;
        a.pshufb(mm1, mm2)?;
        a.crc32(eax, ecx)?;
        a.hlt()
    });
    assert_eq!(r, Ok(()), "MMX and crc32 do not");
}

#[test]
fn protected_mode_enables_sse_itself() {
    // 32-bit protected mode starts with CR4 = 0: SSE is #UD until the guest sets OSFXSR.
    let (_, r) = run(Mode::Prot32, |a| {
        a.paddd(xmm1, xmm2)?;
        a.hlt()
    });
    assert_eq!(r, Err(UD));
    let (sys, r) = run(Mode::Prot32, |a| {
        a.mov(eax, cr4)?;
        a.or(eax, 0x600)?;
        a.mov(cr4, eax)?;
        a.mov(eax, 0x0102_0304)?;
        a.movd(xmm1, eax)?;
        a.paddd(xmm1, xmm1)?;
        a.pmovmskb(ebx, xmm1)?;
        a.movd(ecx, xmm1)?;
        a.hlt()
    });
    assert_eq!(r, Ok(()));
    assert_eq!(sys.s().regs[1], 0x0204_0608);
}
