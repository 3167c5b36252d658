//! The VM's initramfs (cpio newc, gzip): busybox-static, Debian's `ip` with the libraries
//! `ldd` lists, the kernel's `veth`/`bridge` modules (with their dependencies), the test
//! binaries and `/init` (xtask/vm/init).
//!
//! Layout: `/init`, `/bin/busybox` (applet links made by `/init`), `/usr/sbin/ip` + its
//! shared libraries at their host paths, `/lib/modules/vmtest/*.ko` + `/modules.order` (load
//! order, dependencies first), `/tests/{datapath,podiam-cli,podiam-probe}`.
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::binaries::TestBinaries;
use super::kernel::{self, Kernel};
use crate::util::sh;

/// The `/init` script.
const INIT: &str = include_str!("../../vm/init");

/// Kernel modules the tests need: `veth` (pods) and `bridge` (the node's `br0`).
pub const MODULES: &[&str] = &["veth", "bridge"];

/// busybox-static's binary on the host.
const BUSYBOX: &str = "/bin/busybox";
/// Debian's iproute2 `ip` (busybox's `ip` cannot create veth pairs).
const IP: &str = "/usr/sbin/ip";

fn copy_exec(src: &Path, dst: &Path) -> anyhow::Result<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(src, dst)
        .with_context(|| format!("copy {} -> {}", src.display(), dst.display()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Absolute library paths in `ldd`'s output (`name => /path (addr)` and `/path (addr)`).
pub fn ldd_paths(ldd_out: &str) -> Vec<PathBuf> {
    ldd_out
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Copies a (glibc) binary and every library `ldd` lists, keeping the host paths.
fn copy_with_libs(bin: &str, stage: &Path) -> anyhow::Result<()> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    if !out.status.success() {
        bail!("ldd {bin} failed");
    }
    copy_exec(Path::new(bin), &stage.join(bin.trim_start_matches('/')))?;
    for lib in ldd_paths(&String::from_utf8_lossy(&out.stdout)) {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        // Follow symlinks: copy the file's contents under the name the loader looks for.
        copy_exec(&lib, &stage.join(rel))?;
    }
    Ok(())
}

/// Strips debug info into a smaller copy (the musl test binary is large with it).
fn install_binary(src: &Path, dst: &Path) -> anyhow::Result<()> {
    copy_exec(src, dst)?;
    let _ = Command::new("strip").arg("--strip-debug").arg(dst).status();
    Ok(())
}

/// Stages and packs the initramfs for `k` into `out` (gzip-compressed cpio newc).
pub fn build(k: &Kernel, bins: &TestBinaries, stage: &Path, out: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(stage);
    std::fs::create_dir_all(stage)?;
    for d in ["proc", "sys", "dev", "run", "tmp", "root", "etc"] {
        std::fs::create_dir_all(stage.join(d))?;
    }
    std::fs::write(stage.join("init"), INIT)?;
    std::fs::set_permissions(stage.join("init"), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(
        stage.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(stage.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    copy_exec(Path::new(BUSYBOX), &stage.join("bin/busybox"))?;
    copy_with_libs(IP, stage)?;

    let mods = stage.join("lib/modules/vmtest");
    std::fs::create_dir_all(&mods)?;
    let mut order = String::new();
    for (file, data) in kernel::modules_closure(k, MODULES)? {
        std::fs::write(mods.join(&file), data)?;
        order.push_str(&file);
        order.push('\n');
    }
    std::fs::write(stage.join("modules.order"), order)?;

    let tests = stage.join("tests");
    install_binary(&bins.datapath, &tests.join("datapath"))?;
    install_binary(&bins.podiam_cli, &tests.join("podiam-cli"))?;
    install_binary(&bins.probe, &tests.join("podiam-probe"))?;

    let script = format!(
        "find . -print0 | cpio --null -o -H newc --quiet -R 0:0 | gzip -1 > '{}'",
        out.display()
    );
    sh(Command::new("sh").args(["-c", &script]).current_dir(stage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007f47762ae000)\n\
                   \tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f477614b000)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f47762b0000)\n\
                   \tlibfoo.so => not found\n";
        assert_eq!(
            ldd_paths(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libbpf.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
