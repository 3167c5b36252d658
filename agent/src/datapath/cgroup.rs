//! Finding (or mounting) the cgroup v2 hierarchy and bpffs.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::DatapathError;
use super::sys;

/// Where a private cgroup2 hierarchy is mounted when the host has none.
pub const PRIVATE_CGROUP2_MOUNT: &str = "/run/podiam/cgroup2";
/// Standard bpffs mount point.
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";

/// Mount points of every cgroup2 filesystem in `/proc/self/mountinfo` text, in order.
/// Field layout per proc(5): `id parent major:minor root mountpoint opts [optional…] - fstype source superopts`.
pub fn parse_cgroup2_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            if fstype != "cgroup2" {
                return None;
            }
            let mount_point = left.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape_mountinfo(mount_point)))
        })
        .collect()
}

/// Decodes mountinfo's octal escapes (`\040` = space, `\011`, `\012`, `\134`).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if let Ok(oct) = std::str::from_utf8(oct)
                && let Ok(v) = u8::from_str_radix(oct, 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 root this process sees: the first cgroup2 mount in `/proc/self/mountinfo`
/// (`/sys/fs/cgroup` on unified hosts, `/sys/fs/cgroup/unified` on hybrid ones). When none is
/// mounted, mounts a private cgroup2 at [`PRIVATE_CGROUP2_MOUNT`] and returns that.
///
/// Errors: [`DatapathError::NoCgroup2`] when nothing is mounted and mounting fails.
pub fn find_cgroup2_root() -> Result<PathBuf, DatapathError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| DatapathError::io("read", "/proc/self/mountinfo", e))?;
    if let Some(p) = parse_cgroup2_mounts(&mountinfo).into_iter().next() {
        return Ok(p);
    }
    let target = Path::new(PRIVATE_CGROUP2_MOUNT);
    std::fs::create_dir_all(target).map_err(DatapathError::NoCgroup2)?;
    nix::mount::mount(
        Some("cgroup2"),
        target,
        Some("cgroup2"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| DatapathError::NoCgroup2(e.into()))?;
    Ok(target.to_path_buf())
}

/// Checks that `path` is a directory on a cgroup2 mount and returns its cgroup id (the
/// directory's inode number, which is what `bpf_get_current_cgroup_id()` reports).
pub fn cgroup2_id(path: &Path) -> Result<u64, DatapathError> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DatapathError::CgroupNotFound(path.to_path_buf()));
        }
        Err(e) => return Err(DatapathError::io("stat", path, e)),
    };
    let magic = sys::fs_magic(path).map_err(|e| DatapathError::io("statfs", path, e))?;
    if !md.is_dir() || magic != sys::CGROUP2_SUPER_MAGIC {
        return Err(DatapathError::NotCgroup2(path.to_path_buf()));
    }
    Ok(md.ino())
}

/// Whether `path` is on a bpffs mount.
pub fn is_bpffs(path: &Path) -> bool {
    sys::fs_magic(path).is_ok_and(|m| m == sys::BPF_FS_MAGIC)
}

/// Makes sure `pin_dir` exists on bpffs. If it lies under `/sys/fs/bpf` and bpffs is not
/// mounted there, mounts it (`mount -t bpf bpf /sys/fs/bpf`, mode 0700) first.
///
/// Errors: [`DatapathError::BpffsNotMounted`] when that mount fails,
/// [`DatapathError::PinDirNotBpffs`] when `pin_dir` (or its nearest existing ancestor) is on
/// another filesystem.
pub fn ensure_pin_dir(pin_dir: &Path) -> Result<(), DatapathError> {
    let bpffs = Path::new(BPFFS_MOUNT);
    if pin_dir.starts_with(bpffs) && !is_bpffs(bpffs) {
        mount_bpffs(bpffs)?;
    }
    // The nearest existing ancestor must already be bpffs: never create directories elsewhere.
    let mut existing = pin_dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    if !is_bpffs(existing) {
        return Err(DatapathError::PinDirNotBpffs(pin_dir.to_path_buf()));
    }
    std::fs::create_dir_all(pin_dir).map_err(|e| DatapathError::io("mkdir", pin_dir, e))?;
    if !is_bpffs(pin_dir) {
        return Err(DatapathError::PinDirNotBpffs(pin_dir.to_path_buf()));
    }
    Ok(())
}

/// Mounts bpffs at `path` (mode 0700).
pub fn mount_bpffs(path: &Path) -> Result<(), DatapathError> {
    let fail = |source: std::io::Error| DatapathError::BpffsNotMounted {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    nix::mount::mount(
        Some("bpf"),
        path,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| fail(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_host_mountinfo() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_cgroup2_mounts(text),
            vec![PathBuf::from("/sys/fs/cgroup/unified")]
        );
    }

    #[test]
    fn unified_host_with_optional_fields_and_escapes() {
        let text = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n\
                    99 23 0:50 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(
            parse_cgroup2_mounts(text),
            vec![PathBuf::from("/sys/fs/cgroup"), PathBuf::from("/mnt/my cg")]
        );
    }

    #[test]
    fn no_cgroup2() {
        assert!(parse_cgroup2_mounts("1 0 0:1 / / rw - ext4 /dev/sda rw\ngarbage\n").is_empty());
    }
}
