//! The wire protocol: names of protocols and gossip topics (all carrying the network id),
//! the block-sync request/response messages, and their length-prefixed CBOR codec.

use crate::chain::{Block, BlockHash};
use crate::codec::{self, MAX_MESSAGE_BYTES};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};
use std::io;

/// Most blocks in one sync response.
pub const MAX_SYNC_BLOCKS: u32 = 128;
/// Most bytes of blocks in one sync response (a batch stops before it would pass this).
pub const MAX_SYNC_BYTES: usize = 8 * 1024 * 1024;
/// Largest sync response accepted: a full batch plus one block of slack and framing.
pub const MAX_RESPONSE_BYTES: usize = MAX_SYNC_BYTES + 2 * MAX_MESSAGE_BYTES;
/// Largest sync request accepted (a locator of at most [`MAX_LOCATOR`] hashes).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 64;
/// Most txs in one gossip message; a batch with more is invalid.
pub const MAX_GOSSIP_TXS: usize = 1024;
/// A node closes a batch of its own txs once it holds this many bytes of them.
pub const GOSSIP_BATCH_BYTES: usize = 256 * 1024;

/// Protocol names and topics for one network.
#[derive(Clone, Debug)]
pub struct Names {
    /// The network id (prefix of the genesis hash).
    pub network_id: String,
}

impl Names {
    /// Names for the network `network_id`.
    pub fn new(network_id: &str) -> Names {
        Names {
            network_id: network_id.to_string(),
        }
    }

    fn protocol(&self, what: &str) -> StreamProtocol {
        // A network id is 8 hex digits, so the name always starts with '/' and is valid;
        // the fallback only guards against a future change of that format.
        StreamProtocol::try_from_owned(format!("/kvchain/{}/{what}", self.network_id))
            .unwrap_or(StreamProtocol::new("/kvchain/invalid-network-id"))
    }

    /// The block-sync request/response protocol.
    pub fn sync(&self) -> StreamProtocol {
        self.protocol("sync/1")
    }

    /// The Kademlia protocol.
    pub fn kad(&self) -> StreamProtocol {
        self.protocol("kad/1")
    }

    /// The gossipsub protocol prefix.
    pub fn gossipsub_prefix(&self) -> String {
        format!("/kvchain/{}/meshsub2", self.network_id)
    }

    /// What identify announces; peers that announce anything else are on another network.
    pub fn identify_version(&self) -> String {
        format!("/kvchain/{}/2", self.network_id)
    }

    /// Gossip topic for transactions.
    pub fn tx_topic(&self) -> String {
        format!("kvchain/{}/txs", self.network_id)
    }

    /// Gossip topic for blocks.
    pub fn block_topic(&self) -> String {
        format!("kvchain/{}/block", self.network_id)
    }
}

/// A peer's view of its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    /// Genesis hash (must equal ours).
    pub genesis: BlockHash,
    /// Tip hash.
    pub tip: BlockHash,
    /// Tip height.
    pub height: u64,
    /// Cumulative work, big-endian (CBOR has no portable 128-bit integer).
    #[serde(with = "crate::codec::fixed")]
    pub total_work: [u8; 16],
}

impl ChainStatus {
    /// Cumulative work as a number.
    pub fn work(&self) -> u128 {
        u128::from_be_bytes(self.total_work)
    }
}

/// A block-sync request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// "What is your chain?"
    Status,
    /// "Send canonical blocks after the first of these hashes you have on your chain."
    Blocks {
        /// Block locator: newest first, exponentially spaced back to genesis.
        #[serde(deserialize_with = "bounded_locator")]
        locator: Vec<BlockHash>,
        /// Most blocks wanted (capped at [`MAX_SYNC_BLOCKS`]).
        max: u32,
    },
    /// "Send the block with this hash, if you have it" (canonical or not): asked of
    /// another peer when a copy arrived whose body did not match its header.
    Block(BlockHash),
}

impl SyncRequest {
    /// Whether `response` is of the kind this request asks for.
    pub fn answered_by(&self, response: &SyncResponse) -> bool {
        matches!(
            (self, response),
            (SyncRequest::Status, SyncResponse::Status(_))
                | (SyncRequest::Blocks { .. }, SyncResponse::Blocks(_))
                | (SyncRequest::Block(_), SyncResponse::Block(_))
        )
    }
}

/// A block-sync response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// The responder's chain.
    Status(ChainStatus),
    /// Consecutive canonical blocks, oldest first; empty when there is nothing after the
    /// locator.
    Blocks(#[serde(deserialize_with = "bounded_blocks")] Vec<Block>),
    /// The block asked for by hash, or `None` if the responder does not have it.
    Block(Option<Block>),
}

/// A locator of at most [`MAX_LOCATOR`] hashes (an honest node never sends more).
fn bounded_locator<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<BlockHash>, D::Error> {
    codec::bounded_seq(d, MAX_LOCATOR)
}

/// A batch of at most [`MAX_SYNC_BLOCKS`] blocks, refused while decoding past that.
fn bounded_blocks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Block>, D::Error> {
    codec::bounded_seq(d, MAX_SYNC_BLOCKS as usize)
}

/// Length-prefixed CBOR over a libp2p stream, with the limits checked before decoding.
#[derive(Clone, Debug, Default)]
pub struct SyncCodec;

/// Reads one length-prefixed frame, refusing a length over `limit` before reading it.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes over the limit of {limit}"),
        ));
    }
    // Grow with what arrives: a length prefix is a claim, not a reason to reserve it.
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    (&mut *io).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame cut at {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

/// Writes one length-prefixed frame and closes the stream.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], limit: usize) -> io::Result<T> {
    codec::decode(bytes, limit).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncRequest> {
        decode(&read_frame(io, MAX_REQUEST_BYTES).await?, MAX_REQUEST_BYTES)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncResponse> {
        decode(
            &read_frame(io, MAX_RESPONSE_BYTES).await?,
            MAX_RESPONSE_BYTES,
        )
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
        res: SyncResponse,
    ) -> io::Result<()> {
        write_frame(io, &codec::encode(&res)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_network_id() {
        let n = Names::new("0badcafe");
        assert_eq!(n.sync().as_ref(), "/kvchain/0badcafe/sync/1");
        assert_eq!(n.kad().as_ref(), "/kvchain/0badcafe/kad/1");
        assert!(n.tx_topic().contains("0badcafe") && n.block_topic().contains("0badcafe"));
        assert_ne!(n.tx_topic(), n.block_topic());
    }

    #[test]
    fn sync_messages_round_trip() {
        let status = SyncResponse::Status(ChainStatus {
            genesis: BlockHash::digest(b"g"),
            tip: BlockHash::digest(b"t"),
            height: 7,
            total_work: (u128::MAX - 5).to_be_bytes(),
        });
        let back: SyncResponse =
            codec::decode(&codec::encode(&status), MAX_RESPONSE_BYTES).unwrap();
        assert_eq!(back, status);
        let req = SyncRequest::Blocks {
            locator: vec![BlockHash::digest(b"a")],
            max: 5,
        };
        let back: SyncRequest = codec::decode(&codec::encode(&req), MAX_REQUEST_BYTES).unwrap();
        assert_eq!(back, req);
    }
}
