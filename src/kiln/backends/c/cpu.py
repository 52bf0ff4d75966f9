"""The CPU features a compiled library needs, and whether the running CPU has them.

A library built with ``target="native"`` (``-march=native``) may use every instruction of
the machine that built it: AVX-512 code loaded on a CPU without AVX-512 dies of SIGILL at its
first call. At compile time the plan records what the library needs, as Linux
``/proc/cpuinfo`` flag names (``plan["cpu_features"]``, with ``plan["arch"]``), read from the
macros the compiler predefines for the flags it used (``__AVX512F__`` -> ``avx512f``): they
state exactly which instruction sets it was allowed to emit. Loading an artifact compares
them with the running CPU first and refuses a mismatch with a :class:`BackendError` that says
what is missing and how to build a portable artifact.

Where the running CPU's features cannot be read (no ``/proc/cpuinfo``: macOS, Windows), only
the architecture is checked.

>>> from kiln.backends.c.toolchain import find_compiler
>>> feats = required_features(find_compiler(), find_compiler().flags_for("portable"))
>>> "avx512f" in feats
False
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kiln.errors import BackendError

if TYPE_CHECKING:  # the checks at load time (kiln.aot_load) need no compiler machinery
    from kiln.backends.c.toolchain import Toolchain

# Predefined macro -> /proc/cpuinfo flag, for the instruction sets compilers emit on their own.
_X86 = {
    "__SSE3__": "pni", "__SSSE3__": "ssse3", "__SSE4_1__": "sse4_1", "__SSE4_2__": "sse4_2",
    "__SSE4A__": "sse4a", "__POPCNT__": "popcnt", "__AVX__": "avx", "__AVX2__": "avx2",
    "__FMA__": "fma", "__FMA4__": "fma4", "__F16C__": "f16c", "__BMI__": "bmi1",
    "__BMI2__": "bmi2", "__LZCNT__": "abm", "__MOVBE__": "movbe", "__ADX__": "adx",
    "__AES__": "aes", "__PCLMUL__": "pclmulqdq", "__SHA__": "sha_ni", "__VAES__": "vaes",
    "__VPCLMULQDQ__": "vpclmulqdq", "__GFNI__": "gfni", "__AVXVNNI__": "avx_vnni",
    "__AVX512F__": "avx512f", "__AVX512CD__": "avx512cd", "__AVX512BW__": "avx512bw",
    "__AVX512DQ__": "avx512dq", "__AVX512VL__": "avx512vl", "__AVX512IFMA__": "avx512ifma",
    "__AVX512VBMI__": "avx512vbmi", "__AVX512VBMI2__": "avx512_vbmi2",
    "__AVX512VNNI__": "avx512_vnni", "__AVX512BF16__": "avx512_bf16",
    "__AVX512FP16__": "avx512_fp16", "__AVX512BITALG__": "avx512_bitalg",
    "__AVX512VPOPCNTDQ__": "avx512_vpopcntdq",
}
_AARCH64 = {
    "__ARM_NEON": "asimd", "__ARM_FEATURE_FP16_VECTOR_ARITHMETIC": "asimdhp",
    "__ARM_FEATURE_DOTPROD": "asimddp", "__ARM_FEATURE_SVE": "sve",
    "__ARM_FEATURE_SVE2": "sve2", "__ARM_FEATURE_BF16_VECTOR_ARITHMETIC": "bf16",
    "__ARM_FEATURE_MATMUL_INT8": "i8mm", "__ARM_FEATURE_ATOMICS": "atomics",
}
# 32-bit ARM kernels name NEON "neon" (and list little else the compilers emit on their own)
_ARM32 = {"__ARM_NEON": "neon"}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def _macros(arch: str) -> dict[str, str]:
    if arch in ("x86_64", "i386", "i486", "i586", "i686"):
        return _X86
    if arch == "aarch64":
        return _AARCH64
    return _ARM32 if arch.startswith("arm") else {}


def normalize_arch(machine: str) -> str:
    """``x86_64`` / ``aarch64`` / ... from a target triple or ``platform.machine()``."""
    arch = machine.split("-", 1)[0].lower()
    return _ALIASES.get(arch, arch)


def required_features(toolchain: Toolchain, flags: Sequence[str],
                      native: bool = False) -> list[str]:
    """The CPU features (``/proc/cpuinfo`` names) code compiled with ``flags`` may use, from
    the compiler's predefined macros; cached per compiler and flags.

    ``native``: the flags describe this machine's CPU, so only features its ``/proc/cpuinfo``
    lists are kept. A compiler newer than the kernel knows features the kernel does not list
    (``avx_vnni`` before Linux 5.11): no machine with that kernel could confirm them, and the
    library would be refused on the machine that built it.
    """
    # Only the flags that choose instructions: -march/-mcpu/-m<isa>, not -f or -O.
    isa = tuple(f for f in flags if f.startswith("-m") and not f.startswith("-mprefer"))
    feats = _isa_features(toolchain, isa)
    have = cpu_flags() if native else None
    return [f for f in feats if have is None or f in have]


@functools.cache
def _isa_features(toolchain: Toolchain, isa: tuple[str, ...]) -> tuple[str, ...]:
    import subprocess

    try:
        res = toolchain.run([*isa, "-dM", "-E", "-x", "c", os.devnull])
        text = res.stdout if res.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        text = ""
    defined = {line.split()[1] for line in text.splitlines()
               if line.startswith("#define ") and len(line.split()) >= 2}
    table = _macros(normalize_arch(toolchain.machine))
    return tuple(sorted({flag for macro, flag in table.items() if macro in defined}))


@functools.cache  # the CPU does not change under a process; every artifact load asks
def cpu_flags() -> frozenset[str] | None:
    """The running CPU's feature flags from ``/proc/cpuinfo`` (None where it does not exist)."""
    try:
        # bytes, decoded per line: a text-mode open looks its codec up (an import)
        with open("/proc/cpuinfo", "rb") as f:
            for raw in f:
                name, _, value = raw.decode("ascii", "replace").partition(":")
                if name.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def check_features(plan: dict) -> None:
    """Raise BackendError if this machine cannot run a library built for ``plan``."""
    arch = plan.get("arch")
    here = normalize_arch(platform.machine())
    if arch and arch != here:
        raise BackendError(f"C-backend artifact was compiled for {arch}, but this machine is "
                           f"{here}; compile it again on this machine")
    needed = plan.get("cpu_features") or []
    have = cpu_flags()
    if have is None or not needed:
        return
    missing = [f for f in needed if f not in have]
    if missing:
        target = plan.get("target", "?")
        why = " (for the CPU of the machine that built it)" if target == "native" else ""
        raise BackendError(
            f"C-backend artifact needs CPU features this CPU lacks: {', '.join(missing)}; it was "
            f"compiled with target={target!r}{why}, and loading it here would crash on an illegal "
            "instruction. Compile it with target='portable' "
            "(kiln.compile(..., backend='c', options={'target': 'portable'}) or "
            "compile_c(gm, target='portable')) for an artifact that runs on any CPU of its "
            "architecture, or compile it again on this machine")
