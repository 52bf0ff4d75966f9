"""The one container every Kiln compiled artifact travels in (see docs/artifacts.md).

Layout (all integers little-endian)::

    magic        8 bytes   b"KILNART\\x00"
    version      u32       FORMAT_VERSION (this Kiln reads every version in READABLE)
    header_len   u32       length of the header
    header       canonical JSON (sorted keys, UTF-8):
                   kind, kiln_version, platform {system, machine}, cpu_features [names],
                   sections [{name, length, sha256}], meta {...}, checksum (sha256 of
                   the header without checksum and signature), signature (hex or null)
    sections     the raw bytes of each section, in header order, back to back

Tensors inside a section are safetensors; metadata is JSON. Every length is checked
against the data before a byte of a section is read, every section against its SHA-256,
and the whole against its size. Artifacts that hold native code carry an HMAC signature
(:mod:`kiln.base.trust`) over the header without its ``signature`` field, which covers
every section through their hashes; the reader, not the header, decides whether a
signature is required, so a header edited to say "no native code" gains nothing.

This module sits below ``kiln.artifacts`` because the backends write it too.

>>> data = write("example", {"notes": b"hello"}, meta={"answer": 42})
>>> art = read(data, kinds=("example",))
>>> art.kind, art.sections["notes"], art.meta["answer"]
('example', b'hello', 42)
"""

from __future__ import annotations

import hashlib
import platform
import struct
from typing import Any

from kiln.base import canonical
from kiln.errors import SerializationError

MAGIC = b"KILNART\x00"
FORMAT_VERSION = 1
READABLE = (1,)
_PRELUDE = struct.Struct("<8sII")
# Far above any real header (a few KiB); a forged length fails here, not in an allocation.
MAX_HEADER = 16 << 20
# Character sets, not regexes: compiling a pattern costs a tenth of a millisecond of every
# warm start.
_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
_HEX_DIGITS = "0123456789abcdef"


def _is_name(s: str) -> bool:
    """``[A-Za-z0-9_.:-]{1,64}``."""
    return 0 < len(s) <= 64 and not s.strip(_NAME_CHARS)


def _is_hex64(s: str) -> bool:
    """``[0-9a-f]{64}``."""
    return len(s) == 64 and not s.strip(_HEX_DIGITS)


class ArtifactError(SerializationError):
    """A compiled artifact that is truncated, altered, foreign or from a future Kiln."""


class Artifact:
    """A container read and checked: its kind, sections (name -> bytes) and metadata.
    (A plain class: a dataclass would cost half a millisecond of every warm start.)"""

    __slots__ = ("kind", "sections", "meta", "header", "version", "signed")

    def __init__(self, kind: str, sections: dict[str, bytes], meta: dict[str, Any] | None = None,
                 header: dict[str, Any] | None = None, version: int = FORMAT_VERSION,
                 signed: bool = False) -> None:
        self.kind = kind
        self.sections = sections
        self.meta = {} if meta is None else meta
        self.header = {} if header is None else header
        self.version = version
        self.signed = signed

    def __repr__(self) -> str:
        return (f"Artifact(kind={self.kind!r}, sections={list(self.sections)}, "
                f"version={self.version}, signed={self.signed})")


def this_platform() -> dict[str, str]:
    from kiln.backends.c.cpu import normalize_arch

    return {"system": platform.system().lower(), "machine": normalize_arch(platform.machine())}


def write(kind: str, sections: dict[str, bytes], *, meta: dict | None = None,
          cpu_features: list[str] | tuple[str, ...] = (), sign: bool = False) -> bytes:
    """The container bytes for ``sections``; ``sign=True`` for artifacts with native code."""
    from kiln import __version__

    for name in sections:
        if not _is_name(name):
            raise ArtifactError(f"write: section name {name!r} is not [A-Za-z0-9_.:-]{{1,64}}")
    header: dict[str, Any] = {
        "kind": kind,
        "kiln_version": __version__,
        "platform": this_platform(),
        "cpu_features": sorted(set(cpu_features)),
        "sections": [{"name": n, "length": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                     for n, b in sections.items()],
        "meta": dict(meta or {}),
        "signature": None,
    }
    header["checksum"] = _checksum(header)
    if sign:
        from kiln.base.trust import sign as hmac_sign

        header["signature"] = hmac_sign(_signed_bytes(header)).hex()
    text = canonical.dumps(header).encode()
    return b"".join([_PRELUDE.pack(MAGIC, FORMAT_VERSION, len(text)), text,
                     *(bytes(b) for b in sections.values())])


def _signed_bytes(header: dict) -> bytes:
    return canonical.dumps({k: v for k, v in header.items() if k != "signature"}).encode()


def _checksum(header: dict) -> str:
    """SHA-256 of the header without ``checksum`` and ``signature``: integrity of the header
    for artifacts without a signature (the sections have their own hashes)."""
    rest = {k: v for k, v in header.items() if k not in ("checksum", "signature")}
    return hashlib.sha256(canonical.dumps(rest).encode()).hexdigest()


def read(data: Any, *, kinds: tuple[str, ...] | None = None, require_signature: bool = False,
         what: str = "artifact") -> Artifact:
    """Parse and check a container; raises :class:`ArtifactError` (or, for a signature,
    ``UntrustedArtifactError``) naming what is wrong. Nothing in it is executed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArtifactError(f"{what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _PRELUDE.size or data[:8] != MAGIC:
        raise ArtifactError(f"{what}: not a Kiln compiled artifact (bad magic {data[:8]!r})")
    _, version, n = _PRELUDE.unpack_from(data)
    if version not in READABLE:
        newer = " (written by a newer Kiln)" if version > FORMAT_VERSION else ""
        raise ArtifactError(f"{what}: format version {version} is not readable{newer}; this "
                            f"Kiln reads versions {list(READABLE)}")
    if n > MAX_HEADER or _PRELUDE.size + n > len(data):
        raise ArtifactError(f"{what}: truncated: the header says {n} bytes, "
                            f"{len(data) - _PRELUDE.size} follow the prelude")
    header = _parse_header(data[_PRELUDE.size:_PRELUDE.size + n], what)
    if kinds is not None and header["kind"] not in kinds:
        raise ArtifactError(f"{what}: is a {header['kind']!r} artifact, expected "
                            f"{' or '.join(map(repr, kinds))}")
    offset = _PRELUDE.size + n
    total = offset + sum(s["length"] for s in header["sections"])
    if total != len(data):
        raise ArtifactError(f"{what}: {'truncated' if total > len(data) else 'trailing data'}: "
                            f"the header describes {total} bytes, got {len(data)}")
    sections: dict[str, bytes] = {}
    for s in header["sections"]:
        body = data[offset:offset + s["length"]]
        offset += s["length"]
        if hashlib.sha256(body).hexdigest() != s["sha256"]:
            raise ArtifactError(f"{what}: section {s['name']!r} fails its SHA-256 check")
        sections[s["name"]] = body
    signature = header["signature"]
    if require_signature or signature is not None:
        from kiln.base.trust import require_signed

        sig = bytes.fromhex(signature) if signature is not None else None
        require_signed(_signed_bytes(header), sig, what)
    if require_signature:
        check_native(header, what)
    return Artifact(header["kind"], sections, header["meta"], header, version,
                    signature is not None)


def peek_header(prefix: bytes, what: str = "artifact") -> dict:
    """The checked header of a container from its first bytes (the sections may be absent:
    for listing a store without reading every entry)."""
    if len(prefix) < _PRELUDE.size or prefix[:8] != MAGIC:
        raise ArtifactError(f"{what}: not a Kiln compiled artifact (bad magic)")
    _, version, n = _PRELUDE.unpack_from(prefix)
    if version not in READABLE or n > MAX_HEADER or _PRELUDE.size + n > len(prefix):
        raise ArtifactError(f"{what}: unreadable header (version {version}, {n} bytes)")
    return _parse_header(prefix[_PRELUDE.size:_PRELUDE.size + n], what)


def _parse_header(text: bytes, what: str) -> dict:
    """The header, checked: it parses, is written canonically (so no byte of it can change
    unnoticed), has the schema, and matches its checksum."""
    try:
        header = canonical.loads(text)
        canonical_text = canonical.dumps(header).encode()
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{what}: header does not parse: {e}") from e
    if canonical_text != text:
        raise ArtifactError(f"{what}: header is not canonical JSON (altered)")
    _check_header(header, what)
    if header.get("checksum") != _checksum(header):
        raise ArtifactError(f"{what}: header fails its checksum (altered)")
    return header


def _check_header(h: Any, what: str) -> None:
    def bad(why: str) -> ArtifactError:
        return ArtifactError(f"{what}: malformed header: {why}")

    if not isinstance(h, dict):
        raise bad(f"expected a JSON object, got {type(h).__name__}")
    want = {"kind": str, "kiln_version": str, "platform": dict, "cpu_features": list,
            "sections": list, "meta": dict}
    for key, typ in want.items():
        if not isinstance(h.get(key), typ):
            raise bad(f"field {key!r} should be a {typ.__name__}, got {h.get(key)!r:.60}")
    if h.get("signature") is not None and not (
            isinstance(h["signature"], str) and _is_hex64(h["signature"])):
        raise bad("field 'signature' should be 64 hex digits or null")
    h.setdefault("signature", None)
    if not all(isinstance(f, str) for f in h["cpu_features"]):
        raise bad("cpu_features should be a list of names")
    seen: set[str] = set()
    for s in h["sections"]:
        if not isinstance(s, dict):
            raise bad(f"a section entry is {s!r:.60}, not an object")
        name, length, digest = s.get("name"), s.get("length"), s.get("sha256")
        if not isinstance(name, str) or not _is_name(name) or name in seen:
            raise bad(f"section name {name!r:.60} is not a unique [A-Za-z0-9_.:-]{{1,64}}")
        seen.add(name)
        if type(length) is not int or not 0 <= length < 1 << 40:
            raise bad(f"section {name!r}: length {length!r:.60} is not a size")
        if not isinstance(digest, str) or not _is_hex64(digest):
            raise bad(f"section {name!r}: sha256 {digest!r:.60} is not 64 hex digits")


def check_native(header: dict, what: str) -> None:
    """Raise unless this machine can run the native code of an artifact with ``header``:
    the same OS and architecture, and every CPU feature the code needs."""
    here = this_platform()
    there = header["platform"]
    if (there.get("system"), there.get("machine")) != (here["system"], here["machine"]):
        raise ArtifactError(f"{what}: built for {there.get('system')}/{there.get('machine')}, "
                            f"this machine is {here['system']}/{here['machine']}")
    from kiln.backends.c.cpu import cpu_flags

    have = cpu_flags()
    missing = [f for f in header["cpu_features"] if have is not None and f not in have]
    if missing:
        raise ArtifactError(f"{what}: needs CPU features this CPU lacks: {', '.join(missing)}")
