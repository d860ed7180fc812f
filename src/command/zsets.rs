//! Sorted sets: ZADD and friends, ranges by rank, score and lex (ZRANGE and
//! its older forms), removals by range, pops, random members, the algebra
//! (ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD) and ZSCAN.
//!
//! Options that decide whether to write (NX, XX, GT, LT) are applied here
//! against the scores this region sees; the operation then names exactly the
//! members and scores that change, so it replicates what the reply says.

use std::cmp::Ordering;

use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};

use super::args::{self, at, is, syntax_error};
use super::strings::write_error;
use super::{glob, CommandSpec, Ctx, DENYOOM, FAST, READONLY, WRITE};
use crate::crdt::number::{parse_f64, parse_i64};
use crate::crdt::prepare::resolve_range;
use crate::crdt::set::SetContent;
use crate::crdt::zset::ZSetContent;
use crate::crdt::{Content, Intent, WriteError};
use crate::resp::{format_double, Frame};

/// The sorted-set family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "zadd", arity: -4, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: zadd },
    CommandSpec { name: "zincrby", arity: 4, flags: WRITE | DENYOOM | FAST, keys: (1, 1, 1), run: zincrby },
    CommandSpec { name: "zrem", arity: -3, flags: WRITE | FAST, keys: (1, 1, 1), run: zrem },
    CommandSpec { name: "zscore", arity: 3, flags: READONLY | FAST, keys: (1, 1, 1), run: zscore },
    CommandSpec { name: "zmscore", arity: -3, flags: READONLY | FAST, keys: (1, 1, 1), run: zmscore },
    CommandSpec { name: "zcard", arity: 2, flags: READONLY | FAST, keys: (1, 1, 1), run: zcard },
    CommandSpec { name: "zcount", arity: 4, flags: READONLY | FAST, keys: (1, 1, 1), run: zcount },
    CommandSpec { name: "zlexcount", arity: 4, flags: READONLY | FAST, keys: (1, 1, 1), run: zlexcount },
    CommandSpec { name: "zrank", arity: -3, flags: READONLY | FAST, keys: (1, 1, 1), run: zrank },
    CommandSpec { name: "zrevrank", arity: -3, flags: READONLY | FAST, keys: (1, 1, 1), run: zrevrank },
    CommandSpec { name: "zrange", arity: -4, flags: READONLY, keys: (1, 1, 1), run: zrange },
    CommandSpec { name: "zrevrange", arity: -4, flags: READONLY, keys: (1, 1, 1), run: zrevrange },
    CommandSpec { name: "zrangebyscore", arity: -4, flags: READONLY, keys: (1, 1, 1), run: zrangebyscore },
    CommandSpec { name: "zrevrangebyscore", arity: -4, flags: READONLY, keys: (1, 1, 1), run: zrevrangebyscore },
    CommandSpec { name: "zrangebylex", arity: -4, flags: READONLY, keys: (1, 1, 1), run: zrangebylex },
    CommandSpec { name: "zrevrangebylex", arity: -4, flags: READONLY, keys: (1, 1, 1), run: zrevrangebylex },
    CommandSpec { name: "zrangestore", arity: -5, flags: WRITE | DENYOOM, keys: (1, 2, 1), run: zrangestore },
    CommandSpec { name: "zremrangebyrank", arity: 4, flags: WRITE, keys: (1, 1, 1), run: zremrangebyrank },
    CommandSpec { name: "zremrangebyscore", arity: 4, flags: WRITE, keys: (1, 1, 1), run: zremrangebyscore },
    CommandSpec { name: "zremrangebylex", arity: 4, flags: WRITE, keys: (1, 1, 1), run: zremrangebylex },
    CommandSpec { name: "zpopmin", arity: -2, flags: WRITE | FAST, keys: (1, 1, 1), run: zpopmin },
    CommandSpec { name: "zpopmax", arity: -2, flags: WRITE | FAST, keys: (1, 1, 1), run: zpopmax },
    // Keys follow a count (movable keys): no fixed key range, as in Redis.
    CommandSpec { name: "zmpop", arity: -4, flags: WRITE, keys: (0, 0, 0), run: zmpop },
    CommandSpec { name: "zrandmember", arity: -2, flags: READONLY, keys: (1, 1, 1), run: zrandmember },
    CommandSpec { name: "zunion", arity: -3, flags: READONLY, keys: (0, 0, 0), run: zunion },
    CommandSpec { name: "zinter", arity: -3, flags: READONLY, keys: (0, 0, 0), run: zinter },
    CommandSpec { name: "zdiff", arity: -3, flags: READONLY, keys: (0, 0, 0), run: zdiff },
    CommandSpec { name: "zintercard", arity: -3, flags: READONLY, keys: (0, 0, 0), run: zintercard },
    CommandSpec { name: "zunionstore", arity: -4, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: zunionstore },
    CommandSpec { name: "zinterstore", arity: -4, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: zinterstore },
    CommandSpec { name: "zdiffstore", arity: -4, flags: WRITE | DENYOOM, keys: (1, 1, 1), run: zdiffstore },
    CommandSpec { name: "zscan", arity: -3, flags: READONLY, keys: (1, 1, 1), run: zscan },
];

/// Reads a sorted-set key without copying it: `Ok(None)` if absent,
/// WRONGTYPE for another type.
fn read_zset<'a>(ctx: &'a Ctx<'_>, key: &[u8]) -> Result<Option<&'a ZSetContent>, Frame> {
    match ctx.ks.get(key, ctx.now_ms) {
        None => Ok(None),
        Some(Content::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(write_error(WriteError::WrongType)),
    }
}

/// The score `member` shows after a write (read back rather than computed,
/// since concurrent increments are summed exactly by the CRDT).
fn score_now(ctx: &Ctx, key: &[u8], member: &[u8]) -> Option<f64> {
    match ctx.ks.get(key, ctx.now_ms) {
        Some(Content::ZSet(z)) => z.score(member),
        _ => None,
    }
}

fn owned(items: Vec<(&Bytes, f64)>) -> Vec<(Bytes, f64)> {
    items.into_iter().map(|(m, s)| (m.clone(), s)).collect()
}

/// Members with their scores: `[m, s]` pairs when `nested`, else one flat
/// array (RESP2's shape, and ZPOPMIN's without a count).
fn pairs(items: Vec<(Bytes, f64)>, nested: bool) -> Frame {
    if nested {
        Frame::Array(
            items
                .into_iter()
                .map(|(m, s)| Frame::Array(vec![Frame::Bulk(m), Frame::Double(s)]))
                .collect(),
        )
    } else {
        Frame::Array(
            items
                .into_iter()
                .flat_map(|(m, s)| [Frame::Bulk(m), Frame::Double(s)])
                .collect(),
        )
    }
}

/// A range reply: members alone, or with scores (pairs in RESP3, where
/// clients need the order kept, so not a map).
fn scored(ctx: &Ctx, items: Vec<(Bytes, f64)>, withscores: bool) -> Frame {
    if withscores {
        pairs(items, ctx.client.resp >= 3)
    } else {
        Frame::Array(items.into_iter().map(|(m, _)| Frame::Bulk(m)).collect())
    }
}

/// A score argument, read like Redis' `getDoubleFromObject` (`strtod` with
/// overflow and underflow to zero refused), so `1e400` is not a valid float.
fn score_arg(arg: &[u8]) -> Result<f64, Frame> {
    let v = args::float(arg)?;
    let lower = arg.to_ascii_lowercase();
    let digits = lower
        .strip_prefix(b"+")
        .or_else(|| lower.strip_prefix(b"-"))
        .unwrap_or(&lower);
    let mantissa = digits.split(|&b| b == b'e').next().unwrap_or_default();
    let overflow = v.is_infinite() && digits != b"inf" && digits != b"infinity";
    let underflow = v == 0.0 && mantissa.iter().any(|b| (b'1'..=b'9').contains(b));
    if overflow || underflow {
        return Err(args::not_float());
    }
    Ok(v)
}

/// An integer that must be at least `min`; anything else is `msg` (Redis'
/// `getRangeLongFromObjectOrReply` with a message).
pub(super) fn at_least(arg: &[u8], min: i64, msg: &str) -> Result<i64, Frame> {
    match parse_i64(arg) {
        Some(n) if n >= min => Ok(n),
        _ => Err(Frame::error(msg)),
    }
}

/// The `[COUNT n]` tail of LMPOP and ZMPOP (`None`: no COUNT given).
pub(super) fn mpop_count(tail: &[Bytes]) -> Result<Option<usize>, Frame> {
    match tail {
        [] => Ok(None),
        [word, n] if is(word, "count") => {
            at_least(n, 1, "ERR count should be greater than 0").map(|n| Some(n as usize))
        }
        _ => Err(syntax_error()),
    }
}

/// A score as it is stored: `-0` becomes `0`, as Redis' small sorted sets
/// (listpacks) store it, so ZSCORE shows `0` like ZRANGE does. (ZUNION and
/// ZINTER replies, computed without storing, keep the sign, as in Redis.)
fn stored(score: f64) -> f64 {
    score + 0.0
}

/// Replaces `dst` with `items` (deleting it when there are none) as one
/// transaction, whatever type it held, as Redis' `setKey` does.
fn store(ctx: &mut Ctx, dst: Bytes, items: Vec<(Bytes, f64)>) -> Frame {
    let n = items.len() as i64;
    let items: Vec<(Bytes, f64)> = items.into_iter().map(|(m, s)| (m, stored(s))).collect();
    let now = ctx.now_ms;
    ctx.ks.begin_txn();
    let result = (|| -> Result<(), WriteError> {
        ctx.ks.write(dst.clone(), Intent::Del, now)?;
        if !items.is_empty() {
            ctx.ks.write(dst, Intent::ZAdd(items), now)?;
        }
        Ok(())
    })();
    ctx.ks.commit_txn();
    match result {
        Ok(()) => Frame::Integer(n),
        Err(e) => write_error(e),
    }
}

// ---------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM, reads of single members.

/// ZADD's options.
#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

fn zadd(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    zadd_parse(a)
        .and_then(|(f, members)| add_members(ctx, &a[1], members, &f))
        .unwrap_or_else(|e| e)
}

fn zadd_parse(a: &[Bytes]) -> Result<(AddFlags, Vec<(f64, Bytes)>), Frame> {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < a.len() {
        let opt = &a[i];
        if is(opt, "nx") {
            f.nx = true;
        } else if is(opt, "xx") {
            f.xx = true;
        } else if is(opt, "gt") {
            f.gt = true;
        } else if is(opt, "lt") {
            f.lt = true;
        } else if is(opt, "ch") {
            f.ch = true;
        } else if is(opt, "incr") {
            f.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(syntax_error());
    }
    if f.nx && f.xx {
        return Err(Frame::error(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(Frame::error(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && rest.len() > 2 {
        return Err(Frame::error(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    // Every score is checked before anything is written.
    let members = rest
        .chunks(2)
        .map(|p| Ok((score_arg(&p[0])?, p[1].clone())))
        .collect::<Result<Vec<_>, Frame>>()?;
    Ok((f, members))
}

/// ZADD's core, shared with ZINCRBY: applies the options to the current
/// scores, member after member as Redis does (a member may repeat), and
/// writes only what changes.
fn add_members(
    ctx: &mut Ctx,
    key: &Bytes,
    members: Vec<(f64, Bytes)>,
    f: &AddFlags,
) -> Result<Frame, Frame> {
    let z = read_zset(ctx, key)?;
    if f.incr {
        let Some((by, member)) = members.into_iter().next() else {
            return Err(syntax_error());
        };
        if f.xx && z.is_none() {
            return Ok(Frame::Null);
        }
        match z.and_then(|z| z.score(&member)) {
            Some(_) if f.nx => return Ok(Frame::Null),
            Some(cur) => {
                let next = cur + by;
                if next.is_nan() {
                    return Err(write_error(WriteError::ScoreNaN));
                }
                if (f.lt && next >= cur) || (f.gt && next <= cur) {
                    return Ok(Frame::Null);
                }
                if next == cur {
                    return Ok(Frame::Double(cur));
                }
            }
            None if f.xx => return Ok(Frame::Null),
            None => {}
        }
        ctx.write(key.clone(), Intent::ZIncrBy(member.clone(), by))?;
        return Ok(score_now(ctx, key, &member).map_or(Frame::Null, Frame::Double));
    }
    if f.xx && z.is_none() {
        return Ok(Frame::Integer(0));
    }
    let mut changed: IndexMap<Bytes, f64, foldhash::fast::RandomState> = IndexMap::default();
    let (mut added, mut updated) = (0, 0);
    for (score, member) in members {
        let cur = changed
            .get(&member)
            .copied()
            .or_else(|| z.and_then(|z| z.score(&member)));
        match cur {
            Some(_) if f.nx => {}
            Some(c) if (f.lt && score >= c) || (f.gt && score <= c) => {}
            Some(c) => {
                if score != c {
                    updated += 1;
                    changed.insert(member, stored(score));
                }
            }
            None if f.xx => {}
            None => {
                added += 1;
                changed.insert(member, stored(score));
            }
        }
    }
    if !changed.is_empty() {
        ctx.write(key.clone(), Intent::ZAdd(changed.into_iter().collect()))?;
    }
    Ok(Frame::Integer(if f.ch { added + updated } else { added }))
}

fn zincrby(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let flags = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    score_arg(&a[2])
        .and_then(|by| add_members(ctx, &a[1], vec![(by, at(a, 3))], &flags))
        .unwrap_or_else(|e| e)
}

/// Removes members known to be present; returns how many.
fn remove(ctx: &mut Ctx, key: &[u8], members: Vec<Bytes>) -> Frame {
    if members.is_empty() {
        return Frame::Integer(0);
    }
    let n = members.len() as i64;
    match ctx.write(Bytes::copy_from_slice(key), Intent::ZRem(members)) {
        Ok(_) => Frame::Integer(n),
        Err(e) => e,
    }
}

fn zrem(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let present: Vec<Bytes> = match read_zset(ctx, &a[1]) {
        Ok(Some(z)) => a[2..]
            .iter()
            .filter(|m| z.score(m).is_some())
            .cloned()
            .collect::<IndexSet<Bytes>>()
            .into_iter()
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return e,
    };
    remove(ctx, &a[1], present)
}

fn zscore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_zset(ctx, &a[1]) {
        Ok(z) => z
            .and_then(|z| z.score(&a[2]))
            .map_or(Frame::Null, Frame::Double),
        Err(e) => e,
    }
}

fn zmscore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_zset(ctx, &a[1]) {
        Ok(z) => Frame::Array(
            a[2..]
                .iter()
                .map(|m| {
                    z.and_then(|z| z.score(m))
                        .map_or(Frame::Null, Frame::Double)
                })
                .collect(),
        ),
        Err(e) => e,
    }
}

fn zcard(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match read_zset(ctx, &a[1]) {
        Ok(z) => Frame::Integer(z.map_or(0, |z| z.len() as i64)),
        Err(e) => e,
    }
}

fn zrank(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    rank_generic(ctx, a, false)
}

fn zrevrank(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    rank_generic(ctx, a, true)
}

/// ZRANK / ZREVRANK `key member [WITHSCORE]` (the option is Redis 7.2's).
fn rank_generic(ctx: &mut Ctx, a: &[Bytes], rev: bool) -> Frame {
    if a.len() > 4 {
        return super::wrong_arity(ctx.client.current);
    }
    let withscore = a.len() == 4;
    if withscore && !is(&a[3], "withscore") {
        return syntax_error();
    }
    let nil = if withscore {
        Frame::NullArray
    } else {
        Frame::Null
    };
    let z = match read_zset(ctx, &a[1]) {
        Ok(Some(z)) => z,
        Ok(None) => return nil,
        Err(e) => return e,
    };
    let (Some(rank), Some(score)) = (z.rank(&a[2]), z.score(&a[2])) else {
        return nil;
    };
    let rank = (if rev { z.len() - 1 - rank } else { rank }) as i64;
    if withscore {
        Frame::Array(vec![Frame::Integer(rank), Frame::Double(score)])
    } else {
        Frame::Integer(rank)
    }
}

// ---------------------------------------------------------------------------
// Ranges.

/// One end of a score range: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
#[derive(Clone, Copy, Debug)]
struct ScoreBound {
    value: f64,
    excl: bool,
}

/// One end of a lex range: `-`, `+`, `[a` (inclusive), `(a` (exclusive).
#[derive(Clone, Debug)]
enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

impl LexBound {
    fn excl(&self) -> bool {
        !matches!(self, LexBound::Incl(_))
    }

    /// Redis' `sdscmplex`: `-` below everything, `+` above.
    fn cmp(&self, other: &LexBound) -> Ordering {
        use LexBound::*;
        match (self, other) {
            (Min, Min) | (Max, Max) => Ordering::Equal,
            (Min, _) | (_, Max) => Ordering::Less,
            (Max, _) | (_, Min) => Ordering::Greater,
            (Incl(x) | Excl(x), Incl(y) | Excl(y)) => x.cmp(y),
        }
    }
}

/// A range by score or by member (lex), each end open or closed.
#[derive(Clone, Debug)]
enum Bounds {
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

impl Bounds {
    /// Ranges that hold nothing: min above max, or equal with an open end.
    fn is_empty(&self) -> bool {
        match self {
            Bounds::Score(min, max) => {
                min.value > max.value || (min.value == max.value && (min.excl || max.excl))
            }
            Bounds::Lex(min, max) => match min.cmp(max) {
                Ordering::Greater => true,
                Ordering::Equal => min.excl() || max.excl(),
                Ordering::Less => false,
            },
        }
    }

    fn above_min(&self, member: &[u8], score: f64) -> bool {
        match self {
            Bounds::Score(min, _) if min.excl => score > min.value,
            Bounds::Score(min, _) => score >= min.value,
            Bounds::Lex(LexBound::Min, _) => true,
            Bounds::Lex(LexBound::Max, _) => false,
            Bounds::Lex(LexBound::Incl(m), _) => member >= &m[..],
            Bounds::Lex(LexBound::Excl(m), _) => member > &m[..],
        }
    }

    fn below_max(&self, member: &[u8], score: f64) -> bool {
        match self {
            Bounds::Score(_, max) if max.excl => score < max.value,
            Bounds::Score(_, max) => score <= max.value,
            Bounds::Lex(_, LexBound::Max) => true,
            Bounds::Lex(_, LexBound::Min) => false,
            Bounds::Lex(_, LexBound::Incl(m)) => member <= &m[..],
            Bounds::Lex(_, LexBound::Excl(m)) => member < &m[..],
        }
    }
}

/// A score-range end, read as Redis' `zslParseRange` does (plain `strtod`:
/// an empty number is 0, overflow gives an infinity).
fn score_bound(arg: &[u8]) -> Option<ScoreBound> {
    let (excl, text) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    let value = if text.is_empty() {
        0.0
    } else {
        parse_f64(text.trim_ascii_start())?
    };
    Some(ScoreBound { value, excl })
}

fn score_range(min: &[u8], max: &[u8]) -> Result<Bounds, Frame> {
    match (score_bound(min), score_bound(max)) {
        (Some(lo), Some(hi)) => Ok(Bounds::Score(lo, hi)),
        _ => Err(Frame::error("ERR min or max is not a float")),
    }
}

fn lex_bound(arg: &Bytes) -> Option<LexBound> {
    match arg.first()? {
        b'-' if arg.len() == 1 => Some(LexBound::Min),
        b'+' if arg.len() == 1 => Some(LexBound::Max),
        b'[' => Some(LexBound::Incl(arg.slice(1..))),
        b'(' => Some(LexBound::Excl(arg.slice(1..))),
        _ => None,
    }
}

fn lex_range(min: &Bytes, max: &Bytes) -> Result<Bounds, Frame> {
    match (lex_bound(min), lex_bound(max)) {
        (Some(lo), Some(hi)) => Ok(Bounds::Lex(lo, hi)),
        _ => Err(Frame::error("ERR min or max not valid string range item")),
    }
}

/// The members inside `b`, walked as Redis walks a small (listpack) sorted
/// set: from the first member past the near end, while inside the far end;
/// `offset` skipped first (negative: nothing), at most `limit` (negative:
/// no limit). Members with different scores are not in lex order, so a lex
/// range over them gives what Redis gives, not a filter.
fn walk<'z>(
    z: &'z ZSetContent,
    b: &Bounds,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(&'z Bytes, f64)> {
    let (Some(first), Some(last)) = (z.iter().next(), z.iter().next_back()) else {
        return Vec::new();
    };
    if b.is_empty() || offset < 0 || !b.above_min(last.0, last.1) || !b.below_max(first.0, first.1)
    {
        return Vec::new();
    }
    let enter = |m: &[u8], s: f64| {
        if rev {
            b.below_max(m, s)
        } else {
            b.above_min(m, s)
        }
    };
    let stay = |m: &[u8], s: f64| {
        if rev {
            b.above_min(m, s)
        } else {
            b.below_max(m, s)
        }
    };
    let members: Box<dyn Iterator<Item = (&'z Bytes, f64)>> = if rev {
        Box::new(z.iter().rev())
    } else {
        Box::new(z.iter())
    };
    let mut members = members.skip_while(|&(m, s)| !enter(m, s)).peekable();
    if !members.peek().is_some_and(|&(m, s)| stay(m, s)) {
        return Vec::new();
    }
    members
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take_while(|&(m, s)| stay(m, s))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
}

/// Members ranked `start..=stop` (negative from the end), from the top when
/// `rev`.
fn by_rank(z: &ZSetContent, start: i64, stop: i64, rev: bool) -> Vec<(&Bytes, f64)> {
    let Some((s, e)) = resolve_range(start, stop, z.len()) else {
        return Vec::new();
    };
    if rev {
        z.iter().rev().skip(s).take(e - s + 1).collect()
    } else {
        z.iter().skip(s).take(e - s + 1).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// What a range selects.
#[derive(Debug)]
enum Select {
    Rank(i64, i64),
    Bounds(Bounds),
}

/// A parsed ZRANGE (or older form).
#[derive(Debug)]
struct RangeQuery {
    select: Select,
    rev: bool,
    offset: i64,
    limit: i64,
    withscores: bool,
}

impl RangeQuery {
    fn run<'z>(&self, z: &'z ZSetContent) -> Vec<(&'z Bytes, f64)> {
        match &self.select {
            Select::Rank(start, stop) => by_rank(z, *start, *stop, self.rev),
            Select::Bounds(b) => walk(z, b, self.rev, self.offset, self.limit),
        }
    }
}

/// Parses `<key> <min> <max> [options]` with the key at `a[key_at]`, as
/// Redis' `zrangeGenericCommand`: the older commands fix `kind` and `rev`,
/// ZRANGE and ZRANGESTORE take them from BYSCORE, BYLEX and REV.
fn parse_range(
    a: &[Bytes],
    key_at: usize,
    store: bool,
    kind: Option<RangeKind>,
    rev: Option<bool>,
) -> Result<RangeQuery, Frame> {
    let (mut kind, mut rev) = (kind, rev);
    let (mut withscores, mut offset, mut limit) = (false, 0, -1);
    let mut j = key_at + 3;
    while j < a.len() {
        let opt = &a[j];
        if !store && is(opt, "withscores") {
            withscores = true;
        } else if is(opt, "limit") && a.len() - j > 2 {
            offset = args::int(&a[j + 1])?;
            limit = args::int(&a[j + 2])?;
            j += 2;
        } else if rev.is_none() && is(opt, "rev") {
            rev = Some(true);
        } else if kind.is_none() && is(opt, "bylex") {
            kind = Some(RangeKind::Lex);
        } else if kind.is_none() && is(opt, "byscore") {
            kind = Some(RangeKind::Score);
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    let kind = kind.unwrap_or(RangeKind::Rank);
    let rev = rev.unwrap_or(false);
    if limit != -1 && kind == RangeKind::Rank {
        return Err(Frame::error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == RangeKind::Lex {
        return Err(Frame::error(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // Reversed score and lex ranges are given as <max> <min>.
    let (lo, hi) = if rev && kind != RangeKind::Rank {
        (&a[key_at + 2], &a[key_at + 1])
    } else {
        (&a[key_at + 1], &a[key_at + 2])
    };
    let select = match kind {
        RangeKind::Rank => Select::Rank(args::int(lo)?, args::int(hi)?),
        RangeKind::Score => Select::Bounds(score_range(lo, hi)?),
        RangeKind::Lex => Select::Bounds(lex_range(lo, hi)?),
    };
    Ok(RangeQuery {
        select,
        rev,
        offset,
        limit,
        withscores,
    })
}

fn range_generic(ctx: &mut Ctx, a: &[Bytes], kind: Option<RangeKind>, rev: Option<bool>) -> Frame {
    let q = match parse_range(a, 1, false, kind, rev) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let items = match read_zset(ctx, &a[1]) {
        Ok(Some(z)) => owned(q.run(z)),
        Ok(None) => Vec::new(),
        Err(e) => return e,
    };
    scored(ctx, items, q.withscores)
}

fn zrange(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    range_generic(ctx, a, None, None)
}

fn zrevrange(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    range_generic(ctx, a, Some(RangeKind::Rank), Some(true))
}

fn zrangebyscore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    range_generic(ctx, a, Some(RangeKind::Score), Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    range_generic(ctx, a, Some(RangeKind::Score), Some(true))
}

fn zrangebylex(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    range_generic(ctx, a, Some(RangeKind::Lex), Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    range_generic(ctx, a, Some(RangeKind::Lex), Some(true))
}

fn zrangestore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let q = match parse_range(a, 2, true, None, None) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let items = match read_zset(ctx, &a[2]) {
        Ok(Some(z)) => owned(q.run(z)),
        Ok(None) => Vec::new(),
        Err(e) => return e,
    };
    store(ctx, at(a, 1), items)
}

/// ZCOUNT / ZLEXCOUNT: the range is checked before the key, as in Redis.
fn count_in(ctx: &mut Ctx, key: &[u8], bounds: Result<Bounds, Frame>) -> Frame {
    let b = match bounds {
        Ok(b) => b,
        Err(e) => return e,
    };
    match read_zset(ctx, key) {
        Ok(z) => Frame::Integer(z.map_or(0, |z| walk(z, &b, false, 0, -1).len() as i64)),
        Err(e) => e,
    }
}

fn zcount(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    count_in(ctx, &a[1], score_range(&a[2], &a[3]))
}

fn zlexcount(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    count_in(ctx, &a[1], lex_range(&a[2], &a[3]))
}

/// ZREMRANGEBY*: removes what the range selects; the range is checked first.
fn remrange(ctx: &mut Ctx, a: &[Bytes], kind: RangeKind) -> Frame {
    let select = match kind {
        RangeKind::Rank => match (args::int(&a[2]), args::int(&a[3])) {
            (Ok(start), Ok(stop)) => Ok(Select::Rank(start, stop)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        RangeKind::Score => score_range(&a[2], &a[3]).map(Select::Bounds),
        RangeKind::Lex => lex_range(&a[2], &a[3]).map(Select::Bounds),
    };
    let q = match select {
        Ok(select) => RangeQuery {
            select,
            rev: false,
            offset: 0,
            limit: -1,
            withscores: false,
        },
        Err(e) => return e,
    };
    let members = match read_zset(ctx, &a[1]) {
        Ok(Some(z)) => q.run(z).into_iter().map(|(m, _)| m.clone()).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return e,
    };
    remove(ctx, &a[1], members)
}

fn zremrangebyrank(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    remrange(ctx, a, RangeKind::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    remrange(ctx, a, RangeKind::Score)
}

fn zremrangebylex(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    remrange(ctx, a, RangeKind::Lex)
}

// ---------------------------------------------------------------------------
// Pops and random members.

/// Pops up to `count` members from the low (or, with `max`, high) end. The
/// operation names the members popped, so a concurrent add elsewhere survives.
fn pop_members(
    ctx: &mut Ctx,
    key: &Bytes,
    max: bool,
    count: usize,
) -> Result<Vec<(Bytes, f64)>, Frame> {
    let items = match read_zset(ctx, key)? {
        Some(z) if max => owned(z.iter().rev().take(count).collect()),
        Some(z) => owned(z.iter().take(count).collect()),
        None => Vec::new(),
    };
    if !items.is_empty() {
        let members = items.iter().map(|(m, _)| m.clone()).collect();
        ctx.write(key.clone(), Intent::ZRem(members))?;
    }
    Ok(items)
}

/// ZPOPMIN / ZPOPMAX `key [count]`: a flat [member, score] array, except in
/// RESP3 with a count (pairs).
fn zpop(ctx: &mut Ctx, a: &[Bytes], max: bool) -> Frame {
    if a.len() > 3 {
        return syntax_error();
    }
    let count = match a.get(2) {
        None => None,
        Some(c) => match at_least(c, 0, "ERR value is out of range, must be positive") {
            Ok(n) => Some(n as usize),
            Err(e) => return e,
        },
    };
    // The type is checked before a zero count is served.
    match read_zset(ctx, &a[1]) {
        Ok(Some(_)) if count != Some(0) => {}
        Ok(_) => return Frame::empty_array(),
        Err(e) => return e,
    }
    match pop_members(ctx, &a[1], max, count.unwrap_or(1)) {
        Ok(items) => pairs(items, ctx.client.resp >= 3 && count.is_some()),
        Err(e) => e,
    }
}

fn zpopmin(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    zpop(ctx, a, false)
}

fn zpopmax(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    zpop(ctx, a, true)
}

/// ZMPOP `numkeys key… MIN|MAX [COUNT n]`: pops from the first non-empty key.
fn zmpop(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let numkeys = match at_least(&a[1], 1, "ERR numkeys should be greater than 0") {
        Ok(n) => n as usize,
        Err(e) => return e,
    };
    let Some(where_at) = numkeys.checked_add(2).filter(|&w| w < a.len()) else {
        return syntax_error();
    };
    let max = if is(&a[where_at], "max") {
        true
    } else if is(&a[where_at], "min") {
        false
    } else {
        return syntax_error();
    };
    let count = match mpop_count(&a[where_at + 1..]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    for key in &a[2..where_at] {
        match read_zset(ctx, key) {
            Ok(Some(z)) if !z.is_empty() => {}
            Ok(_) => continue,
            Err(e) => return e,
        }
        return match pop_members(ctx, key, max, count.unwrap_or(1)) {
            Ok(items) => Frame::Array(vec![Frame::Bulk(key.clone()), pairs(items, true)]),
            Err(e) => e,
        };
    }
    Frame::NullArray
}

/// ZRANDMEMBER `key [count [WITHSCORES]]`. A positive count gives distinct
/// members (the whole set, in order, when it is not larger), a negative one
/// allows repeats.
fn zrandmember(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    if a.len() == 2 {
        return match read_zset(ctx, &a[1]) {
            Ok(Some(z)) if !z.is_empty() => z
                .member_at(fastrand::usize(..z.len()))
                .map_or(Frame::Null, |(m, _)| Frame::Bulk(m.clone())),
            Ok(_) => Frame::Null,
            Err(e) => e,
        };
    }
    let n = match parse_i64(&a[2]) {
        None => return args::not_integer(),
        Some(i64::MIN) => {
            return Frame::error(format!(
                "ERR value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            ))
        }
        Some(n) => n,
    };
    if a.len() > 4 || (a.len() == 4 && !is(&a[3], "withscores")) {
        return syntax_error();
    }
    let withscores = a.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
        return Frame::error("ERR value is out of range");
    }
    let z = match read_zset(ctx, &a[1]) {
        Ok(Some(z)) if n != 0 && !z.is_empty() => z,
        Ok(_) => return Frame::empty_array(),
        Err(e) => return e,
    };
    let len = z.len();
    let pick = |i: usize| z.member_at(i).map(|(m, s)| (m.clone(), s));
    let items: Vec<(Bytes, f64)> = if n < 0 {
        (0..n.unsigned_abs())
            .filter_map(|_| pick(fastrand::usize(..len)))
            .collect()
    } else if n as u64 >= len as u64 {
        // Redis walks a whole sorted set from the top here.
        owned(z.iter().rev().collect())
    } else {
        // `n` distinct ranks by a partial Fisher-Yates shuffle, given in
        // score order as Redis does for a small sorted set.
        let n = n as usize;
        let mut ranks: Vec<usize> = (0..len).collect();
        for i in 0..n {
            ranks.swap(i, fastrand::usize(i..len));
        }
        let mut chosen = vec![false; len];
        for &r in &ranks[..n] {
            chosen[r] = true;
        }
        owned(
            z.iter()
                .zip(chosen)
                .filter(|(_, c)| *c)
                .map(|(m, _)| m)
                .collect(),
        )
    };
    scored(ctx, items, withscores)
}

// ---------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD.

#[derive(Clone, Copy, Debug, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, Debug)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// An input of the algebra: a sorted set, or a plain set whose members all
/// score 1 (Redis accepts both).
#[derive(Clone, Copy)]
enum Source<'c> {
    Missing,
    ZSet(&'c ZSetContent),
    Set(&'c SetContent),
}

impl<'c> Source<'c> {
    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::ZSet(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn members(&self) -> Box<dyn Iterator<Item = (&'c Bytes, f64)> + 'c> {
        match *self {
            Source::Missing => Box::new(std::iter::empty()),
            Source::ZSet(z) => Box::new(z.iter()),
            Source::Set(s) => Box::new(s.members().map(|m| (m, 1.0))),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::ZSet(z) => z.score(member),
            Source::Set(s) => s.contains(member).then_some(1.0),
        }
    }
}

/// Parsed arguments of the algebra.
struct Combine<'c> {
    /// Each input with its weight.
    sources: Vec<(Source<'c>, f64)>,
    aggregate: Aggregate,
    withscores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    limit: usize,
}

/// Parses `numkeys key… [WEIGHTS w…] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`
/// (or ZINTERCARD's `[LIMIT n]`) with the count at `a[at]`. The keys are
/// read, and their types checked, before the options, as Redis does.
fn parse_combine<'c>(
    ctx: &'c Ctx<'_>,
    a: &[Bytes],
    at: usize,
    op: SetOp,
    store: bool,
    card: bool,
) -> Result<Combine<'c>, Frame> {
    let n = args::int(&a[at])?;
    if n < 1 {
        return Err(Frame::error(format!(
            "ERR at least 1 input key is needed for '{}' command",
            ctx.client.current
        )));
    }
    let keys_end = match usize::try_from(n).ok().and_then(|n| n.checked_add(at + 1)) {
        Some(end) if end <= a.len() => end,
        _ => return Err(syntax_error()),
    };
    let mut sources = Vec::with_capacity(keys_end - at - 1);
    for key in &a[at + 1..keys_end] {
        let source = match ctx.ks.get(key, ctx.now_ms) {
            None => Source::Missing,
            Some(Content::ZSet(z)) => Source::ZSet(z),
            Some(Content::Set(s)) => Source::Set(s),
            Some(_) => return Err(write_error(WriteError::WrongType)),
        };
        sources.push((source, 1.0));
    }
    let mut c = Combine {
        sources,
        aggregate: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    let n = c.sources.len();
    let mut j = keys_end;
    while j < a.len() {
        let remaining = a.len() - j;
        let opt = &a[j];
        if op != SetOp::Diff && !card && remaining > n && is(opt, "weights") {
            for (i, (_, w)) in c.sources.iter_mut().enumerate() {
                *w = score_arg(&a[j + 1 + i])
                    .map_err(|_| Frame::error("ERR weight value is not a float"))?;
            }
            j += n + 1;
        } else if op != SetOp::Diff && !card && remaining >= 2 && is(opt, "aggregate") {
            let how = &a[j + 1];
            c.aggregate = if is(how, "sum") {
                Aggregate::Sum
            } else if is(how, "min") {
                Aggregate::Min
            } else if is(how, "max") {
                Aggregate::Max
            } else {
                return Err(syntax_error());
            };
            j += 2;
        } else if !store && !card && is(opt, "withscores") {
            c.withscores = true;
            j += 1;
        } else if card && remaining >= 2 && is(opt, "limit") {
            c.limit = at_least(&a[j + 1], 0, "ERR LIMIT can't be negative")? as usize;
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok(c)
}

/// Folds `v` into `target` as Redis' `zunionInterAggregate` (an infinite
/// sum of opposite signs is 0; a NaN operand of MIN/MAX is ignored).
fn aggregate(target: &mut f64, v: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min if v < *target => *target = v,
        Aggregate::Max if v > *target => *target = v,
        Aggregate::Min | Aggregate::Max => {}
    }
}

/// `w * s`, with Redis' convention that `0 * inf` is 0.
fn weighted(w: f64, s: f64) -> f64 {
    let v = w * s;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// Computes the union, intersection or difference, ordered by (score,
/// member). Inputs are folded smallest first, as Redis does, so sums round
/// the same way.
fn combine(c: &Combine, op: SetOp) -> Vec<(Bytes, f64)> {
    let mut sources = c.sources.clone();
    if op != SetOp::Diff {
        sources.sort_by_key(|(s, _)| s.len());
    }
    let Some((&(first, w0), rest)) = sources.split_first() else {
        return Vec::new();
    };
    let mut out: Vec<(Bytes, f64)> = match op {
        SetOp::Inter => first
            .members()
            .filter_map(|(m, s)| {
                let mut score = weighted(w0, s);
                for (src, w) in rest {
                    aggregate(&mut score, src.score(m)? * w, c.aggregate);
                }
                Some((m.clone(), score))
            })
            .take(if c.limit == 0 { usize::MAX } else { c.limit })
            .collect(),
        SetOp::Union => {
            let mut acc: IndexMap<&Bytes, f64> = IndexMap::new();
            for (src, w) in &sources {
                for (m, s) in src.members() {
                    let v = weighted(*w, s);
                    acc.entry(m)
                        .and_modify(|t| aggregate(t, v, c.aggregate))
                        .or_insert(v);
                }
            }
            acc.into_iter().map(|(m, s)| (m.clone(), s)).collect()
        }
        SetOp::Diff => first
            .members()
            .filter(|(m, _)| rest.iter().all(|(src, _)| src.score(m).is_none()))
            .map(|(m, s)| (m.clone(), s))
            .collect(),
    };
    out.sort_by(|x, y| {
        x.1.partial_cmp(&y.1)
            .unwrap_or(Ordering::Equal)
            .then_with(|| x.0.cmp(&y.0))
    });
    out
}

fn combine_reply(ctx: &mut Ctx, a: &[Bytes], op: SetOp) -> Frame {
    let (items, withscores) = match parse_combine(ctx, a, 1, op, false, false) {
        Ok(c) => (combine(&c, op), c.withscores),
        Err(e) => return e,
    };
    scored(ctx, items, withscores)
}

fn combine_store(ctx: &mut Ctx, a: &[Bytes], op: SetOp) -> Frame {
    let items = match parse_combine(ctx, a, 2, op, true, false) {
        Ok(c) => combine(&c, op),
        Err(e) => return e,
    };
    store(ctx, at(a, 1), items)
}

fn zunion(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    combine_reply(ctx, a, SetOp::Union)
}

fn zinter(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    combine_reply(ctx, a, SetOp::Inter)
}

fn zdiff(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    combine_reply(ctx, a, SetOp::Diff)
}

fn zunionstore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    combine_store(ctx, a, SetOp::Union)
}

fn zinterstore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    combine_store(ctx, a, SetOp::Inter)
}

fn zdiffstore(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    combine_store(ctx, a, SetOp::Diff)
}

fn zintercard(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    match parse_combine(ctx, a, 1, SetOp::Inter, false, true) {
        Ok(c) => Frame::Integer(combine(&c, SetOp::Inter).len() as i64),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// ZSCAN.

/// ZSCAN `key cursor [MATCH pattern] [COUNT n]`: everything in one call
/// (cursor 0 back), in score order, as Redis does for a small sorted set.
/// Scores are bulk strings in both protocols.
fn zscan(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let cursor = std::str::from_utf8(&a[2])
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    if cursor.is_none() {
        return Frame::error("ERR invalid cursor");
    }
    let z = match read_zset(ctx, &a[1]) {
        Ok(Some(z)) => z,
        Ok(None) => return Frame::Array(vec![Frame::bulk("0"), Frame::empty_array()]),
        Err(e) => return e,
    };
    let mut pattern: Option<&Bytes> = None;
    let mut i = 3;
    while i < a.len() {
        if i + 1 >= a.len() {
            return syntax_error();
        }
        if is(&a[i], "count") {
            match args::int(&a[i + 1]) {
                Ok(c) if c >= 1 => {}
                Ok(_) => return syntax_error(),
                Err(e) => return e,
            }
        } else if is(&a[i], "match") {
            pattern = Some(&a[i + 1]);
        } else {
            return syntax_error();
        }
        i += 2;
    }
    let items = z
        .iter()
        .filter(|(m, _)| pattern.is_none_or(|p| glob::matches(p, m)))
        .flat_map(|(m, s)| [Frame::Bulk(m.clone()), Frame::bulk(format_double(s))])
        .collect();
    Frame::Array(vec![Frame::bulk("0"), Frame::Array(items)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::Harness;
    use crate::resp::Protocol;

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

    /// WITHSCORES in RESP2: one flat array.
    fn flat(items: &[(&str, f64)]) -> Frame {
        Frame::Array(
            items
                .iter()
                .flat_map(|&(m, s)| [bulk(m), Frame::Double(s)])
                .collect(),
        )
    }

    /// WITHSCORES in RESP3: [member, score] pairs.
    fn nested(items: &[(&str, f64)]) -> Frame {
        Frame::Array(
            items
                .iter()
                .map(|&(m, s)| Frame::Array(vec![bulk(m), Frame::Double(s)]))
                .collect(),
        )
    }

    fn empty() -> Frame {
        Frame::empty_array()
    }

    /// A harness holding z = {e:0, a:1, b:2, c:3, d:4} and a string "str".
    fn setup() -> Harness {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "0", "e"]),
            int(5)
        );
        assert_eq!(h.run(&["SET", "str", "v"]), Frame::ok());
        h.ks.take_pending();
        h
    }

    #[test]
    fn zadd_counts_added_or_changed() {
        let mut h = setup();
        assert_eq!(h.run(&["ZADD", "z", "1", "a", "9", "new"]), int(1));
        assert_eq!(
            h.run(&["ZADD", "z", "CH", "5", "a", "9", "new", "7", "x"]),
            int(2)
        );
        assert_eq!(h.run(&["ZSCORE", "z", "a"]), Frame::Double(5.0));
        // A repeated member is applied in order, as Redis does.
        assert_eq!(h.run(&["ZADD", "q", "1", "m", "2", "m"]), int(1));
        assert_eq!(
            h.run(&["ZADD", "q", "ch", "3", "m", "3", "m", "4", "m"]),
            int(2)
        );
        assert_eq!(h.run(&["ZSCORE", "q", "m"]), Frame::Double(4.0));
        // -0 equals 0: no change.
        assert_eq!(h.run(&["ZADD", "q", "0", "zero"]), int(1));
        assert_eq!(h.run(&["ZADD", "q", "ch", "-0", "zero"]), int(0));
        assert_eq!(
            h.run(&["ZADD", "q", "inf", "top", "-inf", "bottom"]),
            int(2)
        );
        assert_eq!(h.run(&["ZRANGE", "q", "0", "0"]), arr(&["bottom"]));
        assert_eq!(h.run(&["ZSCORE", "q", "top"]), Frame::Double(f64::INFINITY));
        // An option name is a member once the scores begin.
        assert_eq!(h.run(&["ZADD", "q", "1", "nx", "2", "ch"]), int(2));
        assert_eq!(h.run(&["ZADD", "str", "1", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["ZADD", "str", "XX", "1", "a"]), err(WRONGTYPE));
    }

    #[test]
    fn zadd_writes_only_what_changes() {
        let mut h = setup();
        assert_eq!(h.run(&["ZADD", "z", "1", "a", "2", "b"]), int(0));
        assert!(
            h.ks.take_pending().is_empty(),
            "same scores: nothing to replicate"
        );
        assert_eq!(h.run(&["ZADD", "z", "1", "m", "2", "m", "3", "a"]), int(1));
        assert_eq!(
            h.ks.take_pending().len(),
            1,
            "one operation, each member once"
        );
        assert_eq!(h.run(&["ZADD", "z", "NX", "9", "a"]), int(0));
        assert_eq!(h.run(&["ZADD", "nokey", "XX", "9", "a"]), int(0));
        assert!(h.ks.take_pending().is_empty());
        assert_eq!(h.run(&["EXISTS", "nokey"]), int(0));
    }

    #[test]
    fn zadd_argument_errors() {
        let mut h = setup();
        let syntax = err("ERR syntax error");
        assert_eq!(
            h.run(&["ZADD", "z", "1"]),
            err("ERR wrong number of arguments for 'zadd' command")
        );
        assert_eq!(h.run(&["ZADD", "z", "nx", "1"]), syntax);
        assert_eq!(h.run(&["ZADD", "z", "1", "a", "2"]), syntax);
        assert_eq!(
            h.run(&["ZADD", "z", "x", "a"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["ZADD", "z", "nan", "a"]),
            err("ERR value is not a valid float")
        );
        // Overflow and underflow to zero are refused, as by strtod's ERANGE.
        assert_eq!(
            h.run(&["ZADD", "z", "1e400", "a"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["ZADD", "z", "-1e400", "a"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["ZADD", "z", "1e-400", "a"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["ZADD", "z", "+inf", "i", "Infinity", "j", ".5", "k"]),
            int(3)
        );
        assert_eq!(
            h.run(&["ZADD", "z", "nx", "xx", "1", "a"]),
            err("ERR XX and NX options at the same time are not compatible")
        );
        let gtltnx = err("ERR GT, LT, and/or NX options at the same time are not compatible");
        assert_eq!(h.run(&["ZADD", "z", "nx", "gt", "1", "a"]), gtltnx);
        assert_eq!(h.run(&["ZADD", "z", "lt", "nx", "1", "a"]), gtltnx);
        assert_eq!(h.run(&["ZADD", "z", "gt", "lt", "1", "a"]), gtltnx);
        assert_eq!(
            h.run(&["ZADD", "z", "incr", "1", "a", "2", "b"]),
            err("ERR INCR option supports a single increment-element pair")
        );
        // A bad score anywhere means nothing is written.
        assert_eq!(
            h.run(&["ZADD", "z", "7", "a", "x", "b"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(h.run(&["ZSCORE", "z", "a"]), Frame::Double(1.0));
    }

    #[test]
    fn zadd_nx_xx_gt_lt() {
        let mut h = setup();
        assert_eq!(h.run(&["ZADD", "z", "NX", "9", "a", "9", "n1"]), int(1));
        assert_eq!(h.run(&["ZSCORE", "z", "a"]), Frame::Double(1.0));
        assert_eq!(
            h.run(&["ZADD", "z", "XX", "CH", "9", "a", "9", "n2"]),
            int(1)
        );
        assert_eq!(h.run(&["ZSCORE", "z", "n2"]), Frame::Null);
        // GT / LT only move a score one way, but still add new members.
        assert_eq!(
            h.run(&["ZADD", "z", "GT", "CH", "5", "a", "5", "b", "1", "n3"]),
            int(2)
        );
        assert_eq!(
            h.run(&["ZMSCORE", "z", "a", "b", "n3"]),
            Frame::Array(vec![
                Frame::Double(9.0),
                Frame::Double(5.0),
                Frame::Double(1.0),
            ])
        );
        assert_eq!(
            h.run(&["ZADD", "z", "LT", "CH", "7", "a", "7", "b"]),
            int(1)
        );
        assert_eq!(
            h.run(&["ZMSCORE", "z", "a", "b"]),
            Frame::Array(vec![Frame::Double(7.0), Frame::Double(5.0)])
        );
        assert_eq!(
            h.run(&["ZADD", "z", "XX", "GT", "CH", "0", "a", "10", "b", "7", "n4"]),
            int(1)
        );
        assert_eq!(h.run(&["ZSCORE", "z", "n4"]), Frame::Null);
    }

    #[test]
    fn zadd_incr_and_zincrby() {
        let mut h = setup();
        assert_eq!(h.run(&["ZINCRBY", "z", "1.5", "a"]), Frame::Double(2.5));
        assert_eq!(h.run(&["ZINCRBY", "z", "2", "fresh"]), Frame::Double(2.0));
        assert_eq!(h.run(&["ZINCRBY", "new", "-3", "m"]), Frame::Double(-3.0));
        assert_eq!(h.run(&["ZADD", "z", "INCR", "1", "a"]), Frame::Double(3.5));
        assert_eq!(h.run(&["ZADD", "z", "INCR", "NX", "1", "a"]), Frame::Null);
        assert_eq!(
            h.run(&["ZADD", "z", "INCR", "XX", "1", "absent"]),
            Frame::Null
        );
        assert_eq!(
            h.run(&["ZADD", "nokey", "INCR", "XX", "1", "absent"]),
            Frame::Null
        );
        assert_eq!(h.run(&["ZADD", "z", "INCR", "GT", "-1", "a"]), Frame::Null);
        assert_eq!(h.run(&["ZADD", "z", "INCR", "LT", "1", "a"]), Frame::Null);
        assert_eq!(
            h.run(&["ZADD", "z", "INCR", "GT", "1", "a"]),
            Frame::Double(4.5)
        );
        assert_eq!(
            h.run(&["ZADD", "z", "INCR", "GT", "1", "brand"]),
            Frame::Double(1.0)
        );
        h.ks.take_pending();
        assert_eq!(h.run(&["ZADD", "z", "INCR", "0", "a"]), Frame::Double(4.5));
        assert!(
            h.ks.take_pending().is_empty(),
            "a zero increment changes nothing"
        );
        assert_eq!(
            h.run(&["ZINCRBY", "z", "x", "a"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["ZINCRBY", "z", "1e400", "a"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["ZINCRBY", "z", "inf", "a"]),
            Frame::Double(f64::INFINITY)
        );
        assert_eq!(
            h.run(&["ZINCRBY", "z", "-inf", "a"]),
            err("ERR resulting score is not a number (NaN)")
        );
        assert_eq!(
            h.run(&["ZADD", "z", "INCR", "-inf", "a"]),
            err("ERR resulting score is not a number (NaN)")
        );
        assert_eq!(h.run(&["ZINCRBY", "str", "1", "a"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["ZINCRBY", "z", "1"]),
            err("ERR wrong number of arguments for 'zincrby' command")
        );
    }

    #[test]
    fn scores_are_doubles_shown_as_redis_shows_them() {
        let mut h = setup();
        h.run(&["ZADD", "z", "1.5", "half"]);
        let resp2 = |f: Frame| f.to_bytes(Protocol::Resp2);
        assert_eq!(
            resp2(h.run(&["ZSCORE", "z", "half"])),
            &b"$3\r\n1.5\r\n"[..]
        );
        assert_eq!(resp2(h.run(&["ZSCORE", "z", "c"])), &b"$1\r\n3\r\n"[..]);
        assert_eq!(
            h.run(&["ZSCORE", "z", "c"]).to_bytes(Protocol::Resp3),
            &b",3\r\n"[..]
        );
        assert_eq!(resp2(h.run(&["ZSCORE", "z", "nope"])), &b"$-1\r\n"[..]);
    }

    #[test]
    fn zrem_zscore_zmscore_zcard() {
        let mut h = setup();
        assert_eq!(h.run(&["ZREM", "z", "a", "a", "zz", "b"]), int(2));
        assert_eq!(h.run(&["ZREM", "z", "zz"]), int(0));
        assert_eq!(h.run(&["ZREM", "nokey", "a"]), int(0));
        assert_eq!(h.run(&["ZREM", "str", "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["ZCARD", "z"]), int(3));
        assert_eq!(h.run(&["ZCARD", "nokey"]), int(0));
        assert_eq!(h.run(&["ZCARD", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["ZSCORE", "z", "c"]), Frame::Double(3.0));
        assert_eq!(h.run(&["ZSCORE", "z", "a"]), Frame::Null);
        assert_eq!(h.run(&["ZSCORE", "nokey", "a"]), Frame::Null);
        assert_eq!(h.run(&["ZSCORE", "str", "a"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["ZMSCORE", "z", "c", "zz"]),
            Frame::Array(vec![Frame::Double(3.0), Frame::Null])
        );
        assert_eq!(
            h.run(&["ZMSCORE", "nokey", "a", "b"]),
            Frame::Array(vec![Frame::Null, Frame::Null])
        );
        assert_eq!(h.run(&["ZMSCORE", "str", "a"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["ZMSCORE", "z"]),
            err("ERR wrong number of arguments for 'zmscore' command")
        );
        // Removing the last member removes the key.
        assert_eq!(h.run(&["ZREM", "z", "c", "d", "e"]), int(3));
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
    }

    #[test]
    fn zrank_and_zrevrank() {
        let mut h = setup();
        assert_eq!(h.run(&["ZRANK", "z", "e"]), int(0));
        assert_eq!(h.run(&["ZRANK", "z", "c"]), int(3));
        assert_eq!(h.run(&["ZREVRANK", "z", "c"]), int(1));
        assert_eq!(h.run(&["ZRANK", "z", "zz"]), Frame::Null);
        assert_eq!(h.run(&["ZRANK", "nokey", "c"]), Frame::Null);
        assert_eq!(
            h.run(&["ZRANK", "z", "c", "WITHSCORE"]),
            Frame::Array(vec![int(3), Frame::Double(3.0)])
        );
        assert_eq!(
            h.run(&["ZREVRANK", "z", "d", "withscore"]),
            Frame::Array(vec![int(0), Frame::Double(4.0)])
        );
        assert_eq!(h.run(&["ZRANK", "z", "zz", "withscore"]), Frame::NullArray);
        assert_eq!(
            h.run(&["ZRANK", "nokey", "zz", "withscore"]),
            Frame::NullArray
        );
        assert_eq!(h.run(&["ZRANK", "z", "c", "foo"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["ZRANK", "z", "c", "withscore", "x"]),
            err("ERR wrong number of arguments for 'zrank' command")
        );
        assert_eq!(h.run(&["ZREVRANK", "str", "c"]), err(WRONGTYPE));
    }

    #[test]
    fn zrange_by_rank() {
        let mut h = setup();
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1"]),
            arr(&["e", "a", "b", "c", "d"])
        );
        assert_eq!(h.run(&["ZRANGE", "z", "-2", "-1"]), arr(&["c", "d"]));
        assert_eq!(h.run(&["ZRANGE", "z", "-100", "1"]), arr(&["e", "a"]));
        assert_eq!(h.run(&["ZRANGE", "z", "3", "100"]), arr(&["c", "d"]));
        assert_eq!(h.run(&["ZRANGE", "z", "3", "1"]), empty());
        assert_eq!(h.run(&["ZRANGE", "z", "5", "10"]), empty());
        assert_eq!(h.run(&["ZRANGE", "z", "0", "1", "REV"]), arr(&["d", "c"]));
        assert_eq!(h.run(&["ZREVRANGE", "z", "0", "1"]), arr(&["d", "c"]));
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "1", "WITHSCORES"]),
            flat(&[("e", 0.0), ("a", 1.0)])
        );
        assert_eq!(
            h.run(&["ZREVRANGE", "z", "0", "0", "withscores"]),
            flat(&[("d", 4.0)])
        );
        // LIMIT 0 -1 is "no limit", so it is accepted with a rank range.
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "0", "LIMIT", "0", "-1"]),
            arr(&["e"])
        );
        assert_eq!(h.run(&["ZRANGE", "nokey", "0", "-1"]), empty());
        assert_eq!(h.run(&["ZRANGE", "str", "0", "-1"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["ZRANGE", "z", "a", "1"]),
            err("ERR value is not an integer or out of range")
        );
        h.client.resp = 3;
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "1", "WITHSCORES"]),
            nested(&[("e", 0.0), ("a", 1.0)])
        );
        assert_eq!(h.run(&["ZRANGE", "z", "0", "1"]), arr(&["e", "a"]));
    }

    #[test]
    fn zrange_by_score() {
        let mut h = setup();
        let by = |h: &mut Harness, args: &[&str]| {
            let mut w = vec!["ZRANGEBYSCORE", "z"];
            w.extend_from_slice(args);
            h.run(&w)
        };
        assert_eq!(
            by(&mut h, &["-inf", "+inf"]),
            arr(&["e", "a", "b", "c", "d"])
        );
        assert_eq!(by(&mut h, &["(1", "3"]), arr(&["b", "c"]));
        assert_eq!(by(&mut h, &["(1", "(3"]), arr(&["b"]));
        assert_eq!(by(&mut h, &["1", "1"]), arr(&["a"]));
        assert_eq!(by(&mut h, &["(1", "(1"]), empty());
        assert_eq!(by(&mut h, &["3", "1"]), empty());
        assert_eq!(
            by(&mut h, &["-inf", "+inf", "LIMIT", "1", "2"]),
            arr(&["a", "b"])
        );
        assert_eq!(
            by(&mut h, &["-inf", "+inf", "LIMIT", "1", "-1"]),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(by(&mut h, &["-inf", "+inf", "LIMIT", "-1", "2"]), empty());
        assert_eq!(by(&mut h, &["-inf", "+inf", "LIMIT", "0", "0"]), empty());
        assert_eq!(by(&mut h, &["-inf", "+inf", "LIMIT", "9", "1"]), empty());
        assert_eq!(
            by(&mut h, &["3", "+inf", "WITHSCORES"]),
            flat(&[("c", 3.0), ("d", 4.0)])
        );
        // strtod's reading: "" is 0, leading blanks are skipped, overflow is inf.
        assert_eq!(by(&mut h, &["(", "1"]), arr(&["a"]));
        assert_eq!(by(&mut h, &[" 3", "1e400"]), arr(&["c", "d"]));
        let not_float = err("ERR min or max is not a float");
        assert_eq!(by(&mut h, &["a", "1"]), not_float);
        assert_eq!(by(&mut h, &["1", "3x"]), not_float);
        assert_eq!(by(&mut h, &["1", "nan"]), not_float);
        assert_eq!(by(&mut h, &["1", "2", "BYSCORE"]), err("ERR syntax error"));
        assert_eq!(
            by(&mut h, &["1", "2", "LIMIT", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(
            by(&mut h, &["1", "2", "LIMIT", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["ZREVRANGEBYSCORE", "z", "3", "1"]),
            arr(&["c", "b", "a"])
        );
        assert_eq!(h.run(&["ZREVRANGEBYSCORE", "z", "1", "3"]), empty());
        assert_eq!(
            h.run(&[
                "ZREVRANGEBYSCORE",
                "z",
                "+inf",
                "-inf",
                "WITHSCORES",
                "LIMIT",
                "1",
                "2"
            ]),
            flat(&[("c", 3.0), ("b", 2.0)])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "(1", "3", "BYSCORE"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "3", "(1", "BYSCORE", "REV"]),
            arr(&["c", "b"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "3", "(1", "REV", "BYSCORE", "LIMIT", "1", "5"]),
            arr(&["b"])
        );
        assert_eq!(h.run(&["ZRANGEBYSCORE", "nokey", "a", "b"]), not_float);
        assert_eq!(h.run(&["ZRANGEBYSCORE", "nokey", "1", "2"]), empty());
        assert_eq!(h.run(&["ZRANGEBYSCORE", "str", "1", "2"]), err(WRONGTYPE));
    }

    #[test]
    fn zrange_by_lex() {
        let mut h = Harness::new();
        h.run(&[
            "ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "f",
        ]);
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "-", "+"]),
            arr(&["a", "b", "c", "d", "e", "f"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "[b", "(e"]),
            arr(&["b", "c", "d"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "(b", "[e", "LIMIT", "1", "2"]),
            arr(&["d", "e"])
        );
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "[bb", "[dd"]), arr(&["c", "d"]));
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "[", "+"]),
            arr(&["a", "b", "c", "d", "e", "f"])
        );
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "(a", "(a"]), empty());
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "[a", "[a"]), arr(&["a"]));
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "+", "-"]), empty());
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "-", "-"]), empty());
        assert_eq!(
            h.run(&["ZREVRANGEBYLEX", "l", "[e", "(b"]),
            arr(&["e", "d", "c"])
        );
        assert_eq!(
            h.run(&["ZREVRANGEBYLEX", "l", "+", "-", "LIMIT", "1", "2"]),
            arr(&["e", "d"])
        );
        assert_eq!(
            h.run(&["ZRANGE", "l", "(e", "[b", "BYLEX", "REV", "LIMIT", "1", "1"]),
            arr(&["c"])
        );
        let invalid = err("ERR min or max not valid string range item");
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "a", "[c"]), invalid);
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "+a", "[c"]), invalid);
        assert_eq!(h.run(&["ZRANGEBYLEX", "l", "", "[c"]), invalid);
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "l", "-", "+", "WITHSCORES"]),
            err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        );
        // Mixed scores: walked like Redis' listpack, not filtered.
        h.run(&[
            "ZADD", "m", "1", "b", "1", "a", "2", "d", "2", "c", "0", "z", "3", "y",
        ]);
        assert_eq!(h.run(&["ZRANGEBYLEX", "m", "[a", "[c"]), empty());
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "m", "[b", "[z"]),
            arr(&["z", "a", "b", "c", "d", "y"])
        );
        assert_eq!(
            h.run(&["ZRANGEBYLEX", "m", "(b", "+"]),
            arr(&["z", "a", "b", "c", "d", "y"])
        );
        assert_eq!(h.run(&["ZREVRANGEBYLEX", "m", "[y", "-"]), empty());
        assert_eq!(h.run(&["ZREVRANGEBYLEX", "m", "+", "[y"]), arr(&["y"]));
        assert_eq!(h.run(&["ZLEXCOUNT", "m", "[b", "[z"]), int(6));
    }

    #[test]
    fn zrange_option_errors() {
        let mut h = setup();
        let syntax = err("ERR syntax error");
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1", "LIMIT", "0", "1"]),
            err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        );
        assert_eq!(h.run(&["ZRANGE", "z", "0", "-1", "REV", "REV"]), syntax);
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1", "BYSCORE", "BYSCORE"]),
            syntax
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1", "BYSCORE", "BYLEX"]),
            syntax
        );
        assert_eq!(h.run(&["ZRANGE", "z", "0", "-1", "foo"]), syntax);
        assert_eq!(h.run(&["ZRANGE", "z", "0", "-1", "LIMIT"]), syntax);
        assert_eq!(h.run(&["ZREVRANGE", "z", "0", "1", "REV"]), syntax);
        assert_eq!(
            h.run(&["ZRANGE", "z", "a", "b", "BYSCORE"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "a", "b", "BYLEX"]),
            err("ERR min or max not valid string range item")
        );
        assert_eq!(
            h.run(&["ZRANGE", "z", "0"]),
            err("ERR wrong number of arguments for 'zrange' command")
        );
    }

    #[test]
    fn zrangestore() {
        let mut h = setup();
        assert_eq!(h.run(&["ZRANGESTORE", "d", "z", "1", "2"]), int(2));
        assert_eq!(
            h.run(&["ZRANGE", "d", "0", "-1", "WITHSCORES"]),
            flat(&[("a", 1.0), ("b", 2.0)])
        );
        assert_eq!(
            h.run(&["ZRANGESTORE", "d", "z", "3", "(1", "BYSCORE", "REV"]),
            int(2)
        );
        assert_eq!(
            h.run(&["ZRANGE", "d", "0", "-1", "WITHSCORES"]),
            flat(&[("b", 2.0), ("c", 3.0)])
        );
        assert_eq!(
            h.run(&[
                "ZRANGESTORE",
                "d",
                "z",
                "[b",
                "+",
                "BYLEX",
                "LIMIT",
                "0",
                "1"
            ]),
            int(1)
        );
        assert_eq!(
            h.run(&["ZRANGESTORE", "d", "z", "0", "-1", "WITHSCORES"]),
            err("ERR syntax error")
        );
        // Overwrites any type; an empty result deletes the destination.
        assert_eq!(h.run(&["ZRANGESTORE", "str", "z", "0", "0"]), int(1));
        assert_eq!(h.run(&["TYPE", "str"]), Frame::simple("zset"));
        assert_eq!(h.run(&["ZRANGESTORE", "d", "z", "10", "20"]), int(0));
        assert_eq!(h.run(&["EXISTS", "d"]), int(0));
        assert_eq!(h.run(&["ZRANGESTORE", "d", "nokey", "0", "-1"]), int(0));
        h.run(&["SET", "s2", "v"]);
        assert_eq!(
            h.run(&["ZRANGESTORE", "d", "s2", "0", "-1"]),
            err(WRONGTYPE)
        );
        assert_eq!(
            h.run(&["ZRANGESTORE", "d", "z", "0"]),
            err("ERR wrong number of arguments for 'zrangestore' command")
        );
        // Delete and add travel as one transaction.
        h.ks.take_pending();
        assert_eq!(h.run(&["ZRANGESTORE", "z", "z", "0", "1"]), int(2));
        let rest: Vec<u32> = h.ks.take_pending().iter().map(|o| o.txn_rest).collect();
        assert_eq!(rest, vec![1, 0]);
        assert_eq!(h.run(&["ZRANGE", "z", "0", "-1"]), arr(&["e", "a"]));
    }

    #[test]
    fn zcount_and_zlexcount() {
        let mut h = setup();
        assert_eq!(h.run(&["ZCOUNT", "z", "-inf", "+inf"]), int(5));
        assert_eq!(h.run(&["ZCOUNT", "z", "(1", "3"]), int(2));
        assert_eq!(h.run(&["ZCOUNT", "z", "3", "1"]), int(0));
        assert_eq!(h.run(&["ZCOUNT", "nokey", "1", "2"]), int(0));
        assert_eq!(h.run(&["ZCOUNT", "str", "1", "2"]), err(WRONGTYPE));
        assert_eq!(
            h.run(&["ZCOUNT", "str", "x", "2"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(h.run(&["ZLEXCOUNT", "z", "-", "+"]), int(5));
        h.run(&["ZADD", "l", "0", "a", "0", "b", "0", "c"]);
        assert_eq!(h.run(&["ZLEXCOUNT", "l", "[b", "[b"]), int(1));
        assert_eq!(h.run(&["ZLEXCOUNT", "l", "(b", "[b"]), int(0));
        assert_eq!(h.run(&["ZLEXCOUNT", "l", "(a", "+"]), int(2));
        // Mixed scores: the last member (d) is below "[e", so nothing.
        assert_eq!(h.run(&["ZLEXCOUNT", "z", "[e", "+"]), int(0));
        assert_eq!(h.run(&["ZLEXCOUNT", "nokey", "-", "+"]), int(0));
        assert_eq!(
            h.run(&["ZLEXCOUNT", "z", "a", "b"]),
            err("ERR min or max not valid string range item")
        );
        assert_eq!(h.run(&["ZLEXCOUNT", "str", "-", "+"]), err(WRONGTYPE));
    }

    #[test]
    fn zremrange_by_rank_score_lex() {
        let mut h = setup();
        assert_eq!(h.run(&["ZREMRANGEBYRANK", "z", "0", "0"]), int(1));
        assert_eq!(h.run(&["ZREMRANGEBYRANK", "z", "-1", "-1"]), int(1));
        assert_eq!(h.run(&["ZREMRANGEBYRANK", "z", "10", "20"]), int(0));
        assert_eq!(
            h.run(&["ZREMRANGEBYRANK", "z", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["ZRANGE", "z", "0", "-1"]), arr(&["a", "b", "c"]));
        assert_eq!(h.run(&["ZREMRANGEBYSCORE", "z", "(1", "2"]), int(1));
        assert_eq!(
            h.run(&["ZREMRANGEBYSCORE", "z", "x", "2"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(h.run(&["ZREMRANGEBYLEX", "z", "[a", "[a"]), int(1));
        assert_eq!(
            h.run(&["ZREMRANGEBYLEX", "z", "a", "c"]),
            err("ERR min or max not valid string range item")
        );
        assert_eq!(h.run(&["ZREMRANGEBYSCORE", "z", "-inf", "+inf"]), int(1));
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
        for cmd in ["ZREMRANGEBYRANK", "ZREMRANGEBYSCORE"] {
            assert_eq!(h.run(&[cmd, "nokey", "0", "1"]), int(0));
            assert_eq!(h.run(&[cmd, "str", "0", "1"]), err(WRONGTYPE));
        }
        assert_eq!(h.run(&["ZREMRANGEBYLEX", "nokey", "-", "+"]), int(0));
        assert_eq!(h.run(&["ZREMRANGEBYLEX", "str", "-", "+"]), err(WRONGTYPE));
    }

    #[test]
    fn zpopmin_and_zpopmax() {
        let mut h = setup();
        assert_eq!(h.run(&["ZPOPMIN", "z"]), flat(&[("e", 0.0)]));
        assert_eq!(h.run(&["ZPOPMAX", "z"]), flat(&[("d", 4.0)]));
        assert_eq!(
            h.run(&["ZPOPMIN", "z", "2"]),
            flat(&[("a", 1.0), ("b", 2.0)])
        );
        assert_eq!(h.run(&["ZPOPMIN", "z", "0"]), empty());
        assert_eq!(h.run(&["ZPOPMAX", "z", "10"]), flat(&[("c", 3.0)]));
        assert_eq!(h.run(&["EXISTS", "z"]), int(0));
        assert_eq!(h.run(&["ZPOPMIN", "z"]), empty());
        assert_eq!(h.run(&["ZPOPMIN", "z", "3"]), empty());
        let positive = err("ERR value is out of range, must be positive");
        assert_eq!(h.run(&["ZPOPMIN", "z", "-1"]), positive);
        assert_eq!(h.run(&["ZPOPMIN", "z", "abc"]), positive);
        assert_eq!(h.run(&["ZPOPMIN", "z", "1", "2"]), err("ERR syntax error"));
        assert_eq!(h.run(&["ZPOPMIN", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["ZPOPMAX", "str", "0"]), err(WRONGTYPE));
        h.run(&["ZADD", "r", "1", "a", "2.5", "b", "3", "c"]);
        h.client.resp = 3;
        // RESP3: flat without a count, pairs with one.
        assert_eq!(h.run(&["ZPOPMIN", "r"]), flat(&[("a", 1.0)]));
        assert_eq!(h.run(&["ZPOPMIN", "r", "1"]), nested(&[("b", 2.5)]));
        assert_eq!(h.run(&["ZPOPMAX", "nokey"]), empty());
    }

    #[test]
    fn zmpop() {
        let mut h = setup();
        assert_eq!(
            h.run(&["ZMPOP", "2", "nokey", "z", "MIN"]),
            Frame::Array(vec![bulk("z"), nested(&[("e", 0.0)])])
        );
        assert_eq!(
            h.run(&["ZMPOP", "1", "z", "max", "COUNT", "2"]),
            Frame::Array(vec![bulk("z"), nested(&[("d", 4.0), ("c", 3.0)])])
        );
        assert_eq!(h.run(&["ZMPOP", "1", "nokey", "MIN"]), Frame::NullArray);
        assert_eq!(
            h.run(&["ZMPOP", "2", "nokey", "str", "MIN"]),
            err(WRONGTYPE)
        );
        assert_eq!(
            h.run(&["ZMPOP", "3", "nokey", "z", "str", "MIN", "COUNT", "10"]),
            Frame::Array(vec![bulk("z"), nested(&[("a", 1.0), ("b", 2.0)])])
        );
        let numkeys = err("ERR numkeys should be greater than 0");
        assert_eq!(h.run(&["ZMPOP", "0", "z", "MIN"]), numkeys);
        assert_eq!(h.run(&["ZMPOP", "abc", "z", "MIN"]), numkeys);
        let count = err("ERR count should be greater than 0");
        assert_eq!(h.run(&["ZMPOP", "1", "z", "MIN", "COUNT", "0"]), count);
        assert_eq!(h.run(&["ZMPOP", "1", "z", "MIN", "COUNT", "x"]), count);
        let syntax = err("ERR syntax error");
        assert_eq!(h.run(&["ZMPOP", "5", "z", "MIN"]), syntax);
        assert_eq!(h.run(&["ZMPOP", "9223372036854775807", "z", "MIN"]), syntax);
        assert_eq!(h.run(&["ZMPOP", "1", "z", "MID"]), syntax);
        assert_eq!(
            h.run(&["ZMPOP", "1", "z", "MIN", "COUNT", "1", "COUNT", "1"]),
            syntax
        );
        assert_eq!(h.run(&["ZMPOP", "1", "z", "MIN", "COUNT"]), syntax);
    }

    #[test]
    fn zrandmember() {
        let mut h = setup();
        for _ in 0..20 {
            match h.run(&["ZRANDMEMBER", "z"]) {
                Frame::Bulk(m) => {
                    assert!(["a", "b", "c", "d", "e"].contains(&&*String::from_utf8_lossy(&m)))
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(h.run(&["ZRANDMEMBER", "nokey"]), Frame::Null);
        assert_eq!(h.run(&["ZRANDMEMBER", "nokey", "5"]), empty());
        assert_eq!(h.run(&["ZRANDMEMBER", "z", "0"]), empty());
        // Whole set when the count covers it, from the top as Redis walks it.
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "10"]),
            arr(&["d", "c", "b", "a", "e"])
        );
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "5", "WITHSCORES"]),
            flat(&[("d", 4.0), ("c", 3.0), ("b", 2.0), ("a", 1.0), ("e", 0.0)])
        );
        for _ in 0..20 {
            let Frame::Array(items) = h.run(&["ZRANDMEMBER", "z", "3"]) else {
                panic!()
            };
            let mut names: Vec<Frame> = items.clone();
            names.dedup();
            assert_eq!(names.len(), 3, "distinct members: {items:?}");
            let Frame::Array(items) = h.run(&["ZRANDMEMBER", "z", "-8"]) else {
                panic!()
            };
            assert_eq!(items.len(), 8, "repeats allowed");
        }
        let Frame::Array(items) = h.run(&["ZRANDMEMBER", "z", "-3", "WITHSCORES"]) else {
            panic!()
        };
        assert_eq!(items.len(), 6);
        h.client.resp = 3;
        let Frame::Array(items) = h.run(&["ZRANDMEMBER", "z", "2", "WITHSCORES"]) else {
            panic!()
        };
        assert!(items
            .iter()
            .all(|p| matches!(p, Frame::Array(v) if v.len() == 2)));
        h.client.resp = 2;
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "1", "foo"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "1", "withscores", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(
            h.run(&["ZRANDMEMBER", "z", "-9223372036854775807", "WITHSCORES"]),
            err("ERR value is out of range")
        );
        assert_eq!(h.run(&["ZRANDMEMBER", "str"]), err(WRONGTYPE));
        assert_eq!(h.run(&["ZRANDMEMBER", "str", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn zunion_zinter_zdiff() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a", "2.5", "b", "3", "c"]);
        h.run(&["ZADD", "z2", "-inf", "a", "5", "c"]);
        h.run(&["SADD", "s", "a", "x"]);
        assert_eq!(
            h.run(&["ZUNION", "2", "z", "s", "WITHSCORES"]),
            flat(&[("x", 1.0), ("a", 2.0), ("b", 2.5), ("c", 3.0)])
        );
        assert_eq!(
            h.run(&["ZUNION", "2", "z", "s"]),
            arr(&["x", "a", "b", "c"])
        );
        assert_eq!(
            h.run(&["ZINTER", "2", "z", "s", "WEIGHTS", "2", "3", "WITHSCORES"]),
            flat(&[("a", 5.0)])
        );
        assert_eq!(
            h.run(&["ZUNION", "2", "z", "z2", "WITHSCORES"]),
            flat(&[("a", f64::NEG_INFINITY), ("b", 2.5), ("c", 8.0)])
        );
        // 0 * -inf is 0, as is inf + -inf.
        assert_eq!(
            h.run(&["ZUNION", "2", "z", "z2", "WEIGHTS", "0", "1", "WITHSCORES"]),
            flat(&[("a", f64::NEG_INFINITY), ("b", 0.0), ("c", 5.0)])
        );
        assert_eq!(
            h.run(&[
                "ZUNION",
                "2",
                "z",
                "z2",
                "WEIGHTS",
                "inf",
                "1",
                "WITHSCORES"
            ]),
            flat(&[("a", 0.0), ("b", f64::INFINITY), ("c", f64::INFINITY)])
        );
        assert_eq!(
            h.run(&["ZINTER", "2", "z", "z2", "AGGREGATE", "MAX", "WITHSCORES"]),
            flat(&[("a", 1.0), ("c", 5.0)])
        );
        assert_eq!(
            h.run(&["ZINTER", "2", "z", "z2", "AGGREGATE", "min", "WITHSCORES"]),
            flat(&[("a", f64::NEG_INFINITY), ("c", 3.0)])
        );
        assert_eq!(h.run(&["ZINTER", "2", "z", "nokey"]), empty());
        assert_eq!(h.run(&["ZINTER", "3", "z", "z2", "s"]), arr(&["a"]));
        assert_eq!(
            h.run(&["ZDIFF", "2", "z", "z2", "WITHSCORES"]),
            flat(&[("b", 2.5)])
        );
        assert_eq!(h.run(&["ZDIFF", "2", "z", "z"]), empty());
        assert_eq!(h.run(&["ZDIFF", "1", "nokey"]), empty());
        assert_eq!(
            h.run(&["ZDIFF", "1", "s", "WITHSCORES"]),
            flat(&[("a", 1.0), ("x", 1.0)])
        );
        // Repeated options: the last one counts.
        assert_eq!(
            h.run(&[
                "ZUNION",
                "1",
                "z",
                "AGGREGATE",
                "MIN",
                "AGGREGATE",
                "MAX",
                "WITHSCORES",
                "WITHSCORES"
            ]),
            flat(&[("a", 1.0), ("b", 2.5), ("c", 3.0)])
        );
        h.client.resp = 3;
        assert_eq!(
            h.run(&["ZINTER", "2", "z", "z2", "AGGREGATE", "MAX", "WITHSCORES"]),
            nested(&[("a", 1.0), ("c", 5.0)])
        );
    }

    #[test]
    fn zunion_family_errors() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a"]);
        h.run(&["SET", "str", "v"]);
        let syntax = err("ERR syntax error");
        assert_eq!(
            h.run(&["ZUNION", "0", "z"]),
            err("ERR at least 1 input key is needed for 'zunion' command")
        );
        assert_eq!(
            h.run(&["ZINTERSTORE", "d", "0", "z"]),
            err("ERR at least 1 input key is needed for 'zinterstore' command")
        );
        assert_eq!(
            h.run(&["ZUNION", "x", "z"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["ZUNION", "3", "z", "s"]), syntax);
        assert_eq!(h.run(&["ZUNION", "1", "z", "WEIGHTS"]), syntax);
        assert_eq!(
            h.run(&["ZUNION", "1", "z", "WEIGHTS", "x"]),
            err("ERR weight value is not a float")
        );
        assert_eq!(
            h.run(&["ZUNION", "1", "z", "WEIGHTS", "1e400"]),
            err("ERR weight value is not a float")
        );
        assert_eq!(h.run(&["ZUNION", "1", "z", "AGGREGATE", "foo"]), syntax);
        assert_eq!(h.run(&["ZUNION", "1", "z", "AGGREGATE"]), syntax);
        assert_eq!(h.run(&["ZDIFF", "1", "z", "WEIGHTS", "1"]), syntax);
        assert_eq!(h.run(&["ZDIFF", "1", "z", "AGGREGATE", "SUM"]), syntax);
        assert_eq!(h.run(&["ZUNIONSTORE", "d", "1", "z", "WITHSCORES"]), syntax);
        // Types are checked before the options are read.
        assert_eq!(
            h.run(&["ZUNION", "2", "str", "z", "WEIGHTS", "x"]),
            err(WRONGTYPE)
        );
        assert_eq!(
            h.run(&["ZINTERSTORE", "d", "2", "z", "str"]),
            err(WRONGTYPE)
        );
        assert_eq!(
            h.run(&["ZUNION", "1"]),
            err("ERR wrong number of arguments for 'zunion' command")
        );
        assert_eq!(
            h.run(&["ZUNIONSTORE", "d", "1"]),
            err("ERR wrong number of arguments for 'zunionstore' command")
        );
    }

    #[test]
    fn store_variants_and_zintercard() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        h.run(&["ZADD", "z2", "10", "b", "20", "c", "30", "d"]);
        h.run(&["SET", "str", "v"]);
        h.ks.take_pending();
        assert_eq!(
            h.run(&["ZUNIONSTORE", "str", "2", "z", "z2", "WEIGHTS", "1", "2"]),
            int(4)
        );
        let rest: Vec<u32> = h.ks.take_pending().iter().map(|o| o.txn_rest).collect();
        assert_eq!(rest, vec![1, 0], "delete and add as one transaction");
        assert_eq!(
            h.run(&["ZRANGE", "str", "0", "-1", "WITHSCORES"]),
            flat(&[("a", 1.0), ("b", 22.0), ("c", 43.0), ("d", 60.0)])
        );
        assert_eq!(
            h.run(&["ZINTERSTORE", "d", "2", "z", "z2", "AGGREGATE", "MIN"]),
            int(2)
        );
        assert_eq!(
            h.run(&["ZRANGE", "d", "0", "-1", "WITHSCORES"]),
            flat(&[("b", 2.0), ("c", 3.0)])
        );
        assert_eq!(h.run(&["ZDIFFSTORE", "d", "2", "z", "z2"]), int(1));
        assert_eq!(
            h.run(&["ZRANGE", "d", "0", "-1", "WITHSCORES"]),
            flat(&[("a", 1.0)])
        );
        // A source may be the destination.
        assert_eq!(h.run(&["ZUNIONSTORE", "z", "2", "z", "z2"]), int(4));
        assert_eq!(h.run(&["ZSCORE", "z", "c"]), Frame::Double(23.0));
        assert_eq!(h.run(&["ZDIFFSTORE", "d", "2", "z", "z"]), int(0));
        assert_eq!(h.run(&["EXISTS", "d"]), int(0));
        h.run(&["EXPIRE", "z2", "100"]);
        assert_eq!(h.run(&["ZUNIONSTORE", "z2", "1", "z2"]), int(3));
        assert_eq!(
            h.run(&["TTL", "z2"]),
            int(-1),
            "a stored result has no deadline"
        );

        assert_eq!(h.run(&["ZINTERCARD", "2", "z", "z2"]), int(3));
        assert_eq!(h.run(&["ZINTERCARD", "2", "z", "z2", "LIMIT", "2"]), int(2));
        assert_eq!(h.run(&["ZINTERCARD", "2", "z", "z2", "LIMIT", "0"]), int(3));
        assert_eq!(h.run(&["ZINTERCARD", "2", "z", "nokey"]), int(0));
        assert_eq!(
            h.run(&["ZINTERCARD", "2", "z", "z2", "LIMIT", "-1"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            h.run(&["ZINTERCARD", "2", "z", "z2", "LIMIT", "x"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            h.run(&["ZINTERCARD", "0", "z"]),
            err("ERR at least 1 input key is needed for 'zintercard' command")
        );
        assert_eq!(
            h.run(&["ZINTERCARD", "1", "z", "WITHSCORES"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["ZINTERCARD", "1", "z", "WEIGHTS", "1"]),
            err("ERR syntax error")
        );
        h.run(&["SET", "str2", "v"]);
        assert_eq!(h.run(&["ZINTERCARD", "2", "z", "str2"]), err(WRONGTYPE));
    }

    #[test]
    fn zscan() {
        let mut h = Harness::new();
        h.run(&["ZADD", "z", "1", "a", "2.5", "ab", "3", "c"]);
        h.run(&["SET", "str", "v"]);
        let all = Frame::Array(vec![bulk("0"), arr(&["a", "1", "ab", "2.5", "c", "3"])]);
        assert_eq!(h.run(&["ZSCAN", "z", "0"]), all);
        assert_eq!(h.run(&["ZSCAN", "z", "0", "COUNT", "1"]), all);
        assert_eq!(
            h.run(&["ZSCAN", "z", "0", "MATCH", "a*"]),
            Frame::Array(vec![bulk("0"), arr(&["a", "1", "ab", "2.5"])])
        );
        assert_eq!(
            h.run(&["ZSCAN", "nokey", "0", "COUNT", "0"]),
            Frame::Array(vec![bulk("0"), empty()])
        );
        assert_eq!(h.run(&["ZSCAN", "z", "x"]), err("ERR invalid cursor"));
        assert_eq!(h.run(&["ZSCAN", "z", "-1"]), err("ERR invalid cursor"));
        let syntax = err("ERR syntax error");
        assert_eq!(h.run(&["ZSCAN", "z", "0", "COUNT", "0"]), syntax);
        assert_eq!(h.run(&["ZSCAN", "z", "0", "MATCH"]), syntax);
        assert_eq!(h.run(&["ZSCAN", "z", "0", "TYPE", "zset"]), syntax);
        assert_eq!(h.run(&["ZSCAN", "str", "0"]), err(WRONGTYPE));
        // Scores stay bulk strings in RESP3.
        h.client.resp = 3;
        assert_eq!(h.run(&["ZSCAN", "z", "0"]), all);
    }

    #[test]
    fn expired_sorted_sets_read_as_missing() {
        let mut h = setup();
        assert_eq!(h.run(&["PEXPIRE", "z", "10"]), int(1));
        h.now_ms += 10;
        assert_eq!(h.run(&["ZCARD", "z"]), int(0));
        assert_eq!(h.run(&["ZRANGE", "z", "0", "-1"]), empty());
        assert_eq!(h.run(&["ZADD", "z", "XX", "1", "a"]), int(0));
        assert_eq!(h.run(&["ZADD", "z", "5", "a"]), int(1));
        assert_eq!(
            h.run(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
            flat(&[("a", 5.0)])
        );
    }
}
