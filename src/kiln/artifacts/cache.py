"""The compile cache every ``kiln.compile`` uses: look up before compiling, store after.

Two lookups, in order, on a signature this process has not compiled yet:

1. **warm** (no tracing): a key over the function's fingerprint (its code and closure, see
   :mod:`kiln.artifacts.fingerprint`), the call's structure and input metadata, grad mode,
   backend and options names a stored entry; the entry is loaded, its tensors bound from the
   live function, and its guards checked against the call's inputs.
2. **full**: the function is traced, the key is computed from the traced program
   (:mod:`kiln.artifacts.keys`), and a stored entry with that key is loaded instead of
   partitioning and compiling. A miss compiles (under a file lock, so processes compiling
   the same key wait for one another) and stores the entry and the warm index.

An entry that fails to load (corrupt, foreign, mis-signed) is reported once, dropped and
rebuilt. ``KILN_COMPILE_CACHE=0`` turns this cache off (the kernel cache stays);
``KILN_CACHE_DIR=0`` turns every cache off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from kiln.artifacts import entries, keys
from kiln.artifacts.fingerprint import _describe, _Opaque, fingerprint
from kiln.artifacts.store import LocalStore, warn_once
from kiln.backends.container import FORMAT_VERSION
from kiln.base import canonical
from kiln.base.gcpause import gc_paused
from kiln.core.calls import is_module
from kiln.core.tensor import Tensor
from kiln.errors import KilnError
from kiln.graph.serialize import graph_to_obj

_OFF = ("0", "off", "false", "no")
_STORES: dict[str, Any] = {}
_MISS = object()
# What this process's lookups found (for benchmarks and ``kiln cache stats``): counts of
# "warm" (no tracing), "hit" (after tracing) and "miss", and the ingredients of each miss.
STATS: dict[str, Any] = {"warm": 0, "hit": 0, "miss": 0, "missed": []}


def debug_level() -> int:
    try:
        return int(os.environ.get("KILN_DEBUG", "0"))
    except ValueError:
        return 0


def active_store() -> Any:
    """The store for this process's settings (the local one, with the Redis one of
    ``KILN_CACHE_URL`` behind it), or None when the cache is off."""
    if os.environ.get("KILN_COMPILE_CACHE", "1").strip().lower() in _OFF:
        return None
    from kiln.artifacts.remote import TieredStore
    from kiln.base import cachedir

    root = cachedir.root()
    url = os.environ.get("KILN_CACHE_URL", "")
    where = f"{root}|{url}"
    if where not in _STORES:
        local = LocalStore.default() if root is not None else None
        _STORES[where] = TieredStore.wrap(local)
    return _STORES[where]


class DryRun(Exception):  # noqa: N818  (control flow for explain_miss, never escapes it)
    """Raised at the lookup of a dry run with the ingredients of the call."""

    def __init__(self, parts: keys.Ingredients) -> None:
        super().__init__("dry run")
        self.parts = parts


def _debug(event: str, key: str, parts: keys.Ingredients, what: str) -> None:
    if debug_level() >= 1:
        hashes = " ".join(f"{n}={h[:10]}" for n, h in parts)
        print(f"[kiln.cache] {event} {what} key={key[:16]} {hashes}", file=sys.stderr)


class Binding:
    """The compile cache as one compiled callable sees it: its function, backend, options."""

    def __init__(self, fn: Any, backend: str, options: dict, dynamic: Any,
                 partitioner: str | None) -> None:
        self.fn = fn
        self.backend = backend
        self.options = options
        self.dynamic = dynamic
        self.partitioner = partitioner
        # the module whose state a compiled module reads (paths "state/<name>")
        self.module = fn if is_module(fn) else None
        self.dry = False
        self._fingerprint: str | None | bool = False  # False: not computed yet
        self._pending: list[str] = []  # warm keys waiting for the entry of this call

    # keys --------------------------------------------------------------------------------
    def _parts(self, graph: Any, inputs: Any) -> keys.Ingredients:
        return keys.ingredients(graph=graph, inputs=inputs, backend=self.backend,
                                options=self.options, partitioner=self.partitioner)

    def warm_key(self, where: str, leaves: list[Any], spec: Any, grad: bool,
                 extra: Any = None) -> str | None:
        """The trace-free key of a call, or None when the function has no fingerprint."""
        if self._fingerprint is False:
            self._fingerprint = fingerprint(self.fn)
        if self._fingerprint is None:
            return None
        from kiln import __version__

        try:
            call = [_describe(x, 0, {}) for x in leaves]
        except _Opaque:
            return None
        return keys.digest([self._fingerprint, where, spec.to_json(), call, grad, extra,
                            repr(self.dynamic), self.backend,
                            {str(k): repr(v) for k, v in self.options.items()},
                            self.partitioner, __version__, FORMAT_VERSION])

    # warm lookups ------------------------------------------------------------------------
    def warm(self, where: str, leaves: list[Any], spec: Any, grad: bool,
             module: Any = None) -> tuple[str, Any] | None:
        """The entry the warm index names for this call: ("graph", (gm, compiled)) or
        ("aot", entry); None on a miss or when binding fails. Remembers the warm key so the
        entry compiled for this call is indexed under it."""
        store = active_store()
        if store is None or self.dry:
            return None
        wkey = self.warm_key(where, leaves, spec, grad)
        if wkey is None:
            return None
        self._pending.append(wkey)
        raw = store.get(wkey, "warm", ".json")
        if raw is None:
            return None
        try:
            index = canonical.loads(raw)
            key = str(index["entry"])
            data = store.get(key)
        except (ValueError, KeyError, TypeError):
            return None
        if data is None:
            return None
        what = f"cache entry {key[:16]}"
        try:
            with gc_paused():
                result = self._rebuild(data, what, module)
        except KilnError as e:
            self._refuse(store, key, e)
            return None
        if result is not None:
            self._pending.remove(wkey)
            STATS["warm"] += 1
            _debug("warm hit", key, [], getattr(self.fn, "__name__", "fn"))
        return result

    def _rebuild(self, data: bytes, what: str, module: Any) -> tuple[str, Any] | None:
        """A stored entry's ("aot", entry) or ("graph", (gm, compiled)); None when a tensor
        it reads does not resolve here."""
        art, program, funcs = entries.read_entry(data, what)
        if art.kind == entries.AOT_KIND:
            got = entries.aot_entry_from(art, program, funcs, what, fn=self.fn,
                                         module=module, strict=False)
            return ("aot", got[0]) if got is not None else None
        pair = entries.graph_entry_from(program, funcs, what, fn=self.fn, module=module,
                                        strict=False)
        return ("graph", pair) if pair is not None else None

    def warm_aot(self, aotfn: Any, flat: list[Tensor], leaves: list[Any], spec: Any,
                 needs_grad: bool) -> Any:
        """``AOTFunction``'s hook before tracing: a stored entry whose guards admit the
        call, or None."""
        hit = self.warm("aot", leaves, spec, needs_grad, aotfn.module)
        if hit is None or hit[0] != "aot":
            return None
        entry = hit[1]
        full = flat + list(entry.program.closure_inputs)
        return entry if entry.admits is None or entry.admits(full) else None

    def _refuse(self, store: LocalStore, key: str, e: Exception) -> None:
        warn_once(f"entry {key[:16]}", f"refused ({e}); dropped, it will be rebuilt")
        store.drop(key)

    def _index(self, store: LocalStore, key: str) -> None:
        for wkey in self._pending:
            store.put(wkey, canonical.dumps({"entry": key}).encode(), "warm", ".json")
        self._pending.clear()

    # full lookups ------------------------------------------------------------------------
    def _load_or_build(self, make_parts: Callable[[], keys.Ingredients], what: str,
                       load: Callable[[bytes, str], Any], build: Callable[[], Any],
                       pack: Callable[[Any, dict], bytes], guards: Any) -> Any:
        store = active_store()
        if store is None and not self.dry:
            return build()
        try:
            parts = make_parts()
        except KilnError as e:  # e.g. a specialized value JSON cannot hold: not cacheable
            if self.dry:
                raise
            if debug_level() >= 1:
                print(f"[kiln.cache] not cached {what}: {e}", file=sys.stderr)
            return build()
        if self.dry:
            raise DryRun(parts)
        assert store is not None
        key = keys.key_of(parts)
        meta = {"ingredients": [list(p) for p in parts], "name": what}

        def try_load() -> Any:
            data = store.get(key)
            if data is None:
                return _MISS
            try:
                result = load(data, f"cache entry {key[:16]}")
            except KilnError as e:
                self._refuse(store, key, e)
                return _MISS
            _debug("hit", key, parts, what)
            STATS["hit"] += 1
            self._record(key, data, parts, guards)
            self._index(store, key)
            return result

        result = try_load()
        if result is not _MISS:
            return result
        _debug("miss", key, parts, what)
        STATS["miss"] += 1
        STATS["missed"].append((what, parts))
        with store.lock(key):
            result = try_load()  # another process may have stored it while we waited
            if result is not _MISS:
                return result
            result = build()
            try:
                data = pack(result, meta)
            except (KilnError, ValueError, TypeError) as e:  # not serializable: not cached
                _debug(f"not stored ({e})", key, parts, what)
                return result
            store.put(key, data)
            self._record(key, data, parts, guards)
            self._index(store, key)
        return result

    def _record(self, key: str, data: bytes, parts: keys.Ingredients, guards: Any) -> None:
        from kiln.artifacts.precompile_context import record_compiled

        record_compiled(key, data, parts, list(self._pending), [str(g) for g in guards])

    def aot_entry(self, aotfn: Any, program: Any, call: Any, build: Callable[[], Any]) -> Any:
        """``AOTFunction``'s hook: the entry for a traced program, loaded or built."""
        def make_parts() -> keys.Ingredients:
            return self._parts(_aot_graph(program, call),
                               [keys.specs_of(program.gm.graph.placeholders),
                                [bool(t.requires_grad) for t in program.closure_inputs]])

        module = aotfn.module

        def load(data: bytes, what: str) -> Any:
            art, prog_obj, funcs = entries.read_entry(data, what)
            got = entries.aot_entry_from(art, prog_obj, funcs, what, fn=self.fn, module=module,
                                         live=program)
            assert got is not None
            return got[0]

        def pack(entry: Any, meta: dict) -> bytes:
            return entries.aot_entry_bytes(entry, call, fn=self.fn, module=module, meta=meta)

        return self._load_or_build(make_parts, aotfn.__name__, load, build, pack,
                                   program.gm.graph.guards)

    def graph_entry(self, gm: Any, build: Callable[[], Any]) -> Any:
        """``kiln.compile``'s hook: the compiled function of a traced GraphModule."""
        def make_parts() -> keys.Ingredients:
            graph = {"kind": "graph", "graph": graph_to_obj(gm.graph),
                     "signature": gm.signature.to_obj() if gm.signature is not None else None,
                     "constants": _const_meta(gm)}
            return self._parts(graph, keys.specs_of(gm.graph.placeholders))

        def load(data: bytes, what: str) -> Any:
            art, prog_obj, funcs = entries.read_entry(data, what)
            if art.kind != entries.GRAPH_KIND:
                raise entries.container.ArtifactError(f"{what}: not a graph entry")
            pair = entries.graph_entry_from(prog_obj, funcs, what, live=gm.constants)
            assert pair is not None
            return pair[1]

        def pack(compiled: Any, meta: dict) -> bytes:
            return entries.graph_entry_bytes(gm, compiled, fn=self.fn, module=self.module,
                                             meta=meta)

        return self._load_or_build(make_parts, getattr(self.fn, "__name__", "fn"), load, build,
                                   pack, gm.graph.guards)


def _const_meta(gm: Any) -> dict:
    return {k: [list(map(str, t.shape)), t.dtype.name, bool(t.requires_grad)]
            for k, t in gm.constants.items() if isinstance(t, Tensor)}


def _aot_graph(program: Any, call: Any) -> dict:
    """The ``graph`` ingredient of an AOT program: the joint graph and the glue."""
    targets = ["closure" if not isinstance(t, int) else t for t in program.mutation_targets]
    return {"kind": "aot", "joint": graph_to_obj(program.gm.graph),
            "outputs": [program.num_user_outputs, program.out_spec.to_json(),
                        sorted(map(str, program.static_outputs.items()))],
            "names": list(program.input_names), "mutations": targets,
            "diff": list(program.diff_outputs), "grads": list(program.grad_inputs),
            "call": entries._call_to_obj(call), "constants": _const_meta(program.gm)}
