"""A fixed-seed sample of the loader fuzzing (``benchmarks/fuzz_loaders.py`` runs the full
10,000 cases per loader): mutated GraphModules and C artifacts are refused with a KilnError,
or load and give the right numbers; never another exception, never a wrong result."""

from __future__ import annotations

import json
import random

import pytest

from benchmarks import fuzz_loaders

CASES = 150  # per loader: a few seconds


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    pytest.importorskip("kiln.backends.c.toolchain").find_compiler()
    path = tmp_path_factory.mktemp("fuzz") / "corpus.json"
    fuzz_loaders._save_corpus(str(path))
    return json.loads(path.read_text())


@pytest.mark.parametrize("loader", fuzz_loaders.LOADERS)
def test_mutated_artifacts_are_refused_or_right(seeds, loader, recwarn):
    counts = dict.fromkeys(fuzz_loaders.OUTCOMES, 0)
    pool = fuzz_loaders.seeds_for(seeds, loader)
    for i in range(CASES):
        rng = random.Random(f"suite-{loader}-{i}")
        counts[fuzz_loaders.run_case(loader, pool[i % len(pool)], rng)] += 1
    assert counts["non_kiln"] == counts["wrong"] == 0, counts
    assert counts["refused"] > 0 and counts["ok"] > 0, counts  # both paths were exercised


@pytest.mark.parametrize("loader", fuzz_loaders.LOADERS)
def test_mutated_control_flow_graphs_are_refused_or_right(seeds, loader, recwarn):
    """Only the control-flow seed: its subgraphs, control and item nodes mutated; for the C
    artifact also its plan, whose kiln_run holds the loop and the branch."""
    pool = [s for s in seeds if s["control"]]
    assert pool
    counts = dict.fromkeys(fuzz_loaders.OUTCOMES, 0)
    for i in range(CASES if loader == "graph_module" else CASES // 2):
        rng = random.Random(f"suite-control-{loader}-{i}")
        counts[fuzz_loaders.run_case(loader, pool[i % len(pool)], rng)] += 1
    assert counts["non_kiln"] == counts["wrong"] == 0, counts
    assert counts["refused"] > 0 and counts["ok"] > 0, counts
