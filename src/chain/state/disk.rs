//! The chain on disk: opening a data dir (reading the block log, cutting a damaged
//! tail, replaying the blocks into the tree) and writing a branch to the log before it
//! becomes canonical.

use super::{Chain, BLOCK_LOG};
use crate::chain::block::Block;
use crate::chain::crypto::BlockHash;
use crate::chain::errors::OpenError;
use crate::chain::log::{FrameLog, Recovery};
use crate::chain::params::Params;
use crate::chain::side::Admission;
use crate::chain::validate::BlockError;
use crate::codec::{self, MAX_MESSAGE_BYTES};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Names the block-log format in the log's first frame.
const LOG_MAGIC: &str = "kvchain-blocks-v1";

/// First frame of a block log: which network the blocks belong to.
#[derive(Serialize, Deserialize)]
struct LogHeader {
    magic: String,
    genesis: BlockHash,
}

impl Chain {
    /// Opens the chain stored in `dir`: reads the block log, cuts a damaged tail, rebuilds
    /// the tree, picks the best chain and folds the index from it.
    pub fn open(params: Params, dir: &Path) -> Result<(Chain, Option<Recovery>), OpenError> {
        let path = dir.join(BLOCK_LOG);
        let io = |source| OpenError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let (mut log, frames, recovery) = FrameLog::open(&path).map_err(io)?;
        let mut chain = Chain::new(params);
        let mut frames = frames.into_iter();
        match frames.next() {
            None => {
                let header = LogHeader {
                    magic: LOG_MAGIC.into(),
                    genesis: chain.params.genesis_hash(),
                };
                log.append(&codec::encode(&header)).map_err(io)?;
            }
            Some(first) => {
                let header: Option<LogHeader> = codec::decode(&first, 1024).ok();
                match header {
                    Some(h) if h.magic == LOG_MAGIC && h.genesis == chain.params.genesis_hash() => {
                    }
                    other => {
                        return Err(OpenError::WrongNetwork {
                            found: other.map_or("unreadable".into(), |h| h.genesis.to_hex()),
                            expected: chain.params.genesis_hash().to_hex(),
                        })
                    }
                }
            }
        }
        let mut loaded = 0usize;
        for frame in frames {
            let block: Block = match codec::decode(&frame, MAX_MESSAGE_BYTES) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping undecodable block in the log");
                    continue;
                }
            };
            // Blocks in our own log passed every check when they were written, and the
            // frame checksum guards the bytes: skip the signature checks and the clock.
            match chain.accept_block(block, true, Admission::Any) {
                Ok(_) => loaded += 1,
                Err(e) => tracing::warn!(error = %e, "skipping a block in the log"),
            }
        }
        chain.log = Some(log);
        tracing::info!(
            blocks = loaded,
            height = chain.height(),
            tip = %chain.tip_hash(),
            "block log loaded"
        );
        Ok((chain, recovery))
    }

    /// Writes the blocks of the branch to `tip` that are not in the log yet, oldest
    /// first, before they become canonical. The fsync is left to the caller (the node's
    /// [`crate::chain::log_sync::LogSyncer`]): each write bumps [`Chain::log_generation`].
    pub(super) fn write_branch(&mut self, tip: &BlockHash) -> Result<(), BlockError> {
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        let (_, branch) = self.tree.branch_to(tip);
        for hash in branch {
            if !self.unlogged.contains(&hash) {
                continue;
            }
            if let Some(entry) = self.tree.get(&hash) {
                log.append_all(&[&codec::encode(&*entry.block)], false)
                    .map_err(|e| BlockError::Storage(e.to_string()))?;
                self.log_generation += 1;
            }
            self.unlogged.remove(&hash);
        }
        Ok(())
    }

    /// How many block writes the log has had: an fsync that started after the
    /// generation was read covers every block written up to it.
    pub fn log_generation(&self) -> u64 {
        self.log_generation
    }

    /// A handle to fsync the block log from another thread; `None` in memory.
    pub fn log_sync_handle(&self) -> Option<std::io::Result<std::fs::File>> {
        self.log.as_ref().map(FrameLog::sync_handle)
    }
}
