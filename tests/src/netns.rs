//! Network namespaces: creation with `ip netns add`, entering them from threads (`setns`) and
//! from child processes (`pre_exec`: join a cgroup, then `setns`). `ip netns exec` is not
//! used: it remounts /sys, which hides the cgroup2 mount.
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context as _;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A process-unique id `<pid>-<n>` for names of netns, cgroups and pin dirs.
pub fn unique_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `ip ARGS…` and fails with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        anyhow::bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `ip -n NETNS ARGS…`.
pub fn ip_in(netns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["-n", netns];
    v.extend_from_slice(args);
    ip(&v)
}

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    fd: OwnedFd,
}

impl NetNs {
    /// `ip netns add <name>` and opens it; loopback is brought up.
    pub fn create(name: &str) -> anyhow::Result<NetNs> {
        ip(&["netns", "add", name])?;
        let path = Path::new("/run/netns").join(name);
        let fd = match std::fs::File::open(&path) {
            Ok(f) => OwnedFd::from(f),
            Err(e) => {
                let _ = ip(&["netns", "del", name]);
                return Err(e).with_context(|| format!("open {}", path.display()));
            }
        };
        let ns = NetNs {
            name: name.to_string(),
            fd,
        };
        ip_in(name, &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The name (`ip -n <name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>` (usable with `nsenter --net=`).
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// An fd on the namespace.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `f` on a new thread that has entered this netns and returns its result
    /// (threads it spawns, e.g. a tokio runtime's workers, inherit the netns).
    pub fn run<F, R>(&self, f: F) -> anyhow::Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn(f)?
            .join()
            .map_err(|_| anyhow::anyhow!("thread in netns {} panicked", self.name))
    }

    /// Spawns a thread that enters this netns, then runs `f`.
    pub fn spawn<F, R>(&self, f: F) -> anyhow::Result<std::thread::JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let fd = self.fd.try_clone()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let r = nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET);
            drop(fd);
            let ok = r.is_ok();
            let _ = tx.send(r);
            if !ok {
                // Never run `f` in the wrong namespace.
                panic!("setns failed; not running the closure");
            }
            f()
        });
        match rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(anyhow::anyhow!("setns into {}: {e}", self.name)),
            Err(_) => Err(anyhow::anyhow!("netns thread for {} died", self.name)),
        }
    }

    /// Netns cookie of this namespace (`SO_NETNS_COOKIE` from a socket created inside).
    pub fn cookie(&self) -> anyhow::Result<u64> {
        self.run(podiam::datapath::sys::current_netns_cookie)?
            .context("SO_NETNS_COOKIE")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Configures `cmd` so the child first moves itself into `cgroup` (writes `0` to its
/// `cgroup.procs`), then enters `netns` — in `pre_exec`, after fork, before exec. `netns`
/// must stay open until the command is spawned.
pub fn enter_in_child(cmd: &mut Command, netns: &OwnedFd, cgroup: &Path) -> anyhow::Result<()> {
    let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes())?;
    let ns_fd = netns.as_raw_fd();
    // SAFETY: the closure only calls async-signal-safe functions (open, write, close, setns)
    // on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let w = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if w != 1 {
                return Err(err);
            }
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}
