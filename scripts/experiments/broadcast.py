"""The measuring half of broadcast.sh (which starts and stops the nodes): talks to running
kvchain nodes over their HTTP API and reads their logs. Subcommands:

  snapshot FILE URL...          every node's gossip and transport counters (/metrics) and
                                peer count (/status), as JSON
  txs FILE COUNT GAP URL...     COUNT writes, one every GAP seconds, round-robin over the
                                nodes; waits (bounded) until every node holds every write,
                                then reads each node's mempool arrival time (GET /tx/ID)
  blocks FILE LOG...            block timing from the logs: node 1's (first) "mined block"
                                lines against every other node's "accepted block" lines
  row CSV N BEFORE MID AFTER TXS BLOCKS
                                appends one row per network size to CSV
  table CSV                     the summary table
  plot CSV PNG                  the figure

Latencies are exact per (tx or block, node) pair: all nodes share this machine's clock.
Nothing here trusts its input beyond what it checks: a missing number is an error with a
message, never a silent zero."""
import http.client
import json
import math
import re
import sys
import time
import urllib.parse
from datetime import datetime

# The counters read from /metrics; labels are matched on the topic's name suffix.
GOSSIP = {
    "sent_msgs": "gossipsub_topic_msg_sent_counts_total",
    "sent_bytes": "gossipsub_topic_msg_sent_bytes_total",
    "recv_msgs": "gossipsub_topic_msg_recv_counts_unfiltered_total",
    "recv_bytes": "gossipsub_topic_msg_recv_bytes_unfiltered_total",
    "recv_new": "gossipsub_topic_msg_recv_counts_total",
    "published": "gossipsub_topic_msg_published_total",
    "iwant": "gossipsub_topic_iwant_msgs_total",
}
TOPICS = {"tx": "/txs", "block": "/block"}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$')
LOG = re.compile(r"^(\S+)\s+\w+\s+\S+ (mined block|accepted block) block=([0-9a-f]{64})")
TIMEOUT = 10


class Node:
    """One node's HTTP API over a kept-alive connection."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.url = url
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)

    def request(self, method, path, body=None):
        """(status, body bytes); reconnects once if the connection was closed."""
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def json(self, path):
        status, body = self.request("GET", path)
        if status != 200:
            return None
        return json.loads(body)


def scrape(node):
    """The counters of one node: per topic and direction, plus transport bytes and peers."""
    status, body = node.request("GET", "/metrics")
    if status != 200:
        sys.exit(f"{node.url}/metrics answered {status}")
    out = {f"{t}_{k}": 0.0 for t in TOPICS for k in GOSSIP}
    out.update(bw_in=0.0, bw_out=0.0)
    for line in body.decode().splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "libp2p_bandwidth_bytes_total":
            out["bw_in" if "Inbound" in labels else "bw_out"] += value
            continue
        for key, metric in GOSSIP.items():
            if name == metric:
                for topic, suffix in TOPICS.items():
                    if f'{suffix}"' in labels:
                        out[f"{topic}_{key}"] += value
    st = node.json("/status")
    out["peers"] = float(st["peers"]) if st and "peers" in st else float("nan")
    return out


def snapshot(path, urls):
    with open(path, "w") as f:
        json.dump([scrape(Node(u)) for u in urls], f)


def txs(path, count, gap, urls):
    nodes = [Node(u) for u in urls]
    sent = []  # (tx id, origin index)
    start = time.monotonic()
    for i in range(count):
        origin = i % len(nodes)
        due = start + i * gap
        time.sleep(max(0.0, due - time.monotonic()))
        status, body = nodes[origin].request("PUT", f"/kvs/bc-{i}", body=b"x" * 32)
        if status not in (200, 202):
            sys.exit(f"PUT at {urls[origin]} answered {status}: {body[:200]!r}")
        sent.append((json.loads(body)["tx"], origin))
    # Every node holds every write (in its mempool: no node mines in this phase).
    deadline = time.monotonic() + 30
    arrived = [[None] * len(nodes) for _ in sent]
    missing = [(t, n) for t in range(len(sent)) for n in range(len(nodes))]
    while missing and time.monotonic() < deadline:
        still = []
        for t, n in missing:
            info = nodes[n].json(f"/tx/{sent[t][0]}")
            if info and info.get("received_us") is not None:
                arrived[t][n] = int(info["received_us"])
            else:
                still.append((t, n))
        missing = still
        if missing:
            time.sleep(0.2)
    latencies = []
    for t, (_, origin) in enumerate(sent):
        t0 = arrived[t][origin]
        for n, at in enumerate(arrived[t]):
            if n != origin and at is not None and t0 is not None:
                latencies.append((at - t0) / 1000.0)
    with open(path, "w") as f:
        json.dump({"txs": len(sent), "missing": len(missing), "latencies_ms": latencies}, f)
    if missing:
        print(f"broadcast.py: {len(missing)} (tx, node) pairs never arrived", file=sys.stderr)


def log_events(path, kind):
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = LOG.match(line)
            if m and m.group(2) == kind:
                ts = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
                out.setdefault(m.group(3), ts)
    return out


def blocks(path, logs):
    mined = log_events(logs[0], "mined block")
    latencies, missing = [], 0
    for log in logs[1:]:
        accepted = log_events(log, "accepted block")
        for block, t0 in mined.items():
            if block in accepted:
                latencies.append((accepted[block] - t0).total_seconds() * 1000)
            else:
                missing += 1  # fetched by sync, or never arrived
    with open(path, "w") as f:
        json.dump({"blocks": len(mined), "missing": missing, "latencies_ms": latencies}, f)


def quantile(xs, q):
    """The q-quantile of xs (nearest rank); NaN for none."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def delta(before, after, key):
    return [a[key] - b[key] for b, a in zip(before, after)]


def mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


FIELDS = ["nodes", "txs", "tx_pairs", "tx_missing", "tx_p50_ms", "tx_p99_ms",
          "blocks", "block_pairs", "block_missing", "block_p50_ms", "block_p99_ms",
          "degree_mean", "tx_msg_bytes", "tx_published",
          "tx_sent_msgs", "tx_recv_msgs", "tx_sent_bytes", "tx_recv_bytes", "tx_iwant",
          "wire_in_bytes", "wire_out_bytes",
          "sent_msgs_per_tx_node", "recv_msgs_per_tx_node",
          "sent_bytes_per_tx_node", "recv_bytes_per_tx_node", "wire_bytes_per_tx_node",
          "flood_msgs_per_tx_node", "flood_bytes_per_tx_node",
          "block_sent_msgs_per_block_node", "block_recv_msgs_per_block_node"]


def row(csv_path, n, before_p, mid_p, after_p, txs_p, blocks_p):
    load = lambda p: json.load(open(p))
    before, mid, after, tx, blk = map(load, (before_p, mid_p, after_p, txs_p, blocks_p))
    sums = {k: sum(delta(before, mid, f"tx_{k}")) for k in GOSSIP}
    k = max(tx["txs"], 1)
    per = lambda total: total / k / n
    degree = mean([s["peers"] for s in mid])
    msg_bytes = sums["sent_bytes"] / sums["sent_msgs"] if sums["sent_msgs"] else float("nan")
    wire_in, wire_out = sum(delta(before, mid, "bw_in")), sum(delta(before, mid, "bw_out"))
    nb = max(blk["blocks"], 1)
    r = {
        "nodes": n, "txs": tx["txs"], "tx_pairs": len(tx["latencies_ms"]),
        "tx_missing": tx["missing"],
        "tx_p50_ms": quantile(tx["latencies_ms"], 0.5),
        "tx_p99_ms": quantile(tx["latencies_ms"], 0.99),
        "blocks": blk["blocks"], "block_pairs": len(blk["latencies_ms"]),
        "block_missing": blk["missing"],
        "block_p50_ms": quantile(blk["latencies_ms"], 0.5),
        "block_p99_ms": quantile(blk["latencies_ms"], 0.99),
        "degree_mean": degree, "tx_msg_bytes": msg_bytes, "tx_published": sums["published"],
        "tx_sent_msgs": sums["sent_msgs"], "tx_recv_msgs": sums["recv_msgs"],
        "tx_sent_bytes": sums["sent_bytes"], "tx_recv_bytes": sums["recv_bytes"],
        "tx_iwant": sums["iwant"], "wire_in_bytes": wire_in, "wire_out_bytes": wire_out,
        "sent_msgs_per_tx_node": per(sums["sent_msgs"]),
        "recv_msgs_per_tx_node": per(sums["recv_msgs"]),
        "sent_bytes_per_tx_node": per(sums["sent_bytes"]),
        "recv_bytes_per_tx_node": per(sums["recv_bytes"]),
        "wire_bytes_per_tx_node": per(wire_out),
        # Naive flooding: every node sends each new message once to every peer it has.
        "flood_msgs_per_tx_node": degree * sums["published"] / k,
        "flood_bytes_per_tx_node": degree * msg_bytes * sums["published"] / k,
        "block_sent_msgs_per_block_node":
            sum(delta(mid, after, "block_sent_msgs")) / nb / n,
        "block_recv_msgs_per_block_node":
            sum(delta(mid, after, "block_recv_msgs")) / nb / n,
    }
    new = False
    try:
        open(csv_path).close()
    except OSError:
        new = True
    with open(csv_path, "a") as f:
        if new:
            f.write(",".join(FIELDS) + "\n")
        f.write(",".join(fmt(r[k]) for k in FIELDS) + "\n")


def fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def table(csv_path):
    from plotlib import read_rows
    cols = [("nodes", "N", 3), ("degree_mean", "deg", 5),
            ("block_p50_ms", "blk p50", 8), ("block_p99_ms", "blk p99", 8),
            ("tx_p50_ms", "tx p50", 7), ("tx_p99_ms", "tx p99", 7),
            ("sent_msgs_per_tx_node", "msg/tx/n", 8), ("recv_msgs_per_tx_node", "rcv/tx/n", 8),
            ("flood_msgs_per_tx_node", "flood", 6),
            ("sent_bytes_per_tx_node", "B/tx/n", 7), ("flood_bytes_per_tx_node", "flood B", 8),
            ("wire_bytes_per_tx_node", "wire B", 7), ("tx_iwant", "iwant", 5)]
    print("  ".join(h.rjust(w) for _, h, w in cols))
    for r in read_rows(csv_path):
        cells = []
        for k, _, w in cols:
            v = r[k]
            if k == "nodes" or not isinstance(v, float):
                text = f"{v:.0f}" if isinstance(v, float) else str(v)
            else:
                text = f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"
            cells.append(text.rjust(w))
        print("  ".join(cells))
    print("latencies in ms (p50/p99 over every (block or tx, receiving node) pair); msg/tx/n "
          "and B/tx/n: gossipsub data messages and bytes sent per tx per node (rcv: received, "
          "duplicates included); flood: naive flooding on the same peers; wire: every byte "
          "each node's streams sent per tx (control, framing and background included)")


def plot(csv_path, png):
    import matplotlib.pyplot as plt
    from plotlib import footer, read_rows, save
    rows = read_rows(csv_path)
    n = [r["nodes"] for r in rows]
    col = lambda k: [r[k] for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4.5))
    ax1.plot(n, col("block_p50_ms"), "o-", label="block p50")
    ax1.plot(n, col("block_p99_ms"), "o--", label="block p99")
    ax1.plot(n, col("tx_p50_ms"), "s-", label="tx p50")
    ax1.plot(n, col("tx_p99_ms"), "s--", label="tx p99")
    ax1.set(xlabel="nodes", ylabel="propagation latency (ms, log)", title="latency",
            yscale="log")
    ax1.legend()
    ax2.plot(n, col("sent_msgs_per_tx_node"), "o-", label="gossipsub sent")
    ax2.plot(n, col("recv_msgs_per_tx_node"), "o--", label="gossipsub received")
    ax2.plot(n, col("flood_msgs_per_tx_node"), "k:", label="naive flooding")
    ax2.set(xlabel="nodes", ylabel="messages per tx per node", title="messages")
    ax2.legend()
    ax3.plot(n, col("sent_bytes_per_tx_node"), "o-", label="gossipsub data sent")
    ax3.plot(n, col("wire_bytes_per_tx_node"), "o--", label="all stream bytes sent")
    ax3.plot(n, col("flood_bytes_per_tx_node"), "k:", label="naive flooding")
    ax3.set(xlabel="nodes", ylabel="bytes per tx per node", title="bytes")
    ax3.legend()
    out_dir = png.rsplit("/", 1)[0] if "/" in png else "."
    save(fig, png, footer(out_dir))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "snapshot" and len(args) >= 2:
        snapshot(args[0], args[1:])
    elif cmd == "txs" and len(args) >= 4:
        txs(args[0], int(args[1]), float(args[2]), args[3:])
    elif cmd == "blocks" and len(args) >= 3:
        blocks(args[0], args[1:])
    elif cmd == "row" and len(args) == 7:
        row(args[0], int(args[1]), *args[2:])
    elif cmd == "table" and len(args) == 1:
        table(args[0])
    elif cmd == "plot" and len(args) == 2:
        plot(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
