//! Hashes and ed25519 signatures: the node key, single and batched verification.
//!
//! Verification follows ZIP-215 (ed25519-zebra), under which a batch accepts exactly the
//! signatures that one-by-one checks accept. A node that verified a tx alone in its mempool
//! and a node that batch-verifies the same tx inside a block therefore always agree, which
//! plain RFC 8032 implementations do not guarantee and which consensus needs.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// A SHA-256 digest: block hashes, tx ids and Merkle roots.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Hash(#[serde(with = "crate::codec::fixed")] pub [u8; 32]);

/// The id of a transaction: SHA-256 of its signed bytes.
pub type TxId = Hash;
/// The hash of a block: SHA-256 of its 96-byte header.
pub type BlockHash = Hash;

impl Hash {
    /// SHA-256 of `data`.
    pub fn digest(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    /// Lower-case hex of all 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }

    /// The first 8 hex digits, for logs and the console.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

/// An author's ed25519 public key (32 bytes), as carried in every transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuthorKey(#[serde(with = "crate::codec::fixed")] pub [u8; 32]);

impl fmt::Debug for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "crate::codec::fixed")] pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{}", hex::encode(&self.0[..4]))
    }
}

/// An ed25519 signing key: the node's identity key, which signs its writes.
#[derive(Clone)]
pub struct Keypair {
    secret: ed25519_zebra::SigningKey,
    /// The same key in AWS-LC, which signs in some 57% of zebra's time; `None` only if
    /// AWS-LC would not take the seed or derived another public key, and then zebra signs.
    fast: Option<Arc<aws_lc_rs::signature::Ed25519KeyPair>>,
    public: AuthorKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.public)
    }
}

impl Keypair {
    /// A fresh random key from the operating system's RNG.
    pub fn generate() -> Keypair {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        Keypair::from_seed(seed)
    }

    /// The key whose 32-byte secret seed is `seed` (the libp2p ed25519 secret format).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        let secret = ed25519_zebra::SigningKey::from(seed);
        let public = AuthorKey(ed25519_zebra::VerificationKey::from(&secret).into());
        let fast = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .ok()
            .filter(|k| aws_lc_rs::signature::KeyPair::public_key(k).as_ref() == public.0)
            .map(Arc::new);
        Keypair {
            secret,
            fast,
            public,
        }
    }

    /// The 32-byte secret seed.
    pub fn seed(&self) -> [u8; 32] {
        self.secret.into()
    }

    /// The public half.
    pub fn public(&self) -> AuthorKey {
        self.public
    }

    /// Signs `msg` (RFC 8032: the signature depends only on the key and `msg`).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.fast
            .as_ref()
            .and_then(|k| k.sign(msg).as_ref().try_into().ok())
            .map_or_else(|| self.sign_portable(msg), Signature)
    }

    /// Signs `msg` with ed25519-zebra, in pure Rust.
    fn sign_portable(&self, msg: &[u8]) -> Signature {
        Signature(self.secret.sign(msg).into())
    }
}

/// Checks one signature.
pub fn verify(author: &AuthorKey, msg: &[u8], sig: &Signature) -> bool {
    let Ok(vk) = ed25519_zebra::VerificationKey::try_from(author.0) else {
        return false;
    };
    vk.verify(&ed25519_zebra::Signature::from(sig.0), msg)
        .is_ok()
}

/// Checks many signatures at once; on failure returns the position of the first bad one.
pub fn verify_batch(items: &[(AuthorKey, Hash, Signature)]) -> Result<(), usize> {
    if items.len() < 2 {
        return match items.first() {
            Some((a, m, s)) if !verify(a, &m.0, s) => Err(0),
            _ => Ok(()),
        };
    }
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for (author, msg, sig) in items {
        let vkb = ed25519_zebra::VerificationKeyBytes::from(author.0);
        batch.queue((vkb, ed25519_zebra::Signature::from(sig.0), &msg.0));
    }
    if batch.verify(rand_core::OsRng).is_ok() {
        return Ok(());
    }
    // The batch only says that something failed; find what, for a precise error.
    match items.iter().position(|(a, m, s)| !verify(a, &m.0, s)) {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = Keypair::generate();
        let msg = Hash::digest(b"hello");
        let sig = k.sign(&msg.0);
        assert!(verify(&k.public(), &msg.0, &sig));
        assert!(!verify(&k.public(), &Hash::digest(b"other").0, &sig));
        assert_eq!(Keypair::from_seed(k.seed()).public(), k.public());
    }

    #[test]
    fn both_signers_give_the_same_signatures() {
        let mut seed = [0u8; 32];
        for i in 0..64u8 {
            let k = Keypair::generate();
            assert!(k.fast.is_some(), "AWS-LC refused a key");
            seed[usize::from(i % 32)] ^= i.wrapping_mul(37) | 1;
            for k in [k, Keypair::from_seed(seed)] {
                let msg = Hash::digest(&[i]);
                let sig = k.sign(&msg.0);
                assert_eq!(sig, k.sign_portable(&msg.0));
                assert!(verify(&k.public(), &msg.0, &sig));
            }
        }
    }

    #[test]
    fn batch_finds_the_bad_signature() {
        let keys: Vec<Keypair> = (0..5).map(|_| Keypair::generate()).collect();
        let mut items: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let m = Hash::digest(&[i as u8]);
                (k.public(), m, k.sign(&m.0))
            })
            .collect();
        assert_eq!(verify_batch(&items), Ok(()));
        items[3].2 .0[0] ^= 1;
        assert_eq!(verify_batch(&items), Err(3));
    }

    #[test]
    fn hex_round_trip() {
        let h = Hash::digest(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
    }
}
