"""Tape nodes: what an op records so that its vjp rule can run later.

Every differentiable op call on a tensor that requires grad creates one :class:`BackwardNode`
holding the op, its arguments, attributes and output. The node's vjp is the op's registry
rule, so eager backward, double backward and AOT autograd (on tracer tensors) share it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiln.errors import AutogradError

if TYPE_CHECKING:
    from kiln.ops.registry import OpDef
    from kiln.tensor import Tensor


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
        from kiln.tensor import Tensor

        self.op = op
        self._args = args
        self.attrs = attrs
        self._out = out
        nxt: list[Any] = []
        versions: list[int | None] = []
        for a in args:
            if isinstance(a, Tensor):
                versions.append(a._version)
                if a.requires_grad:
                    nxt.append(a._grad_fn if a._grad_fn is not None else a._get_accumulator())
                    continue
            else:
                versions.append(None)
            nxt.append(None)
        self.next = tuple(nxt)
        self._versions = (tuple(versions), out._version)
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
            if v is not None and a._version != v:
                raise AutogradError(
                    f"argument {i} of op {self.op.name} was modified in place after it was "
                    f"used (version {a._version}, expected {v}); its gradient would be wrong. "
                    "Use the out-of-place op (e.g. add instead of add_)."
                )

    def _check_out(self) -> None:
        self._check_freed()
        if self._out._version != self._versions[1]:
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
