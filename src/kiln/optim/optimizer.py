"""The ``Optimizer`` base class: parameter groups, per-parameter state, state dicts.

Updates run under ``kiln.no_grad()`` with in-place tensor ops, so every holder of a
parameter (the module, a GraphModule that lifted it as a constant, a compiled function)
sees the new values at once.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from kiln.core.autograd.grad_mode import enable_grad, no_grad
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ValueArgumentError
from kiln.optim.fast import Scratch
from kiln.optim.fused import PlanCache, check_group


class _Required:
    """Marks an option that has no default and must be given (per group or globally)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


def check_hyper(opt: str, name: str, value: Any, low: float = 0.0, high: float | None = None,
                high_open: bool = False) -> None:
    """A hyper-parameter must be a number in [low, high] (or [low, high) if ``high_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentError(f"{opt}: {name} must be a number, got {type(value).__name__}")
    bad_high = high is not None and (value >= high if high_open else value > high)
    if value < low or bad_high:
        interval = f"[{low}, {high}{')' if high_open else ']'}" if high is not None \
            else f">= {low}"
        raise ValueArgumentError(f"{opt}: invalid {name} {value!r} (expected {interval})")


class Optimizer:
    """Base class: holds ``param_groups`` (dicts of options + "params") and ``state``.

    Subclasses implement ``_update_group``. ``params`` is an iterable of tensors, or of dicts
    that each give "params" and any per-group options (missing options come from
    ``defaults``). Eager updates of plain NumPy-backed parameters take an in-place fast path
    (:mod:`kiln.optim.fast`) with the same arithmetic, or, with a C compiler, the fused
    kernels of :mod:`kiln.optim.fused` (the same bits again; the ``fused`` option);
    ``_fast_path = False`` on an instance forces the generic path (Kiln ops, which is also
    what a trace records).

    >>> import kiln
    >>> w, b = kiln.nn.Parameter(kiln.ones(2)), kiln.nn.Parameter(kiln.zeros(1))
    >>> opt = kiln.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.5]
    """

    _fast_path = True

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        # Work buffers of the eager fast path (kiln.optim.fast) and the fused steps' plans
        # (kiln.optim.fused); not state: never saved.
        self._scratch = Scratch()
        self._fused_plans = PlanCache()
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise ArgumentError(f"{name}: params should be an iterable of Tensors or dicts, "
                                "got a single Tensor (wrap it in a list)")
        if isinstance(params, (set, frozenset)):
            raise ArgumentError(f"{name}: params must be an ordered collection (a set's order "
                                "changes between runs); pass a list")
        try:
            groups = list(params)
        except TypeError:
            raise ArgumentError(f"{name}: params should be an iterable of Tensors or dicts, got "
                                f"{type(params).__name__}") from None
        if not groups:
            raise ValueArgumentError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. a new layer to fine-tune)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise ArgumentError(f"{name}.add_param_group: expected a dict, got "
                                f"{type(param_group).__name__}")
        params = param_group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise ArgumentError(f"{name}: parameters must be in an ordered collection, not a "
                                "set")
        elif params is None:
            raise ArgumentError(f"{name}: a parameter group needs a 'params' entry")
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ArgumentError(f"{name}: can only optimize kiln Tensors, but params[{i}] is "
                                    f"{type(p).__name__}")
            if not p.is_leaf:
                raise ArgumentError(f"{name}: can't optimize a non-leaf Tensor (params[{i}]); "
                                    "optimize the leaf it was computed from")
            if p.is_tracer:
                raise ArgumentError(f"{name}: params[{i}] is a tracer tensor")
        group = dict(param_group)
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ArgumentError(f"{name}: parameter group didn't specify a value of "
                                    f"required option {key!r}")
            group.setdefault(key, default)
        if len({id(p) for p in params}) != len(params):
            raise ValueArgumentError(f"{name}: a parameter group contains the same parameter "
                                     "twice")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueArgumentError(f"{name}: some parameters appear in more than one "
                                     "parameter group")
        check_group(name, group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter (to None, or to zeros)."""
        from kiln.core.creation import zeros_like

        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = None if set_to_none else zeros_like(p.grad)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given
        (evaluated first, with grad enabled, as in PyTorch)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        """Update the parameters of one group (what a subclass implements)."""
        raise NotImplementedError

    # state dicts --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Parameters are replaced by their position across groups, as in PyTorch, so the dict
        can be loaded into a fresh optimizer over new parameter objects. The state tensors are
        the live ones (copy the dict with ``copy.deepcopy`` to keep a snapshot).
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state saved by :meth:`state_dict` (a Kiln or a PyTorch one:
        state values may be Kiln tensors, NumPy arrays or anything ``np.asarray`` reads).

        Unlike PyTorch, each group keeps its own ``fused`` choice: it says how this process
        runs the step (the results are the same), not what the saved training state is.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or \
                "param_groups" not in state_dict:
            raise ArgumentError(f"{name}.load_state_dict: expected a dict with 'state' and "
                                "'param_groups'")
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueArgumentError(f"{name}.load_state_dict: the state dict has "
                                     f"{len(saved_groups)} parameter groups, the optimizer "
                                     f"has {len(self.param_groups)}")
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueArgumentError(f"{name}.load_state_dict: parameter group {i} has "
                                         f"{len(s['params'])} parameters in the state dict and "
                                         f"{len(g['params'])} in the optimizer")
        id_map = {}
        for g, s in zip(self.param_groups, saved_groups):
            for p, k in zip(g["params"], s["params"]):
                id_map[k] = p
        state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for k, values in state_dict["state"].items():
            if k not in id_map:
                continue
            p = id_map[k]
            state[p] = {key: _cast_state(p, key, v) for key, v in values.items()}
        for g, s in zip(self.param_groups, saved_groups):
            s["params"] = g["params"]
            if "fused" in g:
                s["fused"] = g["fused"]
        self.state = state
        self.param_groups = saved_groups
        self._fused_plans.clear()


def _cast_state(param: Tensor, key: str, value: Any) -> Any:
    """State values become Kiln tensors of the parameter's dtype (``step`` keeps its own)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        arr = np.array(value._concrete("load_state_dict"), copy=True)
    else:
        arr = np.array(np.asarray(value), copy=True)
    if key != "step" and param.dtype.is_floating and arr.dtype.kind == "f":
        arr = arr.astype(param.dtype.np_dtype)
    return Tensor._wrap(arr)


def params_with_grad(group: dict[str, Any]) -> Iterable[Tensor]:
    for p in group["params"]:
        if p.grad is not None:
            yield p


def state_zeros(like: Tensor) -> Tensor:
    """Optimizer state of ``like``'s shape and dtype, always an eager tensor: created during
    ``kiln.trace`` it is a constant the trace updates in place (a graph mutation written back
    after every call), never a graph node that would restart from zero on each call."""
    return Tensor._wrap(np.zeros(tuple(like.shape), like.dtype.np_dtype))


def state_scalar(value: float) -> Tensor:
    """A float32 0-d eager state tensor (Adam's ``step``, as in PyTorch); see state_zeros."""
    return Tensor._wrap(np.array(value, np.float32))
