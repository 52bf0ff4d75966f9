"""Compiled artifacts: serializable callables, the compile cache, precompiled functions.

A stage of its own between the backends/AOT autograd and ``kiln.compile``: it may import
``kiln.aot``, ``kiln.backends``, ``kiln.tracing``, ``kiln.graph`` and below, never
``kiln.compiler``. The container format is :mod:`kiln.backends.container` (backends write
it too); docs/artifacts.md describes it.
"""

from __future__ import annotations

from kiln.artifacts.callables import BundledAOTAutogradSerializableCallable
from kiln.artifacts.explain import explain_miss
from kiln.artifacts.precompile_context import (
    BackendCacheArtifact,
    BypassCacheEntry,
    CacheInfo,
    EagerCacheArtifact,
    PrecompileCacheEntry,
    PrecompileContext,
    load_cache_artifacts,
    save_cache_artifacts,
)
from kiln.artifacts.precompiled import AOTCompiledFunction, load_compiled_function
from kiln.artifacts.store import CacheWarning
from kiln.backends.container import FORMAT_VERSION, ArtifactError
from kiln.backends.serializable import SerializableCallable

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
