"""Backends: ``compile(gm, example_specs, **options) -> CompiledFunction``.

A :class:`CompiledFunction` is callable on flat tensor inputs (one per graph placeholder,
positionally or by the placeholder's name: :func:`kiln.graph.binding.bind_inputs`), returns
flat outputs, and serializes itself to bytes (``serialize``/``deserialize``) without pickle.
Backends register by name; ``kiln.compile(fn, backend="interpret")`` looks them up.

Stage: backends, above tracing. May import kiln.tracing, kiln.graph, kiln.nn, kiln.io, the
tensor core (kiln.core, kiln.ops, kiln.autograd), kiln.symbolic, kiln.base and kiln.errors;
never kiln.aot, kiln.optim or anything above.

>>> import kiln
>>> from kiln.backends import get_backend, list_backends
>>> "interpret" in list_backends()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from kiln.errors import ArgumentError, BackendError, SerializationError


class InputSpec:
    """What a compiled function was built for: one tensor input's shape, dtype and grad.
    A hashable value (a plain class: a dataclass costs half a millisecond at import).

    >>> import kiln
    >>> from kiln.backends import InputSpec
    >>> InputSpec.of(kiln.ones(2, 3))
    InputSpec(shape=(2, 3), dtype=kiln.float32, requires_grad=False)
    """

    __slots__ = ("shape", "dtype", "requires_grad")

    def __init__(self, shape: tuple, dtype: Any, requires_grad: bool = False) -> None:
        self.shape = shape
        self.dtype = dtype
        self.requires_grad = requires_grad

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputSpec):
            return NotImplemented
        return (self.shape, self.dtype, self.requires_grad) == \
            (other.shape, other.dtype, other.requires_grad)

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.requires_grad))

    def __repr__(self) -> str:
        return (f"InputSpec(shape={self.shape!r}, dtype={self.dtype!r}, "
                f"requires_grad={self.requires_grad!r})")

    @staticmethod
    def of(t: Any) -> InputSpec:
        return InputSpec(tuple(t.shape), t.dtype, bool(t.requires_grad))


class CompiledFunction(Protocol):
    """What every backend returns.

    >>> import kiln
    >>> from kiln.backends import deserialize, get_backend
    >>> gm = kiln.trace(lambda x: x * 2.0, kiln.ones(2))
    >>> fn = get_backend("interpret")(gm, None)
    >>> fn(kiln.ones(2))[0].tolist(), fn.backend
    ([2.0, 2.0], 'interpret')
    >>> deserialize(fn.serialize())(kiln.ones(2))[0].tolist()
    [2.0, 2.0]
    """

    backend: str

    def __call__(self, *inputs: Any, **named: Any) -> list[Any]: ...

    def serialize(self) -> bytes: ...


Backend = Callable[..., CompiledFunction]

_BACKENDS: dict[str, Backend] = {}
_DESERIALIZERS: dict[str, Callable[[bytes], CompiledFunction]] = {}
# Built-in backends load on first use, so importing kiln stays cheap.
_BUILTIN = {"interpret": "kiln.backends.interpret", "c": "kiln.backends.c.backend"}


def register_backend(
    name: str, compile_fn: Backend, deserialize: Callable[[bytes], CompiledFunction] | None = None
) -> None:
    """Register ``compile_fn(gm, example_specs, **options)`` under ``name``.

    >>> import kiln
    >>> from kiln.backends import get_backend, register_backend
    >>> def counting(gm, specs, **options):
    ...     print(f"compiling {len(list(gm.graph.calls()))} ops")
    ...     return get_backend("interpret")(gm, specs)
    >>> register_backend("doc-example", counting)
    >>> kiln.compile(lambda x: x.exp() + 1.0, backend="doc-example")(kiln.zeros(2)).tolist()
    compiling 2 ops
    [2.0, 2.0]
    """
    if not callable(compile_fn):
        raise ArgumentError(f"register_backend: compile_fn for {name!r} is not callable")
    _BACKENDS[name] = compile_fn
    if deserialize is not None:
        _DESERIALIZERS[name] = deserialize


def get_backend(name: str | Backend) -> Backend:
    """The compile function registered as ``name`` (a callable is returned as it is).

    >>> from kiln.backends import get_backend
    >>> get_backend("interpret").__name__
    'compile_interpret'
    """
    if callable(name):
        return name
    if name not in _BACKENDS and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    try:
        return _BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; available: {list_backends()}") from None


def list_backends() -> list[str]:
    """Names of the registered and built-in backends.

    >>> from kiln.backends import list_backends
    >>> {"c", "interpret"} <= set(list_backends())
    True
    """
    return sorted(set(_BACKENDS) | set(_BUILTIN))


def deserialize(data: bytes, trust: str = "signed", *, authenticated: bool = False
                ) -> CompiledFunction:
    """Rebuild any backend's CompiledFunction from its ``serialize()`` bytes.

    Artifacts that carry native code (the ``"c"`` backend's) load only when their signature
    verifies under this user's key; ``trust="any"`` skips that check, with a warning
    (see docs/security.md). Data-only artifacts are validated and need no signature.
    ``authenticated=True`` says the caller verified a signature over all of ``data`` (a
    signed container does): a loader may then check what the function does not need to
    run, such as the C backend's graph, when it is first used.

    >>> import kiln
    >>> from kiln.backends import deserialize, get_backend
    >>> fn = get_backend("interpret")(kiln.trace(lambda x: x + 1.0, kiln.ones(2)), None)
    >>> deserialize(fn.serialize())(kiln.zeros(2))[0].tolist()
    [1.0, 1.0]
    """
    from kiln.backends.envelope import read_envelope

    backend, payload = read_envelope(data)
    if backend not in _DESERIALIZERS and backend in _BUILTIN:
        importlib.import_module(_BUILTIN[backend])
    if backend not in _DESERIALIZERS:
        raise SerializationError(f"no deserializer for backend {backend!r}")
    loader = _DESERIALIZERS[backend]
    if getattr(loader, "takes_trust", False):
        if getattr(loader, "takes_authenticated", False):
            return loader(payload, trust=trust, authenticated=authenticated)
        return loader(payload, trust=trust)
    from kiln.base.trust import TRUST_MODES

    if trust not in TRUST_MODES:  # data-only artifacts need no signature, but a typo is wrong
        raise ArgumentError(f"deserialize: trust must be one of {TRUST_MODES}, got {trust!r}")
    return loader(payload)
