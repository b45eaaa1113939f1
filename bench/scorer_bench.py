"""Scorer benchmarks: libprotood against the anchors of ../shared/BENCH.md, same data, same run, at 1
and 2 threads, medians of repetitions, and the ratios. Run with Debian's Python:

    meson setup build/bench -Dbench=true && meson compile -C build/bench
    /usr/bin/python3 bench/scorer_bench.py build/bench [--only knn128,maha128,...] [--reps N]

Each measurement is a fresh process with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = threads, so the
library, FAISS, numpy and torch see the same thread budget. OpenBLAS's DYNAMIC_ARCH does not
recognise every CPU (on an unknown one it falls back to its SSE3 "Prescott" kernels, 2-3x slower);
OPENBLAS_CORETYPE=Haswell (AVX2 + FMA, what OpenBLAS picks on the Zen 3 machines of BENCH.md) is
set for every process unless the environment already sets it, so libprotood and the anchors use
the same GEMM kernels either way.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = os.path.join(HERE, "anchors_scorer.py")
PYTHON = "/usr/bin/python3"


def run(cmd, threads, passive=False):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env.setdefault("OPENBLAS_CORETYPE", "Haswell")
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    medians, checks = {}, {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "median":
            medians[parts[0]] = float(parts[2])
        if len(parts) == 3 and parts[1] == "checksum":
            checks[parts[0]] = float(parts[2])
    return medians, checks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builddir")
    ap.add_argument("--only", default="knn128,knn512,knn128k300,maha128,maha512")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--data", default=None, help="directory for the data sets (default: a temporary one)")
    args = ap.parse_args()
    exe = os.path.join(args.builddir, "bench", "bench_scorer")
    only = set(args.only.split(","))
    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="protood-bench-")
        data = tmp.name
    if not os.path.exists(os.path.join(data, "test_512.npy")):
        subprocess.run([exe, "gen", data], check=True)

    rows = []  # (task, threads, ours, anchor name, anchor, target note)

    def add(task, t, ours, anchor_name, anchor, note=""):
        rows.append((task, t, ours, anchor_name, anchor, note))
        print(f"  {task:34s} {t}T  libprotood {ours:8.4f} s   {anchor_name} {anchor:8.4f} s   "
              f"x{anchor / ours:6.2f}  {note}", file=sys.stderr)

    r = args.reps
    for t in [int(x) for x in args.threads.split(",")]:
        for dim, k, tag in [(128, 50, "knn128"), (512, 50, "knn512"), (128, 300, "knn128k300")]:
            if tag not in only:
                continue
            ours, ck_ours = run([exe, "knn", data, str(dim), str(k), str(r)], t)
            faiss, ck_faiss = run([PYTHON, ANCHORS, "knn", data, str(dim), str(k), str(r)], t)
            sgemm, _ = run([exe, "sgemm", data, str(dim), str(r)], t)
            # same scores (the sums of 10k scores agree to float32 rounding)
            agree = abs(ck_ours["knn"] - ck_faiss["knn"]) <= 1e-4 * abs(ck_faiss["knn"])
            task = f"KNN 50k x 10k D={dim} k={k}"
            add(task, t, ours["knn"], "FAISS IndexFlatL2", faiss["knn"], "scores agree" if agree else
                f"SCORES DIFFER {ck_ours['knn']} vs {ck_faiss['knn']}")
            if t > 1:
                passive, _ = run([PYTHON, ANCHORS, "knn", data, str(dim), str(k), str(r)], t, passive=True)
                add(task, t, ours["knn"], "FAISS, OMP_WAIT_POLICY=PASSIVE", passive["knn"])
            add(task, t, ours["knn"], "bare sgemm", sgemm["sgemm"],
                f"libprotood / sgemm = {ours['knn'] / sgemm['sgemm']:.3f}")
        for dim, tag in [(128, "maha128"), (512, "maha512")]:
            if tag not in only:
                continue
            ours, _ = run([exe, "maha_fit", data, str(dim), str(r)], t)
            numpy_fit, _ = run([PYTHON, ANCHORS, "maha_fit", data, str(dim), str(r)], t)
            add(f"Mahalanobis fit 50k D={dim} C=100", t, ours["maha_fit"], "numpy", numpy_fit["maha_fit"])
            ours, ck_ours = run([exe, "maha_score", data, str(dim), str(max(r, 5))], t)
            gemm, ck_gemm = run([PYTHON, ANCHORS, "maha_score", data, str(dim), str(max(r, 5))], t)
            agree = abs(ck_ours["maha_score"] - ck_gemm["maha_score"]) <= 1e-4 * abs(ck_gemm["maha_score"])
            task = f"Mahalanobis score 10k D={dim} C=100"
            add(task, t, ours["maha_score"], "numpy one-GEMM", gemm["maha_score"],
                "scores agree" if agree else f"SCORES DIFFER {ck_ours['maha_score']} vs {ck_gemm['maha_score']}")
            if dim == 128:
                loop, _ = run([PYTHON, ANCHORS, "maha_openood", data, str(dim), "1"], t)
                add(task, t, ours["maha_score"], "OpenOOD torch loop", loop["maha_openood"])

    print("| task | threads | libprotood (s) | anchor | anchor (s) | speed-up | note |")
    print("|---|---|---|---|---|---|---|")
    for task, t, ours, name, anchor, note in rows:
        print(f"| {task} | {t} | {ours:.4f} | {name} | {anchor:.4f} | {anchor / ours:.2f}x | {note} |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
