//! Blocks: the 96-byte header in a fixed binary layout, the tx list and the Merkle root.

use super::crypto::{BlockHash, Hash};
use super::limits::MAX_BLOCK_TXS;
use super::tx::Tx;
use serde::{Deserialize, Serialize};

/// Length of an encoded header.
pub const HEADER_LEN: usize = 96;
/// The only header version this code makes and accepts.
pub const BLOCK_VERSION: u32 = 1;

/// A block header. Layout (little-endian integers), 96 bytes:
/// `version u32 | height u64 | prev [32] | merkle [32] | time u64 | bits u32 | nonce u64`.
/// The first 64 bytes stay fixed while mining and the nonce sits in the last 8, so a miner
/// hashes the first 64 bytes once and each nonce costs one SHA-256 compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header format version.
    pub version: u32,
    /// Height: the parent's plus one (genesis is 0).
    pub height: u64,
    /// Hash of the parent block.
    pub prev: BlockHash,
    /// Merkle root over the txs' ids and signatures ([`tx_leaf`]).
    pub merkle: Hash,
    /// Timestamp in milliseconds since the Unix epoch.
    pub time: u64,
    /// Difficulty: required leading zero bits of the block hash.
    pub bits: u32,
    /// Proof-of-work nonce.
    pub nonce: u64,
}

/// Offset of the nonce inside the encoded header.
pub const NONCE_OFFSET: usize = 88;

impl Header {
    /// The fixed 96-byte encoding.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..12].copy_from_slice(&self.height.to_le_bytes());
        b[12..44].copy_from_slice(&self.prev.0);
        b[44..76].copy_from_slice(&self.merkle.0);
        b[76..84].copy_from_slice(&self.time.to_le_bytes());
        b[84..88].copy_from_slice(&self.bits.to_le_bytes());
        b[88..96].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// Decodes the fixed 96-byte encoding.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Header {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let h32 = |i: usize| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&b[i..i + 32]);
            Hash(a)
        };
        Header {
            version: u32_at(0),
            height: u64_at(4),
            prev: h32(12),
            merkle: h32(44),
            time: u64_at(76),
            bits: u32_at(84),
            nonce: u64_at(88),
        }
    }

    /// The block hash: one SHA-256 of the 96 header bytes.
    pub fn hash(&self) -> BlockHash {
        Hash::digest(&self.to_bytes())
    }
}

impl Serialize for Header {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Header, D::Error> {
        let bytes: [u8; HEADER_LEN] = crate::codec::fixed::deserialize(d)?;
        Ok(Header::from_bytes(&bytes))
    }
}

/// A block: header and transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, applied in this order.
    #[serde(deserialize_with = "bounded_txs")]
    pub txs: Vec<Tx>,
}

/// Decodes a tx list, refusing more than [`MAX_BLOCK_TXS`] entries as it goes: a message
/// within the byte limit can hold many more tiny txs, and growing a `Vec<Tx>` for them
/// would allocate past the message limit before any block rule could refuse it.
fn bounded_txs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Tx>, D::Error> {
    crate::codec::bounded_seq(d, MAX_BLOCK_TXS)
}

impl Block {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// Size for the block-size limit: header plus each tx's signed bytes and signature.
    pub fn size(&self) -> usize {
        HEADER_LEN + self.txs.iter().map(Tx::size).sum::<usize>()
    }

    /// The Merkle root of this block's txs, as the header should state it.
    pub fn compute_merkle(&self) -> Hash {
        merkle_root(&self.txs)
    }
}

/// The Merkle leaf of a tx (computed once, when the tx is made or decoded): the hash of
/// its id and signature bytes, so that the block hash commits to every byte validation
/// reads.
pub fn tx_leaf(tx: &Tx) -> Hash {
    tx.leaf()
}

/// Merkle root of a tx list: [`tx_leaf`]s, domain-separated nodes (RFC 6962 style) and an
/// odd node promoted unchanged, so no two different tx lists share a root.
pub fn merkle_root(txs: &[Tx]) -> Hash {
    root_of_leaves(txs.iter().map(tx_leaf).collect())
}

/// Merkle root over leaves already hashed (leaf prefix 0, node prefix 1).
fn root_of_leaves(mut level: Vec<Hash>) -> Hash {
    if level.is_empty() {
        return Hash::digest(b"");
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut b = [0u8; 65];
                    b[0] = 1;
                    b[1..33].copy_from_slice(&l.0);
                    b[33..].copy_from_slice(&r.0);
                    Hash::digest(&b)
                }
                [one] => *one,
                _ => Hash::default(),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn header() -> Header {
        Header {
            version: 1,
            height: 5,
            prev: Hash::digest(b"p"),
            merkle: Hash::digest(b"m"),
            time: 123,
            bits: 8,
            nonce: u64::MAX - 3,
        }
    }

    #[test]
    fn header_layout_round_trips() {
        let h = header();
        let b = h.to_bytes();
        assert_eq!(Header::from_bytes(&b), h);
        assert_eq!(&b[NONCE_OFFSET..], &h.nonce.to_le_bytes());
        let back: Header = codec::decode(&codec::encode(&h), 200).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn merkle_distinguishes_lists() {
        let ids: Vec<Hash> = (0..5u8).map(|i| Hash::digest(&[i])).collect();
        let r3 = root_of_leaves(ids[..3].to_vec());
        assert_ne!(r3, root_of_leaves(ids[..2].to_vec()));
        assert_ne!(r3, root_of_leaves(vec![ids[0], ids[1], ids[2], ids[2]]));
        assert_ne!(
            root_of_leaves(vec![ids[0], ids[1]]),
            root_of_leaves(vec![ids[1], ids[0]])
        );
        assert_ne!(root_of_leaves(vec![]), root_of_leaves(ids[..1].to_vec()));
    }

    #[test]
    fn merkle_commits_to_signatures() {
        use crate::chain::{Keypair, Op};
        let kp = Keypair::generate();
        let tx = Tx::new(&kp, Op::Delete { key: "k".into() }, 1, 2).unwrap();
        let mut sig = tx.signature();
        sig.0[5] ^= 1;
        let forged = tx.with_signature(sig);
        assert_eq!(forged.id(), tx.id());
        assert_ne!(merkle_root(&[forged]), merkle_root(&[tx]));
    }
}
