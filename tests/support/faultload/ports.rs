//! Loopback ports for the cluster's nodes, chosen below the kernel's ephemeral range.
//!
//! A port the OS hands out for `bind(0)` comes from the ephemeral range, the same range
//! it draws the source ports of outgoing connections from. Between the moment a free
//! port was found and the moment its node listens on it (or while a killed node is down
//! before its restart), any running node's outgoing connection could take it: CI saw
//! `port 39677 is already in use` that way. Below that range only an explicit `bind`
//! takes a port, so a port found free there stays free for the node that owns it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const FLOOR: u32 = 10_000;
/// Ephemeral range floor assumed where `/proc` does not say (Linux's default).
const DEFAULT_EPHEMERAL_LOW: u32 = 32_768;
/// Ports tried before giving up.
const ATTEMPTS: u32 = 2_000;

/// Next candidate offset; the tests of one binary run in parallel and share it, so no
/// port is handed out twice by one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether there is room for ports between [`FLOOR`] and an ephemeral range from `low`.
fn room_below(low: u32) -> bool {
    low > FLOOR + 100
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

/// A port on 127.0.0.1, free now, below the ephemeral range, not handed out before by
/// this process. Test processes that run at the same time start at different offsets
/// (their pids), and a port some other process holds fails the bind and is skipped.
pub fn free_port() -> u16 {
    let low = ephemeral_low();
    if !room_below(low) {
        // No room below the range on this machine: fall back to asking the OS.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        return l.local_addr().expect("local addr").port();
    }
    let span = low - FLOOR;
    let base = std::process::id().wrapping_mul(7_919) % span;
    let candidates =
        (0..ATTEMPTS).map(|_| FLOOR + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % span);
    first_free(candidates, bindable)
        .unwrap_or_else(|| panic!("no free loopback port below {low} after {ATTEMPTS} tries"))
}

/// Whether a listener can bind `port` on 127.0.0.1 right now.
fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The first of `candidates` that is a port number and that `free` accepts.
fn first_free(
    candidates: impl IntoIterator<Item = u32>,
    mut free: impl FnMut(u16) -> bool,
) -> Option<u16> {
    candidates
        .into_iter()
        .filter_map(|p| u16::try_from(p).ok())
        .find(|&p| free(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Ports come from below the ephemeral range and never repeat, even while the
    /// earlier ones are not bound by anyone. (Whether a port is still free a moment
    /// later depends on every other process on the machine, so it is not asserted.)
    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let low = ephemeral_low();
        let ports: Vec<u16> = (0..64).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        if room_below(low) {
            for p in ports {
                assert!(
                    (FLOOR..low).contains(&u32::from(p)),
                    "port {p} not in {FLOOR}..{low}"
                );
            }
        }
    }

    /// A port some socket listens on is never handed out.
    #[test]
    fn a_port_someone_listens_on_is_skipped() {
        // Listeners this test holds for its whole length (a port taken by another
        // process between `free_port` and the bind here is just passed over).
        let held: Vec<TcpListener> = (0..50)
            .filter_map(|_| TcpListener::bind(("127.0.0.1", free_port())).ok())
            .take(3)
            .collect();
        assert_eq!(held.len(), 3, "could not hold three loopback ports");
        let ports: Vec<u32> = held
            .iter()
            .map(|l| u32::from(l.local_addr().expect("local addr").port()))
            .collect();
        assert_eq!(first_free(ports.clone(), bindable), None);
        assert_eq!(first_free(ports.iter().rev().copied(), bindable), None);
    }

    /// The first candidate that is a port number and passes the check is the one taken.
    #[test]
    fn the_first_acceptable_candidate_is_taken() {
        let free = |p: u16| p.is_multiple_of(2);
        assert_eq!(
            first_free([70_000, 12_001, 12_002, 12_004], free),
            Some(12_002)
        );
        assert_eq!(first_free([65_536, 12_001, 12_003], free), None);
        assert_eq!(first_free([], free), None);
    }
}
