//! The experimental 51% attack (`kvchain node --attacker`) between real nodes in one
//! process over libp2p's memory transport: an attacker with far more hashrate rewrites an
//! older version of a key on the honest node, which reorgs without charging anyone; a
//! capped attacker that falls behind gives up and leaves the honest history unchanged.

#[path = "support/swarm_net.rs"]
mod swarm_net;

use kvchain::chain::Params;
use kvchain::node::attack::{AttackPlan, AttackRequest, AttackStatus, Phase, Target};
use kvchain::node::MiningPolicy;
use std::num::NonZeroU64;
use swarm_net::*;

/// The value of `key` at `height` on `node`, if a version is there.
fn value_at(node: &TestNode, key: &str, height: u64) -> Option<Vec<u8>> {
    let all = node.handle.store().retrieve_all(key);
    let v = all.iter().find(|v| v.height == height)?;
    v.value.as_ref().map(|v| v.to_vec())
}

/// An honest miner capped at `honest` H/s and an attacker (not mining until it attacks)
/// capped at `attacker`, connected; two versions of `k` written on the honest node.
/// Returns them with the height of the second version.
///
/// The attacker mines at normal priority, as one bent on a rewrite would: at the default
/// (nice 10) its miner gets a tenth of a busy CPU, and on a loaded test machine it then
/// hashed no faster than the capped honest miner and never caught up.
async fn setup(name: &str, honest: u64, attacker: u64) -> (TestNode, TestNode, u64) {
    let p = Params::new(name, 12).unwrap();
    let h = spawn_tuned(
        &p,
        MiningPolicy::Always,
        vec![],
        Tuning {
            max_hashrate: NonZeroU64::new(honest),
            ..Tuning::default()
        },
    )
    .await;
    let a = spawn_tuned(
        &p,
        MiningPolicy::Off,
        vec![h.addr.clone()],
        Tuning {
            max_hashrate: NonZeroU64::new(attacker),
            attacker: true,
            miner_priority: kvchain::chain::MinerPriority::Nice(0),
            ..Tuning::default()
        },
    )
    .await;
    until("peers connected", || async { info(&h).await.peers == 1 }).await;
    let store = h.handle.store();
    for v in ["v1", "v2"] {
        let mut r = store.put("k", v).await.unwrap();
        r.included(LIMIT).await.unwrap();
    }
    let target = store.retrieve("k").unwrap().height;
    until("the attacker to hold the version", || async {
        value_at(&a, "k", target).is_some()
    })
    .await;
    (h, a, target)
}

async fn attack(node: &TestNode, request: AttackRequest) -> AttackStatus {
    node.handle.attack(request).await.unwrap().unwrap()
}

fn plan(target: u64, give_up_behind: u64) -> AttackPlan {
    AttackPlan {
        key: "k".into(),
        target: Target::Height(target),
        value: b"forged".to_vec(),
        confirmations: 1,
        give_up_behind,
        give_up_after: LIMIT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_with_more_hashrate_rewrites_a_version_on_the_honest_node() {
    // Honest: a block every 0.2 s or so; attacker: as fast as its thread hashes (over
    // 200k H/s even in a debug build), up to a cap 250 times the honest one.
    let (h, a, target) = setup("attack-wins", 20_000, 5_000_000).await;
    let below = |n: &TestNode| -> Vec<_> {
        let all = n.handle.store().retrieve_all("k");
        all.iter()
            .filter(|v| v.height < target)
            .map(|v| (v.height, v.tx_id))
            .collect()
    };
    let before = below(&h);
    let s = attack(&a, AttackRequest::Start(plan(target, 0))).await;
    assert_eq!(s.state, Phase::Racing);
    until("the honest node to take the attacker's version", || async {
        value_at(&h, "k", target).as_deref() == Some(&b"forged"[..])
    })
    .await;
    let s = attack(&a, AttackRequest::Status).await;
    assert_eq!(s.state, Phase::Published, "{s:?}");
    // Versions below the fork stay; the victim's write is mined again, higher up.
    assert_eq!(below(&h), before);
    until("the victim's write to be mined again", || async {
        let all = h.handle.store().retrieve_all("k");
        all.iter()
            .any(|v| v.height > target && v.value.as_deref() == Some(&b"v2"[..]))
    })
    .await;
    // Valid blocks: nobody is charged for them.
    for n in [&h, &a] {
        assert!(n.net.peers().await.iter().all(|p| p.penalty == 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_attacker_that_never_catches_up_leaves_the_history_unchanged() {
    // Honest: about 12 blocks a second; attacker: a block every 40 s or so.
    let (h, a, target) = setup("attack-loses", 50_000, 100).await;
    let before = h.handle.store().retrieve_all("k");
    attack(&a, AttackRequest::Start(plan(target, 3))).await;
    until("the attacker to give up", || async {
        attack(&a, AttackRequest::Status).await.state == Phase::Failed
    })
    .await;
    let s = attack(&a, AttackRequest::Status).await;
    assert!(s.honest_blocks >= s.private_blocks + 3, "{s:?}");
    let after = h.handle.store().retrieve_all("k");
    assert_eq!(after.len(), before.len());
    for (x, y) in before.iter().zip(&after) {
        assert_eq!((x.height, x.tx_id), (y.height, y.tx_id));
    }
    assert_eq!(value_at(&h, "k", target).as_deref(), Some(&b"v2"[..]));
}
