//! Replication segments: a batch of operations on the wire.
