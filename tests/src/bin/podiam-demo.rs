//! `cargo xtask demo`: a simulated node whose pods each get their own IAM role.
//!
//! Creates a node (network namespace, bridge and cgroup) and three pods (each a network
//! namespace, a veth and a child cgroup), starts moto's server as STS and as the node's "real"
//! IMDS, and the podiam agent with a static inventory. Inside each pod it runs the AWS CLI
//! through IMDS and through container credentials (token file), prints who each pod became,
//! and tears everything down, also on Ctrl-C or failure.
use std::process::ExitCode;

use podiam_tests::interrupt::{run_main, stopped};
use podiam_tests::scenario::{CredPath, NODE_ACCESS_KEY, NODE_ROLE_NAME, Options, Scenario};

struct Row {
    pod: String,
    path: &'static str,
    expected: String,
    got: String,
    ok: bool,
    millis: u128,
}

fn main() -> ExitCode {
    run_main("demo", run)
}

fn run() -> anyhow::Result<bool> {
    println!(
        "podiam demo: creating a simulated node (netns + bridge + cgroup), 3 pods, moto (STS + IMDS), the agent…"
    );
    let scenario = Scenario::start(Options::default())?;
    stopped()?;
    println!(
        "agent ready: eBPF connect4/connect6 attached to {}, proxy on 10.200.0.1:8181\n",
        scenario.node.cgroup().display()
    );
    let mut rows = Vec::new();
    for (spec, _) in &scenario.pods {
        for path in [CredPath::Imds, CredPath::ContainerCredentials] {
            stopped()?;
            let run = scenario.aws_cli_identity(spec.name, path)?;
            let expected = match spec.role_name() {
                Some(r) => format!("assumed-role/{r}"),
                None => "refused".to_owned(),
            };
            let out = run.all_output();
            let leaked = out.contains(NODE_ACCESS_KEY) || out.contains(NODE_ROLE_NAME);
            let (got, ok) = match (run.arn(), spec.role_name()) {
                (Some(arn), Some(role)) => {
                    let ok = arn.contains(&format!(":assumed-role/{role}/")) && !leaked;
                    (
                        arn.split(":assumed-role/")
                            .nth(1)
                            .map(|s| format!("assumed-role/{s}"))
                            .unwrap_or(arn),
                        ok,
                    )
                }
                (Some(arn), None) => (format!("UNEXPECTED {arn}"), false),
                (None, _) => {
                    let why = out
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no output")
                        .trim()
                        .chars()
                        .take(130)
                        .collect::<String>();
                    (
                        format!("refused: {why}"),
                        spec.role_name().is_none() && !leaked,
                    )
                }
            };
            rows.push(Row {
                pod: format!("{}/{}", spec.namespace, spec.name),
                path: path.label(),
                expected,
                got,
                ok,
                millis: run.elapsed.as_millis(),
            });
        }
    }
    print_table(&rows);
    let all_ok = rows.iter().all(|r| r.ok);
    if let Ok((_, metrics)) = scenario.ops_get("/metrics") {
        let redirected = metrics
            .lines()
            .find(|l| l.contains("datapath_connections_total") && l.contains("redirected"))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("?")
            .to_owned();
        println!("\ndatapath: {redirected} pod connections redirected by the eBPF programs");
    }
    println!(
        "{}",
        if all_ok {
            "every pod got exactly its own role (or none); the node's credentials never appeared"
        } else {
            "UNEXPECTED outcomes above; agent log follows"
        }
    );
    if !all_ok {
        println!("{}", scenario.agent_log());
    }
    println!("tearing down (agent, moto, pods, node, pins, cgroups)…");
    drop(scenario);
    println!("done");
    Ok(all_ok)
}

fn print_table(rows: &[Row]) {
    let w_pod = rows.iter().map(|r| r.pod.len()).max().unwrap_or(3).max(3);
    let w_path = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    let w_exp = rows
        .iter()
        .map(|r| r.expected.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let w_got = rows.iter().map(|r| r.got.len()).max().unwrap_or(3).max(3);
    println!(
        "{:<w_pod$}  {:<w_path$}  {:<w_exp$}  {:<w_got$}  {:>8}  check",
        "pod", "path", "expected", "got (aws sts get-caller-identity)", "CLI time"
    );
    println!("{}", "-".repeat(w_pod + w_path + w_exp + w_got + 24));
    for r in rows {
        println!(
            "{:<w_pod$}  {:<w_path$}  {:<w_exp$}  {:<w_got$}  {:>6}ms  {}",
            r.pod,
            r.path,
            r.expected,
            r.got,
            r.millis,
            if r.ok { "ok" } else { "UNEXPECTED" }
        );
    }
}
