//! Proof of work: difficulty checks, block work, and the midstate nonce search.
//!
//! A header is 96 bytes, so its SHA-256 takes two compressions. The first covers bytes
//! 0..64, which do not change while mining; [`Midstate`] computes it once, and each nonce
//! then costs at most one compression of the second block. On x86-64 CPUs with the SHA
//! extensions it costs less: the kernel in `pow/shani.rs` also precomputes the part of the
//! second block that does not depend on the nonce and hashes two nonces side by side
//! ([`Backend::ShaNi`], chosen at run time); elsewhere each nonce is one
//! `sha2::compress256` ([`Backend::Portable`]).

use super::block::{merkle_root, Block, Header, HEADER_LEN, NONCE_OFFSET};
use super::crypto::Hash;
use super::params::Params;
use sha2::digest::generic_array::GenericArray;
use std::time::{Duration, Instant};

#[cfg(target_arch = "x86_64")]
mod shani;

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

/// Which SHA-256 implementation a [`Midstate`] hashes nonces with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One `sha2::compress256` of the second block per nonce: any CPU.
    Portable,
    /// The x86-64 SHA extensions, nonce-free work precomputed, two nonces side by side.
    ShaNi,
}

impl Backend {
    /// The fastest backend this CPU runs; the CPU check runs once and is cached.
    pub fn detect() -> Backend {
        #[cfg(target_arch = "x86_64")]
        if shani::available() {
            return Backend::ShaNi;
        }
        Backend::Portable
    }
}

/// A header with its first 64 bytes already compressed, ready to try nonces.
#[derive(Clone)]
pub struct Midstate {
    state: [u32; 8],
    tail: [u8; 64],
    /// The SHA-NI precomputation, when this midstate uses [`Backend::ShaNi`].
    #[cfg(target_arch = "x86_64")]
    shani: Option<shani::Template>,
}

/// Offset of the nonce inside the second compression block.
const TAIL_NONCE: usize = NONCE_OFFSET - 64;

impl Midstate {
    /// Precomputes the first compression of `header`, for the fastest backend here.
    pub fn new(header: &Header) -> Midstate {
        Midstate::build(header, Backend::detect())
    }

    /// Like [`Midstate::new`] with a chosen backend; `None` if this CPU cannot run it.
    pub fn with_backend(header: &Header, backend: Backend) -> Option<Midstate> {
        let mid = Midstate::build(header, backend);
        (mid.backend() == backend).then_some(mid)
    }

    /// The backend this midstate hashes with.
    pub fn backend(&self) -> Backend {
        #[cfg(target_arch = "x86_64")]
        if self.shani.is_some() {
            return Backend::ShaNi;
        }
        Backend::Portable
    }

    /// The midstate for `backend`, or for [`Backend::Portable`] if the CPU lacks it.
    fn build(header: &Header, backend: Backend) -> Midstate {
        let bytes = header.to_bytes();
        let mut state = SHA256_IV;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&bytes[..64])]);
        let mut tail = [0u8; 64];
        tail[..HEADER_LEN - 64].copy_from_slice(&bytes[64..]);
        tail[HEADER_LEN - 64] = 0x80;
        tail[56..].copy_from_slice(&((HEADER_LEN as u64) * 8).to_be_bytes());
        #[cfg(not(target_arch = "x86_64"))]
        let _ = backend;
        Midstate {
            #[cfg(target_arch = "x86_64")]
            shani: match backend {
                Backend::ShaNi => shani::Template::new(&state, &tail),
                Backend::Portable => None,
            },
            state,
            tail,
        }
    }

    /// The header hash for `nonce`, at one compression (on this midstate's backend).
    pub fn hash(&mut self, nonce: u64) -> Hash {
        #[cfg(target_arch = "x86_64")]
        let state = match &self.shani {
            Some(template) => template.state(nonce),
            None => self.compress(nonce),
        };
        #[cfg(not(target_arch = "x86_64"))]
        let state = self.compress(nonce);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Hash(out)
    }

    /// The state after the second block for `nonce`, with `sha2::compress256`.
    fn compress(&mut self, nonce: u64) -> [u32; 8] {
        self.tail[TAIL_NONCE..TAIL_NONCE + 8].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.state;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&self.tail)]);
        state
    }

    /// Tries `count` nonces from `start` (wrapping); returns the first that meets `bits`.
    pub fn search(&mut self, bits: u32, start: u64, count: u64) -> Option<u64> {
        #[cfg(target_arch = "x86_64")]
        if let Some(template) = &self.shani {
            return search_shani(template, bits, start, count);
        }
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

/// [`Midstate::search`] on SHA-NI. The kernel tests the first state word only, which
/// decides targets up to 32 bits; longer ones are confirmed on the full state.
#[cfg(target_arch = "x86_64")]
fn search_shani(template: &shani::Template, bits: u32, start: u64, count: u64) -> Option<u64> {
    let (mut start, mut count) = (start, count);
    while let Some(nonce) = template.search(bits.min(32), start, count) {
        if bits <= 32 || state_meets(&template.state(nonce), bits) {
            return Some(nonce);
        }
        let tried = nonce.wrapping_sub(start).wrapping_add(1);
        start = nonce.wrapping_add(1);
        count = count.saturating_sub(tried);
    }
    None
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

/// An empty block on `params`' genesis whose hash misses the difficulty: what a hostile
/// peer sends, so that tests and experiments see honest nodes refuse it. `salt` makes
/// each one different.
pub fn failing_block(params: &Params, salt: u64) -> Block {
    let genesis = params.genesis().header;
    let mut header = Header {
        version: 1,
        height: 1,
        prev: genesis.hash(),
        merkle: merkle_root(&[]),
        time: genesis.time + 1_000 + salt,
        bits: params.difficulty(),
        nonce: salt,
    };
    while meets(&header.hash(), header.bits) {
        header.nonce += 1;
    }
    Block {
        header,
        txs: vec![],
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
    use proptest::prelude::*;

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

    /// Both backends, or only the portable one (with a note) on a CPU without SHA-NI.
    fn backends(h: &Header) -> Vec<Midstate> {
        let mut all = vec![Midstate::with_backend(h, Backend::Portable).expect("portable")];
        match Midstate::with_backend(h, Backend::ShaNi) {
            Some(mid) => all.push(mid),
            None => {
                static NOTE: std::sync::Once = std::sync::Once::new();
                NOTE.call_once(|| eprintln!("note: no SHA-NI here; only the portable backend"));
            }
        }
        all
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            any::<u32>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u32>(),
        )
            .prop_map(|(version, height, prev, merkle, time, bits)| Header {
                version,
                height,
                prev: Hash(prev),
                merkle: Hash(merkle),
                time,
                bits,
                nonce: 0,
            })
    }

    #[test]
    fn new_picks_the_detected_backend() {
        assert_eq!(Midstate::new(&header(0)).backend(), Backend::detect());
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("sha") {
            assert_eq!(Backend::detect(), Backend::ShaNi);
        }
    }

    proptest! {
        #[test]
        fn backends_hash_like_sha2(
            h in arb_header(),
            nonces in proptest::collection::vec(any::<u64>(), 1..8),
        ) {
            // Random nonces, plus the carries between the nonce's two message words.
            let edges = [0, 1, u32::MAX as u64, 1 << 32, u64::MAX];
            for mut mid in backends(&h) {
                for &nonce in nonces.iter().chain(&edges) {
                    let full = Header { nonce, ..h };
                    prop_assert_eq!(mid.hash(nonce), full.hash(), "{:?}", mid.backend());
                }
            }
        }

        #[test]
        fn backends_search_alike(
            h in arb_header(),
            bits in 0u32..12,
            start in any::<u64>(),
            count in 0u64..3000,
        ) {
            let found: Vec<_> = backends(&h)
                .iter_mut()
                .map(|mid| mid.search(bits, start, count))
                .collect();
            prop_assert!(found.windows(2).all(|w| w[0] == w[1]), "{:?}", found);
            if let Some(nonce) = found[0] {
                let solved = Header { nonce, ..h };
                prop_assert!(meets(&solved.hash(), bits));
                prop_assert!(nonce.wrapping_sub(start) < count);
            }
        }
    }

    #[test]
    fn search_edges_agree_across_backends() {
        let h = header(0);
        // (bits, start, count): empty, odd counts, wrap-around, and targets over 32 bits
        // (never met here, so every nonce is tried and confirmed on the full state).
        let cases = [
            (0, 5, 0),
            (0, 5, 1),
            (0, u64::MAX, 3),
            (4, u64::MAX - 40, 81),
            (8, 7, 1001),
            (33, 0, 4097),
            (64, u64::MAX - 2, 5),
            (256, 1 << 32, 999),
        ];
        for (bits, start, count) in cases {
            let found: Vec<_> = backends(&h)
                .iter_mut()
                .map(|mid| mid.search(bits, start, count))
                .collect();
            assert!(
                found.windows(2).all(|w| w[0] == w[1]),
                "{bits} {start} {count}: {found:?}"
            );
            // The portable search checks each nonce in order: cross-check it by bytes.
            let first = (0..count)
                .map(|i| start.wrapping_add(i))
                .find(|&nonce| meets(&Header { nonce, ..h }.hash(), bits));
            assert_eq!(found[0], first, "{bits} {start} {count}");
        }
    }

    #[test]
    fn solve_finds_the_first_nonce_on_every_backend() {
        let h = header(14);
        let mut found = backends(&h)
            .into_iter()
            .map(|mut mid| mid.search(14, 0, 1 << 20));
        let expected = solve(h).nonce;
        assert!(found.all(|n| n == Some(expected)));
    }

    #[test]
    fn work_doubles_per_bit() {
        assert_eq!(work(0), 1);
        assert_eq!(work(20), 1 << 20);
    }
}
