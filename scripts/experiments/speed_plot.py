"""Experiment 4 (speed.sh): the write summary and the figure.

  speed_plot.py writes TMP WARMUP DIFFICULTY CONFIRMATIONS
      prints speed_writes.csv from the bench reports TMP/writes-{none,included,confirmed}.json
  speed_plot.py plot OUT TMP
      prints the summary table and draws OUT/speed.png from OUT's CSVs and the per-call
      samples in TMP (TMP/writes-*.csv, TMP/read_samples.csv)
"""
import csv
import json
import sys
from collections import defaultdict

from plotlib import footer, plt, read_rows, save

WAITS = ("none", "included", "confirmed")


def writes(tmp, warmup, difficulty, confirmations):
    """One CSV row per wait, from the bench's JSON report (its own percentiles)."""
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["wait", "load", "seconds", "warmup_s", "difficulty", "confirmations",
                  "n", "puts_per_sec", "p50_ms", "p90_ms", "p99_ms", "max_ms",
                  "refused", "unanswered", "blocks", "block_interval_s", "txs_per_block"])
    for wait in WAITS:
        with open(f"{tmp}/writes-{wait}.json") as f:
            r = json.loads(f.read().strip().splitlines()[-1])
        lat, blocks, counts = r["latency_ms"], r["blocks"], r["counts"]
        per_block = blocks["txs"] / blocks["mined"] if blocks["mined"] else 0
        out.writerow([wait, r["load"], r["seconds"], warmup, difficulty, confirmations,
                      lat["count"], f"{r['puts_per_sec']:.1f}", f"{lat['p50']:.1f}",
                      f"{lat['p90']:.1f}", f"{lat['p99']:.1f}", f"{lat['max']:.1f}",
                      counts.get("refused", 0), counts.get("unanswered", 0),
                      blocks["mined"], f"{blocks['interval']:.3f}", f"{per_block:.1f}"])


def cdf(ax, values, label, **kw):
    """A CDF of values on ax."""
    xs = sorted(values)
    if xs:
        ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=label, **kw)


def write_samples(tmp, warmup):
    """Per wait, the latencies (ms) of the measured writes, as bench counts them."""
    reached = {"none": ("pending", "included", "confirmed"),
               "included": ("included", "confirmed"), "confirmed": ("confirmed",)}
    out = {}
    for wait in WAITS:
        rows = read_rows(f"{tmp}/writes-{wait}.csv")
        start = min((r["due_unix_s"] for r in rows), default=0)
        out[wait] = [r["latency_ms"] for r in rows
                     if r["due_unix_s"] - start >= warmup and r["outcome"] in reached[wait]]
    return out


def table(reads, writes_rows, startup):
    """The summary table on stdout."""
    print("\nwrites (ms, from the due time)")
    print(f"{'wait':<10} {'n':>6} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  blocks  s/block")
    for r in writes_rows:
        print(f"{r['wait']:<10} {r['n']:>6.0f} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}  {r['blocks']:>6.0f}  "
              f"{r['block_interval_s']:.3f}")
    print("\nreads (us per call)")
    print(f"{'series':<9} {'keys':>8} {'blocks':>6} {'op':<22} {'versions':>8} {'n':>7} "
          f"{'p50':>9} {'p90':>9} {'p99':>9} {'max':>10} {'>1ms':>6}")
    for r in reads:
        if r["op"] == "timer":
            continue
        print(f"{r['series']:<9} {r['keys']:>8.0f} {r['blocks']:>6.0f} {r['op']:<22} "
              f"{r['versions']:>8.0f} {r['n']:>7.0f} {r['p50_us']:>9.2f} {r['p90_us']:>9.2f} "
              f"{r['p99_us']:>9.2f} {r['max_us']:>10.1f} {r['over_1ms']:>6.0f}")
    print("\nstart-up (s)")
    print(f"{'series':<9} {'keys':>8} {'blocks':>6} {'txs':>8} {'log MB':>7} "
          f"{'what':<16} {'seconds':>8} {'rss MB':>7}")
    for r in startup:
        rss = r["rss_mb"] if r["rss_mb"] != "" else float("nan")
        print(f"{r['series']:<9} {r['keys']:>8.0f} {r['blocks']:>6.0f} {r['txs']:>8.0f} "
              f"{r['log_mb']:>7.1f} {r['what']:<16} {r['seconds']:>8.3f} {rss:>7.0f}")


def plot(out, tmp):
    reads = read_rows(f"{out}/speed.csv")
    writes_rows = read_rows(f"{out}/speed_writes.csv")
    startup = read_rows(f"{out}/speed_startup.csv")
    table(reads, writes_rows, startup)
    warmup = writes_rows[0]["warmup_s"] if writes_rows else 0
    samples = defaultdict(list)
    with open(f"{tmp}/read_samples.csv", newline="") as f:
        for r in csv.DictReader(f):
            samples[(r["series"], int(r["keys"]), int(r["blocks"]), r["op"],
                     int(r["versions"]))].append(float(r["us"]))

    fig, axes = plt.subplots(2, 4, figsize=(21, 9))
    ax = axes[0][0]
    for wait, ms in write_samples(tmp, warmup).items():
        cdf(ax, ms, f"--wait {wait} (n={len(ms)})")
    ax.set(xscale="log", xlabel="write latency, ms (due to answer)", ylabel="fraction of writes",
           title="writes: 2 nodes, difficulty %d, %d confirmations" % (
               writes_rows[0]["difficulty"], writes_rows[0]["confirmations"])
           if writes_rows else "writes")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    for (series, keys, _, op, versions), us in sorted(samples.items()):
        if series == "keys" and versions == 1 and op in ("retrieve", "http_get"):
            cdf(ax, us, f"{op}, {keys:,} keys", ls="-" if op == "retrieve" else "--")
    ax.set(xscale="log", xlabel="read latency, us per call", ylabel="fraction of reads",
           title="reads of the latest version: distributions")
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[0][2]
    keys_rows = [r for r in reads if r["series"] == "keys" and r["versions"] == 1]
    for op, style in (("retrieve", "o-"), ("retrieve_all", "s-"), ("http_get", "^--"),
                      ("http_history", "v--")):
        rows = sorted((r for r in keys_rows if r["op"] == op), key=lambda r: r["keys"])
        if not rows:
            continue
        x = [r["keys"] for r in rows]
        line, = ax.plot(x, [r["p50_us"] for r in rows], style, label=f"{op} p50")
        ax.plot(x, [r["p99_us"] for r in rows], style, alpha=0.5, color=line.get_color(),
                label=f"{op} p99")
    ax.set(xscale="log", yscale="log", xlabel="keys in the chain (one version each)",
           ylabel="us per call", title="reads against the number of keys")
    ax.legend(fontsize=6, ncol=2)

    ax = axes[0][3]
    extra = (("retrieve_during_blocks", "max_us", "x:", "C3", "retrieve while blocks fold: max"),
             ("retrieve_during_blocks_digest", "max_us", "+:", "C4",
              "... and digests run: max"),
             ("retrieve_spin_idle", "max_us", "1:", "0.55", "same reader alone: max"),
             ("digest", "p50_us", "D-", "k", "index digest (first /status)"),
             ("http_status_first", "p50_us", "s--", "C1", "first GET /status"),
             ("submit_block", "p50_us", "o-", "C2", "a 4,096-write block accepted: p50"))
    for op, col, style, color, label in extra:
        rows = sorted((r for r in reads if r["series"] == "keys" and r["op"] == op),
                      key=lambda r: r["keys"])
        if rows:
            ax.plot([r["keys"] for r in rows], [r[col] for r in rows], style, label=label,
                    color=color)
    ax.set(xscale="log", yscale="log", xlabel="keys in the chain (+ the 4,096-write blocks)",
           ylabel="us", title="worst cases: a spinning reader while blocks fold")
    ax.legend(fontsize=7)

    ax = axes[1][0]
    hot = [r for r in reads if r["series"] == "versions" and r["versions"] > 1]
    for op, style in (("retrieve_all", "o-"), ("http_history", "^--")):
        rows = sorted((r for r in hot if r["op"] == op), key=lambda r: r["versions"])
        if rows:
            x = [r["versions"] for r in rows]
            line, = ax.plot(x, [r["p50_us"] for r in rows], style, label=f"{op} p50")
            ax.plot(x, [r["max_us"] for r in rows], style, alpha=0.5, color=line.get_color(),
                    label=f"{op} max")
    ax.set(xscale="log", yscale="log", xlabel="versions of the key read",
           ylabel="us per call", title="retrieve_all and /history of one key")
    ax.legend(fontsize=7)

    ax = axes[1][1]
    length = [r for r in reads if r["series"] == "length" and r["versions"] == 1]
    for op, style in (("retrieve", "o-"), ("retrieve_all", "s-"), ("http_get", "^--"),
                      ("http_history", "v--")):
        rows = sorted((r for r in length if r["op"] == op), key=lambda r: r["blocks"])
        if rows:
            x = [r["blocks"] for r in rows]
            line, = ax.plot(x, [r["p50_us"] for r in rows], style, label=f"{op} p50")
            ax.plot(x, [r["p99_us"] for r in rows], style, alpha=0.5, color=line.get_color())
    keys = int(length[0]["keys"]) if length else 0
    ax.set(xscale="log", yscale="log", xlabel=f"chain length, blocks ({keys:,} keys)",
           ylabel="us per call (faint: p99)", title="reads against the chain length")
    ax.legend(fontsize=7, loc="upper left")
    # The same chains' start-up, on a second axis: it grows with the blocks.
    twin = ax.twinx()
    for what, style in (("open_in_process", "k:"), ("node_http_ready", "k-.")):
        rows = sorted((r for r in startup if r["series"] == "length" and r["what"] == what),
                      key=lambda r: r["blocks"])
        if rows:
            twin.plot([r["blocks"] for r in rows], [r["seconds"] for r in rows], style,
                      alpha=0.6, label=f"start-up: {what}")
    twin.set(yscale="log", ylabel="start-up, s (black)")
    twin.spines["right"].set_visible(True)
    twin.legend(fontsize=7, loc="lower right")

    ax = axes[1][2]
    for series, marker in (("keys", "o"), ("versions", "D")):
        for what, style in (("open_in_process", "-"), ("node_http_ready", "--")):
            rows = sorted((r for r in startup if r["series"] == series and r["what"] == what),
                          key=lambda r: r["txs"])
            if rows:
                ax.plot([r["txs"] for r in rows], [r["seconds"] for r in rows],
                        marker + style, label=f"{series}: {what}")
    ax.set(xscale="log", yscale="log", xlabel="writes in the chain (txs)", ylabel="seconds",
           title="start-up: replaying the block log")
    ax.legend(fontsize=6)
    ax = axes[1][3]
    for series, marker in (("keys", "o"), ("versions", "D"), ("length", "s")):
        rows = sorted((r for r in startup if r["series"] == series
                       and r["what"] == "node_http_ready" and r["rss_mb"] != ""),
                      key=lambda r: r["txs"] * 1e6 + r["blocks"])
        if rows:
            ax.plot([r["txs"] for r in rows], [r["rss_mb"] for r in rows], marker,
                    label=f"{series} (length: same txs, more blocks)" if series == "length"
                    else series)
    ax.set(xscale="log", yscale="log", xlabel="writes in the chain (txs)",
           ylabel="node resident memory, MB", title="memory of a node serving the chain")
    ax.legend(fontsize=7)
    save(fig, f"{out}/speed.png", footer(out))


if __name__ == "__main__":
    if sys.argv[1:2] == ["writes"] and len(sys.argv) == 6:
        writes(sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif sys.argv[1:2] == ["plot"] and len(sys.argv) == 4:
        plot(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
