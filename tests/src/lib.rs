//! Test harness: simulated nodes and pods for kernel-level tests.
//!
//! - [`Node`]: a network namespace ("node netns", whose netns cookie is the datapath's host
//!   cookie) with a bridge `br0` (10.200.0.1/24, fd00:200::1/64), its own cgroup
//!   `<cgroup2 root>/podiam-test-<id>` where the datapath attaches, and a bpffs pin dir
//!   `/sys/fs/bpf/podiam-test-<id>`.
//! - [`Pod`]: a netns + veth (host end on `br0`), 10.200.0.N/24 + fd00:200::N/64 with default
//!   routes via the bridge, and a child cgroup `<node cgroup>/pod-<name>`; commands run there
//!   via [`Pod::command`] (pid written to `cgroup.procs`, then `setns`, in `pre_exec`).
//! - [`TestListener`]: a TCP listener (created in the node netns) that answers each
//!   connection with a tag line and reports `(peer, local)`.
//! - [`probe`]: runs `podiam-probe` (a connect/report bin) and parses its JSON line.
//! - [`require_privileged`]: every kernel test calls it first; it panics (the test FAILS)
//!   when not root or BPF is unusable.
//!
//! Everything is uniquely named per node (`<pid>-<n>`), so tests run in parallel; `Drop`
//! kills processes (`cgroup.kill`), removes pins, cgroups and namespaces; [`stale`] removes
//! what killed test processes left behind. Traffic only flows
//! between namespaces created here (and loopback): nothing is added to the root netns.
pub mod bins;
pub mod cgroup;
pub mod interrupt;
pub mod listener;
pub mod netns;
pub mod node;
pub mod pod;
pub mod privileged;
pub mod probe;
pub mod scenario;
pub mod stale;

pub use listener::{Accepted, TestListener};
pub use node::Node;
pub use pod::Pod;
pub use privileged::{check_privileged, require_privileged};
pub use probe::ProbeResult;
