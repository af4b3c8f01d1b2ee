//! The link from a CPU state to its memory that helpers use (`X86CpuState::sys`, `machine::with_sys`): set by
//! `X86Cpu::new`, absent on a bare state, and `PagedMem` over the CPU's `SoftMmu` telling the loop about writes
//! into pages that hold translated code.

use std::cell::RefCell;
use std::rc::Rc;

use rqemu_softmmu::{AddressSpace, CodeWrite, RamBlock};
use rqemu_target_i386::machine::with_sys;
use rqemu_target_i386::paging::{PagingRegs, Privilege};
use rqemu_target_i386::sysmem::{PagedMem, SysMem};
use rqemu_target_i386::{X86Cpu, X86CpuState};

fn cpu() -> X86Cpu {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(0x10_0000).unwrap());
    space.map_ram(0, 0x10_0000, ram, 0).unwrap();
    X86Cpu::new(space, X86CpuState::new_long_mode(0x1000))
}

#[test]
fn a_bare_state_has_no_memory() {
    let mut state = X86CpuState::new_long_mode(0x1000);
    let env: *mut u8 = (&mut state as *mut X86CpuState).cast();
    // SAFETY: `env` is a live state.
    assert_eq!(unsafe { with_sys(env, |_| ()) }, None);
}

#[test]
fn helpers_reach_the_cpus_memory_and_code_writes_are_reported() {
    let mut cpu = cpu();
    assert_ne!(cpu.state().sys, 0);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    cpu.memory().with(|m| {
        m.set_code_write_hook(Box::new(move |paddr, len, _| {
            log.borrow_mut().push((paddr, len));
            CodeWrite::Keep
        }));
        m.set_code_page(0x1000);
    });
    let env: *mut u8 = (cpu.state_mut() as *mut X86CpuState).cast();
    // The state is 64-bit mode as a loader leaves it (CR0.PG set) but has no page tables in this RAM: walk
    // with paging off, as a helper of a guest with paging disabled would.
    // SAFETY: `env` is the CPU's own state; nothing else borrows its memory now.
    let regs = PagingRegs::from_state(unsafe { &*env.cast::<X86CpuState>() });
    let off = PagingRegs {
        cr0: regs.cr0 & !(1 << 31),
        ..regs
    };
    // SAFETY: as above.
    let got = unsafe {
        with_sys(env, |soft| {
            let mut mem = PagedMem { space: soft, regs: off };
            mem.write(0x1ffc, 8, 0x1122_3344_5566_7788, Privilege::Implicit)
                .unwrap();
            mem.read(0x1ffc, 8, Privilege::Implicit).unwrap()
        })
    };
    assert_eq!(got, Some(0x1122_3344_5566_7788));
    // The access crosses into 0x2000 and is split into bytes: exactly the four on the code page are reported.
    assert_eq!(*seen.borrow(), vec![(0x1ffc, 1), (0x1ffd, 1), (0x1ffe, 1), (0x1fff, 1)]);
}
