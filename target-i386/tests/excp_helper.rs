//! Exception and interrupt delivery (`rqemu_target_i386::excp_helper`) over a flat memory ([`FlatMem`]) with
//! a GDT, IDT and TSS built by a small builder: the byte-exact frame of each mode (real-mode IVT, 32- and
//! 16-bit protected-mode gates at the same and an inner privilege, vm86 to ring 0, long mode with and
//! without a privilege change, IST, 16-byte alignment), the flags each gate clears, every delivery check
//! with its error code (EXT bit, IDT bit, the software-interrupt DPL check), CR2, the double-fault rule and
//! the triple fault.

use rqemu_target_i386::cpu::{eflags, excp, reg, seg, SegmentCache, X86CpuState};
use rqemu_target_i386::excp_helper::*;
use rqemu_target_i386::paging::{pf_err, Privilege};
use rqemu_target_i386::seg_helper::*;
use rqemu_target_i386::sysmem::{Fault, FlatMem, EXCP_DF, EXCP_NP, EXCP_SS, EXCP_TS};

const GDT: u64 = 0x1000;
const IDT: u64 = 0x3000;
const TSS: u64 = 0x5000;
/// Size of the flat memory: accesses at or above it are #PF.
const MEM: usize = 0x20000;
/// The initial stack pointer.
const STACK: u64 = 0x8000;
/// The ring-0 stack the TSS names.
const STACK0: u64 = 0x9000;
/// The IST1 stack (not 16-byte aligned on purpose).
const IST1: u64 = 0xa008;
/// A stack pointer whose pushes fault.
const BAD_STACK: u64 = 0x4_0000;

const CODE: u32 = DESC_P | DESC_S | DESC_CS | DESC_R;
const DATA: u32 = DESC_P | DESC_S | DESC_W;
const fn dpl(n: u32) -> u32 {
    n << DESC_DPL_SHIFT
}

const CODE64: u16 = 0x08;
const DATA0: u16 = 0x10;
const CODE32: u16 = 0x18;
const DATA3: u16 = 0x23;
const CODE64_3: u16 = 0x2b;
const CODE32_3: u16 = 0x33;
const TSS_SEL: u16 = 0x38;
const CODE16: u16 = 0x50;
const FREE: u16 = 0x60;

struct Sys {
    s: X86CpuState,
    m: FlatMem,
    long: bool,
}

impl Sys {
    fn base(long: bool) -> Sys {
        let mut sys = Sys {
            s: X86CpuState::new(),
            m: FlatMem::new(MEM),
            long,
        };
        for (sel, raw) in [
            (CODE64, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_L | DESC_G)),
            (DATA0, Descriptor::encode_segment(0, 0xfffff, DATA | DESC_B | DESC_G)),
            (CODE32, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_B | DESC_G)),
            (
                DATA3,
                Descriptor::encode_segment(0, 0xfffff, DATA | DESC_B | DESC_G | dpl(3)),
            ),
            (
                CODE64_3,
                Descriptor::encode_segment(0, 0xfffff, CODE | DESC_L | DESC_G | dpl(3)),
            ),
            (
                CODE32_3,
                Descriptor::encode_segment(0, 0xfffff, CODE | DESC_B | DESC_G | dpl(3)),
            ),
            (CODE16, Descriptor::encode_segment(0, 0xffff, CODE)),
        ] {
            sys.gdt(sel, raw);
        }
        sys.s.gdt.base = GDT;
        sys.s.gdt.limit = 0xff;
        sys.s.idt.base = IDT;
        sys.s.idt.limit = if long { 0xfff } else { 0x7ff };
        sys.s.regs[reg::RSP] = STACK;
        sys.s.rip = 0x500;
        let tss = Descriptor::encode_segment(TSS as u32, 0x67, DESC_P | (sys_type::TSS_BUSY << DESC_TYPE_SHIFT));
        sys.gdt(TSS_SEL, tss);
        sys.s.tr = Descriptor::from_raw(tss).cache(TSS_SEL);
        sys
    }

    fn prot32() -> Sys {
        let mut sys = Sys::base(false);
        sys.s.cr[0] = CR0_PE;
        sys.set_cs(CODE32);
        for r in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
            sys.s.segs[r] = sys.cache(DATA0);
        }
        sys.m.poke(TSS + 4, 4, STACK0);
        sys.m.poke(TSS + 8, 2, u64::from(DATA0));
        sys
    }

    fn long() -> Sys {
        let mut sys = Sys::base(true);
        sys.s.cr[0] = 0x8000_0001;
        sys.s.efer = 0x500;
        sys.set_cs(CODE64);
        for r in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
            sys.s.segs[r] = sys.cache(DATA0);
        }
        sys.m.poke(TSS + 4, 8, STACK0);
        sys.m.poke(TSS + 0x24, 8, IST1);
        sys
    }

    fn real() -> Sys {
        let mut sys = Sys::base(false);
        sys.s.cr[0] = 0x10;
        sys.s.idt.base = 0;
        sys.s.idt.limit = 0x3ff;
        for r in 0..6 {
            let mut c = SegmentCache::flat(0, DESC_P | DESC_S | DESC_W | DESC_A);
            c.limit = 0xffff;
            sys.s.segs[r] = c;
        }
        sys
    }

    fn gdt(&mut self, sel: u16, raw: u64) {
        self.m.poke(GDT + u64::from(sel & !7), 8, raw);
    }

    fn cache(&self, sel: u16) -> SegmentCache {
        Descriptor::from_raw(self.m.peek(GDT + u64::from(sel & !7), 8)).cache(sel)
    }

    fn set_cs(&mut self, sel: u16) {
        self.s.segs[seg::CS] = self.cache(sel);
    }

    fn enter_cpl3(&mut self) {
        self.set_cs(if self.long { CODE64_3 } else { CODE32_3 });
        self.s.segs[seg::SS] = self.cache(DATA3);
    }

    /// Installs IDT gate `vector` (a 16-byte one in long mode).
    fn gate(&mut self, vector: u8, typ: u32, gate_dpl: u8, sel: u16, offset: u64, ist: u32) {
        let lo = Descriptor::encode_gate(typ, gate_dpl, sel, offset as u32, ist);
        if self.long {
            let a = IDT + 16 * u64::from(vector);
            self.m.poke(a, 8, lo);
            self.m.poke(a + 8, 8, offset >> 32);
        } else {
            self.m.poke(IDT + 8 * u64::from(vector), 8, lo);
        }
    }

    /// Marks IDT gate `vector` not present.
    fn gate_not_present(&mut self, vector: u8) {
        let a = IDT + if self.long { 16 } else { 8 } * u64::from(vector);
        let hi = self.m.peek(a + 4, 4) & !u64::from(DESC_P);
        self.m.poke(a + 4, 4, hi);
    }

    fn once(&mut self, ev: Event) -> Result<EntryState, Fault> {
        deliver_once(&mut self.s, &mut self.m, &ev)
    }

    fn deliver(&mut self, ev: Event) -> Delivery {
        deliver(&mut self.s, &mut self.m, ev)
    }

    /// `n` stack slots of `size` bytes at `addr`, lowest first.
    fn frame(&self, addr: u64, n: u64, size: u8) -> Vec<u64> {
        (0..n).map(|i| self.m.peek(addr + i * u64::from(size), size)).collect()
    }
}

fn delivered(d: Delivery) -> (Event, EntryState) {
    match d {
        Delivery::Delivered { event, entry } => (event, entry),
        Delivery::TripleFault => panic!("triple fault"),
    }
}

const EXT: u32 = ERR_EXT;

#[test]
fn classes_error_codes_and_combination() {
    for v in [0u8, 10, 11, 12, 13, 21] {
        assert_eq!(class(v), Class::Contributory, "vector {v}");
    }
    assert_eq!(class(14), Class::PageFault);
    assert_eq!(class(20), Class::PageFault);
    for v in [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 32, 255] {
        assert_eq!(class(v), Class::Benign, "vector {v}");
    }
    let with: Vec<u8> = (0..=255u8).filter(|v| has_error_code(*v)).collect();
    assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21]);
    let df = Some(Event::exception(EXCP_DF as u8, 0));
    let gp = Fault::gp(0);
    let pf = Fault::new(excp::PF, 2);
    assert_eq!(combine(&Event::exception(13, 0), &gp), df);
    assert_eq!(combine(&Event::exception(0, 0), &Fault::np(3)), df);
    assert_eq!(combine(&Event::exception(14, 0), &gp), df);
    assert_eq!(combine(&Event::exception(14, 0), &pf), df);
    // Contributory then #PF, benign then anything: serial.
    assert_eq!(combine(&Event::exception(13, 0), &pf), Some(Event::from_fault(pf)));
    assert_eq!(combine(&Event::exception(6, 0), &gp), Some(Event::from_fault(gp)));
    assert_eq!(combine(&Event::external(0x20), &gp), Some(Event::from_fault(gp)));
    // A software int 13 is benign.
    assert_eq!(combine(&Event::software(13, 0), &gp), Some(Event::from_fault(gp)));
    // Anything during #DF: triple fault.
    assert_eq!(combine(&Event::exception(8, 0), &pf), None);
    assert_eq!(combine(&Event::exception(8, 0), &gp), None);
}

#[test]
fn event_from_pending_state() {
    let mut s = X86CpuState::new();
    s.raise_trap(0x80, true, 0x1234);
    let e = Event::from_pending(&s);
    assert_eq!((e.vector, e.source, e.next_rip), (0x80, Source::Software, Some(0x1234)));
    s.raise(14, 6);
    s.fault_addr = 0xdead;
    let e = Event::from_pending(&s);
    assert_eq!(
        (e.vector, e.error_code, e.source, e.next_rip, e.fault_addr),
        (14, 6, Source::Exception, None, 0xdead)
    );
}

#[test]
fn real_mode_ivt_frame() {
    let mut sys = Sys::real();
    sys.m.poke(4 * 0x10, 4, 0xf000_1234);
    sys.s.segs[seg::CS].selector = 0x1000;
    sys.s.segs[seg::CS].base = 0x10000;
    sys.s.set_rflags(eflags::IF | eflags::TF | eflags::AC | 1);
    let (_, e) = delivered(sys.deliver(Event::software(0x10, 0x57)));
    assert_eq!(
        sys.frame(STACK - 6, 3, 2),
        [0x57, 0x1000, (eflags::IF | eflags::TF | 1 | 2) & 0xffff]
    );
    assert_eq!(
        (e.cs.selector, e.cs.base, e.rip, e.rsp),
        (0xf000, 0xf0000, 0x1234, STACK - 6)
    );
    assert_eq!(e.rflags, 0x3);
    assert_eq!(e.cpl, 0);
    // Exceptions push no error code in real mode; a fault returns to its own rip.
    let mut sys = Sys::real();
    sys.m.poke(4 * 13, 4, 0x0000_0100);
    let (_, e) = delivered(sys.deliver(Event::exception(13, 0x55)));
    assert_eq!(e.rsp, STACK - 6);
    assert_eq!(sys.m.peek(STACK - 6, 2), 0x500);
}

#[test]
fn real_mode_ivt_limit_and_triple_fault() {
    let mut sys = Sys::real();
    sys.s.idt.limit = 4 * 6 + 2; // vector 6's entry is cut short
    assert_eq!(sys.once(Event::exception(6, 0)), Err(Fault::gp(6 * 8 + 2 + EXT)));
    // #UD -> #GP (IVT limit) -> #GP again: #DF -> beyond the limit again: triple fault.
    let before = sys.s.clone();
    assert_eq!(sys.deliver(Event::exception(6, 0)), Delivery::TripleFault);
    assert_eq!(sys.s.rip, before.rip);
    assert_eq!(sys.s.regs, before.regs);
}

#[test]
fn protected_interrupt_gate_same_privilege() {
    let mut sys = Sys::prot32();
    sys.gate(13, sys_type::INT_GATE, 0, CODE32, 0x1000, 0);
    sys.s
        .set_rflags(eflags::IF | eflags::TF | eflags::NT | eflags::RF | eflags::DF | 0x2);
    let (ev, e) = delivered(sys.deliver(Event::exception(13, 0x1234)));
    assert_eq!(ev.vector, 13);
    let pushed = eflags::IF | eflags::TF | eflags::NT | eflags::RF | eflags::DF | 0x2;
    assert_eq!(sys.frame(STACK - 16, 4, 4), [0x1234, 0x500, u64::from(CODE32), pushed]);
    assert_eq!((e.cs.selector, e.rip, e.rsp, e.cpl), (CODE32, 0x1000, STACK - 16, 0));
    assert_eq!(e.rflags, eflags::DF | 0x2);
    assert_eq!(e.ss.selector, DATA0);
    // The handler's code segment is marked accessed, in the cache and in the GDT.
    assert_eq!(e.cs.flags & DESC_A, DESC_A);
    assert_eq!(sys.m.peek(GDT + u64::from(CODE32) + 4, 4) as u32 & DESC_A, DESC_A);
}

#[test]
fn protected_trap_gate_and_software_int() {
    let mut sys = Sys::prot32();
    sys.gate(13, sys_type::TRAP_GATE, 0, CODE32, 0x1000, 0);
    sys.s.set_rflags(eflags::IF | 0x2);
    // int 13: no error code, returns to the next instruction, trap gate keeps IF.
    let (_, e) = delivered(sys.deliver(Event::software(13, 0x502)));
    assert_eq!(e.rsp, STACK - 12);
    assert_eq!(sys.frame(STACK - 12, 3, 4), [0x502, u64::from(CODE32), eflags::IF | 2]);
    assert_eq!(e.rflags, eflags::IF | 2);
}

#[test]
fn protected_inner_privilege_stack_switch() {
    let mut sys = Sys::prot32();
    sys.gate(0x80, sys_type::TRAP_GATE, 3, CODE32, 0x2000, 0);
    sys.enter_cpl3();
    sys.s.regs[reg::RSP] = 0x7000;
    sys.s.set_rflags(eflags::IF | 0x2);
    let (_, e) = delivered(sys.deliver(Event::software(0x80, 0x4002)));
    let esp = STACK0 - 20;
    assert_eq!(
        sys.frame(esp, 5, 4),
        [0x4002, u64::from(CODE32_3), eflags::IF | 2, 0x7000, u64::from(DATA3)]
    );
    assert_eq!((e.cs.selector, e.rip, e.rsp, e.cpl), (CODE32, 0x2000, esp, 0));
    assert_eq!(e.ss.selector, DATA0);
    assert_eq!(cpl(&sys.s), 0);
    // The pushes were supervisor accesses, the TSS, IDT and GDT (accessed bit) implicit ones.
    assert!(sys
        .m
        .log
        .iter()
        .filter(|l| l.write && l.linear >= STACK0 - 0x100)
        .all(|l| matches!(l.privilege, Privilege::Supervisor { .. })));
    assert!(sys
        .m
        .log
        .iter()
        .filter(|l| !l.write)
        .all(|l| l.privilege == Privilege::Implicit));

    // With an error code, from an exception at CPL 3.
    let mut sys = Sys::prot32();
    sys.gate(14, sys_type::INT_GATE, 0, CODE32, 0x2000, 0);
    sys.enter_cpl3();
    let (_, e) = delivered(sys.deliver(Event {
        fault_addr: 0x1234_5000,
        ..Event::exception(14, pf_err::U | pf_err::W)
    }));
    assert_eq!(e.rsp, STACK0 - 24);
    assert_eq!(sys.m.peek(STACK0 - 24, 4), u64::from(pf_err::U | pf_err::W));
    assert_eq!(sys.s.cr[2], 0x1234_5000);
}

#[test]
fn protected_16_bit_gate_frame() {
    let mut sys = Sys::prot32();
    sys.gate(0x0d, sys_type::INT_GATE16, 0, CODE16, 0x1_0300, 0);
    sys.s.set_rflags(eflags::IF | 0x2);
    let (_, e) = delivered(sys.deliver(Event::exception(13, 0xabc)));
    assert_eq!(
        sys.frame(STACK - 8, 4, 2),
        [0xabc, 0x500, u64::from(CODE32), eflags::IF | 2]
    );
    assert_eq!((e.cs.selector, e.rip, e.rsp), (CODE16, 0x300, STACK - 8));
    assert_eq!(e.rflags, 2);
}

#[test]
fn vm86_to_ring0() {
    let mut sys = Sys::prot32();
    sys.gate(13, sys_type::INT_GATE, 0, CODE32, 0x3000, 0);
    sys.s.set_rflags(eflags::VM | eflags::IF | 0x3002);
    for (r, sel) in [
        (seg::ES, 0x1000u16),
        (seg::CS, 0x2000),
        (seg::SS, 0x3000),
        (seg::DS, 0x4000),
        (seg::FS, 0x5000),
        (seg::GS, 0x6000),
    ] {
        sys.s.segs[r] = vm86_cache(sel);
    }
    sys.s.regs[reg::RSP] = 0xfff0;
    sys.s.rip = 0x123;
    assert_eq!(cpl(&sys.s), 3);
    let (_, e) = delivered(sys.deliver(Event::exception(13, 0)));
    let esp = STACK0 - 40;
    assert_eq!(
        sys.frame(esp, 10, 4),
        [
            0,
            0x123,
            0x2000,
            eflags::VM | eflags::IF | 0x3002,
            0xfff0,
            0x3000,
            0x1000,
            0x4000,
            0x5000,
            0x6000
        ]
    );
    assert_eq!((e.cs.selector, e.rip, e.rsp, e.cpl), (CODE32, 0x3000, esp, 0));
    assert_eq!(e.rflags, 0x3002);
    for r in [seg::ES, seg::DS, seg::FS, seg::GS] {
        assert_eq!(sys.s.segs[r].selector, 0);
        assert_eq!(sys.s.segs[r].flags & DESC_P, 0);
    }
    assert!(!is_vm86(&sys.s));

    // From vm86 the handler must be DPL 0 non-conforming: #GP(sel + EXT).
    let mut sys = Sys::prot32();
    sys.gate(13, sys_type::INT_GATE, 3, CODE32_3, 0x3000, 0);
    sys.s.set_rflags(eflags::VM | 0x3002);
    sys.s.segs[seg::CS] = vm86_cache(0);
    assert_eq!(
        sys.once(Event::exception(13, 0)),
        Err(Fault::gp(u32::from(CODE32_3 & !3) + EXT))
    );
    // ... also a non-conforming DPL-1 handler (an inner level, but not ring 0).
    sys.gdt(
        FREE,
        Descriptor::encode_segment(0, 0xfffff, CODE | DESC_B | DESC_G | dpl(1)),
    );
    sys.gate(13, sys_type::INT_GATE, 3, FREE, 0x3000, 0);
    assert_eq!(sys.once(Event::exception(13, 0)), Err(Fault::gp(u32::from(FREE) + EXT)));
    // int n in vm86 with IOPL < 3: #GP(0).
    sys.s.set_rflags(eflags::VM | 0x2);
    assert_eq!(sys.once(Event::software(0x21, 0)), Err(Fault::gp(0)));
}

#[test]
fn software_int_gate_dpl_check() {
    let mut sys = Sys::prot32();
    sys.gate(0x21, sys_type::INT_GATE, 0, CODE32, 0x1000, 0);
    sys.gate(13, sys_type::INT_GATE, 0, CODE32, 0x2000, 0);
    sys.enter_cpl3();
    assert_eq!(sys.once(Event::software(0x21, 0x10)), Err(Fault::gp(0x21 * 8 + 2)));
    // The #GP is delivered instead, with its error code (no EXT).
    let (ev, e) = delivered(sys.deliver(Event::software(0x21, 0x10)));
    assert_eq!((ev.vector, ev.error_code), (13, 0x10a));
    assert_eq!(sys.m.peek(e.rsp, 4), 0x10a);
    // It returns to the int instruction itself.
    assert_eq!(sys.m.peek(e.rsp + 4, 4), 0x500);
    // External interrupts and exceptions ignore the gate's DPL.
    let mut sys = Sys::prot32();
    sys.gate(0x21, sys_type::INT_GATE, 0, CODE32, 0x1000, 0);
    sys.enter_cpl3();
    let (_, e) = delivered(sys.deliver(Event::external(0x21)));
    assert_eq!(e.rip, 0x1000);
    // No error code for an external interrupt, even on vector 13's number.
    assert_eq!(e.rsp, STACK0 - 20);
}

#[test]
fn delivery_checks_and_ext_bit() {
    let v = 0x40u8;
    let idt = u32::from(v) * 8 + 2;
    let mut sys = Sys::prot32();
    // IDT limit.
    sys.s.idt.limit = u32::from(v) * 8 + 6;
    assert_eq!(sys.once(Event::external(v)), Err(Fault::gp(idt + EXT)));
    assert_eq!(sys.once(Event::software(v, 0)), Err(Fault::gp(idt)));
    sys.s.idt.limit = 0x7ff;
    // Wrong gate types: a task gate (not emulated), a call gate, a data segment.
    for raw in [
        Descriptor::encode_gate(sys_type::TASK_GATE, 0, TSS_SEL, 0, 0),
        Descriptor::encode_gate(sys_type::CALL_GATE, 0, CODE32, 0, 0),
        Descriptor::encode_segment(0, 0xffff, DATA),
    ] {
        sys.m.poke(IDT + 8 * u64::from(v), 8, raw);
        assert_eq!(sys.once(Event::external(v)), Err(Fault::gp(idt + EXT)));
    }
    // Not present.
    sys.gate(v, sys_type::INT_GATE, 3, CODE32, 0x1000, 0);
    sys.gate_not_present(v);
    assert_eq!(sys.once(Event::exception(v, 0)), Err(Fault::np(idt + EXT)));
    assert_eq!(sys.once(Event::software(v, 0)), Err(Fault::np(idt)));
    // Null target.
    sys.gate(v, sys_type::INT_GATE, 3, 0, 0x1000, 0);
    assert_eq!(sys.once(Event::external(v)), Err(Fault::gp(EXT)));
    assert_eq!(sys.once(Event::software(v, 0)), Err(Fault::gp(0)));
    // Target beyond the GDT, a data segment, DPL > CPL, not present.
    sys.gate(v, sys_type::INT_GATE, 3, 0x200, 0x1000, 0);
    assert_eq!(sys.once(Event::external(v)), Err(Fault::gp(0x200 + EXT)));
    sys.gate(v, sys_type::INT_GATE, 3, DATA0, 0x1000, 0);
    assert_eq!(sys.once(Event::external(v)), Err(Fault::gp(u32::from(DATA0) + EXT)));
    sys.gate(v, sys_type::INT_GATE, 3, CODE32_3, 0x1000, 0);
    assert_eq!(
        sys.once(Event::external(v)),
        Err(Fault::gp(u32::from(CODE32_3 & !3) + EXT))
    );
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xfffff, (CODE | DESC_B) & !DESC_P));
    sys.gate(v, sys_type::INT_GATE, 3, FREE, 0x1000, 0);
    assert_eq!(sys.once(Event::external(v)), Err(Fault::np(u32::from(FREE) + EXT)));
    // Entry point beyond the CS limit.
    sys.gate(v, sys_type::INT_GATE, 3, CODE16, 0x1_0000, 0);
    assert_eq!(sys.once(Event::external(v)), Err(Fault::gp(EXT)));
    // Inner-level stack from the TSS: SS null, wrong DPL, TSS too short.
    sys.gate(v, sys_type::INT_GATE, 3, CODE32, 0x1000, 0);
    sys.enter_cpl3();
    sys.m.poke(TSS + 8, 2, 0);
    assert_eq!(sys.once(Event::external(v)), Err(Fault::new(EXCP_TS, EXT)));
    sys.m.poke(TSS + 8, 2, u64::from(DATA3));
    assert_eq!(
        sys.once(Event::external(v)),
        Err(Fault::new(EXCP_TS, u32::from(DATA3 & !3) + EXT))
    );
    sys.m.poke(TSS + 8, 2, u64::from(DATA0));
    sys.s.tr.limit = 7;
    assert_eq!(
        sys.once(Event::external(v)),
        Err(Fault::new(EXCP_TS, u32::from(TSS_SEL) + EXT))
    );
    sys.s.tr.limit = 0x67;
    // Nothing changed by the failed attempts.
    assert_eq!(cpl(&sys.s), 3);
    assert_eq!(sys.s.regs[reg::RSP], STACK);
    sys.once(Event::external(v)).unwrap();
}

#[test]
fn long_mode_same_privilege_frame_is_aligned() {
    let mut sys = Sys::long();
    sys.gate(14, sys_type::INT_GATE, 0, CODE64, 0xffff_8000_0000_2000, 0);
    sys.s.regs[reg::RSP] = STACK + 8;
    sys.s.set_rflags(eflags::IF | eflags::AC | 0x2);
    let ev = Event {
        fault_addr: 0xdead_b000,
        ..Event::exception(14, pf_err::W | pf_err::P)
    };
    let (_, e) = delivered(sys.deliver(ev));
    let rsp = STACK - 48;
    assert_eq!(
        sys.frame(rsp, 6, 8),
        [
            3,
            0x500,
            u64::from(CODE64),
            eflags::IF | eflags::AC | 2,
            STACK + 8,
            u64::from(DATA0)
        ]
    );
    assert_eq!(
        (e.cs.selector, e.rip, e.rsp, e.cpl),
        (CODE64, 0xffff_8000_0000_2000, rsp, 0)
    );
    assert_eq!(e.ss.selector, DATA0);
    assert_eq!(e.rflags, eflags::AC | 2);
    assert_eq!(sys.s.cr[2], 0xdead_b000);
}

#[test]
fn long_mode_inner_privilege() {
    let mut sys = Sys::long();
    sys.gate(0x20, sys_type::INT_GATE, 0, CODE64, 0x3000, 0);
    sys.enter_cpl3();
    sys.s.regs[reg::RSP] = 0x7003;
    sys.s.set_rflags(eflags::IF | 0x2);
    let (_, e) = delivered(sys.deliver(Event::external(0x20)));
    let rsp = STACK0 - 40;
    assert_eq!(
        sys.frame(rsp, 5, 8),
        [0x500, u64::from(CODE64_3), eflags::IF | 2, 0x7003, u64::from(DATA3)]
    );
    assert_eq!((e.cs.selector, e.rip, e.rsp, e.cpl), (CODE64, 0x3000, rsp, 0));
    // SS: null selector with RPL = new CPL.
    assert_eq!(e.ss.selector, 0);
    // RSP0 not aligned: aligned down.
    let mut sys = Sys::long();
    sys.gate(0x20, sys_type::INT_GATE, 0, CODE64, 0x3000, 0);
    sys.enter_cpl3();
    sys.m.poke(TSS + 4, 8, STACK0 + 0xc);
    let (_, e) = delivered(sys.deliver(Event::external(0x20)));
    assert_eq!(e.rsp, STACK0 - 40);
}

#[test]
fn long_mode_ist() {
    let mut sys = Sys::long();
    sys.gate(2, sys_type::INT_GATE, 0, CODE64, 0x3000, 1);
    let (_, e) = delivered(sys.deliver(Event::external(2)));
    // IST1 (0xa008) aligned down to 0xa000, even without a privilege change; SS unchanged.
    let rsp = (IST1 & !0xf) - 40;
    assert_eq!(e.rsp, rsp);
    assert_eq!(
        sys.frame(rsp, 5, 8),
        [0x500, u64::from(CODE64), 2, STACK, u64::from(DATA0)]
    );
    assert_eq!(e.ss.selector, DATA0);
    // IST7 beyond the TSS limit: #TS(TR + EXT).
    sys.gate(2, sys_type::INT_GATE, 0, CODE64, 0x3000, 7);
    sys.s.tr.limit = 0x55;
    assert_eq!(
        sys.once(Event::external(2)),
        Err(Fault::new(EXCP_TS, u32::from(TSS_SEL) + EXT))
    );
}

#[test]
fn long_mode_gate_checks() {
    let mut sys = Sys::long();
    // The target must be 64-bit code.
    sys.gate(0x30, sys_type::INT_GATE, 0, CODE32, 0x3000, 0);
    assert_eq!(sys.once(Event::external(0x30)), Err(Fault::gp(u32::from(CODE32) + EXT)));
    // 16-bit and 32-bit gate types do not exist in long mode.
    sys.gate(0x30, sys_type::INT_GATE16, 0, CODE64, 0x3000, 0);
    assert_eq!(sys.once(Event::external(0x30)), Err(Fault::gp(0x30 * 8 + 2 + EXT)));
    // Non-canonical entry point.
    sys.gate(0x30, sys_type::INT_GATE, 0, CODE64, 0x0000_8000_0000_0000, 0);
    assert_eq!(sys.once(Event::external(0x30)), Err(Fault::gp(EXT)));
    // IDT limit counts 16-byte entries.
    sys.gate(0x30, sys_type::INT_GATE, 0, CODE64, 0x3000, 0);
    sys.s.idt.limit = 0x30 * 16 + 8;
    assert_eq!(sys.once(Event::external(0x30)), Err(Fault::gp(0x30 * 8 + 2 + EXT)));
    sys.s.idt.limit = 0xfff;
    // Software interrupt at CPL 3 through a DPL-0 gate.
    sys.enter_cpl3();
    assert_eq!(sys.once(Event::software(0x30, 0)), Err(Fault::gp(0x30 * 8 + 2)));
    // A non-canonical RSP0: #SS.
    sys.m.poke(TSS + 4, 8, 0x0001_0000_0000_0010);
    assert_eq!(sys.once(Event::external(0x30)).map_err(|f| f.vector), Err(12));
}

#[test]
fn double_fault_from_contributory_pair() {
    let mut sys = Sys::prot32();
    sys.gate(13, sys_type::INT_GATE, 0, CODE32, 0x1000, 0);
    sys.gate_not_present(13);
    sys.gate(8, sys_type::INT_GATE, 0, CODE32, 0x8888, 0);
    let (ev, e) = delivered(sys.deliver(Event::exception(13, 0)));
    assert_eq!((ev.vector, ev.error_code), (8, 0));
    assert_eq!(e.rip, 0x8888);
    // #DF pushes error code 0.
    assert_eq!(sys.frame(e.rsp, 2, 4), [0, 0x500]);
}

#[test]
fn page_fault_during_page_fault_is_double_fault() {
    let mut sys = Sys::long();
    sys.gate(14, sys_type::INT_GATE, 0, CODE64, 0x1400, 0);
    sys.gate(8, sys_type::INT_GATE, 0, CODE64, 0x0800, 1);
    sys.s.regs[reg::RSP] = BAD_STACK;
    let (ev, e) = delivered(sys.deliver(Event {
        fault_addr: 0x1234,
        ..Event::exception(14, 0)
    }));
    assert_eq!(ev.vector, 8);
    assert_eq!(e.rip, 0x0800);
    // CR2 holds the second fault's address (the first push).
    assert_eq!(sys.s.cr[2], BAD_STACK - 8);
    assert_eq!(e.rsp, (IST1 & !0xf) - 48);
    assert_eq!(sys.m.peek(e.rsp, 8), 0);
}

#[test]
fn contributory_then_page_fault_is_serial() {
    let mut sys = Sys::long();
    sys.gate(13, sys_type::INT_GATE, 0, CODE64, 0x1300, 0);
    sys.gate(14, sys_type::INT_GATE, 0, CODE64, 0x1400, 1);
    sys.s.regs[reg::RSP] = BAD_STACK;
    let (ev, e) = delivered(sys.deliver(Event::exception(13, 0)));
    assert_eq!((ev.vector, ev.error_code), (14, pf_err::W));
    assert_eq!(e.rip, 0x1400);
    assert_eq!(sys.s.cr[2], BAD_STACK - 8);
    assert_eq!(sys.m.peek(e.rsp, 8), u64::from(pf_err::W));
}

#[test]
fn external_then_not_present_is_serial() {
    let mut sys = Sys::prot32();
    sys.gate(0x30, sys_type::INT_GATE, 0, CODE32, 0x1000, 0);
    sys.gate_not_present(0x30);
    sys.gate(11, sys_type::INT_GATE, 0, CODE32, 0x1100, 0);
    let (ev, e) = delivered(sys.deliver(Event::external(0x30)));
    assert_eq!((ev.vector, ev.error_code), (11, 0x30 * 8 + 2 + EXT));
    assert_eq!(sys.m.peek(e.rsp, 4), u64::from(0x30 * 8 + 2 + EXT));
    assert_eq!(ev.vector, EXCP_NP as u8);
}

#[test]
fn triple_fault() {
    let mut sys = Sys::long();
    sys.gate(13, sys_type::INT_GATE, 0, CODE64, 0x1300, 0);
    sys.gate_not_present(13);
    sys.gate(8, sys_type::INT_GATE, 0, CODE64, 0x0800, 0);
    sys.gate_not_present(8);
    let before = sys.s.clone();
    assert_eq!(sys.deliver(Event::exception(13, 0)), Delivery::TripleFault);
    assert_eq!(
        (sys.s.rip, sys.s.regs, sys.s.segs),
        (before.rip, before.regs, before.segs)
    );
    // A #DF whose stack faults: triple fault too.
    let mut sys = Sys::long();
    sys.gate(8, sys_type::INT_GATE, 0, CODE64, 0x0800, 0);
    sys.s.regs[reg::RSP] = BAD_STACK;
    assert_eq!(sys.deliver(Event::exception(8, 0)), Delivery::TripleFault);
}

#[test]
fn stack_limit_faults_during_delivery() {
    // Same privilege: #SS(EXT) for an external interrupt, #SS(0) for int n.
    let mut sys = Sys::prot32();
    sys.gate(0x30, sys_type::INT_GATE, 3, CODE32, 0x1000, 0);
    sys.gdt(FREE, Descriptor::encode_segment(0, 0x7ff8, DATA | DESC_B));
    sys.s.segs[seg::SS] = sys.cache(FREE);
    assert_eq!(sys.once(Event::external(0x30)), Err(Fault::new(EXCP_SS, EXT)));
    assert_eq!(sys.once(Event::software(0x30, 0)), Err(Fault::new(EXCP_SS, 0)));
    // Inner privilege: #SS(new SS + EXT).
    let mut sys = Sys::prot32();
    sys.gate(0x30, sys_type::INT_GATE, 0, CODE32, 0x1000, 0);
    sys.gdt(FREE, Descriptor::encode_segment(0, 0x8ff0, DATA | DESC_B));
    sys.m.poke(TSS + 8, 2, u64::from(FREE));
    sys.enter_cpl3();
    assert_eq!(
        sys.once(Event::external(0x30)),
        Err(Fault::new(EXCP_SS, u32::from(FREE) + EXT))
    );
    // #SS is contributory: raised while delivering #GP it becomes #DF. The #DF gate targets a conforming
    // segment, so it runs at CPL 3 on the (flat) user stack.
    sys.gate(13, sys_type::INT_GATE, 0, CODE32, 0x1300, 0);
    sys.gdt(
        FREE + 16,
        Descriptor::encode_segment(0, 0xfffff, CODE | DESC_C | DESC_B | DESC_G),
    );
    sys.gate(8, sys_type::INT_GATE, 0, FREE + 16, 0x0800, 0);
    let (ev, e) = delivered(sys.deliver(Event::exception(13, 0)));
    assert_eq!((ev.vector, e.rip, e.cpl), (8, 0x0800, 3));
    assert_eq!(e.cs.selector, FREE + 16 + 3);
    assert_eq!(e.rsp, STACK - 16);
}
