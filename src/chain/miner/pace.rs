//! Pacing of a miner with a hashrate cap (`kvchain node --max-hashrate`): one token bucket
//! shared by every mining thread, kept as a virtual clock.
//!
//! Each thread takes a chunk's worth of hashes before it searches the chunk: the bucket's
//! clock moves on by `hashes / cap` seconds, and the thread sleeps until the clock no
//! longer runs ahead of real time. A miner idle for a while may catch up on at most
//! [`BURST`] of hashing at once. Everything here is a pure function of (hashes taken,
//! elapsed time, cap), so that it is tested without a clock.

use std::num::NonZeroU64;
use std::time::Duration;

/// Most idle time a capped miner may make up for at once.
pub const BURST: Duration = Duration::from_millis(50);
/// Hashing time one chunk of a capped miner aims at: short chunks keep pacing smooth.
const CHUNK_TIME: Duration = Duration::from_millis(5);
/// Fewest nonces in a chunk, so that a very low cap does not spend its time pacing.
pub const MIN_CHUNK: u64 = 16;

/// A token bucket as a virtual clock: hashes are paid for up to `paid_until`, measured
/// from the miner's start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pace {
    paid_until: Duration,
}

impl Pace {
    /// Takes `hashes` at `cap` hashes per second at time `now` (since the miner started);
    /// returns how long to wait before hashing them (zero: at once).
    pub fn take(&mut self, now: Duration, hashes: u64, cap: NonZeroU64) -> Duration {
        let start = self.paid_until.max(now.saturating_sub(BURST));
        self.paid_until = start.saturating_add(cost(hashes, cap));
        self.paid_until.saturating_sub(now)
    }
}

/// The time `hashes` take at `cap` hashes per second.
pub fn cost(hashes: u64, cap: NonZeroU64) -> Duration {
    let nanos = u128::from(hashes) * 1_000_000_000 / u128::from(cap.get());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Nonces a thread searches between two checks for new work: `full` when uncapped, else
/// about [`CHUNK_TIME`] of hashing at the cap, between [`MIN_CHUNK`] and `full`.
pub fn chunk_for(cap: Option<NonZeroU64>, full: u64) -> u64 {
    match cap {
        None => full,
        Some(cap) => {
            let per_chunk = u128::from(cap.get()) * CHUNK_TIME.as_nanos() / 1_000_000_000;
            u64::try_from(per_chunk)
                .unwrap_or(u64::MAX)
                .clamp(MIN_CHUNK, full.max(MIN_CHUNK))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(h: u64) -> NonZeroU64 {
        NonZeroU64::new(h).unwrap()
    }

    /// Runs a thread that hashes instantly and sleeps exactly as told: the hashes done by
    /// each time never exceed the cap's allowance (plus the burst), and keep up with it.
    #[test]
    fn a_busy_miner_gets_exactly_the_cap_over_time() {
        let mut pace = Pace::default();
        let (c, chunk) = (cap(10_000), 50);
        let mut now = Duration::ZERO;
        let mut done = 0u64;
        for _ in 0..10_000 {
            now += pace.take(now, chunk, c);
            done += chunk;
            let allowed = (now + BURST).as_secs_f64() * 10_000.0;
            assert!(done as f64 <= allowed + chunk as f64, "{done} by {now:?}");
        }
        // 500,000 hashes at 10,000 H/s: 50 s, less the burst taken at the start.
        let expect = Duration::from_secs(50) - BURST - cost(chunk, c);
        assert!(now >= expect && now <= Duration::from_secs(50), "{now:?}");
    }

    #[test]
    fn oversleeping_is_made_up_but_idling_only_up_to_the_burst() {
        let c = cap(1_000);
        let mut pace = Pace::default();
        // At 1,000 H/s, 100 hashes cost 100 ms; at the start there is no credit.
        assert_eq!(
            pace.take(Duration::ZERO, 100, c),
            Duration::from_millis(100)
        );
        // Woken 20 ms late: the next 100 hashes wait 20 ms less.
        assert_eq!(
            pace.take(Duration::from_millis(120), 100, c),
            Duration::from_millis(80)
        );
        // After ten idle seconds, only the burst is credited.
        let now = Duration::from_secs(10);
        assert_eq!(pace.take(now, 100, c), Duration::from_millis(50));
        assert_eq!(pace.take(now, 100, c), Duration::from_millis(150));
    }

    #[test]
    fn threads_sharing_a_bucket_share_the_cap() {
        // Two threads taking in turn at the same instant wait one after the other.
        let c = cap(2_000);
        let mut pace = Pace::default();
        let now = Duration::from_secs(1);
        let a = pace.take(now, 100, c);
        let b = pace.take(now, 100, c);
        assert_eq!(b - a, cost(100, c));
        assert_eq!(cost(100, c), Duration::from_millis(50));
    }

    #[test]
    fn chunks_shrink_with_the_cap() {
        assert_eq!(chunk_for(None, 4096), 4096);
        assert_eq!(chunk_for(Some(cap(1)), 4096), MIN_CHUNK);
        assert_eq!(chunk_for(Some(cap(100_000)), 4096), 500);
        assert_eq!(chunk_for(Some(cap(u64::MAX)), 4096), 4096);
        assert_eq!(cost(u64::MAX, cap(1)), Duration::from_nanos(u64::MAX));
    }
}
