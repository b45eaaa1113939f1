#!/usr/bin/python3
"""Anchor for bench/bench_steps: the authors' PALM and CIDER losses in plain PyTorch on CPU, float32.

The loss code follows the released implementations (PALM's `palm.py`, CIDER's `losses.py`) line by
line, with `.cuda()` dropped, one view, and the prototypes stored class-major (row c*K + k is class
c) like libprotood's bank; the reference stores them class-interleaved, which changes the order of
rows and nothing else. CIDER's EMA is the authors' Python loop over the samples of the batch.

One timed step = normalise the raw rows, compute the loss (which moves the prototypes), backward
to the raw rows: the same work protood_palm_step / protood_cider_step do.

    anchor_steps.py make-data DIR        write the benchmark's inputs as .npy files
    anchor_steps.py time DIR THREADS [REPS]   time both losses, print "palm_ms=... cider_ms=..." lines
"""
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

C, K, D, N = 100, 6, 128, 1024
REPS = 9


class PALM:
    def __init__(self, protos, num_classes, cache_size, proto_m=0.999, temp=0.1, lambda_pcon=1.0, k=5,
                 epsilon=0.05, sinkhorn_iterations=3):
        self.num_classes = num_classes
        self.cache_size = cache_size
        self.n_protos = num_classes * cache_size
        self.proto_m = proto_m
        self.temp = temp
        self.lambda_pcon = lambda_pcon
        self.k = min(k, cache_size)
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.protos = F.normalize(protos, dim=-1)
        # class-major: row r belongs to class r // K
        self.proto_class = torch.arange(num_classes).repeat_interleave(cache_size).view(-1, 1)

    def sinkhorn(self, features):
        out = torch.matmul(features, self.protos.detach().T)
        Q = torch.exp(out.detach() / self.epsilon).t()
        B = Q.shape[1]
        K = Q.shape[0]
        sum_Q = torch.sum(Q)
        Q /= sum_Q
        for _ in range(self.sinkhorn_iterations):
            Q = F.normalize(Q, dim=1, p=1)
            Q /= K
            Q = F.normalize(Q, dim=0, p=1)
            Q /= B
        Q *= B
        return Q.t()

    def mle_loss(self, features, targets):
        anchor_labels = targets.contiguous().view(-1, 1)
        mask = torch.eq(anchor_labels, self.proto_class.T).float()
        Q = self.sinkhorn(features)
        if self.k > 0:
            update_mask = mask * Q
            _, topk_idx = torch.topk(update_mask, self.k, dim=1)
            topk_mask = torch.scatter(torch.zeros_like(update_mask), 1, topk_idx, 1)
            update_mask = F.normalize(F.normalize(topk_mask * update_mask, dim=1, p=1), dim=0, p=1)
        else:
            update_mask = F.normalize(F.normalize(mask * Q, dim=1, p=1), dim=0, p=1)
        update_features = torch.matmul(update_mask.T, features)
        protos = self.protos
        protos = self.proto_m * protos + (1 - self.proto_m) * update_features
        self.protos = F.normalize(protos, dim=1, p=2)
        Q = self.sinkhorn(features)
        proto_dis = torch.matmul(features, self.protos.detach().T)
        anchor_dot_contrast = torch.div(proto_dis, self.temp)
        logits = anchor_dot_contrast
        if self.k > 0:
            loss_mask = mask * Q
            loss_mask = F.normalize(topk_mask * loss_mask, dim=1, p=1)
            masked_logits = loss_mask * logits
        else:
            masked_logits = F.normalize(Q * mask, dim=1, p=1) * logits
        pos = torch.sum(masked_logits, dim=1)
        neg = torch.log(torch.sum(torch.exp(logits), dim=1, keepdim=True))
        log_prob = pos - neg
        return -torch.mean(log_prob)

    def proto_contra(self):
        protos = F.normalize(self.protos, dim=1)
        batch_size = self.n_protos
        mask = torch.eq(self.proto_class, self.proto_class.T).float()
        anchor_dot_contrast = torch.div(torch.matmul(protos, protos.T), 0.5)
        logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
        logits = anchor_dot_contrast - logits_max.detach()
        logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(batch_size).view(-1, 1), 0)
        mask = mask * logits_mask
        pos = torch.sum(F.normalize(mask, dim=1, p=1) * logits, dim=1)
        neg = torch.log(torch.sum(logits_mask * torch.exp(logits), dim=1))
        return -torch.mean(pos - neg)

    def forward(self, features, targets):
        mle = self.mle_loss(features, targets)
        loss = mle
        pcon = torch.zeros(())
        if self.lambda_pcon > 0:
            pcon = self.proto_contra()
            loss = loss + self.lambda_pcon * pcon
        return loss, mle, pcon


def cider_losses(features, labels, prototypes, n_cls, proto_m=0.5, temp=0.1, w=1.0):
    # DisLoss.forward: the EMA as the authors' Python loop over the samples
    for j in range(len(features)):
        prototypes[labels[j].item()] = F.normalize(
            prototypes[labels[j].item()] * proto_m + features[j] * (1 - proto_m), dim=0)
    lab = torch.arange(0, n_cls).contiguous().view(-1, 1)
    mask = (1 - torch.eq(lab, lab.T).float())
    logits = torch.div(torch.matmul(prototypes, prototypes.T), temp)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(n_cls).view(-1, 1), 0)
    mask = mask * logits_mask
    mean_prob_neg = torch.log((mask * torch.exp(logits)).sum(1) / mask.sum(1))
    mean_prob_neg = mean_prob_neg[~torch.isnan(mean_prob_neg)]
    loss_dis = temp / 0.1 * mean_prob_neg.mean()
    # CompLoss.forward against the updated (detached) prototypes
    protos = prototypes.detach()
    proxy_labels = torch.arange(0, n_cls)
    mask = torch.eq(labels.contiguous().view(-1, 1), proxy_labels.view(1, -1)).float()   # proxy_labels.T on 1-D
    feat_dot_prototype = torch.div(torch.matmul(features, protos.T), temp)
    logits_max, _ = torch.max(feat_dot_prototype, dim=1, keepdim=True)
    logits = feat_dot_prototype - logits_max.detach()
    exp_logits = torch.exp(logits)
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1)
    loss_comp = -(temp / 0.07) * mean_log_prob_pos.mean()
    return w * loss_comp + loss_dis, loss_comp, loss_dis


def make_data(d):
    rng = np.random.default_rng(2024)
    h = rng.standard_normal((N, D)).astype(np.float32)
    y = (np.arange(N) % C).astype(np.int32)
    rng.shuffle(y)
    palm_protos = rng.random((C * K, D), dtype=np.float32)
    palm_protos /= np.linalg.norm(palm_protos, axis=1, keepdims=True)
    cider_protos = rng.standard_normal((C, D)).astype(np.float32)
    cider_protos /= np.linalg.norm(cider_protos, axis=1, keepdims=True)
    np.save(f"{d}/h.npy", h)
    np.save(f"{d}/labels.npy", y)
    np.save(f"{d}/palm_protos.npy", palm_protos)
    np.save(f"{d}/cider_protos.npy", cider_protos)


def median_ms(fn, reps):
    fn()   # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_steps(d, threads, reps):
    torch.set_num_threads(threads)
    h0 = torch.from_numpy(np.load(f"{d}/h.npy"))
    y = torch.from_numpy(np.load(f"{d}/labels.npy")).long()
    palm_p = torch.from_numpy(np.load(f"{d}/palm_protos.npy"))
    cider_p = torch.from_numpy(np.load(f"{d}/cider_protos.npy"))
    out = {}

    def palm_step():
        h = h0.clone().requires_grad_(True)
        crit = PALM(palm_p.clone(), C, K)
        loss, mle, pcon = crit.forward(F.normalize(h, dim=1), y)
        loss.backward()
        out["palm"] = (loss.item(), mle.item(), pcon.item())

    def cider_step():
        h = h0.clone().requires_grad_(True)
        loss, comp, dis = cider_losses(F.normalize(h, dim=1), y, cider_p.clone(), C)
        loss.backward()
        out["cider"] = (loss.item(), comp.item(), dis.item())

    palm_ms = median_ms(palm_step, reps)
    cider_ms = median_ms(cider_step, reps)
    print(f"torch palm_ms={palm_ms:.3f} loss={out['palm'][0]:.6f} mle={out['palm'][1]:.6f} pcon={out['palm'][2]:.6f}")
    print(f"torch cider_ms={cider_ms:.3f} loss={out['cider'][0]:.6f} comp={out['cider'][1]:.6f} dis={out['cider'][2]:.6f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make-data":
        make_data(sys.argv[2])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "time":
        time_steps(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) == 5 else REPS)
    else:
        sys.exit(__doc__)
