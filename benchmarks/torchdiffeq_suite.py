"""torchdiffeq's own unittest suite against physode.torchdiffeq: how much of it passes after the switch.

Copies the `tests/` folder of a torchdiffeq checkout to a temporary folder, replaces its
`import torchdiffeq` by `import physode.torchdiffeq as torchdiffeq` (the switch the README
promises, and nothing else), runs it, and counts every check: each subtest, or each test without
subtests. Prints the totals, the counts per test and the most common reasons for failing.

    git clone https://github.com/rtqichen/torchdiffeq && git -C torchdiffeq checkout v0.2.5-or-its-commit
    OMP_NUM_THREADS=1 python benchmarks/torchdiffeq_suite.py torchdiffeq/tests
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import sys
import tempfile
import time
import traceback
import unittest
import warnings
from pathlib import Path

MODULES = ("api_tests", "event_tests", "gradient_tests", "norm_tests", "odeint_tests")


class CountingResult(unittest.TestResult):
    """Counts outcomes per check, per test, and the failures by their last message line."""

    def __init__(self):
        super().__init__()
        self.totals = collections.Counter()
        self.per_test = collections.defaultdict(collections.Counter)
        self.reasons = collections.Counter()

    def _count(self, test: unittest.TestCase, error) -> None:
        outcome = "pass" if error is None else "fail" if issubclass(error[0], AssertionError) else "error"
        self.totals[outcome] += 1
        self.per_test[test.id().split(" ")[0]][outcome] += 1
        if error is not None:
            last = traceback.format_exception_only(error[0], error[1])[-1].strip()
            self.reasons[re.sub(r"\[.*", "[...]", last)[:140]] += 1

    def addSubTest(self, test, subtest, error):
        self._count(test, error)

    def addSuccess(self, test):
        if not any(key == test.id().split(" ")[0] for key in self.per_test):
            self._count(test, None)

    def addFailure(self, test, error):
        self._count(test, error)

    def addError(self, test, error):
        self._count(test, error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path, help="the tests/ folder of a torchdiffeq checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "tests"
        shutil.copytree(args.tests, copy)
        for path in copy.glob("*.py"):
            path.write_text(re.sub(r"^import torchdiffeq$", "import physode.torchdiffeq as torchdiffeq",
                                   path.read_text(), flags=re.MULTILINE))
        sys.path.insert(0, str(copy))
        suite = unittest.defaultTestLoader.loadTestsFromNames(MODULES)
        result = CountingResult()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            suite.run(result)
    total = sum(result.totals.values())
    print(f"checks {total}: passed {result.totals['pass']} ({100 * result.totals['pass'] / max(total, 1):.1f}%), "
          f"failed {result.totals['fail']}, errors {result.totals['error']} [{time.perf_counter() - start:.0f} s]")
    for name, counts in sorted(result.per_test.items()):
        if counts["fail"] or counts["error"]:
            print(f"  {name}: {dict(counts)}")
    print("reasons:")
    for reason, count in result.reasons.most_common():
        print(f"  {count:4d}  {reason}")


if __name__ == "__main__":
    main()
