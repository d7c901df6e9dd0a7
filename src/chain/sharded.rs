//! A hash map split into shards that grow one at a time. A std `HashMap` moves every
//! entry when it doubles: at half a million keys the index stopped the node task for
//! some 0.3 s (0.65 s at a million), with every write and read waiting behind its lock.
//! Here a doubling moves one shard's entries, a 256th of the map, so the pause stays
//! short however large the chain grows, and the memory held twice while it lasts too.

use hashbrown::hash_table::{Entry, HashTable};
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};

/// Number of shards.
const SHARDS: usize = 256;

/// A map of `K` to `V` in [`SHARDS`] shards. A key is hashed once: bits 32 to 39 of its
/// hash pick the shard, and the shard's table uses the same hash (its low bits for the
/// slot, its top 7 as the tag), so the shard bits take nothing from either.
#[derive(Clone, Debug)]
pub struct ShardedMap<K, V> {
    /// Keyed at random, so no one can aim keys at one shard or one slot.
    hasher: RandomState,
    shards: Box<[HashTable<(K, V)>]>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }
}

/// The shard of a key whose hash is `hash`.
fn shard(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// An empty map (no shard allocates until it holds something).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hasher.hash_one(key);
        self.shards[shard(h)]
            .find(h, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// The value of `key`, to change.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hasher.hash_one(key);
        self.shards[shard(h)]
            .find_mut(h, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// The value of `key`, first inserting `make()` if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let hasher = &self.hasher;
        let h = hasher.hash_one(&key);
        match self.shards[shard(h)].entry(h, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k)) {
            Entry::Occupied(e) => &mut e.into_mut().1,
            Entry::Vacant(e) => {
                self.len += 1;
                &mut e.insert((key, make())).into_mut().1
            }
        }
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hasher = &self.hasher;
        let h = hasher.hash_one(&key);
        match self.shards[shard(h)].entry(h, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k)) {
            Entry::Occupied(mut e) => Some(std::mem::replace(&mut e.get_mut().1, value)),
            Entry::Vacant(e) => {
                self.len += 1;
                e.insert((key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hasher.hash_one(key);
        let entry = self.shards[shard(h)]
            .find_entry(h, |(k, _)| k.borrow() == key)
            .ok()?;
        self.len -= 1;
        Some(entry.remove().0 .1)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// What a test does to both maps.
    #[derive(Clone, Debug)]
    enum Step {
        Insert(u16, u32),
        Remove(u16),
        GetOrInsert(u16, u32),
        Bump(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (any::<u16>(), any::<u32>()).prop_map(|(k, v)| Step::Insert(k % 512, v)),
            any::<u16>().prop_map(|k| Step::Remove(k % 512)),
            (any::<u16>(), any::<u32>()).prop_map(|(k, v)| Step::GetOrInsert(k % 512, v)),
            any::<u16>().prop_map(|k| Step::Bump(k % 512)),
        ]
    }

    proptest! {
        /// Any sequence of changes leaves it holding what one std map would.
        #[test]
        fn it_behaves_as_one_std_map(steps in proptest::collection::vec(step(), 0..600)) {
            let mut ours: ShardedMap<String, u32> = ShardedMap::new();
            let mut std: HashMap<String, u32> = HashMap::new();
            for s in steps {
                match s {
                    Step::Insert(k, v) => {
                        prop_assert_eq!(ours.insert(k.to_string(), v), std.insert(k.to_string(), v));
                    }
                    Step::Remove(k) => {
                        prop_assert_eq!(ours.remove(k.to_string().as_str()), std.remove(&k.to_string()));
                    }
                    Step::GetOrInsert(k, v) => {
                        let a = *ours.get_or_insert_with(k.to_string(), || v);
                        prop_assert_eq!(a, *std.entry(k.to_string()).or_insert(v));
                    }
                    Step::Bump(k) => {
                        if let Some(v) = ours.get_mut(k.to_string().as_str()) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = std.get_mut(&k.to_string()) {
                            *v = v.wrapping_add(1);
                        }
                    }
                }
                prop_assert_eq!(ours.len(), std.len());
            }
            let mut all: Vec<(String, u32)> = ours.iter().map(|(k, v)| (k.clone(), *v)).collect();
            all.sort();
            let mut want: Vec<(String, u32)> = std.into_iter().collect();
            want.sort();
            prop_assert_eq!(all, want);
        }
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut map = ShardedMap::new();
        for i in 0..100_000u32 {
            map.insert(i, ());
        }
        let sizes: Vec<usize> = map.shards.iter().map(HashTable::len).collect();
        // 390 a shard on average; a keyed hash keeps every shard near it.
        let (min, max) = (sizes.iter().min(), sizes.iter().max());
        assert!(
            min >= Some(&250) && max <= Some(&550),
            "shard sizes {min:?} to {max:?}"
        );
        assert!(!map.is_empty());
        assert_eq!(map.get(&7), Some(&()));
    }
}
