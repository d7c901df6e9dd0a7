#!/usr/bin/env bash
# Renders docs/REPORT.md to docs/REPORT.pdf, with the plots of docs/experiments/ as its
# pictures. Installs what it needs itself into a venv under target/ (from PyPI: pandoc,
# as pypandoc_binary, and the typst typesetter); needs only python3.
#
# Usage: scripts/report.sh [OUT.pdf]   (default docs/REPORT.pdf)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$ROOT/docs/REPORT.pdf}
venv=${KVCHAIN_REPORT_VENV:-$ROOT/target/report-venv}
say() { printf 'report: %s\n' "$*" >&2; }

if ! "$venv/bin/python" -c 'import pypandoc, typst' 2>/dev/null; then
    say "installing pandoc and typst into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'pypandoc_binary>=1.13,<2' 'typst>=0.13,<1'
fi

# Every picture the report shows must exist: they are the experiments' plots.
missing=0
while read -r picture; do
    if [[ ! -f $ROOT/docs/$picture ]]; then
        say "missing docs/$picture: run the experiment script that draws it"
        missing=1
    fi
done < <(sed -n 's/^!\[[^]]*\](\([^)]*\)).*/\1/p' "$ROOT/docs/REPORT.md")
((missing == 0)) || exit 1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" - "$ROOT/docs" "$work/report.typ" "$out" <<'PY'
import sys

import pypandoc
import typst

docs, typ, pdf = sys.argv[1:]
pypandoc.convert_file(
    f"{docs}/REPORT.md", "typst", outputfile=typ,
    extra_args=["--standalone", f"--resource-path={docs}", "-V", "papersize=a4",
                "-V", "fontsize=10pt", "-V", "section-numbering=1.1", "--toc"])
# The pictures are named relative to docs/; the typst file is compiled from there.
with open(typ) as f:
    source = f.read()
with open(f"{docs}/.report.typ", "w") as f:
    f.write(source)
try:
    typst.compile(f"{docs}/.report.typ", output=pdf, root=docs)
finally:
    import os
    os.remove(f"{docs}/.report.typ")
PY
say "wrote $out"
