//! An omission fault, for experiments: a node that drops a share of the gossip messages
//! it receives (neither judged nor relayed) and of those it would publish, as an
//! overloaded node or a lossy link would. Off (share 0) in every normal node; block sync
//! still works, so what the node missed reaches it later, and that delay is what an
//! experiment measures.

/// Decides, message by message, whether to drop it.
#[derive(Debug)]
pub struct Omission {
    /// The share of messages dropped, 0 to 1.
    share: f64,
    /// xorshift64* state: cheap, and plenty for picking messages at random.
    state: u64,
    /// Messages dropped so far.
    pub dropped: u64,
}

impl Omission {
    /// Drops `share` (clamped to 0..=1) of the messages, picked at random.
    pub fn new(share: f64) -> Omission {
        let mut seed = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        Omission::with_seed(share, u64::from_le_bytes(seed))
    }

    /// The same with a fixed seed, for repeatable tests.
    pub fn with_seed(share: f64, seed: u64) -> Omission {
        let share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Omission {
            share,
            state: seed | 1,
            dropped: 0,
        }
    }

    /// Whether to drop the next message.
    pub fn drops(&mut self) -> bool {
        if self.share <= 0.0 {
            return false;
        }
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let draw = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let hit = (draw as f64) / ((1u64 << 53) as f64) < self.share;
        self.dropped += u64::from(hit);
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::Omission;

    #[test]
    fn share_zero_drops_nothing_and_one_drops_everything() {
        let mut none = Omission::with_seed(0.0, 7);
        let mut all = Omission::with_seed(1.0, 7);
        assert!((0..10_000).all(|_| !none.drops()));
        assert!((0..10_000).all(|_| all.drops()));
        assert_eq!((none.dropped, all.dropped), (0, 10_000));
    }

    #[test]
    fn a_share_drops_about_that_share() {
        let mut o = Omission::with_seed(0.3, 12345);
        let n = 100_000;
        let dropped = (0..n).filter(|_| o.drops()).count();
        let share = dropped as f64 / n as f64;
        assert!((0.29..0.31).contains(&share), "dropped {share}");
    }

    #[test]
    fn nonsense_shares_are_clamped() {
        assert!(!Omission::with_seed(f64::NAN, 1).drops());
        assert!(!Omission::with_seed(-3.0, 1).drops());
        assert!(Omission::with_seed(7.0, 1).drops());
    }
}
