"""Experiment 6 (the 51% attack): turns OUT/trials.csv, written by attack51.sh from real
runs, into OUT/attack51.csv (q, z, trials, successes, rate, Wilson interval, Nakamoto's
formula and the exact probability for the attacker's rule), prints the table and draws
OUT/attack51.png. Usage: attack51_plot.py OUT."""
import math
import sys
from collections import OrderedDict

from plotlib import footer, plt, read_rows, save


def nakamoto(q, z):
    """Bitcoin paper, section 11: the attacker's chance to ever catch up from z blocks
    behind, its progress while the merchant waits taken as Poisson with mean z q / p."""
    p = 1.0 - q
    if q >= p:
        return 1.0
    lam = z * q / p
    total = 1.0
    for k in range(z + 1):
        poisson = math.exp(-lam) * lam ** k / math.factorial(k)
        total -= poisson * (1 - (q / p) ** (z - k))
    return total


def strict(q, z):
    """The exact chance for the rule the attacker follows here: it starts with the victim's
    block, has k blocks when the honest chain has z (negative binomial, as Rosenfeld
    computes it), and must then get strictly ahead (a tie keeps the first-seen branch)."""
    p = 1.0 - q
    if q >= p:
        return 1.0
    total = 1.0
    for k in range(z + 1):
        nb = math.comb(k + z - 1, k) * p ** z * q ** k
        total -= nb * (1 - (q / p) ** (z - k + 1))
    return total


def wilson(k, n, zc=1.96):
    """The 95% Wilson score interval of k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    phat = k / n
    d = 1 + zc * zc / n
    c = (phat + zc * zc / (2 * n)) / d
    h = zc * math.sqrt(phat * (1 - phat) / n + zc * zc / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def main(out):
    rows = read_rows(f"{out}/trials.csv")
    points = OrderedDict()
    for r in rows:
        key = (r["q"], int(r["z"]))
        pt = points.setdefault(key, {"n": 0, "k": 0, "ha": [], "hh": []})
        pt["n"] += 1
        pt["k"] += int(r["success"])
        if r["attacker_hs"] and r["honest_hs"]:
            pt["ha"].append(r["attacker_hs"])
            pt["hh"].append(r["honest_hs"])
    table = []
    for (q, z), pt in sorted(points.items()):
        lo, hi = wilson(pt["k"], pt["n"])
        ha, hh = sum(pt["ha"]), sum(pt["hh"])
        qm = ha / (ha + hh) if ha + hh > 0 else float("nan")
        table.append((q, z, pt["n"], pt["k"], pt["k"] / pt["n"], lo, hi,
                      nakamoto(q, z), strict(q, z), qm))
    with open(f"{out}/attack51.csv", "w") as f:
        f.write("q,z,trials,successes,rate,wilson_low,wilson_high,nakamoto,strict,q_measured\n")
        for t in table:
            f.write("%.2f,%d,%d,%d,%.3f,%.3f,%.3f,%.4f,%.4f,%.3f\n" % t)
    print("   q  z  trials  successes  rate   95% Wilson     Nakamoto  strict-lead  q measured")
    for q, z, n, k, rate, lo, hi, nk, st, qm in table:
        print(f"{q:4.2f} {z:2d} {n:7d} {k:10d}  {rate:5.2f}  [{lo:4.2f}, {hi:4.2f}]  "
              f"{nk:8.3f}  {st:11.3f}  {qm:10.3f}")

    fig, ax = plt.subplots()
    grid = [i / 200 for i in range(1, 200)]
    zs = sorted({z for _, z, *_ in table})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, z in enumerate(zs):
        c = colors[i % len(colors)]
        ax.plot(grid, [nakamoto(q, z) for q in grid], color=c, lw=1.2,
                label=f"Nakamoto, z={z}")
        ax.plot(grid, [strict(q, z) for q in grid], color=c, lw=0.8, ls="--",
                label=f"strictly ahead (exact), z={z}")
        pts = [t for t in table if t[1] == z]
        xs = [t[0] + (i - (len(zs) - 1) / 2) * 0.006 for t in pts]
        ys = [t[4] for t in pts]
        # Clamped: at k = 0 or k = n the interval's end can round past the rate.
        err = [[max(0.0, t[4] - t[5]) for t in pts], [max(0.0, t[6] - t[4]) for t in pts]]
        ax.errorbar(xs, ys, yerr=err, fmt="o", color=c, ms=4, capsize=2,
                    label=f"measured, z={z} (95% Wilson)")
    ax.set_xlabel("attacker's share q of the hashrate")
    ax.set_ylabel("probability the rewrite succeeds")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("51% attack: real nodes on loopback vs Nakamoto's formula")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    save(fig, f"{out}/attack51.png", footer(out))


if __name__ == "__main__":
    main(sys.argv[1])
