//! The end-of-run checker. It waits (polled, bounded) until every node shows one tip and
//! one index digest with no write waiting in its mempool, reads every key's history from every node, and verifies that:
//! every write a node acknowledged as confirmed is in that key's history on every node (a
//! confirmed delete as a tombstone carrying its tx id); no value appears that no client
//! wrote to that key, and no more tombstones than deletes were sent; no tx or value
//! appears twice; every node lists each key's versions in one shared order. It prints
//! `writes: confirmed N, lost L, nodes agreeing k/n` and fails the test, naming the seed
//! and the dumped history, on any violation.

use super::cluster::Endpoints;
use super::workload::{Entry, History, Op, Outcome};
use super::{key_path, poll_until};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// One version of a key as `GET /kvs/{key}/history` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The value (`None`: a tombstone).
    pub value: Option<String>,
    /// The write's tx id.
    pub tx: String,
    /// Height of its block.
    pub height: u64,
}

/// What one node shows at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Tip hash and index digest.
    pub tip: String,
    pub digest: String,
    /// Each key's versions, in the node's order.
    pub keys: BTreeMap<String, Vec<Row>>,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Writes acknowledged as confirmed.
    pub confirmed: usize,
    /// Confirmed writes missing from some node, described.
    pub lost: Vec<String>,
    /// Every other violation, described.
    pub errors: Vec<String>,
    /// Nodes sharing the most common (tip, digest), and all nodes.
    pub agreeing: usize,
    pub nodes: usize,
}

impl Verdict {
    /// The summary line every scenario prints.
    pub fn line(&self) -> String {
        format!(
            "writes: confirmed {}, lost {}, nodes agreeing {}/{}",
            self.confirmed,
            self.lost.len(),
            self.agreeing,
            self.nodes
        )
    }

    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.errors.is_empty() && self.agreeing == self.nodes
    }
}

/// Checks the end state `views` (one per node) against the requests in `entries`.
pub fn check(entries: &[Entry], views: &[NodeView]) -> Verdict {
    let mut v = Verdict {
        nodes: views.len(),
        ..Verdict::default()
    };
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    for view in views {
        *counts.entry((&view.tip, &view.digest)).or_default() += 1;
    }
    v.agreeing = counts.values().copied().max().unwrap_or(0);
    // What was ever sent, acknowledged or not: only these may appear.
    let mut written: HashSet<(&str, &str)> = HashSet::new();
    let mut deletes: HashMap<&str, usize> = HashMap::new();
    for e in entries {
        match &e.op {
            Op::Put { key, value } => {
                written.insert((key, value));
            }
            Op::Del { key } => *deletes.entry(key).or_default() += 1,
            Op::Get { .. } => {}
        }
    }
    for e in entries {
        let Outcome::Confirmed { tx, .. } = &e.outcome else {
            if let (Op::Get { key }, Outcome::Read(Some(value))) = (&e.op, &e.outcome) {
                if !written.contains(&(key.as_str(), value.as_str())) {
                    v.errors.push(format!(
                        "a read of {key} on node {} got {value:?}, which no client wrote there",
                        e.node
                    ));
                }
            }
            continue;
        };
        v.confirmed += 1;
        let key = e.op.key();
        let missing: Vec<usize> = (0..views.len())
            .filter(|&n| {
                let rows = views[n].keys.get(key).map_or(&[][..], Vec::as_slice);
                !rows.iter().any(|r| match &e.op {
                    Op::Put { value, .. } => r.value.as_ref() == Some(value),
                    _ => r.value.is_none() && &r.tx == tx,
                })
            })
            .collect();
        if !missing.is_empty() {
            v.lost.push(format!(
                "{:?} (tx {tx}, confirmed by node {}) is missing on nodes {missing:?}",
                e.op, e.node
            ));
        }
    }
    for (n, view) in views.iter().enumerate() {
        for (key, rows) in &view.keys {
            let (mut txs, mut values, mut tombstones) = (HashSet::new(), HashSet::new(), 0);
            for r in rows {
                if !txs.insert(&r.tx) {
                    v.errors
                        .push(format!("node {n}: tx {} appears twice in {key}", r.tx));
                }
                match &r.value {
                    None => tombstones += 1,
                    Some(value) => {
                        if !written.contains(&(key.as_str(), value.as_str())) {
                            v.errors.push(format!(
                                "node {n}: {key} holds {value:?}, which no client wrote there"
                            ));
                        }
                        if !values.insert(value) {
                            v.errors
                                .push(format!("node {n}: {value:?} appears twice in {key}"));
                        }
                    }
                }
            }
            let sent = deletes.get(key.as_str()).copied().unwrap_or(0);
            if tombstones > sent {
                v.errors.push(format!(
                    "node {n}: {key} has {tombstones} tombstones but only {sent} deletes were sent"
                ));
            }
        }
    }
    let all_keys: BTreeSet<&String> = views.iter().flat_map(|w| w.keys.keys()).collect();
    for key in all_keys {
        let first = views[0].keys.get(key);
        for (n, view) in views.iter().enumerate().skip(1) {
            if view.keys.get(key) != first {
                v.errors.push(format!(
                    "nodes 0 and {n} list the versions of {key} differently: {:?} vs {:?}",
                    first,
                    view.keys.get(key)
                ));
            }
        }
    }
    v
}

/// Node `i`'s view of `keys`, read between two looks at its status that agree (so that
/// the histories belong to that tip); `Err` if it does not answer.
fn view(eps: &Endpoints, i: usize, keys: &BTreeSet<String>) -> Result<NodeView, String> {
    let status = |i| -> Result<(String, String), String> {
        let s = eps.status(i).map_err(|e| format!("node {i}: {e:?}"))?;
        let field = |f: &str| s[f].as_str().unwrap_or_default().to_string();
        Ok((field("tip"), field("digest")))
    };
    let (tip, digest) = status(i)?;
    let mut view = NodeView {
        tip,
        digest,
        keys: BTreeMap::new(),
    };
    for key in keys {
        let rows = history(eps, i, key)?;
        if !rows.is_empty() {
            view.keys.insert(key.clone(), rows);
        }
    }
    if status(i)? != (view.tip.clone(), view.digest.clone()) {
        return Err(format!("node {i} moved while being read"));
    }
    Ok(view)
}

/// Most pages of one key's history read before giving up (a node that keeps naming a
/// next page would otherwise hold the checker forever).
const MAX_PAGES: usize = 10_000;

/// Every version of `key` on node `i`, page after page (`/history` answers a page at a
/// time and names the next one in `x-kvchain-next`).
pub fn history(eps: &Endpoints, i: usize, key: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut from = 0usize;
    for _ in 0..MAX_PAGES {
        let path = format!("/kvs/{}/history?from={from}", key_path(key));
        let a = eps
            .request(i, "GET", &path, b"", Duration::from_secs(10))
            .map_err(|e| format!("node {i}: {e:?}"))?;
        let page = a.json();
        let page = page
            .as_array()
            .ok_or_else(|| format!("node {i}: history of {key}: {} {}", a.status, a.body))?;
        rows.extend(page.iter().map(|r| Row {
            value: r["value"].as_str().map(str::to_string),
            tx: r["tx"].as_str().unwrap_or_default().to_string(),
            height: r["height"].as_u64().unwrap_or(0),
        }));
        match a.header("x-kvchain-next").map(str::parse::<usize>) {
            None => return Ok(rows),
            Some(Ok(next)) if next > from => from = next,
            Some(next) => {
                return Err(format!(
                    "node {i}: history of {key}: next page {next:?} after {from}"
                ))
            }
        }
    }
    Err(format!(
        "node {i}: history of {key}: over {MAX_PAGES} pages"
    ))
}

/// Waits up to `limit` until every node shows one tip and digest and an empty mempool,
/// then reads every view; `Err` with the last views seen (or why none) when they never agree.
pub fn converge(
    eps: &Endpoints,
    keys: &BTreeSet<String>,
    limit: Duration,
) -> Result<Vec<NodeView>, (String, Vec<NodeView>)> {
    let mut last = Vec::new();
    let (started, mut said) = (Instant::now(), 0);
    let result = poll_until(limit, || {
        let r = converged_views(eps, keys, &mut last);
        // A line every 5 s while it takes long, to see why.
        let secs = started.elapsed().as_secs() / 5;
        if let (Err(why), true) = (&r, secs > said) {
            said = secs;
            println!("faultload: not converged after {} s: {why:.300}", secs * 5);
        }
        r
    });
    result.map_err(|why| {
        if last.is_empty() {
            last = (0..eps.len())
                .filter_map(|i| view(eps, i, keys).ok())
                .collect();
        }
        (why, last)
    })
}

/// One look: the views of every node if they all show one tip and digest and none has
/// writes waiting in its mempool.
fn converged_views(
    eps: &Endpoints,
    keys: &BTreeSet<String>,
    last: &mut Vec<NodeView>,
) -> Result<Vec<NodeView>, String> {
    {
        let looks: Vec<(String, String, bool)> = (0..eps.len())
            .map(|i| match eps.status(i) {
                Ok(s) => {
                    let text = |f: &str| s[f].as_str().unwrap_or_default().to_string();
                    let same = format!("{} {}", text("tip"), text("digest"));
                    let seen = format!(
                        "height {} mempool {} tip {:.12}",
                        s["height"],
                        s["mempool"],
                        text("tip")
                    );
                    (same, seen, s["mempool"].as_u64() == Some(0))
                }
                Err(e) => (format!("{e:?}"), format!("{e:?}"), false),
            })
            .collect();
        if looks.iter().any(|l| l.0 != looks[0].0) {
            let seen: Vec<&String> = looks.iter().map(|l| &l.1).collect();
            return Err(format!("tips and digests differ: {seen:?}"));
        }
        // One tip is not yet the end: writes a reorg orphaned wait in a mempool until they
        // are mined again, and the nodes mine (`mine auto`) until no write waits.
        if let Some(l) = looks.iter().find(|l| !l.2) {
            return Err(format!("writes still wait to be mined: {}", l.1));
        }
        let views = (0..eps.len())
            .map(|i| view(eps, i, keys))
            .collect::<Result<Vec<_>, _>>()?;
        last.clone_from(&views);
        if views
            .iter()
            .any(|v| (&v.tip, &v.digest) != (&views[0].tip, &views[0].digest))
        {
            return Err("a node moved while the views were read".into());
        }
        Ok(views)
    }
}

/// The end of every scenario: converge (within `limit`), check, print the summary line;
/// on a violation dump the history into `dir` and panic naming the seed and the dump.
pub fn finish(
    eps: &Endpoints,
    history: &History,
    dir: &Path,
    seed: u64,
    limit: Duration,
) -> Verdict {
    let started = Instant::now();
    let entries = history.entries();
    let keys: BTreeSet<String> = entries.iter().map(|e| e.op.key().to_string()).collect();
    let (views, stuck) = match converge(eps, &keys, limit) {
        Ok(views) => (views, None),
        Err((why, views)) => (views, Some(why)),
    };
    let mut verdict = check(&entries, &views);
    if let Some(why) = stuck {
        verdict.agreeing = verdict.agreeing.min(eps.len() - 1);
        verdict.nodes = eps.len();
        verdict.errors.push(format!(
            "the nodes did not converge within {limit:?}: {why}"
        ));
    } else {
        println!(
            "faultload: converged after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    println!("{}", verdict.line());
    if !verdict.ok() {
        let path = dir.join("faultload-history.txt");
        let saved = history.dump(&path);
        panic!(
            "faultload check failed (seed {seed}, KVCHAIN_FAULT_SEED={seed} to replay; \
             history in {} {saved:?}): {}\nlost: {:#?}\nerrors: {:#?}",
            path.display(),
            verdict.line(),
            verdict.lost,
            verdict.errors
        );
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(client: usize, key: &str, value: &str, confirmed: bool) -> Entry {
        let outcome = if confirmed {
            Outcome::Confirmed {
                tx: format!("tx-{value}"),
                height: 1,
            }
        } else {
            Outcome::Net(super::super::NetError::Refused)
        };
        let op = Op::Put {
            key: key.into(),
            value: value.into(),
        };
        Entry {
            client,
            node: 0,
            op,
            outcome,
            start_ms: 0,
            end_ms: 0,
        }
    }

    fn del(key: &str, tx: &str) -> Entry {
        let outcome = Outcome::Confirmed {
            tx: tx.into(),
            height: 2,
        };
        let op = Op::Del { key: key.into() };
        Entry {
            client: 0,
            node: 0,
            op,
            outcome,
            start_ms: 0,
            end_ms: 0,
        }
    }

    fn row(value: Option<&str>, tx: &str) -> Row {
        Row {
            value: value.map(str::to_string),
            tx: tx.into(),
            height: 1,
        }
    }

    fn view(rows: &[(&str, Vec<Row>)]) -> NodeView {
        NodeView {
            tip: "t".into(),
            digest: "d".into(),
            keys: rows
                .iter()
                .map(|(k, r)| (k.to_string(), r.clone()))
                .collect(),
        }
    }

    fn good() -> (Vec<Entry>, Vec<NodeView>) {
        let entries = vec![
            put(0, "k", "a", true),
            put(1, "k", "b", false),
            del("k", "tx-d"),
        ];
        let rows = vec![row(Some("a"), "tx-a"), row(None, "tx-d")];
        (
            entries,
            vec![view(&[("k", rows.clone())]), view(&[("k", rows)])],
        )
    }

    #[test]
    fn a_clean_run_passes_and_counts_confirmed_writes() {
        let (entries, views) = good();
        let v = check(&entries, &views);
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.line(), "writes: confirmed 2, lost 0, nodes agreeing 2/2");
    }

    #[test]
    fn a_lost_confirmed_write_is_caught() {
        let (entries, mut views) = good();
        views[1].keys.get_mut("k").unwrap().remove(0);
        let v = check(&entries, &views);
        assert_eq!(v.lost.len(), 1, "{v:?}");
        assert!(!v.ok());
    }

    #[test]
    fn a_lost_confirmed_delete_is_caught() {
        let (entries, mut views) = good();
        for view in &mut views {
            view.keys.get_mut("k").unwrap().pop();
        }
        assert_eq!(check(&entries, &views).lost.len(), 1);
    }

    #[test]
    fn a_foreign_value_is_caught() {
        let (entries, mut views) = good();
        for view in &mut views {
            view.keys
                .get_mut("k")
                .unwrap()
                .push(row(Some("zzz"), "tx-z"));
        }
        let v = check(&entries, &views);
        assert!(
            v.errors.iter().any(|e| e.contains("no client wrote")),
            "{v:?}"
        );
    }

    #[test]
    fn a_value_under_another_key_is_foreign() {
        let (entries, mut views) = good();
        for view in &mut views {
            view.keys
                .insert("other".into(), vec![row(Some("a"), "tx-x")]);
        }
        assert!(!check(&entries, &views).ok());
    }

    #[test]
    fn a_disagreeing_order_is_caught() {
        let (entries, mut views) = good();
        views[1].keys.get_mut("k").unwrap().reverse();
        let v = check(&entries, &views);
        assert!(v.errors.iter().any(|e| e.contains("differently")), "{v:?}");
    }

    #[test]
    fn duplicates_and_extra_tombstones_are_caught() {
        let (entries, mut views) = good();
        for view in &mut views {
            let rows = view.keys.get_mut("k").unwrap();
            rows.push(row(Some("a"), "tx-a2"));
            rows.push(row(None, "tx-d2"));
        }
        let v = check(&entries, &views);
        assert!(v.errors.iter().any(|e| e.contains("twice")), "{v:?}");
        assert!(v.errors.iter().any(|e| e.contains("tombstones")), "{v:?}");
    }

    #[test]
    fn an_unacknowledged_write_may_be_missing_and_a_split_is_counted() {
        let (entries, mut views) = good();
        views[1].tip = "other".into();
        let v = check(&entries, &views);
        assert!(v.lost.is_empty() && v.errors.is_empty(), "{v:?}");
        assert_eq!(v.agreeing, 1);
        assert!(!v.ok());
    }

    #[test]
    fn a_read_of_a_foreign_value_is_caught() {
        let (mut entries, views) = good();
        entries.push(Entry {
            client: 0,
            node: 1,
            op: Op::Get { key: "k".into() },
            outcome: Outcome::Read(Some("nope".into())),
            start_ms: 0,
            end_ms: 0,
        });
        assert!(!check(&entries, &views).ok());
    }
}
