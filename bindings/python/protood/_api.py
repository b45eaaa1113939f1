"""The NumPy-facing API over libprotood: Bank, Scorer and the free functions."""
import collections
import ctypes
import os
import threading

import numpy as np

from . import errors
from ._native import (ALLREDUCE_FN, F32P, F64P, FEATURE_FN, HANDLE, I32P, c_double, c_int32,
                      c_int64, c_size_t, c_uint64, check, last_error, lib)
from .errors import E_CALLBACK, E_INVALID_ARG, E_LABEL, E_SHAPE, InvalidArgumentError

# ---- constants (the numbers of protood.h) ----------------------------------------------------

INIT_SPHERE = 1
INIT_POSITIVE = 2
_INIT_SCHEMES = {"sphere": INIT_SPHERE, "positive": INIT_POSITIVE}

KNN = 1
MAHALANOBIS = 2
SSD = 3
PROTOTYPE = 4
_SCORER_KINDS = {"knn": KNN, "mahalanobis": MAHALANOBIS, "ssd": SSD, "prototype": PROTOTYPE}
_SCORER_NAMES = {v: k for k, v in _SCORER_KINDS.items()}
_SCORER_K = 1
_SCORER_NORMALIZE = 2

POSITIVE_IN = 1
POSITIVE_OUT = 2
_POSITIVE = {"in": POSITIVE_IN, "out": POSITIVE_OUT}

FPR_ROC = 0
FPR_KNN = 1
FPR_PERCENTILE = 2
FPR_OOD_POSITIVE = 3
_FPR_CONVENTIONS = {"roc": FPR_ROC, "knn": FPR_KNN, "percentile": FPR_PERCENTILE,
                    "ood_positive": FPR_OOD_POSITIVE}

_DTYPE_F32, _DTYPE_F64, _DTYPE_F16, _DTYPE_I32, _DTYPE_I64 = 1, 2, 3, 4, 5

# name -> (key, is integer)
_BANK_PARAMS = {
    "momentum": (1, False),
    "temperature": (2, False),
    "sinkhorn_epsilon": (3, False),
    "sinkhorn_iters": (4, True),
    "topk": (5, True),
    "lambda_pcon": (6, False),
    "pcon_temperature": (7, False),
    "comp_weight": (8, False),
    "dis_base_temperature": (9, False),
    "comp_base_temperature": (10, False),
}

PalmLosses = collections.namedtuple("PalmLosses", "total mle pcon")
PalmLosses.__doc__ = "Losses of a PALM step: total = mle + lambda_pcon * pcon."
CiderLosses = collections.namedtuple("CiderLosses", "total comp dis")
CiderLosses.__doc__ = "Losses of a CIDER step: total = comp_weight * comp + dis."
Reducer = collections.namedtuple("Reducer", "fn rank world_size")
Reducer.__doc__ = ("The reducer attached to a Bank or Scorer: the callable that sums a float64 "
                   "buffer in place over every participant, this process's rank, their number.")


# ---- helpers -----------------------------------------------------------------------------------

def _fail(status, message):
    """An error raised by the binding itself (a check the C call cannot do, e.g. an array's width
    against the handle's dimension), in the library's message style."""
    return errors.from_status(status, message)


def _f32(a):
    # A float64 value beyond float32's range becomes inf here; the library then rejects it as
    # NONFINITE with its index, so numpy's overflow warning would only repeat that.
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(a, dtype=np.float32)


def _matrix(func, name, a, dim=None):
    """A 2-D float32 C-contiguous copy (or the array itself when it already is one)."""
    a = _f32(a)
    if a.ndim != 2:
        raise _fail(E_SHAPE, f"{func}: {name} has shape {a.shape}, expected a 2-D array (rows x dim)")
    if dim is not None and a.shape[1] != dim:
        raise _fail(E_SHAPE, f"{func}: {name} has {a.shape[1]} columns, expected dim = {dim}")
    return a


def _vector(func, name, a):
    a = _f32(a)
    if a.ndim != 1:
        raise _fail(E_SHAPE, f"{func}: {name} has shape {a.shape}, expected a 1-D array")
    return a


def _labels(func, labels, n):
    """int32 labels of length n, refusing values a conversion to int32 would wrap."""
    y = np.asarray(labels)
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            pass   # integral floats are fine (e.g. labels read from a float file)
        else:
            raise _fail(E_LABEL, f"{func}: labels of dtype {y.dtype} must be integers")
    if y.ndim != 1 or y.shape[0] != n:
        raise _fail(E_SHAPE, f"{func}: labels has shape {y.shape}, expected ({n},)")
    if y.size and (y.min() < -2**31 or y.max() > 2**31 - 1):
        i = int(np.argmax((y < -2**31) | (y > 2**31 - 1)))
        raise _fail(E_LABEL, f"{func}: labels[{i}] = {y[i]} outside the int32 range")
    return np.ascontiguousarray(y, dtype=np.int32)


def _seed(func, seed):
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise _fail(E_INVALID_ARG, f"{func}: seed = {seed} outside [0, 2^64)")
    return seed


def _choice(func, name, value, table):
    if isinstance(value, str):
        try:
            return table[value.lower()]
        except KeyError:
            raise _fail(E_INVALID_ARG, f"{func}: {name} = {value!r}, expected one of "
                                       f"{', '.join(map(repr, table))}") from None
    return int(value)


def _i32(func, name, value):
    v = int(value)
    if not -2**31 <= v < 2**31:
        raise _fail(E_INVALID_ARG, f"{func}: {name} = {v} outside the int32 range")
    return c_int32(v)


def _f32p(a):
    return a.ctypes.data_as(F32P)


def _i32p(a):
    return None if a is None else a.ctypes.data_as(I32P)


def _path(path):
    return os.fsencode(path)


class _RWLock:
    """Many readers or one writer. The C contract: const-handle calls may run concurrently, the
    others need exclusive access; this lock keeps Python threads inside that contract."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0   # new readers queue behind them: a writer is never starved

    def shared(self):
        return _Held(self, False)

    def exclusive(self):
        return _Held(self, True)

    def _acquire(self, write):
        with self._cond:
            if write:
                self._waiting_writers += 1
                try:
                    while self._writer or self._readers:
                        self._cond.wait()
                finally:
                    self._waiting_writers -= 1
                self._writer = True
            else:
                while self._writer or self._waiting_writers:
                    self._cond.wait()
                self._readers += 1

    def _release(self, write):
        with self._cond:
            if write:
                self._writer = False
            else:
                self._readers -= 1
            self._cond.notify_all()


class _Held:
    __slots__ = ("lock", "write")

    def __init__(self, lock, write):
        self.lock, self.write = lock, write

    def __enter__(self):
        self.lock._acquire(self.write)

    def __exit__(self, *exc):
        self.lock._release(self.write)


def _serialize(to_buffer, handle):
    size = c_size_t(0)
    check(to_buffer(handle, None, 0, ctypes.byref(size)))
    buf = ctypes.create_string_buffer(size.value)
    check(to_buffer(handle, buf, size.value, ctypes.byref(size)))
    return buf.raw[:size.value]


# ---- library-wide ------------------------------------------------------------------------------

def version():
    """The loaded library's version, "major.minor.patch"."""
    return lib.protood_version_string().decode()


def version_number():
    """The loaded library's version as major*10000 + minor*100 + patch."""
    return int(lib.protood_version_number())


def abi_version():
    return int(lib.protood_abi_version())


def build_info():
    """How the loaded library was built, as a dict ("blas", "openmp", ...)."""
    text = lib.protood_build_info().decode()
    return dict(item.split("=", 1) for item in text.split(";") if "=" in item)


def set_threads(n):
    """Threads for the library's OpenMP loops and its BLAS (process-wide; call once at start-up)."""
    check(lib.protood_set_threads(_i32("set_threads", "n", n)))


# ---- Bank --------------------------------------------------------------------------------------

class _BankParam:
    def __init__(self, name, key, integer):
        self.name, self.key, self.integer = name, key, integer
        self.__doc__ = f"The bank's {name} parameter (PROTOOD_BANK_{name.upper()})."

    def __get__(self, bank, owner=None):
        if bank is None:
            return self
        return bank.get_param(self.name)

    def __set__(self, bank, value):
        bank.set_param(self.name, value)


class _Handle:
    """What Bank and Scorer share: the C functions of a handle are protood_<_c_name>_<op>."""

    _c_name = None

    @classmethod
    def _c(cls, op):
        return getattr(lib, "protood_%s_%s" % (cls._c_name, op))

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h and lib is not None:
            self._c("free")(h)

    def close(self):
        """Free the C handle now (otherwise done when the object is collected)."""
        with self._lock.exclusive():
            self.__del__()

    @property
    def _handle(self):
        if not self._h:
            raise errors.StateError(errors.E_STATE,
                                    "%s: the %s has been closed" % (type(self).__name__, self._c_name))
        return self._h


class _Persistent(_Handle):
    """save/load, bytes, copies and pickling, shared by Bank and Scorer: the C functions are
    protood_<_c_name>_save, _load, _to_buffer and _from_buffer."""

    def save(self, path):
        """Write to a file atomically (versioned, checksummed, little-endian)."""
        with self._lock.shared():
            check(self._c("save")(self._handle, _path(path)))

    @classmethod
    def load(cls, path):
        out = HANDLE()
        check(cls._c("load")(ctypes.byref(out), _path(path)))
        return cls._wrap(out)

    def to_bytes(self):
        """The file format, as bytes."""
        with self._lock.shared():
            return _serialize(self._c("to_buffer"), self._handle)

    @classmethod
    def from_bytes(cls, data):
        data = bytes(data)
        out = HANDLE()
        check(cls._c("from_buffer")(ctypes.byref(out), data, len(data)))
        return cls._wrap(out)

    def __copy__(self):
        return self.clone()

    def __deepcopy__(self, memo):
        return self.clone()

    def __reduce__(self):
        return (_from_bytes, (type(self), self.to_bytes()))


def _from_bytes(cls, data):
    return cls.from_bytes(data)


class _Trampoline:
    """The protood_allreduce_fn behind a Python reducer: hands the library's buffer to the
    callable as a float64 NumPy array over the same memory (no copy), which it sums in place.
    An exception must not cross the C frames: it is kept (per thread) and the callback returns 1,
    so that the library aborts the call with PROTOOD_E_CALLBACK, and finish() re-raises it."""

    def __init__(self, fn, rank, world_size):
        self.reducer = Reducer(fn, rank, world_size)
        self._local = threading.local()
        # The handle holds this object, and so the ctypes thunk the library points to.
        self.callback = ALLREDUCE_FN(self._call)

    def _call(self, user, buf, count):
        try:
            self.reducer.fn(np.ctypeslib.as_array(buf, shape=(count,)))
            return 0
        except BaseException as exc:   # noqa: B902 - everything, KeyboardInterrupt included
            if getattr(self._local, "exc", None) is None:   # the first one stopped the call
                self._local.exc = exc
            return 1

    def finish(self, status, what):
        """After a C call that may have run the reducer, on the thread that made it."""
        exc, self._local.exc = getattr(self._local, "exc", None), None
        if exc is None:
            check(status)
            return
        error = errors.from_status(status, last_error())
        if status == E_CALLBACK:
            # The reducer's own exception propagates, with its type and chain as raised; a
            # PEP 678 note (shown in tracebacks from Python 3.11 on) names the library's status.
            exc.__notes__ = [*getattr(exc, "__notes__", ()), f"{error}; the {what} is unchanged"]
            raise exc
        # Any other status (the library never succeeds after its reducer failed): the call failed
        # on this rank's own arguments (E_LABEL, ...), and the reducer in the one exchange that a
        # failing rank still joins. The library's error is the answer, the reducer's its context.
        error.__context__ = exc
        raise error


class _Reducible(_Handle):
    """Bank.set_reducer / Scorer.set_reducer: protood_<_c_name>_set_reducer."""

    _trampoline = None

    def set_reducer(self, fn, rank=None, world_size=None):
        """Attach a sum-allreduce for data-parallel steps or sharded scorers (docs/distributed.md):
        fn(buf) replaces the float64 array buf by its element-wise sum over every participant, in
        place. rank and world_size default to fn.rank and fn.world_size (as on
        protood.torch.DistributedReducer). fn=None detaches it. Returns self.

        An exception raised by fn makes the library call fail with PROTOOD_E_CALLBACK, leaving
        the handle unchanged on this rank, and then propagates from that call as fn raised it."""
        func = f"{type(self).__name__}.set_reducer"
        if fn is None:
            trampoline = None
            rank = 0 if rank is None else rank
            world_size = 1 if world_size is None else world_size
        else:
            if not callable(fn):
                raise _fail(E_INVALID_ARG, f"{func}: fn is a {type(fn).__name__}, expected a "
                                           f"callable or None")
            rank = getattr(fn, "rank", None) if rank is None else rank
            world_size = getattr(fn, "world_size", None) if world_size is None else world_size
            if rank is None or world_size is None:
                raise _fail(E_INVALID_ARG, f"{func}: rank and world_size are required (fn has "
                                           f"no rank and world_size attributes)")
            trampoline = _Trampoline(fn, int(rank), int(world_size))
        rank, size = _i32(func, "rank", rank), _i32(func, "world_size", world_size)
        with self._lock.exclusive():
            callback = trampoline.callback if trampoline else ALLREDUCE_FN()   # () is NULL
            check(self._c("set_reducer")(self._handle, callback, None, rank, size))
            # Only now: until the library has the new pointer, the old thunk must stay alive.
            self._trampoline = trampoline
        return self

    @property
    def reducer(self):
        """The attached Reducer(fn, rank, world_size), or None. Not copied by clone, pickling or
        saving: a copy is a single-process handle."""
        return self._trampoline and self._trampoline.reducer

    def _finish(self, status, trampoline):
        """check(status) after a call that may have run `trampoline` (None: no reducer)."""
        if trampoline is None:
            check(status)
        else:
            trampoline.finish(status, type(self).__name__.lower())


class Bank(_Persistent, _Reducible):
    """A bank of prototypes (n_classes x protos_per_class rows of dimension dim, class-major, unit
    norm) with the parameters of the PALM and CIDER training steps.

        bank = protood.Bank(10, 6, 128, momentum=0.999)
        losses, grad = bank.palm_step(h, labels)      # h: (n, 128), grad: (n, 128) float32

    Parameters are attributes named after the C keys (momentum, temperature, sinkhorn_epsilon,
    sinkhorn_iters, topk, lambda_pcon, pcon_temperature, comp_weight, dis_base_temperature,
    comp_base_temperature). Calls that change the bank take a per-bank lock, so concurrent Python
    threads cannot break the library's exclusive-access rule. Banks pickle and copy (the library's
    versioned, checksummed format).
    """

    _c_name = "bank"

    PARAMS = tuple(_BANK_PARAMS)

    def __init__(self, n_classes, protos_per_class, dim, **params):
        self._h = None
        self._lock = _RWLock()
        out = HANDLE()
        check(lib.protood_bank_create(ctypes.byref(out), c_int64(n_classes),
                                      c_int64(protos_per_class), c_int64(dim)))
        self._adopt(out)
        for name, value in params.items():
            self.set_param(name, value)

    @classmethod
    def _wrap(cls, handle):
        self = cls.__new__(cls)
        self._h = None
        self._lock = _RWLock()
        self._adopt(handle)
        return self

    def _adopt(self, handle):
        self._h = handle
        c, k, d = c_int64(), c_int64(), c_int64()
        check(lib.protood_bank_shape(handle, ctypes.byref(c), ctypes.byref(k), ctypes.byref(d)))
        self.n_classes, self.protos_per_class, self.dim = c.value, k.value, d.value
        self.n_prototypes = c.value * k.value

    def __repr__(self):
        if not self._h:
            return "<protood.Bank (closed)>"
        return (f"<protood.Bank n_classes={self.n_classes} protos_per_class={self.protos_per_class} "
                f"dim={self.dim}>")

    # parameters
    def set_param(self, name, value):
        """Set a parameter by name (or by its integer key)."""
        key, integer = self._key(name)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise _fail(E_INVALID_ARG, f"Bank.set_param: {name} = {value!r} is not a number")
        with self._lock.exclusive():
            check(lib.protood_bank_set_param(self._handle, key, c_double(float(value))))

    def get_param(self, name):
        key, integer = self._key(name)
        v = c_double()
        with self._lock.shared():
            check(lib.protood_bank_get_param(self._handle, key, ctypes.byref(v)))
        return int(v.value) if integer else v.value

    def get_params(self):
        """All parameters as a dict."""
        return {name: self.get_param(name) for name in _BANK_PARAMS}

    @staticmethod
    def _key(name):
        if isinstance(name, str):
            try:
                return _BANK_PARAMS[name]
            except KeyError:
                raise _fail(E_INVALID_ARG, f"Bank: unknown parameter {name!r}, expected one of "
                                           f"{', '.join(_BANK_PARAMS)}") from None
        return int(name), False

    # prototypes
    def init_random(self, scheme="positive", seed=0):
        """Re-draw the prototypes: "positive" (uniform [0,1) then normalised: PALM's reference)
        or "sphere" (uniform directions). Reproducible from seed on every platform."""
        s = _choice("Bank.init_random", "scheme", scheme, _INIT_SCHEMES)
        seed = _seed("Bank.init_random", seed)
        with self._lock.exclusive():
            check(lib.protood_bank_init_random(self._handle, _i32("Bank.init_random", "scheme", s),
                                               c_uint64(seed)))
        return self

    def init_from_features(self, x, labels, seed=0):
        """Prototypes from feature rows: class means (K = 1) or per-class spherical k-means++."""
        x = _matrix("Bank.init_from_features", "x", x, self.dim)
        y = _labels("Bank.init_from_features", labels, x.shape[0])
        seed = _seed("Bank.init_from_features", seed)
        with self._lock.exclusive():
            check(lib.protood_bank_init_from_features(self._handle, x.shape[0], _f32p(x), _i32p(y),
                                                      c_uint64(seed)))
        return self

    @property
    def prototypes(self):
        """The P x dim prototypes (a new float32 array; row c*K + k is class c). Assigning an
        array replaces them (rows are normalised)."""
        out = np.empty((self.n_prototypes, self.dim), dtype=np.float32)
        with self._lock.shared():
            check(lib.protood_bank_get_prototypes(self._handle, _f32p(out)))
        return out

    @prototypes.setter
    def prototypes(self, value):
        p = _matrix("Bank.prototypes", "value", value, self.dim)
        if p.shape[0] != self.n_prototypes:
            raise _fail(E_SHAPE, f"Bank.prototypes: value has {p.shape[0]} rows, the bank holds "
                                 f"{self.n_prototypes} prototypes")
        with self._lock.exclusive():
            check(lib.protood_bank_set_prototypes(self._handle, _f32p(p)))

    # training steps
    def _step(self, fn, func, h, labels, grad):
        h = _matrix(func, "h", h, self.dim)
        n = h.shape[0]
        y = None if labels is None else _labels(func, labels, n)
        losses = (c_double * 3)()
        g = np.empty((n, self.dim), dtype=np.float32) if grad else None
        with self._lock.exclusive():
            self._finish(fn(self._handle, n, _f32p(h), _i32p(y), losses,
                            None if g is None else _f32p(g)), self._trampoline)
        return tuple(losses), g

    def palm_step(self, h, labels=None, *, grad=True):
        """One PALM step (SPEC §3) on raw feature rows h (n x dim): moves the prototypes and
        returns (PalmLosses(total, mle, pcon), dL/dh as an (n, dim) float32 array, or None with
        grad=False). labels=None is unsupervised PALM."""
        losses, g = self._step(lib.protood_palm_step, "Bank.palm_step", h, labels, grad)
        return PalmLosses(*losses), g

    def cider_step(self, h, labels, *, grad=True):
        """One CIDER step (SPEC §4; the bank must have protos_per_class = 1): moves the
        prototypes and returns (CiderLosses(total, comp, dis), dL/dh or None)."""
        if labels is None:
            raise _fail(E_INVALID_ARG, "Bank.cider_step: labels = None, CIDER needs labels")
        losses, g = self._step(lib.protood_cider_step, "Bank.cider_step", h, labels, grad)
        return CiderLosses(*losses), g

    def palm_assign(self, h, labels=None):
        """PALM's loss weights of rows h against the bank as it is (no update): (n, P) float32."""
        h = _matrix("Bank.palm_assign", "h", h, self.dim)
        n = h.shape[0]
        y = None if labels is None else _labels("Bank.palm_assign", labels, n)
        out = np.empty((n, self.n_prototypes), dtype=np.float32)
        with self._lock.shared():
            check(lib.protood_palm_assign(self._handle, n, _f32p(h), _i32p(y), _f32p(out)))
        return out

    # copies and persistence
    def clone(self):
        """An independent deep copy (prototypes and parameters)."""
        out = HANDLE()
        with self._lock.shared():
            check(lib.protood_bank_clone(ctypes.byref(out), self._handle))
        return type(self)._wrap(out)



for _name, (_key, _integer) in _BANK_PARAMS.items():
    setattr(Bank, _name, _BankParam(_name, _key, _integer))


# ---- Scorer ------------------------------------------------------------------------------------

class _Feeder:
    """Serves the library's feature callback from a Python iterable of batches (arrays, or
    (rows, labels) pairs, of any sizes) or from a function (first, count) -> rows or (rows, labels).
    Every exception is caught and kept: it must not cross the C frames; the caller re-raises it."""

    def __init__(self, func, source, dim, total):
        self.func, self.dim, self.total = func, dim, total
        self.exc = None
        if callable(source) and not hasattr(source, "__iter__"):
            self.fn, self.it = source, None
        else:
            self.fn, self.it = None, iter(source)
        self.x = self.y = None
        self.pos = 0       # rows of self.x already handed out
        self.served = 0
        self.callback = FEATURE_FN(self._call)

    def _split(self, item):
        if isinstance(item, tuple):
            if len(item) != 2:
                raise _fail(E_SHAPE, f"{self.func}: a batch is a tuple of {len(item)} items, "
                                     f"expected rows or (rows, labels)")
            x, y = item
        else:
            x, y = item, None
        x = _matrix(self.func, "batch", x, self.dim)
        if y is not None:
            y = _labels(self.func, y, x.shape[0])
        return x, y

    def _next_batch(self):
        while True:
            try:
                item = next(self.it)
            except StopIteration:
                raise _fail(E_SHAPE, f"{self.func}: the batches ended after {self.served} rows, "
                                     f"expected {self.total}") from None
            self.x, self.y = self._split(item)
            self.pos = 0
            if self.x.shape[0]:
                return

    def _call(self, user, first, count, rows_out, labels_out):
        try:
            rows = np.ctypeslib.as_array(rows_out, shape=(count, self.dim))
            labels = np.ctypeslib.as_array(labels_out, shape=(count,)) if labels_out else None
            if self.fn is not None:
                x, y = self._split(self.fn(first, count))
                if x.shape[0] != count:
                    raise _fail(E_SHAPE, f"{self.func}: the function returned {x.shape[0]} rows "
                                         f"for rows [{first}, {first + count}), expected {count}")
                rows[:] = x
                if labels is not None:
                    if y is None:
                        raise _fail(E_INVALID_ARG, f"{self.func}: this fit needs labels: return "
                                                   f"(rows, labels)")
                    labels[:] = y
                self.served += count
                return 0
            filled = 0
            while filled < count:
                if self.x is None or self.pos == self.x.shape[0]:
                    self._next_batch()
                if labels is not None and self.y is None:
                    raise _fail(E_INVALID_ARG, f"{self.func}: this fit needs labels: yield "
                                               f"(rows, labels) pairs")
                take = min(count - filled, self.x.shape[0] - self.pos)
                rows[filled:filled + take] = self.x[self.pos:self.pos + take]
                if labels is not None:
                    labels[filled:filled + take] = self.y[self.pos:self.pos + take]
                self.pos += take
                filled += take
                self.served += take
            return 0
        except BaseException as exc:   # noqa: B902 - everything, KeyboardInterrupt included
            self.exc = exc
            return 1

    def finish(self, status):
        """After the C call: the iterator's own exception first, then the library's status."""
        if self.exc is not None:
            exc, self.exc = self.exc, None
            raise exc
        check(status)


def _stream_length(func, batches, n, what):
    if n is not None:
        return int(n)
    if callable(batches) and not hasattr(batches, "__iter__"):
        raise _fail(E_INVALID_ARG, f"{func}: {what} is required with a function as the source")
    if isinstance(batches, (list, tuple)):
        total = 0
        for item in batches:
            x = item[0] if isinstance(item, tuple) else item
            total += np.shape(x)[0] if np.ndim(x) else 0
        return total
    raise _fail(E_INVALID_ARG, f"{func}: {what} is required when the batches are an iterator "
                               f"(the library needs the row count up front)")


class Scorer(_Persistent, _Reducible):
    """An OOD scorer (higher score = more in-distribution), fitted once, scoring many times.

        s = protood.Scorer("knn", dim=128, k=50)
        s.fit(train_features)
        scores = s.score(test_features)            # (m,) float32

    kind: "knn", "mahalanobis", "ssd", "prototype" (or protood.KNN, ...). Scoring may run from any
    number of threads at once (the GIL is released during the C call); fit and parameter changes
    wait for running scores to finish (a per-scorer readers-writer lock).
    """

    _c_name = "scorer"

    def __init__(self, kind, dim, *, k=None, normalize=None):
        self._h = None
        self._lock = _RWLock()
        kind = _choice("Scorer", "kind", kind, _SCORER_KINDS)
        out = HANDLE()
        check(lib.protood_scorer_create(ctypes.byref(out), _i32("Scorer", "kind", kind),
                                        c_int64(dim)))
        self._h, self._kind, self.dim = out, kind, int(dim)
        if k is not None:
            self.k = k
        if normalize is not None:
            self.normalize = normalize

    @classmethod
    def _wrap(cls, handle):
        self = cls.__new__(cls)
        self._lock = _RWLock()
        self._h = handle
        kind, dim = ctypes.c_int32(), ctypes.c_int64()
        status = lib.protood_scorer_info(handle, ctypes.byref(kind), ctypes.byref(dim), None)
        if status != 0:
            error = errors.from_status(status, last_error())
            lib.protood_scorer_free(handle)
            raise error
        self._kind = kind.value
        self.dim = dim.value
        return self

    @property
    def kind(self):
        """"knn", "mahalanobis", "ssd" or "prototype"."""
        return _SCORER_NAMES.get(self._kind, str(self._kind))

    def __repr__(self):
        if not self._h:
            return "<protood.Scorer (closed)>"
        return f"<protood.Scorer kind={self.kind} dim={self.dim} k={self.k} normalize={self.normalize}>"

    def _get(self, key):
        v = c_double()
        with self._lock.shared():
            check(lib.protood_scorer_get_param(self._handle, key, ctypes.byref(v)))
        return v.value

    def _set(self, key, name, value):
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise _fail(E_INVALID_ARG, f"Scorer.{name}: {value!r} is not a number")
        with self._lock.exclusive():
            check(lib.protood_scorer_set_param(self._handle, key, c_double(float(value))))

    @property
    def k(self):
        """KNN's k (the k-th neighbour's distance is the score); default 50."""
        return int(self._get(_SCORER_K))

    @k.setter
    def k(self, value):
        self._set(_SCORER_K, "k", value)

    @property
    def normalize(self):
        """Whether every input row is L2-normalised first (default True; set before fit)."""
        return bool(self._get(_SCORER_NORMALIZE))

    @normalize.setter
    def normalize(self, value):
        self._set(_SCORER_NORMALIZE, "normalize", int(bool(value)))

    def fit(self, x, labels=None, n_classes=None):
        """Fit on training rows x (n x dim). Mahalanobis needs labels; n_classes defaults to
        max(labels) + 1. Returns self."""
        x = _matrix("Scorer.fit", "x", x, self.dim)
        n = x.shape[0]
        y = None
        if labels is not None:
            y = _labels("Scorer.fit", labels, n)
            if n_classes is None:
                if self._trampoline is not None:
                    # Every rank would take its own max(labels) + 1 and they could disagree.
                    raise _fail(E_INVALID_ARG, "Scorer.fit: n_classes is required with a "
                                               "reducer (this rank's labels need not hold the "
                                               "highest class)")
                n_classes = int(y.max()) + 1 if y.size else 0
        with self._lock.exclusive():
            self._finish(lib.protood_scorer_fit(self._handle, n, _f32p(x), _i32p(y),
                                                c_int64(n_classes or 0)), self._trampoline)
        return self

    def fit_bank(self, bank):
        """Fit a "prototype" scorer to a bank's prototypes (copied). Returns self."""
        if not isinstance(bank, Bank):
            raise _fail(E_INVALID_ARG, f"Scorer.fit_bank: bank is a {type(bank).__name__}, "
                                       f"expected protood.Bank")
        with self._lock.exclusive(), bank._lock.shared():
            check(lib.protood_scorer_fit_bank(self._handle, bank._handle))
        return self

    def score(self, q):
        """Scores of query rows q (m x dim; a single 1-D row is taken as m = 1): (m,) float32."""
        q = _f32(q)
        if q.ndim == 1:
            q = q[None, :]
        q = _matrix("Scorer.score", "q", q, self.dim)
        out = np.empty(q.shape[0], dtype=np.float32)
        # With a reducer a score may be a collective call (a sharded KNN scorer): those of one
        # handle run one at a time, so that each call's exchanges stay together.
        held = self._lock.exclusive() if self._trampoline is not None else self._lock.shared()
        with held:
            self._finish(lib.protood_scorer_score(self._handle, q.shape[0], _f32p(q), _f32p(out)),
                         self._trampoline)
        return out

    __call__ = score

    def fit_stream(self, batches, n=None, *, batch_size=4096, n_classes=0):
        """Fit on rows pulled in batches through the library's feature callback, without holding
        them all in memory (Mahalanobis and SSD keep only moments).

        batches: an iterable of arrays (or of (rows, labels) pairs for Mahalanobis) of any
            sizes, re-cut into the library's batches of batch_size rows; or a function
            (first, count) -> rows or (rows, labels) returning exactly count rows.
        n: total rows; needed unless batches is a list or tuple.
        An exception raised by the iterator or the function propagates unchanged, and the scorer
        is left as it was. Returns self."""
        n = _stream_length("Scorer.fit_stream", batches, n, "n")
        feeder = _Feeder("Scorer.fit_stream", batches, self.dim, n)
        with self._lock.exclusive():
            st = lib.protood_scorer_fit_stream(self._handle, c_int64(n), c_int64(batch_size),
                                               feeder.callback, None, c_int64(n_classes))
            feeder.finish(st)
        return self

    def score_stream(self, batches, m=None, *, batch_size=4096):
        """Scores of query rows pulled in batches (as fit_stream; rows only): (m,) float32, equal
        bit for bit to score() on the same rows."""
        m = _stream_length("Scorer.score_stream", batches, m, "m")
        feeder = _Feeder("Scorer.score_stream", batches, self.dim, m)
        out = np.empty(max(m, 0), dtype=np.float32)
        with self._lock.shared():
            st = lib.protood_scorer_score_stream(self._handle, c_int64(m), c_int64(batch_size),
                                                 feeder.callback, None, _f32p(out))
            feeder.finish(st)
        return out

    def clone(self):
        return type(self).from_bytes(self.to_bytes())


# ---- free functions ----------------------------------------------------------------------------

def sinkhorn(scores, epsilon=0.05, iters=3):
    """Sinkhorn-Knopp soft assignment (SPEC §2) of an (n, p) score matrix: (n, p) float32 whose
    rows sum to 1."""
    s = _matrix("sinkhorn", "scores", scores)
    out = np.empty(s.shape, dtype=np.float32)
    check(lib.protood_sinkhorn(s.shape[0], s.shape[1], _f32p(s), c_double(float(epsilon)),
                               _i32("sinkhorn", "iters", iters), _f32p(out)))
    return out


def _metric_inputs(func, s_in, s_out):
    return _vector(func, "s_in", s_in), _vector(func, "s_out", s_out)


def auroc(s_in, s_out):
    """Area under the ROC curve, in-distribution positive (ties count one half)."""
    a, b = _metric_inputs("auroc", s_in, s_out)
    out = c_double()
    check(lib.protood_auroc(a.size, _f32p(a), b.size, _f32p(b), ctypes.byref(out)))
    return out.value


def aupr(s_in, s_out, positive="in"):
    """Average precision; positive="in" (AUPR-In) or "out" (AUPR-Out, scores negated)."""
    a, b = _metric_inputs("aupr", s_in, s_out)
    pos = _choice("aupr", "positive", positive, _POSITIVE)
    out = c_double()
    check(lib.protood_aupr(a.size, _f32p(a), b.size, _f32p(b), _i32("aupr", "positive", pos),
                           ctypes.byref(out)))
    return out.value


def fpr_at_tpr(s_in, s_out, tpr=0.95, convention="roc"):
    """False-positive rate at a true-positive rate (FPR95 by default). convention: "roc"
    (default, sklearn's roc_curve), "knn", "percentile" (PALM's), "ood_positive" (OpenOOD's)."""
    a, b = _metric_inputs("fpr_at_tpr", s_in, s_out)
    conv = _choice("fpr_at_tpr", "convention", convention, _FPR_CONVENTIONS)
    out = c_double()
    check(lib.protood_fpr_at_tpr(a.size, _f32p(a), b.size, _f32p(b), c_double(float(tpr)),
                                 _i32("fpr_at_tpr", "convention", conv), ctypes.byref(out)))
    return out.value


def _npy_shape(path):
    """The array's true shape from its header (the C reader reports 1-D arrays as n x 1)."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
        if major not in read:
            return None
        shape, _, _ = read[major](f)
    return shape


def read_npy(path, dtype=None):
    """Read a .npy file through the library's reader (float16/32/64, int32/64, either byte order,
    C or Fortran order). dtype: np.float32, np.float64 or np.int32; by default float64 files
    give float64, other float files float32 and integer files int32 (range-checked)."""
    code, rows, cols = c_int32(), c_int64(), c_int64()
    p = _path(path)
    check(lib.protood_npy_info(p, ctypes.byref(code), ctypes.byref(rows), ctypes.byref(cols)))
    if dtype is None:
        dtype = {_DTYPE_F64: np.float64, _DTYPE_I32: np.int32, _DTYPE_I64: np.int32}.get(
            code.value, np.float32)
    dtype = np.dtype(dtype)
    try:
        shape = _npy_shape(path)
    except (OSError, ValueError):
        shape = None
    one_d = shape is not None and len(shape) == 1
    if dtype == np.float32:
        out = np.empty((rows.value, cols.value), dtype=np.float32)
        check(lib.protood_npy_read_f32(p, rows, cols, _f32p(out)))
    elif dtype == np.float64:
        out = np.empty((rows.value, cols.value), dtype=np.float64)
        check(lib.protood_npy_read_f64(p, rows, cols, out.ctypes.data_as(F64P)))
    elif dtype == np.int32:
        if cols.value != 1:
            raise _fail(E_SHAPE, f"read_npy: path '{os.fsdecode(path)}': integer reading needs "
                                 f"a 1-D or n x 1 file, it holds {rows.value} x {cols.value}")
        out = np.empty(rows.value, dtype=np.int32)
        check(lib.protood_npy_read_i32(p, rows, _i32p(out)))
        return out if one_d else out.reshape(rows.value, 1)
    else:
        raise _fail(E_INVALID_ARG, f"read_npy: dtype = {dtype}, expected float32, float64 or int32")
    return out.reshape(rows.value) if one_d else out


def write_npy(path, array):
    """Write a .npy file atomically through the library: integer arrays (1-D) as int32, anything
    else as float32 (1-D or 2-D)."""
    a = np.asarray(array)
    p = _path(path)
    if a.dtype.kind in "iub":
        if a.ndim != 1:
            raise _fail(E_SHAPE, f"write_npy: an integer array must be 1-D, got shape {a.shape}")
        y = _labels("write_npy", a, a.shape[0])
        check(lib.protood_npy_write_i32(p, y.size, _i32p(y)))
        return
    a = _f32(a)
    if a.ndim == 1:
        check(lib.protood_npy_write_f32_vector(p, a.size, _f32p(a)))
    elif a.ndim == 2:
        check(lib.protood_npy_write_f32(p, a.shape[0], a.shape[1], _f32p(a)))
    else:
        raise _fail(E_SHAPE, f"write_npy: array has shape {a.shape}, expected 1-D or 2-D")
