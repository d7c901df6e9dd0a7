"""What each node did during a measurement, from its /metrics: throughput.sh saves the
counters before the load and prints how much each grew by the end.

  save FILE URL...   every node's counters, as JSON
  show FILE URL...   per counter, each node's growth since FILE was saved

The counters: signatures checked (peers' txs the verifiers checked), txs accepted
(taken into the mempool, own and peers'; not those that came in a block first), blocks
accepted (own and peers', side branches included), the height gained (blocks on the
canonical chain) and reorgs. With W writes in all, a node that checked each peer's tx
once checked about W * (N-1) / N signatures. Standard library only; a node that does
not answer is an error."""
import json
import re
import sys
import urllib.request

COUNTERS = {
    "sigs checked": "kvchain_signatures_checked_total",
    "txs accepted": "kvchain_txs_accepted_total",
    "blocks accepted": "kvchain_blocks_accepted_total",
    "height gained": "kvchain_height",
    "reorgs": "kvchain_reorgs_total",
}
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+)$")


def scrape(url):
    """The counters of the node at `url` (labelled series summed)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        body = r.read().decode()
    values = dict.fromkeys(COUNTERS.values(), 0.0)
    for line in body.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) in values:
            values[m.group(1)] += float(m.group(3))
    return values


def main(argv):
    if len(argv) < 3 or argv[0] not in ("save", "show"):
        sys.exit(__doc__)
    cmd, path, urls = argv[0], argv[1], argv[2:]
    now = [scrape(u) for u in urls]
    if cmd == "save":
        with open(path, "w") as f:
            json.dump(now, f)
        return
    with open(path) as f:
        before = json.load(f)
    if len(before) != len(now):
        sys.exit(f"{path} holds {len(before)} nodes, not {len(now)}")
    for label, metric in COUNTERS.items():
        grown = [f"node{i + 1} {a[metric] - b[metric]:.0f}" for i, (b, a) in enumerate(zip(before, now))]
        print(f"{label} per node: {' '.join(grown)}")


if __name__ == "__main__":
    main(sys.argv[1:])
