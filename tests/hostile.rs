//! A scripted hostile peer: a bare libp2p swarm that speaks the network's gossip protocol
//! and publishes a block with bad proof of work, a tx with a bad signature and bytes that
//! are not CBOR. The honest node must reject each one (its chain and mempool unchanged),
//! keep serving, and end up banning the peer.

#[path = "support/swarm_net.rs"]
mod swarm_net;

use futures::StreamExt;
use kvchain::chain::{block::merkle_root, Block, Header, Keypair, Op, Params, Signature, Tx};
use kvchain::codec;
use kvchain::net::Names;
use kvchain::node::MiningPolicy;
use libp2p::core::{transport::MemoryTransport, upgrade::Version};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identity, noise, yamux, Swarm, Transport};
use std::time::Duration;
use swarm_net::*;

fn hostile_swarm(names: &Names) -> Swarm<gossipsub::Behaviour> {
    let key = identity::Keypair::generate_ed25519();
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(names.gossipsub_prefix())
        .max_transmit_size(4 << 20)
        .heartbeat_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
            .unwrap();
    let noise = noise::Config::new(&key).unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
        })
        .unwrap()
        .with_behaviour(|_| behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for topic in [names.tx_topic(), names.block_topic()] {
        swarm
            .behaviour_mut()
            .subscribe(&gossipsub::IdentTopic::new(topic))
            .unwrap();
    }
    swarm
}

/// A block on genesis whose hash misses the difficulty.
fn bad_pow_block(params: &Params, salt: u64) -> Block {
    let genesis = params.genesis().header;
    let mut header = Header {
        version: 1,
        height: 1,
        prev: genesis.hash(),
        merkle: merkle_root(&[]),
        time: genesis.time + 1_000 + salt,
        bits: params.difficulty(),
        nonce: salt,
    };
    while kvchain::chain::pow::meets(&header.hash(), header.bits) {
        header.nonce += 1;
    }
    Block {
        header,
        txs: vec![],
    }
}

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
    // One peer per kind of bad message: one message of any kind is proof enough to ban.
    for kind in 0..3 {
        banned_after_one_of(kind, &params, &honest).await;
        let i = info(&honest).await;
        assert_eq!((i.height, i.mempool, i.orphans), (0, 0, 0), "kind {kind}");
    }
    let evil = banned_after_one_of(0, &params, &honest).await;
    redial_is_refused_and_the_node_still_serves(evil, &honest).await;
}

/// Connects a fresh hostile peer, publishes bad messages of `kind` until the honest node
/// hangs up on it, and returns the (banned) swarm.
async fn banned_after_one_of(
    kind: u64,
    params: &Params,
    honest: &TestNode,
) -> Swarm<gossipsub::Behaviour> {
    let names = Names::new(&params.network_id());
    let mut evil = hostile_swarm(&names);
    let honest_id = honest.net.peer_id();
    evil.dial(honest.addr.clone()).unwrap();

    // Wait until the honest node subscribes to both topics, so publishing reaches it.
    let mut subscribed = 0;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while subscribed < 2 {
        let event = tokio::time::timeout_at(deadline, evil.select_next_some())
            .await
            .expect("honest node subscribes");
        if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, .. }) = event {
            assert_eq!(peer_id, honest_id);
            subscribed += 1;
        }
    }

    // Publish bad messages of the three kinds, in turn, until the honest node hangs up.
    let tx_topic = gossipsub::IdentTopic::new(names.tx_topic());
    let block_topic = gossipsub::IdentTopic::new(names.block_topic());
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let banned = loop {
        tokio::select! {
            _ = tick.tick() => {
                let (topic, bytes) = match kind {
                    0 => (&block_topic, codec::encode(&bad_pow_block(params, sent))),
                    1 => (&tx_topic, codec::encode(&bad_sig_tx(sent))),
                    _ => (&tx_topic, b"\xffthis is not cbor".iter().copied().chain(sent.to_le_bytes()).collect()),
                };
                if evil.behaviour_mut().publish(topic.clone(), bytes).is_ok() {
                    sent += 1;
                }
                // Every bad message is rejected: nothing reaches the chain or the mempool.
                let i = info(honest).await;
                assert_eq!((i.height, i.mempool, i.orphans), (0, 0, 0), "after {sent} bad messages");
            }
            event = evil.select_next_some() => {
                if let SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } = event {
                    assert_eq!(peer_id, honest_id);
                    break true;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break false,
        }
    };
    assert!(
        banned,
        "the honest node never disconnected the hostile peer ({sent} bad messages)"
    );
    assert!(sent >= 1);
    evil
}

async fn redial_is_refused_and_the_node_still_serves(
    mut evil: Swarm<gossipsub::Behaviour>,
    honest: &TestNode,
) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    // It stays out: a new connection is refused.
    evil.dial(honest.addr.clone()).unwrap();
    let refused = loop {
        match tokio::time::timeout_at(deadline, evil.select_next_some())
            .await
            .expect("redial resolves")
        {
            SwarmEvent::OutgoingConnectionError { .. } => break true,
            SwarmEvent::ConnectionClosed { .. } => break true,
            SwarmEvent::Behaviour(gossipsub::Event::Message { .. }) => break false,
            _ => {}
        }
    };
    assert!(refused);
    assert!(honest
        .net
        .peers()
        .await
        .iter()
        .all(|p| p.id != *evil.local_peer_id()));

    // And the honest node still serves: a write goes through.
    let mut receipt = honest.handle.store().put("still", "here").await.unwrap();
    receipt.confirmed(LIMIT).await.unwrap();
    assert_eq!(
        honest
            .handle
            .store()
            .retrieve("still")
            .unwrap()
            .value
            .as_deref(),
        Some(&b"here"[..])
    );
}
