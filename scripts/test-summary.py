#!/usr/bin/env python3
"""Prints one closing line for `make check` from meson's test logs:
'check: N passed, N failed, N skipped'. Skipped tests are listed by name.

Arguments are meson JSON test logs (BUILD/meson-logs/NAME.json). A log that
is missing or empty means that run gave no results (its test host did not
start, say): it counts as a failure, named."""
import json
import os
import sys

passed = failed = skipped = 0
skips, fails = [], []
for log in sys.argv[1:]:
    where = os.path.relpath(log)
    try:
        lines = open(log).read().splitlines()
    except OSError:
        lines = []
    if not lines:
        failed += 1
        fails.append(f"{where}: no test results (the run did not complete)")
        continue
    for line in lines:
        t = json.loads(line)
        r = t["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
            skips.append(f"{where}: {t['name']}")
        else:
            failed += 1
            fails.append(f"{where}: {t['name']} ({r})")
for s in skips:
    print(f"SKIPPED: {s}")
for f in fails:
    print(f"FAILED: {f}")
print(f"check: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
