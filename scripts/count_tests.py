#!/usr/bin/python3
"""Sum meson's test logs into one line "N passed, N failed". Arguments are build directories (their
meson-logs/testlog.json) or test log files (another run's --logbase). A Check suite counts each of
its test cases (from its "Checks: N, Failures: F, Errors: E" line); any other test counts once. A
missing log (the build failed) counts as one failure."""
import json
import os
import re
import sys

CHECK_LINE = re.compile(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)")
passed = failed = 0
for build in sys.argv[1:]:
    log = build if build.endswith(".json") else os.path.join(build, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print(f"{build}: no test log")
        failed += 1
        continue
    for line in open(log):
        t = json.loads(line)
        ok = t["result"] in ("OK", "EXPECTEDFAIL")
        m = CHECK_LINE.search(t.get("stdout") or "")
        if m:
            n, f, e = map(int, m.groups())
            p, bad = n - f - e, f + e
            if not ok and bad == 0:  # cases passed but the process failed (sanitizer report at exit)
                p, bad = p - 1, 1
        else:
            p, bad = (1, 0) if ok else (0, 1)
        if bad:
            print(f"FAILED: {build}: {t['name']} ({t['result']})")
        passed += p
        failed += bad
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
