//! Debian cloud kernels for the VM: package resolution, download cache, unpacking, modules.
//!
//! A kernel is named by its series (`6.1`, `6.12`) or by a full package name
//! (`linux-image-6.1.0-57-cloud-amd64-unsigned`). The series resolves to the newest
//! `linux-image-<series>[.-]…-cloud-amd64-unsigned` package: first among the `.deb`s already
//! cached in `target/vm/debs/`, else from `apt-cache` (running `apt-get update` once if the
//! index has none). The package is fetched with `apt-get download` and unpacked with
//! `dpkg -x` into `target/vm/kernels/<package>/`.
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util::{sh, stdout_of};

/// An unpacked kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// What the user asked for (`6.1`), used as the row label.
    pub label: String,
    /// Debian package name.
    pub package: String,
    /// `boot/vmlinuz-*` inside the unpacked package.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>/` inside the unpacked package.
    pub modules: PathBuf,
    /// Kernel release (`uname -r`), the name of the modules directory.
    pub release: String,
}

/// Whether `pkg` is a cloud-amd64 unsigned image of `series` (`6.1` does not match `6.12.x`).
pub fn matches_series(pkg: &str, series: &str) -> bool {
    let Some(rest) = pkg.strip_prefix("linux-image-") else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(series) else {
        return false;
    };
    (rest.starts_with('.') || rest.starts_with('-')) && rest.ends_with("-cloud-amd64-unsigned")
}

/// Compares package names by their numeric runs (`6.1.0-9` < `6.1.0-57`).
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut digit = false;
        for c in s.chars() {
            if c.is_ascii_digit() != digit && !cur.is_empty() {
                out.push(if digit {
                    Ok(cur.parse().unwrap_or(u64::MAX))
                } else {
                    Err(std::mem::take(&mut cur))
                });
                cur.clear();
            }
            digit = c.is_ascii_digit();
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(if digit {
                Ok(cur.parse().unwrap_or(u64::MAX))
            } else {
                Err(cur)
            });
        }
        out
    }
    chunks(a).cmp(&chunks(b))
}

/// Package name from a `.deb` file name (`<pkg>_<version>_<arch>.deb`).
fn deb_package(file: &str) -> Option<&str> {
    file.strip_suffix(".deb")?.split('_').next()
}

fn cached_debs(debs: &Path) -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(debs) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pkg) = deb_package(&name) {
                v.push((pkg.to_string(), e.path()));
            }
        }
    }
    v
}

fn apt_candidates(series: &str) -> Vec<String> {
    let out = stdout_of(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "^linux-image-.*-cloud-amd64-unsigned$",
    ]));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| matches_series(p, series))
        .map(str::to_string)
        .collect()
}

/// Resolves `want` (series or package name) to a package name, preferring the cache.
fn resolve_package(want: &str, debs: &Path) -> anyhow::Result<String> {
    if want.starts_with("linux-image-") {
        return Ok(want.to_string());
    }
    let newest = |v: Vec<String>| v.into_iter().max_by(|a, b| version_cmp(a, b));
    let cached: Vec<String> = cached_debs(debs)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| matches_series(p, want))
        .collect();
    if let Some(p) = newest(cached) {
        return Ok(p);
    }
    let mut found = apt_candidates(want);
    if found.is_empty() {
        sh(Command::new("apt-get").args(["update", "-qq"]))?;
        found = apt_candidates(want);
    }
    newest(found).with_context(|| {
        format!("no Debian package linux-image-{want}…-cloud-amd64-unsigned (apt-cache search)")
    })
}

/// Finds the cached `.deb` of `package`, downloading it with `apt-get download` if absent.
fn fetch_deb(package: &str, debs: &Path) -> anyhow::Result<PathBuf> {
    let find = || {
        cached_debs(debs)
            .into_iter()
            .find(|(p, _)| p == package)
            .map(|(_, path)| path)
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    std::fs::create_dir_all(debs)?;
    eprintln!("vm-test: apt-get download {package}");
    sh(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(debs))?;
    find().with_context(|| {
        format!(
            "apt-get download {package} left no .deb in {}",
            debs.display()
        )
    })
}

/// Resolves, downloads (cached) and unpacks (cached) the kernel `want` under `vm_dir`.
pub fn prepare(want: &str, vm_dir: &Path) -> anyhow::Result<Kernel> {
    let debs = vm_dir.join("debs");
    let package = resolve_package(want, &debs)?;
    let deb = fetch_deb(&package, &debs)?;
    let root = vm_dir.join("kernels").join(&package);
    let done = root.join(".unpacked");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        sh(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
        std::fs::write(&done, "")?;
    }
    let vmlinuz = only_entry(&root.join("boot"), "vmlinuz-")?;
    let modules = only_entry(&root.join("lib/modules"), "")?;
    let release = modules
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Kernel {
        label: want.to_string(),
        package,
        vmlinuz,
        modules,
        release,
    })
}

fn only_entry(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("no {prefix}* in {}", dir.display()),
        _ => bail!("several {prefix}* in {}: {found:?}", dir.display()),
    }
}

/// The `depends=` list of a module's `.modinfo` section (comma-separated names).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(pos) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &ko[pos + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads a module file, decompressing `.ko.xz` / `.ko.zst` / `.ko.gz` (busybox insmod loads
/// plain `.ko` only).
fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => Ok(std::fs::read(path)?),
        Some(t) => {
            let out = Command::new(t)
                .arg("-dc")
                .arg(path)
                .output()
                .with_context(|| format!("running {t} -dc"))?;
            if !out.status.success() {
                bail!("{t} -dc {} failed", path.display());
            }
            Ok(out.stdout)
        }
    }
}

/// Module name (as in `depends=`) → file, for every module of the kernel.
fn module_index(dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                module_index(&p, out);
            } else {
                let f = e.file_name().to_string_lossy().into_owned();
                if let Some(i) = f.find(".ko") {
                    out.push((f[..i].replace('-', "_"), p));
                }
            }
        }
    }
}

/// The modules `wanted` plus their dependencies, in load order (dependencies first), as
/// `(file name, uncompressed contents)`. Modules built into the kernel are skipped
/// (`modules.builtin`).
pub fn modules_closure(k: &Kernel, wanted: &[&str]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let builtin = std::fs::read_to_string(k.modules.join("modules.builtin")).unwrap_or_default();
    let is_builtin = |name: &str| {
        builtin.lines().any(|l| {
            Path::new(l)
                .file_name()
                .map(|f| f.to_string_lossy().replace('-', "_"))
                .is_some_and(|f| f.strip_suffix(".ko") == Some(name))
        })
    };
    let mut index = Vec::new();
    module_index(&k.modules.join("kernel"), &mut index);
    let mut order: Vec<(String, Vec<u8>)> = Vec::new();
    fn visit(
        name: &str,
        index: &[(String, PathBuf)],
        is_builtin: &dyn Fn(&str) -> bool,
        order: &mut Vec<(String, Vec<u8>)>,
        depth: usize,
    ) -> anyhow::Result<()> {
        let name = name.replace('-', "_");
        let file = format!("{name}.ko");
        if depth > 16 || order.iter().any(|(f, _)| *f == file) {
            return Ok(());
        }
        let Some((_, path)) = index.iter().find(|(n, _)| *n == name) else {
            if is_builtin(&name) {
                return Ok(());
            }
            bail!("module {name} not found in the kernel package");
        };
        let data = read_module(path)?;
        for dep in modinfo_depends(&data) {
            visit(&dep, index, is_builtin, order, depth + 1)?;
        }
        order.push((file, data));
        Ok(())
    }
    for w in wanted {
        visit(w, &index, &is_builtin, &mut order, 0)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_matching() {
        assert!(matches_series(
            "linux-image-6.1.0-57-cloud-amd64-unsigned",
            "6.1"
        ));
        assert!(!matches_series(
            "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
            "6.1"
        ));
        assert!(matches_series(
            "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
            "6.12"
        ));
        assert!(!matches_series(
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "6.12"
        ));
        assert!(!matches_series("linux-image-cloud-amd64", "6.1"));
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(
            version_cmp(
                "linux-image-6.1.0-9-cloud-amd64-unsigned",
                "linux-image-6.1.0-57-cloud-amd64-unsigned"
            ),
            Ordering::Less
        );
        assert_eq!(
            version_cmp("6.12.117+deb12", "6.12.107+deb12"),
            Ordering::Greater
        );
    }

    #[test]
    fn depends_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=stp,llc\0intree=Y\0";
        assert_eq!(modinfo_depends(ko), vec!["stp", "llc"]);
        assert!(modinfo_depends(b"\0depends=\0name=veth\0").is_empty());
        assert!(modinfo_depends(b"nothing").is_empty());
    }

    #[test]
    fn deb_names() {
        assert_eq!(
            deb_package("linux-image-6.1.0-57-cloud-amd64-unsigned_6.1.192-3_amd64.deb"),
            Some("linux-image-6.1.0-57-cloud-amd64-unsigned")
        );
        assert_eq!(deb_package("x.txt"), None);
    }
}
