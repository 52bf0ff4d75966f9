"""Where a compiled program's tensors come from, so that loading binds them instead of
baking weights in.

A traced program reads tensors that are not arguments: a module's parameters and buffers
(``kiln.compile(model)``), and tensors a function closes over (the W3 train step's lambda
closes over the model). A *path* names one such tensor by where the function finds it:

- ``["state", "fc1.weight"]``: the compiled module's own state;
- ``["closure", "model", "fc1.weight"]``: a parameter or buffer of the module the function
  holds in its closure cell (or global) ``model``;
- ``["closure", "w", ""]``: the tensor in cell/global ``w`` itself.

Paths are JSON; resolving one reads attributes by name from live objects the caller passes
(never from the artifact), so a loaded artifact cannot make Kiln import or call anything.

>>> import kiln
>>> from kiln import nn
>>> net = nn.Linear(2, 3)
>>> f = lambda x: net(x).sum()
>>> find_path(f, None, net.weight)
['closure', 'net', 'weight']
>>> resolve(["closure", "net", "weight"], fn=f) is net.weight
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kiln.core.calls import is_module
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError


def named_sources(fn: Any) -> Iterator[tuple[str, Any]]:
    """(name, value) of every closure cell and every global the code of ``fn`` names."""
    if is_module(fn):
        return
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    cells = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells, strict=True):
        try:
            yield name, cell.cell_contents
        except ValueError:  # an empty cell (a variable assigned later)
            continue
    glob = getattr(fn, "__globals__", {})
    for name in _names(code):
        if name in glob:
            yield name, glob[name]


def _names(code: Any) -> list[str]:
    """Global names the code (and the code of functions nested in it) reads."""
    out = list(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            out.extend(n for n in _names(const) if n not in out)
    return out


def _state(module: Any) -> Iterator[tuple[str, Tensor]]:
    yield from module.named_parameters()
    if hasattr(module, "named_buffers"):
        yield from module.named_buffers()


def find_path(fn: Any, module: Any, t: Tensor) -> list[str] | None:
    """The path of tensor ``t`` (by identity) from ``fn``/``module``, or None."""
    if module is not None:
        for name, value in _state(module):
            if value is t:
                return ["state", name]
    for var, value in named_sources(fn):
        if value is t:
            return ["closure", var, ""]
        if is_module(value):
            for name, p in _state(value):
                if p is t:
                    return ["closure", var, name]
    return None


def resolve(path: Any, *, fn: Any = None, module: Any = None) -> Tensor | None:
    """The live tensor at ``path``; None when ``fn``/``module`` do not hold it.

    With only ``module`` given (``load_compiled_function(file, module=model)``), a closure
    path into a module resolves in ``module``: the caller hands over the module the original
    function closed over."""
    if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
        return None
    if path[0] == "state" and len(path) == 2:
        return _in_module(module, path[1]) if module is not None else None
    if path[0] != "closure" or len(path) != 3:
        return None
    var, name = path[1], path[2]
    if fn is not None:
        for v, value in named_sources(fn):
            if v != var:
                continue
            if not name:
                return value if isinstance(value, Tensor) else None
            return _in_module(value, name) if is_module(value) else None
        return None
    if module is not None and name:
        return _in_module(module, name)
    return None


def _in_module(module: Any, name: str) -> Tensor | None:
    for n, value in _state(module):
        if n == name:
            return value
    return None


def resolve_all(paths: list[Any], what: str, *, fn: Any = None, module: Any = None,
                strict: bool = True) -> list[Tensor | None]:
    """Resolve every path; with ``strict``, one that does not resolve is an ArgumentError
    naming it and saying what to pass."""
    out = [resolve(p, fn=fn, module=module) for p in paths]
    if strict:
        for p, t in zip(paths, out, strict=True):
            if t is None:
                hint = ("pass module= (the module it was compiled with)" if p and p[0] in
                        ("state", "closure") else "the path is malformed")
                raise ArgumentError(f"{what}: the tensor at {'/'.join(map(str, p))} is not "
                                    f"found in what was given; {hint}")
    return out


def constants_of(fn: Callable) -> dict[str, Tensor]:
    """The live constants dict of a compiled function (both built-in backends keep one)."""
    consts = getattr(fn, "constants", None)
    if isinstance(consts, dict):
        return consts
    gm = getattr(fn, "gm", None)
    return gm.constants if gm is not None else {}
