"""What the subcommands share: ``FILE:FN`` targets, example inputs given as shapes, and
a median timer.

``FILE`` is imported as Python, as ``python FILE`` would run it (it is the user's program,
named on the command line); ``FN`` is a function, a ``kiln.nn.Module`` instance, or a
Module subclass built with no arguments. Inputs are ``--input 4x16`` (float32 normal
values) or ``--input 8:int64`` (integers in [0, 10)), one per positional parameter.
"""

from __future__ import annotations

import importlib.util
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import click

_DTYPES = ("float32", "float64", "int64", "int32", "bool")


def load_target(spec: str) -> Any:
    """``path/to/file.py:name`` -> the object ``name`` of that file."""
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise click.BadParameter(f"expected FILE:FN (for example model.py:forward), got {spec!r}",
                                 param_hint="TARGET")
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise click.BadParameter(f"no such file: {path_text}", param_hint="TARGET")
    module_name = f"_kiln_cli_{path.stem}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    if loader is None or loader.loader is None:
        raise click.BadParameter(f"{path_text} is not a Python file", param_hint="TARGET")
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module  # dataclasses and pickling-free reprs look it up
    sys.path.insert(0, str(path.resolve().parent))  # the file's own imports of its neighbours
    try:
        loader.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.resolve().parent))
    obj = getattr(module, name, None)
    if obj is None:
        public = sorted(k for k, v in vars(module).items()
                        if callable(v) and not k.startswith("_") and getattr(
                            v, "__module__", None) == module_name)
        raise click.BadParameter(f"{path_text} has no {name!r}; it defines "
                                 f"{', '.join(public) or 'no functions'}", param_hint="TARGET")
    from kiln.nn import Module

    if isinstance(obj, type) and issubclass(obj, Module):
        obj = obj()
    if not callable(obj):
        raise click.BadParameter(f"{name!r} in {path_text} is not callable", param_hint="TARGET")
    return obj


def parse_input(text: str, seed: int) -> Any:
    """``4x16`` / ``4,16:float64`` / ``8:int64`` / ``scalar`` -> a seeded example tensor."""
    import kiln

    shape_text, _, dtype = text.partition(":")
    dtype = dtype or "float32"
    if dtype not in _DTYPES:
        raise click.BadParameter(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}",
                                 param_hint="--input")
    try:
        shape = () if shape_text in ("", "scalar") else tuple(
            int(p) for p in shape_text.replace(",", "x").split("x"))
    except ValueError:
        raise click.BadParameter(f"shape must look like 4x16, got {shape_text!r}",
                                 param_hint="--input") from None
    if any(n < 0 for n in shape):
        raise click.BadParameter(f"sizes must be >= 0, got {shape_text!r}", param_hint="--input")
    kiln.manual_seed(seed)
    if dtype.startswith("float"):
        return kiln.randn(*shape, dtype=dtype)
    if dtype == "bool":
        return kiln.randint(0, 2, shape) > 0
    return kiln.randint(0, 10, shape, dtype=dtype)


def example_inputs(texts: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(parse_input(t, seed) for seed, t in enumerate(texts))


TARGET = click.argument("target", metavar="FILE:FN")
INPUTS = click.option("-i", "--input", "inputs", multiple=True, metavar="SHAPE[:DTYPE]",
                      help="An example input per parameter, e.g. -i 4x16 -i 4:int64.")


def median_time(call: Callable[[], Any], runs: int) -> float:
    """The median wall time of ``runs`` calls, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
