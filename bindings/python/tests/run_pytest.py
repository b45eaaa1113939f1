#!/usr/bin/python3
"""Run the binding's pytest suite and report it as the Check suites do, so that
scripts/count_tests.py counts every pytest case:

    100%: Checks: N, Failures: F, Errors: E

A failing test is a failure; an error in set-up, teardown or collection is an error; a skipped
test is counted as a failure (nothing here may be skipped). A run that collects no test (pytest's
exit status 5) or stops on an internal or usage error counts as one error. Exit status 0 only when
every case passed.

usage: run_pytest.py [pytest arguments...]    (default: the tests beside this file)
"""
import os
import sys

import pytest


class Counter:
    def __init__(self):
        self.items = {}          # nodeid -> "passed" | "failed" | "error"
        self.collect_errors = 0

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors += 1

    def pytest_runtest_logreport(self, report):
        prev = self.items.get(report.nodeid, "passed")
        if report.failed:
            now = "failed" if report.when == "call" else "error"
        elif report.skipped:
            now = "failed"
            print(f"\nSKIPPED counts as a failure: {report.nodeid}")
        else:
            now = "passed"
        if prev != "passed":   # the first bad outcome of a test stays its outcome
            now = prev
        self.items[report.nodeid] = now


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    args = argv or [here]
    counter = Counter()
    status = pytest.main(["-p", "no:cacheprovider", "-q", *args], plugins=[counter])
    outcomes = list(counter.items.values())
    failures = outcomes.count("failed")
    errors = outcomes.count("error") + counter.collect_errors
    checks = len(outcomes) + counter.collect_errors
    if status == pytest.ExitCode.NO_TESTS_COLLECTED or checks == 0:
        print("pytest collected no tests")
        checks, errors = checks + 1, errors + 1
    elif status != pytest.ExitCode.OK and failures + errors == 0:
        print(f"pytest ended with status {int(status)} without a failed case")
        checks, errors = checks + 1, errors + 1
    passed = checks - failures - errors
    print(f"{100 * passed // checks}%: Checks: {checks}, Failures: {failures}, Errors: {errors}")
    return 0 if failures + errors == 0 and status == pytest.ExitCode.OK else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
