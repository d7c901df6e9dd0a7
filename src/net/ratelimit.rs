//! Token buckets for per-peer and per-author rate limits, in a map that stays bounded.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A rate: `per_second` on average, bursts of up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Average events per second.
    pub per_second: f64,
    /// Most events at once after a quiet spell.
    pub burst: f64,
}

/// One token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by key, at most `max_keys` of them. When full, an arbitrary key is
/// forgotten (in constant time): that only ever lets it start again with a full bucket,
/// and the per-peer limit still bounds what any one peer can send.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    buckets: HashMap<K, Bucket>,
    max_keys: usize,
    /// When each key was last charged for exceeding its rate.
    charged: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// Buckets of `rate`, for at most `max_keys` keys.
    pub fn new(rate: Rate, max_keys: usize) -> Limiter<K> {
        Limiter {
            rate,
            buckets: HashMap::new(),
            max_keys: max_keys.max(1),
            charged: HashMap::new(),
        }
    }

    /// Takes one token for `key`; false if its bucket is empty (the event is over the rate).
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            let idle = self.buckets.keys().next().cloned();
            if let Some(k) = idle {
                self.buckets.remove(&k);
                self.charged.remove(&k);
            }
        }
        let rate = self.rate;
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_second).min(rate.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// For a key over its rate: whether to charge it now (at most once per `every`).
    pub fn should_charge(&mut self, key: &K, now: Instant, every: Duration) -> bool {
        match self.charged.get(key) {
            Some(last) if now.saturating_duration_since(*last) < every => false,
            _ => {
                if self.charged.len() >= self.max_keys {
                    self.charged.clear();
                }
                self.charged.insert(key.clone(), now);
                true
            }
        }
    }

    /// Forgets `key` (a peer that disconnected).
    pub fn remove(&mut self, key: &K) {
        self.buckets.remove(key);
        self.charged.remove(key);
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let rate = Rate {
            per_second: 10.0,
            burst: 5.0,
        };
        let mut l = Limiter::new(rate, 8);
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| l.allow(&1, t0)).count(), 5);
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!((0..10).filter(|_| l.allow(&1, t1)).count(), 3);
        // Another key has its own bucket.
        assert!(l.allow(&2, t1));
    }

    #[test]
    fn stays_bounded_and_charges_at_most_once_per_period() {
        let rate = Rate {
            per_second: 1.0,
            burst: 1.0,
        };
        let mut l = Limiter::new(rate, 3);
        let t0 = Instant::now();
        for k in 0..100 {
            l.allow(&k, t0);
        }
        assert!(l.len() <= 3);
        assert!(l.should_charge(&7, t0, Duration::from_secs(1)));
        assert!(!l.should_charge(&7, t0 + Duration::from_millis(500), Duration::from_secs(1)));
        assert!(l.should_charge(&7, t0 + Duration::from_secs(1), Duration::from_secs(1)));
    }
}
