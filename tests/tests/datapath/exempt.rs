//! Exemptions and destinations that must keep their address.

use podiam::datapath::{Counters, OriginLookup};
use podiam_tests::Node;

use super::{WAIT, sa};

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
fn marked_pod_sockets_are_redirected_when_the_mark_exemption_is_off() {
    let node = Node::new().unwrap();
    let pod = node.add_pod("m").unwrap();
    let proxy = node.listen(node.proxy_v4().into(), "proxy").unwrap();
    let mut cfg = node.datapath_config().unwrap();
    cfg.agent_mark = 0;
    let dp = node.attach_datapath(cfg).unwrap();

    for mark in ["0", &podiam::datapath::DEFAULT_AGENT_MARK.to_string()] {
        let r = pod
            .probe("tcp", "169.254.169.254:80", &["--mark", mark])
            .unwrap();
        assert!(
            r.ok && r.reply.as_deref().unwrap_or("").starts_with("proxy "),
            "mark {mark}: {r:?}"
        );
        assert!(proxy.next(WAIT).is_some());
    }
    let c = dp.counters().unwrap();
    assert_eq!((c.redirected, c.exempt_mark), (2, 0));
}
