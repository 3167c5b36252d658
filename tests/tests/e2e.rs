//! End to end, through the real kernel datapath: the `podiam agent` process, moto's server as
//! STS and as the node's IMDS, and real SDK clients (AWS CLI, boto3, Rust aws-config) inside
//! simulated pods (network namespace + veth + cgroup). Needs root; fails (never skips) without.
use podiam_tests::scenario::{
    ACCOUNT, ClientRun, CredPath, NODE_ACCESS_KEY, NODE_ROLE_NAME, Options, PODS, Scenario,
};

fn assert_no_node_credentials(run: &ClientRun, what: &str) {
    let out = run.all_output();
    assert!(
        !out.contains(NODE_ACCESS_KEY) && !out.contains(NODE_ROLE_NAME),
        "{what}: the node's credentials leaked:\n{out}"
    );
}

fn assert_role(run: &ClientRun, role: &str, what: &str, s: &Scenario) {
    assert_no_node_credentials(run, what);
    let arn = run.arn().unwrap_or_else(|| {
        panic!(
            "{what}: no caller identity:\n{}\nagent log:\n{}",
            run.all_output(),
            s.agent_log()
        )
    });
    assert!(
        arn.starts_with(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/")),
        "{what}: got {arn}, want role {role}"
    );
}

#[test]
fn each_pod_gets_exactly_its_own_role_from_the_aws_cli() {
    let s = Scenario::start(Options::default()).expect("scenario");
    for spec in PODS {
        for path in [CredPath::Imds, CredPath::ContainerCredentials] {
            let what = format!("{}/{} via {}", spec.namespace, spec.name, path.label());
            let run = s.aws_cli_identity(spec.name, path).expect("aws cli");
            match spec.role_name() {
                Some(role) => {
                    assert!(run.ok, "{what} failed:\n{}", run.all_output());
                    assert_role(&run, role, &what, &s);
                    // Session named after the pod (namespace@name).
                    let arn = run.arn().unwrap_or_default();
                    assert!(
                        arn.ends_with(&format!("/{}@{}", spec.namespace, spec.name)),
                        "{arn}"
                    );
                }
                None => {
                    assert!(
                        !run.ok,
                        "{what} unexpectedly got credentials:\n{}",
                        run.stdout
                    );
                    assert!(run.arn().is_none());
                    assert_no_node_credentials(&run, &what);
                }
            }
        }
    }
}

#[test]
fn boto3_and_the_rust_sdk_get_the_pod_role() {
    let s = Scenario::start(Options::default()).expect("scenario");
    let code =
        "import boto3, json; c = boto3.client('sts'); print(json.dumps(c.get_caller_identity()))";
    for path in [CredPath::Imds, CredPath::ContainerCredentials] {
        let run = s.python("app", "app", path, code).expect("python");
        assert!(run.ok, "boto3 via {}: {}", path.label(), run.all_output());
        assert_role(&run, "app-role", "boto3 app", &s);
        let run = s.rust_sdk("legacy", "legacy", path).expect("rust sdk");
        assert!(
            run.ok,
            "aws-config via {}: {}",
            path.label(),
            run.all_output()
        );
        assert_role(&run, "legacy-role", "aws-config legacy", &s);
    }
    let run = s
        .rust_sdk("none", "none", CredPath::Imds)
        .expect("rust sdk");
    assert!(!run.ok, "pod without role got credentials: {}", run.stdout);
    assert_no_node_credentials(&run, "aws-config none");
}

/// Raw HTTP from inside a pod, with Python's standard library: prints `STATUS BODY`.
const RAW_GET: &str = r#"
import sys, urllib.request, urllib.error
url, auth = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url)
if auth:
    req.add_header('Authorization', open(auth).read())
try:
    r = urllib.request.urlopen(req, timeout=5)
    print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except Exception as e:
    print('ERR', type(e).__name__, e)
"#;

fn raw_get(s: &Scenario, pod: &str, url: &str, token_file: Option<&str>) -> String {
    let (_, p) = s.pod(pod).expect("pod");
    let mut cmd = s.client(p, pod, CredPath::Imds, "python3").expect("cmd");
    let auth = token_file
        .map(|t| s.token_file(t).display().to_string())
        .unwrap_or_default();
    cmd.args(["-c", RAW_GET, url, &auth]);
    let out = cmd.output().expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_container_credentials_token_of_one_pod_is_refused_in_another() {
    let s = Scenario::start(Options::default()).expect("scenario");
    let url = "http://169.254.170.23/v1/credentials";
    let own = raw_get(&s, "app", url, Some("app"));
    assert!(
        own.starts_with("200 ") && own.contains("AccessKeyId"),
        "{own}"
    );
    let stolen = raw_get(&s, "legacy", url, Some("app"));
    assert!(
        stolen.starts_with("403 "),
        "token of app used in legacy: {stolen}"
    );
    assert!(!stolen.contains("AccessKeyId"), "{stolen}");
    assert!(
        stolen.contains("\"code\""),
        "error is JSON {{code, message}}: {stolen}"
    );
    // And through a real SDK: the CLI in legacy with app's token gets nothing.
    let (_, legacy) = s.pod("legacy").expect("pod");
    let mut cmd = s
        .client(legacy, "app", CredPath::ContainerCredentials, "aws")
        .expect("cmd");
    let out = cmd
        .args(["sts", "get-caller-identity"])
        .output()
        .expect("aws");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn imds_v2_required_refuses_v1_and_serves_v2() {
    let s = Scenario::start(Options {
        imds_v2_required: true,
    })
    .expect("scenario");
    let v1 = raw_get(
        &s,
        "app",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        None,
    );
    assert!(v1.starts_with("401"), "IMDSv1 in v2-required mode: {v1}");
    let run = s.aws_cli_identity("app", CredPath::Imds).expect("aws cli");
    assert!(run.ok, "{}", run.all_output());
    assert_role(&run, "app-role", "v2-required app", &s);
}

#[test]
fn a_pod_without_a_role_gets_404_on_both_surfaces() {
    let s = Scenario::start(Options::default()).expect("scenario");
    let list = raw_get(
        &s,
        "none",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        None,
    );
    assert!(
        list.starts_with("404"),
        "IMDS role list for a pod without role: {list}"
    );
    let creds = raw_get(
        &s,
        "none",
        "http://169.254.170.23/v1/credentials",
        Some("none"),
    );
    assert!(creds.starts_with("404 "), "container credentials: {creds}");
    assert!(creds.contains("\"code\""), "JSON error: {creds}");
    assert!(!creds.contains("AccessKeyId") && !list.contains(NODE_ROLE_NAME));
    let (status, metrics) = s.ops_get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("podiam_role_decisions_total")
                && l.contains("outcome=\"no-role\"")),
        "role decisions are counted:\n{metrics}"
    );
    let (status, ready) = s.ops_get("/readyz").expect("readyz");
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("\"datapath\""), "{ready}");
}

#[test]
fn non_credential_paths_never_reach_the_node() {
    let s = Scenario::start(Options::default()).expect("scenario");
    let base = "http://169.254.169.254/latest/";
    let region = raw_get(
        &s,
        "app",
        &format!("{base}meta-data/placement/region"),
        None,
    );
    assert_eq!(region, "200 us-east-1", "allow-listed path is forwarded");
    for path in [
        "user-data",
        "meta-data/iam/security-credentials/default-role",
        "meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        "meta-data/iam/../iam/security-credentials/default-role",
    ] {
        let got = raw_get(&s, "none", &format!("{base}{path}"), None);
        assert!(!got.starts_with("200"), "{path}: {got}");
        assert!(
            !got.contains("test-key") && !got.contains("AccessKeyId"),
            "{path}: {got}"
        );
    }
}

#[test]
fn agent_restart_fails_closed_then_serves_again() {
    let mut s = Scenario::start(Options::default()).expect("scenario");
    let before = s.aws_cli_identity("app", CredPath::Imds).expect("aws cli");
    assert_role(&before, "app-role", "before restart", &s);
    assert!(
        s.stop_agent(),
        "agent exits 0 on SIGTERM:\n{}",
        s.agent_log()
    );
    // Programs stay pinned: the connection is redirected to a closed port, never to IMDS.
    let down = raw_get(
        &s,
        "app",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        None,
    );
    assert!(down.starts_with("ERR"), "while the agent is down: {down}");
    assert!(
        down.contains("refused"),
        "connection refused while down: {down}"
    );
    s.start_agent().expect("restart");
    let after = s.aws_cli_identity("app", CredPath::Imds).expect("aws cli");
    assert!(after.ok, "{}", after.all_output());
    assert_role(&after, "app-role", "after restart", &s);
    let none = s.aws_cli_identity("none", CredPath::Imds).expect("aws cli");
    assert!(!none.ok);
    assert_no_node_credentials(&none, "none after restart");
}
