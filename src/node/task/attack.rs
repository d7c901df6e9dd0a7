//! The node task's side of the experimental 51% attack (see [`crate::node::attack`]):
//! starting it, mining the private branch, judging the race at every tip change and
//! every second, and publishing the branch through the node's own chain and gossip.

use super::NodeTask;
use crate::chain::block::{merkle_root, Header, BLOCK_VERSION};
use crate::chain::limits::MEDIAN_TIME_SPAN;
use crate::chain::validate::median;
use crate::chain::{now_ms, pow, Block, BlockHash, Op, TipChange, Tx, TxId};
use crate::net::Gossip;
use crate::node::attack::{
    judge, AttackError, AttackPlan, AttackRequest, AttackStatus, Phase, Race, Target, Verdict,
};
use std::time::Instant;

/// The block a private branch forks from.
#[derive(Clone, Copy, Debug)]
struct Fork {
    parent: BlockHash,
    height: u64,
    work: u128,
}

/// The current or last attack.
#[derive(Debug)]
pub(super) struct Attack {
    plan: AttackPlan,
    phase: Phase,
    fork: Option<Fork>,
    target_height: Option<u64>,
    victim: Option<TxId>,
    /// The attacker's write, signed when the race begins.
    own: Option<Tx>,
    private: Vec<Block>,
    /// When the race began.
    started: Option<Instant>,
    published_tip: Option<BlockHash>,
    reason: Option<String>,
    /// The race as it stood when it ended, for the status.
    last: Option<Race>,
}

impl NodeTask {
    /// Runs an `attack` console request.
    pub(super) fn attack_request(
        &mut self,
        request: AttackRequest,
    ) -> Result<AttackStatus, AttackError> {
        if !self.attacker {
            return Err(AttackError::NotAttacker);
        }
        match request {
            AttackRequest::Status => {}
            AttackRequest::Stop => {
                let race = self.attack.as_ref().and_then(|a| self.race(a));
                if let Some(a) = self.attack.as_mut().filter(|a| a.is_live()) {
                    a.last = race;
                    a.phase = Phase::Stopped;
                    a.reason = Some("stopped by the console".into());
                    a.private.clear();
                    self.refresh_work();
                }
            }
            AttackRequest::Start(plan) => {
                if self.attack.as_ref().is_some_and(Attack::is_live) {
                    return Err(AttackError::Busy);
                }
                crate::chain::tx::check_op(&Op::Put {
                    key: plan.key.clone(),
                    value: plan.value.clone(),
                })?;
                let mut attack = Attack {
                    plan,
                    phase: Phase::Armed,
                    fork: None,
                    target_height: None,
                    victim: None,
                    own: None,
                    private: Vec::new(),
                    started: None,
                    published_tip: None,
                    reason: None,
                    last: None,
                };
                if let Target::Height(height) = attack.plan.target {
                    let block = self.chain.block_at(height).filter(|_| height > 0);
                    let victim = block.as_ref().and_then(|b| {
                        b.txs
                            .iter()
                            .find(|t| t.op().key() == attack.plan.key)
                            .map(|t| (t.id(), b.header.prev))
                    });
                    let Some((victim, parent)) = victim else {
                        return Err(AttackError::NoSuchVersion {
                            key: attack.plan.key.clone(),
                            height,
                        });
                    };
                    self.begin_race(&mut attack, height, victim, parent);
                }
                self.attack = Some(attack);
                self.refresh_work();
            }
        }
        Ok(self.attack_status())
    }

    /// Starts racing from the parent of the block at `height` holding `victim`.
    fn begin_race(&self, attack: &mut Attack, height: u64, victim: TxId, parent: BlockHash) {
        let work = self.chain.tree().get(&parent).map_or(0, |e| e.work);
        attack.fork = Some(Fork {
            parent,
            height: height.saturating_sub(1),
            work,
        });
        attack.target_height = Some(height);
        attack.victim = Some(victim);
        attack.phase = Phase::Racing;
        attack.started = Some(Instant::now());
        let op = Op::Put {
            key: attack.plan.key.clone(),
            value: attack.plan.value.clone(),
        };
        let nonce = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        match Tx::new(&self.keypair, op, nonce, now_ms()) {
            Ok(tx) => attack.own = Some(tx),
            Err(e) => attack.fail(format!("cannot sign the attacker's write: {e}")),
        }
        tracing::info!(height, victim = %victim, "attack: private branch started");
    }

    /// The status of the current or last attack.
    fn attack_status(&self) -> AttackStatus {
        let Some(a) = &self.attack else {
            return AttackStatus {
                state: Phase::Idle,
                key: None,
                target_height: None,
                fork_height: None,
                private_blocks: 0,
                honest_blocks: 0,
                confirmations: 0,
                give_up_behind: 0,
                elapsed_ms: 0,
                victim_tx: None,
                attack_tx: None,
                published_tip: None,
                reason: None,
            };
        };
        let race = a.last.or_else(|| self.race(a));
        AttackStatus {
            state: a.phase,
            key: Some(a.plan.key.clone()),
            target_height: a.target_height,
            fork_height: a.fork.map(|f| f.height),
            private_blocks: race.map_or(0, |r| r.private_blocks),
            honest_blocks: race.map_or(0, |r| r.honest_blocks),
            confirmations: a.plan.confirmations,
            give_up_behind: a.plan.give_up_behind,
            elapsed_ms: race.map_or(0, |r| r.elapsed.as_millis() as u64),
            victim_tx: a.victim.map(|t| t.to_string()),
            attack_tx: a.own.as_ref().map(|t| t.id().to_string()),
            published_tip: a.published_tip.map(|h| h.to_string()),
            reason: a.reason.clone(),
        }
    }

    /// Where the race stands; `None` before it began.
    fn race(&self, a: &Attack) -> Option<Race> {
        let fork = a.fork?;
        let bits = self.chain.params().difficulty();
        let private_blocks = a.private.len() as u64;
        let tip = self.chain.tip();
        Some(Race {
            private_work: fork
                .work
                .saturating_add(pow::work(bits).saturating_mul(u128::from(private_blocks))),
            honest_work: tip.work,
            private_blocks,
            honest_blocks: tip.height.saturating_sub(fork.height),
            elapsed: a.started.map(|s| s.elapsed()).unwrap_or_default(),
        })
    }

    /// The miner's template while racing: the next block of the private branch.
    pub(super) fn private_template(&self) -> Option<Block> {
        let a = self.attack.as_ref().filter(|a| a.phase == Phase::Racing)?;
        let fork = a.fork?;
        let prev = a.private.last().map_or(fork.parent, Block::hash);
        // Above the median of the last blocks of the private branch and below the fork.
        let mut times: Vec<u64> = a.private.iter().rev().map(|b| b.header.time).collect();
        times.extend(
            self.chain
                .tree()
                .ancestors(&fork.parent)
                .map(|e| e.block.header.time)
                .take(MEDIAN_TIME_SPAN),
        );
        times.truncate(MEDIAN_TIME_SPAN);
        let time = now_ms().max(median(times) + 1);
        let txs: Vec<Tx> = match (&a.own, a.private.is_empty()) {
            (Some(tx), true) => vec![tx.clone()],
            _ => Vec::new(),
        };
        Some(Block {
            header: Header {
                version: BLOCK_VERSION,
                height: fork.height + a.private.len() as u64 + 1,
                prev,
                merkle: merkle_root(&txs),
                time,
                bits: self.chain.params().difficulty(),
                nonce: 0,
            },
            txs,
        })
    }

    /// A block the miner found while racing: kept in the private branch (if it extends
    /// it) and never gossiped. Returns false for a block that is not the attacker's.
    pub(super) fn take_private(&mut self, block: &Block) -> bool {
        let Some(a) = self.attack.as_mut().filter(|a| a.phase == Phase::Racing) else {
            return false;
        };
        let Some(fork) = a.fork else { return false };
        let prev = a.private.last().map_or(fork.parent, Block::hash);
        if block.header.prev == prev {
            tracing::info!(
                height = block.header.height,
                private = a.private.len() + 1,
                "attack: private block mined"
            );
            a.private.push(block.clone());
        }
        // A stale find of an older private template is dropped too: all the attacker's
        // hashrate works on its branch, so no honest block is mined while racing.
        self.attack_step(None);
        self.refresh_work();
        true
    }

    /// Judges the race after a tip change (or a timer): arms, publishes, or gives up.
    pub(super) fn attack_step(&mut self, change: Option<&TipChange>) {
        let Some(a) = self.attack.as_ref() else {
            return;
        };
        if a.phase == Phase::Armed {
            let key = a.plan.key.clone();
            let found = change.into_iter().flat_map(|c| &c.connected).find_map(|b| {
                b.txs
                    .iter()
                    .find(|t| t.op().key() == key)
                    .map(|t| (b.header.height, t.id(), b.header.prev))
            });
            if let Some((height, victim, parent)) = found {
                let mut a = self.attack.take();
                if let Some(a) = a.as_mut() {
                    self.begin_race(a, height, victim, parent);
                }
                self.attack = a;
                self.refresh_work();
            }
            return;
        }
        if a.phase != Phase::Racing {
            return;
        }
        let Some(race) = self.race(a) else { return };
        match judge(&race, &a.plan) {
            Verdict::Mine => {}
            Verdict::Publish => self.publish_private(),
            Verdict::GiveUp(reason) => {
                tracing::info!(%reason, "attack: gave up");
                if let Some(a) = self.attack.as_mut() {
                    a.last = Some(race);
                    a.fail(reason);
                }
                self.refresh_work();
            }
        }
    }

    /// Adds the private branch to this node's chain (it is heavier, so it becomes the
    /// tip) and gossips its blocks, oldest first.
    fn publish_private(&mut self) {
        let race = self.attack.as_ref().and_then(|a| self.race(a));
        let Some(a) = self.attack.as_mut() else {
            return;
        };
        a.last = race;
        a.phase = Phase::Published;
        let blocks = std::mem::take(&mut a.private);
        let (count, tip) = (blocks.len(), blocks.last().map(Block::hash));
        let mut error = None;
        for block in blocks {
            match self.process_block(block.clone()) {
                Ok(_) => self.publish(Gossip::Block(block)),
                Err(e) => {
                    error = Some(format!("own private block rejected: {e}"));
                    break;
                }
            }
        }
        let canonical = tip.is_some_and(|t| self.chain.tip_hash() == t);
        if let Some(a) = self.attack.as_mut() {
            match (error, canonical) {
                (None, true) => a.published_tip = tip,
                (error, _) => {
                    a.fail(error.unwrap_or_else(|| "the branch did not become the tip".into()))
                }
            }
        }
        tracing::info!(blocks = count, "attack: private branch published");
        self.refresh_work();
    }
}

impl Attack {
    /// Whether it is armed or racing.
    fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Armed | Phase::Racing)
    }

    fn fail(&mut self, reason: String) {
        self.phase = Phase::Failed;
        self.reason = Some(reason);
        self.private.clear();
    }
}
