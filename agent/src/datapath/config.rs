//! [`DatapathConfig`] and the conversions between std socket addresses and the map layouts
//! of `podiam-ebpf` (network-order address words, v4-mapped IPv4, host-order ports).
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;

use podiam_ebpf::{
    CONFIG_F_V6, CONFIG_F_VALID, Config, InterceptKey, SERVICE_IMDS, SERVICE_POD_IDENTITY,
};

use super::{DatapathError, Service, cgroup, sys};

/// Default pin directory (on bpffs).
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/podiam";
/// Default `SO_MARK` of the agent's own sockets ("PODI" in ASCII); such sockets are never
/// redirected.
pub const DEFAULT_AGENT_MARK: u32 = 0x504f_4449;

/// What to attach where, and how to redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatapathConfig {
    /// cgroup v2 directory to attach to (default: the cgroup2 root, see
    /// [`cgroup::find_cgroup2_root`]); every process below it is subject to the redirect.
    pub cgroup: PathBuf,
    /// bpffs directory for the link and map pins (default [`DEFAULT_PIN_DIR`]).
    pub pin_dir: PathBuf,
    /// Where intercepted IPv4 (and v4-mapped) connections go: the proxy listener, an address
    /// pods can route to (node IP), never 127.0.0.1.
    pub redirect_v4: SocketAddrV4,
    /// Where intercepted native IPv6 connections go. `None`: such connects fail with `EPERM`
    /// (fail closed) rather than reaching the real service.
    pub redirect_v6: Option<SocketAddrV6>,
    /// Netns cookie of the host network namespace (`SO_NETNS_COOKIE`); sockets there are never
    /// redirected. Default: the calling thread's netns.
    pub host_netns_cookie: u64,
    /// `SO_MARK` of the agent's sockets, never redirected (0 disables this exemption).
    pub agent_mark: u32,
    /// Destinations to intercept (default [`DatapathConfig::default_intercepts`]).
    pub intercepts: Vec<(SocketAddr, Service)>,
}

impl DatapathConfig {
    /// Defaults for everything but the redirect target: cgroup2 root (mounting one if needed),
    /// [`DEFAULT_PIN_DIR`], no IPv6 target, the calling thread's netns cookie,
    /// [`DEFAULT_AGENT_MARK`], [`Self::default_intercepts`].
    pub fn new(redirect_v4: SocketAddrV4) -> Result<Self, DatapathError> {
        Ok(Self {
            cgroup: cgroup::find_cgroup2_root()?,
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            redirect_v4,
            redirect_v6: None,
            host_netns_cookie: sys::current_netns_cookie()
                .map_err(DatapathError::HostNetnsCookie)?,
            agent_mark: DEFAULT_AGENT_MARK,
            intercepts: Self::default_intercepts(),
        })
    }

    /// IMDS `169.254.169.254:80`, `[fd00:ec2::254]:80`; Pod Identity `169.254.170.23:80`,
    /// `[fd00:ec2::23]:80`.
    pub fn default_intercepts() -> Vec<(SocketAddr, Service)> {
        vec![
            (SocketAddr::from(([169, 254, 169, 254], 80)), Service::Imds),
            (
                SocketAddr::from(([169, 254, 170, 23], 80)),
                Service::PodIdentity,
            ),
            (
                SocketAddr::from((Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 80)),
                Service::Imds,
            ),
            (
                SocketAddr::from((Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23), 80)),
                Service::PodIdentity,
            ),
        ]
    }

    /// The `CONFIG` map entry for this configuration.
    pub(crate) fn to_map_config(&self) -> Result<Config, DatapathError> {
        let v4 = self.redirect_v4.ip();
        if self.redirect_v4.port() == 0 || v4.is_unspecified() || v4.is_loopback() {
            // A pod's 127.0.0.1 is its own loopback, not the node's: never a valid target.
            return Err(DatapathError::InvalidConfig(format!(
                "redirect target {} needs an address pods can route to (not 0.0.0.0 or 127.0.0.0/8) and a port",
                self.redirect_v4
            )));
        }
        let mut cfg = Config {
            redirect_v4_addr: u32::from_ne_bytes(self.redirect_v4.ip().octets()),
            redirect_v4_port: self.redirect_v4.port(),
            flags: CONFIG_F_VALID,
            agent_mark: self.agent_mark,
            host_netns_cookie: self.host_netns_cookie,
            ..Config::default()
        };
        if let Some(v6) = self.redirect_v6 {
            let ip = v6.ip();
            if v6.port() == 0
                || ip.is_unspecified()
                || ip.is_loopback()
                || ip.to_ipv4_mapped().is_some()
            {
                return Err(DatapathError::InvalidConfig(format!(
                    "IPv6 redirect target {v6} needs a native IPv6 address pods can route to (not :: or ::1) and a port"
                )));
            }
            cfg.redirect_v6_addr = addr_words(IpAddr::V6(*v6.ip()));
            cfg.redirect_v6_port = v6.port();
            cfg.flags |= CONFIG_F_V6;
        }
        Ok(cfg)
    }
}

/// Service id used in the maps.
pub(crate) fn service_id(s: Service) -> u32 {
    match s {
        Service::Imds => SERVICE_IMDS,
        Service::PodIdentity => SERVICE_POD_IDENTITY,
    }
}

/// Inverse of [`service_id`].
pub(crate) fn service_from_id(id: u32) -> Option<Service> {
    match id {
        SERVICE_IMDS => Some(Service::Imds),
        SERVICE_POD_IDENTITY => Some(Service::PodIdentity),
        _ => None,
    }
}

/// An address as network-order words; IPv4 as `::ffff:a.b.c.d`.
pub fn addr_words(ip: IpAddr) -> [u32; 4] {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let o = v6.octets();
    [
        u32::from_ne_bytes([o[0], o[1], o[2], o[3]]),
        u32::from_ne_bytes([o[4], o[5], o[6], o[7]]),
        u32::from_ne_bytes([o[8], o[9], o[10], o[11]]),
        u32::from_ne_bytes([o[12], o[13], o[14], o[15]]),
    ]
}

/// Inverse of [`addr_words`]: v4-mapped addresses come back as `IpAddr::V4`.
pub fn ip_from_words(w: [u32; 4]) -> IpAddr {
    let mut o = [0u8; 16];
    for (i, word) in w.iter().enumerate() {
        o[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    let v6 = Ipv6Addr::from(o);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The `INTERCEPT` key of a destination.
pub(crate) fn intercept_key(a: SocketAddr) -> InterceptKey {
    InterceptKey {
        addr: addr_words(a.ip()),
        port: a.port(),
        _pad: 0,
    }
}

/// `SocketAddr` from an `INTERCEPT` key.
pub(crate) fn intercept_addr(k: &InterceptKey) -> SocketAddr {
    SocketAddr::new(ip_from_words(k.addr), k.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn words_round_trip_and_layout() {
        let v4 = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254));
        let w = addr_words(v4);
        assert_eq!(w[0], 0);
        assert_eq!(w[1], 0);
        assert_eq!(w[2], 0xffffu32.to_be());
        assert_eq!(w[3], u32::from_ne_bytes([169, 254, 169, 254]));
        assert!(podiam_ebpf::is_v4_mapped(&w));
        assert_eq!(podiam_ebpf::v4_mapped(w[3]), w);
        assert_eq!(ip_from_words(w), v4);
        let v6: IpAddr = "fd00:ec2::254".parse().unwrap();
        assert_eq!(ip_from_words(addr_words(v6)), v6);
        // A v4-mapped IPv6 input maps to the same words as the IPv4 address.
        let mapped: IpAddr = "::ffff:169.254.169.254".parse().unwrap();
        assert_eq!(addr_words(mapped), w);
    }

    #[test]
    fn map_config() {
        let mut c = DatapathConfig {
            cgroup: "/x".into(),
            pin_dir: "/y".into(),
            redirect_v4: "10.0.0.1:8181".parse().unwrap(),
            redirect_v6: None,
            host_netns_cookie: 7,
            agent_mark: 9,
            intercepts: DatapathConfig::default_intercepts(),
        };
        let m = c.to_map_config().unwrap();
        assert_eq!(m.flags, CONFIG_F_VALID);
        assert_eq!(m.redirect_v4_port, 8181);
        assert_eq!(m.redirect_v4_addr.to_ne_bytes(), [10, 0, 0, 1]);
        c.redirect_v6 = Some("[fd00::1]:8181".parse().unwrap());
        assert_eq!(
            c.to_map_config().unwrap().flags,
            CONFIG_F_VALID | CONFIG_F_V6
        );
        c.redirect_v6 = Some("[::1]:8181".parse().unwrap());
        assert!(c.to_map_config().is_err());
        c.redirect_v6 = Some("[::ffff:10.0.0.1]:8181".parse().unwrap());
        assert!(c.to_map_config().is_err());
        c.redirect_v6 = None;
        for bad in ["0.0.0.0:8181", "127.0.0.1:8181", "10.0.0.1:0"] {
            c.redirect_v4 = bad.parse().unwrap();
            assert!(c.to_map_config().is_err(), "{bad}");
        }
    }

    #[test]
    fn services() {
        for s in [Service::Imds, Service::PodIdentity] {
            assert_eq!(service_from_id(service_id(s)), Some(s));
        }
        assert_eq!(service_from_id(0), None);
    }
}
