"""protood.torch against autograd of a plain PyTorch implementation of SPEC.md §3 (PALM) and §4
(CIDER), written here in float64 from the specification, EMA paths included: losses, gradients
with respect to the features, and the bank after the step."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import protood
import protood.torch as ptorch
from support import assert_close, assert_loss

# The gradients here are O(0.01-0.1) and the EMA path's share can be ~1e-5 of that (m = 0.999):
# compare relative to the gradient's own scale (the library agrees to ~1e-6 of it).
GRAD_TOL = 2e-5


def n2(x):
    return F.normalize(x, dim=-1, eps=1e-12)


def n1(x, dim):
    return x / x.abs().sum(dim=dim, keepdim=True).clamp_min(1e-12)


def sinkhorn_ref(scores, eps, iters):
    q = torch.exp(scores / eps)
    q = q / q.sum()
    n, p = q.shape
    for _ in range(iters):
        q = q / q.sum(dim=0, keepdim=True) / p
        q = q / q.sum(dim=1, keepdim=True) / n
    return q * n


def palm_ref(h, labels, protos, K, m, tau, eps, iters, topk, lam, tau_p):
    """SPEC §3, one step. Returns (total, mle, pcon, new prototypes)."""
    z = n2(h)
    N, P = z.shape[0], protos.shape[0]
    with torch.no_grad():
        if labels is None:
            M = torch.ones(N, P, dtype=h.dtype)
            k = P if topk == 0 else min(topk, P)
        else:
            M = (labels[:, None] == torch.arange(P)[None, :] // K).to(h.dtype)
            k = K if topk == 0 else min(topk, K)
        q1 = sinkhorn_ref(z @ protos.T, eps, iters)
        T = torch.zeros(N, P, dtype=h.dtype)
        T.scatter_(1, (M * q1).topk(k, dim=1).indices, 1.0)
        A = n1(n1(T * M * q1, 1), 0)
    U = A.T @ z                                   # gradient flows through the update (§3.1)
    moved = (A.sum(dim=0) > 0)[:, None]
    new = torch.where(moved, n2(m * protos + (1 - m) * U), protos)
    with torch.no_grad():
        q2 = sinkhorn_ref(z @ new.T, eps, iters)
        W = n1(T * M * q2, 1)
    L = z @ new.detach().T / tau
    mle = -(1.0 / N) * ((W * L).sum(dim=1) - torch.logsumexp(L, dim=1)).sum()
    ph = n2(new)
    S = ph @ ph.T / tau_p
    G = S - S.max(dim=1, keepdim=True).values.detach()
    eye = torch.eye(P, dtype=torch.bool)
    if labels is None:
        pos = torch.zeros(P, P, dtype=torch.bool)
    else:
        cls = torch.arange(P) // K
        pos = (cls[:, None] == cls[None, :]) & ~eye
    lse = torch.logsumexp(G.masked_fill(eye, float("-inf")), dim=1)
    npos = pos.sum(dim=1)
    pos_term = torch.where(npos > 0, (G * pos).sum(dim=1) / npos.clamp_min(1), torch.zeros_like(lse))
    pcon = -(pos_term - lse).mean()
    total = mle + lam * pcon
    return total, mle, pcon, new


def cider_ref(h, labels, protos, m, tau, w, dis_base, comp_base):
    """SPEC §4, one step. Returns (total, comp, dis, new prototypes)."""
    z = n2(h)
    mu = list(protos.unbind(0))
    for i in range(z.shape[0]):           # sequential EMA, gradient through every update
        c = int(labels[i])
        mu[c] = n2(m * mu[c] + (1 - m) * z[i])
    mu = torch.stack(mu)
    C = mu.shape[0]
    logits = mu @ mu.T / tau
    off = ~torch.eye(C, dtype=torch.bool)
    dis = (tau / dis_base) * torch.log((torch.exp(logits) * off).sum(dim=1) / (C - 1)).mean()
    L = z @ n2(mu).detach().T / tau
    comp = -(tau / comp_base) * (L.gather(1, labels[:, None]).squeeze(1)
                                 - torch.logsumexp(L, dim=1)).mean()
    return w * comp + dis, comp, dis, mu


def random_case(seed, n, C, K, D):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, D, generator=g, dtype=torch.float64) * 3.0
    labels = torch.randint(0, C, (n,), generator=g)
    labels[:C] = torch.arange(C)          # every class present
    protos = n2(torch.randn(C * K, D, generator=g, dtype=torch.float64))
    # the library works in float32: give both sides the same float32 inputs
    return h.float().double(), labels, protos.float().double()


PALM_SETTINGS = [
    # seed, n, C, K, D, m, topk, lam, supervised
    (1, 12, 3, 4, 8, 0.9, 2, 1.0, True),
    (2, 20, 4, 3, 16, 0.5, 3, 2.0, True),
    (3, 16, 2, 5, 6, 0.99, 0, 1.0, True),
    (4, 10, 5, 1, 8, 0.9, 1, 1.0, True),
    (5, 16, 1, 6, 8, 0.9, 3, 1.0, False),
    (6, 24, 3, 4, 12, 0.999, 5, 0.5, True),
]


@pytest.mark.parametrize("seed,n,C,K,D,m,topk,lam,supervised", PALM_SETTINGS)
def test_palm_loss_matches_autograd(seed, n, C, K, D, m, topk, lam, supervised):
    h, labels, protos = random_case(seed, n, C, K, D)
    bank = protood.Bank(C, K, D, momentum=m, topk=topk, lambda_pcon=lam)
    bank.prototypes = protos.numpy()
    crit = ptorch.PALMLoss(bank)
    y = labels if supervised else None

    x = h.clone().requires_grad_(True)
    loss = crit(x, y)
    assert loss.dim() == 0 and loss.dtype == torch.float64
    loss.backward()

    hr = h.clone().requires_grad_(True)
    total, mle, pcon, new = palm_ref(hr, y, protos, K, m, 0.1, 0.05, 3, topk, lam, 0.5)
    total.backward()

    assert_loss(loss.item(), total.item(), "total")
    assert_loss(crit.last_losses.total, total.item(), "last_losses.total")
    assert_loss(crit.last_losses.mle, mle.item(), "mle")
    assert_loss(crit.last_losses.pcon, pcon.item(), "pcon")
    assert_close(x.grad.numpy(), hr.grad.numpy(), GRAD_TOL, "grad", floor=0)
    assert_close(bank.prototypes, new.detach().numpy(), what="prototypes")


def test_palm_ema_gradient_path_is_present():
    """With lambda_pcon the gradient differs from the MLE-only one by the EMA path; the reference
    with the path cut (U detached) must NOT match, so the test above really checks the path."""
    h, labels, protos = random_case(11, 16, 3, 4, 8)
    bank = protood.Bank(3, 4, 8, momentum=0.5, topk=2, lambda_pcon=1.0)
    bank.prototypes = protos.numpy()
    x = h.clone().requires_grad_(True)
    ptorch.PALMLoss(bank)(x, labels).backward()

    hr = h.clone().requires_grad_(True)
    palm_ref(hr, labels, protos, 4, 0.5, 0.1, 0.05, 3, 2, 1.0, 0.5)[0].backward()
    assert_close(x.grad.numpy(), hr.grad.numpy(), GRAD_TOL, "grad", floor=0)
    # mle alone (no EMA path)
    hm = h.clone().requires_grad_(True)
    palm_ref(hm, labels, protos, 4, 0.5, 0.1, 0.05, 3, 2, 1.0, 0.5)[1].backward()
    diff = np.abs(x.grad.numpy() - hm.grad.numpy()).max()
    assert diff > 100 * GRAD_TOL * np.abs(hr.grad.numpy()).max(), \
        f"the pcon gradient through the EMA update is missing ({diff:g})"


CIDER_SETTINGS = [
    # seed, n, C, D, m, w
    (1, 10, 3, 4, 0.5, 1.0),
    (2, 24, 5, 16, 0.95, 2.0),
    (3, 16, 4, 8, 0.0, 1.0),
]


@pytest.mark.parametrize("seed,n,C,D,m,w", CIDER_SETTINGS)
def test_cider_loss_matches_autograd(seed, n, C, D, m, w):
    h, labels, protos = random_case(seed, n, C, 1, D)
    bank = protood.Bank(C, 1, D, momentum=m, comp_weight=w)
    bank.prototypes = protos.numpy()
    crit = ptorch.CIDERLoss(bank)
    x = h.clone().requires_grad_(True)
    loss = crit(x, labels)
    loss.backward()

    hr = h.clone().requires_grad_(True)
    total, comp, dis, new = cider_ref(hr, labels, protos, m, 0.1, w, 0.1, 0.07)
    total.backward()
    assert_loss(loss.item(), total.item(), "total")
    assert_loss(crit.last_losses.comp, comp.item(), "comp")
    assert_loss(crit.last_losses.dis, dis.item(), "dis")
    assert_close(x.grad.numpy(), hr.grad.numpy(), GRAD_TOL, "grad", floor=0)
    assert_close(bank.prototypes, new.detach().numpy(), what="prototypes")


def test_backward_scales_with_grad_output_and_reaches_parameters():
    """loss * 3 gives 3x the gradient; the gradient flows on into a layer before the loss, in
    float32 (the layer's dtype), exactly as the chain rule through the library gradient says."""
    h, labels, protos = random_case(7, 12, 3, 1, 8)
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 8).float()
    g = []
    for scale in (1.0, 3.0):
        bank = protood.Bank(3, 2, 8, momentum=0.9)
        bank.init_random("sphere", 5)
        layer.zero_grad()
        feats = layer(h.float())
        feats.retain_grad()
        (scale * ptorch.PALMLoss(bank)(feats, labels)).backward()
        assert feats.grad.dtype == torch.float32
        g.append((feats.grad.clone(), layer.weight.grad.clone()))
    assert torch.allclose(g[1][0], 3 * g[0][0], rtol=1e-6, atol=0)
    # dL/dW = sum_i dL/df_i x_i^T
    assert torch.allclose(g[0][1], g[0][0].T @ h.float(), rtol=1e-4, atol=1e-6)


def test_no_grad_forward_moves_bank_and_reports_losses():
    h, labels, protos = random_case(8, 12, 3, 2, 8)
    bank = protood.Bank(3, 2, 8, momentum=0.5)
    bank.prototypes = protos.numpy()
    twin = bank.clone()
    crit = ptorch.PALMLoss(bank)
    with torch.no_grad():
        loss = crit(h, labels)
    assert not loss.requires_grad
    losses, _ = twin.palm_step(h.numpy(), labels.numpy())
    assert loss.item() == losses.total and crit.last_losses == losses
    assert np.array_equal(bank.prototypes, twin.prototypes)


def test_state_dict_carries_the_bank():
    h, labels, protos = random_case(9, 12, 3, 2, 8)
    crit = ptorch.PALMLoss(protood.Bank(3, 2, 8, momentum=0.7))
    crit(h, labels)
    state = crit.state_dict()
    other = ptorch.PALMLoss(protood.Bank(3, 2, 8))
    other.load_state_dict(state)
    assert other.bank.momentum == 0.7
    assert torch.equal(other.prototypes, crit.prototypes)
    moved = copy.deepcopy(crit)
    assert torch.equal(moved.prototypes, crit.prototypes)


def test_loss_module_errors():
    bank = protood.Bank(3, 2, 8)
    with pytest.raises(TypeError, match="protood.Bank"):
        ptorch.PALMLoss("not a bank")
    with pytest.raises(protood.StateError, match="protood_cider_step"):
        ptorch.CIDERLoss(bank)(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(protood.LabelError, match=r"labels\[1\] = 3"):
        ptorch.PALMLoss(bank)(torch.randn(4, 8), torch.tensor([0, 3, 2, 0]))
    with pytest.raises(protood.ShapeError, match="columns"):
        ptorch.PALMLoss(bank)(torch.randn(4, 7), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="expected"):
        ptorch.PALMLoss(bank)(torch.randn(4, 2, 4), torch.tensor([0, 1, 2, 0]))
