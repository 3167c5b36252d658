//! Pins keep the programs attached across restarts; adoption; uninstall.
use podiam::datapath::{Datapath, OriginLookup};
use podiam_tests::Node;

use super::{WAIT, sa};

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
