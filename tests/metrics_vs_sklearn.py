#!/usr/bin/python3
"""The metrics of libprotood, called through ctypes on the built shared library, against the code
users run today: scikit-learn's roc_auc_score, average_precision_score and roc_curve (every
threshold kept), the KNN paper's sorted-index threshold and PALM's numpy.percentile threshold, on
random float32 scores with heavy ties. Prints a Check-style summary line; exits 1 on any mismatch.

usage: metrics_vs_sklearn.py path/to/libprotood.so.0 [seeds]"""
import ctypes
import sys
import warnings

import numpy as np
from sklearn import metrics

lib = ctypes.CDLL(sys.argv[1])
n_seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 300

F32P = ctypes.POINTER(ctypes.c_float)
D = ctypes.c_double
for name, extra in (("protood_auroc", []), ("protood_aupr", [ctypes.c_int32]),
                    ("protood_fpr_at_tpr", [D, ctypes.c_int32])):
    fn = getattr(lib, name)
    fn.argtypes = [ctypes.c_int64, F32P, ctypes.c_int64, F32P] + extra + [ctypes.POINTER(D)]
    fn.restype = ctypes.c_int32
lib.protood_last_error.restype = ctypes.c_char_p
assert lib.protood_abi_version() == 0

POSITIVE_IN, POSITIVE_OUT = 1, 2
FPR_ROC, FPR_KNN, FPR_PERCENTILE, FPR_OOD_POSITIVE = 0, 1, 2, 3
# (TPR, the percent the published code writes for 1 - TPR)
RATES = [(0.95, 5), (0.9, 10), (0.8, 20), (0.6, 40), (0.5, 50), (0.99, 1), (1.0, 0), (0.3, 70)]

# One check per metric (and FPR convention), failed by any mismatch on any data set, so that the
# summary counts what is being compared, not how many random sets were drawn.
KINDS = ["auroc", "aupr_in", "aupr_out", "fpr roc", "fpr ood", "fpr knn", "fpr pct"]
failures = []
failed_kinds = set()
compared = 0


def check(kind, cond, what):
    global compared
    compared += 1
    if not cond:
        failed_kinds.add(kind)
        failures.append(what)


def call(fn, s_in, s_out, *args):
    out = D(-7.0)
    st = fn(len(s_in), s_in.ctypes.data_as(F32P), len(s_out), s_out.ctypes.data_as(F32P), *args,
            ctypes.byref(out))
    if st != 0:
        raise RuntimeError(f"status {st}: {lib.protood_last_error().decode()}")
    return out.value


def reference(s_in, s_out):
    """Every value as the published code computes it."""
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    s = np.r_[s_in, s_out]
    ref = {"auroc": metrics.roc_auc_score(y, s),
           "aupr_in": metrics.average_precision_score(y, s),
           "aupr_out": metrics.average_precision_score(1 - y, -s)}
    fpr_id, tpr_id, _ = metrics.roc_curve(y, s, drop_intermediate=False)
    fpr_ood, tpr_ood, _ = metrics.roc_curve(1 - y, -s, drop_intermediate=False)  # OpenOOD
    known = np.sort(s_in)
    for tpr, pct in RATES:
        ref[("roc", tpr)] = fpr_id[np.argmax(tpr_id >= tpr)]
        ref[("ood", tpr)] = fpr_ood[np.argmax(tpr_ood >= tpr)]
        # KNN: known[round(0.05 * num_k)]; PALM: np.percentile(known, 5), both with float32 arrays
        k = min(round(pct / 100 * len(known)), len(known) - 1)
        ref[("knn", tpr)] = np.sum(s_out > known[k]) / float(len(s_out))
        ref[("pct", tpr)] = np.sum(s_out > np.percentile(s_in, pct)) / len(s_out)
    return ref


def scores(rng, n, levels, shift, grid):
    if grid:  # few levels: ties within and across the two sets
        return ((rng.integers(0, levels, n) + shift) * 0.25).astype(np.float32)
    return (rng.standard_normal(n) + shift * 0.3).astype(np.float32)


def compare(tag, s_in, s_out):
    ref = reference(s_in, s_out)
    got = call(lib.protood_auroc, s_in, s_out)
    check("auroc", abs(got - ref["auroc"]) <= 1e-12, f"{tag}: auroc {got!r} sklearn {ref['auroc']!r}")
    for key, pos in (("aupr_in", POSITIVE_IN), ("aupr_out", POSITIVE_OUT)):
        got = call(lib.protood_aupr, s_in, s_out, pos)
        check(key, abs(got - ref[key]) <= 1e-12, f"{tag}: {key} {got!r} sklearn {ref[key]!r}")
    for tpr, _ in RATES:
        for key, conv in (("roc", FPR_ROC), ("ood", FPR_OOD_POSITIVE), ("knn", FPR_KNN),
                          ("pct", FPR_PERCENTILE)):
            got = call(lib.protood_fpr_at_tpr, s_in, s_out, tpr, conv)
            want = ref[(key, tpr)]
            check("fpr " + key, got == want, f"{tag}: fpr {key} at {tpr}: {got!r}, reference {want!r}")


rng = np.random.default_rng(20240611)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # sklearn's UndefinedMetricWarning on degenerate tiny cases
    for seed in range(n_seeds):
        n_in = int(rng.integers(1, 2000)) if seed % 5 else int(rng.integers(1, 6))
        n_out = int(rng.integers(1, 2000)) if seed % 7 else int(rng.integers(1, 6))
        levels = int(rng.choice([1, 2, 3, 5, 20, 200, 5000]))
        grid = seed % 10 != 0
        s_in = scores(rng, n_in, levels, int(rng.integers(-1, 2)), grid)
        s_out = scores(rng, n_out, levels, int(rng.integers(-2, 1)), grid)
        compare(f"seed {seed} ({n_in} in, {n_out} out, {levels} levels)", s_in, s_out)
    # PALM's threshold where float32 matters: numpy rounds the neighbours' difference to float32
    # (-0.4, 0.6000001 at 40%), and compares float32 scores with the threshold in float32 (0.1)
    p40 = np.percentile(np.float32([-0.4, 0.6000001]), 40)
    near = np.float32([p40, 3.5e-8, 2.9802322e-08])
    near = np.r_[near, np.nextafter(near, np.float32(1)), np.nextafter(near, np.float32(-1))]
    compare("float32 difference", np.float32([-0.4, 0.6000001]), near)
    compare("float32 comparison", np.float32([0, 1]), np.float32([0.1, 0.2, 0.7, 0.4, 0.5]))
    # the reference case of ../shared/fixtures has its own expected values; here: agreement
    # on a large heavily tied set like the benchmark's
    s_in = np.round(rng.standard_normal(10000) * 20).astype(np.float32) / 20
    s_out = np.round(rng.standard_normal(10000) * 20 - 15).astype(np.float32) / 20
    compare("20k tied", s_in, s_out)

checks = len(KINDS)
pct = 100 * (checks - len(failed_kinds)) // checks
print(f"{compared} values compared on {n_seeds + 3} data sets, {len(failures)} mismatches")
print(f"{pct}%: Checks: {checks}, Failures: {len(failed_kinds)}, Errors: 0")
for f in failures[:50]:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
