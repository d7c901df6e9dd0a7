//! The 51% attack, for experiments only: a node started with `kvchain node --attacker`
//! takes the console commands `attack start|status|stop`. Nothing here runs on a normal
//! node, which answers them with [`AttackError::NotAttacker`].
//!
//! An attack rewrites one version of a key. The node forks from the parent of the block
//! holding that version and mines a private branch there with all its hashrate: the
//! first private block carries the attacker's own signed put of the key with another
//! value in place of the victim's write (whose signature it cannot forge, so the
//! victim's tx is simply left out). Private blocks are neither gossiped nor added to the
//! node's own chain, so that no peer can fetch them early. Once the honest chain holds
//! the victim's block `confirmations` deep (a merchant waiting z blocks) and the private
//! branch carries more work than the honest tip, the node adds the private blocks to its
//! own chain and gossips them: honest nodes fetch and judge them like any valid blocks
//! and reorg to the heavier branch. The victim's write goes back to their mempools and is
//! mined again later, at a new height. The attack gives up once the private branch is a
//! set number of blocks behind, or after a set time.

use crate::chain::TxError;
use serde::Serialize;
use std::time::Duration;

/// Which version of the key an attack replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The version in the canonical block at this height.
    Height(u64),
    /// The next version to be included in the canonical chain (the attack waits for it).
    Next,
}

/// What `attack start` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttackPlan {
    /// The key whose version is replaced.
    pub key: String,
    /// Which version.
    pub target: Target,
    /// The value the attacker's put writes instead.
    pub value: Vec<u8>,
    /// Blocks of the honest chain from the fork on (the victim's block counts as one)
    /// before the private branch may be published.
    pub confirmations: u64,
    /// Give up once the honest chain is this many blocks ahead of the private branch
    /// (0: never).
    pub give_up_behind: u64,
    /// Give up after this long racing.
    pub give_up_after: Duration,
}

/// A request to the attacker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttackRequest {
    /// Starts (or arms) an attack; answers its status.
    Start(AttackPlan),
    /// The status of the current or last attack.
    Status,
    /// Stops the current attack; its private blocks are dropped.
    Stop,
}

/// Where an attack stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No attack yet.
    Idle,
    /// Waiting for the next version of the key to be included.
    Armed,
    /// Mining the private branch.
    Racing,
    /// The private branch was published, carrying more work than the honest tip.
    Published,
    /// Gave up (see the reason).
    Failed,
    /// Stopped by `attack stop`.
    Stopped,
}

/// What `attack status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttackStatus {
    /// Where the attack stands.
    pub state: Phase,
    /// The key attacked.
    pub key: Option<String>,
    /// Height of the victim's version on the honest chain.
    pub target_height: Option<u64>,
    /// Height of the block the private branch forks from.
    pub fork_height: Option<u64>,
    /// Blocks of the private branch.
    pub private_blocks: u64,
    /// Blocks of the honest chain above the fork (as this node sees it).
    pub honest_blocks: u64,
    /// Confirmations the attack waits for before publishing.
    pub confirmations: u64,
    /// Blocks behind at which it gives up (0: never).
    pub give_up_behind: u64,
    /// Milliseconds since the race began.
    pub elapsed_ms: u64,
    /// The victim's write that the private branch leaves out.
    pub victim_tx: Option<String>,
    /// The attacker's write in its place.
    pub attack_tx: Option<String>,
    /// The private branch's tip once published.
    pub published_tip: Option<String>,
    /// Why it failed or stopped.
    pub reason: Option<String>,
}

/// Why an attack request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttackError {
    /// The node was not started with `--attacker`.
    #[error("attack commands need a node started with --attacker")]
    NotAttacker,
    /// An attack is armed or racing already.
    #[error("an attack is under way (attack stop ends it)")]
    Busy,
    /// No version of the key is in the canonical block at that height.
    #[error("no version of {key:?} in the canonical block at height {height}")]
    NoSuchVersion {
        /// The key.
        key: String,
        /// The height asked for.
        height: u64,
    },
    /// The attacker's write breaks the key or value rules.
    #[error(transparent)]
    Invalid(#[from] TxError),
}

/// What the race calls for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on mining privately.
    Mine,
    /// Publish the private branch.
    Publish,
    /// Give up, for this reason.
    GiveUp(String),
}

/// Where a race stands, as the attacker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Race {
    /// Cumulative work of the private branch's tip.
    pub private_work: u128,
    /// Cumulative work of the honest (canonical) tip.
    pub honest_work: u128,
    /// Private blocks above the fork.
    pub private_blocks: u64,
    /// Honest blocks above the fork.
    pub honest_blocks: u64,
    /// Time since the race began.
    pub elapsed: Duration,
}

/// The attacker's rule: publish once the victim's block is `confirmations` deep and the
/// private branch is heavier (honest nodes keep the first seen on a tie, so a tie is not
/// enough); give up when it is `give_up_behind` blocks behind or out of time.
pub fn judge(race: &Race, plan: &AttackPlan) -> Verdict {
    if race.honest_blocks >= plan.confirmations && race.private_work > race.honest_work {
        return Verdict::Publish;
    }
    let behind = race.honest_blocks.saturating_sub(race.private_blocks);
    if plan.give_up_behind > 0 && behind >= plan.give_up_behind {
        return Verdict::GiveUp(format!("fell {behind} blocks behind"));
    }
    if race.elapsed >= plan.give_up_after {
        return Verdict::GiveUp(format!(
            "out of time after {} s",
            plan.give_up_after.as_secs()
        ));
    }
    Verdict::Mine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(z: u64, behind: u64) -> AttackPlan {
        AttackPlan {
            key: "k".into(),
            target: Target::Next,
            value: b"v".to_vec(),
            confirmations: z,
            give_up_behind: behind,
            give_up_after: Duration::from_secs(60),
        }
    }

    fn race(private: u64, honest: u64, secs: u64) -> Race {
        // Equal difficulty: work is blocks; 10 blocks below the fork.
        Race {
            private_work: 10 + u128::from(private),
            honest_work: 10 + u128::from(honest),
            private_blocks: private,
            honest_blocks: honest,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn publishes_only_when_heavier_and_confirmed() {
        let p = plan(3, 5);
        assert_eq!(judge(&race(2, 1, 0), &p), Verdict::Mine); // ahead, not confirmed
        assert_eq!(judge(&race(3, 3, 0), &p), Verdict::Mine); // a tie is not enough
        assert_eq!(judge(&race(4, 3, 0), &p), Verdict::Publish);
        assert_eq!(judge(&race(9, 3, 0), &p), Verdict::Publish);
    }

    #[test]
    fn gives_up_behind_or_out_of_time() {
        let p = plan(1, 4);
        assert_eq!(judge(&race(1, 4, 0), &p), Verdict::Mine);
        assert!(matches!(judge(&race(1, 5, 0), &p), Verdict::GiveUp(_)));
        assert!(matches!(judge(&race(1, 1, 60), &p), Verdict::GiveUp(_)));
        // 0: never gives up for being behind.
        assert_eq!(judge(&race(0, 50, 0), &plan(1, 0)), Verdict::Mine);
    }
}
