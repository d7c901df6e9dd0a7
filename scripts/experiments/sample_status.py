"""Polls nodes' HTTP /status every INTERVAL seconds and appends one CSV row per node and
poll: t_unix,node,alive,height,tip,peers,mempool. A node that does not answer within the
interval is recorded as not alive. Stops on SIGTERM/SIGINT or after --max-seconds.

Usage: sample_status.py --out FILE [--every 0.25] [--max-seconds 900] URL...
"""
import argparse
import json
import signal
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

stop = False


def on_signal(*_):
    global stop
    stop = True


def poll(url, timeout):
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=timeout) as r:
            s = json.load(r)
            return (1, s.get("height", ""), s.get("tip", ""), s.get("peers", ""), s.get("mempool", ""))
    except Exception:  # a node that is down or stuck counts as not alive
        return (0, "", "", "", "")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--every", type=float, default=0.25)
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("urls", nargs="+")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = time.time() + a.max_seconds
    with open(a.out, "w") as out, ThreadPoolExecutor(len(a.urls)) as pool:
        out.write("t_unix,node,alive,height,tip,peers,mempool\n")
        while not stop and time.time() < deadline:
            t = time.time()
            for i, row in enumerate(pool.map(lambda u: poll(u, a.every * 2), a.urls), 1):
                out.write(f"{t:.3f},{i}," + ",".join(str(x) for x in row) + "\n")
            out.flush()
            time.sleep(max(0.0, a.every - (time.time() - t)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
