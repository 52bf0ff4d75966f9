"""Who may hand this process native code: HMAC-SHA256 signatures under a per-user key.

A file that carries native code (a C artifact's shared library, a prebuilt object or
library in Kiln's on-disk cache) runs code the moment it is loaded. A SHA-256 beside the
bytes only detects accidents: whoever replaces the bytes recomputes it. So such bytes are
signed with HMAC-SHA256 under a secret key, and checked *on the bytes*, before they reach
``dlopen`` or the linker (see docs/security.md).

The key is, in order:

- ``KILN_CACHE_SECRET`` if set (any string; a fleet of machines sharing a cache or shipping
  artifacts to each other sets the same value);
- else ``<cache dir>/secret.key``: 32 random bytes Kiln creates once per user, mode 0600,
  in a cache directory that passed :func:`kiln.base.cachedir.usable_root`'s checks;
- else (cache turned off or refused) a key made for this process only: what it signs loads
  in this process and nowhere else.

>>> sig = sign(b"library bytes")
>>> len(sig), verify(b"library bytes", sig), verify(b"other bytes", sig)
(32, True, False)
>>> from kiln.errors import UntrustedArtifactError
>>> try:
...     require_signed(b"other bytes", sig, "example")
... except UntrustedArtifactError as e:
...     print(str(e)[:52])
example: the signature does not verify under this us
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import threading
import warnings
from pathlib import Path

from kiln.errors import ArgumentError, UntrustedArtifactError

__all__ = ["sign", "verify", "require_signed", "check_trust", "key_source", "SIGNATURE_BYTES"]

SECRET_ENV = "KILN_CACHE_SECRET"
KEY_FILE = "secret.key"
SIGNATURE_BYTES = 32
TRUST_MODES = ("signed", "any")
_KEY_BYTES = 32

_lock = threading.Lock()
_keys: dict[tuple, bytes] = {}
_process_key = secrets.token_bytes(_KEY_BYTES)
_warned: set[str] = set()


def _key() -> tuple[bytes, str]:
    """The signing key and where it comes from (``"env"``, a key file path, ``"process"``)."""
    secret = os.environ.get(SECRET_ENV)
    if secret:
        # Derived, so that the same secret used elsewhere does not sign Kiln's bytes as is.
        return hashlib.sha256(b"kiln-cache-secret\0" + secret.encode()).digest(), "env"
    from kiln.base import cachedir

    root = cachedir.usable_root()
    if root is None:
        return _process_key, "process"
    path = root / KEY_FILE
    with _lock:
        hit = _keys.get((str(path),))
        if hit is not None:
            return hit, str(path)
        key = _read_or_create(path)
        if key is None:
            return _process_key, "process"
        _keys[(str(path),)] = key
    return key, str(path)


def key_source() -> str:
    """Where the signing key comes from: ``"env"`` (``KILN_CACHE_SECRET``), the key file's
    path, or ``"process"`` (a key that lives as long as this process).

    >>> isinstance(key_source(), str)
    True
    """
    return _key()[1]


def _read_or_create(path: Path) -> bytes | None:
    key = _read(path)
    if key is not None or path.exists():
        return key
    # Written beside, then hard-linked into place: two processes creating the key at once
    # agree on one (link fails if the name exists), and no reader sees a partial key.
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        _warn_once(str(path), f"kiln: cannot create the signing key {path} ({exc}); native "
                              "code signed now loads only in this process")
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return _read(path)


def _read(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        _warn_once(str(path), f"kiln: cannot read the signing key {path} ({exc}); native "
                              "code signed now loads only in this process")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(_KEY_BYTES + 1)
    why = None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        why = f"it is owned by uid {st.st_uid}, not by this user ({os.getuid()})"
    elif stat.S_IMODE(st.st_mode) & 0o077:
        why = f"its mode is {oct(stat.S_IMODE(st.st_mode))}, readable or writable by others"
    elif len(data) != _KEY_BYTES:
        why = f"it holds {len(data)} bytes, not {_KEY_BYTES}"
    if why is not None:
        _warn_once(str(path), f"kiln: refusing the signing key {path}: {why}; native code "
                              "signed now loads only in this process (delete the file to "
                              "make a new key)")
        return None
    return data


def _warn_once(what: str, message: str) -> None:
    with _lock:
        if what in _warned:
            return
        _warned.add(what)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def sign(data: bytes) -> bytes:
    """The HMAC-SHA256 of ``data`` under this user's key (32 bytes).

    >>> sign(b"x") == sign(b"x") != sign(b"y")
    True
    """
    return hmac.new(_key()[0], bytes(data), hashlib.sha256).digest()


def verify(data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is :func:`sign` of ``data`` under this user's key (a constant-time
    comparison; a signature of the wrong type or length is simply not valid).

    >>> verify(b"x", sign(b"x")), verify(b"x", b""), verify(b"x", None)
    (True, False, False)
    """
    if not isinstance(signature, (bytes, bytearray, memoryview)):
        return False
    signature = bytes(signature)
    if len(signature) != SIGNATURE_BYTES:
        return False
    return hmac.compare_digest(sign(data), signature)


def require_signed(data: bytes, signature: bytes | None, what: str) -> None:
    """Raise :class:`~kiln.errors.UntrustedArtifactError` naming ``what`` unless ``signature``
    verifies for ``data``; call it before the bytes reach any loader.

    >>> require_signed(b"lib", sign(b"lib"), "a library")
    """
    if signature is None or len(signature) == 0:
        raise UntrustedArtifactError(
            f"{what}: carries native code but no signature; refusing to load it. Rebuild it "
            "with this Kiln, or load it with trust=\"any\" if you know where it came from")
    if not verify(data, signature):
        raise UntrustedArtifactError(
            f"{what}: the signature does not verify under this user's key "
            f"({SECRET_ENV} or {KEY_FILE} in the cache directory); refusing to load its "
            "native code. Sign it here by rebuilding it, or load it with trust=\"any\" if you "
            "know where it came from")


def check_trust(trust: str, what: str) -> bool:
    """Validate a loader's ``trust`` argument; True when signatures must be checked.
    ``trust="any"`` is an opt-out, and says so with a warning every time it is used.

    >>> check_trust("signed", "example")
    True
    """
    if trust not in TRUST_MODES:
        raise ArgumentError(f"{what}: trust must be one of {TRUST_MODES}, got {trust!r}")
    if trust == "any":
        warnings.warn(f"{what}: loading native code without checking its signature "
                      "(trust=\"any\"): it runs with this process's rights, whoever wrote "
                      "it", RuntimeWarning, stacklevel=3)
        return False
    return True
