//! Section 3: N pods (own netns, own cgroup, own role) requesting their credentials
//! concurrently, warm cache: aggregate requests/s, p99, agent CPU and RSS.
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use podiam_tests::Node;
use podiam_tests::scenario::start_moto;
use serde_json::json;

use crate::env::{
    Agent, Identity, Workload, cgroup_rel, client_bin, collect, creds_path, run_client,
    spawn_client, start_at, write_inventory,
};
use crate::stats::percentile;
use crate::{Config, stopped};

/// One run of section 3.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManyRun {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: u64,
    /// Agent CPU over the run, in cores (1.0 = one core busy).
    pub agent_cores: f64,
    pub agent_rss: u64,
}

/// Results of section 3.
#[derive(Debug, Default)]
pub struct ManyResult {
    pub pods: usize,
    pub runs: Vec<ManyRun>,
    /// Seconds to create the pods (netns + veth + cgroup each).
    pub setup_s: f64,
    pub example_error: String,
}

pub fn run(cfg: &Config) -> anyhow::Result<ManyResult> {
    let mut result = ManyResult {
        pods: cfg.many_pods,
        ..ManyResult::default()
    };
    let node = Node::new()?;
    let t = Instant::now();
    let mut pods = Vec::new();
    for i in 0..cfg.many_pods {
        stopped()?;
        pods.push(node.add_pod(&format!("m{i}"))?);
    }
    result.setup_s = t.elapsed().as_secs_f64();
    let dir = tempfile::Builder::new().prefix("podiam-bench-").tempdir()?;
    let _moto = start_moto(&node, dir.path())?;
    let inventory = dir.path().join("inventory.yaml");
    let workloads = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(Workload {
                name: format!("m{i}"),
                cgroup_rel: Some(cgroup_rel(p.cgroup())?),
                ip: p.ipv4(),
                role: format!("bench-many-{i}"),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    write_inventory(&inventory, &workloads)?;
    let agent = Agent::start(&node, dir.path(), &inventory, Identity::Kernel, 8181, 8182)?;
    let job = |mode: &str, i: usize, ms: u64, at: u64| {
        json!({"mode": mode, "addr": "169.254.169.254:80", "host": "169.254.169.254",
               "path": creds_path(&format!("bench-many-{i}")), "expect": "AccessKeyId",
               "duration_ms": ms, "start_at_ns": at})
    };
    // Warm the cache: one request per pod (retried until it has credentials).
    for (i, pod) in pods.iter().enumerate() {
        let r = run_client(pod.command(client_bin()?)?, &job("first", i, 0, 0))?;
        if r.ok == 0 {
            bail!(
                "pod m{i} got no credentials: {}\nagent log:\n{}",
                r.error,
                agent.log_text()
            );
        }
    }
    for _ in 0..cfg.many_runs {
        stopped()?;
        let lead = Duration::from_millis(500 + 20 * cfg.many_pods as u64);
        let at = start_at(lead);
        let t_spawn = Instant::now();
        let mut children = Vec::new();
        for (i, pod) in pods.iter().enumerate() {
            children.push(spawn_client(
                pod.command(client_bin()?)?,
                &job("http", i, cfg.many_ms, at),
            )?);
        }
        // CPU window: from the common start to the end of the last client.
        std::thread::sleep(lead.saturating_sub(t_spawn.elapsed()));
        let before = agent.proc_stat()?;
        let t0 = Instant::now();
        let mut samples = Vec::new();
        let mut ok = 0u64;
        let mut errors = 0u64;
        let mut late = 0u64;
        for c in children {
            let r = collect(c)?;
            ok += r.ok;
            errors += r.errors;
            late = late.max(r.late_us);
            if !r.error.is_empty() {
                result.example_error = r.error.clone();
            }
            samples.extend(r.lat_us);
        }
        let window = t0.elapsed().as_secs_f64();
        let after = agent.proc_stat()?;
        if late > 100_000 {
            eprintln!("bench: warning: a client started {late} µs late");
        }
        let secs = cfg.many_ms as f64 / 1000.0;
        result.runs.push(ManyRun {
            rps: ok as f64 / secs,
            p50_us: percentile(&mut samples, 50.0).context("no samples")?,
            p99_us: percentile(&mut samples, 99.0).context("no samples")?,
            errors,
            agent_cores: (after.cpu_s - before.cpu_s) / window,
            agent_rss: after.rss_bytes,
        });
    }
    agent.stop();
    Ok(result)
}
