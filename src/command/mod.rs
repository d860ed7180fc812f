//! Commands: one file per family, each command parsing its own arguments and
//! applying itself to the keyspace. The table drives dispatch, arity checks,
//! ACL-like flags and `COMMAND` introspection.

pub mod args;
pub mod conflicts;
pub mod glob;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod server;
pub mod sets;
pub mod strings;
pub mod zsets;

use bytes::Bytes;

use crate::keyspace::Keyspace;
use crate::resp::Frame;

/// Changes data: refused with OOM beyond maxmemory, queued by MULTI, logged.
pub const WRITE: u32 = 1;
/// Only reads data.
pub const READONLY: u32 = 1 << 1;
/// Allowed before AUTH.
pub const NOAUTH: u32 = 1 << 2;
/// Administrative (CONFIG, SHUTDOWN, FLUSHALL…).
pub const ADMIN: u32 = 1 << 3;
/// May grow memory (refused beyond maxmemory).
pub const DENYOOM: u32 = 1 << 4;
/// Constant-time.
pub const FAST: u32 = 1 << 5;

/// Per-connection facts a command may read or change.
#[derive(Debug, Default)]
pub struct ClientInfo {
    /// Unique id (CLIENT ID).
    pub id: u64,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// Peer address.
    pub addr: String,
    /// 2 or 3 (HELLO).
    pub resp: u8,
    /// AUTH succeeded (or no password is set).
    pub authenticated: bool,
    /// Name of the command being run, for error texts.
    pub current: &'static str,
}

/// What a command runs against: the locked keyspace, the time, the client,
/// and the server-wide hooks (configuration, stats, other clients).
pub struct Ctx<'a> {
    /// The keyspace (locked for the duration of the command).
    pub ks: &'a mut Keyspace,
    /// Wall clock, Unix ms, fixed for the command (Redis' "command time").
    pub now_ms: u64,
    /// The calling client.
    pub client: &'a mut ClientInfo,
    /// Server-wide facts and actions.
    pub server: &'a dyn ServerHooks,
}

impl Ctx<'_> {
    /// Performs a client write at the command's time; a refused write
    /// becomes its Redis error reply.
    pub fn write(&mut self, key: Bytes, intent: crate::crdt::Intent) -> Result<bool, Frame> {
        self.ks
            .write(key, intent, self.now_ms)
            .map_err(strings::write_error)
    }
}

/// What commands need from the server beyond the keyspace.
pub trait ServerHooks: Send + Sync {
    /// `INFO` text for the given section (`None`: default sections).
    fn info(&self, ks: &Keyspace, section: Option<&str>) -> String;
    /// CONFIG GET: (name, value) pairs matching a glob pattern.
    fn config_get(&self, pattern: &[u8]) -> Vec<(String, String)>;
    /// CONFIG SET of one parameter; `Err` is the error text.
    fn config_set(&self, name: &str, value: &str) -> Result<(), String>;
    /// CLIENT LIST lines.
    fn client_list(&self) -> String;
    /// The password, if one is required.
    fn requirepass(&self) -> Option<String>;
    /// Asks the server to shut down after this reply.
    fn shutdown(&self);
    /// Whether the dataset is over maxmemory.
    fn over_maxmemory(&self) -> bool;
    /// Why writes are refused for now (a region still learning its own
    /// high-water mark from its peers), if they are.
    fn writes_blocked(&self) -> Option<&'static str> {
        None
    }
    /// Starts a snapshot in the background (`BRAID.SNAPSHOT`); returns its
    /// number (`INFO persistence`'s `last_snapshot_id` once it is written,
    /// `last_failed_snapshot_id` if it fails). `Err`: the error text.
    fn request_snapshot(&self) -> Result<u64, String> {
        Err("snapshots are not available here".into())
    }
    /// Records how long runs of a command (by its table name) took to
    /// execute.
    fn commands_done(&self, name: &'static str, took: &crate::metrics::LocalDurations) {
        let _ = (name, took);
    }
}

/// A command's description.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// Flags (WRITE, READONLY, …).
    pub flags: u32,
    /// First key argument (0: none), last key (-1: last argument), step.
    pub keys: (i32, i32, i32),
    /// Runs it. `args[0]` is the command name.
    pub run: fn(&mut Ctx, &mut [Bytes]) -> Frame,
}

impl CommandSpec {
    /// Whether `argc` (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Whether it writes.
    pub fn is_write(&self) -> bool {
        self.flags & WRITE != 0
    }
}

/// Every command of every family.
pub fn table() -> &'static [&'static [CommandSpec]] {
    &[
        strings::COMMANDS,
        keys::COMMANDS,
        hashes::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
        lists::COMMANDS,
        server::COMMANDS,
        conflicts::COMMANDS,
    ]
}

/// Longest command name that [`lookup`] finds (longer names are unknown).
pub const MAX_NAME_LEN: usize = 32;

/// Lower-cases a command name into `buf` without allocating; `None` when
/// it is longer than any command's.
pub fn lower_name<'a>(name: &[u8], buf: &'a mut [u8; MAX_NAME_LEN]) -> Option<&'a [u8]> {
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    Some(lower)
}

type Index =
    std::collections::HashMap<&'static [u8], &'static CommandSpec, foldhash::fast::FixedState>;

/// Command names to their specs, built once: every request looks one up.
fn index() -> &'static Index {
    static INDEX: std::sync::OnceLock<Index> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = Index::default();
        for c in table().iter().flat_map(|family| family.iter()) {
            index.entry(c.name.as_bytes()).or_insert(c);
        }
        index
    })
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0; MAX_NAME_LEN];
    index().get(lower_name(name, &mut buf)?).copied()
}

/// Redis' reply to an unknown command.
pub fn unknown_command(args: &[Bytes]) -> Frame {
    let name = String::from_utf8_lossy(args.first().map_or(&b""[..], |a| &a[..])).into_owned();
    let mut rest = String::new();
    for a in args.iter().skip(1).take(128) {
        rest.push('\'');
        rest.push_str(&String::from_utf8_lossy(a));
        rest.push_str("' ");
    }
    Frame::error(format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

/// Redis' reply to a wrong argument count.
pub fn wrong_arity(name: &str) -> Frame {
    Frame::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Looks up and runs one command (arity checked). Authentication, MULTI
/// queuing and the OOM check are the connection's business.
pub fn execute(ctx: &mut Ctx, args: &mut [Bytes]) -> Frame {
    let Some(name) = args.first() else {
        return Frame::error("ERR empty command");
    };
    let Some(spec) = lookup(name) else {
        return unknown_command(args);
    };
    execute_spec(ctx, spec, args)
}

/// Runs one command already looked up (`spec` is `args[0]`'s), arity
/// checked: saves a second lookup to a caller that had to look it up.
pub fn execute_spec(ctx: &mut Ctx, spec: &'static CommandSpec, args: &mut [Bytes]) -> Frame {
    if !spec.arity_ok(args.len()) {
        return wrong_arity(spec.name);
    }
    ctx.client.current = spec.name;
    (spec.run)(ctx, args)
}

/// Runs commands against a bare keyspace, for unit tests of the families.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::crdt::{RegionId, State};

    pub(crate) struct NoServer;

    impl ServerHooks for NoServer {
        fn info(&self, _ks: &Keyspace, _section: Option<&str>) -> String {
            String::new()
        }
        fn config_get(&self, _pattern: &[u8]) -> Vec<(String, String)> {
            Vec::new()
        }
        fn config_set(&self, _name: &str, _value: &str) -> Result<(), String> {
            Err("unsupported in tests".into())
        }
        fn client_list(&self) -> String {
            String::new()
        }
        fn requirepass(&self) -> Option<String> {
            None
        }
        fn shutdown(&self) {}
        fn over_maxmemory(&self) -> bool {
            false
        }
    }

    /// A keyspace plus a client, at a settable time.
    pub(crate) struct Harness {
        pub ks: Keyspace,
        pub client: ClientInfo,
        pub now_ms: u64,
    }

    impl Harness {
        pub(crate) fn new() -> Self {
            Harness {
                ks: Keyspace::new(RegionId(1), State::new()),
                client: ClientInfo {
                    resp: 2,
                    authenticated: true,
                    ..ClientInfo::default()
                },
                now_ms: 1_700_000_000_000,
            }
        }

        /// Runs a command given as words.
        pub(crate) fn run(&mut self, words: &[&str]) -> Frame {
            let mut args: Vec<Bytes> = words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            let mut ctx = Ctx {
                ks: &mut self.ks,
                now_ms: self.now_ms,
                client: &mut self.client,
                server: &NoServer,
            };
            execute(&mut ctx, &mut args)
        }
    }

    #[test]
    fn every_command_is_found_by_lookup() {
        for c in table().iter().flat_map(|family| family.iter()) {
            assert!(c.name.len() <= MAX_NAME_LEN, "{} is too long", c.name);
            let upper = c.name.to_ascii_uppercase();
            assert_eq!(lookup(upper.as_bytes()).map(|s| s.name), Some(c.name));
        }
        assert!(lookup(&[b'a'; MAX_NAME_LEN + 1]).is_none());
    }

    #[test]
    fn strings_and_keys_smoke() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "v"]), Frame::ok());
        assert_eq!(h.run(&["GET", "k"]), Frame::bulk("v"));
        assert_eq!(h.run(&["INCR", "n"]), Frame::Integer(1));
        assert_eq!(h.run(&["INCRBY", "n", "41"]), Frame::Integer(42));
        assert_eq!(
            h.run(&["INCR", "k"]),
            Frame::error("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["GET"]),
            Frame::error("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(h.run(&["EXPIRE", "k", "10"]), Frame::Integer(1));
        assert_eq!(h.run(&["TTL", "k"]), Frame::Integer(10));
        assert_eq!(h.run(&["DEL", "k", "n", "zz"]), Frame::Integer(2));
        assert_eq!(h.run(&["EXISTS", "k"]), Frame::Integer(0));
    }
}
