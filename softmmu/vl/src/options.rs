//! The command line, in QEMU's syntax: `-opt value` or `--opt value` (never `-opt=value`, which QEMU does not
//! accept either), sub-options as `key=value` lists separated by commas.
//!
//! [`parse`] turns the arguments (without the program name) into an [`Action`]: run a machine with
//! [`Options`], or print help or the version. It only parses: files are read and RAM is reserved by the
//! machine ([`crate::pc`]), so every check that needs the host happens there. Options of later issues
//! (disks, network, ...) are recognised and refused with "not supported yet" rather than "invalid option",
//! so a QEMU command line tells the user what is missing. The full list is in docs/system.md.

use std::fmt;
use std::path::PathBuf;

use rqemu_accel::log::{LogError, LogOptions};
use rqemu_accel::AccelOptions;

/// The program name used in messages.
pub const PROG: &str = "rqemu-system-x86_64";

/// QEMU's default RAM size for the PC.
pub const DEFAULT_RAM_SIZE: u64 = 128 << 20;
/// The smallest `-m` accepted: the multiboot information and the legacy areas need the first MiB.
pub const MIN_RAM_SIZE: u64 = 1 << 20;
/// The largest `-m` accepted: 1 TiB on 64-bit hosts; a 32-bit host (wasm32) cannot address more than 2 GiB
/// of guest RAM in its linear memory.
pub const MAX_RAM_SIZE: u64 = if cfg!(target_pointer_width = "64") {
    1 << 40
} else {
    2 << 30
};

/// A command-line error: the message names the option and the problem. Printed as `PROG: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(msg.into()))
}

/// Where a character device's bytes go (`-serial`, `-debugcon`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CharTarget {
    /// The emulator's stdout (and stdin for the serial port's input).
    Stdio,
    /// Discarded; the device exists.
    Null,
    /// Written to this file, created (or truncated) at start.
    File(PathBuf),
    /// No device at all.
    None,
}

impl CharTarget {
    /// Parses a `-serial`/`-debugcon` backend; `option` names the option in errors.
    fn parse(option: &str, value: &str) -> Result<CharTarget, CliError> {
        match value {
            "stdio" => Ok(CharTarget::Stdio),
            // The monitor is not emulated: `mon:stdio` is the serial port on stdio without it.
            "mon:stdio" => Ok(CharTarget::Stdio),
            "null" => Ok(CharTarget::Null),
            "none" => Ok(CharTarget::None),
            _ => match value.strip_prefix("file:") {
                Some("") => err(format!("{option} file:: missing file name")),
                Some(path) => Ok(CharTarget::File(PathBuf::from(path))),
                None => {
                    let kind = value.split([':', ',']).next().unwrap_or(value);
                    err(format!(
                        "{option} {value}: character backend `{kind}` is not supported yet (stdio, null, file:path, none)"
                    ))
                }
            },
        }
    }
}

/// A `-device` the machine creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// QEMU's `isa-debug-exit`: a write of `v` to its ports ends the emulator with status `(v << 1) | 1`.
    IsaDebugExit {
        /// First port.
        iobase: u16,
        /// Number of ports.
        iosize: u32,
    },
}

/// A device `-device` knows: its name, what it does, and its properties with their descriptions.
struct DeviceInfo {
    name: &'static str,
    desc: &'static str,
    props: &'static [(&'static str, &'static str)],
}

/// The devices `-device` knows, for `-device help` and `-device name,help`.
const DEVICES: &[DeviceInfo] = &[DeviceInfo {
    name: "isa-debug-exit",
    desc: "writes of v end the emulator with exit status (v << 1) | 1",
    props: &[
        ("iobase", "<uint16> first port (default 0x501)"),
        ("iosize", "<uint32> number of ports (default 0x2)"),
    ],
}];

/// The CPU models `-cpu` accepts. One model is emulated today (see [`crate::pc`]); both names give it.
pub const CPU_MODELS: &[(&str, &str)] = &[
    ("qemu64", "the default x86-64 CPU"),
    ("max", "every feature rqemu emulates (today the same CPUID as qemu64)"),
];

/// The machines `-machine` accepts.
pub const MACHINES: &[(&str, &str)] = &[("pc", "Standard PC (i440FX era: 8259 PIC, 8254 PIT, COM1) (default)")];

/// Everything needed to build and start the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Guest RAM in bytes (`-m`), a multiple of 4 KiB.
    pub ram_size: u64,
    /// `-kernel`: a multiboot image.
    pub kernel: Option<PathBuf>,
    /// `-initrd`: comma-separated module files (with arguments after a space, as QEMU's multiboot loader).
    pub initrd: Option<String>,
    /// `-append`: the kernel command line.
    pub append: Option<String>,
    /// `-bios`: a flat firmware image.
    pub bios: Option<PathBuf>,
    /// `-L`: directories searched for `-bios` files given by a name that is not found as is.
    pub data_dirs: Vec<PathBuf>,
    /// `-device` items, in order.
    pub devices: Vec<DeviceSpec>,
    /// Where COM1 goes (`-serial`, or the default the display options imply).
    pub serial: CharTarget,
    /// Where the debug console on port 0xe9 goes (`-debugcon`, or the default).
    pub debugcon: CharTarget,
    /// `-no-reboot`: a reset request (a triple fault) ends the emulator with status 0 instead of resetting.
    pub no_reboot: bool,
    /// `-no-shutdown` (accepted; there is no shutdown device yet).
    pub no_shutdown: bool,
    /// `-accel tcg,...`.
    pub accel: AccelOptions,
    /// The `-cpu` model name.
    pub cpu_model: String,
    /// `-d` and `-D`.
    pub log: LogOptions,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    /// Build the machine and run it.
    Run(Box<Options>),
    /// Print this text on stdout and exit 0 (`-h`, `-device help`, `-d help`, ...).
    Help(String),
    /// Print the version and exit 0.
    Version(String),
}

/// How an option takes its argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
}

/// Options of later issues: recognised so the error says what is missing (name, takes a value).
const NOT_YET: &[(&str, Arity)] = &[
    ("drive", Arity::Value),
    ("hda", Arity::Value),
    ("hdb", Arity::Value),
    ("hdc", Arity::Value),
    ("hdd", Arity::Value),
    ("cdrom", Arity::Value),
    ("fda", Arity::Value),
    ("fdb", Arity::Value),
    ("blockdev", Arity::Value),
    ("netdev", Arity::Value),
    ("net", Arity::Value),
    ("nic", Arity::Value),
    ("chardev", Arity::Value),
    ("object", Arity::Value),
    ("numa", Arity::Value),
    ("boot", Arity::Value),
    ("vga", Arity::Value),
    ("vnc", Arity::Value),
    ("spice", Arity::Value),
    ("audiodev", Arity::Value),
    ("usb", Arity::Flag),
    ("usbdevice", Arity::Value),
    ("rtc", Arity::Value),
    ("icount", Arity::Value),
    ("global", Arity::Value),
    ("fw_cfg", Arity::Value),
    ("qmp", Arity::Value),
    ("gdb", Arity::Value),
    ("s", Arity::Flag),
    ("S", Arity::Flag),
    ("snapshot", Arity::Flag),
    ("loadvm", Arity::Value),
    ("incoming", Arity::Value),
    ("parallel", Arity::Value),
    ("virtfs", Arity::Value),
    ("fsdev", Arity::Value),
    ("daemonize", Arity::Flag),
    ("pidfile", Arity::Value),
    ("k", Arity::Value),
];

const USAGE: &str = "\
usage: rqemu-system-x86_64 [options]
Runs a bare-metal x86 program on an emulated PC (rqemu: a QEMU-like emulator in Rust).

Standard options:
-h, -help               print this help and exit
-version                print the version and exit
-machine, -M pc[,accel=tcg]
                        the machine (only `pc`; -machine help lists)
-cpu qemu64|max         the CPU model (-cpu help lists)
-accel tcg[,tb-size=MiB,one-insn-per-tb=on|off,chain-limit=N,...]
                        the accelerator (only TCG) and its options
-smp 1                  the number of vCPUs (only one)
-m [size=]N[k|M|G|T]    guest RAM (default 128M; a plain number is MiB)
-L dir                  a directory where -bios files are looked for

Boot:
-kernel file            a multiboot (v1) kernel
-append cmdline         its command line
-initrd file[ args][,file...]
                        multiboot modules
-bios file              a flat firmware image (at the top of the first MiB and of 4 GiB)

Devices and character backends (stdio, null, file:path, none):
-device isa-debug-exit[,iobase=N][,iosize=N]
                        a port whose writes of v end rqemu with status (v << 1) | 1 (-device help lists)
-serial dev             COM1 (0x3f8, IRQ 4)
-debugcon dev           the debug console on port 0xe9 (rqemu enables it by default on stdout)
-nographic              no display: COM1 and the debug console on stdio (also the default: rqemu has
                        no graphical display)
-display none           no display, and COM1 and the debug console go nowhere unless given
-nodefaults             no default COM1 or debug console
-no-reboot              exit (status 0) instead of resetting on a triple fault
-no-shutdown            accepted (no shutdown device yet)

Debugging:
-d item[,...]           log items (-d help lists)
-D file                 the log goes to file instead of stderr

Options of later issues (-drive, -netdev, -boot, -gdb, ...) are recognised and refused.
";

/// Parses a size: a number (with an optional fraction) and an optional suffix k/K, M, G, T (also with `B`,
/// or `B` alone for bytes); no suffix means `default_unit` bytes. `None` on any malformed or overflowing value.
pub fn parse_size(s: &str, default_unit: u64) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let unit: u64 = match suffix.to_ascii_lowercase().trim_end_matches('b') {
        "" if suffix.is_empty() => default_unit,
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let whole = int.checked_mul(unit)?;
    if frac.is_empty() {
        return Some(whole);
    }
    // The fraction, exact to the byte (rounded down): frac / 10^len of a unit.
    let scale = 10u128.pow(frac.len() as u32);
    let part = u128::from(frac.parse::<u64>().ok()?) * u128::from(unit) / scale;
    whole.checked_add(u64::try_from(part).ok()?)
}

/// A size as `-m` would take it back: the largest unit that divides it (`1T`, `512M`, `1028k`, bytes).
pub fn format_size(bytes: u64) -> String {
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "k")] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Parses a number as QEMU's properties take it: decimal, `0x` hexadecimal or `0` octal.
pub fn parse_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// `-m`: `N[suffix]` or `size=N[suffix]` (other keys, such as `slots` and `maxmem` for hotplug, are refused).
fn parse_memory(value: &str) -> Result<u64, CliError> {
    let mut size = None;
    for item in value.split(',').filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            None | Some(("size", _)) => size = Some(item.strip_prefix("size=").unwrap_or(item)),
            Some((key, _)) => return err(format!("-m {value}: `{key}` is not supported yet (only size)")),
        }
    }
    let Some(text) = size else {
        return err(format!("-m {value}: missing size"));
    };
    let bytes = parse_size(text, 1 << 20).ok_or_else(|| {
        CliError(format!(
            "-m {value}: invalid size (expected a number with k, M, G or T)"
        ))
    })?;
    if bytes < MIN_RAM_SIZE {
        return err(format!("-m {value}: at least 1 MiB of RAM is needed"));
    }
    if bytes > MAX_RAM_SIZE {
        return err(format!(
            "-m {value}: {bytes} bytes is more RAM than rqemu supports on this host (at most {} GiB)",
            MAX_RAM_SIZE >> 30
        ));
    }
    // Whole pages, as QEMU aligns RAM.
    Ok(bytes.div_ceil(4096) * 4096)
}

/// The text of `-device help`.
fn device_help() -> String {
    let mut s = String::from("Devices rqemu can add with -device:\n");
    for d in DEVICES {
        s.push_str(&format!("name \"{}\", bus ISA, desc \"{}\"\n", d.name, d.desc));
    }
    s
}

/// `-device name[,key=value...]`.
fn parse_device(value: &str) -> Result<Option<DeviceSpec>, CliError> {
    let mut items = value.split(',');
    let name = items.next().unwrap_or("");
    if name == "help" || name == "?" {
        return Ok(None);
    }
    let Some(DeviceInfo { props, .. }) = DEVICES.iter().find(|d| d.name == name) else {
        return err(format!(
            "-device {value}: device `{name}` is not supported yet (-device help lists the ones that are)"
        ));
    };
    let (mut iobase, mut iosize) = (
        u64::from(rqemu_hw::isa_debug_exit::DEFAULT_IOBASE),
        u64::from(rqemu_hw::isa_debug_exit::DEFAULT_IOSIZE),
    );
    for item in items.filter(|i| !i.is_empty()) {
        let Some((key, v)) = item.split_once('=') else {
            return err(format!("-device {value}: expected key=value, got `{item}`"));
        };
        let num = parse_number(v).ok_or_else(|| CliError(format!("-device {value}: {key}={v} is not a number")))?;
        match key {
            "iobase" => iobase = num,
            "iosize" => iosize = num,
            _ => {
                let known: Vec<_> = props.iter().map(|(k, _)| *k).collect();
                return err(format!(
                    "-device {value}: {name} has no property `{key}` (it has {})",
                    known.join(", ")
                ));
            }
        }
    }
    let iobase = u16::try_from(iobase).map_err(|_| CliError(format!("-device {value}: iobase above 0xffff")))?;
    if iosize == 0 || u64::from(iobase).saturating_add(iosize) > 0x1_0000 {
        return err(format!(
            "-device {value}: iosize must be at least 1 and the ports must end at or below 0xffff"
        ));
    }
    Ok(Some(DeviceSpec::IsaDebugExit {
        iobase,
        iosize: iosize as u32,
    }))
}

/// `-device name,help`: the device's properties, when asked.
fn device_props_help(value: &str) -> Option<String> {
    let (name, rest) = value.split_once(',')?;
    if rest != "help" && rest != "?" {
        return None;
    }
    let props = DEVICES.iter().find(|d| d.name == name)?.props;
    let mut s = format!("{name} options:\n");
    for (k, what) in props.iter() {
        s.push_str(&format!("  {k}={what}\n"));
    }
    Some(s)
}

/// `-machine`/`-M type[,accel=tcg]`; returns the accelerator's options when `accel=` names one.
fn parse_machine(value: &str) -> Result<Option<String>, CliError> {
    let mut accel = None;
    for (i, item) in value.split(',').enumerate() {
        let (key, v) = match item.split_once('=') {
            Some(kv) => kv,
            None if i == 0 => ("type", item),
            None => return err(format!("-machine {value}: expected key=value, got `{item}`")),
        };
        match (key, v) {
            ("type", "pc") => {}
            ("type", "q35") => {
                return err(format!(
                    "-machine {value}: the q35 machine is not supported yet (use pc)"
                ))
            }
            ("type", t) if t.starts_with("pc-i440fx") || t.starts_with("pc-q35") => {
                return err(format!(
                    "-machine {value}: versioned machine types are not supported yet (use pc)"
                ))
            }
            ("type", t) => return err(format!("-machine {value}: unknown machine `{t}` (-machine help lists)")),
            ("accel", "tcg") => accel = Some("tcg".to_string()),
            ("accel", a) => {
                return err(format!(
                    "-machine {value}: accelerator `{a}` is not supported (only tcg)"
                ))
            }
            (k, _) => return err(format!("-machine {value}: property `{k}` is not supported yet")),
        }
    }
    Ok(accel)
}

/// `-smp n[,cpus=n,sockets=..,cores=..,threads=..,maxcpus=..]`: every count must be 1.
fn parse_smp(value: &str) -> Result<(), CliError> {
    for (i, item) in value.split(',').filter(|i| !i.is_empty()).enumerate() {
        let (key, v) = match item.split_once('=') {
            Some(kv) => kv,
            None if i == 0 => ("cpus", item),
            None => return err(format!("-smp {value}: expected key=value, got `{item}`")),
        };
        if !matches!(
            key,
            "cpus" | "sockets" | "dies" | "clusters" | "cores" | "threads" | "maxcpus"
        ) {
            return err(format!("-smp {value}: unknown key `{key}`"));
        }
        match parse_number(v) {
            Some(1) => {}
            Some(_) => return err(format!("-smp {value}: only one vCPU is supported yet")),
            None => return err(format!("-smp {value}: {key}={v} is not a number")),
        }
    }
    Ok(())
}

/// `-display type[,...]`: `none` only.
fn parse_display(value: &str) -> Result<(), CliError> {
    match value.split(',').next().unwrap_or("") {
        "none" => Ok(()),
        "help" => err("-display help: the only display is `none` (rqemu has no graphical display yet)"),
        other => err(format!(
            "-display {value}: display `{other}` is not supported yet (only none, or -nographic)"
        )),
    }
}

/// A list of named choices, for `-cpu help` and `-machine help`.
fn list(title: &str, items: &[(&str, &str)]) -> String {
    let mut s = format!("{title}\n");
    for (name, what) in items {
        s.push_str(&format!("{name:<10} {what}\n"));
    }
    s
}

/// Parses the arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Action, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
    let mut it = args.iter();
    let mut o = Options {
        ram_size: DEFAULT_RAM_SIZE,
        kernel: None,
        initrd: None,
        append: None,
        bios: None,
        data_dirs: Vec::new(),
        devices: Vec::new(),
        serial: CharTarget::Stdio,
        debugcon: CharTarget::Stdio,
        no_reboot: false,
        no_shutdown: false,
        accel: AccelOptions::default(),
        cpu_model: "qemu64".into(),
        log: LogOptions::default(),
    };
    let (mut serial, mut debugcon) = (None, None);
    let (mut display_none, mut nographic, mut nodefaults) = (false, false, false);
    let (mut log_items, mut log_file) = (None::<String>, None::<String>);
    let mut accel_seen = false;
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return err(format!(
                "{arg}: a disk image argument is not supported yet (rqemu has no disks: use -kernel or -bios)"
            ));
        };
        if name.is_empty() {
            return err(format!("{arg}: invalid option"));
        }
        let mut value = |name: &str| -> Result<&String, CliError> {
            it.next()
                .ok_or_else(|| CliError(format!("-{name}: requires an argument")))
        };
        match name {
            "h" | "help" => return Ok(Action::Help(USAGE.to_string())),
            "version" => {
                return Ok(Action::Version(format!(
                    "{PROG} version {} (rqemu, a QEMU-like system emulator in Rust)\n",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            "m" => o.ram_size = parse_memory(value(name)?)?,
            "kernel" => o.kernel = Some(PathBuf::from(value(name)?)),
            "initrd" => o.initrd = Some(value(name)?.clone()),
            "append" => o.append = Some(value(name)?.clone()),
            "bios" => o.bios = Some(PathBuf::from(value(name)?)),
            "L" => o.data_dirs.push(PathBuf::from(value(name)?)),
            "device" => {
                let v = value(name)?;
                if let Some(text) = device_props_help(v) {
                    return Ok(Action::Help(text));
                }
                match parse_device(v)? {
                    Some(d) => o.devices.push(d),
                    None => return Ok(Action::Help(device_help())),
                }
            }
            "nographic" => nographic = true,
            "display" => {
                parse_display(value(name)?)?;
                display_none = true;
            }
            "nodefaults" => nodefaults = true,
            "serial" => {
                let v = value(name)?;
                if serial.is_some() {
                    return err(format!("-serial {v}: only one serial port (COM1) is supported yet"));
                }
                serial = Some(CharTarget::parse("-serial", v)?);
            }
            "debugcon" => debugcon = Some(CharTarget::parse("-debugcon", value(name)?)?),
            "monitor" => {
                let v = value(name)?;
                if v != "none" {
                    return err(format!(
                        "-monitor {v}: the monitor is not supported yet (only -monitor none)"
                    ));
                }
            }
            "no-reboot" => o.no_reboot = true,
            "no-shutdown" => o.no_shutdown = true,
            "accel" => {
                let v = value(name)?;
                o.accel = AccelOptions::parse(v).map_err(|e| CliError(e.0))?;
                accel_seen = true;
            }
            "enable-kvm" => return err("-enable-kvm: KVM is not supported (rqemu runs TCG only)"),
            "machine" | "M" => {
                let v = value(name)?;
                if v == "help" || v == "?" {
                    return Ok(Action::Help(list("Supported machines are:", MACHINES)));
                }
                // `accel=tcg` is the default; it must not reset options an `-accel` gave.
                if parse_machine(v)?.is_some() && !accel_seen {
                    o.accel = AccelOptions::default();
                }
            }
            "cpu" => {
                let v = value(name)?;
                let model = v.split(',').next().unwrap_or("");
                if model == "help" || model == "?" {
                    return Ok(Action::Help(list("Available CPUs:", CPU_MODELS)));
                }
                if !CPU_MODELS.iter().any(|(m, _)| *m == model) {
                    return err(format!(
                        "-cpu {v}: CPU model `{model}` is not supported yet (qemu64 or max; -cpu help lists)"
                    ));
                }
                if v.contains(',') {
                    return err(format!("-cpu {v}: CPU feature flags are not supported yet"));
                }
                o.cpu_model = model.to_string();
            }
            "smp" => parse_smp(value(name)?)?,
            "d" => log_items = Some(value(name)?.clone()),
            "D" => log_file = Some(value(name)?.clone()),
            _ => {
                if let Some((_, arity)) = NOT_YET.iter().find(|(n, _)| *n == name) {
                    if *arity == Arity::Value {
                        let _ = it.next();
                    }
                    return err(format!("option -{name} is not supported yet"));
                }
                return err(format!("-{name}: invalid option"));
            }
        }
    }
    o.log = match LogOptions::parse(log_items.as_deref(), log_file.as_deref()) {
        Ok(l) => l,
        Err(LogError::Help) => return Ok(Action::Help(LogError::Help.to_string())),
        Err(e) => return err(e.to_string()),
    };
    // rqemu has no graphical display: without `-display none` the consoles go to stdio, as with -nographic
    // (which wins over an earlier or later `-display none`).
    let display_none = display_none && !nographic;
    let default = if display_none || nodefaults {
        CharTarget::None
    } else {
        CharTarget::Stdio
    };
    o.serial = serial.unwrap_or_else(|| {
        if display_none && !nodefaults {
            // QEMU keeps COM1 with no display, its output going nowhere.
            CharTarget::Null
        } else {
            default.clone()
        }
    });
    o.debugcon = debugcon.unwrap_or(default);
    if o.kernel.is_none() {
        if o.append.is_some() {
            return err("-append only makes sense with -kernel");
        }
        if o.initrd.is_some() {
            return err("-initrd only makes sense with -kernel");
        }
    }
    Ok(Action::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args).unwrap() {
            Action::Run(o) => *o,
            other => panic!("not a run: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        parse(args).unwrap_err().0
    }

    fn help(args: &[&str]) -> String {
        match parse(args).unwrap() {
            Action::Help(s) => s,
            other => panic!("not help: {other:?}"),
        }
    }

    #[test]
    fn sizes_take_qemu_suffixes() {
        assert_eq!(parse_size("512", 1 << 20), Some(512 << 20));
        assert_eq!(parse_size("64k", 1 << 20), Some(64 << 10));
        assert_eq!(parse_size("64K", 1 << 20), Some(64 << 10));
        assert_eq!(parse_size("2G", 1 << 20), Some(2 << 30));
        assert_eq!(parse_size("1T", 1 << 20), Some(1 << 40));
        assert_eq!(parse_size("1.5G", 1 << 20), Some(3 << 29));
        assert_eq!(parse_size("512MB", 1 << 20), Some(512 << 20));
        assert_eq!(parse_size("4096B", 1 << 20), Some(4096));
        assert_eq!(parse_size("", 1), None);
        assert_eq!(parse_size("12X", 1), None);
        assert_eq!(parse_size("G", 1), None);
        assert_eq!(parse_size("99999999999999999999", 1), None);
        assert_eq!(parse_size("20000000T", 1), None);
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(3 << 29), "1536M");
        assert_eq!(format_size(1028 << 10), "1028k");
        assert_eq!(format_size(5), "5B");
    }

    #[test]
    fn memory_forms_and_default() {
        assert_eq!(run(&[]).ram_size, 128 << 20);
        assert_eq!(run(&["-m", "512"]).ram_size, 512 << 20);
        assert_eq!(run(&["-m", "1G"]).ram_size, 1 << 30);
        assert_eq!(run(&["-m", "size=512M"]).ram_size, 512 << 20);
        assert_eq!(run(&["--m", "2M"]).ram_size, 2 << 20);
        // Rounded up to whole pages.
        assert_eq!(run(&["-m", "1025k"]).ram_size, 1028 << 10);
    }

    #[test]
    fn memory_errors_name_the_value() {
        assert!(error(&["-m", "lots"]).contains("-m lots: invalid size"));
        assert!(error(&["-m", "100000T"]).contains("more RAM than rqemu supports"));
        assert!(error(&["-m", "512k"]).contains("at least 1 MiB"));
        assert!(error(&["-m", "512M,maxmem=1G"]).contains("`maxmem` is not supported yet"));
        assert!(error(&["-m"]).contains("-m: requires an argument"));
    }

    #[test]
    fn boot_files_and_data_dirs() {
        let o = run(&[
            "-kernel", "k.elf", "-append", "a b", "-initrd", "m1 x,m2", "-bios", "b.bin", "-L", "/d1", "-L", "/d2",
        ]);
        assert_eq!(o.kernel, Some(PathBuf::from("k.elf")));
        assert_eq!(o.append.as_deref(), Some("a b"));
        assert_eq!(o.initrd.as_deref(), Some("m1 x,m2"));
        assert_eq!(o.bios, Some(PathBuf::from("b.bin")));
        assert_eq!(o.data_dirs, vec![PathBuf::from("/d1"), PathBuf::from("/d2")]);
        assert!(error(&["-append", "x"]).contains("-append only makes sense with -kernel"));
        assert!(error(&["-initrd", "x"]).contains("-initrd only makes sense with -kernel"));
    }

    #[test]
    fn isa_debug_exit_device() {
        let o = run(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        assert_eq!(
            o.devices,
            vec![DeviceSpec::IsaDebugExit {
                iobase: 0xf4,
                iosize: 4
            }]
        );
        let o = run(&["-device", "isa-debug-exit"]);
        assert_eq!(
            o.devices,
            vec![DeviceSpec::IsaDebugExit {
                iobase: 0x501,
                iosize: 2
            }]
        );
        assert!(error(&["-device", "virtio-blk-pci"]).contains("device `virtio-blk-pci` is not supported yet"));
        assert!(error(&["-device", "isa-debug-exit,port=1"]).contains("no property `port`"));
        assert!(error(&["-device", "isa-debug-exit,iobase=0x1ffff"]).contains("iobase above 0xffff"));
        assert!(error(&["-device", "isa-debug-exit,iobase=0xffff,iosize=2"]).contains("iosize"));
        assert!(error(&["-device", "isa-debug-exit,iosize=0xffffffffffffffff"]).contains("iosize"));
        assert!(error(&["-device", "isa-debug-exit,iobase=zz"]).contains("not a number"));
        assert!(help(&["-device", "help"]).contains("isa-debug-exit"));
        assert!(help(&["-device", "isa-debug-exit,help"]).contains("iobase"));
    }

    #[test]
    fn consoles_default_to_stdio() {
        let o = run(&["-nographic"]);
        assert_eq!((o.serial, o.debugcon), (CharTarget::Stdio, CharTarget::Stdio));
        let o = run(&[]);
        assert_eq!((o.serial, o.debugcon), (CharTarget::Stdio, CharTarget::Stdio));
        let o = run(&["-display", "none"]);
        assert_eq!((o.serial, o.debugcon), (CharTarget::Null, CharTarget::None));
        let o = run(&["-nodefaults"]);
        assert_eq!((o.serial, o.debugcon), (CharTarget::None, CharTarget::None));
        let o = run(&["-serial", "file:/tmp/s", "-debugcon", "null"]);
        assert_eq!(o.serial, CharTarget::File(PathBuf::from("/tmp/s")));
        assert_eq!(o.debugcon, CharTarget::Null);
        assert_eq!(run(&["-serial", "mon:stdio"]).serial, CharTarget::Stdio);
        assert_eq!(run(&["-serial", "none"]).serial, CharTarget::None);
        assert!(error(&["-serial", "pty"]).contains("`pty` is not supported yet"));
        assert!(error(&["-serial", "tcp:localhost:4444"]).contains("`tcp` is not supported yet"));
        assert!(error(&["-serial", "stdio", "-serial", "null"]).contains("only one serial port"));
        assert!(error(&["-display", "gtk"]).contains("`gtk` is not supported yet"));
        assert!(error(&["-monitor", "stdio"]).contains("monitor is not supported yet"));
        assert!(error(&["-debugcon", "file:"]).contains("missing file name"));
    }

    #[test]
    fn accel_machine_cpu_smp() {
        let o = run(&["-accel", "tcg,tb-size=64", "-machine", "pc,accel=tcg"]);
        assert_eq!(o.accel.tb_size_bytes, 64 << 20);
        assert!(error(&["-accel", "kvm"]).contains("kvm"));
        assert!(error(&["-accel", "tcg,bogus=1"]).contains("bogus"));
        run(&["-M", "pc"]);
        assert!(error(&["-M", "q35"]).contains("q35 machine is not supported yet"));
        assert!(error(&["-machine", "pc,accel=kvm"]).contains("`kvm` is not supported"));
        assert!(error(&["-machine", "isapc"]).contains("unknown machine"));
        assert!(help(&["-machine", "help"]).contains("pc"));
        assert_eq!(run(&["-cpu", "max"]).cpu_model, "max");
        assert_eq!(run(&[]).cpu_model, "qemu64");
        assert!(error(&["-cpu", "host"]).contains("`host` is not supported yet"));
        assert!(error(&["-cpu", "qemu64,+avx"]).contains("feature flags"));
        assert!(help(&["-cpu", "help"]).contains("qemu64"));
        run(&["-smp", "1"]);
        run(&["-smp", "cpus=1,sockets=1,cores=1,threads=1"]);
        assert!(error(&["-smp", "2"]).contains("only one vCPU"));
        assert!(error(&["-smp", "1,cores=2"]).contains("only one vCPU"));
        assert!(error(&["-enable-kvm"]).contains("KVM is not supported"));
    }

    #[test]
    fn logging_options() {
        let o = run(&["-d", "in_asm,int", "-D", "/tmp/log"]);
        assert!(o.log.mask.contains(rqemu_accel::log::LogMask::INT));
        assert_eq!(o.log.file, Some(PathBuf::from("/tmp/log")));
        assert!(help(&["-d", "help"]).contains("in_asm"));
        assert!(error(&["-d", "nonsense"]).contains("nonsense"));
    }

    #[test]
    fn flags_help_version() {
        let o = run(&["-no-reboot", "-no-shutdown", "-monitor", "none"]);
        assert!(o.no_reboot && o.no_shutdown);
        assert!(help(&["-h"]).contains("-kernel"));
        assert!(help(&["--help"]).contains("-kernel"));
        assert!(matches!(parse(["-version"]).unwrap(), Action::Version(v) if v.contains(PROG)));
    }

    #[test]
    fn later_and_unknown_options() {
        assert_eq!(error(&["-drive", "file=x"]), "option -drive is not supported yet");
        assert_eq!(error(&["-hda", "x.img"]), "option -hda is not supported yet");
        assert_eq!(error(&["-netdev", "user,id=n"]), "option -netdev is not supported yet");
        assert_eq!(error(&["-S"]), "option -S is not supported yet");
        assert_eq!(error(&["-foo"]), "-foo: invalid option");
        assert_eq!(error(&["--foo"]), "-foo: invalid option");
        // QEMU has no `-opt=value` form: the whole word is an unknown option.
        assert_eq!(error(&["-m=512"]), "-m=512: invalid option");
        assert!(error(&["disk.img"]).contains("disk image argument is not supported yet"));
        assert!(error(&["-kernel"]).contains("-kernel: requires an argument"));
    }
}
