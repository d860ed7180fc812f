//! Cluster certificates: one CA and one certificate per region.
