//! Section 5: agent RSS with N workloads in the inventory and N cached sessions.
//!
//! N netns would cost minutes to create, so the N workloads are N cgroups
//! (`<node cgroup>/w<i>`, each matched by its own `cgroupPath`, each with its own role)
//! sharing one pod's network namespace and IP. One client process moves itself through
//! the N cgroups and requests each workload's credentials once: N origin records, N
//! identities, N AssumeRole calls, N cached sessions — the same agent-side state as N pods.
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::cold::ColdEnv;
use crate::env::{Agent, Identity, Workload, cgroup_rel, client_in, creds_path, run_client};
use crate::{Config, stopped};

/// One run of section 5.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryRun {
    /// RSS after start-up with the N-workload inventory loaded, before any request.
    pub rss_idle: u64,
    /// RSS with N sessions cached.
    pub rss_loaded: u64,
    /// `podiam_vend_sessions` gauge after the requests.
    pub sessions: f64,
    pub sts_calls: f64,
    /// Requests that got credentials.
    pub ok: u64,
    /// Seconds the N first requests took (sequential, each an AssumeRole on moto).
    pub fill_s: f64,
}

/// Results of section 5.
#[derive(Debug, Default)]
pub struct MemoryResult {
    pub workloads: usize,
    pub runs: Vec<MemoryRun>,
    pub example_error: String,
}

pub fn run(cfg: &Config, env: &ColdEnv) -> anyhow::Result<MemoryResult> {
    let n = cfg.memory_workloads;
    let mut result = MemoryResult {
        workloads: n,
        ..MemoryResult::default()
    };
    let pod = env.pods.first().context("no pod")?;
    let mut dirs = Vec::with_capacity(n);
    let mut workloads = Vec::with_capacity(n);
    for i in 0..n {
        let d = env.node.cgroup().join(format!("w{i}"));
        if !d.exists() {
            std::fs::create_dir(&d).with_context(|| format!("mkdir {}", d.display()))?;
        }
        workloads.push(Workload {
            name: format!("w{i}"),
            cgroup_rel: Some(cgroup_rel(&d)?),
            ip: pod.ipv4(),
            role: format!("bench-mem-{i}"),
        });
        dirs.push(d);
    }
    let inventory = env.dir.path().join("memory.yaml");
    crate::env::write_inventory(&inventory, &workloads)?;
    for _ in 0..cfg.memory_runs {
        stopped()?;
        let agent = Agent::start(
            &env.node,
            env.dir.path(),
            &inventory,
            Identity::Kernel,
            8181,
            8182,
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let idle = agent.proc_stat()?;
        let t = std::time::Instant::now();
        let mut run = MemoryRun {
            rss_idle: idle.rss_bytes,
            ..MemoryRun::default()
        };
        // `{i}`: the client substitutes the index of the cgroup it is in.
        let job = json!({"mode": "cgroups", "addr": "169.254.169.254:80",
                         "host": "169.254.169.254",
                         "path": creds_path("bench-mem-{i}"), "expect": "AccessKeyId",
                         "cgroups": dirs.iter().map(|d| d.display().to_string())
                                        .collect::<Vec<_>>()});
        let first = dirs.first().context("no workloads")?;
        let r = run_client(client_in(pod.netns().fd(), first)?, &job)?;
        run.fill_s = t.elapsed().as_secs_f64();
        run.ok = r.ok;
        if !r.error.is_empty() {
            result.example_error = r.error.clone();
        }
        std::thread::sleep(Duration::from_millis(500));
        run.rss_loaded = agent.proc_stat()?.rss_bytes;
        let (calls, _) = agent.sts_calls()?;
        run.sts_calls = calls;
        run.sessions = agent.gauge("podiam_vend_sessions")?;
        agent.stop();
        if r.ok == 0 {
            bail!("no workload got credentials: {}", r.error);
        }
        result.runs.push(run);
    }
    Ok(result)
}
