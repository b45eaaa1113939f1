#!/usr/bin/python3
"""End-to-end tests of the protood tool: its --json output against the library called directly
through ctypes, the table against the JSON, every error path with its exit status and message, and
that failed runs leave no output files. Prints a Check-style summary line for scripts/count_tests.py.

usage: cli_test.py PROTOOD_BINARY LIBPROTOOD_SO
"""
import ctypes as C
import json
import os
import pty
import re
import subprocess
import sys
import tempfile
import traceback

import numpy as np

BIN, LIB = sys.argv[1], sys.argv[2]
lib = C.CDLL(LIB)
F32P = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
I32P = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
lib.protood_scorer_create.argtypes = [C.POINTER(C.c_void_p), C.c_int32, C.c_int64]
lib.protood_scorer_set_param.argtypes = [C.c_void_p, C.c_int32, C.c_double]
lib.protood_scorer_fit.argtypes = [C.c_void_p, C.c_int64, F32P, C.c_void_p, C.c_int64]
lib.protood_scorer_score.argtypes = [C.c_void_p, C.c_int64, F32P, F32P]
lib.protood_scorer_free.argtypes = [C.c_void_p]
for name in ["protood_auroc"]:
    getattr(lib, name).argtypes = [C.c_int64, F32P, C.c_int64, F32P, C.POINTER(C.c_double)]
lib.protood_aupr.argtypes = [C.c_int64, F32P, C.c_int64, F32P, C.c_int32, C.POINTER(C.c_double)]
lib.protood_fpr_at_tpr.argtypes = [C.c_int64, F32P, C.c_int64, F32P, C.c_double, C.c_int32,
                                   C.POINTER(C.c_double)]
lib.protood_last_error.restype = C.c_char_p
KIND = {"knn": 1, "maha": 2, "ssd": 3, "proto": 4}
FPR = {"roc": 0, "knn": 1, "percentile": 2, "ood_positive": 3}


def ok(st):
    if st != 0:
        raise AssertionError(f"library call failed: {lib.protood_last_error().decode()}")


def library_scores(method, train, labels, n_classes, queries, k=50, normalize=True):
    s = C.c_void_p()
    ok(lib.protood_scorer_create(C.byref(s), KIND[method], train.shape[1]))
    ok(lib.protood_scorer_set_param(s, 1, k) if method == "knn" else 0)
    ok(lib.protood_scorer_set_param(s, 2, 1.0 if normalize else 0.0))
    lab = labels.ctypes.data_as(C.c_void_p) if labels is not None else None
    ok(lib.protood_scorer_fit(s, train.shape[0], train, lab, n_classes))
    out = []
    for q in queries:
        r = np.empty(q.shape[0], np.float32)
        ok(lib.protood_scorer_score(s, q.shape[0], q, r))
        out.append(r)
    lib.protood_scorer_free(s)
    return out


def library_metrics(s_in, s_out, fpr="roc"):
    v = C.c_double()
    m = {}
    ok(lib.protood_fpr_at_tpr(len(s_in), s_in, len(s_out), s_out, 0.95, FPR[fpr], C.byref(v)))
    m["fpr95"] = v.value
    ok(lib.protood_auroc(len(s_in), s_in, len(s_out), s_out, C.byref(v)))
    m["auroc"] = v.value
    ok(lib.protood_aupr(len(s_in), s_in, len(s_out), s_out, 1, C.byref(v)))
    m["aupr_in"] = v.value
    ok(lib.protood_aupr(len(s_in), s_in, len(s_out), s_out, 2, C.byref(v)))
    m["aupr_out"] = v.value
    return m


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e)


# ---- data -------------------------------------------------------------------------------------
tmp = tempfile.mkdtemp(prefix="protood-cli-")
rng = np.random.default_rng(7)
D, C_ = 16, 4
centres = rng.normal(size=(C_, D)) * 3
ytr = rng.integers(0, C_, 600).astype(np.int32)
train = (centres[ytr] + rng.normal(size=(600, D))).astype(np.float32)
yid = rng.integers(0, C_, 200)
idt = (centres[yid] + rng.normal(size=(200, D))).astype(np.float32)
near = (rng.normal(size=(150, D)) * 2).astype(np.float32)
far = (rng.normal(size=(120, D)) * 6 + 5).astype(np.float32)
P = lambda name: os.path.join(tmp, name)
np.save(P("train.npy"), train)
np.save(P("train64.npy"), train.astype(np.float64))
np.save(P("train16.npy"), train.astype(np.float16))
np.save(P("y.npy"), ytr)
np.save(P("y64.npy"), ytr.astype(np.int64))
np.save(P("id.npy"), idt)
np.save(P("near.npy"), near)
np.save(P("far.npy"), far)
np.save(P("wrongdim.npy"), rng.normal(size=(10, D + 3)).astype(np.float32))
np.save(P("ints.npy"), np.zeros((5, D), np.int32))
np.save(P("short_labels.npy"), ytr[:-1])
with open(P("corrupt.npy"), "wb") as f:
    f.write(open(P("id.npy"), "rb").read()[:150])

checks = 0
failures = []


def case(fn):
    global checks
    checks += 1
    try:
        fn()
    except Exception:
        failures.append(f"{fn.__name__}: {traceback.format_exc()}")
    return fn


def assert_metrics_equal(got, want, what):
    for key in ["fpr95", "auroc", "aupr_in", "aupr_out"]:
        assert got[key] == want[key], f"{what} {key}: tool {got[key]!r}, library {want[key]!r}"


# ---- results equal the library ----------------------------------------------------------------
SETS = ["--ood", f"near={P('near.npy')}", "--ood", f"far={P('far.npy')}"]


def check_method(method, extra, labels, n_classes, k=50, fpr="roc", train_file="train.npy"):
    r = run("score", "--method", method, "--train", P(train_file), "--id", P("id.npy"), *SETS, "--json",
            "--fpr", fpr, *extra)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", f"stderr not empty off a terminal: {r.stderr!r}"
    got = json.loads(r.stdout)
    s_id, s_near, s_far = library_scores(method, train, labels, n_classes, [idt, near, far], k=k)
    want = {"near": library_metrics(s_id, s_near, fpr), "far": library_metrics(s_id, s_far, fpr)}
    assert got["method"] == method and got["fpr_convention"] == fpr
    assert got["k"] == (k if method == "knn" else None)
    assert list(got["ood"]) == ["near", "far"]
    for name in want:
        assert_metrics_equal(got["ood"][name], want[name], f"{method} {name}")
    for key in ["fpr95", "auroc", "aupr_in", "aupr_out"]:
        avg = (want["near"][key] + want["far"][key]) / 2
        assert abs(got["average"][key] - avg) < 1e-15, key
    assert want["far"]["auroc"] > 0.9, "the far set should be easy to separate"


@case
def knn_json_equals_library():
    check_method("knn", ["--k", "7"], None, 0, k=7)


@case
def knn_default_k_and_other_fpr_conventions():
    check_method("knn", [], None, 0, k=50, fpr="percentile")
    check_method("knn", ["--k", "3"], None, 0, k=3, fpr="ood_positive")


@case
def maha_json_equals_library():
    check_method("maha", ["--train-labels", P("y.npy")], ytr, C_)


@case
def maha_with_int64_labels_and_f64_f16_features():
    check_method("maha", ["--train-labels", P("y64.npy")], ytr, C_, train_file="train64.npy")
    r = run("score", "--method", "knn", "--train", P("train16.npy"), "--id", P("id.npy"), *SETS, "--json")
    assert r.returncode == 0, r.stderr
    want = library_scores("knn", train.astype(np.float16).astype(np.float32), None, 0, [idt, near])
    assert_metrics_equal(json.loads(r.stdout)["ood"]["near"], library_metrics(want[0], want[1]), "f16")


@case
def ssd_json_equals_library():
    check_method("ssd", [], None, 0, fpr="knn")


@case
def table_numbers_equal_json():
    args = ["score", "--method", "knn", "--k", "5", "--train", P("train.npy"), "--id", P("id.npy"), *SETS]
    table = run(*args)
    js = json.loads(run(*args, "--json").stdout)
    assert table.returncode == 0, table.stderr
    rows = {}
    for line in table.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and re.fullmatch(r"-?\d+\.\d\d", parts[1]):
            rows[parts[0]] = [float(x) for x in parts[1:]]
    assert set(rows) == {"near", "far", "Average"}, rows
    for name, m in list(js["ood"].items()) + [("Average", js["average"])]:
        want = [round(100 * m[k], 2) for k in ["fpr95", "auroc", "aupr_in", "aupr_out"]]
        assert all(abs(a - b) < 0.0051 for a, b in zip(rows[name], want)), (name, rows[name], want)


@case
def scores_out_and_saved_scorer_round_trip():
    out = P("scores")
    sc = P("knn.scorer")
    r = run("score", "--method", "knn", "--k", "9", "--train", P("train.npy"), "--id", P("id.npy"), *SETS,
            "--scores-out", out, "--save-scorer", sc, "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["far.npy", "id.npy", "near.npy"]
    s_id, s_near, s_far = library_scores("knn", train, None, 0, [idt, near, far], k=9)
    assert np.array_equal(np.load(os.path.join(out, "id.npy")), s_id)
    assert np.array_equal(np.load(os.path.join(out, "far.npy")), s_far)
    r2 = run("score", "--load-scorer", sc, "--id", P("id.npy"), *SETS, "--json")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout) == json.loads(r.stdout)
    m = run("metrics", "--id", os.path.join(out, "id.npy"), "--ood", os.path.join(out, "near.npy"), "--json")
    assert m.returncode == 0, m.stderr
    assert_metrics_equal(list(json.loads(m.stdout)["ood"].values())[0], library_metrics(s_id, s_near), "metrics")
    i = run("inspect", sc)
    assert i.returncode == 0 and "knn" in i.stdout and "checksum ok" in i.stdout, i.stdout + i.stderr
    assert "dimension 16" in i.stdout and ", fitted" in i.stdout, i.stdout


@case
def inspect_npy_and_corrupt_files():
    r = run("inspect", P("train64.npy"))
    assert r.returncode == 0 and "600 x 16 float64" in r.stdout, r.stdout
    r = run("inspect", P("corrupt.npy"))
    assert r.returncode == 1 and "truncated" in r.stderr, r.stderr
    sc = P("knn.scorer")
    data = bytearray(open(sc, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(P("flipped.scorer"), "wb").write(data)
    r = run("inspect", P("flipped.scorer"))
    assert r.returncode == 1 and r.stderr.startswith("protood: "), r.stderr
    r = run("inspect", P("y.npy"), "extra")
    assert r.returncode == 2


@case
def version_and_help():
    r = run("--version")
    assert r.returncode == 0 and re.match(r"protood \d+\.\d+\.\d+ \(libprotood", r.stdout), r.stdout
    r = run("help")
    assert r.returncode == 0 and "score" in r.stdout and "metrics" in r.stdout and "inspect" in r.stdout
    r = run("help", "score")
    assert r.returncode == 0 and "examples:" in r.stdout and "--scores-out" in r.stdout
    assert run("score", "--help").stdout == r.stdout
    assert run("help", "nope").returncode == 2
    r = run()
    assert r.returncode == 2 and "usage" in r.stderr


# ---- errors: one line, exit 2 for usage, 1 for data; no partial outputs -----------------------
def expect_error(code, pattern, *args):
    out = P("err_out")
    r = run("score", "--scores-out", out, *args[1:]) if args and args[0] == "score" else run(*args)
    assert r.returncode == code, f"{args}: exit {r.returncode}, want {code}; stderr {r.stderr!r}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("protood: "), f"{args}: stderr {r.stderr!r}"
    assert re.search(pattern, lines[0]), f"{args}: {lines[0]!r} does not match {pattern!r}"
    assert r.stdout == "", f"{args}: printed {r.stdout!r}"
    assert not os.path.exists(out) or os.listdir(out) == [], f"{args}: left output files"


BASE = ["score", "--method", "knn", "--train", P("train.npy"), "--id", P("id.npy")]


@case
def usage_errors_exit_2():
    expect_error(2, "not a command", "frobnicate")
    expect_error(2, "--method: unknown method 'nn'", "score", "--method", "nn", "--train", P("train.npy"),
                 "--id", P("id.npy"), *SETS)
    expect_error(2, "at least one --ood", *BASE)
    expect_error(2, "--id ID_TEST.npy is required", "score", "--method", "knn", "--train", P("train.npy"), *SETS)
    expect_error(2, "expected NAME=FILE.npy", *BASE, "--ood", P("near.npy"))
    expect_error(2, "given twice", *BASE, "--ood", f"a={P('near.npy')}", "--ood", f"a={P('far.npy')}")
    expect_error(2, "--k: 'zero' is not a positive integer", *BASE, *SETS, "--k", "zero")
    expect_error(2, "--k: '0' is not", *BASE, *SETS, "--k", "0")
    expect_error(2, "--fpr: unknown convention 'tpr'", *BASE, *SETS, "--fpr", "tpr")
    expect_error(2, "needs --train-labels", "score", "--method", "maha", "--train", P("train.npy"), "--id",
                 P("id.npy"), *SETS)
    expect_error(2, "--k applies to --method knn only", "score", "--method", "ssd", "--train", P("train.npy"),
                 "--id", P("id.npy"), *SETS, "--k", "5")
    expect_error(2, "exclude each other", *BASE, *SETS, "--save-scorer", P("a"), "--load-scorer", P("b"))
    expect_error(2, "needs --bank", "score", "--method", "proto", "--id", P("id.npy"), *SETS)
    expect_error(2, "unknown argument '--bogus'", *BASE, *SETS, "--bogus")
    expect_error(2, "--threads needs a value", *BASE, *SETS, "--threads")
    # Found in review with the fuzz target: values beyond int32 used to wrap (4294967295 became -1,
    # and the option was silently ignored).
    expect_error(2, "--threads: '4294967295' is not a positive integer", *BASE, *SETS, "--threads", "4294967295")
    expect_error(2, "are required", "metrics", "--id", P("id.npy"))


@case
def data_errors_exit_1():
    expect_error(1, r"wrongdim\.npy: dimension 19 does not match the training features \(16\)", *BASE, "--ood",
                 f"w={P('wrongdim.npy')}")
    expect_error(1, r"id\.npy: dimension 16 does not match the training features \(19\)", "score", "--method",
                 "knn", "--train", P("wrongdim.npy"), "--id", P("id.npy"), *SETS, "--k", "5")
    expect_error(1, r"missing\.npy: cannot open", *BASE, "--ood", f"m={P('missing.npy')}")
    expect_error(1, r"corrupt\.npy.*truncated", *BASE, "--ood", f"c={P('corrupt.npy')}")
    expect_error(1, r"ints\.npy: features must be float", *BASE, "--ood", f"i={P('ints.npy')}")
    expect_error(1, r"labels do not match the 600 training rows", "score", "--method", "maha", "--train",
                 P("train.npy"), "--train-labels", P("short_labels.npy"), "--id", P("id.npy"), *SETS)
    expect_error(1, r"train\.npy: .*k", *BASE, *SETS, "--k", "601")
    expect_error(1, r"nonexistent\.scorer", "score", "--load-scorer", P("nonexistent.scorer"), "--id",
                 P("id.npy"), *SETS)
    expect_error(1, r"scores must be a vector", "metrics", "--id", P("train.npy"), "--ood", P("near.npy"))


@case
def failed_save_leaves_previous_file():
    sc = P("keep.scorer")
    open(sc, "wb").write(b"previous")
    r = run(*BASE, *SETS, "--save-scorer", os.path.join(tmp, "no", "such", "dir", "x.scorer"))
    assert r.returncode == 1 and "x.scorer" in r.stderr, r.stderr
    r = run(*BASE, "--ood", f"m={P('missing.npy')}", "--save-scorer", sc)
    assert r.returncode == 1
    assert open(sc, "rb").read() == b"previous", "a failed run replaced the scorer file"


def stderr_on_a_terminal(args, env):
    master, slave = pty.openpty()
    p = subprocess.run([BIN, *args], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:  # Linux reports EIO once the other side is closed
        pass
    os.close(master)
    assert p.returncode == 0
    return seen


@case
def progress_bar_on_a_terminal_only():
    env = dict(os.environ, PROTOOD_PROGRESS_DELAY="0")
    seen = stderr_on_a_terminal([*BASE, *SETS], env)
    assert b"scoring near" in seen and b"%" in seen, seen
    assert stderr_on_a_terminal([*BASE, *SETS, "--quiet"], env) == b""
    assert stderr_on_a_terminal([*BASE, *SETS], dict(os.environ)) == b"", "a sub-second run drew a bar"


pct = 100 * (checks - len(failures)) // checks
print(f"{pct}%: Checks: {checks}, Failures: {len(failures)}, Errors: 0")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
