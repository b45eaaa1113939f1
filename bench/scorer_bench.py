"""Scorer benchmarks: libprotood against the anchors of ../shared/BENCH.md, same data, same run, at 1
and 2 threads, medians of repetitions, and the ratios. Run with Debian's Python:

    meson setup build/bench -Dbench=true && meson compile -C build/bench
    /usr/bin/python3 bench/scorer_bench.py build/bench [--only knn128,maha128,...] [--reps N]

Each measurement is a fresh process with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = threads, so the
library, FAISS, numpy and torch see the same thread budget. The tools are interleaved round by
round (each process: one warm-up, then timed repetitions) and the medians over rounds compared, so
that load from other users of a shared machine hits libprotood and its anchor alike. OpenBLAS's DYNAMIC_ARCH does not
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
    """One process; returns its medians and checksums."""
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

    def rounds(cmds, t, n):
        """Run every command of `cmds` (name -> (argv, passive)) once per round, n rounds, the
        tools interleaved so that a neighbour's load hits all of them alike; each process times
        one repetition after a warm-up. Returns name -> (median seconds, last checksums)."""
        times = {name: [] for name in cmds}
        checks = {}
        for _ in range(n):
            for name, (argv, passive) in cmds.items():
                med, ck = run(argv, t, passive)
                times[name].append(next(iter(med.values())))
                checks[name] = ck
        return {name: (sorted(v)[len(v) // 2], checks[name]) for name, v in times.items()}

    def add(task, t, ours, anchor_name, anchor, note=""):
        rows.append((task, t, ours, anchor_name, anchor, note))
        print(f"  {task:34s} {t}T  libprotood {ours:8.4f} s   {anchor_name} {anchor:8.4f} s   "
              f"x{anchor / ours:6.2f}  {note}", file=sys.stderr)

    r = args.reps
    for t in [int(x) for x in args.threads.split(",")]:
        for dim, k, tag in [(128, 50, "knn128"), (512, 50, "knn512"), (128, 300, "knn128k300")]:
            if tag not in only:
                continue
            cmds = {
                "ours": ([exe, "knn", data, str(dim), str(k), "1"], False),
                "faiss": ([PYTHON, ANCHORS, "knn", data, str(dim), str(k), "1"], False),
                "sgemm": ([exe, "sgemm", data, str(dim), "1"], False),
                "tiled": ([exe, "sgemm_tiled", data, str(dim), "1"], False),
            }
            if t > 1:
                cmds["passive"] = ([PYTHON, ANCHORS, "knn", data, str(dim), str(k), "1"], True)
            res = rounds(cmds, t, r)
            ours = res["ours"][0]
            # same scores: the sums of 10k scores agree to float32 rounding
            a, b = res["ours"][1]["knn"], res["faiss"][1]["knn"]
            agree = abs(a - b) <= 1e-4 * abs(b)
            task = f"KNN 50k x 10k D={dim} k={k}"
            add(task, t, ours, "FAISS IndexFlatL2", res["faiss"][0],
                "scores agree" if agree else f"SCORES DIFFER {a} vs {b}")
            if t > 1:
                add(task, t, ours, "FAISS, OMP_WAIT_POLICY=PASSIVE", res["passive"][0])
            add(task, t, ours, "bare sgemm (full 2 GB output)", res["sgemm"][0],
                f"libprotood / sgemm = {ours / res['sgemm'][0]:.3f}")
            add(task, t, ours, "same sgemm in the KNN's tiles", res["tiled"][0],
                f"selection overhead {100 * (ours / res['tiled'][0] - 1):.0f}%")
        for dim, tag in [(128, "maha128"), (512, "maha512")]:
            if tag not in only:
                continue
            reps = str(max(r, 5))
            cmds = {
                "fit": ([exe, "maha_fit", data, str(dim), reps], False),
                "numpy_fit": ([PYTHON, ANCHORS, "maha_fit", data, str(dim), reps], False),
                "score": ([exe, "maha_score", data, str(dim), reps], False),
                "numpy_score": ([PYTHON, ANCHORS, "maha_score", data, str(dim), reps], False),
            }
            if dim == 128:
                cmds["openood"] = ([PYTHON, ANCHORS, "maha_openood", data, str(dim), "1"], False)
            res = rounds(cmds, t, 1 if r < 3 else 3)
            add(f"Mahalanobis fit 50k D={dim} C=100", t, res["fit"][0], "numpy", res["numpy_fit"][0])
            a, b = res["score"][1]["maha_score"], res["numpy_score"][1]["maha_score"]
            agree = abs(a - b) <= 1e-4 * abs(b)
            task = f"Mahalanobis score 10k D={dim} C=100"
            add(task, t, res["score"][0], "numpy one-GEMM", res["numpy_score"][0],
                "scores agree" if agree else f"SCORES DIFFER {a} vs {b}")
            if dim == 128:
                add(task, t, res["score"][0], "OpenOOD torch loop", res["openood"][0])

    print("| task | threads | libprotood (s) | anchor | anchor (s) | speed-up | note |")
    print("|---|---|---|---|---|---|---|")
    for task, t, ours, name, anchor, note in rows:
        print(f"| {task} | {t} | {ours:.4f} | {name} | {anchor:.4f} | {anchor / ours:.2f}x | {note} |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
