//! Map key and value types shared by the eBPF programs and the userspace loader.
//! All types are `#[repr(C)]` and `Copy`; with feature `user` they implement `aya::Pod`.
//!
//! Conventions used by every type here:
//! - An address is 16 bytes held as `[u32; 4]` whose *memory* is in network byte order
//!   (exactly like `bpf_sock_addr.user_ip6` / `bpf_sock_ops.remote_ip6`). IPv4 addresses are
//!   stored in their v4-mapped form `::ffff:a.b.c.d` (words `[0, 0, 0x0000ffff BE, ip4]`).
//! - A port is a `u16` in **host** byte order.
//! - Padding is explicit and must be zero, because keys are hashed byte-wise by the kernel.
#![no_std]

/// Service id stored in [`INTERCEPT`]'s values and in [`OriginRecord::service`]: EC2 IMDS.
pub const SERVICE_IMDS: u32 = 1;
/// Service id: EKS Pod Identity (container credentials).
pub const SERVICE_POD_IDENTITY: u32 = 2;

/// Map names (also the file names of the map pins under the pin directory).
pub const INTERCEPT: &str = "INTERCEPT";
/// Name of the [`Config`] array map (1 entry, index 0).
pub const CONFIG: &str = "CONFIG";
/// Name of the LRU hash socket cookie (`u64`) → [`OriginRecord`].
pub const ORIGIN_COOKIE: &str = "ORIGIN_COOKIE";
/// Name of the LRU hash [`TupleKey`] → [`OriginRecord`].
pub const ORIGIN_TUPLE: &str = "ORIGIN_TUPLE";
/// Name of the per-CPU `u64` counter array, indexed by the `COUNTER_*` constants.
pub const COUNTERS: &str = "COUNTERS";

/// Counter index: connections whose destination was rewritten to the redirect target.
pub const COUNTER_REDIRECTED: u32 = 0;
/// Counter index: intercepted destinations left alone because the socket is in the host netns.
pub const COUNTER_EXEMPT_HOST_NETNS: u32 = 1;
/// Counter index: intercepted destinations left alone because the socket carries the agent mark.
pub const COUNTER_EXEMPT_MARK: u32 = 2;
/// Counter index: `sock_ops` saw an established connection to the redirect target without an
/// origin record for its socket cookie.
pub const COUNTER_ORIGIN_MISS: u32 = 3;
/// Counter index: intercepted destinations refused (connect returns `EPERM`): IPv6 target not
/// configured, config missing, a non-TCP stream socket (e.g. SCTP), or the origin map insert
/// failed.
pub const COUNTER_DENIED: u32 = 4;
/// Number of counters in [`COUNTERS`].
pub const COUNTER_COUNT: u32 = 5;

/// Key of [`INTERCEPT`]: destination address and port a pod may dial.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterceptKey {
    /// Destination address, network-order words, IPv4 v4-mapped.
    pub addr: [u32; 4],
    /// Destination port, host byte order.
    pub port: u16,
    /// Zero.
    pub _pad: u16,
}

/// Flag in [`Config::flags`]: the entry has been written by userspace.
pub const CONFIG_F_VALID: u32 = 1;
/// Flag in [`Config::flags`]: `redirect_v6_addr`/`redirect_v6_port` are set.
pub const CONFIG_F_V6: u32 = 2;

/// The single entry (index 0) of [`CONFIG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// IPv4 redirect target address as in `bpf_sock_addr.user_ip4` (network byte order in memory).
    pub redirect_v4_addr: u32,
    /// IPv4 redirect target port, host byte order.
    pub redirect_v4_port: u16,
    /// IPv6 redirect target port, host byte order (valid with [`CONFIG_F_V6`]).
    pub redirect_v6_port: u16,
    /// IPv6 redirect target address, network-order words (valid with [`CONFIG_F_V6`]).
    pub redirect_v6_addr: [u32; 4],
    /// `CONFIG_F_*` bits.
    pub flags: u32,
    /// `SO_MARK` value of the agent's own sockets (0 = no mark exemption).
    pub agent_mark: u32,
    /// Netns cookie of the host network namespace (`SO_NETNS_COOKIE`); sockets there are exempt.
    pub host_netns_cookie: u64,
}

/// Origin of a redirected connection, written by connect4/6 (keyed by socket cookie) and
/// copied by `sock_ops` into [`ORIGIN_TUPLE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OriginRecord {
    /// `bpf_get_current_cgroup_id()` of the connecting task (cgroup v2 inode number).
    pub cgroup_id: u64,
    /// `bpf_get_netns_cookie()` of the socket.
    pub netns_cookie: u64,
    /// `bpf_get_current_pid_tgid()`: tgid (process id) in the upper 32 bits, pid (thread id) lower.
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid()`: gid upper 32 bits, uid lower.
    pub uid_gid: u64,
    /// Destination the application dialled, network-order words, IPv4 v4-mapped.
    pub orig_addr: [u32; 4],
    /// Destination port the application dialled, host byte order.
    pub orig_port: u16,
    /// Socket family: `AF_INET` (2) or `AF_INET6` (10).
    pub family: u16,
    /// `SERVICE_*` id.
    pub service: u32,
}

/// Key of [`ORIGIN_TUPLE`]: the redirected connection's 4-tuple as seen from the client.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TupleKey {
    /// Client (pod) address, network-order words, IPv4 v4-mapped.
    pub client_addr: [u32; 4],
    /// Server (redirect target) address, network-order words, IPv4 v4-mapped.
    pub server_addr: [u32; 4],
    /// Client port, host byte order.
    pub client_port: u16,
    /// Server port, host byte order.
    pub server_port: u16,
}

/// The v4-mapped form of an IPv4 address given as a network-order `u32` (as in
/// `bpf_sock_addr.user_ip4`): `::ffff:a.b.c.d` as network-order words.
#[inline(always)]
pub const fn v4_mapped(ip4_be: u32) -> [u32; 4] {
    [0, 0, 0xffffu32.to_be(), ip4_be]
}

/// Whether `addr` (network-order words) is a v4-mapped IPv6 address.
#[inline(always)]
pub const fn is_v4_mapped(addr: &[u32; 4]) -> bool {
    addr[0] == 0 && addr[1] == 0 && addr[2] == 0xffffu32.to_be()
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all types are #[repr(C)], Copy, contain only integers and have no implicit
    // padding (explicit `_pad` fields / sizes that are multiples of their alignment).
    unsafe impl aya::Pod for super::InterceptKey {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::OriginRecord {}
    unsafe impl aya::Pod for super::TupleKey {}
}
