//! Transactions: signed writes (`Put`, `Delete`) with their id and stateless checks.

use super::crypto::{self, AuthorKey, Hash, Keypair, Signature, TxId};
use super::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use super::sigcache::SigCache;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Domain separator at the start of every tx's signed bytes.
const TX_DOMAIN: &[u8] = b"kvchain/tx/v1\0";

/// What a write does to a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Removes `key`'s value (a tombstone in its history).
    Delete {
        /// The key.
        key: String,
    },
}

impl Op {
    /// The key this operation writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// Why a transaction is invalid on its own, before looking at any chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The key is empty.
    #[error("key is empty")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("key is {0} bytes, over the limit of {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    /// The key holds a control character (keys must print on one line).
    #[error("key contains a control character")]
    KeyControlChar,
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("value is {0} bytes, over the limit of {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    /// The signature does not match the author and the tx id.
    #[error("bad signature")]
    BadSignature,
}

/// Checks a key against the key rules.
pub fn check_key(key: &str) -> Result<(), TxError> {
    if key.is_empty() {
        return Err(TxError::EmptyKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(TxError::KeyTooLong(key.len()));
    }
    if key.chars().any(char::is_control) {
        return Err(TxError::KeyControlChar);
    }
    Ok(())
}

/// Checks an operation's key and value sizes.
pub fn check_op(op: &Op) -> Result<(), TxError> {
    check_key(op.key())?;
    if let Op::Put { value, .. } = op {
        if value.len() > MAX_VALUE_BYTES {
            return Err(TxError::ValueTooLarge(value.len()));
        }
    }
    Ok(())
}

/// A signed write. Its id and Merkle leaf are computed once, when it is made or decoded.
/// The fields sit behind an `Arc`: a tx is copied into the mempool, every template, every
/// block and gossip message that carries it, and a copy is a reference count, not the key
/// and value again.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TxWire")]
pub struct Tx(Arc<TxBody>);

/// What a [`Tx`] holds.
#[derive(Debug, PartialEq, Eq)]
struct TxBody {
    author: AuthorKey,
    op: Op,
    nonce: u64,
    timestamp: u64,
    sig: Signature,
    id: TxId,
    size: usize,
    leaf: Hash,
}

impl TxBody {
    /// The body of a tx with these fields, whose signed bytes are `signed_len` long and
    /// hash to `id`.
    fn new(w: TxWire, id: TxId, signed_len: usize) -> TxBody {
        TxBody {
            leaf: leaf_of(&id, &w.sig),
            size: signed_len + 64,
            id,
            author: w.author,
            op: w.op,
            nonce: w.nonce,
            timestamp: w.timestamp,
            sig: w.sig,
        }
    }
}

/// The Merkle leaf of a tx: it commits to the tx id (author, operation, nonce, timestamp)
/// and to the signature bytes. A tx id cannot cover its own signature, so a root over ids
/// alone would let anyone swap a signature without changing the block hash; with the
/// signature in the leaf, the block hash commits to every byte that validation reads.
fn leaf_of(id: &TxId, sig: &Signature) -> Hash {
    let mut b = [0u8; 1 + 32 + 64];
    b[1..33].copy_from_slice(&id.0);
    b[33..].copy_from_slice(&sig.0);
    Hash::digest(&b)
}

/// A transaction as it travels: everything but the derived id.
#[derive(Deserialize)]
struct TxWire {
    author: AuthorKey,
    op: Op,
    nonce: u64,
    timestamp: u64,
    sig: Signature,
}

#[derive(Serialize)]
struct TxWireRef<'a> {
    author: &'a AuthorKey,
    op: &'a Op,
    nonce: u64,
    timestamp: u64,
    sig: &'a Signature,
}

impl Serialize for Tx {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = &*self.0;
        TxWireRef {
            author: &t.author,
            op: &t.op,
            nonce: t.nonce,
            timestamp: t.timestamp,
            sig: &t.sig,
        }
        .serialize(s)
    }
}

impl TryFrom<TxWire> for Tx {
    type Error = TxError;
    fn try_from(w: TxWire) -> Result<Tx, TxError> {
        check_op(&w.op)?;
        let bytes = signed_bytes(&w.author, &w.op, w.nonce, w.timestamp);
        let id = TxId::digest(&bytes);
        Ok(Tx(Arc::new(TxBody::new(w, id, bytes.len()))))
    }
}

/// The bytes whose SHA-256 is the tx id: a fixed layout, independent of the wire encoding.
fn signed_bytes(author: &AuthorKey, op: &Op, nonce: u64, timestamp: u64) -> Vec<u8> {
    let (tag, key, value): (u8, &str, &[u8]) = match op {
        Op::Put { key, value } => (1, key, value),
        Op::Delete { key } => (2, key, &[]),
    };
    let mut b =
        Vec::with_capacity(TX_DOMAIN.len() + 32 + 8 + 8 + 1 + 2 + key.len() + 4 + value.len());
    b.extend_from_slice(TX_DOMAIN);
    b.extend_from_slice(&author.0);
    b.extend_from_slice(&nonce.to_le_bytes());
    b.extend_from_slice(&timestamp.to_le_bytes());
    b.push(tag);
    // Lengths fit: keys are at most MAX_KEY_BYTES and values MAX_VALUE_BYTES (checked).
    b.extend_from_slice(&(key.len() as u16).to_le_bytes());
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&(value.len() as u32).to_le_bytes());
    b.extend_from_slice(value);
    b
}

impl Tx {
    /// Makes and signs a write; fails if the key or value breaks the limits.
    pub fn new(keypair: &Keypair, op: Op, nonce: u64, timestamp: u64) -> Result<Tx, TxError> {
        check_op(&op)?;
        let author = keypair.public();
        let bytes = signed_bytes(&author, &op, nonce, timestamp);
        let id = TxId::digest(&bytes);
        let wire = TxWire {
            sig: keypair.sign(&id.0),
            author,
            op,
            nonce,
            timestamp,
        };
        Ok(Tx(Arc::new(TxBody::new(wire, id, bytes.len()))))
    }

    /// The tx id.
    pub fn id(&self) -> TxId {
        self.0.id
    }

    /// The author's public key.
    pub fn author(&self) -> AuthorKey {
        self.0.author
    }

    /// The operation.
    pub fn op(&self) -> &Op {
        &self.0.op
    }

    /// The client nonce.
    pub fn nonce(&self) -> u64 {
        self.0.nonce
    }

    /// The author's timestamp, in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> u64 {
        self.0.timestamp
    }

    /// The signature over the tx id.
    pub fn signature(&self) -> Signature {
        self.0.sig
    }

    /// Bytes this tx counts for in a block: its signed bytes plus the signature.
    pub fn size(&self) -> usize {
        self.0.size
    }

    /// Checks the signature (the costly part of validation).
    pub fn verify_signature(&self) -> Result<(), TxError> {
        if crypto::verify(&self.0.author, &self.0.id.0, &self.0.sig) {
            Ok(())
        } else {
            Err(TxError::BadSignature)
        }
    }

    /// A copy with another signature, for tests of hostile input.
    pub fn with_signature(&self, sig: Signature) -> Tx {
        let t = &*self.0;
        Tx(Arc::new(TxBody {
            sig,
            leaf: leaf_of(&t.id, &sig),
            op: t.op.clone(),
            ..*t
        }))
    }

    /// The tx's Merkle leaf (see [`crate::chain::block::merkle_root`]).
    pub fn leaf(&self) -> Hash {
        self.0.leaf
    }
}

/// A tx whose signature this node has checked, or that it signed itself: what the
/// mempool takes without checking again. Only the constructors below make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx(Tx);

impl VerifiedTx {
    /// Makes and signs a write with this node's key (its signature is good by making).
    pub fn sign(
        keypair: &Keypair,
        op: Op,
        nonce: u64,
        timestamp: u64,
    ) -> Result<VerifiedTx, TxError> {
        Tx::new(keypair, op, nonce, timestamp).map(VerifiedTx)
    }

    /// `tx`, if `cache` holds its very signature as checked before; else `tx` back.
    pub fn checked_before(tx: Tx, cache: &SigCache) -> Result<VerifiedTx, Tx> {
        if cache.contains(&tx.id(), &tx.signature()) {
            Ok(VerifiedTx(tx))
        } else {
            Err(tx)
        }
    }

    /// Checks `tx`'s signature.
    pub fn check(tx: Tx) -> Result<VerifiedTx, TxError> {
        tx.verify_signature()?;
        Ok(VerifiedTx(tx))
    }

    /// Checks the signatures of `txs` together (batch verification: about twice as fast
    /// as one by one); on failure, the position of the first bad one.
    pub fn check_all(txs: Vec<Tx>) -> Result<Vec<VerifiedTx>, usize> {
        let items: Vec<_> = txs.iter().map(|t| (t.0.author, t.0.id, t.0.sig)).collect();
        crypto::verify_batch(&items)?;
        Ok(txs.into_iter().map(VerifiedTx).collect())
    }

    /// The tx.
    pub fn tx(&self) -> &Tx {
        &self.0
    }

    /// The tx, giving up the proof.
    pub fn into_tx(self) -> Tx {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn put(k: &str, v: &[u8]) -> Op {
        Op::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn id_is_stable_across_encoding() {
        let kp = Keypair::generate();
        let tx = Tx::new(&kp, put("a", b"1"), 7, 1000).unwrap();
        let back: Tx = codec::decode(&codec::encode(&tx), 1 << 20).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.id(), tx.id());
        assert_eq!(back.leaf(), tx.leaf());
        assert!(back.verify_signature().is_ok());
    }

    #[test]
    fn leaf_is_the_hash_of_a_zero_byte_the_id_and_the_signature() {
        // The block format: a change here changes every Merkle root.
        let tx = Tx::new(&Keypair::from_seed([3; 32]), put("a", b"1"), 7, 1000).unwrap();
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&tx.id().0);
        bytes.extend_from_slice(&tx.signature().0);
        assert_eq!(tx.leaf(), Hash::digest(&bytes));
    }

    #[test]
    fn only_the_very_signature_checked_before_skips_the_check() {
        let kp = Keypair::generate();
        let tx = Tx::new(&kp, put("a", b"1"), 7, 1000).unwrap();
        let mut cache = SigCache::new(8);
        assert!(VerifiedTx::checked_before(tx.clone(), &cache).is_err());
        cache.insert(tx.id(), tx.signature());
        let checked = VerifiedTx::checked_before(tx.clone(), &cache).map(VerifiedTx::into_tx);
        assert_eq!(checked, Ok(tx.clone()));
        // Same id, another signature: not what was checked.
        let mut sig = tx.signature();
        sig.0[0] ^= 1;
        assert!(VerifiedTx::checked_before(tx.with_signature(sig), &cache).is_err());
    }

    #[test]
    fn tampering_changes_id_and_breaks_signature() {
        let kp = Keypair::generate();
        let tx = Tx::new(&kp, put("a", b"1"), 7, 1000).unwrap();
        let other = Tx::new(&kp, put("a", b"2"), 7, 1000).unwrap();
        let forged = other.with_signature(tx.signature());
        assert_ne!(forged.id(), tx.id());
        assert_eq!(forged.verify_signature(), Err(TxError::BadSignature));
        assert_eq!(
            VerifiedTx::check(forged.clone()),
            Err(TxError::BadSignature)
        );
        let good = VerifiedTx::check(tx.clone()).map(VerifiedTx::into_tx);
        assert_eq!(good.as_ref(), Ok(&tx));
        assert_eq!(
            VerifiedTx::check_all(vec![tx.clone(), forged, tx]).err(),
            Some(1)
        );
    }

    #[test]
    fn key_and_value_limits() {
        let kp = Keypair::generate();
        let mk = |op| Tx::new(&kp, op, 0, 0).map(|_| ());
        assert_eq!(mk(put("", b"")), Err(TxError::EmptyKey));
        assert_eq!(
            mk(put(&"k".repeat(257), b"")),
            Err(TxError::KeyTooLong(257))
        );
        assert_eq!(mk(put("a\nb", b"")), Err(TxError::KeyControlChar));
        assert_eq!(
            mk(put("k", &vec![0; MAX_VALUE_BYTES + 1])),
            Err(TxError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
        assert!(mk(put(&"k".repeat(256), &vec![0; MAX_VALUE_BYTES])).is_ok());
        assert!(mk(Op::Delete { key: "k".into() }).is_ok());
    }

    #[test]
    fn decoding_enforces_limits() {
        #[derive(Serialize)]
        struct Raw<'a> {
            author: &'a AuthorKey,
            op: Op,
            nonce: u64,
            timestamp: u64,
            sig: &'a Signature,
        }
        let kp = Keypair::generate();
        let raw = Raw {
            author: &kp.public(),
            op: put("", b"x"),
            nonce: 0,
            timestamp: 0,
            sig: &Signature([0; 64]),
        };
        assert!(codec::decode::<Tx>(&codec::encode(&raw), 1 << 20).is_err());
    }
}
