//! The seeded workload: client threads doing puts, deletes and reads over HTTP against
//! every node, each write with a value no other request ever uses (`c{client}-{seq}-{seed}`,
//! padded), so that any value found in a chain names the request that wrote it. A client
//! whose node does not answer moves on to the next node (with a new value: a retry must
//! not be mistaken for a duplicate). Every request and its outcome go to a shared
//! [`History`], dumped to a file when a check fails.

use super::cluster::Endpoints;
use super::{key_path, Answer, NetError, Rng};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `PUT /kvs/{key}` with `value`.
    Put { key: String, value: String },
    /// `DELETE /kvs/{key}`.
    Del { key: String },
    /// `GET /kvs/{key}`.
    Get { key: String },
}

impl Op {
    /// The key the request is about.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Del { key } | Op::Get { key } => key,
        }
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A node answered that the write is confirmed, in the block at `height`.
    Confirmed { tx: String, height: u64 },
    /// A node accepted the write but did not (yet) say confirmed (`pending`, `included`).
    Accepted { tx: String, status: String },
    /// A read found `value` (`None`: no value).
    Read(Option<String>),
    /// Any other HTTP answer (e.g. 504: the write stays pending and may still land).
    Answered { status: u16, body: String },
    /// No answer: the write may or may not have taken effect.
    Net(NetError),
}

/// One request and its answer.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Client number (scenarios use their own, above the workload's).
    pub client: usize,
    /// The node asked.
    pub node: usize,
    /// The request.
    pub op: Op,
    /// Its outcome.
    pub outcome: Outcome,
    /// Milliseconds since the history began, at the request and at its end.
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Every request of a run, shared by the clients and the scenario.
#[derive(Clone, Default)]
pub struct History {
    entries: Arc<Mutex<Vec<Entry>>>,
    began: Arc<Mutex<Option<Instant>>>,
}

impl History {
    /// Milliseconds since the first call.
    pub fn now_ms(&self) -> u64 {
        let mut began = self.began.lock().unwrap();
        began.get_or_insert_with(Instant::now).elapsed().as_millis() as u64
    }

    /// Adds an entry.
    pub fn record(&self, e: Entry) {
        self.entries.lock().unwrap().push(e);
    }

    /// A copy of every entry so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    /// Writes every entry, one a line, to `path`.
    pub fn dump(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for e in self.entries.lock().unwrap().iter() {
            writeln!(f, "{e:?}")?;
        }
        f.flush()
    }
}

/// Outcome of a write from its HTTP answer (or its absence).
pub fn write_outcome(answer: Result<Answer, NetError>) -> Outcome {
    let a = match answer {
        Ok(a) => a,
        Err(e) => return Outcome::Net(e),
    };
    let j = a.json();
    let tx = j["tx"].as_str().unwrap_or_default().to_string();
    match (a.status, j["status"].as_str()) {
        (200, Some("confirmed")) => Outcome::Confirmed {
            tx,
            height: j["height"].as_u64().unwrap_or(0),
        },
        (200 | 202, Some(s)) => Outcome::Accepted {
            tx,
            status: s.to_string(),
        },
        (status, _) => Outcome::Answered {
            status,
            body: a.body,
        },
    }
}

/// What the clients do.
#[derive(Clone, Debug)]
pub struct Config {
    /// Client threads.
    pub clients: usize,
    /// Keys `k0..kN`, shared by all clients so that versions of a key interleave.
    pub keys: usize,
    /// Values are padded with `.` to this many bytes (at least their unique prefix).
    pub value_bytes: usize,
    /// `?wait=confirmed&timeout=` of every write.
    pub confirm_timeout: Duration,
    /// One op in this many is a delete, one in `read_every` a read.
    pub del_every: u64,
    pub read_every: u64,
    /// Pause between two requests of a client.
    pub pause: Duration,
    /// Most requests per client.
    pub max_ops: usize,
    /// One write in this many is sent without `?wait` (answered 202); 0: never.
    pub no_wait_every: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            clients: 3,
            keys: 6,
            value_bytes: 0,
            confirm_timeout: Duration::from_secs(20),
            del_every: 7,
            read_every: 4,
            pause: Duration::from_millis(50),
            max_ops: 400,
            no_wait_every: 0,
        }
    }
}

/// Running client threads; [`Workload::stop`] ends them, and so does dropping it.
pub struct Workload {
    /// What every client did.
    pub history: History,
    stop: Arc<AtomicBool>,
    confirmed: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts `cfg.clients` clients against `eps`, client `c` starting on node `c % n`.
    pub fn start(eps: &Endpoints, seed: u64, cfg: Config) -> Workload {
        let history = History::default();
        history.now_ms();
        let stop = Arc::new(AtomicBool::new(false));
        let confirmed = Arc::new(AtomicUsize::new(0));
        let threads = (0..cfg.clients)
            .map(|c| {
                let client = Client {
                    id: c,
                    node: c % eps.len(),
                    seq: 0,
                    rng: Rng::new(seed, c as u64 + 1),
                    seed,
                    eps: eps.clone(),
                    cfg: cfg.clone(),
                    history: history.clone(),
                    confirmed: confirmed.clone(),
                };
                let stop = stop.clone();
                std::thread::spawn(move || client.run(&stop))
            })
            .collect();
        Workload {
            history,
            stop,
            confirmed,
            threads,
        }
    }

    /// Writes acknowledged as confirmed so far.
    pub fn confirmed(&self) -> usize {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more writes are confirmed than now, for at most `limit`;
    /// whether they were.
    pub fn wait_confirmed(&self, n: usize, limit: Duration) -> bool {
        let goal = self.confirmed() + n;
        super::poll_until(limit, || {
            (self.confirmed() >= goal)
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        })
        .is_ok()
    }

    /// Stops the clients (each finishes its request in flight) and returns the history.
    pub fn stop(mut self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        self.history.clone()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        // A panicking scenario must not leave clients running: each ends its request in
        // flight (bounded by its timeout) and stops.
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Client {
    id: usize,
    node: usize,
    seq: u64,
    rng: Rng,
    seed: u64,
    eps: Endpoints,
    cfg: Config,
    history: History,
    confirmed: Arc<AtomicUsize>,
}

impl Client {
    fn run(mut self, stop: &AtomicBool) {
        for _ in 0..self.cfg.max_ops {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            self.one();
            std::thread::sleep(self.cfg.pause);
        }
    }

    fn one(&mut self) {
        self.seq += 1;
        let key = format!("k{}", self.rng.below(self.cfg.keys as u64));
        let roll = self.rng.next_u64();
        let op = if roll.is_multiple_of(self.cfg.read_every) {
            Op::Get { key }
        } else if roll % self.cfg.del_every == 1 {
            Op::Del { key }
        } else {
            let mut value = format!("c{}-{}-{}", self.id, self.seq, self.seed);
            while value.len() < self.cfg.value_bytes {
                value.push('.');
            }
            Op::Put { key, value }
        };
        let node = self.node;
        let start_ms = self.history.now_ms();
        let outcome = self.send(&op);
        if matches!(outcome, Outcome::Confirmed { .. }) {
            self.confirmed.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(outcome, Outcome::Net(_)) {
            // Its node is down or unreachable: the next request goes to the next node.
            self.node = (self.node + 1) % self.eps.len();
        }
        self.history.record(Entry {
            client: self.id,
            node,
            op,
            outcome,
            start_ms,
            end_ms: self.history.now_ms(),
        });
    }

    fn send(&mut self, op: &Op) -> Outcome {
        let secs = self.cfg.confirm_timeout.as_secs_f64();
        let every = self.cfg.no_wait_every;
        let wait = if every > 0 && self.rng.below(every) == 0 {
            String::new()
        } else {
            format!("?wait=confirmed&timeout={secs}s")
        };
        let answer_within = self.cfg.confirm_timeout + Duration::from_secs(10);
        let path = format!("/kvs/{}", key_path(op.key()));
        match op {
            Op::Put { value, .. } => write_outcome(self.eps.request(
                self.node,
                "PUT",
                &format!("{path}{wait}"),
                value.as_bytes(),
                answer_within,
            )),
            Op::Del { .. } => write_outcome(self.eps.request(
                self.node,
                "DELETE",
                &format!("{path}{wait}"),
                b"",
                answer_within,
            )),
            Op::Get { .. } => {
                match self
                    .eps
                    .request(self.node, "GET", &path, b"", Duration::from_secs(10))
                {
                    Ok(a) if a.status == 200 => Outcome::Read(Some(a.body)),
                    Ok(a) if a.status == 404 => Outcome::Read(None),
                    Ok(a) => Outcome::Answered {
                        status: a.status,
                        body: a.body,
                    },
                    Err(e) => Outcome::Net(e),
                }
            }
        }
    }
}
