"""The byte envelope every serialized CompiledFunction travels in.

Layout: magic ``KILNCF01``, u32 little-endian length of a canonical-JSON header (backend
name, Kiln version, payload sha256 and length), the header, then the payload. Truncated or
altered bytes are detected before any backend sees them.
"""

from __future__ import annotations

import hashlib
import struct

from kiln.base import canonical
from kiln.errors import SerializationError

MAGIC = b"KILNCF01"


def write_envelope(backend: str, payload: bytes) -> bytes:
    from kiln import __version__

    header = canonical.dumps(
        {
            "backend": backend,
            "kiln_version": __version__,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
        }
    ).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + payload


def read_envelope(data: bytes) -> tuple[str, bytes]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 12 or data[:8] != MAGIC:
        raise SerializationError("not a serialized Kiln compiled function (bad magic)")
    (n,) = struct.unpack("<I", data[8:12])
    if 12 + n > len(data):
        raise SerializationError("truncated compiled function: header runs past the end")
    try:
        header = canonical.loads(data[12 : 12 + n])
    except ValueError as e:
        raise SerializationError(f"corrupt compiled-function header: {e}") from e
    payload = data[12 + n :]
    if not isinstance(header, dict) or not isinstance(header.get("backend"), str):
        raise SerializationError(f"corrupt compiled-function header: expected an object naming "
                                 f"the backend, got {header!r:.80}")
    if len(payload) != header.get("size"):
        raise SerializationError(
            f"truncated compiled function: payload has {len(payload)} "
            f"bytes, header says {header.get('size')}"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise SerializationError("compiled function payload fails its sha256 check")
    return header["backend"], payload
