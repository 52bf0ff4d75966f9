"""``SerializableCallable``: a compiled callable that travels as one container of bytes.

The counterpart of ``torch._dynamo.aot_compile_types.SerializableCallable``. Every
backend's compiled function implements it (``InterpretedFunction``, ``CFunction``), and so
does ``kiln.artifacts.BundledAOTAutogradSerializableCallable``. The bytes are the container
of :mod:`kiln.backends.container` (kind ``"compiled_function"``, one section ``function``
holding the backend's own ``serialize()``); a function holding native code is signed, and
loading it verifies the signature before the library is opened.

>>> import kiln
>>> from kiln.backends import get_backend
>>> from kiln.backends.interpret import InterpretedFunction
>>> fn = get_backend("interpret")(kiln.trace(lambda x: x * 3.0, kiln.ones(2)), None)
>>> data = InterpretedFunction.serialize_compile_artifacts(fn)
>>> InterpretedFunction.deserialize_compile_artifacts(data)(kiln.ones(2))[0].tolist()
[3.0, 3.0]
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from kiln.backends import container

KIND = "compiled_function"
# Backends whose artifacts hold only data (a graph and constants): loading them runs no
# native code, so they need no signature. Every other backend's artifacts must be signed.
DATA_ONLY_BACKENDS = frozenset({"interpret"})


class SerializableCallable(abc.ABC):
    """A callable with ``serialize_compile_artifacts(fn) -> bytes`` and
    ``deserialize_compile_artifacts(data) -> callable`` (classmethods, as in torch).

    >>> import kiln
    >>> from kiln.backends import get_backend
    >>> fn = get_backend("interpret")(kiln.trace(lambda x: x - 1.0, kiln.ones(2)), None)
    >>> isinstance(fn, SerializableCallable)
    True
    >>> again = type(fn).deserialize_compile_artifacts(type(fn).serialize_compile_artifacts(fn))
    >>> again(kiln.ones(2))[0].tolist()
    [0.0, 0.0]
    """

    @classmethod
    @abc.abstractmethod
    def serialize_compile_artifacts(cls, fn: Any) -> bytes:
        """The bytes of ``fn`` (an instance of ``cls``)."""

    @classmethod
    @abc.abstractmethod
    def deserialize_compile_artifacts(cls, data: bytes) -> Callable:
        """The callable ``serialize_compile_artifacts`` wrote."""

    @abc.abstractmethod
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


def pack_function(fn: Any) -> tuple[bytes, bool, list[str]]:
    """(the backend's bytes of ``fn``, whether they hold native code, CPU features needed)."""
    backend = getattr(fn, "backend", None)
    if not isinstance(backend, str) or not callable(getattr(fn, "serialize", None)):
        raise container.ArtifactError(
            f"cannot serialize {type(fn).__name__}: a compiled function has a 'backend' name "
            "and a serialize() method (custom backends: return a CompiledFunction)")
    plan = getattr(fn, "plan", None)
    features = list(plan.get("cpu_features") or []) if isinstance(plan, dict) else []
    return fn.serialize(), backend not in DATA_ONLY_BACKENDS, features


def unpack_function(data: bytes, signed: bool, what: str) -> Any:
    """The compiled function in backend bytes from a container section; native backends
    only from a signed container."""
    from kiln.backends import deserialize
    from kiln.backends.envelope import read_envelope
    from kiln.base.trust import UntrustedArtifactError

    backend, _ = read_envelope(data)
    if backend not in DATA_ONLY_BACKENDS and not signed:
        raise UntrustedArtifactError(f"{what}: holds a {backend!r} (native) function but the "
                                     "artifact is not signed; refusing to load it")
    # a signed container's signature covers these bytes
    return deserialize(data, authenticated=signed)


class SerializableCompiledFunction(SerializableCallable):
    """The implementation every backend's compiled function inherits."""

    @classmethod
    def serialize_compile_artifacts(cls, fn: Any) -> bytes:
        body, native, features = pack_function(fn)
        return container.write(KIND, {"function": body}, meta={"backend": fn.backend},
                               cpu_features=features, sign=native)

    @classmethod
    def deserialize_compile_artifacts(cls, data: bytes) -> Callable:
        art = container.read(data, kinds=(KIND,), what=f"{cls.__name__} artifact")
        if "function" not in art.sections:
            raise container.ArtifactError(f"{cls.__name__} artifact: no 'function' section")
        what = f"{cls.__name__} artifact"
        if art.signed:
            container.check_native(art.header, what)
        fn = unpack_function(art.sections["function"], art.signed, what)
        if not isinstance(fn, cls):
            raise container.ArtifactError(f"{what}: holds a {type(fn).__name__}, expected a "
                                          f"{cls.__name__}")
        return fn
