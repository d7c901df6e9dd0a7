"""Experiment 1's table and plot: reads the runs difficulty.sh recorded (one JSON line
per difficulty: the bench report and the sampled hashrate), writes OUT/difficulty.csv,
prints a summary table and draws OUT/difficulty.png."""
import csv
import json
import sys

from plotlib import footer, plt, read_rows, save

MAX_BLOCK_TXS = 4096  # src/chain/limits.rs

COLUMNS = ["difficulty", "in_flight", "hashrate_hs", "expected_interval_s", "blocks", "interval_s",
           "txs_per_block", "capacity_per_s", "confirmed_per_s", "p50_ms", "p90_ms",
           "p99_ms", "max_ms", "confirmed", "unanswered", "refused", "window_s"]


def rows(raw_path):
    out = []
    with open(raw_path) as f:
        for line in f:
            run = json.loads(line)
            r = run["report"]
            b, lat, counts = r["blocks"], r["latency_ms"], r["counts"]
            interval = b["interval"]
            out.append({
                "difficulty": run["difficulty"],
                "in_flight": run["in_flight"],
                "hashrate_hs": run["hashrate"],
                "expected_interval_s": run["expected_interval"],
                "blocks": b["mined"],
                "interval_s": round(interval, 4),
                "txs_per_block": round(b["txs"] / b["mined"], 1) if b["mined"] else 0,
                "capacity_per_s": round(MAX_BLOCK_TXS / interval, 1) if interval else "",
                "confirmed_per_s": round(r["puts_per_sec"], 1),
                "p50_ms": round(lat["p50"], 1),
                "p90_ms": round(lat["p90"], 1),
                "p99_ms": round(lat["p99"], 1),
                "max_ms": round(lat["max"], 1),
                "confirmed": counts.get("confirmed", 0),
                "unanswered": counts.get("unanswered", 0),
                "refused": counts.get("refused", 0),
                "window_s": r["seconds"],
            })
    return out


def plot(csv_path, png_path, out_dir):
    data = read_rows(csv_path)
    d = [r["difficulty"] for r in data]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot(d, [r["confirmed_per_s"] for r in data], "o-",
              label=f"confirmed writes/s ({int(data[0]['in_flight']):,} in flight)")
    cap = [(r["difficulty"], r["capacity_per_s"]) for r in data if r["capacity_per_s"] != ""]
    if cap:
        left.plot(*zip(*cap), "s--", color="0.5", label="block capacity: 4,096 txs / interval")
    left.set_yscale("log")
    left.set_xlabel("difficulty (leading zero bits)")
    left.set_ylabel("writes per second")
    left.set_title("Throughput")
    left.legend(fontsize=8)
    right.plot(d, [r["p50_ms"] for r in data], "o-", label="put→confirmed p50")
    right.plot(d, [r["p99_ms"] for r in data], "^-", label="put→confirmed p99")
    right.plot(d, [r["interval_s"] * 1000 for r in data], "s--", color="0.5", label="block interval (measured)")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xticks(d)
    right.set_xlabel("difficulty (leading zero bits)")
    right.set_ylabel("milliseconds")
    right.set_title("Latency and block interval")
    right.legend(fontsize=8)
    save(fig, png_path, footer(out_dir))


def main():
    raw, out_dir = sys.argv[1], sys.argv[2]
    data = rows(raw)
    csv_path = f"{out_dir}/difficulty.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(data)
    print(f"{'diff':>4} {'hashrate MH/s':>13} {'interval s':>10} {'txs/blk':>8} "
          f"{'confirmed/s':>11} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for r in data:
        print(f"{r['difficulty']:>4} {r['hashrate_hs'] / 1e6:>13.1f} {r['interval_s']:>10.3f} "
              f"{r['txs_per_block']:>8} {r['confirmed_per_s']:>11.1f} {r['p50_ms']:>9.1f} "
              f"{r['p99_ms']:>9.1f} {r['max_ms']:>9.1f}")
    plot(csv_path, f"{out_dir}/difficulty.png", out_dir)


if __name__ == "__main__":
    main()
