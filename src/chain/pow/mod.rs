//! Proof of work: difficulty checks, block work, and the midstate nonce search.
//!
//! A header is 96 bytes, so its SHA-256 takes two compressions. The first covers bytes
//! 0..64, which do not change while mining; [`Midstate`] computes it once, and each nonce
//! then costs exactly one compression of the second block.

use super::block::{Header, HEADER_LEN, NONCE_OFFSET};
use super::crypto::Hash;
use sha2::digest::generic_array::GenericArray;
use std::time::{Duration, Instant};

/// SHA-256 initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Leading zero bits of a hash.
pub fn leading_zero_bits(hash: &Hash) -> u32 {
    let mut n = 0;
    for byte in hash.0 {
        if byte == 0 {
            n += 8;
        } else {
            return n + byte.leading_zeros();
        }
    }
    n
}

/// Whether `hash` has at least `bits` leading zero bits.
pub fn meets(hash: &Hash, bits: u32) -> bool {
    leading_zero_bits(hash) >= bits
}

/// Expected hashes to find a block at `bits`: the work a block adds to its chain.
pub fn work(bits: u32) -> u128 {
    1u128 << bits.min(127)
}

/// A header with its first 64 bytes already compressed, ready to try nonces.
#[derive(Clone)]
pub struct Midstate {
    state: [u32; 8],
    tail: [u8; 64],
}

/// Offset of the nonce inside the second compression block.
const TAIL_NONCE: usize = NONCE_OFFSET - 64;

impl Midstate {
    /// Precomputes the first compression of `header`.
    pub fn new(header: &Header) -> Midstate {
        let bytes = header.to_bytes();
        let mut state = SHA256_IV;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&bytes[..64])]);
        let mut tail = [0u8; 64];
        tail[..HEADER_LEN - 64].copy_from_slice(&bytes[64..]);
        tail[HEADER_LEN - 64] = 0x80;
        tail[56..].copy_from_slice(&((HEADER_LEN as u64) * 8).to_be_bytes());
        Midstate { state, tail }
    }

    /// The header hash for `nonce`, at one compression.
    pub fn hash(&mut self, nonce: u64) -> Hash {
        let state = self.compress(nonce);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Hash(out)
    }

    fn compress(&mut self, nonce: u64) -> [u32; 8] {
        self.tail[TAIL_NONCE..TAIL_NONCE + 8].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.state;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&self.tail)]);
        state
    }

    /// Tries `count` nonces from `start` (wrapping); returns the first that meets `bits`.
    pub fn search(&mut self, bits: u32, start: u64, count: u64) -> Option<u64> {
        let mut nonce = start;
        for _ in 0..count {
            if state_meets(&self.compress(nonce), bits) {
                return Some(nonce);
            }
            nonce = nonce.wrapping_add(1);
        }
        None
    }
}

/// Leading-zero test on the raw state words (big-endian digest order), without bytes.
fn state_meets(state: &[u32; 8], bits: u32) -> bool {
    let mut need = bits;
    for word in state {
        if need == 0 {
            return true;
        }
        let lz = word.leading_zeros();
        if need <= 32 {
            return lz >= need;
        }
        if lz < 32 {
            return false;
        }
        need -= 32;
    }
    need == 0
}

/// Finds a nonce for `header` on this thread and returns the solved header.
/// Intended for tests, tools and low difficulties; the node mines with [`super::Miner`].
pub fn solve(mut header: Header) -> Header {
    let mut mid = Midstate::new(&header);
    let mut start = header.nonce;
    loop {
        if let Some(nonce) = mid.search(header.bits, start, 1 << 20) {
            header.nonce = nonce;
            return header;
        }
        start = start.wrapping_add(1 << 20);
    }
}

/// Hashes per second that `threads` threads reach in about `duration`.
pub fn measure_hashrate(threads: usize, duration: Duration) -> u64 {
    let threads = threads.max(1);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let header = Header {
                        version: 1,
                        height: t as u64,
                        prev: Hash::default(),
                        merkle: Hash::default(),
                        time: 0,
                        bits: 0,
                        nonce: 0,
                    };
                    let mut mid = Midstate::new(&header);
                    let mut done = 0u64;
                    while start.elapsed() < duration {
                        // Difficulty 256 is never met, so every nonce in the range is tried.
                        let _ = mid.search(256, done, 1 << 16);
                        done += 1 << 16;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    if secs > 0.0 {
        (total as f64 / secs) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bits: u32) -> Header {
        Header {
            version: 1,
            height: 1,
            prev: Hash::digest(b"prev"),
            merkle: Hash::digest(b"merkle"),
            time: 1,
            bits,
            nonce: 0,
        }
    }

    #[test]
    fn midstate_hash_equals_plain_sha256() {
        let mut h = header(0);
        let mut mid = Midstate::new(&h);
        for nonce in [0, 1, 12345, u64::MAX] {
            h.nonce = nonce;
            assert_eq!(mid.hash(nonce), h.hash());
        }
    }

    #[test]
    fn solve_meets_difficulty_and_search_agrees_with_bytes() {
        let h = solve(header(12));
        assert!(meets(&h.hash(), 12));
        assert!(leading_zero_bits(&h.hash()) >= 12);
        let mut mid = Midstate::new(&h);
        assert_eq!(mid.search(12, h.nonce, 1), Some(h.nonce));
    }

    #[test]
    fn state_meets_matches_leading_zero_bits() {
        for bits in [0, 1, 7, 8, 31, 32, 33, 40, 64, 256] {
            let mut mid = Midstate::new(&header(bits));
            for nonce in 0..2000u64 {
                let state = mid.compress(nonce);
                let hash = mid.hash(nonce);
                assert_eq!(state_meets(&state, bits), meets(&hash, bits), "bits {bits}");
            }
        }
        let mut zero = [0u32; 8];
        assert!(state_meets(&zero, 256));
        zero[7] = 1;
        assert!(state_meets(&zero, 255) && !state_meets(&zero, 256));
    }

    #[test]
    fn work_doubles_per_bit() {
        assert_eq!(work(0), 1);
        assert_eq!(work(20), 1 << 20);
    }
}
