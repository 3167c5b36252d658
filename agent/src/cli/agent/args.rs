//! Flags of `podiam agent`. Names follow kube2iam where they mean the same thing
//! (`--base-role-arn`, `--default-role`, `--iam-role-key`, `--iam-external-id`,
//! `--namespace-restrictions`, `--namespace-key`, `--namespace-restriction-format`,
//! `--app-port`, `--host-ip`, `--node`, `--use-regional-sts-endpoint`, `--log-format`,
//! `--log-level`); every flag can also be set from the environment.
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use crate::datapath::DEFAULT_PIN_DIR;

/// Where pods, service accounts and role mappings come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InventoryKind {
    /// kube-rs reflectors (pods on this node, namespaces, service accounts, associations).
    Kubernetes,
    /// A static YAML file (`--static-file`).
    Static,
}

/// How callers are identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentityKind {
    /// `kernel` where a cgroup v2 hierarchy holds the pods, else `peer-ip` (logged and
    /// reported on `/readyz`).
    Auto,
    /// eBPF redirect + origin records (cgroup → pod UID). Needs cgroup v2.
    Kernel,
    /// kube2iam semantics: peer IP → pod; no eBPF datapath (the operator redirects with an
    /// iptables DNAT rule). For cgroup v1 hosts.
    PeerIp,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `podiam agent` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node IPv4 address: the proxy listens here and the eBPF programs redirect to it
    /// (downward API `status.hostIP`).
    #[arg(long, env = "HOST_IP")]
    pub host_ip: IpAddr,
    /// Node IPv6 address for native IPv6 metadata connections; without it they are refused.
    #[arg(long, env = "HOST_IPV6")]
    pub host_ipv6: Option<Ipv6Addr>,
    /// Proxy port on the node address.
    #[arg(long, env = "PODIAM_APP_PORT", default_value_t = 8181)]
    pub app_port: u16,
    /// Operations listener (`/healthz`, `/readyz`, `/metrics`) address.
    #[arg(long, env = "PODIAM_OPS_BIND", default_value = "0.0.0.0")]
    pub ops_bind: IpAddr,
    /// Operations listener port.
    #[arg(long, env = "PODIAM_OPS_PORT", default_value_t = 8182)]
    pub ops_port: u16,
    /// This node's name (downward API `spec.nodeName`); pods are watched with
    /// `spec.nodeName=<node>`. Required with `--inventory kubernetes`.
    #[arg(long, env = "NODE_NAME")]
    pub node: Option<String>,

    /// Caller identification.
    #[arg(long, env = "PODIAM_IDENTITY", value_enum, default_value = "auto")]
    pub identity: IdentityKind,
    /// cgroup v2 directory the programs attach to (default: the cgroup2 root).
    #[arg(long, env = "PODIAM_CGROUP")]
    pub cgroup: Option<PathBuf>,
    /// bpffs directory for link and map pins.
    #[arg(long, env = "PODIAM_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// SO_MARK exempted from the redirect (0: none).
    #[arg(long, env = "PODIAM_AGENT_MARK", default_value_t = 0)]
    pub agent_mark: u32,
    /// How long an unknown caller is held while the inventory catches up, in milliseconds.
    #[arg(long, env = "PODIAM_POD_LOOKUP_TIMEOUT_MS", default_value_t = 2000)]
    pub pod_lookup_timeout_ms: u64,

    /// Inventory source.
    #[arg(
        long,
        env = "PODIAM_INVENTORY",
        value_enum,
        default_value = "kubernetes"
    )]
    pub inventory: InventoryKind,
    /// Static inventory file (with `--inventory static`).
    #[arg(long, env = "PODIAM_STATIC_FILE")]
    pub static_file: Option<PathBuf>,
    /// HS256 key file for container-credentials tokens with `--inventory static`
    /// (no TokenReview without Kubernetes).
    #[arg(long, env = "PODIAM_STATIC_TOKEN_KEY")]
    pub static_token_key: Option<PathBuf>,
    /// Kubernetes API server URL (default: in-cluster config or kubeconfig).
    #[arg(long, env = "PODIAM_API_SERVER")]
    pub api_server: Option<String>,

    /// kube2iam `--base-role-arn`: prefix for role names in annotations.
    #[arg(long, env = "PODIAM_BASE_ROLE_ARN")]
    pub base_role_arn: Option<String>,
    /// kube2iam `--default-role` (off by default; subject to namespace restrictions).
    #[arg(long, env = "PODIAM_DEFAULT_ROLE")]
    pub default_role: Option<String>,
    /// Pod annotation naming the role.
    #[arg(
        long,
        env = "PODIAM_IAM_ROLE_KEY",
        default_value = "iam.amazonaws.com/role"
    )]
    pub iam_role_key: String,
    /// Pod annotation naming the external ID.
    #[arg(
        long,
        env = "PODIAM_IAM_EXTERNAL_ID",
        default_value = "iam.amazonaws.com/external-id"
    )]
    pub iam_external_id: String,
    /// Restrict annotation and default roles to the namespace's allow-list.
    #[arg(long, env = "PODIAM_NAMESPACE_RESTRICTIONS")]
    pub namespace_restrictions: bool,
    /// Namespace annotation holding the allow-list (JSON array).
    #[arg(
        long,
        env = "PODIAM_NAMESPACE_KEY",
        default_value = "iam.amazonaws.com/allowed-roles"
    )]
    pub namespace_key: String,
    /// Pattern syntax of the allow-list: `glob` or `regexp` (anchored against the full ARN).
    #[arg(
        long,
        env = "PODIAM_NAMESPACE_RESTRICTION_FORMAT",
        default_value = "glob"
    )]
    pub namespace_restriction_format: String,
    /// Skip step 1 (PodIdentityAssociation).
    #[arg(long, env = "PODIAM_DISABLE_ASSOCIATIONS")]
    pub disable_associations: bool,
    /// Skip step 2 (service account annotation `eks.amazonaws.com/role-arn`).
    #[arg(long, env = "PODIAM_DISABLE_SA_ANNOTATION")]
    pub disable_sa_annotation: bool,
    /// Skip step 3 (pod annotation, kube2iam).
    #[arg(long, env = "PODIAM_DISABLE_POD_ANNOTATION")]
    pub disable_pod_annotation: bool,

    /// Cluster name for the `eks-cluster-name` session tag.
    #[arg(long, env = "PODIAM_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Cluster ARN for the `eks-cluster-arn` session tag.
    #[arg(long, env = "PODIAM_CLUSTER_ARN")]
    pub cluster_arn: Option<String>,
    /// Requested session duration in seconds (900–43200; chained sessions are capped at 3600).
    #[arg(long, env = "PODIAM_SESSION_DURATION", default_value_t = 3600)]
    pub session_duration: u64,
    /// Minimum remaining lifetime of served credentials, in seconds.
    #[arg(long, env = "PODIAM_MIN_REMAINING", default_value_t = 1800)]
    pub min_remaining: u64,
    /// Fetch credentials for a mapped pod as soon as it appears, before its first request
    /// (`--prefetch=false` to fetch on first request only).
    #[arg(long, env = "PODIAM_PREFETCH", default_value_t = true,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prefetch: bool,
    /// AWS region for STS (default: AWS_REGION, profile, or IMDS).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// STS endpoint override (tests).
    #[arg(long, env = "PODIAM_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// Use the regional STS endpoint (`--use-regional-sts-endpoint=false` for the global one).
    #[arg(long, env = "PODIAM_USE_REGIONAL_STS_ENDPOINT", default_value_t = true,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub use_regional_sts_endpoint: bool,

    /// The real IMDS, for allow-listed paths.
    #[arg(
        long,
        env = "PODIAM_IMDS_ENDPOINT",
        default_value = "http://169.254.169.254"
    )]
    pub imds_endpoint: String,
    /// Refuse IMDSv1 requests (401 without a token), like `HttpTokens=required`.
    #[arg(long, env = "PODIAM_IMDS_V2_REQUIRED")]
    pub imds_v2_required: bool,
    /// Extra IMDS paths to forward, relative to the version (e.g. `meta-data/tags/instance`).
    #[arg(long = "imds-allow", env = "PODIAM_IMDS_ALLOW", value_delimiter = ',')]
    pub imds_allow: Vec<String>,
    /// Audience required of container-credentials tokens.
    #[arg(
        long,
        env = "PODIAM_AUDIENCE",
        default_value = "pods.eks.amazonaws.com"
    )]
    pub audience: String,

    /// Log format.
    #[arg(long, env = "PODIAM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log level or filter directive (e.g. `info`, `podiam=debug`).
    #[arg(long, env = "PODIAM_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}
