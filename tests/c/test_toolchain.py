"""Toolchains other than the default one: no OpenMP (the runtime's other branch), the ziglang
wheel, and a CC that is not a compiler."""

from __future__ import annotations

import glob
import shlex
import sys

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.backends.c import toolchain
from kiln.backends.c.backend import compile_c
from kiln.errors import CompileError
from tests.c.conftest import check


@pytest.fixture
def fresh_toolchain():
    """Forget the compiler found (and its OpenMP probe) before and after the test."""
    toolchain.clear_cache()
    yield
    toolchain.clear_cache()


def _programs() -> None:
    """Pointwise math (kiln_ops.h, kiln_math.h), a row reduction and a GEMM (kiln_gemm.h)."""
    check(lambda x: x.cos().cos(), kiln.randn(1000))
    check(lambda a, w: F.softmax(a @ w, -1), kiln.randn(33, 20), kiln.randn(20, 17))


def test_programs_build_and_run_without_openmp(monkeypatch, fresh_toolchain):
    # The runtime headers have a branch for compilers without OpenMP (clang without libomp,
    # zig): KILN_OPENMP=0 builds it with the compiler at hand, so CI compiles it.
    monkeypatch.setenv("KILN_OPENMP", "0")
    flags = toolchain.find_compiler().flags_for("native")
    assert "-fopenmp" not in flags and "-std=c11" in flags
    _programs()
    # The conv runtime (kiln_conv.h) too, compiled apart from the program.
    check(lambda x, w: F.conv2d(x, w, padding=1).relu(), kiln.randn(1, 3, 8, 8),
          kiln.randn(4, 3, 3, 3))
    monkeypatch.setenv("KILN_OPENMP", "1")
    if toolchain.find_compiler().supports_openmp:
        assert "-fopenmp" in toolchain.find_compiler().flags_for("native")


def test_the_ziglang_wheel_builds_programs(monkeypatch, fresh_toolchain):
    pytest.importorskip("ziglang")
    monkeypatch.setenv("CC", shlex.join([sys.executable, "-m", "ziglang", "cc"]))
    tc = toolchain.find_compiler()
    assert "zig" in tc.version.lower() or tc.kind in ("clang", "zig"), tc
    _programs()


def test_a_cc_that_is_not_a_compiler_is_a_compile_error(monkeypatch, fresh_toolchain, tmp_path):
    # /bin/true answers --version and exits 0 on anything, without writing a library.
    monkeypatch.setenv("CC", "/bin/true")
    # A private build root: other Kiln processes (pytest -n 2 workers) build in the system
    # temp directory at the same time, and their directories must not count here.
    monkeypatch.setenv("KILN_TMPDIR", str(tmp_path))
    before = set(glob.glob(f"{tmp_path}/kiln-c-*"))
    gm = kiln.trace(lambda x: x.cos().cos(), kiln.ones(3))
    with pytest.raises(CompileError, match=r"'/bin/true'.* exited successfully but produced "
                                           r"no library.*set CC to gcc or clang"):
        compile_c(gm)
    assert set(glob.glob(f"{tmp_path}/kiln-c-*")) == before  # nothing left
    assert not toolchain.find_compiler().supports_openmp  # its probe wrote no library either
    with pytest.raises(CompileError, match="produced no library"):
        toolchain.compile_shared({"a.c": "int f(void) { return 1; }",
                                  "b.c": "int g(void) { return 2; }"})
    assert set(glob.glob(f"{tmp_path}/kiln-c-*")) == before
    assert np.isfinite(kiln.ones(1).numpy()).all()
