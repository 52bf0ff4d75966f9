"""Backends: ``compile(gm, example_specs, **options) -> CompiledFunction``.

A :class:`CompiledFunction` is callable on flat tensor inputs (one per graph placeholder),
returns flat outputs, and serializes itself to bytes (``serialize``/``deserialize``) without
pickle. Backends register by name; ``kiln.compile(fn, backend="interpret")`` looks them up.

>>> import kiln
>>> from kiln.backends import get_backend, list_backends
>>> "interpret" in list_backends()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kiln.errors import ArgumentError, BackendError, SerializationError


@dataclass(frozen=True)
class InputSpec:
    """What a compiled function was built for: one tensor input's shape, dtype and grad."""

    shape: tuple
    dtype: Any
    requires_grad: bool = False

    @staticmethod
    def of(t: Any) -> InputSpec:
        return InputSpec(tuple(t.shape), t.dtype, bool(t.requires_grad))


class CompiledFunction(Protocol):
    """What every backend returns."""

    backend: str

    def __call__(self, *inputs: Any) -> list[Any]: ...

    def serialize(self) -> bytes: ...


Backend = Callable[..., CompiledFunction]

_BACKENDS: dict[str, Backend] = {}
_DESERIALIZERS: dict[str, Callable[[bytes], CompiledFunction]] = {}
# Built-in backends load on first use, so importing kiln stays cheap.
_BUILTIN = {"interpret": "kiln.backends.interpret", "c": "kiln.backends.c.backend"}


def register_backend(
    name: str, compile_fn: Backend, deserialize: Callable[[bytes], CompiledFunction] | None = None
) -> None:
    """Register ``compile_fn(gm, example_specs, **options)`` under ``name``."""
    if not callable(compile_fn):
        raise ArgumentError(f"register_backend: compile_fn for {name!r} is not callable")
    _BACKENDS[name] = compile_fn
    if deserialize is not None:
        _DESERIALIZERS[name] = deserialize


def get_backend(name: str | Backend) -> Backend:
    if callable(name):
        return name
    if name not in _BACKENDS and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    try:
        return _BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; available: {list_backends()}") from None


def list_backends() -> list[str]:
    return sorted(set(_BACKENDS) | set(_BUILTIN))


def deserialize(data: bytes) -> CompiledFunction:
    """Rebuild any backend's CompiledFunction from its ``serialize()`` bytes."""
    from kiln.backends.envelope import read_envelope

    backend, payload = read_envelope(data)
    if backend not in _DESERIALIZERS and backend in _BUILTIN:
        importlib.import_module(_BUILTIN[backend])
    if backend not in _DESERIALIZERS:
        raise SerializationError(f"no deserializer for backend {backend!r}")
    return _DESERIALIZERS[backend](payload)
