"""Find a C compiler, build shared libraries from C source, and load them without files.

This is the native floor of the C backend: it knows nothing about graphs. It turns a dict of
C sources into the bytes of a shared library, and turns such bytes into a ``ctypes.CDLL``.

>>> tc = find_compiler()
>>> tc.kind in ("gcc", "clang", "zig")
True
>>> lib = compile_shared({"add.c": "int add(int a, int b) { return a + b; }"})
>>> load_library(lib.data, "add").add(2, 3)
5

Flags (see :meth:`Toolchain.flags_for`): ``-O3 -std=c11 -fPIC``, ``-fopenmp`` when the compiler
supports it (``KILN_OPENMP=0`` leaves it out), ``-fno-math-errno -fno-trapping-math`` (lets
loops calling math functions vectorize; NaN and inf still propagate, unlike ``-ffast-math``),
``-ffp-contract=off`` (no silent FMA contraction, so ``a*b+c`` rounds twice exactly like NumPy
and results do not change between ``native`` and ``portable``), and ``-march=native`` or a
portable baseline.

``KILN_DEBUG=2`` prints every compile command and the sources to stderr.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from kiln.backends.c.dynlib import load_library
from kiln.base.debug import debug_level
from kiln.errors import CompileError, ToolchainError

__all__ = [
    "CompiledLibrary",
    "Toolchain",
    "clear_cache",
    "compile_shared",
    "find_compiler",
    "flags_for",
    "load_library",
]

TARGETS = ("native", "portable")
# Compiler output beyond this is cut (head and tail kept): a template error can run to MBs.
_MAX_STDERR = 6000
_TIMEOUT_S = 600.0

_COMMON_FLAGS = (
    "-O3",
    "-std=c11",
    "-fPIC",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",
)


def build_root() -> str | None:
    """Where build directories go: ``$KILN_TMPDIR`` when set (created if missing), else the
    system temp directory. A test that checks what a failed build leaves behind gives itself
    a private root, so other Kiln processes on the machine cannot disturb its count."""
    root = os.environ.get("KILN_TMPDIR")
    if not root:
        return None
    os.makedirs(root, exist_ok=True)
    return root


def openmp_enabled() -> bool:
    """False when ``KILN_OPENMP`` is ``0``/``off``/``false``/``no``: programs are then built
    without ``-fopenmp`` (single-threaded, as with a compiler that has no OpenMP)."""
    return os.environ.get("KILN_OPENMP", "1").strip().lower() not in ("0", "off", "false", "no")


def _run(argv: Sequence[str], cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    # gcc runs cc1, as and ld as its children. subprocess.run's timeout kills only the
    # driver, and an orphaned cc1 went on for many minutes after the CompileError: the
    # compiler gets its own process group, and a timeout (or an interrupt) kills the group.
    posix = hasattr(os, "killpg")
    with subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace", start_new_session=posix) as proc:
        try:
            out, err = proc.communicate(timeout=_TIMEOUT_S)
        except BaseException:
            if posix:
                try:
                    os.killpg(proc.pid, 9)  # SIGKILL (signal.SIGKILL does not exist on Windows)
                except (ProcessLookupError, PermissionError):
                    pass
            proc.kill()
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """A C compiler found on this machine.

    ``argv`` is the command prefix (``("gcc",)``, ``("ccache", "gcc")`` or
    ``(sys.executable, "-m", "ziglang", "cc")``); ``kind`` is ``"gcc"``, ``"clang"`` or
    ``"zig"``; ``version`` is the first line of ``--version``; ``machine`` the target triple.

    >>> tc = find_compiler()
    >>> "-O3" in tc.flags_for("portable")
    True
    """

    argv: tuple[str, ...]
    kind: str
    version: str
    machine: str

    @property
    def path(self) -> str:
        """The resolved executable (the first word of ``argv``)."""
        return shutil.which(self.argv[0]) or self.argv[0]

    @property
    def supports_openmp(self) -> bool:
        """Whether ``-fopenmp`` compiles and links a shared library (probed once per process)."""
        return _probe_openmp(self)

    def flags_for(self, target: str = "native") -> list[str]:
        """The compile flags for ``target`` (``"native"`` or ``"portable"``), without ``-shared``.

        >>> flags = find_compiler().flags_for("native")
        >>> "-fno-math-errno" in flags and "-ffast-math" not in flags
        True
        """
        if target not in TARGETS:
            raise ToolchainError(f"unknown target {target!r}: expected one of {TARGETS}")
        flags = list(_COMMON_FLAGS)
        if openmp_enabled() and self.supports_openmp:
            flags.append("-fopenmp")
        flags.extend(_arch_flags(self.machine, target))
        return flags

    def fingerprint(self, target: str = "native") -> str:
        """A stable string naming what this compiler produces for ``target`` (for cache keys).

        It holds the compiler path, version, target triple and flags; for ``"native"`` it also
        holds the CPU that ``-march=native`` resolves to, so a cache shared by several machines
        never hands one machine's AVX-512 code to another.
        """
        parts = [self.kind, self.path, self.version, self.machine, " ".join(self.flags_for(target))]
        if target == "native":
            parts.append(_native_cpu(self))
        return "|".join(parts)

    def run(self, args: Sequence[str], cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the compiler with ``args`` appended to ``argv``."""
        return _run([*self.argv, *args], cwd=cwd)


def _arch_flags(machine: str, target: str) -> list[str]:
    arch = machine.split("-", 1)[0] or platform.machine()
    if target == "native":
        return ["-march=native"]
    if arch in ("x86_64", "amd64"):
        # x86-64-v2 (SSE4.2, POPCNT): every x86 CPU since ~2009, and what distros now require.
        return ["-march=x86-64-v2"]
    if arch in ("aarch64", "arm64"):
        return ["-march=armv8-a"]
    return []  # the compiler's own default is the portable choice elsewhere


# --------------------------------------------------------------------------------------------
# Finding a compiler

_lock = threading.Lock()
_found: dict[tuple[str | None, str | None], Toolchain] = {}
_openmp: dict[tuple[str, ...], bool] = {}
_cpu: dict[tuple[str, ...], str] = {}

_INSTALL_HINT = (
    "install one with `apt-get install gcc` (Debian/Ubuntu), `dnf install gcc`, "
    "`xcode-select --install` (macOS), or `pip install kiln[zig]` for a bundled compiler"
)


def clear_cache() -> None:
    """Forget the compiler found and the probe results (tests that change PATH call this)."""
    with _lock:
        _found.clear()
        _openmp.clear()
        _cpu.clear()


def find_compiler() -> Toolchain:
    """The C compiler to use: ``$CC``, else ``cc``, ``gcc``, ``clang`` on PATH, else ziglang.

    The answer is cached per process, keyed by ``$CC`` and ``$PATH``.
    A ``CC`` that does not work is an error, not a reason to silently pick another compiler.

    >>> find_compiler().version != ""
    True
    """
    key = (os.environ.get("CC"), os.environ.get("PATH"))
    with _lock:
        if key in _found:
            return _found[key]
    toolchain = _find_uncached(key[0])
    with _lock:
        _found[key] = toolchain
    return toolchain


def _find_uncached(cc: str | None) -> Toolchain:
    if cc is not None and cc.strip():
        argv = tuple(shlex.split(cc))
        if shutil.which(argv[0]) is None:
            raise ToolchainError(
                f"CC={cc!r} names no executable; unset CC to search PATH, or {_INSTALL_HINT}"
            )
        toolchain = _identify(argv)
        if toolchain is None:
            raise ToolchainError(f"CC={cc!r} does not run as a C compiler (`--version` failed)")
        return toolchain
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name) is not None:
            toolchain = _identify((name,))
            if toolchain is not None:
                return toolchain
    try:
        import ziglang  # noqa: F401  (only to know whether the wheel is there)
    except ImportError:
        pass
    else:
        toolchain = _identify((sys.executable, "-m", "ziglang", "cc"), kind="zig")
        if toolchain is not None:
            return toolchain
    raise ToolchainError(
        f"no C compiler found (tried $CC, cc, gcc, clang, ziglang); {_INSTALL_HINT}"
    )


def _identify(argv: tuple[str, ...], kind: str | None = None) -> Toolchain | None:
    try:
        out = _run([*argv, "--version"])
        machine_out = _run([*argv, "-dumpmachine"])
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    text = out.stdout + out.stderr
    version = text.strip().splitlines()[0] if text.strip() else "unknown"
    if kind is None:
        kind = "clang" if "clang" in text.lower() else "gcc"
    machine = machine_out.stdout.strip() if machine_out.returncode == 0 else ""
    return Toolchain(argv=argv, kind=kind, version=version, machine=machine or platform.machine())


_OPENMP_PROBE = """
#include <omp.h>
int kiln_probe(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n + omp_get_max_threads() * 0;
}
"""


def _probe_openmp(toolchain: Toolchain) -> bool:
    with _lock:
        if toolchain.argv in _openmp:
            return _openmp[toolchain.argv]
    ok = False
    with tempfile.TemporaryDirectory(prefix="kiln-probe-", dir=build_root()) as tmp:
        src = Path(tmp, "probe.c")
        src.write_text(_OPENMP_PROBE)
        try:
            res = toolchain.run(
                ["-fopenmp", "-fPIC", "-shared", "-o", str(Path(tmp, "probe.so")), str(src)]
            )
            # A "compiler" that accepts anything (CC=/bin/true) exits 0 and writes nothing.
            ok = res.returncode == 0 and Path(tmp, "probe.so").is_file()
        except (OSError, subprocess.SubprocessError):
            ok = False
    with _lock:
        _openmp[toolchain.argv] = ok
    return ok


def _native_cpu(toolchain: Toolchain) -> str:
    """What ``-march=native`` expands to: the driver's ``-###`` line for the compiler proper."""
    with _lock:
        if toolchain.argv in _cpu:
            return _cpu[toolchain.argv]
    try:
        probe = ["-march=native", "-###", "-x", "c", "-c", os.devnull, "-o", os.devnull]
        res = toolchain.run(probe)
        lines = [ln for ln in res.stderr.splitlines() if "cc1" in ln or "-target-cpu" in ln]
        text = "\n".join(lines) or res.stderr
    except (OSError, subprocess.SubprocessError):
        text = ""
    # The driver line names temp files; keep only the option words that describe the CPU.
    words = [w.strip('"') for w in text.split()]
    cpu_words = sorted({w for w in words if w.startswith(("-m", "+", "-target"))})
    digest = hashlib.sha256(" ".join(cpu_words).encode()).hexdigest()[:16]
    march = next((w for w in words if w.startswith("-march=")), "")
    cpu = f"{march or platform.processor() or platform.machine()}:{digest}"
    with _lock:
        _cpu[toolchain.argv] = cpu
    return cpu


def flags_for(target: str = "native") -> list[str]:
    """The compile flags of :func:`find_compiler`'s toolchain for ``target``.

    >>> "-std=c11" in flags_for("portable")
    True
    """
    return find_compiler().flags_for(target)


# --------------------------------------------------------------------------------------------
# Compiling


@dataclasses.dataclass(frozen=True)
class CompiledLibrary:
    """The bytes of a shared library and exactly how they were made."""

    data: bytes
    commands: tuple[tuple[str, ...], ...]
    flags: tuple[str, ...]
    target: str
    fingerprint: str

    def load(self, name: str = "kiln") -> ctypes.CDLL:
        """:func:`load_library` on these bytes."""
        return load_library(self.data, name)


def _link_args(libraries: Sequence[str]) -> list[str]:
    """``"m"`` becomes ``-lm``; paths and words starting with ``-`` pass through unchanged."""
    args = []
    for lib in libraries:
        if lib.startswith("-") or os.sep in lib or lib.endswith((".so", ".a", ".dylib")):
            args.append(lib)
        else:
            args.append(f"-l{lib}")
    return args


def _trim(text: str, limit: int = _MAX_STDERR) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


def _out_of_space(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text


def os_error(exc: OSError, doing: str) -> CompileError:
    """A CompileError for an OS error while building: what ran out (disk space, quota, file
    descriptors, memory, permission) and where, instead of a bare OSError."""
    import errno

    what = {errno.ENOSPC: "disk space", getattr(errno, "EDQUOT", -1): "disk quota",
            errno.EMFILE: "file descriptors", errno.ENFILE: "file descriptors",
            errno.ENOMEM: "memory"}.get(exc.errno or 0)
    where = f" ({exc.filename})" if exc.filename else ""
    tmp = tempfile.gettempdir()
    if what is not None:
        return CompileError(f"{doing} ran out of {what}{where}: {exc.strerror}; free some in "
                            f"{tmp} or set TMPDIR to a directory with room")
    return CompileError(f"{doing} failed with an OS error{where}: {exc.strerror or exc}; "
                        f"check that {tmp} (or TMPDIR) is writable and has room")


def _produced_nothing(argv: Sequence[str], what: str) -> CompileError:
    """The error for a "compiler" that exits 0 without writing ``what`` (``CC=/bin/true``)."""
    return CompileError(
        f"the C compiler {shlex.join(argv)!r} exited successfully but produced no {what}; it "
        "does not work as a C compiler: set CC to gcc or clang, or unset it to search PATH")


def compile_shared(
    sources: Mapping[str, str],
    *,
    target: str = "native",
    extra_flags: Sequence[str] = (),
    libraries: Sequence[str] = (),
    openmp: bool = True,
) -> CompiledLibrary:
    """Compile ``sources`` (file name -> text) into a shared library and return its bytes.

    Files ending in ``.c`` are translation units; other files (headers) are written beside them
    and found with ``#include "name.h"``. ``kiln/backends/c/runtime`` is on the include path.
    Several translation units compile in parallel, then link. ``libraries`` are names
    (``"m"`` -> ``-lm``), paths to libraries, or linker words starting with ``-``.
    ``openmp=False`` builds without ``-fopenmp`` even where the compiler has it (the pragmas
    are then ignored: single-threaded code that needs no libgomp).

    On failure a :class:`~kiln.errors.CompileError` carries the compiler's stderr and the
    directory holding the sources, which is kept for inspection; on success, or when the
    "compiler" exits 0 without writing the library (``CC=/bin/true``), it is deleted.

    >>> lib = compile_shared({"k.c": "double twice(double x) { return 2 * x; }"})
    >>> f = lib.load("k").twice
    >>> f.restype, f.argtypes = ctypes.c_double, [ctypes.c_double]
    >>> f(1.5)
    3.0
    """
    units = [name for name in sources if name.endswith(".c")]
    if not units:
        raise CompileError(f"compile_shared needs at least one .c source, got {list(sources)}")
    for name in sources:
        if Path(name).name != name or name in ("", ".", ".."):
            raise CompileError(f"source names must be plain file names, got {name!r}")
    toolchain = find_compiler()
    flags = [*toolchain.flags_for(target), *extra_flags]
    if not openmp:
        flags = [f for f in flags if f != "-fopenmp"]
    includes = ["-I.", f"-I{Path(__file__).parent / 'runtime'}"]
    link = _link_args(libraries)
    openmp_link = ["-fopenmp"] if "-fopenmp" in flags else []
    debug = debug_level() >= 2

    try:
        workdir = tempfile.mkdtemp(prefix="kiln-c-", dir=build_root())
    except OSError as exc:
        raise os_error(exc, "creating the build directory") from exc
    try:
        for name, text in sources.items():
            Path(workdir, name).write_text(text)
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise os_error(exc, "writing the C sources") from exc
    if debug:
        for name, text in sources.items():
            print(f"[kiln] ---- {workdir}/{name} ----\n{text}", file=sys.stderr)

    out = "libkiln.so"
    if len(units) == 1:
        jobs = [[*toolchain.argv, *flags, *includes, "-shared", "-o", out, units[0], *link]]
    else:
        jobs = [
            [*toolchain.argv, *flags, *includes, "-c", "-o", f"{Path(u).stem}.o", u] for u in units
        ]
    link_cmd = [*toolchain.argv, "-shared", *openmp_link, "-o", out]
    link_cmd += [f"{Path(u).stem}.o" for u in units] + link
    commands = [tuple(j) for j in jobs] + ([tuple(link_cmd)] if len(units) > 1 else [])

    kept = threading.Event()  # set when a failed compile keeps workdir for inspection

    def run(argv: list[str]) -> None:
        if debug:
            print(f"[kiln] (cd {workdir} && {shlex.join(argv)})", file=sys.stderr)
        try:
            res = _run(argv, cwd=workdir)
        except subprocess.TimeoutExpired as exc:
            kept.set()
            raise CompileError(
                f"C compiler timed out after {_TIMEOUT_S:.0f}s; sources kept in {workdir}"
            ) from exc
        except OSError as exc:
            raise CompileError(f"cannot run the C compiler {argv[0]!r}: {exc}") from exc
        if res.returncode != 0 and _out_of_space(res.stderr + res.stdout):
            raise CompileError(
                f"the C compiler ran out of disk space in {workdir} (No space left on device); "
                f"free space in {tempfile.gettempdir()} or set TMPDIR to a roomier directory\n"
                f"{_trim(res.stderr + res.stdout, 1000)}")
        if res.returncode != 0:
            kept.set()
            raise CompileError(
                f"C compiler failed (exit {res.returncode}); sources kept in {workdir}\n"
                f"command: {shlex.join(argv)}\n{_trim(res.stderr + res.stdout)}"
            )

    try:
        if len(jobs) == 1:
            run(jobs[0])
        else:
            from kiln.backends.c.progress import build_progress

            workers = min(len(jobs), os.cpu_count() or 1)
            with build_progress("a library", units) as done, \
                    concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:

                def unit(job: list[str], name: str) -> None:
                    run(job)
                    done(name)

                # The pool waits for every job; .result() then re-raises the first failure.
                futures = [pool.submit(unit, job, name)
                           for job, name in zip(jobs, units, strict=True)]
                for fut in futures:
                    fut.result()
            run(link_cmd)
        try:
            data = Path(workdir, out).read_bytes()
        except OSError:
            data = b""
        if not data:
            raise _produced_nothing(toolchain.argv, f"library ({out})")
    except OSError as exc:  # a thread pool or a read that failed for want of resources
        raise os_error(exc, "building the library") from exc
    finally:
        if not kept.is_set():
            shutil.rmtree(workdir, ignore_errors=True)
    return CompiledLibrary(
        data=data,
        commands=tuple(commands),
        flags=tuple(flags),
        target=target,
        fingerprint=toolchain.fingerprint(target),
    )
