#!/usr/bin/python3
"""Regenerate the seed corpora of the fuzz targets (docs/fuzzing.md): small inputs that reach every
part of each parser, valid and malformed. Findings live beside them under names starting with
"finding-" and are kept: this script only replaces the files it writes itself ("seed-*").

usage: make_corpus.py LIBPROTOOD_SO CORPUS_DIR
  LIBPROTOOD_SO  an uninstrumented build's lib/libprotood.so.0: banks and scorers are written by
                 the library itself (real fits), so the seeds are exactly what users' files hold.
"""
import ctypes as C
import glob
import io
import os
import struct
import sys
import zlib

import numpy as np
from numpy.lib import format as npf

LIB, ROOT = sys.argv[1], sys.argv[2]
lib = C.CDLL(LIB)
lib.protood_last_error.restype = C.c_char_p
F32P = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
I32P = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
lib.protood_bank_create.argtypes = [C.POINTER(C.c_void_p), C.c_int64, C.c_int64, C.c_int64]
lib.protood_bank_set_param.argtypes = [C.c_void_p, C.c_int32, C.c_double]
lib.protood_bank_init_random.argtypes = [C.c_void_p, C.c_int32, C.c_uint64]
lib.protood_bank_to_buffer.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t, C.POINTER(C.c_size_t)]
lib.protood_bank_free.argtypes = [C.c_void_p]
lib.protood_scorer_create.argtypes = [C.POINTER(C.c_void_p), C.c_int32, C.c_int64]
lib.protood_scorer_set_param.argtypes = [C.c_void_p, C.c_int32, C.c_double]
lib.protood_scorer_fit.argtypes = [C.c_void_p, C.c_int64, F32P, C.c_void_p, C.c_int64]
lib.protood_scorer_fit_bank.argtypes = [C.c_void_p, C.c_void_p]
lib.protood_scorer_to_buffer.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t, C.POINTER(C.c_size_t)]
lib.protood_scorer_free.argtypes = [C.c_void_p]


def ok(st):
    if st != 0:
        raise SystemExit(f"library call failed: {lib.protood_last_error().decode()}")


def to_bytes(fn, handle):
    n = C.c_size_t()
    ok(fn(handle, None, 0, C.byref(n)))
    buf = C.create_string_buffer(n.value)
    ok(fn(handle, buf, n.value, C.byref(n)))
    return buf.raw[:n.value]


def with_crc(b):
    """The image with its trailing CRC-32 recomputed, so that the reader gets past the checksum to
    the change made before."""
    return b[:-4] + struct.pack("<I", zlib.crc32(b[:-4]))


def writer(target):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for old in glob.glob(os.path.join(d, "seed-*")):
        os.remove(old)

    def put(name, data):
        assert len(data) <= 4096, f"{target}/{name}: {len(data)} bytes, seeds stay small"
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
    return put


# ---- .npy: every dtype, byte order, memory order and version; what NumPy writes that we reject;
# ---- and the malformed headers of tests/test_npy.c ----------------------------------------------
put = writer("npy")


def npy(a, version=None, **kw):
    f = io.BytesIO()
    if version:
        npf.write_array(f, a, version=version, **kw)
    else:
        np.save(f, a, **kw)
    return f.getvalue()


base = np.arange(6).reshape(2, 3)
for code in ["f4", "f8", "f2", "i4", "i8"]:
    vals = base * 0.5 - 1 if code[0] == "f" else base * 7 - 20
    for endian, tag in [("<", "le"), (">", "be")]:
        arr = vals.astype(endian + code)
        for order in ["C", "F"]:
            for version in [(1, 0), (2, 0), (3, 0)]:
                put(f"{code}_{tag}_{order}_v{version[0]}.npy", npy(np.asarray(arr, order=order), version))
        put(f"{code}_{tag}_vector.npy", npy(arr.ravel()))
        put(f"{code}_{tag}_column.npy", npy(arr.reshape(6, 1)))
put("f4_special.npy", npy(np.array([[np.nan, np.inf], [-np.inf, -0.0]], dtype="<f4")))
put("f2_subnormal.npy", npy(np.array([6e-8, -6e-5, 65504, np.nan], dtype="<f2")))
put("f8_range.npy", npy(np.array([1.0, 1e300], dtype="<f8")))
put("i8_range.npy", npy(np.array([1, 2**40, -3], dtype="<i8")))
put("i8_extremes.npy", npy(np.array([-2**63, 2**63 - 1, 2**31 - 1, -2**31], dtype="<i8")))
# Nearest float32 of an int64 is one rounding away; through float64 it was two (a finding).
put("i8_double_rounding.npy", npy(np.array([2**62 + 2**38 + 1, -(2**62 + 2**38 + 1)], dtype="<i8")))
put("i4_extremes.npy", npy(np.array([-2**31, 2**31 - 1, 0], dtype=">i4")))
put("empty_rows.npy", npy(np.zeros((0, 7), dtype="<f4")))
put("empty_cols.npy", npy(np.zeros((3, 0), dtype="<f8")))
put("object.npy", npy(np.array([1, "x", None], dtype=object), allow_pickle=True))
put("structured.npy", npy(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])))
put("3d.npy", npy(np.zeros((2, 2, 2), dtype="<f4")))
put("0d.npy", npy(np.float32(1.5)))
put("u1.npy", npy(np.zeros(4, dtype=np.uint8)))
put("c8.npy", npy(np.zeros(4, dtype=np.complex64)))


def handmade(d, version=1):
    """A 2 x 3 float32 file with the header dictionary `d`, as tests/test_npy.c builds them."""
    head = d.encode()
    size = struct.pack("<H", len(head)) if version == 1 else struct.pack("<I", len(head))
    return b"\x93NUMPY" + bytes([version, 0]) + size + head + np.arange(6, dtype="<f4").tobytes()


GOOD = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n"
BAD_DICTS = [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 3), }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3), }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }\n",
    "{'descr': '<q9', 'fortran_order': False, 'shape': (2, 3), }\n",
    "{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }\n",
    "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}\n",
    "{'descr': '<f4', 'descr': '<f4', 'shape': (2, 3), }\n",
    "{'descr': '<f4', 'shape': (2, 3), }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk\n",
    "['descr', '<f4']\n",
    "{'descr': <f4, 'fortran_order': False, 'shape': (2, 3), }\n",
    "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }\n",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), \n",
    "{\"descr\": \"f4\", \"fortran_order\": True, \"shape\": (3L, 2L)}\n",
]
good = handmade(GOOD)
put("handmade.npy", good)
put("handmade_v2.npy", handmade(GOOD, 2))
for i, d in enumerate(BAD_DICTS):
    put(f"bad_dict_{i:02d}.npy", handmade(d))
put("bad_magic.npy", b"\x92" + good[1:])
put("bad_version_4.npy", good[:6] + b"\x04" + good[7:])
put("bad_version_0.npy", good[:6] + b"\x00" + good[7:])
put("bad_header_len.npy", good[:8] + b"\xff\x7f" + good[10:])
put("bad_v2_header_len.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}")
put("bad_nul.npy", good[:20] + b"\x00" + good[21:])
put("empty", b"")
for n in [5, 9, 11, 40, len(good) - 1]:
    put(f"truncated_{n}.npy", good[:n])

# ---- banks: several shapes and parameter sets, written by the library; then the malformed ------
put = writer("bank")


def bank_bytes(c, k, d, seed, params=()):
    b = C.c_void_p()
    ok(lib.protood_bank_create(C.byref(b), c, k, d))
    ok(lib.protood_bank_init_random(b, 1 + seed % 2, seed))
    for key, v in params:
        ok(lib.protood_bank_set_param(b, key, v))
    data = to_bytes(lib.protood_bank_to_buffer, b)
    lib.protood_bank_free(b)
    return data


for c, k, d, params in [(1, 1, 1, ()), (2, 1, 3, ((1, 0.5),)), (3, 2, 4, ((4, 7), (5, 0))),
                        (2, 3, 8, ((2, 0.07), (6, 0.0), (8, 2.5))), (1, 5, 2, ((1, 0.0), (5, 3))),
                        (10, 1, 16, ())]:
    put(f"c{c}_k{k}_d{d}.bank", bank_bytes(c, k, d, c * 100 + k * 10 + d, params))
good = bank_bytes(2, 2, 3, 7)
put("bad_magic.bank", b"X" + good[1:])
put("bad_version.bank", with_crc(good[:8] + struct.pack("<I", 2) + good[12:]))
put("bad_reserved.bank", with_crc(good[:12] + struct.pack("<I", 1) + good[16:]))
put("bad_shape_zero.bank", with_crc(good[:16] + struct.pack("<q", 0) + good[24:]))
put("bad_shape_overflow.bank", with_crc(good[:24] + struct.pack("<q", 2**62) + good[32:]))
put("bad_momentum.bank", with_crc(good[:40] + struct.pack("<d", 1.0) + good[48:]))
put("bad_param_nan.bank", with_crc(good[:48] + struct.pack("<d", float("nan")) + good[56:]))
put("bad_norm.bank", with_crc(good[:120] + struct.pack("<f", 3.0) + good[124:]))
put("bad_nonfinite.bank", with_crc(good[:124] + struct.pack("<f", float("inf")) + good[128:]))
put("bad_crc.bank", good[:-1] + bytes([good[-1] ^ 1]))
put("bad_trailing.bank", good + b"\0")
put("truncated.bank", good[:100])
put("empty", b"")

# ---- scorers: each kind fitted (and not), written by the library; then the malformed -----------
put = writer("scorer")
rng = np.random.default_rng(5)
KNN, MAHA, SSD, PROTO = 1, 2, 3, 4


def scorer_bytes(kind, dim, n=0, k=None, normalize=True, classes=0, bank=None):
    s = C.c_void_p()
    ok(lib.protood_scorer_create(C.byref(s), kind, dim))
    if k:
        ok(lib.protood_scorer_set_param(s, 1, k))
    ok(lib.protood_scorer_set_param(s, 2, 1.0 if normalize else 0.0))
    if bank:
        b = C.c_void_p()
        ok(lib.protood_bank_create(C.byref(b), *bank))
        ok(lib.protood_bank_init_random(b, 1, 3))
        ok(lib.protood_scorer_fit_bank(s, b))
        lib.protood_bank_free(b)
    elif n:
        x = rng.standard_normal((n, dim)).astype(np.float32)
        labels = (np.arange(n) % classes).astype(np.int32) if classes else None
        ok(lib.protood_scorer_fit(s, n, x, labels.ctypes.data_as(C.c_void_p) if classes else None, classes))
    data = to_bytes(lib.protood_scorer_to_buffer, s)
    lib.protood_scorer_free(s)
    return data


for kind, name in [(KNN, "knn"), (MAHA, "maha"), (SSD, "ssd"), (PROTO, "proto")]:
    put(f"{name}_unfitted.scorer", scorer_bytes(kind, 5))
put("knn_k1_d3.scorer", scorer_bytes(KNN, 3, n=4, k=1))
put("knn_k3_raw.scorer", scorer_bytes(KNN, 4, n=6, k=3, normalize=False))
put("maha_c3_d4.scorer", scorer_bytes(MAHA, 4, n=12, classes=3))
put("maha_rank_deficient.scorer", scorer_bytes(MAHA, 6, n=4, classes=2))
put("maha_raw.scorer", scorer_bytes(MAHA, 3, n=9, classes=3, normalize=False))
put("ssd_d4.scorer", scorer_bytes(SSD, 4, n=10))
put("ssd_raw.scorer", scorer_bytes(SSD, 3, n=8, normalize=False))
put("proto_rows.scorer", scorer_bytes(PROTO, 4, n=3))
put("proto_bank.scorer", scorer_bytes(PROTO, 6, bank=(3, 2, 6)))
good = scorer_bytes(KNN, 3, n=4, k=2)
put("bad_magic.scorer", b"X" + good[1:])
put("bad_version.scorer", with_crc(good[:8] + struct.pack("<I", 2) + good[12:]))
put("bad_kind.scorer", with_crc(good[:12] + struct.pack("<I", 5) + good[16:]))
put("bad_dim.scorer", with_crc(good[:16] + struct.pack("<q", 0) + good[24:]))
put("bad_k.scorer", with_crc(good[:24] + struct.pack("<q", 5) + good[32:]))
put("bad_payload.scorer", with_crc(good[:40] + struct.pack("<Q", 3) + good[48:]))
put("bad_crc.scorer", good[:-1] + bytes([good[-1] ^ 1]))
put("bad_trailing.scorer", with_crc(good[:-4] + b"\0\0\0\0" + good[-4:]))
put("truncated.scorer", good[:30])
put("empty", b"")

# ---- the CLI's arguments: NUL-separated, without the program name (fuzz_cli.c) ----------------
put = writer("cli")
ARGV = {
    "none": [],
    "version": ["--version"],
    "version_word": ["version"],
    "help": ["help"],
    "help_score": ["help", "score"],
    "help_unknown": ["help", "nope"],
    "help_too_many": ["help", "score", "metrics"],
    "dash_h": ["-h"],
    "score_help": ["score", "--bogus", "--help"],
    "unknown_help": ["frobnicate", "-h"],
    "not_a_command": ["frobnicate"],
    "knn": ["score", "--method", "knn", "--k", "50", "--train", "t.npy", "--id", "i.npy", "--ood", "a=a.npy",
            "--ood", "b=b.npy", "--fpr", "percentile", "--json", "--quiet", "--threads", "2",
            "--scores-out", "out", "--save-scorer", "k.scorer"],
    "knn_equals": ["score", "--method=knn", "--k=7", "--train=t.npy", "--id=i.npy", "--ood=x=x.npy",
                   "--fpr=ood_positive", "-q", "--threads=1"],
    "maha": ["score", "--method", "maha", "--train", "t.npy", "--train-labels", "y.npy", "--id", "i.npy",
             "--ood", "far=f.npy", "--no-normalize", "--fpr", "knn"],
    "ssd": ["score", "--method", "ssd", "--train", "t.npy", "--id", "i.npy", "--ood", "n=n.npy", "--fpr", "roc"],
    "proto": ["score", "--method", "proto", "--bank", "b.bank", "--id", "i.npy", "--ood", "n=n.npy"],
    "load": ["score", "--load-scorer", "k.scorer", "--id", "i.npy", "--ood", "y=y.npy", "--k", "3"],
    "err_method": ["score", "--method", "nn", "--train", "t.npy", "--id", "i.npy", "--ood", "a=a.npy"],
    "err_no_ood": ["score", "--method", "knn", "--train", "t.npy", "--id", "i.npy"],
    "err_no_id": ["score", "--method", "knn", "--train", "t.npy", "--ood", "a=a.npy"],
    "err_ood_form": ["score", "--method", "knn", "--train", "t.npy", "--id", "i.npy", "--ood", "a.npy"],
    "err_ood_twice": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1", "--ood", "a=2"],
    "err_ood_name": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "Average=1"],
    "err_k_word": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1", "--k", "zero"],
    "err_k_zero": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1", "--k", "0"],
    "err_k_not_knn": ["score", "--method", "ssd", "--train", "t", "--id", "i", "--ood", "a=1", "--k", "5"],
    "err_fpr": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1", "--fpr", "tpr"],
    "err_maha_labels": ["score", "--method", "maha", "--train", "t", "--id", "i", "--ood", "a=1"],
    "err_save_load": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1",
                      "--save-scorer", "a", "--load-scorer", "b"],
    "err_load_train": ["score", "--load-scorer", "s", "--train", "t", "--id", "i", "--ood", "a=1"],
    "err_load_normalize": ["score", "--load-scorer", "s", "--no-normalize", "--id", "i", "--ood", "a=1"],
    "err_proto_bank": ["score", "--method", "proto", "--id", "i", "--ood", "a=1"],
    "err_proto_train": ["score", "--method", "proto", "--bank", "b", "--train", "t", "--id", "i", "--ood", "a=1"],
    "err_bank_knn": ["score", "--method", "knn", "--bank", "b", "--train", "t", "--id", "i", "--ood", "a=1"],
    "err_no_method": ["score", "--train", "t", "--id", "i", "--ood", "a=1"],
    "err_no_train": ["score", "--method", "knn", "--id", "i", "--ood", "a=1"],
    "err_unknown": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1", "--bogus"],
    "err_threads": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1", "--threads"],
    "err_threads_big": ["score", "--method", "knn", "--train", "t", "--id", "i", "--ood", "a=1",
                        "--threads", "4294967295"],
    "metrics": ["metrics", "--id", "id.npy", "--ood", "o.npy", "--fpr", "percentile", "--json"],
    "metrics_equals": ["metrics", "--id=id.npy", "--ood=o.npy", "--fpr=knn"],
    "err_metrics": ["metrics", "--id", "id.npy"],
    "err_metrics_value": ["metrics", "--id"],
    "err_metrics_unknown": ["metrics", "--id", "a", "--ood", "b", "--x"],
    "inspect": ["inspect", "f.npy"],
    "err_inspect": ["inspect", "a", "b"],
}
for name, args in ARGV.items():
    put(name, b"\0".join(a.encode() for a in args))
print(f"corpus written under {ROOT}")
