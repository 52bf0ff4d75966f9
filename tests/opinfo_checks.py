"""Reusable checks over op-table samples: NumPy forward, finite-difference gradients (and the
inner-product identity), second derivatives, and traced/JSON/exec equivalence.

Each ``check_*`` takes an :class:`OpInfo` and a :class:`Sample` and raises AssertionError with
the entry and sample in the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from opinfo_base import SEED, OpInfo, Sample, as_arrays, assert_close, flat_outputs

import kiln
from kiln.graph.module import GraphModule

FD_EPS = 1e-6
FD_ELEMENTS = 4  # finite differences on at most this many elements per input


def where(info: OpInfo, sample: Sample) -> str:
    return f"{info.name} {sample!r}"


def check_forward(info: OpInfo, sample: Sample, dtype: str) -> None:
    """Eager Kiln == NumPy reference; inputs are left untouched."""
    if info.skip_reason("forward", sample):
        return
    before = [a.copy() for a in sample.arrays()]
    out = as_arrays(info.run(sample))
    for a, b in zip(sample.arrays(), before, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{where(info, sample)}: input modified")
    rtol, atol = (0.0, 0.0) if info.exact else info.tolerance(dtype)
    assert_close(out, info.run_ref(sample), rtol, atol, where(info, sample))


# --------------------------------------------------------------------------------------
# gradients


class GradProblem:
    """L(x) = sum_i <out_i(x), c_i> over the differentiable outputs, as a function of the
    sample's differentiable float64 arrays (in :meth:`Sample.arrays` order)."""

    def __init__(self, info: OpInfo, sample: Sample, rng: np.random.Generator) -> None:
        self.info, self.sample = info, sample
        self.positions = info.diff_positions(sample)
        args = sample.kiln_args(requires_grad=self.positions)
        # Index in sample.arrays() of every differentiable array (for rebuilding arguments).
        self.slots = []
        k = 0
        for i, a in enumerate(sample.args):
            for arr in Sample((a,)).arrays():
                if i in self.positions and arr.dtype.kind == "f":
                    self.slots.append(k)
                k += 1
        every = self._all_tensors(args)
        self.inputs = [every[k] for k in self.slots]
        outs = flat_outputs(info.run(sample, args))
        self.out_index = [i for i, o in enumerate(outs)
                          if isinstance(o, kiln.Tensor) and o.requires_grad]
        self.outputs = [outs[i] for i in self.out_index]
        self.cots = [rng.standard_normal(o.shape) for o in self.outputs]
        self.x0 = [sample.arrays()[k].astype(np.float64) for k in self.slots]

    @staticmethod
    def _all_tensors(args: tuple) -> list[kiln.Tensor]:
        out: list[kiln.Tensor] = []

        def walk(v: Any) -> None:
            if isinstance(v, kiln.Tensor):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    walk(x)

        walk(args)
        return out

    @property
    def empty(self) -> bool:
        return not self.inputs or not self.outputs

    def kiln_cots(self) -> list[kiln.Tensor]:
        return [kiln.tensor(c, dtype=o.dtype) for c, o in zip(self.cots, self.outputs)]

    def args_at(self, xs: list[np.ndarray], requires_grad: bool = False) -> tuple:
        arrays = list(self.sample.arrays())
        for k, x in zip(self.slots, xs):
            arrays[k] = x
        tensors = [kiln.from_numpy(np.asarray(a)) for a in arrays]
        if requires_grad:
            for k in self.slots:
                tensors[k].requires_grad_(True)
        return self.sample.with_arrays(tensors)

    def loss(self, xs: list[np.ndarray]) -> float:
        with kiln.no_grad():
            outs = flat_outputs(self.info.run(self.sample, self.args_at(xs)))
        return float(sum(np.sum(np.asarray(outs[i]._data, np.float64) * c)
                         for i, c in zip(self.out_index, self.cots)))

    def grads(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """Analytic dL/dx at ``xs`` (zeros for unused inputs)."""
        args = self.args_at(xs, requires_grad=True)
        every = self._all_tensors(args)
        leaves = [every[k] for k in self.slots]
        outs = flat_outputs(self.info.run(self.sample, args))
        pairs = [(outs[i], kiln.tensor(c, dtype=outs[i].dtype))
                 for i, c in zip(self.out_index, self.cots) if outs[i].requires_grad]
        if not pairs:
            return [np.zeros_like(x) for x in xs]
        gs = kiln.autograd.grad([p[0] for p in pairs], leaves, [p[1] for p in pairs],
                                allow_unused=True)
        return [np.zeros_like(x) if g is None else np.asarray(g._data, np.float64)
                for g, x in zip(gs, xs)]


def check_grad(info: OpInfo, sample: Sample, rng: np.random.Generator) -> None:
    """Analytic gradients == central finite differences (float64) on a few elements of each
    input, and <t, vjp(c)> == <jvp(t), c> in a random direction t."""
    p = GradProblem(info, sample, rng)
    if p.empty:
        return
    grads = kiln.autograd.grad(p.outputs, p.inputs, p.kiln_cots(), allow_unused=True)
    analytic = [np.zeros_like(x) if g is None else np.asarray(g._data, np.float64)
                for g, x in zip(grads, p.x0)]
    rtol, atol = info.grad_tol
    for j, (x, g) in enumerate(zip(p.x0, analytic)):
        assert g.shape == x.shape, f"{where(info, sample)}: grad {j} has shape {g.shape}"
        if x.size == 0:
            continue
        picks = rng.choice(x.size, size=min(FD_ELEMENTS, x.size), replace=False)
        for flat in picks:
            idx = np.unravel_index(flat, x.shape)
            hi = [a.copy() for a in p.x0]
            lo = [a.copy() for a in p.x0]
            hi[j][idx] += FD_EPS
            lo[j][idx] -= FD_EPS
            fd = (p.loss(hi) - p.loss(lo)) / (2 * FD_EPS)
            np.testing.assert_allclose(
                g[idx], fd, rtol=rtol, atol=atol,
                err_msg=f"{where(info, sample)}: d/dinput{j}{list(idx)} analytic vs finite "
                        "difference")
    # The inner-product identity in one random direction covers every element at once.
    t = [rng.standard_normal(x.shape) for x in p.x0]
    jvp = (p.loss([x + FD_EPS * d for x, d in zip(p.x0, t)])
           - p.loss([x - FD_EPS * d for x, d in zip(p.x0, t)])) / (2 * FD_EPS)
    vjp = sum(float(np.sum(d * g)) for d, g in zip(t, analytic))
    np.testing.assert_allclose(vjp, jvp, rtol=rtol, atol=atol * 10,
                               err_msg=f"{where(info, sample)}: <t, vjp(c)> != <jvp(t), c>")


def check_grad2(info: OpInfo, sample: Sample, rng: np.random.Generator) -> None:
    """Hessian-vector products through create_graph=True == finite differences of the
    analytic gradient."""
    p = GradProblem(info, sample, rng)
    if p.empty:
        return
    gs = kiln.autograd.grad(p.outputs, p.inputs, p.kiln_cots(), create_graph=True,
                            allow_unused=True)
    v = [rng.standard_normal(x.shape) for x in p.x0]
    pairs = [(g, kiln.tensor(d, dtype=g.dtype)) for g, d in zip(gs, v)
             if g is not None and g.requires_grad]
    if pairs:
        hv_t = kiln.autograd.grad([a for a, _ in pairs], p.inputs, [b for _, b in pairs],
                                  allow_unused=True)
        hv = [np.zeros_like(x) if h is None else np.asarray(h._data, np.float64)
              for h, x in zip(hv_t, p.x0)]
    else:
        hv = [np.zeros_like(x) for x in p.x0]
    eps = 1e-5
    g_hi = p.grads([x + eps * d for x, d in zip(p.x0, v)])
    g_lo = p.grads([x - eps * d for x, d in zip(p.x0, v)])
    for j, (h, a, b) in enumerate(zip(hv, g_hi, g_lo)):
        np.testing.assert_allclose(
            h, (a - b) / (2 * eps), rtol=1e-5, atol=1e-6,
            err_msg=f"{where(info, sample)}: Hessian-vector product, input {j}")


# --------------------------------------------------------------------------------------
# tracing


def run_code(gm: GraphModule, flat: list[kiln.Tensor]) -> list[Any]:
    """Execute ``gm.code`` (imports and a ``def forward(self, ...)``) on flat inputs, in an
    empty namespace: the code imports what it needs."""
    namespace: dict[str, Any] = {}
    exec(compile(gm.code, "<gm.code>", "exec"), namespace)  # noqa: S102 (test-made source)
    return namespace["forward"](gm, *flat)


def assert_same(actual: list[np.ndarray], expected: list[np.ndarray], what: str) -> None:
    """Bit-identical results (NaN equal to NaN): the interpreter runs the eager kernels."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, expected " \
        f"{len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == e.dtype, f"{what}: output {i} dtype {a.dtype} vs {e.dtype}"
        np.testing.assert_array_equal(a, e, err_msg=f"{what}: output {i}")


def check_traced(info: OpInfo, sample: Sample) -> GraphModule:
    """kiln.trace -> gm(...), JSON round trip then run, and exec(gm.code) all == eager."""
    fn = info.flat_bind(sample)
    tensors = [kiln.from_numpy(a) for a in sample.arrays()]
    kiln.manual_seed(SEED)
    eager = as_arrays(fn(*tensors))
    gm = kiln.trace(fn, *tensors)
    gm.graph.lint()
    what = where(info, sample)
    kiln.manual_seed(SEED)
    assert_same(as_arrays(gm(*tensors)), eager, f"{what}: traced")
    text = gm.to_json()
    again = GraphModule.from_json(text, gm.constants)
    assert again.to_json() == text, f"{what}: JSON not stable under re-serialization"
    kiln.manual_seed(SEED)
    assert_same(as_arrays(again(*tensors)), eager, f"{what}: JSON round trip")
    kiln.manual_seed(SEED)
    flat = run_code(gm, tensors)
    kiln.manual_seed(SEED)
    assert_same(as_arrays(flat), as_arrays(gm.forward(*tensors)), f"{what}: exec(gm.code)")
    return gm
