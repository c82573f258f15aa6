#!/usr/bin/env python3
"""The layering of src/ (docs/architecture.md), checked over every
#include "..." of every source and header: each layer includes only itself
and the layers below it.

    common <- devices <- arch <- vm <- migration <- vmm, tools
    common <- daemon, cli

Prints each include that runs the wrong way (file:line, what it includes,
what that layer may include) and exits 1 if there is one; with none, one
line saying how many includes were read."""

import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")
STACK = ["common", "devices", "arch", "vm", "migration"]
ALLOWED = {layer: set(STACK[:i + 1]) for i, layer in enumerate(STACK)}
ALLOWED["vmm"] = set(STACK) | {"vmm"}
ALLOWED["tools"] = set(STACK) | {"tools"}
ALLOWED["daemon"] = {"common", "daemon"}
ALLOWED["cli"] = {"common", "cli"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main():
    bad, seen = [], 0
    for root, _, files in os.walk(SRC):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, SRC)
            layer = rel.split(os.sep)[0]
            if layer not in ALLOWED:
                bad.append(f"src/{rel}: in no layer (docs/architecture.md lists them)")
                continue
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    seen += 1
                    target = m.group(1).split("/")[0]
                    if "/" not in m.group(1) or target not in ALLOWED[layer]:
                        bad.append(f"src/{rel}:{n}: includes \"{m.group(1)}\"; {layer}/ may "
                                   f"include only {', '.join(sorted(ALLOWED[layer]))}")
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} include(s) against the layering")
        return 1
    print(f"layering holds: {seen} includes of src/ run downward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
