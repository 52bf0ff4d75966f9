"""Compiled artifacts: serializable callables, the compile cache, precompiled functions.

A stage of its own between the backends/AOT autograd and ``kiln.compile``: it may import
``kiln.aot``, ``kiln.backends``, ``kiln.tracing``, ``kiln.graph`` and below, never
``kiln.compiler``. The container format is :mod:`kiln.backends.container` (backends write
it too); docs/artifacts.md describes it.
"""

from __future__ import annotations

from kiln.backends.container import FORMAT_VERSION, ArtifactError
from kiln.backends.serializable import SerializableCallable
from kiln.base.lazy import lazy_attributes

# Loaded on first use: a process that only loads a precompiled function needs neither the
# cache bundles (precompile_context) nor the miss explainer.
_LAZY = {
    "BundledAOTAutogradSerializableCallable": "callables",
    "explain_miss": "explain",
    "BackendCacheArtifact": "precompile_context", "BypassCacheEntry": "precompile_context",
    "CacheInfo": "precompile_context", "EagerCacheArtifact": "precompile_context",
    "PrecompileCacheEntry": "precompile_context", "PrecompileContext": "precompile_context",
    "load_cache_artifacts": "precompile_context", "save_cache_artifacts": "precompile_context",
    "AOTCompiledFunction": "precompiled", "load_compiled_function": "precompiled",
    "CacheWarning": "store",
}

__getattr__, __dir__ = lazy_attributes("kiln.artifacts", _LAZY, globals())


__all__ = [
    "AOTCompiledFunction",
    "BackendCacheArtifact",
    "BypassCacheEntry",
    "CacheInfo",
    "EagerCacheArtifact",
    "PrecompileCacheEntry",
    "PrecompileContext",
    "FORMAT_VERSION",
    "ArtifactError",
    "BundledAOTAutogradSerializableCallable",
    "CacheWarning",
    "SerializableCallable",
    "explain_miss",
    "load_cache_artifacts",
    "load_compiled_function",
    "save_cache_artifacts",
]
