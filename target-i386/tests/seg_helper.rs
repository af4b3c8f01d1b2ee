//! Segmentation (`rqemu_target_i386::seg_helper`) over a flat memory ([`FlatMem`]) with a GDT, LDT and TSS
//! built by a small builder: descriptor parsing, every check of data and stack segment loads (each error
//! code), real and vm86 loads, far jmp/call/ret in each mode (same privilege, conforming targets, call gates
//! of each width, the privilege-raising call with its stack switch and parameter copy, 64-bit gates),
//! retf/iret to an outer level (stack contents byte-exact), iret's flag rules and vm86 return, the task
//! switch stand-ins, lar/lsl/verr/verw, and `PagedMem` (the page-walking `SysMem`) under 4-level paging.

use rqemu_softmmu::{AddressSpace, RamBlock};
use rqemu_target_i386::cpu::{eflags, excp, reg, seg, SegmentCache, X86CpuState};
use rqemu_target_i386::paging::{pf_err, pte, PagingRegs, Privilege};
use rqemu_target_i386::seg_helper::*;
use rqemu_target_i386::sysmem::{Fault, FlatMem, PagedMem, SysMem, EXCP_NP, EXCP_SS, EXCP_TS};

const GDT: u64 = 0x1000;
const LDT: u64 = 0x2000;
const TSS: u64 = 0x4000;
/// Size of the flat memory: accesses at or above it are #PF.
const MEM: usize = 0x20000;
/// The initial stack pointer of every test.
const STACK: u64 = 0x8000;
/// The ring-0 stack the TSS names.
const STACK0: u64 = 0x9000;

const CODE: u32 = DESC_P | DESC_S | DESC_CS | DESC_R;
const DATA: u32 = DESC_P | DESC_S | DESC_W;
const fn dpl(n: u32) -> u32 {
    n << DESC_DPL_SHIFT
}

// GDT selectors.
const CODE64: u16 = 0x08;
const DATA0: u16 = 0x10;
const CODE32: u16 = 0x18;
const DATA3: u16 = 0x23;
const CODE64_3: u16 = 0x2b;
const CODE32_3: u16 = 0x33;
const TSS_SEL: u16 = 0x38;
const DATA16: u16 = 0x48;
const CODE16: u16 = 0x50;
/// First free GDT slot for a test's own descriptors.
const FREE: u16 = 0x60;

fn gdt_entries() -> Vec<(u16, u64)> {
    vec![
        (CODE64, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_L | DESC_G)),
        (DATA0, Descriptor::encode_segment(0, 0xfffff, DATA | DESC_B | DESC_G)),
        (CODE32, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_B | DESC_G)),
        (
            DATA3 & !3,
            Descriptor::encode_segment(0, 0xfffff, DATA | DESC_B | DESC_G | dpl(3)),
        ),
        (
            CODE64_3 & !3,
            Descriptor::encode_segment(0, 0xfffff, CODE | DESC_L | DESC_G | dpl(3)),
        ),
        (
            CODE32_3 & !3,
            Descriptor::encode_segment(0, 0xfffff, CODE | DESC_B | DESC_G | dpl(3)),
        ),
        (DATA16, Descriptor::encode_segment(0, 0xffff, DATA)),
        (CODE16, Descriptor::encode_segment(0, 0xffff, CODE)),
    ]
}

struct Sys {
    s: X86CpuState,
    m: FlatMem,
}

fn cache_of(raw: u64, sel: u16) -> SegmentCache {
    Descriptor::from_raw(raw).cache(sel)
}

impl Sys {
    fn base() -> Sys {
        let mut sys = Sys {
            s: X86CpuState::new(),
            m: FlatMem::new(MEM),
        };
        for (sel, raw) in gdt_entries() {
            sys.gdt(sel, raw);
        }
        sys.s.gdt.base = GDT;
        sys.s.gdt.limit = 0xff;
        sys.s.regs[reg::RSP] = STACK;
        sys
    }

    /// 32-bit protected mode at CPL 0, a 32-bit TSS with SS0:ESP0 = 0x10:0x9000.
    fn prot32() -> Sys {
        let mut sys = Sys::base();
        sys.s.cr[0] = CR0_PE;
        sys.s.efer = 0;
        sys.set_cs(CODE32);
        for r in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
            sys.s.segs[r] = sys.cache(DATA0);
        }
        let tss = Descriptor::encode_segment(TSS as u32, 0x67, DESC_P | (sys_type::TSS_BUSY << DESC_TYPE_SHIFT));
        sys.gdt(TSS_SEL, tss);
        sys.s.tr = cache_of(tss, TSS_SEL);
        sys.m.poke(TSS + 4, 4, STACK0);
        sys.m.poke(TSS + 8, 2, u64::from(DATA0));
        sys
    }

    /// Long mode, 64-bit code at CPL 0, a 64-bit TSS with RSP0 = 0x9000.
    fn long() -> Sys {
        let mut sys = Sys::base();
        sys.s.cr[0] = 0x8000_0001;
        sys.s.efer = 0x500;
        sys.set_cs(CODE64);
        for r in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
            sys.s.segs[r] = sys.cache(DATA0);
        }
        let tss = Descriptor::encode_segment(TSS as u32, 0x67, DESC_P | (sys_type::TSS_BUSY << DESC_TYPE_SHIFT));
        sys.gdt(TSS_SEL, tss);
        sys.gdt(TSS_SEL + 8, 0);
        sys.s.tr = cache_of(tss, TSS_SEL);
        sys.m.poke(TSS + 4, 8, STACK0);
        sys
    }

    /// Real mode: CS = SS = 0, 64 KiB limits.
    fn real() -> Sys {
        let mut sys = Sys::base();
        sys.s.cr[0] = 0x10;
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

    /// The cache the GDT entry `sel` gives (accessed bit as stored).
    fn cache(&self, sel: u16) -> SegmentCache {
        cache_of(self.m.peek(GDT + u64::from(sel & !7), 8), sel)
    }

    fn set_cs(&mut self, sel: u16) {
        self.s.segs[seg::CS] = self.cache(sel);
    }

    /// Moves to CPL 3 in 32-bit code with a DPL-3 stack.
    fn enter_cpl3(&mut self) {
        self.set_cs(CODE32_3);
        self.s.segs[seg::SS] = self.cache(DATA3);
    }

    fn push_stack(&mut self, values: &[u64], size: u8) {
        // values[0] ends up at the lowest address (popped first).
        let mut a = self.s.regs[reg::RSP];
        for v in values {
            self.m.poke(a, size, *v);
            a += u64::from(size);
        }
    }

    fn load(&mut self, r: usize, sel: u16) -> Result<(), Fault> {
        load_seg(&mut self.s, &mut self.m, r, sel)
    }
}

fn gp(code: u32) -> Result<(), Fault> {
    Err(Fault::gp(code))
}

#[test]
fn parse_descriptor_fields() {
    // base 0x12345678, limit 0xabcde, G=0: byte granular.
    let raw = Descriptor::encode_segment(0x1234_5678, 0xabcde, DATA | dpl(2) | DESC_B);
    let d = Descriptor::from_raw(raw);
    assert_eq!(d.base(), 0x1234_5678);
    assert_eq!(d.limit(), 0xabcde);
    assert_eq!(d.dpl(), 2);
    assert!(d.present() && d.is_segment() && d.is_writable_data() && !d.is_code());
    assert_eq!(d.flags(), DATA | dpl(2) | DESC_B);
    assert_eq!(Descriptor::from_bytes(raw.to_le_bytes()), d);
    // G=1 scales to 4 KiB units with the low 12 bits set.
    let g = Descriptor::from_raw(Descriptor::encode_segment(0, 0x12, CODE | DESC_G));
    assert_eq!(g.limit(), 0x12fff);
    assert!(g.is_code() && g.is_readable() && !g.is_conforming());
    // A 16-byte system descriptor: base bits 63:32 from the upper quadword.
    let ldt = Descriptor::from_raw16(
        Descriptor::encode_segment(0x8765_4321, 0xfff, DESC_P | (sys_type::LDT << DESC_TYPE_SHIFT)),
        0xffff_8000,
    );
    assert_eq!(ldt.base(), 0xffff_8000_8765_4321);
    assert_eq!(ldt.typ(), sys_type::LDT);
    // Gates.
    let cg = Descriptor::from_raw16(
        Descriptor::encode_gate(sys_type::CALL_GATE, 3, 0x08, 0x89ab_cdef, 5),
        0x1234,
    );
    assert_eq!(cg.gate_selector(), 0x08);
    assert_eq!(cg.gate_offset(), 0x1234_89ab_cdef);
    assert_eq!(cg.param_count(), 5);
    assert_eq!(cg.dpl(), 3);
    assert!(!cg.is_segment() && cg.present());
    // The cache keeps the high dword's attribute bits.
    let c = Descriptor::from_raw(raw).cache(0x2b);
    assert_eq!(
        (c.base, c.limit, c.flags, c.selector),
        (0x1234_5678, 0xabcde, DATA | dpl(2) | DESC_B, 0x2b)
    );
}

#[test]
fn load_data_segment_sets_accessed_bit() {
    let mut sys = Sys::prot32();
    let raw = Descriptor::encode_segment(0x1000, 0xffff, DATA | dpl(0));
    sys.gdt(FREE, raw);
    sys.load(seg::DS, FREE).unwrap();
    let c = sys.s.segs[seg::DS];
    assert_eq!((c.base, c.limit, c.selector), (0x1000, 0xffff, FREE));
    assert_eq!(c.flags, DATA | DESC_A);
    // Written back to the GDT, with an implicit (supervisor) access.
    assert_eq!(sys.m.peek(GDT + u64::from(FREE) + 4, 4) as u32 & DESC_A, DESC_A);
    let w = sys.m.log.iter().find(|l| l.write).unwrap();
    assert_eq!(
        (w.linear, w.privilege),
        (GDT + u64::from(FREE) + 4, Privilege::Implicit)
    );
    // Already accessed: no second write.
    let writes = sys.m.log.iter().filter(|l| l.write).count();
    sys.load(seg::ES, FREE).unwrap();
    assert_eq!(sys.m.log.iter().filter(|l| l.write).count(), writes);
}

#[test]
fn load_data_segment_checks() {
    let mut sys = Sys::prot32();
    // Null: allowed, unusable.
    sys.load(seg::DS, 3).unwrap();
    assert_eq!(sys.s.segs[seg::DS].selector, 3);
    assert_eq!(sys.s.segs[seg::DS].flags & DESC_P, 0);
    // Beyond the GDT limit.
    assert_eq!(sys.load(seg::DS, 0x100), gp(0x100));
    // A system descriptor (the TSS).
    assert_eq!(sys.load(seg::DS, TSS_SEL), gp(u32::from(TSS_SEL)));
    // Execute-only code.
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xffff, DESC_P | DESC_S | DESC_CS));
    assert_eq!(sys.load(seg::ES, FREE), gp(u32::from(FREE)));
    // Readable non-conforming code, DPL 0 at CPL 0: fine.
    sys.load(seg::FS, CODE32).unwrap();
    // Not present.
    sys.gdt(FREE + 8, Descriptor::encode_segment(0, 0xffff, DATA & !DESC_P));
    assert_eq!(
        sys.load(seg::GS, FREE + 8),
        Err(Fault::new(EXCP_NP, u32::from(FREE + 8)))
    );
    // At CPL 3: DPL 0 data is #GP(sel), also with RPL 3 at CPL 0 (DPL < RPL).
    assert_eq!(sys.load(seg::DS, DATA0 | 3), gp(u32::from(DATA0)));
    sys.enter_cpl3();
    assert_eq!(sys.load(seg::DS, DATA0), gp(u32::from(DATA0)));
    sys.load(seg::DS, DATA3).unwrap();
    // Conforming readable code of DPL 0 is visible at CPL 3.
    sys.gdt(FREE + 16, Descriptor::encode_segment(0, 0xffff, CODE | DESC_C));
    sys.load(seg::DS, FREE + 16 + 3).unwrap();
    // The error code keeps TI and drops the RPL.
    assert_eq!(sys.load(seg::DS, 0x0107), gp(0x0104));
}

#[test]
fn load_from_ldt() {
    let mut sys = Sys::prot32();
    sys.m.poke(LDT + 8, 8, Descriptor::encode_segment(0x5000, 0xfff, DATA));
    // No LDT loaded: #GP(sel).
    assert_eq!(sys.load(seg::DS, 0x0c), gp(0x0c));
    let ldt_raw = Descriptor::encode_segment(LDT as u32, 0xf, DESC_P | (sys_type::LDT << DESC_TYPE_SHIFT));
    sys.s.ldt = cache_of(ldt_raw, FREE);
    sys.load(seg::DS, 0x0c).unwrap();
    assert_eq!(sys.s.segs[seg::DS].base, 0x5000);
    // Beyond the LDT limit (index 2 needs 0x17).
    assert_eq!(sys.load(seg::DS, 0x14), gp(0x14));
}

#[test]
fn load_stack_segment_checks() {
    let mut sys = Sys::prot32();
    // Null SS outside 64-bit mode.
    assert_eq!(sys.load(seg::SS, 0), gp(0));
    // Read-only data.
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xffff, DESC_P | DESC_S));
    assert_eq!(sys.load(seg::SS, FREE), gp(u32::from(FREE)));
    // Code.
    assert_eq!(sys.load(seg::SS, CODE32), gp(u32::from(CODE32)));
    // RPL != CPL, DPL != CPL.
    assert_eq!(sys.load(seg::SS, DATA0 | 1), gp(u32::from(DATA0)));
    assert_eq!(sys.load(seg::SS, DATA3), gp(u32::from(DATA3 & !3)));
    // Not present: #SS(sel).
    sys.gdt(FREE + 8, Descriptor::encode_segment(0, 0xffff, DATA & !DESC_P));
    assert_eq!(
        sys.load(seg::SS, FREE + 8),
        Err(Fault::new(EXCP_SS, u32::from(FREE + 8)))
    );
    sys.load(seg::SS, DATA16).unwrap();
    assert_eq!(sys.s.segs[seg::SS].limit, 0xffff);

    // 64-bit mode: null SS at CPL 0 with RPL 0 is allowed, RPL != CPL is not, CPL 3 is not.
    let mut sys = Sys::long();
    sys.load(seg::SS, 0).unwrap();
    assert_eq!(sys.s.segs[seg::SS].selector, 0);
    assert_eq!(sys.load(seg::SS, 1), gp(0));
    sys.set_cs(CODE64_3);
    assert_eq!(sys.load(seg::SS, 3), gp(0));
    // Compatibility mode (CS.L = 0) at CPL 0: not allowed either.
    let mut sys = Sys::long();
    sys.set_cs(CODE32);
    assert_eq!(sys.load(seg::SS, 0), gp(0));
}

#[test]
fn load_in_real_and_vm86_mode() {
    let mut sys = Sys::real();
    sys.s.segs[seg::DS].limit = 0xffff_ffff; // "unreal" limit survives
    sys.load(seg::DS, 0x1234).unwrap();
    let c = sys.s.segs[seg::DS];
    assert_eq!((c.selector, c.base, c.limit), (0x1234, 0x12340, 0xffff_ffff));
    assert!(sys.m.log.is_empty());
    let mut sys = Sys::prot32();
    sys.s.eflags |= eflags::VM;
    sys.load(seg::ES, 0xb800).unwrap();
    let c = sys.s.segs[seg::ES];
    assert_eq!((c.selector, c.base, c.limit), (0xb800, 0xb8000, 0xffff));
    assert_eq!(c.flags & DESC_DPL_MASK, dpl(3));
    assert_eq!(cpl(&sys.s), 3);
    // mov cs is #UD.
    assert_eq!(sys.load(seg::CS, 0), Err(Fault::ud()));
}

#[test]
fn far_jmp_real_mode() {
    let mut sys = Sys::real();
    far_jmp(&mut sys.s, &mut sys.m, 0xf000, 0xfff0).unwrap();
    assert_eq!(
        (sys.s.segs[seg::CS].selector, sys.s.segs[seg::CS].base, sys.s.rip),
        (0xf000, 0xf0000, 0xfff0)
    );
    assert_eq!(cpl(&sys.s), 0);
    // A real-mode CS selector with RPL 3 does not make CPL 3.
    far_jmp(&mut sys.s, &mut sys.m, 0xf003, 0).unwrap();
    assert_eq!(cpl(&sys.s), 0);
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, 0, 0x1_0000), gp(0));
}

#[test]
fn far_jmp_protected_checks() {
    let mut sys = Sys::prot32();
    far_jmp(&mut sys.s, &mut sys.m, CODE16, 0x1234).unwrap();
    assert_eq!((sys.s.segs[seg::CS].selector, sys.s.rip), (CODE16, 0x1234));
    assert_eq!(sys.s.segs[seg::CS].flags & DESC_A, DESC_A);
    // Beyond the limit: #GP(0).
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, CODE16, 0x1_0000), gp(0));
    // Null: #GP(0); data: #GP(sel); not present: #NP(sel).
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, 0, 0), gp(0));
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, DATA0, 0), gp(u32::from(DATA0)));
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xffff, CODE & !DESC_P));
    assert_eq!(
        far_jmp(&mut sys.s, &mut sys.m, FREE, 0),
        Err(Fault::np(u32::from(FREE)))
    );
    // Non-conforming with DPL != CPL; RPL > CPL.
    assert_eq!(
        far_jmp(&mut sys.s, &mut sys.m, CODE32_3, 0),
        gp(u32::from(CODE32_3 & !3))
    );
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, CODE32 | 3, 0), gp(u32::from(CODE32)));
    // TSS (task switch not emulated): #GP(sel).
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, TSS_SEL, 0), gp(u32::from(TSS_SEL)));
    // Conforming DPL 0 from CPL 3: allowed, CPL stays 3 (CS.RPL = 3).
    sys.gdt(
        FREE + 8,
        Descriptor::encode_segment(0, 0xfffff, CODE | DESC_C | DESC_B | DESC_G),
    );
    sys.enter_cpl3();
    far_jmp(&mut sys.s, &mut sys.m, FREE + 8, 0x100).unwrap();
    assert_eq!(sys.s.segs[seg::CS].selector, FREE + 8 + 3);
    assert_eq!(cpl(&sys.s), 3);
    // Conforming with DPL > CPL.
    let mut sys = Sys::prot32();
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_C | dpl(3)));
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, FREE, 0), gp(u32::from(FREE)));
}

#[test]
fn far_jmp_long_mode() {
    let mut sys = Sys::long();
    // To compatibility mode and back to 64-bit code.
    far_jmp(&mut sys.s, &mut sys.m, CODE32, 0x1000).unwrap();
    assert!(!is_code64(&sys.s));
    far_jmp(&mut sys.s, &mut sys.m, CODE64, 0xffff_8000_0000_0000).unwrap();
    assert!(is_code64(&sys.s));
    assert_eq!(sys.s.rip, 0xffff_8000_0000_0000);
    // Non-canonical target: #GP(0).
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, CODE64, 0x8000_0000_0000), gp(0));
    // L = D = 1 is reserved: #GP(sel).
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_L | DESC_B));
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, FREE, 0), gp(u32::from(FREE)));
}

#[test]
fn far_jmp_through_call_gates() {
    let mut sys = Sys::prot32();
    sys.gdt(
        FREE,
        Descriptor::encode_gate(sys_type::CALL_GATE, 3, CODE32, 0x1234_5678, 0),
    );
    sys.gdt(
        FREE + 8,
        Descriptor::encode_gate(sys_type::CALL_GATE16, 0, CODE16, 0x9_4321, 0),
    );
    far_jmp(&mut sys.s, &mut sys.m, FREE, 0xdead).unwrap();
    assert_eq!((sys.s.segs[seg::CS].selector, sys.s.rip), (CODE32, 0x1234_5678));
    // A 16-bit gate keeps offset bits 15:0.
    far_jmp(&mut sys.s, &mut sys.m, FREE + 8, 0).unwrap();
    assert_eq!((sys.s.segs[seg::CS].selector, sys.s.rip), (CODE16, 0x4321));
    // A jump through a gate never changes privilege: DPL 0 code from CPL 3 is #GP(target).
    sys.enter_cpl3();
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, FREE + 3, 0), gp(u32::from(CODE32)));
    // Gate DPL < CPL: #GP(gate).
    assert_eq!(
        far_jmp(&mut sys.s, &mut sys.m, FREE + 8 + 3, 0),
        gp(u32::from(FREE + 8))
    );
    // Long mode: 16-byte gate, target must be 64-bit code.
    let mut sys = Sys::long();
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 0, CODE64, 0x5678, 0));
    sys.gdt(FREE + 8, 0xffff_8000);
    far_jmp(&mut sys.s, &mut sys.m, FREE, 0).unwrap();
    assert_eq!(sys.s.rip, 0xffff_8000_0000_5678);
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 0, CODE32, 0x5678, 0));
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, FREE, 0), gp(u32::from(CODE32)));
    // A 16-bit call gate type does not exist in long mode.
    sys.gdt(
        FREE,
        Descriptor::encode_gate(sys_type::CALL_GATE16, 0, CODE64, 0x5678, 0),
    );
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, FREE, 0), gp(u32::from(FREE)));
    // Nonzero type in the upper half: #GP(gate).
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 0, CODE64, 0x5678, 0));
    sys.gdt(FREE + 8, 0x0000_0c00_0000_0000);
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, FREE, 0), gp(u32::from(FREE)));
}

#[test]
fn far_call_and_ret_real_mode() {
    let mut sys = Sys::real();
    sys.s.segs[seg::CS].selector = 0x1000;
    far_call(&mut sys.s, &mut sys.m, 0x2000, 0x0010, OpSize::Word, 0x5678).unwrap();
    assert_eq!(sys.s.regs[reg::RSP], STACK - 4);
    assert_eq!(sys.m.peek(STACK - 4, 4), 0x1000_5678);
    assert_eq!((sys.s.segs[seg::CS].base, sys.s.rip), (0x20000, 0x10));
    far_ret(&mut sys.s, &mut sys.m, OpSize::Word, 6).unwrap();
    assert_eq!(sys.s.regs[reg::RSP], STACK + 6);
    assert_eq!(
        (sys.s.segs[seg::CS].selector, sys.s.segs[seg::CS].base, sys.s.rip),
        (0x1000, 0x10000, 0x5678)
    );
    // A 16-bit stack wraps at 64 KiB and keeps bits 63:16 of RSP.
    let mut sys = Sys::real();
    sys.s.regs[reg::RSP] = 0xabcd_0000;
    sys.s.segs[seg::SS].base = 0x1000;
    far_call(&mut sys.s, &mut sys.m, 0, 0, OpSize::Dword, 0x1122_3344).unwrap();
    assert_eq!(sys.s.regs[reg::RSP], 0xabcd_fff8);
    assert_eq!(sys.m.peek(0x1000 + 0xfff8, 8), 0x1122_3344);
    // A push that would straddle the 64 KiB limit: #SS(0), nothing changed.
    let mut sys = Sys::real();
    sys.s.regs[reg::RSP] = 0x0002;
    assert_eq!(
        far_call(&mut sys.s, &mut sys.m, 0, 0, OpSize::Dword, 0),
        Err(Fault::new(EXCP_SS, 0))
    );
    assert_eq!(sys.s.regs[reg::RSP], 2);
}

#[test]
fn stack_segment_limits() {
    // Expand-up SS with limit 0x7fff: the last byte of a push must be within it.
    let mut sys = Sys::prot32();
    sys.gdt(FREE, Descriptor::encode_segment(0, 0x7fff, DATA | DESC_B));
    sys.load(seg::SS, FREE).unwrap();
    sys.s.regs[reg::RSP] = 0x8002;
    let call = |sys: &mut Sys| far_call(&mut sys.s, &mut sys.m, CODE32, 0, OpSize::Dword, 0);
    assert_eq!(call(&mut sys), Err(Fault::new(EXCP_SS, 0)));
    sys.s.regs[reg::RSP] = 0x8000;
    call(&mut sys).unwrap();
    // Pops too: retf with the stack pointer at the limit.
    sys.s.regs[reg::RSP] = 0x7ffc;
    assert_eq!(
        far_ret(&mut sys.s, &mut sys.m, OpSize::Dword, 0),
        Err(Fault::new(EXCP_SS, 0))
    );
    // Expand-down SS (limit 0xfff, B = 1): offsets must be above the limit.
    let mut sys = Sys::prot32();
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xfff, DATA | DESC_E | DESC_B));
    sys.load(seg::SS, FREE).unwrap();
    sys.s.regs[reg::RSP] = 0x1006;
    assert_eq!(call(&mut sys), Err(Fault::new(EXCP_SS, 0)));
    sys.s.regs[reg::RSP] = 0x1008;
    call(&mut sys).unwrap();
    assert_eq!(sys.s.regs[reg::RSP], 0x1000);
    // The inner stack of a call gate: #SS(new SS).
    let mut sys = Sys::prot32();
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 3, CODE32, 0x4000, 0));
    sys.gdt(FREE + 8, Descriptor::encode_segment(0, 0x8ff0, DATA | DESC_B));
    sys.m.poke(TSS + 8, 2, u64::from(FREE + 8));
    sys.enter_cpl3();
    assert_eq!(
        far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0),
        Err(Fault::new(EXCP_SS, u32::from(FREE + 8)))
    );
}

#[test]
fn far_call_same_privilege_frame() {
    let mut sys = Sys::prot32();
    far_call(&mut sys.s, &mut sys.m, CODE16, 0x100, OpSize::Dword, 0x1234_5678).unwrap();
    assert_eq!(sys.s.regs[reg::RSP], STACK - 8);
    assert_eq!(sys.m.peek(STACK - 8, 8), 0x0000_0018_1234_5678);
    assert_eq!((sys.s.segs[seg::CS].selector, sys.s.rip), (CODE16, 0x100));
    // retf back.
    far_ret(&mut sys.s, &mut sys.m, OpSize::Dword, 0).unwrap();
    assert_eq!(
        (sys.s.segs[seg::CS].selector, sys.s.rip, sys.s.regs[reg::RSP]),
        (CODE32, 0x1234_5678, STACK)
    );
    // Long mode, REX.W: quadwords.
    let mut sys = Sys::long();
    far_call(
        &mut sys.s,
        &mut sys.m,
        CODE64,
        0x4000,
        OpSize::Qword,
        0xffff_8000_0000_1000,
    )
    .unwrap();
    assert_eq!(sys.m.peek(STACK - 16, 8), 0xffff_8000_0000_1000);
    assert_eq!(sys.m.peek(STACK - 8, 8), u64::from(CODE64));
}

/// A 32-bit call gate from CPL 3 to DPL 0 code with two parameters: the inner stack from the TSS holds the
/// old SS:ESP, the copied parameters in order, CS and EIP.
#[test]
fn far_call_gate_to_inner_privilege_32() {
    let mut sys = Sys::prot32();
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 3, CODE32, 0x4000, 2));
    sys.enter_cpl3();
    // Parameters on the caller's stack: p0 at [esp], p1 at [esp+4].
    sys.push_stack(&[0xaaaa_0000, 0xbbbb_1111], 4);
    far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0x777).unwrap();
    assert_eq!(cpl(&sys.s), 0);
    assert_eq!((sys.s.segs[seg::CS].selector, sys.s.rip), (CODE32, 0x4000));
    assert_eq!(sys.s.segs[seg::SS].selector, DATA0);
    let esp = STACK0 - 24;
    assert_eq!(sys.s.regs[reg::RSP], esp);
    let frame: Vec<u64> = (0..6).map(|i| sys.m.peek(esp + 4 * i, 4)).collect();
    assert_eq!(
        frame,
        [
            0x777,
            u64::from(CODE32_3),
            0xaaaa_0000,
            0xbbbb_1111,
            STACK,
            u64::from(DATA3)
        ]
    );
    // The old stack was read at CPL 3, the new one written at CPL 0, the TSS read implicitly.
    assert!(sys
        .m
        .log
        .iter()
        .any(|l| !l.write && l.linear == STACK && l.privilege == Privilege::User));
    assert!(sys
        .m
        .log
        .iter()
        .any(|l| l.linear == TSS + 4 && l.privilege == Privilege::Implicit));
    assert!(sys
        .m
        .log
        .iter()
        .any(|l| l.write && l.linear == esp && matches!(l.privilege, Privilege::Supervisor { .. })));

    // retf 8 back to CPL 3: pops EIP, CS, skips the 8 parameter bytes, pops ESP, SS, adds 8 again.
    sys.s.segs[seg::DS] = sys.cache(DATA0);
    sys.s.segs[seg::FS] = sys.cache(DATA3);
    sys.s.regs[reg::RSP] = esp;
    far_ret(&mut sys.s, &mut sys.m, OpSize::Dword, 8).unwrap();
    assert_eq!(cpl(&sys.s), 3);
    assert_eq!((sys.s.segs[seg::CS].selector, sys.s.rip), (CODE32_3, 0x777));
    assert_eq!((sys.s.segs[seg::SS].selector, sys.s.regs[reg::RSP]), (DATA3, STACK + 8));
    // DS held a DPL-0 data segment: unusable now; FS (DPL 3) kept.
    assert_eq!(sys.s.segs[seg::DS].selector, 0);
    assert_eq!(sys.s.segs[seg::DS].flags & DESC_P, 0);
    assert_eq!(sys.s.segs[seg::FS].selector, DATA3);
}

#[test]
fn far_call_gate_16_bit_copies_words() {
    let mut sys = Sys::prot32();
    sys.gdt(
        FREE,
        Descriptor::encode_gate(sys_type::CALL_GATE16, 3, CODE16, 0x200, 1),
    );
    sys.enter_cpl3();
    sys.push_stack(&[0x4242], 2);
    far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0x1_0777).unwrap();
    let sp = STACK0 - 10;
    assert_eq!(sys.s.regs[reg::RSP], sp);
    let frame: Vec<u64> = (0..5).map(|i| sys.m.peek(sp + 2 * i, 2)).collect();
    assert_eq!(
        frame,
        [0x0777, u64::from(CODE32_3), 0x4242, STACK & 0xffff, u64::from(DATA3)]
    );
    assert_eq!(sys.s.rip, 0x200);
}

#[test]
fn far_call_gate_same_privilege() {
    let mut sys = Sys::prot32();
    sys.gdt(
        FREE,
        Descriptor::encode_gate(sys_type::CALL_GATE16, 0, CODE32, 0x200, 3),
    );
    far_call(&mut sys.s, &mut sys.m, FREE, 0, OpSize::Dword, 0x1234).unwrap();
    // Same privilege: no stack switch, no parameters, the gate's width (16 bits).
    assert_eq!(sys.s.regs[reg::RSP], STACK - 4);
    assert_eq!(sys.m.peek(STACK - 4, 4), 0x0018_1234);
}

#[test]
fn far_call_gate_64_bit_to_inner_privilege() {
    let mut sys = Sys::long();
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 3, CODE64, 0x6000, 7));
    sys.gdt(FREE + 8, 0xffff_8000);
    sys.set_cs(CODE64_3);
    sys.s.segs[seg::SS] = sys.cache(DATA3);
    sys.s.regs[reg::RSP] = STACK - 8;
    far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0x4000_1234).unwrap();
    assert_eq!(cpl(&sys.s), 0);
    assert_eq!(sys.s.rip, 0xffff_8000_0000_6000);
    // SS: null with RPL = new CPL.
    assert_eq!(sys.s.segs[seg::SS].selector, 0);
    let rsp = STACK0 - 32;
    assert_eq!(sys.s.regs[reg::RSP], rsp);
    let frame: Vec<u64> = (0..4).map(|i| sys.m.peek(rsp + 8 * i, 8)).collect();
    // No parameter copy in 64-bit gates, quadword pushes.
    assert_eq!(frame, [0x4000_1234, u64::from(CODE64_3), STACK - 8, u64::from(DATA3)]);

    // retfq to CPL 3.
    far_ret(&mut sys.s, &mut sys.m, OpSize::Qword, 0).unwrap();
    assert_eq!(cpl(&sys.s), 3);
    assert_eq!(
        (sys.s.rip, sys.s.regs[reg::RSP], sys.s.segs[seg::SS].selector),
        (0x4000_1234, STACK - 8, DATA3)
    );
}

#[test]
fn far_call_gate_errors() {
    let mut sys = Sys::prot32();
    sys.enter_cpl3();
    // Gate DPL < CPL, gate DPL < RPL: #GP(gate).
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 0, CODE32, 0, 0));
    assert_eq!(
        far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0),
        gp(u32::from(FREE))
    );
    // Gate not present: #NP(gate).
    let np = Descriptor::encode_gate(sys_type::CALL_GATE, 3, CODE32, 0, 0) & !(u64::from(DESC_P) << 32);
    sys.gdt(FREE, np);
    assert_eq!(
        far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0),
        Err(Fault::np(u32::from(FREE)))
    );
    // Null target: #GP(0); data target: #GP(target); target not present: #NP(target).
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 3, 0, 0, 0));
    assert_eq!(far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0), gp(0));
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 3, DATA0, 0, 0));
    assert_eq!(
        far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0),
        gp(u32::from(DATA0))
    );
    sys.gdt(FREE + 8, Descriptor::encode_segment(0, 0xffff, CODE & !DESC_P));
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 3, FREE + 8, 0, 0));
    assert_eq!(
        far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0),
        Err(Fault::np(u32::from(FREE + 8)))
    );
    let call = |sys: &mut Sys| far_call(&mut sys.s, &mut sys.m, FREE + 3, 0, OpSize::Dword, 0);
    // TSS stack errors through a valid gate to DPL 0.
    sys.gdt(FREE, Descriptor::encode_gate(sys_type::CALL_GATE, 3, CODE32, 0, 0));
    let ts = |c: u32| Err(Fault::new(EXCP_TS, c));
    sys.m.poke(TSS + 8, 2, 0);
    assert_eq!(call(&mut sys), ts(0));
    sys.m.poke(TSS + 8, 2, u64::from(DATA3));
    assert_eq!(call(&mut sys), ts(u32::from(DATA3 & !3)));
    sys.m.poke(TSS + 8, 2, u64::from(CODE32));
    assert_eq!(call(&mut sys), ts(u32::from(CODE32)));
    sys.m.poke(TSS + 8, 2, 0x100);
    assert_eq!(call(&mut sys), ts(0x100));
    sys.gdt(FREE + 16, Descriptor::encode_segment(0, 0xffff, DATA & !DESC_P));
    sys.m.poke(TSS + 8, 2, u64::from(FREE + 16));
    assert_eq!(call(&mut sys), Err(Fault::new(EXCP_SS, u32::from(FREE + 16))));
    sys.m.poke(TSS + 8, 2, u64::from(DATA0));
    sys.s.tr.limit = 8;
    assert_eq!(call(&mut sys), ts(u32::from(TSS_SEL)));
    sys.s.tr.limit = 0x67;
    let before = sys.s.clone();
    // A #PF pushing on the new stack leaves the state unchanged.
    sys.m.poke(TSS + 4, 4, 0x4_0000);
    let r = call(&mut sys);
    assert_eq!(r.map_err(|f| f.vector), Err(14));
    assert_eq!(sys.s.segs, before.segs);
    assert_eq!(sys.s.regs, before.regs);
    sys.m.poke(TSS + 4, 4, STACK0);
    call(&mut sys).unwrap();
}

#[test]
fn far_ret_checks() {
    let mut sys = Sys::prot32();
    let ret = |sys: &mut Sys, cs: u16| {
        sys.s.regs[reg::RSP] = STACK;
        sys.push_stack(&[0x10, u64::from(cs), STACK + 0x100, u64::from(DATA3)], 4);
        far_ret(&mut sys.s, &mut sys.m, OpSize::Dword, 0)
    };
    assert_eq!(ret(&mut sys, 0), gp(0));
    assert_eq!(ret(&mut sys, DATA0), gp(u32::from(DATA0)));
    assert_eq!(ret(&mut sys, 0x200), gp(0x200));
    // Non-conforming, DPL != RPL.
    assert_eq!(ret(&mut sys, CODE32 | 3), gp(u32::from(CODE32)));
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xffff, CODE & !DESC_P));
    assert_eq!(ret(&mut sys, FREE), Err(Fault::np(u32::from(FREE))));
    // Outer SS checks: RPL != CS.RPL, DPL wrong, null.
    let ret_ss = |sys: &mut Sys, ss: u16| {
        sys.s.regs[reg::RSP] = STACK;
        sys.push_stack(&[0x10, u64::from(CODE32_3), STACK + 0x100, u64::from(ss)], 4);
        far_ret(&mut sys.s, &mut sys.m, OpSize::Dword, 0)
    };
    assert_eq!(ret_ss(&mut sys, 0), gp(0));
    assert_eq!(ret_ss(&mut sys, DATA0 | 3), gp(u32::from(DATA0)));
    assert_eq!(ret_ss(&mut sys, DATA3 & !3), gp(u32::from(DATA3 & !3)));
    // RPL < CPL: #GP(sel).
    sys.enter_cpl3();
    assert_eq!(ret(&mut sys, CODE32), gp(u32::from(CODE32)));
    ret(&mut sys, CODE32_3).unwrap();
    assert_eq!((sys.s.rip, sys.s.regs[reg::RSP]), (0x10, STACK + 8));
}

#[test]
fn iret_real_mode() {
    let mut sys = Sys::real();
    sys.s.set_rflags(eflags::IF | 0x1);
    sys.push_stack(&[0x1234, 0x2000, 0x0cd5], 2);
    iret(&mut sys.s, &mut sys.m, OpSize::Word).unwrap();
    assert_eq!(
        (sys.s.rip, sys.s.segs[seg::CS].base, sys.s.regs[reg::RSP]),
        (0x1234, 0x20000, STACK + 6)
    );
    assert_eq!(sys.s.rflags(), 0x0cd7);
    // iretd: VM, VIF, VIP unchanged.
    let mut sys = Sys::real();
    sys.push_stack(&[0x1234, 0x2000, 0x003f_7fd5 | eflags::VM], 4);
    iret(&mut sys.s, &mut sys.m, OpSize::Dword).unwrap();
    assert_eq!(sys.s.rflags(), 0x0025_7fd7);
}

#[test]
fn iret_protected_same_and_outer_level() {
    // Same level at CPL 0: IOPL and IF loaded.
    let mut sys = Sys::prot32();
    sys.push_stack(&[0x5555, u64::from(CODE32), 0x3202 | 0x8d5], 4);
    iret(&mut sys.s, &mut sys.m, OpSize::Dword).unwrap();
    assert_eq!((sys.s.rip, sys.s.regs[reg::RSP]), (0x5555, STACK + 12));
    assert_eq!(sys.s.rflags(), 0x3202 | 0x8d5);
    // Same level at CPL 3 with IOPL 0: IF and IOPL unchanged, the rest loaded.
    let mut sys = Sys::prot32();
    sys.enter_cpl3();
    sys.s.set_rflags(0x2);
    sys.push_stack(&[0x5555, u64::from(CODE32_3), 0x3202 | eflags::DF | 1], 4);
    iret(&mut sys.s, &mut sys.m, OpSize::Dword).unwrap();
    assert_eq!(sys.s.rflags(), 0x2 | eflags::DF | 1);
    // To an outer level: pops ESP and SS, nulls DPL-0 data segments.
    let mut sys = Sys::prot32();
    sys.push_stack(&[0x6000, u64::from(CODE32_3), 0x202, 0x7000, u64::from(DATA3)], 4);
    iret(&mut sys.s, &mut sys.m, OpSize::Dword).unwrap();
    assert_eq!(cpl(&sys.s), 3);
    assert_eq!(
        (sys.s.rip, sys.s.regs[reg::RSP], sys.s.segs[seg::SS].selector),
        (0x6000, 0x7000, DATA3)
    );
    assert_eq!(sys.s.segs[seg::ES].selector, 0);
    assert_eq!(sys.s.rflags(), 0x202);
    // NT = 1: a task return (not emulated): #GP(back link).
    let mut sys = Sys::prot32();
    sys.s.set_rflags(eflags::NT | 2);
    sys.m.poke(TSS, 2, 0x48);
    assert_eq!(iret(&mut sys.s, &mut sys.m, OpSize::Dword), gp(0x48));
}

#[test]
fn iret_to_vm86_and_in_vm86() {
    let mut sys = Sys::prot32();
    sys.push_stack(
        &[
            0x1_0100,
            0x2000,
            eflags::VM | eflags::IF | 0x2,
            0x7ff0,
            0x3000,
            0x4000,
            0x5000,
            0x6000,
            0x7000,
        ],
        4,
    );
    iret(&mut sys.s, &mut sys.m, OpSize::Dword).unwrap();
    assert!(is_vm86(&sys.s));
    assert_eq!(cpl(&sys.s), 3);
    assert_eq!((sys.s.rip, sys.s.regs[reg::RSP]), (0x0100, 0x7ff0));
    let bases: Vec<u64> = sys.s.segs.iter().map(|c| c.base).collect();
    assert_eq!(bases, [0x40000, 0x20000, 0x30000, 0x50000, 0x60000, 0x70000]);
    // In vm86 with IOPL < 3: #GP(0).
    assert_eq!(iret(&mut sys.s, &mut sys.m, OpSize::Word), gp(0));
}

#[test]
fn iretq_long_mode() {
    // Same level in 64-bit mode still pops SS:RSP.
    let mut sys = Sys::long();
    sys.push_stack(&[0xffff_8000_0000_0010, u64::from(CODE64), 0x2, 0x1234_5678, 0], 8);
    iret(&mut sys.s, &mut sys.m, OpSize::Qword).unwrap();
    assert_eq!((sys.s.rip, sys.s.regs[reg::RSP]), (0xffff_8000_0000_0010, 0x1234_5678));
    assert_eq!(sys.s.segs[seg::SS].selector, 0);
    // To CPL 3, SS must not be null.
    let mut sys = Sys::long();
    sys.push_stack(&[0x40_0000, u64::from(CODE64_3), 0x202, 0x7000, 3], 8);
    assert_eq!(iret(&mut sys.s, &mut sys.m, OpSize::Qword), gp(0));
    sys.m.poke(STACK + 32, 8, u64::from(DATA3));
    iret(&mut sys.s, &mut sys.m, OpSize::Qword).unwrap();
    assert_eq!(cpl(&sys.s), 3);
    assert_eq!(
        (sys.s.rip, sys.s.regs[reg::RSP], sys.s.segs[seg::SS].selector),
        (0x40_0000, 0x7000, DATA3)
    );
    // To compatibility mode at CPL 3.
    let mut sys = Sys::long();
    sys.push_stack(&[0x1000, u64::from(CODE32_3), 0x2, 0x7000, u64::from(DATA3)], 8);
    iret(&mut sys.s, &mut sys.m, OpSize::Qword).unwrap();
    assert!(!is_code64(&sys.s));
    // NT = 1 in long mode: #GP(0).
    let mut sys = Sys::long();
    sys.s.set_rflags(eflags::NT | 2);
    assert_eq!(iret(&mut sys.s, &mut sys.m, OpSize::Qword), gp(0));
    // Non-canonical RIP.
    let mut sys = Sys::long();
    sys.push_stack(&[0x8000_0000_0000, u64::from(CODE64), 0x2, STACK, u64::from(DATA0)], 8);
    assert_eq!(iret(&mut sys.s, &mut sys.m, OpSize::Qword), gp(0));
}

#[test]
fn lar_lsl_verr_verw() {
    let mut sys = Sys::prot32();
    let s = &sys.s.clone();
    let m = &mut sys.m;
    assert_eq!(lar(s, m, CODE32).unwrap(), Some(CODE | DESC_B | DESC_G));
    assert_eq!(lsl(s, m, CODE32).unwrap(), Some(0xffff_ffff));
    assert_eq!(lsl(s, m, DATA16).unwrap(), Some(0xffff));
    assert_eq!(lar(s, m, 0).unwrap(), None);
    assert_eq!(lar(s, m, 0x200).unwrap(), None);
    // TSS: lar and lsl report it; a call gate only lar.
    assert_eq!(lsl(s, m, TSS_SEL).unwrap(), Some(0x67));
    m.poke(
        GDT + u64::from(FREE),
        8,
        Descriptor::encode_gate(sys_type::CALL_GATE, 3, CODE32, 0, 0),
    );
    assert!(lar(s, m, FREE).unwrap().is_some());
    assert_eq!(lsl(s, m, FREE).unwrap(), None);
    // An interrupt gate: neither.
    m.poke(
        GDT + u64::from(FREE),
        8,
        Descriptor::encode_gate(sys_type::INT_GATE, 3, CODE32, 0, 0),
    );
    assert_eq!(lar(s, m, FREE).unwrap(), None);
    assert!(verr(s, m, CODE32).unwrap());
    assert!(verr(s, m, DATA0).unwrap());
    assert!(!verw(s, m, CODE32).unwrap());
    assert!(verw(s, m, DATA0).unwrap());
    // RPL 3 hides DPL 0 segments.
    assert_eq!(lar(s, m, DATA0 | 3).unwrap(), None);
    assert!(!verw(s, m, DATA0 | 3).unwrap());
    // Execute-only code is not readable.
    m.poke(
        GDT + u64::from(FREE),
        8,
        Descriptor::encode_segment(0, 0xffff, DESC_P | DESC_S | DESC_CS),
    );
    assert!(!verr(s, m, FREE).unwrap());
    assert!(lar(s, m, FREE).unwrap().is_some());
    // At CPL 3.
    sys.enter_cpl3();
    let s = &sys.s.clone();
    assert_eq!(lar(s, &mut sys.m, DATA0).unwrap(), None);
    assert!(verw(s, &mut sys.m, DATA3).unwrap());
    // Long mode: a 16-bit TSS type is not reported, the 64-bit TSS is.
    let mut sys = Sys::long();
    let s = &sys.s.clone();
    assert_eq!(lsl(s, &mut sys.m, TSS_SEL).unwrap(), Some(0x67));
    sys.gdt(
        FREE,
        Descriptor::encode_segment(0, 0x67, DESC_P | (sys_type::TSS16_AVAIL << DESC_TYPE_SHIFT)),
    );
    assert_eq!(lar(s, &mut sys.m, FREE).unwrap(), None);
    // Real mode: #UD.
    let mut sys = Sys::real();
    assert_eq!(lar(&sys.s.clone(), &mut sys.m, 8), Err(Fault::ud()));
}

#[test]
fn outer_return_stack_segment_errors() {
    let mut sys = Sys::prot32();
    let ret_ss = |sys: &mut Sys, ss: u16| {
        sys.s.regs[reg::RSP] = STACK;
        sys.push_stack(&[0x10, u64::from(CODE32_3), STACK + 0x100, u64::from(ss)], 4);
        far_ret(&mut sys.s, &mut sys.m, OpSize::Dword, 0)
    };
    // Not writable: code, read-only data.
    assert_eq!(ret_ss(&mut sys, CODE32_3), gp(u32::from(CODE32_3 & !3)));
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xffff, DESC_P | DESC_S | dpl(3)));
    assert_eq!(ret_ss(&mut sys, FREE + 3), gp(u32::from(FREE)));
    // Beyond the table.
    assert_eq!(ret_ss(&mut sys, 0x203), gp(0x200));
    // Not present: #SS(sel).
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xffff, (DATA & !DESC_P) | dpl(3)));
    assert_eq!(ret_ss(&mut sys, FREE + 3), Err(Fault::new(EXCP_SS, u32::from(FREE))));
    // Nothing changed by the failures.
    assert_eq!((sys.s.segs[seg::CS].selector, sys.s.regs[reg::RSP]), (CODE32, STACK));

    // Long mode: a null SS is allowed returning to 64-bit code at CPL 1, not at CPL 3.
    let mut sys = Sys::long();
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_L | dpl(1)));
    sys.push_stack(&[0x10, u64::from(FREE + 1), 0x6000, 1], 8);
    far_ret(&mut sys.s, &mut sys.m, OpSize::Qword, 0).unwrap();
    assert_eq!(
        (cpl(&sys.s), sys.s.segs[seg::SS].selector, sys.s.regs[reg::RSP]),
        (1, 1, 0x6000)
    );
    let mut sys = Sys::long();
    sys.push_stack(&[0x10, u64::from(CODE64_3), 0x6000, 3], 8);
    assert_eq!(far_ret(&mut sys.s, &mut sys.m, OpSize::Qword, 0), gp(0));
}

#[test]
fn iret_code_segment_errors_and_16_bit_frame() {
    let iret_cs = |sys: &mut Sys, cs: u16| {
        sys.s.regs[reg::RSP] = STACK;
        sys.push_stack(&[0x10, u64::from(cs), 0x2, STACK, u64::from(DATA3)], 4);
        iret(&mut sys.s, &mut sys.m, OpSize::Dword)
    };
    let mut sys = Sys::prot32();
    assert_eq!(iret_cs(&mut sys, 0), gp(0));
    assert_eq!(iret_cs(&mut sys, DATA0), gp(u32::from(DATA0)));
    // Conforming with DPL > RPL.
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xfffff, CODE | DESC_C | dpl(3)));
    assert_eq!(iret_cs(&mut sys, FREE), gp(u32::from(FREE)));
    // Not present.
    sys.gdt(FREE, Descriptor::encode_segment(0, 0xfffff, (CODE | DESC_B) & !DESC_P));
    assert_eq!(iret_cs(&mut sys, FREE), Err(Fault::np(u32::from(FREE))));
    // RPL < CPL.
    sys.enter_cpl3();
    assert_eq!(iret_cs(&mut sys, CODE32), gp(u32::from(CODE32)));
    // A 16-bit iret in protected mode: word pops, only FLAGS' low 16 bits.
    let mut sys = Sys::prot32();
    sys.s.set_rflags(eflags::AC | 0x2);
    sys.push_stack(&[0x1234, u64::from(CODE16), 0x0ed5], 2);
    iret(&mut sys.s, &mut sys.m, OpSize::Word).unwrap();
    assert_eq!(
        (sys.s.rip, sys.s.segs[seg::CS].selector, sys.s.regs[reg::RSP]),
        (0x1234, CODE16, STACK + 6)
    );
    assert_eq!(sys.s.rflags(), eflags::AC | 0x0ed7);
}

#[test]
fn real_mode_far_transfer_limits() {
    let mut sys = Sys::real();
    assert_eq!(
        far_call(&mut sys.s, &mut sys.m, 0x1000, 0x1_0000, OpSize::Dword, 0),
        gp(0)
    );
    // Nothing pushed.
    assert_eq!(sys.s.regs[reg::RSP], STACK);
    sys.push_stack(&[0x1_0000, 0x1000], 4);
    assert_eq!(far_ret(&mut sys.s, &mut sys.m, OpSize::Dword, 0), gp(0));
    assert_eq!(iret(&mut sys.s, &mut sys.m, OpSize::Dword), gp(0));
    // vm86: 64 KiB limit whatever CS held.
    let mut sys = Sys::prot32();
    sys.s.set_rflags(eflags::VM | 0x2);
    assert_eq!(far_jmp(&mut sys.s, &mut sys.m, 0x1000, 0x1_0000), gp(0));
    far_jmp(&mut sys.s, &mut sys.m, 0x1000, 0xffff).unwrap();
    assert_eq!(sys.s.segs[seg::CS], vm86_cache(0x1000));
}

/// `PagedMem` under 4-level paging: linear 0..2 MiB is a supervisor 2 MiB page (identity), 0x20_0000 a user
/// 4 KiB page at physical 0x5000, 0x20_1000 not present.
fn paged_space() -> (AddressSpace, PagingRegs) {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(0x20_0000).unwrap());
    space.map_ram(0, 0x20_0000, ram, 0).unwrap();
    let table = pte::P | pte::RW | pte::US;
    space.write(0x1000, 8, 0x2000 | table);
    space.write(0x2000, 8, 0x3000 | table);
    space.write(0x3000, 8, pte::P | pte::RW | pte::PS);
    space.write(0x3008, 8, 0x4000 | table);
    space.write(0x4000, 8, 0x5000 | table);
    let regs = PagingRegs {
        cr0: 0x8000_0001,
        cr3: 0x1000,
        cr4: 0x20,
        efer: 0x500,
    };
    (space, regs)
}

#[test]
fn paged_mem_walks_splits_and_faults() {
    let (mut space, regs) = paged_space();
    let sup = Privilege::Supervisor { ac: false };
    let mut m = PagedMem {
        space: &mut space,
        regs,
    };
    // A write crossing from the 2 MiB page into the 4 KiB one.
    m.write(0x1f_fffc, 8, 0x1122_3344_5566_7788, sup).unwrap();
    assert_eq!(m.read(0x1f_fffc, 8, sup).unwrap(), 0x1122_3344_5566_7788);
    assert_eq!(m.space.read(0x1f_fffc, 4), 0x5566_7788);
    assert_eq!(m.space.read(0x5000, 4), 0x1122_3344);
    // A user access to the supervisor page: #PF (P | U), CR2 = the address.
    let f = m.read(0x1000, 4, Privilege::User).unwrap_err();
    assert_eq!(
        (f.vector, f.error_code, f.addr),
        (excp::PF, pf_err::P | pf_err::U, 0x1000)
    );
    // A crossing write whose second page is not present: #PF (W) at that page, nothing written.
    m.space.write(0x5ffe, 2, 0xabcd);
    let f = m.write(0x20_0ffe, 4, 0, sup).unwrap_err();
    assert_eq!((f.vector, f.error_code, f.addr), (excp::PF, pf_err::W, 0x20_1000));
    assert_eq!(m.space.read(0x5ffe, 2), 0xabcd);
    // Non-canonical: #GP(0).
    assert_eq!(m.read(0x8000_0000_0000, 1, sup), Err(Fault::gp(0)));
}

#[test]
fn load_seg_through_paged_mem() {
    let (mut space, regs) = paged_space();
    let gdt = 0x1_0000u64;
    space.write(gdt + 0x10, 8, Descriptor::encode_segment(0x1234, 0xffff, DATA));
    let mut s = X86CpuState::new_long_mode(0);
    s.gdt.base = gdt;
    s.gdt.limit = 0xff;
    let mut m = PagedMem {
        space: &mut space,
        regs,
    };
    load_seg(&mut s, &mut m, seg::DS, 0x10).unwrap();
    assert_eq!(s.segs[seg::DS].base, 0x1234);
    assert_eq!(m.space.read(gdt + 0x14, 4) as u32 & DESC_A, DESC_A);
    // A GDT on a user-only page is still readable: descriptor reads are implicit supervisor accesses.
    s.gdt.base = 0x20_0000;
    m.space
        .write(0x5000 + 0x10, 8, Descriptor::encode_segment(0x5678, 0xffff, DATA));
    load_seg(&mut s, &mut m, seg::ES, 0x10).unwrap();
    assert_eq!(s.segs[seg::ES].base, 0x5678);
    // A GDT on a not-present page: the #PF comes back unchanged.
    s.gdt.base = 0x20_1000;
    let f = load_seg(&mut s, &mut m, seg::ES, 0x10).unwrap_err();
    assert_eq!((f.vector, f.addr), (excp::PF, 0x20_1010));
}
