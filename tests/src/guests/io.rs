//! I/O: the debug console (port 0xe9), COM1's transmitter, and the TSS I/O permission bitmap at ring 3.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::tables::seg;
use crate::GuestTest;

/// The I/O guests.
pub fn tests() -> Vec<GuestTest> {
    let mut con = Guest::new();
    con.entry(|a| {
        print(a, "debugcon\n")?;
        // The debug console reads back 0xe9 (QEMU's readback value): how guests detect it.
        a.mov(dx, 0xe9u32)?;
        a.in_(al, dx)?;
        a.cmp(al, 0xe9)?;
        check_eq(a, "readback")?;
        a.mov(eax, 0x1234_abcdu32)?;
        hex(a, 8)?;
        print(a, "\n")?;
        exit(a, 0)
    });
    let mut serial = Guest::new();
    serial.entry(|a| {
        print_serial(a, "hello com1\n")?;
        // LSR: transmitter empty and holding register empty after the writes.
        a.mov(dx, 0x3fdu32)?;
        a.in_(al, dx)?;
        a.and(al, 0x60)?;
        a.cmp(al, 0x60)?;
        check_eq(a, "lsr")?;
        exit(a, 0)
    });
    vec![
        pass("io_debugcon", con, "debugcon\nok readback\n1234abcd\n"),
        pass("io_serial", serial, "ok lsr\n"),
        bitmap(),
    ]
}

/// Ring 3 with IOPL 0 under a TSS whose I/O bitmap allows only port 0xe9: printing works, an out to port
/// 0x80 and a word out to 0xe9 (which also writes the denied 0xea) raise #GP(0), printed by the handler,
/// which resumes in ring 3; a call gate then goes back to ring 0 to exit.
fn bitmap() -> GuestTest {
    let mut g = Guest::new();
    // The 32-bit TSS grows to cover a bitmap for ports 0..0xff (32 bytes at 0x68) and the byte after it;
    // the entry prelude's ltr loads it.
    g.data(
        GDT + u32::from(SEL_TSS32),
        &seg(TSS32, 0x68 + 0x20, 0x89, 0).to_le_bytes(),
    );
    let mut map = vec![0xffu8; 0x21];
    map[0xe9 / 8] &= !(1 << (0xe9 % 8));
    g.data(TSS32 + 0x68, &map);
    g.entry(|a| iret_to_ring3(a, AUX));
    g.code(AUX, 32, |a| {
        print(a, "user\n")?;
        let mut r1 = a.create_label();
        let mut r2 = a.create_label();
        set_resume(a, r1)?;
        a.mov(al, 0u32)?;
        a.out(0x80u32, al)?;
        a.set_label(&mut r1)?;
        set_resume(a, r2)?;
        a.mov(dx, 0xe9u32)?;
        a.mov(ax, 0x2121u32)?;
        a.out(dx, ax)?;
        a.set_label(&mut r2)?;
        print(a, "back in ring 3\n")?;
        a.call_far(SEL_CALLGATE32 | 3, 0)
    });
    g.code(CALLGATE32_TARGET, 32, |a| exit(a, 0));
    pass(
        "io_bitmap",
        g,
        "user\n#0d err=00000000\n#0d err=00000000\nback in ring 3\n",
    )
}
