//! Running child processes: every command is echoed (`$ env=... program args`) before it runs, so a log
//! shows exactly what to re-run by hand. Also the lookups of programs on `PATH`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use crate::{failed, Result};

/// A command to run, with the text that echoes it.
pub struct Cmd {
    command: Command,
    /// `KEY=value ` for each variable set, in order.
    shown_env: String,
    /// The program and its arguments.
    shown: String,
}

impl Cmd {
    /// `program`, with no arguments yet.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let program = program.as_ref();
        Cmd {
            command: Command::new(program),
            shown_env: String::new(),
            shown: quote(program),
        }
    }

    /// The cargo that runs xtask (`$CARGO`), so nested builds use the same toolchain.
    pub fn cargo() -> Cmd {
        let mut cmd = Cmd::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.shown = "cargo".into();
        cmd
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.shown.push(' ');
        self.shown.push_str(&quote(arg.as_ref()));
        self.command.arg(arg);
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Sets an environment variable for the child (shown before the program).
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.shown_env += &format!("{key}={} ", quote(value.as_ref()));
        self.command.env(key, value);
        self
    }

    /// Runs with inherited stdio; fails unless the exit status is 0.
    pub fn run(mut self) -> Result {
        self.echo();
        let start = Instant::now();
        let status = self.command.status().map_err(|e| self.spawn_error(e))?;
        self.check(status, start)
    }

    /// Runs with stdout piped through this process line by line (so it still shows) and keeps the lines
    /// `keep` selects, whether or not the command succeeds.
    pub fn run_tee(mut self, keep: impl Fn(&str) -> bool) -> Tee {
        self.echo();
        let start = Instant::now();
        let mut tee = Tee {
            result: Ok(()),
            code: None,
            kept: Vec::new(),
        };
        let mut child = match self.command.stdout(Stdio::piped()).spawn() {
            Ok(child) => child,
            Err(e) => {
                tee.result = Err(self.spawn_error(e));
                return tee;
            }
        };
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut out = std::io::stdout();
        let mut line = Vec::new();
        while let Ok(1..) = reader.read_until(b'\n', &mut line) {
            let _ = out.write_all(&line);
            let _ = out.flush();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if keep(text) {
                tee.kept.push(text.to_string());
            }
            line.clear();
        }
        tee.result = match child.wait() {
            Ok(status) => {
                tee.code = status.code();
                self.check(status, start)
            }
            Err(e) => Err(self.spawn_error(e)),
        };
        tee
    }

    /// Runs quietly and returns stdout; fails unless the exit status is 0.
    pub fn read(mut self) -> Result<String> {
        let out = self
            .command
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            return Err(failed(format!("`{}` failed: {}", self.shown, out.status)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs silently (no echo, no output) and says whether it exited with status 0.
    pub fn succeeds(mut self) -> bool {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Fails with a message naming the command unless `status` is success; prints the duration.
    fn check(&self, status: ExitStatus, start: Instant) -> Result {
        let took = start.elapsed().as_secs_f64();
        if status.success() {
            eprintln!("xtask: ok ({took:.1} s): {}", self.shown);
            Ok(())
        } else {
            Err(failed(format!("`{}` failed ({status}, {took:.1} s)", self.shown)))
        }
    }

    fn echo(&self) {
        let _ = std::io::stdout().flush();
        eprintln!("$ {}{}", self.shown_env, self.shown);
    }

    fn spawn_error(&self, e: std::io::Error) -> crate::Error {
        failed(format!("cannot run `{}`: {e}", self.shown))
    }
}

/// What [`Cmd::run_tee`] saw.
pub struct Tee {
    /// Ok when the command ran and exited with status 0.
    pub result: Result,
    /// The exit code, if the command ran to an exit.
    pub code: Option<i32>,
    /// The selected stdout lines, without line ends.
    pub kept: Vec<String>,
}

/// Quotes `s` for display when a shell would split it.
fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || "'\"$\\;&|<>*?()".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The first `program` on `PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
