//! Background work of the agent: prefetch credentials for mapped pods as they appear, drop
//! the sessions of pods that are gone, and record Kubernetes Events for refused roles.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::identity::Caller;
use crate::inventory::Inventory;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::DecisionLabels;
use crate::policy::{EventRecorder, PolicyResolver, RoleDecision, RoleResolver, RoleSource};
use crate::vend::VendCache;

/// How often the inventory is scanned for new pods.
const SCAN_INTERVAL: Duration = Duration::from_secs(2);
/// Sessions of deleted pods are dropped every this many scans (30 s).
const SWEEP_EVERY: u32 = 15;

/// Scans the inventory every [`SCAN_INTERVAL`]: a pod seen for the first time with a role
/// gets its session fetched ahead of its first request (`prefetch`), and every 30 s sessions
/// of pods no longer in the inventory are evicted (their background refresh stops).
pub(super) fn spawn_session_keeper(
    inventory: Arc<dyn Inventory>,
    policy: Arc<PolicyResolver>,
    cache: Arc<VendCache>,
    prefetch: bool,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut tick = tokio::time::interval(SCAN_INTERVAL);
        let mut n: u32 = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            n = n.wrapping_add(1);
            if prefetch {
                let pods = inventory.pods();
                let live: HashSet<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
                seen.retain(|(uid, _)| live.contains(uid.as_str()));
                for pod in &pods {
                    if let RoleDecision::Role(role) = policy.decide(pod)
                        && seen.insert((pod.uid.clone(), role.arn.clone()))
                    {
                        tracing::debug!(pod = %pod.name, ns = %pod.namespace, role = %role.arn, "prefetching");
                        cache.prefetch(pod.clone(), &role);
                    }
                }
            }
            if n.is_multiple_of(SWEEP_EVERY) {
                let dropped = cache.retain_pods(|uid| inventory.pod_by_uid(uid).is_some());
                if dropped > 0 {
                    tracing::info!(dropped, "evicted sessions of deleted pods");
                }
            }
        }
    })
}

/// A [`RoleResolver`] that counts every decision in `podiam_role_decisions_total` and, with
/// the Kubernetes inventory, records an Event on the pod when its role is refused (namespace
/// restriction), best effort and rate-limited by [`EventRecorder`].
pub(super) struct ObservedResolver {
    pub inner: Arc<PolicyResolver>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub recorder: Option<EventRecorder>,
}

fn source_label(source: RoleSource) -> &'static str {
    match source {
        RoleSource::Association => "association",
        RoleSource::ServiceAccountAnnotation => "service-account-annotation",
        RoleSource::PodAnnotation => "pod-annotation",
        RoleSource::DefaultRole => "default-role",
        RoleSource::StaticFile => "static-file",
    }
}

#[async_trait::async_trait]
impl RoleResolver for ObservedResolver {
    async fn resolve_role(&self, caller: &Caller) -> RoleDecision {
        let decision = self.inner.resolve_role(caller).await;
        let labels = match &decision {
            RoleDecision::Role(r) => DecisionLabels {
                outcome: "role",
                source: source_label(r.source),
            },
            RoleDecision::NoRole { .. } => DecisionLabels {
                outcome: "no-role",
                source: "none",
            },
            RoleDecision::Denied { .. } => DecisionLabels {
                outcome: "denied",
                source: "none",
            },
        };
        self.decisions.get_or_create(&labels).inc();
        if let RoleDecision::Denied { arn, reason } = &decision {
            tracing::warn!(pod = %caller.pod.name, ns = %caller.pod.namespace, role = %arn, %reason, "role refused");
            let Some(recorder) = self.recorder.clone() else {
                return decision;
            };
            let pod = caller.pod.clone();
            let (arn, reason) = (arn.clone(), reason.clone());
            tokio::spawn(async move {
                recorder.record_refused(&pod, Some(&arn), &reason).await;
            });
        }
        decision
    }
}
