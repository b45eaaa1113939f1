"""The binding against the reference cases of ../shared/fixtures (float64 reference, SPEC.md §8)."""
import numpy as np
import pytest

import protood
from support import Case, assert_close, assert_loss, assert_rel

PALM_CASES = ["palm_small", "palm_cifar_shape", "palm_all_protos_k0", "palm_no_pcon",
              "palm_sharp_sinkhorn", "palm_single_proto", "palm_strong_ema",
              "palm_unnormalised_inputs", "palm_unsupervised"]
CIDER_CASES = ["cider_small", "cider_cifar_shape", "cider_slow_ema"]


def bank_for(c):
    p = c.params
    b = protood.Bank(p["n_classes"], p["n_protos"], p["dim"], momentum=p["momentum"],
                     temperature=p["temperature"])
    if p["method"] == "palm":
        b.sinkhorn_epsilon = p["sinkhorn_epsilon"]
        b.sinkhorn_iters = p["sinkhorn_iters"]
        b.topk = p["topk"]
        b.lambda_pcon = p["lambda_pcon"]
        b.pcon_temperature = p["pcon_temperature"]
    else:
        b.comp_weight = p["weight_comp"]
        b.dis_base_temperature = p["dis_base_temperature"]
        b.comp_base_temperature = p["comp_base_temperature"]
    b.prototypes = c.npy("prototypes_in.npy")
    return b


@pytest.mark.parametrize("name", PALM_CASES)
def test_palm_step(name):
    c = Case(name)
    b = bank_for(c)
    labels = c.npy("labels.npy") if c.params["supervised"] else None
    assert (labels is None) == (not c.has("labels.npy"))
    # float64 input on purpose: the binding converts once to float32
    losses, grad = b.palm_step(c.npy("features.npy").astype(np.float64), labels)
    assert isinstance(losses, protood.PalmLosses)
    assert_loss(losses.total, c.params["loss_total"], "total")
    assert_loss(losses.mle, c.params["loss_mle"], "mle")
    assert_loss(losses.pcon, c.params["loss_pcon"], "pcon")
    assert grad.dtype == np.float32
    assert_close(grad, c.npy("grad.npy"), what="grad")
    assert_close(b.prototypes, c.npy("prototypes_out.npy"), what="prototypes_out")


@pytest.mark.parametrize("name", PALM_CASES)
def test_palm_assign(name):
    """palm_assign on the bank before the step = the first Sinkhorn pass of the fixture restricted
    to each row's top-k of its class and renormalised (computed here from sinkhorn_first.npy)."""
    c = Case(name)
    b = bank_for(c)
    before = b.prototypes
    q1 = c.npy("sinkhorn_first.npy")
    n, P = q1.shape
    K = c.params["n_protos"]
    if c.params["supervised"]:
        labels = c.npy("labels.npy")
        mask = (np.arange(P)[None, :] // K) == labels[:, None]
        k = K if c.params["topk"] == 0 else min(c.params["topk"], K)
    else:
        labels = None
        mask = np.ones((n, P), dtype=bool)
        k = P if c.params["topk"] == 0 else min(c.params["topk"], P)
    mq = np.where(mask, q1, -1.0)
    support = np.zeros((n, P), dtype=bool)
    np.put_along_axis(support, np.argsort(-mq, axis=1, kind="stable")[:, :k], True, axis=1)
    support &= mask
    w = np.where(support, q1, 0.0)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    got = b.palm_assign(c.npy("features.npy"), labels)
    assert_close(got, w, what="weights")
    assert np.array_equal(b.prototypes, before), "palm_assign must not move the bank"


@pytest.mark.parametrize("name", CIDER_CASES)
def test_cider_step(name):
    c = Case(name)
    b = bank_for(c)
    losses, grad = b.cider_step(c.npy("features.npy"), c.npy("labels.npy").astype(np.int64))
    assert isinstance(losses, protood.CiderLosses)
    assert_loss(losses.total, c.params["loss_total"], "total")
    assert_loss(losses.comp, c.params["loss_comp"], "comp")
    assert_loss(losses.dis, c.params["loss_dis"], "dis")
    assert_close(grad, c.npy("grad.npy"), what="grad")
    assert_close(b.prototypes, c.npy("prototypes_out.npy"), what="prototypes_out")


def test_step_without_grad_gives_same_losses_and_bank():
    c = Case("palm_strong_ema")
    a, b = bank_for(c), bank_for(c)
    la, ga = a.palm_step(c.npy("features.npy"), c.npy("labels.npy"))
    lb, gb = b.palm_step(c.npy("features.npy"), c.npy("labels.npy"), grad=False)
    assert gb is None
    assert la == lb
    assert np.array_equal(a.prototypes, b.prototypes)


def test_sinkhorn():
    c = Case("sinkhorn")
    got = protood.sinkhorn(c.npy("scores.npy"), c.params["sinkhorn_epsilon"],
                           c.params["sinkhorn_iters"])
    assert got.dtype == np.float32
    assert_close(got, c.npy("assign.npy"), what="assign")
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind,k,expected", [("knn", 1, "knn_k1.npy"), ("knn", 5, "knn_k5.npy"),
                                             ("knn", 50, "knn_k50.npy"),
                                             ("mahalanobis", None, "maha_tied.npy"),
                                             ("ssd", None, "ssd.npy")])
def test_scorer(kind, k, expected):
    c = Case("scorers")
    train, test = c.npy("train.npy"), c.npy("test.npy")
    s = protood.Scorer(kind, c.params["dim"], k=k)
    if kind == "mahalanobis":
        s.fit(train, c.npy("train_labels.npy"))   # n_classes inferred
    else:
        s.fit(train)
    # Fortran order and float64 on purpose: converted once, same values
    got = s.score(np.asfortranarray(test.astype(np.float64)))
    assert got.dtype == np.float32 and got.shape == (test.shape[0],)
    assert_rel(got, c.npy(expected))


def test_scorer_prototype_from_rows_and_bank():
    c = Case("scorers")
    protos = c.npy("prototypes.npy")
    want = c.npy("proto_max_cosine.npy")
    s = protood.Scorer(protood.PROTOTYPE, c.params["dim"]).fit(protos)
    assert_rel(s.score(c.npy("test.npy")), want)
    bank = protood.Bank(protos.shape[0], 1, c.params["dim"])
    bank.prototypes = protos
    s2 = protood.Scorer("prototype", c.params["dim"]).fit_bank(bank)
    assert_rel(s2.score(c.npy("test.npy")), want)


def test_metrics():
    c = Case("metrics")
    s_in, s_out = c.npy("scores_in.npy"), c.npy("scores_out.npy")
    p = c.params
    assert abs(protood.auroc(s_in, s_out) - p["auroc"]) <= 1e-9
    assert abs(protood.aupr(s_in, s_out) - p["aupr_in"]) <= 1e-9
    assert abs(protood.aupr(s_in, s_out, positive="out") - p["aupr_out"]) <= 1e-9
    assert abs(protood.aupr(s_in, s_out, positive=protood.POSITIVE_OUT) - p["aupr_out"]) <= 1e-9
    assert abs(protood.fpr_at_tpr(s_in, s_out) - p["fpr95"]) <= 1e-9
    for conv, key in [("roc", "fpr95"), ("knn", "fpr95_knn"), ("percentile", "fpr95_palm"),
                      ("ood_positive", "fpr95_openood")]:
        assert abs(protood.fpr_at_tpr(s_in, s_out, 0.95, conv) - p[key]) <= 1e-9, conv
    assert abs(protood.fpr_at_tpr(s_in, s_out, convention=protood.FPR_KNN) - p["fpr95_knn"]) <= 1e-9


def test_metrics_small_exact():
    """Hand-computed: in = [3, 2, 1], out = [2, 0]: pairs (3>2,3>0,2=2,2>0,1<2,1>0) -> 4.5/6."""
    assert protood.auroc([3, 2, 1], [2, 0]) == pytest.approx(4.5 / 6, abs=1e-12)
    # thresholds 3: tpr 1/3; 2: tpr 2/3 fpr 1/2; 1: tpr 1, fpr 1/2
    assert protood.fpr_at_tpr([3, 2, 1], [2, 0]) == pytest.approx(0.5, abs=1e-12)
