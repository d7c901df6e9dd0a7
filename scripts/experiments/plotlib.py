"""Shared by the experiments' plot scripts: reading their CSVs and one look for every
figure. Imported by the scripts in scripts/experiments/ (exp_python puts it on the path)."""
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "figure.figsize": (8, 4.5),
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
})


def read_rows(path):
    """The rows of a CSV as dicts; numbers converted to float where they parse."""
    with open(path, newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append({k: _number(v) for k, v in row.items()})
        return rows


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def save(fig, path, meta=None):
    """Saves a figure as PNG, with the meta.txt line naming the machine and date as a footer."""
    if meta:
        fig.text(0.01, 0.005, meta, fontsize=7, color="0.45", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def footer(out_dir):
    """A one-line summary of out_dir/meta.txt (date, machine, commit) for a plot's footer."""
    fields = {}
    try:
        with open(f"{out_dir}/meta.txt") as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
    except OSError:
        return ""
    return " · ".join(x for x in (fields.get("date"), fields.get("machine"),
                                  "commit " + fields.get("commit", "?"),
                                  fields.get("experiment")) if x)
