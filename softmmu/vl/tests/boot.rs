//! End to end: the `rqemu-system-x86_64` binary boots multiboot images built here (an a.out-kludge header
//! followed by 32-bit code assembled with iced-x86), and refuses bad command lines and images with status 1
//! and a message naming the problem.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use iced_x86::code_asm::*;

const BIN: &str = env!("CARGO_BIN_EXE_rqemu-system-x86_64");
/// Where the test kernels are loaded (and their header is).
const LOAD: u32 = 0x10_0000;
const HEADER_SIZE: u32 = 32;

/// A multiboot image: the header (magic, flags with the a.out kludge, checksum, header/load addresses,
/// load_end and bss_end 0: the whole file, no bss, entry right after the header), then `code`.
fn multiboot_image(code: &[u8]) -> Vec<u8> {
    let (magic, flags) = (0x1bad_b002u32, 0x0001_0003u32);
    let checksum = 0u32.wrapping_sub(magic).wrapping_sub(flags);
    let entry = LOAD + HEADER_SIZE;
    let mut img = Vec::new();
    for w in [magic, flags, checksum, LOAD, LOAD, 0, 0, entry] {
        img.extend_from_slice(&w.to_le_bytes());
    }
    img.extend_from_slice(code);
    img
}

/// Assembles 32-bit code placed at the entry point.
fn code32(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    build(&mut a).unwrap();
    a.assemble(u64::from(LOAD + HEADER_SIZE)).unwrap()
}

/// A scratch file for this test process.
fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rqemu-vl-boot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn run_kernel(kernel: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["-kernel", kernel.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes the bytes of `text` to port `port` one by one (`out dx, al`).
fn print(a: &mut CodeAssembler, port: u16, text: &[u8]) -> Result<(), IcedError> {
    a.mov(dx, u32::from(port))?;
    for &b in text {
        a.mov(al, u32::from(b))?;
        a.out(dx, al)?;
    }
    Ok(())
}

#[test]
fn hello_on_debugcon_and_com1_then_isa_debug_exit() {
    let code = code32(|a| {
        let mut bad = a.create_label();
        a.mov(esp, 0x8_0000u32)?;
        // The multiboot handshake: the magic in eax, the information structure in ebx.
        a.cmp(eax, 0x2bad_b002u32)?;
        a.jne(bad)?;
        a.cmp(ebx, 0u32)?;
        a.je(bad)?;
        print(a, 0xe9, b"hello debugcon\n")?;
        print(a, 0x3f8, b"hello serial\n")?;
        a.mov(al, 0x2au32)?;
        a.out(0xf4u32, al)?;
        a.hlt()?;
        a.set_label(&mut bad)?;
        a.mov(al, 0x11u32)?;
        a.out(0xf4u32, al)?;
        a.hlt()
    });
    let kernel = temp("hello.elf", &multiboot_image(&code));
    let out = run_kernel(
        &kernel,
        &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-nographic"],
    );
    assert_eq!(out.status.code(), Some((0x2a << 1) | 1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("hello debugcon\n"), "stdout: {text}");
    assert!(text.contains("hello serial\n"), "stdout: {text}");
}

#[test]
fn serial_to_file_and_debugcon_off() {
    let code = code32(|a| {
        print(a, 0xe9, b"not shown")?;
        print(a, 0x3f8, b"to the file")?;
        a.mov(eax, 3u32)?;
        a.mov(dx, 0x501u32)?;
        a.out(dx, al)?;
        a.hlt()
    });
    let kernel = temp("file.elf", &multiboot_image(&code));
    let log = temp("serial.txt", b"");
    let serial = format!("file:{}", log.display());
    let out = run_kernel(
        &kernel,
        &["-device", "isa-debug-exit", "-display", "none", "-serial", &serial],
    );
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert_eq!(std::fs::read(&log).unwrap(), b"to the file");
}

#[test]
fn triple_fault_with_no_reboot_exits_0_quietly() {
    // ud2 with no IDT (limit 0): #UD, #GP, #DF cannot be delivered: a triple fault, QEMU's reset request;
    // -no-reboot turns it into a shutdown: status 0 and nothing on stderr (QEMU prints nothing either).
    let code = code32(|a| {
        a.mov(ecx, eax)?;
        print(a, 0xe9, b"boot\n")?;
        a.ud2()
    });
    let kernel = temp("ud2.elf", &multiboot_image(&code));
    let out = run_kernel(&kernel, &["-nographic", "-no-reboot"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "boot\n");
    assert_eq!(stderr(&out), "");
    // -d int names it, with the registers at the fault (the entry state shows in ECX).
    let out = run_kernel(&kernel, &["-nographic", "-no-reboot", "-d", "int"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("Triple fault: shutting down (-no-reboot)"), "{err}");
    assert!(err.contains("RCX=000000002badb002"), "{err}");
}

/// A kernel that counts its boots at 0x500 (RAM the boot setup does not rewrite), checks the multiboot
/// entry state each time, prints the count and triple-faults on the first boot, and ends through
/// isa-debug-exit (status 7) on the second; status 0x23 if the entry state is wrong.
fn rebooting_kernel() -> PathBuf {
    let code = code32(|a| {
        let mut bad = a.create_label();
        let mut second = a.create_label();
        a.cmp(eax, 0x2bad_b002u32)?;
        a.jne(bad)?;
        a.cmp(ebx, 0u32)?;
        a.je(bad)?;
        // Flags after reset: IF clear (a reset does not keep the sti below).
        a.mov(esp, 0x8_0000u32)?;
        a.pushfd()?;
        a.pop(eax)?;
        a.test(eax, 0x200u32)?;
        a.jnz(bad)?;
        a.inc(dword_ptr(0x500u32))?;
        a.cmp(dword_ptr(0x500u32), 2u32)?;
        a.je(second)?;
        print(a, 0xe9, b"boot 1\n")?;
        // Leave state a reset must clear: interrupts on (all PIC lines masked, so none comes), a register.
        a.mov(al, 0xffu32)?;
        a.out(0x21u32, al)?;
        a.sti()?;
        a.mov(esi, 0x1234_5678u32)?;
        a.ud2()?;
        a.set_label(&mut second)?;
        a.cmp(esi, 0u32)?;
        a.jne(bad)?;
        print(a, 0xe9, b"boot 2\n")?;
        a.mov(al, 3u32)?;
        a.out(0xf4u32, al)?;
        a.hlt()?;
        a.set_label(&mut bad)?;
        a.mov(al, 0x11u32)?;
        a.out(0xf4u32, al)?;
        a.hlt()
    });
    temp("reboot.elf", &multiboot_image(&code))
}

#[test]
fn triple_fault_resets_and_boots_the_kernel_again() {
    let kernel = rebooting_kernel();
    let exit = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-nographic"];
    let out = run_kernel(&kernel, &exit);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "boot 1\nboot 2\n");
    assert_eq!(stderr(&out), "");
    // With -no-reboot the same kernel ends at its first triple fault.
    let mut args = exit.to_vec();
    args.push("-no-reboot");
    let out = run_kernel(&kernel, &args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "boot 1\n");
}

#[test]
fn unknown_option() {
    let out = run(&["-foo"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "rqemu-system-x86_64: -foo: invalid option\n");
}

#[test]
fn later_option_is_not_supported_yet() {
    let out = run(&["-drive", "file=x.img"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("option -drive is not supported yet"));
}

#[test]
fn missing_kernel() {
    let out = run(&["-kernel", "/nonexistent/kernel.elf"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("-kernel /nonexistent/kernel.elf: cannot read"), "{err}");
}

#[test]
fn corrupt_kernel() {
    let kernel = temp("corrupt.elf", &[0x55; 4096]);
    let out = run_kernel(&kernel, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("-kernel {}", kernel.display())), "{err}");
    assert!(err.contains("not a multiboot image"), "{err}");
}

#[test]
fn absurd_memory_size() {
    let out = run(&["-m", "100000T", "-kernel", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("-m 100000T"));
}

#[test]
fn memory_the_host_cannot_reserve() {
    // 1 TiB: refused by most hosts (heuristic overcommit), then the error names -m; a host that does
    // reserve it goes on to the missing kernel.
    let out = run(&["-m", "1T", "-kernel", "/nonexistent/k.elf"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("-m 1T: cannot allocate guest RAM") || err.contains("-kernel /nonexistent/k.elf"),
        "{err}"
    );
}

#[test]
fn nothing_to_run() {
    let out = run(&["-nographic"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no bios or kernel: nothing to run"));
}

#[test]
fn help_and_version_exit_0() {
    let out = run(&["-version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("rqemu-system-x86_64 version"));
    let out = run(&["-device", "help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("isa-debug-exit"));
}

#[test]
fn bios_image_is_checked() {
    let bios = temp("bad-bios.bin", &[0u8; 1000]);
    let out = run(&["-bios", bios.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("-bios") && err.contains("multiple of 64 KiB"), "{err}");
}

#[test]
fn bios_reset_vector_runs() {
    // 64 KiB of hlt with, at the reset vector (the image's last 16 bytes), real-mode code:
    // mov al, 0x15; out 0xf4, al; hlt.
    let mut image = vec![0xf4u8; 64 * 1024];
    let at = image.len() - 16;
    image[at..at + 5].copy_from_slice(&[0xb0, 0x15, 0xe6, 0xf4, 0xf4]);
    let bios = temp("reset.bin", &image);
    let out = run(&[
        "-bios",
        bios.to_str().unwrap(),
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-nographic",
    ]);
    assert_eq!(out.status.code(), Some((0x15 << 1) | 1), "stderr: {}", stderr(&out));
}

/// Prints the NUL-terminated string at `[esi]` on the debug console.
fn print_string(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut top = a.create_label();
    let mut end = a.create_label();
    a.mov(dx, 0xe9u32)?;
    a.set_label(&mut top)?;
    a.lodsb()?;
    a.test(al, al)?;
    a.je(end)?;
    a.out(dx, al)?;
    a.jmp(top)?;
    a.set_label(&mut end)?;
    a.mov(al, u32::from(b'\n'))?;
    a.out(dx, al)
}

#[test]
fn append_and_initrd_reach_the_kernel() {
    // Prints the command line, then the first module's string and contents (its text ends with a NUL).
    let code = code32(|a| {
        a.mov(ebp, ebx)?;
        a.mov(esi, dword_ptr(ebp + 16))?;
        print_string(a)?;
        a.mov(eax, dword_ptr(ebp + 20))?;
        a.add(al, b'0' as i32)?;
        a.out(0xe9u32, al)?;
        a.mov(edi, dword_ptr(ebp + 24))?;
        a.mov(esi, dword_ptr(edi + 8))?;
        print_string(a)?;
        a.mov(esi, dword_ptr(edi))?;
        print_string(a)?;
        a.mov(al, 0x10u32)?;
        a.out(0xf4u32, al)?;
        a.hlt()
    });
    let kernel = temp("cmdline.elf", &multiboot_image(&code));
    let m1 = temp("mod1.txt", b"module one\0");
    let m2 = temp("mod2.txt", b"two\0");
    let initrd = format!("{} arg1 arg2,{}", m1.display(), m2.display());
    let out = run_kernel(
        &kernel,
        &[
            "-append",
            "console=ttyS0 quiet",
            "-initrd",
            &initrd,
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
            "-nographic",
        ],
    );
    assert_eq!(out.status.code(), Some(0x21), "stderr: {}", stderr(&out));
    let want = format!(
        "{} console=ttyS0 quiet\n2{} arg1 arg2\nmodule one\n",
        kernel.display(),
        m1.display()
    );
    assert_eq!(stdout(&out), want);
}

#[test]
fn hlt_sleeps_until_the_pit_interrupt() {
    // IRQ 0 (vector 0x20 after remapping the PIC) through a 32-bit interrupt gate to a handler that ends the
    // run; the main code halts with interrupts on and must be woken by the PIT.
    let entry = LOAD + HEADER_SIZE;
    let code = code32(|a| {
        let mut start = a.create_label();
        a.jmp(start)?; // 2 bytes: the handler is at entry + 2
        a.mov(al, 0x2bu32)?;
        a.out(0xf4u32, al)?;
        a.hlt()?;
        a.set_label(&mut start)?;
        a.mov(esp, 0x8_0000u32)?;
        // The IDT at 0x7000: gate 0x20 -> entry + 2, selector 0x08, present 32-bit interrupt gate.
        let handler = entry + 2;
        a.mov(edi, 0x7000u32 + 0x20 * 8)?;
        a.mov(dword_ptr(edi), (0x08 << 16) | (handler & 0xffff))?;
        a.mov(dword_ptr(edi + 4), (handler & 0xffff_0000) | 0x8e00)?;
        a.mov(word_ptr(0x6000u32), 0x7ffu32)?;
        a.mov(dword_ptr(0x6002u32), 0x7000u32)?;
        a.lidt(ptr(0x6000u32))?;
        // PIC: ICW1..4, vectors from 0x20, then only IRQ 0 unmasked.
        for (port, v) in [
            (0x20u32, 0x11u32),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0x21, 0xfe),
        ] {
            a.mov(al, v)?;
            a.out(port, al)?;
        }
        // PIT channel 0, mode 2, about 1 ms.
        for (port, v) in [(0x43u32, 0x34u32), (0x40, 0xa9), (0x40, 0x04)] {
            a.mov(al, v)?;
            a.out(port, al)?;
        }
        let mut spin = a.create_label();
        a.sti()?;
        a.set_label(&mut spin)?;
        a.hlt()?;
        a.jmp(spin)
    });
    let kernel = temp("irq.elf", &multiboot_image(&code));
    let out = run_kernel(
        &kernel,
        &["-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-display", "none"],
    );
    assert_eq!(out.status.code(), Some((0x2b << 1) | 1), "stderr: {}", stderr(&out));
}
