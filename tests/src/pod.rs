//! A simulated pod: netns + veth on the node bridge + child cgroup of the node cgroup.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use anyhow::Context as _;

use crate::netns::{NetNs, enter_in_child, ip_in};
use crate::node::Node;

struct PodInner {
    // Field order = drop order: cgroup cleanup (Drop below) runs first, then the netns, then
    // the node reference (so the node outlives its pods).
    name: String,
    index: u8,
    cgroup: PathBuf,
    netns: NetNs,
    node: Node,
}

impl Drop for PodInner {
    fn drop(&mut self) {
        crate::cgroup::remove_tree(&self.cgroup);
        // Deleting the host-side veth removes the pair; the netns goes with NetNs's Drop.
        let _ = ip_in(
            self.node.netns_name(),
            &["link", "del", &format!("veth{}", self.index)],
        );
    }
}

/// A simulated pod. Cheap to clone; torn down when the last clone is dropped.
#[derive(Clone)]
pub struct Pod {
    inner: Arc<PodInner>,
}

impl std::fmt::Debug for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("name", &self.inner.name)
            .field("ipv4", &self.ipv4())
            .field("cgroup", &self.inner.cgroup)
            .finish()
    }
}

impl Pod {
    pub(crate) fn create(node: Node, name: &str, index: u8) -> anyhow::Result<Pod> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            anyhow::bail!("pod name {name:?}: use [A-Za-z0-9-]");
        }
        let cgroup = node.cgroup().join(format!("pod-{name}"));
        std::fs::create_dir(&cgroup).with_context(|| format!("mkdir {}", cgroup.display()))?;
        let netns = match NetNs::create(&format!("podiam-test-{}-{name}", node.id())) {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir(&cgroup);
                return Err(e);
            }
        };
        let pod = Pod {
            inner: Arc::new(PodInner {
                name: name.to_string(),
                index,
                cgroup,
                netns,
                node,
            }),
        };
        let node_ns = pod.inner.node.netns_name().to_string();
        let ns = pod.inner.netns.name().to_string();
        let host = format!("veth{index}");
        let v4 = format!("10.200.0.{index}/24");
        let v6 = format!("fd00:200::{index:x}/64");
        ip_in(
            &node_ns,
            &[
                "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        ip_in(&node_ns, &["link", "set", &host, "master", "br0", "up"])?;
        ip_in(&ns, &["addr", "add", &v4, "dev", "eth0"])?;
        ip_in(&ns, &["addr", "add", &v6, "dev", "eth0", "nodad"])?;
        ip_in(&ns, &["link", "set", "eth0", "up"])?;
        ip_in(&ns, &["route", "add", "default", "via", "10.200.0.1"])?;
        ip_in(
            &ns,
            &["-6", "route", "add", "default", "via", "fd00:200::1"],
        )?;
        Ok(pod)
    }

    /// Pod name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// 10.200.0.N.
    pub fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, 0, self.inner.index)
    }

    /// fd00:200::N.
    pub fn ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, self.inner.index as u16)
    }

    /// Whether `ip` is one of this pod's addresses (IPv4, v4-mapped IPv4 or IPv6).
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4 == self.ipv4(),
            IpAddr::V6(v6) => v6 == self.ipv6() || v6.to_ipv4_mapped() == Some(self.ipv4()),
        }
    }

    /// The pod cgroup `<node cgroup>/pod-<name>`.
    pub fn cgroup(&self) -> &Path {
        &self.inner.cgroup
    }

    /// cgroup id (inode) of the pod cgroup: what the datapath's origin records carry.
    pub fn cgroup_id(&self) -> anyhow::Result<u64> {
        crate::cgroup::cgroup_id(&self.inner.cgroup)
    }

    /// The pod netns.
    pub fn netns(&self) -> &NetNs {
        &self.inner.netns
    }

    /// Netns cookie of the pod netns.
    pub fn netns_cookie(&self) -> anyhow::Result<u64> {
        self.inner.netns.cookie()
    }

    /// The node this pod runs on.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// A command that runs in the pod: joins the pod cgroup, then enters the pod netns.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> anyhow::Result<Command> {
        let mut cmd = Command::new(program);
        enter_in_child(&mut cmd, self.inner.netns.fd(), &self.inner.cgroup)?;
        Ok(cmd)
    }

    /// Runs `program args…` in the pod and collects its output.
    pub fn output<I, S>(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        args: I,
    ) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Ok(self.command(program)?.args(args).output()?)
    }

    /// Runs `podiam-probe KIND ADDR EXTRA…` in the pod.
    pub fn probe(
        &self,
        kind: &str,
        addr: &str,
        extra: &[&str],
    ) -> anyhow::Result<crate::ProbeResult> {
        let mut cmd = self.command(crate::bins::probe_bin()?)?;
        cmd.arg(kind).arg(addr).args(extra);
        crate::probe::run(cmd)
    }
}
