#!/usr/bin/env python3
"""Lists include cycles among the modules of the given folders (default: proxy protocol report;
subfolders included).

Two graphs: headers (X.h includes Y.h) and modules (X.c or X.h includes Y.h, X != Y), each
over top-relative includes ("proxy/config.h") of files under the folders. A module cycle means
two modules can be neither built nor understood one without the other. Prints every cycle;
exits 1 when there is one.

Usage: scripts/include-cycles.py [--root DIR] [FOLDER...]"""
import os
import re
import sys


def graph(root, folders, modules):
    include = re.compile(r'#\s*include\s+"((?:%s)/[^"]+\.h)"' % "|".join(map(re.escape, folders)))
    g = {}
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for name in sorted(files):
                if not (name.endswith(".h") or (modules and name.endswith(".c"))):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                src = path[:-2] if modules else path
                for m in include.finditer(text):
                    dst = m.group(1)[:-2] if modules else m.group(1)
                    if dst != src:
                        g.setdefault(src, set()).add(dst)
    return g


def cycles(g):
    found, state, stack = [], {}, []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(g.get(u, ())):
            if state.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif not state.get(v):
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(g):
        if not state.get(u):
            visit(u)
    return found


def main(argv):
    root = "."
    if argv[:1] == ["--root"]:
        root, argv = argv[1], argv[2:]
    folders = argv or ["proxy", "protocol", "report"]
    bad = False
    for kind, modules in (("header", False), ("module", True)):
        found = cycles(graph(root, folders, modules))
        print("%s cycles in %s: %d" % (kind, " ".join(folders), len(found)))
        for c in found:
            print("  " + " -> ".join(c))
        bad = bad or bool(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
