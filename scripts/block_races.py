#!/usr/bin/env python3
"""How fast blocks spread and how often they raced, from the nodes' info logs.

Reads the log lines `mined block block=H height=N` and `accepted block block=H` that
nodes write at info level (kvchain::node::task), with their timestamps, and prints:
the time from a block being mined on one node to its being accepted on each other node
(percentiles), and how many heights saw more than one block mined (races, of which all
but one block ended as orphans). All nodes must share a clock: one machine.

Usage: scripts/block_races.py NODE-LOG...
A measurement aid for scripts/throughput.sh; standard library only.
"""
import re
import sys
from datetime import datetime

LINE = re.compile(
    r"^(\S+?)Z?\s+INFO\s.*?(mined block|accepted block) block=([0-9a-f]+)(?: height=(\d+))?"
)


def stamp(text):
    """Seconds since the epoch of a log timestamp, or None if it is not one."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def percentiles(values, points=(50, 90, 99)):
    values = sorted(values)
    return [values[min(len(values) - 1, int(len(values) * p / 100))] for p in points]


def main(paths):
    mined = {}  # block -> (time, height)
    accepted = []  # (block, time)
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    m = LINE.match(line)
                    if not m:
                        continue
                    t = stamp(m.group(1))
                    if t is None:
                        continue
                    if m.group(2) == "mined block" and m.group(4):
                        mined[m.group(3)] = (t, int(m.group(4)))
                    elif m.group(2) == "accepted block":
                        accepted.append((m.group(3), t))
        except OSError as e:
            print(f"block races: cannot read {path}: {e}", file=sys.stderr)
    delays = [(t - mined[b][0]) * 1000 for b, t in accepted if b in mined]
    if not mined or not delays:
        print("block races: no mined and accepted blocks in the logs (run the nodes at info level)")
        return
    p50, p90, p99 = percentiles(delays)
    print(
        f"block propagation ms (mined on one node -> accepted by another): "
        f"p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  (n={len(delays)})"
    )
    heights = {}
    for _, height in mined.values():
        heights[height] = heights.get(height, 0) + 1
    raced = sum(1 for n in heights.values() if n > 1)
    print(
        f"block races: {len(mined)} blocks mined at {len(heights)} heights; "
        f"{raced} heights ({raced * 100 // len(heights)}%) saw more than one"
    )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: scripts/block_races.py NODE-LOG...", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1:])
