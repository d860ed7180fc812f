//! Lists: pushes, pops (LPOP, RPOP, LMPOP), LMOVE and RPOPLPUSH, reads by
//! index and range, LSET, LINSERT, LREM, LTRIM and LPOS.
//!
//! A list is a sequence CRDT: pushes carry the positions they chose, pops
//! and LREM name the elements they remove, all decided against what this
//! region sees, so each operation replicates what its reply says.

use bytes::Bytes;

use super::args::{self, at, is, syntax_error};
use super::strings::write_error;
use super::zsets::{at_least, mpop_count};
use super::{CommandSpec, Ctx, DENYOOM, FAST, READONLY, WRITE};
use crate::crdt::list::ListContent;
use crate::crdt::number::parse_i64;
use crate::crdt::prepare::resolve_range;
use crate::crdt::{Content, Intent, WriteError};
use crate::resp::Frame;

/// The list family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "lpush", arity: -3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: lpush },
    CommandSpec { name: "rpush", arity: -3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: rpush },
    CommandSpec { name: "lpushx", arity: -3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: lpushx },
    CommandSpec { name: "rpushx", arity: -3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: rpushx },
    CommandSpec { name: "lpop", arity: -2, flags: WRITE | FAST, keys: (1, 1, 1), run: lpop },
    CommandSpec { name: "rpop", arity: -2, flags: WRITE | FAST, keys: (1, 1, 1), run: rpop },
    CommandSpec { name: "llen", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: llen },
    CommandSpec { name: "lindex", arity: 3, flags: READONLY, keys: (1, 1, 1), run: lindex },
    CommandSpec { name: "lrange", arity: 4, flags: READONLY, keys: (1, 1, 1), run: lrange },
    CommandSpec { name: "lset", arity: 4, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: lset },
    CommandSpec { name: "linsert", arity: 5, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: linsert },
    CommandSpec { name: "lrem", arity: 4, flags: WRITE, keys: (1, 1, 1), run: lrem },
    CommandSpec { name: "ltrim", arity: 4, flags: WRITE, keys: (1, 1, 1), run: ltrim },
    CommandSpec { name: "lpos", arity: -3, flags: READONLY, keys: (1, 1, 1), run: lpos },
    CommandSpec { name: "lmove", arity: 5, flags: WRITE | DENYOOM, keys: (1, 2, 1), run: lmove },
    CommandSpec { name: "rpoplpush", arity: 3, flags: WRITE | DENYOOM, keys: (1, 2, 1), run: rpoplpush },
    // Keys follow a count (movable keys): no fixed key range, as in Redis.
    CommandSpec { name: "lmpop", arity: -4, flags: WRITE, keys: (0, 0, 0), run: lmpop },
];

/// Reads a list key without copying it: `Ok(None)` if absent, WRONGTYPE
/// for another type.
fn read_list<'a>(ctx: &'a Ctx<'_>, key: &[u8]) -> Result<Option<&'a ListContent>, Frame> {
    match ctx.ks.get(key, ctx.now_ms) {
        None => Ok(None),
        Some(Content::List(l)) => Ok(Some(l)),
        Some(_) => Err(write_error(WriteError::WrongType)),
    }
}

/// The length after a write (0 once the key is gone).
fn len_now(ctx: &Ctx, key: &[u8]) -> i64 {
    match ctx.ks.get(key, ctx.now_ms) {
        Some(Content::List(l)) => l.len() as i64,
        _ => 0,
    }
}

/// `LEFT` (true) or `RIGHT`.
fn side(arg: &[u8]) -> Option<bool> {
    if is(arg, "left") {
        Some(true)
    } else if is(arg, "right") {
        Some(false)
    } else {
        None
    }
}

fn bulks(values: Vec<Bytes>) -> Frame {
    Frame::Array(values.into_iter().map(Frame::Bulk).collect())
}

/// The element at `index` (negative from the tail).
fn element(l: &ListContent, index: i64) -> Option<&Bytes> {
    let i = if index < 0 {
        l.len()
            .checked_sub(usize::try_from(index.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(index).ok()?
    };
    l.get(i).map(|(_, v)| v)
}

// ---------------------------------------------------------------------------
// Pushes and pops.

/// LPUSH / RPUSH, and with `only_existing` LPUSHX / RPUSHX; replies the new
/// length.
fn push(ctx: &mut Ctx, a: &mut [Bytes], left: bool, only_existing: bool) -> Frame {
    // The length before, plus the pushed values, is the length after: a
    // push only adds, each value at a new position.
    let before = match read_list(ctx, &a[1]) {
        Ok(Some(l)) => l.len(),
        Ok(None) if only_existing => return Frame::Integer(0),
        Ok(None) => 0,
        Err(e) => return e,
    };
    let values: Vec<Bytes> = a[2..].iter_mut().map(std::mem::take).collect();
    let pushed = values.len();
    let intent = if left {
        Intent::LPush(values)
    } else {
        Intent::RPush(values)
    };
    match ctx.write(args::take(a, 1), intent) {
        Ok(_) => Frame::Integer((before + pushed) as i64),
        Err(e) => e,
    }
}

fn lpush(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    push(ctx, a, true, false)
}

fn rpush(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    push(ctx, a, false, false)
}

fn lpushx(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    push(ctx, a, true, true)
}

fn rpushx(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    push(ctx, a, false, true)
}

/// Pops up to `n` elements from one end, in pop order.
fn pop_values(ctx: &mut Ctx, key: &Bytes, left: bool, n: usize) -> Result<Vec<Bytes>, Frame> {
    let values: Vec<Bytes> = match read_list(ctx, key)? {
        Some(l) if left => l.iter().take(n).map(|(_, v)| v.clone()).collect(),
        Some(l) => l.iter().rev().take(n).map(|(_, v)| v.clone()).collect(),
        None => Vec::new(),
    };
    if !values.is_empty() {
        let n = values.len();
        ctx.write(
            key.clone(),
            if left {
                Intent::LPop(n)
            } else {
                Intent::RPop(n)
            },
        )?;
    }
    Ok(values)
}

/// LPOP / RPOP `key [count]`: one element, or with a count an array (a nil
/// array for a missing key).
fn pop(ctx: &mut Ctx, a: &[Bytes], left: bool) -> Frame {
    if a.len() > 3 {
        return super::wrong_arity(ctx.client.current);
    }
    let count = match a.get(2) {
        None => None,
        Some(c) => match at_least(c, 0, "ERR value is out of range, must be positive") {
            Ok(n) => Some(n as usize),
            Err(e) => return e,
        },
    };
    match read_list(ctx, &a[1]) {
        Ok(Some(_)) => {}
        Ok(None) if count.is_some() => return Frame::NullArray,
        Ok(None) => return Frame::Null,
        Err(e) => return e,
    }
    if count == Some(0) {
        return Frame::empty_array();
    }
    match pop_values(ctx, &a[1], left, count.unwrap_or(1)) {
        Ok(values) if count.is_some() => bulks(values),
        Ok(values) => values.into_iter().next().map_or(Frame::Null, Frame::Bulk),
        Err(e) => e,
    }
}

fn lpop(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    pop(ctx, a, true)
}

fn rpop(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    pop(ctx, a, false)
}

/// LMPOP `numkeys key… LEFT|RIGHT [COUNT n]`: pops from the first non-empty
/// list; `[key, [elements]]` or a nil array.
fn lmpop(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let numkeys = match at_least(&a[1], 1, "ERR numkeys should be greater than 0") {
        Ok(n) => n as usize,
        Err(e) => return e,
    };
    let Some(where_at) = numkeys.checked_add(2).filter(|&w| w < a.len()) else {
        return syntax_error();
    };
    let Some(left) = side(&a[where_at]) else {
        return syntax_error();
    };
    let count = match mpop_count(&a[where_at + 1..]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    for key in &a[2..where_at] {
        match read_list(ctx, key) {
            Ok(Some(l)) if !l.is_empty() => {}
            Ok(_) => continue,
            Err(e) => return e,
        }
        return match pop_values(ctx, key, left, count.unwrap_or(1)) {
            Ok(values) => Frame::Array(vec![Frame::Bulk(key.clone()), bulks(values)]),
            Err(e) => e,
        };
    }
    Frame::NullArray
}

/// Pops from `src` and pushes onto `dst` as one transaction, so regions see
/// the move whole; with `src == dst` it rotates the list.
fn move_one(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from_left: bool, to_left: bool) -> Frame {
    let (value, len) = match read_list(ctx, src) {
        Ok(Some(l)) => {
            let end = if from_left {
                l.iter().next()
            } else {
                l.iter().next_back()
            };
            match end {
                Some((_, v)) => (v.clone(), l.len()),
                None => return Frame::Null,
            }
        }
        Ok(None) => return Frame::Null,
        Err(e) => return e,
    };
    if let Err(e) = read_list(ctx, dst) {
        return e;
    }
    // Rotating a one-element list changes nothing. As a pop and a push it
    // would empty the list in between, which deletes the key and its TTL;
    // Redis pushes back into the same list and keeps both.
    if src == dst && len == 1 {
        return Frame::Bulk(value);
    }
    let now = ctx.now_ms;
    ctx.ks.begin_txn();
    let result = (|| -> Result<(), WriteError> {
        let popped = if from_left {
            Intent::LPop(1)
        } else {
            Intent::RPop(1)
        };
        ctx.ks.write(src.clone(), popped, now)?;
        let values = vec![value.clone()];
        let pushed = if to_left {
            Intent::LPush(values)
        } else {
            Intent::RPush(values)
        };
        ctx.ks.write(dst.clone(), pushed, now)?;
        Ok(())
    })();
    ctx.ks.commit_txn();
    match result {
        Ok(()) => Frame::Bulk(value),
        Err(e) => write_error(e),
    }
}

fn lmove(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match (side(&a[3]), side(&a[4])) {
        (Some(from_left), Some(to_left)) => move_one(ctx, &a[1], &a[2], from_left, to_left),
        _ => syntax_error(),
    }
}

fn rpoplpush(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    move_one(ctx, &a[1], &a[2], false, true)
}

// ---------------------------------------------------------------------------
// Reads.

fn llen(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_list(ctx, &a[1]) {
        Ok(l) => Frame::Integer(l.map_or(0, |l| l.len() as i64)),
        Err(e) => e,
    }
}

/// LINDEX: the key is looked up before the index is parsed, as in Redis.
fn lindex(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let l = match read_list(ctx, &a[1]) {
        Ok(Some(l)) => l,
        Ok(None) => return Frame::Null,
        Err(e) => return e,
    };
    match args::int(&a[2]) {
        Ok(i) => element(l, i).map_or(Frame::Null, |v| Frame::Bulk(v.clone())),
        Err(e) => e,
    }
}

/// LRANGE: its first element is reached in O(log n).
fn lrange(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let (start, stop) = match (args::int(&a[2]), args::int(&a[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let l = match read_list(ctx, &a[1]) {
        Ok(Some(l)) => l,
        Ok(None) => return Frame::empty_array(),
        Err(e) => return e,
    };
    let len = l.len();
    let Some((s, e)) = resolve_range(start, stop, len) else {
        return Frame::empty_array();
    };
    Frame::Array(l.range(s, e).map(|v| Frame::Bulk(v.clone())).collect())
}

/// LPOS `key element [RANK r] [COUNT n] [MAXLEN len]`.
fn lpos(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut j = 3;
    while j < a.len() {
        let more = j + 1 < a.len();
        if is(&a[j], "rank") && more {
            rank =
                match parse_i64(&a[j + 1]) {
                    None => return args::not_integer(),
                    Some(i64::MIN) => {
                        return Frame::error(format!(
                            "ERR value is out of range, value must between {} and {}",
                            -i64::MAX,
                            i64::MAX
                        ))
                    }
                    Some(0) => return Frame::error(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                         second ... or use negative to start from the end of the list",
                    ),
                    Some(r) => r,
                };
        } else if is(&a[j], "count") && more {
            match at_least(&a[j + 1], 0, "ERR COUNT can't be negative") {
                Ok(n) => count = Some(n as usize),
                Err(e) => return e,
            }
        } else if is(&a[j], "maxlen") && more {
            match at_least(&a[j + 1], 0, "ERR MAXLEN can't be negative") {
                Ok(n) => maxlen = n as usize,
                Err(e) => return e,
            }
        } else {
            return syntax_error();
        }
        j += 2;
    }
    let l = match read_list(ctx, &a[1]) {
        Ok(Some(l)) => l,
        Ok(None) if count.is_some() => return Frame::empty_array(),
        Ok(None) => return Frame::Null,
        Err(e) => return e,
    };
    let len = l.len();
    let scanned = if maxlen == 0 { usize::MAX } else { maxlen };
    let values = l.iter().map(|(_, v)| v);
    let indexed: Box<dyn Iterator<Item = (usize, &Bytes)>> = if rank > 0 {
        Box::new(values.enumerate())
    } else {
        Box::new(values.rev().enumerate().map(|(i, v)| (len - 1 - i, v)))
    };
    let skip = usize::try_from(rank.unsigned_abs() - 1).unwrap_or(usize::MAX);
    let mut found = indexed
        .take(scanned)
        .filter(|(_, v)| **v == a[2])
        .skip(skip)
        .map(|(i, _)| Frame::Integer(i as i64));
    match count {
        None => found.next().unwrap_or(Frame::Null),
        Some(0) => Frame::Array(found.collect()),
        Some(n) => Frame::Array(found.take(n).collect()),
    }
}

// ---------------------------------------------------------------------------
// Edits.

/// LSET: the key is looked up before the index is parsed, as in Redis.
fn lset(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_list(ctx, &a[1]) {
        Ok(Some(_)) => {}
        Ok(None) => return write_error(WriteError::NoSuchKey),
        Err(e) => return e,
    }
    let index = match args::int(&a[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    match ctx.write(
        at(a, 1),
        Intent::LSet {
            index,
            value: at(a, 3),
        },
    ) {
        Ok(_) => Frame::ok(),
        Err(e) => e,
    }
}

/// LINSERT: the new length, -1 without the pivot, 0 without the key.
fn linsert(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let before = if is(&a[2], "before") {
        true
    } else if is(&a[2], "after") {
        false
    } else {
        return syntax_error();
    };
    match read_list(ctx, &a[1]) {
        Ok(Some(l)) if l.iter().any(|(_, v)| *v == a[3]) => {}
        Ok(Some(_)) => return Frame::Integer(-1),
        Ok(None) => return Frame::Integer(0),
        Err(e) => return e,
    }
    let intent = Intent::LInsert {
        before,
        pivot: at(a, 3),
        value: at(a, 4),
    };
    match ctx.write(at(a, 1), intent) {
        Ok(_) => Frame::Integer(len_now(ctx, &a[1])),
        Err(e) => e,
    }
}

/// LREM: how many elements went.
fn lrem(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let count = match args::int(&a[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let before = match read_list(ctx, &a[1]) {
        Ok(Some(l)) => l.len() as i64,
        Ok(None) => return Frame::Integer(0),
        Err(e) => return e,
    };
    let intent = Intent::LRem {
        count,
        value: at(a, 3),
    };
    match ctx.write(at(a, 1), intent) {
        Ok(_) => Frame::Integer(before - len_now(ctx, &a[1])),
        Err(e) => e,
    }
}

fn ltrim(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let (start, stop) = match (args::int(&a[2]), args::int(&a[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match ctx.write(at(a, 1), Intent::LTrim { start, stop }) {
        Ok(_) => Frame::ok(),
        Err(e) => e,
    }
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
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn arr(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }

    fn ints(items: &[i64]) -> Frame {
        Frame::Array(items.iter().map(|&n| int(n)).collect())
    }

    /// A harness holding l = [a b c a b c] and a string "str".
    fn setup() -> Harness {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RPUSH", "l", "a", "b", "c", "a", "b", "c"]), int(6));
        assert_eq!(h.run(&["SET", "str", "v"]), Frame::ok());
        h
    }

    fn all(h: &mut Harness, key: &str) -> Frame {
        h.run(&["LRANGE", key, "0", "-1"])
    }

    #[test]
    fn pushes() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["LPUSH", "l", "a", "b", "c"]), int(3));
        assert_eq!(all(&mut h, "l"), arr(&["c", "b", "a"]));
        assert_eq!(h.run(&["RPUSH", "l", "d", "e"]), int(5));
        assert_eq!(h.run(&["RPUSHX", "l", "f"]), int(6));
        assert_eq!(h.run(&["LPUSHX", "l", "z", "y"]), int(8));
        assert_eq!(
            all(&mut h, "l"),
            arr(&["y", "z", "c", "b", "a", "d", "e", "f"])
        );
        assert_eq!(h.run(&["LPUSHX", "nokey", "x"]), int(0));
        assert_eq!(h.run(&["RPUSHX", "nokey", "x"]), int(0));
        assert_eq!(h.run(&["EXISTS", "nokey"]), int(0));
        h.run(&["SET", "str", "v"]);
        for cmd in ["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"] {
            assert_eq!(h.run(&[cmd, "str", "x"]), err(WRONGTYPE));
        }
        assert_eq!(
            h.run(&["LPUSH", "l"]),
            err("ERR wrong number of arguments for 'lpush' command")
        );
        assert_eq!(h.run(&["LLEN", "l"]), int(8));
        assert_eq!(h.run(&["LLEN", "nokey"]), int(0));
        assert_eq!(h.run(&["LLEN", "str"]), err(WRONGTYPE));
    }

    #[test]
    fn pops() {
        let mut h = setup();
        assert_eq!(h.run(&["LPOP", "l"]), bulk("a"));
        assert_eq!(h.run(&["RPOP", "l"]), bulk("c"));
        assert_eq!(h.run(&["LPOP", "l", "2"]), arr(&["b", "c"]));
        assert_eq!(h.run(&["RPOP", "l", "1"]), arr(&["b"]));
        assert_eq!(h.run(&["LPOP", "l", "0"]), Frame::empty_array());
        assert_eq!(h.run(&["RPOP", "l", "10"]), arr(&["a"]));
        assert_eq!(h.run(&["EXISTS", "l"]), int(0));
        assert_eq!(h.run(&["LPOP", "l"]), Frame::Null);
        assert_eq!(h.run(&["LPOP", "l", "0"]), Frame::NullArray);
        assert_eq!(h.run(&["RPOP", "l", "3"]), Frame::NullArray);
        let positive = err("ERR value is out of range, must be positive");
        assert_eq!(h.run(&["LPOP", "l", "-1"]), positive);
        assert_eq!(h.run(&["LPOP", "l", "abc"]), positive);
        assert_eq!(
            h.run(&["LPOP", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'lpop' command")
        );
        assert_eq!(
            h.run(&["RPOP", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'rpop' command")
        );
        assert_eq!(h.run(&["LPOP", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["RPOP", "str", "0"]), err(WRONGTYPE));
        h.client.resp = 3;
        assert_eq!(h.run(&["LPOP", "nokey", "1"]), Frame::NullArray);
    }

    #[test]
    fn pop_replicates_one_operation() {
        let mut h = setup();
        h.ks.take_pending();
        assert_eq!(h.run(&["RPOP", "l", "3"]), arr(&["c", "b", "a"]));
        assert_eq!(h.ks.take_pending().len(), 1);
        assert_eq!(h.run(&["LPOP", "l", "0"]), Frame::empty_array());
        assert!(h.ks.take_pending().is_empty());
    }

    #[test]
    fn lmpop() {
        let mut h = setup();
        assert_eq!(
            h.run(&["LMPOP", "2", "nokey", "l", "LEFT"]),
            Frame::Array(vec![bulk("l"), arr(&["a"])])
        );
        assert_eq!(
            h.run(&["LMPOP", "1", "l", "RIGHT", "COUNT", "2"]),
            Frame::Array(vec![bulk("l"), arr(&["c", "b"])])
        );
        assert_eq!(
            h.run(&["LMPOP", "2", "nokey", "str", "LEFT"]),
            err(WRONGTYPE)
        );
        assert_eq!(
            h.run(&["LMPOP", "3", "nokey", "l", "str", "left", "count", "10"]),
            Frame::Array(vec![bulk("l"), arr(&["b", "c", "a"])])
        );
        assert_eq!(h.run(&["LMPOP", "1", "l", "LEFT"]), Frame::NullArray);
        let numkeys = err("ERR numkeys should be greater than 0");
        assert_eq!(h.run(&["LMPOP", "0", "l", "LEFT"]), numkeys);
        assert_eq!(h.run(&["LMPOP", "x", "l", "LEFT"]), numkeys);
        let count = err("ERR count should be greater than 0");
        assert_eq!(h.run(&["LMPOP", "1", "l", "LEFT", "COUNT", "0"]), count);
        assert_eq!(h.run(&["LMPOP", "1", "l", "LEFT", "COUNT", "-1"]), count);
        let syntax = err("ERR syntax error");
        assert_eq!(h.run(&["LMPOP", "5", "l", "LEFT"]), syntax);
        assert_eq!(h.run(&["LMPOP", "1", "l", "UP"]), syntax);
        assert_eq!(
            h.run(&["LMPOP", "1", "l", "LEFT", "COUNT", "1", "COUNT", "1"]),
            syntax
        );
        assert_eq!(h.run(&["LMPOP", "1", "l", "LEFT", "foo"]), syntax);
        assert_eq!(
            h.run(&["LMPOP", "1", "l"]),
            err("ERR wrong number of arguments for 'lmpop' command")
        );
    }

    #[test]
    fn lindex() {
        let mut h = setup();
        assert_eq!(h.run(&["LINDEX", "l", "0"]), bulk("a"));
        assert_eq!(h.run(&["LINDEX", "l", "2"]), bulk("c"));
        assert_eq!(h.run(&["LINDEX", "l", "-1"]), bulk("c"));
        assert_eq!(h.run(&["LINDEX", "l", "-6"]), bulk("a"));
        assert_eq!(h.run(&["LINDEX", "l", "-7"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "l", "6"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "l", "-9223372036854775808"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "l", "9223372036854775807"]), Frame::Null);
        assert_eq!(
            h.run(&["LINDEX", "l", "x"]),
            err("ERR value is not an integer or out of range")
        );
        // The key is looked up first.
        assert_eq!(h.run(&["LINDEX", "nokey", "x"]), Frame::Null);
        assert_eq!(h.run(&["LINDEX", "str", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn lrange() {
        let mut h = Harness::new();
        let items: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let mut push = vec!["RPUSH", "l"];
        push.extend(items.iter().map(|s| s.as_str()));
        h.run(&push);
        assert_eq!(h.run(&["LRANGE", "l", "0", "2"]), arr(&["0", "1", "2"]));
        assert_eq!(h.run(&["LRANGE", "l", "8", "10"]), arr(&["8", "9", "10"]));
        assert_eq!(h.run(&["LRANGE", "l", "-3", "-1"]), arr(&["9", "10", "11"]));
        assert_eq!(h.run(&["LRANGE", "l", "9", "100"]), arr(&["9", "10", "11"]));
        assert_eq!(h.run(&["LRANGE", "l", "-100", "1"]), arr(&["0", "1"]));
        assert_eq!(h.run(&["LRANGE", "l", "5", "6"]), arr(&["5", "6"]));
        assert_eq!(h.run(&["LRANGE", "l", "6", "6"]), arr(&["6"]));
        assert_eq!(h.run(&["LRANGE", "l", "11", "11"]), arr(&["11"]));
        assert_eq!(h.run(&["LRANGE", "l", "12", "12"]), Frame::empty_array());
        assert_eq!(h.run(&["LRANGE", "l", "5", "2"]), Frame::empty_array());
        assert_eq!(h.run(&["LRANGE", "l", "-1", "-2"]), Frame::empty_array());
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "-1"]),
            arr(&items.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        );
        assert_eq!(h.run(&["LRANGE", "nokey", "0", "-1"]), Frame::empty_array());
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["LRANGE", "str", "0", "-1"]), err(WRONGTYPE));
        // The indexes are parsed first.
        assert_eq!(
            h.run(&["LRANGE", "str", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["LRANGE", "l", "0", "1x"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn lset() {
        let mut h = setup();
        assert_eq!(h.run(&["LSET", "l", "0", "first"]), Frame::ok());
        assert_eq!(h.run(&["LSET", "l", "-1", "last"]), Frame::ok());
        assert_eq!(
            all(&mut h, "l"),
            arr(&["first", "b", "c", "a", "b", "last"])
        );
        assert_eq!(
            h.run(&["LSET", "l", "6", "x"]),
            err("ERR index out of range")
        );
        assert_eq!(
            h.run(&["LSET", "l", "-7", "x"]),
            err("ERR index out of range")
        );
        assert_eq!(
            h.run(&["LSET", "l", "x", "x"]),
            err("ERR value is not an integer or out of range")
        );
        // The key is looked up before the index is parsed.
        assert_eq!(h.run(&["LSET", "nokey", "0", "x"]), err("ERR no such key"));
        assert_eq!(h.run(&["LSET", "nokey", "x", "x"]), err("ERR no such key"));
        assert_eq!(h.run(&["LSET", "str", "x", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn linsert() {
        let mut h = setup();
        assert_eq!(h.run(&["LINSERT", "l", "BEFORE", "a", "Y"]), int(7));
        assert_eq!(h.run(&["LINSERT", "l", "after", "c", "X"]), int(8));
        assert_eq!(
            all(&mut h, "l"),
            arr(&["Y", "a", "b", "c", "X", "a", "b", "c"])
        );
        assert_eq!(h.run(&["LINSERT", "l", "BEFORE", "zz", "x"]), int(-1));
        assert_eq!(h.run(&["LINSERT", "nokey", "BEFORE", "a", "x"]), int(0));
        assert_eq!(h.run(&["EXISTS", "nokey"]), int(0));
        assert_eq!(
            h.run(&["LINSERT", "l", "MIDDLE", "a", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["LINSERT", "str", "MIDDLE", "a", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["LINSERT", "str", "BEFORE", "a", "x"]),
            err(WRONGTYPE)
        );
    }

    #[test]
    fn lrem() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "l", "a", "b", "a", "c", "a", "d", "a"]);
        assert_eq!(h.run(&["LREM", "l", "-2", "a"]), int(2));
        assert_eq!(all(&mut h, "l"), arr(&["a", "b", "a", "c", "d"]));
        assert_eq!(h.run(&["LREM", "l", "1", "a"]), int(1));
        assert_eq!(all(&mut h, "l"), arr(&["b", "a", "c", "d"]));
        assert_eq!(h.run(&["LREM", "l", "0", "zz"]), int(0));
        assert_eq!(h.run(&["LREM", "l", "-9223372036854775808", "a"]), int(1));
        assert_eq!(h.run(&["LREM", "l", "0", "b"]), int(1));
        assert_eq!(h.run(&["LREM", "l", "0", "c"]), int(1));
        assert_eq!(h.run(&["LREM", "l", "0", "d"]), int(1));
        assert_eq!(h.run(&["EXISTS", "l"]), int(0));
        assert_eq!(h.run(&["LREM", "nokey", "1", "a"]), int(0));
        assert_eq!(
            h.run(&["LREM", "nokey", "x", "a"]),
            err("ERR value is not an integer or out of range")
        );
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["LREM", "str", "1", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn ltrim() {
        let mut h = setup();
        assert_eq!(h.run(&["LTRIM", "l", "1", "-2"]), Frame::ok());
        assert_eq!(all(&mut h, "l"), arr(&["b", "c", "a", "b"]));
        h.ks.take_pending();
        assert_eq!(h.run(&["LTRIM", "l", "0", "-1"]), Frame::ok());
        assert!(
            h.ks.take_pending().is_empty(),
            "keeping everything writes nothing"
        );
        assert_eq!(h.run(&["LTRIM", "l", "-3", "100"]), Frame::ok());
        assert_eq!(all(&mut h, "l"), arr(&["c", "a", "b"]));
        assert_eq!(h.run(&["LTRIM", "l", "5", "1"]), Frame::ok());
        assert_eq!(h.run(&["EXISTS", "l"]), int(0));
        assert_eq!(h.run(&["LTRIM", "nokey", "0", "1"]), Frame::ok());
        assert_eq!(
            h.run(&["LTRIM", "l", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["LTRIM", "str", "0", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn lpos() {
        let mut h = setup();
        assert_eq!(h.run(&["LPOS", "l", "a"]), int(0));
        assert_eq!(h.run(&["LPOS", "l", "c"]), int(2));
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK", "2"]), int(3));
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK", "3"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK", "-1"]), int(3));
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK", "-2"]), int(0));
        assert_eq!(h.run(&["LPOS", "l", "a", "COUNT", "0"]), ints(&[0, 3]));
        assert_eq!(h.run(&["LPOS", "l", "a", "COUNT", "1"]), ints(&[0]));
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "-1", "COUNT", "0"]),
            ints(&[3, 0])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "3", "COUNT", "0"]),
            ints(&[])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "MAXLEN", "1", "RANK", "2"]),
            Frame::Null
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "MAXLEN", "4", "COUNT", "0"]),
            ints(&[0, 3])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "MAXLEN", "3", "RANK", "-1", "COUNT", "0"]),
            ints(&[3])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "c", "RANK", "-1", "MAXLEN", "1"]),
            int(5)
        );
        assert_eq!(
            h.run(&["LPOS", "l", "b", "COUNT", "1", "COUNT", "2"]),
            ints(&[1, 4])
        );
        assert_eq!(
            h.run(&["LPOS", "l", "b", "RANK", "9223372036854775807"]),
            Frame::Null
        );
        assert_eq!(h.run(&["LPOS", "l", "z"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "l", "z", "COUNT", "1"]), ints(&[]));
        assert_eq!(h.run(&["LPOS", "nokey", "z"]), Frame::Null);
        assert_eq!(h.run(&["LPOS", "nokey", "z", "COUNT", "1"]), ints(&[]));
        assert_eq!(h.run(&["LPOS", "str", "z"]), err(WRONGTYPE));
        // Options are checked before the key.
        assert_eq!(
            h.run(&["LPOS", "nokey", "a", "RANK", "0"]),
            err(
                "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                 or use negative to start from the end of the list"
            )
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "RANK", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "COUNT", "-1"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "COUNT", "x"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            h.run(&["LPOS", "l", "a", "MAXLEN", "-1"]),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(h.run(&["LPOS", "l", "a", "foo"]), err("ERR syntax error"));
        assert_eq!(h.run(&["LPOS", "l", "a", "RANK"]), err("ERR syntax error"));
    }

    #[test]
    fn lmove_and_rpoplpush() {
        let mut h = Harness::new();
        h.run(&["RPUSH", "l", "a", "b", "c", "d", "e"]);
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["LMOVE", "l", "l2", "LEFT", "RIGHT"]), bulk("a"));
        assert_eq!(h.run(&["LMOVE", "l", "l2", "right", "left"]), bulk("e"));
        assert_eq!(all(&mut h, "l"), arr(&["b", "c", "d"]));
        assert_eq!(all(&mut h, "l2"), arr(&["e", "a"]));
        assert_eq!(h.run(&["RPOPLPUSH", "l", "l2"]), bulk("d"));
        assert_eq!(all(&mut h, "l2"), arr(&["d", "e", "a"]));
        // Same key: a rotation.
        assert_eq!(h.run(&["LMOVE", "l2", "l2", "LEFT", "RIGHT"]), bulk("d"));
        assert_eq!(all(&mut h, "l2"), arr(&["e", "a", "d"]));
        assert_eq!(h.run(&["RPOPLPUSH", "l2", "l2"]), bulk("d"));
        assert_eq!(all(&mut h, "l2"), arr(&["d", "e", "a"]));
        assert_eq!(h.run(&["LMOVE", "l2", "l2", "LEFT", "LEFT"]), bulk("d"));
        assert_eq!(all(&mut h, "l2"), arr(&["d", "e", "a"]));
        h.run(&["RPUSH", "one", "x"]);
        assert_eq!(h.run(&["LMOVE", "one", "one", "LEFT", "RIGHT"]), bulk("x"));
        assert_eq!(all(&mut h, "one"), arr(&["x"]));
        // Pop and push travel as one transaction.
        h.ks.take_pending();
        assert_eq!(h.run(&["LMOVE", "one", "other", "LEFT", "LEFT"]), bulk("x"));
        let rest: Vec<u32> = h.ks.take_pending().iter().map(|o| o.txn_rest).collect();
        assert_eq!(rest, vec![1, 0]);
        assert_eq!(h.run(&["EXISTS", "one"]), int(0));
        assert_eq!(all(&mut h, "other"), arr(&["x"]));
        assert_eq!(
            h.run(&["LMOVE", "nokey", "l2", "LEFT", "LEFT"]),
            Frame::Null
        );
        assert_eq!(
            h.run(&["LMOVE", "nokey", "str", "LEFT", "LEFT"]),
            Frame::Null
        );
        assert_eq!(
            h.run(&["LMOVE", "str", "l2", "LEFT", "LEFT"]),
            err(WRONGTYPE)
        );
        // The destination's type is checked before anything is popped.
        assert_eq!(
            h.run(&["LMOVE", "l", "str", "LEFT", "LEFT"]),
            err(WRONGTYPE)
        );
        assert_eq!(h.run(&["RPOPLPUSH", "l", "str"]), err(WRONGTYPE));
        assert_eq!(all(&mut h, "l"), arr(&["b", "c"]));
        assert_eq!(
            h.run(&["LMOVE", "l", "l2", "UP", "LEFT"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["LMOVE", "l", "l2", "LEFT"]),
            err("ERR wrong number of arguments for 'lmove' command")
        );
        assert_eq!(h.run(&["RPOPLPUSH", "nokey", "l2"]), Frame::Null);
    }

    #[test]
    fn expired_lists_read_as_missing() {
        let mut h = setup();
        assert_eq!(h.run(&["PEXPIRE", "l", "10"]), int(1));
        h.now_ms += 10;
        assert_eq!(h.run(&["LLEN", "l"]), int(0));
        assert_eq!(h.run(&["LPUSHX", "l", "x"]), int(0));
        assert_eq!(h.run(&["LPOP", "l"]), Frame::Null);
        assert_eq!(h.run(&["RPUSH", "l", "x"]), int(1));
        assert_eq!(all(&mut h, "l"), arr(&["x"]));
    }
}
