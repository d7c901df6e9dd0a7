//! A scripted hostile peer: a bare libp2p swarm over the memory transport that speaks the
//! network's gossip and sync protocols, and sends whatever a test tells it to, garbage
//! included. Its sync side reads real requests and writes raw frames, so an answer can
//! be a valid message, the wrong kind of message, undecodable bytes, or nothing at all.
#![allow(dead_code)]

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, StreamExt};
use kvchain::chain::side::MAX_SIDE_BLOCKS;
use kvchain::chain::tree::MAX_ORPHANS;
use kvchain::chain::{BlockHash, Hash, Params};
use kvchain::codec;
use kvchain::net::protocol::{read_frame, write_frame, MAX_REQUEST_BYTES};
use kvchain::net::{ChainStatus, Names, NetClient, SyncRequest, SyncResponse};
use kvchain::node::NodeHandle;
use libp2p::core::{transport::MemoryTransport, upgrade::Version};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::Transport;
use libp2p::{gossipsub, identity, noise, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use std::io;
use std::time::Duration;

/// A sync answer as raw bytes (the payload of one length-prefixed frame).
#[derive(Clone, Debug)]
pub struct Raw(pub Vec<u8>);

impl Raw {
    /// A well-formed answer.
    pub fn of(response: &SyncResponse) -> Raw {
        Raw(codec::encode(response))
    }
}

/// Reads kvchain sync requests, writes raw frames.
#[derive(Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = Raw;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncRequest> {
        let buf = read_frame(io, MAX_REQUEST_BYTES).await?;
        codec::decode(&buf, MAX_REQUEST_BYTES)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Raw> {
        let mut buf = Vec::new();
        io.take(64 << 20).read_to_end(&mut buf).await?;
        Ok(Raw(buf))
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()> {
        write_frame(io, &codec::encode(&req)).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Raw,
    ) -> io::Result<()> {
        write_frame(io, &res.0).await
    }
}

/// The hostile peer's protocols.
#[derive(NetworkBehaviour)]
pub struct HostileBehaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::Behaviour<RawCodec>,
}

/// What the hostile peer does with a sync request it receives.
pub enum Answer {
    /// Sends these bytes as the answer.
    Send(Raw),
    /// Never answers (the request times out at the asker).
    Stall,
}

/// The hostile peer.
pub struct Hostile {
    pub swarm: Swarm<HostileBehaviour>,
    pub names: Names,
    /// Requests it left unanswered, kept so their streams stay open.
    stalled: Vec<request_response::ResponseChannel<Raw>>,
}

impl Hostile {
    /// A hostile peer of the network `names`, subscribed to both topics.
    pub fn new(names: &Names) -> Hostile {
        let key = identity::Keypair::generate_ed25519();
        let gossipsub = crate::swarm_net::bare_gossipsub(names);
        let sync = request_response::Behaviour::with_codec(
            RawCodec,
            [(names.sync(), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
        );
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
            .with_behaviour(|_| HostileBehaviour { gossipsub, sync })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        for topic in [names.tx_topic(), names.block_topic()] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&gossipsub::IdentTopic::new(topic))
                .unwrap();
        }
        Hostile {
            swarm,
            names: names.clone(),
            stalled: Vec::new(),
        }
    }

    /// Its peer id.
    pub fn id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Dials `addr` and waits until `peer` has subscribed to both topics.
    pub async fn join(
        &mut self,
        addr: &Multiaddr,
        peer: PeerId,
        answer: &mut impl FnMut(&SyncRequest) -> Answer,
    ) {
        self.swarm.dial(addr.clone()).unwrap();
        let mut subscribed = 0;
        self.drive(Duration::from_secs(60), answer, |e| {
            if let SwarmEvent::Behaviour(HostileBehaviourEvent::Gossipsub(
                gossipsub::Event::Subscribed { peer_id, .. },
            )) = e
            {
                if *peer_id == peer {
                    subscribed += 1;
                }
            }
            subscribed >= 2
        })
        .await
        .expect("the honest node subscribes to both topics");
    }

    /// Publishes raw bytes on the block or tx topic.
    pub fn publish(&mut self, block_topic: bool, bytes: Vec<u8>) -> bool {
        let topic = if block_topic {
            self.names.block_topic()
        } else {
            self.names.tx_topic()
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(topic), bytes)
            .is_ok()
    }

    /// Publishes `txs` as one gossip message on the tx topic.
    pub fn publish_txs(&mut self, txs: &[kvchain::chain::Tx]) -> bool {
        self.publish(false, kvchain::codec::encode(&txs))
    }

    /// Runs the swarm, answering sync requests with `answer`, until `done` says so of an
    /// event or `limit` passes; `None` on timeout.
    pub async fn drive(
        &mut self,
        limit: Duration,
        answer: &mut impl FnMut(&SyncRequest) -> Answer,
        mut done: impl FnMut(&SwarmEvent<HostileBehaviourEvent>) -> bool,
    ) -> Option<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .ok()?;
            if let Some(other) = self.answer_requests(event, answer) {
                if done(&other) {
                    return Some(());
                }
            }
        }
    }

    /// Answers a sync request event with `answer`; hands back any other event.
    fn answer_requests(
        &mut self,
        event: SwarmEvent<HostileBehaviourEvent>,
        answer: &mut impl FnMut(&SyncRequest) -> Answer,
    ) -> Option<SwarmEvent<HostileBehaviourEvent>> {
        match event {
            SwarmEvent::Behaviour(HostileBehaviourEvent::Sync(
                request_response::Event::Message {
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                },
            )) => {
                match answer(&request) {
                    Answer::Send(raw) => {
                        let _ = self.swarm.behaviour_mut().sync.send_response(channel, raw);
                    }
                    Answer::Stall => self.stalled.push(channel),
                }
                None
            }
            other => Some(other),
        }
    }

    /// Runs the swarm, answering requests, until `cond` completes (or `limit` passes: then
    /// false).
    pub async fn run_until<F: std::future::Future<Output = ()>>(
        &mut self,
        limit: Duration,
        answer: &mut impl FnMut(&SyncRequest) -> Answer,
        cond: F,
    ) -> bool {
        let mut cond = std::pin::pin!(cond);
        let deadline = tokio::time::sleep(limit);
        let mut deadline = std::pin::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut cond => return true,
                _ = &mut deadline => return false,
                event = self.swarm.select_next_some() => {
                    self.answer_requests(event, answer);
                }
            }
        }
    }

    /// Runs the swarm, answering requests, until `node` has banned this peer; false if it
    /// did not within `limit`.
    pub async fn until_banned(
        &mut self,
        node: &NetClient,
        limit: Duration,
        answer: &mut impl FnMut(&SyncRequest) -> Answer,
    ) -> bool {
        let (node, me) = (node.clone(), self.id());
        let check = async move {
            while !banned(&node, me).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        self.run_until(limit, answer, check).await
    }

    /// Runs the swarm for `time`, answering requests.
    pub async fn run_for(
        &mut self,
        time: Duration,
        answer: &mut impl FnMut(&SyncRequest) -> Answer,
    ) {
        let _ = self.drive(time, answer, |_| false).await;
    }

    /// Sends a sync request to `peer`.
    pub fn request(&mut self, peer: &PeerId, request: SyncRequest) {
        self.swarm.behaviour_mut().sync.send_request(peer, request);
    }
}

/// Answers like an honest peer with an empty chain: genesis, no work, no blocks.
pub fn quiet(params: &Params) -> impl FnMut(&SyncRequest) -> Answer {
    let genesis = params.genesis_hash();
    move |request| {
        Answer::Send(Raw::of(&match request {
            SyncRequest::Status => SyncResponse::Status(ChainStatus {
                genesis,
                tip: genesis,
                height: 0,
                total_work: 0u128.to_be_bytes(),
            }),
            SyncRequest::Blocks { .. } => SyncResponse::Blocks(vec![]),
            SyncRequest::Block(_) => SyncResponse::Block(None),
        }))
    }
}

/// The misbehaviour points `node` holds against `peer` (100 if banned, 0 if unknown).
pub async fn points(node: &NetClient, peer: PeerId) -> u32 {
    if node.bans().await.iter().any(|b| b.peer == peer) {
        return 100;
    }
    node.peers()
        .await
        .iter()
        .find(|p| p.id == peer)
        .map_or(0, |p| p.penalty)
}

/// Whether `node` has banned `peer`.
pub async fn banned(node: &NetClient, peer: PeerId) -> bool {
    node.bans().await.iter().any(|b| b.peer == peer)
}

/// The part of an honest node's state an attack must leave as it was: its tip, its index
/// (by digest) and its mempool.
#[derive(Debug, PartialEq, Eq)]
pub struct HonestState {
    pub tip: BlockHash,
    pub height: u64,
    pub digest: Hash,
    pub mempool: usize,
}

impl HonestState {
    /// `node`'s state now. Asserts the memory bounds that hold whatever peers send: at
    /// most `MAX_ORPHANS` blocks held for a missing parent and `MAX_SIDE_BLOCKS` off the
    /// canonical chain (the mempool's own bound is asserted where a test floods it).
    pub async fn of(node: &NodeHandle) -> HonestState {
        let i = node.info().await.expect("the honest node runs");
        assert!(i.orphans <= MAX_ORPHANS, "{} orphans held", i.orphans);
        assert!(
            i.side_blocks <= MAX_SIDE_BLOCKS,
            "{} side blocks held",
            i.side_blocks
        );
        HonestState {
            tip: i.tip,
            height: i.height,
            digest: node.store().digest(),
            mempool: i.mempool,
        }
    }

    /// Asserts `node` still has this tip, index and mempool, within the memory bounds.
    pub async fn assert_unchanged(&self, node: &NodeHandle, what: &str) {
        assert_eq!(&HonestState::of(node).await, self, "{what}");
    }
}
