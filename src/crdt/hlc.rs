//! Hybrid Logical Clock: wall-clock milliseconds plus a logical counter.
//!
//! The clock is pure: callers pass the physical time in, so the same inputs
//! always give the same timestamps (and tests need no real clock).

use serde::{Deserialize, Serialize};
use std::fmt;

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// A hybrid timestamp packed as `millis << 16 | logical`, so the derived
/// integer order is the HLC order and it encodes as one varint.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc(pub u64);

impl Hlc {
    /// The zero timestamp, below everything a clock issues.
    pub const ZERO: Hlc = Hlc(0);

    /// Builds a timestamp from its two parts (`logical` saturates at 16 bits).
    pub fn new(millis: u64, logical: u16) -> Self {
        Hlc((millis << LOGICAL_BITS) | u64::from(logical))
    }

    /// Physical part: Unix milliseconds.
    pub fn millis(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// Logical part: orders events within one millisecond.
    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.millis(), self.logical())
    }
}

/// What [`HlcClock::observe`] learned about a remote timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// How far (ms) the remote timestamp is ahead of our wall clock, when that
    /// exceeds the allowed drift: the stamp is still accepted (refusing it
    /// would stall replication) but the caller should count and warn.
    pub ahead_beyond_drift_ms: Option<u64>,
}

/// A region's clock. Never goes backwards: not when the wall clock steps back,
/// not across a restart (resume from the last persisted stamp), and not when a
/// peer's clock runs ahead (observed stamps push it forward).
#[derive(Clone, Debug)]
pub struct HlcClock {
    last: Hlc,
    max_drift_ms: u64,
}

/// Default tolerated clock drift before a remote stamp is reported (60 s).
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

impl Default for HlcClock {
    fn default() -> Self {
        Self::new()
    }
}

impl HlcClock {
    /// A fresh clock that has seen nothing.
    pub fn new() -> Self {
        HlcClock {
            last: Hlc::ZERO,
            max_drift_ms: DEFAULT_MAX_DRIFT_MS,
        }
    }

    /// Resumes after a restart from the highest stamp persisted before it.
    pub fn resume(last_persisted: Hlc) -> Self {
        HlcClock {
            last: last_persisted,
            max_drift_ms: DEFAULT_MAX_DRIFT_MS,
        }
    }

    /// Sets the drift beyond which [`observe`](Self::observe) reports a stamp.
    pub fn with_max_drift(mut self, max_drift_ms: u64) -> Self {
        self.max_drift_ms = max_drift_ms;
        self
    }

    /// The highest stamp issued or observed so far.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// Issues a new stamp above everything seen, given the wall clock now.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        let candidate = Hlc::new(wall_ms, 0);
        self.last = if candidate > self.last {
            candidate
        } else {
            // Same or earlier millisecond: count logically. The packed form
            // carries an exhausted logical counter into the next millisecond,
            // which keeps the clock monotonic at the price of running ahead.
            Hlc(self.last.0.saturating_add(1))
        };
        self.last
    }

    /// Takes in a stamp seen on a remote operation, so that every later local
    /// stamp is above it, whatever our wall clock says.
    pub fn observe(&mut self, remote: Hlc, wall_ms: u64) -> Observation {
        if remote > self.last {
            self.last = remote;
        }
        let ahead = remote.millis().saturating_sub(wall_ms);
        Observation {
            ahead_beyond_drift_ms: (ahead > self.max_drift_ms).then_some(ahead),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_orders_by_millis_then_logical() {
        let a = Hlc::new(5, 9);
        assert_eq!((a.millis(), a.logical()), (5, 9));
        assert!(Hlc::new(5, 9) < Hlc::new(6, 0));
        assert!(Hlc::new(5, 9) < Hlc::new(5, 10));
    }

    #[test]
    fn tick_never_goes_backwards_when_wall_clock_steps_back() {
        let mut c = HlcClock::new();
        let a = c.tick(1000);
        let b = c.tick(900);
        let d = c.tick(1000);
        assert!(a < b && b < d);
        assert_eq!(b, Hlc::new(1000, 1));
    }

    #[test]
    fn resume_continues_above_persisted_stamp() {
        let mut c = HlcClock::new();
        let before = c.tick(5000);
        let mut restarted = HlcClock::resume(before);
        assert!(restarted.tick(4000) > before);
    }

    #[test]
    fn region_behind_still_stamps_above_what_it_saw() {
        let mut slow = HlcClock::new();
        let obs = slow.observe(Hlc::new(100_000, 3), 1_000);
        assert_eq!(obs.ahead_beyond_drift_ms, Some(99_000));
        assert!(slow.tick(1_000) > Hlc::new(100_000, 3));
    }

    #[test]
    fn small_skew_is_not_reported() {
        let mut c = HlcClock::new();
        assert_eq!(
            c.observe(Hlc::new(1_500, 0), 1_000).ahead_beyond_drift_ms,
            None
        );
    }

    #[test]
    fn logical_overflow_carries_into_millis() {
        let mut c = HlcClock::resume(Hlc::new(7, u16::MAX));
        let next = c.tick(7);
        assert_eq!(next, Hlc::new(8, 0));
    }
}
