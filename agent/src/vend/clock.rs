//! Injectable wall clock, so cache timing tests can run on tokio's paused time.
use std::time::{Duration, SystemTime};

/// Source of "now" for expiry arithmetic. Credential expirations are wall-clock times
/// (STS `Expiration`), so the cache compares them with [`Clock::now`]; it sleeps with tokio
/// timers for the difference.
pub trait Clock: Send + Sync + 'static {
    /// Current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The real wall clock (`SystemTime::now()`), used in production.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock that advances with tokio's clock: `start + (tokio::time::Instant::now() −
/// tokio start)`. Under `tokio::time::pause()` it only moves with `advance`/auto-advance, which
/// makes expiry and refresh tests deterministic.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    wall_start: SystemTime,
    tokio_start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `wall_start` now (must be called inside a tokio runtime).
    pub fn starting_at(wall_start: SystemTime) -> Self {
        TokioClock {
            wall_start,
            tokio_start: tokio::time::Instant::now(),
        }
    }

    /// Starts at the current real wall-clock time.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.wall_start + tokio::time::Instant::now().duration_since(self.tokio_start)
    }
}

/// `a − b`, or zero if `a` is not after `b`.
pub(crate) fn saturating_sub(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b).unwrap_or(Duration::ZERO)
}
