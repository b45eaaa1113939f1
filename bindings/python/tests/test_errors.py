"""Status codes become exceptions: one class per code, each carrying .status and the library's
message (function, argument, value), each also the built-in exception a Python caller expects."""
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import protood
from protood import errors


def raised(fn, *args, **kw):
    with pytest.raises(protood.Error) as info:
        fn(*args, **kw)
    return info.value


def test_invalid_argument():
    e = raised(protood.Bank, 0, 2, 4)
    assert type(e) is protood.InvalidArgumentError and isinstance(e, ValueError)
    assert e.status == errors.E_INVALID_ARG == -1
    assert e.message == "protood_bank_create: n_classes = 0, must be >= 1"
    assert str(e) == e.message + " [invalid argument]"
    b = protood.Bank(2, 2, 4)
    e = raised(setattr, b, "momentum", 1.5)
    assert "protood_bank_set_param: momentum = 1.5" in e.message
    assert b.momentum == 0.999                      # unchanged on failure
    with pytest.raises(protood.InvalidArgumentError, match="protood_sinkhorn: epsilon = 0"):
        protood.sinkhorn(np.ones((2, 2)), 0.0)
    with pytest.raises(protood.InvalidArgumentError, match="protood_scorer_set_param: k = 0"):
        protood.Scorer("knn", 4, k=0)
    with pytest.raises(protood.InvalidArgumentError, match="protood_fpr_at_tpr: tpr = 1.5"):
        protood.fpr_at_tpr([1.0, 2.0], [1.0], tpr=1.5)
    with pytest.raises(protood.InvalidArgumentError, match="protood_auroc: n_in = 0"):
        protood.auroc([], [1.0])
    # checks of the binding itself, in the same style
    with pytest.raises(protood.InvalidArgumentError, match="Bank.init_random: seed = -1"):
        b.init_random("sphere", -1)
    with pytest.raises(protood.InvalidArgumentError, match="scheme = 'cube'"):
        b.init_random("cube")
    with pytest.raises(protood.InvalidArgumentError, match="Scorer: kind = 'lof'"):
        protood.Scorer("lof", 4)
    with pytest.raises(protood.InvalidArgumentError, match="convention = 'openood'"):
        protood.fpr_at_tpr([1.0], [0.0], convention="openood")
    with pytest.raises(protood.InvalidArgumentError, match="unknown parameter 'momentun'"):
        b.set_param("momentun", 0.5)
    with pytest.raises(protood.InvalidArgumentError, match="protood_bank_get_param"):
        b.get_param(99)


def test_out_of_memory_in_a_limited_process():
    """NOMEM needs an allocation to fail: a child process with a 1 GiB address-space limit asks
    for a 4 GiB bank."""
    code = (
        "import resource, protood\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "try:\n"
        "    protood.Bank(1 << 20, 1, 1 << 10)\n"
        "except protood.OutOfMemoryError as e:\n"
        "    assert isinstance(e, MemoryError) and e.status == -2\n"
        "    print('NOMEM', e.message)\n")
    # OpenBLAS reserves its buffers at load: give it one thread so it fits under the limit
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NOMEM protood_bank_create"), out.stdout


def test_shape():
    e = raised(protood.Bank, 2**62, 2**62, 1)
    assert type(e) is protood.ShapeError and e.status == -3
    assert "protood_bank_create" in e.message and "overflow" in e.message
    b = protood.Bank(2, 2, 4)
    with pytest.raises(protood.ShapeError, match="Bank.palm_step: h has 5 columns, expected dim = 4"):
        b.palm_step(np.ones((3, 5)), [0, 1, 0])
    with pytest.raises(protood.ShapeError, match=r"Bank.palm_step: labels has shape \(2,\)"):
        b.palm_step(np.ones((3, 4)), [0, 1])
    with pytest.raises(protood.ShapeError, match="Scorer.score: q has 3 columns"):
        protood.Scorer("knn", 4).score(np.ones((2, 3)))
    with pytest.raises(protood.ShapeError, match="auroc: s_in has shape"):
        protood.auroc(np.ones((2, 2)), [1.0])


def test_state():
    e = raised(protood.Scorer("knn", 4).score, np.ones((2, 4)))
    assert type(e) is protood.StateError and isinstance(e, RuntimeError) and e.status == -4
    assert e.message.startswith("protood_scorer_score: the KNN scorer is not fitted")
    with pytest.raises(protood.StateError, match="protood_cider_step: bank has protos_per_class = 2"):
        protood.Bank(3, 2, 4).cider_step(np.ones((2, 4)), [0, 1])
    with pytest.raises(protood.StateError, match="protood_scorer_fit_bank"):
        protood.Scorer("knn", 4).fit_bank(protood.Bank(2, 1, 4))


def test_nonfinite():
    h = np.ones((3, 4))
    h[2, 1] = np.nan
    e = raised(protood.Bank(3, 2, 4).palm_step, h, [0, 1, 2])
    assert type(e) is protood.NonFiniteError and e.status == -5
    assert e.message == "protood_palm_step: h[2][1] = nan"
    with pytest.raises(protood.NonFiniteError, match="protood_auroc: s_out"):
        protood.auroc([1.0], [np.nan])
    # a float64 value beyond float32's range becomes inf in the conversion and is caught
    with pytest.raises(protood.NonFiniteError, match="protood_scorer_fit"):
        protood.Scorer("ssd", 2).fit(np.array([[1e300, 1.0], [1.0, 2.0]]))


def test_label():
    b = protood.Bank(4, 2, 3)
    before = b.prototypes
    e = raised(b.palm_step, np.ones((3, 3)), [0, 7, 1])
    assert type(e) is protood.LabelError and e.status == -6
    assert e.message == "protood_palm_step: labels[1] = 7 outside [0, 4)"
    assert np.array_equal(b.prototypes, before)     # the bank is untouched on failure
    with pytest.raises(protood.LabelError, match=r"labels\[0\] = 4294967296 outside the int32"):
        b.palm_step(np.ones((1, 3)), np.array([2**32]))   # would wrap to 0 in int32
    with pytest.raises(protood.LabelError, match="must be integers"):
        b.palm_step(np.ones((1, 3)), np.array([0.5]))


def test_file_io(tmp_path):
    missing = tmp_path / "missing.bank"
    e = raised(protood.Bank.load, missing)
    assert type(e) is protood.FileIOError and isinstance(e, OSError) and e.status == -7
    assert e.message.startswith(f"protood_bank_load: path '{missing}'")
    with pytest.raises(protood.FileIOError, match="protood_scorer_save"):
        protood.Scorer("knn", 2).save(tmp_path / "no" / "such" / "dir" / "s.bin")
    with pytest.raises(protood.FileIOError, match="protood_npy_info"):
        protood.read_npy(tmp_path / "missing.npy")


def test_format(tmp_path):
    p = tmp_path / "bad.bank"
    p.write_bytes(b"not a bank at all, just some bytes")
    e = raised(protood.Bank.load, p)
    assert type(e) is protood.FormatError and e.status == -8
    assert "protood_bank_load" in e.message and "bad.bank" in e.message
    data = bytearray(protood.Scorer("knn", 2).to_bytes())
    data[-2] ^= 1
    with pytest.raises(protood.FormatError, match="protood_scorer_from_buffer"):
        protood.Scorer.from_bytes(bytes(data))
    with pytest.raises(protood.FormatError, match="not a .npy file"):
        protood.read_npy(p)


def test_callback():
    from protood._native import FEATURE_FN, lib

    s = protood.Scorer("knn", 2, k=1)
    cb = FEATURE_FN(lambda user, first, count, rows, labels: -3)
    e = raised(protood._native.check, lib.protood_scorer_fit_stream(s._h, 4, 2, cb, None, 0))
    assert type(e) is protood.CallbackError and e.status == -9
    assert e.message.startswith("protood_scorer_fit_stream: fn returned -3 for rows [0, 2)")


def test_unsupported_and_internal_mapping():
    """The library has no code path that returns these in this build: check the mapping."""
    for status, cls, base in [(-10, protood.UnsupportedError, NotImplementedError),
                              (-99, protood.InternalError, RuntimeError),
                              (-2, protood.OutOfMemoryError, MemoryError)]:
        e = errors.from_status(status, "f: x")
        assert type(e) is cls and isinstance(e, base) and isinstance(e, protood.Error)
        assert e.status == status and e.message == "f: x"
    assert str(errors.from_status(-10, "")) == "feature not built in"
    assert type(errors.from_status(-55, "odd")) is protood.Error   # unknown codes: the base class


def test_every_status_has_its_own_class():
    classes = {errors.from_status(code, "").__class__ for code in errors.CLASSES}
    assert len(classes) == 11 and protood.Error not in classes


def test_exceptions_pickle():
    e = errors.from_status(-6, "protood_palm_step: labels[1] = 7 outside [0, 4)")
    f = pickle.loads(pickle.dumps(e))
    assert type(f) is protood.LabelError and (f.status, f.message) == (e.status, e.message)


def test_messages_are_per_thread():
    """protood_last_error is thread-local: threads failing at once each get their own message."""
    bank_dims = {}
    bad = []
    barrier = threading.Barrier(4)

    def work(i):
        b = protood.Bank(2, 1, 3 + i)
        barrier.wait()
        for _ in range(200):
            try:
                b.palm_step(np.ones((1, 3 + i)), [5 + i])
            except protood.LabelError as e:
                if e.message != f"protood_palm_step: labels[0] = {5 + i} outside [0, 2)":
                    bad.append(e.message)
            else:
                bad.append("no error")
        bank_dims[i] = b.dim

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bank_dims) == 4 and not bad, bad[:3]
