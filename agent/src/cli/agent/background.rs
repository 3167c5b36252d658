//! Background work of the agent: prefetch credentials for mapped pods as they appear, drop
//! the sessions of pods that are gone, and record Kubernetes Events for refused roles.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::identity::Caller;
use crate::inventory::Inventory;
use crate::policy::{EventRecorder, PolicyResolver, RoleDecision, RoleResolver};
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

/// A [`RoleResolver`] that records a Kubernetes Event on the pod when its role is refused
/// (namespace restriction), best effort and rate-limited by [`EventRecorder`].
pub(super) struct EventingResolver {
    pub inner: Arc<PolicyResolver>,
    pub recorder: EventRecorder,
}

#[async_trait::async_trait]
impl RoleResolver for EventingResolver {
    async fn resolve_role(&self, caller: &Caller) -> RoleDecision {
        let decision = self.inner.resolve_role(caller).await;
        if let RoleDecision::Denied { arn, reason } = &decision {
            tracing::warn!(pod = %caller.pod.name, ns = %caller.pod.namespace, role = %arn, %reason, "role refused");
            let recorder = self.recorder.clone();
            let pod = caller.pod.clone();
            let (arn, reason) = (arn.clone(), reason.clone());
            tokio::spawn(async move {
                recorder.record_refused(&pod, Some(&arn), &reason).await;
            });
        }
        decision
    }
}
