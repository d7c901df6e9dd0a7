//! The mempool: verified txs waiting for a block, in arrival order, deduplicated by id.

use super::crypto::TxId;
use super::tx::Tx;
use std::collections::{BTreeMap, HashMap};

/// Default cap on the number of pending txs.
pub const DEFAULT_MAX_TXS: usize = 100_000;
/// Default cap on the bytes of pending txs.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Why the mempool did not take a tx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The mempool is at its count or byte limit.
    #[error("mempool is full ({0} txs)")]
    Full(usize),
}

/// Pending txs. Txs returned by a reorg go to the front (they are older) and are taken
/// even when the pool is full, so a reorg never drops a write.
#[derive(Debug)]
pub struct Mempool {
    txs: HashMap<TxId, (Tx, i64)>,
    order: BTreeMap<i64, TxId>,
    next_back: i64,
    next_front: i64,
    bytes: usize,
    max_txs: usize,
    max_bytes: usize,
}

impl Default for Mempool {
    fn default() -> Self {
        Mempool::new(DEFAULT_MAX_TXS, DEFAULT_MAX_BYTES)
    }
}

impl Mempool {
    /// An empty pool with the given limits.
    pub fn new(max_txs: usize, max_bytes: usize) -> Mempool {
        Mempool {
            txs: HashMap::new(),
            order: BTreeMap::new(),
            next_back: 0,
            next_front: -1,
            bytes: 0,
            max_txs,
            max_bytes,
        }
    }

    /// Adds a new tx at the back; `Ok(false)` if it was already here.
    pub fn insert(&mut self, tx: Tx) -> Result<bool, MempoolError> {
        if self.txs.contains_key(&tx.id()) {
            return Ok(false);
        }
        if self.txs.len() >= self.max_txs || self.bytes + tx.size() > self.max_bytes {
            return Err(MempoolError::Full(self.txs.len()));
        }
        let seq = self.next_back;
        self.next_back += 1;
        self.put(tx, seq);
        Ok(true)
    }

    /// Puts back a tx from a disconnected block, ahead of newer ones, ignoring the limits.
    pub fn readd(&mut self, tx: Tx) {
        if self.txs.contains_key(&tx.id()) {
            return;
        }
        let seq = self.next_front;
        self.next_front -= 1;
        self.put(tx, seq);
    }

    fn put(&mut self, tx: Tx, seq: i64) {
        self.bytes += tx.size();
        self.order.insert(seq, tx.id());
        self.txs.insert(tx.id(), (tx, seq));
    }

    /// Removes a tx (it went into a block); returns it if it was here.
    pub fn remove(&mut self, id: &TxId) -> Option<Tx> {
        let (tx, seq) = self.txs.remove(id)?;
        self.order.remove(&seq);
        self.bytes -= tx.size();
        Some(tx)
    }

    /// The pending tx with this id.
    pub fn get(&self, id: &TxId) -> Option<&Tx> {
        self.txs.get(id).map(|(tx, _)| tx)
    }

    /// Whether the tx is pending here.
    pub fn contains(&self, id: &TxId) -> bool {
        self.txs.contains_key(id)
    }

    /// Number of pending txs.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Ids of all pending txs, oldest first.
    pub fn ids(&self) -> Vec<TxId> {
        self.order.values().copied().collect()
    }

    /// The oldest txs that fit in `max_txs` and `max_bytes`, for a block template.
    pub fn template(&self, max_txs: usize, max_bytes: usize) -> Vec<Tx> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for id in self.order.values() {
            if out.len() >= max_txs {
                break;
            }
            if let Some((tx, _)) = self.txs.get(id) {
                if bytes + tx.size() > max_bytes {
                    continue;
                }
                bytes += tx.size();
                out.push(tx.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Keypair, Op};

    fn tx(i: u64) -> Tx {
        let kp = Keypair::from_seed([1; 32]);
        Tx::new(
            &kp,
            Op::Delete {
                key: format!("k{i}"),
            },
            i,
            0,
        )
        .unwrap()
    }

    #[test]
    fn dedups_orders_and_limits() {
        let mut m = Mempool::new(2, 1 << 20);
        assert_eq!(m.insert(tx(1)), Ok(true));
        assert_eq!(m.insert(tx(1)), Ok(false));
        assert_eq!(m.insert(tx(2)), Ok(true));
        assert_eq!(m.insert(tx(3)), Err(MempoolError::Full(2)));
        m.readd(tx(0));
        assert_eq!(m.ids(), vec![tx(0).id(), tx(1).id(), tx(2).id()]);
        assert_eq!(m.template(2, 1 << 20).len(), 2);
        assert_eq!(m.template(10, tx(0).size()).len(), 1);
        assert!(m.remove(&tx(1).id()).is_some());
        assert!(!m.contains(&tx(1).id()));
        assert_eq!(m.len(), 2);
    }
}
