//! Thin wrappers over the kernel interfaces aya 0.14 does not expose: `bpf(2)` link commands
//! (`BPF_OBJ_GET`, `BPF_LINK_UPDATE`, `BPF_LINK_DETACH`, `BPF_OBJ_GET_INFO_BY_FD` for links),
//! `SO_NETNS_COOKIE`, `statfs` magic numbers, capabilities and the kernel version.
//! Layouts follow `include/uapi/linux/bpf.h` (Linux 6.x).
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `statfs.f_type` of bpffs.
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// `statfs.f_type` of cgroup2.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// `SO_NETNS_COOKIE` (asm-generic/socket.h), Linux >= 5.14.
const SO_NETNS_COOKIE: libc::c_int = 71;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;

fn bpf(cmd: libc::c_long, attr: &mut [u64]) -> io::Result<i64> {
    // SAFETY: `attr` is a zero-initialised buffer at least as large as the union member the
    // command reads; the kernel copies at most `size` bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens a pinned BPF object (map, program or link) by path.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut attr = [0u64; 4];
    attr[0] = c.as_ptr() as u64; // pathname
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: the kernel returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Atomically replaces the program of a link (`BPF_LINK_UPDATE`, flags 0).
pub fn link_update(link: BorrowedFd<'_>, new_prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [0u64; 2];
    attr[0] = (link.as_raw_fd() as u32 as u64) | ((new_prog.as_raw_fd() as u32 as u64) << 32);
    bpf(BPF_LINK_UPDATE, &mut attr).map(|_| ())
}

/// Detaches a link from its hook now, even if other fds or pins still reference it
/// (`BPF_LINK_DETACH`, Linux >= 5.9).
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [0u64; 1];
    attr[0] = link.as_raw_fd() as u32 as u64;
    bpf(BPF_LINK_DETACH, &mut attr).map(|_| ())
}

/// Kernel facts about a cgroup link (`struct bpf_link_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `BPF_LINK_TYPE_*` (3 = cgroup).
    pub link_type: u32,
    /// Link id.
    pub id: u32,
    /// Id of the attached program.
    pub prog_id: u32,
    /// cgroup id (cgroup links only; 0 once the link is detached).
    pub cgroup_id: u64,
    /// `BPF_CGROUP_*` attach type (cgroup links only).
    pub attach_type: u32,
}

/// Reads `struct bpf_link_info` of a link fd.
pub fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let mut info = [0u64; 16];
    let mut attr = [0u64; 2];
    attr[0] = (link.as_raw_fd() as u32 as u64) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(LinkInfo {
        link_type: info[0] as u32,
        id: (info[0] >> 32) as u32,
        prog_id: info[1] as u32,
        cgroup_id: info[2],
        attach_type: info[3] as u32,
    })
}

/// Creates (and closes) a one-entry array map: is `bpf(2)` usable by this process?
pub fn probe_bpf_syscall() -> io::Result<()> {
    let mut attr = [0u64; 8];
    attr[0] = 2 | (4 << 32); // map_type = BPF_MAP_TYPE_ARRAY, key_size = 4
    attr[1] = 4 | (1 << 32); // value_size = 4, max_entries = 1
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: fd was just returned by the kernel.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
}

/// Netns cookie of the calling thread's network namespace (`SO_NETNS_COOKIE` on a fresh
/// socket), as `bpf_get_netns_cookie()` reports it.
pub fn current_netns_cookie() -> io::Result<u64> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new, valid descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    netns_cookie_of(sock.as_raw_fd())
}

/// `SO_NETNS_COOKIE` of a socket.
pub fn netns_cookie_of(fd: std::os::fd::RawFd) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: valid out pointers of the right size.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// `statfs(path).f_type`.
pub fn fs_magic(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: zeroed statfs is a valid out buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// Whether the effective capability set allows loading and attaching cgroup programs:
/// CAP_SYS_ADMIN, or CAP_BPF together with CAP_NET_ADMIN (read from `/proc/self/status`).
pub fn has_bpf_caps() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let Some(eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return false;
    };
    let has = |c: u32| eff & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN))
}

/// Running kernel release (`uname -r`) and its (major, minor).
pub fn kernel_version() -> (String, Option<(u32, u32)>) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    (release.clone(), parse_kernel_version(&release))
}

/// Parses `"6.18.44-fc"` into `(6, 18)`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.19.0"), Some((4, 19)));
        assert_eq!(parse_kernel_version("5.8"), Some((5, 8)));
        assert_eq!(parse_kernel_version("garbage"), None);
    }
}
