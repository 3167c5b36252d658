//! `cargo xtask vm-test`: the datapath kernel tests inside QEMU on other kernels.
//!
//! For each `--kernel` (a Debian cloud kernel series such as `6.1`, or a full package name):
//! fetch and unpack the kernel package ([`kernel`], cached under `target/vm/`), build the
//! datapath tests as static musl binaries once ([`binaries`]), pack an initramfs
//! ([`initramfs`]), boot it with QEMU/TCG ([`qemu`]) and read the libtest results and the
//! sentinel from the console ([`report`]). The same `tests/tests/datapath.rs` runs natively
//! (`cargo test -p podiam-tests --test datapath`) and here: one source, two runners.
//!
//! Console logs: `target/vm/logs/<kernel>.log`. Work files (initramfs, staging):
//! `target/vm/work/<kernel>/`, removed afterwards unless `--keep`.
mod binaries;
mod initramfs;
mod kernel;
mod qemu;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

#[derive(clap::Args)]
pub struct VmTestArgs {
    /// Kernel series to boot (Debian cloud kernels), e.g. `6.1`, `6.12`, or a full package
    /// name (`linux-image-6.1.0-57-cloud-amd64-unsigned`). Repeatable. Default: 6.1 and 6.12.
    #[arg(long = "kernel")]
    pub kernels: Vec<String>,
    /// Keep the work directory (initramfs, staging tree) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Per-kernel timeout in seconds (boot, tests and power-off).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Use KVM instead of TCG (off by default: nested KVM hangs on these machines).
    #[arg(long)]
    pub kvm: bool,
    /// Only run the datapath tests whose names contain this (libtest filter).
    #[arg(long)]
    pub filter: Option<String>,
}

impl VmTestArgs {
    /// What `cargo xtask test` runs: one kernel other than the host's.
    pub fn ci_default() -> Self {
        Self {
            kernels: vec!["6.1".into()],
            keep: false,
            timeout: 600,
            kvm: false,
            filter: None,
        }
    }
}

/// Console lines shown in the report for a kernel that failed without a failed test.
const CONSOLE_TAIL: usize = 40;

/// `target/vm/` of the workspace.
fn vm_dir() -> PathBuf {
    crate::util::root().join("target").join("vm")
}

/// A kernel command-line word that is safe to pass (no spaces, quotes or newlines).
fn cmdline_word(name: &str, value: &str) -> anyhow::Result<String> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c.is_control())
    {
        bail!("{name} must be a single word without quotes: {value:?}");
    }
    Ok(format!("{name}={value}"))
}

/// Tools the VM suite needs that are not on this machine (empty when all are present).
fn missing_tools() -> Vec<&'static str> {
    let on_path = |tool: &str| {
        crate::util::test_path()
            .split(':')
            .any(|d| std::path::Path::new(d).join(tool).is_file())
    };
    let mut missing: Vec<&'static str> = [
        "qemu-system-x86_64",
        "cpio",
        "xz",
        "gzip",
        "strip",
        "ldd",
        "musl-gcc",
        "bpf-linker",
        "apt-get",
        "dpkg",
    ]
    .into_iter()
    .filter(|t| !on_path(t))
    .collect();
    for f in ["/bin/busybox", "/usr/sbin/ip"] {
        if !std::path::Path::new(f).is_file() {
            missing.push(f);
        }
    }
    let targets = crate::util::stdout_of(std::process::Command::new("rustup").args([
        "target",
        "list",
        "--installed",
    ]));
    if !targets.lines().any(|l| l.trim() == binaries::TARGET) {
        missing.push(binaries::TARGET);
    }
    missing
}

/// Runs the VM suite on every requested kernel; fails if any kernel fails, its sentinel is
/// missing, or no test ran. Prints the pass/fail table either way.
pub fn run(args: &VmTestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let missing = missing_tools();
    if !missing.is_empty() {
        eprintln!("vm-test: missing {missing:?}; running setup");
        crate::setup::run_setup_steps()?;
    }
    let kernels = if args.kernels.is_empty() {
        vec!["6.1".to_string(), "6.12".to_string()]
    } else {
        args.kernels.clone()
    };
    let vm = vm_dir();
    let mut append = Vec::new();
    if let Some(f) = &args.filter {
        append.push(cmdline_word("PODIAM_VMTEST_FILTER", f)?);
    }

    let prepared: Vec<kernel::Kernel> = kernels
        .iter()
        .map(|k| kernel::prepare(k, &vm))
        .collect::<anyhow::Result<_>>()?;
    let build_start = Instant::now();
    let bins = binaries::build()?;
    eprintln!(
        "vm-test: test binaries ready in {:.1?}",
        build_start.elapsed()
    );

    let logs = vm.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut results = Vec::new();
    for k in &prepared {
        let work = vm.join("work").join(&k.label);
        std::fs::create_dir_all(&work)?;
        let initrd = work.join("initramfs.cpio.gz");
        initramfs::build(k, &bins, &work.join("root"), &initrd)?;
        let log = logs.join(format!("{}.log", k.label));
        let boot = qemu::boot(&qemu::BootSpec {
            label: &k.label,
            kernel: &k.vmlinuz,
            initrd: &initrd,
            append: append.clone(),
            timeout: Duration::from_secs(args.timeout),
            kvm: args.kvm,
            log: &log,
        })?;
        let (tests, rc) = report::parse(&boot.lines);
        results.push(report::KernelResult {
            label: k.label.clone(),
            package: k.package.clone(),
            release: k.release.clone(),
            tests,
            rc,
            ending: boot.ending,
            elapsed: boot.elapsed,
            console_tail: boot.lines[boot.lines.len().saturating_sub(CONSOLE_TAIL)..].to_vec(),
        });
        if args.keep {
            eprintln!("vm-test: kept {}", work.display());
        } else {
            let _ = std::fs::remove_dir_all(&work);
        }
    }
    print!("{}", report::render(&results));
    println!(
        "vm-test wall time (download, build, pack, boot): {:.1}s; console logs in {}",
        started.elapsed().as_secs_f64(),
        logs.display()
    );
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.label.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("vm-test failed on kernel(s): {}", failed.join(", "));
    }
    Ok(())
}
