//! `podiam-bench`: podiam's benchmarks on simulated nodes (run by `cargo xtask bench`, as
//! root, release build). Writes a Markdown report (BENCHMARKS.md).
//!
//! Usage: `podiam-bench --out PATH [--quick] [--build-secs S] [--commit C]`.
//!
//! Sections (issue 8):
//! 1. connect()+close() rate from a pod to a non-intercepted listener, datapath attached vs
//!    not ([`datapath`]);
//! 2. credential request latency: podiam's redirect vs kube2iam's iptables DNAT vs a floor
//!    server ([`datapath`]);
//! 3. many pods concurrently, warm cache ([`many`]);
//! 4. cold start, N pods with distinct roles at once ([`cold`]);
//! 5. agent RSS with many workloads and sessions ([`memory`]).
//!
//! Everything runs in network namespaces created here (and their loopbacks); all of it
//! (namespaces, cgroups, pins, processes, the node netns's iptables rule) is removed on exit,
//! also on failure and on SIGINT/SIGTERM (checked between steps).
mod cold;
mod datapath;
mod env;
mod many;
mod memory;
mod report;
mod servers;
mod stats;

use std::process::ExitCode;
use std::time::Instant;

pub use podiam_tests::interrupt::stopped;

/// Sizes and repetitions.
#[derive(Clone, Debug)]
pub struct Config {
    pub connect_rounds: usize,
    pub connect_ms: u64,
    pub latency_rounds: usize,
    pub latency_ms: u64,
    pub many_pods: usize,
    pub many_runs: usize,
    pub many_ms: u64,
    pub cold_pods: usize,
    pub cold_runs: usize,
    pub memory_workloads: usize,
    pub memory_runs: usize,
}

impl Config {
    /// The sizes of issue 8.
    pub fn full() -> Self {
        Self {
            connect_rounds: 15,
            connect_ms: 500,
            latency_rounds: 7,
            latency_ms: 1000,
            many_pods: 50,
            many_runs: 3,
            many_ms: 3000,
            cold_pods: 200,
            cold_runs: 3,
            memory_workloads: 1000,
            memory_runs: 3,
        }
    }

    /// A smoke run of the same code paths (for developing the bench).
    pub fn quick() -> Self {
        Self {
            connect_rounds: 2,
            connect_ms: 300,
            latency_rounds: 2,
            latency_ms: 300,
            many_pods: 5,
            many_runs: 1,
            many_ms: 500,
            cold_pods: 10,
            cold_runs: 1,
            memory_workloads: 20,
            memory_runs: 1,
        }
    }
}

/// Command-line options.
pub struct Opts {
    pub out: std::path::PathBuf,
    pub quick: bool,
    pub build_secs: Option<f64>,
    pub commit: Option<String>,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut opts = Opts {
        out: "BENCHMARKS.md".into(),
        quick: false,
        build_secs: None,
        commit: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => {
                opts.out = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--out PATH"))?
                    .into()
            }
            "--quick" => opts.quick = true,
            "--build-secs" => {
                opts.build_secs = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| anyhow::anyhow!("--build-secs SECONDS"))?,
                )
            }
            "--commit" => opts.commit = args.next(),
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    podiam_tests::interrupt::run_main("podiam-bench", run)
}

fn section<T>(name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    eprintln!("bench: {name}…");
    let t = Instant::now();
    let r = f().map_err(|e| format!("{e:#}"));
    match &r {
        Ok(_) => eprintln!("bench: {name} done in {:.1} s", t.elapsed().as_secs_f64()),
        Err(e) => eprintln!("bench: {name} FAILED: {e}"),
    }
    r
}

fn run() -> anyhow::Result<bool> {
    let opts = parse_opts()?;
    podiam_tests::check_privileged()?;
    let cfg = if opts.quick {
        Config::quick()
    } else {
        Config::full()
    };
    let t0 = Instant::now();
    let s12 = section("1+2 connect overhead and credential latency", || {
        datapath::run(&cfg)
    });
    stopped()?;
    let s3 = section("3 many pods, warm cache", || many::run(&cfg));
    stopped()?;
    let (s4, s5) = match section("cold-start node", || cold::ColdEnv::new(cfg.cold_pods)) {
        Ok(env) => {
            let s4 = section("4 cold start", || cold::run(&cfg, &env));
            let s5 = if stopped().is_ok() {
                section("5 memory", || memory::run(&cfg, &env))
            } else {
                Err("interrupted".into())
            };
            (s4, s5)
        }
        Err(e) => (Err(e.clone()), Err(e)),
    };
    stopped()?;
    let results = report::Results {
        s12,
        s3,
        s4,
        s5,
        cfg,
        wall_s: t0.elapsed().as_secs_f64(),
    };
    let text = report::render(&opts, &results);
    std::fs::write(&opts.out, &text)?;
    eprintln!("bench: wrote {}", opts.out.display());
    println!("{text}");
    Ok(results.all_ran())
}
