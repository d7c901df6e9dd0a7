//! Floods of the discovery protocols against a live node (in-process, real libp2p over the
//! memory transport): a scripted peer that speaks only Kademlia and identify, and asks or
//! pushes as fast as it can. The swarm answers these protocols without the node seeing
//! who asked, so the node meters each peer's events (`net::metered`): over its rate a
//! peer is throttled (its events dropped), then charged, at most once a second, until
//! banned. Each test asserts the flooder's charge, that an honest peer connected at the
//! same time is not charged, and that the node's tip, index and mempool are unchanged.

#[path = "support/hostile_peer.rs"]
mod hostile_peer;
#[path = "support/swarm_net.rs"]
mod swarm_net;

use futures::StreamExt;
use hostile_peer::{banned, points, HonestState};
use kvchain::chain::Params;
use kvchain::net::{self, Names, TransportKind};
use kvchain::node::MiningPolicy;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, kad, PeerId, Swarm};
use std::time::Duration;
use swarm_net::*;

/// A peer that speaks only the discovery protocols.
#[derive(NetworkBehaviour)]
struct FloodBehaviour {
    kad: kad::Behaviour<kad::store::MemoryStore>,
    identify: identify::Behaviour,
}

fn flooder(names: &Names) -> Swarm<FloodBehaviour> {
    let key = identity::Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let mut kad = kad::Behaviour::with_config(
        id,
        kad::store::MemoryStore::new(id),
        kad::Config::new(names.kad()),
    );
    kad.set_mode(Some(kad::Mode::Client));
    // The network's own identify version: a peer on another network would just be
    // disconnected, which is not what is tested here.
    let identify = identify::Behaviour::new(identify::Config::new(
        names.identify_version(),
        key.public(),
    ));
    let transport = net::transport::build(TransportKind::Memory, &key).unwrap();
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| transport)
        .unwrap()
        .with_behaviour(|_| FloodBehaviour { kad, identify })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// A node, an honest peer connected to it, and a flooder connected to it.
async fn setup() -> (Params, TestNode, TestNode, Swarm<FloodBehaviour>) {
    let params = Params::new("flood", 8).unwrap();
    let node = spawn(&params, MiningPolicy::Off, vec![]).await;
    let honest = spawn(&params, MiningPolicy::Off, vec![node.addr.clone()]).await;
    until("the honest peer connects", || async {
        info(&node).await.peers == 1
    })
    .await;
    let mut f = flooder(&Names::new(&params.network_id()));
    f.dial(node.addr.clone()).unwrap();
    let target = node.net.peer_id();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let e = tokio::time::timeout_at(deadline, f.select_next_some())
            .await
            .expect("the flooder connects");
        if matches!(e, SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target) {
            break;
        }
    }
    f.behaviour_mut()
        .kad
        .add_address(&target, node.addr.clone());
    (params, node, honest, f)
}

/// Runs the flooder, calling `flood` every 10 ms, until `done` holds (checked every
/// 100 ms); false if it did not within LIMIT.
async fn flood_until(
    f: &mut Swarm<FloodBehaviour>,
    mut flood: impl FnMut(&mut Swarm<FloodBehaviour>),
    mut done: impl AsyncFnMut() -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut polls = 0u32;
    loop {
        tokio::select! {
            _ = f.select_next_some() => {}
            _ = tick.tick() => {
                flood(f);
                polls += 1;
                if polls.is_multiple_of(10) && done().await {
                    return true;
                }
            }
            _ = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// The node's verdict after the flood: the honest peer uncharged, the state unchanged.
async fn assert_honest_unharmed(node: &TestNode, honest: &TestNode, before: &HonestState) {
    assert_eq!(
        points(&node.net, honest.net.peer_id()).await,
        0,
        "the honest peer was charged"
    );
    before
        .assert_unchanged(&node.handle, "the flood changed the node's state")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_kademlia_requests_is_throttled_and_charged() {
    let (_, node, honest, mut f) = setup().await;
    let before = HonestState::of(&node.handle).await;
    let (net, me) = (node.net.clone(), *f.local_peer_id());
    // Ten lookups every 10 ms, each a FIND_NODE to the node (the only peer known): far
    // over the default 10 a second, bursts of 100.
    let charged = flood_until(
        &mut f,
        |f| {
            for _ in 0..10 {
                f.behaviour_mut().kad.get_closest_peers(PeerId::random());
            }
        },
        async || points(&net, me).await >= 5,
    )
    .await;
    assert!(charged, "the Kademlia flood was never charged");
    assert_honest_unharmed(&node, &honest, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_identify_pushes_is_charged_until_the_peer_is_banned() {
    let (_, node, honest, mut f) = setup().await;
    let before = HonestState::of(&node.handle).await;
    let (net, me, target) = (node.net.clone(), *f.local_peer_id(), node.net.peer_id());
    // Five pushes every 10 ms: each one a stream the node reads and a handler event.
    let banned_in_time = flood_until(
        &mut f,
        |f| {
            for _ in 0..5 {
                f.behaviour_mut().identify.push([target]);
            }
        },
        async || banned(&net, me).await,
    )
    .await;
    assert!(
        banned_in_time,
        "the identify flood did not get the peer banned"
    );
    let ban = node.net.bans().await;
    assert!(
        ban.iter()
            .any(|b| b.peer == me && b.reason.contains("identify")),
        "{ban:?}"
    );
    assert!(!banned(&node.net, honest.net.peer_id()).await);
    assert_honest_unharmed(&node, &honest, &before).await;
}
