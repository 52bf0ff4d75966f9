"""Run a module with its parameters and buffers replaced by tracers (and put them back).

AOT autograd lifts module state to graph *inputs*: while tracing, every slot that holds a
parameter or buffer holds that tensor's tracer instead, so the module's own code reads
tracers. A parameter shared by two submodules is one input; every slot holding it gets
the same tracer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kiln.core.tensor import Tensor


@contextlib.contextmanager
def swapped_state(module: Any, originals: list[Tensor], tracers: list[Tensor]
                  ) -> Iterator[dict[int, Tensor]]:
    """Yield a dict that, after the block, maps state index -> new value for buffers the
    forward *reassigned* (``self.buf = value``) instead of updating in place."""
    index = {id(t): i for i, t in enumerate(originals)}
    slots: list[tuple[dict, str, int]] = []
    for _, mod in module.named_modules(remove_duplicate=False):
        for store in (mod._parameters, mod._buffers):
            for name, value in store.items():
                if value is not None and id(value) in index:
                    slots.append((store, name, index[id(value)]))
    reassigned: dict[int, Tensor] = {}
    for store, name, i in slots:
        store[name] = tracers[i]  # bypasses Module.__setattr__'s Parameter check on purpose
    try:
        yield reassigned
        for store, name, i in slots:
            now = store.get(name)
            if now is not tracers[i] and isinstance(now, Tensor):
                reassigned[i] = now
    finally:
        for store, name, i in slots:
            store[name] = originals[i]
