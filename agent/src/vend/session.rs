//! Role session names and EKS-Pod-Identity-style session tags.
//!
//! Limits follow the STS API model (botocore `data/sts/2011-06-15/service-2.json`):
//! `RoleSessionName` 2–64 chars of `[\w+=,.@-]`; tag keys 1–128 chars and values 0–256 chars
//! of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. Tag keys are the ones EKS Pod Identity sets (EKS user
//! guide `pod-id-abac.adoc`), all transitive.
use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use crate::inventory::PodInfo;

/// Maximum `RoleSessionName` length (chars).
pub const MAX_SESSION_NAME: usize = 64;
/// Maximum session tag value length (chars, counted as UTF-16 code units to be safe).
pub const MAX_TAG_VALUE: usize = 256;
/// Maximum session tag key length (chars).
pub const MAX_TAG_KEY: usize = 128;

/// Separator between namespace and pod name in a verbatim session name.
const NAME_SEP: char = '@';
/// Separator before the hash suffix; never appears in a verbatim session name.
const HASH_SEP: char = '=';
/// Hex digits of the hash suffix (64 bits).
const HASH_HEX: usize = 16;

/// Characters kept verbatim in a session name: the STS charset minus the two separators.
fn verbatim_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | ',' | '.' | '-')
}

/// The `RoleSessionName` for a pod: `<namespace>@<pod name>`.
///
/// Deterministic and unique per (namespace, pod name): when the plain form would not be
/// valid or not unambiguous (longer than 64 chars, a character outside `[\w+,.-]`, an empty
/// part), the result is `<sanitised prefix>=<16 hex digits of SHA-256(namespace, name)>`
/// instead, which is at most 64 chars; `=` never occurs in the plain form, so the two forms
/// cannot collide. Always 2–64 chars of the STS charset `[\w+=,.@-]`.
pub fn session_name(namespace: &str, pod_name: &str) -> String {
    let plain_ok = !namespace.is_empty()
        && !pod_name.is_empty()
        && namespace.len() + 1 + pod_name.len() <= MAX_SESSION_NAME
        && namespace.chars().all(verbatim_char)
        && pod_name.chars().all(verbatim_char);
    if plain_ok {
        return format!("{namespace}{NAME_SEP}{pod_name}");
    }
    let mut hasher = Sha256::new();
    hasher.update((namespace.len() as u64).to_le_bytes());
    hasher.update(namespace.as_bytes());
    hasher.update(pod_name.as_bytes());
    let digest = hasher.finalize();
    let hash: String = digest[..HASH_HEX / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let prefix: String = namespace
        .chars()
        .chain(std::iter::once(NAME_SEP))
        .chain(pod_name.chars())
        .map(|c| {
            if verbatim_char(c) || c == NAME_SEP {
                c
            } else {
                '-'
            }
        })
        .take(MAX_SESSION_NAME - 1 - HASH_HEX)
        .collect();
    format!("{prefix}{HASH_SEP}{hash}")
}

/// One STS session tag (`Tags.member.N.Key` / `.Value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTag {
    /// Tag key (e.g. `kubernetes-namespace`).
    pub key: String,
    /// Tag value, truncated to 256 characters.
    pub value: String,
}

/// Session tag key: cluster ARN (`--cluster-arn`); sent first when configured.
pub const TAG_CLUSTER_ARN: &str = "eks-cluster-arn";
/// Session tag key: cluster name (`--cluster-name`); sent when configured.
pub const TAG_CLUSTER_NAME: &str = "eks-cluster-name";
/// Session tag key: the pod's `metadata.namespace`.
pub const TAG_NAMESPACE: &str = "kubernetes-namespace";
/// Session tag key: the pod's `spec.serviceAccountName`.
pub const TAG_SERVICE_ACCOUNT: &str = "kubernetes-service-account";
/// Session tag key: the pod's `metadata.name`.
pub const TAG_POD_NAME: &str = "kubernetes-pod-name";
/// Session tag key: the pod's `metadata.uid`.
pub const TAG_POD_UID: &str = "kubernetes-pod-uid";

static TAG_CHAR: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]$").expect("static regex"));

/// Makes a string a valid STS tag value: characters outside `[\p{L}\p{Z}\p{N}_.:/=+\-@]`
/// become `_`, then the value is cut to at most `max` UTF-16 code units (STS counts
/// characters; UTF-16 units are never fewer).
pub fn tag_value(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max * 4));
    let mut units = 0usize;
    let mut buf = [0u8; 4];
    for c in raw.chars() {
        let c = if TAG_CHAR.is_match(c.encode_utf8(&mut buf)) {
            c
        } else {
            '_'
        };
        if units + c.len_utf16() > max {
            break;
        }
        units += c.len_utf16();
        out.push(c);
    }
    out
}

/// The session tags for a pod, mirroring EKS Pod Identity: `eks-cluster-arn` (when
/// `cluster_arn` is set), `eks-cluster-name` (when `cluster_name` is set),
/// `kubernetes-namespace`, `kubernetes-service-account`, `kubernetes-pod-name`,
/// `kubernetes-pod-uid`. Values are made valid with [`tag_value`] (≤ 256 chars). Send all
/// keys as `TransitiveTagKeys` too.
pub fn session_tags(
    pod: &PodInfo,
    cluster_name: Option<&str>,
    cluster_arn: Option<&str>,
) -> Vec<SessionTag> {
    let mut raw: Vec<(&str, &str)> = Vec::with_capacity(6);
    if let Some(arn) = cluster_arn {
        raw.push((TAG_CLUSTER_ARN, arn));
    }
    if let Some(name) = cluster_name {
        raw.push((TAG_CLUSTER_NAME, name));
    }
    raw.push((TAG_NAMESPACE, &pod.namespace));
    raw.push((TAG_SERVICE_ACCOUNT, &pod.service_account));
    raw.push((TAG_POD_NAME, &pod.name));
    raw.push((TAG_POD_UID, &pod.uid));
    raw.into_iter()
        .map(|(key, value)| SessionTag {
            key: key.to_string(),
            value: tag_value(value, MAX_TAG_VALUE),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid_sts_name(s: &str) -> bool {
        (2..=64).contains(&s.chars().count())
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
            })
    }

    #[test]
    fn plain_names() {
        assert_eq!(session_name("default", "web-5d8f7"), "default@web-5d8f7");
        assert_eq!(
            session_name("kube-system", "coredns.x"),
            "kube-system@coredns.x"
        );
        assert_eq!(session_name("a", "b"), "a@b");
        // deterministic
        assert_eq!(session_name("ns", "pod"), session_name("ns", "pod"));
    }

    #[test]
    fn long_names_are_truncated_with_hash() {
        let pod = "p".repeat(253);
        let a = session_name("team-a", &pod);
        assert!(valid_sts_name(&a), "{a}");
        assert_eq!(a.len(), 64);
        assert!(a.starts_with("team-a@ppp"));
        assert_eq!(a.matches('=').count(), 1);
        // names sharing the first 47 chars still differ
        let b = session_name("team-a", &format!("{}q", "p".repeat(252)));
        assert_ne!(a, b);
        assert_eq!(a[..47], b[..47]);
        // exactly at the limit stays plain, one more char gets hashed
        let ns = "n".repeat(31);
        let fits = session_name(&ns, &"x".repeat(32));
        assert_eq!(fits.len(), 64);
        assert!(!fits.contains('='));
        let over = session_name(&ns, &"x".repeat(33));
        assert!(over.contains('=') && over.len() == 64);
    }

    #[test]
    fn replaced_characters_get_hash() {
        let a = session_name("ns", "pod/with space");
        assert!(valid_sts_name(&a), "{a}");
        assert!(a.starts_with("ns@pod-with-space="), "{a}");
        // two inputs that sanitise to the same prefix stay distinct
        let b = session_name("ns", "pod-with-space");
        let c = session_name("ns", "pod/with-space");
        assert_ne!(b, c);
        assert_ne!(a, c);
        // separators in the parts cannot fake another (namespace, pod) pair
        assert_ne!(session_name("a@b", "c"), session_name("a", "b@c"));
        assert_ne!(session_name("a", "b=c"), session_name("a", "b"));
        // non-ASCII and empty parts
        let u = session_name("ns", "pöd");
        assert!(valid_sts_name(&u), "{u}");
        let e = session_name("", "");
        assert!(valid_sts_name(&e), "{e}");
        assert_ne!(session_name("", "x"), session_name("x", ""));
    }

    #[test]
    fn names_are_unique_across_many_inputs() {
        let mut seen = HashSet::new();
        let long = "x".repeat(70);
        for ns in ["default", "a", "team-a", "a@b", &long] {
            for i in 0..200 {
                for pod in [format!("pod-{i}"), format!("{long}-{i}"), format!("p/{i}")] {
                    let n = session_name(ns, &pod);
                    assert!(valid_sts_name(&n), "{n}");
                    assert!(seen.insert(n.clone()), "duplicate {n} for {ns}/{pod}");
                }
            }
        }
    }

    fn pod() -> PodInfo {
        PodInfo {
            uid: "0b9b4a44-7a1d-4b8a-9c55-1f2e3d4c5b6a".into(),
            namespace: "shop".into(),
            name: "cart-7f9c".into(),
            service_account: "cart".into(),
            ..Default::default()
        }
    }

    #[test]
    fn tags_mirror_pod_identity() {
        let tags = session_tags(
            &pod(),
            Some("prod"),
            Some("arn:aws:eks:us-east-1:123456789012:cluster/prod"),
        );
        let kv: Vec<(&str, &str)> = tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(
            kv,
            vec![
                (
                    "eks-cluster-arn",
                    "arn:aws:eks:us-east-1:123456789012:cluster/prod"
                ),
                ("eks-cluster-name", "prod"),
                ("kubernetes-namespace", "shop"),
                ("kubernetes-service-account", "cart"),
                ("kubernetes-pod-name", "cart-7f9c"),
                ("kubernetes-pod-uid", "0b9b4a44-7a1d-4b8a-9c55-1f2e3d4c5b6a"),
            ]
        );
        let without = session_tags(&pod(), None, None);
        assert_eq!(without.len(), 4);
        assert!(without.iter().all(|t| !t.key.starts_with("eks-")));
        assert!(without.iter().all(|t| t.key.len() <= MAX_TAG_KEY));
    }

    #[test]
    fn tag_values_are_truncated_and_sanitised() {
        let long = "c".repeat(300);
        let tags = session_tags(&pod(), Some(&long), None);
        assert_eq!(tags[0].value.chars().count(), 256);
        assert_eq!(tag_value("a b:c/d=e+f-g@h_i.j", 256), "a b:c/d=e+f-g@h_i.j");
        assert_eq!(tag_value("a,b;c\"d<e>", 256), "a_b_c_d_e_");
        assert_eq!(tag_value("zürich", 256), "zürich");
        assert_eq!(tag_value("", 256), "");
        // UTF-16 counting: an astral-plane char never exceeds the limit
        let astral = "𝔸".repeat(200);
        let v = tag_value(&astral, 256);
        assert!(v.encode_utf16().count() <= 256);
        assert_eq!(tag_value(&"é".repeat(300), 256).chars().count(), 256);
    }
}
