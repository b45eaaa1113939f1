#!/usr/bin/python3
"""The bank's seeded initialisation, re-implemented here from its documented algorithm (protood.h,
lib/rng.h: splitmix64 seeding, xoshiro256**, float32 uniforms from the top 24 bits, Marsaglia's polar
method over a frexp-based logarithm, rows filled in order and normalised in double), must match what
the library produced bit for bit. Also reads a saved bank with struct/zlib/NumPy as
docs/bank-format.md describes. Prints a Check-style summary line for scripts/count_tests.py."""
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

helper = sys.argv[1]
failures = []
checks = 0
M64 = (1 << 64) - 1


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256ss:
    def __init__(self, seed):
        self.s = []
        for _ in range(4):
            seed, v = splitmix64(seed)
            self.s.append(v)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):  # 53 bits in [0, 1)
        return (self.next() >> 11) * 2.0**-53

    def uniform_f32(self):  # 24 bits in [0, 1), exact in float32
        return np.float32((self.next() >> 40) * 2.0**-24)

    def normal(self):
        while True:
            u = 2.0 * self.uniform() - 1.0
            v = 2.0 * self.uniform() - 1.0
            q = u * u + v * v
            if 0.0 < q < 1.0:
                return u * math.sqrt(-2.0 * portable_log(q) / q)


def portable_log(x):
    m, e = math.frexp(x)
    if m < 0.70710678118654752440:
        m *= 2.0
        e -= 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    term = s
    total = 0.0
    for k in range(1, 24, 2):
        total += term / k
        term *= s2
    return e * 0.69314718055994530942 + 2.0 * total


SPHERE, POSITIVE = 1, 2


def reference_prototypes(scheme, seed, rows, dim):
    rng = Xoshiro256ss(seed)
    out = np.empty((rows, dim), dtype=np.float32)
    for r in range(rows):
        while True:
            row = [np.float32(rng.normal()) if scheme == SPHERE else rng.uniform_f32() for _ in range(dim)]
            s = 0.0
            for v in row:
                s += float(v) * float(v)
            if s != 0.0:
                break
        norm = math.sqrt(s)
        inv = 1.0 / (norm if norm > 1e-12 else 1e-12)
        out[r] = [np.float32(float(v) * inv) for v in row]
    return out


# The reference itself against published values: splitmix64 from state 0 starts 0xe220a8397b1dcdaf.
check(splitmix64(0)[1] == 0xE220A8397B1DCDAF, "splitmix64 reference value")
check(abs(portable_log(0.3) - math.log(0.3)) < 1e-15 and abs(portable_log(1e-300) - math.log(1e-300)) < 1e-12,
      "portable_log agrees with math.log")

# (scheme, seed, C, K, D); scheme 0 = a new bank, documented as init_random(POSITIVE, 0).
cases = [
    (0, 0, 2, 3, 5),
    (POSITIVE, 12345, 3, 2, 7),
    (POSITIVE, 2**64 - 1, 1, 4, 1),
    (SPHERE, 0, 2, 2, 9),
    (SPHERE, 42, 1, 1, 1),
    (SPHERE, 2**64 - 1, 4, 3, 16),
    (SPHERE, 987654321987654321, 10, 6, 128),
]
params = [0.25, 0.3, 0.02, 7, 2, 0.5, 0.25, 2.0, 0.2, 0.09]

with tempfile.TemporaryDirectory() as d:
    for scheme, seed, c, k, dim in cases:
        name = f"scheme {scheme} seed {seed} shape {c}x{k}x{dim}"
        path = os.path.join(d, "p.npy")
        subprocess.run([helper, "npy", path, str(scheme), str(seed), str(c), str(k), str(dim)], check=True)
        got = np.load(path)
        want = reference_prototypes(scheme or POSITIVE, seed, c * k, dim)
        check(got.dtype == np.float32 and got.shape == want.shape, f"{name}: dtype/shape {got.dtype} {got.shape}")
        check(np.array_equal(got.view(np.uint32), want.view(np.uint32)),
              f"{name}: not bit-identical (max difference {np.max(np.abs(got - want)) if got.shape == want.shape else '?'})")

    # A saved bank, decoded as docs/bank-format.md says.
    scheme, seed, c, k, dim = SPHERE, 7, 3, 2, 4
    path = os.path.join(d, "bank.pdb")
    subprocess.run([helper, "save", path, str(scheme), str(seed), str(c), str(k), str(dim)], check=True)
    b = open(path, "rb").read()
    p = c * k * dim
    check(len(b) == 124 + 4 * p, f"file size {len(b)}")
    check(b[:8] == b"PROTOODB", "magic")
    check(struct.unpack_from("<II", b, 8) == (1, 0), "version and reserved")
    check(struct.unpack_from("<3q", b, 16) == (c, k, dim), "shape")
    check(list(struct.unpack_from("<10d", b, 40)) == params, "parameters")
    protos = np.frombuffer(b, dtype="<f4", count=p, offset=120).reshape(c * k, dim)
    check(np.array_equal(protos.view(np.uint32), reference_prototypes(scheme, seed, c * k, dim).view(np.uint32)),
          "saved prototypes")
    check(struct.unpack_from("<I", b, len(b) - 4)[0] == zlib.crc32(b[:-4]), "CRC-32")
    check(sorted(os.listdir(d)) == ["bank.pdb", "p.npy"], f"no temporary files left: {os.listdir(d)}")

pct = 100 * (checks - len(failures)) // checks
print(f"{pct}%: Checks: {checks}, Failures: {len(failures)}, Errors: 0")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
