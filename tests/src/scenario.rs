//! The end-to-end scenario shared by `cargo xtask demo` (bin `podiam-demo`) and the
//! end-to-end tests: a simulated node running moto's server (as STS and as the "real" IMDS)
//! and the `podiam agent` process with a static inventory, and three pods:
//! - `ns-a/app`: mapped through an association (service account `app` → `app-role`);
//! - `ns-b/legacy`: kube2iam pod annotation `iam.amazonaws.com/role: legacy-role`
//!   (relative to `--base-role-arn`), allowed by the namespace's `allowed-roles`;
//! - `ns-c/none`: no role.
//!
//! Clients run inside the pods' network namespaces and cgroups with a clean environment:
//! no AWS credentials, no config files; STS calls go to moto on the node's bridge address.
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use podiam::inventory::derived_uid;
use podiam::podidentity::{Hs256TokenValidator, TokenClaims};

use crate::{Node, Pod};

/// Account of every role in the scenario (moto's default account).
pub const ACCOUNT: &str = "123456789012";
/// Port moto listens on, in the node netns (all addresses).
pub const MOTO_PORT: u16 = 5000;
/// Operations port of the agent (node netns loopback).
pub const OPS_PORT: u16 = 8182;
/// Access key of the agent's own ("node role") credentials; must never reach a pod.
pub const NODE_ACCESS_KEY: &str = "AKIANODEROLEXXXXXXXX";
/// The role moto's IMDS reports for the node; must never reach a pod.
pub const NODE_ROLE_NAME: &str = "default-role";

/// How a pod is mapped to a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Association (namespace, service account) → role ARN (Pod Identity style).
    Association(&'static str),
    /// kube2iam pod annotation with a role name relative to the base ARN.
    PodAnnotation(&'static str),
    /// No role.
    None,
}

/// One simulated pod of the scenario.
#[derive(Clone, Copy, Debug)]
pub struct PodSpec {
    /// Pod (and cgroup/netns) name.
    pub name: &'static str,
    /// Namespace.
    pub namespace: &'static str,
    /// Service account.
    pub service_account: &'static str,
    /// Its mapping.
    pub mapping: Mapping,
}

impl PodSpec {
    /// Pod UID as the static inventory derives it.
    pub fn uid(&self) -> String {
        derived_uid(self.namespace, self.name)
    }

    /// The role name the pod should get, if any.
    pub fn role_name(&self) -> Option<&'static str> {
        match self.mapping {
            Mapping::Association(r) | Mapping::PodAnnotation(r) => Some(r),
            Mapping::None => None,
        }
    }
}

/// The three pods of the demo.
pub const PODS: [PodSpec; 3] = [
    PodSpec {
        name: "app",
        namespace: "ns-a",
        service_account: "app",
        mapping: Mapping::Association("app-role"),
    },
    PodSpec {
        name: "legacy",
        namespace: "ns-b",
        service_account: "default",
        mapping: Mapping::PodAnnotation("legacy-role"),
    },
    PodSpec {
        name: "none",
        namespace: "ns-c",
        service_account: "default",
        mapping: Mapping::None,
    },
];

/// Scenario switches.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Start the agent with `--imds-v2-required`.
    pub imds_v2_required: bool,
}

/// Which credential path a client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredPath {
    /// The default chain reaching IMDS at 169.254.169.254.
    Imds,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials` + token file.
    ContainerCredentials,
}

impl CredPath {
    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            CredPath::Imds => "IMDS",
            CredPath::ContainerCredentials => "container credentials",
        }
    }
}

/// A process killed (SIGTERM, then SIGKILL) when dropped.
pub struct ChildGuard {
    child: Option<Child>,
    name: &'static str,
}

impl ChildGuard {
    /// Guards `child`, named `name` in messages.
    pub fn new(child: Child, name: &'static str) -> Self {
        Self {
            child: Some(child),
            name,
        }
    }

    /// Sends SIGTERM and waits up to 10 s (then SIGKILL). Returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("{} did not stop on SIGTERM; killing it", self.name);
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// The process id while it is guarded.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

/// A running scenario. Dropping it stops the agent and moto and removes pods, node,
/// cgroups, pins and files.
pub struct Scenario {
    /// The agent (None while stopped).
    agent: Option<ChildGuard>,
    moto: ChildGuard,
    /// The pods, in [`PODS`] order.
    pub pods: Vec<(PodSpec, Pod)>,
    /// The node.
    pub node: Node,
    tokens: Hs256TokenValidator,
    options: Options,
    dir: tempfile::TempDir,
}

/// A random HS256 key as 64 hex characters: a text key, so that the key file's content is
/// the key exactly (the agent strips a trailing newline from key files, which would shorten
/// a raw binary key ending in 0x0a).
fn fresh_key() -> Vec<u8> {
    let mut raw = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut raw);
    }
    raw.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes()
}

impl Scenario {
    /// Creates the node and pods, starts moto and the agent, and waits until the agent is
    /// ready.
    pub fn start(options: Options) -> anyhow::Result<Scenario> {
        let node = Node::new()?;
        let dir = tempfile::Builder::new().prefix("podiam-e2e-").tempdir()?;
        let mut pods = Vec::new();
        for spec in PODS {
            pods.push((spec, node.add_pod(spec.name)?));
        }
        let key = fresh_key();
        std::fs::write(dir.path().join("token.key"), &key)?;
        let tokens = Hs256TokenValidator::new(key).context("token key")?;
        let moto = start_moto(&node, dir.path())?;
        let mut s = Scenario {
            agent: None,
            moto,
            pods,
            node,
            tokens,
            options,
            dir,
        };
        s.write_inventory()?;
        s.write_tokens()?;
        s.start_agent()?;
        Ok(s)
    }

    /// The scenario's working directory (inventory, tokens, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The agent's log so far.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The pod named `name`.
    pub fn pod(&self, name: &str) -> anyhow::Result<&(PodSpec, Pod)> {
        self.pods
            .iter()
            .find(|(s, _)| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("no pod {name}"))
    }

    fn write_inventory(&self) -> anyhow::Result<()> {
        let root = podiam::datapath::find_cgroup2_root()?;
        let mut yaml = String::from(
            "# podiam static inventory for the simulated node\n\
             namespaces:\n  ns-b:\n    annotations:\n      iam.amazonaws.com/allowed-roles: '[\"legacy-*\"]'\n\
             associations:\n",
        );
        for (spec, _) in &self.pods {
            if let Mapping::Association(role) = spec.mapping {
                yaml += &format!(
                    "  - namespace: {}\n    serviceAccount: {}\n    roleArn: arn:aws:iam::{ACCOUNT}:role/{role}\n",
                    spec.namespace, spec.service_account
                );
            }
        }
        yaml += "workloads:\n";
        for (spec, pod) in &self.pods {
            let rel = pod
                .cgroup()
                .strip_prefix(&root)
                .context("pod cgroup outside the cgroup2 root")?;
            yaml += &format!(
                "  - name: {}\n    namespace: {}\n    serviceAccount: {}\n    cgroupPath: /{}\n    ips: [{}, {}]\n",
                spec.name,
                spec.namespace,
                spec.service_account,
                rel.display(),
                pod.ipv4(),
                pod.ipv6()
            );
            if let Mapping::PodAnnotation(role) = spec.mapping {
                yaml += &format!("    annotations:\n      iam.amazonaws.com/role: {role}\n");
            }
        }
        std::fs::write(self.dir.path().join("inventory.yaml"), yaml)?;
        Ok(())
    }

    /// Path of the container-credentials token file of pod `name`.
    pub fn token_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.token"))
    }

    fn write_tokens(&self) -> anyhow::Result<()> {
        for (spec, _) in &self.pods {
            let claims = TokenClaims {
                namespace: spec.namespace.into(),
                service_account: spec.service_account.into(),
                pod_name: spec.name.into(),
                pod_uid: spec.uid(),
            };
            let token = self
                .tokens
                .mint(&claims, "pods.eks.amazonaws.com", 86400)
                .context("minting a token")?;
            std::fs::write(self.token_file(spec.name), token)?;
        }
        Ok(())
    }

    /// Starts the agent and waits for `/readyz` (up to 60 s).
    pub fn start_agent(&mut self) -> anyhow::Result<()> {
        let bin = crate::bins::podiam_bin()?;
        let mut cmd = agent_command(
            &self.node,
            &self.dir.path().join("agent.log"),
            &self.dir.path().join("inventory.yaml"),
            8181,
            OPS_PORT,
        )?;
        cmd.args(["--host-ipv6", "fd00:200::1"])
            .arg("--static-token-key")
            .arg(self.dir.path().join("token.key"))
            .args(["--base-role-arn", &format!("arn:aws:iam::{ACCOUNT}:role/")])
            .arg("--namespace-restrictions")
            .args(["--cluster-name", "demo"])
            .args(["--log-level", "info"]);
        if self.options.imds_v2_required {
            cmd.arg("--imds-v2-required");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut guard = ChildGuard::new(child, "podiam agent");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if !guard.running() {
                bail!("the agent exited during start-up:\n{}", self.agent_log());
            }
            if let Ok((200, _)) = self.ops_get("/readyz") {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the agent did not become ready in 60 s:\n{}",
                    self.agent_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.agent = Some(guard);
        Ok(())
    }

    /// Stops the agent with SIGTERM; returns whether it exited cleanly. The datapath stays
    /// pinned.
    pub fn stop_agent(&mut self) -> bool {
        self.agent
            .take()
            .map(|mut a| a.terminate())
            .unwrap_or(false)
    }

    /// `GET path` on the agent's operations listener: (status, body).
    pub fn ops_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let path = path.to_owned();
        self.node
            .run_in_netns(move || http_get(SocketAddr::from(([127, 0, 0, 1], OPS_PORT)), &path))?
    }

    /// A command in pod `pod` with a clean environment for AWS clients using `path`.
    pub fn client(
        &self,
        pod: &Pod,
        token_of: &str,
        path: CredPath,
        program: &str,
    ) -> anyhow::Result<Command> {
        let mut cmd = pod.command(program)?;
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home)?;
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env(
                "AWS_ENDPOINT_URL_STS",
                format!("http://10.200.0.1:{MOTO_PORT}"),
            )
            .env("AWS_METADATA_SERVICE_TIMEOUT", "2")
            .env("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "2")
            .stdin(Stdio::null());
        if path == CredPath::ContainerCredentials {
            cmd.env(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            )
            .env(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                self.token_file(token_of),
            );
        }
        Ok(cmd)
    }

    /// Runs `aws sts get-caller-identity` in pod `name` through `path`.
    pub fn aws_cli_identity(&self, name: &str, path: CredPath) -> anyhow::Result<ClientRun> {
        let (_, pod) = self.pod(name)?;
        let mut cmd = self.client(pod, name, path, "aws")?;
        cmd.args(["sts", "get-caller-identity", "--output", "json"]);
        ClientRun::run(cmd)
    }

    /// Runs the Rust SDK client (`podiam-sdk-probe`, aws-config default chain) in pod `name`
    /// through `path`, with the token of `token_of` for container credentials.
    pub fn rust_sdk(
        &self,
        name: &str,
        token_of: &str,
        path: CredPath,
    ) -> anyhow::Result<ClientRun> {
        let (_, pod) = self.pod(name)?;
        let bin = crate::bins::find("podiam-sdk-probe", "PODIAM_SDK_PROBE_BIN")?;
        let cmd = self.client(
            pod,
            token_of,
            path,
            bin.as_os_str().to_str().unwrap_or_default(),
        )?;
        ClientRun::run(cmd)
    }

    /// Runs a Python (boto3) snippet in pod `name` through `path`, with the token of
    /// `token_of` for container credentials.
    pub fn python(
        &self,
        name: &str,
        token_of: &str,
        path: CredPath,
        code: &str,
    ) -> anyhow::Result<ClientRun> {
        let (_, pod) = self.pod(name)?;
        let mut cmd = self.client(pod, token_of, path, "python3")?;
        cmd.args(["-c", code]);
        ClientRun::run(cmd)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.stop_agent();
        self.moto.terminate();
        // The node (and pods) tear down after this: pins, cgroups, namespaces.
    }
}

/// `podiam agent` as the simulated node runs it: in the node netns and cgroup, proxy on
/// 10.200.0.1:`app_port`, operations on 127.0.0.1:`ops_port`, the datapath on the node's
/// cgroup and pin dir, the static inventory `inventory`, moto (node loopback) as STS and
/// IMDS, the node's own credentials in the environment, output appended to `log`. Callers
/// add their own flags (a later `--log-level` wins).
pub fn agent_command(
    node: &Node,
    log: &Path,
    inventory: &Path,
    app_port: u16,
    ops_port: u16,
) -> anyhow::Result<Command> {
    let bin = crate::bins::podiam_bin()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = node.command(&bin)?;
    cmd.arg("agent")
        .args(["--host-ip", "10.200.0.1"])
        .args(["--app-port", &app_port.to_string()])
        .args([
            "--ops-bind",
            "127.0.0.1",
            "--ops-port",
            &ops_port.to_string(),
        ])
        .arg("--cgroup")
        .arg(node.cgroup())
        .arg("--pin-dir")
        .arg(node.pin_dir())
        .args(["--inventory", "static", "--static-file"])
        .arg(inventory)
        .args(["--region", "us-east-1"])
        .args(["--sts-endpoint", &format!("http://127.0.0.1:{MOTO_PORT}")])
        .args(["--imds-endpoint", &format!("http://127.0.0.1:{MOTO_PORT}")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", NODE_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "node-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

/// The outcome of one client run inside a pod.
#[derive(Debug)]
pub struct ClientRun {
    /// Exit status was 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time of the whole client process.
    pub elapsed: Duration,
}

impl ClientRun {
    fn run(mut cmd: Command) -> anyhow::Result<ClientRun> {
        let start = Instant::now();
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().context("running a client in a pod")?;
        Ok(ClientRun {
            ok: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: start.elapsed(),
        })
    }

    /// The `Arn` of a `get-caller-identity` JSON answer.
    pub fn arn(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.stdout).ok()?;
        v.get("Arn")?.as_str().map(str::to_owned)
    }

    /// Everything the client printed.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Starts `moto_server` on [`MOTO_PORT`] (all addresses) in `node`'s netns, logging to
/// `dir/moto.log`, and waits (up to 30 s) until it answers.
pub fn start_moto(node: &Node, dir: &Path) -> anyhow::Result<ChildGuard> {
    let log = std::fs::File::create(dir.join("moto.log"))?;
    let mut cmd = node.command("moto_server")?;
    cmd.args(["-H", "0.0.0.0", "-p", &MOTO_PORT.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = cmd
        .spawn()
        .context("starting moto_server (run `cargo xtask setup`; it must be on PATH)")?;
    let mut guard = ChildGuard::new(child, "moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = node.run_in_netns(|| {
            http_get(SocketAddr::from(([127, 0, 0, 1], MOTO_PORT)), "/moto-api/").is_ok()
        })?;
        if up {
            return Ok(guard);
        }
        if !guard.running() || Instant::now() > deadline {
            bail!(
                "moto_server did not start:\n{}",
                std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Minimal HTTP/1.1 GET (Connection: close) for readiness polling: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status in {buf:?}"))?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
