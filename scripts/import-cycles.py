#!/usr/bin/env python3
"""Fails when Gatehouse's modules import each other in a cycle (issue 19).

Reads `use crate::…`/`use super::…` paths (and inline `crate::…` paths) of every non-test
source file under src/, at two levels: top-level modules (`model`, `translate`, …) and the
modules directly inside each of them (`model::types`, `model::filters`, …). Prints every
cycle and exits 1 when there is one. Text-based, not a compiler pass: test modules, doc
comments and string literals are skipped.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return [] if parts in (["lib"], ["main"]) else parts


def source_without_tests_and_docs(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"#\[cfg\(test\)\]\s*mod \w+\s*\{.*", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def main():
    modules = {}
    for d, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs") and "tests" not in f and f != "testing.rs":
                p = os.path.join(d, f)
                modules["::".join(module_of(p))] = p

    def resolve(current, segs):
        out = []
        if segs[0] == "super":
            out = current[:-1]
        segs = segs[1:]
        while segs and segs[0] == "super":
            out, segs = out[:-1], segs[1:]
        for i in range(len(segs), 0, -1):
            m = "::".join(out + segs[:i])
            if m in modules:
                return m.split("::")
        return None

    edges = {}
    for name, path in modules.items():
        current = name.split("::") if name else []
        text = source_without_tests_and_docs(path)
        paths = [p.split("::") for p in re.findall(r"\b(?:crate|super)(?:::\w+)+", text)]
        for head, group in re.findall(r"\b(crate|super)::\{([^}]*)\}", text):
            paths += [[head] + i.strip().split(" ")[0].split("::") for i in group.split(",") if i.strip()]
        for segs in paths:
            target = resolve(current, segs)
            if target is None:
                continue
            for depth in (1, 2):
                a, b = current[:depth], target[:depth]
                if len(a) == depth and len(b) == depth and a != b and a[: depth - 1] == b[: depth - 1]:
                    edges.setdefault("::".join(a), set()).add("::".join(b))

    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in cycles:
        print("import cycle:", ", ".join(comp))
        for a in comp:
            print(f"  {a} -> {', '.join(sorted(b for b in edges[a] if b in comp))}")
    if not cycles:
        print(f"no import cycles among {len(modules)} modules")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
