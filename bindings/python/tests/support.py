"""Shared helpers of the binding's tests: where the reference cases are, how to read them (with
NumPy, independently of the library's own .npy reader) and the tolerances of SPEC.md §8."""
import os
import pathlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[3]
FIXTURES = pathlib.Path(os.environ.get("PROTOOD_FIXTURES") or REPO.parent / "shared" / "fixtures")


class Case:
    """One folder of the reference cases: .npy arrays as attributes-by-name, params.txt as dict."""

    def __init__(self, name):
        self.name = name
        self.dir = FIXTURES / name
        if not self.dir.is_dir():
            raise FileNotFoundError(f"reference case {self.dir} not found (set PROTOOD_FIXTURES)")
        self.params = {}
        for line in (self.dir / "params.txt").read_text().splitlines():
            if line.strip():
                key, value = line.split(None, 1)
                try:
                    self.params[key] = float(value) if "." in value or "e" in value else int(value)
                except ValueError:
                    self.params[key] = value

    def has(self, name):
        return (self.dir / name).exists()

    def npy(self, name):
        return np.load(self.dir / name)


def assert_loss(got, want, what="loss"):
    """SPEC §8: losses within 1e-5 relative (an exact zero stays zero)."""
    tol = 1e-5 * abs(want) + (1e-12 if want == 0 else 0)
    assert abs(got - want) <= tol, f"{what} = {got!r}, expected {want!r} (tolerance {tol:g})"


def assert_close(got, want, tol=1e-4, what="array", floor=1.0):
    """SPEC §8: within tol absolute per element, scaled by the largest magnitude (at least
    `floor`; floor=0 makes it a purely relative test, for quantities much smaller than 1)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = max(floor, float(np.max(np.abs(want))) if want.size else 1.0)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol * scale:.3g}"


def assert_rel(got, want, tol=1e-4, what="scores"):
    """Per-element relative tolerance (scores, SPEC §8), with an absolute floor for values near 0."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    bad = np.abs(got - want) > tol * np.maximum(np.abs(want), 1e-6)
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} outside {tol:g} relative, "
                           f"first at {int(np.argmax(bad))}: {got.flat[np.argmax(bad)]!r} vs "
                           f"{want.flat[np.argmax(bad)]!r}")
