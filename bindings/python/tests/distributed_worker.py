"""One rank of the torch.distributed tests (test_distributed.py), and the data both sides use.

    distributed_worker.py RANK WORLD_SIZE INIT_FILE OUT.npz [--fail]

Joins a gloo process group through a file:// rendezvous, attaches a
protood.torch.DistributedReducer to its banks and scorers, runs this rank's share of every case
below and saves what it saw (losses, gradients of its rows, prototypes, scores) to OUT.npz. The
test compares those with a single process on the concatenated rows; nothing is compared here.
With --fail, the last rank's reducer raises instead and the others meet gloo's timeout.
"""
import datetime
import faulthandler
import os
import sys
import time

import numpy as np

# A peer that died leaves the others in all_reduce: gloo gives up after this, so a broken run
# fails (the test also kills the survivors as soon as one rank exits with an error).
TIMEOUT_S = 60
FAIL_TIMEOUT_S = 3     # the --fail run's step waits this long for the rank that gave up
STEPS = 3

# Uneven shares, so that the global N (not R times the local one) is what the steps must use.
BATCH_ROWS = {2: [7, 10], 3: [5, 8, 4]}          # 17 rows per step
TRAIN_ROWS = {2: [13, 17], 3: [6, 14, 10]}       # 30 training rows; k = 8 exceeds a 6-row shard
N_QUERIES = 12
KNN_K = 8

PALM = dict(n_classes=3, protos_per_class=4, dim=8, momentum=0.9, topk=2, lambda_pcon=1.0)
CIDER = dict(n_classes=4, protos_per_class=1, dim=8, momentum=0.5)
MAHA_CLASSES = 4
DDP_IN = 6


def shares(counts):
    """[(first, last)) row ranges of each rank."""
    ends = np.cumsum(counts)
    return [(int(e - c), int(e)) for c, e in zip(counts, ends)]


def _bank(params, seed):
    import protood
    bank = protood.Bank(**params)
    g = np.random.default_rng(seed)
    p = g.standard_normal((bank.n_prototypes, bank.dim))
    bank.prototypes = (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)
    return bank


def palm_bank():
    return _bank(PALM, 100)


def cider_bank():
    return _bank(CIDER, 200)


def batch(seed, n_classes, dim, n=17):
    """Raw feature rows (not unit norm: the step normalises them) and labels, every class present."""
    g = np.random.default_rng(seed)
    h = (3.0 * g.standard_normal((n, dim))).astype(np.float32)
    y = g.integers(0, n_classes, n).astype(np.int64)
    y[:n_classes] = np.arange(n_classes)
    return h, y


def palm_batch(step):
    return batch(300 + step, PALM["n_classes"], PALM["dim"])


def cider_batch(step):
    return batch(400 + step, CIDER["n_classes"], CIDER["dim"])


def ddp_case():
    """A linear projector (weight, bias), its inputs and labels, for the DDP gradient check."""
    g = np.random.default_rng(500)
    weight = (0.5 * g.standard_normal((PALM["dim"], DDP_IN))).astype(np.float32)
    bias = (0.1 * g.standard_normal(PALM["dim"])).astype(np.float32)
    x = g.standard_normal((17, DDP_IN)).astype(np.float32)
    y = g.integers(0, PALM["n_classes"], 17).astype(np.int64)
    y[:PALM["n_classes"]] = np.arange(PALM["n_classes"])
    return weight, bias, x, y


def scorer_data(world):
    """Training rows and labels in rank order, and queries. The last class has rows on the last
    rank only: the global fit must still see it."""
    g = np.random.default_rng(600)
    n = sum(TRAIN_ROWS[world])
    x = (g.standard_normal((n, PALM["dim"])) + 0.5).astype(np.float32)
    last = shares(TRAIN_ROWS[world])[-1][0]
    y = g.integers(0, MAHA_CLASSES - 1, n)
    y[last:] = g.integers(0, MAHA_CLASSES, n - last)
    y[-1] = MAHA_CLASSES - 1
    y[:MAHA_CLASSES - 1] = np.arange(MAHA_CLASSES - 1)
    q = (g.standard_normal((N_QUERIES, PALM["dim"])) + 0.5).astype(np.float32)
    return x, y.astype(np.int32), q


def _steps(out, name, criterion, batches, lo, hi):
    import torch
    for t, (h, y) in enumerate(batches):
        x = torch.from_numpy(h[lo:hi].copy()).requires_grad_(True)
        loss = criterion(x, torch.from_numpy(y[lo:hi]))
        loss.backward()
        out[f"{name}/loss/{t}"] = np.array([loss.item(), *criterion.last_losses])
        out[f"{name}/grad/{t}"] = x.grad.numpy()
        out[f"{name}/protos/{t}"] = criterion.bank.prototypes


def _ddp(out, reducer, world, lo, hi):
    """A linear projector under DDP, whose parameter gradients DDP averages over the ranks; the
    loss is already the global one. (A function of its own: DDP holds the process group, and
    must be gone before the group is torn down.)"""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    import protood.torch as ptorch

    weight, bias, x, y = ddp_case()
    model = torch.nn.Linear(DDP_IN, PALM["dim"])
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(weight))
        model.bias.copy_(torch.from_numpy(bias))
    ddp = DistributedDataParallel(model)
    criterion = ptorch.PALMLoss(palm_bank().set_reducer(reducer))
    loss = criterion(ddp(torch.from_numpy(x[lo:hi])), torch.from_numpy(y[lo:hi]))
    (loss * world).backward()
    out["ddp/loss"] = np.array(loss.item())
    out["ddp/weight_grad"] = model.weight.grad.numpy()
    out["ddp/bias_grad"] = model.bias.grad.numpy()


def run(rank, world, init_file):
    import torch
    import torch.distributed as dist

    import protood
    import protood.torch as ptorch

    torch.set_num_threads(1)
    protood.set_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    reducer = ptorch.DistributedReducer()
    out = {"rank": np.array([reducer.rank, reducer.world_size])}
    lo, hi = shares(BATCH_ROWS[world])[rank]

    _steps(out, "palm", ptorch.PALMLoss(palm_bank().set_reducer(reducer)),
           [palm_batch(t) for t in range(STEPS)], lo, hi)
    _steps(out, "cider", ptorch.CIDERLoss(cider_bank().set_reducer(reducer)),
           [cider_batch(t) for t in range(STEPS)], lo, hi)

    _ddp(out, reducer, world, lo, hi)

    tx, ty, q = scorer_data(world)
    a, b = shares(TRAIN_ROWS[world])[rank]
    knn = protood.Scorer("knn", PALM["dim"], k=KNN_K).set_reducer(reducer)
    out["knn"] = knn.fit(tx[a:b]).score(q)
    maha = protood.Scorer("mahalanobis", PALM["dim"]).set_reducer(reducer)
    out["mahalanobis"] = maha.fit(tx[a:b], ty[a:b], n_classes=MAHA_CLASSES).score(q)
    ssd = protood.Scorer("ssd", PALM["dim"]).set_reducer(reducer)
    out["ssd"] = ssd.fit(tx[a:b]).score(q)

    # The group of ranks 1.. (group ranks from 0), rank 0 outside; new_group is collective.
    group = dist.new_group(list(range(1, world)))
    try:
        sub = ptorch.DistributedReducer(group)
    except ValueError as exc:
        out["group/error"] = np.array(str(exc))
    else:
        out["group/rank"] = np.array([sub.rank, sub.world_size])
        knn = protood.Scorer("knn", PALM["dim"], k=KNN_K).set_reducer(sub)
        out["group/knn"] = knn.fit(tx[a:b]).score(q)

    # No rank leaves while another still uses the group: a gloo group torn down under a peer's
    # feet can block in its destructor.
    dist.barrier()
    dist.destroy_process_group()
    return out


class GaveUp(Exception):
    pass


def run_failure(rank, world, init_file, path):
    """The last rank's reducer raises at its first call, so that rank leaves the step at once
    and stays alive, silent, until rank 0 has written its result: the other ranks wait in their
    first all_reduce until the group's timeout. Every rank records its exception and whether
    its bank moved."""
    import torch.distributed as dist

    import protood
    import protood.torch as ptorch

    protood.set_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    dist.barrier()    # start the short timeout only once everybody is here
    group = dist.new_group(timeout=datetime.timedelta(seconds=FAIL_TIMEOUT_S))

    def give_up(buf):
        raise GaveUp(f"rank {rank} gives up")

    bank = palm_bank()
    before = bank.prototypes
    bank.set_reducer(give_up if rank == world - 1 else ptorch.DistributedReducer(group),
                     rank, world)
    lo, hi = shares(BATCH_ROWS[world])[rank]
    h, y = palm_batch(0)
    start = time.monotonic()
    try:
        bank.palm_step(h[lo:hi], y[lo:hi])
    except Exception as exc:   # noqa: B902 - what came out is the result
        out = {"type": np.array(type(exc).__name__), "message": np.array(str(exc)),
               "notes": np.array(getattr(exc, "__notes__", [])),
               "seconds": np.array(time.monotonic() - start),
               "unchanged": np.array(np.array_equal(bank.prototypes, before))}
    else:
        out = {"type": np.array("no exception")}
    if rank == world - 1:
        first = os.path.join(os.path.dirname(path), "rank0.npz")    # test_distributed.launch
        while not os.path.exists(first) and time.monotonic() - start < TIMEOUT_S:
            time.sleep(0.05)
    return out


def main(argv):
    rank, world, init_file, path = int(argv[1]), int(argv[2]), argv[3], argv[4]
    # A hang that gloo's timeout does not cover: print every thread's stack and exit non-zero.
    faulthandler.dump_traceback_later(TIMEOUT_S + 15, exit=True)
    if argv[5:] == ["--fail"]:
        np.savez(path, **run_failure(rank, world, init_file, path))
    else:
        np.savez(path, **run(rank, world, init_file))


if __name__ == "__main__":
    main(sys.argv)
