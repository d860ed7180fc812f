//! The member map of sets, hashes and sorted sets: an insertion-ordered map
//! that, once large, is split by member hash into pieces that are shared
//! copy-on-write and grow on their own.
//!
//! Why: a snapshot shares every key with the live state, and the first write
//! to a key it shares copies that key under the keyspace lock. One map of
//! three million members took 350 ms to copy, and as long again to grow its
//! hash table, stalling every client. Split into [`PIECES`] pieces, a write
//! copies and grows one piece: 1/256 of the work. Random picks (SPOP,
//! SRANDMEMBER, HRANDFIELD) still index in O(pieces), not O(members).
//!
//! Pure: no I/O.

use bytes::Bytes;
use indexmap::IndexMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Members beyond which a map is split into pieces. Below it one map, so
/// small collections cost no more than before.
pub const SPLIT_AT: usize = 4096;
/// Pieces of a split map.
pub const PIECES: usize = 256;

// foldhash rather than SipHash, as for the key space (`KeyMap`).
type Piece<V> = IndexMap<Bytes, V, foldhash::fast::RandomState>;

/// Which piece a member goes to: a fixed hash, so that a map decoded from a
/// snapshot splits as the one encoded did and keeps its order.
///
/// The pieces are unequal on purpose: piece `i` takes a share of the hash
/// space proportional to 2^(i/PIECES), so their sizes spread evenly over a
/// factor of two. Equal pieces would all reach a power of two together and
/// regrow their tables at once (measured: a 77 ms stall at 4M fields); these
/// regrow one at a time.
fn piece_of(key: &[u8]) -> usize {
    const PLACE: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6272_6169_64);
    static ENDS: std::sync::LazyLock<Vec<u64>> = std::sync::LazyLock::new(piece_ends);
    let h = PLACE.hash_one(key);
    ENDS.partition_point(|&end| end <= h).min(PIECES - 1)
}

/// Where each piece's share of the hash space ends (exclusive; the last one
/// takes everything above the one before it).
fn piece_ends() -> Vec<u64> {
    let weight = |i: usize| (i as f64 / PIECES as f64).exp2();
    let total: f64 = (0..PIECES).map(weight).sum();
    let mut sum = 0.0;
    (0..PIECES)
        .map(|i| {
            sum += weight(i);
            // Saturates at u64::MAX for the last piece.
            (sum / total * u64::MAX as f64) as u64
        })
        .collect()
}

/// An insertion-ordered map from member names, copied and grown in pieces
/// once it holds more than [`SPLIT_AT`] members. Its order is the pieces'
/// orders one after another; removal swaps the piece's last member in.
#[derive(Debug)]
pub struct PieceMap<V> {
    /// One piece, or [`PIECES`] of them (split maps stay split).
    pieces: Vec<Arc<Piece<V>>>,
    len: usize,
}

impl<V> Default for PieceMap<V> {
    fn default() -> Self {
        PieceMap {
            pieces: vec![Arc::new(Piece::default())],
            len: 0,
        }
    }
}

impl<V> Clone for PieceMap<V> {
    /// O(pieces): the pieces are shared until written.
    fn clone(&self) -> Self {
        PieceMap {
            pieces: self.pieces.clone(),
            len: self.len,
        }
    }
}

impl<V: Clone> PieceMap<V> {
    /// An empty map with room for `n` members in its one piece (a map that
    /// will split gets its room when it does).
    pub fn with_capacity(n: usize) -> Self {
        PieceMap {
            pieces: vec![Arc::new(Piece::with_capacity_and_hasher(
                n.min(SPLIT_AT + 1),
                Default::default(),
            ))],
            len: 0,
        }
    }

    fn index(&self, key: &[u8]) -> usize {
        if self.pieces.len() == 1 {
            0
        } else {
            piece_of(key)
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the map is split into pieces.
    pub fn is_split(&self) -> bool {
        self.pieces.len() > 1
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.pieces[self.index(key)].get(key)
    }

    /// Whether `key` is a member.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.pieces[self.index(key)].contains_key(key)
    }

    /// The member's own name and its value, to change (copies its piece if
    /// shared).
    pub fn get_full_mut(&mut self, key: &[u8]) -> Option<(&Bytes, &mut V)> {
        let i = self.index(key);
        // Looked up before `make_mut`: a miss copies nothing.
        let at = self.pieces[i].get_index_of(key)?;
        Arc::make_mut(&mut self.pieces[i]).get_index_mut(at)
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
        let mut i = self.index(key);
        let at = match self.pieces[i].get_index_of(key) {
            Some(at) => Some(at),
            None => {
                self.insert(name(), V::default());
                // The insert may have split the map.
                i = self.index(key);
                self.pieces[i].get_index_of(key)
            }
        };
        at.and_then(|at| Arc::make_mut(&mut self.pieces[i]).get_index_mut(at))
            .expect("a member found or just inserted is in its piece")
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: Bytes, value: V) -> Option<V> {
        let i = self.index(&key);
        let old = Arc::make_mut(&mut self.pieces[i]).insert(key, value);
        if old.is_none() {
            self.len += 1;
            if self.len > SPLIT_AT && !self.is_split() {
                self.split();
            }
        }
        old
    }

    /// Removes `key`, moving the last member of its piece into its place.
    pub fn swap_remove(&mut self, key: &[u8]) -> Option<V> {
        let i = self.index(key);
        if !self.pieces[i].contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(&mut self.pieces[i]).swap_remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
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

    /// Moves the members into [`PIECES`] pieces, each keeping their order.
    fn split(&mut self) {
        let Some(one) = self.pieces.pop() else {
            return;
        };
        let one = Arc::try_unwrap(one).unwrap_or_else(|shared| (*shared).clone());
        let room = 2 * one.len() / PIECES;
        let mut pieces: Vec<Piece<V>> = (0..PIECES)
            .map(|_| Piece::with_capacity_and_hasher(room, Default::default()))
            .collect();
        for (k, v) in one {
            pieces[piece_of(&k)].insert(k, v);
        }
        self.pieces = pieces.into_iter().map(Arc::new).collect();
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

    #[test]
    fn splits_past_the_threshold_and_keeps_every_member() {
        let mut m: PieceMap<u32> = PieceMap::default();
        for i in 0..SPLIT_AT as u32 {
            assert_eq!(m.insert(name(i), i), None);
        }
        assert!(!m.is_split());
        m.insert(name(SPLIT_AT as u32), 0);
        assert!(m.is_split());
        assert_eq!(m.len(), SPLIT_AT + 1);
        for i in 0..SPLIT_AT as u32 {
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
    fn piece_sizes_spread_over_a_factor_of_two() {
        let mut sizes = vec![0usize; PIECES];
        for i in 0..(PIECES as u32 * 2000) {
            sizes[piece_of(&name(i))] += 1;
        }
        let (first, last) = (
            sizes[..16].iter().sum::<usize>(),
            sizes[PIECES - 16..].iter().sum::<usize>(),
        );
        let ratio = last as f64 / first as f64;
        assert!(
            (1.7..2.2).contains(&ratio),
            "last pieces / first pieces = {ratio}"
        );
        assert!(sizes.iter().all(|&n| n > 0));
    }

    #[test]
    fn a_write_to_a_clone_copies_one_piece_only() {
        let mut m: PieceMap<u32> = PieceMap::default();
        for i in 0..3 * SPLIT_AT as u32 {
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
        assert_eq!(shared, PIECES - 1);
        assert_eq!(frozen.get(&name(7)), Some(&7), "the clone does not change");
        assert_eq!(m.get(&name(7)), Some(&1_000_000));
    }

    #[test]
    fn update_where_copies_only_the_pieces_it_changes() {
        let mut m: PieceMap<u32> = PieceMap::default();
        for i in 0..3 * SPLIT_AT as u32 {
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
    fn inserting_in_the_iteration_order_rebuilds_the_same_order() {
        let mut m: PieceMap<u32> = PieceMap::default();
        for i in 0..2 * SPLIT_AT as u32 {
            m.insert(name(i), i);
        }
        for i in (0..2 * SPLIT_AT as u32).step_by(3) {
            m.swap_remove(&name(i));
        }
        let mut again: PieceMap<u32> = PieceMap::with_capacity(m.len());
        for (k, v) in m.iter() {
            again.insert(k.clone(), *v);
        }
        assert!(
            m.iter().eq(again.iter()),
            "a snapshot round trip keeps the order"
        );
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
        // Members drawn from a range wide enough to cross SPLIT_AT.
        let member = 0u16..(2 * SPLIT_AT as u16);
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
