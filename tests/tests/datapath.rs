//! Kernel tests of the eBPF datapath on this machine's kernel (run as root):
//! `cargo test -p podiam-tests --test datapath`.
//!
//! Each test builds its own simulated node (netns + bridge + cgroup + pin dir) and pods, so
//! tests run in parallel; every test calls `require_privileged()` (through `Node::new` or
//! directly) and FAILS when it cannot run.
use std::net::SocketAddr;
use std::time::Duration;

#[path = "datapath/errors.rs"]
mod errors;
#[path = "datapath/exempt.rs"]
mod exempt;
#[path = "datapath/pins.rs"]
mod pins;
#[path = "datapath/redirect.rs"]
mod redirect;

const WAIT: Duration = Duration::from_secs(2);

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}
