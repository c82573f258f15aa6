#!/usr/bin/env python3
"""Prints one closing line for `make check` from meson's test logs:
'check: N passed, N failed, N skipped'. Skipped tests are listed by name."""
import json
import sys

passed = failed = skipped = 0
skips = []
for build in sys.argv[1:]:
    try:
        lines = open(f"{build}/meson-logs/testlog.json").read().splitlines()
    except OSError:
        continue
    for line in lines:
        t = json.loads(line)
        r = t["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
            skips.append(f"{build}:{t['name']}")
        else:
            failed += 1
for s in skips:
    print(f"SKIPPED: {s}")
print(f"check: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
