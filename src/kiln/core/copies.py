"""torch's ``*_copy`` ops (``kiln.expand_copy``, ``kiln.transpose_copy`` ...): the view op of
the same name, then a copy, so the result never shares memory with its input.

Kiln's movement ops already return copies or views that autograd and tracing treat alike;
these exist under torch's names for code that calls them (functionalized programs, export
tools). Each is a composite: the view op's primitives and a clone.

>>> import kiln
>>> x = kiln.ones(2, 3)
>>> y = kiln.transpose_copy(x, 0, 1)
>>> _ = x.add_(1.0)
>>> y.shape, y.sum().item()
((3, 2), 6.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError

# copy name -> (view op, as a method of the input or a function of kiln, its name)
_VIEWS = {
    "expand_copy": ("method", "expand"),
    "unsqueeze_copy": ("method", "unsqueeze"),
    "squeeze_copy": ("method", "squeeze"),
    "transpose_copy": ("method", "transpose"),
    "permute_copy": ("method", "permute"),
    "t_copy": ("method", "t"),
    "view_copy": ("method", "view"),
    "narrow_copy": ("method", "narrow"),
    "select_copy": ("method", "select"),
    "unfold_copy": ("method", "unfold"),
    "detach_copy": ("method", "detach"),
    "alias_copy": ("identity", ""),
    "unbind_copy": ("method", "unbind"),
    "split_copy": ("method", "split"),
    "split_with_sizes_copy": ("method", "split_with_sizes"),
    "slice_copy": ("slice", ""),
}


def _copy(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_copy(v) for v in value)
    return value


def _slice(input: Tensor, dim: int = 0, start: Any = None, end: Any = None,
           step: int = 1) -> Tensor:
    index = [slice(None)] * input.ndim
    index[dim] = slice(start, end, step)
    return input[tuple(index)]


def _make(name: str, how: str, view: str) -> Callable[..., Any]:
    def fn(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(input, Tensor):
            raise ArgumentError(f"{name}: input must be a kiln.Tensor, got "
                                f"{type(input).__name__}")
        if how == "identity":
            return input.clone()
        if how == "slice":
            return _slice(input, *args, **kwargs).clone()
        method = getattr(input, view, None)
        if method is None:
            raise ArgumentError(f"{name}: kiln has no {view}() to copy")
        return _copy(method(*args, **kwargs))

    fn.__name__ = fn.__qualname__ = name
    target = "x[..., start:end:step] along dim" if how == "slice" else \
        "a copy of x" if how == "identity" else f"x.{view}(...)"
    fn.__doc__ = (f"torch.{name}: {target}, copied (never a view of ``input``).\n\n"
                  f">>> import kiln\n>>> kiln.{name}(kiln.ones(2, 2){_EXAMPLE_ARGS[name]})"
                  f".shape\n{_EXAMPLE_SHAPES[name]}")
    return fn


_EXAMPLE_ARGS = {"expand_copy": ", (3, 2, 2)", "unsqueeze_copy": ", 0", "squeeze_copy": "",
                 "transpose_copy": ", 0, 1", "permute_copy": ", (1, 0)", "t_copy": "",
                 "view_copy": ", (4,)", "narrow_copy": ", 0, 0, 1", "select_copy": ", 0, 1",
                 "unfold_copy": ", 1, 1, 1", "detach_copy": "",
                 "alias_copy": "", "unbind_copy": "", "split_copy": ", 1",
                 "split_with_sizes_copy": ", [1, 1]", "slice_copy": ", 0, 0, 1"}
_EXAMPLE_SHAPES = {"expand_copy": "(3, 2, 2)", "unsqueeze_copy": "(1, 2, 2)",
                   "squeeze_copy": "(2, 2)", "transpose_copy": "(2, 2)",
                   "permute_copy": "(2, 2)", "t_copy": "(2, 2)", "view_copy": "(4,)",
                   "narrow_copy": "(1, 2)", "select_copy": "(2,)", "unfold_copy": "(2, 2, 1)",
                   "detach_copy": "(2, 2)", "alias_copy": "(2, 2)",
                   "unbind_copy": None, "split_copy": None, "split_with_sizes_copy": None,
                   "slice_copy": "(1, 2)"}


def _tuple_doc(fn: Callable[..., Any]) -> None:
    """The ops that return several tensors show their count instead of a shape."""
    call = {"unbind_copy": "", "split_copy": ", 1", "split_with_sizes_copy": ", [1, 1]"}
    name = fn.__name__
    fn.__doc__ = (f"torch.{name}: x.{_VIEWS[name][1]}(...), each part copied.\n\n"
                  f">>> import kiln\n>>> len(kiln.{name}(kiln.ones(2, 2){call[name]}))\n2")


FUNCTIONS: dict[str, Callable[..., Any]] = {}
for _name, (_how, _view) in _VIEWS.items():
    FUNCTIONS[_name] = _make(_name, _how, _view)
    if _EXAMPLE_SHAPES[_name] is None:
        _tuple_doc(FUNCTIONS[_name])
