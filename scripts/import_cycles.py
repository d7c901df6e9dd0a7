#!/usr/bin/env python3
"""Finds circles in the import graph of src/: one node per source file (a module), an
edge from a file to every module of this crate it names (`crate::a::b`, `super::x`,
`self::y`, in `use` lines and in paths anywhere in the code). Prints each circle found
and exits 1 if there is any. A `mod.rs` naming its own submodules (`mod x;`, `pub use
x::...`) is the module tree itself, not a dependency, and is skipped.

Usage: scripts/import_cycles.py [SRC_DIR]   (default: src)
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "src"


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def files():
    for root, _, names in os.walk(SRC):
        if os.path.relpath(root, SRC).startswith("bin"):
            continue  # the binary is a separate crate using the library
        for n in names:
            if n.endswith(".rs"):
                yield os.path.join(root, n)


def resolve(mods, base):
    """The longest known module that `base` (a tuple of path segments) starts with."""
    for k in range(len(base), 0, -1):
        if base[:k] in mods:
            return base[:k]
    return None


def main():
    paths = {module_of(p): p for p in files()}
    mods = set(paths)
    edges = {m: set() for m in mods}
    path_re = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
    group_re = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}")
    for m, p in paths.items():
        is_dir_mod = p.endswith("mod.rs") or p.endswith("lib.rs")
        text = open(p).read()
        text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        refs = []
        for root, rest, inner in group_re.findall(text):
            for item in inner.split(","):
                item = item.strip().split(" as ")[0]
                if item:
                    refs.append((root, rest + "::" + item.replace(" ", "")))
        refs += path_re.findall(text)
        for root, rest in refs:
            segs = tuple(s for s in rest.split("::") if s)
            # `self` is this module, `super` its parent, whatever file holds it.
            base = {"crate": (), "self": m, "super": m[:-1]}[root] + segs
            target = resolve(mods, base)
            if target is None or target == m:
                continue
            # A parent module naming its children is the tree, not a dependency.
            if is_dir_mod and target[: len(m)] == m:
                continue
            edges[m].add(target)
    cycles = find_cycles(edges)
    for c in cycles:
        print(" -> ".join("::".join(x) or "crate" for x in c + [c[0]]))
    print(f"{len(mods)} modules, {sum(len(v) for v in edges.values())} imports, {len(cycles)} circles")
    return 1 if cycles else 0


def find_cycles(edges):
    """One circle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
