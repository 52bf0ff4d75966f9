"""``kiln env``: what a bug report needs (versions, compiler, OpenMP, BLAS, CPU, cache)."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

# CPU features Kiln's C backend and BLAS choices depend on.
_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
             "avx512_bf16", "avx512_vnni", "amx_tile", "neon", "asimd", "sve")


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001  (a report shows what failed, it does not stop)
        return f"unavailable ({type(e).__name__}: {e})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def collect() -> dict[str, Any]:
    """The environment as a flat dict of strings (what ``kiln env --json`` prints)."""
    import kiln
    from kiln.backends.c import threads, toolchain
    from kiln.backends.c.blas import cpu_vendor, gemm_support
    from kiln.backends.c.cpu import cpu_flags
    from kiln.base import cachedir
    from kiln.base.threads import get_num_threads, usable_cores

    info: dict[str, Any] = {
        "kiln": kiln.__version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "safetensors": _version("safetensors"),
        "cpu": f"{_cpu_model()} ({cpu_vendor() or 'unknown vendor'})",
        "cores usable": str(usable_cores()),
        "cores total": str(os.cpu_count()),
        "threads": f"{get_num_threads()} (kiln.set_num_threads)",
    }
    flags = cpu_flags()
    info["cpu features"] = ("unknown" if flags is None
                            else " ".join(f for f in _FEATURES if f in flags) or "none listed")
    tc = _try(toolchain.find_compiler)
    if isinstance(tc, str):
        info["c compiler"] = tc
    else:
        info["c compiler"] = f"{tc.path} ({tc.kind}: {tc.version})"
        info["target"] = tc.machine
        info["openmp"] = ("off (KILN_OPENMP)" if not toolchain.openmp_enabled()
                          else "yes" if tc.supports_openmp else "no")
        info["native flags"] = _try(lambda: " ".join(toolchain.flags_for("native")))

        def blas() -> str:
            g = gemm_support()
            threads = f", {g.blas_threads} thread (in the OpenMP split)" \
                if g.blas_threads == 1 else ", threads as kiln.set_num_threads"
            return f"{g.backend} {g.version}{threads}"

        info["gemm"] = _try(blas)
        if tc.supports_openmp:
            threads.prepare_openmp()
            info["openmp idle threads"] = threads.spin_setting()
            info["numpy blas threads"] = threads.blas_sharing()
    root = cachedir.root()
    info["cache dir"] = str(root) if root is not None else "off (KILN_CACHE_DIR)"
    for key in sorted(os.environ):
        if key.startswith("KILN_") or key in ("CC", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                              "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS",
                                              "OPENBLAS_THREAD_TIMEOUT",
                                              "MKL_NUM_THREADS", "OPENBLAS_CORETYPE"):
            info[f"${key}"] = os.environ[key]
    return info


@click.command("env")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def env_command(as_json: bool) -> None:
    """Print the environment Kiln runs in: versions, C compiler, OpenMP, BLAS, CPU features,
    cache directory (paste it into bug reports)."""
    info = collect()
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    table = Table(show_header=False, title="kiln env", title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        table.add_row(key, str(value))
    Console().print(table)


COMMANDS = [env_command]
