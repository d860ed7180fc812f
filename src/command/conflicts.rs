//! BRAID.CONFLICTS: the region's conflict journal, newest first.

use bytes::Bytes;

use super::args::{self, is, syntax_error};
use super::{glob, CommandSpec, Ctx};
use crate::crdt::conflict::type_name;
use crate::crdt::{Conflict, ConflictKind, Stamp};
use crate::resp::Frame;

/// The conflict-journal family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "braid.conflicts", arity: -1, flags: 0, keys: (0, 0, 0), run: braid_conflicts },
];

/// BRAID.CONFLICTS [COUNT n] [MATCH pattern]: the latest conflicts this
/// region resolved, newest first, at most `n` (default: all held), only for
/// keys matching the glob `pattern`. Each entry is a map: `key`, `type`,
/// `rule`, `winner_region`, `winner_hlc`, `loser_region`, `loser_hlc`, and
/// for a type conflict `loser_type`.
fn braid_conflicts(ctx: &mut Ctx, a: &mut [Bytes]) -> Frame {
    let mut count = usize::MAX;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 1;
    while i < a.len() {
        let Some(value) = a.get(i + 1) else {
            return syntax_error();
        };
        if is(&a[i], "count") {
            match args::int(value) {
                Ok(n) if n >= 1 => count = usize::try_from(n).unwrap_or(usize::MAX),
                Ok(_) => return Frame::error("ERR COUNT must be a positive integer"),
                Err(e) => return e,
            }
        } else if is(&a[i], "match") {
            pattern = Some(value);
        } else {
            return syntax_error();
        }
        i += 2;
    }
    let entries = ctx
        .ks
        .conflicts
        .newest_first()
        .filter(|c| pattern.is_none_or(|p| glob::matches(p, &c.key)))
        .take(count)
        .map(entry)
        .collect::<Vec<_>>();
    Frame::Array(entries)
}

/// One journal entry as a map.
fn entry(c: &Conflict) -> Frame {
    let region = |s: &Stamp| Frame::Integer(i64::from(s.region.0));
    let hlc = |s: &Stamp| Frame::bulk(s.hlc.to_string());
    let mut fields = vec![
        (Frame::bulk("key"), Frame::Bulk(c.key.clone())),
        (Frame::bulk("type"), Frame::bulk(type_name(c.key_type))),
        (Frame::bulk("rule"), Frame::bulk(c.kind.rule())),
        (Frame::bulk("winner_region"), region(&c.winner)),
        (Frame::bulk("winner_hlc"), hlc(&c.winner)),
        (Frame::bulk("loser_region"), region(&c.loser)),
        (Frame::bulk("loser_hlc"), hlc(&c.loser)),
    ];
    if let ConflictKind::Type { loser, .. } = c.kind {
        fields.push((Frame::bulk("loser_type"), Frame::bulk(loser.name())));
    }
    Frame::Map(fields)
}

#[cfg(test)]
mod tests {
    use crate::command::testing::Harness;
    use crate::crdt::{Conflict, ConflictKind, Hlc, KeyType, RegionId, Stamp};
    use crate::resp::Frame;
    use bytes::Bytes;

    fn record(h: &mut Harness, key: &str, kind: ConflictKind) {
        h.ks.conflicts.record(Conflict {
            key: Bytes::copy_from_slice(key.as_bytes()),
            key_type: Some(KeyType::Set),
            kind,
            winner: Stamp::new(Hlc::new(20, 1), RegionId(2)),
            loser: Stamp::new(Hlc::new(10, 0), RegionId(1)),
        });
    }

    fn keys(f: &Frame) -> Vec<Frame> {
        let Frame::Array(entries) = f else {
            panic!("not an array: {f:?}");
        };
        entries
            .iter()
            .map(|e| match e {
                Frame::Map(fields) => fields[0].1.clone(),
                other => panic!("not a map: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn lists_newest_first_with_count_and_match() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["BRAID.CONFLICTS"]), Frame::Array(vec![]));
        record(&mut h, "user:1", ConflictKind::AddWins);
        record(
            &mut h,
            "cart:1",
            ConflictKind::Type {
                winner: KeyType::Set,
                loser: KeyType::String,
            },
        );
        record(&mut h, "user:2", ConflictKind::Lww);
        let all = h.run(&["BRAID.CONFLICTS"]);
        assert_eq!(
            keys(&all),
            [
                Frame::bulk("user:2"),
                Frame::bulk("cart:1"),
                Frame::bulk("user:1")
            ]
        );
        let Frame::Array(entries) = &all else {
            unreachable!()
        };
        assert_eq!(
            entries[1],
            Frame::Map(vec![
                (Frame::bulk("key"), Frame::bulk("cart:1")),
                (Frame::bulk("type"), Frame::bulk("set")),
                (Frame::bulk("rule"), Frame::bulk("type")),
                (Frame::bulk("winner_region"), Frame::Integer(2)),
                (Frame::bulk("winner_hlc"), Frame::bulk("20.1")),
                (Frame::bulk("loser_region"), Frame::Integer(1)),
                (Frame::bulk("loser_hlc"), Frame::bulk("10.0")),
                (Frame::bulk("loser_type"), Frame::bulk("string")),
            ])
        );
        assert_eq!(
            keys(&h.run(&["braid.conflicts", "MATCH", "user:*", "COUNT", "1"])),
            [Frame::bulk("user:2")]
        );
        assert_eq!(
            keys(&h.run(&["braid.conflicts", "match", "nope*"])),
            Vec::<Frame>::new()
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        let mut h = Harness::new();
        for (words, err) in [
            (&["BRAID.CONFLICTS", "COUNT"][..], "ERR syntax error"),
            (
                &["BRAID.CONFLICTS", "COUNT", "x"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["BRAID.CONFLICTS", "COUNT", "0"],
                "ERR COUNT must be a positive integer",
            ),
            (
                &["BRAID.CONFLICTS", "COUNT", "-3"],
                "ERR COUNT must be a positive integer",
            ),
            (&["BRAID.CONFLICTS", "LIMIT", "3"], "ERR syntax error"),
            (&["BRAID.CONFLICTS", "MATCH"], "ERR syntax error"),
        ] {
            assert_eq!(h.run(words), Frame::error(err), "{words:?}");
        }
    }
}
