//! Section 4: cold start — N pods with distinct roles, known to the inventory, all send
//! their first credential request at the same instant to a freshly started agent (empty
//! cache) whose STS is moto. Measures the time until every pod has credentials, the STS
//! calls made (`podiam_vend_sts_calls_total`, must equal the N distinct sessions) and the p99 of
//! the first request's latency. Each run restarts the agent (the pinned datapath is adopted).
use std::time::{Duration, Instant};

use podiam_tests::scenario::{ChildGuard, start_moto};
use podiam_tests::{Node, Pod};
use serde_json::json;

use crate::env::{
    Agent, Identity, Workload, cgroup_rel, client_bin, collect, creds_path, spawn_client, start_at,
    write_inventory,
};
use crate::stats::percentile;
use crate::{Config, stopped};

/// A node with N pods and moto, shared by sections 4 and 5.
pub struct ColdEnv {
    // Field order = drop order: moto stops before the pods and the node go.
    _moto: ChildGuard,
    pub pods: Vec<Pod>,
    pub node: Node,
    pub dir: tempfile::TempDir,
    /// Seconds to create the pods.
    pub setup_s: f64,
}

impl ColdEnv {
    pub fn new(n: usize) -> anyhow::Result<ColdEnv> {
        let node = Node::new()?;
        let t = Instant::now();
        let mut pods = Vec::new();
        for i in 0..n {
            stopped()?;
            pods.push(node.add_pod(&format!("c{i}"))?);
        }
        let setup_s = t.elapsed().as_secs_f64();
        let dir = tempfile::Builder::new().prefix("podiam-bench-").tempdir()?;
        let moto = start_moto(&node, dir.path())?;
        Ok(ColdEnv {
            pods,
            node,
            dir,
            _moto: moto,
            setup_s,
        })
    }
}

/// One cold-start run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ColdRun {
    /// Seconds from the common start until the last pod had credentials.
    pub all_ok_s: f64,
    pub pods_ok: usize,
    pub sts_calls: f64,
    pub sts_success: f64,
    pub first_p50_ms: f64,
    pub first_p99_ms: f64,
    /// First requests that failed (then retried every 20 ms).
    pub first_failed: usize,
    /// Mean AssumeRole latency seen by the agent (`podiam_vend_sts_latency_seconds`), ms.
    pub sts_mean_ms: f64,
}

/// Results of section 4: runs with `--prefetch=false` and with `--prefetch=true`,
/// interleaved.
#[derive(Debug, Default)]
pub struct ColdResult {
    pub pods: usize,
    /// `--prefetch=false`: sessions are fetched on the first request.
    pub runs: Vec<ColdRun>,
    /// `--prefetch=true`: sessions are fetched when the agent sees the pods.
    pub runs_prefetch: Vec<ColdRun>,
    pub setup_s: f64,
    pub example_error: String,
}

fn role(i: usize) -> String {
    format!("bench-cold-{i}")
}

pub fn run(cfg: &Config, env: &ColdEnv) -> anyhow::Result<ColdResult> {
    let mut result = ColdResult {
        pods: env.pods.len(),
        setup_s: env.setup_s,
        ..ColdResult::default()
    };
    let inventory = env.dir.path().join("cold.yaml");
    let workloads = env
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(Workload {
                name: format!("c{i}"),
                cgroup_rel: Some(cgroup_rel(p.cgroup())?),
                ip: p.ipv4(),
                role: role(i),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    write_inventory(&inventory, &workloads)?;
    for round in 0..cfg.cold_runs * 2 {
        stopped()?;
        let prefetch = round % 2 == 1;
        let flag = if prefetch {
            "--prefetch=true"
        } else {
            "--prefetch=false"
        };
        let agent = Agent::start_with(
            &env.node,
            env.dir.path(),
            &inventory,
            Identity::Kernel,
            8181,
            8182,
            &[flag],
        )?;
        let lead = Duration::from_millis(1000 + 15 * env.pods.len() as u64);
        let at = start_at(lead);
        let mut children = Vec::new();
        for (i, pod) in env.pods.iter().enumerate() {
            let job = json!({"mode": "first", "addr": "169.254.169.254:80",
                             "host": "169.254.169.254", "path": creds_path(&role(i)),
                             "expect": "AccessKeyId", "start_at_ns": at});
            children.push(spawn_client(pod.command(client_bin()?)?, &job)?);
        }
        let mut firsts = Vec::new();
        let mut run = ColdRun::default();
        let mut last_ok_us = 0u64;
        let mut late = 0u64;
        for c in children {
            let r = collect(c)?;
            late = late.max(r.late_us);
            firsts.push(u32::try_from(r.first_us).unwrap_or(u32::MAX));
            if r.ok == 1 {
                run.pods_ok += 1;
                last_ok_us = last_ok_us.max(r.ok_after_us + r.late_us);
            }
            if !r.first_ok {
                run.first_failed += 1;
                result.example_error = r.error.clone();
            }
        }
        if late > 0 {
            eprintln!("bench: warning: a cold-start client started {late} µs late");
        }
        run.all_ok_s = last_ok_us as f64 / 1e6;
        run.first_p50_ms = percentile(&mut firsts, 50.0).unwrap_or(f64::NAN) / 1000.0;
        run.first_p99_ms = percentile(&mut firsts, 99.0).unwrap_or(f64::NAN) / 1000.0;
        let (calls, ok) = agent.sts_calls()?;
        run.sts_calls = calls;
        run.sts_success = ok;
        let text = agent.metrics()?;
        let sum = crate::env::metric_sum(&text, "podiam_vend_sts_latency_seconds_sum", &[]);
        let count = crate::env::metric_sum(&text, "podiam_vend_sts_latency_seconds_count", &[]);
        run.sts_mean_ms = if count > 0.0 {
            sum / count * 1000.0
        } else {
            f64::NAN
        };
        agent.stop();
        if prefetch {
            result.runs_prefetch.push(run);
        } else {
            result.runs.push(run);
        }
    }
    Ok(result)
}
