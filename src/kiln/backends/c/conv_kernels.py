"""The C API of ``runtime/kiln_conv.h`` (native conv2d and pooling), described for the codegen.

Generated C includes :data:`HEADER` (after ``kiln_gemm.h``'s, whose flags and libraries it
needs: :func:`kiln.backends.c.blas.gemm_support`) and calls, for a node of primitive ``op`` and
dtype ``float32``/``float64``, the function :func:`function_name` gives, with the arguments
:func:`call_args` lists: pointers first, in the op's argument order, then sizes (``int64_t``),
then flags. Every kernel returns 0, or -1 for inconsistent sizes (nothing written), or -2 when
``ws`` is NULL and malloc failed.

Convolutions take one geometry list, ``GEOM = (N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw,
groups)``, whatever the op (:func:`conv_geometry` builds it from a node's shapes and attrs), and
a scratch pointer ``ws`` of :func:`workspace_bytes` bytes (no alignment needed; the memory
planner owns it; NULL makes the kernel malloc). The formula depends on sizes only, not on the
ISA or the thread count, and ``kiln_conv2d_workspace_bytes`` computes the same in C, for
symbolic sizes.

The forward convolution fuses an epilogue: ``out = act(conv2d(x, w) + bias[o] + residual)``,
``bias`` and ``residual`` may be NULL, ``act`` is :data:`ACT_NONE` or :data:`ACT_RELU`. Pointers
must not alias (``out`` is not ``residual``); outputs are overwritten, never read.

>>> function_name("conv2d", "float32")
'kiln_conv2d_f32'
>>> call_args("conv2d_weight_grad")[:3]
('x', 'g', 'dweight')
>>> conv_geometry("conv2d", (1, 3, 224, 224), (64, 3, 7, 7), stride=(2, 2), padding=(3, 3),
...               dilation=(1, 1), groups=1)
(1, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1)
>>> workspace_bytes(FORWARD, 1, 64, 56, 56, 64, 1, 1, 1, 1, 0, 0, 1, 1, 1, 4)  # 1x1: no copy
0
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.errors import ArgumentError, BackendError, DTypeError, ShapeError

__all__ = [
    "ACT_NONE",
    "ACT_RELU",
    "FORWARD",
    "HEADER",
    "IM2COL_CHUNK",
    "INPUT_GRAD",
    "OPS",
    "WEIGHT_GRAD",
    "ConvKernels",
    "call_args",
    "conv_geometry",
    "function_name",
    "pool_sizes",
    "workspace_bytes",
]

HEADER = '#include "kiln_conv.h"\n'

ACT_NONE = 0
ACT_RELU = 1
FORWARD = 0
INPUT_GRAD = 1
WEIGHT_GRAD = 2
#: Elements of one explicit im2col chunk (``KILN__CONV_CHUNK`` in kiln_conv.h).
IM2COL_CHUNK = 1 << 19

_SUFFIX = {"float32": "f32", "float64": "f64"}
_GEOM = ("N", "C", "H", "W", "O", "KH", "KW", "sh", "sw", "ph", "pw", "dh", "dw", "groups")
_POOL = ("N", "C", "H", "W", "OH", "OW", "kh", "kw", "sh", "sw", "ph", "pw")

#: Argument names of each primitive's C function, in order.
_ARGS: dict[str, tuple[str, ...]] = {
    "conv2d": ("x", "w", "bias", "residual", "out", *_GEOM, "act", "ws"),
    "conv2d_input_grad": ("g", "w", "dx", *_GEOM, "ws"),
    "conv2d_weight_grad": ("x", "g", "dweight", *_GEOM, "ws"),
    "max_pool2d": ("x", "out", *_POOL, "dh", "dw"),
    "max_pool2d_backward": ("g", "x", "dx", *_POOL, "dh", "dw"),
    "avg_pool2d": ("x", "out", *_POOL, "count_include_pad", "divisor_override"),
    "avg_pool2d_backward": ("g", "dx", *_POOL, "count_include_pad", "divisor_override"),
}
#: The primitives with a native kernel.
OPS = tuple(_ARGS)
_CONV_OPS = ("conv2d", "conv2d_input_grad", "conv2d_weight_grad")
#: Arguments that are C ``int`` (all other non-pointer arguments are ``int64_t``).
_INT_ARGS = ("act", "count_include_pad")
_POINTERS = ("x", "w", "bias", "residual", "out", "g", "dx", "dweight", "ws")


def function_name(op: str, dtype: str) -> str:
    """The C function implementing primitive ``op`` for ``dtype`` ("float32" or "float64")."""
    if op not in _ARGS:
        raise ArgumentError(f"kiln_conv.h: no native kernel for op {op!r}; expected one of "
                            f"{sorted(_ARGS)}")
    if dtype not in _SUFFIX:
        raise DTypeError(f"kiln_conv.h: {op} supports float32 and float64, got {dtype}")
    return f"kiln_{op}_{_SUFFIX[dtype]}"


def call_args(op: str) -> tuple[str, ...]:
    """Names of ``op``'s C arguments, in order (see the module docstring for their types)."""
    function_name(op, "float32")
    return _ARGS[op]


def conv_geometry(op: str, a_shape: Sequence[int], b_shape: Sequence[int], *,
                  stride: tuple, padding: tuple, dilation: tuple, groups: int,
                  input_hw: tuple | None = None, kernel_hw: tuple | None = None) -> tuple:
    """GEOM for a convolution node from its two operands' shapes and its attrs.

    ``conv2d(x, w)``: shapes of x and w; ``conv2d_input_grad(g, w, input_hw=)``: shapes of g
    and w; ``conv2d_weight_grad(x, g, kernel_hw=)``: shapes of x and g.
    """
    if op == "conv2d":
        (n, c, h, w), (o, _, kh, kw) = a_shape, b_shape
    elif op == "conv2d_input_grad":
        (n, o, _, _), (_, cg, kh, kw) = a_shape, b_shape
        c, (h, w) = cg * groups, input_hw
    elif op == "conv2d_weight_grad":
        (n, c, h, w), (_, o, _, _) = a_shape, b_shape
        kh, kw = kernel_hw
    else:
        raise ArgumentError(f"conv_geometry: expected one of {_CONV_OPS}, got {op!r}")
    return (n, c, h, w, o, kh, kw, stride[0], stride[1], padding[0], padding[1],
            dilation[0], dilation[1], groups)


def pool_sizes(x_shape: Sequence[int], out_hw: Sequence[int], *, kernel: tuple,
               stride: tuple, padding: tuple) -> tuple:
    """``(N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw)`` of a pooling call (OH/OW from the meta,
    which folds ceil_mode in)."""
    n, c, h, w = x_shape
    return (n, c, h, w, out_hw[0], out_hw[1], kernel[0], kernel[1], stride[0], stride[1],
            padding[0], padding[1])


def _chunk_cols(rows: int, cols: int) -> int:
    c = max(1, IM2COL_CHUNK // rows) if rows > 0 else cols
    return min(c, cols)


def _wgrad_chunks(kg: int, np_: int) -> tuple[int, int]:
    """(K rows, positions) of one weight-gradient chunk (kiln__conv_wgrad_chunks)."""
    if kg <= np_:
        return kg, _chunk_cols(kg, np_)
    return min(kg, max(64, IM2COL_CHUNK // max(np_, 1))), np_


def workspace_bytes(op: int, n: int, c: int, h: int, w: int, o: int, kh: int, kw: int,
                    sh: int, sw: int, ph: int, pw: int, dh: int, dw: int, groups: int,
                    elem_size: int) -> int:
    """Bytes of scratch ``ws`` for ``op`` (:data:`FORWARD`, :data:`INPUT_GRAD`,
    :data:`WEIGHT_GRAD`); the same formula as ``kiln_conv2d_workspace_bytes`` in C.

    >>> workspace_bytes(WEIGHT_GRAD, 8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4)
    2513920
    """
    if op not in (FORWARD, INPUT_GRAD, WEIGHT_GRAD) or elem_size not in (4, 8):
        raise ArgumentError(f"workspace_bytes: bad op {op!r} or elem_size {elem_size!r}")
    if c % groups or o % groups:
        raise ShapeError(f"workspace_bytes: channels ({c} in, {o} out) do not split into "
                         f"{groups} groups")
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    kg, og, p = c // groups * kh * kw, o // groups, oh * ow
    if n == 0 or o == 0 or kg == 0:
        return 0
    pointwise = (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0)
    im2col = 0 if pointwise else kg * _chunk_cols(kg, p)
    if op == FORWARD:
        elems = im2col
    elif op == INPUT_GRAD:
        elems = o * kg + im2col
    else:
        kch, jc = _wgrad_chunks(kg, n * p)
        elems = kch * (jc + 16) + kch * og + (og + 31) // 32 * 32 * jc
    return elems * elem_size


# --------------------------------------------------------------------------------------------
# ctypes harness (tests and benchmarks/native_conv.py)

_CTYPE = {"int": "int", "i64": "int64_t", "ptr": "void *"}


def _kind(arg: str) -> str:
    if arg in _POINTERS:
        return "ptr"
    return "int" if arg in _INT_ARGS else "i64"


def _wrapper_source() -> str:
    """Exported wrappers around the header's static functions (``kt_<name>``)."""
    lines = [HEADER]
    for op, args in _ARGS.items():
        params = ", ".join(f"{_CTYPE[_kind(a)]} {a}" for a in args)
        for dtype, suffix in _SUFFIX.items():
            ctype = "float" if dtype == "float32" else "double"
            casts = ", ".join(f"({ctype} *){a}" if _kind(a) == "ptr" and a != "ws" else a
                              for a in args)
            lines.append(f"int kt_{op}_{suffix}({params}) "
                         f"{{ return kiln_{op}_{suffix}({casts}); }}")
    geom = ", ".join(f"int64_t {a}" for a in _GEOM)
    lines.append(f"int64_t kt_workspace_bytes(int op, {geom}, int64_t es) {{ return "
                 f"kiln_conv2d_workspace_bytes(op, {', '.join(_GEOM)}, es); }}")
    lines.append("int64_t kt_pool_out_size(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d,"
                 " int ceil) { return kiln_pool_out_size(n, k, s, p, d, ceil); }")
    return "\n".join(lines) + "\n"


@functools.cache
def _build(target: str, generic: bool, gemm: str | None) -> tuple[ctypes.CDLL, Any]:
    from kiln.backends.c import blas, toolchain

    support = blas.gemm_support(gemm)
    flags = [*support.extra_flags, "-Wall", "-Werror"] + (["-DKILN_CONV_GENERIC"] if generic
                                                          else [])
    lib = toolchain.compile_shared({"kiln_conv_test.c": support.header + _wrapper_source()},
                                   target=target, extra_flags=flags, libraries=support.libraries)
    support.prepare()
    cdll = lib.load(f"conv-{target}-{int(generic)}")
    ct = {"ptr": ctypes.c_void_p, "int": ctypes.c_int, "i64": ctypes.c_int64}
    for op, args in _ARGS.items():
        for suffix in _SUFFIX.values():
            fn = getattr(cdll, f"kt_{op}_{suffix}")
            fn.restype, fn.argtypes = ctypes.c_int, [ct[_kind(a)] for a in args]
    cdll.kt_workspace_bytes.restype = ctypes.c_int64
    cdll.kt_workspace_bytes.argtypes = [ctypes.c_int] + [ctypes.c_int64] * 15
    cdll.kt_pool_out_size.restype = ctypes.c_int64
    cdll.kt_pool_out_size.argtypes = [ctypes.c_int64] * 5 + [ctypes.c_int]
    return cdll, support


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


class ConvKernels:
    """kiln_conv.h compiled into a small library and called on NumPy arrays via ctypes.

    Methods take the registry eager kernels' keyword attrs and return new arrays (outputs are
    pre-filled with NaN, so a value the kernel forgot to write shows). ``target`` is the
    toolchain target; ``generic=True`` compiles with ``-DKILN_CONV_GENERIC`` (no AVX-512 path).
    ``use_workspace=False`` passes ws=NULL (the kernels malloc); ``ws_offset`` shifts the
    workspace off NumPy's alignment (the kernels must not need any).

    >>> import numpy as np
    >>> k = ConvKernels()
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> k.max_pool2d(x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1),
    ...              ceil_mode=False)[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """

    def __init__(self, target: str = "native", generic: bool = False,
                 gemm: str | None = None, use_workspace: bool = True,
                 ws_offset: int = 0) -> None:
        self.lib, self.gemm = _build(target, generic, gemm)
        self.use_workspace = use_workspace
        self.ws_offset = ws_offset

    def _call(self, op: str, dtype: np.dtype, *args: Any) -> None:
        suffix = _SUFFIX.get(np.dtype(dtype).name)
        if suffix is None:
            raise DTypeError(f"{op}: native kernels take float32 or float64, got {dtype}")
        rc = getattr(self.lib, f"kt_{op}_{suffix}")(*args)
        if rc != 0:
            raise BackendError(f"{function_name(op, np.dtype(dtype).name)} returned {rc} "
                               f"(-1: inconsistent sizes, -2: out of memory)")

    @staticmethod
    def _arrays(op: str, *arrays: np.ndarray | None) -> np.dtype:
        dtypes = {a.dtype for a in arrays if a is not None}
        if len(dtypes) != 1:
            raise DTypeError(f"{op}: operands must share one dtype, got {sorted(map(str, dtypes))}")
        for a in arrays:
            if a is not None and not a.flags.c_contiguous:
                raise ArgumentError(f"{op}: arrays must be C-contiguous")
        return dtypes.pop()

    def workspace(self, op: int, geom: tuple, dtype: np.dtype) -> np.ndarray | None:
        if not self.use_workspace:
            return None
        nbytes = workspace_bytes(op, *geom, np.dtype(dtype).itemsize)
        return np.empty(nbytes + self.ws_offset + 1, np.uint8)[self.ws_offset:]

    def workspace_bytes_c(self, op: int, geom: tuple, elem_size: int) -> int:
        """``kiln_conv2d_workspace_bytes`` itself (tests compare it with the Python formula)."""
        return int(self.lib.kt_workspace_bytes(op, *geom, elem_size))

    def pool_out_size_c(self, size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
        return int(self.lib.kt_pool_out_size(size, k, s, p, d, int(ceil)))

    def conv2d(self, x: np.ndarray, w: np.ndarray, *, stride: tuple, padding: tuple,
               dilation: tuple, groups: int, bias: np.ndarray | None = None,
               residual: np.ndarray | None = None, act: str = "none",
               out: np.ndarray | None = None) -> np.ndarray:
        dt = self._arrays("conv2d", x, w, bias, residual)
        geom = conv_geometry("conv2d", x.shape, w.shape, stride=stride, padding=padding,
                             dilation=dilation, groups=groups)
        oh = (x.shape[2] + 2 * padding[0] - dilation[0] * (w.shape[2] - 1) - 1) // stride[0] + 1
        ow = (x.shape[3] + 2 * padding[1] - dilation[1] * (w.shape[3] - 1) - 1) // stride[1] + 1
        if out is None:
            out = np.full((x.shape[0], w.shape[0], oh, ow), np.nan, dt)
        ws = self.workspace(FORWARD, geom, dt)
        self._call("conv2d", dt, _ptr(x), _ptr(w), _ptr(bias), _ptr(residual), _ptr(out), *geom,
                   {"none": ACT_NONE, "relu": ACT_RELU}[act], _ptr(ws))
        return out

    def conv2d_input_grad(self, g: np.ndarray, w: np.ndarray, *, input_hw: tuple,
                          stride: tuple, padding: tuple, dilation: tuple,
                          groups: int) -> np.ndarray:
        dt = self._arrays("conv2d_input_grad", g, w)
        geom = conv_geometry("conv2d_input_grad", g.shape, w.shape, stride=stride,
                             padding=padding, dilation=dilation, groups=groups,
                             input_hw=input_hw)
        dx = np.full((g.shape[0], w.shape[1] * groups) + tuple(input_hw), np.nan, dt)
        ws = self.workspace(INPUT_GRAD, geom, dt)
        self._call("conv2d_input_grad", dt, _ptr(g), _ptr(w), _ptr(dx), *geom, _ptr(ws))
        return dx

    def conv2d_weight_grad(self, x: np.ndarray, g: np.ndarray, *, kernel_hw: tuple,
                           stride: tuple, padding: tuple, dilation: tuple,
                           groups: int) -> np.ndarray:
        dt = self._arrays("conv2d_weight_grad", x, g)
        geom = conv_geometry("conv2d_weight_grad", x.shape, g.shape, stride=stride,
                             padding=padding, dilation=dilation, groups=groups,
                             kernel_hw=kernel_hw)
        dw = np.full((g.shape[1], x.shape[1] // groups) + tuple(kernel_hw), np.nan, dt)
        ws = self.workspace(WEIGHT_GRAD, geom, dt)
        self._call("conv2d_weight_grad", dt, _ptr(x), _ptr(g), _ptr(dw), *geom, _ptr(ws))
        return dw

    def _pool_hw(self, hw: Sequence[int], kernel: tuple, stride: tuple, padding: tuple,
                 dilation: tuple, ceil_mode: bool) -> tuple:
        from kiln.core.prims.pool import pool_out_size

        return tuple(pool_out_size(hw[i], kernel[i], stride[i], padding[i], dilation[i],
                                   ceil_mode) for i in range(2))

    def max_pool2d(self, x: np.ndarray, *, kernel: tuple, stride: tuple, padding: tuple,
                   dilation: tuple, ceil_mode: bool) -> np.ndarray:
        dt = self._arrays("max_pool2d", x)
        out_hw = self._pool_hw(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
        out = np.full(x.shape[:2] + out_hw, np.nan, dt)
        sizes = pool_sizes(x.shape, out_hw, kernel=kernel, stride=stride, padding=padding)
        self._call("max_pool2d", dt, _ptr(x), _ptr(out), *sizes, *dilation)
        return out

    def max_pool2d_backward(self, g: np.ndarray, x: np.ndarray, *, kernel: tuple,
                            stride: tuple, padding: tuple, dilation: tuple,
                            ceil_mode: bool) -> np.ndarray:
        dt = self._arrays("max_pool2d_backward", g, x)
        dx = np.full(x.shape, np.nan, dt)
        sizes = pool_sizes(x.shape, g.shape[2:], kernel=kernel, stride=stride, padding=padding)
        self._call("max_pool2d_backward", dt, _ptr(g), _ptr(x), _ptr(dx), *sizes, *dilation)
        return dx

    def avg_pool2d(self, x: np.ndarray, *, kernel: tuple, stride: tuple, padding: tuple,
                   ceil_mode: bool, count_include_pad: bool,
                   divisor_override: int | None) -> np.ndarray:
        dt = self._arrays("avg_pool2d", x)
        out_hw = self._pool_hw(x.shape[2:], kernel, stride, padding, (1, 1), ceil_mode)
        out = np.full(x.shape[:2] + out_hw, np.nan, dt)
        sizes = pool_sizes(x.shape, out_hw, kernel=kernel, stride=stride, padding=padding)
        self._call("avg_pool2d", dt, _ptr(x), _ptr(out), *sizes, int(count_include_pad),
                   divisor_override or 0)
        return out

    def avg_pool2d_backward(self, g: np.ndarray, *, input_hw: tuple, kernel: tuple,
                            stride: tuple, padding: tuple, ceil_mode: bool,
                            count_include_pad: bool,
                            divisor_override: int | None) -> np.ndarray:
        dt = self._arrays("avg_pool2d_backward", g)
        shape = g.shape[:2] + tuple(input_hw)
        dx = np.full(shape, np.nan, dt)
        sizes = pool_sizes(shape, g.shape[2:], kernel=kernel, stride=stride, padding=padding)
        self._call("avg_pool2d_backward", dt, _ptr(g), _ptr(dx), *sizes,
                   int(count_include_pad), divisor_override or 0)
        return dx
