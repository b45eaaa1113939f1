#!/usr/bin/python3
"""The Python example end to end: a quick run of examples/python/train_fmnist_palm.py (one epoch
on 600 images) must print finite losses and, for both scorers, AUROC and FPR95 in [0, 100] with
the KNN AUROC clearly above chance; a missing data directory must fail with a message naming the
Debian package. Prints a Check-style summary line.

usage: python_example.py path/to/train_fmnist_palm.py   (PYTHONPATH and PROTOOD_LIBRARY set)"""
import math
import re
import subprocess
import sys

script = sys.argv[1]
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)


run = subprocess.run([sys.executable, script, "--epochs", "1", "--train-size", "600", "--seed", "3"],
                     capture_output=True, text=True, timeout=280)
out = run.stdout
check(run.returncode == 0, f"quick run exited {run.returncode}: {run.stderr[-2000:]}")
losses = re.findall(r"epoch 1/1: loss (\S+) \(mle (\S+), pcon (\S+)\)", out)
check(len(losses) == 1 and all(math.isfinite(float(v)) for v in losses[0]),
      f"epoch line missing or not finite: {out!r}")
rows = dict((name.strip(), (float(a), float(f))) for name, a, f in
            re.findall(r"^  (KNN \(k=50\)|Mahalanobis)\s+AUROC\s+(\S+)\s+FPR95\s+(\S+)$", out, re.M))
check(set(rows) == {"KNN (k=50)", "Mahalanobis"}, f"scorer rows missing: {out!r}")
check(all(0 <= a <= 100 and 0 <= f <= 100 for a, f in rows.values()), f"values out of range: {rows}")
check(rows.get("KNN (k=50)", (0, 0))[0] > 60, f"KNN AUROC at chance after training: {rows}")

missing = subprocess.run([sys.executable, script, "--data-dir", "/nonexistent/fashion-mnist"],
                         capture_output=True, text=True, timeout=120)
check(missing.returncode != 0 and "dataset-fashion-mnist" in missing.stderr
      and "/nonexistent/fashion-mnist" in missing.stderr,
      f"missing data: exit {missing.returncode}, {missing.stderr!r}")

for f in failures:
    print("FAILED:", f)
print(f"{100 * (checks - len(failures)) // checks}%: Checks: {checks}, Failures: {len(failures)}, "
      f"Errors: 0")
sys.exit(1 if failures else 0)
