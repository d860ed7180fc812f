//! Active-active replication: regions ship their op logs to each other over
//! QUIC with mutual TLS and merge what they receive.
//!
//! Pure codecs ([`segment`], [`message`]) in the middle; the QUIC endpoint,
//! certificates ([`tls`], [`certs`]) and the per-peer links at the edge.

pub mod certs;
pub mod segment;
pub mod tls;
