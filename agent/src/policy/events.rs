//! Kubernetes Events for refused roles (kiam's `KiamRoleForbidden` idea): a `core/v1` Event on
//! the pod, posted best-effort by [`EventRecorder`].
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

/// Posts refused-role Events through the Kubernetes API, best effort (failures are logged at
/// `warn` and otherwise ignored).
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    node: Option<String>,
}

impl EventRecorder {
    /// `node`: this node's name, reported as the Event source host.
    pub fn new(client: kube::Client, node: Option<String>) -> Self {
        Self { client, node }
    }

    /// Post an Event for a refused role (see [`refused_role_event`]). Returns whether the API
    /// server accepted it.
    pub async fn record_refused(&self, pod: &PodInfo, arn: Option<&str>, reason: &str) -> bool {
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
