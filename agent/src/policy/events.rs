//! Kubernetes Events for refused roles (kiam's `KiamRoleForbidden` idea): a `core/v1` Event on
//! the pod, posted best-effort by [`EventRecorder`].
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};

use crate::inventory::PodInfo;

/// Event `reason` for a role refused by namespace restrictions.
pub const REASON_ROLE_FORBIDDEN: &str = "PodiamRoleForbidden";
/// Event `reason` for a pod with no usable role mapping.
pub const REASON_NO_ROLE: &str = "PodiamNoRole";
/// Reporting component name.
pub const COMPONENT: &str = "podiam";

/// Build a `Warning` Event on `pod` saying role `arn` was refused for `reason`.
/// `node` is the reporting host (`source.host`, `reportingInstance`); `now` the timestamp.
/// The name uses `generateName` (`<pod>.`), so the API server picks a unique one.
pub fn refused_role_event(
    pod: &PodInfo,
    arn: Option<&str>,
    reason: &str,
    node: Option<&str>,
    now: Time,
) -> Event {
    let (ev_reason, message) = match arn {
        Some(a) => (
            REASON_ROLE_FORBIDDEN,
            format!("podiam refused role {a}: {reason}"),
        ),
        None => (REASON_NO_ROLE, format!("podiam found no role: {reason}")),
    };
    // Event messages are capped at 1 KiB by the API server's validation.
    let message: String = message.chars().take(1024).collect();
    let prefix: String = pod.name.chars().take(200).collect();
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}.")),
            namespace: Some(pod.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..Default::default()
        },
        reason: Some(ev_reason.into()),
        message: Some(message),
        type_: Some("Warning".into()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: node.map(str::to_string),
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: node.map(str::to_string),
        ..Default::default()
    }
}

/// How long an identical Event (same pod UID, role and reason) is suppressed after posting.
pub const DEFAULT_EVENT_DEDUPE: Duration = Duration::from_secs(600);
/// (pod UID, role ARN or empty, reason).
type DedupeKey = (String, String, String);

/// Most suppression entries kept (oldest dropped beyond).
const DEDUPE_MAX: usize = 4096;

/// Posts refused-role Events through the Kubernetes API, best effort (failures are logged at
/// `warn` and otherwise ignored). Identical Events for one pod are posted at most once per
/// dedupe window, so an SDK polling IMDS cannot flood the API server.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    node: Option<String>,
    dedupe: Duration,
    recent: Arc<Mutex<HashMap<DedupeKey, Instant>>>,
}

impl EventRecorder {
    /// `node`: this node's name, reported as the Event source host. Dedupe window
    /// [`DEFAULT_EVENT_DEDUPE`].
    pub fn new(client: kube::Client, node: Option<String>) -> Self {
        Self {
            client,
            node,
            dedupe: DEFAULT_EVENT_DEDUPE,
            recent: Arc::default(),
        }
    }

    /// Change the dedupe window (zero: post every time).
    pub fn with_dedupe(mut self, window: Duration) -> Self {
        self.dedupe = window;
        self
    }

    /// `true` if this (pod, role, reason) was posted within the window; else remembers it.
    fn suppressed(&self, pod: &PodInfo, arn: Option<&str>, reason: &str) -> bool {
        if self.dedupe.is_zero() {
            return false;
        }
        let key = (
            pod.uid.clone(),
            arn.unwrap_or("").to_string(),
            reason.to_string(),
        );
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < self.dedupe)
        {
            return true;
        }
        if recent.len() >= DEDUPE_MAX {
            let window = self.dedupe;
            recent.retain(|_, t| now.duration_since(*t) < window);
            if recent.len() >= DEDUPE_MAX {
                recent.clear();
            }
        }
        recent.insert(key, now);
        false
    }

    /// Post an Event for a refused role (see [`refused_role_event`]). Returns whether an
    /// Event was posted and accepted (`false` when suppressed as a duplicate or on error).
    pub async fn record_refused(&self, pod: &PodInfo, arn: Option<&str>, reason: &str) -> bool {
        if self.suppressed(pod, arn, reason) {
            return false;
        }
        let ev = refused_role_event(
            pod,
            arn,
            reason,
            self.node.as_deref(),
            Time(k8s_openapi::jiff::Timestamp::now()),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(pod = %pod.name, ns = %pod.namespace, error = %e, "could not post Event");
                false
            }
        }
    }
}
