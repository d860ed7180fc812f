//! The Redis wire protocol (RESP2 and RESP3), server side.
//!
//! Braid speaks the Redis protocol so that every existing Redis client,
//! library and tool works against it unchanged. That only holds if Braid
//! reads requests and writes replies *byte for byte* the way Redis 7 does,
//! including the odd corners (inline commands, the exact protocol-error
//! texts, how a double is printed), so this module is a careful port of the
//! relevant parts of Redis' `networking.c`, `sds.c` and `util.c` rather than a
//! generic RESP library.
//!
//! The layout follows tokio-rs/mini-redis:
//! - [`frame`]: the reply value ([`Frame`]) and its encoding for either
//!   protocol version ([`Protocol`]).
//! - [`parse`]: incremental parsing of client requests (multibulk and inline)
//!   with Redis' limits ([`Limits`]) and error texts ([`ProtocolError`]).
//! - [`connection`]: one client socket: a read buffer that yields argument
//!   vectors (pipelines included) and a write buffer of queued replies.
//!
//! Deliberate differences from Redis are listed on the item they concern
//! (search for "Differs from Redis").

pub mod connection;
pub mod frame;
pub mod parse;

pub use connection::{Connection, ConnectionError, DEFAULT_QUERY_BUFFER_LIMIT};
pub use frame::{format_double, Frame, Protocol};
pub use parse::{parse_request, split_args, Decoded, Decoder, Limits, ProtocolError};
