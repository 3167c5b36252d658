//! `cargo xtask setup`: installs what a fresh machine of this kind lacks. Idempotent: each
//! step checks first and does nothing when its tool is already there.
//! Versions are pinned: the eBPF nightly's LLVM (22) must match the LLVM bpf-linker is built
//! against (Debian's llvm-22-dev); newer nightlies use LLVM 23 and the link fails.
use std::process::Command;

use anyhow::Context as _;

use crate::util::{self, sh, stdout_of, succeeds};

/// Nightly used for the eBPF programs (its LLVM 22 matches bpf-linker's).
pub const EBPF_NIGHTLY: &str = "nightly-2026-08-01";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages: bpf-linker's LLVM, the kernel-test tools, the VM tools.
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "iptables",
    "util-linux",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "musl-tools",
];

/// PyPI packages for the venv, pinned (real SDK clients and moto's STS/IMDS server).
const PYPI_PACKAGES: &[&str] = &[
    "moto[server]==5.2.1",
    "awscli==1.45.11",
    "boto3==1.43.11",
    "botocore==1.43.11",
    "kubernetes-validate==1.37.0",
];

pub fn run_setup_steps() -> anyhow::Result<()> {
    debian()?;
    rust()?;
    bpf_linker()?;
    python()?;
    Ok(())
}

/// Entry point of `cargo xtask setup`.
pub fn run() -> anyhow::Result<()> {
    run_setup_steps()?;
    eprintln!("setup: all tools present");
    Ok(())
}

fn debian() -> anyhow::Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let out = stdout_of(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]));
            !out.contains("install ok installed")
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages {missing:?}");
    sh(Command::new("apt-get").arg("update").arg("-qq"))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn rust() -> anyhow::Result<()> {
    let toolchains = stdout_of(Command::new("rustup").args(["toolchain", "list"]));
    let components = stdout_of(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        EBPF_NIGHTLY,
    ]));
    if !toolchains.contains(EBPF_NIGHTLY) || !components.contains("rust-src") {
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            EBPF_NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    let targets = stdout_of(Command::new("rustup").args(["target", "list", "--installed"]));
    if !targets.contains("x86_64-unknown-linux-musl") {
        sh(Command::new("rustup").args(["target", "add", "x86_64-unknown-linux-musl"]))?;
    }
    Ok(())
}

fn bpf_linker() -> anyhow::Result<()> {
    let version = stdout_of(
        Command::new("bpf-linker")
            .arg("--version")
            .env("PATH", util::test_path()),
    );
    if version.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    sh(Command::new("cargo")
        .args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", "/usr/lib/llvm-22"))
}

fn python() -> anyhow::Result<()> {
    let venv = util::venv();
    let py = venv.join("bin/python3");
    let pinned_ok = py.exists()
        && succeeds(Command::new(&py).args([
            "-c",
            "import importlib.metadata as m, sys; \
             want={'moto':'5.2.1','awscli':'1.45.11','boto3':'1.43.11','kubernetes-validate':'1.37.0'}; \
             sys.exit(0 if all(m.version(k)==v for k,v in want.items()) else 1)",
        ]));
    if pinned_ok {
        return Ok(());
    }
    if !py.exists() {
        let system_py = which_python().context("no python3 found for the test venv")?;
        sh(Command::new(system_py).args(["-m", "venv"]).arg(&venv))?;
    }
    sh(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PYPI_PACKAGES))
}

fn which_python() -> Option<String> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| succeeds(Command::new(p).arg("--version")))
        .map(str::to_owned)
}
