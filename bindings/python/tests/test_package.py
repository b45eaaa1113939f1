"""Loading the library, the ABI check at import, torch being optional, and the small helpers
(version, threads, .npy files)."""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import protood
from protood import _native
from support import REPO

PACKAGE = pathlib.Path(protood.__file__).resolve().parent


def run_python(code, env_update=None, cwd=None):
    env = dict(os.environ)
    env.update(env_update or {})
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def build_stub(tmp_path, body):
    src = tmp_path / "stub.c"
    src.write_text("#include <stdint.h>\n" + body)
    lib = tmp_path / "libstub.so"
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_version_and_build_info():
    assert protood.version() == "0.2.0" == protood.__version__
    assert protood.version_number() == 200
    assert protood.abi_version() == protood.ABI_VERSION == 0
    info = protood.build_info()
    assert info["abi"] == "0" and info["version"] == protood.version() and "blas" in info


def test_abi_mismatch_is_refused(tmp_path):
    lib = build_stub(tmp_path, "uint32_t protood_abi_version(void) { return 1; }\n")
    out = run_python("import protood", {"PROTOOD_LIBRARY": str(lib)})
    assert out.returncode != 0
    assert "ImportError: protood: " + str(lib) + " has ABI version 1, but this Python package " \
           "was written for ABI 0" in out.stderr, out.stderr


def test_not_libprotood_is_refused(tmp_path):
    lib = build_stub(tmp_path, "int unrelated(void) { return 0; }\n")
    out = run_python("import protood", {"PROTOOD_LIBRARY": str(lib)})
    assert out.returncode != 0 and "is not libprotood (no protood_abi_version)" in out.stderr


def version_nodes():
    """{version node: [its symbols]} of the library's linker version script."""
    nodes, node = {}, None
    for line in (REPO / "lib" / "protood.map").read_text().splitlines():
        if m := re.match(r"(PROTOOD_[0-9.]+) \{", line):
            node = nodes.setdefault(m.group(1), [])
        elif m := re.fullmatch(r"\s*(protood_\w+);", line):
            node.append(m.group(1))
    return nodes


def test_every_exported_function_is_bound():
    nodes = version_nodes()
    assert {"PROTOOD_0.1", "PROTOOD_0.2"} <= set(nodes)
    assert sorted(n for names in nodes.values() for n in names) == sorted(_native._SIGNATURES)


def test_library_without_the_0_2_symbols_is_refused(tmp_path):
    """An ABI-0 build from before the reducer (only the PROTOOD_0.1 node) lacks symbols the
    package binds: the import says which and from which release."""
    stubs = "".join(f"void {name}(void) {{}}\n" for name in version_nodes()["PROTOOD_0.1"]
                    if name != "protood_abi_version")
    lib = build_stub(tmp_path, "uint32_t protood_abi_version(void) { return 0; }\n" + stubs)
    out = run_python("import protood", {"PROTOOD_LIBRARY": str(lib)})
    assert out.returncode != 0
    assert f"ImportError: protood: {lib} has no symbol protood_bank_set_reducer (version node " \
           f"PROTOOD_0.2): not libprotood ABI 0, or too old a build" in out.stderr, out.stderr


def test_missing_library_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "libprotood.so.0"
    out = run_python("import protood", {"PROTOOD_LIBRARY": str(missing)})
    assert out.returncode != 0
    assert "ImportError: protood: cannot load libprotood.so.0" in out.stderr
    assert str(missing) in out.stderr and "PROTOOD_LIBRARY is set" in out.stderr


def test_library_next_to_the_package(tmp_path):
    copy = tmp_path / "site" / "protood"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(protood.library_path, copy / "libprotood.so.0")
    out = run_python("import protood; print(protood.library_path); print(protood.auroc([2.0], [1.0]))",
                     {"PROTOOD_LIBRARY": None, "PYTHONPATH": str(tmp_path / "site")},
                     cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(copy / "libprotood.so.0"), "1.0"]


def test_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"       # makes `import torch` fail
            "import protood\n"
            "assert protood.auroc([1.0], [0.0]) == 1.0\n"
            "try:\n"
            "    import protood.torch\n"
            "except ImportError as e:\n"
            "    print('ImportError:', e)\n")
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert "protood.torch needs PyTorch" in out.stdout
    assert "torch" not in run_python("import sys, protood; print(sorted(sys.modules))").stdout


def test_set_threads():
    protood.set_threads(1)
    protood.set_threads(2)
    with pytest.raises(protood.InvalidArgumentError, match="protood_set_threads: n = 0"):
        protood.set_threads(0)
    with pytest.raises(protood.InvalidArgumentError, match="set_threads: n = 4294967296"):
        protood.set_threads(2**32)


def test_npy_written_by_the_library_read_by_numpy(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    protood.write_npy(tmp_path / "x.npy", x)
    protood.write_npy(tmp_path / "v.npy", x[0])
    protood.write_npy(tmp_path / "y.npy", np.array([3, -1, 2**31 - 1], dtype=np.int64))
    a = np.load(tmp_path / "x.npy")
    assert a.dtype == np.float32 and np.array_equal(a, x.astype(np.float32))
    v = np.load(tmp_path / "v.npy")
    assert v.shape == (4,) and np.array_equal(v, x[0].astype(np.float32))
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int32 and y.tolist() == [3, -1, 2**31 - 1]
    with pytest.raises(protood.LabelError, match="int32 range"):
        protood.write_npy(tmp_path / "z.npy", np.array([2**31]))
    with pytest.raises(protood.ShapeError, match="1-D or 2-D"):
        protood.write_npy(tmp_path / "z.npy", np.zeros((2, 2, 2)))


def test_npy_written_by_numpy_read_by_the_library(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    cases = {"f64.npy": x, "f32_fortran.npy": np.asfortranarray(x.astype(np.float32)),
             "f32_big_endian.npy": x.astype(">f4"), "f16.npy": x.astype(np.float16)}
    for name, arr in cases.items():
        np.save(tmp_path / name, arr)
        got = protood.read_npy(tmp_path / name)
        assert got.shape == (5, 3), name
        assert got.dtype == (np.float64 if name == "f64.npy" else np.float32), name
        assert np.array_equal(got, np.asarray(arr).astype(got.dtype)), name
        assert protood.read_npy(tmp_path / name, np.float32).dtype == np.float32
    np.save(tmp_path / "labels.npy", np.array([4, 0, 2], dtype=np.int64))
    lab = protood.read_npy(tmp_path / "labels.npy")
    assert lab.dtype == np.int32 and lab.tolist() == [4, 0, 2]
    np.save(tmp_path / "col.npy", np.array([[1.5], [2.5]]))
    assert protood.read_npy(tmp_path / "col.npy").shape == (2, 1)     # 2-D n x 1 stays 2-D
    np.save(tmp_path / "vec.npy", np.array([1.5, 2.5]))
    assert protood.read_npy(tmp_path / "vec.npy").shape == (2,)
    np.save(tmp_path / "big.npy", np.array([2**40], dtype=np.int64))
    with pytest.raises(protood.FormatError, match="protood_npy_read_i32"):
        protood.read_npy(tmp_path / "big.npy")
    with pytest.raises(protood.FormatError, match="protood_npy_read_i32"):
        protood.read_npy(tmp_path / "vec.npy", np.int32)       # labels are never guessed from floats
