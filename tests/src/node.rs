//! A simulated node: netns with a bridge, a cgroup for the datapath, a pin dir.
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use podiam::datapath::{Datapath, DatapathConfig};

use crate::netns::{NetNs, enter_in_child, ip_in, unique_id};
use crate::pod::Pod;

/// Bridge address (gateway of every pod), the usual IPv4 redirect target host.
pub const BRIDGE_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// Bridge IPv6 address.
pub const BRIDGE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
/// Proxy port used by the tests' redirect targets.
pub const PROXY_PORT: u16 = 8181;

pub(crate) struct NodeInner {
    pub(crate) id: String,
    pub(crate) netns: NetNs,
    pub(crate) cgroup: PathBuf,
    pub(crate) pin_dir: PathBuf,
    next_index: AtomicU8,
    extra_addrs: Mutex<bool>,
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        // Pods hold an Arc on the node, so they are gone already.
        crate::cgroup::kill_all(&self.cgroup);
        if self.pin_dir.exists() {
            let _ = Datapath::uninstall(&self.pin_dir);
            let _ = std::fs::remove_dir_all(&self.pin_dir);
        }
        crate::cgroup::remove_tree(&self.cgroup);
        // self.netns is deleted by its own Drop.
    }
}

/// A simulated node. Cheap to clone (shared); torn down when the last clone and all its
/// pods are dropped.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.id)
            .field("netns", &self.inner.netns.name())
            .field("cgroup", &self.inner.cgroup)
            .finish()
    }
}

impl Node {
    /// Creates netns `podiam-test-<id>-node` with `br0` (10.200.0.1/24, fd00:200::1/64
    /// nodad), cgroup `<cgroup2 root>/podiam-test-<id>` and the (not yet created) pin dir
    /// `/sys/fs/bpf/podiam-test-<id>`. Calls [`crate::require_privileged`] first.
    pub fn new() -> anyhow::Result<Node> {
        crate::require_privileged();
        crate::stale::cleanup_stale();
        let id = unique_id();
        let root = podiam::datapath::find_cgroup2_root()?;
        let cgroup = root.join(format!("podiam-test-{id}"));
        std::fs::create_dir(&cgroup).with_context(|| format!("mkdir {}", cgroup.display()))?;
        let netns = match NetNs::create(&format!("podiam-test-{id}-node")) {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir(&cgroup);
                return Err(e);
            }
        };
        let node = Node {
            inner: Arc::new(NodeInner {
                pin_dir: PathBuf::from(format!("/sys/fs/bpf/podiam-test-{id}")),
                id,
                netns,
                cgroup,
                next_index: AtomicU8::new(2),
                extra_addrs: Mutex::new(false),
            }),
        };
        let ns = node.netns_name();
        ip_in(ns, &["link", "add", "br0", "type", "bridge"])?;
        ip_in(ns, &["addr", "add", "10.200.0.1/24", "dev", "br0"])?;
        ip_in(
            ns,
            &["addr", "add", "fd00:200::1/64", "dev", "br0", "nodad"],
        )?;
        ip_in(ns, &["link", "set", "br0", "up"])?;
        Ok(node)
    }

    /// Unique id `<pid>-<n>` used in all names.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The node netns name (`ip -n NAME`).
    pub fn netns_name(&self) -> &str {
        self.inner.netns.name()
    }

    /// The node netns.
    pub fn netns(&self) -> &NetNs {
        &self.inner.netns
    }

    /// Netns cookie of the node netns (the datapath's "host" cookie).
    pub fn netns_cookie(&self) -> anyhow::Result<u64> {
        self.inner.netns.cookie()
    }

    /// The node cgroup (the datapath attach point).
    pub fn cgroup(&self) -> &Path {
        &self.inner.cgroup
    }

    /// cgroup id of the node cgroup.
    pub fn cgroup_id(&self) -> anyhow::Result<u64> {
        crate::cgroup::cgroup_id(&self.inner.cgroup)
    }

    /// bpffs pin dir for this node's datapath.
    pub fn pin_dir(&self) -> &Path {
        &self.inner.pin_dir
    }

    /// `10.200.0.1:8181`.
    pub fn proxy_v4(&self) -> SocketAddrV4 {
        SocketAddrV4::new(BRIDGE_V4, PROXY_PORT)
    }

    /// `[fd00:200::1]:8181`.
    pub fn proxy_v6(&self) -> SocketAddrV6 {
        SocketAddrV6::new(BRIDGE_V6, PROXY_PORT, 0, 0)
    }

    /// Datapath config for this node: its cgroup and pin dir, host cookie = node netns
    /// cookie, redirect to [`Self::proxy_v4`] (no IPv6 target), default mark and intercepts.
    pub fn datapath_config(&self) -> anyhow::Result<DatapathConfig> {
        Ok(DatapathConfig {
            cgroup: self.inner.cgroup.clone(),
            pin_dir: self.inner.pin_dir.clone(),
            redirect_v4: self.proxy_v4(),
            redirect_v6: None,
            host_netns_cookie: self.netns_cookie()?,
            agent_mark: podiam::datapath::DEFAULT_AGENT_MARK,
            intercepts: DatapathConfig::default_intercepts(),
        })
    }

    /// Attaches the datapath in-process (from a thread in the node netns).
    pub fn attach_datapath(&self, cfg: DatapathConfig) -> anyhow::Result<Datapath> {
        Ok(self.inner.netns.run(move || Datapath::attach(&cfg))??)
    }

    /// Adds a pod named `name` (≤ 8 chars recommended) with the next free index N (from 2):
    /// 10.200.0.N, fd00:200::N.
    pub fn add_pod(&self, name: &str) -> anyhow::Result<Pod> {
        let index = self.inner.next_index.fetch_add(1, Ordering::Relaxed);
        if !(2..=250).contains(&index) {
            anyhow::bail!("too many pods on node {}", self.inner.id);
        }
        Pod::create(self.clone(), name, index)
    }

    /// A command that runs in the node netns and the node cgroup (like a host process on a
    /// node: subject to the datapath but exempt as host netns).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> anyhow::Result<Command> {
        let mut cmd = Command::new(program);
        enter_in_child(&mut cmd, self.inner.netns.fd(), &self.inner.cgroup)?;
        Ok(cmd)
    }

    /// Runs `f` on a thread in the node netns (e.g. bind a listener, start a tokio runtime).
    pub fn run_in_netns<F, R>(&self, f: F) -> anyhow::Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.netns.run(f)
    }

    /// Spawns a thread in the node netns.
    pub fn spawn_in_netns<F, R>(&self, f: F) -> anyhow::Result<std::thread::JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.netns.spawn(f)
    }

    /// Gives the node netns the metadata addresses (169.254.169.254/32, 169.254.170.23/32,
    /// fd00:ec2::254/128, fd00:ec2::23/128) on its loopback (no `dummy` module needed), so tests can run a
    /// "real" IMDS / Pod Identity stand-in there and see what is *not* redirected. Idempotent.
    pub fn add_metadata_addresses(&self) -> anyhow::Result<()> {
        let mut done = self
            .inner
            .extra_addrs
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        if *done {
            return Ok(());
        }
        let ns = self.netns_name();
        ip_in(ns, &["addr", "add", "169.254.169.254/32", "dev", "lo"])?;
        ip_in(ns, &["addr", "add", "169.254.170.23/32", "dev", "lo"])?;
        ip_in(
            ns,
            &["addr", "add", "fd00:ec2::254/128", "dev", "lo", "nodad"],
        )?;
        ip_in(
            ns,
            &["addr", "add", "fd00:ec2::23/128", "dev", "lo", "nodad"],
        )?;
        *done = true;
        Ok(())
    }

    /// Binds a [`crate::TestListener`] in the node netns that answers `tag`.
    pub fn listen(&self, addr: SocketAddr, tag: &str) -> anyhow::Result<crate::TestListener> {
        crate::TestListener::bind_in(self.netns(), addr, tag)
    }
}
