//! Fuzz targets for every decoder and validator, run for a wall-clock budget.
//!
//! One test per target (bodies in `support/fuzz/`). Each case is an input made
//! by a seeded RNG: random bytes, or a valid input (a seed, or a kept input that reached
//! an outcome not seen before) with a few byte-level mutations. Bodies read structure
//! into their input where it matters (which topic, which header field to change...), so
//! the same bytes also drive structure-aware mutations. A case must not panic; decoders
//! run under the counting allocator of `support/decode_harness.rs`.
//!
//! Runs:
//! - default `cargo test`: each target runs its seeds and a few dozen to a few hundred
//!   cases (`smoke_cases`), so none can rot; about a second each in a debug build.
//! - `KVCHAIN_FUZZ_SECS=600 cargo test --release --test fuzz_targets -- --nocapture NAME`:
//!   runs NAME until the budget is spent (`scripts/fuzz.sh` does this for each target).
//! - `KVCHAIN_FUZZ_CASES=N`: exactly N cases; `KVCHAIN_FUZZ_SEED=S`: that RNG seed (the
//!   default run uses a fixed seed so it is not flaky; a timed run a new one, printed).
//! - `KVCHAIN_FUZZ_REPLAY=HEX_OR_FILE cargo test --test fuzz_targets -- --exact NAME`:
//!   runs one input (printed in hex, and saved under `target/fuzz-failures/`, on a failure).

mod common;
#[path = "support/fuzz/mod.rs"]
mod fuzz_bodies;
#[path = "support/decode_harness.rs"]
mod harness;

use fuzz_bodies::{targets, Target};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// SplitMix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Bytes that mean something to CBOR, to the frame format or to the bodies' programs.
const INTERESTING_BYTES: [u8; 14] = [
    0x00, 0x01, 0x7f, 0x80, 0xff, 0x18, 0x1b, 0x40, 0x5b, 0x60, 0x7b, 0x9b, 0xbb, 0xf6,
];

fn interesting_u64(rng: &mut Rng, len: usize) -> u64 {
    let choices = [
        0,
        1,
        len as u64,
        len as u64 + 1,
        u8::MAX as u64,
        u16::MAX as u64,
        u32::MAX as u64,
        u64::MAX,
        i64::MAX as u64,
        kvchain::codec::MAX_MESSAGE_BYTES as u64,
        kvchain::codec::MAX_MESSAGE_BYTES as u64 + 1,
        kvchain::net::protocol::MAX_REQUEST_BYTES as u64 + 1,
        kvchain::net::protocol::MAX_RESPONSE_BYTES as u64 + 1,
        rng.next(),
    ];
    choices[rng.below(choices.len())]
}

/// One byte-level mutation of `bytes`, drawing on `other` for crossovers.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    let len = bytes.len();
    match rng.below(11) {
        0 | 1 if len > 0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
        }
        2 if len > 0 => {
            let i = rng.below(len);
            bytes[i] = rng.byte();
        }
        3 if len > 0 => {
            let i = rng.below(len);
            bytes[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
        }
        4 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let new: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            bytes.splice(at..at, new);
        }
        5 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below(32);
            bytes.drain(at..(at + n).min(len));
        }
        6 => bytes.truncate(rng.below(len + 1)),
        7 if len > 0 => {
            // Copy a range elsewhere (duplicates a field, a tx, a frame...).
            let from = rng.below(len);
            let chunk = bytes[from..(from + 1 + rng.below(256)).min(len)].to_vec();
            let at = rng.below(len + 1);
            bytes.splice(at..at, chunk);
        }
        8 if !other.is_empty() => {
            // Crossover: our head, another input's tail.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from..]);
        }
        9 if len > 0 => {
            // A CBOR head with a huge length or count.
            let head = [0x5b, 0x7b, 0x9b, 0xbb, 0x1b][rng.below(5)];
            let at = rng.below(len);
            let mut h = vec![head];
            h.extend_from_slice(&interesting_u64(rng, len).to_be_bytes());
            let end = (at + h.len()).min(len);
            bytes.splice(at..end, h);
        }
        _ if len > 0 => {
            // An interesting integer, 1 to 8 bytes, either byte order.
            let v = interesting_u64(rng, len);
            let width = [1, 2, 4, 8][rng.below(4)];
            let le = v.to_le_bytes();
            let be = v.to_be_bytes();
            let src: Vec<u8> = if rng.below(2) == 0 {
                le[..width].to_vec()
            } else {
                be[8 - width..].to_vec()
            };
            let at = rng.below(len);
            let end = (at + width).min(len);
            bytes.splice(at..end, src);
        }
        _ => bytes.push(rng.byte()),
    }
}

/// The next input: random bytes (a fifth of the time) or a mutated corpus entry.
fn next_input(rng: &mut Rng, corpus: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut bytes = if corpus.is_empty() || rng.below(5) == 0 {
        let len = if rng.below(4) == 0 {
            rng.below(max_len + 1)
        } else {
            rng.below(64)
        };
        (0..len).map(|_| rng.byte()).collect()
    } else {
        corpus[rng.below(corpus.len())].clone()
    };
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        let other = if corpus.is_empty() {
            &[][..]
        } else {
            &corpus[rng.below(corpus.len())][..]
        };
        mutate(rng, &mut bytes, other);
    }
    // Seeds may be longer than max_len; mutations of them may stay so.
    let cap = max_len.max(corpus.iter().map(Vec::len).max().unwrap_or(0));
    bytes.truncate(cap);
    bytes
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn failures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures")
}

/// Runs one case; on a panic prints the input and how to replay it, then fails the test.
fn run_case(t: &Target, input: &[u8], seed: u64, case: u64) -> String {
    match catch_unwind(AssertUnwindSafe(|| (t.body)(input))) {
        Ok(label) => label,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = failures_dir();
            let file = dir.join(format!("{}-{seed}-{case}.bin", t.name));
            let saved = std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(&file, input))
                .is_ok();
            eprintln!(
                "\n=== fuzz target {} FAILED at case {case} (seed {seed}) ===",
                t.name
            );
            eprintln!("panic: {msg}");
            eprintln!("input ({} bytes), hex:", input.len());
            if input.len() <= 64 * 1024 {
                eprintln!("{}", hex::encode(input));
            } else {
                eprintln!("(too long to print; see the file)");
            }
            if saved {
                eprintln!("saved to {}", file.display());
            }
            eprintln!(
                "replay: KVCHAIN_FUZZ_REPLAY={} cargo test --release --test fuzz_targets -- --exact {} --nocapture",
                if saved { file.display().to_string() } else { hex::encode(input) },
                t.name
            );
            eprintln!(
                "or rerun the sequence: KVCHAIN_FUZZ_SEED={seed} KVCHAIN_FUZZ_CASES={} ...",
                case + 1
            );
            panic!("fuzz target {} failed: {msg}", t.name);
        }
    }
}

fn replay_input(spec: &str) -> Vec<u8> {
    let spec = spec.trim();
    if std::path::Path::new(spec).is_file() {
        std::fs::read(spec).expect("read the replay file")
    } else {
        hex::decode(spec).expect("KVCHAIN_FUZZ_REPLAY: a file or hex bytes")
    }
}

/// Drives the target `name`: replay, a budget in seconds, or a number of cases.
fn drive(name: &str) {
    let t = targets()
        .into_iter()
        .find(|t| t.name == name)
        .expect("a known target");
    if let Ok(spec) = std::env::var("KVCHAIN_FUZZ_REPLAY") {
        let input = replay_input(&spec);
        let label = run_case(&t, &input, 0, 0);
        eprintln!("fuzz {name}: replayed {} bytes: {label}", input.len());
        return;
    }
    let budget: Option<f64> = env("KVCHAIN_FUZZ_SECS");
    // The default run is the same every time (a test suite must not be flaky); a timed
    // run explores from a new seed each time.
    let seed: u64 = env("KVCHAIN_FUZZ_SEED").unwrap_or_else(|| match budget {
        None => 0x6b76_6368_6169_6e00 ^ name.len() as u64,
        Some(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
        }
    });
    let cases: u64 = env("KVCHAIN_FUZZ_CASES").unwrap_or(t.smoke_cases as u64);
    let deadline = budget.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut rng = Rng(seed);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let start = Instant::now();

    // Every seed as it is first: each must pass, and they start the corpus.
    let mut corpus = (t.seeds)();
    for (i, s) in corpus.iter().enumerate() {
        let label = run_case(&t, s, seed, i as u64);
        *outcomes.entry(label).or_default() += 1;
    }
    let mut done = corpus.len() as u64;
    const MAX_CORPUS: usize = 512;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if done >= cases => break,
            _ => {}
        }
        let input = next_input(&mut rng, &corpus, t.max_len);
        let label = run_case(&t, &input, seed, done);
        done += 1;
        let seen = outcomes.entry(label).or_default();
        *seen += 1;
        // Keep inputs that reached something new (or rare), to mutate further.
        if *seen <= 2 {
            if corpus.len() < MAX_CORPUS {
                corpus.push(input);
            } else {
                let i = rng.below(corpus.len());
                corpus[i] = input;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut top: Vec<(&String, &u64)> = outcomes.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1));
    let shown: Vec<String> = top
        .iter()
        .take(12)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "fuzz {name}: {done} cases in {secs:.1} s, {:.0} cases/s, seed {seed}, corpus {}, {} outcomes: {}",
        done as f64 / secs.max(1e-9),
        corpus.len(),
        outcomes.len(),
        shown.join(" ")
    );
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                drive(stringify!($name));
            }
        )*

        /// Every target in `support/fuzz/` has a test here, and no test lacks one.
        #[test]
        fn every_target_has_a_test() {
            let mut tests = vec![$(stringify!($name)),*];
            let mut names: Vec<&str> = targets().iter().map(|t| t.name).collect();
            tests.sort_unstable();
            names.sort_unstable();
            assert_eq!(tests, names);
        }
    };
}

fuzz_tests!(
    tx_decode,
    block_decode,
    gossip,
    sync_request,
    sync_response,
    sync_frame,
    block_log_open,
    chain_open,
    journal_open,
    block_validate,
    tx_admit,
    console_parse,
    http_guard,
    http_api,
);
