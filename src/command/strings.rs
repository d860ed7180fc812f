//! Strings and counters: GET, SET and friends, INCR family, APPEND, ranges.

use bytes::Bytes;

use super::args::{self, at, is, syntax_error};
use super::{CommandSpec, Ctx, DENYOOM, FAST, READONLY, WRITE};
use crate::crdt::number::{parse_f64, parse_i64};
use crate::crdt::string::StringContent;
use crate::crdt::{Content, Intent, TtlChange, WriteError};
use crate::resp::Frame;

/// The string family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "get", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: get },
    CommandSpec { name: "set", arity: -3, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: set },
    CommandSpec { name: "setnx", arity: 3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: setnx },
    CommandSpec { name: "setex", arity: 4, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: setex },
    CommandSpec { name: "psetex", arity: 4, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: psetex },
    CommandSpec { name: "mget", arity: -2, flags: READONLY | FAST, keys: (1, -1, 1), run: mget },
    CommandSpec { name: "mset", arity: -3, flags: WRITE | DENYOOM, keys: (1, -1, 2), run: mset },
    CommandSpec { name: "msetnx", arity: -3, flags: WRITE | DENYOOM, keys: (1, -1, 2), run: msetnx },
    CommandSpec { name: "append", arity: 3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: append },
    CommandSpec { name: "strlen", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: strlen },
    CommandSpec { name: "getrange", arity: 4, flags: READONLY, keys: (1, 1, 1), run: getrange },
    CommandSpec { name: "substr", arity: 4, flags: READONLY, keys: (1, 1, 1), run: getrange },
    CommandSpec { name: "setrange", arity: 4, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: setrange },
    CommandSpec { name: "getset", arity: 3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: getset },
    CommandSpec { name: "getdel", arity: 2, flags: WRITE | FAST, keys: (1, 1, 1), run: getdel },
    CommandSpec { name: "getex", arity: -2, flags: WRITE | FAST, keys: (1, 1, 1), run: getex },
    CommandSpec { name: "incr", arity: 2, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: incr },
    CommandSpec { name: "decr", arity: 2, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: decr },
    CommandSpec { name: "incrby", arity: 3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: incrby },
    CommandSpec { name: "decrby", arity: 3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: decrby },
    CommandSpec { name: "incrbyfloat", arity: 3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: incrbyfloat },
];

/// The reply for a refused write.
pub fn write_error(e: WriteError) -> Frame {
    Frame::error(e.to_string())
}

/// Reads a string key: `Ok(None)` if absent, WRONGTYPE for another type.
pub fn read_string(ctx: &Ctx, key: &[u8]) -> Result<Option<Bytes>, Frame> {
    read_string_with(ctx, key, |s| s.get().0)
}

/// Reads a string key through `f`, which picks what the caller needs of it
/// (a reply copy, an integer) without cloning the stored value.
fn read_string_with<R>(
    ctx: &Ctx,
    key: &[u8],
    f: impl FnOnce(&StringContent) -> R,
) -> Result<Option<R>, Frame> {
    match ctx.ks.get(key, ctx.now_ms) {
        None => Ok(None),
        Some(Content::String(s)) => Ok(Some(f(s))),
        Some(_) => Err(write_error(WriteError::WrongType)),
    }
}

fn get(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_string_with(ctx, &a[1], StringContent::reply_value) {
        Ok(Some(v)) => Frame::Bulk(v),
        Ok(None) => Frame::Null,
        Err(e) => e,
    }
}

/// Parses an expiry option value into an absolute deadline (Unix ms).
fn deadline(ctx: &Ctx, unit: &[u8], value: &[u8], cmd: &str) -> Result<u64, Frame> {
    let invalid = || Frame::error(format!("ERR invalid expire time in '{cmd}' command"));
    let n = args::int(value)?;
    if n <= 0 {
        return Err(invalid());
    }
    let n = n as u64;
    let at = if is(unit, "ex") {
        n.checked_mul(1000)
            .and_then(|ms| ms.checked_add(ctx.now_ms))
    } else if is(unit, "px") {
        n.checked_add(ctx.now_ms)
    } else if is(unit, "exat") {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    at.filter(|&t| t <= i64::MAX as u64).ok_or_else(invalid)
}

fn set(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let (mut nx, mut xx, mut get_old, mut ttl) = (false, false, false, TtlChange::Persist);
    let mut ttl_given = false;
    // The expiry option's index: its value is read once every option has
    // parsed, as Redis does (`SET k v PX NX 10` is a syntax error).
    let mut expiry = None;
    let mut i = 3;
    while i < a.len() {
        let opt = &a[i];
        if is(opt, "nx") && !xx {
            nx = true;
        } else if is(opt, "xx") && !nx {
            xx = true;
        } else if is(opt, "get") {
            get_old = true;
        } else if is(opt, "keepttl") && !ttl_given {
            ttl = TtlChange::Keep;
            ttl_given = true;
        } else if ["ex", "px", "exat", "pxat"].iter().any(|u| is(opt, u))
            && !ttl_given
            && i + 1 < a.len()
        {
            expiry = Some(i);
            ttl_given = true;
            i += 1;
        } else {
            return syntax_error();
        }
        i += 1;
    }
    if let Some(i) = expiry {
        match deadline(ctx, &a[i], &a[i + 1], "set") {
            Ok(at) => ttl = TtlChange::ExpireAt(at),
            Err(e) => return e,
        }
    }
    let old = if get_old {
        match read_string(ctx, &a[1]) {
            Ok(v) => v,
            Err(e) => return e,
        }
    } else {
        None
    };
    // Looked up only when it decides something: a plain SET overwrites.
    let exists = (nx || xx) && ctx.ks.get(&a[1], ctx.now_ms).is_some();
    if (nx && exists) || (xx && !exists) {
        return if get_old {
            old.map_or(Frame::Null, Frame::Bulk)
        } else {
            Frame::Null
        };
    }
    if let Err(e) = ctx.write(
        args::take(a, 1),
        Intent::Set {
            value: args::take(a, 2),
            ttl,
        },
    ) {
        return e;
    }
    if get_old {
        old.map_or(Frame::Null, Frame::Bulk)
    } else {
        Frame::ok()
    }
}

fn setnx(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if ctx.ks.get(&a[1], ctx.now_ms).is_some() {
        return Frame::Integer(0);
    }
    match ctx.write(
        at(a, 1),
        Intent::Set {
            value: at(a, 2),
            ttl: TtlChange::Persist,
        },
    ) {
        Ok(_) => Frame::Integer(1),
        Err(e) => e,
    }
}

fn setex_common(ctx: &mut Ctx, a: &[Bytes], unit: &str, cmd: &str) -> Frame {
    let at_ms = match deadline(ctx, unit.as_bytes(), &a[2], cmd) {
        Ok(t) => t,
        Err(e) => return e,
    };
    match ctx.write(
        at(a, 1),
        Intent::Set {
            value: at(a, 3),
            ttl: TtlChange::ExpireAt(at_ms),
        },
    ) {
        Ok(_) => Frame::ok(),
        Err(e) => e,
    }
}

fn setex(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    setex_common(ctx, a, "ex", "setex")
}

fn psetex(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    setex_common(ctx, a, "px", "psetex")
}

fn mget(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    Frame::Array(
        a[1..]
            .iter()
            .map(|k| match ctx.ks.get(k, ctx.now_ms) {
                Some(Content::String(s)) => Frame::Bulk(s.reply_value()),
                _ => Frame::Null,
            })
            .collect(),
    )
}

fn mset_pairs(ctx: &mut Ctx, a: &[Bytes]) -> Result<(), Frame> {
    for pair in a[1..].chunks(2) {
        ctx.write(
            pair[0].clone(),
            Intent::Set {
                value: pair[1].clone(),
                ttl: TtlChange::Persist,
            },
        )?;
    }
    Ok(())
}

fn mset(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if a.len() % 2 == 0 {
        return super::wrong_arity("mset");
    }
    match mset_pairs(ctx, a) {
        Ok(()) => Frame::ok(),
        Err(e) => e,
    }
}

fn msetnx(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if a.len() % 2 == 0 {
        return super::wrong_arity("msetnx");
    }
    if a[1..]
        .chunks(2)
        .any(|p| ctx.ks.get(&p[0], ctx.now_ms).is_some())
    {
        return Frame::Integer(0);
    }
    match mset_pairs(ctx, a) {
        Ok(()) => Frame::Integer(1),
        Err(e) => e,
    }
}

fn append(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if let Err(e) = ctx.write(at(a, 1), Intent::Append(at(a, 2))) {
        return e;
    }
    strlen(ctx, a)
}

fn strlen(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_string(ctx, &a[1]) {
        Ok(v) => Frame::Integer(v.map_or(0, |v| v.len() as i64)),
        Err(e) => e,
    }
}

fn getrange(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let (start, end) = match (args::int(&a[2]), args::int(&a[3])) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return args::not_integer(),
    };
    let v = match read_string(ctx, &a[1]) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => return e,
    };
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Frame::bulk(Bytes::new());
    }
    let s = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let e = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    if s > e || len == 0 {
        return Frame::bulk(Bytes::new());
    }
    Frame::Bulk(v.slice(s as usize..=e as usize))
}

fn setrange(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let offset = match args::int(&a[2]) {
        Ok(o) if o >= 0 => o as usize,
        Ok(_) => return Frame::error("ERR offset is out of range"),
        Err(e) => return e,
    };
    if let Err(e) = ctx.write(
        at(a, 1),
        Intent::SetRange {
            offset,
            data: at(a, 3),
        },
    ) {
        return e;
    }
    strlen(ctx, a)
}

fn getset(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let old = match read_string(ctx, &a[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match ctx.write(
        at(a, 1),
        Intent::Set {
            value: at(a, 2),
            ttl: TtlChange::Persist,
        },
    ) {
        Ok(_) => old.map_or(Frame::Null, Frame::Bulk),
        Err(e) => e,
    }
}

fn getdel(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let old = match read_string(ctx, &a[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if old.is_some() {
        if let Err(e) = ctx.write(at(a, 1), Intent::Del) {
            return e;
        }
    }
    old.map_or(Frame::Null, Frame::Bulk)
}

fn getex(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    // PERSIST, or the expiry option's index; its value is validated only
    // once the key is known to hold a string, as Redis does (a missing key
    // answers nil and another type WRONGTYPE, whatever the time says).
    let (mut persist, mut expiry): (bool, Option<usize>) = (false, None);
    let mut i = 2;
    while i < a.len() {
        let opt = &a[i];
        if is(opt, "persist") && !persist && expiry.is_none() {
            persist = true;
        } else if ["ex", "px", "exat", "pxat"].iter().any(|u| is(opt, u))
            && !persist
            && expiry.is_none()
            && i + 1 < a.len()
        {
            expiry = Some(i);
            i += 1;
        } else {
            return syntax_error();
        }
        i += 1;
    }
    let v = match read_string(ctx, &a[1]) {
        Ok(Some(v)) => v,
        Ok(None) => return Frame::Null,
        Err(e) => return e,
    };
    let change = match expiry {
        Some(i) => match deadline(ctx, &a[i], &a[i + 1], "getex") {
            Ok(t) => Some(Intent::ExpireAt(t)),
            Err(e) => return e,
        },
        None if persist => Some(Intent::Persist),
        None => None,
    };
    if let Some(intent) = change {
        if let Err(e) = ctx.write(at(a, 1), intent) {
            return e;
        }
    }
    Frame::Bulk(v)
}

fn incr_by(ctx: &mut Ctx, a: &[Bytes], by: i64) -> Frame {
    if let Err(e) = ctx.write(at(a, 1), Intent::IncrBy(by)) {
        return e;
    }
    let reply = |s: &StringContent| {
        s.with_value(|v| match parse_i64(v) {
            Some(n) => Frame::Integer(n),
            // A merged sum beyond 64 bits is shown as the exact decimal.
            None => Frame::Bulk(Bytes::copy_from_slice(v)),
        })
    };
    match read_string_with(ctx, &a[1], reply) {
        Ok(Some(f)) => f,
        Ok(None) => Frame::Integer(0),
        Err(e) => e,
    }
}

fn incr(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    incr_by(ctx, a, 1)
}

fn decr(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    incr_by(ctx, a, -1)
}

fn incrby(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match args::int(&a[2]) {
        Ok(n) => incr_by(ctx, a, n),
        Err(e) => e,
    }
}

fn decrby(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match args::int(&a[2]) {
        Ok(n) if n != i64::MIN => incr_by(ctx, a, -n),
        Ok(_) => Frame::error("ERR decrement would overflow"),
        Err(e) => e,
    }
}

fn incrbyfloat(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    // Redis' order: the key's type, its value, then the increment. An
    // infinite value or increment parses as a float but gives an infinite
    // sum, refused as such.
    let infinite = |b: &[u8]| parse_f64(b).is_some_and(f64::is_infinite);
    let mut overflow = false;
    match read_string(ctx, &a[1]) {
        Err(e) => return e,
        Ok(Some(v)) if args::decimal(&v).is_err() => {
            if !infinite(&v) {
                return args::not_float();
            }
            overflow = true;
        }
        Ok(_) => {}
    }
    let d = match args::decimal(&a[2]) {
        Ok(d) => d,
        Err(_) if infinite(&a[2]) => return write_error(WriteError::FloatOverflow),
        Err(e) => return e,
    };
    if overflow {
        return write_error(WriteError::FloatOverflow);
    }
    if let Err(e) = ctx.write(at(a, 1), Intent::IncrByFloat(d)) {
        return e;
    }
    match read_string(ctx, &a[1]) {
        Ok(v) => Frame::Bulk(v.unwrap_or_default()),
        Err(e) => e,
    }
}
