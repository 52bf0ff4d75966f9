"""``kiln cache``: look into the compile cache, empty it, explain a miss, move it.

    kiln cache ls                     entries: key, name, kind, size, last use
    kiln cache stats                  where, how many, how big, the cap, the Redis URL
    kiln cache clear                  remove every entry and the warm index
    kiln cache why-miss FILE:FN -i 4x16 [--backend c]
                                      which key ingredient keeps that call from hitting
    kiln cache export FILE            every entry (and its warm keys) as one bundle
    kiln cache import FILE            check a bundle's entries and add them to this cache
    kiln cache prebuild [--dtype ..]  build the C backend's conv/pool kernels once per machine

The bundle is the one ``kiln.compiler.save_cache_artifacts()`` writes; importing verifies
every entry (signatures included: the machines share ``KILN_CACHE_SECRET``).

>>> from click.testing import CliRunner
>>> "why-miss" in CliRunner().invoke(cache, ["--help"]).output
True
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import click

from kiln.artifacts.cache import active_store
from kiln.artifacts.explain import explain_miss, stored_ingredients
from kiln.artifacts.store import max_bytes


def _local() -> Any:
    store = active_store()
    store = getattr(store, "local", store)
    if store is None:
        raise click.ClickException("the compile cache is off (KILN_CACHE_DIR=0 or "
                                   "KILN_COMPILE_CACHE=0)")
    return store


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@click.group("cache")
def cache() -> None:
    """The compile cache (docs/artifacts.md)."""


@cache.command("ls")
def ls_command() -> None:
    """List the entries, most recently used first."""
    store = _local()
    names = {key: name for key, name, _ in stored_ingredients(store)}
    rows = sorted(store.entries(), key=lambda e: -e[2].st_mtime)
    if not rows:
        click.echo(f"no entries in {store.root}")
        return
    now = time.time()
    for key, _, st in rows:
        age = now - st.st_mtime
        click.echo(f"{key[:16]}  {_size(st.st_size):>10}  {age / 60:8.1f} min ago  "
                   f"{names.get(key, '?')}")


@cache.command("stats")
def stats_command() -> None:
    """Where the cache is, its size and cap, and the shared Redis store."""
    store = _local()
    entries = list(store.entries())
    total = sum(st.st_size for _, _, st in entries)
    warm = len(list((store.root / "warm").glob("??/*.json")))
    click.echo(f"directory   {store.root}")
    click.echo(f"entries     {len(entries)} ({_size(total)}), warm index {warm}")
    click.echo(f"cap         {_size(max_bytes())} (KILN_CACHE_MAX_BYTES)")
    click.echo(f"redis       {os.environ.get('KILN_CACHE_URL') or 'none'} (KILN_CACHE_URL)")


@cache.command("clear")
def clear_command() -> None:
    """Remove every entry and the warm index."""
    store = _local()
    click.echo(f"removed {store.clear()} file(s) from {store.root}")


@cache.command("why-miss")
@click.argument("target", metavar="FILE:FN")
@click.option("-i", "--input", "inputs", multiple=True, metavar="SHAPE[:DTYPE]",
              help="An example input per parameter, e.g. -i 4x16 -i 4:int64.")
@click.option("--backend", default="c", show_default=True)
def why_miss_command(target: str, inputs: tuple[str, ...], backend: str) -> None:
    """Say whether FILE:FN on these inputs hits the cache, or which ingredient differs."""
    import kiln
    from kiln.cli.target import example_inputs, load_target

    fn = load_target(target)
    compiled = fn if hasattr(fn, "_cache_ingredients") else kiln.compile(fn, backend=backend)
    click.echo(explain_miss(compiled, *example_inputs(inputs)))


@cache.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=pathlib.Path))
def export_command(file: pathlib.Path) -> None:
    """Write every entry into FILE (one bundle)."""
    from kiln.artifacts.precompile_context import bundle_store
    from kiln.base.atomic import write_atomic

    got = bundle_store(_local())
    if got is None:
        raise click.ClickException("the cache holds no entries to export")
    data, info = got
    write_atomic(file, data)
    click.echo(f"exported {len(info.entries)} entr{'y' if len(info.entries) == 1 else 'ies'} "
               f"({_size(len(data))}) to {file}")


@cache.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
def import_command(file: pathlib.Path) -> None:
    """Check the entries of the bundle FILE and add them to this cache."""
    from kiln.artifacts.precompile_context import load_cache_artifacts
    from kiln.errors import KilnError

    _local()
    try:
        info = load_cache_artifacts(file.read_bytes())
    except KilnError as e:
        raise click.ClickException(str(e)) from None
    n = len(info.entries) if info is not None else 0
    click.echo(f"imported {n} entr{'y' if n == 1 else 'ies'} from {file}")


@cache.command("prebuild")
@click.option("--dtype", "dtypes", multiple=True, default=("float32",), show_default=True,
              type=click.Choice(["float32", "float64"]), help="repeat for both")
@click.option("--op", "ops", multiple=True, help="only these kernels (default: all)")
def prebuild_command(dtypes: tuple[str, ...], ops: tuple[str, ...]) -> None:
    """Build the C backend's conv and pool kernels and the fused optimizers' library for
    this machine, once.

    Graphs that convolve or pool link these prebuilt objects, and optimizers step through
    the library; each costs seconds of compiler time the first time any model needs it.
    Built here (in parallel), they wait in the cache directory, keyed by their source, the
    compiler and the flags, for every later compile.
    """
    from kiln.backends.c import conv_kernels
    from kiln.backends.c.convrt import prebuild
    from kiln.errors import KilnError

    unknown = sorted(set(ops) - set(conv_kernels.OPS))
    if unknown:
        raise click.BadParameter(f"{unknown}: expected some of {list(conv_kernels.OPS)}",
                                 param_hint="--op")
    start = time.perf_counter()
    try:
        paths = prebuild(ops or conv_kernels.OPS, dtypes)
        optim = "" if ops else _optimizer_library()
    except KilnError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{len(paths)} kernel objects{optim} ready in "
               f"{time.perf_counter() - start:.1f} s (cached under "
               f"{os.environ.get('KILN_CACHE_DIR') or 'the user cache dir'})")


def _optimizer_library() -> str:
    from kiln.optim import fused

    return " and the optimizer library" if fused.library() is not None else ""


COMMANDS = [cache]
