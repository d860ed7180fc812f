//! Server commands that need no connection state: PING, ECHO, TIME, INFO,
//! CONFIG, COMMAND, FLUSHALL/FLUSHDB, SHUTDOWN, BRAID.DIGEST, BRAID.VV,
//! BRAID.SNAPSHOT.

use bytes::Bytes;

use super::args::{is, syntax_error};
use super::{glob, table, CommandSpec, Ctx, ADMIN, FAST, NOAUTH, WRITE};
use crate::resp::Frame;

/// The server family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "ping", arity: -1, flags: FAST, keys: (0, 0, 0), run: ping },
    CommandSpec { name: "echo", arity: 2, flags: FAST, keys: (0, 0, 0), run: echo },
    CommandSpec { name: "time", arity: 1, flags: FAST, keys: (0, 0, 0), run: time },
    CommandSpec { name: "info", arity: -1, flags: 0, keys: (0, 0, 0), run: info },
    CommandSpec { name: "config", arity: -2, flags: ADMIN, keys: (0, 0, 0), run: config },
    CommandSpec { name: "command", arity: -1, flags: 0, keys: (0, 0, 0), run: command },
    CommandSpec { name: "flushall", arity: -1, flags: WRITE | ADMIN, keys: (0, 0, 0), run: flushall },
    CommandSpec { name: "flushdb", arity: -1, flags: WRITE, keys: (0, 0, 0), run: flushall },
    CommandSpec { name: "shutdown", arity: -1, flags: ADMIN | NOAUTH, keys: (0, 0, 0), run: shutdown },
    CommandSpec { name: "braid.digest", arity: 1, flags: FAST, keys: (0, 0, 0), run: braid_digest },
    CommandSpec { name: "braid.vv", arity: 1, flags: FAST, keys: (0, 0, 0), run: braid_vv },
    CommandSpec { name: "braid.snapshot", arity: 1, flags: ADMIN, keys: (0, 0, 0), run: braid_snapshot },
];

/// BRAID.SNAPSHOT: starts a snapshot of the current state in the background
/// (writes continue) and replies with its number at once; `INFO
/// persistence` shows `last_snapshot_id` reach it once the file is written
/// (`last_snapshot_file`, `last_snapshot_vv`, `last_snapshot_digest`), or
/// `last_failed_snapshot_id` if it failed. An error while another snapshot
/// runs. What `braid-backup create` uses.
fn braid_snapshot(ctx: &mut Ctx, _a: &mut [Bytes]) -> Frame {
    match ctx.server.request_snapshot() {
        Ok(id) => Frame::Integer(i64::try_from(id).unwrap_or(i64::MAX)),
        Err(e) => Frame::error(format!("ERR {e}")),
    }
}

/// BRAID.DIGEST: the state's convergence digest (hex). Regions that applied
/// the same operations have the same digest, whatever the order.
fn braid_digest(ctx: &mut Ctx, _a: &mut [Bytes]) -> Frame {
    Frame::bulk(format!("{:032x}", ctx.ks.state().digest()))
}

/// BRAID.VV: the version vector of applied operations, `id=seq` pairs by
/// region id, comma-separated (compare two regions' to see what one lacks).
fn braid_vv(ctx: &mut Ctx, _a: &mut [Bytes]) -> Frame {
    let vv = ctx.ks.state().version_vector();
    let text: Vec<String> = vv.iter().map(|(r, s)| format!("{}={s}", r.0)).collect();
    Frame::bulk(text.join(","))
}

fn ping(_ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match a.len() {
        1 => Frame::simple("PONG"),
        2 => Frame::Bulk(a[1].clone()),
        _ => super::wrong_arity("ping"),
    }
}

fn echo(_ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    Frame::Bulk(a[1].clone())
}

fn time(ctx: &mut Ctx, _a: &mut [Bytes]) -> Frame {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(ctx.now_ms * 1000, |d| d.as_micros() as u64);
    Frame::Array(vec![
        Frame::bulk((micros / 1_000_000).to_string()),
        Frame::bulk((micros % 1_000_000).to_string()),
    ])
}

fn info(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let section = a
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
    Frame::verbatim_txt(ctx.server.info(ctx.ks, section.as_deref()))
}

fn config(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let sub = &a[1];
    if is(sub, "get") {
        if a.len() < 3 {
            return Frame::error("ERR wrong number of arguments for 'config|get' command");
        }
        let mut pairs = Vec::new();
        for pattern in &a[2..] {
            for (k, v) in ctx.server.config_get(pattern) {
                if !pairs.iter().any(|(pk, _): &(String, String)| *pk == k) {
                    pairs.push((k, v));
                }
            }
        }
        Frame::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Frame::bulk(k), Frame::bulk(v)))
                .collect(),
        )
    } else if is(sub, "set") {
        if a.len() < 4 || a.len() % 2 != 0 {
            return Frame::error("ERR wrong number of arguments for 'config|set' command");
        }
        for pair in a[2..].chunks(2) {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            let value = String::from_utf8_lossy(&pair[1]).into_owned();
            if let Err(e) = ctx.server.config_set(&name, &value) {
                return Frame::error(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
                ));
            }
        }
        Frame::ok()
    } else if is(sub, "resetstat") || is(sub, "rewrite") {
        Frame::ok()
    } else {
        Frame::error(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        ))
    }
}

fn flag_names(flags: u32) -> Vec<Frame> {
    let mut out = Vec::new();
    for (bit, name) in [
        (super::WRITE, "write"),
        (super::READONLY, "readonly"),
        (super::DENYOOM, "denyoom"),
        (super::ADMIN, "admin"),
        (super::NOAUTH, "no_auth"),
        (super::FAST, "fast"),
    ] {
        if flags & bit != 0 {
            out.push(Frame::simple(name));
        }
    }
    out
}

fn describe(c: &CommandSpec) -> Frame {
    Frame::Array(vec![
        Frame::bulk(c.name),
        Frame::Integer(i64::from(c.arity)),
        Frame::Set(flag_names(c.flags)),
        Frame::Integer(i64::from(c.keys.0)),
        Frame::Integer(i64::from(c.keys.1)),
        Frame::Integer(i64::from(c.keys.2)),
        Frame::Set(Vec::new()),
        Frame::Set(Vec::new()),
        Frame::Set(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}

fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    table().iter().flat_map(|f| f.iter())
}

fn command(_ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let Some(sub) = a.get(1) else {
        return Frame::Array(all_commands().map(describe).collect());
    };
    if is(sub, "count") {
        Frame::Integer(all_commands().count() as i64)
    } else if is(sub, "info") {
        Frame::Array(
            a[2..]
                .iter()
                .map(|n| super::lookup(n).map_or(Frame::NullArray, describe))
                .collect(),
        )
    } else if is(sub, "docs") {
        let wanted: Vec<&'static CommandSpec> = if a.len() > 2 {
            a[2..].iter().filter_map(|n| super::lookup(n)).collect()
        } else {
            all_commands().collect()
        };
        Frame::Map(
            wanted
                .into_iter()
                .map(|c| {
                    (
                        Frame::bulk(c.name),
                        Frame::Map(vec![
                            (
                                Frame::bulk("summary"),
                                Frame::bulk(format!(
                                    "Braid implementation of {}",
                                    c.name.to_uppercase()
                                )),
                            ),
                            (Frame::bulk("since"), Frame::bulk("1.0.0")),
                            (Frame::bulk("group"), Frame::bulk("generic")),
                        ]),
                    )
                })
                .collect(),
        )
    } else if is(sub, "list") {
        Frame::Array(all_commands().map(|c| Frame::bulk(c.name)).collect())
    } else if is(sub, "getkeys") {
        syntax_error()
    } else {
        Frame::error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        ))
    }
}

fn flushall(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if a.len() > 2 || a.get(1).is_some_and(|m| !is(m, "async") && !is(m, "sync")) {
        return syntax_error();
    }
    ctx.ks.flush_all(ctx.now_ms);
    Frame::ok()
}

fn shutdown(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    for opt in &a[1..] {
        if !["nosave", "save", "now", "force", "abort"]
            .iter()
            .any(|o| is(opt, o))
        {
            return syntax_error();
        }
    }
    ctx.server.shutdown();
    Frame::ok()
}

/// Whether `name` matches a CONFIG GET pattern.
pub fn config_matches(pattern: &[u8], name: &str) -> bool {
    glob::matches_nocase(pattern, name.as_bytes())
}
