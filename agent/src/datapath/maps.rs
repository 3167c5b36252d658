//! Typed access to the datapath maps (owned by a loaded object or opened from pins):
//! configuration writes, origin lookups, counters.
use std::fmt;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use podiam_ebpf::{
    COUNTER_DENIED, COUNTER_EXEMPT_HOST_NETNS, COUNTER_EXEMPT_MARK, COUNTER_ORIGIN_MISS,
    COUNTER_REDIRECTED, Config, InterceptKey, OriginRecord, TupleKey,
};

use super::config::{
    addr_words, intercept_addr, intercept_key, ip_from_words, service_from_id, service_id,
};
use super::{DatapathConfig, DatapathError, Origin, Service};

/// Per-CPU counters summed over all CPUs (monotonic since the maps were created; they survive
/// agent restarts because the map is pinned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections rewritten to the redirect target.
    pub redirected: u64,
    /// Intercepted destinations dialled from the host netns (left alone).
    pub exempt_host_netns: u64,
    /// Intercepted destinations dialled by sockets carrying the agent mark (left alone).
    pub exempt_mark: u64,
    /// Established connections to the redirect target without an origin record (direct
    /// dials of the proxy address from the attached cgroup, or evicted records).
    pub origin_miss: u64,
    /// Intercepted destinations refused with `EPERM` (fail closed).
    pub denied: u64,
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "redirected={} exempt_host_netns={} exempt_mark={} origin_miss={} denied={}",
            self.redirected,
            self.exempt_host_netns,
            self.exempt_mark,
            self.origin_miss,
            self.denied
        )
    }
}

/// The five maps, typed.
pub(crate) struct PinnedMaps {
    intercept: HashMap<MapData, InterceptKey, u32>,
    config: Array<MapData, Config>,
    /// Behind a mutex: aya's `remove` needs `&mut`, lookups come from many tasks.
    origin_tuple: std::sync::Mutex<HashMap<MapData, TupleKey, OriginRecord>>,
    counters: PerCpuArray<MapData, u64>,
}

fn typed<T: TryFrom<Map, Error = aya::maps::MapError>>(
    name: &'static str,
    map: Option<Map>,
) -> Result<T, DatapathError> {
    let map = map.ok_or_else(|| {
        DatapathError::map(
            name,
            "find",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    T::try_from(map).map_err(|e| DatapathError::map(name, "open", e))
}

fn from_pin(pin_dir: &Path, name: &'static str) -> Result<Option<Map>, DatapathError> {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path).map_err(|e| DatapathError::map(name, "open pin", e))?;
    Map::from_map_data(data)
        .map(Some)
        .map_err(|e| DatapathError::map(name, "open pin", e))
}

impl PinnedMaps {
    /// Takes the maps out of a loaded object.
    pub(crate) fn take(ebpf: &mut aya::Ebpf) -> Result<Self, DatapathError> {
        Ok(Self {
            intercept: typed(
                podiam_ebpf::INTERCEPT,
                ebpf.take_map(podiam_ebpf::INTERCEPT),
            )?,
            config: typed(podiam_ebpf::CONFIG, ebpf.take_map(podiam_ebpf::CONFIG))?,
            origin_tuple: std::sync::Mutex::new(typed(
                podiam_ebpf::ORIGIN_TUPLE,
                ebpf.take_map(podiam_ebpf::ORIGIN_TUPLE),
            )?),
            counters: typed(podiam_ebpf::COUNTERS, ebpf.take_map(podiam_ebpf::COUNTERS))?,
        })
    }

    /// Opens the maps pinned under `pin_dir`.
    pub(crate) fn open(pin_dir: &Path) -> Result<Self, DatapathError> {
        Ok(Self {
            intercept: typed(
                podiam_ebpf::INTERCEPT,
                from_pin(pin_dir, podiam_ebpf::INTERCEPT)?,
            )?,
            config: typed(podiam_ebpf::CONFIG, from_pin(pin_dir, podiam_ebpf::CONFIG)?)?,
            origin_tuple: std::sync::Mutex::new(typed(
                podiam_ebpf::ORIGIN_TUPLE,
                from_pin(pin_dir, podiam_ebpf::ORIGIN_TUPLE)?,
            )?),
            counters: typed(
                podiam_ebpf::COUNTERS,
                from_pin(pin_dir, podiam_ebpf::COUNTERS)?,
            )?,
        })
    }

    /// Writes the intercept table (adds missing entries first, then removes stale ones, so a
    /// destination present in both old and new sets is never uncovered) and the CONFIG entry.
    pub(crate) fn apply(&mut self, cfg: &DatapathConfig) -> Result<(), DatapathError> {
        let map_cfg = cfg.to_map_config()?;
        self.config
            .set(0, map_cfg, 0)
            .map_err(|e| DatapathError::map(podiam_ebpf::CONFIG, "update", e))?;
        let wanted: Vec<(InterceptKey, u32)> = cfg
            .intercepts
            .iter()
            .map(|(a, s)| (intercept_key(*a), service_id(*s)))
            .collect();
        for (k, v) in &wanted {
            self.intercept
                .insert(k, v, 0)
                .map_err(|e| DatapathError::map(podiam_ebpf::INTERCEPT, "update", e))?;
        }
        let stale: Vec<InterceptKey> = self
            .intercept
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.iter().any(|(w, _)| w == k))
            .collect();
        for k in stale {
            self.intercept
                .remove(&k)
                .map_err(|e| DatapathError::map(podiam_ebpf::INTERCEPT, "delete", e))?;
        }
        Ok(())
    }

    /// The CONFIG entry.
    pub(crate) fn config(&self) -> Result<Config, DatapathError> {
        self.config
            .get(&0, 0)
            .map_err(|e| DatapathError::map(podiam_ebpf::CONFIG, "lookup", e))
    }

    /// The intercept table.
    pub(crate) fn intercepts(&self) -> Result<Vec<(SocketAddr, Service)>, DatapathError> {
        let mut out = Vec::new();
        for item in self.intercept.iter() {
            let (k, v) =
                item.map_err(|e| DatapathError::map(podiam_ebpf::INTERCEPT, "iterate", e))?;
            if let Some(s) = service_from_id(v) {
                out.push((intercept_addr(&k), s));
            }
        }
        out.sort_by_key(|(a, _)| *a);
        Ok(out)
    }

    /// Sums the per-CPU counters.
    pub(crate) fn counters(&self) -> Result<Counters, DatapathError> {
        let sum = |idx: u32| -> Result<u64, DatapathError> {
            let v = self
                .counters
                .get(&idx, 0)
                .map_err(|e| DatapathError::map(podiam_ebpf::COUNTERS, "lookup", e))?;
            Ok(v.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(Counters {
            redirected: sum(COUNTER_REDIRECTED)?,
            exempt_host_netns: sum(COUNTER_EXEMPT_HOST_NETNS)?,
            exempt_mark: sum(COUNTER_EXEMPT_MARK)?,
            origin_miss: sum(COUNTER_ORIGIN_MISS)?,
            denied: sum(COUNTER_DENIED)?,
        })
    }

    /// Origin record of the connection `peer` (client) → `local` (redirect target).
    pub(crate) fn origin_of(&self, peer: SocketAddr, local: SocketAddr) -> Option<Origin> {
        let rec = self
            .origin_tuple
            .lock()
            .ok()?
            .get(&tuple_key(peer, local), 0)
            .ok()?;
        origin_from_record(&rec)
    }

    /// Deletes the origin record of `peer` → `local` (absent records are fine).
    pub(crate) fn forget(&self, peer: SocketAddr, local: SocketAddr) {
        if let Ok(mut map) = self.origin_tuple.lock() {
            let _ = map.remove(&tuple_key(peer, local));
        }
    }
}

/// The `ORIGIN_TUPLE` key of the connection `peer` (client) → `local` (redirect target).
fn tuple_key(peer: SocketAddr, local: SocketAddr) -> TupleKey {
    TupleKey {
        client_addr: addr_words(peer.ip()),
        server_addr: addr_words(local.ip()),
        client_port: peer.port(),
        server_port: local.port(),
    }
}

/// Converts a kernel record; `None` for an unknown service id.
pub(crate) fn origin_from_record(rec: &OriginRecord) -> Option<Origin> {
    let original_dst = match ip_from_words(rec.orig_addr) {
        std::net::IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, rec.orig_port)),
        std::net::IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, rec.orig_port, 0, 0)),
    };
    Some(Origin {
        cgroup_id: rec.cgroup_id,
        netns_cookie: rec.netns_cookie,
        pid: (rec.pid_tgid >> 32) as u32,
        tid: rec.pid_tgid as u32,
        uid: rec.uid_gid as u32,
        gid: (rec.uid_gid >> 32) as u32,
        original_dst,
        service: service_from_id(rec.service)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_conversion() {
        let rec = OriginRecord {
            cgroup_id: 42,
            netns_cookie: 7,
            pid_tgid: (100u64 << 32) | 101,
            uid_gid: (5u64 << 32) | 6,
            orig_addr: addr_words("169.254.169.254".parse().unwrap()),
            orig_port: 80,
            family: 10,
            service: podiam_ebpf::SERVICE_IMDS,
        };
        let o = origin_from_record(&rec).unwrap();
        assert_eq!(o.pid, 100);
        assert_eq!(o.tid, 101);
        assert_eq!(o.uid, 6);
        assert_eq!(o.gid, 5);
        assert_eq!(o.original_dst, "169.254.169.254:80".parse().unwrap());
        assert_eq!(o.service, Service::Imds);
        let v6 = OriginRecord {
            orig_addr: addr_words("fd00:ec2::23".parse().unwrap()),
            service: podiam_ebpf::SERVICE_POD_IDENTITY,
            ..rec
        };
        let o = origin_from_record(&v6).unwrap();
        assert_eq!(o.original_dst, "[fd00:ec2::23]:80".parse().unwrap());
        assert!(origin_from_record(&OriginRecord { service: 9, ..rec }).is_none());
    }
}
