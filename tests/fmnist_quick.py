#!/usr/bin/python3
"""End to end on real data: run examples/fmnist_ood --quick (one short epoch per method on a small
subset of Fashion-MNIST) and check the table it prints: every method x scorer row present, every
number finite and in [0, 100], PALM + KNN separating both noise sets from in-distribution, the same
numbers on a second run with the same seed and thread count, and clear one-line errors for bad
input. Prints a Check-style summary line."""
import math
import os
import subprocess
import sys
import tempfile

program = sys.argv[1]
failures = []
checks = 0

ROWS = ["PALM+KNN", "PALM+Maha", "CIDER+KNN", "CIDER+Maha", "CE+MSP", "CE+KNN", "CE+Maha"]
OOD = ["held-out classes", "letters A-J", "Gaussian noise", "uniform noise", "average"]


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
    return cond


def run(*args, timeout=120):
    return subprocess.run([program, *args], capture_output=True, text=True, timeout=timeout)


def table(stdout):
    """{row name: [fpr, auroc] per OOD set and the average} from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ROWS:
            rows[parts[0]] = [float(v) for v in parts[1:]]
    return rows


quick = ["--quick", "--threads", "2", "--seed", "3"]
full = run(*quick)
if check(full.returncode == 0, f"--quick exits 0 (got {full.returncode}): {full.stderr[-2000:]}"):
    rows = table(full.stdout)
    check(sorted(rows) == sorted(ROWS), f"table rows {sorted(rows)}")
    for name, values in rows.items():
        check(len(values) == 2 * len(OOD), f"{name}: {len(values)} numbers")
        check(all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in values), f"{name}: {values}")
    palm = rows.get("PALM+KNN", [0.0] * 10)
    for o in (2, 3):  # Gaussian and uniform noise: AUROC in %
        check(palm[2 * o + 1] > 80.0, f"PALM+KNN AUROC on {OOD[o]} = {palm[2 * o + 1]}, expected > 80")
    check("epoch" in full.stderr and "loss" in full.stderr, "progress per epoch on stderr")

    # Same seed, same thread count: the same numbers (PALM only, to stay quick).
    again = run(*quick, "--methods", "palm")
    check(again.returncode == 0 and
          {k: v for k, v in table(again.stdout).items()} ==
          {k: v for k, v in rows.items() if k.startswith("PALM")},
          "a second run with the same seed and threads prints the same PALM rows")


def fails_with(args, needle, code=None):
    r = run(*args, timeout=60)
    lines = r.stderr.strip().splitlines()
    last = lines[-1] if lines else ""
    ok = r.returncode != 0 and (code is None or r.returncode == code)
    check(ok and last.startswith("fmnist_ood: ") and needle in last and r.stdout == "",
          f"{args}: exit {r.returncode}, stderr {r.stderr!r}")


with tempfile.TemporaryDirectory() as empty:
    fails_with(["--quick", "--data-dir", empty], "dataset-fashion-mnist")
    bad = os.path.join(empty, "train-images-idx3-ubyte.gz")
    with open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x05")  # a label header where images belong
    fails_with(["--quick", "--data-dir", empty], "not an IDX file")
    fails_with(["--quick", "--fonts", os.path.join(empty, "missing.ttf") + "," + bad],
               "none of the 2 fonts")
fails_with(["--epochs", "0"], "--epochs", code=2)
fails_with(["--threads", "two"], "--threads", code=2)
fails_with(["--methods", "palm,knn"], "unknown method 'knn'", code=2)
fails_with(["--lr"], "--lr needs a value", code=2)
fails_with(["--frobnicate"], "unknown option", code=2)
h = run("--help")
check(h.returncode == 0 and h.stdout.startswith("usage: fmnist_ood"), "--help")

pct = 100 * (checks - len(failures)) // checks
print(f"{pct}%: Checks: {checks}, Failures: {len(failures)}, Errors: 0")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
