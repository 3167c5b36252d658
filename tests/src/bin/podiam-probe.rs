//! `podiam-probe`: one connection attempt, reported as one JSON line on stdout
//! (see `podiam_tests::probe::ProbeResult`). Run inside simulated pods.
//!
//! ```text
//! podiam-probe tcp  ADDR [--mark N] [--timeout-ms N]   TCP; AF_INET6 for IPv6 ADDR
//! podiam-probe tcp6 ADDR [--mark N] [--timeout-ms N]   TCP on an AF_INET6 socket; IPv4 ADDR is
//!                                                      dialled as ::ffff:a.b.c.d (dual stack)
//! podiam-probe tfo  ADDR [--mark N] [--timeout-ms N]   TCP Fast Open: sendto(MSG_FASTOPEN)
//!                                                      instead of connect()
//! podiam-probe mptcp ADDR [--mark N] [--timeout-ms N]  Multipath TCP socket (IPPROTO_MPTCP)
//! podiam-probe udp  ADDR                               UDP connect (no packet sent)
//! ```
//! TCP: connects, reads the server's reply until EOF or a newline, reports local/peer
//! addresses and the reply. Exit status 0 on success, 1 on a failed connect, 2 on bad usage.
use std::io::Read as _;
use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getpeername, getsockname,
    setsockopt, socket, sockopt,
};

fn to_std(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

fn fail(kind: &str, addr: &str, e: impl std::fmt::Display, errno: i32) -> ! {
    println!(
        "{}",
        serde_json::json!({"ok": false, "kind": kind, "target": addr, "error": e.to_string(), "errno": errno, "pid": std::process::id()})
    );
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: podiam-probe tcp|tcp6|udp ADDR [--mark N] [--timeout-ms N]");
        std::process::exit(2);
    }
    let kind = args[1].as_str();
    let Ok(target) = args[2].parse::<SocketAddr>() else {
        eprintln!("podiam-probe: bad address {}", args[2]);
        std::process::exit(2);
    };
    let mut mark = None;
    let mut timeout = Duration::from_millis(2000);
    let mut i = 3;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--mark" => mark = args[i + 1].parse::<u32>().ok(),
            "--timeout-ms" => {
                timeout = Duration::from_millis(args[i + 1].parse().unwrap_or(2000));
            }
            other => {
                eprintln!("podiam-probe: unknown flag {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let (family, ty, dest) = match (kind, target) {
        ("tcp", SocketAddr::V4(a)) => (
            AddressFamily::Inet,
            SockType::Stream,
            SockaddrStorage::from(a),
        ),
        ("tfo" | "mptcp", SocketAddr::V4(a)) => (
            AddressFamily::Inet,
            SockType::Stream,
            SockaddrStorage::from(a),
        ),
        ("tcp" | "tcp6" | "tfo" | "mptcp", SocketAddr::V6(a)) => (
            AddressFamily::Inet6,
            SockType::Stream,
            SockaddrStorage::from(a),
        ),
        ("tcp6", SocketAddr::V4(a)) => {
            let mapped = SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0);
            (
                AddressFamily::Inet6,
                SockType::Stream,
                SockaddrStorage::from(mapped),
            )
        }
        ("udp", SocketAddr::V4(a)) => (
            AddressFamily::Inet,
            SockType::Datagram,
            SockaddrStorage::from(a),
        ),
        ("udp", SocketAddr::V6(a)) => (
            AddressFamily::Inet6,
            SockType::Datagram,
            SockaddrStorage::from(a),
        ),
        _ => {
            eprintln!("podiam-probe: unknown kind {kind}");
            std::process::exit(2);
        }
    };
    let fd: OwnedFd = if kind == "mptcp" {
        const IPPROTO_MPTCP: libc::c_int = 262;
        let domain = if family == AddressFamily::Inet6 {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        // SAFETY: plain socket(2); ownership taken right away.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                IPPROTO_MPTCP,
            )
        };
        if raw < 0 {
            let e = std::io::Error::last_os_error();
            fail(kind, &args[2], &e, e.raw_os_error().unwrap_or(0));
        }
        // SAFETY: raw is a new descriptor we own.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
    } else {
        match socket(family, ty, SockFlag::SOCK_CLOEXEC, None) {
            Ok(fd) => fd,
            Err(e) => fail(kind, &args[2], e, e as i32),
        }
    };
    if family == AddressFamily::Inet6 {
        let _ = setsockopt(&fd, sockopt::Ipv6V6Only, &false);
    }
    if let Some(m) = mark
        && let Err(e) = setsockopt(&fd, sockopt::Mark, &m)
    {
        fail(kind, &args[2], e, e as i32);
    }
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64);
    let _ = setsockopt(&fd, sockopt::SendTimeout, &tv);
    let _ = setsockopt(&fd, sockopt::ReceiveTimeout, &tv);
    if kind == "tfo" {
        use nix::sys::socket::SockaddrLike as _;
        let data = b"tfo\n";
        // SAFETY: valid buffer and sockaddr of the stated length.
        let ret = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_FASTOPEN,
                dest.as_ptr().cast(),
                dest.len(),
            )
        };
        if ret < 0 {
            let e = std::io::Error::last_os_error();
            fail(kind, &args[2], &e, e.raw_os_error().unwrap_or(0));
        }
    } else if let Err(e) = connect(fd.as_raw_fd(), &dest) {
        fail(kind, &args[2], e, e as i32);
    }
    let local = getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .and_then(|s| to_std(&s));
    let peer = getpeername::<SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .and_then(|s| to_std(&s));
    let mut reply = String::new();
    if ty == SockType::Stream {
        let mut stream = std::net::TcpStream::from(fd);
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    reply.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if reply.contains('\n') {
                        break;
                    }
                }
                Err(e) => fail(
                    kind,
                    &args[2],
                    format!("read: {e}"),
                    e.raw_os_error().unwrap_or(0),
                ),
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "ok": true,
            "kind": kind,
            "target": args[2],
            "local": local.map(|a| a.to_string()),
            "peer": peer.map(|a| a.to_string()),
            "reply": reply.trim_end(),
            "pid": std::process::id(),
        })
    );
}
