//! Sets: SADD and friends, random picks (SPOP, SRANDMEMBER), SMOVE, the
//! algebra (SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD) and SSCAN.
//!
//! A set is an add-wins OR-set: every write names the members it adds or
//! removes, decided here against what this region sees, so a random pop
//! replicates as the removal of exactly the members it returned.

use std::collections::HashSet;

use bytes::Bytes;
use indexmap::IndexSet;

use super::args::{self, at, is, syntax_error};
use super::strings::write_error;
use super::{glob, CommandSpec, Ctx, DENYOOM, FAST, READONLY, WRITE};
use crate::crdt::number::parse_i64;
use crate::crdt::set::SetContent;
use crate::crdt::{Content, Intent, WriteError};
use crate::resp::Frame;

/// The set family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "sadd", arity: -3, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: sadd },
    CommandSpec { name: "srem", arity: -3, flags: WRITE | FAST, keys: (1, 1, 1), run: srem },
    CommandSpec { name: "smembers", arity: 2, flags: READONLY, keys: (1, 1, 1), run: smembers },
    CommandSpec { name: "sismember", arity: 3, flags: READONLY | FAST, keys: (1, 1, 1), run: sismember },
    CommandSpec { name: "smismember", arity: -3, flags: READONLY | FAST, keys: (1, 1, 1), run: smismember },
    CommandSpec { name: "scard", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: scard },
    CommandSpec { name: "spop", arity: -2, flags: WRITE | FAST, keys: (1, 1, 1), run: spop },
    CommandSpec { name: "srandmember", arity: -2, flags: READONLY, keys: (1, 1, 1), run: srandmember },
    CommandSpec { name: "smove", arity: 4, flags: WRITE | FAST, keys: (1, 2, 1), run: smove },
    CommandSpec { name: "sinter", arity: -2, flags: READONLY, keys: (1, -1, 1), run: sinter },
    // Keys follow a count (movable keys): no fixed key range, as in Redis.
    CommandSpec { name: "sintercard", arity: -3, flags: READONLY, keys: (0, 0, 0), run: sintercard },
    CommandSpec { name: "sinterstore", arity: -3, flags: WRITE | DENYOOM, keys: (1, -1, 1), run: sinterstore },
    CommandSpec { name: "sunion", arity: -2, flags: READONLY, keys: (1, -1, 1), run: sunion },
    CommandSpec { name: "sunionstore", arity: -3, flags: WRITE | DENYOOM, keys: (1, -1, 1), run: sunionstore },
    CommandSpec { name: "sdiff", arity: -2, flags: READONLY, keys: (1, -1, 1), run: sdiff },
    CommandSpec { name: "sdiffstore", arity: -3, flags: WRITE | DENYOOM, keys: (1, -1, 1), run: sdiffstore },
    CommandSpec { name: "sscan", arity: -3, flags: READONLY, keys: (1, 1, 1), run: sscan },
];

/// Reads a set key without copying it: `Ok(None)` if absent, WRONGTYPE for
/// another type.
fn read_set<'a>(ctx: &'a Ctx<'_>, key: &[u8]) -> Result<Option<&'a SetContent>, Frame> {
    match ctx.ks.get(key, ctx.now_ms) {
        None => Ok(None),
        Some(Content::Set(s)) => Ok(Some(s)),
        Some(_) => Err(write_error(WriteError::WrongType)),
    }
}

/// The arguments without repeats, first occurrence kept: one operation must
/// name a member once (the CRDT would otherwise tag it twice), and replies
/// count distinct members as Redis does. The arguments are moved out
/// instead of cloned (see [`args::take`]).
pub(super) fn distinct(items: &mut [Bytes]) -> Vec<Bytes> {
    if items.len() <= 1 {
        return items.iter_mut().map(std::mem::take).collect();
    }
    let keep: Vec<bool> = {
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(items.len());
        items.iter().map(|m| seen.insert(&m[..])).collect()
    };
    items
        .iter_mut()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(m, _)| std::mem::take(m))
        .collect()
}

/// The count of SRANDMEMBER / HRANDFIELD: any integer but `i64::MIN`, whose
/// negation (the "repeats allowed" count) would overflow.
pub(super) fn rand_count(arg: &[u8]) -> Result<i64, Frame> {
    match parse_i64(arg) {
        None => Err(args::not_integer()),
        Some(i64::MIN) => Err(Frame::error(format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        ))),
        Some(n) => Ok(n),
    }
}

/// Indices into a collection of `len` items for a random-pick count:
/// negative picks `-count` times with repeats, in random order; a count at
/// least `len` takes everything; otherwise `count` distinct indices.
pub(super) fn rand_indices(len: usize, count: i64) -> Vec<usize> {
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        // Not preallocated: the count is the client's and may be huge.
        return (0..count.unsigned_abs())
            .map(|_| fastrand::usize(..len))
            .collect();
    }
    match usize::try_from(count) {
        Ok(n) if n < len => sample_distinct(len, n),
        _ => (0..len).collect(),
    }
}

/// `count` (< `len`) distinct random indices below `len`.
fn sample_distinct(len: usize, count: usize) -> Vec<usize> {
    if count.saturating_mul(3) > len {
        // Dense: a partial Fisher-Yates shuffle of every index.
        let mut idx: Vec<usize> = (0..len).collect();
        for i in 0..count {
            idx.swap(i, fastrand::usize(i..len));
        }
        idx.truncate(count);
        idx
    } else {
        // Sparse: rejection sampling stays O(count).
        let mut seen = HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = fastrand::usize(..len);
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}

/// Checks a SSCAN/HSCAN cursor as Redis' `strtoul` reads it: optional sign,
/// decimal digits within 64 bits, and the empty string means 0. The value
/// is not needed: a scan returns everything at once (see [`ScanOpts`]).
pub(super) fn scan_cursor(arg: &[u8]) -> Result<(), Frame> {
    let invalid = || Frame::error("ERR invalid cursor");
    if arg.is_empty() {
        return Ok(());
    }
    let digits = match arg[0] {
        b'+' | b'-' => &arg[1..],
        _ => arg,
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    digits.iter().try_fold(0u64, |v, &d| {
        if !d.is_ascii_digit() {
            return Err(invalid());
        }
        v.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)
    })?;
    Ok(())
}

/// SSCAN / HSCAN options. Every call returns the whole collection with
/// cursor 0, as Redis does for its small encodings: a cursor over an
/// `IndexMap` whose removals swap elements could miss members, and COUNT
/// is only a hint.
pub(super) struct ScanOpts<'a> {
    pattern: Option<&'a [u8]>,
    /// NOVALUES (HSCAN only): fields without their values.
    pub(super) novalues: bool,
}

impl<'a> ScanOpts<'a> {
    /// Parses the options after the cursor; `hash` allows NOVALUES.
    pub(super) fn parse(opts: &'a [Bytes], hash: bool) -> Result<Self, Frame> {
        let mut out = ScanOpts {
            pattern: None,
            novalues: false,
        };
        let mut i = 0;
        while i < opts.len() {
            let more = opts.len() - i;
            if is(&opts[i], "count") && more >= 2 {
                if args::int(&opts[i + 1])? < 1 {
                    return Err(syntax_error());
                }
                i += 2;
            } else if is(&opts[i], "match") && more >= 2 {
                let p = &opts[i + 1][..];
                out.pattern = (p != b"*").then_some(p);
                i += 2;
            } else if is(&opts[i], "novalues") {
                if !hash {
                    return Err(Frame::error(
                        "ERR NOVALUES option can only be used in HSCAN",
                    ));
                }
                out.novalues = true;
                i += 1;
            } else {
                return Err(syntax_error());
            }
        }
        Ok(out)
    }

    /// Whether an element passes MATCH.
    pub(super) fn matches(&self, item: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob::matches(p, item))
    }
}

/// A scan reply: the final cursor 0 and the elements.
pub(super) fn scan_reply(items: Vec<Frame>) -> Frame {
    Frame::Array(vec![Frame::bulk("0"), Frame::Array(items)])
}

fn bulks<'a>(members: impl IntoIterator<Item = &'a Bytes>) -> Vec<Frame> {
    members
        .into_iter()
        .map(|m| Frame::Bulk(m.clone()))
        .collect()
}

fn sadd(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let members = distinct(&mut a[2..]);
    // Counted from the length (an add never removes), not by a lookup per
    // member, as in HSET.
    let len = |ctx: &Ctx| read_set(ctx, &a[1]).map(|s| s.map_or(0, SetContent::len));
    let before = match len(ctx) {
        Ok(n) => n,
        Err(e) => return e,
    };
    // Members already present are written too: re-adding them is what makes
    // them win over a concurrent SREM elsewhere (add-wins).
    if let Err(e) = ctx.write(at(a, 1), Intent::SAdd(members)) {
        return e;
    }
    match len(ctx) {
        Ok(after) => Frame::Integer(after.saturating_sub(before) as i64),
        Err(e) => e,
    }
}

fn srem(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let members = distinct(&mut a[2..]);
    let removed = match read_set(ctx, &a[1]) {
        Ok(Some(s)) => members.iter().filter(|m| s.contains(m)).count(),
        Ok(None) => 0,
        Err(e) => return e,
    };
    if removed == 0 {
        return Frame::Integer(0);
    }
    match ctx.write(at(a, 1), Intent::SRem(members)) {
        Ok(_) => Frame::Integer(removed as i64),
        Err(e) => e,
    }
}

fn smembers(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_set(ctx, &a[1]) {
        Ok(s) => Frame::Set(s.map_or_else(Vec::new, |s| bulks(s.members()))),
        Err(e) => e,
    }
}

fn sismember(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_set(ctx, &a[1]) {
        Ok(s) => Frame::Integer(i64::from(s.is_some_and(|s| s.contains(&a[2])))),
        Err(e) => e,
    }
}

fn smismember(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_set(ctx, &a[1]) {
        Ok(s) => Frame::Array(
            a[2..]
                .iter()
                .map(|m| Frame::Integer(i64::from(s.is_some_and(|s| s.contains(m)))))
                .collect(),
        ),
        Err(e) => e,
    }
}

fn scard(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_set(ctx, &a[1]) {
        Ok(s) => Frame::Integer(s.map_or(0, |s| s.len() as i64)),
        Err(e) => e,
    }
}

fn spop(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let count = match a.len() {
        2 => None,
        // Redis reports any bad count, even a non-number, this way.
        3 => match parse_i64(&a[2]) {
            Some(n) if n >= 0 => Some(n),
            _ => return Frame::error("ERR value is out of range, must be positive"),
        },
        _ => return syntax_error(),
    };
    let chosen: Vec<Bytes> = match read_set(ctx, &a[1]) {
        Ok(Some(s)) if !s.is_empty() => match count {
            None => s
                .member_at(fastrand::usize(..s.len()))
                .into_iter()
                .cloned()
                .collect(),
            Some(n) => rand_indices(s.len(), n)
                .into_iter()
                .filter_map(|i| s.member_at(i).cloned())
                .collect(),
        },
        Ok(_) => Vec::new(),
        Err(e) => return e,
    };
    if !chosen.is_empty() {
        // Exactly the members returned: a concurrent add elsewhere survives.
        if let Err(e) = ctx.write(at(a, 1), Intent::SRem(chosen.clone())) {
            return e;
        }
    }
    match count {
        None => chosen.into_iter().next().map_or(Frame::Null, Frame::Bulk),
        Some(_) => Frame::Set(chosen.into_iter().map(Frame::Bulk).collect()),
    }
}

fn srandmember(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if a.len() > 3 {
        return syntax_error();
    }
    if a.len() == 2 {
        return match read_set(ctx, &a[1]) {
            Ok(Some(s)) if !s.is_empty() => s
                .member_at(fastrand::usize(..s.len()))
                .map_or(Frame::Null, |m| Frame::Bulk(m.clone())),
            Ok(_) => Frame::Null,
            Err(e) => e,
        };
    }
    let count = match rand_count(&a[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    match read_set(ctx, &a[1]) {
        Ok(Some(s)) => Frame::Array(
            rand_indices(s.len(), count)
                .into_iter()
                .filter_map(|i| s.member_at(i).map(|m| Frame::Bulk(m.clone())))
                .collect(),
        ),
        Ok(None) => Frame::Array(Vec::new()),
        Err(e) => e,
    }
}

fn smove(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    // Redis' order: a missing source answers 0 before any type check.
    let present = match read_set(ctx, &a[1]) {
        Ok(Some(s)) => s.contains(&a[3]),
        Ok(None) => return Frame::Integer(0),
        Err(e) => return e,
    };
    if let Err(e) = read_set(ctx, &a[2]) {
        return e;
    }
    if a[1] == a[2] || !present {
        return Frame::Integer(i64::from(present));
    }
    let now = ctx.now_ms;
    // One transaction: no region may see the member in both sets or neither.
    ctx.ks.begin_txn();
    let result = ctx
        .ks
        .write(at(a, 1), Intent::SRem(vec![at(a, 3)]), now)
        .and_then(|_| ctx.ks.write(at(a, 2), Intent::SAdd(vec![at(a, 3)]), now));
    ctx.ks.commit_txn();
    match result {
        Ok(_) => Frame::Integer(1),
        Err(e) => write_error(e),
    }
}

/// Which combination of sets.
#[derive(Clone, Copy)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// The sets named by `keys` (`None`: missing). Every key is type-checked,
/// even after a missing one, as Redis 7 does.
fn read_sets<'a>(ctx: &'a Ctx<'_>, keys: &[Bytes]) -> Result<Vec<Option<&'a SetContent>>, Frame> {
    keys.iter().map(|k| read_set(ctx, k)).collect()
}

/// Intersection inputs, smallest first so the probe loop is shortest;
/// `None` if any set is missing (the intersection is then empty).
fn smallest_first<'a>(sets: &[Option<&'a SetContent>]) -> Option<Vec<&'a SetContent>> {
    let mut v: Vec<&SetContent> = sets.iter().copied().collect::<Option<_>>()?;
    v.sort_by_key(|s| s.len());
    Some(v)
}

/// Members of the intersection, lazily (SINTERCARD stops at its LIMIT).
fn intersection<'a, 'b>(sets: &'b [&'a SetContent]) -> impl Iterator<Item = &'a Bytes> + 'b
where
    'a: 'b,
{
    let (first, rest) = match sets.split_first() {
        Some((f, r)) => (Some(*f), r),
        None => (None, sets),
    };
    first
        .into_iter()
        .flat_map(SetContent::members)
        .filter(move |m| rest.iter().all(|s| s.contains(m)))
}

/// The combination, borrowed from the sets (cloned only by the caller).
fn combine<'a>(sets: &[Option<&'a SetContent>], op: Algebra) -> Vec<&'a Bytes> {
    match op {
        Algebra::Inter => match smallest_first(sets) {
            Some(sorted) => intersection(&sorted).collect(),
            None => Vec::new(),
        },
        Algebra::Union => {
            let mut out: IndexSet<&Bytes> = IndexSet::new();
            for s in sets.iter().flatten() {
                out.extend(s.members());
            }
            out.into_iter().collect()
        }
        Algebra::Diff => match sets.split_first() {
            Some((Some(first), rest)) => first
                .members()
                .filter(|m| !rest.iter().flatten().any(|s| s.contains(m)))
                .collect(),
            _ => Vec::new(),
        },
    }
}

fn algebra(ctx: &mut Ctx, a: &[Bytes], op: Algebra) -> Frame {
    match read_sets(ctx, &a[1..]) {
        Ok(sets) => Frame::Set(bulks(combine(&sets, op))),
        Err(e) => e,
    }
}

/// The STORE forms: the destination is deleted and refilled in one
/// transaction (like Redis' overwrite, it loses any TTL and any type); an
/// empty result only deletes it.
fn algebra_store(ctx: &mut Ctx, a: &[Bytes], op: Algebra) -> Frame {
    let members: Vec<Bytes> = match read_sets(ctx, &a[2..]) {
        Ok(sets) => combine(&sets, op).into_iter().cloned().collect(),
        Err(e) => return e,
    };
    let (now, n) = (ctx.now_ms, members.len());
    ctx.ks.begin_txn();
    let result = ctx.ks.write(at(a, 1), Intent::Del, now).and_then(|_| {
        if members.is_empty() {
            Ok(false)
        } else {
            ctx.ks.write(at(a, 1), Intent::SAdd(members), now)
        }
    });
    ctx.ks.commit_txn();
    match result {
        Ok(_) => Frame::Integer(n as i64),
        Err(e) => write_error(e),
    }
}

fn sinter(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    algebra(ctx, a, Algebra::Inter)
}

fn sunion(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    algebra(ctx, a, Algebra::Union)
}

fn sdiff(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    algebra(ctx, a, Algebra::Diff)
}

fn sinterstore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    algebra_store(ctx, a, Algebra::Inter)
}

fn sunionstore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    algebra_store(ctx, a, Algebra::Union)
}

fn sdiffstore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    algebra_store(ctx, a, Algebra::Diff)
}

fn sintercard(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let numkeys = match parse_i64(&a[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Frame::error("ERR numkeys should be greater than 0"),
    };
    if numkeys > (a.len() - 2) as u64 {
        return Frame::error("ERR Number of keys can't be greater than number of args");
    }
    let keys_end = 2 + numkeys as usize;
    let mut limit = usize::MAX;
    let mut i = keys_end;
    while i < a.len() {
        if is(&a[i], "limit") && i + 1 < a.len() {
            limit = match parse_i64(&a[i + 1]) {
                Some(0) => usize::MAX,
                Some(l) if l > 0 => usize::try_from(l).unwrap_or(usize::MAX),
                _ => return Frame::error("ERR LIMIT can't be negative"),
            };
            i += 2;
        } else {
            return syntax_error();
        }
    }
    match read_sets(ctx, &a[2..keys_end]) {
        Ok(sets) => Frame::Integer(
            smallest_first(&sets).map_or(0, |s| intersection(&s).take(limit).count()) as i64,
        ),
        Err(e) => e,
    }
}

fn sscan(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if let Err(e) = scan_cursor(&a[2]) {
        return e;
    }
    // As in Redis, a missing key answers before the options are parsed.
    let s = match read_set(ctx, &a[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return scan_reply(Vec::new()),
        Err(e) => return e,
    };
    match ScanOpts::parse(&a[3..], false) {
        Ok(opts) => scan_reply(bulks(s.members().filter(|m| opts.matches(m)))),
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

    /// The bulk strings of an array or set reply, sorted (sets have no order).
    fn sorted(f: Frame) -> Vec<String> {
        let items = match f {
            Frame::Array(v) | Frame::Set(v) => v,
            other => panic!("not an aggregate: {other:?}"),
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

    fn set_of(v: &[&str]) -> Frame {
        Frame::Set(v.iter().map(|s| Frame::bulk(s.to_string())).collect())
    }

    /// A harness with `s = {a, b, c}`, `t = {b, c, d}` and a string `str`.
    fn setup() -> Harness {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SADD", "s", "a", "b", "c"]), int(3));
        assert_eq!(h.run(&["SADD", "t", "b", "c", "d"]), int(3));
        assert_eq!(h.run(&["SET", "str", "v"]), Frame::ok());
        h
    }

    #[test]
    fn sadd_counts_distinct_new_members() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SADD", "s", "a", "b", "a"]), int(2));
        assert_eq!(h.run(&["SADD", "s", "a", "c"]), int(1));
        assert_eq!(h.run(&["SADD", "s", "a"]), int(0));
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        assert_eq!(h.run(&["TYPE", "s"]), Frame::simple("set"));
        h.run(&["SET", "str", "v"]);
        assert_eq!(h.run(&["SADD", "str", "a"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["SADD", "s"]),
            err("ERR wrong number of arguments for 'sadd' command")
        );
    }

    #[test]
    fn srem_counts_distinct_removed_and_deletes_empty_sets() {
        let mut h = setup();
        assert_eq!(h.run(&["SREM", "s", "a", "a", "zz"]), int(1));
        assert_eq!(h.run(&["SREM", "s", "zz"]), int(0));
        assert_eq!(h.run(&["SREM", "missing", "a"]), int(0));
        assert_eq!(h.run(&["SREM", "str", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SREM", "s", "b", "c"]), int(2));
        assert_eq!(h.run(&["EXISTS", "s"]), int(0));
        assert_eq!(
            h.run(&["SREM", "s"]),
            err("ERR wrong number of arguments for 'srem' command")
        );
    }

    #[test]
    fn membership_reads() {
        let mut h = setup();
        assert_eq!(sorted(h.run(&["SMEMBERS", "s"])), strs(&["a", "b", "c"]));
        assert_eq!(h.run(&["SMEMBERS", "missing"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SMEMBERS", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SISMEMBER", "s", "a"]), int(1));
        assert_eq!(h.run(&["SISMEMBER", "s", "z"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "missing", "a"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "str", "a"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["SMISMEMBER", "s", "a", "z", "a"]),
            Frame::Array(vec![int(1), int(0), int(1)])
        );
        assert_eq!(
            h.run(&["SMISMEMBER", "missing", "a", "b"]),
            Frame::Array(vec![int(0), int(0)])
        );
        assert_eq!(h.run(&["SMISMEMBER", "str", "a"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["SMISMEMBER", "s"]),
            err("ERR wrong number of arguments for 'smismember' command")
        );
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        assert_eq!(h.run(&["SCARD", "missing"]), int(0));
        assert_eq!(h.run(&["SCARD", "str"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["SISMEMBER", "s"]),
            err("ERR wrong number of arguments for 'sismember' command")
        );
    }

    #[test]
    fn spop_single() {
        let mut h = setup();
        let Frame::Bulk(m) = h.run(&["SPOP", "s"]) else {
            panic!("SPOP returns a bulk")
        };
        assert!(["a", "b", "c"].contains(&&*String::from_utf8_lossy(&m)));
        assert_eq!(h.run(&["SCARD", "s"]), int(2));
        assert_eq!(
            h.run(&["SISMEMBER", "s", std::str::from_utf8(&m).unwrap()]),
            int(0)
        );
        assert_eq!(h.run(&["SPOP", "missing"]), Frame::Null);
        assert_eq!(h.run(&["SPOP", "str"]), err(WRONGTYPE));
        h.run(&["SPOP", "s"]);
        h.run(&["SPOP", "s"]);
        assert_eq!(h.run(&["EXISTS", "s"]), int(0));
        assert_eq!(h.run(&["SPOP", "s"]), Frame::Null);
    }

    #[test]
    fn spop_with_count() {
        let mut h = setup();
        let bad = err("ERR value is out of range, must be positive");
        assert_eq!(h.run(&["SPOP", "s", "-1"]), bad);
        assert_eq!(h.run(&["SPOP", "s", "abc"]), bad);
        assert_eq!(h.run(&["SPOP", "missing", "abc"]), bad);
        assert_eq!(h.run(&["SPOP", "s", "1", "2"]), err("ERR syntax error"));
        assert_eq!(h.run(&["SPOP", "s", "0"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SPOP", "missing", "2"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SPOP", "str", "0"]), err(WRONGTYPE));
        let popped = sorted(h.run(&["SPOP", "s", "2"]));
        assert_eq!(popped.len(), 2);
        let rest = sorted(h.run(&["SMEMBERS", "s"]));
        assert_eq!(rest.len(), 1);
        let mut all: Vec<String> = popped.into_iter().chain(rest).collect();
        all.sort();
        assert_eq!(all, strs(&["a", "b", "c"]));
        // A count beyond the size pops everything and deletes the key.
        assert_eq!(sorted(h.run(&["SPOP", "t", "10"])), strs(&["b", "c", "d"]));
        assert_eq!(h.run(&["EXISTS", "t"]), int(0));
    }

    /// Without peers, an SADD of members the set holds is a read, as in
    /// Redis: nothing is logged, replicated or watched. With peers it is
    /// written: the new tag is what wins over a concurrent SREM.
    #[test]
    fn sadd_of_held_members_is_written_only_with_peers() {
        for alone in [true, false] {
            let mut h = Harness::new();
            h.ks.set_alone(alone);
            assert_eq!(h.run(&["SADD", "s", "a", "b"]), int(2));
            assert_eq!(h.ks.take_pending().len(), 1);
            assert_eq!(h.run(&["SADD", "s", "a"]), int(0));
            assert_eq!(h.run(&["SADD", "s", "b", "a", "b"]), int(0));
            let written = h.ks.take_pending().len();
            assert_eq!(written, if alone { 0 } else { 2 }, "alone: {alone}");
            // A new member among them is written either way.
            assert_eq!(h.run(&["SADD", "s", "a", "c"]), int(1));
            assert_eq!(h.ks.take_pending().len(), 1);
            assert_eq!(sorted(h.run(&["SMEMBERS", "s"])), strs(&["a", "b", "c"]));
        }
    }

    #[test]
    fn sadd_to_an_expired_set_writes_even_alone() {
        let mut h = Harness::new();
        h.ks.set_alone(true);
        h.run(&["SADD", "s", "a"]);
        h.run(&["PEXPIRE", "s", "1"]);
        h.ks.take_pending();
        h.now_ms += 10;
        assert_eq!(h.run(&["SADD", "s", "a"]), int(1));
        assert_eq!(h.ks.take_pending().len(), 1);
        assert_eq!(h.run(&["SCARD", "s"]), int(1));
    }

    #[test]
    fn spop_writes_one_srem_of_the_returned_members() {
        let mut h = setup();
        h.ks.take_pending();
        let popped = sorted(h.run(&["SPOP", "s", "2"]));
        let ops = h.ks.take_pending();
        assert_eq!(ops.len(), 1);
        let text = format!("{:?}", ops[0].body);
        assert!(text.contains("SetRem"), "{text}");
        for m in popped {
            assert!(text.contains(&format!("b\"{m}\"")), "{text}");
        }
        // Nothing to pop: nothing written.
        h.run(&["SPOP", "missing", "3"]);
        h.run(&["SPOP", "s", "0"]);
        assert!(h.ks.take_pending().is_empty());
    }

    #[test]
    fn srandmember() {
        let mut h = setup();
        let Frame::Bulk(m) = h.run(&["SRANDMEMBER", "s"]) else {
            panic!("bulk expected")
        };
        assert!(["a", "b", "c"].contains(&&*String::from_utf8_lossy(&m)));
        assert_eq!(h.run(&["SCARD", "s"]), int(3), "read-only");
        assert_eq!(h.run(&["SRANDMEMBER", "missing"]), Frame::Null);
        assert_eq!(
            h.run(&["SRANDMEMBER", "missing", "5"]),
            Frame::Array(vec![])
        );
        assert_eq!(h.run(&["SRANDMEMBER", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SRANDMEMBER", "str", "2"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["SRANDMEMBER", "str", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(
            h.run(&["SRANDMEMBER", "s", "1", "2"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["SRANDMEMBER", "s", "0"]), Frame::Array(vec![]));
        // A count beyond the size: everything, once, as an array.
        let all = h.run(&["SRANDMEMBER", "s", "10"]);
        assert!(matches!(all, Frame::Array(_)));
        assert_eq!(sorted(all), strs(&["a", "b", "c"]));
        // Positive: distinct members.
        for _ in 0..20 {
            let two = sorted(h.run(&["SRANDMEMBER", "s", "2"]));
            assert_eq!(two.len(), 2);
            assert_ne!(two[0], two[1]);
        }
        // Negative: exactly that many, repeats allowed.
        let many = sorted(h.run(&["SRANDMEMBER", "s", "-50"]));
        assert_eq!(many.len(), 50);
        assert!(many.iter().all(|m| ["a", "b", "c"].contains(&m.as_str())));
        let mut distinct = many.clone();
        distinct.dedup();
        assert!(distinct.len() < many.len());
    }

    #[test]
    fn random_indices_cover_every_case() {
        assert!(rand_indices(0, 5).is_empty());
        assert!(rand_indices(5, 0).is_empty());
        assert_eq!(rand_indices(3, 3), vec![0, 1, 2]);
        assert_eq!(rand_indices(3, i64::MAX), vec![0, 1, 2]);
        assert_eq!(rand_indices(3, -7).len(), 7);
        for (len, n) in [(100, 10), (100, 90), (10, 9), (1000, 1)] {
            let mut v = rand_indices(len, n);
            assert_eq!(v.len(), n as usize);
            assert!(v.iter().all(|&i| i < len));
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), n as usize, "distinct");
        }
    }

    #[test]
    fn smove() {
        let mut h = setup();
        assert_eq!(h.run(&["SMOVE", "missing", "str", "a"]), int(0));
        assert_eq!(h.run(&["SMOVE", "str", "s", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SMOVE", "s", "str", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SMOVE", "s", "s", "a"]), int(1));
        assert_eq!(h.run(&["SMOVE", "s", "s", "zz"]), int(0));
        assert_eq!(h.run(&["SMOVE", "s", "t", "zz"]), int(0));
        h.ks.take_pending();
        assert_eq!(h.run(&["SMOVE", "s", "t", "a"]), int(1));
        let rest: Vec<u32> = h.ks.take_pending().iter().map(|o| o.txn_rest).collect();
        assert_eq!(rest, vec![1, 0], "one transaction");
        assert_eq!(h.run(&["SISMEMBER", "s", "a"]), int(0));
        assert_eq!(h.run(&["SISMEMBER", "t", "a"]), int(1));
        // Moving an element the destination holds already.
        assert_eq!(h.run(&["SMOVE", "s", "t", "b"]), int(1));
        assert_eq!(
            sorted(h.run(&["SMEMBERS", "t"])),
            strs(&["a", "b", "c", "d"])
        );
        // The last member: the source goes away, a new destination appears.
        assert_eq!(h.run(&["SMOVE", "s", "new", "c"]), int(1));
        assert_eq!(h.run(&["EXISTS", "s"]), int(0));
        assert_eq!(h.run(&["SMEMBERS", "new"]), set_of(&["c"]));
        assert_eq!(
            h.run(&["SMOVE", "s", "t"]),
            err("ERR wrong number of arguments for 'smove' command")
        );
    }

    #[test]
    fn inter_union_diff() {
        let mut h = setup();
        assert_eq!(sorted(h.run(&["SINTER", "s", "t"])), strs(&["b", "c"]));
        assert_eq!(sorted(h.run(&["SINTER", "s"])), strs(&["a", "b", "c"]));
        assert_eq!(h.run(&["SINTER", "s", "missing"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SINTER", "missing", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SINTER", "str", "missing"]), err(WRONGTYPE));
        assert_eq!(
            sorted(h.run(&["SUNION", "s", "t", "missing"])),
            strs(&["a", "b", "c", "d"])
        );
        assert_eq!(h.run(&["SUNION", "missing"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SUNION", "missing", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SDIFF", "s", "t"]), set_of(&["a"]));
        assert_eq!(
            sorted(h.run(&["SDIFF", "t", "missing"])),
            strs(&["b", "c", "d"])
        );
        assert_eq!(h.run(&["SDIFF", "missing", "t"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SDIFF", "s", "s"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SDIFF", "missing", "str"]), err(WRONGTYPE));
        assert!(matches!(h.run(&["SDIFF", "s"]), Frame::Set(_)));
        assert_eq!(
            h.run(&["SINTER"]),
            err("ERR wrong number of arguments for 'sinter' command")
        );
    }

    #[test]
    fn store_variants() {
        let mut h = setup();
        h.ks.take_pending();
        assert_eq!(h.run(&["SINTERSTORE", "dst", "s", "t"]), int(2));
        let rest: Vec<u32> = h.ks.take_pending().iter().map(|o| o.txn_rest).collect();
        assert_eq!(rest, vec![0], "nothing to delete: the add alone");
        assert_eq!(sorted(h.run(&["SMEMBERS", "dst"])), strs(&["b", "c"]));
        // Overwrites: old members, any TTL and any type go.
        assert_eq!(h.run(&["EXPIRE", "dst", "100"]), int(1));
        h.ks.take_pending();
        assert_eq!(h.run(&["SUNIONSTORE", "dst", "s", "t"]), int(4));
        let rest: Vec<u32> = h.ks.take_pending().iter().map(|o| o.txn_rest).collect();
        assert_eq!(rest, vec![1, 0], "delete and add in one transaction");
        assert_eq!(h.run(&["TTL", "dst"]), int(-1));
        assert_eq!(
            sorted(h.run(&["SMEMBERS", "dst"])),
            strs(&["a", "b", "c", "d"])
        );
        assert_eq!(h.run(&["SDIFFSTORE", "dst", "s", "t"]), int(1));
        assert_eq!(h.run(&["SMEMBERS", "dst"]), set_of(&["a"]));
        h.run(&["SET", "strdst", "v"]);
        assert_eq!(h.run(&["SUNIONSTORE", "strdst", "s"]), int(3));
        assert_eq!(h.run(&["TYPE", "strdst"]), Frame::simple("set"));
        // Sources may include the destination.
        assert_eq!(h.run(&["SUNIONSTORE", "s", "s", "t"]), int(4));
        // An empty result deletes the destination, whatever it held.
        assert_eq!(h.run(&["SINTERSTORE", "strdst", "missing"]), int(0));
        assert_eq!(h.run(&["EXISTS", "strdst"]), int(0));
        assert_eq!(h.run(&["SDIFFSTORE", "dst", "missing", "s"]), int(0));
        assert_eq!(h.run(&["EXISTS", "dst"]), int(0));
        assert_eq!(h.run(&["SDIFFSTORE", "dst", "s", "s"]), int(0));
        assert_eq!(h.run(&["SINTERSTORE", "dst", "s", "str"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["SINTERSTORE", "dst"]),
            err("ERR wrong number of arguments for 'sinterstore' command")
        );
    }

    #[test]
    fn sintercard() {
        let mut h = setup();
        assert_eq!(h.run(&["SINTERCARD", "2", "s", "t"]), int(2));
        assert_eq!(h.run(&["SINTERCARD", "1", "s"]), int(3));
        assert_eq!(h.run(&["SINTERCARD", "2", "s", "t", "LIMIT", "1"]), int(1));
        assert_eq!(h.run(&["SINTERCARD", "2", "s", "t", "limit", "0"]), int(2));
        assert_eq!(
            h.run(&["SINTERCARD", "2", "s", "t", "LIMIT", "5", "LIMIT", "1"]),
            int(1)
        );
        assert_eq!(h.run(&["SINTERCARD", "1", "missing"]), int(0));
        assert_eq!(
            h.run(&["SINTERCARD", "2", "missing", "str"]),
            err(WRONGTYPE)
        );
        let numkeys = err("ERR numkeys should be greater than 0");
        assert_eq!(h.run(&["SINTERCARD", "0", "s"]), numkeys);
        assert_eq!(h.run(&["SINTERCARD", "-1", "s"]), numkeys);
        assert_eq!(h.run(&["SINTERCARD", "abc", "s"]), numkeys);
        assert_eq!(
            h.run(&["SINTERCARD", "2", "s"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        let limit = err("ERR LIMIT can't be negative");
        assert_eq!(h.run(&["SINTERCARD", "1", "s", "LIMIT", "-1"]), limit);
        assert_eq!(h.run(&["SINTERCARD", "1", "s", "LIMIT", "x"]), limit);
        assert_eq!(
            h.run(&["SINTERCARD", "1", "s", "LIMIT"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SINTERCARD", "1", "s", "foo", "1"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SINTERCARD", "1"]),
            err("ERR wrong number of arguments for 'sintercard' command")
        );
    }

    #[test]
    fn sscan() {
        let mut h = setup();
        let reply = h.run(&["SSCAN", "s", "0"]);
        let Frame::Array(parts) = reply else { panic!() };
        assert_eq!(parts[0], Frame::bulk("0"));
        assert_eq!(sorted(parts[1].clone()), strs(&["a", "b", "c"]));
        h.run(&["SADD", "s", "ab"]);
        let Frame::Array(parts) = h.run(&["SSCAN", "s", "0", "MATCH", "a*", "COUNT", "1"]) else {
            panic!()
        };
        assert_eq!(sorted(parts[1].clone()), strs(&["a", "ab"]));
        assert_eq!(
            h.run(&["SSCAN", "missing", "0", "COUNT", "0"]),
            scan_reply(vec![])
        );
        assert_eq!(h.run(&["SSCAN", "str", "0"]), err(WRONGTYPE));
        let invalid = err("ERR invalid cursor");
        for c in ["abc", "-", "+", " 1", "1 ", "18446744073709551616"] {
            assert_eq!(h.run(&["SSCAN", "s", c]), invalid, "{c:?}");
        }
        for c in ["", "+5", "-1", "18446744073709551615", "007"] {
            assert!(
                matches!(h.run(&["SSCAN", "s", c]), Frame::Array(_)),
                "{c:?}"
            );
        }
        assert_eq!(
            h.run(&["SSCAN", "s", "0", "COUNT", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SSCAN", "s", "0", "COUNT", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["SSCAN", "s", "0", "MATCH"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SSCAN", "s", "0", "TYPE", "set"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["SSCAN", "s", "0", "NOVALUES"]),
            err("ERR NOVALUES option can only be used in HSCAN")
        );
        assert_eq!(
            h.run(&["SSCAN", "s"]),
            err("ERR wrong number of arguments for 'sscan' command")
        );
    }

    #[test]
    fn expired_sets_read_as_missing() {
        let mut h = setup();
        assert_eq!(h.run(&["PEXPIRE", "s", "10"]), int(1));
        h.now_ms += 10;
        assert_eq!(h.run(&["SCARD", "s"]), int(0));
        assert_eq!(h.run(&["SMOVE", "s", "t", "a"]), int(0));
        assert_eq!(h.run(&["SADD", "s", "x"]), int(1));
        assert_eq!(h.run(&["SMEMBERS", "s"]), set_of(&["x"]));
    }
}
