//! Parse a pod UID and container ID out of a kubelet cgroup path.
//!
//! Layouts (kubelet `pkg/kubelet/cm/cgroup_manager_linux.go`, CRI runtimes' scope names):
//! - systemd driver: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with
//!   '-' replaced by '_'>.slice/cri-containerd-<id>.scope` (also `crio-<id>.scope`,
//!   `docker-<id>.scope`; guaranteed pods sit directly under `kubepods.slice` as
//!   `kubepods-pod<uid>.slice`);
//! - cgroupfs driver: `/kubepods/burstable/pod<uid>/<id>` (also `besteffort`, and guaranteed
//!   pods directly under `/kubepods/pod<uid>/<id>`).
//!
//! The kubepods hierarchy may be nested under another prefix (kind, k3s, `kubelet.slice`);
//! the pod segment is found wherever it is, as long as an ancestor segment names `kubepods`.

/// Pod UID and container ID from a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCgroup {
    /// Pod UID in its API form (`-` separated; static pods' 32-hex UIDs as is).
    pub pod_uid: String,
    /// Container ID (64 hex for containerd/CRI-O/Docker) when the path goes below the pod
    /// level; `None` for the pod-level cgroup itself or conmon scopes.
    pub container_id: Option<String>,
}

fn valid_uid(u: &str) -> bool {
    let hex = u.bytes().filter(|b| *b != b'-').count();
    (32..=64).contains(&u.len())
        && (32..=32).contains(&hex)
        && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn valid_container_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The pod UID of a pod-level segment, if `seg` is one.
fn pod_segment(seg: &str, systemd_parent_ok: bool, cgroupfs_parent_ok: bool) -> Option<String> {
    if let Some(stem) = seg.strip_suffix(".slice") {
        // kubepods-pod<uid>.slice, kubepods-burstable-pod<uid>.slice, ...
        let (prefix, uid) = stem.rsplit_once("-pod")?;
        if !prefix.contains("kubepods") {
            return None;
        }
        let uid = uid.replace('_', "-");
        return valid_uid(&uid).then_some(uid);
    }
    if cgroupfs_parent_ok || systemd_parent_ok {
        let uid = seg.strip_prefix("pod")?;
        return valid_uid(uid).then(|| uid.to_string());
    }
    None
}

fn container_segment(seg: &str) -> Option<String> {
    if let Some(stem) = seg.strip_suffix(".scope") {
        if stem.starts_with("crio-conmon-") {
            return None;
        }
        let id = ["cri-containerd-", "crio-", "docker-", "containerd-"]
            .iter()
            .find_map(|p| stem.strip_prefix(p))?;
        return valid_container_id(id).then(|| id.to_string());
    }
    valid_container_id(seg).then(|| seg.to_string())
}

/// Parse `path` (relative to the cgroup v2 root, e.g. from [`super::CgroupPaths`]).
/// `None` when no kubelet pod segment is present (a host process, a system service).
pub fn parse_pod_cgroup(path: &str) -> Option<PodCgroup> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut under_kubepods = false;
    for (i, seg) in segs.iter().enumerate() {
        if let Some(uid) = pod_segment(seg, false, under_kubepods) {
            let container_id = segs.get(i + 1).and_then(|s| container_segment(s));
            return Some(PodCgroup {
                pod_uid: uid,
                container_id,
            });
        }
        if seg.contains("kubepods") {
            under_kubepods = true;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b7d2a4c-1f3e-4d5a-9b8c-7e6f5d4c3b2a";
    const CID: &str = "4f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    fn us(u: &str) -> String {
        u.replace('-', "_")
    }

    #[test]
    fn systemd_layouts() {
        let u = us(UID);
        for (path, cid) in [
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{CID}.scope"
                ),
                Some(CID),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{CID}.scope"
                ),
                Some(CID),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/docker-{CID}.scope"),
                Some(CID),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/crio-conmon-{CID}.scope"),
                None,
            ),
            (format!("/kubepods.slice/kubepods-pod{u}.slice"), None),
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{u}.slice/cri-containerd-{CID}.scope/init.scope"
                ),
                Some(CID),
            ),
        ] {
            let p = parse_pod_cgroup(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(p.pod_uid, UID, "{path}");
            assert_eq!(p.container_id.as_deref(), cid, "{path}");
        }
    }

    #[test]
    fn cgroupfs_layouts() {
        for qos in ["burstable/", "besteffort/", ""] {
            let path = format!("/kubepods/{qos}pod{UID}/{CID}");
            let p = parse_pod_cgroup(&path).unwrap();
            assert_eq!(p.pod_uid, UID);
            assert_eq!(p.container_id.as_deref(), Some(CID));
        }
        // kind/k3s-style nesting and a static pod's 32-hex UID.
        let p =
            parse_pod_cgroup("/docker/abc/kubepods/guaranteed/pod0123456789abcdef0123456789abcdef")
                .unwrap();
        assert_eq!(p.pod_uid, "0123456789abcdef0123456789abcdef");
        assert_eq!(p.container_id, None);
    }

    #[test]
    fn rejects_non_pod_paths() {
        for path in [
            "/",
            "/system.slice/containerd.service",
            "/user.slice/user-0.slice/session-1.scope",
            &format!("/pod{UID}/{CID}"), // not under kubepods
            "/kubepods/burstable/podnothex/abc",
            "/kubepods.slice/kubepods-burstable-pod12.slice",
            &format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}x.slice"),
        ] {
            assert_eq!(parse_pod_cgroup(path), None, "{path}");
        }
    }
}
