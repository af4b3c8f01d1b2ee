//! Exception and interrupt delivery (Intel SDM vol. 3 ch. 6, AMD APM vol. 2 ch. 8): takes an [`Event`]
//! (exception, software interrupt or external interrupt), reads the IVT/IDT gate, switches stacks when the
//! privilege changes, pushes the frame and loads CS:RIP, SS:RSP and RFLAGS, applying the double-fault rule to
//! faults raised on the way. Self-contained like [`crate::seg_helper`]: the CPU state and a [`SysMem`].
//!
//! # Events
//! - exceptions ([`Source::Exception`]): faults return to the faulting instruction, traps (int1/icebp, #DB
//!   traps) to [`Event::next_rip`]; vectors 8, 10-14, 17 and 21 push their error code ([`has_error_code`])
//!   in protected and long mode (never in real mode);
//! - software interrupts ([`Source::Software`]: int n, int3, into): return to the next instruction, no error
//!   code, and the gate's DPL must be ≥ CPL (#GP(vector·8 + 2)); in vm86 mode IOPL < 3 is #GP(0) (no VME);
//! - external interrupts ([`Source::External`]): no DPL check, no error code.
//!
//! Faults raised while delivering an event carry the EXT bit (bit 0 of the error code) unless the event is
//! a software interrupt: IDT index beyond the IDTR limit or a gate of the wrong type: #GP(vector·8 + 2 + EXT);
//! gate not present: #NP(vector·8 + 2 + EXT); null target selector: #GP(EXT); target selector beyond its
//! table, not a code segment (64-bit code in long mode), DPL > CPL: #GP(sel + EXT); target not present:
//! #NP(sel + EXT); TSS stack errors: #TS/#SS with EXT ([`crate::seg_helper`]); the entry point beyond the CS
//! limit or non-canonical: #GP(EXT); a push beyond the SS limit (or non-canonical in long mode): #SS(EXT) on
//! the current stack, #SS(new SS + EXT) on an inner one.
//!
//! # The double-fault rule
//! [`deliver`] retries with the fault delivery raised ([`combine`]): a contributory fault (#DE, #TS, #NP,
//! #SS, #GP, #CP) while delivering a contributory exception, or a contributory fault or #PF while delivering
//! #PF, becomes #DF(0); any fault while delivering #DF is a triple fault ([`Delivery::TripleFault`]: the
//! machine resets, or exits under `-no-reboot`); any other combination delivers the second fault (the first
//! event is dropped; a fault re-executes its instruction, which raises it again). Software and external
//! interrupts count as benign.
//!
//! # Modes
//! - real mode: the IVT at IDTR.base (4-byte entries, IDTR.limit checked), pushes FLAGS, CS, IP (16 bits),
//!   clears IF, TF and AC;
//! - protected mode: 16- and 32-bit interrupt and trap gates; to an inner level (non-conforming DPL < CPL)
//!   SS:ESP comes from the TSS and the old SS:ESP is pushed first; from vm86 mode the target must be DPL 0
//!   (else #GP(sel + EXT)) and GS, FS, DS, ES are pushed before SS and then loaded with null selectors; then
//!   EFLAGS, CS, EIP and the error code, at the gate's width. Interrupt gates clear IF; every gate clears TF,
//!   NT, RF and VM;
//! - long mode: 16-byte gates (64-bit interrupt/trap gates only), the target must be 64-bit code; RSP comes
//!   from the IST entry when the gate names one, else from RSPn of the 64-bit TSS on a privilege change, else
//!   the current RSP; it is aligned down to 16 bytes; SS, RSP, RFLAGS, CS, RIP (and the error code) are
//!   always pushed as quadwords; a privilege change loads a null SS with RPL = new CPL.
//!
//! The handler's code segment (and a new SS) get their accessed bit set in the descriptor table. Stack pushes
//! are made at the new CPL ([`crate::seg_helper::data_privilege`], with the interrupted code's EFLAGS.AC);
//! IDT, GDT/LDT and TSS accesses are implicit supervisor accesses.
//!
//! CR2 is set to [`Event::fault_addr`] when the delivery of a #PF starts, and to the address of a #PF raised
//! during a delivery (also when it becomes #DF). Task gates (task switches) are not emulated: a task gate in
//! the IDT is treated as a gate of the wrong type, #GP(vector·8 + 2 + EXT).

use crate::cpu::{eflags, excp, reg, seg, SegmentCache, X86CpuState};
use crate::paging::Privilege;
use crate::seg_helper::{
    check_rip, check_tss_ss, cpl, data_privilege, fetch_descriptor, is_canonical, is_long_active, is_protected,
    is_vm86, null_ss_cache, sel_err, selector, set_accessed, sys_type, tss64_read, tss_legacy_stack, Descriptor,
    Fetched, Stack, TSS64_IST1, TSS64_RSP0,
};
use crate::sysmem::{Fault, SysMem, EXCP_DF};

/// Error-code bit 0 (EXT): the fault arose while delivering an event external to the program.
pub const ERR_EXT: u32 = 1;
/// Error-code bit 1 (IDT): the index names an IDT gate.
pub const ERR_IDT: u32 = 2;
/// Vector of #MF (x87 floating-point error).
pub const EXCP_MF: u8 = 16;
/// Vector of #AC (alignment check).
pub const EXCP_AC: u8 = 17;
/// Vector of #VE (virtualization exception).
pub const EXCP_VE: u8 = 20;
/// Vector of #CP (control protection).
pub const EXCP_CP: u8 = 21;
/// At most this many deliveries are attempted for one event (event, serial fault, #PF, #DF).
const MAX_ATTEMPTS: usize = 5;

/// Where an event comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An exception the CPU raised (a fault, or a trap such as int1/icebp).
    Exception,
    /// `int n`, `int3`, `into`: gate DPL checked, no error code, EXT = 0.
    Software,
    /// An external (hardware) interrupt or NMI: no DPL check, no error code, EXT = 1.
    External,
}

/// An event to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The vector.
    pub vector: u8,
    /// The error code (pushed only for [`has_error_code`] vectors raised as exceptions outside real mode).
    pub error_code: u32,
    /// Exception, software or external.
    pub source: Source,
    /// For traps and software interrupts, the return address (the next instruction); `None` returns to
    /// the CPU state's RIP (faults: the faulting instruction; external interrupts: the next one to run).
    pub next_rip: Option<u64>,
    /// For #PF, the faulting linear address (CR2).
    pub fault_addr: u64,
}

impl Event {
    /// A fault `vector` with `error_code`.
    pub const fn exception(vector: u8, error_code: u32) -> Event {
        Event {
            vector,
            error_code,
            source: Source::Exception,
            next_rip: None,
            fault_addr: 0,
        }
    }

    /// A trap exception (int1/icebp, debug traps) returning to `next_rip`.
    pub const fn trap(vector: u8, next_rip: u64) -> Event {
        Event {
            vector,
            error_code: 0,
            source: Source::Exception,
            next_rip: Some(next_rip),
            fault_addr: 0,
        }
    }

    /// A software interrupt (`int n`, `int3`, `into`) returning to `next_rip`.
    pub const fn software(vector: u8, next_rip: u64) -> Event {
        Event {
            vector,
            error_code: 0,
            source: Source::Software,
            next_rip: Some(next_rip),
            fault_addr: 0,
        }
    }

    /// An external interrupt.
    pub const fn external(vector: u8) -> Event {
        Event {
            vector,
            error_code: 0,
            source: Source::External,
            next_rip: None,
            fault_addr: 0,
        }
    }

    /// The exception a helper returned.
    pub const fn from_fault(f: Fault) -> Event {
        Event {
            vector: f.vector as u8,
            error_code: f.error_code,
            source: Source::Exception,
            next_rip: None,
            fault_addr: f.addr,
        }
    }

    /// The exception pending in `s` (`exception_index`, `error_code`, `fault_addr`, `exception_is_int`,
    /// `exception_is_trap`, `exception_next_rip`), as the machine's `handle_exception` finds it. Deliver it
    /// with the state's rip still at the trapping instruction (before `X86CpuState::complete_trap`): a fault
    /// raised while delivering a trap returns to that instruction.
    pub fn from_pending(s: &X86CpuState) -> Event {
        Event {
            vector: s.exception_index as u8,
            error_code: s.error_code,
            source: if s.exception_is_int != 0 {
                Source::Software
            } else {
                Source::Exception
            },
            next_rip: (s.exception_is_trap != 0).then_some(s.exception_next_rip),
            fault_addr: s.fault_addr,
        }
    }
}

/// Exception classes for the double-fault rule (SDM vol. 3 table 6-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Every other vector, and all software and external interrupts.
    Benign,
    /// #DE, #TS, #NP, #SS, #GP, #CP.
    Contributory,
    /// #PF and #VE.
    PageFault,
}

/// The class of exception `vector`.
pub const fn class(vector: u8) -> Class {
    match vector as u32 {
        excp::DE | 10..=13 => Class::Contributory,
        v if v == EXCP_CP as u32 => Class::Contributory,
        excp::PF => Class::PageFault,
        v if v == EXCP_VE as u32 => Class::PageFault,
        _ => Class::Benign,
    }
}

/// Whether exception `vector` pushes an error code (protected and long mode): #DF, #TS, #NP, #SS, #GP, #PF,
/// #AC, #CP.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | EXCP_AC | EXCP_CP)
}

/// What [`deliver`] does with `second`, a fault raised while delivering `first`: `Some` event to deliver
/// next (#DF(0), or `second` itself), or `None` for a triple fault (a fault while delivering #DF).
pub fn combine(first: &Event, second: &Fault) -> Option<Event> {
    let first_class = if first.source == Source::Exception {
        if u32::from(first.vector) == EXCP_DF {
            return None;
        }
        class(first.vector)
    } else {
        Class::Benign
    };
    let second_class = class(second.vector as u8);
    let double = matches!(
        (first_class, second_class),
        (Class::Contributory, Class::Contributory)
            | (Class::PageFault, Class::Contributory)
            | (Class::PageFault, Class::PageFault)
    );
    Some(if double {
        Event::exception(EXCP_DF as u8, 0)
    } else {
        Event::from_fault(*second)
    })
}

/// The CPU state at the handler's first instruction, as delivery left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryState {
    /// The new CS.
    pub cs: SegmentCache,
    /// The handler's RIP.
    pub rip: u64,
    /// The new SS (unchanged without a stack switch).
    pub ss: SegmentCache,
    /// The new RSP (below the pushed frame).
    pub rsp: u64,
    /// The new RFLAGS.
    pub rflags: u64,
    /// The new CPL.
    pub cpl: u8,
}

impl EntryState {
    fn of(s: &X86CpuState) -> EntryState {
        EntryState {
            cs: s.segs[seg::CS],
            rip: s.rip,
            ss: s.segs[seg::SS],
            rsp: s.regs[reg::RSP],
            rflags: s.rflags(),
            cpl: cpl(s),
        }
    }
}

/// The outcome of [`deliver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// `event` was delivered (the original one, a fault raised on the way, or #DF).
    Delivered {
        /// The event whose handler runs.
        event: Event,
        /// The state at its handler.
        entry: EntryState,
    },
    /// A fault while delivering #DF: the CPU shuts down (the machine resets it, or exits with `-no-reboot`).
    TripleFault,
}

/// Delivers `event` with the double-fault rule: a fault during delivery is [`combine`]d with the event
/// being delivered and the result delivered instead, until one delivery succeeds or a triple fault. The
/// state is changed only by a successful delivery, and CR2 by every #PF delivered or detected on the way
/// (also one that becomes #DF); memory may hold partial frames of failed attempts, as on hardware.
pub fn deliver<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, event: Event) -> Delivery {
    let mut ev = event;
    for _ in 0..MAX_ATTEMPTS {
        match deliver_once(s, mem, &ev) {
            Ok(entry) => return Delivery::Delivered { event: ev, entry },
            Err(f) => {
                // CR2 takes the address of every page fault detected, also one that becomes #DF.
                if f.vector == excp::PF {
                    s.cr[2] = f.addr;
                }
                match combine(&ev, &f) {
                    Some(next) => ev = next,
                    None => return Delivery::TripleFault,
                }
            }
        }
    }
    Delivery::TripleFault
}

/// One delivery attempt of `ev`, without the double-fault rule: the state at the handler, or the fault that
/// stopped it (state unchanged but for CR2 on #PF).
pub fn deliver_once<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, ev: &Event) -> Result<EntryState, Fault> {
    if u32::from(ev.vector) == excp::PF && ev.source == Source::Exception {
        s.cr[2] = ev.fault_addr;
    }
    if !is_protected(s) {
        deliver_real(s, mem, ev)?;
    } else if is_long_active(s) {
        deliver_long(s, mem, ev)?;
    } else {
        deliver_protected(s, mem, ev)?;
    }
    Ok(EntryState::of(s))
}

/// The EXT bit for faults raised while delivering `ev`.
fn ext_of(ev: &Event) -> u32 {
    if ev.source == Source::Software {
        0
    } else {
        ERR_EXT
    }
}

/// The error code naming IDT entry `vector`.
fn idt_err(vector: u8, ext: u32) -> u32 {
    u32::from(vector) * 8 + ERR_IDT + ext
}

/// Where the handler returns to.
fn return_rip(s: &X86CpuState, ev: &Event) -> u64 {
    ev.next_rip.unwrap_or(s.rip)
}

/// Whether `ev` pushes an error code (outside real mode).
fn pushes_error_code(ev: &Event) -> bool {
    ev.source == Source::Exception && has_error_code(ev.vector)
}

/// Real mode: IVT entry `vector` (offset, segment) at IDTR.base + 4·vector.
fn deliver_real<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, ev: &Event) -> Result<(), Fault> {
    let ext = ext_of(ev);
    let index = u64::from(ev.vector) * 4;
    if index + 3 > u64::from(s.idt.limit) {
        return Err(Fault::gp(idt_err(ev.vector, ext)));
    }
    let entry = mem.read(s.idt.base.wrapping_add(index) & 0xffff_ffff, 4, Privilege::Implicit)?;
    let offset = entry & 0xffff;
    let sel = (entry >> 16) as u16;
    let rflags = s.rflags();
    let mut st = Stack::current(s, data_privilege(0, rflags));
    st.err = ext;
    st.push(mem, 2, rflags)?;
    st.push(mem, 2, u64::from(s.segs[seg::CS].selector))?;
    st.push(mem, 2, return_rip(s, ev))?;
    s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
    s.segs[seg::CS].selector = sel;
    s.segs[seg::CS].base = u64::from(sel) << 4;
    s.rip = offset;
    s.set_rflags(rflags & !(eflags::IF | eflags::TF | eflags::AC));
    Ok(())
}

/// The target code segment of an interrupt gate: null: #GP(EXT); beyond its table: #GP(sel + EXT); not
/// code (`need64`: not 64-bit code) or DPL > CPL: #GP(sel + EXT); not present: #NP(sel + EXT).
fn gate_target<M: SysMem + ?Sized>(
    s: &X86CpuState,
    mem: &mut M,
    gate: &Descriptor,
    cpl: u8,
    ext: u32,
    need64: bool,
) -> Result<(u16, Fetched), Fault> {
    let tsel = gate.gate_selector();
    if tsel & selector::ERR_MASK == 0 {
        return Err(Fault::gp(ext));
    }
    let err = sel_err(tsel) | ext;
    let f = fetch_descriptor(s, mem, tsel)?.ok_or(Fault::gp(err))?;
    let d = f.desc;
    let code_ok = if need64 { d.is_code64() } else { d.is_code() };
    if !code_ok || d.dpl() > cpl {
        return Err(Fault::gp(err));
    }
    if !d.present() {
        return Err(Fault::np(err));
    }
    Ok((tsel, f))
}

/// The RFLAGS after entering a handler through a gate of type `typ`: TF, NT, RF, VM cleared, and IF for
/// interrupt gates (even types: 6, 0xe).
fn entry_rflags(rflags: u64, typ: u32) -> u64 {
    let mut f = rflags & !(eflags::TF | eflags::NT | eflags::RF | eflags::VM);
    if typ & 1 == 0 {
        f &= !eflags::IF;
    }
    f
}

/// Protected mode (and vm86 mode): 8-byte 16/32-bit interrupt and trap gates.
fn deliver_protected<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, ev: &Event) -> Result<(), Fault> {
    let ext = ext_of(ev);
    let cpl = cpl(s);
    let rflags = s.rflags();
    let vm86 = is_vm86(s);
    if vm86 && ev.source == Source::Software && (rflags & eflags::IOPL) >> 12 < 3 {
        return Err(Fault::gp(0));
    }
    let index = u64::from(ev.vector) * 8;
    let ierr = idt_err(ev.vector, ext);
    if index + 7 > u64::from(s.idt.limit) {
        return Err(Fault::gp(ierr));
    }
    let raw = mem.read(s.idt.base.wrapping_add(index) & 0xffff_ffff, 8, Privilege::Implicit)?;
    let gate = Descriptor::from_raw(raw);
    let typ = gate.typ();
    let valid = !gate.is_segment()
        && matches!(
            typ,
            sys_type::INT_GATE16 | sys_type::TRAP_GATE16 | sys_type::INT_GATE | sys_type::TRAP_GATE
        );
    if !valid {
        return Err(Fault::gp(ierr));
    }
    if ev.source == Source::Software && gate.dpl() < cpl {
        return Err(Fault::gp(idt_err(ev.vector, 0)));
    }
    if !gate.present() {
        return Err(Fault::np(ierr));
    }
    let (tsel, mut target) = gate_target(s, mem, &gate, cpl, ext, false)?;
    let d = target.desc;
    let terr = sel_err(tsel) | ext;
    let is32 = typ & 8 != 0;
    let width: u8 = if is32 { 4 } else { 2 };
    let offset = gate.gate_offset() & if is32 { 0xffff_ffff } else { 0xffff };
    let inner = !d.is_conforming() && d.dpl() < cpl;
    if vm86 && !(inner && d.dpl() == 0) {
        return Err(Fault::gp(terr));
    }
    let new_cpl = if inner { d.dpl() } else { cpl };
    let new_cs = d.cache((tsel & selector::ERR_MASK) | u16::from(new_cpl));
    check_rip(false, &new_cs, offset, ext)?;
    let old_rsp = s.regs[reg::RSP];
    let old_ss = s.segs[seg::SS].selector;
    let privilege = data_privilege(new_cpl, rflags);
    let (mut st, new_ss) = if inner {
        let (ss_sel, sp) = tss_legacy_stack(s, mem, new_cpl, ext)?;
        let ss = check_tss_ss(s, mem, ss_sel, new_cpl, ext)?;
        let st = Stack::on(&ss, sp, false, privilege, sel_err(ss.selector) | ext);
        (st, Some(ss))
    } else {
        let mut st = Stack::current(s, privilege);
        st.err = ext;
        (st, None)
    };
    if inner {
        if vm86 {
            for r in [seg::GS, seg::FS, seg::DS, seg::ES] {
                st.push(mem, width, u64::from(s.segs[r].selector))?;
            }
        }
        st.push(mem, width, u64::from(old_ss))?;
        st.push(mem, width, old_rsp)?;
    }
    st.push(mem, width, rflags)?;
    st.push(mem, width, u64::from(s.segs[seg::CS].selector))?;
    st.push(mem, width, return_rip(s, ev))?;
    if pushes_error_code(ev) {
        st.push(mem, width, u64::from(ev.error_code))?;
    }
    set_accessed(s, mem, &mut target)?;
    s.regs[reg::RSP] = st.rsp_value(old_rsp);
    if let Some(ss) = new_ss {
        s.segs[seg::SS] = ss;
    }
    if vm86 {
        for r in [seg::ES, seg::DS, seg::FS, seg::GS] {
            let mut c = SegmentCache::flat(0, 0);
            c.limit = 0;
            s.segs[r] = c;
        }
    }
    s.segs[seg::CS] = target.desc.cache(new_cs.selector);
    s.rip = offset;
    s.set_rflags(entry_rflags(rflags, typ));
    Ok(())
}

/// Long mode: 16-byte 64-bit interrupt and trap gates, IST, 16-byte aligned frames.
fn deliver_long<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, ev: &Event) -> Result<(), Fault> {
    let ext = ext_of(ev);
    let cpl = cpl(s);
    let rflags = s.rflags();
    let index = u64::from(ev.vector) * 16;
    let ierr = idt_err(ev.vector, ext);
    if index + 15 > u64::from(s.idt.limit) {
        return Err(Fault::gp(ierr));
    }
    let addr = s.idt.base.wrapping_add(index);
    let raw = mem.read(addr, 8, Privilege::Implicit)?;
    let upper = mem.read(addr.wrapping_add(8), 8, Privilege::Implicit)?;
    let gate = Descriptor::from_raw16(raw, upper);
    let typ = gate.typ();
    if gate.is_segment() || !matches!(typ, sys_type::INT_GATE | sys_type::TRAP_GATE) {
        return Err(Fault::gp(ierr));
    }
    if ev.source == Source::Software && gate.dpl() < cpl {
        return Err(Fault::gp(idt_err(ev.vector, 0)));
    }
    if !gate.present() {
        return Err(Fault::np(ierr));
    }
    let (tsel, mut target) = gate_target(s, mem, &gate, cpl, ext, true)?;
    let d = target.desc;
    let offset = gate.gate_offset();
    if !is_canonical(offset) {
        return Err(Fault::gp(ext));
    }
    let inner = !d.is_conforming() && d.dpl() < cpl;
    let new_cpl = if inner { d.dpl() } else { cpl };
    let ist = gate.ist();
    let old_rsp = s.regs[reg::RSP];
    let rsp = if ist != 0 {
        tss64_read(s, mem, TSS64_IST1 + 8 * u64::from(ist - 1), ext)?
    } else if inner {
        tss64_read(s, mem, TSS64_RSP0 + 8 * u64::from(new_cpl), ext)?
    } else {
        old_rsp
    };
    let mut st = Stack::flat64(rsp & !0xf, data_privilege(new_cpl, rflags), ext);
    st.push(mem, 8, u64::from(s.segs[seg::SS].selector))?;
    st.push(mem, 8, old_rsp)?;
    st.push(mem, 8, rflags)?;
    st.push(mem, 8, u64::from(s.segs[seg::CS].selector))?;
    st.push(mem, 8, return_rip(s, ev))?;
    if pushes_error_code(ev) {
        st.push(mem, 8, u64::from(ev.error_code))?;
    }
    set_accessed(s, mem, &mut target)?;
    s.regs[reg::RSP] = st.sp;
    if inner {
        s.segs[seg::SS] = null_ss_cache(u16::from(new_cpl), new_cpl);
    }
    s.segs[seg::CS] = target.desc.cache((tsel & selector::ERR_MASK) | u16::from(new_cpl));
    s.rip = offset;
    s.set_rflags(entry_rflags(rflags, typ));
    Ok(())
}
