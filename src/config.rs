//! Configuration: a TOML file (`--config`) whose every key can be overridden
//! by a command-line flag, validated up front with errors that name the key.

use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// When a write is acknowledged, relative to reaching the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Acknowledge only after an fsync covering the write (group commit).
    Always,
    /// Write to the log before acknowledging; fsync once a second.
    Everysec,
    /// Write to the log before acknowledging; let the OS decide when to sync.
    No,
}

impl FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::Everysec),
            "no" => Ok(FsyncPolicy::No),
            _ => Err(format!(
                "invalid fsync policy '{s}' (expected always, everysec or no)"
            )),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Everysec => "everysec",
            FsyncPolicy::No => "no",
        })
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("invalid log format '{s}' (expected text or json)")),
        }
    }
}

/// A size in bytes, written as Redis writes them: `0`, `1048576`, `100mb`,
/// `1gb`, `512k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let split = lower
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(lower.len());
        let (digits, unit) = lower.split_at(split);
        let n: u64 = digits.parse().map_err(|_| format!("invalid size '{s}'"))?;
        let mult: u64 = match unit {
            "" | "b" => 1,
            "k" => 1000,
            "kb" => 1024,
            "m" => 1000 * 1000,
            "mb" => 1024 * 1024,
            "g" => 1000 * 1000 * 1000,
            "gb" => 1024 * 1024 * 1024,
            _ => {
                return Err(format!(
                    "invalid size unit in '{s}' (use k, kb, m, mb, g, gb)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size '{s}' is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The server's settings. Field names are the TOML keys and, with `-` for
/// `_`, the flag names.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on for clients.
    pub bind: IpAddr,
    /// Port to listen on for clients.
    pub port: u16,
    /// Directory holding the op log and snapshots.
    pub data_dir: PathBuf,
    /// Name of this region.
    pub region: String,
    /// Stable numeric id of this region (LWW tie-break; unique per cluster).
    pub region_id: u16,
    /// When writes are acknowledged relative to fsync.
    pub fsync: FsyncPolicy,
    /// Password clients must AUTH with (none: no authentication).
    pub requirepass: Option<String>,
    /// Memory limit for the dataset; writes get Redis' OOM error beyond it
    /// (0: no limit). Nothing is ever evicted: evicting would diverge regions.
    pub maxmemory: ByteSize,
    /// Take a snapshot after this many operations since the last one (0: never by count).
    pub snapshot_every_ops: u64,
    /// Take a snapshot after this many seconds if anything changed (0: never by time).
    pub snapshot_every_secs: u64,
    /// Snapshots kept on disk (older ones are deleted).
    pub snapshots_keep: usize,
    /// Maximum simultaneous client connections.
    pub maxclients: usize,
    /// Largest bulk string a client may send (Redis' proto-max-bulk-len).
    pub proto_max_bulk_len: ByteSize,
    /// Most argument slots in one multibulk request (`*<n>`); a larger
    /// count is `ERR Protocol error: invalid multibulk length` and closes
    /// the connection. Redis accepts up to 2^31-1; a lower default bounds
    /// what one request costs beyond its bytes (a slot per argument).
    pub proto_max_multibulk_len: u64,
    /// Most bytes of one client's request being read, plus the commands it
    /// queued in a MULTI (Redis' client-query-buffer-limit; 1mb before the
    /// client authenticates); beyond it the client is disconnected.
    pub client_query_buffer_limit: ByteSize,
    /// Replies a client has not read yet, beyond which the server stops
    /// executing its pipelined commands (and reading its socket) until it
    /// reads them: backpressure, not disconnection. One reply larger than
    /// this is still sent whole.
    pub client_output_buffer_limit: ByteSize,
    /// Most of one client's pipelined commands parsed but not yet answered;
    /// the rest stay unread in the socket until these are answered.
    pub client_pipeline_depth: usize,
    /// Threads running client connections and replication (0: one per
    /// core, at least two with replication). Client batches take turns on
    /// the keyspace without blocking a thread (see `server::Shared`), so a
    /// second worker reads and writes sockets while the first runs commands
    /// (measured in `BENCHMARKS.md`); with replication, a lone worker also
    /// let the lag p99 grow past 100 ms.
    pub worker_threads: usize,
    /// Log line format.
    pub log_format: LogFormat,
    /// Conflicts kept in the journal `BRAID.CONFLICTS` reads (the latest
    /// ones; 0 keeps none, counts only).
    pub conflict_journal_len: usize,
    /// Active-active replication with other regions (off unless `listen` is set).
    pub replication: ReplicationConfig,
    /// The Prometheus metrics endpoint (off unless `listen` is set).
    pub metrics: MetricsConfig,
}

/// The Prometheus text endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// TCP address serving `GET /metrics` (none: no endpoint; the same
    /// figures are in `INFO`). Off by default: it is unauthenticated, so
    /// where it listens is the operator's choice.
    pub listen: Option<SocketAddr>,
}

/// Another region this one replicates with.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its region name (its certificate must name it).
    pub name: String,
    /// Its stable numeric region id.
    pub id: u16,
    /// Its replication (QUIC, UDP) address.
    pub addr: SocketAddr,
}

impl FromStr for PeerConfig {
    type Err = String;
    /// `name=id@host:port`, the form of `--peer`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid peer '{s}' (expected name=id@host:port, e.g. eu=2@10.0.0.2:7479)");
        let (name, rest) = s.split_once('=').ok_or_else(bad)?;
        let (id, addr) = rest.split_once('@').ok_or_else(bad)?;
        Ok(PeerConfig {
            name: name.to_string(),
            id: id.parse().map_err(|_| bad())?,
            addr: addr.parse().map_err(|_| bad())?,
        })
    }
}

/// How this region replicates: where it listens, which peers it ships its
/// log to, and how segments are batched.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// UDP address of this region's QUIC endpoint (none: replication off).
    pub listen: Option<SocketAddr>,
    /// Address peers should dial back (default: `listen`); sent in the
    /// handshake so a peer that does not list this region still replicates
    /// to it (how a new region joins).
    pub advertise: Option<SocketAddr>,
    /// Directory with `ca.pem`, `<region>.pem` and `<region>.key`, as made by
    /// `braid-server gen-certs`.
    pub tls_dir: PathBuf,
    /// Peers this region connects to (the topology: all others for a mesh,
    /// the hub for a spoke, two neighbours in a ring).
    pub peers: Vec<PeerConfig>,
    /// Relay other regions' operations to peers at once (hub, ring,
    /// multi-tier). Without it they are relayed only when a peer still
    /// lacks them after `relay_after_ms` (repairs a mesh's cut link).
    pub forward: bool,
    /// See `forward`.
    pub relay_after_ms: u64,
    /// Longest a segment waits to fill up under load (adaptive batching).
    pub max_batch_delay_ms: u64,
    /// Most operations per segment.
    pub max_segment_ops: usize,
    /// Most raw bytes per segment (a single larger operation still goes).
    pub max_segment_bytes: ByteSize,
    /// A region starting on an empty data directory takes no writes until
    /// a peer has told it how far its own numbering got (it may be a
    /// rebuilt region); after this long without any peer answering, it
    /// takes writes anyway (a new cluster whose other regions are not up).
    pub startup_peer_wait_ms: u64,
    /// Most operations the op log keeps for peers that have not
    /// acknowledged them (0: no cap); beyond it they are truncated after a
    /// snapshot and a lagging peer catches up from a snapshot.
    pub log_retention_ops: u64,
    /// A peer that holds nothing yet (a region joining) and lacks at least
    /// this many operations gets a snapshot instead of the log: loading one
    /// file beats replaying every operation (0: only when the log no longer
    /// holds what it lacks).
    pub join_snapshot_ops: u64,
    /// Compress segments with lz4 where it pays (adaptive, per link);
    /// `false` sends every segment raw.
    pub compress: bool,
    /// How often this region sends each peer a heartbeat (its own applied
    /// sequence and wall-clock time), from which peers measure the
    /// consistency lag (0: never).
    pub heartbeat_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            listen: None,
            advertise: None,
            tls_dir: PathBuf::from("./certs"),
            peers: Vec::new(),
            forward: false,
            relay_after_ms: 1000,
            max_batch_delay_ms: 5,
            max_segment_ops: 10_000,
            max_segment_bytes: ByteSize(4 * 1024 * 1024),
            startup_peer_wait_ms: 5000,
            compress: true,
            log_retention_ops: 50_000_000,
            join_snapshot_ops: 100_000,
            heartbeat_ms: 1000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 7379,
            data_dir: PathBuf::from("./braid-data"),
            region: "local".into(),
            region_id: 1,
            fsync: FsyncPolicy::Always,
            requirepass: None,
            maxmemory: ByteSize(0),
            snapshot_every_ops: 1_000_000,
            snapshot_every_secs: 300,
            snapshots_keep: 2,
            maxclients: 10_000,
            proto_max_bulk_len: ByteSize(512 * 1024 * 1024),
            proto_max_multibulk_len: 1024 * 1024,
            client_query_buffer_limit: ByteSize(1024 * 1024 * 1024),
            client_output_buffer_limit: ByteSize(16 * 1024 * 1024),
            client_pipeline_depth: 1024,
            worker_threads: 0,
            log_format: LogFormat::Text,
            conflict_journal_len: 1024,
            replication: ReplicationConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (names the key).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid value for '{key}': {message}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

impl Config {
    /// Whether no other region takes part now or ever: no peers, and no
    /// replication endpoint through which a new region could join (a region
    /// that is dialed dials back). Such a region collects metadata as it
    /// writes and does not write an SADD of members already held.
    pub fn alone(&self) -> bool {
        self.replication.peers.is_empty() && self.replication.listen.is_none()
    }

    /// The worker threads to start: `worker_threads`, or when 0, one per
    /// core this process may use (at least one), and at least two when
    /// replication is configured.
    pub fn effective_worker_threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let least = if self.replication.listen.is_some() {
            2
        } else {
            1
        };
        cores.max(least)
    }

    /// Reads a TOML file; unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; unknown keys are errors naming the key.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_string())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_region_name(&self.region) {
            return Err(ConfigError::Invalid {
                key: "region",
                message: format!(
                    "'{}' must be non-empty letters, digits, '-' or '_'",
                    self.region
                ),
            });
        }
        if self.region_id == 0 {
            return Err(ConfigError::Invalid {
                key: "region_id",
                message: "must be between 1 and 65535".into(),
            });
        }
        if self.snapshots_keep == 0 {
            return Err(ConfigError::Invalid {
                key: "snapshots_keep",
                message: "must keep at least one snapshot".into(),
            });
        }
        if self.maxclients == 0 {
            return Err(ConfigError::Invalid {
                key: "maxclients",
                message: "must be at least 1".into(),
            });
        }
        if self.proto_max_bulk_len.0 < 1024 * 1024 {
            return Err(ConfigError::Invalid {
                key: "proto_max_bulk_len",
                message: "must be at least 1mb".into(),
            });
        }
        self.validate_client_limits()?;
        self.validate_replication()
    }

    fn validate_client_limits(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        if !(1024..=i32::MAX as u64).contains(&self.proto_max_multibulk_len) {
            return invalid(
                "proto_max_multibulk_len",
                "must be between 1024 and 2147483647",
            );
        }
        if self.client_query_buffer_limit.0 < 1024 * 1024 {
            return invalid("client_query_buffer_limit", "must be at least 1mb");
        }
        // A request holding one argument of the largest allowed size must
        // fit in the query buffer.
        if self.client_query_buffer_limit.0 <= self.proto_max_bulk_len.0 {
            return invalid(
                "client_query_buffer_limit",
                "must be larger than proto_max_bulk_len",
            );
        }
        if self.client_output_buffer_limit.0 < 64 * 1024 {
            return invalid("client_output_buffer_limit", "must be at least 64kb");
        }
        if !(1..=1_000_000).contains(&self.client_pipeline_depth) {
            return invalid("client_pipeline_depth", "must be between 1 and 1000000");
        }
        if self.worker_threads > 1024 {
            return invalid("worker_threads", "must be at most 1024 (0: automatic)");
        }
        Ok(())
    }

    fn validate_replication(&self) -> Result<(), ConfigError> {
        let r = &self.replication;
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if r.listen.is_none() && !r.peers.is_empty() {
            return invalid(
                "replication.listen",
                "peers are configured but no replication address to listen on".into(),
            );
        }
        let mut names = std::collections::BTreeMap::new();
        names.insert(self.region.as_str(), self.region_id);
        let mut ids = std::collections::BTreeSet::from([self.region_id]);
        for p in &r.peers {
            if !valid_region_name(&p.name) {
                return invalid(
                    "replication.peers",
                    format!("peer name '{}' must be letters, digits, '-' or '_'", p.name),
                );
            }
            if p.id == 0 {
                return invalid(
                    "replication.peers",
                    format!("peer '{}' has id 0; ids are 1 to 65535", p.name),
                );
            }
            if names.insert(p.name.as_str(), p.id).is_some() || !ids.insert(p.id) {
                return invalid(
                    "replication.peers",
                    format!(
                        "peer '{}' (id {}) repeats a region name or id (this region is '{}' id {})",
                        p.name, p.id, self.region, self.region_id
                    ),
                );
            }
        }
        if r.max_segment_ops == 0 {
            return invalid("replication.max_segment_ops", "must be at least 1".into());
        }
        if r.max_segment_bytes.0 < 1024 {
            return invalid(
                "replication.max_segment_bytes",
                "must be at least 1kb".into(),
            );
        }
        Ok(())
    }
}

/// Region names appear in certificates (as DNS names) and file names.
pub fn valid_region_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        let d = Config::default();
        assert_eq!(d.port, 7379);
        assert_eq!(d.data_dir, PathBuf::from("./braid-data"));
        assert_eq!(d.region, "local");
        assert_eq!(d.fsync, FsyncPolicy::Always);
    }

    #[test]
    fn only_a_region_without_replication_is_alone() {
        let mut c = Config::default();
        assert!(c.alone());
        c.replication.listen = Some(SocketAddr::from(([127, 0, 0, 1], 7400)));
        assert!(!c.alone(), "a listening region can be joined");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Config::from_toml("prot = 5\n").unwrap_err();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn invalid_value_is_an_error_naming_the_key() {
        let err = Config::from_toml("fsync = \"sometimes\"\n").unwrap_err();
        assert!(err.contains("fsync"), "{err}");
        let err = Config::from_toml("port = \"x\"\n").unwrap_err();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn sizes_parse_like_redis() {
        assert_eq!("100mb".parse::<ByteSize>(), Ok(ByteSize(100 * 1024 * 1024)));
        assert_eq!("1g".parse::<ByteSize>(), Ok(ByteSize(1_000_000_000)));
        assert_eq!("123".parse::<ByteSize>(), Ok(ByteSize(123)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        let c = Config::from_toml("maxmemory = \"2gb\"\n").unwrap();
        assert_eq!(c.maxmemory, ByteSize(2 << 30));
    }

    #[test]
    fn replication_section_parses_and_is_checked() {
        let c = Config::from_toml(
            "region = \"us\"\nregion_id = 1\n[replication]\nlisten = \"127.0.0.1:7479\"\n\
             [[replication.peers]]\nname = \"eu\"\nid = 2\naddr = \"127.0.0.1:7480\"\n",
        )
        .unwrap();
        assert_eq!(c.replication.peers.len(), 1);
        assert_eq!(
            c.replication.peers[0],
            "eu=2@127.0.0.1:7480".parse().unwrap()
        );
        c.validate().unwrap();
        let err =
            Config::from_toml("[replication]\nlisten = \"127.0.0.1:7479\"\nfoo = 1\n").unwrap_err();
        assert!(err.contains("foo"), "{err}");
        let mut dup = c.clone();
        dup.replication.peers[0].id = 1;
        let err = dup.validate().unwrap_err().to_string();
        assert!(err.contains("replication.peers"), "{err}");
        let mut no_listen = c.clone();
        no_listen.replication.listen = None;
        assert!(no_listen.validate().is_err());
        assert!("eu=x@1.2.3.4:5".parse::<PeerConfig>().is_err());
        assert!("eu@1.2.3.4:5".parse::<PeerConfig>().is_err());
    }

    #[test]
    fn metrics_section_parses() {
        assert_eq!(Config::default().metrics.listen, None);
        let c = Config::from_toml("[metrics]\nlisten = \"127.0.0.1:9121\"\n").unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9121".parse().unwrap()));
        let err = Config::from_toml("[metrics]\nlisen = \"127.0.0.1:9121\"\n").unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        assert_eq!(Config::default().replication.heartbeat_ms, 1000);
    }

    #[test]
    fn worker_threads_default_is_one_per_core_two_with_replication_and_can_be_set() {
        let auto = Config::default();
        assert_eq!(auto.worker_threads, 0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(auto.effective_worker_threads(), cores.max(1));
        let mut replicating = Config::default();
        replicating.replication.listen = Some("127.0.0.1:7380".parse().unwrap());
        assert_eq!(replicating.effective_worker_threads(), cores.max(2));
        let set = Config::from_toml("worker_threads = 3\n").unwrap();
        set.validate().unwrap();
        assert_eq!(set.effective_worker_threads(), 3);
        let err = Config::from_toml("worker_threads = 5000\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("'worker_threads'"), "{err}");
    }

    #[test]
    fn client_limits_are_checked() {
        let ok = Config::from_toml(
            "proto_max_multibulk_len = 4096\nclient_output_buffer_limit = \"1mb\"\n\
             client_pipeline_depth = 16\nclient_query_buffer_limit = \"600mb\"\n",
        )
        .unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.proto_max_multibulk_len, 4096);
        assert_eq!(ok.client_output_buffer_limit, ByteSize(1 << 20));
        assert_eq!(ok.client_pipeline_depth, 16);
        let bad = |c: Config, key: &str| {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("'{key}'")), "{err}");
        };
        let d = Config::default;
        bad(
            Config {
                proto_max_multibulk_len: 10,
                ..d()
            },
            "proto_max_multibulk_len",
        );
        bad(
            Config {
                client_query_buffer_limit: ByteSize(1000),
                ..d()
            },
            "client_query_buffer_limit",
        );
        bad(
            Config {
                client_query_buffer_limit: ByteSize(512 * 1024 * 1024),
                ..d()
            },
            "client_query_buffer_limit",
        );
        bad(
            Config {
                client_output_buffer_limit: ByteSize(1000),
                ..d()
            },
            "client_output_buffer_limit",
        );
        bad(
            Config {
                client_pipeline_depth: 0,
                ..d()
            },
            "client_pipeline_depth",
        );
    }

    #[test]
    fn validation_names_the_key() {
        let c = Config {
            region: "us east".into(),
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("'region'"), "{err}");
    }
}
