"""libprotood from Python: out-of-distribution detection with prototype-based hyperspherical
embeddings (PALM, CIDER), over the library's stable C ABI through ctypes.

The shared library libprotood.so.0 is found through $PROTOOD_LIBRARY, then next to this package,
then on the system's library path; its ABI number is checked at import. NumPy is the only
dependency; the PyTorch loss modules are in protood.torch (imported separately, needs torch).

    import protood
    bank = protood.Bank(n_classes=10, protos_per_class=6, dim=128)
    losses, grad = bank.palm_step(h, labels)
    scorer = protood.Scorer("knn", dim=512, k=50).fit(train_features)
    print(protood.auroc(scorer.score(id_test), scorer.score(ood_test)))

docs/python.md has the whole guide.
"""
from . import errors
from ._api import (FPR_KNN, FPR_OOD_POSITIVE, FPR_PERCENTILE, FPR_ROC, INIT_POSITIVE, INIT_SPHERE,
                   KNN, MAHALANOBIS, POSITIVE_IN, POSITIVE_OUT, PROTOTYPE, SSD, Bank, CiderLosses,
                   PalmLosses, Reducer, Scorer, abi_version, aupr, auroc, build_info, fpr_at_tpr,
                   read_npy, set_threads, sinkhorn, version, version_number, write_npy)
from ._native import ABI_VERSION, library_path
from .errors import (CallbackError, Error, FileIOError, FormatError, InternalError,
                     InvalidArgumentError, LabelError, NonFiniteError, OutOfMemoryError, ShapeError,
                     StateError, UnsupportedError)

__version__ = "0.2.0"

__all__ = [
    "Bank", "Scorer", "PalmLosses", "CiderLosses", "Reducer",
    "sinkhorn", "auroc", "aupr", "fpr_at_tpr", "read_npy", "write_npy",
    "set_threads", "version", "version_number", "abi_version", "build_info", "library_path",
    "ABI_VERSION", "INIT_SPHERE", "INIT_POSITIVE", "KNN", "MAHALANOBIS", "SSD", "PROTOTYPE",
    "POSITIVE_IN", "POSITIVE_OUT", "FPR_ROC", "FPR_KNN", "FPR_PERCENTILE", "FPR_OOD_POSITIVE",
    "Error", "InvalidArgumentError", "OutOfMemoryError", "ShapeError", "StateError",
    "NonFiniteError", "LabelError", "FileIOError", "FormatError", "CallbackError",
    "UnsupportedError", "InternalError", "errors",
]
