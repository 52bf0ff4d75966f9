"""``dynamic_shapes=``: torch.export's forms, resolved to dynamic dims per flat argument leaf.

Accepted forms (as ``torch.export.export`` takes them):

- a dict from argument names to specs, or a tuple/list of specs aligned with the positional
  arguments followed by the keyword arguments;
- for a tensor: ``None`` (all static), ``{dim_index: Dim}`` or a tuple/list with a ``Dim``
  (or ``None``) per dim; a ``str`` is taken as ``Dim(name)``;
- for a pytree of tensors: the same structure (dict with the same keys, tuple/list of the
  same length) holding one spec per tensor, or ``None`` for all of it.

One name is one size: the same ``Dim`` (or two Dims with one name) on two inputs means the
two sizes are equal, and a call with different sizes there is refused.

>>> import kiln
>>> from kiln.export.dims import resolve_dynamic_shapes
>>> batch = kiln.Dim("batch", min=1, max=64)
>>> resolve_dynamic_shapes(lambda x, y: x, (kiln.ones(2, 3), {"a": kiln.ones(2)}), {},
...                        {"x": {0: batch}, "y": {"a": (batch,)}})
{0: {0: Dim('batch', min=1, max=64)}, 1: {0: Dim('batch', min=1, max=64)}}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from kiln.base.pytree import tree_flatten
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError
from kiln.symbolic.sizes import Dim


def _top_level(fn: Callable, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    """(name, value) per top-level argument, in the order ``tree_flatten((args, kwargs))``
    visits them: positional arguments, then keyword arguments by sorted name."""
    names: list[str] = []
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    for i in range(len(args)):
        if i < len(params) and params[i].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                  inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(params[i].name)
        else:
            names.append(f"arg{i}")
    return list(zip(names, args, strict=True)) + [(k, kwargs[k]) for k in sorted(kwargs)]


def _tensor_dims(t: Tensor, spec: Any, where: str) -> dict[int, Dim]:
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, (tuple, list)):
        if len(spec) != t.ndim:
            raise ArgumentError(f"dynamic_shapes{where}: expected one entry per dim of a "
                                f"tensor of rank {t.ndim} (shape {tuple(t.shape)}), got "
                                f"{len(spec)}")
        items = list(enumerate(spec))
    else:
        raise ArgumentError(f"dynamic_shapes{where}: expected None, {{dim: Dim}} or a tuple "
                            f"of Dim/None for a tensor, got {type(spec).__name__}")
    out: dict[int, Dim] = {}
    for d, dim in items:
        if dim is None:
            continue
        if isinstance(d, bool) or not isinstance(d, int) or not -t.ndim <= d < t.ndim:
            raise ArgumentError(f"dynamic_shapes{where}: dim {d!r} out of range for a tensor "
                                f"of rank {t.ndim}")
        dim = Dim(dim) if isinstance(dim, str) else dim
        if not isinstance(dim, Dim):
            raise ArgumentError(f"dynamic_shapes{where}[{d}]: expected a kiln.Dim, a name or "
                                f"None, got {dim!r}")
        size = t.shape[d]
        if not dim.min <= size <= dim.max:
            raise ArgumentError(f"dynamic_shapes{where}[{d}]: the example size {size} is "
                                f"outside the range of {dim!r}")
        out[d % t.ndim] = dim
    return out


def _walk(value: Any, spec: Any, where: str, out: list[dict[int, Dim]]) -> None:
    if isinstance(value, Tensor):
        out.append(_tensor_dims(value, spec, where))
        return
    leaves = tree_flatten(value)[0]
    if spec is None:
        out.extend({} for _ in leaves)
        return
    if len(leaves) == 1 and leaves[0] is value:  # a non-tensor leaf (int, str...)
        raise ArgumentError(f"dynamic_shapes{where}: the argument is a "
                            f"{type(value).__name__}, not a tensor; its spec must be None")
    children, node = tree_flatten(value, is_leaf=lambda x: x is not value)
    if node.kind in ("dict", "odict"):
        keys = list(node.context[0])
        if not isinstance(spec, Mapping) or set(spec) != set(keys):
            got = sorted(map(str, spec)) if isinstance(spec, Mapping) else type(spec).__name__
            raise ArgumentError(f"dynamic_shapes{where}: expected a dict with keys "
                                f"{sorted(map(str, keys))} like the argument, got {got}")
        for k, child in zip(keys, children, strict=True):
            _walk(child, spec[k], f"{where}[{k!r}]", out)
        return
    if node.kind in ("tuple", "list", "namedtuple"):
        if not isinstance(spec, (tuple, list)) or len(spec) != len(children):
            got = f"length {len(spec)}" if isinstance(spec, (tuple, list)) else \
                type(spec).__name__
            raise ArgumentError(f"dynamic_shapes{where}: expected a tuple/list of "
                                f"{len(children)} specs like the argument, got {got}")
        for i, (child, sub) in enumerate(zip(children, spec, strict=True)):
            _walk(child, sub, f"{where}[{i}]", out)
        return
    raise ArgumentError(f"dynamic_shapes{where}: a {type(value).__name__} argument takes None "
                        "as its spec")


def resolve_dynamic_shapes(fn: Callable, args: tuple, kwargs: dict, dynamic_shapes: Any
                           ) -> dict[int, dict[int, Dim]]:
    """``{flat leaf index: {dim: Dim}}`` for ``dynamic_shapes`` (see the module docstring)."""
    top = _top_level(fn, args, kwargs)
    if dynamic_shapes is None:
        return {}
    if isinstance(dynamic_shapes, Mapping):
        names = [n for n, _ in top]
        for key in dynamic_shapes:
            if key not in names:
                raise ArgumentError(f"dynamic_shapes: no argument named {key!r}; the "
                                    f"arguments are {names}")
        specs = [dynamic_shapes.get(n) for n in names]
    elif isinstance(dynamic_shapes, (tuple, list)):
        if len(dynamic_shapes) != len(top):
            raise ArgumentError(f"dynamic_shapes: expected {len(top)} specs (one per argument: "
                                f"{[n for n, _ in top]}), got {len(dynamic_shapes)}")
        specs = list(dynamic_shapes)
    else:
        raise ArgumentError("dynamic_shapes: expected a dict from argument names to specs or "
                            f"a tuple of specs, got {type(dynamic_shapes).__name__}")
    per_leaf: list[dict[int, Dim]] = []
    for (name, value), spec in zip(top, specs, strict=True):
        _walk(value, spec, f"[{name!r}]", per_leaf)
    ranges: dict[str, Dim] = {}
    out: dict[int, dict[int, Dim]] = {}
    for i, dims in enumerate(per_leaf):
        for dim in dims.values():
            prev = ranges.setdefault(dim.name, dim)
            if (prev.min, prev.max) != (dim.min, dim.max):
                raise ArgumentError(f"dynamic_shapes: two Dims named {dim.name!r} with "
                                    f"different ranges ({prev!r} and {dim!r})")
        if dims:
            out[i] = dims
    return out
