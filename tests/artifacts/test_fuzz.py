"""A fixed-seed sample of benchmarks/fuzz_artifacts.py (which runs the full 10,000 cases):
mutated artifacts fed to every loader, zero crashes and zero silent acceptances."""

from __future__ import annotations

from artifacts.helpers import has_compiler
from benchmarks.fuzz_artifacts import fuzz


def test_fuzzed_artifacts_are_refused_or_harmless(machine) -> None:  # noqa: ANN001
    counts, failures = fuzz(400, seed=20261207, with_c=has_compiler())
    assert not failures, "\n".join(failures[:10])
    assert counts.get("refused", 0) > 300
