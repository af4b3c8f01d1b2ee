//! The x86 parts of QEMU-style logging (`rqemu_accel::log`): the register dump of `-d cpu` (QEMU's
//! `x86_cpu_dump_state`, as [`X86CpuState`]'s `Display`), the `IN:` listing of `-d in_asm` ([`format_in_asm`]:
//! iced-x86's Intel formatter with the `disas` feature, the instruction bytes without it) and the exception
//! line of `-d int` ([`log_exception`]).
//!
//! Not here: when these are called (the accel's loops and [`crate::machine`]'s hooks) and where the text goes
//! (`rqemu_accel::log`).

use core::fmt;

use rqemu_accel::log::{self, LogMask};

use crate::cc::CcOp;
use crate::cpu::{excp, seg, SegmentCache, X86CpuState, DESC_B, DESC_L, DESC_P};

/// EFER.LMA: long mode active.
const EFER_LMA: u64 = 1 << 10;
/// CR0.PE: protected mode.
const CR0_PE: u64 = 1;
/// Descriptor flag: a code or data segment (not a system one).
const DESC_S: u32 = 1 << 12;
/// Descriptor flag: code (with `DESC_S`).
const DESC_CS: u32 = 1 << 11;
/// Code: conforming; data: expand-down.
const DESC_C: u32 = 1 << 10;
/// Code: readable; data: writable.
const DESC_R: u32 = 1 << 9;
/// Accessed.
const DESC_A: u32 = 1 << 8;

/// System segment type names, legacy and long mode (QEMU's `sys_type_name`).
const SYS_TYPE_NAME: [[&str; 16]; 2] = [
    [
        "Reserved",
        "TSS16-avl",
        "LDT",
        "TSS16-busy",
        "CallGate16",
        "TaskGate",
        "IntGate16",
        "TrapGate16",
        "Reserved",
        "TSS32-avl",
        "Reserved",
        "TSS32-busy",
        "CallGate32",
        "Reserved",
        "IntGate32",
        "TrapGate32",
    ],
    [
        "<hiword>",
        "Reserved",
        "LDT",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "TSS64-avl",
        "Reserved",
        "TSS64-busy",
        "CallGate64",
        "Reserved",
        "IntGate64",
        "TrapGate64",
    ],
];

/// The name QEMU gives a CC_OP value (`ADDQ`, `EFLAGS`, ...), or its number when no CC_OP has it.
fn cc_op_name(raw: u32) -> String {
    match CcOp::from_raw(raw) {
        Some(op) => {
            let kind = format!("{:?}", op.kind).to_uppercase();
            if op.kind.has_size() {
                format!("{kind}{:?}", op.size)
            } else {
                kind
            }
        }
        None => format!("[{raw}]"),
    }
}

/// Whether long mode is active.
fn lma(s: &X86CpuState) -> bool {
    s.efer & EFER_LMA != 0
}

/// One segment line (QEMU's `cpu_x86_dump_seg_cache`): selector, base, limit, flags, then DPL and type.
fn write_seg(f: &mut fmt::Formatter<'_>, s: &X86CpuState, name: &str, sc: &SegmentCache) -> fmt::Result {
    write!(
        f,
        "{name:<3}={:04x} {:016x} {:08x} {:08x}",
        sc.selector, sc.base, sc.limit, sc.flags
    )?;
    if s.cr[0] & CR0_PE != 0 && sc.flags & DESC_P != 0 {
        write!(f, " DPL={} ", (sc.flags >> 13) & 3)?;
        if sc.flags & DESC_S != 0 {
            if sc.flags & DESC_CS != 0 {
                let kind = if sc.flags & DESC_L != 0 {
                    "CS64"
                } else if sc.flags & DESC_B != 0 {
                    "CS32"
                } else {
                    "CS16"
                };
                let c = if sc.flags & DESC_C != 0 { 'C' } else { '-' };
                let r = if sc.flags & DESC_R != 0 { 'R' } else { '-' };
                write!(f, "{kind} [{c}{r}")?;
            } else {
                let kind = if sc.flags & DESC_B != 0 || lma(s) {
                    "DS  "
                } else {
                    "DS16"
                };
                let e = if sc.flags & DESC_C != 0 { 'E' } else { '-' };
                let w = if sc.flags & DESC_R != 0 { 'W' } else { '-' };
                write!(f, "{kind} [{e}{w}")?;
            }
            write!(f, "{}]", if sc.flags & DESC_A != 0 { 'A' } else { '-' })?;
        } else {
            let ty = ((sc.flags >> 8) & 15) as usize;
            f.write_str(SYS_TYPE_NAME[usize::from(lma(s))][ty])?;
        }
    }
    writeln!(f)
}

impl fmt::Display for X86CpuState {
    /// The register dump of `-d cpu` in QEMU's layout: general registers, RIP and RFLAGS with the arithmetic
    /// flag letters (`[D O S Z A P C]`, `-` when clear), CPL and HLT, the segment, LDT and task registers,
    /// GDT and IDT, control registers, debug registers, the lazy flags (CCS/CCD/CCO) and EFER.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 16] = [
            "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10", "R11", "R12", "R13", "R14",
            "R15",
        ];
        // QEMU's order: rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15.
        const ORDER: [usize; 16] = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];
        for (i, &r) in ORDER.iter().enumerate() {
            write!(f, "{:<3}={:016x}", NAMES[i], self.regs[r])?;
            f.write_str(if i % 4 == 3 { "\n" } else { " " })?;
        }
        let rfl = self.rflags();
        let letters: String = [
            (crate::cpu::eflags::DF, 'D'),
            (crate::cc::CC_O, 'O'),
            (crate::cc::CC_S, 'S'),
            (crate::cc::CC_Z, 'Z'),
            (crate::cc::CC_A, 'A'),
            (crate::cc::CC_P, 'P'),
            (crate::cc::CC_C, 'C'),
        ]
        .iter()
        .map(|&(bit, c)| if rfl & bit != 0 { c } else { '-' })
        .collect();
        writeln!(
            f,
            "RIP={:016x} RFL={:08x} [{letters}] CPL={} II=0 A20=1 SMM=0 HLT={}",
            self.rip,
            rfl,
            self.segs[seg::CS].selector & 3,
            self.halted
        )?;
        for (i, name) in ["ES", "CS", "SS", "DS", "FS", "GS"].iter().enumerate() {
            write_seg(f, self, name, &self.segs[i])?;
        }
        write_seg(f, self, "LDT", &self.ldt)?;
        write_seg(f, self, "TR", &self.tr)?;
        writeln!(f, "GDT=     {:016x} {:08x}", self.gdt.base, self.gdt.limit)?;
        writeln!(f, "IDT=     {:016x} {:08x}", self.idt.base, self.idt.limit)?;
        writeln!(
            f,
            "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x}",
            self.cr[0], self.cr[2], self.cr[3], self.cr[4]
        )?;
        for i in 0..4 {
            write!(f, "DR{i}={:016x} ", self.dr[i])?;
        }
        writeln!(f)?;
        writeln!(f, "DR6={:016x} DR7={:016x}", self.dr[6], self.dr[7])?;
        writeln!(
            f,
            "CCS={:016x} CCD={:016x} CCO={:<8}",
            self.cc_src,
            self.cc_dst,
            cc_op_name(self.cc_op)
        )?;
        writeln!(f, "EFER={:016x}", self.efer)
    }
}

/// The `IN:` lines of `-d in_asm` for the guest code `bytes` at `pc`: one instruction per line, its address,
/// its bytes and (with the `disas` feature) its Intel-syntax text. Without the feature the instructions are
/// still split by the decoder, so each line holds exactly one instruction's bytes.
pub fn format_in_asm(bytes: &[u8], pc: u64, bitness: u32) -> String {
    crate::translate::disassemble(bytes, pc, bitness)
}

/// Mnemonics of the exception vectors.
fn vector_name(vector: u32) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "", "#TS", "#NP", "#SS", "#GP", "#PF", "",
        "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "", "", "", "", "", "", "", "", "", "",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("")
}

/// The `-d int` block for the exception recorded in `s` (QEMU's `do_interrupt_all` log: vector, error code,
/// CPL, CS:rip, SS:rsp and CR2, which for a #PF is the faulting address that delivery will load into CR2),
/// followed by the register dump. Nothing is formatted unless `int` is on.
pub fn log_exception(s: &X86CpuState) {
    if !log::enabled(LogMask::INT) {
        return;
    }
    log::log(LogMask::INT, &format_exception(s));
}

/// The text [`log_exception`] logs.
pub fn format_exception(s: &X86CpuState) -> String {
    let cr2 = if s.exception_index == excp::PF {
        s.fault_addr
    } else {
        s.cr[2]
    };
    format!(
        "check_exception new 0x{:x} ({})\n     0: v={:02x} e={:04x} i=0 cpl={} IP={:04x}:{:016x} pc={:016x} \
         SP={:04x}:{:016x} CR2={:016x}\n{s}",
        s.exception_index,
        vector_name(s.exception_index),
        s.exception_index,
        s.error_code,
        s.segs[seg::CS].selector & 3,
        s.segs[seg::CS].selector,
        s.rip,
        s.segs[seg::CS].base.wrapping_add(s.rip),
        s.segs[seg::SS].selector,
        s.regs[crate::cpu::reg::RSP],
        cr2
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_has_qemus_lines_and_flag_letters() {
        let mut s = X86CpuState::new_long_mode(0x1000);
        s.regs[0] = 0x1234;
        s.regs[15] = 0xffff_0000_0000_0001;
        // ZF and CF set, with DF.
        s.set_rflags(0x41 | crate::cpu::eflags::DF);
        let text = s.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "RAX=0000000000001234 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000"
        );
        assert!(lines[3].ends_with("R15=ffff000000000001"), "{text}");
        assert_eq!(
            lines[4],
            "RIP=0000000000001000 RFL=00000443 [D--Z--C] CPL=0 II=0 A20=1 SMM=0 HLT=0"
        );
        assert!(
            lines[6].starts_with("CS =0008 0000000000000000 ffffffff 00208000 DPL=0 "),
            "{text}"
        );
        assert!(text.contains("CR0=80000011 CR2=0000000000000000 CR3=0000000000000000 CR4=00000620\n"));
        assert!(text.contains("CCO=EFLAGS"), "{text}");
        assert!(text.ends_with("EFER=0000000000000500\n"), "{text}");
    }

    #[test]
    fn segments_show_their_type_and_page_faults_their_address() {
        let mut s = X86CpuState::new_long_mode(0x2000);
        // A 64-bit code segment as a GDT gives it: present, S, code, readable, accessed, L.
        s.segs[seg::CS].flags = DESC_P | DESC_S | DESC_CS | DESC_R | DESC_A | DESC_L;
        s.tr.flags = DESC_P | (11 << 8);
        let text = s.to_string();
        assert!(
            text.contains("CS =0008 0000000000000000 ffffffff 00209b00 DPL=0 CS64 [-RA]\n"),
            "{text}"
        );
        assert!(text.contains("TSS64-busy"), "{text}");
        s.exception_index = excp::PF;
        s.error_code = 2;
        s.fault_addr = 0xdead_b000;
        let line = format_exception(&s);
        assert!(
            line.starts_with("check_exception new 0xe (#PF)\n     0: v=0e e=0002 i=0 cpl=0"),
            "{line}"
        );
        assert!(line.contains("CR2=00000000deadb000"), "{line}");
    }

    #[test]
    fn in_asm_lists_one_instruction_per_line() {
        // mov eax, 1; ud2
        let text = format_in_asm(&[0xb8, 1, 0, 0, 0, 0x0f, 0x0b], 0x1000, 64);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("0x0000000000001000:  b801000000"), "{text}");
        assert!(lines[1].starts_with("0x0000000000001005:  0f0b"), "{text}");
        #[cfg(feature = "disas")]
        assert!(lines[0].ends_with("mov eax,1") && lines[1].ends_with("ud2"), "{text}");
    }
}
