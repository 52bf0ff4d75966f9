"""An artifact records the CPU features its library needs; loading it on a CPU without them
is a BackendError (not a SIGILL at the first call)."""

from __future__ import annotations

import platform

import pytest

import kiln
import kiln.backends.c.toolchain
from kiln.backends import deserialize
from kiln.backends.c import cpu
from kiln.backends.c.backend import compile_c
from kiln.backends.envelope import read_envelope, write_envelope
from kiln.base import canonical
from kiln.errors import BackendError
from kiln.io import weights


def _edit_plan(data: bytes, **changes) -> bytes:
    """The artifact ``data`` with plan fields replaced (None deletes one), as a file edited
    by hand or written on another machine would be."""
    backend, payload = read_envelope(data)
    arrays, meta = weights.load_bytes(payload)
    plan = canonical.loads(meta["kiln.c"])
    for key, value in changes.items():
        if value is None:
            plan.pop(key, None)
        else:
            plan[key] = value
    meta["kiln.c"] = canonical.dumps(plan)
    return write_envelope(backend, weights.save_bytes(arrays, metadata=meta))


@pytest.fixture(scope="module")
def artifact():
    gm = kiln.trace(lambda x: (x * 2.0).exp(), kiln.ones(3))
    return compile_c(gm)


def test_the_plan_records_what_the_library_needs(artifact):
    plan = artifact.plan
    assert plan["arch"] == cpu.normalize_arch(platform.machine())
    have = cpu.cpu_flags()
    if have is not None:
        assert set(plan["cpu_features"]) <= have  # built here, so it runs here
    if plan["arch"] == "x86_64":
        portable = compile_c(kiln.trace(lambda x: x.exp(), kiln.ones(3)), target="portable")
        # x86-64-v2: SSE up to 4.2 and POPCNT, nothing wider
        assert set(portable.plan["cpu_features"]) <= {"pni", "ssse3", "sse4_1", "sse4_2",
                                                      "popcnt", "cx16", "lahf_lm"}
        assert "sse4_2" in portable.plan["cpu_features"]


@pytest.mark.skipif(cpu.cpu_flags() is None, reason="the CPU's features are not readable here")
def test_an_artifact_needing_a_feature_this_cpu_lacks_is_refused(artifact):
    data = artifact.serialize()
    assert (deserialize(data)(kiln.ones(3))[0].numpy() > 0).all()
    needs = [*artifact.plan["cpu_features"], "avx1024_imaginary"]
    with pytest.raises(BackendError, match=r"needs CPU features this CPU lacks: "
                                           r"avx1024_imaginary; it was compiled with "
                                           r"target='native'.*target='portable'"):
        deserialize(_edit_plan(data, cpu_features=needs))


def test_an_artifact_for_another_architecture_is_refused(artifact):
    other = "riscv64" if cpu.normalize_arch(platform.machine()) != "riscv64" else "x86_64"
    with pytest.raises(BackendError, match=f"compiled for {other}, but this machine is"):
        deserialize(_edit_plan(artifact.serialize(), arch=other))


def test_an_artifact_from_before_the_record_still_loads(artifact):
    old = _edit_plan(artifact.serialize(), arch=None, cpu_features=None)
    assert deserialize(old)(kiln.ones(3))[0].shape == (3,)


def test_a_native_build_needs_only_what_this_cpus_kernel_lists(monkeypatch):
    """A compiler newer than the kernel enables features /proc/cpuinfo does not list (no
    machine with that kernel could confirm them): a native build records only listed ones,
    so it loads on the machine that built it. Other targets keep the compiler's whole list."""
    tc = kiln.backends.c.toolchain.find_compiler()
    flags = tc.flags_for("native")
    full = cpu.required_features(tc, flags)
    if not full:
        pytest.skip("the compiler reports no ISA features for -march=native here")
    dropped = full[-1]
    have = frozenset(full[:-1])
    monkeypatch.setattr(cpu, "cpu_flags", lambda: have)
    assert cpu.required_features(tc, flags, native=True) == full[:-1]
    assert cpu.required_features(tc, flags) == full
    assert dropped not in cpu.required_features(tc, flags, native=True)


@pytest.mark.parametrize("arch,macro,flag", [("x86_64", "__AVX2__", "avx2"),
                                             ("aarch64", "__ARM_NEON", "asimd"),
                                             ("armv7l", "__ARM_NEON", "neon")])
def test_macros_map_to_the_flag_names_of_their_architecture(arch, macro, flag):
    assert cpu._macros(arch)[macro] == flag
