//! The parameters of a network: its name and difficulty, from which the genesis block
//! and the network id are derived. The limits every node enforces are in
//! [`super::limits`].

use super::block::{merkle_root, Block, Header, BLOCK_VERSION};
use super::crypto::{BlockHash, Hash};
use super::limits::{MAX_DIFFICULTY, MAX_NETWORK_NAME};

/// The genesis block's timestamp: 2026-01-01T00:00:00Z in milliseconds.
pub const GENESIS_TIME_MS: u64 = 1_767_225_600_000;

/// Why a set of parameters is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    /// Difficulty above [`MAX_DIFFICULTY`].
    #[error("difficulty {0} is above the maximum of {MAX_DIFFICULTY} bits")]
    DifficultyTooHigh(u32),
    /// Empty or over-long network name.
    #[error("network name must be 1 to {MAX_NETWORK_NAME} bytes")]
    BadNetworkName,
}

/// The parameters that define a network: nodes agree on a chain only if these match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    network: String,
    difficulty: u32,
    genesis: Block,
    genesis_hash: BlockHash,
}

impl Params {
    /// Parameters for the network `network` at `difficulty` leading zero bits.
    pub fn new(network: &str, difficulty: u32) -> Result<Params, ParamsError> {
        if difficulty > MAX_DIFFICULTY {
            return Err(ParamsError::DifficultyTooHigh(difficulty));
        }
        if network.is_empty() || network.len() > MAX_NETWORK_NAME {
            return Err(ParamsError::BadNetworkName);
        }
        // The genesis commits to the network name (in its parent field) and to the
        // difficulty, so that nodes with different parameters have different genesis
        // hashes and never accept each other's blocks. It needs no proof of work: every
        // node derives it instead of receiving it.
        let mut seed = b"kvchain genesis\0".to_vec();
        seed.extend_from_slice(network.as_bytes());
        let header = Header {
            version: BLOCK_VERSION,
            height: 0,
            prev: Hash::digest(&seed),
            merkle: merkle_root(&[]),
            time: GENESIS_TIME_MS,
            bits: difficulty,
            nonce: 0,
        };
        let genesis = Block {
            header,
            txs: Vec::new(),
        };
        Ok(Params {
            network: network.to_string(),
            difficulty,
            genesis_hash: header.hash(),
            genesis,
        })
    }

    /// The network's name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Required leading zero bits of every block hash.
    pub fn difficulty(&self) -> u32 {
        self.difficulty
    }

    /// The genesis block.
    pub fn genesis(&self) -> &Block {
        &self.genesis
    }

    /// The genesis block's hash.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis_hash
    }

    /// The network id: the first 8 hex digits of the genesis hash.
    pub fn network_id(&self) -> String {
        self.genesis_hash.short()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_depends_on_name_and_difficulty() {
        let a = Params::new("lan", 16).unwrap();
        assert_eq!(
            a.genesis_hash(),
            Params::new("lan", 16).unwrap().genesis_hash()
        );
        assert_ne!(a.network_id(), Params::new("lan", 17).unwrap().network_id());
        assert_ne!(a.network_id(), Params::new("lab", 16).unwrap().network_id());
        assert_eq!(a.network_id().len(), 8);
    }

    #[test]
    fn rejects_bad_params() {
        assert_eq!(
            Params::new("x", 65).unwrap_err(),
            ParamsError::DifficultyTooHigh(65)
        );
        assert_eq!(Params::new("", 1).unwrap_err(), ParamsError::BadNetworkName);
    }
}
