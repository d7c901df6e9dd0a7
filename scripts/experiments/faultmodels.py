"""Experiment 5's analysis. `check DIR PREFIX URL...` runs while a scenario's network is
still up: it reads every confirmed write back from each node that answers and, for the
miner-crash scenario, looks up the block the killed miner announced; it writes
DIR/check.json. `report OUT SCENARIO...` then writes OUT/faultmodels.csv (one row per
scenario), prints the table and draws OUT/faultmodels.png."""
import csv
import json
import sys
import urllib.request

from faults import Liveness, pct, per_second, read_back
from plotlib import footer, plt, read_rows, save


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)
    except Exception:  # down, or no such block
        return None


def check(d, prefix, urls):
    writes = read_rows(f"{d}/writes.csv")
    up = [u for u in urls if get_json(f"{u}/status") is not None]
    result = {"read_back": [{"url": u, "missing": m, "checked": n}
                            for u, m, n in read_back(up, prefix, writes)],
              "down": [u for u in urls if u not in up]}
    try:
        with open(f"{d}/mined_block.txt") as f:
            mined = f.read().strip()
    except OSError:
        mined = ""
    if mined and mined != "none":
        block = get_json(f"{up[0]}/blocks/{mined}") if up else None
        canonical = None
        if block:
            at_height = get_json(f"{up[0]}/blocks/{block['height']}")
            canonical = bool(at_height and at_height.get("hash") == mined)
        result["mined_block"] = {"hash": mined, "known": block is not None, "canonical": canonical}
    # A hostile peer's forged txs (keys forged-SEQ-I, odd SEQ) must be on no node.
    try:
        with open(f"{d}/hostile.jsonl") as f:
            ticks = [json.loads(line) for line in f if line.strip()]
    except OSError:
        ticks = None
    if ticks is not None:
        batches = max((t.get("forged_txs_sent", 0) for t in ticks), default=0) // 10
        keys = [f"forged-{2 * b + 1}-{i}" for b in range(min(batches, 50)) for i in range(10)]
        result["forged_found"] = sum(
            1 for u in up for k in keys if get_json(f"{u}/kvs/{k}/history") not in (None, []))
        result["forged_checked"] = len(keys) * len(up)
    with open(f"{d}/check.json", "w") as f:
        json.dump(result, f, indent=1)


def longest_stall(writes, t0, t1):
    """The longest time without any write being confirmed, between t0 and t1 (seconds)."""
    done = sorted(w["done_unix_s"] for w in writes if w["outcome"] == "confirmed" and t0 <= w["done_unix_s"] <= t1)
    points = [t0] + done + [t1]
    return max(b - a for a, b in zip(points, points[1:]))


def caught_up(samples, since, node=4):
    """Seconds from `since` until `node` answered at the height of the highest other node
    (one block behind counts: blocks keep coming under load); "" if it never did."""
    by_time = {}
    for s in samples:
        if s["t_unix"] >= since and int(s["alive"]):
            by_time.setdefault(s["t_unix"], {})[int(s["node"])] = int(s["height"])
    for t in sorted(by_time):
        heights = by_time[t]
        others = [h for n, h in heights.items() if n != node]
        if node in heights and others and heights[node] >= max(others) - 1:
            return round(t - since, 2)
    return ""


def scenario_row(out, name):
    d = f"{out}/{name}"
    writes = read_rows(f"{d}/writes.csv")
    samples = read_rows(f"{d}/nodes.csv")
    events = read_rows(f"{d}/events.csv")
    with open(f"{d}/check.json") as f:
        checked = json.load(f)
    t = {e["event"]: e["t_unix"] for e in events}
    with open(f"{d}/bench.json") as f:
        seconds = json.load(f)["seconds"]
    # The load's end: the bench's "end" event comes later, once it has read the blocks.
    t0 = t["start"]
    end = t0 + seconds
    live = Liveness(samples)
    to_live = [w for w in writes if live.alive(int(w["node"]), w["due_unix_s"])]
    ok = lambda ws: [w for w in ws if w["outcome"] == "confirmed"]
    fault = t.get("kill", t.get("hostile", t.get("omit", t0)))
    fault_end = t.get("restart", t.get("omit-end", t.get("hostile-end", end)))
    during = [w for w in ok(writes) if fault <= w["due_unix_s"] < fault_end]
    lost = sum(r["missing"] for r in checked["read_back"])
    cut_off = ""
    if "hostile" in t:
        with open(f"{d}/hostile.jsonl") as f:
            ticks = [json.loads(line) for line in f if line.strip()]
        # From its first connection to the moment it had none left for good.
        comings = [x for x in ticks if x.get("event") in ("connected", "disconnected")]
        if comings and comings[-1]["peers"] == 0:
            cut_off = round(comings[-1]["t_unix"] - comings[0]["t_unix"], 3)
    mined = checked.get("mined_block", {})
    row = {
        "scenario": name,
        "writes": len(writes),
        "confirmed_share": round(len(ok(writes)) / len(writes), 4) if writes else "",
        "confirmed_share_live_nodes": round(len(ok(to_live)) / len(to_live), 4) if to_live else "",
        "p50_ms": pct([w["latency_ms"] for w in ok(writes)], 0.5),
        "p99_ms": pct([w["latency_ms"] for w in ok(writes)], 0.99),
        "p99_during_fault_ms": pct([w["latency_ms"] for w in during], 0.99),
        "longest_stall_s": round(longest_stall(writes, t0, end), 2),
        "converged_after_end_s": round(t["converged"] - end, 2) if "converged" in t else "",
        "caught_up_after_restart_s": caught_up(samples, t["restart"]) if "restart" in t else "",
        "confirmed_missing": lost,
        "hostile_cut_off_s": cut_off,
        "forged_txs_found": checked.get("forged_found", ""),
        # The crashed miner's last block: canonical, orphaned, or never seen by node 1.
        "mined_block": ("" if not mined else "never seen" if not mined["known"]
                        else "canonical" if mined["canonical"] else "orphaned"),
    }
    return row, (name, writes, samples, events, end)


def report(out, names):
    rows, series = [], []
    for name in names:
        row, data = scenario_row(out, name)
        rows.append(row)
        series.append(data)
    with open(f"{out}/faultmodels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(f"{r['scenario']}: {r['writes']} writes, {100 * r['confirmed_share']:.1f}% confirmed "
              f"({100 * r['confirmed_share_live_nodes']:.1f}% of those sent to live nodes), "
              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (during the fault {r['p99_during_fault_ms']} ms), "
              f"longest stall {r['longest_stall_s']} s, "
              + (f"node 4 caught up {r['caught_up_after_restart_s']} s after its restart, "
                 if r["caught_up_after_restart_s"] != "" else "")
              + f"one tip {r['converged_after_end_s']} s after the load stopped, "
              f"confirmed writes missing on read-back: {r['confirmed_missing']}"
              + (f", the crashed miner's last block: {r['mined_block']}" if r["mined_block"] else "")
              + (f", the hostile peer cut off by every node {r['hostile_cut_off_s']} s after its first connection"
                 if r["hostile_cut_off_s"] != "" else "")
              + (f", forged txs found in the chain: {r['forged_txs_found']}" if r["forged_txs_found"] != "" else ""))
    plot(series, f"{out}/faultmodels.png", out)


def plot(series, png, out):
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.8 * len(series)), squeeze=False)
    for ax, (name, writes, samples, events, end) in zip(axes[:, 0], series):
        t0 = next(e["t_unix"] for e in events if e["event"] == "start")
        nodes = sorted({int(s["node"]) for s in samples})
        rows = per_second(writes, Liveness(samples), nodes, t0, int(end - t0))
        t = [r["t_s"] for r in rows]
        ax.plot(t, [r["availability_live_nodes"] or None for r in rows], color="tab:green",
                label="share confirmed (writes to live nodes)")
        ax.plot(t, [r["availability"] or None for r in rows], color="tab:green", alpha=0.4,
                label="share confirmed (all writes)")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(name)
        lat = ax.twinx()
        lat.plot(t, [r["p99_ms"] or None for r in rows], color="tab:orange", label="p99 ms")
        lat.set_yscale("log")
        lat.set_ylabel("p99 put→confirmed ms")
        for e in events:
            colors = {"kill": "tab:red", "restart": "tab:blue", "converged": "tab:green",
                      "hostile": "tab:purple", "hostile-end": "tab:purple",
                      "omit": "tab:brown", "omit-end": "tab:brown"}
            if e["event"] in colors:
                color = colors[e["event"]]
                ax.axvline(e["t_unix"] - t0, color=color, ls=":", lw=0.9)
                ax.annotate(e["event"], (e["t_unix"] - t0, 0.02), fontsize=7, color=color, rotation=90)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = lat.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower left")
    axes[-1, 0].set_xlabel("seconds since the load started")
    save(fig, png, footer(out))


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        report(sys.argv[2], sys.argv[3:])
