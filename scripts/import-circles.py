#!/usr/bin/env python3
"""Fails (exit 1) when modules of src/ import each other in a circle.

Reads every `crate::…` and `super::…` path in src/ (the library; the
binary's cli.rs, main.rs and commands/ sit on top and are left out),
resolves each to the module file it names, and finds the strongly
connected components of that graph (Tarjan). A component of more than one
file is a circle; each is printed with the imports that close it.

Then the same at the level of the top-level modules (`install`, `unpack`,
`bundle`, … each one node), leaving out test code (`tests.rs`, and what
follows `#[cfg(test)]` in a file): no module may import from one that
imports it, so the modules stand in layers, each importing only from the
layers below. `--layers` prints them, lowest first (docs/architecture.md
shows them).
Run by scripts/test.sh; `scripts/import-circles.py` by hand prints the same.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_path(path):
    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    return tuple(parts[:-1] if parts[-1] in ("mod", "lib", "main") else parts)


def main():
    files = {}
    for d, _, names in os.walk(ROOT):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(d, n)
                files[p] = open(p, encoding="utf-8").read()
    mods = {module_path(p): p for p in files}
    on_top = lambda p: "/commands/" in p or p.endswith(("/main.rs", "/cli.rs"))  # noqa: E731

    def resolve(parts):
        for n in range(len(parts), 0, -1):
            if tuple(parts[:n]) in mods:
                return mods[tuple(parts[:n])]
        return None

    edges = {p: set() for p in files}
    for p, text in files.items():
        if on_top(p):
            continue
        for target in named(text, p, resolve):
            if target and target != p and not on_top(target):
                edges[p].add(target)

    index, low, stack, on, circles = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
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
                circles.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    rel = lambda p: os.path.relpath(p, os.path.join(ROOT, ".."))  # noqa: E731
    top = lambda p: os.path.relpath(p, ROOT).split(os.sep)[0].removesuffix(".rs")  # noqa: E731
    is_test = lambda p: os.path.basename(p) == "tests.rs" or f"{os.sep}tests{os.sep}" in p  # noqa: E731
    modules = {}
    for p, text in files.items():
        if on_top(p) or is_test(p) or p.endswith("/lib.rs"):
            continue
        code = text.split("#[cfg(test)]")[0]
        mine = modules.setdefault(top(p), set())
        for t in edges[p]:
            if not is_test(t) and not t.endswith("/lib.rs") and top(t) != top(p):
                if t in named(code, p, resolve):
                    mine.add(top(t))
    layer, path = {}, []

    def depth(m):
        if m in path:
            return None
        if m not in layer:
            path.append(m)
            below = [depth(d) for d in modules.get(m, ())]
            path.pop()
            if None in below:
                return None
            layer[m] = 1 + max(below, default=-1)
        return layer[m]

    def reaches(a, b, seen):
        return a == b or (a not in seen and not seen.add(a) and any(reaches(n, b, seen) for n in modules.get(a, ())))

    stuck = [m for m in modules if depth(m) is None]
    # Members only, not every module above a circle.
    module_circles = sorted(m for m in stuck if any(reaches(d, m, set()) for d in modules[m]))
    for m in module_circles:
        back = sorted(d for d in modules[m] if reaches(d, m, set()))
        print(f"module {m} is in an import circle: it imports {back}, which import it back", file=sys.stderr)
    if "--layers" in sys.argv and not module_circles:
        for n in range(max(layer.values()) + 1):
            print(f"{n}: " + " ".join(sorted(m for m, l in layer.items() if l == n)))
    for comp in circles:
        print(f"import circle of {len(comp)} files:", file=sys.stderr)
        for a in sorted(comp):
            for b in sorted(edges[a]):
                if b in comp:
                    print(f"  {rel(a)} -> {rel(b)}", file=sys.stderr)
    if circles or module_circles:
        sys.exit(1)
    print(f"no import circle among {len(files)} files of src/, nor among its {len(modules)} top-level modules")


def named(code, src, resolve):
    """The files `code` (of the file `src`) names with `crate::` or `super::` paths."""
    me = list(module_path(src))
    found = set()
    for m in re.finditer(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
        rest = [x for x in m.group(2).split("::") if x]
        parts = rest if m.group(1) == "crate" else me[:-1] + rest
        while parts and parts[0] == "super":
            parts = parts[1:]
        found.add(resolve(parts))
    return found


main()
