"""Tape nodes: what an op records so that its vjp rule can run later.

Every differentiable op call on a tensor that requires grad creates one :class:`BackwardNode`
holding the op, its arguments, attributes and output. The node's vjp is the op's registry
rule, so eager backward, double backward and AOT autograd (on tracer tensors) share it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiln.core.autograd.grad_mode import _set_enabled, is_grad_enabled
from kiln.errors import AutogradError

if TYPE_CHECKING:
    from kiln.core.prims.registry import OpDef
    from kiln.core.tensor import Tensor


_TENSOR: Any = None


def _tensor_type() -> type:
    # kiln.tensor imports this module, so the class is looked up once, on first use.
    global _TENSOR
    if _TENSOR is None:
        from kiln.core.tensor import Tensor

        _TENSOR = Tensor
    return _TENSOR


def version_of(t: Tensor) -> int:
    """The version counter a tensor shares with every view of its memory (its root's)."""
    return t._version if t._view is None else t._view[0]._version


class AccumulateGrad:
    """The sink for a leaf tensor: where its gradient ends up."""

    __slots__ = ("leaf", "__weakref__")

    def __init__(self, leaf: Tensor) -> None:
        self.leaf = leaf

    @property
    def name(self) -> str:
        return "AccumulateGrad"

    next: tuple = ()


class BackwardNode:
    """One recorded op. ``next[i]`` is where the gradient of argument ``i`` flows."""

    __slots__ = ("op", "_args", "attrs", "_out", "next", "_versions", "freed", "__weakref__")

    def __init__(self, op: OpDef, args: tuple, attrs: dict, out: Tensor) -> None:
        Tensor = _TENSOR or _tensor_type()
        self.op = op
        self._args = args
        self.attrs = attrs
        self._out = out
        nxt: list[Any] = []
        versions: list[int | None] = []
        for a in args:
            if isinstance(a, Tensor):
                # version_of(a), inlined here and below: this runs for every recorded op.
                versions.append(a._version if a._view is None else a._view[0]._version)
                if a.requires_grad:
                    nxt.append(a._grad_fn if a._grad_fn is not None else a._get_accumulator())
                    continue
            else:
                versions.append(None)
            nxt.append(None)
        self.next = tuple(nxt)
        self._versions = (tuple(versions),
                          out._version if out._view is None else out._view[0]._version)
        self.freed = False

    @property
    def name(self) -> str:
        return f"{self.op.name}_backward"

    def _check_freed(self) -> None:
        if self.freed:
            raise AutogradError(
                f"backward through op {self.op.name} a second time: its saved values were "
                "freed by the first backward. Pass retain_graph=True to the first call."
            )

    def _check(self) -> None:
        # Only the values a vjp actually reads are checked, so `y = x * 3; y.mul_(2)` keeps
        # working (mul's backward never reads its output) while `y = x.exp(); y.mul_(2)`
        # does not (exp's backward reads y).
        self._check_freed()
        arg_versions, _ = self._versions
        for i, (a, v) in enumerate(zip(self._args, arg_versions)):
            if v is not None and version_of(a) != v:
                raise AutogradError(
                    f"argument {i} of op {self.op.name} was modified in place after it was "
                    f"used (version {version_of(a)}, expected {v}); its gradient would be "
                    "wrong. Use the out-of-place op (e.g. add instead of add_)."
                )

    def _check_out(self) -> None:
        self._check_freed()
        if version_of(self._out) != self._versions[1]:
            raise AutogradError(
                f"the output of op {self.op.name} was modified in place after it was used "
                "by its backward; use the out-of-place op instead."
            )

    @property
    def args(self) -> tuple:
        """The op's arguments as it was called (tensors and Python scalars)."""
        self._check()
        return self._args

    @property
    def out(self) -> Tensor:
        """The op's output."""
        self._check_out()
        return self._out

    def needs_grad(self, i: int) -> bool:
        """Whether argument ``i`` wants a gradient (vjp rules skip work when it does not)."""
        return self.next[i] is not None

    def free(self) -> None:
        self._args = ()
        self._out = None  # type: ignore[assignment]
        self.freed = True

    def __repr__(self) -> str:
        return f"<{self.name}>"


def record(op: OpDef, args: tuple, attrs: dict, out: Tensor) -> None:
    """Attach a backward node to ``out``; called by dispatch when grad is needed."""
    out.requires_grad = True
    out._grad_fn = BackwardNode(op, args, attrs, out)


# --------------------------------------------------------------------------------------
# Custom autograd functions (several outputs, a hand-written backward)


class FunctionCtx:
    """What ``Function.forward`` and ``Function.backward`` share (torch's ``ctx``).

    Keep tensors for backward with :meth:`save_for_backward` (their version counters are
    checked, so an in-place change after forward is an error rather than a wrong gradient);
    any other Python value can be stored as an attribute (``ctx.scale = 2.0``).

    >>> import kiln
    >>> class Scale(kiln.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x, k):
    ...         ctx.k = k
    ...         return x * k
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         return g * ctx.k, None
    >>> x = kiln.ones(2, requires_grad=True)
    >>> Scale.apply(x, 3.0).sum().backward()
    >>> x.grad.tolist()
    [3.0, 3.0]
    """

    def __init__(self, fn_name: str) -> None:
        self._fn_name = fn_name
        self._saved: tuple = ()
        self._saved_versions: tuple = ()
        self._non_differentiable: set[int] = set()
        self._freed = False
        self.materialize_grads = True
        self.needs_input_grad: tuple[bool, ...] = ()

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        from kiln.core.tensor import Tensor

        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise AutogradError(f"{self._fn_name}.save_for_backward: argument {i} must be a "
                                    f"kiln.Tensor or None, got {type(t).__name__}")
        self._saved = tuple(tensors)
        self._saved_versions = tuple(None if t is None else version_of(t) for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        """The tensors given to :meth:`save_for_backward`, checked for in-place changes."""
        if self._freed:
            raise AutogradError(
                f"backward through {self._fn_name} a second time: its saved tensors were "
                "freed by the first backward. Pass retain_graph=True to the first call."
            )
        for i, (t, v) in enumerate(zip(self._saved, self._saved_versions)):
            if t is not None and version_of(t) != v:
                raise AutogradError(
                    f"saved tensor {i} of {self._fn_name} was modified in place after "
                    f"save_for_backward (version {version_of(t)}, expected {v}); its gradient "
                    "would be wrong"
                )
        return self._saved

    def mark_non_differentiable(self, *outputs: Tensor) -> None:
        """These outputs never get a gradient (their ``requires_grad`` stays False)."""
        self._non_differentiable.update(id(o) for o in outputs)

    def set_materialize_grads(self, value: bool) -> None:
        """True (default): outputs that got no gradient reach backward as zeros; False: None."""
        self.materialize_grads = bool(value)


class FunctionNode:
    """The tape node of one ``Function.apply`` call; ``next[i]`` serves argument ``i``."""

    __slots__ = ("fn", "ctx", "next", "input_metas", "out_metas", "freed", "__weakref__")

    def __init__(self, fn: type, ctx: FunctionCtx, args: tuple, out_metas: list) -> None:
        Tensor = _TENSOR or _tensor_type()
        self.fn = fn
        self.ctx = ctx
        nxt: list[Any] = []
        metas: list[Any] = []
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad:
                nxt.append(a._grad_fn if a._grad_fn is not None else a._get_accumulator())
                metas.append(a.meta)
            else:
                nxt.append(None)
                metas.append(None)
        self.next = tuple(nxt)
        self.input_metas = tuple(metas)
        self.out_metas = tuple(out_metas)
        self.freed = False

    @property
    def name(self) -> str:
        return f"{self.fn.__name__}Backward"

    def apply(self, grads: list) -> tuple:
        """Run the user's backward on one gradient per output (None where none came)."""
        if self.freed:
            raise AutogradError(
                f"backward through {self.fn.__name__} a second time: its saved tensors were "
                "freed by the first backward. Pass retain_graph=True to the first call."
            )
        if self.ctx.materialize_grads and any(g is None for g in grads):
            from kiln.core import creation

            grads = [creation.zeros(m.shape, dtype=m.dtype) if g is None and m is not None
                     else g for g, m in zip(grads, self.out_metas)]
        result = self.fn.backward(self.ctx, *grads)
        Tensor = _TENSOR or _tensor_type()
        if isinstance(result, Tensor) or result is None:
            result = (result,)
        if not isinstance(result, (tuple, list)):
            raise AutogradError(f"{self.fn.__name__}.backward must return a Tensor or a tuple "
                                f"of Tensors/None, got {type(result).__name__}")
        result = tuple(result)
        n = len(self.next)
        # Like torch, trailing Nones past the number of arguments are tolerated.
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise AutogradError(f"{self.fn.__name__}.backward returned {len(result)} gradients, "
                                f"expected {n} (one per argument of forward)")
        for i, r in enumerate(result):
            if r is not None and not isinstance(r, Tensor):
                raise AutogradError(f"{self.fn.__name__}.backward: gradient {i} must be a "
                                    f"kiln.Tensor or None, got {type(r).__name__}")
        return result

    def free(self) -> None:
        self.ctx._saved = ()
        self.ctx._freed = True
        self.freed = True

    def __repr__(self) -> str:
        return f"<{self.name}>"


class OutputSlot:
    """``grad_fn`` of output ``index`` of a :class:`FunctionNode`: routes its gradient there."""

    __slots__ = ("node", "index", "_out", "next", "__weakref__")

    def __init__(self, node: FunctionNode, index: int, out: Tensor) -> None:
        self.node = node
        self.index = index
        self._out = out
        self.next = (node,)

    @property
    def name(self) -> str:
        return self.node.name

    def free(self) -> None:
        self._out = None

    def __repr__(self) -> str:
        return f"<{self.name} output {self.index}>"


def _fresh_output(t: Tensor) -> Tensor:
    """A new Tensor object for the same value (an output may not be an input object)."""
    from kiln.core.tensor import Tensor

    if t._node is not None:
        return Tensor._tracer(t._node, t._tmeta)  # type: ignore[arg-type]
    return Tensor._wrap(t._data)  # type: ignore[arg-type]


class Function:
    """A differentiable operation with a hand-written backward (like torch.autograd.Function).

    Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` and call
    ``MyFn.apply(*args)``. ``forward`` runs with grad recording off; it may return one
    Tensor or a tuple (several outputs). ``backward`` receives one gradient per output
    (zeros for outputs that got none, or None after ``ctx.set_materialize_grads(False)``)
    and returns one gradient per argument of ``forward`` (None for non-tensors).
    It works on eager tensors and on tracers alike.

    >>> import kiln
    >>> class MulAdd(kiln.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x, y):
    ...         ctx.save_for_backward(x, y)
    ...         return x * y, x + y
    ...     @staticmethod
    ...     def backward(ctx, g_prod, g_sum):
    ...         x, y = ctx.saved_tensors
    ...         return g_prod * y + g_sum, g_prod * x + g_sum
    >>> x = kiln.tensor([2.0], requires_grad=True)
    >>> y = kiln.tensor([3.0], requires_grad=True)
    >>> p, s = MulAdd.apply(x, y)
    >>> p.sum().backward()          # the sum output got no gradient: it arrives as zeros
    >>> x.grad.tolist(), y.grad.tolist()
    ([3.0], [2.0])
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("kiln.autograd.Function subclasses must define forward")

    @staticmethod
    def backward(ctx: FunctionCtx, *grads: Any) -> Any:
        raise NotImplementedError("kiln.autograd.Function subclasses must define backward")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        Tensor = _TENSOR or _tensor_type()
        ctx = FunctionCtx(cls.__name__)
        ctx.needs_input_grad = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
        needs = is_grad_enabled() and True in ctx.needs_input_grad
        # Grad mode off around forward (a try block: cheaper than a context manager).
        previous = is_grad_enabled()
        _set_enabled(False)
        try:
            result = cls.forward(ctx, *args, **kwargs)
        finally:
            _set_enabled(previous)
        single = not isinstance(result, (tuple, list))
        outs = [result] if single else list(result)
        inputs = {id(a) for a in args if isinstance(a, Tensor)}
        non_diff = ctx._non_differentiable
        metas: list[Any] = []
        for i, o in enumerate(outs):
            if not isinstance(o, Tensor):
                metas.append(None)
                continue
            if id(o) in inputs:
                fresh = _fresh_output(o)
                if id(o) in non_diff:
                    non_diff.add(id(fresh))
                outs[i] = o = fresh
            diff = needs and id(o) not in non_diff and o.dtype.is_floating
            metas.append(o.meta if diff else None)
        if needs:
            node = FunctionNode(cls, ctx, args, metas)
            for i, o in enumerate(outs):
                if metas[i] is not None:
                    o.requires_grad = True
                    o._grad_fn = OutputSlot(node, i, o)
        if single:
            return outs[0]
        return type(result)(outs) if isinstance(result, list) else tuple(outs)
