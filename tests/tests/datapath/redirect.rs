//! Intercepted destinations are redirected, with origin records.
use std::net::SocketAddr;
use std::time::Duration;

use podiam::datapath::{Counters, OriginLookup, Service};
use podiam_tests::Node;

use super::{WAIT, sa};

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

#[test]
fn each_pod_gets_its_own_origin() {
    let node = Node::new().unwrap();
    let a = node.add_pod("a").unwrap();
    let b = node.add_pod("b").unwrap();
    let proxy = node.listen(node.proxy_v4().into(), "proxy").unwrap();
    let dp = node
        .attach_datapath(node.datapath_config().unwrap())
        .unwrap();

    let ra = a.probe("tcp", "169.254.169.254:80", &[]).unwrap();
    let acc_a = proxy.next(WAIT).unwrap();
    let rb = b.probe("tcp", "169.254.170.23:80", &[]).unwrap();
    let acc_b = proxy.next(WAIT).unwrap();
    assert!(ra.ok && rb.ok);
    let (oa, ob) = (
        dp.origin_of(acc_a.peer, acc_a.local).unwrap(),
        dp.origin_of(acc_b.peer, acc_b.local).unwrap(),
    );
    assert!(a.has_ip(acc_a.peer.ip()) && b.has_ip(acc_b.peer.ip()));
    assert_eq!((oa.cgroup_id, oa.pid), (a.cgroup_id().unwrap(), ra.pid));
    assert_eq!((ob.cgroup_id, ob.pid), (b.cgroup_id().unwrap(), rb.pid));
    assert_ne!(oa.netns_cookie, ob.netns_cookie);
    assert_eq!(ob.service, Service::PodIdentity);
    // A lookup with the wrong local port (another listener) finds nothing.
    let wrong = SocketAddr::new(acc_a.local.ip(), acc_a.local.port() + 1);
    assert_eq!(dp.origin_of(acc_a.peer, wrong), None);
}
