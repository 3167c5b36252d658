//! JSON builders for the objects the fake API server stores.
use serde_json::{Value, json};

/// A Pod object as the API server returns it.
pub fn pod(
    ns: &str,
    name: &str,
    uid: &str,
    node: &str,
    ip: Option<&str>,
    annotations: &[(&str, &str)],
) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut status = json!({"phase": "Running"});
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "uid": uid, "annotations": ann},
           "spec": {"nodeName": node, "serviceAccountName": "web", "containers": [{"name": "c", "image": "i"}]},
           "status": status})
}

/// A Namespace object.
pub fn namespace(name: &str, annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "uid": format!("ns-{name}"), "annotations": ann}})
}

/// A ServiceAccount object.
pub fn service_account(ns: &str, name: &str, annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns, "uid": format!("sa-{ns}-{name}"), "annotations": ann}})
}

/// A PodIdentityAssociation object.
pub fn association(name: &str, ns: &str, sa: &str, role_arn: &str) -> Value {
    json!({"apiVersion": "podiam.io/v1alpha1", "kind": "PodIdentityAssociation",
           "metadata": {"name": name, "uid": format!("pia-{name}")},
           "spec": {"namespace": ns, "serviceAccount": sa, "roleArn": role_arn}})
}
