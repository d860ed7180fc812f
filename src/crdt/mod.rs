//! The CRDT core: Braid's data model, pure (no I/O, no async, no storage).
//!
//! A client write is *prepared* by the region that receives it into an
//! [`Operation`] (origin, sequence, HLC, causal dependencies, key and effect).
//! Every region applies every operation, in causal order, to its [`State`];
//! concurrent operations commute, duplicates change nothing, so all regions
//! that applied the same operations hold the same state and the same
//! [`State::digest`]. The per-type rules are in `docs/semantics.md`.
//!
//! Layout: identity and time ([`id`], [`hlc`], [`vv`]); the operation
//! ([`op`], [`codec`]); one file per type ([`string`], [`list`], [`set`],
//! [`zset`], [`hash`]) built from shared pieces ([`counter`], [`detach`], [`tags`],
//! [`position`], [`expiry`], [`number`]); a key ([`entry`]); the state
//! ([`state`], [`prepare`], [`digest`]); delivery and garbage collection
//! ([`causal`], [`stability`]); a region's pure core ([`replica`]); and the
//! snapshot encoding of a frozen state ([`snapshot`]).

pub mod causal;
pub mod codec;
pub mod conflict;
pub mod counter;
pub mod detach;
pub mod digest;
pub mod entry;
pub mod expiry;
pub mod hash;
pub mod hlc;
pub mod id;
pub mod list;
pub mod number;
pub mod op;
pub mod position;
pub mod prepare;
pub mod replica;
pub mod set;
pub mod snapshot;
pub mod stability;
pub mod state;
pub mod string;
pub mod tags;
pub mod vv;
pub mod zset;

pub use causal::CausalBuffer;
pub use conflict::{Conflict, ConflictKind};
pub use entry::{Content, Entry};
pub use hlc::{Hlc, HlcClock};
pub use id::{Dot, RegionId, Seq, Stamp, Tag};
pub use number::{Decimal, Delta};
pub use op::{Body, Effect, KeyType, KeyWrite, Operation, TtlChange};
pub use position::Position;
pub use prepare::{Intent, WriteError};
pub use replica::Replica;
pub use stability::Stability;
pub use state::{Applied, ApplyError, FrozenState, State};
pub use vv::VersionVector;
