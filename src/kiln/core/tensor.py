"""``kiln.Tensor``: a NumPy array with autograd, or a tracer that carries only meta.

An eager tensor holds ``_data`` (a NumPy array). A tracer tensor, made while tracing, holds
``_node`` (the graph node that produces it) and ``_tmeta`` (shape and dtype) and no data, so
tracing a large model costs no compute. Every method goes through one dispatch function, so
eager execution, autograd and tracing can never disagree about what an op does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln.core import dtypes as _dt
from kiln.core.autograd.function import AccumulateGrad
from kiln.core.autograd.grad_mode import is_grad_enabled
from kiln.errors import ArgumentError, AutogradError, ShapeError, TraceError

if TYPE_CHECKING:
    from kiln.core.prims.registry import TensorMeta
    from kiln.graph.node import Node


class Tensor:
    """A multi-dimensional array with PyTorch-style semantics.

    >>> import kiln
    >>> x = kiln.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.tolist()
    [[2.0, 4.0], [6.0, 8.0]]
    """

    __slots__ = ("_data", "_node", "_tmeta", "requires_grad", "grad", "_grad_fn", "_version",
                 "_accumulator", "_retains_grad", "_is_param", "_view", "__weakref__",
                 "__dict__")

    # Let NumPy defer to our reflected operators (np_array * tensor -> Tensor.__rmul__).
    __array_priority__ = 1000

    def __init__(self, data: Any = None, *, dtype: Any = None, requires_grad: bool = False):
        from kiln.core.creation import _to_array

        self._data: np.ndarray | None = _to_array(data, dtype) if data is not None else None
        if self._data is None:
            self._data = np.zeros((0,), dtype=np.float32)
        self._node: Node | None = None
        self._tmeta: TensorMeta | None = None
        self.grad: Tensor | None = None
        self._grad_fn: Any = None
        self._version = 0
        self._accumulator: AccumulateGrad | None = None
        self._retains_grad = False
        self._is_param = False
        self._view: Any = None  # (root, steps, ...) when this tensor is a view: kiln.core.views
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # construction shortcuts used by dispatch (no validation: hot path) -------------------
    @classmethod
    def _wrap(cls, data: np.ndarray) -> Tensor:
        t = cls.__new__(cls)
        t._data = data
        t._node = None
        t._tmeta = None
        t.grad = None
        t._grad_fn = None
        t._version = 0
        t._accumulator = None
        t._retains_grad = False
        t._is_param = False
        t._view = None
        t.requires_grad = False
        return t

    @classmethod
    def _tracer(cls, node: Node, meta: TensorMeta) -> Tensor:
        t = cls._wrap(None)  # type: ignore[arg-type]
        t._node = node
        t._tmeta = meta
        return t

    # basic attributes ----------------------------------------------------------------
    @property
    def is_tracer(self) -> bool:
        """True while this tensor stands for a value in a graph being traced."""
        return self._node is not None

    @property
    def shape(self) -> tuple:
        """The shape as a tuple (dims may be symbolic while tracing with ``dynamic=``)."""
        if self._node is not None:
            return self._tmeta.shape  # type: ignore[union-attr]
        return self._data.shape  # type: ignore[union-attr]

    @property
    def dtype(self) -> _dt.DType:
        if self._node is not None:
            return self._tmeta.dtype  # type: ignore[union-attr]
        return _dt.from_numpy_dtype(self._data.dtype)  # type: ignore[union-attr]

    @property
    def meta(self) -> TensorMeta:
        if self._node is not None:
            return self._tmeta  # type: ignore[return-value]
        data = self._data
        return (_TensorMeta or _meta_type())(  # type: ignore[union-attr]
            data.shape, _dt.from_numpy_dtype(data.dtype))  # type: ignore[union-attr]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def size(self, dim: int | None = None) -> Any:
        """The shape, or one dim of it (``x.size(0)``)."""
        if dim is None:
            return self.shape
        return self.shape[_norm_dim(dim, self.ndim, "size")]

    def numel(self) -> Any:
        from kiln.symbolic.sizes import prod

        return prod(self.shape)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise ArgumentError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def is_leaf(self) -> bool:
        if self._view is not None:
            _sync_view(self)
        return self._grad_fn is None

    @property
    def grad_fn(self) -> Any:
        if self._view is not None:
            _sync_view(self)
        return self._grad_fn

    @property
    def device(self) -> str:
        return "cpu"

    def _get_accumulator(self) -> AccumulateGrad:
        if self._accumulator is None:
            self._accumulator = AccumulateGrad(self)
        return self._accumulator

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if not self.is_leaf and not requires_grad:
            raise AutogradError("requires_grad_(False) on a non-leaf tensor; use detach()")
        if requires_grad and not (self.dtype.is_floating):
            raise AutogradError(f"only floating tensors can require grad, got {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self.is_leaf:
            return
        self._retains_grad = True

    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        from kiln.core.autograd.api import backward

        if self._view is not None:
            _sync_view(self)
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    # data access ------------------------------------------------------------------------
    def _concrete(self, what: str) -> np.ndarray:
        if self._node is not None:
            from kiln.core.trace_state import data_dependent_error

            raise data_dependent_error(self, what)
        return self._data  # type: ignore[return-value]

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shares memory; refuses a tensor that requires grad)."""
        if self.requires_grad:
            raise AutogradError("numpy() on a tensor that requires grad; use "
                                "tensor.detach().numpy()")
        return self._concrete("numpy()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self._concrete("np.asarray()")
        return data.astype(dtype) if dtype is not None else data

    def item(self) -> Any:
        data = self._concrete("item()")
        if data.size != 1:
            raise ShapeError(f"item(): expected a tensor with one element, got shape "
                             f"{data.shape}")
        return data.reshape(()).item()

    def tolist(self) -> Any:
        return self._concrete("tolist()").tolist()

    def __bool__(self) -> bool:
        data = self._concrete("bool() (e.g. `if tensor:`)")
        if data.size != 1:
            raise ShapeError(f"the truth value of a tensor with {data.size} elements is "
                             "ambiguous; use .any() or .all()")
        return bool(data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if not self.dtype.is_integer:
            raise ArgumentError(f"only integer tensors can be used as an index, got "
                                f"{self.dtype}")
        return int(self.item())

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise ArgumentError("iteration over a 0-d tensor")
        for i in range(len(self)):
            yield self[i]

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        if self._node is not None:
            return f"Tracer({self._tmeta}, node={self._node.name})"
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extras = []
        if self.dtype not in (_dt.float32, _dt.int64, _dt.bool_):
            extras.append(f"dtype={self.dtype!r}")
        if self._grad_fn is not None:
            extras.append(f"grad_fn=<{self._grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        tail = "".join(", " + e for e in extras)
        return f"tensor({body}{tail})"

    # copies and views -----------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same data, cut from the autograd tape."""
        if self._view is not None:
            _sync_view(self)
        if self._node is not None:
            return Tensor._tracer(self._node, self._tmeta)  # type: ignore[arg-type]
        return Tensor._wrap(self._data)  # type: ignore[arg-type]

    def detach_(self) -> Tensor:
        self._grad_fn = None
        self.requires_grad = False
        return self

    @property
    def data(self) -> Tensor:
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor) or value._node is not None:
            raise ArgumentError("tensor.data = value: expected an eager kiln.Tensor")
        self._data = value._data
        self._view = None  # its own memory now
        self._version += 1

    def clone(self) -> Tensor:
        return _ops().cast(self, dtype=self.dtype)

    def contiguous(self) -> Tensor:
        """Self when its memory is C-contiguous, else a contiguous copy (not a view)."""
        if self._node is not None:
            from kiln.core.trace_state import current
            from kiln.core.views import maybe_strided

            ctx = current()
            if ctx is None or not maybe_strided(ctx, self):
                return self
            out = self.clone()
            ctx.strided.discard(out._node)  # type: ignore[arg-type]
            return out
        if self._data.flags.c_contiguous:  # type: ignore[union-attr]
            return self
        out = self.clone()
        out._data = np.ascontiguousarray(out._data)
        return out

    def is_contiguous(self) -> bool:
        return self._node is not None or bool(self._data.flags.c_contiguous)  # type: ignore

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """Cast to ``dtype``, or to the dtype of a tensor given instead (``x.to(other)``), as
        torch's ``.to``; a device must be the CPU (``"cpu"``, ``kiln.device("cpu")``): any
        other raises a ``DeviceError``, as Kiln runs on the CPU only.

        >>> import kiln
        >>> kiln.tensor([1, 2]).to(kiln.ones(1)).tolist()
        [1.0, 2.0]
        >>> kiln.tensor([1, 2]).to("cpu", kiln.float64).dtype
        kiln.float64
        """
        from kiln.core.devices import parse_to

        dtype, like = parse_to("Tensor.to", args, kwargs)
        if like is not None:
            dtype = like.dtype
        dt = self.dtype if dtype is None else _dt.get_dtype(dtype)
        if dt == self.dtype:
            return self.clone() if kwargs.get("copy") else self
        return _ops().cast(self, dtype=dt)

    def type(self, dtype: Any) -> Tensor:
        return self.to(dtype)

    def float(self) -> Tensor:
        return self.to(_dt.float32)

    def double(self) -> Tensor:
        return self.to(_dt.float64)

    def long(self) -> Tensor:
        return self.to(_dt.int64)

    def int(self) -> Tensor:
        return self.to(_dt.int32)

    def bool(self) -> Tensor:
        return self.to(_dt.bool_)

    def cpu(self, memory_format: Any = None) -> Tensor:
        return self

    def cuda(self, device: Any = None, non_blocking: bool = False) -> Tensor:
        from kiln.core.devices import check_device

        check_device("Tensor.cuda", "cuda" if device is None else device)
        return self

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a misspelled method gets a suggestion.
        from kiln.errors import AttributeError_, missing_attribute

        if name.startswith("_"):  # protocol and private probes: no suggestion, no cost
            raise AttributeError_(f"'Tensor' object has no attribute {name!r}")
        raise missing_attribute("'Tensor' object", name, dir(type(self)))

    # in-place ops --------------------------------------------------------------------
    def _inplace(self, fn: Any, opname: str) -> Tensor:
        return (_inplace_module or _load_inplace()).run_inplace(self, fn, opname)

    def add_(self, other: Any, alpha: Any = 1) -> Tensor:
        return self._inplace(lambda s: s + (other if alpha == 1 else other * alpha), "add_")

    def sub_(self, other: Any, alpha: Any = 1) -> Tensor:
        return self._inplace(lambda s: s - (other if alpha == 1 else other * alpha), "sub_")

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(lambda s: s * other, "mul_")

    def div_(self, other: Any) -> Tensor:
        return self._inplace(lambda s: s / other, "div_")

    def addcmul_(self, t1: Any, t2: Any, value: Any = 1) -> Tensor:
        return self._inplace(lambda s: s + t1 * t2 * value, "addcmul_")

    def addcdiv_(self, t1: Any, t2: Any, value: Any = 1) -> Tensor:
        return self._inplace(lambda s: s + t1 / t2 * value, "addcdiv_")

    def lerp_(self, end: Any, weight: Any) -> Tensor:
        return self._inplace(lambda s: s + (end - s) * weight, "lerp_")

    def zero_(self) -> Tensor:
        return self._inplace(lambda s: _creation().zeros_like(s), "zero_")

    def fill_(self, value: Any) -> Tensor:
        return self._inplace(lambda s: _creation().full_like(s, value), "fill_")

    def copy_(self, src: Any) -> Tensor:
        src = src if isinstance(src, Tensor) else Tensor(src)
        return self._inplace(lambda s: src.to(s.dtype), "copy_")

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._inplace(lambda s: s.clamp(min, max), "clamp_")

    def relu_(self) -> Tensor:
        return self._inplace(lambda s: s.relu(), "relu_")

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    # indexing --------------------------------------------------------------------------
    def __getitem__(self, index: Any) -> Tensor:
        from kiln.core.indexing import getitem

        return getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        from kiln.core.indexing import setitem

        self._inplace(lambda s: setitem(s, index, value), "__setitem__")


_TensorMeta: Any = None
_inplace_module: Any = None


def _load_inplace() -> Any:
    # kiln.core.inplace imports this module: bind it once, on first use.
    global _inplace_module
    from kiln.core import inplace as tensor_inplace

    _inplace_module = tensor_inplace
    return tensor_inplace


def _sync_view(t: Tensor) -> None:
    info = t._view  # (root, steps, gen, ...): replay when the root changed since (kiln.core.views)
    if info[2] != info[0]._version:
        from kiln.core.views import sync

        sync(t)


def _meta_type() -> type:
    # kiln.core.prims imports this module: look TensorMeta up once, on first use.
    global _TensorMeta
    from kiln.core.prims.registry import TensorMeta

    _TensorMeta = TensorMeta
    return TensorMeta


def _norm_dim(dim: int, ndim: int, op: str) -> int:
    if not isinstance(dim, int):
        raise ArgumentError(f"{op}: dim must be an int, got {type(dim).__name__}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ShapeError(f"{op}: dim {dim} out of range for a tensor of rank {ndim}")
    return dim % max(ndim, 1)


def _ops() -> Any:
    from kiln.core import prims as ops

    return ops


def _creation() -> Any:
    from kiln.core import creation

    return creation


def _install_methods() -> None:
    """Attach operator and method wrappers; imported modules give the implementations."""
    from kiln.core import (
        dataops,
        diagops,
        elementwise,
        linalg_decomp,
        mathops,
        numerics,
        scatterops,
        selectops,
        shapeops,
        sortops,
        special,
        windows,
    )
    from kiln.core.methods import install

    install(Tensor)
    mathops.install(Tensor)
    windows.install(Tensor)
    elementwise.install(Tensor)
    shapeops.install(Tensor)
    linalg_decomp.install(Tensor)
    numerics.install(Tensor)
    for module in (sortops, selectops, diagops, scatterops, dataops, special):
        module.install(Tensor)


_ = (TraceError, is_grad_enabled)
