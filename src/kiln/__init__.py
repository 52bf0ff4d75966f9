"""Kiln: an ahead-of-time compiler for neural-network programs.

>>> import kiln
>>> x = kiln.randn(4, 3)
>>> gm = kiln.trace(lambda x: (x.exp() + 1.0).sum(), x)
>>> f = kiln.compile(lambda x: (x.exp() + 1.0).sum())
>>> (abs(f(x) - gm(x)) < 1e-4).item()
True
"""

from __future__ import annotations

import importlib
from typing import Any

from kiln import ops  # noqa: F401  (registers every primitive)
from kiln.base.threads import get_num_threads, set_num_threads
from kiln.core.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from kiln.core.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from kiln.core.devices import device
from kiln.core.dtypes import DType, bool_, float32, float64, int32, int64
from kiln.core.functional import (
    amax,
    amin,
    cat,
    chunk,
    clamp,
    flatten,
    flip,
    logsumexp,
    matmul,
    mean,
    narrow,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    std,
    sum,
    transpose,
    unbind,
    unsqueeze,
    var,
    where,
)
from kiln.core.methods import (  # noqa: A004
    argmax,
    argmin,
    gather,
    max,
    min,
    prod,
    scatter,
    scatter_add,
)
from kiln.core.random import (
    Generator,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    seed,
    set_rng_state,
)
from kiln.core.tensor import Tensor, _install_methods
from kiln.core.typeinfo import finfo, iinfo
from kiln.errors import KilnError
from kiln.symbolic.sizes import Dim, SymInt

_install_methods()

float = float32  # noqa: A001  (torch.float alias)
double = float64
long = int64
bool = bool_  # noqa: A001

__version__ = "0.1.0"

# Elementwise functions under kiln.* (kiln.exp(x) ...), straight from the registry.
for _name in ("neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos",
              "tanh", "sigmoid", "erf", "relu", "floor", "ceil", "round", "sign",
              "logical_not", "reciprocal", "add", "sub", "mul", "div", "pow", "maximum",
              "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
              "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"):
    globals()[_name] = getattr(ops, _name)
del _name

# torch's arithmetic, matrix and index composites (kiln.core.mathops), e.g. kiln.roll, kiln.bmm.
from kiln.core import mathops as _mathops  # noqa: E402

for _name in _mathops.FUNCTIONS:
    globals()[_name] = getattr(_mathops, _name)
ger = _mathops.outer
divide = _mathops.true_divide
# torch's elementwise functions beyond the first primitives (kiln.core.elementwise), e.g.
# kiln.isnan, kiln.atan2, kiln.logaddexp.
from kiln.core import elementwise as _elementwise  # noqa: E402

globals().update(_elementwise.functions())
# torch's shape, stacking and comparison composites (kiln.core.shapeops), e.g. kiln.hstack.
from kiln.core import shapeops as _shapeops  # noqa: E402

for _name in _shapeops.FUNCTIONS:
    globals()[_name] = getattr(_shapeops, _name)
from kiln.core import linalg_decomp as _linalg_decomp  # noqa: E402

globals().update(_linalg_decomp.TOP_LEVEL)
from kiln.core import numerics as _numerics  # noqa: E402

for _name in _numerics.FUNCTIONS:
    globals()[_name] = getattr(_numerics, _name)
from kiln.core import special as _special  # noqa: E402

globals().update(_special.TOP_LEVEL)
from kiln.core import copies as _copies  # noqa: E402

globals().update(_copies.FUNCTIONS)
# torch's sorting, searching, selection and histogram ops and those whose output shape
# depends on the values (kiln.core.sortops, selectops, diagops, scatterops, dataops), e.g.
# kiln.sort, kiln.unique.
from kiln.core import dataops as _dataops  # noqa: E402
from kiln.core import diagops as _diagops  # noqa: E402
from kiln.core import scatterops as _scatterops  # noqa: E402
from kiln.core import selectops as _selectops  # noqa: E402
from kiln.core import sortops as _sortops  # noqa: E402

_SORT_MODULES = (_sortops, _selectops, _diagops, _scatterops, _dataops)
for _mod in _SORT_MODULES:
    for _name in _mod.FUNCTIONS:
        globals()[_name] = getattr(_mod, _name)
del _mod
from kiln.core.methods import floor_divide, remainder  # noqa: E402, F401

# torch's out= on the kiln.* functions that return one tensor.
for _name in (*_mathops.FUNCTIONS, "neg", "abs", "exp", "log", "log1p", "expm1", "sqrt",
              "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf", "relu", "floor", "ceil", "round",
              "sign", "reciprocal", "mul", "pow", "maximum", "minimum", "eq", "ne", "lt", "le",
              "gt", "ge", "logical_and", "logical_or", "logical_not", "cat", "stack", "where",
              "matmul", "sum", "mean", "prod", "amax", "amin", "clamp", "logsumexp", "flip",
              "gather", "true_divide", "divide", "ger", "floor_divide", "remainder"):
    globals()[_name] = _mathops.with_out(globals()[_name])
del _name

# Heavier subpackages load on first use, so `import kiln` stays fast.
_LAZY = {
    "nn": "kiln.nn", "optim": "kiln.optim", "autograd": "kiln.autograd",
    "aot": "kiln.aot", "models": "kiln.models", "backends": "kiln.backends",
    "pytree": "kiln.base.pytree", "graph": "kiln.graph", "weights": "kiln.io.weights",
    "compiler": "kiln.compiler", "export": "kiln.export", "utils": "kiln.utils",
    "cuda": "kiln.core.cuda", "artifacts": "kiln.artifacts",
    "linalg": "kiln.core.linalg",
    "signal": "kiln.signal",
    "fft": "kiln.core.fft",
    "masked": "kiln.core.masked",
    "special": "kiln.core.special",
    "jit": "kiln.jit",
}
_LAZY_ATTRS = {
    "trace": ("kiln.tracing.trace", "trace"),
    "cond": ("kiln.tracing.control", "cond"),
    "while_loop": ("kiln.tracing.control", "while_loop"),
    "fori_loop": ("kiln.tracing.control", "fori_loop"),
    "compile": ("kiln.compiler.compiled", "compile"),
    "load_compiled": ("kiln.artifacts.precompiled", "load_compiled_function"),
    "GraphModule": ("kiln.graph.module", "GraphModule"),
    "Graph": ("kiln.graph.graph", "Graph"),
    "einsum": ("kiln.nn.functional", "einsum"),
    "softmax": ("kiln.nn.functional", "softmax"),
    "log_softmax": ("kiln.nn.functional", "log_softmax"),
    "aot_compile": ("kiln.export.build", "aot_compile"),
    "aot_load": ("kiln.export.loader", "aot_load"),
    "save": ("kiln.io.saving", "save"),
    "load": ("kiln.io.saving", "load"),
    "norm": ("kiln.core.linalg", "torch_norm"),
    **{name: ("kiln.signal.windows", name) for name in (
        "hann_window", "hamming_window", "blackman_window", "bartlett_window",
        "kaiser_window")},
    # torch's distances and the max-pool input gradient (kiln.nn composites)
    "cdist": ("kiln.nn.distance", "cdist"),
    "dist": ("kiln.nn.distance", "dist"),
    "max_pool2d_with_indices_backward": ("kiln.nn.pool_backward",
                                         "max_pool2d_with_indices_backward"),
    "native_layer_norm": ("kiln.nn.norm_extra", "native_layer_norm"),
    "native_group_norm": ("kiln.nn.norm_extra", "native_group_norm"),
    "native_batch_norm": ("kiln.nn.norm_extra", "native_batch_norm"),
    "_native_batch_norm_legit": ("kiln.nn.norm_extra", "native_batch_norm_legit"),
    "grid_sampler_2d": ("kiln.nn.grid_sample", "grid_sampler_2d"),
    "grid_sampler_3d": ("kiln.nn.grid_sample", "grid_sampler_3d"),
    "constant_pad_nd": ("kiln.nn.aten_extra", "constant_pad_nd"),
    "native_dropout_backward": ("kiln.nn.aten_extra", "native_dropout_backward"),
    "_softmax_backward_data": ("kiln.nn.aten_extra", "_softmax_backward_data"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    if name in _LAZY_ATTRS:
        mod, attr = _LAZY_ATTRS[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    from kiln.errors import missing_attribute

    raise missing_attribute("module 'kiln'", name, [*globals(), *_LAZY, *_LAZY_ATTRS])


__all__ = [
    "Tensor", "DType", "Dim", "SymInt", "KilnError", "float32", "float64", "int32", "int64",
    "bool_", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange",
    "linspace", "eye", "rand", "randn", "randint", "zeros_like", "ones_like", "full_like",
    "empty_like", "rand_like", "randn_like", "manual_seed", "no_grad", "enable_grad",
    "is_grad_enabled", "set_grad_enabled", "trace", "compile", "cond", "while_loop",
    "fori_loop", "cat", "stack", "where",
    "matmul", "sum", "mean", "var", "std", "reshape", "permute", "transpose", "squeeze",
    "unsqueeze", "flatten", "split", "chunk", "unbind", "clamp", "flip", "narrow", "amax",
    "amin", "logsumexp", "max", "min", "argmax", "argmin", "prod", "gather", "scatter_add",
    "scatter", "randperm", "Generator", "default_generator", "seed", "initial_seed",
    "get_rng_state", "set_rng_state", "finfo", "iinfo", "device", "save", "load",
    "load_compiled", "norm", "linalg", "set_num_threads", "get_num_threads", "signal",
    "hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window",
    *_mathops.FUNCTIONS, *_elementwise.functions(), *_shapeops.FUNCTIONS,
    *_linalg_decomp.TOP_LEVEL, *_copies.FUNCTIONS, *_numerics.FUNCTIONS, "fft", "special",
    *_sortops.FUNCTIONS, *_selectops.FUNCTIONS, *_diagops.FUNCTIONS, *_dataops.FUNCTIONS,
    *_scatterops.FUNCTIONS, "masked", *_special.TOP_LEVEL,
]
