#!/usr/bin/python3
"""AUROC + FPR95 on 20k scores: libprotood against scikit-learn, same data, same run.

The anchor is what evaluation scripts do today (BENCH.md): roc_auc_score, then roc_curve and
fpr[argmax(tpr >= 0.95)] (every threshold kept, SPEC.md §7). Rounds alternate between the C
program and scikit-learn so that both see the same load on a shared machine; each side reports the
median over all its repetitions. Both sides are single-threaded (a sort and a scan), so the thread
count does not change either.

usage: /usr/bin/python3 bench/metrics.py path/to/bench_metrics [rounds]"""
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import sklearn
from sklearn import metrics

bench_exe = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
N_IN = N_OUT = 10000
C_REPS, PY_REPS = 200, 20

rng = np.random.default_rng(7)
# Scores as a scorer returns them: float32, ID shifted up, OOD overlapping (AUROC ~0.85).
s_in = (rng.standard_normal(N_IN) + 1.5).astype(np.float32)
s_out = rng.standard_normal(N_OUT).astype(np.float32)
y = np.r_[np.ones(N_IN), np.zeros(N_OUT)]
s = np.r_[s_in, s_out]


def sklearn_once():
    auroc = metrics.roc_auc_score(y, s)
    fpr, tpr, _ = metrics.roc_curve(y, s, drop_intermediate=False)
    return auroc, fpr[np.argmax(tpr >= 0.95)]


c_times, py_times = [], []
with tempfile.TemporaryDirectory() as d:
    f_in, f_out = os.path.join(d, "in.npy"), os.path.join(d, "out.npy")
    np.save(f_in, s_in)
    np.save(f_out, s_out)
    sklearn_once()  # warm-up: imports, caches
    for _ in range(rounds):
        res = subprocess.run([bench_exe, f_in, f_out, str(C_REPS)], check=True, capture_output=True, text=True)
        fields = dict(kv.split("=") for kv in res.stdout.split())
        c_times.append(float(fields["median_ms"]))
        c_auroc, c_fpr = float(fields["auroc"]), float(fields["fpr95"])
        for _ in range(PY_REPS):
            t0 = time.perf_counter()
            sk_auroc, sk_fpr = sklearn_once()
            py_times.append((time.perf_counter() - t0) * 1e3)

c_ms = float(np.median(c_times))  # median of the per-round medians of C_REPS calls each
py_ms = float(np.median(py_times))
identical = c_fpr == sk_fpr and abs(c_auroc - sk_auroc) <= 1e-12
print(f"AUROC + FPR95 on {N_IN} ID + {N_OUT} OOD float32 scores; {rounds} alternating rounds "
      f"({C_REPS} C calls, {PY_REPS} sklearn calls each); {platform.machine()}, "
      f"load average {os.getloadavg()[0]:.2f}")
print(f"{'':28s} {'median ms':>10s} {'AUROC':>20s} {'FPR95':>8s}")
print(f"{'libprotood':28s} {c_ms:10.3f} {c_auroc:20.17f} {c_fpr:8.6f}")
print(f"{'scikit-learn ' + sklearn.__version__:28s} {py_ms:10.3f} {sk_auroc:20.17f} {sk_fpr:8.6f}")
print(f"ratio (sklearn / libprotood): {py_ms / c_ms:.1f}x; values "
      f"{'identical' if identical else 'DIFFER'} (|AUROC diff| = {abs(c_auroc - sk_auroc):.1e}, "
      f"FPR95 equal: {c_fpr == sk_fpr}); target >= 5x")
sys.exit(0 if identical else 1)
