//! The mempool: verified txs waiting for a block, in arrival order, deduplicated by id,
//! bounded in count and bytes, fair between authors, and never full for this node's own
//! writes because of what peers sent.
//!
//! Eviction order when full: the oldest pending tx of the remote author with the most
//! pending txs goes first. A remote tx evicts only if that author keeps at least as many
//! pending txs as the newcomer's author then holds (otherwise it is refused), so a flood
//! only ever displaces itself; an own write always evicts a remote tx. Own writes are
//! never evicted and never expire.

use super::crypto::{AuthorKey, TxId};
use super::tx::Tx;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Default cap on the number of pending txs.
pub const DEFAULT_MAX_TXS: usize = 100_000;
/// Default cap on the bytes of pending txs.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;
/// Default cap on the pending txs of one remote author.
pub const DEFAULT_MAX_PER_AUTHOR: usize = 20_000;
/// Remote txs leave the pool this long after they arrived, unless mined.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);
/// A relayed tx may be stamped at most this far ahead of the local clock (ms).
pub const MAX_TX_FUTURE_MS: u64 = 2 * 60 * 1000;
/// A relayed tx may be stamped at most this long ago (ms).
pub const MAX_TX_AGE_MS: u64 = 3600 * 1000;

/// Why the mempool did not take a tx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The mempool is at its count or byte limit, and this tx may not evict another.
    #[error("mempool is full ({0} txs)")]
    Full(usize),
    /// The tx's author already has as many pending txs as one author may.
    #[error("author has {0} pending txs, the most one author may have")]
    AuthorQuota(usize),
    /// The tx is stamped too far ahead of our clock.
    #[error("timestamp {0} is too far ahead of the local clock")]
    TooNew(u64),
    /// The tx is stamped too long ago to be relayed.
    #[error("timestamp {0} is too old to relay")]
    TooOld(u64),
}

/// Now, in µs since the Unix epoch (0 if the clock is before it).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Checks a relayed tx's timestamp against the local clock (both in ms).
pub fn check_timestamp(timestamp: u64, now_ms: u64) -> Result<(), MempoolError> {
    if timestamp > now_ms.saturating_add(MAX_TX_FUTURE_MS) {
        return Err(MempoolError::TooNew(timestamp));
    }
    if timestamp.saturating_add(MAX_TX_AGE_MS) < now_ms {
        return Err(MempoolError::TooOld(timestamp));
    }
    Ok(())
}

/// The mempool's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most pending txs.
    pub max_txs: usize,
    /// Most bytes of pending txs (as counted by [`Tx::size`]).
    pub max_bytes: usize,
    /// Most pending txs of one remote author.
    pub max_per_author: usize,
    /// How long a remote tx may wait.
    pub expiry: Duration,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: DEFAULT_MAX_TXS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_per_author: DEFAULT_MAX_PER_AUTHOR,
            expiry: DEFAULT_EXPIRY,
        }
    }
}

#[derive(Debug)]
struct Entry {
    tx: Tx,
    seq: i64,
    own: bool,
    arrived: Instant,
    /// Wall-clock arrival, µs since the Unix epoch (for cross-node propagation timing).
    arrived_unix_us: u64,
}

/// Pending txs. Txs returned by a reorg go to the front (they are older) and are taken
/// even when the pool is full, so a reorg never drops a write.
#[derive(Debug)]
pub struct Mempool {
    txs: HashMap<TxId, Entry>,
    order: BTreeMap<i64, TxId>,
    /// Remote txs of each author, by arrival order.
    by_author: HashMap<AuthorKey, BTreeSet<i64>>,
    /// (pending count, author) of every remote author, to find the largest.
    sizes: BTreeSet<(usize, AuthorKey)>,
    next_back: i64,
    next_front: i64,
    bytes: usize,
    limits: MempoolLimits,
    own: Option<AuthorKey>,
}

impl Default for Mempool {
    fn default() -> Self {
        Mempool::with_limits(MempoolLimits::default(), None)
    }
}

impl Mempool {
    /// An empty pool with the given count and byte limits and default quotas.
    pub fn new(max_txs: usize, max_bytes: usize) -> Mempool {
        let limits = MempoolLimits {
            max_txs,
            max_bytes,
            ..MempoolLimits::default()
        };
        Mempool::with_limits(limits, None)
    }

    /// An empty pool with `limits`, for a node whose own writes are signed by `own`.
    pub fn with_limits(limits: MempoolLimits, own: Option<AuthorKey>) -> Mempool {
        Mempool {
            txs: HashMap::new(),
            order: BTreeMap::new(),
            by_author: HashMap::new(),
            sizes: BTreeSet::new(),
            next_back: 0,
            next_front: -1,
            bytes: 0,
            limits,
            own,
        }
    }

    fn is_own(&self, tx: &Tx) -> bool {
        self.own == Some(tx.author())
    }

    fn author_count(&self, author: &AuthorKey) -> usize {
        self.by_author.get(author).map_or(0, BTreeSet::len)
    }

    fn is_full(&self, incoming: usize) -> bool {
        self.txs.len() >= self.limits.max_txs || self.bytes + incoming > self.limits.max_bytes
    }

    /// Adds a new tx at the back; `Ok(false)` if it was already here.
    pub fn insert(&mut self, tx: Tx) -> Result<bool, MempoolError> {
        if self.txs.contains_key(&tx.id()) {
            return Ok(false);
        }
        let own = self.is_own(&tx);
        let author = tx.author();
        let mine = self.author_count(&author);
        if !own && mine >= self.limits.max_per_author {
            return Err(MempoolError::AuthorQuota(mine));
        }
        while self.is_full(tx.size()) {
            let victim = self
                .sizes
                .last()
                .copied()
                .filter(|(count, largest)| own || (*largest != author && *count > mine + 1));
            let Some((_, largest)) = victim else {
                return Err(MempoolError::Full(self.txs.len()));
            };
            let oldest = self
                .by_author
                .get(&largest)
                .and_then(|seqs| seqs.first())
                .and_then(|seq| self.order.get(seq))
                .copied();
            match oldest {
                Some(id) => {
                    self.remove(&id);
                }
                None => return Err(MempoolError::Full(self.txs.len())),
            }
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
        let own = self.is_own(&tx);
        if !own {
            self.count_author(tx.author(), |seqs| {
                seqs.insert(seq);
            });
        }
        self.bytes += tx.size();
        self.order.insert(seq, tx.id());
        let entry = Entry {
            seq,
            own,
            arrived: Instant::now(),
            arrived_unix_us: unix_micros(),
            tx,
        };
        self.txs.insert(entry.tx.id(), entry);
    }

    /// Changes one author's remote seqs, keeping `sizes` in step.
    fn count_author(&mut self, author: AuthorKey, change: impl FnOnce(&mut BTreeSet<i64>)) {
        let seqs = self.by_author.entry(author).or_default();
        self.sizes.remove(&(seqs.len(), author));
        change(seqs);
        if seqs.is_empty() {
            self.by_author.remove(&author);
        } else {
            self.sizes.insert((seqs.len(), author));
        }
    }

    /// Removes a tx (it went into a block); returns it if it was here.
    pub fn remove(&mut self, id: &TxId) -> Option<Tx> {
        let entry = self.txs.remove(id)?;
        self.order.remove(&entry.seq);
        self.bytes -= entry.tx.size();
        if !entry.own {
            self.count_author(entry.tx.author(), |seqs| {
                seqs.remove(&entry.seq);
            });
        }
        Some(entry.tx)
    }

    /// Drops remote txs that have waited longer than the expiry; returns their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<TxId> {
        let expiry = self.limits.expiry;
        let old: Vec<TxId> = self
            .txs
            .values()
            .filter(|e| !e.own && now.saturating_duration_since(e.arrived) > expiry)
            .map(|e| e.tx.id())
            .collect();
        for id in &old {
            self.remove(id);
        }
        old
    }

    /// This node's own pending writes, oldest first.
    pub fn own_txs(&self) -> Vec<Tx> {
        self.order
            .values()
            .filter_map(|id| self.txs.get(id))
            .filter(|e| e.own)
            .map(|e| e.tx.clone())
            .collect()
    }

    /// The pending tx with this id.
    pub fn get(&self, id: &TxId) -> Option<&Tx> {
        self.txs.get(id).map(|e| &e.tx)
    }

    /// When the pool took `id`, in µs since the Unix epoch: the moment this node had it.
    pub fn arrived_unix_us(&self, id: &TxId) -> Option<u64> {
        self.txs.get(id).map(|e| e.arrived_unix_us)
    }

    /// Whether the tx is pending here.
    pub fn contains(&self, id: &TxId) -> bool {
        self.txs.contains_key(id)
    }

    /// Number of pending txs.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Bytes of pending txs.
    pub fn bytes(&self) -> usize {
        self.bytes
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
            if let Some(e) = self.txs.get(id) {
                if bytes + e.tx.size() > max_bytes {
                    continue;
                }
                bytes += e.tx.size();
                out.push(e.tx.clone());
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

    fn tx_by(seed: u8, i: u64) -> Tx {
        let kp = Keypair::from_seed([seed; 32]);
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

    fn limits(max_txs: usize, per_author: usize) -> MempoolLimits {
        MempoolLimits {
            max_txs,
            max_per_author: per_author,
            ..MempoolLimits::default()
        }
    }

    #[test]
    fn a_pending_tx_knows_when_it_arrived() {
        let mut m = Mempool::with_limits(limits(100, 3), None);
        let before = unix_micros();
        m.insert(tx_by(1, 0)).unwrap();
        let at = m.arrived_unix_us(&tx_by(1, 0).id()).unwrap();
        assert!(before <= at && at <= unix_micros());
        assert_eq!(m.arrived_unix_us(&tx_by(1, 1).id()), None);
    }

    #[test]
    fn one_author_cannot_take_more_than_its_quota() {
        let mut m = Mempool::with_limits(limits(100, 3), None);
        for i in 0..3 {
            assert_eq!(m.insert(tx_by(1, i)), Ok(true));
        }
        assert_eq!(m.insert(tx_by(1, 3)), Err(MempoolError::AuthorQuota(3)));
        assert_eq!(m.insert(tx_by(2, 0)), Ok(true));
    }

    #[test]
    fn when_full_the_largest_author_loses_its_oldest_tx() {
        let mut m = Mempool::with_limits(limits(4, 10), None);
        for i in 0..3 {
            m.insert(tx_by(1, i)).unwrap();
        }
        m.insert(tx_by(2, 0)).unwrap();
        // Author 3 has none: it evicts author 1's oldest.
        assert_eq!(m.insert(tx_by(3, 0)), Ok(true));
        assert!(!m.contains(&tx_by(1, 0).id()));
        assert_eq!(m.len(), 4);
        // Author 2 would then hold 2 and author 1 only 1: refused, not evicting.
        assert_eq!(m.insert(tx_by(2, 1)), Err(MempoolError::Full(4)));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn own_writes_always_find_room_and_never_expire() {
        let own = Keypair::from_seed([7; 32]);
        let mut m = Mempool::with_limits(limits(3, 10), Some(own.public()));
        for i in 0..3 {
            m.insert(tx_by(1, i)).unwrap();
        }
        let mine = |i| Tx::new(&own, Op::Delete { key: "o".into() }, i, 0).unwrap();
        for i in 0..3 {
            assert_eq!(m.insert(mine(i)), Ok(true), "own write {i}");
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.own_txs().len(), 3);
        // Full of own writes: another own write is refused, never an own one evicted.
        assert_eq!(m.insert(mine(3)), Err(MempoolError::Full(3)));
        let later = Instant::now() + DEFAULT_EXPIRY + Duration::from_secs(1);
        assert!(m.expire(later).is_empty());
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn remote_txs_expire() {
        let mut m = Mempool::default();
        m.insert(tx_by(1, 0)).unwrap();
        assert!(m.expire(Instant::now()).is_empty());
        let later = Instant::now() + DEFAULT_EXPIRY + Duration::from_secs(1);
        assert_eq!(m.expire(later), vec![tx_by(1, 0).id()]);
        assert!(m.is_empty());
        assert_eq!(m.bytes(), 0);
    }

    #[test]
    fn timestamps_must_be_near_the_clock() {
        let now = 10 * MAX_TX_AGE_MS;
        assert!(check_timestamp(now, now).is_ok());
        assert!(check_timestamp(now + MAX_TX_FUTURE_MS, now).is_ok());
        assert!(check_timestamp(now + MAX_TX_FUTURE_MS + 1, now).is_err());
        assert!(check_timestamp(now - MAX_TX_AGE_MS, now).is_ok());
        assert!(check_timestamp(now - MAX_TX_AGE_MS - 1, now).is_err());
        assert!(check_timestamp(u64::MAX, now).is_err());
    }
}
