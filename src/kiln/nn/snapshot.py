"""A module tree's state as of now: its parameters, buffers and training flags, in one walk.

Compiled callables key their traces by it (which tensors, shapes, dtypes, flags), and bind
the current tensors as graph constants on every call.
"""

from __future__ import annotations

from typing import Any

from kiln.core.tensor import Tensor


class StateSnapshot:
    """One walk over a module tree: its state tensors and training flags, as of now.

    ``tensors`` are ``named_parameters()`` then ``named_buffers()`` (same order, same
    de-duplication), ``names`` their qualified names, ``training`` the flag of every module
    of ``named_modules()``. Calls read all three; one walk costs a fraction of the four
    generator walks they took before.
    """

    __slots__ = ("entries", "tensors", "num_params", "training", "_key")

    def __init__(self, module: Any) -> None:
        if not isinstance(getattr(module, "_modules", None), dict):
            self._from_public_api(module)  # a duck-typed module: its own traversal methods
            return
        mods: list[tuple[str, Any]] = []
        _preorder(module, "", set(), mods)
        entries: list[tuple[str, str, Tensor]] = []
        for store in ("_parameters", "_buffers"):
            memo: set[int] = set()
            for prefix, mod in mods:
                for name, value in getattr(mod, store).items():
                    if value is None or id(value) in memo:
                        continue
                    memo.add(id(value))
                    entries.append((prefix, name, value))
            if store == "_parameters":
                self.num_params = len(entries)
        self._set(entries, tuple(m.training for _, m in mods))

    def _from_public_api(self, module: Any) -> None:
        params = [("", n, t) for n, t in module.named_parameters()]
        buffers = [("", n, t) for n, t in module.named_buffers()] \
            if hasattr(module, "named_buffers") else []
        self.num_params = len(params)
        training = tuple(getattr(m, "training", False) for m in module.modules()) \
            if hasattr(module, "modules") else ()
        self._set(params + buffers, training)

    def _set(self, entries: list[tuple[str, str, Tensor]], training: tuple) -> None:
        self.entries = entries
        self.tensors = [t for _, _, t in entries]
        self.training = training
        self._key: tuple | None = None

    @property
    def names(self) -> list[str]:
        return [prefix + "." + name if prefix else name for prefix, name, _ in self.entries]

    def params_require_grad(self) -> bool:
        return any(t.requires_grad for t in self.tensors[:self.num_params])

    def key(self) -> tuple:
        """Names, shapes, dtypes and ``requires_grad`` of the state tensors (a cache key)."""
        if self._key is None:
            self._key = tuple((prefix, name, *tensor_key(t)) for prefix, name, t in self.entries)
        return self._key


def _preorder(module: Any, prefix: str, memo: set[int], out: list[tuple[str, Any]]) -> None:
    # named_modules() (remove_duplicate=True) without its chain of nested generators.
    if id(module) in memo:
        return
    memo.add(id(module))
    out.append((prefix, module))
    for name, sub in module._modules.items():
        if sub is not None:
            _preorder(sub, prefix + "." + name if prefix else name, memo, out)


def tensor_key(t: Tensor) -> tuple:
    """(shape, dtype, requires_grad) of a tensor for cache keys; NumPy's dtype for eager
    tensors (hashing it is cheaper than hashing a kiln DType)."""
    data = t._data
    if data is not None and t._node is None:
        return (data.shape, data.dtype, t.requires_grad)
    return (t.shape, t.dtype, t.requires_grad)
