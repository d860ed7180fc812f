//! Consistency lag: how long after a write in one region it is visible in
//! this one, measured continuously by heartbeats.
//!
//! Every region sends each peer, once per `replication.heartbeat_ms`, a
//! heartbeat `(origin, seq, emitted_ms)`: its own sequence as applied (what
//! its clients can read) at wall-clock time `emitted_ms`; peers pass on the
//! newest heartbeat they heard of every other region, so regions without a
//! direct link measure each other too. A receiver records the lag
//! `now − emitted_ms` at the moment its own applied version vector first
//! covers `seq`: any write visible at the origin when the heartbeat left is
//! visible here by then. It needs no client traffic: on an idle cluster the
//! lag is the one-way delay of the heartbeat itself. Wall clocks are
//! compared across regions, so clock skew adds to (or, clamped at zero,
//! hides) the figure.

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use super::{Histogram, HistogramSnapshot};

/// Heartbeats of one origin waiting for its operations; more are dropped
/// (the oldest ones already measure the lag).
const MAX_PENDING: usize = 64;
/// Lag samples kept per origin for the quantiles `INFO` shows.
const RECENT: usize = 256;
/// Origins tracked at most: region ids come from peers, and a peer
/// naming ever new ones must not grow memory without bound.
pub const MAX_ORIGINS: usize = 1024;

#[derive(Debug, Default)]
struct Origin {
    /// (sequence, emitted at) not yet covered, oldest first.
    pending: VecDeque<(u64, u64)>,
    /// Emission time of the newest heartbeat taken: older ones (a copy
    /// relayed by another region) are ignored.
    newest: u64,
    /// Emission time of the newest heartbeat covered.
    fresh: Option<u64>,
    /// Recent lags in milliseconds, newest last.
    recent: VecDeque<u64>,
    hist: Histogram,
    heartbeats: u64,
}

impl Origin {
    fn covered(&mut self, emitted: u64, now_ms: u64) {
        let lag = now_ms.saturating_sub(emitted);
        self.hist.record_duration(Duration::from_millis(lag));
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(lag);
        self.fresh = Some(self.fresh.map_or(emitted, |f| f.max(emitted)));
    }
}

/// One origin's consistency lag as seen from this region.
#[derive(Clone, Debug)]
pub struct OriginLag {
    /// The origin's region id.
    pub origin: u16,
    /// Heartbeats taken from it since start.
    pub heartbeats: u64,
    /// Median and 99th percentile of the recent lags (last 256), in ms.
    pub p50_ms: Option<u64>,
    /// See `p50_ms`.
    pub p99_ms: Option<u64>,
    /// The most recent lag, in ms.
    pub last_ms: Option<u64>,
    /// How old this region's view of the origin is now: time since the
    /// emission of the newest heartbeat it covers, in ms.
    pub staleness_ms: Option<u64>,
    /// Every lag since start (nanoseconds).
    pub histogram: HistogramSnapshot,
}

/// Heartbeats received and the lags they measured, per origin.
#[derive(Debug, Default)]
pub struct Consistency {
    origins: Mutex<BTreeMap<u16, Origin>>,
    /// Heartbeats pending over all origins: when zero, applying operations
    /// costs no lock here.
    pending: AtomicUsize,
}

impl Consistency {
    /// Takes a heartbeat: `origin` had applied its own operations up to
    /// `seq` at `emitted_ms`; this region holds `held` of them now.
    pub fn heartbeat(&self, origin: u16, seq: u64, emitted_ms: u64, held: u64, now_ms: u64) {
        let mut origins = self.origins.lock();
        if origins.len() >= MAX_ORIGINS && !origins.contains_key(&origin) {
            return;
        }
        let o = origins.entry(origin).or_default();
        if emitted_ms <= o.newest {
            return;
        }
        o.newest = emitted_ms;
        o.heartbeats += 1;
        if o.pending.len() < MAX_PENDING {
            o.pending.push_back((seq, emitted_ms));
            self.pending.fetch_add(1, Relaxed);
        }
        self.cover(o, held, now_ms);
    }

    /// Records the pending heartbeats of `o` that `held` covers, in order.
    fn cover(&self, o: &mut Origin, held: u64, now_ms: u64) {
        while let Some(&(seq, emitted)) = o.pending.front() {
            if seq > held {
                break;
            }
            o.pending.pop_front();
            self.pending.fetch_sub(1, Relaxed);
            o.covered(emitted, now_ms);
        }
    }

    /// This region's applied version vector advanced: `held(origin)` is
    /// what it holds of each origin now.
    pub fn applied(&self, now_ms: u64, held: impl Fn(u16) -> u64) {
        if self.pending.load(Relaxed) == 0 {
            return;
        }
        let mut origins = self.origins.lock();
        for (&id, o) in origins.iter_mut() {
            self.cover(o, held(id), now_ms);
        }
    }

    /// Every origin heard from, in id order.
    pub fn origins(&self, now_ms: u64) -> Vec<OriginLag> {
        let origins = self.origins.lock();
        origins
            .iter()
            .map(|(&origin, o)| {
                let mut sorted: Vec<u64> = o.recent.iter().copied().collect();
                sorted.sort_unstable();
                let at = |q: f64| {
                    (!sorted.is_empty()).then(|| {
                        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
                        sorted[i - 1]
                    })
                };
                OriginLag {
                    origin,
                    heartbeats: o.heartbeats,
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                    last_ms: o.recent.back().copied(),
                    staleness_ms: o.fresh.map(|f| now_ms.saturating_sub(f)),
                    histogram: o.hist.snapshot(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_heartbeat_records_its_delay() {
        let c = Consistency::default();
        c.heartbeat(2, 10, 1_000, 10, 1_030);
        let o = &c.origins(1_100)[0];
        assert_eq!(o.origin, 2);
        assert_eq!(o.heartbeats, 1);
        assert_eq!(o.last_ms, Some(30));
        assert_eq!(o.staleness_ms, Some(100));
        assert_eq!(o.histogram.count, 1);
    }

    #[test]
    fn pending_heartbeat_waits_for_the_operations() {
        let c = Consistency::default();
        c.heartbeat(2, 10, 1_000, 5, 1_010);
        assert_eq!(c.origins(1_010)[0].last_ms, None);
        c.applied(1_200, |_| 9);
        assert_eq!(c.origins(1_200)[0].last_ms, None);
        c.applied(1_500, |o| if o == 2 { 10 } else { 0 });
        let o = &c.origins(1_500)[0];
        assert_eq!(o.last_ms, Some(500));
        assert_eq!(o.p50_ms, Some(500));
        assert_eq!(c.pending.load(Relaxed), 0);
    }

    #[test]
    fn relayed_copies_and_old_heartbeats_are_ignored() {
        let c = Consistency::default();
        c.heartbeat(2, 10, 2_000, 10, 2_010);
        c.heartbeat(2, 10, 2_000, 10, 2_050);
        c.heartbeat(2, 9, 1_500, 10, 2_060);
        let o = &c.origins(2_100)[0];
        assert_eq!(o.heartbeats, 1);
        assert_eq!(o.histogram.count, 1);
    }

    #[test]
    fn skewed_clocks_clamp_at_zero_and_quantiles_use_recent_samples() {
        let c = Consistency::default();
        c.heartbeat(3, 1, 5_000, 1, 4_000);
        for i in 1..=100u64 {
            c.heartbeat(3, 1, 10_000 + i * 1000, 1, 10_000 + i * 1000 + i);
        }
        let o = &c.origins(200_000)[0];
        assert_eq!(o.histogram.count, 101);
        assert_eq!(o.p50_ms, Some(50));
        assert_eq!(o.p99_ms, Some(99));
    }

    #[test]
    fn origins_are_bounded() {
        let c = Consistency::default();
        for id in 0..=u16::MAX {
            c.heartbeat(id, 1, 1, 1, 2);
        }
        assert_eq!(c.origins(3).len(), MAX_ORIGINS);
    }

    #[test]
    fn pending_is_bounded() {
        let c = Consistency::default();
        for i in 1..=1000 {
            c.heartbeat(2, 100 + i, i, 0, i);
        }
        assert_eq!(c.pending.load(Relaxed), MAX_PENDING);
        c.applied(5_000, |_| u64::MAX);
        assert_eq!(c.pending.load(Relaxed), 0);
        assert_eq!(c.origins(5_000)[0].histogram.count, MAX_PENDING as u64);
    }
}
