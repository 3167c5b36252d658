//! The deploy/ manifests: every overlay renders with `kubectl kustomize` and every object
//! validates (strict) against the Kubernetes schemas with kubernetes-validate.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn render(overlay: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo().join("deploy").join(overlay))
        .output()
        .expect("kubectl must be installed (it is on this machine kind)");
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 manifests")
}

fn validate(overlay: &str, yaml: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir
        .path()
        .join(format!("{}.yaml", overlay.replace('/', "-")));
    std::fs::write(&file, yaml).expect("write rendered manifests");
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.33.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate must be on PATH (cargo xtask setup puts it in .venv/bin)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{overlay} does not validate:\n{text}");
    assert!(!text.contains("ERROR"), "{overlay}: {text}");
}

#[test]
fn every_overlay_renders_and_validates() {
    for overlay in ["base", "overlays/self-managed", "overlays/eks"] {
        let yaml = render(overlay);
        for kind in [
            "kind: DaemonSet",
            "kind: ClusterRole",
            "kind: ClusterRoleBinding",
            "kind: ServiceAccount",
            "kind: CustomResourceDefinition",
        ] {
            assert!(yaml.contains(kind), "{overlay} lacks {kind}");
        }
        validate(overlay, &yaml);
    }
}

#[test]
fn daemonset_keeps_the_promises_of_the_docs() {
    let yaml = render("base");
    // hostNetwork: the proxy listens on the node IP; downward API for the redirect target.
    assert!(yaml.contains("hostNetwork: true"));
    assert!(yaml.contains("fieldPath: status.hostIP"));
    assert!(yaml.contains("fieldPath: spec.nodeName"));
    assert!(yaml.contains("priorityClassName: system-node-critical"));
    assert!(yaml.contains("path: /sys/fs/bpf"));
    assert!(yaml.contains("privileged: false"));
    let eks = render("overlays/eks");
    assert!(eks.contains("--disable-pod-annotation"));
    let sm = render("overlays/self-managed");
    assert!(sm.contains("--namespace-restrictions"));
}
