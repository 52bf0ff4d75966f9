"""The file an exported library is, and the checks made before its code is loaded.

Layout: the ELF image the linker wrote, then a trailer the dynamic loader never reads::

    ELF image | trailer JSON | sha256(trailer JSON) (32 bytes) | length (u64 LE) | b"KILNAOT1"

The trailer JSON holds the manifest (what ``kiln_model_manifest()`` returns from inside the
library) plus what the library cannot hold about itself: the ELF image's length, the sha256
of its code (the image with the weight bytes left out) and where the embedded weights are.
:func:`verify` reads and checks all of it from the file's bytes, with no ``dlopen``: the
trailer's own hash, the format version, the architecture, the CPU features, the code's and
the weights' sha256 (an external weights file is hashed as well). The verified bytes are
what is loaded (from memory, so the file cannot change in between).

>>> tail = trailer_bytes({"manifest": {}})
>>> tail[-8:]
b'KILNAOT1'
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from typing import Any

from kiln.errors import BackendError, SerializationError

FORMAT = "kiln.aot_library"
FORMAT_VERSION = 1
MAGIC = b"KILNAOT1"
_TAIL = 32 + 8 + len(MAGIC)


def trailer_bytes(obj: dict) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return text + hashlib.sha256(text).digest() + len(text).to_bytes(8, "little") + MAGIC


def _weights_offset(elf: bytes, blob: bytes) -> int:
    """Where the embedded weights are in the image (the blob is 64-byte aligned there)."""
    if not blob:
        return -1
    start = elf.find(blob)
    while start >= 0 and start % 64:
        start = elf.find(blob, start + 1)
    if start < 0:
        raise BackendError("aot_compile: the weights are not in the linked library (did the "
                           "linker drop the section?)")
    return start


def code_digest(elf: bytes | memoryview, offset: int, size: int) -> str:
    elf = memoryview(elf)  # slices without copies: a library is mostly weights
    h = hashlib.sha256()
    if offset < 0:
        h.update(elf)
    else:
        h.update(elf[:offset])
        h.update(elf[offset + size:])
    return h.hexdigest()


def write_library(path: str, elf: bytes, manifest: dict, blob: bytes | None,
                  external: tuple[str, bytes] | None) -> None:
    """Write the library (and its external weights file first), each atomically."""
    from kiln.base.atomic import write_atomic  # not at import: aot_load never writes

    offset = _weights_offset(elf, blob) if blob is not None else -1
    size = len(blob) if blob is not None else 0
    trailer = {"manifest": manifest, "library_bytes": len(elf),
               "code_sha256": code_digest(elf, offset, size),
               "weights_offset": offset, "weights_size": size}
    if external is not None:
        write_atomic(external[0], external[1], durable=True)
    write_atomic(path, [elf, trailer_bytes(trailer)], durable=True)


def read_trailer(data: bytes, what: str = "library") -> tuple[memoryview, dict]:
    """(ELF image, trailer) from a library's bytes; SerializationError when they are not a
    complete Kiln library (truncated, appended to, or another file)."""
    if len(data) < _TAIL or data[-len(MAGIC):] != MAGIC:
        raise SerializationError(f"{what}: not a library written by kiln.aot_compile (no Kiln "
                                 "trailer at its end: truncated, or another file)")
    n = int.from_bytes(data[-16:-8], "little")
    if n <= 0 or n + _TAIL > len(data):
        raise SerializationError(f"{what}: the Kiln trailer's length {n} does not fit the file "
                                 f"of {len(data)} bytes (truncated?)")
    end = len(data) - _TAIL
    text = bytes(data[end - n:end])
    if hashlib.sha256(text).digest() != bytes(data[end:end + 32]):
        raise SerializationError(f"{what}: the Kiln trailer was modified (its hash differs)")
    try:
        trailer = json.loads(text)
    except ValueError as e:
        raise SerializationError(f"{what}: the Kiln trailer does not parse: {e}") from e
    if not isinstance(trailer, dict) or not isinstance(trailer.get("manifest"), dict):
        raise SerializationError(f"{what}: the Kiln trailer has no manifest")
    elf = memoryview(data)[:end - n]
    if trailer.get("library_bytes") != len(elf):
        raise SerializationError(f"{what}: the library image is {len(elf)} bytes, the trailer "
                                 f"says {trailer.get('library_bytes')} (truncated?)")
    return elf, trailer


def check_manifest(manifest: dict, what: str) -> None:
    """Format version, architecture and CPU features: can this machine run the library?"""
    from kiln.backends.c.cpu import cpu_flags, normalize_arch

    if manifest.get("format") != FORMAT:
        raise SerializationError(f"{what}: manifest format {manifest.get('format')!r}, "
                                 f"expected {FORMAT!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise SerializationError(
            f"{what}: written in Kiln library format version {version!r} (by Kiln "
            f"{manifest.get('kiln_version')}); this Kiln reads version {FORMAT_VERSION}: "
            "compile it again with this Kiln")
    here = normalize_arch(platform.machine())
    if manifest.get("arch") != here:
        raise BackendError(f"{what}: compiled for {manifest.get('arch')}, but this machine "
                           f"is {here}")
    have = cpu_flags()
    missing = [f for f in manifest.get("cpu_features", []) if have is not None and f not in have]
    if missing:
        raise BackendError(
            f"{what}: needs CPU features this CPU lacks: {', '.join(missing)} (built with "
            f"isa={manifest.get('isa')!r}); running it would crash on an illegal instruction. "
            "Compile it with a portable isa (options={'isa': 'x86-64-v2'} or 'armv8-a')")


def verify(path: str | os.PathLike[str]) -> tuple[memoryview, dict, bytes | None]:
    """Every check that can happen before ``dlopen`` (see the module docstring); returns the
    verified ELF image, the trailer and the external weights' bytes (None when embedded)."""
    what = os.fspath(path)
    data = _map(path, what)
    elf, trailer = read_trailer(data, what)
    manifest = trailer["manifest"]
    check_manifest(manifest, what)
    winfo = manifest.get("weights", {})
    offset, size = trailer.get("weights_offset", -1), trailer.get("weights_size", 0)
    if not isinstance(offset, int) or not isinstance(size, int) or offset + size > len(elf):
        raise SerializationError(f"{what}: the trailer's weights region is outside the image")
    external = None
    if winfo.get("mode") == "external":
        wpath = os.path.join(os.path.dirname(what), str(winfo.get("file", "")))
        try:
            with open(wpath, "rb") as f:
                external = f.read()
        except OSError as e:
            raise SerializationError(f"{what}: its weights file {wpath} cannot be read: "
                                     f"{e.strerror}") from e
        if hashlib.sha256(external).hexdigest() != winfo.get("sha256"):
            raise SerializationError(f"{what}: the weights file {wpath} differs from the one "
                                     "the library was built with (sha256 mismatch)")
    elif offset >= 0:
        if hashlib.sha256(elf[offset:offset + size]).hexdigest() != winfo.get("sha256"):
            raise SerializationError(f"{what}: the embedded weights were modified (sha256 "
                                     "mismatch)")
    if code_digest(elf, offset, size) != trailer.get("code_sha256"):
        raise SerializationError(f"{what}: the library's code was modified (sha256 mismatch)")
    return elf, trailer, external


def _map(path: str | os.PathLike[str], what: str) -> memoryview:
    """The file's bytes, mapped rather than read: hashing megabytes of weights then reads
    the page cache in place instead of copying it into fresh pages first."""
    import mmap

    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError) as e:
        raise SerializationError(f"aot_load: cannot read {what}: "
                                 f"{getattr(e, 'strerror', None) or e}") from e


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The trailer of a library, checked for integrity of the trailer only (for inspect)."""
    with open(path, "rb") as f:
        data = f.read()
    _, trailer = read_trailer(data, os.fspath(path))
    return trailer
