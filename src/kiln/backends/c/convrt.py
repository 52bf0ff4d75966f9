"""Conv and pool kernels as prebuilt objects, compiled once per process and linked into
every graph library that calls them.

``kiln_conv.h`` is large: a translation unit that calls the forward convolution takes ~1.3 s
to compile, and a training step calls three to five such kernels from two graphs. So the
generated C only declares exported wrappers (``kiln_rt_conv2d_f32`` ...), each compiled into
its own object (in parallel, once per process, per toolchain fingerprint and flags), and the
objects are linked into the graph's shared library. The library bytes stay self-contained,
so serialization is unaffected. The objects are also kept in Kiln's on-disk cache
(:mod:`kiln.base.cachedir`), keyed by the headers, the wrapper source, the compiler's fingerprint
and the flags, so later processes link them without compiling.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from kiln.backends.c import conv_kernels as ck
from kiln.base import cachedir
from kiln.base.debug import debug_level
from kiln.errors import CompileError

_POINTERS = {"x", "w", "bias", "residual", "out", "g", "dx", "dweight", "ws"}
_INTS = {"act", "count_include_pad"}

_lock = threading.Lock()
_objects: dict[tuple, str] = {}
_dir: list[str] = []


def wrapper_name(op: str, dtype: str) -> str:
    return ck.function_name(op, dtype).replace("kiln_", "kiln_rt_", 1)


def _params(op: str) -> list[tuple[str, str]]:
    out = []
    for a in ck.call_args(op):
        out.append(("void *" if a in _POINTERS else "int" if a in _INTS else "int64_t", a))
    return out


def prototype(op: str, dtype: str) -> str:
    params = ", ".join(f"{t}{'' if t.endswith('*') else ' '}{a}" for t, a in _params(op))
    return f"int {wrapper_name(op, dtype)}({params});"


def _source(op: str, dtype: str) -> str:
    ctype = "float" if dtype == "float32" else "double"
    args = ", ".join(f"({ctype} *){a}" if t.endswith("*") and a != "ws" else a
                     for t, a in _params(op))
    return (f'#include "kiln_gemm.h"\n#include "kiln_conv.h"\n{prototype(op, dtype)}\n'
            f"{prototype(op, dtype)[:-1]} {{ return {ck.function_name(op, dtype)}({args}); }}\n")


def prebuild(ops: Sequence[str] = ck.OPS, dtypes: Sequence[str] = ("float32",)) -> list[str]:
    """Build (or find in the on-disk cache) the objects of ``ops`` x ``dtypes`` with the flags
    native graph libraries use, so that no later compile on this machine waits for them
    (``kiln cache prebuild``; each object is seconds of compiler time, built once per
    machine, compiler and Kiln version). Returns the object paths.

    >>> paths = prebuild(ops=("max_pool2d",))  # doctest: +SKIP
    """
    from kiln.backends.c.backend import build_flags

    # graphs that call these kernels always link a GEMM (the convolutions use it)
    tc, extra, _, _ = build_flags("native", uses_gemm=True)
    return objects([(op, d) for op in ops for d in dtypes], tc.argv,
                   [*tc.flags_for("native"), *extra], tc.fingerprint("native"))


def _workdir() -> str:
    if not _dir:
        from kiln.backends.c.toolchain import build_root

        _dir.append(tempfile.mkdtemp(prefix="kiln-rt-", dir=build_root()))
        atexit.register(shutil.rmtree, _dir[0], True)
    return _dir[0]


def objects(funcs: Sequence[tuple[str, str]], argv: Sequence[str], flags: Sequence[str],
            fingerprint: str) -> list[str]:
    """Object files for ``(op, dtype)`` wrappers, compiled with ``argv + flags`` (cached)."""
    from kiln.backends.c.blas import RUNTIME_DIR
    from kiln.backends.c.toolchain import _produced_nothing, _run, os_error

    headers = "".join(p.read_text() for p in sorted(RUNTIME_DIR.glob("kiln_*.h")))
    salt = hashlib.sha256((headers + fingerprint + " ".join(flags)).encode()).hexdigest()[:16]
    todo: list[tuple[tuple, str, str]] = []
    paths: list[str] = []
    with _lock:
        try:
            workdir = _workdir()
        except OSError as exc:
            raise os_error(exc, "creating the conv runtime's build directory") from exc
        for op, dtype in sorted(set(funcs)):
            key = (op, dtype, salt)
            path = _objects.get(key)
            if path is None:
                path = str(Path(workdir, f"{wrapper_name(op, dtype)}-{salt}.o"))
                todo.append((key, op, dtype))
            paths.append(path)

    def build(item: tuple[tuple, str, str]) -> None:
        key, op, dtype = item
        name = f"{wrapper_name(op, dtype)}-{key[2]}"
        source = _source(op, dtype)
        digest = hashlib.sha256((key[2] + source).encode()).hexdigest()[:16]
        cached = cachedir.cache_path("c-runtime", f"{wrapper_name(op, dtype)}-{digest}.o")
        # A signed entry, built by an earlier process with the same compiler and flags; a
        # replaced or unsigned one is a miss (cachedir.load checks before it is linked).
        data = cachedir.load(cached)
        if data is not None:
            Path(workdir, f"{name}.o.tmp").write_bytes(data)
            os.replace(Path(workdir, f"{name}.o.tmp"), Path(workdir, f"{name}.o"))
            with _lock:
                _objects[key] = str(Path(workdir, f"{name}.o"))
            return
        src = Path(workdir, f"{name}.c")
        src.write_text(source)
        cmd = [*argv, *flags, f"-I{RUNTIME_DIR}", "-c", "-o", f"{name}.o.tmp", src.name]
        if debug_level() >= 2:
            import shlex
            import sys

            print(f"[kiln] (cd {workdir} && {shlex.join(cmd)})", file=sys.stderr)
        res = _run(cmd, cwd=workdir)  # kills the compiler's children too on a timeout
        if res.returncode != 0:
            raise CompileError(f"C compiler failed on the conv runtime ({op}, {dtype}); "
                               f"sources kept in {workdir}\n{res.stderr[-4000:]}")
        obj = Path(workdir, f"{name}.o.tmp")
        if not obj.is_file() or obj.stat().st_size == 0:
            raise _produced_nothing(argv, f"object file for the conv runtime ({op}, {dtype})")
        os.replace(obj, Path(workdir, f"{name}.o"))
        cachedir.store(cached, Path(workdir, f"{name}.o").read_bytes())
        with _lock:
            _objects[key] = str(Path(workdir, f"{name}.o"))

    if todo:
        from kiln.backends.c.progress import build_progress

        workers = min(len(todo), os.cpu_count() or 1)
        names = [wrapper_name(op, dtype) for _, op, dtype in todo]
        try:
            with build_progress("the conv runtime", names) as done, \
                    concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:

                def build_one(item: tuple[tuple, str, str], name: str) -> None:
                    build(item)
                    done(name)

                for fut in [pool.submit(build_one, item, name)
                            for item, name in zip(todo, names, strict=True)]:
                    fut.result()
        except OSError as exc:  # a full or unwritable temp directory
            raise os_error(exc, "building the conv runtime") from exc
    return paths
