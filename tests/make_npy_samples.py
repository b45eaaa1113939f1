#!/usr/bin/python3
"""Write .npy files with real NumPy for tests/test_npy.c: one logical array in every supported
dtype, byte order, memory order and format version, plus a few that must be rejected.

Values: A[i, j] = (5*i + j) * 0.5 - 3 (exact in float16) for float dtypes and
        A[i, j] = (5*i + j) * 7 - 40 for integer dtypes, shape (3, 5); 1-D files hold A.ravel().
"""
import os
import sys

import numpy as np
from numpy.lib import format as npf

out_dir = sys.argv[1]
stamp = sys.argv[2]
os.makedirs(out_dir, exist_ok=True)

idx = np.arange(15).reshape(3, 5)
for code in ["f4", "f8", "f2", "i4", "i8"]:
    base = idx * 0.5 - 3 if code[0] == "f" else idx * 7 - 40
    for endian, tag in [("<", "le"), (">", "be")]:
        arr = base.astype(endian + code)
        for order in ["C", "F"]:
            a = np.asarray(arr, order=order)
            assert a.flags.f_contiguous == (order == "F")
            for version in [(1, 0), (2, 0), (3, 0)]:
                name = f"a_{code}_{tag}_{order}_v{version[0]}.npy"
                with open(os.path.join(out_dir, name), "wb") as f:
                    npf.write_array(f, a, version=version)
        np.save(os.path.join(out_dir, f"v_{code}_{tag}.npy"), arr.ravel())

# Must be rejected with PROTOOD_E_FORMAT.
np.save(os.path.join(out_dir, "bad_object.npy"), np.array([1, "x", None], dtype=object), allow_pickle=True)
np.save(os.path.join(out_dir, "bad_structured.npy"), np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
np.save(os.path.join(out_dir, "bad_3d.npy"), np.zeros((2, 2, 2), dtype="<f4"))
np.save(os.path.join(out_dir, "bad_0d.npy"), np.float32(1.5))
np.save(os.path.join(out_dir, "bad_u1.npy"), np.zeros(4, dtype=np.uint8))
np.save(os.path.join(out_dir, "bad_c8.npy"), np.zeros(4, dtype=np.complex64))
np.save(os.path.join(out_dir, "bad_i8_range.npy"), np.array([1, 2**40, 3], dtype="<i8"))
np.save(os.path.join(out_dir, "bad_f8_range.npy"), np.array([1.0, 1e300], dtype="<f8"))
np.save(os.path.join(out_dir, "empty_f4.npy"), np.zeros((0, 7), dtype="<f4"))
open(stamp, "w").write("ok\n")
