//! The bench's environment on a simulated node: the `podiam agent` process (kernel or
//! peer-IP identity), a static inventory for N workloads, a cgroup outside the datapath's
//! attach point, clients run in pods, and `/proc` figures of the agent.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use podiam_tests::Node;
use podiam_tests::scenario::{ACCOUNT, ChildGuard, http_get};
use serde::Deserialize;

/// How the agent identifies callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// eBPF datapath attached to the node cgroup, origin records (podiam's path).
    Kernel,
    /// `--identity peer-ip`: no datapath, caller = peer IP (kube2iam's semantics).
    PeerIp,
}

/// One workload of the static inventory.
pub struct Workload {
    pub name: String,
    /// cgroup path relative to the cgroup2 root, starting with `/`.
    pub cgroup_rel: Option<String>,
    pub ip: std::net::Ipv4Addr,
    pub role: String,
}

/// Role ARN of role name `role` in moto's account.
pub fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

/// IMDS path of `role`'s credentials.
pub fn creds_path(role: &str) -> String {
    format!("/latest/meta-data/iam/security-credentials/{role}")
}

/// `path` relative to the cgroup2 root, as the static inventory wants it (`/a/b`).
pub fn cgroup_rel(path: &Path) -> anyhow::Result<String> {
    let root = podiam::datapath::find_cgroup2_root()?;
    let rel = path
        .strip_prefix(&root)
        .context("cgroup outside the cgroup2 root")?;
    Ok(format!("/{}", rel.display()))
}

/// Writes the static inventory (`roleArn` per workload) to `path`.
pub fn write_inventory(path: &Path, workloads: &[Workload]) -> anyhow::Result<()> {
    let mut yaml = String::from("# podiam-bench static inventory\nworkloads:\n");
    for w in workloads {
        yaml += &format!(
            "  - name: {}\n    namespace: bench\n    ips: [{}]\n    roleArn: {}\n",
            w.name,
            w.ip,
            role_arn(&w.role)
        );
        if let Some(c) = &w.cgroup_rel {
            yaml += &format!("    cgroupPath: {c}\n");
        }
    }
    std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))
}

/// A running `podiam agent` (release build), stopped on drop.
pub struct Agent {
    guard: ChildGuard,
    node: Node,
    ops_port: u16,
    log: PathBuf,
}

impl Agent {
    /// Starts the agent in `node`'s netns and cgroup, proxy on 10.200.0.1:`app_port`, ops on
    /// 127.0.0.1:`ops_port`, STS = moto; waits for `/readyz` (60 s).
    pub fn start(
        node: &Node,
        dir: &Path,
        inventory: &Path,
        identity: Identity,
        app_port: u16,
        ops_port: u16,
    ) -> anyhow::Result<Agent> {
        Self::start_with(node, dir, inventory, identity, app_port, ops_port, &[])
    }

    /// Like [`Agent::start`], with extra `podiam agent` flags.
    pub fn start_with(
        node: &Node,
        dir: &Path,
        inventory: &Path,
        identity: Identity,
        app_port: u16,
        ops_port: u16,
        extra: &[&str],
    ) -> anyhow::Result<Agent> {
        let bin = podiam_tests::bins::podiam_bin()?;
        let log = dir.join(format!("agent-{app_port}.log"));
        let mut cmd =
            podiam_tests::scenario::agent_command(node, &log, inventory, app_port, ops_port)?;
        cmd.args(["--log-level", "warn"]);
        if identity == Identity::PeerIp {
            cmd.args(["--identity", "peer-ip"]);
        }
        cmd.args(extra);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut agent = Agent {
            guard: ChildGuard::new(child, "podiam agent"),
            node: node.clone(),
            ops_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if !agent.guard.running() {
                bail!("the agent exited during start-up:\n{}", agent.log_text());
            }
            if let Ok((200, _)) = agent.ops_get("/readyz") {
                return Ok(agent);
            }
            if Instant::now() > deadline {
                bail!("the agent was not ready in 60 s:\n{}", agent.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the operations listener: (status, body).
    pub fn ops_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ops_port));
        let path = path.to_owned();
        self.node.run_in_netns(move || http_get(addr, &path))?
    }

    /// Sum of `podiam_vend_sts_calls_total` over all outcomes, and the `success` part.
    pub fn sts_calls(&self) -> anyhow::Result<(f64, f64)> {
        let text = self.metrics()?;
        Ok((
            metric_sum(&text, "podiam_vend_sts_calls_total", &[]),
            metric_sum(
                &text,
                "podiam_vend_sts_calls_total",
                &["outcome=\"success\""],
            ),
        ))
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> anyhow::Result<String> {
        let (status, text) = self.ops_get("/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(text)
    }

    /// Value of an unlabelled gauge or counter `name` in `/metrics`.
    pub fn gauge(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.metrics()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no {name} in /metrics"))
    }

    /// The agent's `/proc` figures now.
    pub fn proc_stat(&self) -> anyhow::Result<ProcStat> {
        let pid = self.guard.id().context("agent not running")?;
        ProcStat::read(pid)
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) {
        self.guard.terminate();
    }
}

/// Sum of the samples of family `name` (exact name, labelled or not) in an OpenMetrics text
/// whose label set contains every string of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            if !labels.iter().all(|want| rest.contains(want)) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

/// CPU time and resident memory of a process.
#[derive(Clone, Copy, Debug)]
pub struct ProcStat {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    /// VmRSS, bytes.
    pub rss_bytes: u64,
}

impl ProcStat {
    /// Reads `/proc/<pid>/stat` (fields 14 utime and 15 stime, clock ticks) and
    /// `/proc/<pid>/status` (`VmRSS`, kB).
    pub fn read(pid: u32) -> anyhow::Result<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesised comm (which may contain spaces).
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3 (state): utime = field 14 → index 11.
        let ticks = |i: usize| -> f64 { f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let cpu_s = (ticks(11) + ticks(12)) / hz.max(1.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .context("no VmRSS")?;
        Ok(ProcStat {
            cpu_s,
            rss_bytes: rss_kb * 1024,
        })
    }
}

/// A cgroup at the cgroup2 root, outside every node cgroup (so outside the datapath's attach
/// point): `podiam-test-<pid>-<n>-free` (removed by the harness's stale cleanup if this
/// process dies). Removed (processes killed) on drop.
pub struct FreeCgroup {
    path: PathBuf,
}

impl FreeCgroup {
    pub fn new() -> anyhow::Result<FreeCgroup> {
        let root = podiam::datapath::find_cgroup2_root()?;
        let path = root.join(format!(
            "podiam-test-{}-free",
            podiam_tests::netns::unique_id()
        ));
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(FreeCgroup { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FreeCgroup {
    fn drop(&mut self) {
        podiam_tests::cgroup::remove_tree(&self.path);
    }
}

/// A second datapath (podiam's eBPF programs, loaded by this process) attached to its own
/// [`FreeCgroup`] and redirecting metadata connects to `redirect`; pinned under
/// `/sys/fs/bpf/podiam-test-<pid>-<n>-dp` (stale-cleaned like the harness's pins).
/// Uninstalled, then the cgroup removed, on drop.
pub struct ExtraDatapath {
    // Drop order: uninstall (Drop below), then the cgroup.
    pin_dir: PathBuf,
    dp: podiam::datapath::Datapath,
    cgroup: FreeCgroup,
}

impl ExtraDatapath {
    pub fn attach(node: &Node, redirect: std::net::SocketAddrV4) -> anyhow::Result<ExtraDatapath> {
        let cgroup = FreeCgroup::new()?;
        let pin_dir = PathBuf::from(format!(
            "/sys/fs/bpf/podiam-test-{}-dp",
            podiam_tests::netns::unique_id()
        ));
        let mut cfg = node.datapath_config()?;
        cfg.cgroup = cgroup.path().to_path_buf();
        cfg.pin_dir = pin_dir.clone();
        cfg.redirect_v4 = redirect;
        let dp = match node.attach_datapath(cfg) {
            Ok(dp) => dp,
            Err(e) => {
                if pin_dir.exists() {
                    let _ = podiam::datapath::Datapath::uninstall(&pin_dir);
                    let _ = std::fs::remove_dir_all(&pin_dir);
                }
                return Err(e);
            }
        };
        Ok(ExtraDatapath {
            pin_dir,
            dp,
            cgroup,
        })
    }

    /// The cgroup the programs are attached to.
    pub fn cgroup(&self) -> &Path {
        self.cgroup.path()
    }

    /// Its counters (summed over CPUs).
    pub fn counters(&self) -> anyhow::Result<podiam::datapath::Counters> {
        Ok(self.dp.counters()?)
    }
}

impl Drop for ExtraDatapath {
    fn drop(&mut self) {
        podiam_tests::cgroup::kill_all(self.cgroup.path());
        let _ = podiam::datapath::Datapath::uninstall(&self.pin_dir);
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// What `podiam-bench-client` reported.
#[derive(Debug, Default, Deserialize)]
pub struct ClientReport {
    pub ok: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    #[serde(default)]
    pub lat_us: Vec<u32>,
    #[serde(default)]
    pub lat_ns: Vec<u32>,
    #[serde(default)]
    pub first_us: u64,
    #[serde(default)]
    pub first_ok: bool,
    #[serde(default)]
    pub ok_after_us: u64,
    #[serde(default)]
    pub late_us: u64,
    #[serde(default)]
    pub error: String,
}

/// The client binary (`$PODIAM_BENCH_CLIENT_BIN` or next to this executable).
pub fn client_bin() -> anyhow::Result<PathBuf> {
    podiam_tests::bins::find("podiam-bench-client", "PODIAM_BENCH_CLIENT_BIN")
}

/// Spawns the client with `job` (JSON) from `cmd` (a pod command or a netns+cgroup command
/// of the client binary).
pub fn spawn_client(mut cmd: Command, job: &serde_json::Value) -> anyhow::Result<Child> {
    cmd.arg(job.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().context("starting podiam-bench-client")
}

/// Waits for a spawned client and parses its report.
pub fn collect(child: Child) -> anyhow::Result<ClientReport> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "podiam-bench-client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).with_context(|| format!("client output {text:?}"))
}

/// Runs a client to completion.
pub fn run_client(cmd: Command, job: &serde_json::Value) -> anyhow::Result<ClientReport> {
    collect(spawn_client(cmd, job)?)
}

/// A command of the client binary in `netns` (an fd) and `cgroup`.
pub fn client_in(netns: &std::os::fd::OwnedFd, cgroup: &Path) -> anyhow::Result<Command> {
    let mut cmd = Command::new(client_bin()?);
    podiam_tests::netns::enter_in_child(&mut cmd, netns, cgroup)?;
    Ok(cmd)
}

/// Unix time in nanoseconds `after` from now (clients' common start time).
pub fn start_at(after: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from((now + after).as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `iptables ARGS…` in the node netns (never the root netns).
pub fn iptables_in_node(node: &Node, args: &[&str]) -> anyhow::Result<()> {
    let out = node.command("iptables")?.args(args).output()?;
    if !out.status.success() {
        bail!(
            "iptables {} (node netns) failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `TcpExt` counters (`/proc/net/netstat`) of `node`'s netns, e.g. `ListenOverflows`.
pub fn tcp_ext(node: &Node) -> anyhow::Result<std::collections::HashMap<String, u64>> {
    let text = node.run_in_netns(|| std::fs::read_to_string("/proc/thread-self/net/netstat"))??;
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let (Some(names), Some(values)) = (lines.first(), lines.get(1)) else {
        bail!("no TcpExt in /proc/net/netstat");
    };
    Ok(names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect())
}
