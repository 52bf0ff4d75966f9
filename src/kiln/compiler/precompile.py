"""``kiln.compiler``'s precompile functions: load a saved compiled function, move the
compile cache between machines.

A module of its own, apart from :mod:`.compiled`, so that loading a precompiled function
imports neither the tracer nor AOT autograd's tracing runtime.
"""

from __future__ import annotations

from typing import Any


def load_compiled_function(file: Any, *, module: Any = None) -> Any:
    """Load a function saved by ``aot_compile(...).save_compiled_function(path)`` or
    ``CompiledCallable.save(path)`` from a path or a binary file object; ``module`` supplies
    the parameters (weights are never baked in). Needs no tracing and no C compiler.

    >>> import kiln, io
    >>> aot = kiln.compile(lambda x: x.sin()).aot_compile(((kiln.zeros(2),), {}))
    >>> kiln.compiler.load_compiled_function(io.BytesIO(aot.serialize()))(kiln.zeros(2)).tolist()
    [0.0, 0.0]
    """
    from kiln.artifacts.precompiled import load_compiled_function as load

    return load(file, module=module)


def save_cache_artifacts() -> Any:
    """Everything compiled in this process, as ``(bytes, CacheInfo)`` for another machine's
    :func:`load_cache_artifacts` (None when nothing was compiled with the cache on); see
    :mod:`kiln.artifacts.precompile_context`.

    >>> import kiln
    >>> kiln.compiler.save_cache_artifacts() is None or True
    True
    """
    from kiln.artifacts.precompile_context import save_cache_artifacts as save

    return save()


def load_cache_artifacts(data: bytes) -> Any:
    """Put a bundle from :func:`save_cache_artifacts` into the local compile cache; returns
    its ``CacheInfo`` (None when nothing loaded).

    >>> import kiln
    >>> kiln.compiler.load_cache_artifacts(b"junk")
    Traceback (most recent call last):
    ...
    kiln.backends.container.ArtifactError: cache bundle: not a Kiln compiled artifact ...
    """
    from kiln.artifacts.precompile_context import load_cache_artifacts as load

    return load(data)
