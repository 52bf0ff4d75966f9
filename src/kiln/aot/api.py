"""``aot_function`` and ``aot_module``: the entry points of AOT autograd (see
:mod:`kiln.aot`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.aot.partition import default_partition
from kiln.aot.runtime import AOTFunction, Compiler
from kiln.errors import ArgumentError
from kiln.tracing.trace import is_module


def aot_function(
    fn: Callable,
    fw_compiler: Compiler,
    bw_compiler: Compiler | None = None,
    partition_fn: Callable = default_partition,
    decompositions: dict[str, Callable] | None = None,
    inference_compiler: Compiler | None = None,
    dynamic: Any = None,
) -> AOTFunction:
    """Compile the forward and backward of ``fn`` ahead of time.

    - ``fw_compiler`` / ``bw_compiler`` / ``inference_compiler``: ``(GraphModule,
      example_specs) -> callable``, e.g. :func:`nop`, :func:`print_compile`, or a backend
      (``kiln.backends.get_backend("interpret")``). ``bw_compiler`` and
      ``inference_compiler`` default to ``fw_compiler``.
    - ``partition_fn(joint, joint_inputs, *, num_fwd_outputs) -> (fw, bw)``:
      :func:`default_partition` or :func:`min_cut_rematerialization_partition` (use
      ``functools.partial`` to set its ``memory_budget``).
    - ``decompositions``: ``{op name: function of Kiln ops}``, applied to every op recorded
      while tracing (forward and backward). Composites already decompose to primitives, so
      this replaces primitives (e.g. ``{"sigmoid": lambda x: 1 / (1 + (-x).exp())}``).
    - ``dynamic``: symbolic dims, as in :func:`kiln.trace`.

    Graphs are cached per input signature: shapes, dtypes, ``requires_grad`` of every tensor
    input, the values of non-tensor arguments (specialized), and grad mode.

    >>> import kiln
    >>> from kiln.aot import aot_function, nop
    >>> f = aot_function(lambda x, n: x * n, nop)
    >>> f(kiln.ones(2), 3).tolist(), f.cache_info()
    ([3.0, 3.0], {'signatures': 1, 'traces': 1})
    """
    return AOTFunction(fn, fw_compiler, bw_compiler, partition_fn, decompositions,
                       inference_compiler, dynamic)


def _module_base() -> type:
    from kiln.nn.module import Module

    return Module


class AOTModule(_module_base()):  # type: ignore[misc]
    """What :func:`aot_module` returns: a Module whose forward runs the compiled graphs.

    The wrapped module is ``orig_module``: its parameters are this module's parameters, so
    optimizers, ``state_dict`` and ``train()``/``eval()`` work on either.

    >>> import kiln
    >>> from kiln.aot import aot_module, nop
    >>> lin = kiln.nn.Linear(3, 2)
    >>> compiled = aot_module(lin, nop)
    >>> compiled.orig_module is lin, compiled(kiln.ones(4, 3)).shape
    (True, (4, 2))
    >>> compiled.cache_info()
    {'signatures': 1, 'traces': 1}
    """

    def __init__(self, module: Any, aot: AOTFunction) -> None:
        super().__init__()
        self.orig_module = module
        object.__setattr__(self, "_aot", aot)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._aot(*args, **kwargs)

    def _aot_function(self) -> AOTFunction:
        return self._aot

    def cache_info(self) -> dict[str, int]:
        return self._aot.cache_info()


def aot_module(
    module: Any,
    fw_compiler: Compiler,
    bw_compiler: Compiler | None = None,
    partition_fn: Callable = default_partition,
    decompositions: dict[str, Callable] | None = None,
    inference_compiler: Compiler | None = None,
    dynamic: Any = None,
) -> AOTModule:
    """:func:`aot_function` for a ``kiln.nn.Module``: parameters and buffers become graph
    inputs (not constants), gradients reach ``param.grad``, and buffers updated in forward
    (BatchNorm running stats) are written back after every call.

    >>> import kiln
    >>> from kiln.aot import aot_module, nop
    >>> class Scale(kiln.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = kiln.nn.Parameter(kiln.ones(2))
    ...     def forward(self, x):
    ...         return x * self.w
    >>> m = Scale()
    >>> aot_module(m, nop)(kiln.tensor([3.0, 4.0])).sum().backward()
    >>> m.w.grad.tolist()
    [3.0, 4.0]
    """
    if not is_module(module):
        raise ArgumentError(f"aot_module: expected a kiln.nn.Module, got "
                            f"{type(module).__name__}")
    aot = AOTFunction(module, fw_compiler, bw_compiler, partition_fn, decompositions,
                      inference_compiler, dynamic, module=module)
    return AOTModule(module, aot)

