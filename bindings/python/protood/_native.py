"""Loading libprotood.so.0 through ctypes and declaring every exported function.

Nothing here is public: the rest of the package calls `lib` and `check`. Every function of the C
API gets its argtypes and restype, so that a wrong call fails in ctypes instead of in the library.
"""
import ctypes
import ctypes.util
import os

from . import errors

#: The ABI this package was written for (the SONAME number of libprotood.so.0).
ABI_VERSION = 0
SONAME = "libprotood.so.0"

c_int32 = ctypes.c_int32
c_int64 = ctypes.c_int64
c_uint32 = ctypes.c_uint32
c_uint64 = ctypes.c_uint64
c_double = ctypes.c_double
c_size_t = ctypes.c_size_t
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
F32P = ctypes.POINTER(ctypes.c_float)
F64P = ctypes.POINTER(ctypes.c_double)
I32P = ctypes.POINTER(ctypes.c_int32)
I64P = ctypes.POINTER(ctypes.c_int64)
DP = ctypes.POINTER(ctypes.c_double)
SIZEP = ctypes.POINTER(ctypes.c_size_t)
HANDLE = c_void_p            # protood_bank *, protood_scorer * (opaque)
HANDLEP = ctypes.POINTER(c_void_p)
STATUS = c_int32

#: typedef int32_t (*protood_feature_fn)(void *user, int64_t first, int64_t count,
#:                                      float *rows_out, int32_t *labels_out);
FEATURE_FN = ctypes.CFUNCTYPE(c_int32, c_void_p, c_int64, c_int64, F32P, I32P)
#: typedef int32_t (*protood_allreduce_fn)(void *user, double *buf, int64_t count);
ALLREDUCE_FN = ctypes.CFUNCTYPE(c_int32, c_void_p, F64P, c_int64)

# name: (restype, argtypes)
_SIGNATURES = {
    "protood_status_string": (c_char_p, [STATUS]),
    "protood_last_error": (c_char_p, []),
    "protood_version_number": (c_uint32, []),
    "protood_version_string": (c_char_p, []),
    "protood_abi_version": (c_uint32, []),
    "protood_build_info": (c_char_p, []),
    "protood_set_threads": (STATUS, [c_int32]),
    # bank
    "protood_bank_create": (STATUS, [HANDLEP, c_int64, c_int64, c_int64]),
    "protood_bank_free": (None, [HANDLE]),
    "protood_bank_clone": (STATUS, [HANDLEP, HANDLE]),
    "protood_bank_shape": (STATUS, [HANDLE, I64P, I64P, I64P]),
    "protood_bank_set_param": (STATUS, [HANDLE, c_int32, c_double]),
    "protood_bank_get_param": (STATUS, [HANDLE, c_int32, DP]),
    "protood_bank_init_random": (STATUS, [HANDLE, c_int32, c_uint64]),
    "protood_bank_init_from_features": (STATUS, [HANDLE, c_int64, F32P, I32P, c_uint64]),
    "protood_bank_get_prototypes": (STATUS, [HANDLE, F32P]),
    "protood_bank_set_prototypes": (STATUS, [HANDLE, F32P]),
    "protood_bank_save": (STATUS, [HANDLE, c_char_p]),
    "protood_bank_load": (STATUS, [HANDLEP, c_char_p]),
    "protood_bank_to_buffer": (STATUS, [HANDLE, c_void_p, c_size_t, SIZEP]),
    "protood_bank_from_buffer": (STATUS, [HANDLEP, c_void_p, c_size_t]),
    # metrics
    "protood_auroc": (STATUS, [c_int64, F32P, c_int64, F32P, DP]),
    "protood_aupr": (STATUS, [c_int64, F32P, c_int64, F32P, c_int32, DP]),
    "protood_fpr_at_tpr": (STATUS, [c_int64, F32P, c_int64, F32P, c_double, c_int32, DP]),
    # training steps and building blocks
    "protood_palm_step": (STATUS, [HANDLE, c_int64, F32P, I32P, DP, F32P]),
    "protood_cider_step": (STATUS, [HANDLE, c_int64, F32P, I32P, DP, F32P]),
    "protood_sinkhorn": (STATUS, [c_int64, c_int64, F32P, c_double, c_int32, F32P]),
    "protood_palm_assign": (STATUS, [HANDLE, c_int64, F32P, I32P, F32P]),
    # .npy files
    "protood_npy_info": (STATUS, [c_char_p, I32P, I64P, I64P]),
    "protood_npy_read_f32": (STATUS, [c_char_p, c_int64, c_int64, F32P]),
    "protood_npy_read_f64": (STATUS, [c_char_p, c_int64, c_int64, F64P]),
    "protood_npy_read_i32": (STATUS, [c_char_p, c_int64, I32P]),
    "protood_npy_write_f32": (STATUS, [c_char_p, c_int64, c_int64, F32P]),
    "protood_npy_write_f32_vector": (STATUS, [c_char_p, c_int64, F32P]),
    "protood_npy_write_i32": (STATUS, [c_char_p, c_int64, I32P]),
    # scorers
    "protood_scorer_create": (STATUS, [HANDLEP, c_int32, c_int64]),
    "protood_scorer_free": (None, [HANDLE]),
    "protood_scorer_set_param": (STATUS, [HANDLE, c_int32, c_double]),
    "protood_scorer_get_param": (STATUS, [HANDLE, c_int32, DP]),
    "protood_scorer_info": (STATUS, [HANDLE, I32P, I64P, I32P]),
    "protood_scorer_fit": (STATUS, [HANDLE, c_int64, F32P, I32P, c_int64]),
    "protood_scorer_fit_bank": (STATUS, [HANDLE, HANDLE]),
    "protood_scorer_score": (STATUS, [HANDLE, c_int64, F32P, F32P]),
    "protood_scorer_to_buffer": (STATUS, [HANDLE, c_void_p, c_size_t, SIZEP]),
    "protood_scorer_from_buffer": (STATUS, [HANDLEP, c_void_p, c_size_t]),
    "protood_scorer_save": (STATUS, [HANDLE, c_char_p]),
    "protood_scorer_load": (STATUS, [HANDLEP, c_char_p]),
    "protood_scorer_fit_stream": (STATUS, [HANDLE, c_int64, c_int64, FEATURE_FN, c_void_p, c_int64]),
    "protood_scorer_score_stream": (STATUS, [HANDLE, c_int64, c_int64, FEATURE_FN, c_void_p, F32P]),
    # several processes (PROTOOD_0.2)
    "protood_bank_set_reducer": (STATUS, [HANDLE, ALLREDUCE_FN, c_void_p, c_int32, c_int32]),
    "protood_scorer_set_reducer": (STATUS, [HANDLE, ALLREDUCE_FN, c_void_p, c_int32, c_int32]),
}

# The version node (lib/protood.map) of the symbols added after 0.1: a library of ABI 0 built
# before them lacks them, and the import error says which release the package needs.
_NODES = {
    "protood_bank_set_reducer": "PROTOOD_0.2",
    "protood_scorer_set_reducer": "PROTOOD_0.2",
}


def _candidates():
    """Where to look, in order: $PROTOOD_LIBRARY (alone: an explicit choice never falls back),
    a copy next to the package, then the system's library path."""
    env = os.environ.get("PROTOOD_LIBRARY")
    if env:
        return [env], True
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), SONAME)
    found = [here] if os.path.exists(here) else []
    found.append(SONAME)
    name = ctypes.util.find_library("protood")
    if name and name != SONAME:
        found.append(name)
    return found, False


def _load():
    paths, explicit = _candidates()
    tried = []
    for path in paths:
        try:
            # CDLL (not PyDLL): every call releases the GIL, so threads can score concurrently.
            return ctypes.CDLL(path), path
        except OSError as exc:
            tried.append(f"{path}: {exc}")
    how = ("PROTOOD_LIBRARY is set" if explicit else
           "set PROTOOD_LIBRARY to the path of libprotood.so.0 (e.g. build/release/lib/libprotood.so.0), "
           "copy it next to the package, or install the library")
    raise ImportError("protood: cannot load libprotood.so.0 (" + "; ".join(tried) + "); " + how)


def _bind(dll, path):
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            fn = getattr(dll, name)
        except AttributeError:
            raise ImportError(f"protood: {path} has no symbol {name} (version node "
                              f"{_NODES.get(name, 'PROTOOD_0.1')}): not libprotood ABI "
                              f"{ABI_VERSION}, or too old a build") from None
        fn.restype = restype
        fn.argtypes = argtypes


lib, library_path = _load()
# The ABI check comes first, with only the one function it needs declared: a library of another
# ABI might lack or have changed the others.
try:
    lib.protood_abi_version.restype = c_uint32
    lib.protood_abi_version.argtypes = []
except AttributeError:
    raise ImportError(f"protood: {library_path} is not libprotood (no protood_abi_version)") from None
_abi = lib.protood_abi_version()
if _abi != ABI_VERSION:
    raise ImportError(f"protood: {library_path} has ABI version {_abi}, but this Python package was "
                      f"written for ABI {ABI_VERSION} (libprotood.so.{ABI_VERSION}); install a "
                      f"matching library or package")
_bind(lib, library_path)


def last_error():
    """protood_last_error() of the calling thread, as str."""
    return lib.protood_last_error().decode("utf-8", "replace")


def check(status):
    """Raise the exception class of a negative status, with this thread's last-error message.
    Must be called on the thread that made the call, right after it (the message is thread-local)."""
    if status != 0:
        raise errors.from_status(status, last_error())


def status_string(status):
    return lib.protood_status_string(status).decode("utf-8", "replace")


errors._status_string = status_string
