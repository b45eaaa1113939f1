"""Data parallelism over torch.distributed: 2 and 3 processes (gloo, file:// rendezvous in a
temporary directory) run distributed_worker.py, and what each rank saw must equal one process
running the same library calls, without a reducer, on the concatenated rows (SPEC.md §8)."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import protood
import protood.torch as ptorch
import distributed_worker as w
from support import assert_close, assert_loss, assert_rel

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_worker.py")
# Well above a normal run (seconds) and above the workers' own gloo timeout, so that a hung
# collective is reported by the workers themselves; this only catches a worker that hangs anyway.
DEADLINE_S = 150


def launch(world, tmp, *args):
    """Run `world` workers; return their results by rank. The first worker to fail stops the
    others at once (they would otherwise wait for it in all_reduce until the gloo timeout)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", BLIS_NUM_THREADS="1",
               GLOO_SOCKET_IFNAME="lo", PYTHONDONTWRITEBYTECODE="1")
    init = tmp / "rendezvous"
    outs = [tmp / f"rank{r}.npz" for r in range(world)]
    logs = [open(tmp / f"rank{r}.log", "w+") for r in range(world)]
    procs = [subprocess.Popen([sys.executable, WORKER, str(r), str(world), str(init), str(outs[r]),
                               *args],
                              stdout=logs[r], stderr=subprocess.STDOUT, env=env)
             for r in range(world)]
    start = time.monotonic()
    failure = None
    try:
        while failure is None:
            codes = [p.poll() for p in procs]
            failed = [r for r, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                failure = f"ranks {failed} failed"
            elif None not in codes:
                break
            elif time.monotonic() - start > DEADLINE_S:
                failure = f"no result after {DEADLINE_S} s"
            time.sleep(0.05)
    finally:
        # whatever happened here (an interrupt too): no worker outlives the test
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        texts = []
        for r, log in enumerate(logs):
            log.seek(0)
            texts.append(f"--- rank {r} (exit {procs[r].returncode}):\n{log.read()[-4000:]}")
            log.close()
    if failure is not None:
        pytest.fail(f"{failure}\n" + "\n".join(texts), pytrace=False)
    return [dict(np.load(path)) for path in outs]


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def ranks(request, tmp_path_factory):
    world = request.param
    start = time.monotonic()
    results = launch(world, tmp_path_factory.mktemp(f"dist{world}"))
    print(f"\n{world} ranks: {time.monotonic() - start:.1f} s")
    return world, results


def single_steps(criterion, batches):
    """The reference: one process, no reducer, every step on the whole batch."""
    want = []
    for h, y in batches:
        x = torch.from_numpy(h.copy()).requires_grad_(True)
        loss = criterion(x, torch.from_numpy(y))
        loss.backward()
        want.append((criterion.last_losses, x.grad.numpy(), criterion.bank.prototypes))
    return want


def check_steps(name, world, results, want):
    for t, (losses, grad, protos) in enumerate(want):
        for r, (lo, hi) in enumerate(w.shares(w.BATCH_ROWS[world])):
            got = results[r]
            item, *parts = got[f"{name}/loss/{t}"]
            for what, g, e in zip(losses._fields, parts, losses):
                assert_loss(g, e, f"rank {r} step {t} {what}")
            assert_loss(item, losses.total, f"rank {r} step {t} loss tensor")
            assert_close(got[f"{name}/grad/{t}"], grad[lo:hi], 1e-4, f"rank {r} step {t} grad",
                         floor=0)
            assert_close(got[f"{name}/protos/{t}"], protos, 1e-4, f"rank {r} step {t} bank")
            # every rank computes P' from the same exchanged sums: the banks agree bit for bit
            assert np.array_equal(got[f"{name}/protos/{t}"], results[0][f"{name}/protos/{t}"])


def test_reducer_rank_and_size(ranks):
    world, results = ranks
    assert [list(res["rank"]) for res in results] == [[r, world] for r in range(world)]


def test_palm_steps_equal_one_process(ranks):
    world, results = ranks
    want = single_steps(ptorch.PALMLoss(w.palm_bank()), [w.palm_batch(t) for t in range(w.STEPS)])
    check_steps("palm", world, results, want)


def test_cider_steps_equal_one_process(ranks):
    world, results = ranks
    want = single_steps(ptorch.CIDERLoss(w.cider_bank()),
                        [w.cider_batch(t) for t in range(w.STEPS)])
    check_steps("cider", world, results, want)


def test_ddp_gradient_times_world_size_is_the_global_gradient(ranks):
    """docs/distributed.md: DDP averages parameter gradients over the ranks, and each rank's
    share is already one of the global loss, so (loss * world_size).backward() under DDP gives
    the single-process gradient of the whole batch."""
    world, results = ranks
    weight, bias, x, y = w.ddp_case()
    model = torch.nn.Linear(w.DDP_IN, w.PALM["dim"])
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(weight))
        model.bias.copy_(torch.from_numpy(bias))
    criterion = ptorch.PALMLoss(w.palm_bank())
    loss = criterion(model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    for r, got in enumerate(results):
        assert_loss(float(got["ddp/loss"]), loss.item(), f"rank {r} loss")
        assert_close(got["ddp/weight_grad"], model.weight.grad.numpy(), 1e-4,
                     f"rank {r} weight grad", floor=0)
        assert_close(got["ddp/bias_grad"], model.bias.grad.numpy(), 1e-4, f"rank {r} bias grad",
                     floor=0)


def test_sharded_scorers_equal_one_fit_on_the_union(ranks):
    world, results = ranks
    x, y, q = w.scorer_data(world)
    knn = protood.Scorer("knn", w.PALM["dim"], k=w.KNN_K).fit(x).score(q)
    maha = protood.Scorer("mahalanobis", w.PALM["dim"]).fit(x, y, w.MAHA_CLASSES).score(q)
    ssd = protood.Scorer("ssd", w.PALM["dim"]).fit(x).score(q)
    for r, got in enumerate(results):
        # the k-th smallest of the ranks' candidates is the single-process score, bit for bit
        assert np.array_equal(got["knn"], knn), f"rank {r} knn"
        assert_rel(got["mahalanobis"], maha, 1e-4, f"rank {r} mahalanobis")
        assert_rel(got["ssd"], ssd, 1e-4, f"rank {r} ssd")


def test_reducer_over_a_subgroup(ranks):
    """DistributedReducer(group) on the group of ranks 1.. : rank and size within the group, and
    a KNN scorer sharded over it equals one fit on those ranks' rows; rank 0 is refused."""
    world, results = ranks
    assert "not a member of the group" in str(results[0]["group/error"])
    assert "group/knn" not in results[0]
    assert [list(results[r]["group/rank"]) for r in range(1, world)] == \
        [[r - 1, world - 1] for r in range(1, world)]
    x, _, q = w.scorer_data(world)
    first = w.shares(w.TRAIN_ROWS[world])[1][0]
    want = protood.Scorer("knn", w.PALM["dim"], k=w.KNN_K).fit(x[first:]).score(q)
    for r in range(1, world):
        assert np.array_equal(results[r]["group/knn"], want), f"rank {r}"


def test_a_rank_whose_reducer_raises(tmp_path):
    """Rank 1's reducer raises in the step's first exchange: rank 1 gets its own exception, and
    rank 0, left alone in all_reduce, gets gloo's timeout error instead of hanging; the library
    returned E_CALLBACK on both and neither bank moved."""
    start = time.monotonic()
    rank0, rank1 = launch(2, tmp_path, "--fail")
    print(f"\nfailure run: {time.monotonic() - start:.1f} s")
    assert str(rank1["type"]) == "GaveUp" and str(rank1["message"]) == "rank 1 gives up"
    assert str(rank0["type"]) == "RuntimeError"
    assert "Timed out" in str(rank0["message"]), str(rank0["message"])
    assert w.FAIL_TIMEOUT_S - 0.5 <= float(rank0["seconds"]) < w.TIMEOUT_S
    for r, got in enumerate((rank0, rank1)):
        (note,) = got["notes"]
        assert str(note).startswith(f"protood_palm_step: reducer returned 1 on rank {r} of 2 ")
        assert str(note).endswith("[callback failed]; the bank is unchanged")
        assert bool(got["unchanged"])
