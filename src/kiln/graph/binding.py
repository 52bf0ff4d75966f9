"""Binding a call's arguments to a graph's placeholders, as Python binds parameters.

Every compiled function (GraphModule, the interpreter backend, the C runtime) takes its flat
inputs positionally or by placeholder name; this is the one place that decides which is which.
"""

from __future__ import annotations

from typing import Any

from kiln.errors import ArgumentError

_MISSING = object()


def bind_inputs(names: list[str], args: tuple, named: dict[str, Any], what: str) -> tuple:
    """The inputs of a compiled function in placeholder order: ``args`` first, then the
    keywords ``named`` by placeholder name (as a Python function binds its parameters).

    >>> bind_inputs(["x", "y"], (1,), {"y": 2}, "f")
    (1, 2)
    >>> bind_inputs(["x", "y"], (1,), {"z": 2}, "f")
    Traceback (most recent call last):
    ...
    kiln.errors.ArgumentError: f: no input named 'z'; the inputs are (x, y)
    """
    if not named:
        return args
    if len(args) > len(names):
        raise ArgumentError(f"{what}: takes {len(names)} inputs ({', '.join(names)}), got "
                            f"{len(args)} positional and {len(named)} by name")
    out = list(args) + [_MISSING] * (len(names) - len(args))
    for key, value in named.items():
        if key not in names:
            raise ArgumentError(f"{what}: no input named {key!r}; the inputs are "
                                f"({', '.join(names)})")
        i = names.index(key)
        if out[i] is not _MISSING:
            raise ArgumentError(f"{what}: input {key!r} given twice, by position ({i}) and "
                                "by name")
        out[i] = value
    missing = [n for n, v in zip(names, out, strict=True) if v is _MISSING]
    if missing:
        raise ArgumentError(f"{what}: missing input(s) {', '.join(missing)}; the inputs are "
                            f"({', '.join(names)})")
    return tuple(out)
