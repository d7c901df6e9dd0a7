//! Misbehaviour scores and bans: points for what a peer provably did wrong, decaying over
//! time, and bans that expire. A ban covers the peer id and the IP addresses the peer
//! was connected from, except loopback: every node of a one-machine network shares it
//! (Bitcoin Core likewise never bans a local address).
//!
//! Pure bookkeeping with explicit times, so the rules are tested without a network;
//! [`super::gate`] enforces the bans on connections.

use libp2p::PeerId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Points at which a peer is banned.
pub const BAN_POINTS: f64 = 100.0;
/// Points halve over this time.
pub const DECAY_HALF_LIFE: Duration = Duration::from_secs(10 * 60);
/// How long a ban lasts unless configured otherwise.
pub const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(3600);
/// Most points `Unresponsive` offences raise a score to, on their own.
pub const UNRESPONSIVE_CAP: f64 = BAN_POINTS / 2.0;
/// Most peers with a score kept at once; the lowest scores are forgotten first.
pub const MAX_SCORED: usize = 4096;
/// Most bans kept at once; the ones closest to expiry are lifted first.
pub const MAX_BANS: usize = 4096;

/// What a peer provably did wrong, and so how many points it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// Sent data no honest node sends: undecodable bytes, bad proof of work, an invalid
    /// block or tx, a mutated block, an answer that breaks the sync protocol. One is proof
    /// enough: it bans at once, as Bitcoin Core discourages a peer on its first offence
    /// (and gossipsub's own scoring stops listening to it after one rejected message).
    Invalid,
    /// Let a sync request time out, or claimed more work than it delivered. An honest
    /// peer under load times out too, and an attacker can load it: these points alone
    /// never reach a ban (they stop at [`UNRESPONSIVE_CAP`]), they only show in `peers`.
    Unresponsive,
    /// Kept sending faster than its rate limit (charged at most once a second).
    Flood,
}

impl Offence {
    /// Points this offence costs.
    pub fn points(self) -> f64 {
        match self {
            Offence::Invalid => BAN_POINTS,
            Offence::Unresponsive => 10.0,
            Offence::Flood => 5.0,
        }
    }
}

/// A ban in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// When it ends.
    pub until: Instant,
    /// Why the peer was banned (the offence that reached the threshold).
    pub reason: String,
    /// Addresses banned along with the peer id.
    pub ips: Vec<IpAddr>,
}

/// A ban as `peers` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanInfo {
    /// The banned peer.
    pub peer: PeerId,
    /// Time left.
    pub remaining: Duration,
    /// Why.
    pub reason: String,
    /// Addresses banned along with it.
    pub ips: Vec<IpAddr>,
}

/// Scores and bans of every peer.
#[derive(Debug)]
pub struct Misbehaviour {
    scores: HashMap<PeerId, (f64, Instant)>,
    bans: HashMap<PeerId, Ban>,
    ip_bans: HashMap<IpAddr, Instant>,
    ban_duration: Duration,
}

/// Whether a ban may cover this address: not loopback, not unspecified.
pub fn bannable(ip: &IpAddr) -> bool {
    !(ip.is_loopback() || ip.is_unspecified())
}

fn decayed(points: f64, since: Instant, now: Instant) -> f64 {
    let halves = now.saturating_duration_since(since).as_secs_f64() / DECAY_HALF_LIFE.as_secs_f64();
    points * 0.5f64.powf(halves)
}

impl Misbehaviour {
    /// Empty books; bans last `ban_duration`.
    pub fn new(ban_duration: Duration) -> Misbehaviour {
        Misbehaviour {
            scores: HashMap::new(),
            bans: HashMap::new(),
            ip_bans: HashMap::new(),
            ban_duration,
        }
    }

    /// The peer's points now, after decay.
    pub fn score(&self, peer: &PeerId, now: Instant) -> f64 {
        self.scores
            .get(peer)
            .map_or(0.0, |(p, since)| decayed(*p, *since, now))
    }

    /// Charges `offence` to `peer`, connected from `ips`; returns the ban if this charge
    /// reached the threshold.
    pub fn penalize(
        &mut self,
        peer: PeerId,
        offence: Offence,
        reason: &str,
        ips: &[IpAddr],
        now: Instant,
    ) -> Option<Ban> {
        if self.is_banned(&peer, now) {
            return None;
        }
        let before = self.score(&peer, now);
        let mut points = before + offence.points();
        if offence == Offence::Unresponsive {
            points = points.min(UNRESPONSIVE_CAP.max(before));
        }
        if points < BAN_POINTS {
            if self.scores.len() >= MAX_SCORED && !self.scores.contains_key(&peer) {
                self.forget_lowest(now);
            }
            self.scores.insert(peer, (points, now));
            return None;
        }
        self.scores.remove(&peer);
        let ban = Ban {
            until: now + self.ban_duration,
            reason: reason.to_string(),
            ips: ips.iter().copied().filter(bannable).collect(),
        };
        if self.bans.len() >= MAX_BANS {
            let soonest = self
                .bans
                .iter()
                .min_by_key(|(_, b)| b.until)
                .map(|(p, _)| *p);
            if let Some(p) = soonest {
                self.unban(&p);
            }
        }
        for ip in &ban.ips {
            self.ip_bans.insert(*ip, ban.until);
        }
        self.bans.insert(peer, ban.clone());
        Some(ban)
    }

    fn forget_lowest(&mut self, now: Instant) {
        let lowest = self
            .scores
            .iter()
            .map(|(p, (points, since))| (*p, decayed(*points, *since, now)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, _)| p);
        if let Some(p) = lowest {
            self.scores.remove(&p);
        }
    }

    /// Whether `peer` is banned now.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.bans.get(peer).is_some_and(|b| b.until > now)
    }

    /// Whether connections from `ip` are refused now.
    pub fn is_ip_banned(&self, ip: &IpAddr, now: Instant) -> bool {
        self.ip_bans.get(ip).is_some_and(|until| *until > now)
    }

    /// Lifts the ban on `peer` and on the addresses it brought, and clears its score;
    /// false if it was not banned.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        self.scores.remove(peer);
        let Some(ban) = self.bans.remove(peer) else {
            return false;
        };
        for ip in ban.ips {
            // Another ban may cover the same address: keep it while any does.
            let still = self.bans.values().any(|b| b.ips.contains(&ip));
            if !still {
                self.ip_bans.remove(&ip);
            }
        }
        true
    }

    /// Lifts every ban that has run out, and forgets scores that decayed to nothing;
    /// returns the peers whose ban ended.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let ended: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, b)| b.until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &ended {
            self.unban(p);
        }
        self.scores
            .retain(|_, (points, since)| decayed(*points, *since, now) >= 0.5);
        ended
    }

    /// The bans in force, soonest to end first.
    pub fn bans(&self, now: Instant) -> Vec<BanInfo> {
        let mut out: Vec<BanInfo> = self
            .bans
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(p, b)| BanInfo {
                peer: *p,
                remaining: b.until - now,
                reason: b.reason.clone(),
                ips: b.ips.clone(),
            })
            .collect();
        out.sort_by_key(|b| b.remaining);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn points_add_up_to_a_ban_and_decay() {
        let mut m = Misbehaviour::new(DEFAULT_BAN_DURATION);
        let p = PeerId::random();
        let t0 = Instant::now();
        for _ in 0..16 {
            assert!(m.penalize(p, Offence::Flood, "fast", &[], t0).is_none());
        }
        assert_eq!(m.score(&p, t0), 80.0);
        // One half-life later the points have halved: two more floods do not ban.
        let t1 = t0 + DECAY_HALF_LIFE;
        assert!((m.score(&p, t1) - 40.0).abs() < 1e-6);
        for _ in 0..2 {
            assert!(m.penalize(p, Offence::Flood, "fast", &[], t1).is_none());
        }
        assert!(!m.is_banned(&p, t1));
        let ban = (0..15).find_map(|_| m.penalize(p, Offence::Flood, "fast", &[], t1));
        assert!(ban.is_some());
        assert!(m.is_banned(&p, t1));
        // Invalid data is proof enough on its own.
        let q = PeerId::random();
        assert!(m
            .penalize(q, Offence::Invalid, "bad pow", &[], t1)
            .is_some());
    }

    #[test]
    fn timeouts_alone_never_ban_but_count_toward_one() {
        let mut m = Misbehaviour::new(DEFAULT_BAN_DURATION);
        let p = PeerId::random();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(m
                .penalize(p, Offence::Unresponsive, "slow", &[], t0)
                .is_none());
        }
        assert_eq!(m.score(&p, t0), UNRESPONSIVE_CAP);
        assert!(!m.is_banned(&p, t0));
        // A flood on top of them still adds up.
        let ban = (0..11).find_map(|_| m.penalize(p, Offence::Flood, "fast", &[], t0));
        assert!(ban.is_some());
        // And timeouts never lower a higher score.
        let q = PeerId::random();
        for _ in 0..15 {
            m.penalize(q, Offence::Flood, "fast", &[], t0);
        }
        m.penalize(q, Offence::Unresponsive, "slow", &[], t0);
        assert_eq!(m.score(&q, t0), 75.0);
    }

    #[test]
    fn bans_expire_and_cover_addresses_but_not_loopback() {
        let mut m = Misbehaviour::new(Duration::from_secs(60));
        let p = PeerId::random();
        let t0 = Instant::now();
        let ips = [ip("192.0.2.7"), ip("127.0.0.1"), ip("::1")];
        let ban = (0..5)
            .find_map(|_| m.penalize(p, Offence::Invalid, "bad block", &ips, t0))
            .unwrap();
        assert_eq!(ban.ips, vec![ip("192.0.2.7")]);
        assert!(m.is_ip_banned(&ip("192.0.2.7"), t0));
        assert!(!m.is_ip_banned(&ip("127.0.0.1"), t0));
        let listed = m.bans(t0 + Duration::from_secs(20));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].remaining, Duration::from_secs(40));
        assert_eq!(listed[0].reason, "bad block");
        let later = t0 + Duration::from_secs(61);
        assert!(!m.is_banned(&p, later));
        assert_eq!(m.expire(later), vec![p]);
        assert!(!m.is_ip_banned(&ip("192.0.2.7"), later));
        assert!(m.bans(later).is_empty());
    }

    #[test]
    fn unban_lifts_the_ban_and_its_addresses() {
        let mut m = Misbehaviour::new(DEFAULT_BAN_DURATION);
        let p = PeerId::random();
        let t0 = Instant::now();
        let ips = [ip("198.51.100.1")];
        while m.penalize(p, Offence::Flood, "flood", &ips, t0).is_none() {}
        assert!(m.is_banned(&p, t0));
        assert!(m.unban(&p));
        assert!(!m.is_banned(&p, t0));
        assert!(!m.is_ip_banned(&ips[0], t0));
        assert_eq!(m.score(&p, t0), 0.0);
        assert!(!m.unban(&p));
    }

    #[test]
    fn books_stay_bounded() {
        let mut m = Misbehaviour::new(DEFAULT_BAN_DURATION);
        let t0 = Instant::now();
        for _ in 0..MAX_SCORED + 10 {
            m.penalize(PeerId::random(), Offence::Flood, "x", &[], t0);
        }
        assert!(m.scores.len() <= MAX_SCORED);
    }
}
