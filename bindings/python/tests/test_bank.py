"""Bank: parameters, initialisation, prototypes, copies, persistence and pickling."""
import copy
import pickle

import numpy as np
import pytest

import protood

DEFAULTS = {"momentum": 0.999, "temperature": 0.1, "sinkhorn_epsilon": 0.05, "sinkhorn_iters": 3,
            "topk": 5, "lambda_pcon": 1.0, "pcon_temperature": 0.5, "comp_weight": 1.0,
            "dis_base_temperature": 0.1, "comp_base_temperature": 0.07}


def test_shape_and_default_parameters():
    b = protood.Bank(4, 3, 8)
    assert (b.n_classes, b.protos_per_class, b.dim, b.n_prototypes) == (4, 3, 8, 12)
    assert b.get_params() == DEFAULTS
    assert isinstance(b.sinkhorn_iters, int) and isinstance(b.topk, int)
    assert "n_classes=4" in repr(b)


def test_parameters_round_trip_as_properties():
    values = {"momentum": 0.5, "temperature": 0.2, "sinkhorn_epsilon": 0.03, "sinkhorn_iters": 7,
              "topk": 0, "lambda_pcon": 2.5, "pcon_temperature": 0.25, "comp_weight": 2.0,
              "dis_base_temperature": 0.15, "comp_base_temperature": 0.05}
    b = protood.Bank(2, 2, 4)
    for name, v in values.items():
        setattr(b, name, v)
    assert b.get_params() == values
    c = protood.Bank(2, 2, 4, **values)     # the same through the constructor
    assert c.get_params() == values


def test_init_random_is_reproducible_and_normalised():
    b = protood.Bank(3, 2, 5)
    p0 = b.prototypes                              # created as init_random("positive", 0)
    assert np.array_equal(b.init_random("positive", 0).prototypes, p0)
    assert (p0 >= 0).all()
    s1 = b.init_random("sphere", 42).prototypes
    s2 = protood.Bank(3, 2, 5).init_random(protood.INIT_SPHERE, 42).prototypes
    assert np.array_equal(s1, s2)
    assert (s1 < 0).any()
    assert np.allclose(np.linalg.norm(s1, axis=1), 1, atol=1e-6)
    assert not np.array_equal(b.init_random("sphere", 43).prototypes, s1)
    b.init_random("sphere", 2**64 - 1)             # the whole uint64 range is accepted


def test_init_from_features_class_means():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 6))
    y = np.arange(30) % 3
    b = protood.Bank(3, 1, 6).init_from_features(x, y)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    want = np.stack([z[y == c].mean(axis=0) for c in range(3)])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.allclose(b.prototypes, want, atol=1e-6)


def test_prototypes_setter_normalises_and_copies():
    b = protood.Bank(2, 1, 3)
    b.prototypes = np.array([[3.0, 0, 4.0], [0, 2.0, 0]])      # float64, not unit norm
    p = b.prototypes
    assert p.dtype == np.float32 and p.shape == (2, 3)
    assert np.allclose(p, [[0.6, 0, 0.8], [0, 1, 0]], atol=1e-7)
    p[:] = 0                                                     # a copy: the bank is untouched
    assert np.allclose(b.prototypes[1], [0, 1, 0])
    with pytest.raises(protood.ShapeError, match="3 rows"):
        b.prototypes = np.ones((3, 3))


def test_clone_copy_and_pickle_are_independent():
    b = protood.Bank(3, 2, 4, momentum=0.9, topk=1)
    b.init_random("sphere", 7)
    for other in (b.clone(), copy.copy(b), copy.deepcopy(b), pickle.loads(pickle.dumps(b))):
        assert other is not b
        assert np.array_equal(other.prototypes, b.prototypes)
        assert other.get_params() == b.get_params()
    twin = pickle.loads(pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL))
    rng = np.random.default_rng(0)
    h, y = rng.normal(size=(9, 4)), np.arange(9) % 3
    lb, gb = b.palm_step(h, y)
    lt, gt = twin.palm_step(h, y)
    assert lb == lt and np.array_equal(gb, gt)          # same state, same step, bit for bit
    assert np.array_equal(b.prototypes, twin.prototypes)
    b.palm_step(h, y)
    assert not np.array_equal(b.prototypes, twin.prototypes)


def test_bytes_and_file_round_trip(tmp_path):
    b = protood.Bank(2, 3, 4, temperature=0.3)
    b.init_random("sphere", 1)
    data = b.to_bytes()
    assert isinstance(data, bytes)
    assert protood.Bank.from_bytes(data).to_bytes() == data
    path = tmp_path / "bank.bin"
    b.save(path)
    assert path.read_bytes() == data                    # a file and a buffer hold the same bytes
    c = protood.Bank.load(str(path))
    assert c.temperature == 0.3 and np.array_equal(c.prototypes, b.prototypes)


def test_corrupt_bytes_are_format_errors():
    data = bytearray(protood.Bank(2, 1, 3).to_bytes())
    data[-1] ^= 0xFF
    with pytest.raises(protood.FormatError, match="protood_bank_from_buffer"):
        protood.Bank.from_bytes(bytes(data))
    with pytest.raises(protood.FormatError):
        protood.Bank.from_bytes(b"")


def test_steps_accept_any_dtype_and_order():
    rng = np.random.default_rng(5)
    h = rng.normal(size=(10, 6))
    y = np.arange(10) % 2
    a, b = protood.Bank(2, 2, 6), protood.Bank(2, 2, 6)
    la, ga = a.palm_step(h.astype(np.float32), y.astype(np.int32))
    lb, gb = b.palm_step(np.asfortranarray(h), list(y.astype(np.int64)))
    assert la == lb and np.array_equal(ga, gb)


def test_unsupervised_palm_step():
    rng = np.random.default_rng(6)
    b = protood.Bank(1, 4, 5, momentum=0.5)
    losses, grad = b.palm_step(rng.normal(size=(8, 5)))
    assert np.isfinite(losses).all() and grad.shape == (8, 5)
    assert losses.total == pytest.approx(losses.mle + b.lambda_pcon * losses.pcon, rel=1e-12)


def test_close_frees_and_later_calls_fail():
    b = protood.Bank(2, 1, 3)
    b.close()
    assert "closed" in repr(b)
    with pytest.raises(protood.StateError, match="closed"):
        b.prototypes
