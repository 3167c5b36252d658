//! Static file: parse, reload, broken-file handling, hostile input.
use std::time::Duration;

use super::*;
use crate::inventory::Inventory;
use crate::policy::RoleSource;

const GOOD: &str = r#"
namespaces:
  shop:
    annotations:
      iam.amazonaws.com/allowed-roles: '["web"]'
workloads:
  - name: web
    namespace: shop
    serviceAccount: web
    cgroupPath: /podiam-demo/web/**
    ip: 10.200.0.2
    roleArn: " arn:aws:iam::123456789012:role/shop-web "
    externalId: ext-1
    sessionTags: true
  - name: batch
    namespace: shop
    cgroupPath: /system.slice/batch.service
    ips: [192.0.2.10, "fd00::10"]
    uid: 7d5b4c1e-0000-4000-8000-000000000001
    annotations:
      iam.amazonaws.com/role: batch
  - name: catchall
    cgroupPath: /podiam-demo/**
    ip: 10.200.0.99
"#;

#[test]
fn parses_the_documented_format() {
    let inv = StaticInventory::from_yaml(GOOD).unwrap();
    let w = inv.workloads();
    assert_eq!(w.len(), 3);
    let web = inv.pod_for_cgroup_path("/podiam-demo/web/app").unwrap();
    assert_eq!(
        (web.namespace.as_str(), web.service_account.as_str()),
        ("shop", "web")
    );
    assert_eq!(
        web.uid,
        derived_uid("shop", "web"),
        "uid derived when absent"
    );
    let role = inv.workload_role(&web.uid).unwrap();
    assert_eq!(role.arn, "arn:aws:iam::123456789012:role/shop-web");
    assert_eq!(role.external_id.as_deref(), Some("ext-1"));
    assert!(role.session_tags);
    assert_eq!(role.source, RoleSource::StaticFile);
    // First match wins: web's glob precedes catchall's.
    assert_eq!(
        inv.pod_for_cgroup_path("/podiam-demo/other").unwrap().name,
        "catchall"
    );
    // '*'-style globs do not cross segments, '**' does.
    assert!(
        inv.pod_for_cgroup_path("/system.slice/batch.service/x")
            .is_none()
    );
    let batch = inv
        .pod_by_uid("7d5b4c1e-0000-4000-8000-000000000001")
        .unwrap();
    assert_eq!(batch.service_account, "default");
    assert_eq!(batch.ips.len(), 2);
    assert!(inv.workload_role(&batch.uid).is_none());
    assert_eq!(inv.pods_by_ip("fd00::10".parse().unwrap())[0].name, "batch");
    assert_eq!(inv.pods_by_ip("10.200.0.2".parse().unwrap())[0].name, "web");
    assert!(
        inv.namespace_annotations("shop")
            .unwrap()
            .contains_key("iam.amazonaws.com/allowed-roles")
    );
    assert_eq!(
        inv.namespace_annotations("default"),
        Some(Default::default())
    );
    assert_eq!(inv.namespace_annotations("nope"), None);
    assert!(inv.synced());
    assert!(inv.stale().is_none());
    assert_eq!(derived_uid("a", "b"), derived_uid("a", "b"));
    assert_ne!(derived_uid("a", "b"), derived_uid("a", "c"));
    assert_eq!(derived_uid("a", "b").len(), 36);
}

#[test]
fn rejects_bad_entries_with_clear_errors() {
    let cases = [
        ("workloads:\n- name: x\n", "needs cgroupPath or ip"),
        (
            "workloads:\n- name: x\n  ip: 1.2.3.4\n  rolearn: y\n",
            "unknown field `rolearn`",
        ),
        ("workloads:\n- name: x\n  ip: not-an-ip\n", "invalid"),
        (
            "workloads:\n- name: x\n  ip: 1.2.3.4\n  sessionTags: maybe\n",
            "invalid",
        ),
        ("workloads: {name: x}\n", "invalid"),
        (
            "workloads:\n- name: x\n  ip: 1.2.3.4\n  roleArn: arn:aws:iam::1:role/x\n",
            "roleArn",
        ),
        (
            "workloads:\n- name: x\n  cgroupPath: relative/path\n",
            "must start with '/'",
        ),
        (
            "workloads:\n- name: x\n  cgroupPath: '/a/[b'\n",
            "cgroupPath",
        ),
        (
            "workloads:\n- name: x\n  ip: 1.2.3.4\n- name: x\n  ip: 1.2.3.5\n",
            "duplicate",
        ),
        (
            "workloads:\n- name: x\n  ip: 1.2.3.4\n  externalId: e\n",
            "externalId needs roleArn",
        ),
        ("- just\n- a list\n", "invalid"),
        ("workloads:\n- name: ''\n  ip: 1.2.3.4\n", "name is empty"),
    ];
    for (yaml, want) in cases {
        let e = StaticInventory::from_yaml(yaml)
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"));
        let msg = e.to_string();
        assert!(msg.contains(want), "{yaml:?}: {msg}");
    }
}

#[test]
fn hostile_yaml_is_refused() {
    let huge = format!("workloads: []\n# {}\n", "x".repeat(MAX_STATIC_FILE_BYTES));
    assert!(matches!(
        StaticInventory::from_yaml(&huge),
        Err(StaticFileError::TooLarge { .. })
    ));
    // Billion laughs: aliases expanding exponentially.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 0..9u8 {
        let prev = (b'a' + i) as char;
        let cur = (b'b' + i) as char;
        bomb.push_str(&format!("{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let e = StaticInventory::from_yaml(&bomb)
        .err()
        .expect("bomb refused");
    assert!(matches!(e, StaticFileError::Parse(_)), "{e}");
    // Deep nesting.
    let deep = format!("workloads: {}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(matches!(
        StaticInventory::from_yaml(&deep),
        Err(StaticFileError::Parse(_))
    ));
    // Wrong top-level type, binary junk.
    assert!(StaticInventory::from_yaml("42").is_err());
    assert!(StaticInventory::from_yaml("\u{0}\u{1}\u{2}").is_err());
    // Empty file: no workloads.
    assert!(
        StaticInventory::from_yaml("")
            .unwrap()
            .workloads()
            .is_empty()
    );
}

#[tokio::test]
async fn reload_on_change_and_keep_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(&path, "workloads:\n- name: a\n  ip: 10.0.0.1\n").unwrap();
    let inv = StaticInventory::load(&path).unwrap();
    assert_eq!(inv.workloads()[0].name, "a");
    assert!(!inv.reload_now().unwrap(), "unchanged file is not reloaded");

    std::fs::write(&path, "workloads:\n- name: b\n  ip: 10.0.0.2\n").unwrap();
    assert!(inv.reload_now().unwrap());
    assert_eq!(inv.workloads()[0].name, "b");

    // Broken file: last good version keeps serving, stale() says why.
    std::fs::write(&path, "workloads:\n- name: c\n  ip: [oops\n").unwrap();
    assert!(inv.reload_now().is_err());
    assert_eq!(inv.workloads()[0].name, "b");
    let why = inv.stale().expect("stale while broken");
    assert!(why.contains("inventory.yaml"), "{why}");

    // Deleted file: same.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(inv.reload_now(), Err(StaticFileError::Io { .. })));
    assert_eq!(inv.workloads()[0].name, "b");

    // The background task picks up a fixed file.
    let task = inv.spawn_reload(Duration::from_millis(20));
    std::fs::write(&path, "workloads:\n- name: d\n  ip: 10.0.0.4\n").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while inv.workloads()[0].name != "d" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reload task did not pick up the change"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(inv.stale().is_none());
    task.abort();
}

#[test]
fn load_fails_fast_on_a_broken_first_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "workloads: 3").unwrap();
    assert!(StaticInventory::load(&path).is_err());
    assert!(matches!(
        StaticInventory::load(dir.path().join("missing.yaml")),
        Err(StaticFileError::Io { .. })
    ));
}

/// The example in the module documentation parses and means what it says.
#[test]
fn documented_example_parses() {
    let src = include_str!("mod.rs");
    let yaml: String = src
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```yaml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(yaml.contains("workloads:"), "{yaml}");
    let inv = StaticInventory::from_yaml(&yaml).unwrap();
    let w = inv.workloads();
    assert_eq!(w.len(), 2);
    let web = inv.pod_for_cgroup_path("/podiam-demo/web/app").unwrap();
    assert_eq!(
        inv.workload_role(&web.uid).unwrap().external_id.as_deref(),
        Some("shop-ext")
    );
    let batch = inv
        .pod_by_uid("7d5b4c1e-0000-4000-8000-000000000001")
        .unwrap();
    assert_eq!(batch.annotations["iam.amazonaws.com/role"], "batch");
}
