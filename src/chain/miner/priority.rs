//! The CPU priority of mining threads: what `kvchain node --miner-priority` sets.
//!
//! Mining is the node's background work: it should use CPU time the node's validation,
//! gossip and API do not want, and give it back the moment they wake. Linux's
//! `SCHED_IDLE` policy (the default here) does exactly that: a thread of any other policy
//! that wakes takes the CPU from an idle-policy thread at once. A nice value only lowers
//! the miner's share: a niced miner that holds the CPU keeps it for its time slice while
//! the node's threads wait, which on a busy machine delays every message the node
//! handles. Measured on 2 cores, one node at full load, five alternating pairs: at nice
//! 10 it accepted 7% to 19% fewer writes than under `SCHED_IDLE` in four pairs, and 7%
//! more in one; its miner took 11 us of CPU per write against 4.
//!
//! Off Linux the threads run at the node's priority.

use std::fmt;
use std::str::FromStr;

/// How mining threads are scheduled against the rest of the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinerPriority {
    /// Linux's `SCHED_IDLE`: only CPU time nothing else asks for (the default).
    #[default]
    Idle,
    /// A nice value, 0 (the node's own priority) to 19 (the lowest).
    Nice(u8),
}

impl MinerPriority {
    /// The highest nice value (the lowest priority) Linux has.
    pub const MAX_NICE: u8 = 19;
}

impl fmt::Display for MinerPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinerPriority::Idle => f.write_str("idle"),
            MinerPriority::Nice(n) => write!(f, "{n}"),
        }
    }
}

/// Why a miner priority could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("miner priority {0:?}: expected `idle` or a nice value from 0 to 19")]
pub struct BadPriority(String);

impl FromStr for MinerPriority {
    type Err = BadPriority;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "idle" {
            return Ok(MinerPriority::Idle);
        }
        match s.parse::<u8>() {
            Ok(n) if n <= MinerPriority::MAX_NICE => Ok(MinerPriority::Nice(n)),
            _ => Err(BadPriority(s.to_string())),
        }
    }
}

/// Gives the calling thread (this thread alone) `priority`; `Nice(0)` leaves it as it
/// is. A failure only costs the node some of its CPU to its miner, so it is logged.
pub(super) fn apply(priority: MinerPriority) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: system calls on the calling thread that take plain integers or a
        // reference to a local `sched_param` the kernel only reads during the call.
        let failed = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
            match priority {
                MinerPriority::Nice(0) => false,
                MinerPriority::Nice(n) => {
                    let nice = libc::c_int::from(n.min(MinerPriority::MAX_NICE));
                    libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0
                }
                MinerPriority::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) != 0
                }
            }
        };
        if failed {
            tracing::debug!(%priority, "could not lower a miner thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// Field `field` (numbered from 1, as in proc(5)) of a thread's `/proc/.../stat` line, if
/// it is a number: `(comm)` may hold spaces, so fields are counted after its `)`.
#[cfg(all(test, target_os = "linux"))]
pub(super) fn stat_field(stat: &str, field: usize) -> Option<i64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // The fields after the comm start at field 3.
    rest.split_whitespace()
        .nth(field.checked_sub(3)?)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_read_and_print_alike() {
        for (text, priority) in [
            ("idle", MinerPriority::Idle),
            ("0", MinerPriority::Nice(0)),
            ("10", MinerPriority::Nice(10)),
            ("19", MinerPriority::Nice(19)),
        ] {
            assert_eq!(text.parse::<MinerPriority>(), Ok(priority));
            assert_eq!(priority.to_string(), text);
        }
        for bad in ["20", "-1", "", "IDLE", "nice"] {
            assert!(bad.parse::<MinerPriority>().is_err(), "{bad:?} was taken");
        }
        assert_eq!(MinerPriority::default(), MinerPriority::Idle);
    }

    /// This thread's scheduling policy (field 41) and nice value (field 19).
    #[cfg(target_os = "linux")]
    fn policy_and_nice() -> (i64, i64) {
        let read = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
            Some((stat_field(&stat, 41)?, stat_field(&stat, 19)?))
        };
        // Test code: Linux always has this file in this format; if not, the test fails.
        read().expect("policy and nice value in /proc/thread-self/stat")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_gets_the_policy_or_nice_value_asked_for() {
        let on_a_thread = |p: MinerPriority| {
            std::thread::spawn(move || {
                apply(p);
                policy_and_nice()
            })
            .join()
            // Test code: re-raises a failure on that thread.
            .expect("the thread reads its own priority")
        };
        let before = policy_and_nice();
        assert_eq!(
            on_a_thread(MinerPriority::Idle).0,
            i64::from(libc::SCHED_IDLE)
        );
        // A thread starts with its parent's policy; the nice value is the one asked for.
        assert_eq!(on_a_thread(MinerPriority::Nice(7)), (before.0, 7));
        // The calling thread alone changes: the test's own thread is as it was.
        assert_eq!(policy_and_nice(), before);
    }
}
