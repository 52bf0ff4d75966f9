"""Op table entries for in-place updates: through views (``y[0].mul_(v)``, views of views, a
view read after its base changed), over a value that had a history (``fill_``, ``zero_``,
``copy_`` of a constant, ``y[:] = c``), and ``x[index] = value``.

Each case starts from ``y = x * 1`` (a non-leaf copy of the input, so the input is never
written and gradients reach it), updates ``y`` in place and returns what the case returns.
The Kiln and torch versions run the same code (``lib`` is ``kiln`` or ``torch``); the NumPy
reference writes through NumPy views, whose semantics in-place ops on views must match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from opinfo_base import ALL_DTYPES, ErrorCase, OpInfo, Sample, _torch, describe_args, is_float, make
from opinfo_composites import _torch_index

import kiln
from kiln.errors import ShapeError

ENTRIES: list[OpInfo] = []

# name -> (x shape, v shape, Kiln/torch code of (lib, x, v), NumPy code of (x, v))
VIEW_CASES: dict[str, tuple[tuple, tuple, Callable, Callable]] = {}


def case(name: str, x_shape: tuple, v_shape: tuple, np_fn: Callable) -> Callable:
    def register(fn: Callable) -> Callable:
        VIEW_CASES[name] = (x_shape, v_shape, fn, np_fn)
        return fn

    return register


def _np_row_mul(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[0] *= v
    return y


@case("y[0].mul_(v)", (3, 4), (4,), _np_row_mul)
def _row_mul(lib: Any, x: Any, v: Any) -> Any:
    y = x * 1
    y[0].mul_(v)
    return y


def _np_strided_add(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[1:, ::2] += v
    return y


@case("y[1:, ::2].add_(v)", (3, 5), (2, 3), _np_strided_add)
def _strided_add(lib: Any, x: Any, v: Any) -> Any:
    y = x * 1
    y[1:, ::2].add_(v)
    return y


def _np_t_sub(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = x.copy()
    y.T[1] -= v
    return y


@case("y.t()[1].sub_(v)", (3, 4), (3,), _np_t_sub)
def _t_sub(lib: Any, x: Any, v: Any) -> Any:
    y = x * 1
    y.t()[1].sub_(v)
    return y


def _np_flat_copy(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = x.copy()
    y.reshape(-1)[2:5] = v
    return y


@case("y.view(-1)[2:5].copy_(v)", (2, 4), (3,), _np_flat_copy)
def _flat_copy(lib: Any, x: Any, v: Any) -> Any:
    y = (x * 1).contiguous()  # a transposed x gives a transposed y, which .view refuses
    y.view(-1)[2:5].copy_(v)
    return y


def _np_col_unsqueeze(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[:, 1][None] *= v
    return y


@case("y[:, 1].unsqueeze(0).mul_(v)", (3, 4), (1, 3), _np_col_unsqueeze)
def _col_unsqueeze(lib: Any, x: Any, v: Any) -> Any:
    y = x * 1
    y[:, 1].unsqueeze(0).mul_(v)
    return y


def _np_twice(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = x.copy()
    row = y[1]
    row += v
    row *= v
    y[0, 1:3] = v[:2]
    return y


@case("row = y[1]; row.add_(v); row.mul_(v); y[0, 1:3] = v[:2]", (2, 3), (3,), _np_twice)
def _twice(lib: Any, x: Any, v: Any) -> Any:
    y = x * 1
    row = y[1]
    row.add_(v)
    row.mul_(v)
    y[0, 1:3] = v[:2]
    return y


def _np_stale(x: np.ndarray, v: np.ndarray) -> tuple:
    y = x.copy()
    a = y[0]
    col = y[:, 2]
    y *= 2
    col += v
    return a * 1, y


@case("a = y[0]; col = y[:, 2]; y.mul_(2); col.add_(v); (a, y)", (3, 4), (3,), _np_stale)
def _stale(lib: Any, x: Any, v: Any) -> Any:
    y = x * 1
    a = y[0]
    col = y[:, 2]
    y.mul_(2.0)
    col.add_(v)
    return a * 1, y


def _np_narrow_fill(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[:, 1:3][0] = 2.0
    return y * v


@case("y.narrow(1, 1, 2)[0].fill_(2.0); y * v", (2, 4), (4,), _np_narrow_fill)
def _narrow_fill(lib: Any, x: Any, v: Any) -> Any:
    y = x * 1
    y.narrow(1, 1, 2)[0].fill_(2.0)
    return y * v


# Edge shapes: (case, x shape, v shape), with a size-1 and a size-0 input.
VIEW_EDGES = [("y[0].mul_(v)", (1, 4), (4,)), ("y[:, 1].unsqueeze(0).mul_(v)", (0, 4), (1, 0)),
              ("y[1:, ::2].add_(v)", (1, 5), (3,))]


def _view_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    for k, (name, (x_shape, v_shape, _, _)) in enumerate(VIEW_CASES.items()):
        # Every other input transposed: writes go through the view's own strides.
        x = make(rng, x_shape, dtype, layout=("contig", "T")[k % 2])
        yield Sample((x, make(rng, v_shape, dtype, domain="nonzero")), {"case": name},
                     desc=name)
    for name, x_shape, v_shape in VIEW_EDGES:
        yield Sample((make(rng, x_shape, dtype), make(rng, v_shape, dtype)), {"case": name},
                     desc=f"{name} with x{list(x_shape)}")


ENTRIES.append(OpInfo(
    name="inplace.view", op=lambda x, v, case: VIEW_CASES[case][2](kiln, x, v),
    ref=lambda x, v, case: VIEW_CASES[case][3](x, v),
    torch_ref=lambda x, v, case: VIEW_CASES[case][2](_torch(), x, v),
    sample_fn=_view_samples, supports_grad2=True))


# name -> (Kiln/torch code of (lib, x, v), NumPy code of (x, v)); every case overwrites a
# value that has a history, so the history must give the old value a zero gradient.
OVERWRITE_CASES: dict[str, tuple[Callable, Callable]] = {
    "y.fill_(1.5); y * x": (lambda lib, x, v: (x * 2).fill_(1.5) * x,
                            lambda x, v: np.full_like(x, 1.5) * x),
    "y.zero_(); y * x + y": (lambda lib, x, v: _zero_then(x), lambda x, v: 0 * x),
    "y.copy_(constant); y * v": (lambda lib, x, v: (x * 2).copy_(v.detach()) * v,
                                 lambda x, v: np.broadcast_to(v, x.shape) * v),
    "y[:] = 5; y * x": (lambda lib, x, v: _set_all(x) * x, lambda x, v: 5 * x),
    "y.view(-1).fill_(3); y.sum() * x": (lambda lib, x, v: _flat_fill(x),
                                         lambda x, v: 3 * x.size * x),
}


def _zero_then(x: Any) -> Any:
    y = x * 2
    y.zero_()
    return y * x + y


def _set_all(x: Any) -> Any:
    y = x * 2
    y[:] = 5.0
    return y


def _flat_fill(x: Any) -> Any:
    y = (x * 2).contiguous()
    y.view(-1).fill_(3.0)
    return y.sum() * x


def _overwrite_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    shapes = [(2, 3), (3, 3), (1, 3), (0, 3)]
    for k, name in enumerate(OVERWRITE_CASES):
        for shape in shapes[:2] if k else shapes:
            x = make(rng, shape, dtype, layout="T" if shape == (3, 3) else "contig")
            yield Sample((x, make(rng, (3,), dtype)), {"case": name},
                         desc=f"{name} with x{list(shape)}", grad_args=(0,))


ENTRIES.append(OpInfo(
    name="inplace.overwrite", op=lambda x, v, case: OVERWRITE_CASES[case][0](kiln, x, v),
    ref=lambda x, v, case: OVERWRITE_CASES[case][1](x, v),
    torch_ref=lambda x, v, case: OVERWRITE_CASES[case][0](_torch(), x, v),
    sample_fn=_overwrite_samples, supports_grad2=True))


# --------------------------------------------------------------------------------------
# x[index] = value (every index form reading takes; repeated indices: the last write wins)


def _set_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    cases = [(1, (3,)), ((slice(None), slice(1, None, 2)), (1,)), ((Ellipsis, 0), ()),
             ((0, 1), ()), ("idx", (1, 3)), ((slice(2, 3), None), (1, 1, 3)),
             ((slice(0, 0),), (3,)), ("mask", (1, 3))]
    for k, (index, vshape) in enumerate(cases):
        x = make(rng, (4, 3), dtype, layout=("contig", "T")[k % 2])
        v = make(rng, vshape, dtype)
        idx = np.array([0, 3], np.int64) if index == "idx" else index
        skips = {}
        if index == "mask":
            idx = np.array([False, True, False, True])
            skips = {"trace": "a mask's true count sets the shape: eager only"}
        yield Sample((x, idx, v), desc=f"x[{index!r}] = {list(vshape)}", grad_args=(0, 2),
                     skips=skips)
    dup = {"torch_grad": "torch gives every write to an element the gradient; only the last "
                         "one (the value that stays) affects the result"}
    tensor_cases = [(np.array([1, 1, 3, 1]), (4, 3), dup), ((0, np.array([2, 0])), (2,), {}),
                    ((slice(1, None), np.array([2, -1, 0])), (3, 3), dup),
                    ((None, slice(None), np.array([1, 0])), (1, 4, 2), {}),
                    ((slice(None, None, 2), np.array([[0, 2], [1, 0]])), (2, 2, 2), dup),
                    ((-1, np.array([1, 1])), (), dup)]
    for index, vshape, skips in tensor_cases:
        yield Sample((make(rng, (4, 3), dtype), index, make(rng, vshape, dtype)),
                     desc=f"x[{describe_args((index,), {})}] = {list(vshape)}",
                     grad_args=(0, 2), skips=skips)
    yield Sample((make(rng, (4, 3), dtype), (slice(None), 1), 2.0 if is_float(dtype) else 2),
                 desc="scalar value", grad_args=(0,))
    yield Sample((make(rng, (0, 3), dtype), (Ellipsis, 1), make(rng, (0,), dtype)),
                 desc="x[..., 1] = [] on an empty tensor", grad_args=(0, 2))


def _kiln_setitem(x: Any, index: Any, value: Any) -> Any:
    out = x.clone()
    out[index] = value
    return out


def _np_setitem(x: np.ndarray, index: Any, value: Any) -> np.ndarray:
    out = x.copy()
    out[index] = value
    return out


def _torch_setitem(x: Any, index: Any, value: Any) -> Any:
    out = x.clone()
    out[_torch_index(index)] = value
    return out


ENTRIES.append(OpInfo(name="Tensor.__setitem__", op=_kiln_setitem, ref=_np_setitem,
           torch_ref=_torch_setitem, sample_fn=_set_samples, dtypes=ALL_DTYPES,
           supports_grad2=True,
           error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32), 0, np.ones(4, np.float32)),
                                       exc=ShapeError, match="setitem: value of shape",
                                       ref_raises=True)]))
