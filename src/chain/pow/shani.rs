//! The SHA-NI nonce search: the second compression of a header hash on the x86-64 SHA
//! extensions, with everything that does not depend on the nonce computed once per template.
//!
//! The nonce is header bytes 88..96, which are bytes 24..32 of the second 64-byte block:
//! message words W6 and W7. The rest of that block is fixed while mining (the header's tail,
//! then the 0x80 pad byte, zeros and the bit length 768). So, once per [`Template`]: rounds
//! 0..5 run in scalar code (their words are fixed), and the schedule words W8..W20 and the
//! nonce-free halves of W24..W35 are computed. Each nonce then costs rounds 6..63 (29
//! `sha256rnds2` instead of 32) and the rest of its schedule, and only the first state word
//! is finished and tested; [`super::Midstate`] confirms targets above 32 bits on the full
//! state. [`LANES`] nonces go through the rounds side by side: `sha256rnds2` has a latency
//! of 4 cycles but issues every 2 (measured on AMD Zen 1), so one hash chain alone leaves
//! the unit idle half the time. Three or four lanes run out of the 16 XMM registers and
//! measured slower than two.
//!
//! Used only when the CPU has the extensions ([`available`], checked once); otherwise the
//! miner falls back to `sha2::compress256`.

use crate::chain::block::{HEADER_LEN, NONCE_OFFSET};
use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_cvtsi64_si128, _mm_extract_epi32, _mm_set_epi32,
    _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
};
use std::sync::OnceLock;

// The kernel hard-codes where the nonce sits: words 6 and 7 of the second block.
const _: () = assert!(HEADER_LEN == 96 && NONCE_OFFSET - 64 == 24);

/// Nonces hashed side by side per loop iteration.
const LANES: usize = 2;

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Whether this CPU has SHA-NI and the SSE levels the kernel uses (detected once, cached).
pub fn available() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    })
}

/// The nonce-independent part of one header's second compression, as plain words.
///
/// Only [`Template::new`] makes one, and only after [`available`] said yes: holding a
/// `Template` proves the CPU can run the kernel.
#[derive(Clone, Debug)]
pub struct Template {
    /// The state after the first block, added back at the end.
    mid: [u32; 8],
    /// The state after rounds 0..5 as the SHA-NI pair (ABEF, CDGH), in lane order.
    abef6: [u32; 4],
    cdgh6: [u32; 4],
    /// W4 and W5, the fixed half of the vector W4..W7.
    w4: u32,
    w5: u32,
    /// K + W for rounds 8..19 (fixed words), two rounds per entry.
    kw8: [[u32; 2]; 6],
    /// W8..W11 and W16..W19: inputs of W20..W23.
    w8: [u32; 4],
    w16: [u32; 4],
    /// W13..W16: the W[t-7] terms of W20..W23.
    w13: [u32; 4],
    /// W[t-16] + σ0(W[t-15]) + W[t-7] of W24..W27 (all fixed).
    part24: [u32; 4],
    /// W[t-16] + σ0(W[t-15]) of W28..W31 and of W32..W35 (fixed).
    part28: [u32; 4],
    part32: [u32; 4],
}

impl Template {
    /// Precomputes the template for midstate `mid` and padded second block `tail`; `None`
    /// when the CPU lacks SHA-NI.
    pub fn new(mid: &[u32; 8], tail: &[u8; 64]) -> Option<Template> {
        if !available() {
            return None;
        }
        let mut w = [0u32; 21];
        for (word, bytes) in w.iter_mut().zip(tail.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        // W16..W20 read W0..W5 and W8..W18 only, never the nonce words W6, W7.
        for t in 16..21 {
            w[t] = small_sigma1(w[t - 2])
                .wrapping_add(w[t - 7])
                .wrapping_add(small_sigma0(w[t - 15]))
                .wrapping_add(w[t - 16]);
        }
        let mut s = *mid;
        for t in 0..6 {
            s = round(s, K[t].wrapping_add(w[t]));
        }
        let lanes4 = |f: &dyn Fn(usize) -> u32| [f(0), f(1), f(2), f(3)];
        Some(Template {
            mid: *mid,
            abef6: [s[5], s[4], s[1], s[0]],
            cdgh6: [s[7], s[6], s[3], s[2]],
            w4: w[4],
            w5: w[5],
            kw8: std::array::from_fn(|i| {
                let t = 8 + 2 * i;
                [K[t].wrapping_add(w[t]), K[t + 1].wrapping_add(w[t + 1])]
            }),
            w8: lanes4(&|i| w[8 + i]),
            w16: lanes4(&|i| w[16 + i]),
            w13: lanes4(&|i| w[13 + i]),
            part24: lanes4(&|i| {
                w[8 + i]
                    .wrapping_add(small_sigma0(w[9 + i]))
                    .wrapping_add(w[17 + i])
            }),
            part28: lanes4(&|i| w[12 + i].wrapping_add(small_sigma0(w[13 + i]))),
            part32: lanes4(&|i| w[16 + i].wrapping_add(small_sigma0(w[17 + i]))),
        })
    }

    /// The first nonce of `count` from `start` (wrapping) whose first state word has at
    /// least `need` (at most 32) leading zero bits.
    pub fn search(&self, need: u32, start: u64, count: u64) -> Option<u64> {
        // SAFETY: a `Template` exists only after `available()` confirmed every feature
        // `search_lanes` is compiled for (see `Template::new`).
        unsafe { search_lanes(self, need, start, count) }
    }

    /// The full SHA-256 state after the second block with `nonce`.
    pub fn state(&self, nonce: u64) -> [u32; 8] {
        // SAFETY: as in `search`: holding a `Template` proves the CPU features.
        unsafe { full_state(self, nonce) }
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn search_lanes(t: &Template, need: u32, start: u64, count: u64) -> Option<u64> {
    let mut done = 0u64;
    // Whole groups of LANES nonces, tested without a branch between the lanes: a branch
    // there lets the compiler move each lane into its own block, which undoes the
    // interleaving (measured: 2 lanes then run no faster than 1).
    while count - done >= LANES as u64 {
        let first = start.wrapping_add(done);
        let mut nonces = [0u64; LANES];
        for (j, nonce) in nonces.iter_mut().enumerate() {
            *nonce = first.wrapping_add(j as u64);
        }
        let mut hits = 0u32;
        for (j, [abef, _]) in rounds(t, nonces).into_iter().enumerate() {
            hits |= u32::from(first_word_meets(t, abef, need)) << j;
        }
        if hits != 0 {
            return Some(first.wrapping_add(u64::from(hits.trailing_zeros())));
        }
        done += LANES as u64;
    }
    // The last nonces (fewer than LANES) one at a time.
    while done < count {
        let nonce = start.wrapping_add(done);
        let [[abef, _]] = rounds(t, [nonce]);
        if first_word_meets(t, abef, need) {
            return Some(nonce);
        }
        done += 1;
    }
    None
}

/// Whether the final first state word (A of `abef`, plus the midstate's) has at least
/// `need` leading zero bits.
#[inline]
#[target_feature(enable = "sse4.1")]
fn first_word_meets(t: &Template, abef: __m128i, need: u32) -> bool {
    let a = (_mm_extract_epi32::<3>(abef) as u32).wrapping_add(t.mid[0]);
    a.leading_zeros() >= need
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn full_state(t: &Template, nonce: u64) -> [u32; 8] {
    let [[abef, cdgh]] = rounds(t, [nonce]);
    let word = |v: __m128i, lane: usize| -> u32 {
        match lane {
            0 => _mm_extract_epi32::<0>(v) as u32,
            1 => _mm_extract_epi32::<1>(v) as u32,
            2 => _mm_extract_epi32::<2>(v) as u32,
            _ => _mm_extract_epi32::<3>(v) as u32,
        }
    };
    let state = [
        word(abef, 3),
        word(abef, 2),
        word(cdgh, 3),
        word(cdgh, 2),
        word(abef, 1),
        word(abef, 0),
        word(cdgh, 1),
        word(cdgh, 0),
    ];
    let mut out = t.mid;
    for (o, s) in out.iter_mut().zip(state) {
        *o = o.wrapping_add(s);
    }
    out
}

/// Rounds 6..63 for `N` nonces side by side: the (ABEF, CDGH) registers per nonce, before
/// the midstate is added back.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds<const N: usize>(t: &Template, nonces: [u64; N]) -> [[__m128i; 2]; N] {
    let mut abef = [vector(t.abef6); N];
    let mut cdgh = [vector(t.cdgh6); N];
    // Schedule window: the last four groups of four words, per nonce.
    let mut win = [[vector([0; 4]); 4]; N];

    // Rounds 6, 7: the nonce words. W4..W7 feeds W20..W23 below.
    for j in 0..N {
        let w6 = (nonces[j] as u32).swap_bytes();
        let w7 = ((nonces[j] >> 32) as u32).swap_bytes();
        win[j][3] = _mm_set_epi32(w7 as i32, w6 as i32, t.w5 as i32, t.w4 as i32);
        let kw = u64::from(K[6].wrapping_add(w6)) | (u64::from(K[7].wrapping_add(w7)) << 32);
        rnds2(&mut abef[j], &mut cdgh[j], _mm_cvtsi64_si128(kw as i64));
    }
    // Rounds 8..19: fixed words.
    for kw in t.kw8 {
        let kw = _mm_cvtsi64_si128((u64::from(kw[0]) | (u64::from(kw[1]) << 32)) as i64);
        for j in 0..N {
            rnds2(&mut abef[j], &mut cdgh[j], kw);
        }
    }
    // Rounds 20..35: the schedule groups whose σ0 / W[t-7] / W[t-16] parts are fixed. Window
    // slots that are not read again hold `w16` as filler.
    let (w8, w13, w16) = (vector(t.w8), vector(t.w13), vector(t.w16));
    let (part24, part28, part32) = (vector(t.part24), vector(t.part28), vector(t.part32));
    for w in win.iter_mut() {
        let w20 = _mm_add_epi32(_mm_sha256msg1_epu32(w[3], w8), w13);
        *w = [w16, w16, w16, _mm_sha256msg2_epu32(w20, w16)];
    }
    rounds4(&mut abef, &mut cdgh, &win, 5);
    for w in win.iter_mut() {
        *w = [w16, w16, w[3], _mm_sha256msg2_epu32(part24, w[3])];
    }
    rounds4(&mut abef, &mut cdgh, &win, 6);
    for w in win.iter_mut() {
        let x = _mm_add_epi32(part28, _mm_alignr_epi8::<4>(w[3], w[2]));
        *w = [w16, w[2], w[3], _mm_sha256msg2_epu32(x, w[3])];
    }
    rounds4(&mut abef, &mut cdgh, &win, 7);
    for w in win.iter_mut() {
        let x = _mm_add_epi32(part32, _mm_alignr_epi8::<4>(w[3], w[2]));
        *w = [w[1], w[2], w[3], _mm_sha256msg2_epu32(x, w[3])];
    }
    rounds4(&mut abef, &mut cdgh, &win, 8);
    // Rounds 36..63: the ordinary schedule.
    for group in 9..16 {
        for w in win.iter_mut() {
            let x = _mm_add_epi32(
                _mm_sha256msg1_epu32(w[0], w[1]),
                _mm_alignr_epi8::<4>(w[3], w[2]),
            );
            *w = [w[1], w[2], w[3], _mm_sha256msg2_epu32(x, w[3])];
        }
        rounds4(&mut abef, &mut cdgh, &win, group);
    }
    let mut out = [[vector([0; 4]); 2]; N];
    for j in 0..N {
        out[j] = [abef[j], cdgh[j]];
    }
    out
}

/// Rounds `4 * group .. 4 * group + 4` per nonce, on the newest schedule group (slot 3)
/// of each window.
#[inline]
#[target_feature(enable = "sha,sse2")]
fn rounds4<const N: usize>(
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    win: &[[__m128i; 4]; N],
    group: usize,
) {
    let k = _mm_set_epi32(
        K[4 * group + 3] as i32,
        K[4 * group + 2] as i32,
        K[4 * group + 1] as i32,
        K[4 * group] as i32,
    );
    for j in 0..N {
        let kw = _mm_add_epi32(win[j][3], k);
        rnds2(&mut abef[j], &mut cdgh[j], kw);
        rnds2(&mut abef[j], &mut cdgh[j], _mm_shuffle_epi32::<0x0E>(kw));
    }
}

/// Two rounds with K + W in the low two lanes of `kw`.
#[inline]
#[target_feature(enable = "sha,sse2")]
fn rnds2(abef: &mut __m128i, cdgh: &mut __m128i, kw: __m128i) {
    let next = _mm_sha256rnds2_epu32(*cdgh, *abef, kw);
    *cdgh = *abef;
    *abef = next;
}

/// Four words as a vector, word 0 in the lowest lane.
#[inline]
#[target_feature(enable = "sse2")]
fn vector(w: [u32; 4]) -> __m128i {
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

/// One scalar SHA-256 round on `[a, b, .., h]`, with `kw` = K[t] + W[t].
fn round(s: [u32; 8], kw: u32) -> [u32; 8] {
    let [a, b, c, d, e, f, g, h] = s;
    let big_sigma1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
    let ch = (e & f) ^ (!e & g);
    let t1 = h.wrapping_add(big_sigma1).wrapping_add(ch).wrapping_add(kw);
    let big_sigma0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
    let maj = (a & b) ^ (a & c) ^ (b & c);
    let t2 = big_sigma0.wrapping_add(maj);
    [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g]
}

fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}
