"""Print the conformance table's pass rate and every failure:
``python tests/conformance/report.py [--no-c]``."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import harness  # noqa: E402
import table  # noqa: E402


def main() -> None:
    entries = table.ENTRIES
    results = harness.run_table(entries) if "--no-c" not in sys.argv else \
        _no_c(entries)
    for key, r in sorted(results.items()):
        if r.startswith("fail"):
            label, i, mode = key
            form = next(e for e in entries if (e.label or e.name) == label).forms[i]
            print(f"{label} {form!r} [{mode}]: {r}")
    print(harness.summary(results))


def _no_c(entries: list) -> dict:
    results: dict = {}
    for e in entries:
        harness.run_entry(e, results, [])
    return results


if __name__ == "__main__":
    main()
