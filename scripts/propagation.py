"""Block propagation latency from kvchain logs: miner's "mined block" line to each
peer's "accepted block" line, matched by block hash. Prints count, p50, p99, max."""
import re
import sys
from datetime import datetime

LINE = re.compile(r"^(\S+)\s+\w+\s+\S+ (mined block|accepted block) block=([0-9a-f]{64})")


def events(path, kind):
    out = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m and m.group(2) == kind:
                ts = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
                out.setdefault(m.group(3), ts)
    return out


def main():
    mined = events(sys.argv[1], "mined block")
    latencies = []
    missing = 0
    for peer in sys.argv[2:]:
        accepted = events(peer, "accepted block")
        for block, t0 in mined.items():
            if block in accepted:
                latencies.append((accepted[block] - t0).total_seconds() * 1000)
            else:
                missing += 1
    if not latencies:
        sys.exit("no block was seen by any peer through gossip")
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"blocks mined: {len(mined)}, deliveries measured: {len(latencies)}, "
          f"not seen through gossip (synced instead): {missing}")
    print(f"propagation p50: {pick(0.50):.2f} ms  p99: {pick(0.99):.2f} ms  max: {latencies[-1]:.2f} ms")


if __name__ == "__main__":
    main()
