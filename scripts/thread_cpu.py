"""Where the nodes' CPU went during a measurement, by thread: throughput.sh saves every
thread's CPU time before the load and prints, by thread name summed over the nodes, the
share of one core each used and the CPU it spent per write.

  save FILE PID...                  every thread's CPU seconds (from /proc), as JSON
  show FILE SECONDS WRITES PID...   per thread name: % of one core over SECONDS, and
                                    microseconds of CPU per write (WRITES in SECONDS)

Names are the nodes' own: tokio-rt-worker (HTTP, the node task, the network service
and the verifiers' blocking pool), kvchain-journal (group commit),
kvchain-blocksy (the block log's fsyncs), miner-N. A thread that ended before `show`
is missed; one started after `save` counts from zero. Linux only; standard library."""
import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def threads(pid):
    """{tid: (name, cpu seconds)} of process `pid`; empty if it is gone."""
    out = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime: fields 14 and 15 of stat, the 12th and 13th after the name.
        out[f"{pid}/{tid}"] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def snapshot(pids):
    now = {}
    for pid in pids:
        now.update(threads(pid))
    return now


def main(argv):
    if len(argv) >= 2 and argv[0] == "save":
        with open(argv[1], "w") as f:
            json.dump(snapshot(argv[2:]), f)
        return
    if len(argv) < 5 or argv[0] != "show":
        sys.exit(__doc__)
    path, seconds, writes, pids = argv[1], float(argv[2]), float(argv[3]), argv[4:]
    with open(path) as f:
        before = json.load(f)
    used = {}
    for key, (name, cpu) in snapshot(pids).items():
        start = before.get(key, (name, 0.0))[1]
        used[name] = used.get(name, 0.0) + cpu - start
    total = sum(used.values())
    print(f"cpu by thread (all nodes, % of one core; us of CPU per write; {writes:.0f} writes):")
    for name, cpu in sorted(used.items(), key=lambda kv: -kv[1]) + [("total", total)]:
        if cpu > 0 or name == "total":
            share = cpu / seconds * 100 if seconds > 0 else 0
            per = cpu / writes * 1e6 if writes > 0 else 0
            print(f"  {name:<16} {share:6.1f}%  {per:7.1f} us/write")


if __name__ == "__main__":
    main(sys.argv[1:])
