//! The region's figures as the metrics endpoint and `INFO` show them. Both
//! read the same sources: the hot-path recordings in [`Metrics`], the
//! replication links' statistics and the keyspace's version vector.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::net::TcpListener;

use super::{unix_ms, Shared};
use crate::keyspace::Keyspace;
use crate::metrics::consistency::OriginLag;
use crate::metrics::{
    http, Exposition, FsyncKind, HistogramSnapshot, Kind, Labels, SnapshotKind, NS,
};

/// Starts serving `GET /metrics` on `listener` until shutdown.
pub(super) fn start_endpoint(shared: &Arc<Shared>, listener: TcpListener) {
    let weak = Arc::downgrade(shared);
    let render: http::Render = Arc::new(move || {
        weak.upgrade()
            .map(|s| s.render_metrics())
            .unwrap_or_default()
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics endpoint listening (GET /metrics)");
    }
    *shared.metrics_task.lock() = Some(tokio::spawn(http::serve(listener, render)));
}

/// Milliseconds or `-` when there is no sample yet.
fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A quantile of a nanosecond histogram in microseconds (`0` when empty).
fn usec(h: &HistogramSnapshot, q: f64) -> String {
    format!("{:.3}", h.quantile(q).unwrap_or(0.0) / 1000.0)
}

impl Shared {
    /// The name of region `id` (`region-<id>` when no name is known).
    fn region_name(&self, id: u16) -> String {
        if id == self.region.0 {
            return self.config.read().region.clone();
        }
        self.replication
            .get()
            .and_then(|r| r.known_name(id))
            .unwrap_or_else(|| format!("region-{id}"))
    }

    /// One scrape: every figure in the Prometheus text format.
    pub(super) fn render_metrics(&self) -> String {
        let (region, region_id) = {
            let c = self.config.read();
            (c.region.clone(), c.region_id)
        };
        let mut e = Exposition::new(vec![("region", region.clone())]);
        let l = |pairs: &[(&'static str, &str)]| -> Labels {
            pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
        };
        e.gauge(
            "braid_region_info",
            "This region's id and build (value 1).",
            l(&[
                ("region_id", &region_id.to_string()),
                ("version", env!("CARGO_PKG_VERSION")),
            ]),
            1.0,
        );
        e.gauge(
            "braid_uptime_seconds",
            "Seconds since the server started.",
            Vec::new(),
            self.started.elapsed().as_secs_f64(),
        );
        e.counter(
            "braid_commands_processed",
            "Commands processed.",
            Vec::new(),
            self.stats.commands_processed.load(Relaxed),
        );
        e.gauge(
            "braid_connected_clients",
            "Client connections open.",
            Vec::new(),
            self.clients.lock().len() as f64,
        );
        let (vv, local_ops, keys, conflicts) = {
            let ks = self.keyspace.lock();
            (
                ks.state().version_vector().clone(),
                ks.stats.local_ops,
                ks.len(),
                ks.conflicts.counts().collect::<Vec<_>>(),
            )
        };
        e.gauge("braid_keys", "Keys held.", Vec::new(), keys as f64);
        const APPLIED: &str = "Operations applied since start, per origin region (this region's own writes included).";
        e.counter(
            "braid_ops_applied",
            APPLIED,
            l(&[("origin", &region)]),
            local_ops,
        );
        for (origin, n) in self.metrics.remote_applied_by_origin() {
            e.counter(
                "braid_ops_applied",
                APPLIED,
                l(&[("origin", &self.region_name(origin))]),
                n,
            );
        }
        for (origin, seq) in vv.iter() {
            e.gauge(
                "braid_version_vector",
                "Highest sequence of each origin region this region holds.",
                l(&[("origin", &self.region_name(origin.0))]),
                seq as f64,
            );
        }
        e.gauge(
            "braid_causal_buffer_ops",
            "Operations from peers waiting for their dependencies.",
            Vec::new(),
            self.causal_waiting.load(Relaxed) as f64,
        );
        e.declare(
            "braid_command_duration_seconds",
            "Command execution time (under the keyspace lock), per command.",
            Kind::Histogram,
        );
        for (name, h) in self.metrics.commands() {
            e.histogram(
                "braid_command_duration_seconds",
                "",
                l(&[("command", name)]),
                h,
                NS,
            );
        }
        for kind in FsyncKind::ALL {
            e.histogram(
                "braid_fsync_duration_seconds",
                "Op-log fsync latency: group_commit (write and fsync under fsync always), background (everysec/no with replication), replicated (peers' operations, synced after they are written and applied, before they are acknowledged).",
                l(&[("kind", kind.label())]),
                self.metrics.fsync_histogram(kind),
                NS,
            );
        }
        e.counter(
            "braid_log_writes",
            "Op-log writes (each one a group commit).",
            Vec::new(),
            self.committer.stats.writes.load(Relaxed),
        );
        for (kind, label) in [(SnapshotKind::Local, "local"), (SnapshotKind::Peer, "peer")] {
            e.histogram(
                "braid_snapshot_duration_seconds",
                "Time to write a snapshot: local (scheduled or BRAID.SNAPSHOT, log truncation included) or for a peer that needs one.",
                l(&[("kind", label)]),
                self.metrics.snapshot_histogram(kind),
                NS,
            );
        }
        e.counter(
            "braid_snapshots_written",
            "Local snapshots written.",
            Vec::new(),
            self.stats.snapshots_written.load(Relaxed),
        );
        e.declare(
            "braid_conflicts_resolved",
            "Races the merge rules resolved, per key type and rule.",
            Kind::Counter,
        );
        for (t, r, n) in conflicts {
            e.counter(
                "braid_conflicts_resolved",
                "",
                l(&[("type", t), ("rule", r)]),
                n,
            );
        }
        if let Some(r) = self.replication.get() {
            self.render_replication(&mut e, r, &vv);
        }
        e.render()
    }

    fn render_replication(
        &self,
        e: &mut Exposition,
        r: &crate::replication::Replication,
        vv: &crate::crdt::VersionVector,
    ) {
        let peers = r.peers.lock().clone();
        for (name, p) in &peers {
            let peer = || -> Labels { vec![("peer", name.clone())] };
            let with = |k: &'static str, v: &str| -> Labels {
                vec![("peer", name.clone()), (k, v.to_string())]
            };
            e.gauge(
                "braid_replication_link_up",
                "Whether the link to the peer is up (outbound: we ship to it; inbound: it ships to us).",
                with("direction", "outbound"),
                f64::from(u8::from(p.outbound == "up")),
            );
            e.gauge(
                "braid_replication_link_up",
                "",
                with("direction", "inbound"),
                f64::from(u8::from(p.inbound_up)),
            );
            e.gauge(
                "braid_replication_rtt_seconds",
                "Smoothed round-trip time of segment acknowledgements.",
                peer(),
                p.rtt.map_or(0.0, |d| d.as_secs_f64()),
            );
            let lag_ops: u64 = vv
                .iter()
                .map(|(o, s)| s.saturating_sub(p.acked.get(o)))
                .sum();
            e.gauge(
                "braid_replication_lag_operations",
                "Operations this region holds that the peer has not acknowledged.",
                peer(),
                lag_ops as f64,
            );
            e.gauge(
                "braid_replication_lag_seconds",
                "Age of the oldest segment the peer has not acknowledged (0: none outstanding).",
                peer(),
                p.lag_since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            );
            const SENT: &str = "Replication bytes sent to the peer: raw (operations before compression) and wire (after compression, with framing).";
            const RECV: &str =
                "Replication bytes received from the peer: raw (after decompression) and wire.";
            e.counter(
                "braid_replication_sent_bytes",
                SENT,
                with("kind", "raw"),
                p.sent_raw,
            );
            e.counter(
                "braid_replication_sent_bytes",
                SENT,
                with("kind", "wire"),
                p.sent_wire,
            );
            e.counter(
                "braid_replication_received_bytes",
                RECV,
                with("kind", "raw"),
                p.recv_raw,
            );
            e.counter(
                "braid_replication_received_bytes",
                RECV,
                with("kind", "wire"),
                p.recv_wire,
            );
            e.counter(
                "braid_replication_segments_sent",
                "Segments sent to the peer.",
                peer(),
                p.segments_sent,
            );
            e.counter(
                "braid_replication_segments_compressed",
                "Segments sent to the peer compressed.",
                peer(),
                p.segments_compressed,
            );
            e.counter(
                "braid_replication_segments_received",
                "Segments received from the peer.",
                peer(),
                p.segments_recv,
            );
            e.counter(
                "braid_replication_ops_sent",
                "Operations sent to the peer.",
                peer(),
                p.ops_sent,
            );
            e.counter(
                "braid_replication_ops_received",
                "Operations received from the peer.",
                peer(),
                p.ops_recv,
            );
            e.counter(
                "braid_replication_heartbeats_sent",
                "Heartbeats sent to the peer (this region's and those passed on).",
                peer(),
                p.heartbeats_sent,
            );
            e.counter(
                "braid_replication_heartbeats_received",
                "Heartbeats received from the peer (any origin).",
                peer(),
                p.heartbeats_recv,
            );
            e.gauge(
                "braid_replication_protocol_version",
                "Protocol version of the outbound link (0: not up).",
                peer(),
                p.version as f64,
            );
            e.gauge(
                "braid_replication_batch_window_last_seconds",
                "Batch window before the last segment sent to the peer.",
                peer(),
                p.batch_window.as_secs_f64(),
            );
            const SEG: &str =
                "Size of the segments sent to the peer: raw (operations) and wire (on the wire).";
            e.histogram(
                "braid_replication_segment_bytes",
                SEG,
                with("kind", "raw"),
                p.segments.raw_bytes.snapshot(),
                1.0,
            );
            e.histogram(
                "braid_replication_segment_bytes",
                SEG,
                with("kind", "wire"),
                p.segments.wire_bytes.snapshot(),
                1.0,
            );
            e.histogram(
                "braid_replication_segment_ops",
                "Operations per segment sent to the peer.",
                peer(),
                p.segments.ops.snapshot(),
                1.0,
            );
            e.histogram(
                "braid_replication_batch_window_seconds",
                "Adaptive batch window waited before each segment sent to the peer.",
                peer(),
                p.segments.window.snapshot(),
                NS,
            );
        }
        e.declare(
            "braid_consistency_lag_seconds",
            "Time from a write in the origin region until it is visible here, measured by heartbeats.",
            Kind::Histogram,
        );
        for o in self.metrics.consistency.origins(unix_ms()) {
            let origin = self.region_name(o.origin);
            let labels = || -> Labels { vec![("origin", origin.clone())] };
            e.histogram(
                "braid_consistency_lag_seconds",
                "",
                labels(),
                o.histogram.clone(),
                NS,
            );
            for (q, v) in [("0.5", o.p50_ms), ("0.99", o.p99_ms)] {
                if let Some(v) = v {
                    e.gauge(
                        "braid_consistency_lag_recent_seconds",
                        "Consistency lag quantiles over the last 256 heartbeats of the origin.",
                        vec![("origin", origin.clone()), ("quantile", q.to_string())],
                        v as f64 / 1000.0,
                    );
                }
            }
            if let Some(s) = o.staleness_ms {
                e.gauge(
                    "braid_replica_staleness_seconds",
                    "How old this region's view of the origin is: time since the newest origin heartbeat whose writes are all visible here.",
                    labels(),
                    s as f64 / 1000.0,
                );
            }
            e.counter(
                "braid_consistency_heartbeats",
                "Heartbeats of the origin taken (copies relayed by other regions not counted).",
                labels(),
                o.heartbeats,
            );
        }
    }

    /// The consistency lag per origin, by region id.
    fn origin_lags(&self) -> Vec<OriginLag> {
        self.metrics.consistency.origins(unix_ms())
    }

    /// `INFO replication` after the fixed fields: the peer lines (with
    /// consistency lag) and one line per origin heard from.
    pub(super) fn info_replication_extra(&self, ks: &Keyspace) -> String {
        let Some(r) = self.replication.get() else {
            return String::new();
        };
        let lags = self.origin_lags();
        let mut out = r.info(ks.state().version_vector(), |id| {
            let o = lags.iter().find(|o| o.origin == id);
            format!(
                "consistency_lag_p50_ms={},consistency_lag_p99_ms={},staleness_ms={},",
                ms(o.and_then(|o| o.p50_ms)),
                ms(o.and_then(|o| o.p99_ms)),
                ms(o.and_then(|o| o.staleness_ms)),
            )
        });
        for (i, o) in lags.iter().enumerate() {
            out.push_str(&format!(
                "consistency{i}:origin={},origin_id={},heartbeats={},lag_p50_ms={},lag_p99_ms={},lag_last_ms={},staleness_ms={}\r\n",
                self.region_name(o.origin),
                o.origin,
                o.heartbeats,
                ms(o.p50_ms),
                ms(o.p99_ms),
                ms(o.last_ms),
                ms(o.staleness_ms),
            ));
        }
        out
    }

    /// `INFO persistence` additions: fsync and snapshot latencies.
    pub(super) fn info_persistence_extra(&self) -> String {
        let mut out = String::new();
        for kind in FsyncKind::ALL {
            let h = self.metrics.fsync_histogram(kind);
            out.push_str(&format!(
                "fsync_{}:calls={},p50_usec={},p99_usec={}\r\n",
                kind.label(),
                h.count,
                usec(&h, 0.5),
                usec(&h, 0.99),
            ));
        }
        for (kind, label) in [(SnapshotKind::Local, "local"), (SnapshotKind::Peer, "peer")] {
            let h = self.metrics.snapshot_histogram(kind);
            out.push_str(&format!(
                "snapshot_duration_{label}:count={},p50_ms={:.3},p99_ms={:.3}\r\n",
                h.count,
                h.quantile(0.5).unwrap_or(0.0) / 1e6,
                h.quantile(0.99).unwrap_or(0.0) / 1e6,
            ));
        }
        out
    }

    /// `INFO commandstats`, in Redis' format.
    pub(super) fn info_commandstats(&self) -> String {
        let mut out = String::from("# Commandstats\r\n");
        for (name, h) in self.metrics.commands() {
            let usec = h.sum / 1000;
            out.push_str(&format!(
                "cmdstat_{name}:calls={},usec={usec},usec_per_call={:.2},rejected_calls=0,failed_calls=0\r\n",
                h.count,
                usec as f64 / h.count.max(1) as f64,
            ));
        }
        out.push_str("\r\n");
        out
    }

    /// `INFO latencystats`, in Redis' format (percentiles estimated from
    /// the histogram buckets).
    pub(super) fn info_latencystats(&self) -> String {
        let mut out = String::from("# Latencystats\r\n");
        for (name, h) in self.metrics.commands() {
            out.push_str(&format!(
                "latency_percentiles_usec_{name}:p50={},p99={},p99.9={}\r\n",
                usec(&h, 0.5),
                usec(&h, 0.99),
                usec(&h, 0.999),
            ));
        }
        out.push_str("\r\n");
        out
    }
}
