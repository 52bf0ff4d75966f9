"""The machinery of the conformance table (tests/conformance/table.py): argument specs, running
one form in each mode, and the checks.

An :class:`Entry` names a function the same way in Kiln and torch (``"roll"`` is
``kiln.roll`` / ``torch.roll``, ``"Tensor.repeat"`` the method on the first argument,
``"F.unfold"`` the functional, ``"linalg.vector_norm"``, ``"nn.Transformer"`` a module built in
both with torch's weights loaded into Kiln's) and lists argument *forms* as torch accepts
them. A form's tensor arguments are :class:`T` specs, made into the same arrays for both
libraries; everything else passes through (:class:`D` is a dtype, resolved per library).

Modes (each compared with the reference, torch where installed, else the entry's NumPy
``ref``; then traced/AOT/C against eager Kiln on the same inputs):
eager, trace (``kiln.trace``), aot (``kiln.aot.aot_function`` with ``nop``), c
(``kiln.compile(..., backend="c")``, batched: many forms in one library), and grad (float64
autograd against central finite differences).
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import kiln
from kiln.core.dtypes import get_dtype
from kiln.errors import KilnError

MODES = ("eager", "trace", "aot", "c", "grad")
FD_EPS = 1e-6
FD_ELEMENTS = 3


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------
# specs


@dataclasses.dataclass(frozen=True)
class T:
    """A tensor argument: shape, dtype, value domain; ``const`` tensors are closed over by the
    traced/compiled function instead of being its inputs (a narrow start, an index)."""

    shape: tuple
    dtype: str = "float32"
    domain: str = "real"
    const: bool = False
    high: int = 0  # "index" domain: integers in [0, high)

    def make(self, rng: np.random.Generator) -> np.ndarray:
        n = int(np.prod(self.shape)) if self.shape else 1
        if self.dtype == "bool" or self.domain == "mask":
            v = (rng.random(n) < 0.5).reshape(self.shape)
            if self.domain == "kept" and v.ndim:  # a True in every row of the last dim
                v[..., 0] = True
            return v.astype(self.dtype)
        if self.domain == "pivots":  # LAPACK's 1-based row swaps: row i with one at or below
            k = self.shape[-1]
            v = np.stack([rng.integers(i, k, n // max(k, 1)) + 1 for i in range(k)], -1)
            return v.reshape(self.shape).astype(self.dtype)
        if self.domain == "index":
            return rng.integers(0, max(self.high, 1), n).reshape(self.shape).astype(self.dtype)
        if self.domain == "offsets":  # ascending bag starts from 0 (embedding_bag)
            v = np.sort(rng.integers(0, max(self.high, 1), n))
            v[:1] = 0
            return v.reshape(self.shape).astype(self.dtype)
        if self.dtype.startswith("int"):
            lo = 1 if self.domain == "positive" else -4
            return rng.integers(lo, 5, n).reshape(self.shape).astype(self.dtype)
        if self.domain == "positive":
            v = rng.uniform(0.5, 2.0, n)
        elif self.domain == "distinct":
            v = (rng.permutation(n) - n / 2) * 0.25 + rng.uniform(-0.05, 0.05, n)
        elif self.domain == "prob":
            v = rng.uniform(0.05, 0.95, n)
        elif self.domain == "sorted":  # ascending along the last dim (searchsorted's input)
            v = np.sort(rng.uniform(-2.0, 2.0, n).reshape(self.shape or (1,)), axis=-1)
        elif self.domain == "ones":
            v = np.ones(n)
        elif self.domain == "sign":  # the 1 / -1 targets of the margin losses
            v = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        elif self.domain == "unit":  # inside (-1, 1), away from the ends (asin, atanh)
            v = rng.uniform(-0.9, 0.9, n)
        elif self.domain == "above_one":  # acosh
            v = rng.uniform(1.2, 3.0, n)
        elif self.domain in ("spd", "wellcond"):  # square matrices (..., n, n)
            size = self.shape[-1]
            a = rng.uniform(-1.0, 1.0, self.shape)
            if self.domain == "spd":  # symmetric positive definite
                a = a @ np.swapaxes(a, -1, -2) + size * np.eye(size)
            else:  # far from singular
                a = a + 2.0 * size * np.eye(size)
            v = a.reshape(-1)
        elif self.domain == "diag":  # (..., m, n): distinct positive values on the diagonal
            # (decompositions whose vectors are otherwise unique only up to sign agree here)
            a = np.zeros(self.shape)
            k = min(self.shape[-2:])
            idx = np.arange(k)
            a[..., idx, idx] = 1.0 + 0.75 * rng.permutation(k)
            v = a.reshape(-1)
        elif self.domain == "special":  # NaN, the infinities, both zeros, then values
            v = rng.uniform(-2.0, 2.0, n)
            v[:min(n, 5)] = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0])[:min(n, 5)]
        else:
            v = rng.uniform(-2.0, 2.0, n)
        return v.reshape(self.shape).astype(self.dtype)

    def __repr__(self) -> str:
        extra = "" if self.dtype == "float32" else f" {self.dtype}"
        return f"T{tuple(self.shape)}{extra}{' const' if self.const else ''}"


def t(*shape: Any, dtype: str = "float32", domain: str = "real", const: bool = False,
      high: int = 0) -> T:
    if len(shape) == 1 and isinstance(shape[0], tuple):
        shape = shape[0]
    return T(tuple(shape), dtype, domain, const, high)


@dataclasses.dataclass(frozen=True)
class D:
    """A dtype argument (``dtype=D("float64")``): kiln.float64 for Kiln, torch.float64 for
    torch."""

    name: str

    def __repr__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class M:
    """A module argument of a module entry's constructor (``nn.TransformerEncoder(layer,
    2)``): built in each library from ``name`` and its constructor arguments."""

    name: str
    init: tuple = ()
    init_kwargs: tuple = ()  # (key, value) pairs (a frozen dataclass holds no dict)

    def build(self, which: str) -> Any:
        return resolve(self.name, which)(*self.init, **dict(self.init_kwargs))


@dataclasses.dataclass
class Form:
    """One call: positional ``args`` and keyword ``kwargs`` (T/D specs anywhere, also inside
    lists). ``refused``: Kiln deliberately raises a KilnError here (the reason, as listed in
    docs/ops.md); ``grad``: whether the gradient check applies; ``modes``: those that apply."""

    args: tuple
    kwargs: dict
    refused: str = ""
    grad: bool = True
    modes: tuple = MODES
    tol: tuple | None = None

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return "(" + ", ".join(parts) + ")"


def f(*args: Any, _refused: str = "", _grad: bool = True, _modes: Sequence[str] = MODES,
      _tol: tuple | None = None, **kwargs: Any) -> Form:
    return Form(args, kwargs, _refused, _grad, tuple(_modes), _tol)


@dataclasses.dataclass
class Entry:
    """A name (see the module docstring), its forms, and options: ``ref`` a NumPy reference
    (used without torch), ``init`` the constructor arguments of a module entry, ``grad`` whether
    it is differentiable, ``tol`` (rtol, atol) in float32."""

    name: str
    forms: list[Form]
    ref: Callable[..., Any] | None = None
    init: tuple = ()
    init_kwargs: dict = dataclasses.field(default_factory=dict)
    grad: bool = True
    tol: tuple = (1e-5, 1e-5)
    modes: tuple = MODES
    label: str = ""  # unique in the table (the name, numbered when it repeats)

    @property
    def is_module(self) -> bool:
        return self.name.startswith("nn.")


def entry(name: str, *forms: Form, **options: Any) -> Entry:
    return Entry(name, list(forms), **options)


# ------------------------------------------------------------------------------------------
# resolving names and arguments


def _lib(which: str) -> dict[str, Any]:
    if which == "kiln":
        import kiln.nn.functional as kf

        return {"": kiln, "F": kf, "linalg": kiln.linalg, "nn": kiln.nn, "Tensor": kiln.Tensor,
                "signal.windows": kiln.signal.windows, "fft": kiln.fft, "masked": kiln.masked,
                "special": kiln.special}
    import torch

    return {"": torch, "F": torch.nn.functional, "linalg": torch.linalg, "nn": torch.nn,
            "Tensor": torch.Tensor, "signal.windows": torch.signal.windows, "fft": torch.fft,
            "masked": torch.masked, "special": torch.special}


def resolve(name: str, which: str) -> Callable[..., Any]:
    """The callable ``name`` stands for in ``which`` ("kiln" or "torch")."""
    lib = _lib(which)
    space, _, attr = name.rpartition(".")
    if space == "Tensor":
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self, attr)(*args, **kwargs)

        return method
    if which == "torch" and not space and not hasattr(lib[space], attr):
        import torch  # an aten op Kiln has under its name (max_pool2d_with_indices_backward)

        return getattr(torch.ops.aten, attr)
    return getattr(lib[space], attr)


def _walk(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, (T, D)):
        return fn(value)
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    if isinstance(value, tuple):
        return tuple(_walk(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _walk(v, fn) for k, v in value.items()}
    return value


def specs_of(form: Form) -> list[T]:
    found: list[T] = []
    _walk((form.args, form.kwargs), lambda s: found.append(s) if isinstance(s, T) else s)
    return found


def arrays_of(e: Entry, index: int, form: Form, float64: bool = False) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(f"{e.name}/{index}".encode()))
    out = []
    for s in specs_of(form):
        a = s.make(rng)
        if float64 and a.dtype == np.float32:
            a = a.astype(np.float64)
        out.append(a)
    return out


def bind(form: Form, which: str, arrays: Sequence[Any]) -> tuple[tuple, dict]:
    """(args, kwargs) with the specs replaced by ``arrays`` in order (already tensors of the
    library) and dtypes resolved."""
    it = iter(arrays)

    def conv(s: Any) -> Any:
        if isinstance(s, D):
            if which == "kiln":
                return get_dtype(s.name)
            if which == "numpy":
                return np.dtype(s.name)
            import torch

            return getattr(torch, s.name)
        return next(it)

    args, kwargs = _walk((form.args, form.kwargs), conv)
    return args, kwargs


def to_lib(a: np.ndarray, which: str, requires_grad: bool = False) -> Any:
    if which == "kiln":
        x = kiln.from_numpy(np.array(a, copy=True))
    else:
        import torch

        x = torch.from_numpy(np.array(a, copy=True))
    if requires_grad:
        x.requires_grad_(True)
    return x


# ------------------------------------------------------------------------------------------
# calling


def build_modules(e: Entry, float64: bool = False) -> tuple[Any, Any]:
    """(kiln module, torch module or None): torch's weights loaded into Kiln's, eval mode."""
    init_k = _walk(e.init_kwargs, lambda s: get_dtype(s.name))
    km = resolve(e.name, "kiln")(*_built(e.init, "kiln"), **init_k)
    if float64:  # (before loading: load_state_dict keeps each parameter's dtype, as torch)
        km = km.double()
    tm = None
    if have_torch():
        import torch

        torch.manual_seed(0)
        init_t = _walk(e.init_kwargs, lambda s: getattr(torch, s.name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (nested-tensor and legacy-argument notes)
            tm = resolve(e.name, "torch")(*_built(e.init, "torch"), **init_t).eval()
        if float64:
            tm = tm.double()
        km.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return km.eval(), tm


def _built(init: tuple, which: str) -> list:
    return [a.build(which) if isinstance(a, M) else a for a in init]


def kiln_callable(e: Entry, form: Form, module: Any = None) -> Callable[..., Any]:
    """``fn(*tensors)``: the entry called on tensors for the form's non-const specs, the
    const ones (and everything else) closed over."""
    target = module if module is not None else resolve(e.name, "kiln")
    specs = specs_of(form)

    def make(arrays: Sequence[np.ndarray]) -> Callable[..., Any]:
        consts = {i: kiln.from_numpy(np.array(a, copy=True))
                  for i, (s, a) in enumerate(zip(specs, arrays, strict=True)) if s.const}

        def fn(*tensors: Any) -> Any:
            it = iter(tensors)
            full = [consts[i] if i in consts else next(it) for i in range(len(specs))]
            args, kwargs = bind(form, "kiln", full)
            return target(*args, **kwargs)

        return fn

    return make  # type: ignore[return-value]


def inputs_of(form: Form, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [a for s, a in zip(specs_of(form), arrays, strict=True) if not s.const]


def flat(out: Any) -> list[Any]:
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in flat(item)]
    return [out]


def arrays_out(out: Any) -> list[np.ndarray]:
    res = []
    for o in flat(out):
        if isinstance(o, kiln.Tensor):
            res.append(np.asarray(o.detach().numpy()))
        elif hasattr(o, "detach"):
            res.append(o.detach().numpy())
        elif o is None:
            continue
        else:
            res.append(np.asarray(o))
    return res


def compare(actual: list[np.ndarray], expected: list[np.ndarray], tol: tuple, what: str,
            check_dtype: bool = True) -> None:
    if len(actual) != len(expected):
        raise AssertionError(f"{what}: {len(actual)} outputs, expected {len(expected)}")
    for i, (a, b) in enumerate(zip(actual, expected, strict=True)):
        if a.shape != b.shape:
            raise AssertionError(f"{what}: output {i} has shape {a.shape}, expected {b.shape}")
        if check_dtype and a.dtype != b.dtype:
            raise AssertionError(f"{what}: output {i} has dtype {a.dtype}, expected {b.dtype}")
        if a.dtype.kind in "biu" and b.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b, err_msg=f"{what}: output {i}")
        else:
            np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64),
                                       rtol=tol[0], atol=tol[1], equal_nan=True,
                                       err_msg=f"{what}: output {i}")


def tolerance(e: Entry, form: Form, arrays: Sequence[np.ndarray]) -> tuple:
    if form.tol is not None:
        return form.tol
    if arrays and all(a.dtype != np.float32 for a in arrays if a.dtype.kind == "f") and \
            any(a.dtype.kind == "f" for a in arrays):
        return (1e-9, 1e-11)
    return e.tol


# ------------------------------------------------------------------------------------------
# one form in one mode


class Refused(Exception):
    """Kiln raised the KilnError the form lists as deliberate."""


def run_eager(e: Entry, form: Form, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Eager Kiln on the form; compared with torch (or the NumPy ref) here."""
    module, tmod = build_modules(e) if e.is_module else (None, None)
    fn = kiln_callable(e, form, module)(arrays)
    try:
        out = arrays_out(fn(*[to_lib(a, "kiln") for a in inputs_of(form, arrays)]))
    except KilnError as exc:
        if form.refused:
            raise Refused(str(exc)) from exc
        raise
    if form.refused:
        raise AssertionError(f"expected a KilnError ({form.refused}), got a result")
    ref = reference(e, form, arrays, tmod)
    if ref is not None:
        compare(out, ref, tolerance(e, form, arrays), "eager vs reference")
    return out


def reference(e: Entry, form: Form, arrays: list[np.ndarray], tmod: Any = None
              ) -> list[np.ndarray] | None:
    if have_torch():
        import torch

        target = tmod if tmod is not None else resolve(e.name, "torch")
        args, kwargs = bind(form, "torch", [to_lib(a, "torch") for a in arrays])
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notes on legacy forms
            return arrays_out(target(*args, **kwargs))
    if e.ref is not None:
        args, kwargs = bind(form, "numpy", arrays)
        return arrays_out(e.ref(*args, **kwargs))
    return None


def run_mode(e: Entry, form: Form, arrays: list[np.ndarray], mode: str,
             expected: list[np.ndarray]) -> None:
    """Traced or AOT Kiln on the form, against eager Kiln's ``expected``."""
    module = build_modules(e)[0] if e.is_module else None
    fn = kiln_callable(e, form, module)(arrays)
    xs = [to_lib(a, "kiln") for a in inputs_of(form, arrays)]
    if mode == "trace":
        gm = kiln.trace(fn, *xs)
        got = arrays_out(gm(*xs))
    elif mode == "aot":
        from kiln.aot import aot_function, nop

        got = arrays_out(aot_function(fn, nop)(*xs))
    else:
        raise ValueError(mode)
    compare(got, expected, (1e-6, 1e-6), f"{mode} vs eager")


def run_grad(e: Entry, form: Form, index: int) -> None:
    """float64 autograd vs central finite differences on a few elements of each float input
    (and the inner-product identity in a random direction)."""
    arrays = arrays_of(e, index, form, float64=True)
    module = build_modules(e, float64=True)[0] if e.is_module else None
    fn = kiln_callable(e, form, module)(arrays)
    x0 = inputs_of(form, arrays)
    wants = [a.dtype.kind == "f" and a.size > 0 for a in x0]
    if not any(wants):
        return
    leaves = [to_lib(a, "kiln", requires_grad=w) for a, w in zip(x0, wants, strict=True)]
    first = flat(fn(*leaves))
    # the outputs that carry gradients, by position (a floating output without one, like
    # lu_unpack's permutation matrix, must not shift the cotangents of the others)
    positions = [i for i, o in enumerate(first) if isinstance(o, kiln.Tensor) and o.requires_grad]
    outs = [first[i] for i in positions]
    if not outs:
        return
    rng = np.random.default_rng(index)
    cots = [rng.standard_normal(tuple(o.shape)) for o in outs]

    def loss(xs: list[np.ndarray]) -> float:
        with kiln.no_grad():
            every = flat(fn(*[to_lib(a, "kiln") for a in xs]))
            got = [every[i] for i in positions]
        return float(sum(np.sum(np.asarray(g.numpy(), np.float64) * c)
                         for g, c in zip(got, cots, strict=False)))

    chosen = [leaf for leaf, w in zip(leaves, wants, strict=True) if w]
    grads = kiln.autograd.grad(outs, chosen, [kiln.tensor(c, dtype=o.dtype)
                                              for o, c in zip(outs, cots, strict=True)],
                               allow_unused=True)
    analytic = iter(grads)
    rtol, atol = 1e-4, 1e-6
    for j, (x, w) in enumerate(zip(x0, wants, strict=True)):
        if not w:
            continue
        g = next(analytic)
        g = np.zeros_like(x) if g is None else np.asarray(g.numpy(), np.float64)
        for flat_i in rng.choice(x.size, size=min(FD_ELEMENTS, x.size), replace=False):
            idx = np.unravel_index(flat_i, x.shape)
            hi = [a.copy() for a in x0]
            lo = [a.copy() for a in x0]
            hi[j][idx] += FD_EPS
            lo[j][idx] -= FD_EPS
            fd = (loss(hi) - loss(lo)) / (2 * FD_EPS)
            np.testing.assert_allclose(g[idx], fd, rtol=rtol, atol=atol * 100,
                                       err_msg=f"d/dinput{j}{list(idx)}: autograd vs finite "
                                               "difference")


# ------------------------------------------------------------------------------------------
# the C backend, batched


@dataclasses.dataclass
class CCase:
    """One form to run through the C backend, with eager Kiln's outputs to match."""

    entry: Entry
    index: int
    form: Form
    arrays: list[np.ndarray]
    expected: list[np.ndarray]

    @property
    def key(self) -> tuple[str, int]:
        return (self.entry.label or self.entry.name, self.index)


def _c_check(cases: Sequence[CCase]) -> None:
    fns, sizes = [], []
    for c in cases:
        module = build_modules(c.entry)[0] if c.entry.is_module else None
        fns.append(kiln_callable(c.entry, c.form, module)(c.arrays))
        sizes.append(len(inputs_of(c.form, c.arrays)))

    def batch(*tensors: Any) -> tuple:
        outs: list[Any] = []
        k = 0
        for fn, n in zip(fns, sizes, strict=True):
            outs.extend(o for o in flat(fn(*tensors[k:k + n])) if o is not None)
            k += n
        return tuple(outs)

    xs = [to_lib(a, "kiln") for c in cases for a in inputs_of(c.form, c.arrays)]
    got = arrays_out(kiln.compile(batch, backend="c")(*xs))
    k = 0
    for c in cases:
        n = len(c.expected)
        compare(got[k:k + n], c.expected, (1e-5, 1e-5), f"c vs eager {c.key}")
        k += n
    if k != len(got):
        raise AssertionError(f"c: {len(got)} outputs, expected {k}")


def run_c(cases: Sequence[CCase], results: dict) -> int:
    """Compile ``cases`` as one C library; on any failure, each case alone (so a failure names
    its form). Records ``results[(name, index, "c")]``; returns the number of compiles."""
    try:
        _c_check(cases)
    except Exception as exc:  # noqa: BLE001  (any failure: retry one by one)
        if len(cases) == 1:
            results[cases[0].key + ("c",)] = f"fail: {_describe(exc)}"
            return 1
        n = 1
        for c in cases:
            n += run_c([c], results)
        return n
    for c in cases:
        results[c.key + ("c",)] = "pass"
    return 1


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 600 else text[:600] + " ..."


# ------------------------------------------------------------------------------------------
# a whole entry


def run_entry(e: Entry, results: dict, c_cases: list[CCase]) -> None:
    """Every form of ``e`` in eager, trace, aot and grad, recording ``results[(name, index,
    mode)]`` = "pass", "refused" (the deliberate KilnError came) or "fail: ..."; forms to run
    in C are appended to ``c_cases``."""
    label = e.label or e.name
    for i, form in enumerate(e.forms):
        modes = [m for m in MODES if m in form.modes and m in e.modes]
        arrays = arrays_of(e, i, form)
        try:
            expected = run_eager(e, form, arrays)
        except Refused:
            for m in modes:
                results[(label, i, m)] = "refused"
            continue
        except Exception as exc:  # noqa: BLE001
            for m in modes:
                results[(label, i, m)] = "fail: eager: " + _describe(exc)
            continue
        results[(label, i, "eager")] = "pass"
        for mode in ("trace", "aot"):
            if mode in modes:
                try:
                    run_mode(e, form, arrays, mode, expected)
                    results[(label, i, mode)] = "pass"
                except Exception as exc:  # noqa: BLE001
                    results[(label, i, mode)] = "fail: " + _describe(exc)
        if "grad" in modes:
            if e.grad and form.grad:
                try:
                    run_grad(e, form, i)
                    results[(label, i, "grad")] = "pass"
                except Exception as exc:  # noqa: BLE001
                    results[(label, i, "grad")] = "fail: " + _describe(exc)
        if "c" in modes:
            c_cases.append(CCase(e, i, form, arrays, expected))


def run_table(entries: Sequence[Entry], c_batch: int = 60) -> dict:
    """Results of every entry in every mode (C in batches of ``c_batch`` forms)."""
    results: dict = {}
    c_cases: list[CCase] = []
    for e in entries:
        run_entry(e, results, c_cases)
    for k in range(0, len(c_cases), c_batch):
        run_c(c_cases[k:k + c_batch], results)
    return results


def summary(results: dict) -> str:
    counts: dict[str, list[int]] = {}
    for (_, _, mode), r in results.items():
        c = counts.setdefault(mode, [0, 0])
        c[0] += not r.startswith("fail")
        c[1] += 1
    total_ok = sum(c[0] for c in counts.values())
    total = sum(c[1] for c in counts.values())
    lines = [f"{mode}: {ok}/{n}" for mode, (ok, n) in counts.items()]
    rate = 100.0 * total_ok / max(total, 1)
    return f"{total_ok}/{total} passed ({rate:.1f}%); " + ", ".join(lines)
