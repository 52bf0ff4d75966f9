"""The saved script file: a zip that holds data only, and a loader that distrusts it.

Members (stored uncompressed, in this order, with fixed timestamps):

============================  ==========================================================
``version``                   ``{"format": "kiln.jit", "version": 1}`` (one signature)
                              or ``2`` (several)
``program.json``              the GraphModule JSON of the first signature: graph (control
                              flow included), signature, constant digests (what runs)
``programs/<k>.json``         version 2: the program of signature ``k`` = 1, 2, ...
``constants.json``            version 2: for each program, its constant keys -> the names
                              they are stored under (equal tensors stored once)
``tensors.safetensors``       the constants (parameters and buffers)
``code/forward.py``           the readable code of the program, for people; never executed
``code/forward.<k>.py``       version 2: the code of signature ``k``
``extra/<name>``              the ``_extra_files`` given to ``save``
``manifest.json``             the SHA-256 of every member above
============================  ==========================================================

Loading reads the member list (sizes bounded), checks the version and every SHA-256 in the
manifest, and only then parses the program: JSON (validated and linted, subgraphs too) and
safetensors; nothing is imported by name or evaluated. Last, the file must be exactly the
bytes this writer produces for that content, so a change anywhere in the zip (a header, a
timestamp, a comment, trailing bytes) is refused, not silently accepted. Version 1 files
(every file written before several signatures were saved) load as before.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiln.base import canonical
from kiln.errors import ArgumentError, KilnError, SerializationError

FORMAT = "kiln.jit"
VERSION = 2  # the newest this Kiln reads and writes; 1 is still read (one signature)
MAX_PROGRAMS = 64
MAX_MEMBER_BYTES = 1 << 31  # a single member past 2 GiB is refused before it is read
MAX_MEMBERS = 4096
_DATE = (1980, 1, 1, 0, 0, 0)
_FIXED = ("version", "program.json", "tensors.safetensors")
# numbered members of version 2: 1..MAX_PROGRAMS-1, no leading zeros (one name per number)
_PROGRAM_MEMBER = re.compile(r"programs/[1-9][0-9]{0,2}\.json|code/forward\.[1-9][0-9]{0,2}\.py")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(programs: list[str], tensors: bytes, codes: list[str], extra: Mapping[str, Any],
          constants: Mapping[str, Mapping[str, str]] | None = None) -> bytes:
    """The archive bytes (deterministic: the same content gives the same bytes). One program
    (and code) per saved signature; ``constants`` maps each program's constant keys to their
    names in ``tensors`` (needed when there are several programs)."""
    if not programs or len(programs) != len(codes) or len(programs) > MAX_PROGRAMS:
        raise ArgumentError(f"a script file holds 1 to {MAX_PROGRAMS} programs with one code "
                            f"each, got {len(programs)} programs and {len(codes)} codes")
    several = len(programs) > 1
    members: list[tuple[str, bytes]] = [
        ("version", canonical.dumps({"format": FORMAT, "version": 2 if several else 1})
         .encode()),
        ("program.json", programs[0].encode()),
    ]
    members += [(f"programs/{k}.json", p.encode()) for k, p in enumerate(programs) if k]
    if several:
        members.append(("constants.json", canonical.dumps(
            {str(k): dict(sorted((constants or {})[str(k)].items()))
             for k in range(len(programs))}).encode()))
    members.append(("tensors.safetensors", tensors))
    members.append(("code/forward.py", codes[0].encode()))
    members += [(f"code/forward.{k}.py", c.encode()) for k, c in enumerate(codes) if k]
    for name in sorted(extra):
        value = extra[name]
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ArgumentError(f"_extra_files: names must be plain file names, got {name!r}")
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, (bytes, bytearray)):
            raise ArgumentError(f"_extra_files[{name!r}] must be str or bytes, got "
                                f"{type(value).__name__}")
        members.append((f"extra/{name}", bytes(value)))
    manifest = canonical.dumps({"sha256": {n: _sha(d) for n, d in members}}).encode()
    members.append(("manifest.json", manifest))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, data)
    return buf.getvalue()


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
               KeyError, IndexError, NotImplementedError, RuntimeError, OverflowError,
               UnicodeDecodeError, TypeError, AttributeError, AssertionError)


@dataclass(frozen=True)
class Contents:
    """What a checked archive holds: one program JSON per saved signature, the tensors, the
    programs' constant-name maps (empty for a single program: it reads every tensor), and
    the extra files."""

    programs: list[str]
    tensors: bytes
    constants: dict[str, dict[str, str]]
    extra: dict[str, bytes]


def read(data: bytes) -> Contents:
    """Check and unpack archive bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise ArgumentError(f"kiln.jit.load: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        members = _read_members(data)
    except SerializationError:
        raise
    except _ZIP_ERRORS as e:  # zipfile's own parsing: a broken or hostile zip
        raise SerializationError(f"not a readable Kiln script file: {type(e).__name__}: "
                                 f"{e}") from None
    version = _check_version(members["version"])
    _check_manifest(members)
    count = 1
    while f"programs/{count}.json" in members:
        count += 1
    expected = {f"programs/{k}.json" for k in range(1, count)} | \
        {f"code/forward.{k}.py" for k in range(1, count)}
    got = {n for n in members if _PROGRAM_MEMBER.fullmatch(n)}
    if count > MAX_PROGRAMS or got != expected or (version == 1) != (count == 1) or \
            (count > 1) != ("constants.json" in members):
        raise SerializationError(f"script file version {version} holds programs and code "
                                 f"members that do not pair up: {sorted(got ^ expected)[:4]}")
    try:
        programs = [members["program.json"].decode()] + \
            [members[f"programs/{k}.json"].decode() for k in range(1, count)]
    except UnicodeDecodeError as e:
        raise SerializationError(f"script file member is not UTF-8: {e}") from None
    constants: dict[str, dict[str, str]] = {}
    if count > 1:
        obj = _json(members["constants.json"], "the constants map")
        if not isinstance(obj, dict) or set(obj) != {str(k) for k in range(count)} or \
                not all(isinstance(m, dict) and all(isinstance(a, str) and isinstance(b, str)
                                                    for a, b in m.items())
                        for m in obj.values()):
            raise SerializationError("the constants map must give each program a "
                                     "{key: stored name} object")
        constants = obj
    extra = {n[len("extra/"):]: d for n, d in members.items() if n.startswith("extra/")}
    return Contents(programs, members["tensors.safetensors"], constants, extra)


def _read_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise SerializationError(f"script file has {len(infos)} members (at most "
                                     f"{MAX_MEMBERS})")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise SerializationError("script file has duplicate member names")
        for name in (*_FIXED, "code/forward.py", "manifest.json"):
            if name not in names:
                raise SerializationError(f"script file lacks its {name!r} member")
        for info in infos:
            n = info.filename
            if n not in (*_FIXED, "code/forward.py", "manifest.json", "constants.json") and \
                    not _PROGRAM_MEMBER.fullmatch(n) and not (
                    n.startswith("extra/") and "/" not in n[6:] and len(n) > 6):
                raise SerializationError(f"script file has an unexpected member {n!r}")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise SerializationError(f"member {n!r} is compressed or encrypted; Kiln "
                                         "writes stored members only")
            if info.file_size > MAX_MEMBER_BYTES:
                raise SerializationError(f"member {n!r} is {info.file_size} bytes (limit "
                                         f"{MAX_MEMBER_BYTES})")
        return {info.filename: zf.read(info) for info in infos}


def _json(member: bytes, what: str) -> Any:
    try:
        return json.loads(member.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SerializationError(f"{what} is not JSON: {e}") from None


def _check_version(member: bytes) -> int:
    obj = _json(member, "the version record")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise SerializationError("not a Kiln script file (the version record names another "
                                 "format)")
    v = obj.get("version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise SerializationError(f"script file version must be an int, got {v!r}")
    if v > VERSION:
        raise SerializationError(f"script file version {v} was written by a newer Kiln; "
                                 f"this one reads version {VERSION}")
    if v < 1:
        raise SerializationError(f"script file version {v} is not supported (expected 1 to "
                                 f"{VERSION})")
    return v


def _check_manifest(members: dict[str, bytes]) -> None:
    obj = _json(members["manifest.json"], "the manifest")
    sums = obj.get("sha256") if isinstance(obj, dict) else None
    if not isinstance(sums, dict):
        raise SerializationError("the manifest must be {'sha256': {member: digest}}")
    listed = set(sums)
    present = set(members) - {"manifest.json"}
    if listed != present:
        raise SerializationError(f"the manifest lists {sorted(listed ^ present)[:4]} "
                                 "differently from the file's members")
    for name in sorted(present):
        if sums[name] != _sha(members[name]):
            raise SerializationError(f"member {name!r} does not match its SHA-256 in the "
                                     "manifest: the file was modified or is corrupt")


def load_bytes_or_path(source: Any) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, io.IOBase) or hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ArgumentError("kiln.jit.load: the buffer must be opened in binary mode")
        return bytes(data)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                return f.read()
        except OSError as e:
            raise SerializationError(f"{os.fspath(source)}: {e}") from None
    raise ArgumentError(f"kiln.jit.load: expected a path, bytes or a binary buffer, got "
                        f"{type(source).__name__}")


def same_bytes(data: bytes, rebuilt: bytes) -> None:
    if data != rebuilt:
        raise SerializationError("the script file is not the bytes Kiln writes for its "
                                 "content (zip headers, order or trailing bytes were changed)")


__all__ = ["Contents", "write", "read", "KilnError"]
