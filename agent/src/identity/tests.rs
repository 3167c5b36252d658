//! Identity tests with a fake origin lookup, a cgroup-like temp tree and a memory inventory.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::datapath::{Origin, OriginLookup, Service};
use crate::inventory::{Inventory, MemoryInventory, PodInfo, StaticInventory};

const UID_A: &str = "aaaaaaaa-1111-4111-8111-000000000001";
const UID_B: &str = "bbbbbbbb-2222-4222-8222-000000000002";
const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[derive(Default)]
struct FakeOrigins(Mutex<HashMap<SocketAddr, u64>>);

impl FakeOrigins {
    fn set(&self, peer: &str, cgroup_id: u64) {
        self.0
            .lock()
            .unwrap()
            .insert(peer.parse().unwrap(), cgroup_id);
    }
}

impl OriginLookup for FakeOrigins {
    fn origin_of(&self, peer: SocketAddr, _local: SocketAddr) -> Option<Origin> {
        let id = *self.0.lock().unwrap().get(&peer)?;
        Some(Origin {
            cgroup_id: id,
            netns_cookie: 7,
            pid: 1,
            tid: 1,
            uid: 0,
            gid: 0,
            original_dst: "169.254.169.254:80".parse().unwrap(),
            service: Service::Imds,
        })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    origins: Arc<FakeOrigins>,
    inv: Arc<MemoryInventory>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            root: dir.path().to_path_buf(),
            _dir: dir,
            origins: Arc::new(FakeOrigins::default()),
            inv: Arc::new(MemoryInventory::new()),
        }
    }

    /// Create a systemd-layout container cgroup for `uid`; returns its id (inode).
    fn cgroup(&self, uid: &str) -> u64 {
        let p = self.root.join(format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope",
            uid.replace('-', "_")
        ));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::metadata(&p).unwrap().ino()
    }

    fn resolver(&self) -> KernelCallerResolver {
        KernelCallerResolver::new(self.origins.clone(), self.inv.clone(), &self.root)
    }
}

fn pod(uid: &str, name: &str, ip: &str) -> PodInfo {
    PodInfo {
        uid: uid.into(),
        namespace: "ns".into(),
        name: name.into(),
        service_account: "default".into(),
        ips: vec![ip.parse().unwrap()],
        ..Default::default()
    }
}

fn local() -> SocketAddr {
    "192.0.2.1:8181".parse().unwrap()
}

#[tokio::test]
async fn resolves_pod_with_container_id() {
    let env = Env::new();
    let id = env.cgroup(UID_A);
    env.inv.upsert_pod(pod(UID_A, "a", "10.0.0.5"));
    env.origins.set("10.0.0.5:40000", id);
    let c = env
        .resolver()
        .resolve("10.0.0.5:40000".parse().unwrap(), local())
        .await
        .unwrap();
    assert_eq!(c.pod.uid, UID_A);
    assert_eq!(c.cgroup_id, Some(id));
    assert_eq!(c.container_id.as_deref(), Some(CID));
}

#[tokio::test]
async fn no_origin_is_refused() {
    let env = Env::new();
    env.inv.upsert_pod(pod(UID_A, "a", "10.0.0.5"));
    let e = env
        .resolver()
        .resolve("10.0.0.5:40000".parse().unwrap(), local())
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::NoOrigin(_)), "{e:?}");
}

#[tokio::test]
async fn mismatched_peer_ip_is_refused() {
    let env = Env::new();
    let id = env.cgroup(UID_A);
    env.inv.upsert_pod(pod(UID_A, "a", "10.0.0.5"));
    env.origins.set("10.0.0.9:40000", id);
    let e = env
        .resolver()
        .resolve("10.0.0.9:40000".parse().unwrap(), local())
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::Mismatch { .. }), "{e:?}");
    // A pod without IPs fails closed too.
    env.inv.upsert_pod(PodInfo {
        ips: vec![],
        ..pod(UID_A, "a", "10.0.0.5")
    });
    env.origins.set("10.0.0.5:40001", id);
    let e = env
        .resolver()
        .resolve("10.0.0.5:40001".parse().unwrap(), local())
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::Mismatch { .. }), "{e:?}");
}

#[tokio::test]
async fn v4_mapped_peer_matches_ipv4_pod() {
    let env = Env::new();
    let id = env.cgroup(UID_A);
    env.inv.upsert_pod(pod(UID_A, "a", "10.0.0.5"));
    env.origins.set("[::ffff:10.0.0.5]:40000", id);
    let c = env
        .resolver()
        .resolve("[::ffff:10.0.0.5]:40000".parse().unwrap(), local())
        .await
        .unwrap();
    assert_eq!(c.pod.uid, UID_A);
}

#[tokio::test(start_paused = true)]
async fn ip_reuse_never_resolves_to_the_new_pod() {
    let env = Env::new();
    let x = env.cgroup(UID_A);
    let y = env.cgroup(UID_B);
    // Pod A had 10.0.0.5 and is gone; pod B now has the same IP.
    env.inv.upsert_pod(pod(UID_B, "b", "10.0.0.5"));
    env.origins.set("10.0.0.5:40000", x);
    env.origins.set("10.0.0.5:40001", y);
    let r = env.resolver();
    let e = r
        .resolve("10.0.0.5:40000".parse().unwrap(), local())
        .await
        .unwrap_err();
    assert!(
        matches!(e, IdentityError::UnknownPod { cgroup_id } if cgroup_id == x),
        "{e:?}"
    );
    let c = r
        .resolve("10.0.0.5:40001".parse().unwrap(), local())
        .await
        .unwrap();
    assert_eq!(c.pod.uid, UID_B);
}

#[tokio::test(start_paused = true)]
async fn unknown_pod_is_held_then_served() {
    let env = Env::new();
    let id = env.cgroup(UID_A);
    env.origins.set("10.0.0.5:40000", id);
    let r = Arc::new(
        env.resolver()
            .with_pod_lookup_timeout(Duration::from_secs(2)),
    );
    let start = tokio::time::Instant::now();
    let task = {
        let r = r.clone();
        tokio::spawn(async move { r.resolve("10.0.0.5:40000".parse().unwrap(), local()).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !task.is_finished(),
        "request must be held while the pod is unknown"
    );
    env.inv.upsert_pod(pod(UID_A, "a", "10.0.0.5"));
    let c = task.await.unwrap().unwrap();
    assert_eq!(c.pod.uid, UID_A);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn unknown_pod_after_timeout() {
    let env = Env::new();
    let id = env.cgroup(UID_A);
    env.origins.set("10.0.0.5:40000", id);
    let r = env
        .resolver()
        .with_pod_lookup_timeout(Duration::from_secs(2));
    let start = tokio::time::Instant::now();
    let e = r
        .resolve("10.0.0.5:40000".parse().unwrap(), local())
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::UnknownPod { .. }), "{e:?}");
    assert!(start.elapsed() >= Duration::from_secs(2));
    // Appearing after the timeout does not help the refused request, but the next one works.
    env.inv.upsert_pod(pod(UID_A, "a", "10.0.0.5"));
    assert!(
        r.resolve("10.0.0.5:40000".parse().unwrap(), local())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn non_pod_cgroup_is_unknown_without_waiting() {
    let env = Env::new();
    let p = env.root.join("system.slice/sshd.service");
    std::fs::create_dir_all(&p).unwrap();
    let id = std::fs::metadata(&p).unwrap().ino();
    env.origins.set("10.0.0.5:40000", id);
    let r = env
        .resolver()
        .with_pod_lookup_timeout(Duration::from_secs(3600));
    let e = r
        .resolve("10.0.0.5:40000".parse().unwrap(), local())
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::UnknownPod { .. }), "{e:?}");
}

#[tokio::test]
async fn static_inventory_matches_cgroup_glob() {
    let env = Env::new();
    let p = env.root.join("podiam-demo/web/app");
    std::fs::create_dir_all(&p).unwrap();
    let id = std::fs::metadata(&p).unwrap().ino();
    let inv = StaticInventory::from_yaml(
        "workloads:\n- name: web\n  namespace: demo\n  cgroupPath: /podiam-demo/web/**\n  ip: 10.200.0.2\n",
    )
    .unwrap();
    env.origins.set("10.200.0.2:5555", id);
    let r = KernelCallerResolver::new(env.origins.clone(), inv.clone(), &env.root);
    let c = r
        .resolve("10.200.0.2:5555".parse().unwrap(), local())
        .await
        .unwrap();
    assert_eq!(c.pod.name, "web");
    assert_eq!(inv.source_name(), "static");
}

#[tokio::test(start_paused = true)]
async fn peer_ip_mode() {
    let inv = Arc::new(MemoryInventory::new());
    inv.upsert_pod(pod(UID_A, "a", "10.0.0.5"));
    inv.upsert_pod(PodInfo {
        host_network: true,
        ..pod("cccccccc-3333-4333-8333-000000000003", "h", "10.0.0.5")
    });
    let r = PeerIpCallerResolver::new(inv.clone());
    assert_eq!(r.mode(), IdentityMode::PeerIp);
    let c = r
        .resolve("10.0.0.5:1".parse().unwrap(), local())
        .await
        .unwrap();
    assert_eq!(c.pod.uid, UID_A, "hostNetwork pods are never matched by IP");
    assert_eq!(c.cgroup_id, None);
    // Two non-hostNetwork pods with one IP: refuse.
    inv.upsert_pod(pod(UID_B, "b", "10.0.0.5"));
    let e = r
        .resolve("10.0.0.5:1".parse().unwrap(), local())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("2 pods share"), "{e}");
    // Unknown IP: held, then refused.
    let start = tokio::time::Instant::now();
    assert!(
        r.resolve("10.0.0.77:1".parse().unwrap(), local())
            .await
            .is_err()
    );
    assert!(start.elapsed() >= DEFAULT_POD_LOOKUP_TIMEOUT);
}

#[test]
fn cgroup2_mount_detection() {
    let hybrid = "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                  26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                  27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
    assert_eq!(
        cgroup2_mount_from_mountinfo(hybrid).unwrap().to_str(),
        Some("/sys/fs/cgroup/unified")
    );
    let v2 = "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        cgroup2_mount_from_mountinfo(v2).unwrap().to_str(),
        Some("/sys/fs/cgroup")
    );
    let v1 = "27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
    assert_eq!(cgroup2_mount_from_mountinfo(v1), None);
    assert!(IdentityMode::PeerIp.describe().contains("peer IP"));
}

#[test]
fn mode_detection() {
    let (m, why) = detect_mode(None, true);
    assert_eq!(m, IdentityMode::PeerIp);
    assert!(why.contains("no cgroup v2"));
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("system.slice/containerd.service")).unwrap();
    assert_eq!(detect_mode(Some(t.path()), true).0, IdentityMode::PeerIp);
    assert_eq!(detect_mode(Some(t.path()), false).0, IdentityMode::Kernel);
    std::fs::create_dir_all(t.path().join("docker/abc/def/kubepods")).unwrap();
    assert_eq!(
        detect_mode(Some(t.path()), true).0,
        IdentityMode::PeerIp,
        "deeper than 3 levels"
    );
    std::fs::create_dir_all(t.path().join("kubelet.slice/kubelet-kubepods.slice")).unwrap();
    let (m, why) = detect_mode(Some(t.path()), true);
    assert_eq!(m, IdentityMode::Kernel, "{why}");
}
