//! A scripted hostile peer: a bare libp2p swarm that speaks the network's gossip protocol
//! and publishes a block with bad proof of work, a tx with a bad signature and bytes that
//! are not CBOR. The honest node must reject each one (its chain and mempool unchanged),
//! keep serving, and ban the peer at its first such message.

#[path = "support/hostile_peer.rs"]
mod hostile_peer;
#[path = "support/swarm_net.rs"]
mod swarm_net;

use hostile_peer::*;
use kvchain::chain::{pow, Keypair, Op, Params, Signature, Tx};
use kvchain::codec;
use kvchain::net::Names;
use kvchain::node::MiningPolicy;
use libp2p::swarm::SwarmEvent;
use swarm_net::*;

/// A write whose signature does not match.
fn bad_sig_tx(salt: u64) -> Tx {
    let op = Op::Put {
        key: "evil".into(),
        value: b"x".to_vec(),
    };
    let tx = Tx::new(&Keypair::generate(), op, salt, kvchain::chain::now_ms()).unwrap();
    tx.with_signature(Signature([7; 64]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_is_rejected_every_time_and_banned() {
    // Difficulty 16: a random header meets it with odds of 1 in 65536.
    let params = Params::new("hostile", 16).unwrap();
    let honest = spawn(&params, MiningPolicy::Auto, vec![]).await;
    let names = Names::new(&params.network_id());
    let before = HonestState::of(&honest.handle).await;
    // One peer per kind of bad message: one message of any kind is proof enough to ban.
    let mut last = None;
    for kind in 0..3u64 {
        let mut evil = Hostile::new(&names);
        let mut answer = quiet(&params);
        evil.join(&honest.addr, honest.net.peer_id(), &mut answer)
            .await;
        let (block, bytes) = match kind {
            0 => (true, codec::encode(&pow::failing_block(&params, kind))),
            1 => (false, codec::encode(&bad_sig_tx(kind))),
            _ => (false, b"\xffthis is not cbor".to_vec()),
        };
        assert!(evil.publish(block, bytes));
        assert!(
            evil.until_banned(&honest.net, LIMIT, &mut answer).await,
            "kind {kind}"
        );
        // Nothing reached the chain, the index or the mempool.
        before
            .assert_unchanged(&honest.handle, &format!("kind {kind}"))
            .await;
        last = Some((evil, answer));
    }
    let (mut evil, mut answer) = last.unwrap();

    // It stays out: a new connection is refused.
    evil.swarm.dial(honest.addr.clone()).unwrap();
    let mut refused = false;
    // (The dialer may see the connection open before the honest node's gate closes it; a
    // subscription from the honest node would mean it let us back in.)
    evil.drive(LIMIT, &mut answer, |e| {
        refused = matches!(
            e,
            SwarmEvent::OutgoingConnectionError { .. } | SwarmEvent::ConnectionClosed { .. }
        );
        refused
            || matches!(
                e,
                SwarmEvent::Behaviour(HostileBehaviourEvent::Gossipsub(
                    libp2p::gossipsub::Event::Subscribed { .. }
                ))
            )
    })
    .await
    .expect("the redial resolves");
    assert!(refused, "a banned peer got back in");
    let evil_id = evil.id();
    assert!(honest.net.peers().await.iter().all(|p| p.id != evil_id));

    // And the honest node still serves: a write goes through.
    let mut receipt = honest.handle.store().put("still", "here").await.unwrap();
    receipt.confirmed(LIMIT).await.unwrap();
    let got = honest.handle.store().retrieve("still").unwrap().value;
    assert_eq!(got.as_deref(), Some(&b"here"[..]));
}
