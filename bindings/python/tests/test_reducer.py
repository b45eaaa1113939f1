"""Bank.set_reducer and Scorer.set_reducer in one process: the arguments, the callback's
lifetime, a reducer of size 1 (equal to none), ranks simulated by threads summing through shared
memory (against one call on the concatenated rows), and a reducer that raises at each of its
calls in turn: the exception comes out of the library call, which returned E_CALLBACK and left
the bank or scorer as it was. test_distributed.py runs real processes over torch.distributed."""
import copy
import gc
import pickle
import threading
import time
import weakref

import numpy as np
import pytest
import torch

import protood
import protood.torch as ptorch
from support import assert_close, assert_loss, assert_rel


class Boom(Exception):
    pass


def data(seed, n=12, n_classes=3, dim=6):
    g = np.random.default_rng(seed)
    h = (2.0 * g.standard_normal((n, dim))).astype(np.float32)
    y = g.integers(0, n_classes, n).astype(np.int32)
    y[:n_classes] = np.arange(n_classes)
    return h, y


def palm_bank():
    return protood.Bank(3, 2, 6, momentum=0.8, topk=1).init_random("sphere", seed=4)


def cider_bank():
    return protood.Bank(3, 1, 6, momentum=0.5).init_random("sphere", seed=5)


def identity(buf):
    """The sum over one participant."""


class Counting:
    """A reducer of one participant that counts its calls and raises Boom at call `fail_at`."""

    rank, world_size = 0, 1

    def __init__(self, fail_at=None, exc=Boom):
        self.calls, self.fail_at, self.exc = 0, fail_at, exc

    def __call__(self, buf):
        assert buf.dtype == np.float64 and buf.flags.writeable and buf.ndim == 1
        self.calls += 1
        if self.calls - 1 == self.fail_at:
            raise self.exc(f"call {self.fail_at}")


# ---- arguments -----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [palm_bank, lambda: protood.Scorer("knn", 6, k=2)],
                         ids=["bank", "scorer"])
def test_set_reducer_arguments(make):
    h = make()
    name = type(h).__name__
    assert h.reducer is None
    assert h.set_reducer(identity, 0, 1) is h
    assert h.reducer == (identity, 0, 1) and h.reducer.world_size == 1
    fn = Counting()
    h.set_reducer(fn)                       # rank and world_size from the callable's attributes
    assert h.reducer == protood.Reducer(fn, 0, 1)
    with pytest.raises(protood.InvalidArgumentError,
                       match=f"{name}.set_reducer: rank and world_size are required"):
        h.set_reducer(identity)
    with pytest.raises(protood.InvalidArgumentError, match="fn is a int, expected a callable"):
        h.set_reducer(3, 0, 1)
    with pytest.raises(protood.InvalidArgumentError, match=r"rank = 2 outside \[0, size = 2\)"):
        h.set_reducer(identity, 2, 2)
    with pytest.raises(protood.InvalidArgumentError, match="size = 0, must be >= 1"):
        h.set_reducer(identity, 0, 0)
    with pytest.raises(protood.InvalidArgumentError, match="fn is NULL .* rank = 1, size = 2"):
        h.set_reducer(None, 1, 2)
    with pytest.raises(protood.InvalidArgumentError, match="world_size = 4294967296 outside"):
        h.set_reducer(identity, 0, 2**32)
    assert h.reducer == protood.Reducer(fn, 0, 1)   # every failure above left it attached
    h.set_reducer(None)
    assert h.reducer is None


def test_reducer_is_not_copied():
    bank = palm_bank().set_reducer(identity, 0, 1)
    for other in (bank.clone(), copy.copy(bank), copy.deepcopy(bank), pickle.loads(pickle.dumps(bank)),
                  protood.Bank.from_bytes(bank.to_bytes())):
        assert other.reducer is None
        assert np.array_equal(other.prototypes, bank.prototypes)


def test_mahalanobis_fit_needs_n_classes_with_a_reducer():
    h, y = data(1)
    s = protood.Scorer("mahalanobis", 6).set_reducer(identity, 0, 1)
    with pytest.raises(protood.InvalidArgumentError, match="n_classes is required with a reducer"):
        s.fit(h, y)
    s.fit(h, y, n_classes=3)
    assert_rel(s.score(h), protood.Scorer("mahalanobis", 6).fit(h, y).score(h))


def test_what_a_sharded_knn_scorer_cannot_do():
    """docs/distributed.md: a KNN scorer fitted with a reducer holds only its shard."""
    h, _ = data(18, n=20)
    s = protood.Scorer("knn", 6, k=3).set_reducer(Counting()).fit(h)
    for call in (s.to_bytes, lambda: pickle.dumps(s), lambda: s.score_stream([h]),
                 lambda: s.set_reducer(None).score(h)):
        with pytest.raises(protood.StateError, match="shard"):
            call()
    # fit_stream is single-process: with a reducer it refuses rather than fit this rank alone
    counter = Counting()
    with pytest.raises(protood.StateError, match="reducer"):
        s.set_reducer(counter).fit_stream([h[:7], h[7:]])
    assert counter.calls == 0
    # without one, a local fit, which is whole again
    s.set_reducer(None).fit_stream([h[:7], h[7:]])
    assert np.array_equal(s.score(h), protood.Scorer("knn", 6, k=3).fit(h).score(h))


# ---- the callback's lifetime -----------------------------------------------------------------

def test_the_handle_keeps_the_callback_alive():
    calls = []

    def make():
        def fn(buf):
            calls.append(buf.size)
        return fn

    bank = palm_bank()
    fn = make()
    ref = weakref.ref(fn)
    bank.set_reducer(fn, 0, 1)
    del fn
    gc.collect()
    h, y = data(2)
    bank.palm_step(h, y)       # the thunk the library calls is still there
    assert ref() is not None and len(calls) > 0
    bank.set_reducer(Counting())   # replacing it lets the old one go...
    gc.collect()
    assert ref() is None
    fn = make()
    ref = weakref.ref(fn)
    bank.set_reducer(fn, 0, 1)
    del fn, bank               # ...and so does the bank
    gc.collect()
    assert ref() is None


# ---- a reducer of one participant equals none ------------------------------------------------

def test_size_one_reducer_equals_no_reducer():
    h, y = data(3)
    for make, step in ((palm_bank, "palm_step"), (cider_bank, "cider_step")):
        plain, reduced = make(), make().set_reducer(Counting())
        for t in range(3):
            want, got = getattr(plain, step)(h, y), getattr(reduced, step)(h, y)
            # SPEC §8, not bits: PALM's distributed route sums in another order (last-bit changes)
            for what, a, b in zip(want[0]._fields, got[0], want[0]):
                assert_loss(a, b, f"{step} {t} {what}")
            assert_close(got[1], want[1], 1e-4, f"{step} {t} grad", floor=0)
            assert_close(reduced.prototypes, plain.prototypes, 1e-4, f"{step} {t} bank")
        assert reduced.reducer.fn.calls > 0
    q = data(4)[0]
    for kind in ("knn", "mahalanobis", "ssd"):
        plain = protood.Scorer(kind, 6, k=3).fit(h, y, n_classes=3)
        reduced = protood.Scorer(kind, 6, k=3).set_reducer(Counting()).fit(h, y, n_classes=3)
        assert np.array_equal(reduced.score(q), plain.score(q)), kind


# ---- ranks as threads: a reducer that really sums ---------------------------------------------

class ThreadSum:
    """Sum-allreduce among `world` threads of this process: every rank adds the buffers in rank
    order, so all get the same bits. The library releases the GIL, so the ranks' steps overlap."""

    def __init__(self, world):
        self.world = world
        self.barrier = threading.Barrier(world, timeout=30)
        self.bufs = [None] * world

    def reducer(self, rank):
        def fn(buf):
            self.bufs[rank] = buf.copy()
            self.barrier.wait()
            total = sum(self.bufs[1:], self.bufs[0].copy())
            self.barrier.wait()
            buf[:] = total      # in place: the library reads the sums from its own buffer
        return fn


def run_ranks(world, work):
    results, errors = [None] * world, []

    def target(rank):
        try:
            results[rank] = work(rank)
        except BaseException as exc:   # noqa: B902 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and all(not t.is_alive() for t in threads), errors
    return results


@pytest.mark.parametrize("method,make", [("palm_step", palm_bank), ("cider_step", cider_bank)])
def test_thread_ranks_equal_one_process(method, make):
    h, y = data(5, n=17)
    spans = [(0, 6), (6, 17)]
    comm = ThreadSum(2)

    def work(rank):
        bank = make().set_reducer(comm.reducer(rank), rank, 2)
        lo, hi = spans[rank]
        return [(*getattr(bank, method)(h[lo:hi], y[lo:hi]), bank.prototypes) for _ in range(2)]

    got = run_ranks(2, work)
    bank = make()
    for t in range(2):
        losses, grad = getattr(bank, method)(h, y)
        for r, (lo, hi) in enumerate(spans):
            g_losses, g_grad, g_protos = got[r][t]
            for what, a, b in zip(losses._fields, g_losses, losses):
                assert_loss(a, b, f"rank {r} step {t} {what}")
            assert_close(g_grad, grad[lo:hi], 1e-4, f"rank {r} step {t} grad", floor=0)
            assert_close(g_protos, bank.prototypes, 1e-4, f"rank {r} step {t} bank")


def test_thread_ranks_knn_scorer():
    h, _ = data(6, n=20)
    q = data(7)[0]
    comm = ThreadSum(2)

    def work(rank):
        s = protood.Scorer("knn", 6, k=9).set_reducer(comm.reducer(rank), rank, 2)
        return s.fit(h[:5] if rank == 0 else h[5:]).score(q)   # k = 9 exceeds rank 0's shard

    want = protood.Scorer("knn", 6, k=9).fit(h).score(q)
    for got in run_ranks(2, work):
        assert np.array_equal(got, want)


def test_collective_scores_of_one_scorer_do_not_overlap():
    """Scoring a sharded scorer is a collective call: the binding runs them one at a time per
    scorer (without a reducer, scores of one scorer run concurrently: test_scorer.py)."""
    active, peak, lock = [0], [0], threading.Lock()

    def slow(buf):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    h, _ = data(8, n=20)
    s = protood.Scorer("knn", 6, k=3).set_reducer(slow, 0, 1).fit(h)
    want = protood.Scorer("knn", 6, k=3).fit(h).score(h)
    results = run_ranks(4, lambda i: s.score(h))     # four threads, one scorer
    assert peak[0] == 1
    for got in results:
        assert np.array_equal(got, want)


# ---- a reducer that raises --------------------------------------------------------------------

def expect_boom(call, k, func, what):
    with pytest.raises(Boom, match=f"call {k}") as info:
        call()
    # the library's status, E_CALLBACK, rides along as a note on the original exception
    (note,) = info.value.__notes__
    assert note.startswith(f"{func}: reducer returned 1 on rank 0 of 1 (")
    assert note.endswith(f"[callback failed]; the {what} is unchanged")


@pytest.mark.parametrize("method,make,func", [("palm_step", palm_bank, "protood_palm_step"),
                                              ("cider_step", cider_bank, "protood_cider_step")])
def test_raising_reducer_leaves_the_bank_unchanged(method, make, func):
    h, y = data(9)
    counter = Counting()
    getattr(make().set_reducer(counter), method)(h, y)
    assert counter.calls >= 3
    for k in range(counter.calls):
        bank = make()
        before = bank.prototypes
        bank.set_reducer(Counting(fail_at=k))
        expect_boom(lambda: getattr(bank, method)(h, y), k, func, "bank")
        assert np.array_equal(bank.prototypes, before), f"the bank moved (call {k})"
        # nothing else moved either: the next step is that of an untouched bank
        bank.set_reducer(None)
        want = getattr(make(), method)(h, y)
        got = getattr(bank, method)(h, y)
        assert got[0] == want[0] and np.array_equal(got[1], want[1]), f"call {k}"


def test_raising_reducer_in_a_torch_loss():
    h, y = data(10)
    bank = palm_bank().set_reducer(Counting(fail_at=4))
    before = bank.prototypes
    crit = ptorch.PALMLoss(bank)
    x = torch.from_numpy(h).requires_grad_(True)
    expect_boom(lambda: crit(x, torch.from_numpy(y)), 4, "protood_palm_step", "bank")
    assert crit.last_losses is None and np.array_equal(bank.prototypes, before)


def test_keyboard_interrupt_in_the_reducer_propagates():
    h, y = data(11)
    bank = palm_bank().set_reducer(Counting(fail_at=0, exc=KeyboardInterrupt))
    before = bank.prototypes
    with pytest.raises(KeyboardInterrupt):
        bank.palm_step(h, y)
    assert np.array_equal(bank.prototypes, before)


@pytest.mark.parametrize("kind", ["knn", "mahalanobis", "ssd"])
def test_raising_reducer_leaves_the_scorer_unchanged(kind):
    h, y = data(12, n=20)
    q = data(13)[0]
    counter = Counting()
    protood.Scorer(kind, 6, k=3).set_reducer(counter).fit(h, y, n_classes=3)
    fits = counter.calls
    fitted = protood.Scorer(kind, 6, k=3).set_reducer(Counting()).fit(h[:10], y[:10], n_classes=3)
    old = fitted.score(q)
    for k in range(fits):
        fresh = protood.Scorer(kind, 6, k=3).set_reducer(Counting(fail_at=k))
        expect_boom(lambda: fresh.fit(h, y, n_classes=3), k, "protood_scorer_fit", "scorer")
        with pytest.raises(protood.StateError, match="not fitted"):
            fresh.set_reducer(None).score(q)
        fitted.set_reducer(Counting(fail_at=k))      # a failed refit keeps the old model
        expect_boom(lambda: fitted.fit(h, y, n_classes=3), k, "protood_scorer_fit", "scorer")
        fitted.set_reducer(Counting())
        assert np.array_equal(fitted.score(q), old)


def test_raising_reducer_while_scoring_a_sharded_knn_scorer():
    h, _ = data(14, n=20)
    q = data(15)[0]
    s = protood.Scorer("knn", 6, k=3).set_reducer(Counting()).fit(h)
    want = s.score(q)
    s.set_reducer(Counting())
    s.score(q)
    for k in range(s.reducer.fn.calls):
        s.set_reducer(Counting(fail_at=k))
        expect_boom(lambda: s.score(q), k, "protood_scorer_score", "scorer")
    s.set_reducer(Counting())
    assert np.array_equal(s.score(q), want)


def test_own_error_comes_first_when_the_reducer_also_fails():
    """A rank with a bad label still joins the argument check's exchange; if the reducer fails
    there too, the label error is the answer and the reducer's exception its context."""
    h, y = data(16)
    bank = palm_bank().set_reducer(Counting(fail_at=0))
    before = bank.prototypes
    y[4] = 7
    with pytest.raises(protood.LabelError, match=r"labels\[4\] = 7") as info:
        bank.palm_step(h, y)
    assert isinstance(info.value.__context__, Boom)
    assert np.array_equal(bank.prototypes, before)
    # and the kept exception does not leak into the next call
    y[4] = 0
    bank.palm_step(h, y)


# ---- protood.torch ------------------------------------------------------------------------------

def test_distributed_reducer_needs_an_initialised_group():
    assert not torch.distributed.is_initialized()
    with pytest.raises(RuntimeError, match="torch.distributed is not initialised"):
        ptorch.DistributedReducer()


def test_load_state_dict_keeps_the_reducer():
    fn = Counting()
    crit = ptorch.PALMLoss(palm_bank().set_reducer(fn))
    other = ptorch.PALMLoss(palm_bank().init_random("sphere", seed=9))
    crit.load_state_dict(other.state_dict())
    assert crit.bank.reducer == protood.Reducer(fn, 0, 1)
    assert np.array_equal(crit.bank.prototypes, other.bank.prototypes)
    h, y = data(17)
    crit(torch.from_numpy(h), torch.from_numpy(y))
    assert fn.calls > 0
