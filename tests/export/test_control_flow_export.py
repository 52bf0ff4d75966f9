"""kiln.aot_compile of programs with control flow: one .so whose kiln_run holds the loops and
branches, run by kiln.aot_load and by examples/c/run_model.c (no Python), against eager."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from tests.export.conftest import run_exe


class Elman(kiln.nn.Module):
    """An Elman RNN over a run-time sequence length, then a branch on the final state."""

    def __init__(self) -> None:
        super().__init__()
        self.w_ih = kiln.nn.Parameter(kiln.randn(2, 3) * 0.5)
        self.w_hh = kiln.nn.Parameter(kiln.randn(3, 3) * 0.5)

    def forward(self, xs):
        step = lambda i, h: (xs[i] @ self.w_ih + h @ self.w_hh).tanh()  # noqa: E731
        h = kiln.fori_loop(0, xs.shape[0], step, kiln.zeros(3))
        return kiln.cond(h.sum() > 0, lambda h: h * 2, lambda h: -h, (h,))


class ScriptedCell(kiln.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = kiln.nn.Linear(3, 3)

    def forward(self, xs):
        h = kiln.zeros(3)
        for t in range(xs.shape[0]):  # a fori_loop: the length is symbolic
            h = (self.fc(xs[t]) + h).tanh()
        if h.sum() > 0:  # a cond
            return h * 2
        return -h


@pytest.fixture(scope="module")
def elman_library(tmp_path_factory):
    kiln.manual_seed(4)
    model = Elman().eval()
    path = kiln.aot_compile(model, (kiln.randn(4, 2),),
                            dynamic_shapes=({0: kiln.Dim("T", min=1, max=64)},),
                            options={"output_path": str(tmp_path_factory.mktemp("cf") /
                                                        "elman.so")})
    return path, model


def test_aot_load_runs_the_loop_for_every_length(elman_library):
    path, model = elman_library
    f = kiln.aot_load(path)
    for steps in (1, 3, 17):
        x = kiln.randn(steps, 2)
        np.testing.assert_allclose(f(x).numpy(), model(x).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_run_model_c_runs_the_loop(run_model, elman_library, tmp_path):
    path, model = elman_library
    x = np.random.default_rng(0).standard_normal((9, 2)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    res = run_exe(run_model, path, ["9x2:x.bin", "--", "o0"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["3"]
    got = np.fromfile(tmp_path / "o0", np.float32)
    want = model(kiln.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_aot_compile_of_a_loaded_script_module(tmp_path):
    kiln.manual_seed(5)
    model = ScriptedCell().eval()
    scripted = kiln.jit.script(model)
    data = scripted.forward.program(kiln.randn(4, 3), dynamic={"xs": {0: "T"}}) \
        .save_to_buffer()
    loaded = kiln.jit.load(data)
    assert any(n.op == "control" for n in loaded.graph.nodes)
    path = kiln.aot_compile(loaded, (kiln.randn(4, 3),),
                            dynamic_shapes=({0: kiln.Dim("T", min=1, max=32)},),
                            options={"output_path": str(tmp_path / "cell.so")})
    f = kiln.aot_load(path)
    for steps in (1, 6):
        x = kiln.randn(steps, 3)
        np.testing.assert_allclose(f(x).numpy(), model(x).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
