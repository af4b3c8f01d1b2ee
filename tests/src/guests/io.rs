//! I/O: the debug console (port 0xe9) and COM1's transmitter.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
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
    ]
}
