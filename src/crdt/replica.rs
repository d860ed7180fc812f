//! A region's pure core: its id, clock and state together.
//!
//! The server wraps this with a log and a network; tests and benchmarks use
//! it directly to simulate many regions in one process.

use bytes::Bytes;

use super::hlc::{HlcClock, Observation};
use super::id::RegionId;
use super::op::Operation;
use super::prepare::{Intent, WriteError};
use super::state::{Applied, ApplyError, State};

/// One region: prepares local writes, applies local and remote operations.
#[derive(Clone, Debug)]
pub struct Replica {
    /// This region's id.
    pub region: RegionId,
    /// Its hybrid logical clock.
    pub clock: HlcClock,
    /// Its materialized state.
    pub state: State,
}

impl Replica {
    /// A fresh region.
    pub fn new(region: RegionId) -> Self {
        Replica {
            region,
            clock: HlcClock::new(),
            state: State::new(),
        }
    }

    /// Performs a local write at wall time `wall_ms`: prepares it, applies it,
    /// and returns the operation to log and ship (`None`: nothing to write).
    pub fn write(
        &mut self,
        key: impl Into<Bytes>,
        intent: Intent,
        wall_ms: u64,
    ) -> Result<Option<Operation>, WriteError> {
        let hlc = self.clock.tick(wall_ms);
        let op = self
            .state
            .prepare(self.region, hlc, key.into(), intent, wall_ms)?;
        if let Some(op) = &op {
            self.apply_local(op);
        }
        Ok(op)
    }

    /// FLUSHALL at wall time `wall_ms`.
    pub fn flush_all(&mut self, wall_ms: u64) -> Operation {
        let hlc = self.clock.tick(wall_ms);
        let op = self.state.prepare_flush(self.region, hlc);
        self.apply_local(&op);
        op
    }

    fn apply_local(&mut self, op: &Operation) {
        // A prepared operation is the next in sequence with deps equal to
        // the state's vector: it is always ready.
        // Nothing applied before it is concurrent with it, so it reports no
        // conflict: races are reported where the second of two arrives.
        let applied = self.state.apply(op);
        debug_assert!(
            matches!(&applied, Ok(Applied::Done(c)) if c.is_empty()),
            "{applied:?}"
        );
    }

    /// Applies an operation from another region, moving the clock past it.
    /// Also returns what the clock noticed (a peer stamp far ahead of our
    /// wall clock), for the caller to count and warn about.
    pub fn receive(
        &mut self,
        op: &Operation,
        wall_ms: u64,
    ) -> Result<(Applied, Observation), ApplyError> {
        let applied = self.state.apply(op)?;
        let seen = self.clock.observe(op.hlc, wall_ms);
        Ok((applied, seen))
    }
}
