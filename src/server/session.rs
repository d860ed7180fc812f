//! One client's session: the commands that change connection state (AUTH,
//! HELLO, CLIENT, SELECT, QUIT, RESET) and transactions (MULTI, EXEC,
//! DISCARD, WATCH), around the command table.

use bytes::Bytes;

use crate::command::args::is;
use crate::command::{self, ClientInfo, Ctx, ServerHooks, DENYOOM, NOAUTH, WRITE};
use crate::keyspace::Keyspace;
use crate::metrics::LocalDurations;
use crate::resp::Frame;

/// What the connection should do after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Keep serving.
    Continue,
    /// Send the reply, then close (QUIT).
    Close,
}

/// Per-connection state beyond [`ClientInfo`].
#[derive(Debug, Default)]
pub struct Session {
    /// The client's facts.
    pub client: ClientInfo,
    multi: Option<Vec<Vec<Bytes>>>,
    /// Bytes held by the commands queued in `multi`.
    multi_bytes: usize,
    multi_failed: bool,
    watched: Vec<(Bytes, u64)>,
    /// When the previous command of this batch finished: the next one's
    /// start, so that timing a command costs one clock read, not two.
    clock: Option<std::time::Instant>,
    /// Execution times of the last run of one command, not yet added to the
    /// server's metrics (see [`flush_timings`](Self::flush_timings)).
    timings: Option<(&'static str, LocalDurations)>,
    /// The table command this client ran last: a pipeline mostly repeats
    /// one, and comparing its name costs less than lower-casing and hashing
    /// it (about 1 % of a pipelined SET).
    last_spec: Option<&'static command::CommandSpec>,
    /// Requests run in this batch, dropped by [`drop_spent`](Self::drop_spent)
    /// once the keyspace turn is released: freeing their arguments (buffer
    /// reference counts, allocations) took a few per cent of the turn.
    spent: Vec<Vec<Bytes>>,
}

const NOAUTH_REPLY: &str = "NOAUTH Authentication required.";

impl Session {
    /// A new session; `authenticated` when no password is required.
    pub fn new(client: ClientInfo) -> Self {
        Session {
            client,
            ..Session::default()
        }
    }

    /// Whether a MULTI is open.
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// Bytes held by the commands queued in an open MULTI (arguments plus
    /// their handles); they count against `client-query-buffer-limit`, as
    /// in Redis 7, so that a transaction cannot queue without bound.
    pub fn multi_bytes(&self) -> usize {
        self.multi_bytes
    }

    /// Runs one request. Its arguments are kept until
    /// [`drop_spent`](Self::drop_spent).
    pub fn handle(
        &mut self,
        ks: &mut Keyspace,
        server: &dyn ServerHooks,
        now_ms: u64,
        args: Vec<Bytes>,
    ) -> (Frame, After) {
        let mut args = args;
        let out = self.dispatch(ks, server, now_ms, &mut args);
        if args.capacity() > 0 {
            self.spent.push(args);
        }
        out
    }

    /// Frees the arguments of the requests run since the last call.
    pub fn drop_spent(&mut self) {
        self.spent.clear();
    }

    fn dispatch(
        &mut self,
        ks: &mut Keyspace,
        server: &dyn ServerHooks,
        now_ms: u64,
        args: &mut Vec<Bytes>,
    ) -> (Frame, After) {
        // Only a command run back to back with the one before reuses its
        // end time: any other path leaves the clock unset.
        let clock = self.clock.take();
        let Some(name) = args.first() else {
            return (Frame::error("ERR empty command"), After::Continue);
        };
        let mut buf = [0; command::MAX_NAME_LEN];
        let (name, spec) = match self.last_spec {
            Some(last) if last.name.as_bytes().eq_ignore_ascii_case(name) => {
                (last.name.as_bytes(), Some(last))
            }
            _ => {
                // A longer name is no command: treated as the empty one.
                let name = command::lower_name(name, &mut buf).unwrap_or_default();
                (name, command::lookup(name))
            }
        };
        let session_cmd = matches!(
            name,
            b"auth"
                | b"hello"
                | b"quit"
                | b"reset"
                | b"client"
                | b"select"
                | b"multi"
                | b"exec"
                | b"discard"
                | b"watch"
                | b"unwatch"
        );
        if !session_cmd && spec.is_some() {
            self.last_spec = spec;
        }
        if !self.client.authenticated
            && !matches!(name, b"auth" | b"hello" | b"quit" | b"reset")
            && spec.is_none_or(|s| s.flags & NOAUTH == 0)
        {
            if self.multi.is_some() {
                self.multi_failed = true;
            }
            return (Frame::error(NOAUTH_REPLY), After::Continue);
        }
        if self.multi.is_some()
            && !matches!(
                name,
                b"exec" | b"discard" | b"multi" | b"watch" | b"quit" | b"reset"
            )
        {
            return (
                self.queue(
                    spec.map(|s| (s.name, s.arity_ok(args.len()))),
                    session_cmd,
                    std::mem::take(args),
                ),
                After::Continue,
            );
        }
        if session_cmd {
            return self.session_command(ks, server, now_ms, name, args);
        }
        let Some(spec) = spec else {
            return (command::unknown_command(args), After::Continue);
        };
        if spec.flags & (WRITE | DENYOOM) == (WRITE | DENYOOM) && server.over_maxmemory() {
            return (
                Frame::error("OOM command not allowed when used memory > 'maxmemory'."),
                After::Continue,
            );
        }
        if spec.flags & WRITE != 0 {
            if let Some(why) = server.writes_blocked() {
                return (Frame::error(why), After::Continue);
            }
        }
        self.clock = clock;
        (
            self.run(ks, server, now_ms, args, Some(spec)),
            After::Continue,
        )
    }

    /// Forgets the last command's end time: the next command is timed from
    /// its own start (call when a new batch begins, so idle time between
    /// batches is not counted).
    pub fn reset_clock(&mut self) {
        self.clock = None;
    }

    /// Runs a command; `spec` is its table entry when already looked up.
    fn run(
        &mut self,
        ks: &mut Keyspace,
        server: &dyn ServerHooks,
        now_ms: u64,
        args: &mut [Bytes],
        spec: Option<&'static command::CommandSpec>,
    ) -> Frame {
        // `current` names the command once it is found (latency per command).
        self.client.current = "";
        let t0 = self.clock.take().unwrap_or_else(std::time::Instant::now);
        let mut ctx = Ctx {
            ks,
            now_ms,
            client: &mut self.client,
            server,
        };
        let reply = match spec {
            Some(spec) => command::execute_spec(&mut ctx, spec, args),
            None => command::execute(&mut ctx, args),
        };
        let t1 = std::time::Instant::now();
        let name = self.client.current;
        if !name.is_empty() {
            let took = t1.saturating_duration_since(t0);
            match &mut self.timings {
                // Table names are static: same address, same command.
                Some((n, local)) if std::ptr::eq(*n, name) => local.record(took),
                _ => {
                    self.flush_timings(server);
                    let mut local = LocalDurations::default();
                    local.record(took);
                    self.timings = Some((name, local));
                }
            }
        }
        self.clock = Some(t1);
        reply
    }

    /// Adds the commands' execution times gathered so far to the server's
    /// metrics. Call at the end of every batch: recording them one by one
    /// cost a few per cent of a pipelined GET.
    pub fn flush_timings(&mut self, server: &dyn ServerHooks) {
        if let Some((name, local)) = self.timings.take() {
            server.commands_done(name, &local);
        }
    }

    fn queue(
        &mut self,
        spec: Option<(&'static str, bool)>,
        session_cmd: bool,
        args: Vec<Bytes>,
    ) -> Frame {
        let error = match spec {
            None if !session_cmd => Some(command::unknown_command(&args)),
            Some((name, false)) => Some(command::wrong_arity(name)),
            _ => None,
        };
        if let Some(e) = error {
            self.multi_failed = true;
            return e;
        }
        if let Some(q) = self.multi.as_mut() {
            let bytes = args.iter().fold(0usize, |n, a| {
                n.saturating_add(a.len() + std::mem::size_of::<Bytes>())
            });
            self.multi_bytes = self.multi_bytes.saturating_add(bytes);
            q.push(args);
        }
        Frame::queued()
    }

    fn session_command(
        &mut self,
        ks: &mut Keyspace,
        server: &dyn ServerHooks,
        now_ms: u64,
        name: &[u8],
        a: &[Bytes],
    ) -> (Frame, After) {
        let reply = match name {
            b"quit" => return (Frame::ok(), After::Close),
            b"auth" => self.auth(server, &a[1..]),
            b"hello" => self.hello(server, &a[1..]),
            b"reset" => {
                self.discard_all(ks);
                self.client.resp = 2;
                self.client.name = None;
                self.client.authenticated = server.requirepass().is_none();
                Frame::simple("RESET")
            }
            b"select" => match a.get(1).map(|d| &d[..]) {
                _ if a.len() != 2 => command::wrong_arity("select"),
                Some(b"0") => Frame::ok(),
                Some(d) if crate::crdt::number::parse_i64(d).is_some() => {
                    Frame::error("ERR DB index is out of range")
                }
                _ => command::args::not_integer(),
            },
            b"client" => self.client_command(server, a),
            b"multi" => {
                if a.len() != 1 {
                    command::wrong_arity("multi")
                } else if self.multi.is_some() {
                    Frame::error("ERR MULTI calls can not be nested")
                } else {
                    self.multi = Some(Vec::new());
                    self.multi_bytes = 0;
                    self.multi_failed = false;
                    Frame::ok()
                }
            }
            b"discard" => {
                if self.multi.is_none() {
                    Frame::error("ERR DISCARD without MULTI")
                } else {
                    self.discard_all(ks);
                    Frame::ok()
                }
            }
            b"watch" => {
                if a.len() < 2 {
                    command::wrong_arity("watch")
                } else if self.multi.is_some() {
                    Frame::error("ERR WATCH inside MULTI is not allowed")
                } else {
                    for k in &a[1..] {
                        let v = ks.watch(k);
                        // An expired key is treated as changed when it expires:
                        // remember whether it was live.
                        self.watched.push((Bytes::copy_from_slice(k), v));
                    }
                    Frame::ok()
                }
            }
            b"unwatch" => {
                self.unwatch_all(ks);
                Frame::ok()
            }
            b"exec" => self.exec(ks, server, now_ms),
            _ => command::unknown_command(a),
        };
        (reply, After::Continue)
    }

    fn unwatch_all(&mut self, ks: &mut Keyspace) {
        for (k, _) in self.watched.drain(..) {
            ks.unwatch(&k);
        }
    }

    fn discard_all(&mut self, ks: &mut Keyspace) {
        self.multi = None;
        self.multi_bytes = 0;
        self.multi_failed = false;
        self.unwatch_all(ks);
    }

    fn exec(&mut self, ks: &mut Keyspace, server: &dyn ServerHooks, now_ms: u64) -> Frame {
        let Some(queued) = self.multi.take() else {
            return Frame::error("ERR EXEC without MULTI");
        };
        self.multi_bytes = 0;
        if self.multi_failed {
            self.discard_all(ks);
            return Frame::error("EXECABORT Transaction discarded because of previous errors.");
        }
        let touched = self.watched.iter().any(|(k, v)| ks.watch_version(k) != *v);
        self.unwatch_all(ks);
        if touched {
            return Frame::NullArray;
        }
        if queued.iter().any(|c| {
            command::lookup(&c[0]).is_some_and(|s| s.flags & (WRITE | DENYOOM) == (WRITE | DENYOOM))
        }) && server.over_maxmemory()
        {
            return Frame::error("EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.");
        }
        if let Some(why) = server.writes_blocked() {
            if queued
                .iter()
                .any(|c| command::lookup(&c[0]).is_some_and(|s| s.flags & WRITE != 0))
            {
                return Frame::error(format!("EXECABORT Transaction discarded because of: {why}"));
            }
        }
        ks.begin_txn();
        let replies = queued
            .into_iter()
            .map(|mut args| self.run(ks, server, now_ms, &mut args, None))
            .collect();
        ks.commit_txn();
        Frame::Array(replies)
    }

    /// Drops watches when the connection ends.
    pub fn close(&mut self, ks: &mut Keyspace) {
        self.discard_all(ks);
    }

    fn auth(&mut self, server: &dyn ServerHooks, a: &[Bytes]) -> Frame {
        let (user, pass) = match a {
            [p] => (None, p),
            [u, p] => (Some(u), p),
            _ => return command::wrong_arity("auth"),
        };
        let Some(required) = server.requirepass() else {
            return Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        };
        if user.is_some_and(|u| &u[..] != b"default") || pass[..] != *required.as_bytes() {
            return Frame::error("WRONGPASS invalid username-password pair or user is disabled.");
        }
        self.client.authenticated = true;
        Frame::ok()
    }

    fn hello(&mut self, server: &dyn ServerHooks, a: &[Bytes]) -> Frame {
        let mut i = 0;
        let mut resp = self.client.resp;
        if let Some(v) = a.first() {
            match crate::crdt::number::parse_i64(v) {
                Some(2) => resp = 2,
                Some(3) => resp = 3,
                Some(_) => return Frame::error("NOPROTO unsupported protocol version"),
                None => {
                    return Frame::error("ERR Protocol version is not an integer or out of range")
                }
            }
            i = 1;
        }
        while i < a.len() {
            if is(&a[i], "auth") && i + 2 < a.len() {
                let reply = self.auth(server, &a[i + 1..i + 3]);
                if matches!(reply, Frame::Error(_)) {
                    return reply;
                }
                i += 3;
            } else if is(&a[i], "setname") && i + 1 < a.len() {
                self.client.name = Some(Bytes::copy_from_slice(&a[i + 1]));
                i += 2;
            } else {
                return Frame::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&a[i])
                ));
            }
        }
        if !self.client.authenticated {
            return Frame::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        self.client.resp = resp;
        Frame::Map(vec![
            (Frame::bulk("server"), Frame::bulk("redis")),
            (Frame::bulk("version"), Frame::bulk("7.2.0")),
            (Frame::bulk("proto"), Frame::Integer(i64::from(resp))),
            (Frame::bulk("id"), Frame::Integer(self.client.id as i64)),
            (Frame::bulk("mode"), Frame::bulk("standalone")),
            (Frame::bulk("role"), Frame::bulk("master")),
            (Frame::bulk("modules"), Frame::Array(Vec::new())),
        ])
    }

    fn client_command(&mut self, server: &dyn ServerHooks, a: &[Bytes]) -> Frame {
        let Some(sub) = a.get(1) else {
            return command::wrong_arity("client");
        };
        if is(sub, "setname") && a.len() == 3 {
            if a[2].iter().any(|c| *c <= b' ' || *c > b'~') {
                return Frame::error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            // Copied: the argument shares the read buffer it arrived in.
            self.client.name = (!a[2].is_empty()).then(|| Bytes::copy_from_slice(&a[2]));
            Frame::ok()
        } else if is(sub, "getname") && a.len() == 2 {
            self.client.name.clone().map_or(Frame::Null, Frame::Bulk)
        } else if is(sub, "id") && a.len() == 2 {
            Frame::Integer(self.client.id as i64)
        } else if is(sub, "list") {
            Frame::verbatim_txt(server.client_list())
        } else if is(sub, "info") && a.len() == 2 {
            Frame::verbatim_txt(format!(
                "id={} addr={} name={} resp={}\n",
                self.client.id,
                self.client.addr,
                self.client
                    .name
                    .as_ref()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .unwrap_or_default(),
                self.client.resp
            ))
        } else if (is(sub, "setinfo") && a.len() == 4) || is(sub, "no-evict") || is(sub, "no-touch")
        {
            Frame::ok()
        } else {
            Frame::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::NoServer;
    use crate::crdt::{RegionId, State};

    fn run(s: &mut Session, ks: &mut Keyspace, words: &[&str]) -> Frame {
        let args = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        s.handle(ks, &NoServer, 1_000, args).0
    }

    /// The last command's table entry is reused only for the same name, in
    /// any case; other names, session commands among them, are looked up.
    #[test]
    fn a_repeated_command_is_recognised_in_any_case_and_others_still_are() {
        let mut ks = Keyspace::new(RegionId(1), State::new());
        let mut s = Session::new(ClientInfo {
            resp: 2,
            authenticated: true,
            ..ClientInfo::default()
        });
        assert_eq!(run(&mut s, &mut ks, &["SET", "k", "1"]), Frame::ok());
        assert_eq!(run(&mut s, &mut ks, &["sEt", "k", "2"]), Frame::ok());
        assert_eq!(run(&mut s, &mut ks, &["GET", "k"]), Frame::bulk("2"));
        assert_eq!(run(&mut s, &mut ks, &["incr", "k"]), Frame::Integer(3));
        assert_eq!(run(&mut s, &mut ks, &["MULTI"]), Frame::ok());
        assert_eq!(
            run(&mut s, &mut ks, &["set", "k", "5"]),
            Frame::simple("QUEUED")
        );
        assert_eq!(
            run(&mut s, &mut ks, &["exec"]),
            Frame::Array(vec![Frame::ok()])
        );
        assert_eq!(run(&mut s, &mut ks, &["get", "k"]), Frame::bulk("5"));
        for unknown in ["gets", "ge", ""] {
            let reply = run(&mut s, &mut ks, &[unknown, "k"]);
            assert!(
                matches!(&reply, Frame::Error(e) if e.starts_with("ERR unknown command")),
                "{unknown}: {reply:?}"
            );
        }
        assert_eq!(run(&mut s, &mut ks, &["GeT", "k"]), Frame::bulk("5"));
    }
}
