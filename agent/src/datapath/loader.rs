//! [`Datapath::attach`]: load the object, adopt pinned maps, write the config, attach or
//! atomically replace the three programs, pin everything.
//!
//! Restart/upgrade strategy (fail closed, no window):
//! - Maps are pinned by name under the pin dir and **reused** when present (aya's
//!   `default_map_pin_directory`), so counters and origin records carry on.
//! - CONFIG and INTERCEPT are written before any program changes.
//! - Where a link pin already exists (and is attached to the same cgroup), the new program is
//!   swapped in with `BPF_LINK_UPDATE`, which replaces the program atomically: every `connect()`
//!   runs either the old or the new program, never none. Otherwise the program is attached with
//!   a new link (`CgroupAttachMode::Single`) and the link is pinned.
//! - Nothing is detached when [`Datapath`] is dropped or the process exits: the pins keep the
//!   programs attached. Only [`super::pins::uninstall`] detaches.
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;
use aya::programs::{CgroupAttachMode, CgroupSockAddr, SockOps};
use aya::{Ebpf, EbpfLoader};

use super::maps::PinnedMaps;
use super::pins::{self, PROGRAMS, Status, Uninstalled};
use super::{Counters, DatapathConfig, DatapathError, Origin, OriginLookup, cgroup, sys};

/// The compiled eBPF object (built by `agent/build.rs` from `agent-ebpf`).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/podiam-ebpf"));

/// A handle on an attached (or adopted) datapath: the pinned maps, for origin lookups and
/// counters. Dropping it detaches nothing.
pub struct Datapath {
    pin_dir: PathBuf,
    maps: PinnedMaps,
    cgroup_id: Option<u64>,
    /// Keeps the loaded programs' fds while this handle lives (links hold their own refs).
    _ebpf: Option<Ebpf>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("pin_dir", &self.pin_dir)
            .field("cgroup_id", &self.cgroup_id)
            .finish_non_exhaustive()
    }
}

/// Checks privileges and kernel version (the first things that can be missing).
pub(crate) fn preflight() -> Result<(), DatapathError> {
    if !sys::has_bpf_caps() {
        return Err(DatapathError::NotRoot);
    }
    let (release, version) = sys::kernel_version();
    if version.is_some_and(|v| v < (5, 8)) {
        return Err(DatapathError::KernelTooOld { found: release });
    }
    Ok(())
}

/// An existing link pin: its fd, or a note that it is stale (cgroup gone) and was removed.
fn existing_link(
    pin: &Path,
    cfg: &DatapathConfig,
    cgroup_id: u64,
) -> Result<Option<OwnedFd>, DatapathError> {
    if !pin.exists() {
        return Ok(None);
    }
    let fd = sys::obj_get(pin).map_err(|e| DatapathError::io("BPF_OBJ_GET", pin, e))?;
    let info = sys::link_info(fd.as_fd())
        .map_err(|e| DatapathError::io("BPF_OBJ_GET_INFO_BY_FD", pin, e))?;
    if info.cgroup_id == 0 {
        // The link's cgroup was removed: the link is dead; replace it.
        std::fs::remove_file(pin).map_err(|e| DatapathError::io("unlink", pin, e))?;
        return Ok(None);
    }
    if info.cgroup_id != cgroup_id {
        return Err(DatapathError::PinnedElsewhere {
            pin_dir: cfg.pin_dir.clone(),
            pinned_cgroup_id: info.cgroup_id,
            cgroup: cfg.cgroup.clone(),
            cgroup_id,
        });
    }
    Ok(Some(fd))
}

/// Takes an exclusive `flock` on a directory (blocking).
fn lock_dir(dir: &Path) -> Result<std::fs::File, DatapathError> {
    let f = std::fs::File::open(dir).map_err(|e| DatapathError::io("open", dir, e))?;
    // SAFETY: flock on a valid fd.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) } != 0 {
        return Err(DatapathError::io(
            "flock",
            dir,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

impl Datapath {
    /// Loads the programs and attaches them to `cfg.cgroup`, pinning links and maps under
    /// `cfg.pin_dir`; adopts existing pins (see the module docs). Mounts bpffs at
    /// `/sys/fs/bpf` when the pin dir is below it and it is not mounted.
    ///
    /// Errors (in the order checked): [`DatapathError::NotRoot`],
    /// [`DatapathError::KernelTooOld`], [`DatapathError::InvalidConfig`],
    /// [`DatapathError::CgroupNotFound`] / [`DatapathError::NotCgroup2`],
    /// [`DatapathError::BpffsNotMounted`] / [`DatapathError::PinDirNotBpffs`],
    /// [`DatapathError::PinnedElsewhere`], then load/attach failures.
    pub fn attach(cfg: &DatapathConfig) -> Result<Datapath, DatapathError> {
        preflight()?;
        cfg.to_map_config()?;
        let cgroup_id = cgroup::cgroup2_id(&cfg.cgroup)?;
        cgroup::ensure_pin_dir(&cfg.pin_dir)?;
        // Serialise concurrent attaches on the same pin dir (released when `_lock` drops).
        let _lock = lock_dir(&cfg.pin_dir)?;
        let mut existing = Vec::new();
        for (_, file) in PROGRAMS {
            existing.push(existing_link(&cfg.pin_dir.join(file), cfg, cgroup_id)?);
        }

        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&cfg.pin_dir)
            .load(EBPF_OBJECT)
            .map_err(DatapathError::Load)?;
        let mut maps = PinnedMaps::take(&mut ebpf)?;
        maps.apply(cfg)?;

        let cgroup_dir = std::fs::File::open(&cfg.cgroup)
            .map_err(|e| DatapathError::io("open", &cfg.cgroup, e))?;
        for ((name, file), link) in PROGRAMS.into_iter().zip(existing) {
            let pin = cfg.pin_dir.join(file);
            let program = ebpf.program_mut(name).ok_or_else(|| {
                DatapathError::program(
                    name,
                    "find",
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })?;
            // SockOps and CgroupSockAddr share the load/attach/link API but no trait, so one
            // macro body serves both: load, then swap the program into an adopted link
            // (BPF_LINK_UPDATE, atomic) or attach a new link.
            macro_rules! load_and_link {
                ($ty:ty) => {{
                    let p: &mut $ty = program
                        .try_into()
                        .map_err(|e| DatapathError::program(name, "load", e))?;
                    p.load()
                        .map_err(|e| DatapathError::program(name, "load", e))?;
                    match &link {
                        Some(l) => {
                            let prog_fd = p
                                .fd()
                                .map_err(|e| DatapathError::program(name, "load", e))?;
                            sys::link_update(l.as_fd(), prog_fd.as_fd())
                                .map_err(|e| DatapathError::program(name, "BPF_LINK_UPDATE", e))?;
                            None
                        }
                        None => {
                            let id = p
                                .attach(&cgroup_dir, CgroupAttachMode::Single)
                                .map_err(|e| DatapathError::program(name, "attach", e))?;
                            let l = p
                                .take_link(id)
                                .map_err(|e| DatapathError::program(name, "attach", e))?;
                            Some(
                                FdLink::try_from(l)
                                    .map_err(|e| DatapathError::program(name, "attach", e))?,
                            )
                        }
                    }
                }};
            }
            let fd_link: Option<FdLink> = if name == "sock_ops" {
                load_and_link!(SockOps)
            } else {
                load_and_link!(CgroupSockAddr)
            };
            if let Some(l) = fd_link {
                l.pin(&pin)
                    .map_err(|e| DatapathError::program(name, "pin", e))?;
            }
        }
        Ok(Datapath {
            pin_dir: cfg.pin_dir.clone(),
            maps,
            cgroup_id: Some(cgroup_id),
            _ebpf: Some(ebpf),
        })
    }

    /// Opens an already attached datapath from its pins (maps only; loads no program), e.g.
    /// for a process that only answers origin lookups.
    ///
    /// Errors: [`DatapathError::NotInstalled`] when the maps are not pinned there.
    pub fn open(pin_dir: &Path) -> Result<Datapath, DatapathError> {
        if !pin_dir.join(podiam_ebpf::ORIGIN_TUPLE).exists() {
            return Err(DatapathError::NotInstalled(pin_dir.to_path_buf()));
        }
        Ok(Datapath {
            pin_dir: pin_dir.to_path_buf(),
            maps: PinnedMaps::open(pin_dir)?,
            cgroup_id: None,
            _ebpf: None,
        })
    }

    /// Rewrites CONFIG and INTERCEPT from `cfg` (redirect target, host cookie, mark,
    /// intercepts); `cfg.cgroup` and `cfg.pin_dir` are ignored.
    pub fn update_config(&mut self, cfg: &DatapathConfig) -> Result<(), DatapathError> {
        self.maps.apply(cfg)
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// cgroup id of the attach cgroup (`None` for a handle from [`Datapath::open`]).
    pub fn cgroup_id(&self) -> Option<u64> {
        self.cgroup_id
    }

    /// Counter totals over all CPUs.
    pub fn counters(&self) -> Result<Counters, DatapathError> {
        self.maps.counters()
    }

    /// What is installed at `pin_dir` (links, maps, config, counters).
    pub fn status(pin_dir: &Path) -> Result<Status, DatapathError> {
        pins::status(pin_dir)
    }

    /// Detaches and removes everything pinned at `pin_dir`, then the directory.
    pub fn uninstall(pin_dir: &Path) -> Result<Uninstalled, DatapathError> {
        pins::uninstall(pin_dir)
    }
}

impl OriginLookup for Datapath {
    /// Looks the connection up in the ORIGIN_TUPLE LRU map by (`peer`, `local`); IPv4 and
    /// v4-mapped IPv6 forms of the same address are equivalent. Records are not deleted on
    /// lookup; the LRU evicts them.
    fn origin_of(&self, peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Option<Origin> {
        self.maps.origin_of(peer, local)
    }

    fn forget(&self, peer: std::net::SocketAddr, local: std::net::SocketAddr) {
        self.maps.forget(peer, local)
    }
}
