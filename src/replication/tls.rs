//! TLS for the replication endpoint: mutual authentication against the cluster CA.
