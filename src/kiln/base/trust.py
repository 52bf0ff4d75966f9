"""Signatures of artifacts that hold native code (stand-in until the safe-loading issue lands).

``sign(data)`` is HMAC-SHA256 under a secret: ``$KILN_CACHE_SECRET`` when set (machines that
share a cache share it), else a per-user key created once (mode 0600) under the user's config
directory. ``verify`` compares in constant time; ``require_signed`` raises
:class:`UntrustedArtifactError` naming what was refused.

>>> import os
>>> os.environ["KILN_CACHE_SECRET"] = "doc-secret"
>>> sig = sign(b"library bytes")
>>> verify(b"library bytes", sig), verify(b"other bytes", sig)
(True, False)
>>> del os.environ["KILN_CACHE_SECRET"]
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from kiln.errors import SerializationError


class UntrustedArtifactError(SerializationError):
    """An artifact holding native code whose signature is missing or does not verify."""


def _key_path() -> Path:
    env = os.environ.get("KILN_CONFIG_DIR")
    if env:
        return Path(env).expanduser() / "secret.key"
    import platformdirs

    return Path(platformdirs.user_config_dir("kiln", appauthor=False)) / "secret.key"


def _secret() -> bytes:
    env = os.environ.get("KILN_CACHE_SECRET")
    if env:
        return env.encode()
    path = _key_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


def sign(data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under this user's (or ``KILN_CACHE_SECRET``'s) key."""
    return hmac.new(_secret(), bytes(data), hashlib.sha256).digest()


def verify(data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``sign(data)``."""
    if not isinstance(signature, (bytes, bytearray)):
        return False
    return hmac.compare_digest(sign(data), bytes(signature))


def require_signed(data: bytes, signature: bytes | None, what: str) -> None:
    """Raise :class:`UntrustedArtifactError` unless ``signature`` verifies ``data``."""
    if signature is None:
        raise UntrustedArtifactError(f"{what}: holds native code but carries no signature; "
                                     "refusing to load it")
    if not verify(data, signature):
        raise UntrustedArtifactError(f"{what}: signature does not verify (another key signed "
                                     "it, or it was altered); refusing to load native code. "
                                     "Machines sharing a cache share KILN_CACHE_SECRET")
