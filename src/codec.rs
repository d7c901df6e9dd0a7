//! The one place that turns bytes into values: CBOR (serde_cbor) with size limits checked
//! before decoding, plus serde helpers for fixed-size byte arrays.
//!
//! Every byte string that reaches the node from a peer, a file or a user is decoded here.
//! Decoding never panics: arbitrary input yields a value or a [`CodecError`], and input
//! over the caller's limit is refused before any parsing starts.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest message (a full block plus framing) that any decoder accepts.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input is larger than the limit for its kind of message.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit that applied.
        limit: usize,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes a value as packed CBOR (struct fields by index, not name).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own types into a Vec cannot fail: they have no maps with non-string
    // keys and no custom serializers that error. Fall back to an empty vector if a future
    // type ever does, which every decoder rejects, rather than panic.
    serde_cbor::ser::to_vec_packed(value).unwrap_or_default()
}

/// Decodes a value, refusing input longer than `limit` before looking at it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    serde_cbor::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// Decodes a sequence of at most `max` items, refusing the next one as it goes and
/// reserving little up front: a declared length is a claim, not an allocation.
pub fn bounded_seq<'de, D, T>(d: D, max: usize) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct V<T> {
        max: usize,
        item: std::marker::PhantomData<T>,
    }
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "at most {} items", self.max)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(64));
            while let Some(item) = seq.next_element()? {
                if out.len() == self.max {
                    return Err(serde::de::Error::invalid_length(self.max + 1, &self));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V {
        max,
        item: std::marker::PhantomData,
    })
}

/// Serde helpers for `[u8; N]` as a CBOR byte string of exactly N bytes.
pub mod fixed {
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Serializes a fixed-size array as a byte string.
    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes a byte string that must be exactly N bytes long.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> Visitor<'_> for V<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a byte string of {N} bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        #[serde(with = "fixed")]
        h: [u8; 4],
        n: u64,
    }

    #[test]
    fn round_trips_and_refuses_oversized_input() {
        let s = Sample {
            h: [1, 2, 3, 4],
            n: 7,
        };
        let bytes = encode(&s);
        assert_eq!(decode::<Sample>(&bytes, 64).unwrap(), s);
        assert!(matches!(
            decode::<Sample>(&bytes, 3),
            Err(CodecError::TooLarge { limit: 3, .. })
        ));
    }

    #[test]
    fn fixed_rejects_wrong_length() {
        #[derive(serde::Serialize)]
        struct Short {
            #[serde(with = "serde_bytes")]
            h: Vec<u8>,
            n: u64,
        }
        let bytes = encode(&Short {
            h: vec![1, 2, 3],
            n: 7,
        });
        assert!(matches!(
            decode::<Sample>(&bytes, 64),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&Sample { h: [0; 4], n: 1 });
        bytes.push(0);
        assert!(decode::<Sample>(&bytes, 64).is_err());
    }
}
