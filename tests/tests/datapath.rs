//! Kernel tests of the eBPF datapath on this machine's kernel (run as root):
//! `cargo test -p podiam-tests --test datapath`.
//!
//! Each test builds its own simulated node (netns + bridge + cgroup + pin dir) and pods, so
//! tests run in parallel; every test calls `require_privileged()` (through `Node::new` or
//! directly) and FAILS when it cannot run.
use std::net::SocketAddr;
use std::time::Duration;

use podiam::datapath::{Counters, Datapath, DatapathError, OriginLookup, Service};
use podiam_tests::{Node, require_privileged};

const WAIT: Duration = Duration::from_secs(2);

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[test]
fn pod_connects_to_imds_and_pod_identity_are_redirected_with_origin() {
    let node = Node::new().unwrap();
    let pod = node.add_pod("a").unwrap();
    let proxy = node.listen(node.proxy_v4().into(), "proxy").unwrap();
    let dp = node
        .attach_datapath(node.datapath_config().unwrap())
        .unwrap();

    for (dst, service) in [
        ("169.254.169.254:80", Service::Imds),
        ("169.254.170.23:80", Service::PodIdentity),
    ] {
        let r = pod.probe("tcp", dst, &[]).unwrap();
        assert!(r.ok, "{dst}: {r:?}");
        assert!(
            r.reply.as_deref().unwrap_or("").starts_with("proxy "),
            "{dst}: {r:?}"
        );
        assert_eq!(
            r.peer_addr(),
            Some(node.proxy_v4().into()),
            "application sees the rewritten peer"
        );
        let acc = proxy.next(WAIT).expect("proxy accepted the connection");
        assert_eq!(acc.peer.ip(), std::net::IpAddr::V4(pod.ipv4()));
        assert_eq!(Some(acc.peer), r.local_addr());
        let origin = dp.origin_of(acc.peer, acc.local).expect("origin record");
        assert_eq!(origin.cgroup_id, pod.cgroup_id().unwrap());
        assert_eq!(origin.pid, r.pid);
        assert_eq!(origin.tid, r.pid, "single-threaded probe");
        assert_eq!(origin.uid, 0);
        assert_eq!(origin.netns_cookie, pod.netns_cookie().unwrap());
        assert_eq!(origin.original_dst, sa(dst));
        assert_eq!(origin.service, service);
    }
    assert_eq!(
        dp.counters().unwrap(),
        Counters {
            redirected: 2,
            ..Counters::default()
        }
    );
}

#[test]
fn dual_stack_v4_mapped_and_ipv6_destinations_are_redirected() {
    let node = Node::new().unwrap();
    let pod = node.add_pod("b").unwrap();
    let proxy4 = node.listen(node.proxy_v4().into(), "proxy4").unwrap();
    let proxy6 = node.listen(node.proxy_v6().into(), "proxy6").unwrap();
    let mut cfg = node.datapath_config().unwrap();
    cfg.redirect_v6 = Some(node.proxy_v6());
    let dp = node.attach_datapath(cfg).unwrap();

    // AF_INET6 socket dialling ::ffff:169.254.169.254 → connect6 → v4-mapped IPv4 target.
    let r = pod.probe("tcp6", "169.254.169.254:80", &[]).unwrap();
    assert!(r.ok, "{r:?}");
    assert!(
        r.reply.as_deref().unwrap_or("").starts_with("proxy4 "),
        "{r:?}"
    );
    assert_eq!(r.peer_addr(), Some(sa("[::ffff:10.200.0.1]:8181")));
    let acc = proxy4.next(WAIT).expect("v4 proxy accepted");
    assert_eq!(acc.peer.ip(), std::net::IpAddr::V4(pod.ipv4()));
    let o = dp
        .origin_of(acc.peer, acc.local)
        .expect("origin of v4-mapped dial");
    assert_eq!(o.original_dst, sa("169.254.169.254:80"));
    assert_eq!(o.service, Service::Imds);
    assert_eq!(o.pid, r.pid);
    // The same lookup with the v4-mapped forms (a dual-stack proxy listener) also works.
    let mapped = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        other => other,
    };
    assert_eq!(dp.origin_of(mapped(acc.peer), mapped(acc.local)), Some(o));

    for (dst, service) in [
        ("[fd00:ec2::254]:80", Service::Imds),
        ("[fd00:ec2::23]:80", Service::PodIdentity),
    ] {
        let r = pod.probe("tcp", dst, &[]).unwrap();
        assert!(r.ok, "{dst}: {r:?}");
        assert!(
            r.reply.as_deref().unwrap_or("").starts_with("proxy6 "),
            "{r:?}"
        );
        let acc = proxy6.next(WAIT).expect("v6 proxy accepted");
        assert_eq!(acc.peer.ip(), std::net::IpAddr::V6(pod.ipv6()));
        let o = dp
            .origin_of(acc.peer, acc.local)
            .expect("origin of IPv6 dial");
        assert_eq!(o.original_dst, sa(dst));
        assert_eq!(o.service, service);
        assert_eq!(o.cgroup_id, pod.cgroup_id().unwrap());
    }
    assert_eq!(dp.counters().unwrap().redirected, 3);
}

#[test]
fn ipv6_destination_without_ipv6_target_fails_closed() {
    let node = Node::new().unwrap();
    node.add_metadata_addresses().unwrap();
    let pod = node.add_pod("c").unwrap();
    let real = node.listen(sa("[fd00:ec2::254]:80"), "real").unwrap();
    let dp = node
        .attach_datapath(node.datapath_config().unwrap())
        .unwrap();

    let r = pod.probe("tcp", "[fd00:ec2::254]:80", &[]).unwrap();
    assert!(!r.ok, "must not connect anywhere: {r:?}");
    assert_eq!(r.errno, Some(libc::EPERM), "{r:?}");
    assert!(
        real.next(Duration::from_millis(200)).is_none(),
        "the real IMDS was reached"
    );
    assert_eq!(
        dp.counters().unwrap(),
        Counters {
            denied: 1,
            ..Counters::default()
        }
    );
}

#[test]
fn exempt_and_non_intercepted_connections_keep_their_destination() {
    let node = Node::new().unwrap();
    node.add_metadata_addresses().unwrap();
    let pod = node.add_pod("d").unwrap();
    let proxy = node.listen(node.proxy_v4().into(), "proxy").unwrap();
    let _real = node.listen(sa("169.254.169.254:80"), "real").unwrap();
    let _real8080 = node.listen(sa("169.254.169.254:8080"), "real8080").unwrap();
    let _other = node.listen(sa("10.200.0.1:9090"), "other").unwrap();
    let dp = node
        .attach_datapath(node.datapath_config().unwrap())
        .unwrap();

    // Host netns (a process in the node netns, inside the attached cgroup).
    let mut cmd = node
        .command(podiam_tests::bins::probe_bin().unwrap())
        .unwrap();
    cmd.args(["tcp", "169.254.169.254:80"]);
    let r = podiam_tests::probe::run(cmd).unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("real "),
        "host netns: {r:?}"
    );

    // Pod socket with the agent's SO_MARK.
    let mark = podiam::datapath::DEFAULT_AGENT_MARK.to_string();
    let r = pod
        .probe("tcp", "169.254.169.254:80", &["--mark", &mark])
        .unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("real "),
        "marked: {r:?}"
    );

    // Other port on the metadata address, another address.
    let r = pod.probe("tcp", "169.254.169.254:8080", &[]).unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("real8080 "),
        "{r:?}"
    );
    assert_eq!(r.peer_addr(), Some(sa("169.254.169.254:8080")));
    let r = pod.probe("tcp", "10.200.0.1:9090", &[]).unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("other "),
        "{r:?}"
    );

    // UDP keeps its destination.
    let r = pod.probe("udp", "169.254.169.254:80", &[]).unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.peer_addr(), Some(sa("169.254.169.254:80")));
    let r = pod.probe("udp", "[fd00:ec2::254]:80", &[]).unwrap();
    assert_eq!(r.peer_addr(), Some(sa("[fd00:ec2::254]:80")));

    // A pod dialling the proxy address directly: reaches it, but has no origin record.
    let r = pod.probe("tcp", "10.200.0.1:8181", &[]).unwrap();
    assert!(r.ok, "{r:?}");
    let acc = proxy.next(WAIT).expect("direct connection accepted");
    assert_eq!(dp.origin_of(acc.peer, acc.local), None);
    assert!(proxy.drain().is_empty(), "nothing else reached the proxy");

    assert_eq!(
        dp.counters().unwrap(),
        Counters {
            redirected: 0,
            exempt_host_netns: 1,
            exempt_mark: 1,
            origin_miss: 1,
            denied: 0,
        }
    );
}

#[test]
fn tcp_fast_open_sendto_is_redirected_too() {
    let node = Node::new().unwrap();
    node.add_metadata_addresses().unwrap();
    let pod = node.add_pod("f").unwrap();
    let proxy = node.listen(node.proxy_v4().into(), "proxy").unwrap();
    let real = node.listen(sa("169.254.169.254:80"), "real").unwrap();
    let dp = node
        .attach_datapath(node.datapath_config().unwrap())
        .unwrap();

    // sendto(MSG_FASTOPEN) connects without connect(2): it must not bypass the redirect.
    let r = pod.probe("tfo", "169.254.169.254:80", &[]).unwrap();
    assert!(r.ok, "{r:?}");
    assert!(
        r.reply.as_deref().unwrap_or("").starts_with("proxy "),
        "{r:?}"
    );
    let acc = proxy.next(WAIT).expect("proxy accepted the TFO connection");
    let o = dp
        .origin_of(acc.peer, acc.local)
        .expect("origin of TFO connection");
    assert_eq!(o.original_dst, sa("169.254.169.254:80"));
    assert!(real.next(Duration::from_millis(100)).is_none());
    assert_eq!(dp.counters().unwrap().redirected, 1);
}

#[test]
fn multipath_tcp_never_reaches_the_real_service() {
    let node = Node::new().unwrap();
    node.add_metadata_addresses().unwrap();
    let pod = node.add_pod("g").unwrap();
    let proxy = node.listen(node.proxy_v4().into(), "proxy").unwrap();
    let real = node.listen(sa("169.254.169.254:80"), "real").unwrap();
    let dp = node
        .attach_datapath(node.datapath_config().unwrap())
        .unwrap();

    // The connect hook runs for MPTCP's initial TCP subflow (protocol TCP): redirected like
    // plain TCP, with an origin record.
    let r = pod.probe("mptcp", "169.254.169.254:80", &[]).unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("proxy "),
        "{r:?}"
    );
    let acc = proxy
        .next(WAIT)
        .expect("proxy accepted the MPTCP connection");
    let o = dp
        .origin_of(acc.peer, acc.local)
        .expect("origin of MPTCP connection");
    assert_eq!(o.original_dst, sa("169.254.169.254:80"));
    assert_eq!(o.pid, r.pid);
    assert!(
        real.next(Duration::from_millis(100)).is_none(),
        "MPTCP reached the real IMDS"
    );
    assert_eq!(dp.counters().unwrap().redirected, 1);
}

/// Starts `podiam datapath-attach` in the node netns and waits for its "attached" line.
fn start_attach(node: &Node) -> std::process::Child {
    use std::io::BufRead as _;
    let bin = podiam_tests::bins::podiam_bin().unwrap();
    let mut cmd = node.command(bin).unwrap();
    cmd.arg("datapath-attach")
        .arg("--cgroup")
        .arg(node.cgroup())
        .arg("--pin-dir")
        .arg(node.pin_dir())
        .arg("--redirect-v4")
        .arg(node.proxy_v4().to_string())
        .arg("--host-netns-cookie")
        .arg(node.netns_cookie().unwrap().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    if line.trim() != "attached" {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "datapath-attach did not attach: {line:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child
}

fn sigterm_and_wait(mut child: std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "datapath-attach exit on SIGTERM: {status}"
    );
}

#[test]
fn pins_survive_sigterm_are_adopted_and_uninstall_removes_them() {
    let node = Node::new().unwrap();
    node.add_metadata_addresses().unwrap();
    let pod = node.add_pod("e").unwrap();
    let proxy = node.listen(node.proxy_v4().into(), "proxy").unwrap();
    let real = node.listen(sa("169.254.169.254:80"), "real").unwrap();

    sigterm_and_wait(start_attach(&node));
    // The attaching process is gone; the pinned links still redirect.
    let r = pod.probe("tcp", "169.254.169.254:80", &[]).unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("proxy "),
        "{r:?}"
    );
    let acc = proxy.next(WAIT).unwrap();
    let pinned = Datapath::open(node.pin_dir()).unwrap();
    assert_eq!(pinned.origin_of(acc.peer, acc.local).unwrap().pid, r.pid);
    assert_eq!(pinned.counters().unwrap().redirected, 1);
    let before = Datapath::status(node.pin_dir()).unwrap();
    assert!(before.attached());

    // A new attach adopts the pins: same links (ids), new programs, counters carry on.
    let second = start_attach(&node);
    let after = Datapath::status(node.pin_dir()).unwrap();
    assert!(after.attached());
    for (b, a) in before.links.iter().zip(&after.links) {
        let (b, a) = (b.info.unwrap(), a.info.unwrap());
        assert_eq!(b.id, a.id, "link {} kept", b.id);
        assert_ne!(b.prog_id, a.prog_id, "program replaced in link {}", b.id);
    }
    assert_eq!(after.counters.unwrap().redirected, 1);
    let r = pod.probe("tcp", "169.254.169.254:80", &[]).unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("proxy "),
        "{r:?}"
    );
    let acc = proxy.next(WAIT).unwrap();
    assert_eq!(pinned.origin_of(acc.peer, acc.local).unwrap().pid, r.pid);
    assert_eq!(pinned.counters().unwrap().redirected, 2);
    sigterm_and_wait(second);
    drop(pinned);

    // `podiam status` prints the pins.
    let out = std::process::Command::new(podiam_tests::bins::podiam_bin().unwrap())
        .args(["status", "--pin-dir"])
        .arg(node.pin_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("attached: yes") && text.contains("redirected=2"),
        "{text}"
    );

    // Uninstall: nothing redirected any more, the pin dir is gone.
    let out = std::process::Command::new(podiam_tests::bins::podiam_bin().unwrap())
        .args(["uninstall", "--pin-dir"])
        .arg(node.pin_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!node.pin_dir().exists());
    let r = pod.probe("tcp", "169.254.169.254:80", &[]).unwrap();
    assert!(
        r.ok && r.reply.as_deref().unwrap_or("").starts_with("real "),
        "{r:?}"
    );
    assert!(real.next(WAIT).is_some());
    assert!(proxy.drain().is_empty());
}

/// Runs the CLI, expects failure, returns stderr (which must be exactly one line).
fn cli_error(args: &[&str], as_nobody: bool) -> String {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = std::process::Command::new(podiam_tests::bins::podiam_bin().unwrap());
    cmd.args(args);
    if as_nobody {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one error line: {stderr:?}"
    );
    stderr
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    require_privileged();
    let node = Node::new().unwrap();
    let pin = node.pin_dir().to_str().unwrap().to_string();
    let cgroup = node.cgroup().to_str().unwrap().to_string();
    let missing = format!("{cgroup}/does-not-exist");

    let e = cli_error(
        &[
            "datapath-attach",
            "--cgroup",
            &missing,
            "--pin-dir",
            &pin,
            "--redirect-v4",
            "10.200.0.1:8181",
        ],
        false,
    );
    assert!(
        e.contains(&format!("cgroup {missing} does not exist")),
        "{e}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let not_bpffs = tmp.path().join("pins");
    let e = cli_error(
        &[
            "datapath-attach",
            "--cgroup",
            &cgroup,
            "--pin-dir",
            not_bpffs.to_str().unwrap(),
            "--redirect-v4",
            "10.200.0.1:8181",
        ],
        false,
    );
    assert!(e.contains("is not on a bpffs mount"), "{e}");
    assert!(!not_bpffs.exists());

    let e = cli_error(
        &[
            "datapath-attach",
            "--cgroup",
            &cgroup,
            "--pin-dir",
            &pin,
            "--redirect-v4",
            "10.200.0.1:8181",
        ],
        true,
    );
    assert!(
        e.contains("not running as root (CAP_BPF/CAP_SYS_ADMIN needed)"),
        "{e}"
    );
    assert!(
        !node.pin_dir().exists(),
        "nothing pinned by a failed attach"
    );

    // doctor names each missing thing on its own line.
    let out = std::process::Command::new(podiam_tests::bins::podiam_bin().unwrap())
        .args([
            "doctor",
            "--cgroup",
            &missing,
            "--pin-dir",
            not_bpffs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 2, "{text}");
    assert!(
        fails[0].contains(&format!("cgroup {missing} does not exist")),
        "{text}"
    );
    assert!(fails[1].contains("is not on a bpffs mount"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("ok   kernel")), "{text}");

    // The library reports the same errors as typed values.
    let mut cfg = node.datapath_config().unwrap();
    cfg.cgroup = missing.clone().into();
    assert!(matches!(
        Datapath::attach(&cfg),
        Err(DatapathError::CgroupNotFound(_))
    ));
    let mut cfg = node.datapath_config().unwrap();
    cfg.pin_dir = not_bpffs.clone();
    assert!(matches!(
        Datapath::attach(&cfg),
        Err(DatapathError::PinDirNotBpffs(_))
    ));
    let mut cfg = node.datapath_config().unwrap();
    cfg.redirect_v4 = "0.0.0.0:8181".parse().unwrap();
    assert!(matches!(
        Datapath::attach(&cfg),
        Err(DatapathError::InvalidConfig(_))
    ));
}
