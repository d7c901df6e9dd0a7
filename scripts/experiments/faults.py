"""Experiment 2's analysis: from the writes (faults_writes.csv), the status samples
(faults_nodes.csv) and the fault events (faults_events.csv) that faults.sh recorded,
writes the per-second table OUT/faults.csv, reads every confirmed write back from the
given nodes, prints a summary per phase and draws OUT/faults.png.

Usage: faults.py OUT BENCH_JSON KEY_PREFIX READBACK_URL...
       faults.py --replot OUT    (the plot again, from the CSVs of a finished run)
"""
import bisect
import csv
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from plotlib import footer, plt, read_rows, save


def pct(xs, q):
    if not xs:
        return ""
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1)


class Liveness:
    """Which nodes answered /status at a given time (the nearest earlier sample)."""

    def __init__(self, samples):
        self.by_node = {}
        for s in samples:
            self.by_node.setdefault(int(s["node"]), []).append((s["t_unix"], int(s["alive"]), s))
        self.times = {n: [t for t, _, _ in v] for n, v in self.by_node.items()}

    def at(self, node, t):
        i = bisect.bisect_right(self.times.get(node, []), t) - 1
        return self.by_node[node][i] if i >= 0 else None

    def alive(self, node, t):
        s = self.at(node, t)
        return bool(s and s[1])


def per_second(writes, live, nodes, t0, seconds):
    rows = []
    for sec in range(seconds):
        lo, hi = t0 + sec, t0 + sec + 1
        due = [w for w in writes if lo <= w["due_unix_s"] < hi]
        ok = [w for w in due if w["outcome"] == "confirmed"]
        to_live = [w for w in due if live.alive(int(w["node"]), w["due_unix_s"])]
        ok_live = [w for w in to_live if w["outcome"] == "confirmed"]
        tips, heights, up = set(), [], 0
        for n in nodes:
            s = live.at(n, lo + 0.5)
            if s and s[1]:
                up += 1
                tips.add(s[2]["tip"])
                heights.append(int(s[2]["height"]))
        rows.append({
            "t_s": sec,
            "offered": len(due),
            "confirmed": len(ok),
            "availability": round(len(ok) / len(due), 4) if due else "",
            "availability_live_nodes": round(len(ok_live) / len(to_live), 4) if to_live else "",
            "p50_ms": pct([w["latency_ms"] for w in ok], 0.5),
            "p99_ms": pct([w["latency_ms"] for w in ok], 0.99),
            "nodes_up": up,
            "distinct_tips": len(tips),
            "height_spread": (max(heights) - min(heights)) if heights else "",
        })
    return rows


def read_back(urls, prefix, writes):
    """The confirmed writes each node no longer has: (url, missing count, checked)."""
    keys = [f"{prefix}-{int(w['conn'])}-{int(w['seq'])}" for w in writes if w["outcome"] == "confirmed"]

    def missing(url, key):
        try:
            with urllib.request.urlopen(f"{url}/kvs/{key}", timeout=10) as r:
                return r.status != 200
        except urllib.error.HTTPError:
            return True
        except OSError:
            return True

    out = []
    with ThreadPoolExecutor(16) as pool:
        for url in urls:
            lost = sum(pool.map(lambda k: missing(url, k), keys))
            out.append((url, lost, len(keys)))
    return out


def plot(rows, events, t0, png, out_dir):
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    t = [r["t_s"] for r in rows]
    # The load's seconds only: after it stops there is nothing to be available for.
    loaded = lambda key: [r[key] if r["offered"] and r[key] != "" else None for r in rows]
    a.plot(t, loaded("offered"), color="0.6", label="writes offered")
    a.plot(t, loaded("confirmed"), label="writes confirmed")
    a.set_ylabel("writes per second\n(by due time)")
    a2 = a.twinx()
    a2.plot(t, loaded("availability"), color="tab:green", alpha=0.6, label="availability (all nodes)")
    a2.plot(t, loaded("availability_live_nodes"), color="tab:green", ls="--", alpha=0.8,
            label="availability (writes to live nodes)")
    a2.set_ylim(0, 1.05)
    a2.set_ylabel("share confirmed")
    lines = a.get_legend_handles_labels()
    lines2 = a2.get_legend_handles_labels()
    a.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="lower left")
    b.plot(t, loaded("p50_ms"), label="p50")
    b.plot(t, loaded("p99_ms"), label="p99")
    b.set_yscale("log")
    b.set_ylabel("put→confirmed ms")
    b.legend(fontsize=7)
    c.step(t, [r["nodes_up"] for r in rows], where="post", label="nodes answering")
    c.step(t, [r["distinct_tips"] for r in rows], where="post", label="distinct tips among them")
    c.set_ylabel("nodes / tips")
    c.set_ylim(0, max(r["nodes_up"] for r in rows) + 0.5)
    c.set_xlabel("seconds since the load started")
    # The height spread has its own axis: after a restart it is thousands of blocks.
    c2 = c.twinx()
    c2.step(t, [r["height_spread"] if r["height_spread"] != "" else None for r in rows], where="post",
            color="tab:green", alpha=0.7, label="height spread (blocks, right)")
    c2.set_ylabel("highest - lowest height")
    h1, l1 = c.get_legend_handles_labels()
    h2, l2 = c2.get_legend_handles_labels()
    c.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    for e in events:
        if e["event"] in ("kill", "restart", "converged"):
            x = e["t_unix"] - t0
            color = {"kill": "tab:red", "restart": "tab:blue", "converged": "tab:green"}[e["event"]]
            for ax in (a, b, c):
                ax.axvline(x, color=color, lw=0.8, ls=":")
            label = e["event"] if e["event"] == "converged" else f"{e['event']} {int(e['node'])}"
            a.annotate(label, (x, 1), xycoords=("data", "axes fraction"), fontsize=7,
                       rotation=90, va="top", ha="right", color=color)
    save(fig, png, footer(out_dir))


def main():
    out, bench_json, prefix, urls = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    writes = read_rows(f"{out}/faults_writes.csv")
    samples = read_rows(f"{out}/faults_nodes.csv")
    events = read_rows(f"{out}/faults_events.csv")
    with open(bench_json) as f:
        bench = json.load(f)
    t0 = next(e["t_unix"] for e in events if e["event"] == "start")
    seconds = int(max(s["t_unix"] for s in samples) - t0) + 1
    nodes = sorted({int(s["node"]) for s in samples})
    live = Liveness(samples)
    rows = per_second(writes, live, nodes, t0, seconds)
    with open(f"{out}/faults.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # Phases: between consecutive kill/restart events.
    marks = [(e["t_unix"], f"{e['event']} {int(e['node'])}") for e in events if e["event"] in ("kill", "restart")]
    bounds = [(t0, "all up")] + marks + [(t0 + bench["seconds"], "end")]
    print(f"{'phase':<22} {'writes':>7} {'confirmed':>9} {'to live nodes':>13} {'p50 ms':>8} {'p99 ms':>8}")
    for (lo, name), (hi, _) in zip(bounds, bounds[1:]):
        if hi - lo < 0.5:
            continue
        due = [w for w in writes if lo <= w["due_unix_s"] < hi]
        ok = [w for w in due if w["outcome"] == "confirmed"]
        live_due = [w for w in due if live.alive(int(w["node"]), w["due_unix_s"])]
        live_ok = [w for w in live_due if w["outcome"] == "confirmed"]
        share = lambda a, b: f"{100 * len(a) / len(b):.1f}%" if b else "-"
        print(f"after {name:<16} {len(due):>7} {share(ok, due):>9} {share(live_ok, live_due):>13} "
              f"{pct([w['latency_ms'] for w in ok], 0.5):>8} {pct([w['latency_ms'] for w in ok], 0.99):>8}")
    for line in catch_ups(samples, events):
        print(line)
    restarts = [e["t_unix"] for e in events if e["event"] == "restart"]
    conv = [e["t_unix"] for e in events if e["event"] == "converged"]
    if restarts and conv:
        print(f"every node on one tip {conv[0] - restarts[-1]:.1f} s after the last restart "
              f"(after the load stopped: {conv[0] - t0 - bench['seconds']:.1f} s)")
    elif restarts:
        print("the nodes did NOT agree on one tip within the bound after the load stopped")
    for url, lost, checked in read_back(urls, prefix, writes):
        print(f"read back at {url}: {checked - lost} of {checked} confirmed writes present, {lost} missing")
    plot(rows, events, t0, f"{out}/faults.png", out)


def catch_ups(samples, events):
    """For each restarted node: how far behind it came back, and how long it took to reach
    the height the network had when it came back (the network keeps moving meanwhile, so
    "the same tip" alone says little under load)."""
    lines = []
    for e in (e for e in events if e["event"] == "restart"):
        node, at = int(e["node"]), e["t_unix"]
        others = [s["height"] for s in samples
                  if int(s["node"]) != node and s["alive"] and at - 0.5 <= s["t_unix"] <= at]
        before = [s for s in samples if int(s["node"]) == node and s["alive"] and s["t_unix"] < at]
        after = [s for s in samples if int(s["node"]) == node and s["alive"] and s["t_unix"] >= at]
        if not others or not before:
            continue
        target, had = max(others), before[-1]["height"]
        done = next((s["t_unix"] for s in after if s["height"] >= target), None)
        took = f"caught up in {done - at:.1f} s" if done else "did NOT catch up within the run"
        lines.append(f"node {node} came back {int(target - had)} blocks behind: {took}")
    return lines


def replot(out):
    """Draws OUT/faults.png again from the CSVs a run left (no nodes needed)."""
    rows = read_rows(f"{out}/faults.csv")
    events = read_rows(f"{out}/faults_events.csv")
    t0 = next(e["t_unix"] for e in events if e["event"] == "start")
    plot(rows, events, t0, f"{out}/faults.png", out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--replot"]:
        replot(sys.argv[2])
    else:
        main()
