//! Keys: DEL, EXISTS, TYPE, KEYS, SCAN, RANDOMKEY, expiry, RENAME, DBSIZE.

use bytes::Bytes;

use super::args::{self, at, is, syntax_error};
use super::strings::write_error;
use super::{glob, CommandSpec, Ctx, FAST, READONLY, WRITE};
use crate::crdt::{Content, Intent, TtlChange};
use crate::resp::Frame;

/// The key family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "del", arity: -2, flags: WRITE, keys: (1, -1, 1), run: del },
    CommandSpec { name: "unlink", arity: -2, flags: WRITE | FAST, keys: (1, -1, 1), run: del },
    CommandSpec { name: "exists", arity: -2, flags: READONLY | FAST, keys: (1, -1, 1), run: exists },
    CommandSpec { name: "touch", arity: -2, flags: READONLY | FAST, keys: (1, -1, 1), run: exists },
    CommandSpec { name: "type", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: key_type },
    CommandSpec { name: "keys", arity: 2, flags: READONLY, keys: (0, 0, 0), run: keys },
    CommandSpec { name: "scan", arity: -2, flags: READONLY, keys: (0, 0, 0), run: scan },
    CommandSpec { name: "randomkey", arity: 1, flags: READONLY, keys: (0, 0, 0), run: randomkey },
    CommandSpec { name: "dbsize", arity: 1, flags: READONLY | FAST, keys: (0, 0, 0), run: dbsize },
    CommandSpec { name: "expire", arity: -3, flags: WRITE | FAST, keys: (1, 1, 1), run: expire },
    CommandSpec { name: "pexpire", arity: -3, flags: WRITE | FAST, keys: (1, 1, 1), run: pexpire },
    CommandSpec { name: "expireat", arity: -3, flags: WRITE | FAST, keys: (1, 1, 1), run: expireat },
    CommandSpec { name: "pexpireat", arity: -3, flags: WRITE | FAST, keys: (1, 1, 1), run: pexpireat },
    CommandSpec { name: "ttl", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: ttl },
    CommandSpec { name: "pttl", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: pttl },
    CommandSpec { name: "expiretime", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: expiretime },
    CommandSpec { name: "pexpiretime", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: pexpiretime },
    CommandSpec { name: "persist", arity: 2, flags: WRITE | FAST, keys: (1, 1, 1), run: persist },
    CommandSpec { name: "rename", arity: 3, flags: WRITE, keys: (1, 2, 1), run: rename },
    CommandSpec { name: "renamenx", arity: 3, flags: WRITE | FAST, keys: (1, 2, 1), run: renamenx },
];

fn live(ctx: &Ctx, key: &[u8]) -> bool {
    ctx.ks.get(key, ctx.now_ms).is_some()
}

fn del(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let mut n = 0;
    for k in &a[1..] {
        match ctx.ks.write(k.clone(), Intent::Del, ctx.now_ms) {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => return write_error(e),
        }
    }
    Frame::Integer(n)
}

fn exists(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    Frame::Integer(a[1..].iter().filter(|k| live(ctx, k)).count() as i64)
}

fn key_type(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    Frame::simple(
        ctx.ks
            .get(&a[1], ctx.now_ms)
            .map_or("none", |c| c.key_type().name()),
    )
}

fn keys(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let now = ctx.now_ms;
    let matched: Vec<Frame> = ctx
        .ks
        .state()
        .entries()
        .filter(|(k, e)| e.is_live(now) && glob::matches(&a[1], k))
        .map(|(k, _)| Frame::Bulk(k.clone()))
        .collect();
    Frame::Array(matched)
}

fn scan(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let cursor = match args::positive(&a[1], "cursor") {
        Ok(c) => c,
        Err(_) => return Frame::error("ERR invalid cursor"),
    };
    let (mut pattern, mut count, mut kind): (Option<Bytes>, usize, Option<Bytes>) =
        (None, 10, None);
    let mut i = 2;
    while i < a.len() {
        if i + 1 >= a.len() {
            return syntax_error();
        }
        if is(&a[i], "match") {
            pattern = Some(a[i + 1].clone());
        } else if is(&a[i], "count") {
            match args::int(&a[i + 1]) {
                Ok(c) if c >= 1 => count = c as usize,
                Ok(_) => return syntax_error(),
                Err(e) => return e,
            }
        } else if is(&a[i], "type") {
            kind = Some(a[i + 1].clone());
        } else {
            return syntax_error();
        }
        i += 2;
    }
    let now = ctx.now_ms;
    let state = ctx.ks.state();
    // The cursor walks the keyspace's shards: every key present for the
    // whole scan is returned at least once, as Redis guarantees.
    let shards = state.shard_count() as u64;
    let mut next = cursor.min(shards);
    let mut out = Vec::new();
    while next < shards && out.len() < count {
        for (k, e) in state.shard_entries(next as usize) {
            if !e.is_live(now) {
                continue;
            }
            if pattern.as_ref().is_some_and(|p| !glob::matches(p, k)) {
                continue;
            }
            if let Some(t) = &kind {
                let name = e.visible().map_or("none", |c| c.key_type().name());
                if !t.eq_ignore_ascii_case(name.as_bytes()) {
                    continue;
                }
            }
            out.push(Frame::Bulk(k.clone()));
        }
        next += 1;
    }
    let next = if next >= shards { 0 } else { next };
    Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(out)])
}

fn randomkey(ctx: &mut Ctx, _a: &mut [Bytes]) -> Frame {
    let now = ctx.now_ms;
    let state = ctx.ks.state();
    if state.is_empty() {
        return Frame::Null;
    }
    let shards = state.shard_count();
    let start = fastrand::usize(0..shards.max(1));
    for i in 0..shards {
        let live: Vec<&Bytes> = state
            .shard_entries((start + i) % shards)
            .filter(|(_, e)| e.is_live(now))
            .map(|(k, _)| k)
            .collect();
        if !live.is_empty() {
            return Frame::Bulk(live[fastrand::usize(0..live.len())].clone());
        }
    }
    Frame::Null
}

fn dbsize(ctx: &mut Ctx, _a: &mut [Bytes]) -> Frame {
    Frame::Integer(ctx.ks.len() as i64)
}

/// EXPIRE family: `unit_ms` converts the argument to ms; `absolute` for *AT.
fn expire_generic(ctx: &mut Ctx, a: &[Bytes], unit_ms: u64, absolute: bool) -> Frame {
    // Redis checks the options before the time.
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[3..] {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            return Frame::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Frame::error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Frame::error("ERR GT and LT options at the same time are not compatible");
    }
    let n = match args::int(&a[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let cmd = ctx.client.current;
    let invalid = || Frame::error(format!("ERR invalid expire time in '{cmd}' command"));
    let Some(ms) = n.checked_mul(unit_ms as i64) else {
        return invalid();
    };
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(ctx.now_ms as i64)
    };
    let Some(at) = at else { return invalid() };
    let Some(entry) = ctx
        .ks
        .state()
        .entry(&a[1])
        .filter(|e| e.is_live(ctx.now_ms))
    else {
        return Frame::Integer(0);
    };
    let current = entry.deadline().map(|d| d.at_ms as i64);
    let allowed = match current {
        None => !xx && !gt,
        Some(c) => !nx && (!gt || at > c) && (!lt || at < c),
    };
    if !allowed {
        return Frame::Integer(0);
    }
    let at = at.max(0) as u64;
    match ctx.ks.write(at_key(a), Intent::ExpireAt(at), ctx.now_ms) {
        Ok(_) => Frame::Integer(1),
        Err(e) => write_error(e),
    }
}

fn at_key(a: &[Bytes]) -> Bytes {
    at(a, 1)
}

fn expire(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    expire_generic(ctx, a, 1000, false)
}
fn pexpire(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    expire_generic(ctx, a, 1, false)
}
fn expireat(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    expire_generic(ctx, a, 1000, true)
}
fn pexpireat(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    expire_generic(ctx, a, 1, true)
}

/// -2: no key; -1: no deadline; otherwise `f(deadline)`.
fn ttl_generic(ctx: &mut Ctx, a: &[Bytes], f: impl Fn(u64, u64) -> i64) -> Frame {
    match ctx
        .ks
        .state()
        .entry(&a[1])
        .filter(|e| e.is_live(ctx.now_ms))
    {
        None => Frame::Integer(-2),
        Some(e) => match e.deadline() {
            None => Frame::Integer(-1),
            Some(d) => Frame::Integer(f(d.at_ms, ctx.now_ms)),
        },
    }
}

fn ttl(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    ttl_generic(ctx, a, |at, now| ((at - now + 500) / 1000) as i64)
}
fn pttl(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    ttl_generic(ctx, a, |at, now| (at - now) as i64)
}
fn expiretime(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    ttl_generic(ctx, a, |at, _| (at / 1000) as i64)
}
fn pexpiretime(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    ttl_generic(ctx, a, |at, _| at as i64)
}

fn persist(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match ctx.ks.write(at(a, 1), Intent::Persist, ctx.now_ms) {
        Ok(written) => Frame::Integer(i64::from(written)),
        Err(e) => write_error(e),
    }
}

/// The writes that recreate `content` under another key.
fn recreate(content: &Content) -> Vec<Intent> {
    match content {
        Content::String(s) => vec![Intent::Set {
            value: s.get().0,
            ttl: TtlChange::Persist,
        }],
        Content::Set(s) => vec![Intent::SAdd(s.members().cloned().collect())],
        Content::Hash(h) => vec![Intent::HSet(
            h.iter().map(|(k, v)| (k.clone(), v)).collect(),
        )],
        Content::ZSet(z) => vec![Intent::ZAdd(
            z.iter().map(|(m, s)| (m.clone(), s)).collect(),
        )],
        Content::List(l) => vec![Intent::RPush(l.iter().map(|(_, v)| v.clone()).collect())],
    }
}

/// RENAME: read, write the new key, observed-remove the old one; one
/// transaction so that regions see it whole.
fn rename_generic(ctx: &mut Ctx, a: &[Bytes], nx: bool) -> Frame {
    let now = ctx.now_ms;
    let Some(entry) = ctx.ks.state().entry(&a[1]).filter(|e| e.is_live(now)) else {
        return Frame::error("ERR no such key");
    };
    let Some(content) = entry.visible() else {
        return Frame::error("ERR no such key");
    };
    let deadline = entry.deadline();
    let writes = recreate(content);
    if a[1] == a[2] {
        return if nx { Frame::Integer(0) } else { Frame::ok() };
    }
    if nx && live(ctx, &a[2]) {
        return Frame::Integer(0);
    }
    ctx.ks.begin_txn();
    let result = (|| {
        ctx.ks.write(at(a, 2), Intent::Del, now)?;
        for w in writes {
            ctx.ks.write(at(a, 2), w, now)?;
        }
        if let Some(d) = deadline {
            ctx.ks.write(at(a, 2), Intent::ExpireAt(d.at_ms), now)?;
        }
        ctx.ks.write(at(a, 1), Intent::Del, now)
    })();
    ctx.ks.commit_txn();
    match result {
        Ok(_) if nx => Frame::Integer(1),
        Ok(_) => Frame::ok(),
        Err(e) => write_error(e),
    }
}

fn rename(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    rename_generic(ctx, a, false)
}

fn renamenx(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    rename_generic(ctx, a, true)
}
