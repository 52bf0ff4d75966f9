"""``kiln.nn.Module``: the base class of layers and models, with PyTorch's behaviour.

Attributes that are Parameters, Modules or registered buffers are tracked in ordered dicts,
so ``named_parameters()``, ``state_dict()`` and ``repr()`` come out in definition order and
with the same qualified names as in PyTorch (``layer1.0.conv1.weight``). That is what lets a
state dict move between Kiln and PyTorch, and what ``kiln.trace`` uses to name constants.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from kiln.core import dtypes as _dt
from kiln.core.autograd.grad_mode import no_grad
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, KilnError
from kiln.nn.parameter import Parameter


class StateDictError(KilnError, RuntimeError):
    """``load_state_dict`` found missing or unexpected keys, or shapes that differ."""


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict(..., strict=False)`` returns.

    >>> import kiln
    >>> lin = kiln.nn.Linear(2, 1)
    >>> lin.load_state_dict({"weight": kiln.ones(1, 2), "scale": kiln.ones(1)}, strict=False)
    IncompatibleKeys(missing_keys=['bias'], unexpected_keys=['scale'])
    """

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """Returned by hook registration; ``handle.remove()`` unregisters the hook.

    >>> import kiln
    >>> lin = kiln.nn.Linear(2, 1)
    >>> handle = lin.register_forward_hook(lambda mod, args, out: out * 0.0 + 7.0)
    >>> lin(kiln.ones(1, 2)).tolist()
    [[7.0]]
    >>> handle.remove()
    >>> len(lin._forward_hooks)
    0
    """

    _ids = itertools.count()

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    first = lines.pop(0)
    rest = [(" " * spaces + line) if line.strip() else "" for line in lines]
    return first + "\n" + "\n".join(rest)


def _as_array(value: Any, key: str) -> np.ndarray:
    # Accepts Kiln tensors, NumPy arrays and anything NumPy can read (a torch state dict).
    if isinstance(value, Tensor):
        return value.detach()._concrete("load_state_dict")
    try:
        return np.asarray(value)
    except Exception as e:  # noqa: BLE001  (report which key could not be read)
        raise ArgumentError(f"load_state_dict: value for {key!r} is not array-like "
                            f"({type(value).__name__})") from e


def _shape_of(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return str(tuple(shape)) if shape is not None else f"({type(value).__name__})"


class Module:
    """Base class for every layer and model.

    >>> import kiln
    >>> from kiln import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(3, 2)
    ...     def forward(self, x):
    ...         return self.fc(x).relu()
    >>> net = Net()
    >>> [name for name, _ in net.named_parameters()]
    ['fc.weight', 'fc.bias']
    >>> net(kiln.ones(4, 3)).shape
    (4, 2)
    >>> print(net)
    Net(
      (fc): Linear(in_features=3, out_features=2, bias=True)
    )
    """

    training: bool

    def __init__(self) -> None:
        sets = object.__setattr__
        sets(self, "training", True)
        sets(self, "_parameters", OrderedDict())
        sets(self, "_buffers", OrderedDict())
        sets(self, "_non_persistent_buffers_set", set())
        sets(self, "_modules", OrderedDict())
        sets(self, "_forward_hooks", OrderedDict())
        sets(self, "_forward_pre_hooks", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required "
                                  "\"forward\" function")

    # calling ------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args)`` runs before forward; a non-None result replaces args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args, output)`` runs after forward; a non-None result replaces it.

        Hooks (of the traced module and of its submodules) run while ``kiln.trace``,
        ``kiln.compile`` or ``aot_module`` trace it, so what they compute is part of the
        graph; their Python side effects happen once per trace, not once per call.
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # registration -------------------------------------------------------------------------
    def _check_name(self, name: Any, kind: str) -> None:
        if "_parameters" not in self.__dict__:
            raise ArgumentError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise ArgumentError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{kind} name can't contain \".\" or be empty, got {name!r}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None, a declared-but-absent parameter such as a bias)."""
        self._check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute {name!r} already exists")
        if param is not None and not isinstance(param, Parameter):
            raise ArgumentError(f"cannot assign {type(param).__name__} object to parameter "
                                f"{name!r} (kiln.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not a parameter (BatchNorm's running stats).

        Non-persistent buffers are left out of ``state_dict()``.
        """
        self._check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise ArgumentError(f"cannot assign {type(tensor).__name__} object to buffer "
                                f"{name!r} (kiln.Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise ArgumentError(f"{type(self).__name__}: child {name!r} must be a kiln.nn.Module "
                                f"(or None), got {type(module).__name__} (not a Module subclass)")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        self._modules[name] = module

    register_module = add_module

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            values = d.get(store)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise ArgumentError("cannot assign parameters before Module.__init__() call")
            self._forget(name)
            self.register_parameter(name, value)
            return
        if params is not None and name in params:
            if value is not None:
                raise ArgumentError(f"cannot assign {type(value).__name__} as parameter "
                                    f"{name!r} (kiln.nn.Parameter or None expected)")
            params[name] = None
            return
        modules = d.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise ArgumentError("cannot assign a module before Module.__init__() call")
            self._forget(name)
            modules[name] = value
            return
        if modules is not None and name in modules:
            if value is not None:
                raise ArgumentError(f"cannot assign {type(value).__name__} as child module "
                                    f"{name!r} (kiln.nn.Module or None expected)")
            modules[name] = None
            return
        buffers = d.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise ArgumentError(f"cannot assign {type(value).__name__} as buffer "
                                    f"{name!r} (kiln.Tensor or None expected)")
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            self.__dict__[store].pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(store, {}):
                del self.__dict__[store][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = list(super().__dir__())
        keys += list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(set(keys))

    # traversal ----------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and all below it, with dotted names ("" for this one)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool = True) -> Iterator[tuple[str, Any]]:
        memo: set[int] = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for mod_prefix, module in mods:
            for name, value in getattr(module, store).items():
                if value is None or (remove_duplicate and id(value) in memo):
                    continue
                if remove_duplicate:
                    memo.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(qualified name, parameter) pairs; a parameter shared by two modules comes once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path (``"layer1.0.conv1"``)."""
        module: Module = self
        if target == "":
            return module
        for item in target.split("."):
            child = module._modules.get(item)
            if child is None:
                raise AttributeError(f"{module._get_name()} has no attribute `{item}`")
            module = child
        return module

    # modes and grads ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode here and in every submodule (Dropout, BatchNorm react)."""
        if not isinstance(mode, bool):
            raise ArgumentError(f"train: mode should be a bool, got {type(mode).__name__}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear parameter gradients (to None, or to zeros with ``set_to_none=False``)."""
        from kiln.core.creation import zeros_like

        for p in self.parameters():
            if p.grad is not None:
                # Fresh zeros rather than zero_(): a .grad may share memory with another's.
                p.grad = None if set_to_none else zeros_like(p.grad)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and on this module."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
        for module in self.children():
            module._apply(fn)
        with no_grad():
            for p in self._parameters.values():
                if p is not None:
                    new = fn(p.detach())
                    if new.dtype != p.dtype or new._data is not p._data:
                        p.data = new
            for name, b in self._buffers.items():
                if b is not None:
                    self._buffers[name] = fn(b)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Cast floating parameters and buffers to ``dtype`` (or to a tensor's dtype), as
        torch's ``Module.to``; the device must be the CPU (``"cpu"``, ``kiln.device("cpu")``).

        >>> import kiln
        >>> kiln.nn.Linear(2, 2).to("cpu", dtype=kiln.float64).weight.dtype
        kiln.float64
        """
        from kiln.core.devices import parse_to

        dtype, like = parse_to("Module.to", args, kwargs)
        if like is not None:
            dtype = like.dtype
        if dtype is None:
            return self
        target = _dt.get_dtype(dtype)
        if not target.is_floating:
            raise ArgumentError(f"Module.to: dtype must be floating, got {target}")
        return self._apply(lambda t: t.to(target) if t.dtype.is_floating else t)

    def double(self) -> Module:
        return self.to(_dt.float64)

    def float(self) -> Module:
        return self.to(_dt.float32)

    def cpu(self) -> Module:
        return self

    def cuda(self, device: Any = None) -> Module:
        from kiln.core.devices import check_device

        check_device("Module.cuda", "cuda" if device is None else device)
        return self

    # state dicts --------------------------------------------------------------------------
    def _local_state(self) -> Iterator[tuple[str, Tensor]]:
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                yield name, b

    def state_dict(self, destination: Any = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by qualified name (detached, sharing memory).

        >>> import kiln
        >>> list(kiln.nn.BatchNorm1d(3).state_dict())
        ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        """
        out: OrderedDict[str, Tensor] = OrderedDict() if destination is None else destination
        # Every path to a shared submodule is listed (as PyTorch does, and as load_state_dict
        # expects).
        for mod_prefix, module in self.named_modules(prefix=prefix.rstrip("."),
                                                     remove_duplicate=False):
            for name, value in module._local_state():
                key = mod_prefix + ("." if mod_prefix else "") + name
                out[key] = value if keep_vars else value.detach()
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True
                        ) -> IncompatibleKeys:
        """Copy values into parameters and buffers in place (compiled functions see them).

        Values may be Kiln tensors, NumPy arrays or anything ``np.asarray`` reads (so a PyTorch
        state dict loads directly). ``strict`` makes missing or unexpected keys an error;
        a shape mismatch is always an error.
        """
        if not isinstance(state_dict, Mapping):
            raise ArgumentError(f"load_state_dict: expected a mapping of name -> tensor (such as "
                                f"kiln.weights.load_file(path)), got {type(state_dict).__name__}")
        expected: dict[str, Tensor] = {}
        for mod_prefix, module in self.named_modules(remove_duplicate=False):
            for name, value in module._local_state():
                expected[mod_prefix + ("." if mod_prefix else "") + name] = value
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        errors: list[str] = []
        if strict:
            # Shapes beside the names: a renamed layer shows up as a missing and an
            # unexpected key of the same shape, which is what a user needs to spot it.
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(
                    f'"{k}" {_shape_of(state_dict[k])}' for k in unexpected) + ". ")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(
                    f'"{k}" {tuple(expected[k].shape)}' for k in missing) + ". ")
        arrays: dict[str, np.ndarray] = {}
        for key, target in expected.items():
            if key not in state_dict:
                continue
            arr = _as_array(state_dict[key], key)
            if tuple(arr.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{tuple(arr.shape)} from checkpoint, the shape in current "
                              f"model is {tuple(target.shape)}.")
            arrays[key] = arr
        if errors:
            raise StateDictError(f"Error(s) in loading state_dict for {self._get_name()}:\n\t"
                                 + "\n\t".join(errors))
        with no_grad():
            for key, arr in arrays.items():
                expected[key].copy_(Tensor._wrap(np.asarray(arr)))
        return IncompatibleKeys(missing, unexpected)

    # printing -----------------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """One line (or several) of configuration shown inside ``repr()``."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for key, module in self._modules.items():
            child_lines.append(f"({key}): " + _addindent(repr(module), 2))
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys", "RemovableHandle"]
