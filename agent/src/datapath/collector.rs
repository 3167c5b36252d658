//! Prometheus export of the per-CPU datapath counters (summed over CPUs at scrape time).
//!
//! Families (counters, prefix from the registry):
//! `datapath_connections_total{outcome="redirected"|"exempt_host_netns"|"exempt_mark"|"denied"}`
//! and `datapath_origin_misses_total`.
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use super::Datapath;

/// Reads [`Datapath::counters`] on every scrape. A failed map read exports nothing (and is
/// logged) rather than zeros.
pub struct CountersCollector {
    datapath: Arc<Datapath>,
}

impl CountersCollector {
    /// Exports `datapath`'s counters.
    pub fn new(datapath: Arc<Datapath>) -> Self {
        Self { datapath }
    }
}

impl std::fmt::Debug for CountersCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountersCollector").finish_non_exhaustive()
    }
}

impl Collector for CountersCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = match self.datapath.counters() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading datapath counters failed");
                return Ok(());
            }
        };
        let mut family = encoder.encode_descriptor(
            "datapath_connections",
            "Intercepted connect() calls by outcome (eBPF per-CPU counters, summed)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (outcome, value) in [
            ("redirected", c.redirected),
            ("exempt_host_netns", c.exempt_host_netns),
            ("exempt_mark", c.exempt_mark),
            ("denied", c.denied),
        ] {
            let labels = [("outcome", outcome)];
            let m = family.encode_family(&labels)?;
            ConstCounter::new(value).encode(m)?;
        }
        let m = encoder.encode_descriptor(
            "datapath_origin_misses",
            "Connections to the redirect target without an origin record (sock_ops)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        ConstCounter::new(c.origin_miss).encode(m)?;
        Ok(())
    }
}
