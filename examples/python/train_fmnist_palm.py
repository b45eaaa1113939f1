#!/usr/bin/python3
"""Train a small CNN with PALM (libprotood's protood.torch.PALMLoss) on 6 Fashion-MNIST classes,
then detect the 4 held-out classes as out-of-distribution with protood.Scorer (KNN on the
penultimate-layer features) and print AUROC and FPR at 95% TPR.

    PYTHONPATH=bindings/python PROTOOD_LIBRARY=build/release/lib/libprotood.so.0 \\
        /usr/bin/python3 examples/python/train_fmnist_palm.py [--epochs 3] [--seed 0]

Data: Debian's dataset-fashion-mnist (gzip'd IDX files in /usr/share/datasets/fashion-mnist/).
Split as in docs/benchmark-fmnist.md: in-distribution = classes 0-5 (T-shirt/top, Trouser,
Pullover, Dress, Coat, Sandal), OOD = test images of classes 6-9 (Shirt, Sneaker, Bag, Ankle
boot). The defaults (a 6000-image training subset, 3 epochs, 2 threads) finish in a few minutes on
two cores; the held-out classes are near-OOD (a Shirt is close to a T-shirt), so expect moderate
numbers from so short a run.
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import protood
import protood.torch

ID_CLASSES = 6
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"]


def read_idx(path, dims):
    """A gzip'd IDX file of unsigned bytes: magic 0 0 8 <dims>, big-endian uint32 sizes, data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 + 4 * dims or data[:4] != bytes([0, 0, 8, dims]):
        raise ValueError(f"{path}: not an IDX file of unsigned bytes with {dims} dimension(s)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != math.prod(shape):
        raise ValueError(f"{path}: {body.size} data bytes, the header announces {shape}")
    return body.reshape(shape)


def load_fashion_mnist(data_dir):
    files = {k: os.path.join(data_dir, f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz")
             for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    missing = [p for p in files.values() if not os.path.exists(p)]
    if missing:
        sys.exit(f"error: Fashion-MNIST not found ({missing[0]}): install Debian's "
                 f"dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or pass "
                 f"--data-dir")
    xtr, ytr = read_idx(files["train-images"], 3), read_idx(files["train-labels"], 1)
    xte, yte = read_idx(files["t10k-images"], 3), read_idx(files["t10k-labels"], 1)
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def to_tensor(images):
    """uint8 (n, 28, 28) -> standardised float32 (n, 1, 28, 28) (Fashion-MNIST mean/std)."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - 0.2860) / 0.3530).unsqueeze(1)


def augment(x, gen):
    """Random translation by up to +-2 px (pad with the background value, crop) and horizontal
    flip with probability 1/2, independently per image."""
    n = x.shape[0]
    background = (0.0 - 0.2860) / 0.3530
    padded = F.pad(x, (2, 2, 2, 2), value=background)
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(28)[None, :])[:, None, :, None].expand(n, 1, 28, 32)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(28)[None, :])[:, None, None, :].expand(n, 1, 28, 28)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


class Net(nn.Module):
    """A small CNN: the 128-d penultimate features are what the scorer sees; the projection head
    (128 -> 128 -> 64) feeds the PALM loss, as in the paper."""

    def __init__(self, dim=64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 7 * 7, 128)
        self.head = nn.Sequential(nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Linear(128, dim))

    def features(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


@torch.no_grad()
def embed(net, x, batch=1000):
    net.eval()
    return torch.cat([net.features(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-size", type=int, default=6000,
                    help="ID training images used (of 36000; default 6000)")
    ap.add_argument("--batch-size", type=int, default=128, help="images per batch (two views each)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--protos", type=int, default=6, help="prototypes per class (K)")
    ap.add_argument("--knn-k", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=DEFAULT_DATA)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    protood.set_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    xtr, ytr, xte, yte = load_fashion_mnist(args.data_dir)
    id_train = np.flatnonzero(ytr < ID_CLASSES)
    id_train = np.sort(rng.choice(id_train, size=min(args.train_size, id_train.size), replace=False))
    x_train, y_train = to_tensor(xtr[id_train]), torch.from_numpy(ytr[id_train])
    x_id, x_ood = to_tensor(xte[yte < ID_CLASSES]), to_tensor(xte[yte >= ID_CLASSES])
    print(f"libprotood {protood.version()} ({protood.build_info().get('blas')}), torch "
          f"{torch.__version__}, {args.threads} threads")
    print(f"ID: classes 0-5 ({', '.join(NAMES[:ID_CLASSES])}), {len(x_train)} training images; "
          f"test: {len(x_id)} ID, {len(x_ood)} OOD ({', '.join(NAMES[ID_CLASSES:])})")

    net = Net()
    bank = protood.Bank(ID_CLASSES, args.protos, 64)          # the library's PALM defaults
    bank.init_random("positive", args.seed)
    criterion = protood.torch.PALMLoss(bank)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)

    t_start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = mle = pcon = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            x, y = x_train[idx], y_train[idx]
            views = torch.cat([augment(x, gen), augment(x, gen)])     # two views, labels repeated
            loss = criterion(net(views), torch.cat([y, y]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            mle += criterion.last_losses.mle * len(idx)
            pcon += criterion.last_losses.pcon * len(idx)
        n = len(x_train)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / n:.4f} (mle {mle / n:.4f}, "
              f"pcon {pcon / n:.4f})  {time.perf_counter() - t_start:.0f} s")

    f_train, f_id, f_ood = embed(net, x_train), embed(net, x_id), embed(net, x_ood)
    print(f"OOD detection on the {f_train.shape[1]}-d penultimate features "
          f"(ID positive, in %):")
    for name, scorer in [(f"KNN (k={args.knn_k})", protood.Scorer("knn", f_train.shape[1], k=args.knn_k)),
                         ("Mahalanobis", protood.Scorer("mahalanobis", f_train.shape[1]))]:
        scorer.fit(f_train, y_train.numpy() if scorer.kind == "mahalanobis" else None)
        s_id, s_ood = scorer.score(f_id), scorer.score(f_ood)
        print(f"  {name:<12} AUROC {100 * protood.auroc(s_id, s_ood):6.2f}   "
              f"FPR95 {100 * protood.fpr_at_tpr(s_id, s_ood):6.2f}")
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
