"""The precompile context: what this process compiled, as artifacts another machine loads.

The counterpart of ``torch._dynamo.precompile_context`` and Inductor's "mega-cache".
``kiln.compile`` records into :class:`PrecompileContext` as it stores entries in the
compile cache: one :class:`CompiledEntryArtifact` per compiled signature (the entry's
container bytes) and one cache entry record (guards, input and output specs, graph hash,
the artifact keys it uses, the warm keys that name it). ``save_cache_artifacts()``
bundles them; ``load_cache_artifacts(data)`` on another machine checks every entry (and
its signature: machines sharing artifacts share ``KILN_CACHE_SECRET``) and puts it in the
local compile cache, so the first ``kiln.compile`` there hits.

Recording happens while the compile cache is on (it is what produces the bytes).

>>> import kiln, os, tempfile
>>> saved = dict(os.environ)
>>> os.environ.update(KILN_CACHE_DIR=tempfile.mkdtemp(), KILN_COMPILE_CACHE="1")
>>> PrecompileContext.clear()
>>> _ = kiln.compile(lambda x: x * 4.0)(kiln.ones(2))
>>> data, info = save_cache_artifacts()
>>> len(info.entries), list(info.artifacts)
(1, ['kiln.entry'])
>>> os.environ["KILN_CACHE_DIR"] = tempfile.mkdtemp()   # "another machine"
>>> len(load_cache_artifacts(data).entries)
1
>>> f = kiln.compile(lambda x: x * 4.0)
>>> f(kiln.ones(2)).tolist(), f.cache_info()["traces"]
([4.0, 4.0], 0)
>>> os.environ.clear(); os.environ.update(saved)
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from kiln.artifacts import entries
from kiln.artifacts.cache import active_store
from kiln.artifacts.store import warn_once
from kiln.backends import container
from kiln.base import canonical
from kiln.errors import ArgumentError, KilnError

T = TypeVar("T")
BUNDLE_KIND = "cache_bundle"


@dataclass
class BackendCacheArtifact(Generic[T], abc.ABC):
    """One artifact of a backend: ``key`` and ``content``.

    >>> art = EagerCacheArtifact("k", {"n": 1})
    >>> art.edit_contents(lambda c: {**c, "n": 2}); art.after_deserialization()
    {'n': 2}
    """

    key: str
    content: T
    type: ClassVar[str] = "backend"

    @abc.abstractmethod
    def after_deserialization(self) -> Any:
        """The usable object once ``content`` has been read back."""

    def edit_contents(self, edit_fn: Callable[[T], T]) -> None:
        """Replace ``content`` by ``edit_fn(content)``."""
        self.content = edit_fn(self.content)

    def to_bytes(self) -> bytes:
        return self.content if isinstance(self.content, bytes) else \
            canonical.dumps(self.content).encode()


@dataclass
class CompiledEntryArtifact(BackendCacheArtifact[bytes]):
    """A compile-cache entry's container bytes (what ``kiln.compile`` records).

    >>> CompiledEntryArtifact("k", b"...").type
    'kiln.entry'
    """

    type: ClassVar[str] = "kiln.entry"

    def after_deserialization(self) -> Any:
        """The checked entry: (artifact, program JSON, compiled functions)."""
        return entries.read_entry(self.content, f"cache artifact {self.key[:16]}")


@dataclass
class EagerCacheArtifact(BackendCacheArtifact[Any]):
    """An artifact whose content is used as it is (JSON data).

    >>> EagerCacheArtifact("note", [1, 2]).after_deserialization()
    [1, 2]
    """

    type: ClassVar[str] = "eager"

    def after_deserialization(self) -> Any:
        return self.content


_TYPES: dict[str, type[BackendCacheArtifact]] = {
    CompiledEntryArtifact.type: CompiledEntryArtifact, EagerCacheArtifact.type: EagerCacheArtifact}


class BypassCacheEntry(KilnError):
    """Raised while recording a cache entry that must not be cached (it is skipped)."""


@dataclass
class PrecompileCacheEntry:
    """A cache entry stitched with every backend artifact it uses.

    >>> PrecompileCacheEntry("k", {"artifacts": []}).artifacts
    []
    """

    key: str
    entry: dict
    artifacts: list[BackendCacheArtifact] = field(default_factory=list)


@dataclass
class CacheInfo:
    """What a bundle holds: entry keys, and artifact keys by artifact type.

    >>> CacheInfo(["k"], {"kiln.entry": ["k"]}).entries
    ['k']
    """

    entries: list[str] = field(default_factory=list)
    artifacts: dict[str, list[str]] = field(default_factory=dict)


class PrecompileContext:
    """Process-wide record of compiled artifacts and cache entries (class methods).

    >>> PrecompileContext.clear()
    >>> PrecompileContext.record_artifact(EagerCacheArtifact("a", {"x": 1}))
    >>> PrecompileContext.record_cache_entry({"artifacts": ["a"]}, "e")
    >>> list(PrecompileContext.create_cache_entries())
    ['e']
    """

    _artifacts: ClassVar[dict[str, BackendCacheArtifact]] = {}
    _entries: ClassVar[dict[str, dict]] = {}
    _debug: ClassVar[list[dict]] = []

    @classmethod
    def clear(cls) -> None:
        cls._artifacts.clear()
        cls._entries.clear()
        cls._debug.clear()

    @classmethod
    def record_artifact(cls, artifact: BackendCacheArtifact) -> None:
        """Keep a copy of ``artifact`` (later edits of the caller's object do not leak in)."""
        if not isinstance(artifact, BackendCacheArtifact):
            raise ArgumentError(f"record_artifact: expected a BackendCacheArtifact, got "
                                f"{type(artifact).__name__}")
        cls._artifacts[artifact.key] = copy.deepcopy(artifact)

    @classmethod
    def record_cache_entry(cls, entry: dict, key: str) -> None:
        """Record what a traced signature needs (guards, input/output specs, graph hash,
        ``artifacts``: the keys of the backend artifacts it uses)."""
        if not isinstance(entry, dict):
            raise ArgumentError(f"record_cache_entry: entry should be a dict, got "
                                f"{type(entry).__name__}")
        cls._entries[key] = copy.deepcopy(entry)

    @classmethod
    def edit_artifact(cls, key: str, edit_fn: Callable[[Any], Any]) -> None:
        if key not in cls._artifacts:
            raise ArgumentError(f"edit_artifact: no artifact with key {key!r}; recorded: "
                                f"{sorted(cls._artifacts)[:8]}")
        cls._artifacts[key].edit_contents(edit_fn)

    @classmethod
    def serialize_artifact_by_key(cls, key: str) -> bytes:
        if key not in cls._artifacts:
            raise ArgumentError(f"serialize_artifact_by_key: no artifact with key {key!r}")
        return cls._artifacts[key].to_bytes()

    @classmethod
    def dump_debug_info(cls, entries_: dict[str, PrecompileCacheEntry],
                        artifacts: dict[str, BackendCacheArtifact]) -> dict:
        """JSON-serializable summary: entries with their artifact keys, artifacts with
        type and size, and the records of entries that were skipped."""
        return {
            "entries": {k: {"artifacts": [a.key for a in e.artifacts]}
                        for k, e in entries_.items()},
            "artifacts": {k: {"type": a.type, "bytes": len(a.to_bytes())}
                          for k, a in artifacts.items()},
            "skipped": [dict(d) for d in cls._debug],
        }

    @classmethod
    def create_cache_entries(cls) -> dict[str, PrecompileCacheEntry]:
        """Every recorded entry whose artifacts are all recorded; the others are skipped
        with a logged warning naming the key and the reason."""
        out = {}
        for key, entry in cls._entries.items():
            wanted = entry.get("artifacts", [])
            missing = [a for a in wanted if a not in cls._artifacts]
            if missing or not isinstance(wanted, list):
                why = f"artifact(s) {missing} not recorded" if missing else "no artifact list"
                import logging  # here: logging costs milliseconds of every warm start

                logging.getLogger("kiln.artifacts").warning(
                    "precompile: skipping cache entry %s: %s", key, why)
                cls._debug.append({"key": key, "reason": why})
                continue
            out[key] = PrecompileCacheEntry(key, entry, [cls._artifacts[a] for a in wanted])
        return out

    @classmethod
    def save_to_cache(cls) -> dict:
        """Write every complete entry's artifacts into the local compile cache; returns
        :meth:`dump_debug_info`."""
        complete = cls.create_cache_entries()
        store = active_store()
        if store is not None:
            for e in complete.values():
                _put(store, e)
        return cls.dump_debug_info(complete, cls._artifacts)


def _put(store: Any, e: PrecompileCacheEntry) -> None:
    for art in e.artifacts:
        if isinstance(art, CompiledEntryArtifact):
            store.put(art.key, art.content)
    for wkey in e.entry.get("warm_keys", []):
        if e.artifacts:
            store.put(wkey, canonical.dumps({"entry": e.artifacts[0].key}).encode(),
                      "warm", ".json")


def record_compiled(key: str, data: bytes, parts: list, warm_keys: list[str],
                    guards: list[str]) -> None:
    """What the compile cache records for each entry it stores or loads."""
    PrecompileContext.record_artifact(CompiledEntryArtifact(key, data))
    ingredients = dict(parts)
    PrecompileContext.record_cache_entry({
        "artifacts": [key], "warm_keys": list(warm_keys), "guards": guards,
        "graph_hash": ingredients.get("graph"), "inputs_hash": ingredients.get("inputs"),
        "ingredients": [list(p) for p in parts]}, key)


def save_cache_artifacts() -> tuple[bytes, CacheInfo] | None:
    """Everything compiled (and cached) in this process as one bundle, and what it holds;
    None when nothing was recorded. (Also ``kiln.compiler.save_cache_artifacts``.)

    >>> PrecompileContext.clear()
    >>> save_cache_artifacts() is None
    True
    """
    return bundle(PrecompileContext.create_cache_entries())


def bundle(complete: dict[str, PrecompileCacheEntry]) -> tuple[bytes, CacheInfo] | None:
    """The bundle bytes of complete entries (None for none)."""
    if not complete:
        return None
    arts = {a.key: a for e in complete.values() for a in e.artifacts}
    index = {"entries": {k: e.entry for k, e in complete.items()},
             "artifacts": {k: a.type for k, a in arts.items()}, "order": list(arts)}
    sections = {"index": canonical.dumps(index).encode()}
    for i, a in enumerate(arts.values()):
        sections[f"a{i}"] = a.to_bytes()
    # Signed as a whole when an entry is (native code), so the bundle cannot be edited.
    signed = any(isinstance(a, CompiledEntryArtifact) and
                 container.peek_header(a.content)["signature"] for a in arts.values())
    info = CacheInfo(list(complete), {})
    for k, a in arts.items():
        info.artifacts.setdefault(a.type, []).append(k)
    return container.write(BUNDLE_KIND, sections, sign=signed), info


def bundle_store(store: Any) -> tuple[bytes, CacheInfo] | None:
    """Every entry of a local store (and the warm keys that name it) as one bundle."""
    warm: dict[str, list[str]] = {}
    for path in (store.root / "warm").glob("??/*.json"):
        try:
            target = str(canonical.loads(path.read_bytes())["entry"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        warm.setdefault(target, []).append(path.stem)
    complete = {}
    for key, path, _ in store.entries():
        try:
            data = path.read_bytes()
        except OSError:
            continue
        complete[key] = PrecompileCacheEntry(
            key, {"artifacts": [key], "warm_keys": sorted(warm.get(key, []))},
            [CompiledEntryArtifact(key, data)])
    return bundle(complete)


def load_cache_artifacts(data: bytes) -> CacheInfo | None:
    """Check a bundle from :func:`save_cache_artifacts` and put its entries into the local
    compile cache. A bundle that fails its own checks (or, holding native code, its
    signature) raises an ``ArtifactError``; an entry inside that fails its checks is skipped
    with one warning. Returns what was loaded, or None when nothing was.

    >>> load_cache_artifacts(b"KILNART")
    Traceback (most recent call last):
    ...
    kiln.backends.container.ArtifactError: cache bundle: not a Kiln compiled artifact ...
    """
    art = container.read(data, kinds=(BUNDLE_KIND,), what="cache bundle")
    try:
        index = canonical.loads(art.sections["index"])
        order = [str(k) for k in index["order"]]
        types = {str(k): str(v) for k, v in index["artifacts"].items()}
        records = {str(k): dict(v) for k, v in index["entries"].items()}
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise container.ArtifactError(f"cache bundle: malformed index: {e}") from e
    loaded: dict[str, BackendCacheArtifact] = {}
    for i, key in enumerate(order):
        body = art.sections.get(f"a{i}")
        cls_ = _TYPES.get(types.get(key, ""))
        if body is None or cls_ is None:
            raise container.ArtifactError(f"cache bundle: artifact {key[:16]} is missing or "
                                          "of an unknown type")
        artifact = cls_(key, body) if cls_ is CompiledEntryArtifact else \
            cls_(key, canonical.loads(body))
        try:
            artifact.after_deserialization()  # every check, signature included
            if isinstance(artifact, CompiledEntryArtifact) and not art.signed and \
                    container.peek_header(body)["signature"]:
                raise container.ArtifactError("holds native code, but the bundle is not "
                                              "signed as a whole (altered)")
        except KilnError as e:
            warn_once(f"bundle artifact {key[:16]}", f"refused ({e})")
            continue
        loaded[key] = artifact
    info = CacheInfo()
    store = active_store()
    for key, entry in records.items():
        arts = [loaded[a] for a in entry.get("artifacts", []) if a in loaded]
        if len(arts) != len(entry.get("artifacts", [])):
            continue
        if store is not None:
            _put(store, PrecompileCacheEntry(key, entry, arts))
        for a in arts:
            PrecompileContext.record_artifact(a)
        PrecompileContext.record_cache_entry(entry, key)
        info.entries.append(key)
        for a in arts:
            info.artifacts.setdefault(a.type, []).append(a.key)
    return info if info.entries else None


__all__ = ["BackendCacheArtifact", "BypassCacheEntry", "CacheInfo", "CompiledEntryArtifact",
           "EagerCacheArtifact", "PrecompileCacheEntry", "PrecompileContext",
           "load_cache_artifacts", "save_cache_artifacts"]
