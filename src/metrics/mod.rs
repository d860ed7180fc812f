//! Observability: the figures a region keeps about itself, the Prometheus
//! text endpoint that exports them, and the heartbeat bookkeeping behind the
//! consistency lag.
//!
//! Recording is cheap enough for the command path (a few relaxed atomic
//! adds, no lock, no allocation). Everything that already lives elsewhere
//! (replication link statistics, version vectors) is read only when a
//! scrape or `INFO` asks, by the server (`src/server/observe.rs`), which
//! describes it through [`Exposition`]. The exposition format itself is
//! written by the `prometheus-client` crate.

pub mod consistency;
pub mod http;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub use consistency::Consistency;

/// Upper bounds (nanoseconds) of the duration histograms: 1 µs to 250 s in
/// 1-2.5-5 steps, wide enough for a GET, an fsync and a snapshot alike.
pub const DURATION_BOUNDS_NS: &[u64] = &[
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    25_000_000_000,
    50_000_000_000,
    100_000_000_000,
    250_000_000_000,
];

/// Upper bounds (bytes) of the segment size histograms.
pub const SIZE_BOUNDS: &[u64] = &[
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
];

/// Upper bounds of the operations-per-segment histogram.
pub const COUNT_BOUNDS: &[u64] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];

/// A histogram with fixed bucket bounds, recorded lock-free: one relaxed add
/// to a bucket and one to the sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One per bound, then the overflow bucket (non-cumulative).
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending upper bounds).
    pub fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// A histogram of durations ([`DURATION_BOUNDS_NS`]).
    pub fn durations() -> Self {
        Self::new(DURATION_BOUNDS_NS)
    }

    /// Records one value.
    pub fn record(&self, v: u64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
    }

    /// Records a duration in nanoseconds.
    pub fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// A copy of the current counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        HistogramSnapshot {
            bounds: self.bounds,
            count: counts.iter().sum(),
            counts,
            sum: self.sum.load(Relaxed),
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::durations()
    }
}

/// Buckets of a duration histogram ([`DURATION_BOUNDS_NS`] plus overflow).
const DURATION_BUCKETS: usize = DURATION_BOUNDS_NS.len() + 1;

/// Durations gathered by one thread without atomics, added to a shared
/// [`Histogram`] at once ([`Metrics::commands_done`]).
///
/// Why: a pipelined batch runs many commands, and recording each into the
/// shared histogram cost two atomic adds on cache lines the other workers
/// write too, plus a lookup of the command's slot: 3-4 % of a GET.
#[derive(Clone, Debug)]
pub struct LocalDurations {
    counts: [u32; DURATION_BUCKETS],
    sum_ns: u64,
    len: u32,
}

impl Default for LocalDurations {
    fn default() -> Self {
        LocalDurations {
            counts: [0; DURATION_BUCKETS],
            sum_ns: 0,
            len: 0,
        }
    }
}

impl LocalDurations {
    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = DURATION_BOUNDS_NS.partition_point(|&b| b < ns);
        if let Some(c) = self.counts.get_mut(i) {
            *c = c.saturating_add(1);
        }
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.len = self.len.saturating_add(1);
    }

    /// Number of durations recorded.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Histogram {
    /// Adds durations gathered apart (the histogram must be of durations).
    fn add(&self, local: &LocalDurations) {
        for (shared, &n) in self.counts.iter().zip(local.counts.iter()) {
            if n > 0 {
                shared.fetch_add(u64::from(n), Relaxed);
            }
        }
        self.sum.fetch_add(local.sum_ns, Relaxed);
    }
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the buckets (the last bucket has none).
    pub bounds: &'static [u64],
    /// Non-cumulative counts, one more than `bounds`.
    pub counts: Vec<u64>,
    /// Sum of the recorded values.
    pub sum: u64,
    /// Number of recorded values.
    pub count: u64,
}

impl HistogramSnapshot {
    /// The `q` quantile (0 to 1), interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without samples. A
    /// quantile in the overflow bucket is reported as the largest bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let Some(&hi) = self.bounds.get(i) else {
                    return self.bounds.last().map(|&b| b as f64);
                };
                let lo = if i == 0 { 0 } else { self.bounds[i - 1] };
                let within = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lo as f64 + (hi - lo) as f64 * within);
            }
            below += c;
        }
        self.bounds.last().map(|&b| b as f64)
    }

    /// Buckets as `prometheus-client` wants them: (upper bound / `per_unit`,
    /// non-cumulative count), the last one at +Inf. Dividing (not
    /// multiplying by 1e-9) keeps bounds like `0.001` exact in the text.
    fn buckets(&self, per_unit: f64) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .map(|&b| b as f64 / per_unit)
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }
}

/// What an fsync histogram measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncKind {
    /// A group commit under `fsync always` (write plus sync).
    GroupCommit,
    /// The background sync under `everysec` / `no` with replication.
    Background,
    /// Peers' operations, synced after they are applied and before they
    /// are acknowledged.
    Replicated,
}

impl FsyncKind {
    /// Every kind, in label order.
    pub const ALL: [FsyncKind; 3] = [
        FsyncKind::GroupCommit,
        FsyncKind::Background,
        FsyncKind::Replicated,
    ];

    /// The `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            FsyncKind::GroupCommit => "group_commit",
            FsyncKind::Background => "background",
            FsyncKind::Replicated => "replicated",
        }
    }
}

/// What a snapshot duration measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A scheduled snapshot or `BRAID.SNAPSHOT` (log truncation included).
    Local,
    /// A snapshot written for a peer that needs one.
    Peer,
}

/// Segment sizes and batch windows of one replication link (the sending
/// side), recorded per segment.
#[derive(Debug)]
pub struct LinkHistograms {
    /// Operation bytes before compression.
    pub raw_bytes: Histogram,
    /// Bytes on the wire (framing included).
    pub wire_bytes: Histogram,
    /// Operations per segment.
    pub ops: Histogram,
    /// The batch window waited before the segment (nanoseconds).
    pub window: Histogram,
}

impl Default for LinkHistograms {
    fn default() -> Self {
        LinkHistograms {
            raw_bytes: Histogram::new(SIZE_BOUNDS),
            wire_bytes: Histogram::new(SIZE_BOUNDS),
            ops: Histogram::new(COUNT_BOUNDS),
            window: Histogram::durations(),
        }
    }
}

/// The figures one region records as things happen (a process running
/// several regions, like `braid-server demo`, has one per region).
#[derive(Debug)]
pub struct Metrics {
    /// Per command (see `command_index`), execution time under the keyspace lock.
    commands: Box<[Histogram]>,
    command_names: Vec<&'static str>,
    command_index: HashMap<&'static str, usize, foldhash::fast::FixedState>,
    /// The same, keyed by where the table's name lives: the hot path hashes
    /// one integer instead of a string.
    command_by_addr: HashMap<usize, usize, foldhash::fast::FixedState>,
    fsync: [Histogram; 3],
    snapshot: [Histogram; 2],
    /// Peers' operations applied, per origin region id.
    remote_applied: RwLock<Vec<(u16, AtomicU64)>>,
    /// Heartbeats and the consistency lag they measure.
    pub consistency: Consistency,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty figures, with a slot for every command of the command table.
    pub fn new() -> Self {
        let command_names: Vec<&'static str> = crate::command::table()
            .iter()
            .flat_map(|family| family.iter().map(|c| c.name))
            .collect();
        let command_index = command_names
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i))
            .collect();
        let command_by_addr = command_names
            .iter()
            .enumerate()
            .map(|(i, &n)| (n.as_ptr() as usize, i))
            .collect();
        Metrics {
            commands: command_names
                .iter()
                .map(|_| Histogram::durations())
                .collect(),
            command_names,
            command_index,
            command_by_addr,
            fsync: std::array::from_fn(|_| Histogram::durations()),
            snapshot: std::array::from_fn(|_| Histogram::durations()),
            remote_applied: RwLock::new(Vec::new()),
            consistency: Consistency::default(),
        }
    }

    /// Records one command's execution time; `name` is the command table's
    /// name (what `ClientInfo::current` holds after it ran).
    pub fn command(&self, name: &str, took: Duration) {
        if let Some(h) = self.command_histogram(name) {
            h.record_duration(took);
        }
    }

    /// Records the execution times of several runs of one command.
    pub fn commands_done(&self, name: &str, took: &LocalDurations) {
        if let Some(h) = self.command_histogram(name) {
            h.add(took);
        }
    }

    fn command_histogram(&self, name: &str) -> Option<&Histogram> {
        let i = self
            .command_by_addr
            .get(&(name.as_ptr() as usize))
            .filter(|&&i| self.command_names[i].len() == name.len())
            .or_else(|| self.command_index.get(name))?;
        self.commands.get(*i)
    }

    /// Per command that ran at least once: its name and latency histogram.
    pub fn commands(&self) -> Vec<(&'static str, HistogramSnapshot)> {
        self.command_names
            .iter()
            .zip(self.commands.iter())
            .map(|(&n, h)| (n, h.snapshot()))
            .filter(|(_, s)| s.count > 0)
            .collect()
    }

    /// Records an fsync (or a write that included one).
    pub fn fsync(&self, kind: FsyncKind, took: Duration) {
        self.fsync[kind as usize].record_duration(took);
    }

    /// The fsync histogram of one kind.
    pub fn fsync_histogram(&self, kind: FsyncKind) -> HistogramSnapshot {
        self.fsync[kind as usize].snapshot()
    }

    /// Records how long a snapshot took to write.
    pub fn snapshot(&self, kind: SnapshotKind, took: Duration) {
        self.snapshot[kind as usize].record_duration(took);
    }

    /// The snapshot duration histogram of one kind.
    pub fn snapshot_histogram(&self, kind: SnapshotKind) -> HistogramSnapshot {
        self.snapshot[kind as usize].snapshot()
    }

    /// Counts `n` operations of region `origin` applied from peers.
    pub fn remote_applied(&self, origin: u16, n: u64) {
        {
            let slots = self.remote_applied.read();
            if let Some((_, c)) = slots.iter().find(|(o, _)| *o == origin) {
                c.fetch_add(n, Relaxed);
                return;
            }
        }
        let mut slots = self.remote_applied.write();
        match slots.iter().find(|(o, _)| *o == origin) {
            Some((_, c)) => {
                c.fetch_add(n, Relaxed);
            }
            None => slots.push((origin, AtomicU64::new(n))),
        }
    }

    /// Operations applied from peers since start, per origin region id.
    pub fn remote_applied_by_origin(&self) -> Vec<(u16, u64)> {
        let mut out: Vec<(u16, u64)> = self
            .remote_applied
            .read()
            .iter()
            .map(|(o, c)| (*o, c.load(Relaxed)))
            .collect();
        out.sort_unstable();
        out
    }
}

/// The type of a declared family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A counter (`_total`).
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram.
    Histogram,
}

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
    /// A snapshot and the divisor from its unit to the exported one.
    Histogram(HistogramSnapshot, f64),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    series: Vec<(Labels, Value)>,
}

/// One scrape's worth of metric families, gathered by the server and
/// written out in the Prometheus text format by `prometheus-client`.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
    const_labels: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

impl Exposition {
    /// An empty exposition whose every series carries `const_labels`
    /// (the region's name).
    pub fn new(const_labels: Vec<(&'static str, String)>) -> Self {
        Exposition {
            families: Vec::new(),
            const_labels: const_labels
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v)))
                .collect(),
        }
    }

    fn push(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
        labels: Labels,
        v: Value,
    ) {
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.series.push((labels, v)),
            None => self.families.push(Family {
                name,
                help,
                kind,
                series: vec![(labels, v)],
            }),
        }
    }

    /// A counter series (`_total` is appended to `name`).
    pub fn counter(&mut self, name: &'static str, help: &'static str, labels: Labels, v: u64) {
        self.push(name, help, MetricType::Counter, labels, Value::Counter(v));
    }

    /// A gauge series.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        self.push(name, help, MetricType::Gauge, labels, Value::Gauge(v));
    }

    /// A histogram series whose recorded values divided by `per_unit` are
    /// in the exported unit ([`NS`] for nanoseconds exported as seconds, 1
    /// for plain counts).
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Labels,
        h: HistogramSnapshot,
        per_unit: f64,
    ) {
        self.push(
            name,
            help,
            MetricType::Histogram,
            labels,
            Value::Histogram(h, per_unit),
        );
    }

    /// Declares a family with no series yet, so that its `# HELP` and
    /// `# TYPE` lines appear (dashboards can tell "none yet" from "unknown").
    pub fn declare(&mut self, name: &'static str, help: &'static str, kind: Kind) {
        if !self.families.iter().any(|f| f.name == name) {
            self.families.push(Family {
                name,
                help,
                kind: match kind {
                    Kind::Counter => MetricType::Counter,
                    Kind::Gauge => MetricType::Gauge,
                    Kind::Histogram => MetricType::Histogram,
                },
                series: Vec::new(),
            });
        }
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(self) -> String {
        let mut registry = Registry::with_labels(self.const_labels.into_iter());
        registry.register_collector(Box::new(Families(self.families)));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The families of one scrape, as a `prometheus-client` collector.
#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut metric = encoder.encode_descriptor(f.name, f.help, None, f.kind)?;
            for (labels, v) in &f.series {
                let mut series = metric.encode_family(labels)?;
                match v {
                    Value::Counter(n) => series.encode_counter::<NoLabelSet, u64, u64>(n, None)?,
                    Value::Gauge(x) => series.encode_gauge(x)?,
                    Value::Histogram(h, per_unit) => series.encode_histogram::<NoLabelSet>(
                        h.sum as f64 / per_unit,
                        h.count,
                        &h.buckets(*per_unit),
                        None,
                    )?,
                }
            }
        }
        Ok(())
    }
}

/// Nanoseconds per second: durations are recorded in nanoseconds and
/// exported in seconds.
pub const NS: f64 = 1e9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::new(&[10, 20, 40]);
        for v in [1, 5, 10, 15, 30, 100] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![3, 1, 1, 1]);
        assert_eq!(s.count, 6);
        assert_eq!(s.sum, 161);
        // Half of six is three: the end of the first bucket.
        assert_eq!(s.quantile(0.5), Some(10.0));
        assert_eq!(s.quantile(1.0), Some(40.0));
        assert_eq!(Histogram::new(&[1]).snapshot().quantile(0.5), None);
    }

    #[test]
    fn exposition_is_prometheus_text() {
        let mut e = Exposition::new(vec![("region", "us".into())]);
        e.counter("braid_x", "An x.", vec![("peer", "eu".into())], 3);
        e.gauge("braid_y", "A y.", Vec::new(), 1.5);
        let h = Histogram::durations();
        h.record_duration(Duration::from_micros(3));
        e.histogram("braid_z_seconds", "A z.", Vec::new(), h.snapshot(), NS);
        e.declare("braid_empty", "Nothing yet.", Kind::Gauge);
        let text = e.render();
        assert!(text.contains("# TYPE braid_x_total counter\n"), "{text}");
        assert!(
            text.contains("braid_x_total{region=\"us\",peer=\"eu\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("braid_y{region=\"us\"} 1.5\n"), "{text}");
        assert!(
            text.contains("braid_z_seconds_bucket{region=\"us\",le=\"5e-06\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("braid_z_seconds_count{region=\"us\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE braid_empty gauge\n"), "{text}");
    }

    #[test]
    fn every_command_has_a_slot() {
        let m = Metrics::new();
        m.command("get", Duration::from_micros(2));
        m.command("no-such-command", Duration::from_micros(2));
        // A name not from the table (another address) counts the same.
        m.command(String::from("get").as_str(), Duration::from_micros(2));
        let table_name = crate::command::lookup(b"set").map(|s| s.name);
        m.command(table_name.unwrap_or("?"), Duration::from_micros(2));
        let c = m.commands();
        assert_eq!(c.len(), 2);
        let count = |n: &str| c.iter().find(|(k, _)| *k == n).map(|(_, s)| s.count);
        assert_eq!(count("get"), Some(2));
        assert_eq!(count("set"), Some(1));
        m.remote_applied(2, 5);
        m.remote_applied(2, 1);
        m.remote_applied(3, 1);
        assert_eq!(m.remote_applied_by_origin(), vec![(2, 6), (3, 1)]);
    }

    /// Durations gathered locally and added at once count as if each had
    /// been recorded on its own.
    #[test]
    fn local_durations_add_up_to_the_same_histogram() {
        let one_by_one = Metrics::new();
        let batched = Metrics::new();
        let mut local = LocalDurations::default();
        let took = [0, 1, 999, 1_000, 1_001, 7_500, 3_000_000, u64::MAX / 4];
        for ns in took {
            one_by_one.command("incr", Duration::from_nanos(ns));
            local.record(Duration::from_nanos(ns));
        }
        assert_eq!(local.len() as usize, took.len());
        batched.commands_done("incr", &local);
        batched.commands_done("incr", &LocalDurations::default());
        let (a, b) = (one_by_one.commands(), batched.commands());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].1, b[0].1);
        assert_eq!(b[0].1.count, took.len() as u64);
    }
}
