//! movbe: loads and stores at 16, 32 and 64 bits against this machine's CPU (inline asm on the same bytes):
//! the register after a load (16-bit loads merge, 32-bit loads zero-extend), the memory after a store, flags
//! untouched; also from raw bytes in 32-bit code.

#![cfg(target_arch = "x86_64")]

mod harness;

use harness::{mov_imm64, run_with, DATA};
use rqemu_target_i386::TbFlags;

/// The host's movbe load of `mem` into a register holding `old`, at `w` bits.
fn host_load(w: u32, mem: u64, old: u64) -> u64 {
    let mut r = old;
    let p = &mem as *const u64;
    // SAFETY: reads the 8 bytes of `mem`.
    unsafe {
        match w {
            16 => core::arch::asm!("movbe {r:x}, word ptr [{p}]", r = inout(reg) r, p = in(reg) p),
            32 => core::arch::asm!("movbe {r:e}, dword ptr [{p}]", r = inout(reg) r, p = in(reg) p),
            _ => core::arch::asm!("movbe {r}, qword ptr [{p}]", r = inout(reg) r, p = in(reg) p),
        }
    }
    r
}

/// The host's movbe store of `v` over memory holding `old`, at `w` bits.
fn host_store(w: u32, v: u64, old: u64) -> u64 {
    let mut mem = old;
    let p = &mut mem as *mut u64;
    // SAFETY: writes within the 8 bytes of `mem`.
    unsafe {
        match w {
            16 => core::arch::asm!("movbe word ptr [{p}], {v:x}", v = in(reg) v, p = in(reg) p),
            32 => core::arch::asm!("movbe dword ptr [{p}], {v:e}", v = in(reg) v, p = in(reg) p),
            _ => core::arch::asm!("movbe qword ptr [{p}], {v}", v = in(reg) v, p = in(reg) p),
        }
    }
    mem
}

const VALUES: [u64; 6] = [
    0,
    1,
    u64::MAX,
    0x8000_0000_0000_0000,
    0x0123_4567_89ab_cdef,
    0xfedc_ba98_7654_3210,
];

/// `movbe rax-sized, [rdi]` (load) or `movbe [rdi], rax-sized` (store) in 64-bit code.
fn movbe(w: u32, store: bool) -> Vec<u8> {
    let op = 0xf0 + store as u8;
    let modrm = 0x07; // rax, [rdi]
    match w {
        16 => vec![0x66, 0x0f, 0x38, op, modrm],
        32 => vec![0x0f, 0x38, op, modrm],
        _ => vec![0x48, 0x0f, 0x38, op, modrm],
    }
}

#[test]
fn movbe_loads_and_stores_at_every_width_against_the_host() {
    if !std::is_x86_feature_detected!("movbe") {
        eprintln!("host without movbe: skipped");
        return;
    }
    for w in [16u32, 32, 64] {
        for &mem in &VALUES {
            for &reg in &VALUES {
                for store in [false, true] {
                    let mut p = mov_imm64(0, reg);
                    p.extend(mov_imm64(7, DATA));
                    p.extend(movbe(w, store));
                    let m = run_with(&p, |m| {
                        m.write_u64(DATA, mem);
                        m.cpu.set_rflags(0x202 | 0x8d5);
                    });
                    let what = format!("movbe{w} store={store} mem={mem:#x} reg={reg:#x}");
                    if store {
                        assert_eq!(m.read_u64(DATA), host_store(w, reg, mem), "{what}");
                        assert_eq!(m.cpu.regs[0], reg, "{what}");
                    } else {
                        assert_eq!(m.cpu.regs[0], host_load(w, mem, reg), "{what}");
                        assert_eq!(m.read_u64(DATA), mem, "{what}");
                    }
                    assert_eq!(m.cpu.rflags() & 0x8d5, 0x8d5, "flags untouched: {what}");
                }
            }
        }
    }
}

#[test]
fn movbe_in_32_bit_code() {
    // mov edi, DATA; movbe eax, [edi]; movbe [edi + 4], ax (66 0F 38 F1 47 04)
    let mut p = vec![0xbf];
    p.extend((DATA as u32).to_le_bytes());
    p.extend([0x0f, 0x38, 0xf0, 0x07]);
    p.extend([0x66, 0x0f, 0x38, 0xf1, 0x47, 0x04]);
    let m = run_with(&p, |m| {
        m.write_u64(DATA, 0x1122_3344);
        m.flags = TbFlags {
            bitness: 32,
            ss32: true,
            cs_base: 0,
            ..TbFlags::LONG
        };
    });
    assert_eq!(m.cpu.regs[0], 0x4433_2211);
    assert_eq!(m.read_u64(DATA), 0x1122_1122_3344);
}
