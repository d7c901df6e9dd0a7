//! Gossip the node published while no peer listened on its topic, kept to publish again
//! when one subscribes. Bounded in messages and in bytes; a node alone (or cut off) drops
//! the oldest, says so once when it starts and once when gossip flows again, instead of
//! a warning per message (a hundred a second under load).

use libp2p::gossipsub::TopicHash;
use std::collections::VecDeque;

/// Most messages kept.
const MAX_MESSAGES: usize = 1024;
/// Most bytes kept (a tx batch may be 256 KiB: 1,024 of them would be 256 MiB).
const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Messages waiting for a listener, oldest first.
#[derive(Debug, Default)]
pub(super) struct Unsent {
    queue: VecDeque<(TopicHash, Vec<u8>)>,
    bytes: usize,
    /// Messages dropped since the queue last emptied.
    dropped: u64,
}

impl Unsent {
    /// Keeps `bytes` for `topic`. With `newest_only`, earlier messages of that topic go
    /// (of blocks only the newest is worth sending: a peer fetches its ancestors by sync).
    pub(super) fn hold(&mut self, topic: TopicHash, bytes: Vec<u8>, newest_only: bool) {
        if newest_only {
            let before = self.queue.len();
            self.queue.retain(|(t, _)| *t != topic);
            if self.queue.len() != before {
                self.bytes = self.queue.iter().map(|(_, b)| b.len()).sum();
            }
        }
        self.bytes += bytes.len();
        self.queue.push_back((topic, bytes));
        while self.queue.len() > MAX_MESSAGES || (self.bytes > MAX_BYTES && self.queue.len() > 1) {
            let Some((_, old)) = self.queue.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            if self.dropped == 0 {
                tracing::warn!(
                    "no peer takes our gossip; keeping the newest {} messages and dropping older ones",
                    self.queue.len()
                );
            }
            self.dropped += 1;
        }
    }

    /// Takes every message of `topic`, to publish again.
    pub(super) fn take(&mut self, topic: &TopicHash) -> VecDeque<(TopicHash, Vec<u8>)> {
        let (take, keep): (VecDeque<_>, VecDeque<_>) =
            self.queue.drain(..).partition(|(t, _)| t == topic);
        self.queue = keep;
        self.bytes = self.queue.iter().map(|(_, b)| b.len()).sum();
        if self.queue.is_empty() && self.dropped > 0 {
            tracing::info!(
                dropped = self.dropped,
                "a peer takes our gossip again; older messages were dropped meanwhile"
            );
            self.dropped = 0;
        }
        take
    }

    /// Messages kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicHash {
        TopicHash::from_raw(name)
    }

    #[test]
    fn it_keeps_at_most_the_newest_messages() {
        let mut u = Unsent::default();
        for i in 0..MAX_MESSAGES + 10 {
            u.hold(topic("txs"), i.to_le_bytes().to_vec(), false);
        }
        assert_eq!(u.len(), MAX_MESSAGES);
        assert_eq!(u.dropped, 10);
        let kept = u.take(&topic("txs"));
        assert_eq!(
            kept[0].1,
            10usize.to_le_bytes().to_vec(),
            "the oldest went first"
        );
        assert_eq!(u.dropped, 0, "an empty queue starts a new episode");
    }

    #[test]
    fn it_keeps_at_most_its_bytes() {
        let mut u = Unsent::default();
        let big = 256 * 1024;
        for _ in 0..200 {
            u.hold(topic("txs"), vec![0; big], false);
        }
        assert_eq!(u.len(), MAX_BYTES / big);
        assert!(u.bytes <= MAX_BYTES);
        // A message larger than the bound alone is still kept: the newest always is.
        u.hold(topic("txs"), vec![0; MAX_BYTES + 1], false);
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn of_a_newest_only_topic_one_message_stays() {
        let mut u = Unsent::default();
        u.hold(topic("block"), vec![1], true);
        u.hold(topic("txs"), vec![2], false);
        u.hold(topic("block"), vec![3], true);
        assert_eq!(u.take(&topic("block")), vec![(topic("block"), vec![3])]);
        assert_eq!(u.take(&topic("txs")), vec![(topic("txs"), vec![2])]);
        assert_eq!(u.bytes, 0);
    }
}
