//! The member map of sets, hashes and sorted sets: an insertion-ordered map
//! kept in pieces of at most [`PIECE_MAX`] members, shared copy-on-write,
//! that split one at a time as the map grows (extendible hashing).
//!
//! Why: a snapshot shares every key with the live state, and the first write
//! to a key it shares copies that key under the keyspace lock. One map of
//! three million members took 350 ms to copy, and as long again to grow its
//! hash table, stalling every client. In pieces, a write copies one piece
//! and a growing map splits one piece: microseconds, whatever the size.
//! Random picks (SPOP, SRANDMEMBER, HRANDFIELD) index in O(pieces).
//!
//! Pure: no I/O.

use bytes::Bytes;
use indexmap::map::RawEntryApiV1;
use indexmap::IndexMap;
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock};

/// Most members a piece holds before it splits in two (one that cannot be
/// split, all its members' hashes alike to [`MAX_DEPTH`] bits, grows on).
pub const PIECE_MAX: usize = 8192;
/// Most hash bits that tell pieces apart.
const MAX_DEPTH: u8 = 40;

type Piece<V> = IndexMap<Bytes, V, MemberHasher>;

/// One hash of a member serves both to place it in a piece and to find it
/// there (a lookup hashes once). foldhash rather than SipHash, as for the
/// key space (`KeyMap`), seeded per process against collision floods.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemberHasher;

static SEED: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

impl BuildHasher for MemberHasher {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        SEED.build_hasher()
    }
}

fn hash(key: &[u8]) -> u64 {
    MemberHasher.hash_one(key)
}

/// Placement uses bits 55 down to 16 of the hash: a piece's table finds
/// slots by the low bits and tells members apart by the top seven, which
/// must not be the same for every member of a piece.
const PLACE_TOP: u32 = 56;

/// Bit `d` of the placement bits, counting from the top.
fn bit(h: u64, d: u8) -> bool {
    (h >> (PLACE_TOP - 1 - u32::from(d))) & 1 == 1
}

/// An insertion-ordered map from member names, kept in pieces. Its order is
/// the pieces' orders one after another; removal swaps the piece's last
/// member into the gap, and a split moves members to a new, last piece.
#[derive(Debug)]
pub struct PieceMap<V> {
    /// The pieces, in the map's order.
    pieces: Vec<Arc<Piece<V>>>,
    /// How many top bits of the placement hash each piece is told apart by.
    depths: Vec<u8>,
    /// The piece of each value of the top `depth` bits of the placement hash.
    dir: Vec<u32>,
    depth: u8,
    len: usize,
}

impl<V> Default for PieceMap<V> {
    fn default() -> Self {
        PieceMap {
            pieces: vec![Arc::new(Piece::default())],
            depths: vec![0],
            dir: vec![0],
            depth: 0,
            len: 0,
        }
    }
}

impl<V> Clone for PieceMap<V> {
    /// O(pieces): the pieces are shared until written.
    fn clone(&self) -> Self {
        PieceMap {
            pieces: self.pieces.clone(),
            depths: self.depths.clone(),
            dir: self.dir.clone(),
            depth: self.depth,
            len: self.len,
        }
    }
}

impl<V: Clone> PieceMap<V> {
    /// An empty map with room for `n` members in its first piece (a larger
    /// map makes its room as it splits).
    pub fn with_capacity(n: usize) -> Self {
        PieceMap {
            pieces: vec![Arc::new(Piece::with_capacity_and_hasher(
                n.min(PIECE_MAX),
                Default::default(),
            ))],
            ..PieceMap::default()
        }
    }

    /// The piece a member of hash `h` belongs in.
    fn slot(&self, h: u64) -> usize {
        if self.depth == 0 {
            0
        } else {
            let top = h >> (PLACE_TOP - u32::from(self.depth));
            self.dir[(top & ((1 << self.depth) - 1)) as usize] as usize
        }
    }

    #[cfg(test)]
    fn index(&self, key: &[u8]) -> usize {
        self.slot(hash(key))
    }

    /// The piece of `key` and its position there.
    fn find(&self, key: &[u8]) -> (usize, Option<usize>) {
        let h = hash(key);
        let i = self.slot(h);
        let at = self.pieces[i]
            .raw_entry_v1()
            .index_from_hash(h, |k| k[..] == *key);
        (i, at)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let h = hash(key);
        self.pieces[self.slot(h)]
            .raw_entry_v1()
            .from_hash(h, |k| k[..] == *key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is a member.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.find(key).1.is_some()
    }

    /// The member's own name and its value, to change (copies its piece if
    /// shared).
    pub fn get_full_mut(&mut self, key: &[u8]) -> Option<(&Bytes, &mut V)> {
        // Looked up before `make_mut`: a miss copies nothing.
        let (i, at) = self.find(key);
        Arc::make_mut(&mut self.pieces[i]).get_index_mut(at?)
    }

    /// The value of `key`, to change (copies its piece if shared).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.get_full_mut(key).map(|(_, v)| v)
    }

    /// The member `key` and its value, inserted with `name()` and the
    /// default value if missing (`name` builds the stored copy of the name).
    pub fn get_or_insert_with(
        &mut self,
        key: &[u8],
        name: impl FnOnce() -> Bytes,
    ) -> (&Bytes, &mut V)
    where
        V: Default,
    {
        let (mut i, mut at) = self.find(key);
        if at.is_none() {
            self.insert(name(), V::default());
            // The insert may have split the map.
            (i, at) = self.find(key);
        }
        at.and_then(|at| Arc::make_mut(&mut self.pieces[i]).get_index_mut(at))
            .expect("a member found or just inserted is in its piece")
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: Bytes, value: V) -> Option<V> {
        let i = self.slot(hash(&key));
        let old = Arc::make_mut(&mut self.pieces[i]).insert(key, value);
        if old.is_none() {
            self.len += 1;
            if self.pieces[i].len() > PIECE_MAX {
                self.split(i);
            }
        }
        old
    }

    /// Removes `key`, moving the last member of its piece into its place.
    pub fn swap_remove(&mut self, key: &[u8]) -> Option<V> {
        let (i, at) = self.find(key);
        let (_, old) = Arc::make_mut(&mut self.pieces[i]).swap_remove_index(at?)?;
        self.len -= 1;
        Some(old)
    }

    /// Keeps the members `keep` says to (copies every piece that loses one,
    /// or all if `keep` changes values: it is given them mutably).
    pub fn retain(&mut self, mut keep: impl FnMut(&Bytes, &mut V) -> bool) {
        for piece in &mut self.pieces {
            Arc::make_mut(piece).retain(&mut keep);
        }
        self.len = self.pieces.iter().map(|p| p.len()).sum();
    }

    /// Members and values, in the map's order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.pieces.iter().flat_map(|p| p.iter())
    }

    /// Members, in the map's order.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.pieces.iter().flat_map(|p| p.keys())
    }

    /// Values, in the map's order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.pieces.iter().flat_map(|p| p.values())
    }

    /// Runs `f` on the values `needs` picks, copying only the pieces that
    /// hold one: a periodic pass that usually changes nothing (collecting
    /// stable metadata) then leaves the pieces a snapshot shares alone.
    pub fn update_where(&mut self, needs: impl Fn(&V) -> bool, mut f: impl FnMut(&mut V)) {
        for piece in &mut self.pieces {
            if piece.values().any(&needs) {
                for v in Arc::make_mut(piece).values_mut() {
                    if needs(v) {
                        f(v);
                    }
                }
            }
        }
    }

    /// The member at `index` of the map's order (for random picks).
    pub fn get_index(&self, mut index: usize) -> Option<(&Bytes, &V)> {
        for piece in &self.pieces {
            if index < piece.len() {
                return piece.get_index(index);
            }
            index -= piece.len();
        }
        None
    }

    /// Splits piece `p` in two by the next bit of the placement hash; the
    /// members whose bit is set move, in order, to a new last piece.
    fn split(&mut self, p: usize) {
        let d = self.depths[p];
        if d >= MAX_DEPTH {
            return;
        }
        if d == self.depth {
            // Every directory slot becomes two.
            self.dir = self.dir.iter().flat_map(|&i| [i, i]).collect();
            self.depth += 1;
        }
        let q = self.pieces.len();
        let old = Arc::try_unwrap(std::mem::take(&mut self.pieces[p]))
            .unwrap_or_else(|shared| (*shared).clone());
        let half = old.len() / 2 + 1;
        let mut stay = Piece::with_capacity_and_hasher(half, Default::default());
        let mut moved = Piece::with_capacity_and_hasher(half, Default::default());
        for (k, v) in old {
            if bit(hash(&k), d) {
                moved.insert(k, v);
            } else {
                stay.insert(k, v);
            }
        }
        self.pieces[p] = Arc::new(stay);
        self.pieces.push(Arc::new(moved));
        self.depths[p] = d + 1;
        self.depths.push(d + 1);
        let shift = u32::from(self.depth - 1 - d);
        for (slot, piece) in self.dir.iter_mut().enumerate() {
            if *piece as usize == p && (slot >> shift) & 1 == 1 {
                *piece = q as u32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn name(i: u32) -> Bytes {
        Bytes::from(format!("member:{i}"))
    }

    /// The directory sends every member to the piece that holds it.
    fn check(m: &PieceMap<u32>) {
        assert_eq!(m.pieces.len(), m.depths.len());
        assert_eq!(m.dir.len(), 1 << m.depth);
        assert_eq!(m.pieces.iter().map(|p| p.len()).sum::<usize>(), m.len());
        for (i, piece) in m.pieces.iter().enumerate() {
            for k in piece.keys() {
                assert_eq!(m.index(k), i, "member {k:?} is found where it is");
            }
        }
    }

    #[test]
    fn pieces_split_one_at_a_time_and_keep_every_member() {
        let mut m: PieceMap<u32> = PieceMap::default();
        for i in 0..PIECE_MAX as u32 {
            assert_eq!(m.insert(name(i), i), None);
        }
        assert_eq!(m.pieces.len(), 1, "a small map is one piece");
        let n = 40 * PIECE_MAX as u32;
        for i in PIECE_MAX as u32..n {
            assert_eq!(m.insert(name(i), i), None);
        }
        assert_eq!(m.len(), n as usize);
        assert!(m.pieces.len() >= 40);
        assert!(m.pieces.iter().all(|p| p.len() <= PIECE_MAX));
        check(&m);
        for i in 0..n {
            assert_eq!(m.get(&name(i)), Some(&i));
        }
        assert_eq!(m.iter().count(), m.len());
        let mut seen: Vec<&Bytes> = (0..m.len())
            .filter_map(|i| m.get_index(i))
            .map(|(k, _)| k)
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), m.len(), "every index names a distinct member");
        assert!(m.get_index(m.len()).is_none());
    }

    #[test]
    fn a_write_to_a_clone_copies_one_piece_only() {
        let mut m: PieceMap<u32> = PieceMap::default();
        for i in 0..10 * PIECE_MAX as u32 {
            m.insert(name(i), i);
        }
        let frozen = m.clone();
        *m.get_mut(&name(7)).expect("present") = 1_000_000;
        let shared = m
            .pieces
            .iter()
            .zip(&frozen.pieces)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, m.pieces.len() - 1);
        assert_eq!(frozen.get(&name(7)), Some(&7), "the clone does not change");
        assert_eq!(m.get(&name(7)), Some(&1_000_000));
    }

    #[test]
    fn update_where_copies_only_the_pieces_it_changes() {
        let mut m: PieceMap<u32> = PieceMap::default();
        for i in 0..10 * PIECE_MAX as u32 {
            m.insert(name(i), i);
        }
        let frozen = m.clone();
        m.update_where(|v| *v == 5, |v| *v = 50);
        let copied = m
            .pieces
            .iter()
            .zip(&frozen.pieces)
            .filter(|(a, b)| !Arc::ptr_eq(a, b))
            .count();
        assert_eq!(copied, 1);
        assert_eq!(m.get(&name(5)), Some(&50));
        assert_eq!(frozen.get(&name(5)), Some(&5));
        m.update_where(|_| false, |_| unreachable!("nothing is picked"));
    }

    #[test]
    fn members_whose_hashes_agree_still_fit() {
        // Past MAX_DEPTH a piece no longer splits: it grows on, unharmed.
        let mut m: PieceMap<u32> = PieceMap::default();
        m.depths[0] = MAX_DEPTH;
        for i in 0..3 * PIECE_MAX as u32 {
            m.insert(name(i), i);
        }
        assert_eq!(m.pieces.len(), 1);
        assert_eq!(m.get(&name(5000)), Some(&5000));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(u16, u32),
        Remove(u16),
        Update(u16, u32),
        Retain(u16),
        Clone,
    }

    fn step() -> impl Strategy<Value = Step> {
        // Members drawn from a range wide enough for several splits.
        let member = 0u16..(4 * PIECE_MAX as u16);
        prop_oneof![
            8 => (member.clone(), any::<u32>()).prop_map(|(k, v)| Step::Insert(k, v)),
            3 => member.clone().prop_map(Step::Remove),
            2 => (member, any::<u32>()).prop_map(|(k, v)| Step::Update(k, v)),
            1 => (2u16..50).prop_map(Step::Retain),
            1 => Just(Step::Clone),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Behaves as a plain map, whatever the splits and shared clones.
        #[test]
        fn behaves_as_a_map(steps in proptest::collection::vec(step(), 1..12_000)) {
            let mut m: PieceMap<u32> = PieceMap::default();
            let mut model: BTreeMap<Bytes, u32> = BTreeMap::new();
            let mut clones = Vec::new();
            for s in steps {
                match s {
                    Step::Insert(k, v) => {
                        let k = name(u32::from(k));
                        prop_assert_eq!(m.insert(k.clone(), v), model.insert(k, v));
                    }
                    Step::Remove(k) => {
                        let k = name(u32::from(k));
                        prop_assert_eq!(m.swap_remove(&k), model.remove(&k));
                    }
                    Step::Update(k, v) => {
                        let k = name(u32::from(k));
                        let (_, slot) = m.get_or_insert_with(&k, || k.clone());
                        *slot = v;
                        model.insert(k, v);
                    }
                    Step::Retain(d) => {
                        m.retain(|_, v| *v % u32::from(d) != 0);
                        model.retain(|_, v| *v % u32::from(d) != 0);
                    }
                    Step::Clone => clones.push((m.clone(), model.clone())),
                }
                prop_assert_eq!(m.len(), model.len());
            }
            check(&m);
            let mut all: Vec<(Bytes, u32)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
            all.sort();
            prop_assert!(all.into_iter().eq(model.into_iter()));
            for (c, model) in clones {
                prop_assert_eq!(c.len(), model.len());
                for (k, v) in &model {
                    prop_assert_eq!(c.get(k), Some(v));
                }
            }
        }
    }
}
