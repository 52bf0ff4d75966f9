"""``explain_miss``: which key ingredient keeps a call from hitting the compile cache."""

from __future__ import annotations

from typing import Any

from kiln.artifacts import keys
from kiln.artifacts.cache import active_store
from kiln.backends.container import ArtifactError, peek_header
from kiln.errors import ArgumentError

_PEEK = 1 << 16  # headers are a few KiB; a longer one is read whole


def stored_ingredients(store: Any) -> list[tuple[str, str, list]]:
    """(key, name, ingredient list) of every entry in ``store`` (headers only)."""
    out = []
    for key, path, _ in store.entries():
        try:
            with open(path, "rb") as f:
                head = f.read(_PEEK)
                if len(head) == _PEEK:
                    head += f.read()
            header = peek_header(head, f"cache entry {key[:16]}")
        except (OSError, ArtifactError):
            continue
        meta = header["meta"]
        out.append((key, str(meta.get("name", "?")), meta.get("ingredients") or []))
    return out


def explain_miss(fn: Any, *args: Any, **kwargs: Any) -> str:
    """Say whether ``fn(*args, **kwargs)`` hits the compile cache, and if not, which key
    ingredients differ from the nearest stored entry. ``fn`` is what ``kiln.compile``
    returned; the call is traced, not compiled or run.

    >>> import kiln, os, tempfile
    >>> saved = dict(os.environ)
    >>> os.environ.update(KILN_CACHE_DIR=tempfile.mkdtemp(), KILN_COMPILE_CACHE="1")
    >>> f = kiln.compile(lambda x: x * 2.0)
    >>> _ = f(kiln.ones(3))
    >>> print(explain_miss(kiln.compile(lambda x: x * 2.0), kiln.ones(3)))  # doctest: +ELLIPSIS
    hit: entry ...
    >>> print(explain_miss(f, kiln.ones(4)))  # doctest: +ELLIPSIS
    miss: ...differs in: graph, inputs
    >>> os.environ.clear(); os.environ.update(saved)
    """
    probe = getattr(fn, "_cache_ingredients", None)
    if probe is None:
        raise ArgumentError(f"explain_miss: expected what kiln.compile returned, got "
                            f"{type(fn).__name__}")
    parts = probe(args, kwargs)
    if parts is None:
        return "not cached: the backend is a callable, not a registered name"
    store = active_store()
    if store is None:
        return "not cached: the compile cache is off (KILN_CACHE_DIR or KILN_COMPILE_CACHE)"
    store = getattr(store, "local", store)  # a Redis-backed store lists its local part
    if store is None:
        return "not cached locally: only a Redis store is configured"
    key = keys.key_of(parts)
    if store.entry_path(key).exists():
        return f"hit: entry {key[:16]} ({store.entry_path(key)})"
    best: tuple[int, str, str, list[str]] | None = None
    for other, name, stored in stored_ingredients(store):
        diff = keys.differences(parts, stored)
        if best is None or len(diff) < best[0]:
            best = (len(diff), other, name, diff)
    if best is None:
        return f"miss: key {key[:16]}; the cache ({store.root}) holds no entries"
    _, other, name, diff = best
    return (f"miss: key {key[:16]}; the nearest stored entry {other[:16]} ({name}) differs "
            f"in: {', '.join(diff)}")
