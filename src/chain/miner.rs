//! The miner: solves block templates on N OS threads and drops stale work quickly.
//!
//! Each thread searches its own slice of the nonce space in chunks, checking a generation
//! counter between chunks; [`Miner::set_work`] bumps the counter, so a tip or template
//! change stops the old search within one chunk (a fraction of a millisecond).
//!
//! Miner threads run at a lower CPU priority than the rest of the node (Linux's
//! `SCHED_IDLE` by default, or a nice value: [`priority`], `kvchain node
//! --miner-priority`): when the machine is busy, the node validates, gossips and answers
//! its API first and mines with what is left; on an idle machine the priority changes
//! nothing.
//!
//! A miner may be capped to a hashrate (`kvchain node --max-hashrate`, for experiments
//! that give nodes chosen shares of the hashrate on one machine): its threads then share
//! one token bucket ([`pace`]) and search shorter chunks.

use super::block::Block;
use super::pow::Midstate;
use pace::Pace;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

pub mod pace;
pub mod priority;

pub use priority::MinerPriority;

/// Nonces tried between two checks for new work.
const CHUNK: u64 = 4096;

struct Job {
    generation: u64,
    template: Block,
}

#[derive(Default)]
struct State {
    job: Option<Arc<Job>>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    generation: AtomicU64,
    hashes: AtomicU64,
    /// The hashrate cap with its bucket and the time it counts from, if capped.
    cap: Option<(NonZeroU64, Mutex<Pace>, Instant)>,
}

/// How a miner runs: its threads, an optional hashrate cap and their CPU priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinerOptions {
    /// Mining threads (one at least runs).
    pub threads: usize,
    /// Most nonces a second all threads together try (`None`: as fast as they can).
    pub cap: Option<NonZeroU64>,
    /// The threads' CPU priority; Linux only.
    pub priority: MinerPriority,
}

impl MinerOptions {
    /// `threads` threads, uncapped, at the node's own priority.
    pub fn threads(threads: usize) -> MinerOptions {
        MinerOptions {
            threads,
            cap: None,
            priority: MinerPriority::Nice(0),
        }
    }
}

/// A running miner. Found blocks go to the callback given to [`Miner::start`].
pub struct Miner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Miner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Miner({} threads)", self.threads.len())
    }
}

impl Miner {
    /// Starts `threads` idle mining threads at normal priority; `found` receives each
    /// solved block.
    pub fn start(threads: usize, found: impl Fn(Block) + Send + Sync + 'static) -> Miner {
        Miner::start_with(MinerOptions::threads(threads), found)
    }

    /// Like [`Miner::start`], with the threads, cap and priority of `options`.
    pub fn start_with(
        options: MinerOptions,
        found: impl Fn(Block) + Send + Sync + 'static,
    ) -> Miner {
        let MinerOptions {
            threads,
            cap,
            priority,
        } = options;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            cap: cap.map(|c| (c, Mutex::new(Pace::default()), Instant::now())),
        });
        let found = Arc::new(found);
        let n = threads.max(1) as u64;
        let threads = (0..n)
            .map(|t| {
                let shared = shared.clone();
                let found = found.clone();
                std::thread::Builder::new()
                    .name(format!("miner-{t}"))
                    .spawn(move || {
                        priority::apply(priority);
                        run(&shared, t * (u64::MAX / n), &*found)
                    })
            })
            .filter_map(|r| match r {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "could not start a miner thread");
                    None
                }
            })
            .collect();
        Miner { shared, threads }
    }

    /// Replaces the current work: mine `template`, or stop mining with `None`.
    pub fn set_work(&self, template: Option<Block>) {
        let mut state = lock(&self.shared.state);
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        state.job = template.map(|template| {
            Arc::new(Job {
                generation,
                template,
            })
        });
        self.shared.wake.notify_all();
    }

    /// Total nonces tried since start.
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }

    /// Number of mining threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// With a cap: waits until `chunk` more hashes are within it.
fn wait_for_budget(shared: &Shared, chunk: u64) {
    if let Some((cap, bucket, since)) = &shared.cap {
        let wait = lock(bucket).take(since.elapsed(), chunk, *cap);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

fn run(shared: &Shared, base: u64, found: &(dyn Fn(Block) + Send + Sync)) {
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if state.stop {
                    return;
                }
                let current = shared.generation.load(Ordering::SeqCst);
                if let Some(job) = state.job.as_ref().filter(|j| j.generation == current) {
                    break job.clone();
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let header = job.template.header;
        let mut mid = Midstate::new(&header);
        // Start at a random point of this thread's slice so that nodes mining the same
        // template do not repeat each other's work.
        let mut nonce =
            base.wrapping_add(rand_core::RngCore::next_u32(&mut rand_core::OsRng) as u64 * CHUNK);
        let chunk = pace::chunk_for(shared.cap.as_ref().map(|c| c.0), CHUNK);
        while shared.generation.load(Ordering::Relaxed) == job.generation {
            wait_for_budget(shared, chunk);
            if shared.generation.load(Ordering::Relaxed) != job.generation {
                break; // new work came while this thread waited
            }
            let hit = mid.search(header.bits, nonce, chunk);
            shared.hashes.fetch_add(chunk, Ordering::Relaxed);
            if let Some(winning) = hit {
                // Only the first thread to solve this job reports it.
                let claimed = shared
                    .generation
                    .compare_exchange(
                        job.generation,
                        job.generation + 1,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok();
                if claimed {
                    let mut block = job.template.clone();
                    block.header.nonce = winning;
                    found(block);
                }
                break;
            }
            nonce = nonce.wrapping_add(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{pow, Chain, Params};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn mines_valid_blocks_and_switches_work() {
        let mut chain = Chain::new(Params::new("miner-test", 10).unwrap());
        let (tx, rx) = mpsc::channel();
        let miner = Miner::start(2, move |b| {
            let _ = tx.send(b);
        });
        for _ in 0..3 {
            miner.set_work(Some(chain.template()));
            let block = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("a block within 30 s");
            assert!(pow::meets(&block.hash(), 10));
            chain.process_block(block).unwrap();
        }
        assert_eq!(chain.height(), 3);
        miner.set_work(None);
        assert!(miner.hashes() > 0);
    }

    #[test]
    fn a_capped_miner_mines_valid_blocks_in_short_chunks() {
        let mut chain = Chain::new(Params::new("miner-test", 8).unwrap());
        let (tx, rx) = mpsc::channel();
        let cap = NonZeroU64::new(1_000_000);
        let options = MinerOptions {
            threads: 2,
            cap,
            priority: MinerPriority::Nice(0),
        };
        let miner = Miner::start_with(options, move |b| {
            let _ = tx.send(b);
        });
        for _ in 0..2 {
            miner.set_work(Some(chain.template()));
            let block = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("a block within 30 s");
            assert!(pow::meets(&block.hash(), 8));
            chain.process_block(block).unwrap();
        }
        miner.set_work(None);
        // Hashes are counted in chunks of 5 ms at the cap.
        assert_eq!(miner.hashes() % pace::chunk_for(cap, CHUNK), 0);
    }

    /// The nice values of this process's threads named `miner-*`.
    #[cfg(target_os = "linux")]
    fn miner_nice_values() -> Vec<i64> {
        let mut out = Vec::new();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return out;
        };
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Field 19 is the nice value.
            if stat.contains("(miner-") {
                out.extend(priority::stat_field(&stat, 19));
            }
        }
        out
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn miner_threads_run_at_the_nice_value_asked_for() {
        // 7: no other test starts a miner at this priority.
        let options = MinerOptions {
            threads: 2,
            cap: None,
            priority: MinerPriority::Nice(7),
        };
        let miner = Miner::start_with(options, |_| {});
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let count = || miner_nice_values().iter().filter(|&&n| n == 7).count();
        while count() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            count(),
            2,
            "nice values of miner threads: {:?}",
            miner_nice_values()
        );
        drop(miner);
    }
}
