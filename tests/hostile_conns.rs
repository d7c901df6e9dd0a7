//! Connections are bounded, and bans end: live nodes (real libp2p, in process) against
//! scripted and bare peers, one test per rule.
//!
//! - A ban runs out: a peer banned for one block with bad proof of work is refused while
//!   the ban lasts (2 s here), never lifted early, and let in again, same identity, after.
//! - `unban` lifts a ban at once (true once, then false), and the peer is let in again.
//! - On TCP loopback with `limit_loopback`, the per-IP inbound cap (2) lets two dialers in,
//!   refuses the third, and lets it in once one of the two leaves.
//! - With the default `limit_loopback: false`, loopback is exempt from that cap: every
//!   node of a one-machine network shares 127.0.0.1.
//! - The total cap (`max_connections: 3`): of five dialers at once, three get in, never
//!   more are connected at any time, the node keeps confirming writes, and a freed slot
//!   is taken again.
//! - A ban on TCP loopback covers the peer id, not the address: the banned identity is
//!   refused, a new identity from the same 127.0.0.1 is let in, and the ban lists no
//!   address (the rule that non-loopback addresses are banned is unit-tested in
//!   `src/net/peers.rs`; these tests have no other address to dial from).

mod common;
#[path = "support/hostile_peer.rs"]
mod hostile_peer;
#[path = "support/swarm_net.rs"]
mod swarm_net;
#[path = "support/tcp_net.rs"]
mod tcp_net;

use common::params;
use futures::StreamExt;
use hostile_peer::*;
use kvchain::chain::{pow, Params};
use kvchain::codec;
use kvchain::net::{Limits, Names, SyncRequest, TransportKind};
use kvchain::node::MiningPolicy;
use libp2p::request_response;
use libp2p::swarm::{dial_opts::DialOpts, SwarmEvent};
use libp2p::PeerId;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarm_net::*;
use tcp_net::{spawn_tcp, Dialer, Outcome};

fn names(params: &Params) -> Names {
    Names::new(&params.network_id())
}

fn with_limits(limits: Limits) -> Tuning {
    Tuning {
        limits,
        ..Tuning::default()
    }
}

/// The peers `node` is connected to.
async fn peer_ids(node: &TestNode) -> Vec<PeerId> {
    node.net.peers().await.iter().map(|p| p.id).collect()
}

/// Connects `evil` to `node`, sends one block with bad proof of work and waits until the
/// node has banned it and hung up.
async fn ban_for_bad_pow(
    evil: &mut Hostile,
    node: &TestNode,
    params: &Params,
    answer: &mut impl FnMut(&SyncRequest) -> Answer,
) {
    let node_id = node.net.peer_id();
    let before = HonestState::of(&node.handle).await;
    evil.join(&node.addr, node_id, answer).await;
    assert!(evil.publish(true, codec::encode(&pow::failing_block(params, 0))));
    let (net, id) = (node.net.clone(), evil.id());
    let banned_in_time = evil
        .run_until(LIMIT, answer, async move {
            until("the node bans the peer", || async {
                banned(&net, id).await
            })
            .await
        })
        .await;
    assert!(
        banned_in_time,
        "one bad-PoW block did not get the peer banned"
    );
    if evil.swarm.is_connected(&node_id) {
        let hung_up = |e: &SwarmEvent<HostileBehaviourEvent>| {
            matches!(e, SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. }
                if *peer_id == node_id)
        };
        evil.drive(LIMIT, answer, hung_up)
            .await
            .expect("the node hangs up on the banned peer");
    }
    before
        .assert_unchanged(&node.handle, "the bad block was taken")
        .await;
}

/// Dials `node` again from `evil` and runs its swarm (answering sync requests) until the
/// dial is settled: refused (an error or close on that connection) or admitted
/// (established, and the node lists the peer).
async fn redial(
    evil: &mut Hostile,
    node: &TestNode,
    answer: &mut impl FnMut(&SyncRequest) -> Answer,
) -> Outcome {
    let opts = DialOpts::from(node.addr.clone());
    let conn = opts.connection_id();
    evil.swarm.dial(opts).unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut established = false;
    loop {
        tokio::select! {
            event = evil.swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(HostileBehaviourEvent::Sync(
                    request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    },
                )) => {
                    if let Answer::Send(raw) = answer(&request) {
                        let _ = evil.swarm.behaviour_mut().sync.send_response(channel, raw);
                    }
                }
                SwarmEvent::ConnectionEstablished { connection_id, .. } if connection_id == conn => {
                    established = true;
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. }
                    if connection_id == conn =>
                {
                    return Outcome::Refused(format!("dial failed: {error}"));
                }
                SwarmEvent::ConnectionClosed { connection_id, cause, .. } if connection_id == conn => {
                    return Outcome::Refused(format!("connection closed: {cause:?}"));
                }
                _ => {}
            },
            _ = tick.tick() => {
                if established && peer_ids(node).await.contains(&evil.id()) {
                    return Outcome::Admitted;
                }
            }
            _ = tokio::time::sleep_until(deadline) => panic!("redial neither admitted nor refused"),
        }
    }
}

fn refused(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Refused(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_runs_out_and_the_same_identity_is_let_in_again() {
    let params = params();
    let ban = Duration::from_secs(2);
    let limits = Limits {
        ban_duration: ban,
        ..Limits::default()
    };
    let node = spawn_tuned(&params, MiningPolicy::Off, vec![], with_limits(limits)).await;
    let mut evil = Hostile::new(&names(&params));
    let mut answer = quiet(&params);
    ban_for_bad_pow(&mut evil, &node, &params, &mut answer).await;

    let listed_at = Instant::now();
    let bans = node.net.bans().await;
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].peer, evil.id());
    let remaining = bans[0].remaining;
    assert!(
        remaining > Duration::ZERO && remaining <= ban,
        "{remaining:?}"
    );

    // While the ban lasts, the same identity is refused.
    let again = redial(&mut evil, &node, &mut answer).await;
    assert!(refused(&again), "a banned peer got in: {again:?}");
    assert!(
        banned(&node.net, evil.id()).await,
        "the ban ran out before the redial was settled, so the refusal proves nothing"
    );
    assert!(!peer_ids(&node).await.contains(&evil.id()));

    // It runs out, and not early: `remaining` counted from before it was read.
    until("the ban runs out", || async {
        node.net.bans().await.is_empty()
    })
    .await;
    assert!(
        listed_at.elapsed() >= remaining,
        "lifted after {:?}, {remaining:?} were left",
        listed_at.elapsed()
    );
    assert_eq!(
        redial(&mut evil, &node, &mut answer).await,
        Outcome::Admitted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unban_lifts_a_ban_at_once() {
    let params = params();
    // Bans of the default hour: only `unban` can let the peer back in within the test.
    let node = spawn(&params, MiningPolicy::Off, vec![]).await;
    let mut evil = Hostile::new(&names(&params));
    let mut answer = quiet(&params);
    ban_for_bad_pow(&mut evil, &node, &params, &mut answer).await;
    let again = redial(&mut evil, &node, &mut answer).await;
    assert!(refused(&again), "a banned peer got in: {again:?}");

    assert!(node.net.unban(evil.id()).await, "the peer was banned");
    assert!(
        !node.net.unban(evil.id()).await,
        "a second unban found a ban"
    );
    assert!(node.net.bans().await.is_empty());
    assert_eq!(
        redial(&mut evil, &node, &mut answer).await,
        Outcome::Admitted
    );
    assert_eq!(points(&node.net, evil.id()).await, 0, "its score was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_per_ip_cap_a_loopback_dialer_is_refused_when_loopback_counts() {
    let params = params();
    let limits = Limits {
        max_inbound_per_ip: 2,
        limit_loopback: true,
        ..Limits::default()
    };
    let node = spawn_tcp(&params, MiningPolicy::Off, limits).await;
    let names = names(&params);
    let mut a = Dialer::new(TransportKind::Tcp, &names);
    let mut b = Dialer::new(TransportKind::Tcp, &names);
    let mut c = Dialer::new(TransportKind::Tcp, &names);
    assert_eq!(a.connect(&node).await, Outcome::Admitted);
    assert_eq!(b.connect(&node).await, Outcome::Admitted);
    let third = c.connect(&node).await;
    assert!(refused(&third), "a third dialer from 127.0.0.1 got in");
    let mut peers = peer_ids(&node).await;
    peers.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(peers, want);

    // One leaves: its slot is free again.
    a.hang_up(node.net.peer_id());
    until("the node sees a leave", || async {
        !peer_ids(&node).await.contains(&a.id)
    })
    .await;
    assert_eq!(c.connect(&node).await, Outcome::Admitted);
    let mut peers = peer_ids(&node).await;
    peers.sort();
    let mut want = vec![b.id, c.id];
    want.sort();
    assert_eq!(peers, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_dialers_are_exempt_from_the_per_ip_cap_by_default() {
    let params = params();
    // A cap of 2 that loopback would exceed twice over, were it counted.
    let limits = Limits {
        max_inbound_per_ip: 2,
        ..Limits::default()
    };
    assert!(!limits.limit_loopback, "loopback is exempt by default");
    let node = spawn_tcp(&params, MiningPolicy::Off, limits).await;
    let names = names(&params);
    let mut dialers: Vec<Dialer> = (0..4)
        .map(|_| Dialer::new(TransportKind::Tcp, &names))
        .collect();
    for d in &mut dialers {
        assert_eq!(d.connect(&node).await, Outcome::Admitted);
    }
    assert_eq!(peer_ids(&node).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_cap_holds_and_the_node_keeps_serving() {
    let params = params();
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let node = spawn_tuned(&params, MiningPolicy::Auto, vec![], with_limits(limits)).await;
    let names = names(&params);

    // Count the node's peers, every few ms, from before the first dial to the end.
    let most = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (net, most, stop) = (node.net.clone(), most.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(net.peers().await.len(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    let mut dialers: Vec<Dialer> = (0..5)
        .map(|_| Dialer::new(TransportKind::Memory, &names))
        .collect();
    let mut conns = Vec::new();
    for d in &dialers {
        conns.push(d.dial(&node.addr).await);
    }
    let mut outcomes = Vec::new();
    for (d, conn) in dialers.iter_mut().zip(conns) {
        outcomes.push(d.outcome(conn, &node.net).await);
    }
    let admitted: Vec<usize> = (0..5)
        .filter(|i| outcomes[*i] == Outcome::Admitted)
        .collect();
    assert_eq!(admitted.len(), 3, "{outcomes:?}");
    assert_eq!(peer_ids(&node).await.len(), 3);

    // The node still serves: a write is mined and confirmed.
    let mut receipt = node.handle.store().put("full", "house").await.unwrap();
    receipt.confirmed(LIMIT).await.unwrap();
    assert_eq!(
        node.handle
            .store()
            .retrieve("full")
            .unwrap()
            .value
            .as_deref(),
        Some(&b"house"[..])
    );

    // A freed slot is taken again, by a dialer refused before.
    dialers[admitted[0]].hang_up(node.net.peer_id());
    let gone = dialers[admitted[0]].id;
    until("the node sees a leave", || async {
        !peer_ids(&node).await.contains(&gone)
    })
    .await;
    let late = (0..5).find(|i| !admitted.contains(i)).unwrap();
    assert_eq!(dialers[late].connect(&node).await, Outcome::Admitted);
    assert_eq!(peer_ids(&node).await.len(), 3);

    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let most = most.load(Ordering::Relaxed);
    assert!(most <= 3, "{most} peers were connected at once");
    assert_eq!(most, 3, "the sampler never saw the node full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_ban_covers_the_peer_id_not_the_shared_address() {
    let params = params();
    let node = spawn_tcp(&params, MiningPolicy::Off, Limits::default()).await;
    let names = names(&params);
    let mut evil = Dialer::new(TransportKind::Tcp, &names);
    assert_eq!(evil.connect(&node).await, Outcome::Admitted);
    let bad = codec::encode(&pow::failing_block(&params, 1));
    // Published once the node's subscription has reached the dialer.
    until("the dialer publishes a bad block", || async {
        evil.publish(bad.clone()).await
    })
    .await;
    until("the node bans the dialer", || async {
        banned(&node.net, evil.id).await
    })
    .await;
    let bans = node.net.bans().await;
    assert_eq!(bans.len(), 1);
    assert!(
        bans[0].ips.is_empty(),
        "loopback was banned: {:?}",
        bans[0].ips
    );
    until("the node hangs up on it", || async {
        !peer_ids(&node).await.contains(&evil.id)
    })
    .await;

    // The identity is banned...
    let again = evil.connect(&node).await;
    assert!(refused(&again), "the banned identity got in: {again:?}");
    // ...the address it came from is not: a new identity from 127.0.0.1 gets in.
    let mut fresh = Dialer::new(TransportKind::Tcp, &names);
    assert_eq!(fresh.connect(&node).await, Outcome::Admitted);
    assert!(banned(&node.net, evil.id).await);
    assert_eq!(peer_ids(&node).await, vec![fresh.id]);
}
