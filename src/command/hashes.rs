//! Hashes: HSET and friends, counters in fields (HINCRBY, HINCRBYFLOAT),
//! random picks (HRANDFIELD) and HSCAN.
//!
//! A hash is an add-wins map of fields whose values merge like strings
//! (last write wins, concurrent increments add up), so a field's visible
//! value is read back from the CRDT after an increment.

use bytes::Bytes;
use indexmap::IndexMap;

use super::args::{self, at, is, syntax_error};
use super::sets::{distinct, rand_count, rand_indices, scan_cursor, scan_reply, ScanOpts};
use super::strings::write_error;
use super::{CommandSpec, Ctx, DENYOOM, FAST, READONLY, WRITE};
use crate::crdt::hash::HashContent;
use crate::crdt::number::{parse_f64, parse_i64};
use crate::crdt::{Content, Intent, WriteError};
use crate::resp::Frame;

/// The hash family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "hset", arity: -4, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: hset },
    CommandSpec { name: "hsetnx", arity: 4, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: hsetnx },
    CommandSpec { name: "hmset", arity: -4, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: hmset },
    CommandSpec { name: "hget", arity: 3, flags: READONLY | FAST, keys: (1, 1, 1), run: hget },
    CommandSpec { name: "hmget", arity: -3, flags: READONLY | FAST, keys: (1, 1, 1), run: hmget },
    CommandSpec { name: "hgetall", arity: 2, flags: READONLY, keys: (1, 1, 1), run: hgetall },
    CommandSpec { name: "hdel", arity: -3, flags: WRITE | FAST, keys: (1, 1, 1), run: hdel },
    CommandSpec { name: "hexists", arity: 3, flags: READONLY | FAST, keys: (1, 1, 1), run: hexists },
    CommandSpec { name: "hlen", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: hlen },
    CommandSpec { name: "hstrlen", arity: 3, flags: READONLY | FAST, keys: (1, 1, 1), run: hstrlen },
    CommandSpec { name: "hkeys", arity: 2, flags: READONLY, keys: (1, 1, 1), run: hkeys },
    CommandSpec { name: "hvals", arity: 2, flags: READONLY, keys: (1, 1, 1), run: hvals },
    CommandSpec { name: "hincrby", arity: 4, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: hincrby },
    CommandSpec { name: "hincrbyfloat", arity: 4, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: hincrbyfloat },
    CommandSpec { name: "hrandfield", arity: -2, flags: READONLY, keys: (1, 1, 1), run: hrandfield },
    CommandSpec { name: "hscan", arity: -3, flags: READONLY, keys: (1, 1, 1), run: hscan },
];

/// Reads a hash key without copying it: `Ok(None)` if absent, WRONGTYPE
/// for another type.
fn read_hash<'a>(ctx: &'a Ctx<'_>, key: &[u8]) -> Result<Option<&'a HashContent>, Frame> {
    match ctx.ks.get(key, ctx.now_ms) {
        None => Ok(None),
        Some(Content::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(write_error(WriteError::WrongType)),
    }
}

/// Field/value pairs with each field once, holding its last value (Redis
/// applies them in order): one operation must not write a field twice.
/// The arguments are moved out (see [`args::take`]).
fn distinct_pairs(pairs: &mut [Bytes]) -> Vec<(Bytes, Bytes)> {
    if let [field, value] = pairs {
        return vec![(std::mem::take(field), std::mem::take(value))];
    }
    let mut map: IndexMap<Bytes, Bytes, foldhash::fast::RandomState> =
        IndexMap::with_capacity_and_hasher(pairs.len() / 2, Default::default());
    for p in pairs.chunks_exact_mut(2) {
        map.insert(std::mem::take(&mut p[0]), std::mem::take(&mut p[1]));
    }
    map.into_iter().collect()
}

/// HSET / HMSET: writes the pairs, returns how many fields are new.
fn set_pairs(ctx: &mut Ctx, a: &mut [Bytes]) -> Result<i64, Frame> {
    if a.len() % 2 != 0 {
        return Err(super::wrong_arity(ctx.client.current));
    }
    let pairs = distinct_pairs(&mut a[2..]);
    // New fields are counted from the length, not looked up one by one:
    // the lookups cost a fifth of HSET's time under the keyspace turn, and
    // a write that only adds changes the length by exactly the new ones.
    let before = read_hash(ctx, &a[1])?.map_or(0, HashContent::len);
    ctx.write(at(a, 1), Intent::HSet(pairs))?;
    let after = read_hash(ctx, &a[1])?.map_or(0, HashContent::len);
    Ok(after.saturating_sub(before) as i64)
}

fn hset(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match set_pairs(ctx, a) {
        Ok(n) => Frame::Integer(n),
        Err(e) => e,
    }
}

fn hmset(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match set_pairs(ctx, a) {
        Ok(_) => Frame::ok(),
        Err(e) => e,
    }
}

fn hsetnx(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(Some(h)) if h.contains(&a[2]) => return Frame::Integer(0),
        Ok(_) => {}
        Err(e) => return e,
    }
    match ctx.write(at(a, 1), Intent::HSet(vec![(at(a, 2), at(a, 3))])) {
        Ok(_) => Frame::Integer(1),
        Err(e) => e,
    }
}

fn hget(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => h
            .and_then(|h| h.get(&a[2]))
            .map_or(Frame::Null, |(v, _)| Frame::Bulk(v)),
        Err(e) => e,
    }
}

fn hmget(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => Frame::Array(
            a[2..]
                .iter()
                .map(|f| {
                    h.and_then(|h| h.get(f))
                        .map_or(Frame::Null, |(v, _)| Frame::Bulk(v))
                })
                .collect(),
        ),
        Err(e) => e,
    }
}

fn hgetall(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => Frame::Map(h.map_or_else(Vec::new, |h| {
            h.iter()
                .map(|(f, v)| (Frame::Bulk(f.clone()), Frame::Bulk(v)))
                .collect()
        })),
        Err(e) => e,
    }
}

fn hdel(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let fields = distinct(&mut a[2..]);
    let removed = match read_hash(ctx, &a[1]) {
        Ok(Some(h)) => fields.iter().filter(|f| h.contains(f)).count(),
        Ok(None) => 0,
        Err(e) => return e,
    };
    if removed == 0 {
        return Frame::Integer(0);
    }
    match ctx.write(at(a, 1), Intent::HDel(fields)) {
        Ok(_) => Frame::Integer(removed as i64),
        Err(e) => e,
    }
}

fn hexists(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => Frame::Integer(i64::from(h.is_some_and(|h| h.contains(&a[2])))),
        Err(e) => e,
    }
}

fn hlen(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => Frame::Integer(h.map_or(0, |h| h.len() as i64)),
        Err(e) => e,
    }
}

fn hstrlen(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => Frame::Integer(
            h.and_then(|h| h.get(&a[2]))
                .map_or(0, |(v, _)| v.len() as i64),
        ),
        Err(e) => e,
    }
}

fn hkeys(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => Frame::Array(h.map_or_else(Vec::new, |h| {
            h.iter().map(|(f, _)| Frame::Bulk(f.clone())).collect()
        })),
        Err(e) => e,
    }
}

fn hvals(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_hash(ctx, &a[1]) {
        Ok(h) => Frame::Array(h.map_or_else(Vec::new, |h| {
            h.iter().map(|(_, v)| Frame::Bulk(v)).collect()
        })),
        Err(e) => e,
    }
}

/// The visible value of a field after an increment wrote it.
fn field_after_write(ctx: &Ctx, a: &[Bytes]) -> Result<Bytes, Frame> {
    Ok(read_hash(ctx, &a[1])?
        .and_then(|h| h.get(&a[2]))
        .map(|(v, _)| v)
        .unwrap_or_default())
}

fn hincrby(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    // Redis checks the increment before the key's type.
    let by = match args::int(&a[3]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if let Err(e) = ctx.write(at(a, 1), Intent::HIncrBy(at(a, 2), by)) {
        return e;
    }
    match field_after_write(ctx, a) {
        Ok(v) => match parse_i64(&v) {
            Some(n) => Frame::Integer(n),
            // A merged sum beyond 64 bits is shown as the exact decimal.
            None => Frame::Bulk(v),
        },
        Err(e) => e,
    }
}

fn hincrbyfloat(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let by = match args::decimal(&a[3]) {
        Ok(d) => d,
        // Infinities parse as floats but are refused with their own text
        // (so is a finite literal beyond the f64 range: it reads as one).
        Err(_) if parse_f64(&a[3]).is_some_and(f64::is_infinite) => {
            return Frame::error("ERR value is NaN or Infinity");
        }
        Err(e) => return e,
    };
    // A field holding an infinity parses as a float, as in Redis, and the
    // sum is refused as infinite.
    let field = match read_hash(ctx, &a[1]) {
        Ok(h) => h.and_then(|h| h.get(&a[2])).map(|(v, _)| v),
        Err(e) => return e,
    };
    if field
        .is_some_and(|v| args::decimal(&v).is_err() && parse_f64(&v).is_some_and(f64::is_infinite))
    {
        return write_error(WriteError::FloatOverflow);
    }
    if let Err(e) = ctx.write(at(a, 1), Intent::HIncrByFloat(at(a, 2), by)) {
        return e;
    }
    match field_after_write(ctx, a) {
        Ok(v) => Frame::Bulk(v),
        Err(e) => e,
    }
}

fn hrandfield(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if a.len() == 2 {
        return match read_hash(ctx, &a[1]) {
            Ok(Some(h)) if !h.is_empty() => h
                .field_at(fastrand::usize(..h.len()))
                .map_or(Frame::Null, |(f, _)| Frame::Bulk(f.clone())),
            Ok(_) => Frame::Null,
            Err(e) => e,
        };
    }
    let count = match rand_count(&a[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let withvalues = match a.len() {
        3 => false,
        4 if is(&a[3], "withvalues") => true,
        _ => return syntax_error(),
    };
    // Redis bounds the count so that twice it (fields and values) fits.
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Frame::error("ERR value is out of range");
    }
    let h = match read_hash(ctx, &a[1]) {
        Ok(Some(h)) => h,
        Ok(None) => return Frame::Array(Vec::new()),
        Err(e) => return e,
    };
    // With values, RESP3 gets [field, value] pairs (repeats are possible, so
    // not a map); RESP2 a flat list.
    let resp3 = ctx.client.resp >= 3;
    let mut out = Vec::new();
    for (f, v) in rand_indices(h.len(), count)
        .into_iter()
        .filter_map(|i| h.field_at(i))
    {
        let f = Frame::Bulk(f.clone());
        match (withvalues, resp3) {
            (false, _) => out.push(f),
            (true, true) => out.push(Frame::Array(vec![f, Frame::Bulk(v)])),
            (true, false) => out.extend([f, Frame::Bulk(v)]),
        }
    }
    Frame::Array(out)
}

fn hscan(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if let Err(e) = scan_cursor(&a[2]) {
        return e;
    }
    // As in Redis, a missing key answers before the options are parsed.
    let h = match read_hash(ctx, &a[1]) {
        Ok(Some(h)) => h,
        Ok(None) => return scan_reply(Vec::new()),
        Err(e) => return e,
    };
    let opts = match ScanOpts::parse(&a[3..], true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut out = Vec::new();
    for (f, v) in h.iter().filter(|(f, _)| opts.matches(f)) {
        out.push(Frame::Bulk(f.clone()));
        if !opts.novalues {
            out.push(Frame::Bulk(v));
        }
    }
    scan_reply(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::Harness;

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    fn err(s: &str) -> Frame {
        Frame::error(s)
    }

    fn int(n: i64) -> Frame {
        Frame::Integer(n)
    }

    fn bulk(s: &str) -> Frame {
        Frame::bulk(s.to_string())
    }

    fn arity(cmd: &str) -> Frame {
        err(&format!(
            "ERR wrong number of arguments for '{cmd}' command"
        ))
    }

    /// The strings of a flat reply, sorted (hash order is unspecified).
    fn sorted(f: Frame) -> Vec<String> {
        let Frame::Array(items) = f else {
            panic!("not an array: {f:?}")
        };
        let mut out: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A map reply as sorted (field, value) pairs.
    fn pairs(f: Frame) -> Vec<(String, String)> {
        let Frame::Map(items) = f else {
            panic!("not a map: {f:?}")
        };
        let text = |f: Frame| match f {
            Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("not a bulk: {other:?}"),
        };
        let mut out: Vec<_> = items.into_iter().map(|(k, v)| (text(k), text(v))).collect();
        out.sort();
        out
    }

    /// A harness with `h = {a: 1, b: 2, c: 3}` and a string `str`.
    fn setup() -> Harness {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HSET", "h", "a", "1", "b", "2", "c", "3"]), int(3));
        assert_eq!(h.run(&["SET", "str", "v"]), Frame::ok());
        h
    }

    #[test]
    fn hset_hmset_hsetnx() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HSET", "h", "a", "1", "a", "2"]), int(1));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("2"), "last value wins");
        assert_eq!(h.run(&["HSET", "h", "a", "3", "b", "4"]), int(1));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("3"));
        assert_eq!(h.run(&["HSET", "h", "b"]), arity("hset"));
        assert_eq!(h.run(&["HSET", "h", "a", "1", "b"]), arity("hset"));
        assert_eq!(h.run(&["HSET", "h", "a"]), arity("hset"));
        assert_eq!(h.run(&["HMSET", "h", "c", "5", "d", "6"]), Frame::ok());
        assert_eq!(h.run(&["HMSET", "h", "c"]), arity("hmset"));
        assert_eq!(h.run(&["HMSET", "h", "c", "5", "d"]), arity("hmset"));
        assert_eq!(h.run(&["HLEN", "h"]), int(4));
        assert_eq!(h.run(&["TYPE", "h"]), Frame::simple("hash"));
        assert_eq!(h.run(&["HSETNX", "h", "a", "9"]), int(0));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("3"));
        assert_eq!(h.run(&["HSETNX", "h", "e", "9"]), int(1));
        assert_eq!(h.run(&["HSETNX", "new", "e", "9"]), int(1));
        assert_eq!(h.run(&["HGET", "new", "e"]), bulk("9"));
        assert_eq!(h.run(&["HSETNX", "h", "e"]), arity("hsetnx"));
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["HSET", "str", "a", "1"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HMSET", "str", "a", "1"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HSETNX", "str", "a", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn duplicate_fields_make_one_write_per_field() {
        let mut h = Harness::new();
        h.run(&["HSET", "h", "a", "1", "a", "2", "b", "3"]);
        let ops = h.ks.take_pending();
        assert_eq!(ops.len(), 1);
        let text = format!("{:?}", ops[0].body);
        assert_eq!(text.matches("b\"a\"").count(), 1, "{text}");
        h.run(&["HDEL", "h", "a", "a", "zz"]);
        let text = format!("{:?}", h.ks.take_pending()[0].body);
        assert_eq!(text.matches("b\"a\"").count(), 1, "{text}");
    }

    #[test]
    fn reads() {
        let mut h = setup();
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("1"));
        assert_eq!(h.run(&["HGET", "h", "zz"]), Frame::Null);
        assert_eq!(h.run(&["HGET", "missing", "a"]), Frame::Null);
        assert_eq!(h.run(&["HGET", "str", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HGET", "h"]), arity("hget"));
        assert_eq!(
            h.run(&["HMGET", "h", "a", "zz", "c"]),
            Frame::Array(vec![bulk("1"), Frame::Null, bulk("3")])
        );
        assert_eq!(
            h.run(&["HMGET", "missing", "a", "b"]),
            Frame::Array(vec![Frame::Null, Frame::Null])
        );
        assert_eq!(h.run(&["HMGET", "str", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HMGET", "h"]), arity("hmget"));
        let want: Vec<(String, String)> = [("a", "1"), ("b", "2"), ("c", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs(h.run(&["HGETALL", "h"])), want);
        assert_eq!(h.run(&["HGETALL", "missing"]), Frame::Map(vec![]));
        assert_eq!(h.run(&["HGETALL", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HEXISTS", "h", "a"]), int(1));
        assert_eq!(h.run(&["HEXISTS", "h", "zz"]), int(0));
        assert_eq!(h.run(&["HEXISTS", "missing", "a"]), int(0));
        assert_eq!(h.run(&["HEXISTS", "str", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HLEN", "h"]), int(3));
        assert_eq!(h.run(&["HLEN", "missing"]), int(0));
        assert_eq!(h.run(&["HLEN", "str"]), err(WRONGTYPE));
        h.run(&["HSET", "h", "long", "hello"]);
        assert_eq!(h.run(&["HSTRLEN", "h", "long"]), int(5));
        assert_eq!(h.run(&["HSTRLEN", "h", "zz"]), int(0));
        assert_eq!(h.run(&["HSTRLEN", "missing", "a"]), int(0));
        assert_eq!(h.run(&["HSTRLEN", "str", "a"]), err(WRONGTYPE));
        assert_eq!(
            sorted(h.run(&["HKEYS", "h"])),
            strs(&["a", "b", "c", "long"])
        );
        assert_eq!(h.run(&["HKEYS", "missing"]), Frame::Array(vec![]));
        assert_eq!(h.run(&["HKEYS", "str"]), err(WRONGTYPE));
        assert_eq!(
            sorted(h.run(&["HVALS", "h"])),
            strs(&["1", "2", "3", "hello"])
        );
        assert_eq!(h.run(&["HVALS", "missing"]), Frame::Array(vec![]));
        assert_eq!(h.run(&["HVALS", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HKEYS", "h", "x"]), arity("hkeys"));
    }

    #[test]
    fn hdel() {
        let mut h = setup();
        assert_eq!(h.run(&["HDEL", "h", "a", "a", "zz"]), int(1));
        assert_eq!(h.run(&["HDEL", "h", "a"]), int(0));
        assert_eq!(h.run(&["HDEL", "missing", "a"]), int(0));
        assert_eq!(h.run(&["HDEL", "str", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HDEL", "h"]), arity("hdel"));
        assert_eq!(h.run(&["HDEL", "h", "b", "c"]), int(2));
        assert_eq!(h.run(&["EXISTS", "h"]), int(0), "an emptied hash is gone");
    }

    #[test]
    fn hincrby() {
        let mut h = setup();
        assert_eq!(h.run(&["HINCRBY", "h", "a", "10"]), int(11));
        assert_eq!(h.run(&["HINCRBY", "h", "a", "-20"]), int(-9));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("-9"));
        assert_eq!(h.run(&["HINCRBY", "h", "new", "-5"]), int(-5));
        assert_eq!(h.run(&["HINCRBY", "h", "zero", "0"]), int(0));
        assert_eq!(h.run(&["HEXISTS", "h", "zero"]), int(1));
        assert_eq!(h.run(&["HINCRBY", "fresh", "f", "3"]), int(3));
        let not_int = err("ERR value is not an integer or out of range");
        assert_eq!(h.run(&["HINCRBY", "h", "a", "abc"]), not_int);
        assert_eq!(h.run(&["HINCRBY", "h", "a", "1.5"]), not_int);
        assert_eq!(
            h.run(&["HINCRBY", "str", "a", "x"]),
            not_int,
            "increment first"
        );
        assert_eq!(h.run(&["HINCRBY", "str", "a", "1"]), err(WRONGTYPE));
        h.run(&["HSET", "h", "s", "hello", "big", "9223372036854775807"]);
        assert_eq!(
            h.run(&["HINCRBY", "h", "s", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            h.run(&["HINCRBY", "h", "big", "1"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(h.run(&["HINCRBY", "h", "a"]), arity("hincrby"));
    }

    #[test]
    fn hincrbyfloat() {
        let mut h = setup();
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "10.5"]), bulk("10.5"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "3.0e3"]), bulk("3010.5"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "-3010.5"]), bulk("0"));
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "a", "0.1"]), bulk("1.1"));
        assert_eq!(h.run(&["HGET", "h", "a"]), bulk("1.1"));
        h.run(&["HSET", "h", "big", "10000000000000000", "s", "hello"]);
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "big", "1"]),
            bulk("10000000000000001")
        );
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "new", "0"]), bulk("0"));
        assert_eq!(h.run(&["HEXISTS", "h", "new"]), int(1));
        let not_float = err("ERR value is not a valid float");
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "abc"]), not_float);
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "nan"]), not_float);
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", " 1"]), not_float);
        let nan_inf = err("ERR value is NaN or Infinity");
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "inf"]), nan_inf);
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "f", "-inf"]), nan_inf);
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "s", "1"]),
            err("ERR hash value is not a float")
        );
        assert_eq!(h.run(&["HINCRBYFLOAT", "str", "a", "1"]), err(WRONGTYPE));
        h.run(&["HSET", "h", "huge", "1.7e308"]);
        assert_eq!(
            h.run(&["HINCRBYFLOAT", "h", "huge", "1.7e308"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(h.run(&["HINCRBYFLOAT", "h", "a"]), arity("hincrbyfloat"));
    }

    #[test]
    fn hrandfield_without_count() {
        let mut h = setup();
        let Frame::Bulk(f) = h.run(&["HRANDFIELD", "h"]) else {
            panic!("bulk expected")
        };
        assert!([&b"a"[..], b"b", b"c"].contains(&&f[..]));
        assert_eq!(h.run(&["HRANDFIELD", "missing"]), Frame::Null);
        assert_eq!(h.run(&["HRANDFIELD", "str"]), err(WRONGTYPE));
    }

    #[test]
    fn hrandfield_with_count() {
        let mut h = setup();
        assert_eq!(h.run(&["HRANDFIELD", "missing", "3"]), Frame::Array(vec![]));
        assert_eq!(h.run(&["HRANDFIELD", "h", "0"]), Frame::Array(vec![]));
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "0", "WITHVALUES"]),
            Frame::Array(vec![])
        );
        assert_eq!(h.run(&["HRANDFIELD", "str", "2"]), err(WRONGTYPE));
        let not_int = err("ERR value is not an integer or out of range");
        assert_eq!(h.run(&["HRANDFIELD", "str", "abc"]), not_int, "count first");
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "1", "foo"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "1", "WITHVALUES", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        let range = err("ERR value is out of range");
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "-9223372036854775807", "WITHVALUES"]),
            range
        );
        assert_eq!(
            h.run(&["HRANDFIELD", "h", "9223372036854775807", "withvalues"]),
            range
        );
        assert_eq!(
            sorted(h.run(&["HRANDFIELD", "h", "10"])),
            strs(&["a", "b", "c"])
        );
        assert_eq!(
            sorted(h.run(&["HRANDFIELD", "h", "10", "WITHVALUES"])),
            strs(&["1", "2", "3", "a", "b", "c"])
        );
        for _ in 0..20 {
            let two = sorted(h.run(&["HRANDFIELD", "h", "2"]));
            assert_eq!(two.len(), 2);
            assert_ne!(two[0], two[1], "distinct");
        }
        let many = sorted(h.run(&["HRANDFIELD", "h", "-30"]));
        assert_eq!(many.len(), 30, "repeats allowed");
        // RESP2 WITHVALUES: flat field, value, field, value…
        let Frame::Array(flat) = h.run(&["HRANDFIELD", "h", "-4", "WITHVALUES"]) else {
            panic!()
        };
        assert_eq!(flat.len(), 8);
        for p in flat.chunks(2) {
            let (Frame::Bulk(f), Frame::Bulk(v)) = (&p[0], &p[1]) else {
                panic!()
            };
            assert_eq!(
                h.run(&["HGET", "h", std::str::from_utf8(f).unwrap()]),
                Frame::Bulk(v.clone())
            );
        }
    }

    #[test]
    fn hrandfield_withvalues_resp3_gives_pairs() {
        let mut h = setup();
        h.client.resp = 3;
        let Frame::Array(items) = h.run(&["HRANDFIELD", "h", "-5", "WITHVALUES"]) else {
            panic!()
        };
        assert_eq!(items.len(), 5);
        for item in items {
            let Frame::Array(pair) = item else {
                panic!("pair expected")
            };
            assert_eq!(pair.len(), 2);
        }
        let Frame::Array(items) = h.run(&["HRANDFIELD", "h", "2", "WITHVALUES"]) else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert!(
            matches!(h.run(&["HRANDFIELD", "h", "2"]), Frame::Array(v) if matches!(v[0], Frame::Bulk(_)))
        );
    }

    #[test]
    fn hscan() {
        let mut h = setup();
        h.run(&["HSET", "h", "ab", "4"]);
        assert_eq!(
            sorted(match h.run(&["HSCAN", "h", "0"]) {
                Frame::Array(mut v) => {
                    assert_eq!(v[0], bulk("0"));
                    v.pop().unwrap()
                }
                other => panic!("{other:?}"),
            }),
            strs(&["1", "2", "3", "4", "a", "ab", "b", "c"])
        );
        let reply = h.run(&["HSCAN", "h", "0", "MATCH", "a*", "COUNT", "1"]);
        let Frame::Array(mut v) = reply else { panic!() };
        let Frame::Array(items) = v.pop().unwrap() else {
            panic!()
        };
        let mut got: Vec<(Frame, Frame)> = items
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        got.sort_by_key(|(f, _)| format!("{f:?}"));
        assert_eq!(got, vec![(bulk("a"), bulk("1")), (bulk("ab"), bulk("4"))]);
        let reply = h.run(&["HSCAN", "h", "0", "MATCH", "a*", "NOVALUES"]);
        let Frame::Array(mut v) = reply else { panic!() };
        assert_eq!(sorted(v.pop().unwrap()), strs(&["a", "ab"]));
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "MATCH", "zz*"]),
            scan_reply(vec![])
        );
        assert_eq!(
            h.run(&["HSCAN", "missing", "0", "COUNT", "0"]),
            scan_reply(vec![])
        );
        assert_eq!(h.run(&["HSCAN", "str", "0"]), err(WRONGTYPE));
        assert_eq!(h.run(&["HSCAN", "h", "abc"]), err("ERR invalid cursor"));
        assert_eq!(
            h.run(&["HSCAN", "missing", "abc"]),
            err("ERR invalid cursor")
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "COUNT", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "COUNT", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "MATCH"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["HSCAN", "h", "0", "TYPE", "hash"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["HSCAN", "h"]), arity("hscan"));
    }
}
