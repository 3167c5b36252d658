//! Assembles the agent from its modules: inventory, identity, policy, vending, surfaces.
//! Each step's failure names what is wrong (a flag, a missing mount, an unreachable API).
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

use super::args::{Args, IdentityKind, InventoryKind};
use super::background::ObservedResolver;
use crate::datapath::{self, Datapath, DatapathConfig, OriginLookup};
use crate::identity::{
    CallerResolver, IdentityMode, KernelCallerResolver, PeerIpCallerResolver, detect_cgroup2_mount,
    detect_mode,
};
use crate::imds::{HttpImdsUpstream, ImdsOptions};
use crate::inventory::{
    Inventory, KubeInventory, KubeInventoryConfig, KubeTokenReviewer, StaticInventory,
    client_default, client_for_url,
};
use crate::metrics::Metrics;
use crate::podidentity::{Hs256TokenValidator, PodIdentityOptions, TokenValidator};
use crate::policy::{
    EventRecorder, PolicyConfig, PolicyResolver, PolicySteps, RestrictionFormat, RoleResolver,
};
use crate::server::{AppState, Readiness, ReadinessCheck, ReadinessFlag, ServerConfig, Services};
use crate::vend::{AwsSts, StsClientConfig, VendCache, VendConfig, VendMetrics};

/// Everything `serve` needs.
pub(super) struct Parts {
    pub config: ServerConfig,
    pub state: Arc<AppState>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub cache: Arc<VendCache>,
    pub inventory: Arc<dyn Inventory>,
    pub policy: Arc<PolicyResolver>,
}

impl Parts {
    pub(super) async fn build(args: &Args, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let mut metrics = Metrics::new();
        let mut readiness = Readiness::new();

        let (inventory, validator, events) = inventory(args, &shutdown).await?;
        readiness.add(Arc::new(InventoryReadiness(inventory.clone())));

        let callers = callers(args, inventory.clone(), &mut metrics, &mut readiness)?;

        let policy = Arc::new(
            PolicyResolver::new(inventory.clone(), policy_config(args)?)
                .context("bad role flags (--base-role-arn / --default-role)")?,
        );
        let roles: Arc<dyn RoleResolver> = Arc::new(ObservedResolver {
            inner: policy.clone(),
            decisions: metrics.role_decisions.clone(),
            recorder: events,
        });

        let vend_metrics = VendMetrics::new();
        vend_metrics.register(metrics.registry_mut());
        let sts = AwsSts::from_default_chain(&StsClientConfig {
            region: args.region.clone(),
            endpoint_url: args.sts_endpoint.clone(),
            use_regional_endpoint: args.use_regional_sts_endpoint,
            ..StsClientConfig::default()
        })
        .await
        .context("setting up the STS client")?;
        let cache = Arc::new(VendCache::new(
            Arc::new(sts),
            VendConfig {
                session_duration: Duration::from_secs(args.session_duration),
                min_remaining: Duration::from_secs(args.min_remaining),
                cluster_name: args.cluster_name.clone(),
                cluster_arn: args.cluster_arn.clone(),
                ..VendConfig::default()
            },
            vend_metrics,
        ));

        let upstream = HttpImdsUpstream::new(&args.imds_endpoint, Duration::from_secs(2))
            .with_context(|| format!("bad --imds-endpoint {:?}", args.imds_endpoint))?;

        let config = server_config(args)?;
        let metrics = Arc::new(metrics);
        let state = Arc::new(AppState::new(
            &config,
            Services {
                callers,
                roles,
                credentials: cache.clone(),
                validator,
                upstream: Arc::new(upstream),
            },
            metrics.clone(),
        ));
        Ok(Self {
            config,
            state,
            metrics,
            readiness,
            cache,
            inventory,
            policy,
        })
    }
}

/// The inventory, the container-credentials token validator, and (Kubernetes only) the
/// Event recorder for refused roles.
type InventoryParts = (
    Arc<dyn Inventory>,
    Arc<dyn TokenValidator>,
    Option<EventRecorder>,
);

async fn inventory(args: &Args, shutdown: &CancellationToken) -> anyhow::Result<InventoryParts> {
    match args.inventory {
        InventoryKind::Static => {
            let Some(path) = &args.static_file else {
                bail!("--inventory static needs --static-file");
            };
            let inv = StaticInventory::load(path)
                .with_context(|| format!("loading static inventory {}", path.display()))?;
            let reload = inv.spawn_reload(Duration::from_secs(2));
            let token = shutdown.clone();
            tokio::spawn(async move {
                token.cancelled().await;
                reload.abort();
            });
            let validator: Arc<dyn TokenValidator> = match &args.static_token_key {
                Some(key) => Arc::new(
                    Hs256TokenValidator::from_key_file(key)
                        .with_context(|| format!("reading --static-token-key {}", key.display()))?,
                ),
                None => Arc::new(Hs256TokenValidator::refuse_all()),
            };
            Ok((inv, validator, None))
        }
        InventoryKind::Kubernetes => {
            let Some(node) = &args.node else {
                bail!("--inventory kubernetes needs --node (or NODE_NAME)");
            };
            let client = match &args.api_server {
                Some(url) => client_for_url(url)?,
                None => client_default()
                    .await
                    .context("no Kubernetes config (in-cluster or kubeconfig)")?,
            };
            let inv = KubeInventory::start(client.clone(), KubeInventoryConfig::new(node.clone()));
            let events = EventRecorder::new(client.clone(), Some(node.clone()));
            Ok((inv, Arc::new(KubeTokenReviewer::new(client)), Some(events)))
        }
    }
}

fn callers(
    args: &Args,
    inventory: Arc<dyn Inventory>,
    metrics: &mut Metrics,
    readiness: &mut Readiness,
) -> anyhow::Result<Arc<dyn CallerResolver>> {
    let timeout = Duration::from_millis(args.pod_lookup_timeout_ms);
    let flag = ReadinessFlag::new("identity");
    readiness.add(flag.clone());
    let (kind, why) = match args.identity {
        IdentityKind::Auto => {
            let root = detect_cgroup2_mount();
            let expect_kubepods =
                args.inventory == InventoryKind::Kubernetes && args.cgroup.is_none();
            match detect_mode(root.as_deref(), expect_kubepods) {
                (IdentityMode::Kernel, why) => (IdentityKind::Kernel, why),
                (IdentityMode::PeerIp, why) => (IdentityKind::PeerIp, why),
            }
        }
        other => (other, "chosen by --identity".to_owned()),
    };
    tracing::info!(identity = ?kind, reason = %why, "identity mode");
    // The redirect is what keeps pods away from the real IMDS, so it is attached in every
    // mode except an explicit `--identity peer-ip` (the operator redirects with iptables,
    // kube2iam-style). If the cgroup layout only allows peer-IP identity, pods are still
    // redirected: only the identification degrades, never the interception.
    let datapath = if args.identity == IdentityKind::PeerIp {
        None
    } else {
        let root = datapath::find_cgroup2_root()?;
        let dp = Arc::new(Datapath::attach(&datapath_config(args, &root)?)?);
        metrics.registry_mut().register_collector(Box::new(
            datapath::collector::CountersCollector::new(dp.clone()),
        ));
        readiness.add(Arc::new(DatapathReadiness(dp.pin_dir().to_path_buf())));
        Some((dp, root))
    };
    match (kind, datapath) {
        (IdentityKind::Kernel, Some((dp, root))) => {
            flag.set(true, format!("kernel: {why}"));
            let origins: Arc<dyn OriginLookup> = dp;
            Ok(Arc::new(
                KernelCallerResolver::new(origins, inventory, root)
                    .with_pod_lookup_timeout(timeout),
            ))
        }
        (_, datapath) => {
            let redirect = if datapath.is_some() {
                "eBPF redirect attached"
            } else {
                "no eBPF redirect: pods must be redirected with iptables"
            };
            tracing::warn!(reason = %why, redirect, "identity by peer IP (kube2iam semantics)");
            flag.set(
                true,
                format!("peer-ip: caller identified by source IP ({why}); {redirect}"),
            );
            Ok(Arc::new(
                PeerIpCallerResolver::new(inventory).with_pod_lookup_timeout(timeout),
            ))
        }
    }
}

/// `/readyz` check: the programs are still attached and pinned (re-read on every probe, so
/// a `podiam uninstall` or lost pins under a running agent turn it unready).
struct DatapathReadiness(std::path::PathBuf);

impl ReadinessCheck for DatapathReadiness {
    fn name(&self) -> &str {
        "datapath"
    }
    fn status(&self) -> crate::server::CheckStatus {
        let (ready, detail) = match Datapath::status(&self.0) {
            Ok(s) if s.attached() => (true, format!("attached, pinned at {}", self.0.display())),
            Ok(_) => (
                false,
                format!("programs not attached (pins at {})", self.0.display()),
            ),
            Err(e) => (false, format!("{e}")),
        };
        crate::server::CheckStatus { ready, detail }
    }
}

fn datapath_config(args: &Args, root: &std::path::Path) -> anyhow::Result<DatapathConfig> {
    let IpAddr::V4(v4) = args.host_ip else {
        bail!("--host-ip must be an IPv4 address (use --host-ipv6 for IPv6)");
    };
    Ok(DatapathConfig {
        cgroup: args.cgroup.clone().unwrap_or_else(|| root.to_path_buf()),
        pin_dir: args.pin_dir.clone(),
        redirect_v4: SocketAddrV4::new(v4, args.app_port),
        redirect_v6: args
            .host_ipv6
            .map(|ip| SocketAddrV6::new(ip, args.app_port, 0, 0)),
        host_netns_cookie: datapath::sys::current_netns_cookie()
            .map_err(datapath::DatapathError::HostNetnsCookie)?,
        agent_mark: args.agent_mark,
        intercepts: DatapathConfig::default_intercepts(),
    })
}

fn policy_config(args: &Args) -> anyhow::Result<PolicyConfig> {
    let restriction_format: RestrictionFormat = args
        .namespace_restriction_format
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    Ok(PolicyConfig {
        base_role_arn: args.base_role_arn.clone(),
        default_role: args.default_role.clone(),
        iam_role_key: args.iam_role_key.clone(),
        iam_external_id_key: args.iam_external_id.clone(),
        namespace_restrictions: args.namespace_restrictions,
        namespace_key: args.namespace_key.clone(),
        restriction_format,
        steps: PolicySteps {
            associations: !args.disable_associations,
            sa_annotation: !args.disable_sa_annotation,
            pod_annotation: !args.disable_pod_annotation,
            default_role: true,
        },
    })
}

fn server_config(args: &Args) -> anyhow::Result<ServerConfig> {
    let mut proxy_addrs = vec![SocketAddr::new(args.host_ip, args.app_port)];
    if let Some(v6) = args.host_ipv6 {
        proxy_addrs.push(SocketAddr::new(IpAddr::V6(v6), args.app_port));
    }
    let mut imds = ImdsOptions {
        v2_required: args.imds_v2_required,
        ..ImdsOptions::default()
    };
    imds.allow_list.extend(args.imds_allow.iter().cloned());
    Ok(ServerConfig {
        proxy_addrs,
        ops_addr: SocketAddr::new(args.ops_bind, args.ops_port),
        imds,
        pod_identity: PodIdentityOptions {
            audience: args.audience.clone(),
            ..PodIdentityOptions::default()
        },
        ..ServerConfig::default()
    })
}

/// `/readyz` check: the inventory has synced and is not stale.
struct InventoryReadiness(Arc<dyn Inventory>);

impl ReadinessCheck for InventoryReadiness {
    fn name(&self) -> &str {
        "inventory"
    }
    fn status(&self) -> crate::server::CheckStatus {
        let inv = &self.0;
        let (ready, detail) = match (inv.synced(), inv.stale()) {
            (false, _) => (
                false,
                format!("{}: initial sync pending", inv.source_name()),
            ),
            (true, Some(why)) => (false, format!("{}: stale: {why}", inv.source_name())),
            (true, None) => (true, format!("{}: synced", inv.source_name())),
        };
        crate::server::CheckStatus { ready, detail }
    }
}
