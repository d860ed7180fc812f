//! Braid: an active-active, geo-replicated, durable key-value store that speaks
//! the Redis protocol.
//!
//! The crate is layered with pure logic in the middle and I/O at the edges:
//! [`crdt`] holds the data model (clocks, operations, the per-type merge rules
//! and the materialized state); later layers (protocol, op log, replication)
//! only move its operations around.

pub mod backup;
pub mod command;
pub mod config;
pub mod crdt;
#[doc(hidden)]
pub mod fuzzing;
pub mod keyspace;
pub mod metrics;
pub mod oplog;
pub mod relay;
pub mod replication;
pub mod resp;
pub mod server;
pub mod snapshot;
