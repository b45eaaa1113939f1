#!/usr/bin/python3
"""Files written by libprotood must load in real NumPy with the exact values: run the helper that
writes them, then compare with values computed here. Prints a Check-style summary line."""
import os
import subprocess
import sys
import tempfile

import numpy as np

helper = sys.argv[1]
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory() as d:
    subprocess.run([helper, d], check=True)
    idx = np.arange(4 * 6).reshape(4, 6)
    want = (idx * 0.25 - 2.5).astype(np.float32)
    m = np.load(os.path.join(d, "matrix.npy"))
    check(m.dtype == np.dtype("<f4") and m.shape == (4, 6), f"matrix dtype/shape {m.dtype} {m.shape}")
    check(np.array_equal(m, want), "matrix values")
    mm = np.load(os.path.join(d, "matrix.npy"), mmap_mode="r")  # header must be 64-byte aligned
    check(mm.offset % 64 == 0 and np.array_equal(mm, want), "memory-mapped matrix")
    v = np.load(os.path.join(d, "vector.npy"))
    check(v.shape == (5,) and v.dtype == np.dtype("<f4"), f"vector shape {v.shape}")
    check(np.array_equal(v, np.float32([0.5, -1, 3e38, -0.0, 1e-40])), "vector values")
    lab = np.load(os.path.join(d, "labels.npy"))
    check(lab.dtype == np.dtype("<i4") and np.array_equal(lab, np.int32([3, -7, 2**31 - 1, -2**31])),
          "labels")
    e = np.load(os.path.join(d, "empty.npy"))
    check(e.shape == (0, 3), f"empty shape {e.shape}")
    check(sorted(os.listdir(d)) == ["empty.npy", "labels.npy", "matrix.npy", "vector.npy"],
          f"no temporary files left: {os.listdir(d)}")

pct = 100 * (checks - len(failures)) // checks
print(f"{pct}%: Checks: {checks}, Failures: {len(failures)}, Errors: 0")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
