"""Scorer: parameters, fitting, streams through the C callback, persistence, pickling, threads."""
import copy
import ctypes
import pickle
import threading
import time

import numpy as np
import pytest

import protood
from support import assert_rel


def data(seed=0, n=200, m=60, d=16, classes=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 3
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(size=(n, d))
    q = rng.normal(size=(m, d)) * 2
    return x.astype(np.float32), y, q.astype(np.float32)


def knn_reference(x, q, k):
    """SPEC §6 KNN in float64: -|q - x_(k)|^2 on normalised rows."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    d2 = ((qn[:, None, :].astype(np.float64) - xn[None, :, :]) ** 2).sum(-1)
    return -np.sort(d2, axis=1)[:, k - 1]


def test_kinds_and_parameters():
    for name, const in [("knn", protood.KNN), ("mahalanobis", protood.MAHALANOBIS),
                        ("ssd", protood.SSD), ("prototype", protood.PROTOTYPE)]:
        assert protood.Scorer(name, 4).kind == name
        assert protood.Scorer(const, 4).kind == name
    s = protood.Scorer("KNN", 4)
    assert s.k == 50 and s.normalize is True and s.dim == 4
    s.k = 3
    s.normalize = False
    assert (s.k, s.normalize) == (3, False)
    assert protood.Scorer("knn", 4, k=7, normalize=False).k == 7
    assert "kind=knn" in repr(s)


def test_knn_against_numpy():
    x, _, q = data()
    s = protood.Scorer("knn", 16, k=5).fit(x)
    assert_rel(s.score(q), knn_reference(x, q, 5))
    assert_rel(s(q[3]), knn_reference(x, q[3:4], 5))      # one 1-D row, through __call__


def test_stream_fit_and_score_equal_in_memory_bit_for_bit():
    x, y, q = data(1)
    for kind in ("knn", "ssd", "mahalanobis"):
        ref = protood.Scorer(kind, 16, k=4)
        ref.fit(x, y if kind == "mahalanobis" else None, 4)
        want = ref.score(q)
        pieces = [x[:7], x[7:70], x[70:71], x[71:]]           # uneven sizes, re-cut by the binding
        if kind == "mahalanobis":
            pieces = [(p, y[i:i + len(p)]) for p, i in zip(pieces, [0, 7, 70, 71])]
        s = protood.Scorer(kind, 16, k=4)
        s.fit_stream(pieces, batch_size=16, n_classes=4)         # n from the list
        assert np.array_equal(s.score(q), want), kind
        s2 = protood.Scorer(kind, 16, k=4)
        s2.fit_stream(iter(pieces), n=len(x), batch_size=50, n_classes=4)
        assert np.array_equal(s2.score(q), want), kind
        got = s.score_stream((q[i:i + 9] for i in range(0, len(q), 9)), m=len(q), batch_size=4)
        assert got.dtype == np.float32 and np.array_equal(got, want), kind


def test_stream_from_a_function():
    x, _, q = data(2)
    calls = []

    def rows(first, count):
        calls.append((first, count))
        return x[first:first + count].astype(np.float64)

    s = protood.Scorer("knn", 16, k=3).fit_stream(rows, n=len(x), batch_size=64)
    assert calls == [(0, 64), (64, 64), (128, 64), (192, 8)]   # in order, each row once
    assert np.array_equal(s.score(q), protood.Scorer("knn", 16, k=3).fit(x).score(q))
    got = s.score_stream(lambda first, count: q[first:first + count], m=len(q), batch_size=25)
    assert np.array_equal(got, s.score(q))


class Boom(Exception):
    pass


def test_exception_in_iterator_propagates_and_leaves_scorer_unchanged():
    x, _, q = data(3)
    s = protood.Scorer("knn", 16, k=3).fit(x[:100])
    before = s.score(q)

    def batches():
        yield x[:50]
        yield x[50:120]
        raise Boom("reader failed at batch 3")

    with pytest.raises(Boom, match="batch 3"):
        s.fit_stream(batches(), n=len(x), batch_size=32)
    assert np.array_equal(s.score(q), before)

    def queries():
        yield q[:10]
        raise KeyError("no more")

    with pytest.raises(KeyError):
        s.score_stream(queries(), m=len(q), batch_size=4)
    # an unfitted scorer stays unfitted
    u = protood.Scorer("knn", 16, k=3)
    with pytest.raises(Boom):
        u.fit_stream(batches(), n=len(x))
    with pytest.raises(protood.StateError, match="protood_scorer_score"):
        u.score(q)


def test_exception_in_function_propagates():
    s = protood.Scorer("ssd", 4)

    def rows(first, count):
        if first > 0:
            raise ZeroDivisionError("second batch")
        return np.ones((count, 4)) + np.arange(count)[:, None] * np.arange(4)

    with pytest.raises(ZeroDivisionError, match="second batch"):
        s.fit_stream(rows, n=10, batch_size=4)


def test_stream_source_errors():
    x, y, _ = data(4)
    s = protood.Scorer("knn", 16, k=3)
    with pytest.raises(protood.ShapeError, match="ended after 20 rows, expected 30"):
        s.fit_stream(iter([x[:20]]), n=30)
    with pytest.raises(protood.ShapeError, match="15 columns"):
        s.fit_stream([x[:20, :15]])
    with pytest.raises(protood.InvalidArgumentError, match="n is required"):
        s.fit_stream(iter([x[:20]]))
    with pytest.raises(protood.ShapeError, match="returned 3 rows"):
        s.fit_stream(lambda first, count: x[:3], n=10, batch_size=5)
    with pytest.raises(protood.InvalidArgumentError, match="needs labels"):
        protood.Scorer("mahalanobis", 16).fit_stream([x], n_classes=4)
    bad = x[:40].copy()
    bad[33, 2] = np.nan     # validated by the library, with the absolute row index
    with pytest.raises(protood.NonFiniteError, match="33"):
        s.fit_stream([bad[:30], bad[30:]], batch_size=8)
    with pytest.raises(protood.InvalidArgumentError, match="batch"):
        s.fit_stream([x], batch_size=0)


def test_callback_error_without_python_exception():
    """A non-zero return from a raw ctypes callback (not through the binding's iterator) is the
    library's CALLBACK error, with the code in the message."""
    from protood._native import FEATURE_FN, lib

    s = protood.Scorer("knn", 4, k=1)
    cb = FEATURE_FN(lambda user, first, count, rows, labels: 7)
    status = lib.protood_scorer_fit_stream(s._h, 5, 2, cb, None, 0)
    assert status == protood.errors.E_CALLBACK
    with pytest.raises(protood.CallbackError, match="returned 7"):
        protood._native.check(status)


def test_pickle_copy_save_load(tmp_path):
    x, y, q = data(5)
    for kind in ("knn", "mahalanobis", "ssd", "prototype"):
        s = protood.Scorer(kind, 16, k=9, normalize=kind != "ssd")
        s.fit(x, y if kind == "mahalanobis" else None)
        want = s.score(q)
        path = tmp_path / f"{kind}.scorer"
        s.save(path)
        for other in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s), s.clone(),
                      protood.Scorer.load(path), protood.Scorer.from_bytes(s.to_bytes())):
            assert (other.kind, other.dim, other.k, other.normalize) == (s.kind, 16, 9, s.normalize)
            assert np.array_equal(other.score(q), want), kind
    unfitted = pickle.loads(pickle.dumps(protood.Scorer("ssd", 3)))
    with pytest.raises(protood.StateError):
        unfitted.score(np.ones((1, 3)))


def test_concurrent_scoring_gives_identical_results():
    x, _, _ = data(6, n=2000, d=32)
    q = np.random.default_rng(7).normal(size=(600, 32)).astype(np.float32)
    s = protood.Scorer("knn", 32, k=10).fit(x)
    want = [s.score(q[i::6]) for i in range(6)]
    results = {}
    errors = []
    start = threading.Barrier(6)

    def work(i):
        try:
            start.wait()
            for rep in range(5):
                results[(i, rep)] = s.score(q[i::6]) if rep % 2 else \
                    s.score_stream([q[i::6][:37], q[i::6][37:]], batch_size=16)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 30
    for (i, rep), got in results.items():
        assert np.array_equal(got, want[i]), (i, rep)


def test_scoring_releases_the_gil():
    """While one thread is inside a long protood_scorer_score call, Python code keeps running on
    another. Structurally: the library is a ctypes.CDLL (PyDLL would keep the GIL). In practice:
    the largest pause of a light Python loop during the call is a small part of it (with the GIL
    held, the loop would stop for the whole call)."""
    lib = protood._native.lib
    assert isinstance(lib, ctypes.CDLL) and not isinstance(lib, ctypes.PyDLL)
    assert not lib.protood_scorer_score._flags_ & ctypes._FUNCFLAG_PYTHONAPI
    rng = np.random.default_rng(8)
    x = rng.normal(size=(8000, 32)).astype(np.float32)
    q = rng.normal(size=(8000, 32)).astype(np.float32)
    s = protood.Scorer("knn", 32, k=50).fit(x)
    span = {}

    def work():
        span["t0"] = time.perf_counter()
        s.score(q)
        span["t1"] = time.perf_counter()

    t = threading.Thread(target=work)
    ticks = []
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.002)     # a light loop: a spinning one would slow the call's own threads
    t.join()
    inside = [v for v in ticks if span["t0"] <= v <= span["t1"]]
    duration = span["t1"] - span["t0"]
    assert duration > 0.05, f"the call was too short ({duration:.3f} s) to tell"
    gaps = np.diff([span["t0"], *inside, span["t1"]])
    assert gaps.max() < 0.5 * duration, f"Python stalled {gaps.max():.3f} s of a {duration:.3f} s call"


def test_fit_waits_for_running_scores():
    """fit needs exclusive access: with scores running in other threads it waits instead of
    racing, and every score sees either the old or the new fit, never a mix."""
    x, _, q = data(9, n=3000, d=32)
    s = protood.Scorer("knn", 32, k=5).fit(x[:1500])
    old = s.score(q)
    new = protood.Scorer("knn", 32, k=5).fit(x[1500:]).score(q)
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.append(s.score(q))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    deadline = time.monotonic() + 60
    while len(seen) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    s.fit(x[1500:])
    after = len(seen)
    while len(seen) < after + 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    for t in readers:
        t.join()
    assert seen
    assert all(np.array_equal(v, old) or np.array_equal(v, new) for v in seen)
    assert np.array_equal(seen[-1], new)
