"""Fused optimizer steps (kiln.optim.fused): bit for bit the NumPy fast path for every option
combination, close to torch, the per-tensor path wherever the kernels do not apply, errors
for fused=True, state dicts shared with unfused optimizers, and a process without a C
compiler that quietly keeps the NumPy path."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.errors import ArgumentError, KilnError
from kiln.optim import fused

try:
    from kiln.backends.c.toolchain import find_compiler

    find_compiler()
except KilnError:
    pytest.skip("no C compiler: fused steps unavailable", allow_module_level=True)
fused.library(required=True)  # with a compiler, the kernels must build (never a quiet skip)

# One tensor above the kernel's parallel threshold (so the threads split it, off the
# 64-element grid), a 0-d, an empty and a few small ones.
SHAPES = [(70_001,), (), (0,), (7, 5), (3,), (2, 1, 3)]

SGD_COMBOS = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for m, d, n in [(0.0, 0.0, False), (0.9, 0.0, False), (0.8, 0.3, False), (0.9, 0.0, True)]
    for wd in (0.0, 0.1)
    for mx in (False, True)
]
ADAM_COMBOS = [
    (name, dict(betas=betas, weight_decay=wd, amsgrad=ams, maximize=mx))
    for name in ("Adam", "AdamW")
    for betas in ((0.9, 0.999), (0.3, 0.9))  # lerp weight 1 - beta1 below and above 0.5
    for wd in (0.0, 0.05)
    for ams in (False, True)
    for mx in (False, True)
]


def _params(dtype, n=2, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return [[nn.Parameter(kiln.tensor(a.copy(), dtype=str(a.dtype))) for a in arrays]
            for _ in range(n)]


def _set_grads(groups, step, skip=None):
    """The same gradients (from the first set's values) on every parameter set."""
    ref = groups[0]
    for i, p in enumerate(ref):
        x = p.detach().numpy()
        g = None if i == skip else (np.sin(3.0 * x + step) + 0.1 * x * x - 0.05 * (i + 1))
        for ps in groups:
            ps[i].grad = None if g is None else kiln.tensor(g.astype(x.dtype), dtype=str(x.dtype))


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64) if a.dtype.kind == "f" \
        else a


def _assert_bitwise(a_params, b_params, what=""):
    for i, (a, b) in enumerate(zip(a_params, b_params, strict=True)):
        x, y = a.detach().numpy(), b.detach().numpy()
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(_bits(x), _bits(y), err_msg=f"{what} param {i}")


def _assert_same_state(a_opt, b_opt):
    sa, sb = a_opt.state_dict()["state"], b_opt.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for key in sa[k]:
            x, y = np.asarray(sa[k][key]), np.asarray(sb[k][key])
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(_bits(x), _bits(y), err_msg=f"state {k} {key}")


def _fused_tensors(opt):
    """How many tensors the last fused steps of ``opt`` covered."""
    return sum(len(b.entries) for plan in opt._fused_plans.plans.values()
               for b in plan.batches)


def _compare(name, kwargs, dtype, steps=3, skip_step=1, shapes=SHAPES):
    fused_p, fast_p = _params(dtype, shapes=shapes)
    fused_opt = getattr(kiln.optim, name)(fused_p, fused=True, **kwargs)
    fast_opt = getattr(kiln.optim, name)(fast_p, fused=False, **kwargs)
    for step in range(steps):
        # one step without a gradient for tensor 3: skipped, and then at another step count
        _set_grads([fused_p, fast_p], step, skip=3 if step == skip_step else None)
        fused_opt.step()
        fast_opt.step()
        _assert_bitwise(fused_p, fast_p, f"{name} {kwargs} {dtype} step {step}")
    _assert_same_state(fused_opt, fast_opt)
    assert _fused_tensors(fused_opt) == len(shapes) and not fused_opt._scratch._buffers
    return fused_opt, fast_opt, fused_p, fast_p


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_bitwise_the_fast_path_for_every_option_combination(dtype):
    for combo in SGD_COMBOS:
        _compare("SGD", dict(lr=0.1, **combo), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_bitwise_the_fast_path_for_every_option_combination(name, dtype):
    for combo_name, combo in ADAM_COMBOS:
        if combo_name == name:
            _compare(name, dict(lr=0.02, eps=1e-6, **combo), dtype)


def test_integer_and_odd_hyper_parameters_are_bitwise_too():
    # Python ints and values that are not exact in float32 round once, as NumPy does.
    _compare("SGD", dict(lr=1, momentum=1, dampening=0.1, weight_decay=3), "float32")
    _compare("Adam", dict(lr=0.1 / 3, betas=(0.5, 0.7), eps=1, weight_decay=1), "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_values_match_except_nan_payloads(dtype):
    # NaN, inf, -0, tiny and huge values: bit for bit equal except that where two NaNs meet
    # the one that propagates may differ (operand order is the compiler's); positions agree.
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e30, 3.0],
                        dtype)
    for name, kwargs in [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
                         ("AdamW", dict(lr=0.1, amsgrad=True, weight_decay=0.1))]:
        fused_p, fast_p = _params(dtype, shapes=[(81,)])
        for ps in (fused_p, fast_p):
            ps[0].detach().numpy()[::9] = specials
        fused_opt = getattr(kiln.optim, name)(fused_p, fused=True, **kwargs)
        fast_opt = getattr(kiln.optim, name)(fast_p, fused=False, **kwargs)
        g = np.tile(specials[::-1], 9).astype(dtype)
        for _ in range(2):
            fused_p[0].grad, fast_p[0].grad = kiln.tensor(g), kiln.tensor(g.copy())
            fused_opt.step()
            fast_opt.step()
        x, y = fused_p[0].detach().numpy(), fast_p[0].detach().numpy()
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        keep = ~np.isnan(x)
        np.testing.assert_array_equal(_bits(x[keep]), _bits(y[keep]))


@pytest.mark.parametrize("combo", range(len(SGD_COMBOS)))
def test_sgd_matches_torch(combo):
    _against_torch("SGD", dict(lr=0.1, **SGD_COMBOS[combo]))


@pytest.mark.parametrize("combo", range(len(ADAM_COMBOS)))
def test_adam_matches_torch(combo):
    name, kwargs = ADAM_COMBOS[combo]
    _against_torch(name, dict(lr=0.02, **kwargs))


def _against_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    shapes = [(300,), (), (4, 3)]
    (kp,) = _params("float64", n=1, shapes=shapes)
    tp = [torch.nn.Parameter(torch.tensor(p.detach().numpy().copy())) for p in kp]
    kopt = getattr(kiln.optim, name)(kp, fused=True, **kwargs)
    topt = getattr(torch.optim, name)(tp, foreach=False, **kwargs)
    for step in range(4):
        for k, t in zip(kp, tp):
            x = k.detach().numpy()
            g = np.sin(3.0 * x + step) + 0.1 * x * x
            k.grad, t.grad = kiln.tensor(g, dtype="float64"), torch.tensor(g)
        kopt.step()
        topt.step()
        for k, t in zip(kp, tp):
            np.testing.assert_allclose(k.detach().numpy(), t.detach().numpy(), rtol=1e-12,
                                       atol=1e-14, err_msg=f"{name} {kwargs} step {step}")


def test_param_groups_with_different_options():
    dtype = "float32"
    fused_p, fast_p = _params(dtype)

    def groups(ps):
        return [{"params": ps[:2]},
                {"params": ps[2:4], "lr": 0.01, "momentum": 0.5, "nesterov": True},
                {"params": ps[4:], "weight_decay": 0.1, "maximize": True, "fused": False}]

    fused_opt = kiln.optim.SGD(groups(fused_p), lr=0.1, momentum=0.9)
    fast_opt = kiln.optim.SGD(groups(fast_p), lr=0.1, momentum=0.9, fused=False)
    for step in range(3):
        _set_grads([fused_p, fast_p], step)
        fused_opt.step()
        fast_opt.step()
        _assert_bitwise(fused_p, fast_p)
    assert _fused_tensors(fused_opt) == 4  # the third group opted out
    _assert_same_state(fused_opt, fast_opt)

    fused_p, fast_p = _params(dtype)
    adam_groups = [([0, 1], {"amsgrad": True}), ([2, 3], {"betas": (0.2, 0.5)}),
                   ([4, 5], {"weight_decay": 0.3, "decoupled_weight_decay": True})]
    fused_opt = kiln.optim.Adam([dict(o, params=[fused_p[i] for i in idx])
                                 for idx, o in adam_groups], lr=0.01)
    fast_opt = kiln.optim.Adam([dict(o, params=[fast_p[i] for i in idx])
                                for idx, o in adam_groups], lr=0.01, fused=False)
    for step in range(3):
        _set_grads([fused_p, fast_p], step)
        fused_opt.step()
        fast_opt.step()
        _assert_bitwise(fused_p, fast_p)
    assert _fused_tensors(fused_opt) == 6


def test_mixed_dtypes_in_one_group_and_tensors_left_to_other_paths():
    # float32 and float64 run as two kernel calls; a non-contiguous parameter and a
    # non-contiguous gradient take the per-tensor paths; all bitwise the unfused optimizer.
    shapes = [(40_000,), (5,), (3, 4), (6,)]
    fused_p, fast_p = _params("float32", shapes=shapes)
    for ps in (fused_p, fast_p):
        ps[1].data = ps[1].detach().double()
        wide = np.zeros((3, 8), np.float32)
        wide[:, ::2] = ps[2].detach().numpy()
        ps[2].data = kiln.Tensor._wrap(wide[:, ::2])
    fused_opt = kiln.optim.Adam(fused_p, lr=0.01, amsgrad=True)
    fast_opt = kiln.optim.Adam(fast_p, lr=0.01, amsgrad=True, fused=False)
    for step in range(3):
        _set_grads([fused_p, fast_p], step)
        for ps in (fused_p, fast_p):
            g = ps[3].grad.numpy()
            wide = np.zeros(12, np.float32)
            wide[::2] = g
            ps[3].grad = kiln.Tensor._wrap(wide[::2])  # not contiguous
        fused_opt.step()
        fast_opt.step()
        _assert_bitwise(fused_p, fast_p)
    plan = next(iter(fused_opt._fused_plans.plans.values()))
    assert sorted(str(b.dtype) for b in plan.batches) == ["float32", "float64"]
    assert [p is fused_p[2] or p is fused_p[3] for p in plan.rest] == [True, True]
    _assert_same_state(fused_opt, fast_opt)


def test_grads_none_are_skipped_and_state_is_lazy():
    fused_p, fast_p = _params("float32", shapes=[(4,), (5,)])
    fused_opt = kiln.optim.SGD(fused_p, lr=0.1, momentum=0.9)
    fast_opt = kiln.optim.SGD(fast_p, lr=0.1, momentum=0.9, fused=False)
    before = fused_p[1].detach().numpy().copy()
    _set_grads([fused_p, fast_p], 0, skip=1)
    fused_opt.step()
    fast_opt.step()
    np.testing.assert_array_equal(fused_p[1].detach().numpy(), before)
    assert "momentum_buffer" not in fused_opt.state[fused_p[1]]
    _set_grads([fused_p, fast_p], 1)  # now both: the second starts its buffer
    fused_opt.step()
    fast_opt.step()
    _assert_bitwise(fused_p, fast_p)
    _assert_same_state(fused_opt, fast_opt)
    for ps in (fused_p, fast_p):
        for p in ps:
            p.grad = None
    fused_opt.step()  # nothing to do
    _assert_bitwise(fused_p, fast_p)


def test_rebinding_parameters_and_state_is_seen():
    fused_p, fast_p = _params("float32", shapes=[(50,), (6,)])
    fused_opt = kiln.optim.SGD(fused_p, lr=0.1, momentum=0.9)
    fast_opt = kiln.optim.SGD(fast_p, lr=0.1, momentum=0.9, fused=False)
    for step in range(4):
        if step == 2:
            for ps, opt in ((fused_p, fused_opt), (fast_p, fast_opt)):
                ps[0].data = kiln.ones(50) * 0.5  # a new array
                opt.state[ps[1]]["momentum_buffer"] = kiln.zeros(6)  # a new state tensor
        _set_grads([fused_p, fast_p], step)
        fused_opt.step()
        fast_opt.step()
        _assert_bitwise(fused_p, fast_p, f"step {step}")
    assert _fused_tensors(fused_opt) == 2


def test_versions_move_and_state_stays_kiln_tensors():
    p = nn.Parameter(kiln.ones(3))
    opt = kiln.optim.Adam([p], lr=0.1, amsgrad=True, fused=True)
    p.grad = kiln.ones(3)
    v = p._version
    opt.step()
    assert p._version > v
    state = opt.state[p]
    assert all(isinstance(t, kiln.Tensor) for t in state.values())
    versions = {k: t._version for k, t in state.items()}
    opt.step()
    assert all(state[k]._version > versions[k] for k in state)
    assert float(state["step"].item()) == 2.0


def test_fallbacks_are_bitwise_the_fast_path():
    cases = {
        # a NumPy float64 lr makes NumPy compute in float64: auto mode leaves it to NumPy
        "numpy lr": lambda ps, g: (ps[0].grad, ps[1].grad),
        # a gradient that is another parameter's array: sequential semantics, per tensor
        "grad aliases a parameter": lambda ps, g: (g[0], ps[0].detach()),
        "grad requires grad": lambda ps, g: (g[0], kiln.tensor(g[1].numpy(),
                                                                requires_grad=True)),
        "grad of another dtype": lambda ps, g: (g[0], g[1].double()),
    }
    for what, make in cases.items():
        fused_p, fast_p = _params("float32", shapes=[(40_000,), (40_000,)])
        lr = np.float64(0.1) if what == "numpy lr" else 0.1
        fused_opt = kiln.optim.SGD(fused_p, lr=lr, momentum=0.9)
        fast_opt = kiln.optim.SGD(fast_p, lr=lr, momentum=0.9, fused=False)
        for step in range(2):
            _set_grads([fused_p, fast_p], step)
            for ps in (fused_p, fast_p):
                ps[0].grad, ps[1].grad = make(ps, [ps[0].grad, ps[1].grad])
            fused_opt.step()
            fast_opt.step()
            _assert_bitwise(fused_p, fast_p, what)


def test_trace_records_the_generic_update():
    lin = nn.Linear(3, 2)
    opt = kiln.optim.SGD(lin.parameters(), lr=0.1, fused=True)

    def step(gw, gb):
        lin.weight.grad, lin.bias.grad = gw, gb
        opt.step()
        return lin.weight * 1.0

    gm = kiln.trace(step, kiln.randn(2, 3), kiln.randn(2))
    assert len(gm.signature.mutations) == 2 and not opt._fused_plans.plans


def test_fused_true_errors():
    p = nn.Parameter(kiln.ones(3))
    with pytest.raises(ArgumentError, match="float32 and float64"):
        kiln.optim.SGD([kiln.ones(2).long()], lr=0.1, fused=True)
    with pytest.raises(ArgumentError, match="foreach"):
        kiln.optim.Adam([p], fused=True, foreach=True)
    with pytest.raises(ArgumentError, match="fused must be"):
        kiln.optim.SGD([p], lr=0.1, fused="yes")
    opt = kiln.optim.SGD([p], lr=0.1, fused=True)
    wide = np.zeros(6, np.float32)
    p.grad = kiln.Tensor._wrap(wide[::2])
    with pytest.raises(ArgumentError, match=r"params\[0\].*not C-contiguous.*fused=None"):
        opt.step()
    np.testing.assert_array_equal(p.detach().numpy(), np.ones(3))  # nothing half-done


def test_fused_true_rounds_numpy_hyper_parameters():
    # The one place exactness is given up, on request: NumPy would multiply float32 by a
    # float64 lr in float64 and round once; the kernel rounds lr to float32 first. The two
    # differ by at most an ulp of each product, so the parameters stay within 1e-6.
    fused_p, fast_p = _params("float32", shapes=[(1000,)])
    fused_opt = kiln.optim.SGD(fused_p, lr=np.float64(0.1), momentum=0.9, fused=True)
    fast_opt = kiln.optim.SGD(fast_p, lr=np.float64(0.1), momentum=0.9, fused=False)
    for step in range(3):
        _set_grads([fused_p, fast_p], step)
        fused_opt.step()
        fast_opt.step()
    assert _fused_tensors(fused_opt) == 1
    np.testing.assert_allclose(fused_p[0].detach().numpy(), fast_p[0].detach().numpy(),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                         ("AdamW", {"lr": 0.01, "amsgrad": True})])
def test_state_dicts_move_between_fused_and_unfused(name, kwargs):
    a_p, b_p, c_p = _params("float32", n=3)
    fused_opt = getattr(kiln.optim, name)(a_p, fused=True, **kwargs)
    for step in range(2):
        _set_grads([a_p, b_p, c_p], step)
        fused_opt.step()
    for ps in (b_p, c_p):
        for p, src in zip(ps, a_p):
            p.data = src.detach().clone()
    # fused -> unfused, and unfused -> fused through a third optimizer
    unfused_opt = getattr(kiln.optim, name)(b_p, fused=False, **kwargs)
    unfused_opt.load_state_dict(copy.deepcopy(fused_opt.state_dict()))
    refused_opt = getattr(kiln.optim, name)(c_p, fused=True, **kwargs)
    refused_opt.load_state_dict(copy.deepcopy(unfused_opt.state_dict()))
    assert [g["fused"] for g in unfused_opt.param_groups] == [False]  # kept its own choice
    assert [g["fused"] for g in refused_opt.param_groups] == [True]
    for step in range(2, 4):
        _set_grads([a_p, b_p, c_p], step)
        for opt in (fused_opt, unfused_opt, refused_opt):
            opt.step()
        _assert_bitwise(a_p, b_p)
        _assert_bitwise(a_p, c_p)
    _assert_same_state(fused_opt, unfused_opt)
    assert _fused_tensors(refused_opt) == len(SHAPES)


def test_deep_copied_optimizer_never_writes_through_the_original():
    (fused_p,) = _params("float32", n=1, shapes=[(40_000,)])
    opt = kiln.optim.SGD(fused_p, lr=0.1, momentum=0.9)
    _set_grads([fused_p], 0)
    opt.step()
    twin = copy.deepcopy(opt)
    before = fused_p[0].detach().numpy().copy()
    twin_p = twin.param_groups[0]["params"][0]
    twin_p.grad = kiln.ones(40_000)
    twin.step()
    np.testing.assert_array_equal(fused_p[0].detach().numpy(), before)
    assert not np.array_equal(twin_p.detach().numpy(), before)


def test_every_option_combination_is_covered():
    # The tables above span every flag of the kernels (csrc/kiln_optim.c).
    sgd_flags = {opt_flags("SGD", c) for c in SGD_COMBOS}
    adam_flags = {opt_flags(n, c) for n, c in ADAM_COMBOS}
    assert len(sgd_flags) == 2 * 2 * 4 and len(adam_flags) == 2 ** 5


def opt_flags(name, combo):
    p = nn.Parameter(kiln.ones(1))
    opt = getattr(kiln.optim, name)([p], lr=0.1, **combo)
    return opt._fused_hyper(opt.param_groups[0])[1]


def test_a_process_without_a_compiler_falls_back(tmp_path):
    code = textwrap.dedent("""
        import numpy as np, kiln
        from kiln import nn
        from kiln.errors import ToolchainError
        from kiln.optim import fused
        p, q = nn.Parameter(kiln.ones(3)), nn.Parameter(kiln.ones(3))
        opt = kiln.optim.SGD([p], lr=0.5, momentum=0.9)
        ref = kiln.optim.SGD([q], lr=0.5, momentum=0.9, fused=False)
        for _ in range(2):
            p.grad, q.grad = kiln.ones(3), kiln.ones(3)
            opt.step(); ref.step()
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())
        assert not fused.available() and not opt._fused_plans.plans
        try:
            kiln.optim.Adam([p], fused=True)
        except ToolchainError as e:
            print("ERROR:", e)
    """)
    env = dict(os.environ, CC="/nonexistent/cc", PATH="/nonexistent", KILN_DEBUG="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ERROR: Adam(fused=True) needs a C compiler" in res.stdout
    assert "apt-get install gcc" in res.stdout
    assert "fused steps unavailable" in res.stderr  # the debug log of the fallback


def test_kernel_refuses_a_null_descriptor():
    fn = fused.library().fn[("sgd", np.dtype(np.float32))]
    assert fn(None, None, 1, None, 0, 0) != 0
    assert fn(None, None, 0, None, 0, 0) == 0  # nothing to do


def test_numpy_float64_lr_fuses_float64_tensors_only():
    # NumPy computes float64 arithmetic with a float64 lr either way: those tensors fuse;
    # float32 ones next to it keep the NumPy path. All bitwise the unfused optimizer.
    fused_p, fast_p = _params("float32", shapes=[(40_000,), (300,)])
    for ps in (fused_p, fast_p):
        ps[1].data = ps[1].detach().double()
    fused_opt = kiln.optim.SGD(fused_p, lr=np.float64(0.1), momentum=0.9)
    fast_opt = kiln.optim.SGD(fast_p, lr=np.float64(0.1), momentum=0.9, fused=False)
    for step in range(3):
        _set_grads([fused_p, fast_p], step)
        fused_opt.step()
        fast_opt.step()
        _assert_bitwise(fused_p, fast_p)
    plan = next(iter(fused_opt._fused_plans.plans.values()))
    assert [str(b.dtype) for b in plan.batches] == ["float32", "float64"]
    assert fused_opt._scratch._buffers.keys() == {np.dtype(np.float32)}
