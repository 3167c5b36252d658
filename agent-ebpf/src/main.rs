//! podiam's eBPF programs. Built for `bpfel-unknown-none` by `agent/build.rs` (aya-build).
//!
//! - `connect4` / `connect6` (`cgroup/connect4`, `cgroup/connect6`): for TCP sockets whose
//!   destination is in the `INTERCEPT` map, record the origin by socket cookie and rewrite the
//!   destination to the redirect target from `CONFIG`. Exempt: sockets in the host netns, and
//!   sockets carrying the agent's `SO_MARK`. Fail closed (return 0 → `connect()` gets `EPERM`)
//!   when an intercepted destination cannot be redirected: no valid config, an IPv6 destination
//!   without an IPv6 target, a stream socket that is not TCP (SCTP), or a full origin map.
//!   MPTCP needs no special case: the hook runs for its initial subflow, a TCP socket. TCP Fast
//!   Open (`sendto(MSG_FASTOPEN)`) runs the connect hook too.
//! - `sock_ops` (`BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB`): move the origin record from the socket
//!   cookie key to the client 4-tuple key, so the proxy can look it up from `accept()`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

    use aya_ebpf::{
        EbpfContext,
        bindings::{bpf_sock_addr, bpf_sock_ops},
        helpers::{
            bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
            generated::{bpf_get_netns_cookie, bpf_get_socket_cookie},
        },
        macros::{cgroup_sock_addr, map, sock_ops},
        maps::{Array, HashMap, LruHashMap, PerCpuArray},
        programs::{SockAddrContext, SockOpsContext},
    };
    use podiam_ebpf::{
        CONFIG_F_V6, CONFIG_F_VALID, COUNTER_COUNT, COUNTER_DENIED, COUNTER_EXEMPT_HOST_NETNS,
        COUNTER_EXEMPT_MARK, COUNTER_ORIGIN_MISS, COUNTER_REDIRECTED, Config, InterceptKey,
        OriginRecord, TupleKey, is_v4_mapped, v4_mapped,
    };

    const AF_INET: u32 = 2;
    const AF_INET6: u32 = 10;
    const SOCK_STREAM: u32 = 1;
    const IPPROTO_TCP: u32 = 6;
    const BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB: u32 = 4;
    /// Return value of a cgroup sock_addr program: let `connect()` proceed.
    const ALLOW: i32 = 1;
    /// Return value: refuse `connect()` with `EPERM`.
    const DENY: i32 = 0;

    #[map(name = "INTERCEPT")]
    static INTERCEPT: HashMap<InterceptKey, u32> = HashMap::pinned(64, 0);
    #[map(name = "CONFIG")]
    static CONFIG: Array<Config> = Array::pinned(1, 0);
    #[map(name = "ORIGIN_COOKIE")]
    static ORIGIN_COOKIE: LruHashMap<u64, OriginRecord> = LruHashMap::pinned(16384, 0);
    #[map(name = "ORIGIN_TUPLE")]
    static ORIGIN_TUPLE: LruHashMap<TupleKey, OriginRecord> = LruHashMap::pinned(16384, 0);
    #[map(name = "COUNTERS")]
    static COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(COUNTER_COUNT, 0);

    #[inline(always)]
    fn count(idx: u32) {
        if let Some(p) = COUNTERS.get_ptr_mut(idx) {
            // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
            unsafe { *p += 1 };
        }
    }

    /// What connect4/6 decided for an intercepted destination.
    enum Verdict {
        /// Leave the socket alone.
        Pass,
        /// Refuse the connect.
        Deny,
        /// Rewrite to this (address words, host-order port) and record the origin.
        Redirect([u32; 4], u16),
    }

    /// Common decision for an intercepted destination `addr`:`port` (v4-mapped for IPv4).
    #[inline(always)]
    fn decide(
        ctx: &SockAddrContext,
        addr: [u32; 4],
        port: u16,
        service: u32,
        family: u32,
    ) -> Verdict {
        let sa = ctx.sock_addr;
        // SAFETY: ctx fields are readable in cgroup sock_addr programs.
        let protocol = unsafe { read_volatile(addr_of!((*sa).protocol)) };
        let cfg = match CONFIG.get(0) {
            Some(c) => *c,
            None => return Verdict::Deny,
        };
        if cfg.flags & CONFIG_F_VALID == 0 {
            count(COUNTER_DENIED);
            return Verdict::Deny;
        }
        let netns = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
        if netns == cfg.host_netns_cookie {
            count(COUNTER_EXEMPT_HOST_NETNS);
            return Verdict::Pass;
        }
        if cfg.agent_mark != 0 {
            // SAFETY: `sk` is a PTR_TO_SOCKET (never null) in sock_addr programs (Linux >= 5.3).
            let sk = unsafe { read_volatile(addr_of!((*sa).__bindgen_anon_1.sk)) };
            if !sk.is_null() {
                let mark = unsafe { read_volatile(addr_of!((*sk).mark)) };
                if mark == cfg.agent_mark {
                    count(COUNTER_EXEMPT_MARK);
                    return Verdict::Pass;
                }
            }
        }
        if protocol != IPPROTO_TCP {
            // A stream socket that is not TCP (e.g. SCTP one-to-one): fail closed.
            count(COUNTER_DENIED);
            return Verdict::Deny;
        }
        let (target, target_port) = if is_v4_mapped(&addr) {
            (v4_mapped(cfg.redirect_v4_addr), cfg.redirect_v4_port)
        } else if cfg.flags & CONFIG_F_V6 != 0 {
            (cfg.redirect_v6_addr, cfg.redirect_v6_port)
        } else {
            count(COUNTER_DENIED);
            return Verdict::Deny;
        };
        let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
        let rec = OriginRecord {
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
            netns_cookie: netns,
            pid_tgid: bpf_get_current_pid_tgid(),
            uid_gid: bpf_get_current_uid_gid(),
            orig_addr: addr,
            orig_port: port,
            family: family as u16,
            service,
        };
        if ORIGIN_COOKIE.insert(&cookie, &rec, 0).is_err() {
            // Without an origin record the proxy would refuse the connection anyway.
            count(COUNTER_DENIED);
            return Verdict::Deny;
        }
        count(COUNTER_REDIRECTED);
        Verdict::Redirect(target, target_port)
    }

    #[inline(always)]
    fn sock_type(sa: *mut bpf_sock_addr) -> u32 {
        unsafe { read_volatile(addr_of!((*sa).type_)) }
    }

    #[cgroup_sock_addr(connect4)]
    pub fn connect4(ctx: SockAddrContext) -> i32 {
        let sa = ctx.sock_addr;
        if sock_type(sa) != SOCK_STREAM {
            return ALLOW;
        }
        // SAFETY: user_ip4/user_port are readable and writable in connect4.
        let ip4 = unsafe { read_volatile(addr_of!((*sa).user_ip4)) };
        let port = u16::from_be(unsafe { read_volatile(addr_of!((*sa).user_port)) } as u16);
        let addr = v4_mapped(ip4);
        let key = InterceptKey {
            addr,
            port,
            _pad: 0,
        };
        let service = match unsafe { INTERCEPT.get(&key) } {
            Some(s) => *s,
            None => return ALLOW,
        };
        match decide(&ctx, addr, port, service, AF_INET) {
            Verdict::Pass => ALLOW,
            Verdict::Deny => DENY,
            Verdict::Redirect(target, target_port) => {
                unsafe {
                    write_volatile(addr_of_mut!((*sa).user_ip4), target[3]);
                    write_volatile(addr_of_mut!((*sa).user_port), target_port.to_be() as u32);
                }
                ALLOW
            }
        }
    }

    #[cgroup_sock_addr(connect6)]
    pub fn connect6(ctx: SockAddrContext) -> i32 {
        let sa = ctx.sock_addr;
        if sock_type(sa) != SOCK_STREAM {
            return ALLOW;
        }
        // SAFETY: user_ip6 words (4-byte accesses) and user_port are readable and writable.
        let addr = unsafe {
            [
                read_volatile(addr_of!((*sa).user_ip6[0])),
                read_volatile(addr_of!((*sa).user_ip6[1])),
                read_volatile(addr_of!((*sa).user_ip6[2])),
                read_volatile(addr_of!((*sa).user_ip6[3])),
            ]
        };
        let port = u16::from_be(unsafe { read_volatile(addr_of!((*sa).user_port)) } as u16);
        let key = InterceptKey {
            addr,
            port,
            _pad: 0,
        };
        let service = match unsafe { INTERCEPT.get(&key) } {
            Some(s) => *s,
            None => return ALLOW,
        };
        match decide(&ctx, addr, port, service, AF_INET6) {
            Verdict::Pass => ALLOW,
            Verdict::Deny => DENY,
            Verdict::Redirect(target, target_port) => {
                unsafe {
                    write_volatile(addr_of_mut!((*sa).user_ip6[0]), target[0]);
                    write_volatile(addr_of_mut!((*sa).user_ip6[1]), target[1]);
                    write_volatile(addr_of_mut!((*sa).user_ip6[2]), target[2]);
                    write_volatile(addr_of_mut!((*sa).user_ip6[3]), target[3]);
                    write_volatile(addr_of_mut!((*sa).user_port), target_port.to_be() as u32);
                }
                ALLOW
            }
        }
    }

    /// Reads a `bpf_sock_ops` u32 field with the 4-byte load the verifier demands.
    macro_rules! ops_u32 {
        ($ops:expr, $($field:tt)+) => {
            unsafe { read_volatile(addr_of!((*$ops).$($field)+)) }
        };
    }

    #[inline(always)]
    fn ops_ip6_remote(ops: *mut bpf_sock_ops) -> [u32; 4] {
        [
            ops_u32!(ops, remote_ip6[0]),
            ops_u32!(ops, remote_ip6[1]),
            ops_u32!(ops, remote_ip6[2]),
            ops_u32!(ops, remote_ip6[3]),
        ]
    }

    #[inline(always)]
    fn ops_ip6_local(ops: *mut bpf_sock_ops) -> [u32; 4] {
        [
            ops_u32!(ops, local_ip6[0]),
            ops_u32!(ops, local_ip6[1]),
            ops_u32!(ops, local_ip6[2]),
            ops_u32!(ops, local_ip6[3]),
        ]
    }

    #[sock_ops]
    pub fn sock_ops(ctx: SockOpsContext) -> u32 {
        let ops = ctx.ops;
        if ops_u32!(ops, op) != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB {
            return 1;
        }
        // Cheap filter first: only connections to the redirect target can carry an origin
        // record, so every other connection leaves after one array lookup and two loads.
        let Some(cfg) = CONFIG.get(0) else {
            return 1;
        };
        if cfg.flags & CONFIG_F_VALID == 0 {
            return 1;
        }
        // include/uapi/linux/bpf.h: local_port is in host byte order; remote_port holds the
        // network-order port in a 32-bit network-order value (kernel shifts skc_dport << 16
        // on little-endian), so ntohl() yields the port.
        let server_port = u32::from_be(ops_u32!(ops, remote_port)) as u16;
        let v6_target = cfg.flags & CONFIG_F_V6 != 0;
        if server_port != cfg.redirect_v4_port
            && !(v6_target && server_port == cfg.redirect_v6_port)
        {
            return 1;
        }
        let family = ops_u32!(ops, family);
        // Read every address field unconditionally (fixed ctx offsets): the verifier rejects
        // loads through a ctx pointer the compiler selected at run time.
        let local4 = ops_u32!(ops, local_ip4);
        let remote4 = ops_u32!(ops, remote_ip4);
        let local6 = ops_ip6_local(ops);
        let remote6 = ops_ip6_remote(ops);
        let (client_addr, server_addr) = if family == AF_INET {
            (v4_mapped(local4), v4_mapped(remote4))
        } else if family == AF_INET6 {
            (local6, remote6)
        } else {
            return 1;
        };
        let to_v4 =
            server_addr == v4_mapped(cfg.redirect_v4_addr) && server_port == cfg.redirect_v4_port;
        let to_v6 =
            v6_target && server_addr == cfg.redirect_v6_addr && server_port == cfg.redirect_v6_port;
        if !to_v4 && !to_v6 {
            return 1;
        }
        let client_port = ops_u32!(ops, local_port) as u16;
        let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
        match ORIGIN_COOKIE.get_ptr(&cookie) {
            Some(rec) => {
                let rec = unsafe { *rec };
                let key = TupleKey {
                    client_addr,
                    server_addr,
                    client_port,
                    server_port,
                };
                let _ = ORIGIN_TUPLE.insert(&key, &rec, 0);
                let _ = ORIGIN_COOKIE.remove(&cookie);
            }
            None => count(COUNTER_ORIGIN_MISS),
        }
        1
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
