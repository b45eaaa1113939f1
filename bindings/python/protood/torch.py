"""PyTorch loss modules over libprotood's training steps: drop-in replacements for the PALM and
CIDER authors' loss classes.

    import protood, protood.torch
    bank = protood.Bank(n_classes=10, protos_per_class=6, dim=128)
    criterion = protood.torch.PALMLoss(bank)
    loss = criterion(head(backbone(x)), y)      # scalar tensor; criterion.last_losses has the parts
    loss.backward()

The forward pass runs one library step on a float32 CPU copy of the features (normalising them,
updating the prototypes and computing the exact gradient of SPEC.md §3/§4, the path through the
EMA update included); backward returns grad_output times that gradient, moved back to the
features' device and dtype. Importing this module needs torch; `import protood` does not.

Data-parallel training over torch.distributed (docs/distributed.md): attach a DistributedReducer
to the bank on every rank and give each rank's criterion that rank's rows:

    bank.set_reducer(protood.torch.DistributedReducer())      # after init_process_group
    loss = criterion(h_local, y_local)     # the loss of the global batch, on every rank
    (loss * dist.get_world_size()).backward()   # DDP averages: this makes it the global gradient
"""
try:
    import torch as _torch
except ImportError as exc:   # pragma: no cover - depends on the environment
    raise ImportError("protood.torch needs PyTorch (pip install torch, or Debian's python3-torch); "
                      "the rest of protood works without it") from exc

import numpy as _np
import torch.distributed as _dist
from torch.autograd.function import once_differentiable as _once_differentiable

from ._api import Bank

__all__ = ["PALMLoss", "CIDERLoss", "ProtoStep", "DistributedReducer"]


class DistributedReducer:
    """The library's sum-allreduce over torch.distributed, for Bank.set_reducer and
    Scorer.set_reducer: rank and world_size are this process's in `group` (default: the default
    process group, which must be initialised).

    Each call sums the library's float64 buffer in place with dist.all_reduce on a CPU tensor
    over the same memory (no copy), so the group's backend must reduce CPU tensors: gloo (or
    mpi). With NCCL for the network, pass a gloo group made with dist.new_group(backend="gloo").
    A failing all_reduce (a peer gone, the group's timeout) raises here; the library call then
    fails with that exception and leaves the bank or scorer unchanged on this rank."""

    def __init__(self, group=None):
        if not _dist.is_available() or not _dist.is_initialized():
            raise RuntimeError("DistributedReducer: torch.distributed is not initialised "
                               "(call torch.distributed.init_process_group first)")
        rank = _dist.get_rank(group)
        if rank < 0:
            raise ValueError(f"DistributedReducer: this process (global rank "
                             f"{_dist.get_rank()}) is not a member of the group")
        self.group = group
        self.rank = rank
        self.world_size = _dist.get_world_size(group)

    def __call__(self, buf):
        _dist.all_reduce(_torch.from_numpy(buf), op=_dist.ReduceOp.SUM, group=self.group)

    def __repr__(self):
        return f"<protood.torch.DistributedReducer rank={self.rank} world_size={self.world_size}>"


def _labels_numpy(labels, n):
    if labels is None:
        return None
    if isinstance(labels, _torch.Tensor):
        labels = labels.detach().to("cpu")
        if labels.dtype.is_floating_point:
            raise TypeError(f"labels of dtype {labels.dtype}: expected an integer tensor")
        labels = labels.numpy()
    return _np.asarray(labels)   # Bank checks the shape and range


class ProtoStep(_torch.autograd.Function):
    """loss = step(features): one PALM or CIDER step of `bank` as an autograd function.

    forward(features, labels, bank, method, module) -> 0-dim tensor (total loss); the loss parts
    go to module.last_losses. The bank moves on every forward call, as the reference's does."""

    @staticmethod
    def forward(ctx, features, labels, bank, method, module):
        if features.dim() != 2:
            raise ValueError(f"{type(module).__name__}: features have shape {tuple(features.shape)}, "
                             f"expected (batch, dim)")
        h = features.detach().to(device="cpu", dtype=_torch.float32).contiguous().numpy()
        y = _labels_numpy(labels, h.shape[0])
        need_grad = ctx.needs_input_grad[0]
        step = bank.palm_step if method == "palm" else bank.cider_step
        losses, grad = step(h, y, grad=need_grad)
        module.last_losses = losses
        if need_grad:
            ctx.save_for_backward(_torch.from_numpy(grad).to(device=features.device,
                                                             dtype=features.dtype))
        return _torch.tensor(losses.total, dtype=features.dtype, device=features.device)

    @staticmethod
    @_once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None, None, None


class _BankLoss(_torch.nn.Module):
    _method = None

    def __init__(self, bank):
        super().__init__()
        if not isinstance(bank, Bank):
            raise TypeError(f"{type(self).__name__}: bank is a {type(bank).__name__}, "
                            f"expected protood.Bank")
        self.bank = bank
        #: The parts of the last forward call's loss (PalmLosses or CiderLosses), floats.
        self.last_losses = None

    @property
    def prototypes(self):
        """The bank's current prototypes as a (P, dim) float32 CPU tensor (a copy)."""
        return _torch.from_numpy(self.bank.prototypes)

    def extra_repr(self):
        return repr(self.bank)

    # The bank is the loss's state: keep it in state_dict() so checkpoints carry it.
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "bank"] = _torch.frombuffer(bytearray(self.bank.to_bytes()),
                                                         dtype=_torch.uint8)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + "bank"
        if key in state_dict:
            data = bytes(state_dict[key].cpu().numpy().tobytes())
            bank = Bank.from_bytes(data)
            # The file holds no reducer: a criterion that trains data-parallel keeps doing so.
            if self.bank.reducer is not None:
                bank.set_reducer(*self.bank.reducer)
            self.bank = bank
        elif strict:
            missing_keys.append(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, False, missing_keys,
                                      unexpected_keys, error_msgs)


class PALMLoss(_BankLoss):
    """PALM's loss (MLE over a mixture of vMF prototypes + prototype-contrastive), SPEC.md §3.

    forward(features, labels=None): features (batch, dim) raw projector outputs (normalised
    inside), labels (batch,) class indices or None for unsupervised PALM. Returns the scalar
    total loss mle + lambda_pcon * pcon; self.last_losses holds PalmLosses(total, mle, pcon).
    With a reducer on the bank, features are this rank's rows, the loss is the global batch's
    and backward gives its gradient with respect to these rows (docs/distributed.md).
    """
    _method = "palm"

    def forward(self, features, labels=None):
        return ProtoStep.apply(features, labels, self.bank, "palm", self)


class CIDERLoss(_BankLoss):
    """CIDER's loss (compactness + dispersion with one prototype per class), SPEC.md §4. The bank
    needs protos_per_class = 1; CIDER's momentum is 0.5 (set bank.momentum, the bank's default is
    PALM's 0.999).

    forward(features, labels): returns the scalar comp_weight * comp + dis; self.last_losses
    holds CiderLosses(total, comp, dis). With a reducer on the bank, as PALMLoss; the global
    batch is the ranks' rows in rank order (CIDER's sequential update depends on it).
    """
    _method = "cider"

    def forward(self, features, labels):
        if labels is None:
            raise ValueError("CIDERLoss: labels are required")
        return ProtoStep.apply(features, labels, self.bank, "cider", self)
