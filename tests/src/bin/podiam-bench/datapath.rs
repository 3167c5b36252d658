//! Sections 1 and 2 on one simulated node with one pod:
//! 1. connect()+close() rate to a non-intercepted listener, datapath attached vs not;
//! 2. credential request latency through (a) podiam's connect4 redirect, (b) kube2iam's
//!    iptables DNAT in front of the same proxy (peer-IP identity), (c) the floor.
//!
//! "Attached vs not" runs the same client in the same pod netns, once in the pod cgroup
//! (below the node cgroup where the agent attached connect4/connect6/sock_ops) and once in
//! a cgroup outside it, alternating every round. Paths (b) and (c) run from the cgroup
//! outside the attach point too, so the eBPF programs see none of their connects.
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{Context as _, bail};
use podiam_tests::Node;
use podiam_tests::scenario::start_moto;
use serde_json::json;

use crate::env::{
    Agent, ExtraDatapath, FreeCgroup, Identity, Workload, cgroup_rel, client_in, creds_path,
    iptables_in_node, metric_sum, run_client, write_inventory,
};
use crate::servers::NodeServers;
use crate::stats::{Spread, percentile};
use crate::{Config, stopped};

/// Results of section 1.
#[derive(Debug, Default)]
pub struct ConnectResult {
    /// connect()+close() per second, attached, per round.
    pub attached: Vec<f64>,
    /// … not attached.
    pub detached: Vec<f64>,
    /// attached / not attached per round.
    pub ratio: Vec<f64>,
    /// Slowest connect() seen, µs, [attached, not attached].
    pub max_connect_us: [u32; 2],
    /// Median connect() time per round, ns, [attached, not attached].
    pub connect_p50_ns: [Vec<f64>; 2],
    /// connect() calls slower than 100 ms (a dropped SYN), [attached, not attached].
    pub slow_connects: [u64; 2],
    /// Node netns `TcpExt` ListenOverflows and ListenDrops during section 1.
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

/// Per-path figures of one round of section 2.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathRound {
    pub p50_us: f64,
    pub p99_us: f64,
    pub rps: f64,
}

/// Results of section 2, per round (paths a, b, c).
#[derive(Debug, Default)]
pub struct LatencyResult {
    pub rounds: Vec<[PathRound; PATHS]>,
    pub errors: [u64; PATHS],
    pub example_error: String,
    /// Successful requests per path, as the clients counted them.
    pub client_ok: [u64; PATHS],
    /// IMDS credential answers (200) of the kernel-identity agent during the rounds.
    pub kernel_served: f64,
    /// Connections the datapath redirected during the rounds.
    pub redirected: f64,
    /// IMDS credential answers (200) of the peer-IP agent of (b) during the rounds.
    pub peer_ip_served: f64,
    /// … of the peer-IP agent of (d).
    pub peer_ip_d_served: f64,
    /// Connections the second datapath (path d) redirected during the rounds.
    pub extra_redirected: f64,
}

impl LatencyResult {
    /// Each path was served by what it claims: (a) only by the kernel agent through the
    /// redirect, (b) and (d) only by the peer-IP agent, (d) through the second datapath.
    pub fn attribution_ok(&self) -> bool {
        self.kernel_served == self.client_ok[0] as f64
            && self.redirected >= self.client_ok[0] as f64
            && self.peer_ip_served == self.client_ok[1] as f64
            && self.peer_ip_d_served == self.client_ok[3] as f64
            && self.extra_redirected >= self.client_ok[3] as f64
    }
}

impl LatencyResult {
    /// Spread of `f` over rounds for path `i`.
    pub fn spread(&self, i: usize, f: impl Fn(&PathRound) -> f64) -> Option<Spread> {
        Spread::of(&self.rounds.iter().map(|r| f(&r[i])).collect::<Vec<_>>())
    }

    /// Spread over rounds of `f(path i) / f(path j)`.
    pub fn ratio(&self, i: usize, j: usize, f: impl Fn(&PathRound) -> f64) -> Option<Spread> {
        Spread::of(
            &self
                .rounds
                .iter()
                .map(|r| f(&r[i]) / f(&r[j]))
                .collect::<Vec<_>>(),
        )
    }
}

const KERNEL_PORT: u16 = 8181;
const KERNEL_OPS: u16 = 8182;
const PEER_IP_PORT: u16 = 8183;
const PEER_IP_OPS: u16 = 8184;
/// A second peer-IP agent, behind path (d) only: (b) and (d) must not share server
/// 4-tuples, or their conntrack entries in the node netns collide (a DNAT'd (b) connection
/// landing on the tuple of a (d) connection in TIME_WAIT), which slows both.
const PEER_IP_D_PORT: u16 = 8185;
const PEER_IP_D_OPS: u16 = 8186;
const FLOOR_PORT: u16 = 8190;
const SINK_PORT: u16 = 9000;
const ROLE: &str = "bench-latency";
/// Paths of section 2: (a) podiam, (b) kube2iam DNAT, (c) floor, (d) podiam's datapath in
/// front of the peer-IP identity.
pub const PATHS: usize = 4;

/// Runs sections 1 and 2.
pub fn run(cfg: &Config) -> anyhow::Result<(ConnectResult, LatencyResult)> {
    let node = Node::new()?;
    let pod = node.add_pod("lat")?;
    let free = FreeCgroup::new()?;
    let dir = tempfile::Builder::new().prefix("podiam-bench-").tempdir()?;
    let _moto = start_moto(&node, dir.path())?;
    let inventory = dir.path().join("inventory.yaml");
    write_inventory(
        &inventory,
        &[Workload {
            name: "lat".into(),
            cgroup_rel: Some(cgroup_rel(pod.cgroup())?),
            ip: pod.ipv4(),
            role: ROLE.into(),
        }],
    )?;
    let kernel = Agent::start(
        &node,
        dir.path(),
        &inventory,
        Identity::Kernel,
        KERNEL_PORT,
        KERNEL_OPS,
    )?;
    let peer_ip = Agent::start(
        &node,
        dir.path(),
        &inventory,
        Identity::PeerIp,
        PEER_IP_PORT,
        PEER_IP_OPS,
    )?;
    let peer_ip_d = Agent::start(
        &node,
        dir.path(),
        &inventory,
        Identity::PeerIp,
        PEER_IP_D_PORT,
        PEER_IP_D_OPS,
    )?;
    let _servers = NodeServers::start(
        &node,
        SocketAddr::from(([10, 200, 0, 1], FLOOR_PORT)),
        SocketAddr::from(([10, 200, 0, 1], SINK_PORT)),
    )?;

    // Section 1, before any iptables rule exists in the node netns (no conntrack there).
    let mut connect = ConnectResult::default();
    let ext0 = crate::env::tcp_ext(&node)?;
    // Warm-up (not recorded): one short run per side.
    for which in 0..2 {
        let job = json!({"mode": "connect", "addr": format!("10.200.0.1:{SINK_PORT}"),
                         "duration_ms": 200});
        let cmd = if which == 0 {
            pod.command(crate::env::client_bin()?)?
        } else {
            client_in(pod.netns().fd(), free.path())?
        };
        run_client(cmd, &job)?;
    }
    for round in 0..cfg.connect_rounds {
        stopped()?;
        let job = json!({"mode": "connect", "addr": format!("10.200.0.1:{SINK_PORT}"),
                         "duration_ms": cfg.connect_ms});
        let mut rates = [0.0f64; 2];
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let cmd = if which == 0 {
                pod.command(crate::env::client_bin()?)?
            } else {
                client_in(pod.netns().fd(), free.path())?
            };
            let r = run_client(cmd, &job)?;
            if r.errors > 0 {
                bail!("connect bench: {} errors ({})", r.errors, r.error);
            }
            rates[which] = r.ok as f64 / r.elapsed_s;
            let max = r.lat_ns.iter().copied().max().unwrap_or(0) / 1000;
            connect.slow_connects[which] +=
                r.lat_ns.iter().filter(|l| **l > 100_000_000).count() as u64;
            let mut lat = r.lat_ns;
            connect.connect_p50_ns[which].push(percentile(&mut lat, 50.0).unwrap_or(f64::NAN));
            connect.max_connect_us[which] = connect.max_connect_us[which].max(max);
        }
        connect.attached.push(rates[0]);
        connect.detached.push(rates[1]);
        connect.ratio.push(rates[0] / rates[1]);
    }

    let ext1 = crate::env::tcp_ext(&node)?;
    let delta = |k: &str| {
        ext1.get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(ext0.get(k).copied().unwrap_or(0))
    };
    connect.listen_overflows = delta("ListenOverflows");
    connect.listen_drops = delta("ListenDrops");

    // kube2iam's rule, in the node netns: metadata traffic arriving on the bridge → the
    // peer-IP proxy.
    iptables_in_node(
        &node,
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
            "-d",
            "169.254.169.254",
            "--dport",
            "80",
            "-i",
            "br0",
            "-j",
            "DNAT",
            "--to-destination",
            &format!("10.200.0.1:{PEER_IP_PORT}"),
        ],
    )?;

    let path = creds_path(ROLE);
    let jobs = [
        json!({"mode": "http", "addr": "169.254.169.254:80", "host": "169.254.169.254",
               "path": path, "expect": "AccessKeyId"}),
        json!({"mode": "http", "addr": "169.254.169.254:80", "host": "169.254.169.254",
               "path": path, "expect": "AccessKeyId"}),
        json!({"mode": "http", "addr": format!("10.200.0.1:{FLOOR_PORT}"),
               "host": format!("10.200.0.1:{FLOOR_PORT}"), "path": path,
               "expect": "ASIAFLOOR"}),
        json!({"mode": "http", "addr": "169.254.169.254:80", "host": "169.254.169.254",
               "path": path, "expect": "AccessKeyId"}),
    ];
    // Path (d): podiam's eBPF programs, attached by this process to a cgroup of their own,
    // redirecting to the peer-IP agent — the same identity as (b) behind podiam's datapath.
    let extra = ExtraDatapath::attach(
        &node,
        SocketAddrV4::new(Ipv4Addr::new(10, 200, 0, 1), PEER_IP_D_PORT),
    )?;
    let command = |i: usize| -> anyhow::Result<std::process::Command> {
        match i {
            0 => pod.command(crate::env::client_bin()?),
            3 => client_in(pod.netns().fd(), extra.cgroup()),
            _ => client_in(pod.netns().fd(), free.path()),
        }
    };
    // Warm-up: fills both agents' caches (one STS call each) and checks every path works.
    for (i, job) in jobs.iter().enumerate() {
        let mut job = job.clone();
        job["duration_ms"] = json!(300);
        let r = run_client(command(i)?, &job)?;
        if r.ok == 0 {
            bail!(
                "path {} does not work: {}\nkernel agent log:\n{}\npeer-ip agent log:\n{}",
                ["a", "b", "c", "d"][i],
                r.error,
                kernel.log_text(),
                peer_ip.log_text() + &peer_ip_d.log_text()
            );
        }
    }
    let served = |a: &Agent| -> anyhow::Result<f64> {
        Ok(metric_sum(
            &a.metrics()?,
            "podiam_http_requests_total",
            &[
                "surface=\"imds\"",
                "class=\"credentials\"",
                "status=\"200\"",
            ],
        ))
    };
    let redirected = |a: &Agent| -> anyhow::Result<f64> {
        Ok(metric_sum(
            &a.metrics()?,
            "podiam_datapath_connections_total",
            &["outcome=\"redirected\""],
        ))
    };
    let extra_redirected = || -> anyhow::Result<u64> { Ok(extra.counters()?.redirected) };
    let (k0, r0, p0) = (served(&kernel)?, redirected(&kernel)?, served(&peer_ip)?);
    let pd0 = served(&peer_ip_d)?;
    let d0 = extra_redirected()?;
    let mut latency = LatencyResult::default();
    for round in 0..cfg.latency_rounds {
        stopped()?;
        let mut figures = [PathRound::default(); PATHS];
        for k in 0..PATHS {
            let i = (round + k) % PATHS;
            let mut job = jobs[i].clone();
            job["duration_ms"] = json!(cfg.latency_ms);
            let mut r = run_client(command(i)?, &job)?;
            latency.errors[i] += r.errors;
            latency.client_ok[i] += r.ok;
            if !r.error.is_empty() {
                latency.example_error = r.error.clone();
            }
            figures[i] = PathRound {
                p50_us: percentile(&mut r.lat_us, 50.0).context("no samples")?,
                p99_us: percentile(&mut r.lat_us, 99.0).context("no samples")?,
                rps: r.ok as f64 / r.elapsed_s,
            };
        }
        latency.rounds.push(figures);
    }
    latency.kernel_served = served(&kernel)? - k0;
    latency.redirected = redirected(&kernel)? - r0;
    latency.peer_ip_served = served(&peer_ip)? - p0;
    latency.peer_ip_d_served = served(&peer_ip_d)? - pd0;
    latency.extra_redirected = extra_redirected()?.saturating_sub(d0) as f64;
    kernel.stop();
    peer_ip.stop();
    peer_ip_d.stop();
    Ok((connect, latency))
}
