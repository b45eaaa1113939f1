"""Scorer anchors: what users run today, on the data of `bench_scorer gen` (bench/scorer_bench.py runs
this and bench_scorer in the same run). Run with /usr/bin/python3 (Debian's numpy, faiss, torch).

    anchors_scorer.py knn DIR D K REPS         FAISS IndexFlatL2, k-th distance of normalised rows
    anchors_scorer.py maha_fit DIR D REPS      numpy: class means, tied covariance, pinvh by eigh
    anchors_scorer.py maha_score DIR D REPS    numpy one-GEMM rewrite of the Mahalanobis score
    anchors_scorer.py maha_openood DIR D REPS  OpenOOD's MDS postprocessor loop in torch

Prints "name rep seconds" per repetition and "name median seconds". Threads: OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS from the environment (the driver sets them; faiss and torch are told too).
"""
import os
import sys
import time

import numpy as np

N_CLASSES = 100


def threads():
    return int(os.environ.get("OMP_NUM_THREADS", "1"))


def report(name, times):
    for t in times:
        print(f"{name} rep {t:.6f}")
    print(f"{name} median {sorted(times)[len(times) // 2]:.6f}")


def normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def load(d, dim):
    x = np.load(os.path.join(d, f"train_{dim}.npy"))
    q = np.load(os.path.join(d, f"test_{dim}.npy"))
    return x, q


def knn(d, dim, k, reps):
    import faiss

    faiss.omp_set_num_threads(threads())
    x, q = load(d, dim)
    index = faiss.IndexFlatL2(dim)
    index.add(np.ascontiguousarray(normalise(x), dtype=np.float32))
    qn = np.ascontiguousarray(normalise(q), dtype=np.float32)
    times = []
    index.search(qn[:256], k)  # warm-up: thread start-up
    for _ in range(reps):
        t0 = time.perf_counter()
        dist, _ = index.search(qn, k)
        scores = -dist[:, -1]
        times.append(time.perf_counter() - t0)
    report("knn", times)
    print(f"knn checksum {float(np.sum(scores, dtype=np.float64)):.6f}")


def pinvh(cov):
    w, v = np.linalg.eigh(cov)
    keep = np.abs(w) > cov.shape[0] * np.finfo(np.float64).eps * np.abs(w).max()
    return (v[:, keep] / w[keep]) @ v[:, keep].T


def maha_fit_numpy(x, y):
    x = normalise(x.astype(np.float64))
    means = np.stack([x[y == c].mean(axis=0) for c in range(N_CLASSES)])
    xc = x - means[y]
    cov = xc.T @ xc / len(x)
    return means, pinvh(cov)


def maha_fit(d, dim, reps):
    x, _ = load(d, dim)
    y = np.load(os.path.join(d, "train_labels.npy"))
    times = []
    maha_fit_numpy(x, y)  # warm-up
    for _ in range(reps):
        t0 = time.perf_counter()
        maha_fit_numpy(x, y)
        times.append(time.perf_counter() - t0)
    report("maha_fit", times)


def maha_score(d, dim, reps):
    """The one-GEMM rewrite: with the precision factored as P = L L^T once at fit time, the class
    scores of all queries come from one product of the projected queries z = q L with the projected
    means (plus the projection itself), instead of a loop over classes."""
    x, q = load(d, dim)
    y = np.load(os.path.join(d, "train_labels.npy"))
    means, prec = maha_fit_numpy(x, y)
    w, v = np.linalg.eigh(prec)
    keep = w > w.max() * dim * np.finfo(np.float64).eps
    lfac = (v[:, keep] * np.sqrt(w[keep])).astype(np.float32)   # prec = L L^T
    pm = (means @ lfac).astype(np.float32)                       # projected means
    pm_sq = np.sum(pm.astype(np.float64) ** 2, axis=1).astype(np.float32)
    times = []
    for rep in range(-1, reps):  # -1: warm-up
        t0 = time.perf_counter()
        z = normalise(q).astype(np.float32) @ lfac
        # max_c -(|z|^2 - 2 z.m_c + |m_c|^2)
        scores = (2.0 * (z @ pm.T) - pm_sq[None, :]).max(axis=1) - np.sum(z * z, axis=1)
        if rep >= 0:
            times.append(time.perf_counter() - t0)
    report("maha_score", times)
    print(f"maha_score checksum {float(np.sum(scores, dtype=np.float64)):.6f}")


def maha_openood(d, dim, reps):
    """OpenOOD's MDS postprocessor: a Python loop over classes, each a (batch x batch) product
    whose diagonal is the score, over data-loader batches of 128."""
    import torch

    torch.set_num_threads(threads())
    x, q = load(d, dim)
    y = np.load(os.path.join(d, "train_labels.npy"))
    means, prec = maha_fit_numpy(x, y)
    means_t = torch.from_numpy(means).float()
    prec_t = torch.from_numpy(prec).float()
    qt = torch.from_numpy(normalise(q).astype(np.float32))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = []
        for b in range(0, len(qt), 128):
            feats = qt[b:b + 128]
            per_class = []
            for c in range(N_CLASSES):
                zero_f = feats - means_t[c]
                per_class.append(-0.5 * torch.mm(torch.mm(zero_f, prec_t), zero_f.t()).diag())
            out.append(torch.stack(per_class, dim=1).max(dim=1)[0])
        scores = torch.cat(out)
        times.append(time.perf_counter() - t0)
    report("maha_openood", times)
    print(f"maha_openood checksum {float(scores.double().sum()):.6f}")


def main():
    cmd, d, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reps = int(sys.argv[-1])
    if cmd == "knn":
        knn(d, dim, int(sys.argv[4]), reps)
    elif cmd == "maha_fit":
        maha_fit(d, dim, reps)
    elif cmd == "maha_score":
        maha_score(d, dim, reps)
    elif cmd == "maha_openood":
        maha_openood(d, dim, reps)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
