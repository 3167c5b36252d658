//! podiam: per-pod IAM roles through an eBPF-redirected metadata proxy.
//!
//! One module per concern (see `docs/architecture.md`):
//! - [`datapath`]: eBPF loader, pins, origin records (kernel side in `podiam-ebpf`).
//! - [`identity`]: origin record → cgroup → pod (the caller).
//! - [`inventory`]: where pods, service accounts and role mappings come from (Kubernetes or a static file).
//! - [`policy`]: role resolution rules and namespace restrictions.
//! - [`vend`]: STS AssumeRole, the per-pod session cache.
//! - [`imds`], [`podidentity`]: the two protocol surfaces; [`server`]: listeners and dispatch.
//! - [`metrics`]: Prometheus registry; [`cli`]: flags and subcommands.
#![warn(missing_docs)]

pub mod cli;
pub mod datapath;
pub mod identity;
pub mod imds;
pub mod inventory;
pub mod metrics;
pub mod podidentity;
pub mod policy;
pub mod server;
pub mod vend;
