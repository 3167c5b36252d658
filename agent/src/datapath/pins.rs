//! Pin layout under the pin directory, [`status`] and [`uninstall`].
//!
//! ```text
//! <pin_dir>/link_connect4   bpf_link: cgroup/connect4 → attach cgroup
//! <pin_dir>/link_connect6   bpf_link: cgroup/connect6 → attach cgroup
//! <pin_dir>/link_sock_ops   bpf_link: sock_ops        → attach cgroup
//! <pin_dir>/INTERCEPT, CONFIG, ORIGIN_COOKIE, ORIGIN_TUPLE, COUNTERS   maps
//! ```
//! A pinned link keeps its program attached after the loading process exits; removing the
//! pin (and every fd) detaches it.
use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::maps::PinnedMaps;
use super::{Counters, DatapathError, sys};

/// The programs and their link pin file names, in attach order: `sock_ops` first, so that no
/// connection is redirected before its origin can be re-keyed by 4-tuple.
pub const PROGRAMS: [(&str, &str); 3] = [
    ("sock_ops", "link_sock_ops"),
    ("connect6", "link_connect6"),
    ("connect4", "link_connect4"),
];

/// Map pin file names.
pub const MAPS: [&str; 5] = [
    podiam_ebpf::INTERCEPT,
    podiam_ebpf::CONFIG,
    podiam_ebpf::ORIGIN_COOKIE,
    podiam_ebpf::ORIGIN_TUPLE,
    podiam_ebpf::COUNTERS,
];

/// One pinned link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Program name (`connect4`, `connect6`, `sock_ops`).
    pub program: &'static str,
    /// Pin path.
    pub pin: PathBuf,
    /// Kernel link info, `None` if the pin is missing or unreadable.
    pub info: Option<sys::LinkInfo>,
}

/// What is installed at a pin directory (`podiam status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The pin directory.
    pub pin_dir: PathBuf,
    /// The three program links.
    pub links: Vec<LinkStatus>,
    /// Map pins present.
    pub maps: Vec<String>,
    /// Counter totals, if the COUNTERS map is pinned.
    pub counters: Option<Counters>,
    /// Intercepted destinations from the pinned INTERCEPT map.
    pub intercepts: Vec<(std::net::SocketAddr, super::Service)>,
    /// The pinned CONFIG entry, if readable.
    pub config: Option<podiam_ebpf::Config>,
}

impl Status {
    /// All three links are pinned and attached to a cgroup.
    pub fn attached(&self) -> bool {
        self.links
            .iter()
            .all(|l| l.info.is_some_and(|i| i.cgroup_id != 0))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pin dir: {}", self.pin_dir.display())?;
        writeln!(
            f,
            "attached: {}",
            if self.attached() { "yes" } else { "no" }
        )?;
        for l in &self.links {
            match l.info {
                Some(i) => writeln!(
                    f,
                    "  program {:<9} link id {} prog id {} cgroup id {}",
                    l.program, i.id, i.prog_id, i.cgroup_id
                )?,
                None => writeln!(f, "  program {:<9} not pinned", l.program)?,
            }
        }
        writeln!(f, "maps: {}", self.maps.join(" "))?;
        if let Some(c) = &self.config {
            let v4 = std::net::SocketAddrV4::new(
                std::net::Ipv4Addr::from(c.redirect_v4_addr.to_ne_bytes()),
                c.redirect_v4_port,
            );
            write!(f, "redirect: {v4}")?;
            if c.flags & podiam_ebpf::CONFIG_F_V6 != 0 {
                let ip = super::config::ip_from_words(c.redirect_v6_addr);
                write!(f, ", {}", std::net::SocketAddr::new(ip, c.redirect_v6_port))?;
            }
            writeln!(
                f,
                " (host netns cookie {}, agent mark {:#x})",
                c.host_netns_cookie, c.agent_mark
            )?;
        }
        for (a, s) in &self.intercepts {
            writeln!(f, "intercept: {a} -> {s:?}")?;
        }
        if let Some(c) = &self.counters {
            writeln!(f, "counters: {c}")?;
        }
        Ok(())
    }
}

/// Reads what is pinned under `pin_dir`.
///
/// Errors: [`DatapathError::NotInstalled`] when the directory holds no podiam pins.
pub fn status(pin_dir: &Path) -> Result<Status, DatapathError> {
    let links: Vec<LinkStatus> = PROGRAMS
        .iter()
        .map(|(program, file)| {
            let pin = pin_dir.join(file);
            let info = sys::obj_get(&pin)
                .ok()
                .and_then(|fd| sys::link_info(fd.as_fd()).ok());
            LinkStatus { program, pin, info }
        })
        .collect();
    let maps: Vec<String> = MAPS
        .iter()
        .filter(|m| pin_dir.join(m).exists())
        .map(|m| m.to_string())
        .collect();
    if maps.is_empty() && links.iter().all(|l| !l.pin.exists()) {
        return Err(DatapathError::NotInstalled(pin_dir.to_path_buf()));
    }
    let pinned = PinnedMaps::open(pin_dir).ok();
    Ok(Status {
        pin_dir: pin_dir.to_path_buf(),
        links,
        maps,
        counters: pinned.as_ref().and_then(|p| p.counters().ok()),
        intercepts: pinned
            .as_ref()
            .and_then(|p| p.intercepts().ok())
            .unwrap_or_default(),
        config: pinned.as_ref().and_then(|p| p.config().ok()),
    })
}

/// What [`uninstall`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uninstalled {
    /// Links detached (`BPF_LINK_DETACH`) and unpinned.
    pub links: Vec<&'static str>,
    /// Map pins removed.
    pub maps: Vec<String>,
}

/// Detaches the pinned links (`BPF_LINK_DETACH`, so they stop even if a running agent still
/// holds their fds), removes every podiam pin and then the directory itself.
///
/// Errors: [`DatapathError::NotInstalled`] when nothing is pinned there; I/O errors otherwise.
/// Unknown files are left alone (and the directory with them).
pub fn uninstall(pin_dir: &Path) -> Result<Uninstalled, DatapathError> {
    if !pin_dir.exists() {
        return Err(DatapathError::NotInstalled(pin_dir.to_path_buf()));
    }
    let mut out = Uninstalled::default();
    for (program, file) in PROGRAMS {
        let pin = pin_dir.join(file);
        if !pin.exists() {
            continue;
        }
        if let Ok(fd) = sys::obj_get(&pin) {
            // Best effort: older kernels (< 5.9) lack BPF_LINK_DETACH; unpinning below still
            // detaches once the last fd closes.
            let _ = sys::link_detach(fd.as_fd());
        }
        std::fs::remove_file(&pin).map_err(|e| DatapathError::io("unlink", &pin, e))?;
        out.links.push(program);
    }
    for m in MAPS {
        let pin = pin_dir.join(m);
        if pin.exists() {
            std::fs::remove_file(&pin).map_err(|e| DatapathError::io("unlink", &pin, e))?;
            out.maps.push(m.to_string());
        }
    }
    if out.links.is_empty() && out.maps.is_empty() {
        return Err(DatapathError::NotInstalled(pin_dir.to_path_buf()));
    }
    std::fs::remove_dir(pin_dir).map_err(|e| DatapathError::io("rmdir", pin_dir, e))?;
    Ok(out)
}
