"""A Redis store shared by many machines, in front of the local store.

``KILN_CACHE_URL=redis://host:port/db`` (or ``rediss://``, ``unix://``) adds it; the
``redis`` client package (the ``redis`` extra) is needed then. Reads go to the local store
first and then to Redis; a remote hit is copied into the local store (read-through).
After a compile, the entry goes to both (write-back). Connections time out after 100 ms
and are not retried: a dead or unreachable server costs that once, then the process goes
on without it (one ``CacheWarning``).

Entries in Redis are the same signed containers as on disk, and every reader verifies
them: machines sharing a Redis cache share ``KILN_CACHE_SECRET``, and an unsigned or
mis-signed entry written by anyone else is refused, so a writable shared cache cannot
inject native code into its readers.

>>> TieredStore.parse_url("redis://localhost:6379/0")
'redis://localhost:6379/0'
>>> TieredStore.parse_url("") is None
True
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from kiln.artifacts.store import LocalStore, warn_once
from kiln.errors import ArgumentError

TIMEOUT_S = 0.1
_PREFIX = "kiln:"
_SCHEMES = ("redis://", "rediss://", "unix://")


class RedisStore:
    """Entries by key in one Redis database; turns itself off at the first error."""

    def __init__(self, url: str) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ArgumentError(f"KILN_CACHE_URL={url!r} needs the redis client package: "
                                "pip install 'kiln[redis]' (or unset KILN_CACHE_URL)") from None
        self.url = url
        self.alive = True
        self._errors = (redis.exceptions.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                           socket_connect_timeout=TIMEOUT_S,
                                           retry=Retry(NoBackoff(), 0), retry_on_timeout=False)

    def _dead(self, e: Exception) -> None:
        self.alive = False
        warn_once(f"KILN_CACHE_URL={self.url}", f"unreachable ({type(e).__name__}: {e}); "
                                                "going on without the shared cache")

    def get(self, name: str) -> bytes | None:
        if not self.alive:
            return None
        try:
            value = self.client.get(_PREFIX + name)
        except self._errors as e:
            self._dead(e)
            return None
        return bytes(value) if value is not None else None

    def put(self, name: str, data: bytes) -> None:
        if not self.alive:
            return
        try:
            self.client.set(_PREFIX + name, data)
        except self._errors as e:
            self._dead(e)


class TieredStore:
    """The local store (may be None) with a Redis store behind it; everything else (listing,
    eviction, paths) is the local store's."""

    def __init__(self, local: LocalStore | None, remote: RedisStore) -> None:
        self.local = local
        self.remote = remote
        self.writable = True

    @staticmethod
    def parse_url(url: str | None) -> str | None:
        """The URL when it names a Redis server, else None (one warning for a bad one)."""
        if not url or not url.strip():
            return None
        url = url.strip()
        if not url.startswith(_SCHEMES):
            warn_once("KILN_CACHE_URL", f"{url!r} is not a redis://, rediss:// or unix:// URL; "
                                        "ignored")
            return None
        return url

    @staticmethod
    def wrap(local: LocalStore | None) -> Any:
        """``local``, or a TieredStore over it when ``KILN_CACHE_URL`` is set."""
        url = TieredStore.parse_url(os.environ.get("KILN_CACHE_URL"))
        return local if url is None else TieredStore(local, RedisStore(url))

    def get(self, key: str, section: str = "entries", suffix: str = ".kart") -> bytes | None:
        if self.local is not None:
            data = self.local.get(key, section, suffix)
            if data is not None:
                return data
        data = self.remote.get(f"{section}:{key}")
        if data is not None and self.local is not None:
            self.local.put(key, data, section, suffix)  # read-through
        return data

    def put(self, key: str, data: bytes, section: str = "entries", suffix: str = ".kart"
            ) -> None:
        if self.local is not None:
            self.local.put(key, data, section, suffix)
        self.remote.put(f"{section}:{key}", data)

    def drop(self, key: str) -> None:
        if self.local is not None:
            self.local.drop(key)

    def lock(self, key: str) -> contextlib.AbstractContextManager:
        return self.local.lock(key) if self.local is not None else contextlib.nullcontext()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or self.__dict__.get("local") is None:
            raise AttributeError(name)
        return getattr(self.__dict__["local"], name)
