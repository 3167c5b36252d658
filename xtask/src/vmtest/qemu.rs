//! Boots a kernel + initramfs in QEMU, streams the serial console, enforces a timeout.
//!
//! `qemu-system-x86_64 -accel tcg -cpu max` by default (nested KVM hangs on these machines;
//! `--kvm` opts in). The console (ttyS0 on stdio) goes line by line to a log file and to
//! stdout prefixed with `[<label>] `. QEMU is killed when the timeout expires, when the
//! kernel panics (`Kernel panic`), or shortly after the result sentinel if it does not
//! power off by itself.
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::report::SENTINEL;

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited by itself (power-off) after or without the sentinel.
    Exited,
    /// The kernel panicked; QEMU was killed.
    Panic,
    /// The timeout expired; QEMU was killed.
    Timeout,
}

/// Console lines and how the boot ended.
#[derive(Debug)]
pub struct Boot {
    pub lines: Vec<String>,
    pub ending: Ending,
    pub elapsed: Duration,
}

/// What to boot.
pub struct BootSpec<'a> {
    pub label: &'a str,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// Extra kernel command-line words (`NAME=value` reach `/init` as environment).
    pub append: Vec<String>,
    pub timeout: Duration,
    pub kvm: bool,
    pub log: &'a Path,
}

/// Boots `spec` and returns when QEMU is gone.
pub fn boot(spec: &BootSpec<'_>) -> anyhow::Result<Boot> {
    let mut append = vec![
        "console=ttyS0".to_string(),
        "panic=-1".into(),
        "oops=panic".into(),
        "quiet".into(),
        "loglevel=4".into(),
    ];
    append.extend(spec.append.iter().cloned());
    let mut cmd = Command::new("qemu-system-x86_64");
    if spec.kvm {
        cmd.args(["-accel", "kvm", "-cpu", "host"]);
    } else {
        cmd.args(["-accel", "tcg", "-cpu", "max"]);
    }
    cmd.args([
        "-m",
        "1G",
        "-smp",
        "1",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
    ])
    .args(["-serial", "stdio", "-display", "none", "-monitor", "none"])
    .arg("-kernel")
    .arg(spec.kernel)
    .arg("-initrd")
    .arg(spec.initrd)
    .arg("-append")
    .arg(append.join(" "))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    eprintln!("+ {cmd:?}");
    let start = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let mut log = std::fs::File::create(spec.log)
        .with_context(|| format!("create {}", spec.log.display()))?;

    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || read_lines(out, &tx)));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            read_lines(err, &tx);
        }));
    }
    drop(tx);

    let deadline = start + spec.timeout;
    let mut lines = Vec::new();
    let mut ending = Ending::Exited;
    let mut kill_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let limit = kill_at.map_or(deadline, |k| k.min(deadline));
        if now >= limit {
            if now >= deadline && kill_at.is_none() {
                ending = Ending::Timeout;
                println!(
                    "[{}] vm-test: timeout after {:?}: killing QEMU",
                    spec.label, spec.timeout
                );
            }
            let _ = child.kill();
            break;
        }
        match rx.recv_timeout(limit - now) {
            Ok(line) => {
                let _ = writeln!(log, "{line}");
                println!("[{}] {line}", spec.label);
                if line.contains("Kernel panic") && ending != Ending::Panic {
                    ending = Ending::Panic;
                    // Let the panic message and backtrace through, then stop.
                    kill_at = Some(Instant::now() + Duration::from_secs(3));
                } else if line.contains(SENTINEL) && kill_at.is_none() {
                    kill_at = Some(Instant::now() + Duration::from_secs(30));
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    // Lines that arrived between the kill and the readers' end.
    for line in rx.try_iter() {
        let _ = writeln!(log, "{line}");
        println!("[{}] {line}", spec.label);
        lines.push(line);
    }
    Ok(Boot {
        lines,
        ending,
        elapsed: start.elapsed(),
    })
}

/// Forwards lines (console `\r` removed, invalid UTF-8 replaced) until EOF.
fn read_lines(r: impl std::io::Read, tx: &mpsc::Sender<String>) {
    let mut r = std::io::BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let s = String::from_utf8_lossy(&buf);
                let s = strip_escapes(s.trim_end_matches(['\n', '\r']));
                if tx.send(s).is_err() {
                    return;
                }
            }
        }
    }
}

/// Removes terminal control sequences (SeaBIOS clears the screen: `ESC c`, `ESC [ … l`) and
/// carriage returns, so the log and the parser see plain text.
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CSI (`ESC [` parameters… final byte in @..~); any other escape is two chars
            // (e.g. `ESC c`, reset).
            '\u{1b}' => {
                if chars.next() == Some('[') {
                    for f in chars.by_ref() {
                        if ('@'..='~').contains(&f) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_are_stripped() {
        assert_eq!(
            super::strip_escapes("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS (version 1)\r"),
            "SeaBIOS (version 1)"
        );
        assert_eq!(super::strip_escapes("test a ... ok"), "test a ... ok");
    }
}
