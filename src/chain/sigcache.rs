//! Signatures this node checked recently. A tx is checked when it arrives by gossip and
//! again when a block carries it; once it has left the mempool (included in a block, or a
//! competing block at the same height arrives) only this cache spares the second check.
//! Bounded: the oldest entries go first.
//!
//! A tx id does not cover its signature, so an entry is the id with the exact signature
//! that was checked: another signature on the same id is checked again.

use super::crypto::{Signature, TxId};
use std::collections::{HashMap, VecDeque};

/// Entries kept: at 5,000 txs a second, the last 13 seconds or so (about 10 MB).
pub const SIG_CACHE_ENTRIES: usize = 1 << 16;

/// A bounded set of (tx id, signature) pairs known to be valid.
#[derive(Debug)]
pub struct SigCache {
    sigs: HashMap<TxId, Signature>,
    order: VecDeque<TxId>,
    cap: usize,
}

impl Default for SigCache {
    fn default() -> Self {
        SigCache::new(SIG_CACHE_ENTRIES)
    }
}

impl SigCache {
    /// An empty cache of at most `cap` entries.
    pub fn new(cap: usize) -> SigCache {
        SigCache {
            sigs: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Remembers that `sig` on `id` is valid.
    pub fn insert(&mut self, id: TxId, sig: Signature) {
        if self.sigs.insert(id, sig).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.sigs.remove(&old);
            }
        }
    }

    /// Whether `sig` on `id` was checked and found valid.
    pub fn contains(&self, id: &TxId, sig: &Signature) -> bool {
        self.sigs.get(id) == Some(sig)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TxId {
        TxId::digest(&[n])
    }

    #[test]
    fn only_the_exact_signature_counts() {
        let mut c = SigCache::new(4);
        c.insert(id(1), Signature([1; 64]));
        assert!(c.contains(&id(1), &Signature([1; 64])));
        assert!(!c.contains(&id(1), &Signature([2; 64])));
        assert!(!c.contains(&id(2), &Signature([1; 64])));
    }

    #[test]
    fn the_oldest_entries_leave_first() {
        let mut c = SigCache::new(3);
        for n in 0..5 {
            c.insert(id(n), Signature([n; 64]));
        }
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&id(1), &Signature([1; 64])));
        assert!(c.contains(&id(2), &Signature([2; 64])));
        assert!(c.contains(&id(4), &Signature([4; 64])));
    }
}
