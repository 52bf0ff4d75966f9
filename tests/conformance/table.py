"""The conformance table: torch's argument forms per op, run in every mode by
tests/conformance/test_conformance.py (the machinery is in harness.py).

Forms are written as torch takes them, including 0-d and empty inputs, legacy keywords and
list arguments; ``_refused=`` marks a form Kiln deliberately refuses with a KilnError (listed
in docs/ops.md). ``python tests/conformance/report.py`` prints the pass rate.
"""

from __future__ import annotations

import math

import table_copies
import table_elementwise
import table_layers_extra
import table_linalg
import table_losses
import table_numerics
import table_shapes
import table_sortops
import table_special
import table_windows
from harness import D, Entry, M, entry, f, t
from table_linalg import NO_C

E = ()  # a 0-d shape


def _ix(*shape: object, high: int) -> object:
    return t(*shape, dtype="int64", domain="index", high=high)

FWD = ("eager", "trace", "aot", "c")  # modes without the gradient check
EAGER = ("eager",)

ARITH = [
    entry("true_divide", f(t(2, 3), t(3, domain="positive")), f(t(4, dtype="int64"), 2)),
    entry("Tensor.true_divide", f(t(2, 3), t(2, 3, domain="positive"))),
    entry("square", f(t(2, 3)), f(t(E)), f(t(0, 2))),
    entry("Tensor.square", f(t(3))),
    entry("clamp_min", f(t(2, 3), 0.1), f(t(E), -0.5)),
    entry("clamp_max", f(t(2, 3), 0.1), f(t(4), t(4, domain="ones"))),
    entry("Tensor.clamp_min", f(t(5), 0.0)),
    entry("lerp", f(t(2, 3), t(2, 3), 0.3), f(t(3), t(2, 3), t(2, 3, domain="positive")),
          f(t(E), t(E), 0.7)),
    entry("Tensor.lerp", f(t(4), t(4), 0.25)),
    entry("addcmul", f(t(2, 3), t(2, 3), t(3), value=0.5), f(t(3), t(3), t(3))),
    entry("addcdiv", f(t(2, 3), t(2, 3), t(2, 3, domain="positive"), value=-2.0),
          f(t(E), t(E), t(E, domain="positive"))),
    entry("Tensor.addcmul", f(t(3), t(3), t(3), value=2)),
    entry("Tensor.addcdiv", f(t(3), t(3), t(3, domain="positive"))),
    entry("add", f(t(2, 3), t(2, 3), alpha=2), f(t(3), 1.5, alpha=-1),
          f(t(3, dtype="int64"), t(3, dtype="int64"), alpha=3)),
    entry("sub", f(t(2, 3), t(3), alpha=0.5)),
    entry("Tensor.add", f(t(2, 3), t(2, 3), alpha=2)),
    entry("Tensor.sub", f(t(2, 3), 1.0, alpha=3)),
    entry("div", f(t(2, 3), t(2, 3, domain="positive"), rounding_mode="floor"),
          f(t(2, 3), t(2, 3, domain="positive"), rounding_mode="trunc"),
          f(t(4, dtype="int64"), t(4, dtype="int64", domain="positive"), rounding_mode="floor"),
          f(t(4, dtype="int64"), t(4, dtype="int64", domain="positive"), rounding_mode="trunc"),
          f(t(4), 2.0, rounding_mode=None)),
    entry("Tensor.div", f(t(3), 2.0, rounding_mode="floor", _grad=False)),
    entry("F.tanhshrink", f(t(2, 3)), f(t(E)), f(t(0))),
    entry("nn.Tanhshrink", f(t(2, 3))),
]

MATRIX = [
    entry("mm", f(t(2, 3), t(3, 4)), f(t(0, 3), t(3, 2)), f(t(2, 0), t(0, 3)),
          f(t(2, 3, dtype="int64"), t(3, 2, dtype="int64"))),
    entry("Tensor.mm", f(t(2, 3), t(3, 1))),
    entry("bmm", f(t(2, 2, 3), t(2, 3, 4)), f(t(0, 2, 3), t(0, 3, 4))),
    entry("Tensor.bmm", f(t(3, 2, 2), t(3, 2, 2))),
    entry("mv", f(t(2, 3), t(3)), f(t(0, 3), t(3))),
    entry("Tensor.mv", f(t(4, 3), t(3))),
    entry("dot", f(t(3), t(3)), f(t(0), t(0)), f(t(4, dtype="int64"), t(4, dtype="int64"))),
    entry("Tensor.dot", f(t(5), t(5))),
    entry("outer", f(t(3), t(4)), f(t(0), t(2))),
    entry("Tensor.outer", f(t(2), t(3))),
    entry("addmm", f(t(2, 4), t(2, 3), t(3, 4)), f(t(4), t(2, 3), t(3, 4), beta=0.5, alpha=2),
          f(t(2, 4), t(2, 3), t(3, 4), beta=0)),
    entry("Tensor.addmm", f(t(2, 2), t(2, 3), t(3, 2), alpha=0.5)),
    entry("baddbmm", f(t(2, 2, 4), t(2, 2, 3), t(2, 3, 4)),
          f(t(2, 4), t(3, 2, 3), t(3, 3, 4), beta=2, alpha=0.5)),
    entry("Tensor.baddbmm", f(t(2, 2, 2), t(2, 2, 3), t(2, 3, 2))),
    entry("addmv", f(t(2), t(2, 3), t(3), alpha=2),
          f(t(2, dtype="int64"), t(2, 3, dtype="int64"), t(3, dtype="int64"), beta=0.2,
            alpha=0.6)),
    entry("F.hardtanh", f(t(2, 3, dtype="int64"), -0.5, 0.5), f(t(2, 3), -0.5, 0.5)),
    entry("addbmm", f(t(2, 4), t(3, 2, 3), t(3, 3, 4))),
    entry("addr", f(t(2, 3), t(2), t(3), beta=2)),
    entry("matmul", f(t(2, 3), t(3)), f(t(3), t(3)), f(t(2, 1, 2, 3), t(4, 3, 2)),
          f(t(0, 3), t(3, 2))),
    entry("t", f(t(2, 3)), f(t(3)), f(t(E))),
    entry("Tensor.t", f(t(2, 3)), f(t(4))),
]

SHAPES = [
    entry("Tensor.repeat", f(t(2, 3), 2, 1), f(t(3), 2, 2), f(t(2), (3, 1, 2)), f(t(E), 3),
          f(t(2, 3), 0, 2), f(t(0, 2), 2, 2), f(t(2, 3), [1, 2])),
    entry("tile", f(t(2, 3), (2,)), f(t(3), (2, 2))),
    entry("roll", f(t(5), 2), f(t(2, 3), 1, 1), f(t(2, 3), (1, -1), (0, 1)), f(t(3, 4), -5),
          f(t(0, 3), 1, 0), f(t(2, 3), 3)),
    entry("Tensor.roll", f(t(4), -1), f(t(2, 2), shifts=1, dims=0)),
    entry("broadcast_to", f(t(3), (2, 3)), f(t(2, 1), (2, 4)), f(t(E), (3,)), f(t(1), (0,))),
    entry("Tensor.broadcast_to", f(t(1, 3), (2, -1))),
    entry("select", f(t(2, 3), 0, 1), f(t(2, 3), -1, -1), f(t(4, 0), 0, 2)),
    entry("Tensor.select", f(t(2, 3, 4), 1, 2)),
    entry("index_select", f(t(3, 4), 0, t(5, dtype="int64", domain="index", high=3)),
          f(t(3, 4), 1, t(2, dtype="int64", domain="index", high=4)),
          f(t(3, 4), 1, t(0, dtype="int64")),
          f(t(3, 4), -1, t(E, dtype="int64", domain="index", high=4)),
          f(t(E), 0, t(1, dtype="int64", domain="index", high=1))),
    entry("Tensor.index_select", f(t(5), 0, t(3, dtype="int64", domain="index", high=5))),
    entry("masked_fill", f(t(2, 3), t(2, 3, dtype="bool"), 0.5),
          f(t(2, 3), t(3, dtype="bool"), -1.0),
          f(t(2, 3, dtype="int64"), t(2, 3, dtype="bool"), 7),
          f(t(2, 3), t(2, 3, dtype="bool"), t(E, const=True)),
          f(t(E), t(E, dtype="bool"), 1.0), f(t(3), t(2, 3, dtype="bool"), 2.0)),
    entry("Tensor.masked_fill", f(t(3), t(3, dtype="bool"), float("-inf"), _grad=False)),
    entry("tril", f(t(3, 4)), f(t(3, 4), 1), f(t(2, 3, 3), -1), f(t(0, 3)),
          f(t(3, 3, dtype="bool"))),
    entry("triu", f(t(3, 4)), f(t(3, 4), -1), f(t(2, 3, 3), diagonal=2)),
    entry("Tensor.tril", f(t(3, 3))),
    entry("Tensor.triu", f(t(3, 3), 1)),
    entry("cumsum", f(t(5), 0), f(t(2, 3), 1), f(t(2, 3), -2), f(t(E), 0), f(t(0, 3), 0),
          f(t(4, dtype="int64"), 0), f(t(4, dtype="int32"), 0), f(t(4, dtype="bool"), 0),
          f(t(3, 2), 0, dtype=D("float64")), f(t(7, 2), 0)),
    entry("cumprod", f(t(5), 0), f(t(2, 3), 1), f(t(E), -1), f(t(4, dtype="int64"), 0),
          f(t(3, 2), 0, dtype=D("float64"))),
    entry("Tensor.cumsum", f(t(2, 3), dim=1)),
    entry("Tensor.cumprod", f(t(2, 3), 0)),
    entry("round", f(t(5)), f(t(5), decimals=2), f(t(E), decimals=1), grad=False),
    entry("Tensor.round", f(t(4), decimals=1), grad=False),
    entry("scatter", f(t(3, 4), 1, t(3, 2, dtype="int64", domain="index", high=4),
                       t(3, 2), reduce="add"),
          f(t(3, 4), 0, t(2, 4, dtype="int64", domain="index", high=3), 1.5),
          f(t(E), 0, _ix(E, high=1), t(E)), f(t(E), -1, _ix(E, high=1), t(E), reduce="add")),
    entry("scatter_add", f(t(E), 0, _ix(E, high=1), t(E))),
    entry("clone", f(t(2, 3)), f(t(E)), f(t(0)), f(t(3, dtype="int64"))),
    entry("Tensor.clone", f(t(2, 3))),
    entry("narrow", f(t(5, 2), 0, 1, 3), f(t(5, 2), 0, t(E, dtype="int64", const=True,
                                                         domain="index", high=2), 2),
          f(t(5), -1, -3, 2)),
    entry("flatten", f(t(E)), f(t(2, 3, 4), 1)),
    entry("Tensor.unfold", f(t(6), 0, 3, 2), f(t(2, 10, 3), 1, 4, 3), f(t(2, 9), -1, 2, 1),
          f(t(2, 7), 1, 7, 1), f(t(E), 0, 1, 1), f(t(4, 3), 1, 0, 1), f(t(0, 3), 1, 2, 1),
          f(t(3, 40), 1, 32, 4)),
    entry("Tensor.__getitem__",
          f(t(3, 4, 5), (_ix(2, high=3), _ix(2, high=4))),
          f(t(3, 4, 5), (slice(None), _ix(2, 1, high=4), _ix(3, high=5))),
          f(t(3, 4, 5), (_ix(2, high=3), slice(1, 3), _ix(2, high=5))),
          f(t(3, 4), (_ix(E, high=3), _ix(2, high=4))),
          f(t(3, 4, 5), (0, _ix(2, high=4), _ix(2, high=5)))),
]

REDUCTIONS = [
    entry("sum", f(t(E), 0), f(t(E), -1), f(t(E), dim=0, keepdim=True), f(t(2, 3), 1),
          f(t(2, 3), dtype=D("float64")), f(t(2, 3, dtype="int32"), 0, dtype=D("int32")),
          f(t(0, 3), 0), f(t(2, 3), (0, 1))),
    entry("Tensor.sum", f(t(E), 0), f(t(2, 3), dtype=D("float64"))),
    entry("mean", f(t(E), 0), f(t(2, 3), -1, dtype=D("float64")),
          f(t(2, 3, dtype="int64"), dtype=D("float32"))),
    entry("prod", f(t(E), 0), f(t(2, 3), 1), f(t(2, 3), 1, dtype=D("float64")),
          f(t(2, 3), dtype=D("float64"))),
    entry("amax", f(t(E), 0), f(t(E), -1), f(t(2, 3, domain="distinct"), 1)),
    entry("amin", f(t(E), -1), f(t(2, 3, domain="distinct"), (0, 1))),
    entry("max", f(t(E), 0), f(t(E), -1), f(t(2, 3, domain="distinct"), 1),
          f(t(2, 3, domain="distinct"))),
    entry("min", f(t(E), 0), f(t(3, 2, domain="distinct"), 0, True)),
    entry("argmax", f(t(E), 0), f(t(2, 3, domain="distinct"), -1)),
    entry("logsumexp", f(t(E), 0), f(t(E), -1), f(t(2, 3), 1), f(t(2, 0), 1)),
    entry("var", f(t(2, 3), 1, True), f(t(2, 3), 1, False), f(t(2, 3), 0, False, True),
          f(t(4), unbiased=False), f(t(3, 4), dim=1, correction=0)),
    entry("std", f(t(2, 3), 1, True), f(t(4), 0, False), f(t(2, 3), False), f(t(0)),
          f(t(1), 0)),
    entry("Tensor.var", f(t(2, 3), 1, False)),
    entry("Tensor.std", f(t(2, 3), 0, True, True)),
    entry("norm", f(t(2, 3)), f(t(2, 3), 1), f(t(2, 3), 2, 1), f(t(2, 3), "fro", (0, 1)),
          f(t(2, 3), float("inf"), 1, True), f(t(3), 3.0), f(t(E)), f(t(0, 3), 2, 1),
          f(t(2, 3), p=1, dim=0, dtype=D("float64")),
          f(t(2, 3), "nuc", _modes=NO_C)),
    entry("Tensor.norm", f(t(2, 3)), f(t(2, 3), 1, 1), f(t(2, 3), dim=1, keepdim=True)),
    entry("linalg.vector_norm", f(t(2, 3)), f(t(2, 3), 1, 1), f(t(2, 3), 0.5, (0, 1)),
          f(t(2, 3, domain="distinct"), float("inf")), f(t(2, 3, domain="distinct"),
                                                          -float("inf"), 1),
          f(t(2, 3), 0, _grad=False), f(t(E)), f(t(0, 3), dim=1), f(t(3), 3, keepdim=True),
          f(t(2, 3), dtype=D("float64"))),
    entry("linalg.matrix_norm", f(t(2, 3)), f(t(2, 3, domain="distinct"), 1),
          f(t(2, 3, domain="distinct"), -1), f(t(2, 2, 3, domain="distinct"), float("inf")),
          f(t(2, 3, domain="distinct"), -float("inf"), keepdim=True),
          f(t(3, 2, 4), "fro", (0, 2)),
          f(t(2, 3), 2, _modes=NO_C), f(t(2, 3), "nuc", _modes=NO_C)),
    entry("linalg.norm", f(t(4)), f(t(2, 3)), f(t(2, 3), 1), f(t(2, 3), 2, 1)),
    entry("Tensor.amax", f(t(E), -1)),
]

ZERO_D = [
    entry("transpose", f(t(E), 0, 0), f(t(E), -1, 0), f(t(2, 3), 0, 1)),
    entry("Tensor.transpose", f(t(E), 0, -1)),
    entry("squeeze", f(t(E), 0), f(t(E), -1), f(t(1, 3), 0)),
    entry("unsqueeze", f(t(E), 0), f(t(E), -1)),
    entry("gather", f(t(E), 0, t(E, dtype="int64", domain="index", high=1)),
          f(t(3, 2), -1, t(3, 1, dtype="int64", domain="index", high=2))),
    entry("F.cosine_similarity", f(t(1, 2, 3), t(2, 1, 3), dim=-2),
          f(t(1, 2, 3, domain="ones"), t(2, 1, 3, domain="ones"), dim=-2),
          f(t(3, 4), t(3, 4)), f(t(4), t(4), dim=0), f(t(2, 1, 3), t(1, 4, 3), dim=-1)),
    entry("F.softmax", f(t(2, 0), -1), f(t(0, 3), 1), f(t(E), 0), f(t(E), -1)),
    entry("F.log_softmax", f(t(2, 0), 1), f(t(E), 0)),
    entry("cat", f([t(2, 3), t(0)], 0), f([t(0), t(2, 3)]), f([t(2, 3), t(1, 3)]),
          f([t(2, 3), t(2, 0)], 1), f([t(0), t(0)])),
    entry("stack", f([t(E), t(E)])),
    entry("flip", f(t(E), (0,)), f(t(2, 3), [0, 1])),
    entry("Tensor.flip", f(t(E), 0)),
]

NN = [
    entry("F.unfold", f(t(1, 2, 5, 5), 2), f(t(2, 1, 6, 5), (3, 2), dilation=(2, 1),
                                               padding=1, stride=(2, 3)),
          f(t(2, 5, 4), 3, padding=1)),
    entry("F.fold", f(t(1, 8, 16), (5, 5), 2), f(t(2, 12, 4), (6, 5), (3, 2), dilation=(2, 1),
                                                 padding=1, stride=(2, 3)),
          f(t(9, 16), (4, 4), 3, padding=1)),
    entry("nn.Unfold", f(t(1, 2, 4, 4)), init=(2,), init_kwargs={"stride": 2}),
    entry("nn.Fold", f(t(1, 8, 9)), init=((4, 4), 2)),
    entry("F.conv2d", f(t(1, 2, 5, 5), t(3, 2, 3, 3), None, [1], [1], [1]),
          f(t(1, 2, 5, 5), t(3, 2, 3, 3), stride=[2], padding=[1])),
    entry("F.conv1d", f(t(1, 2, 7), t(3, 2, 3), None, [2], [1])),
    entry("F.max_pool2d", f(t(1, 2, 6, 6, domain="distinct"), 2),
          f(t(1, 2, 6, 6, domain="distinct"), [2], [2], [0]),
          f(t(1, 2, 6, 6, domain="distinct"), 3, 2, 1, return_indices=True),
          f(t(2, 5, 7, domain="distinct"), 2, return_indices=True, ceil_mode=True),
          f(t(1, 1, 7, 7, domain="distinct"), (3, 2), (2, 1), (1, 0), (1, 2),
            return_indices=True)),
    entry("nn.MaxPool2d", f(t(1, 2, 4, 4, domain="distinct")), init=(2,),
          init_kwargs={"return_indices": True}),
    entry("F.max_pool1d", f(t(2, 3, 9, domain="distinct"), 3, 2, 1, return_indices=True),
          f(t(3, 7, domain="distinct"), 2, return_indices=True, ceil_mode=True)),
    entry("nn.MaxPool1d", f(t(1, 2, 8, domain="distinct")), init=(2,),
          init_kwargs={"return_indices": True}),
    entry("nn.MaxUnpool2d", f(t(1, 2, 2, 2), t(1, 2, 2, 2, dtype="int64", domain="index",
                                                high=1, const=True)), init=(2,)),
    entry("F.max_unpool2d", f(t(1, 2, 2, 2), t(1, 2, 2, 2, dtype="int64", domain="index",
                                                 high=1, const=True), 2)),
    entry("F.avg_pool2d", f(t(1, 2, 6, 6), [2], [2], [0]), f(t(1, 2, 4, 4), 2, ())),
    entry("F.adaptive_max_pool2d", f(t(1, 2, 7, 5, domain="distinct"), (3, 2),
                                     return_indices=True),
          f(t(2, 4, 4, domain="distinct"), 2, True)),
    entry("F.normalize", f(t(2, 3), 0.0), f(t(2, 3), 3.0, 0), f(t(E), dim=0),
          f(t(E), 1.0, -1)),
    entry("F.pad", f(t(2, 5), (-1, 1)), f(t(2, 3, 5), (1, -2, -1, 0)),
          f(t(2, 5), [-1, -1], value=2.0), f(t(1, 2, 5), (-1, 2), mode="reflect"),
          f(t(1, 2, 4, 5), (1, -2, -1, 1), mode="replicate"),
          f(t(1, 2, 5), (2, -1), mode="circular")),
    entry("F.mse_loss", f(t(2, 3), t(2, 3), size_average=False),
          f(t(2, 3), t(2, 3), reduce=False), f(t(2, 3), t(2, 3), None, True, "sum")),
    entry("F.l1_loss", f(t(2, 3), t(2, 3), size_average=True, reduce=True)),
    entry("F.cross_entropy", f(t(3, 4), t(3, dtype="int64", domain="index", high=4),
                               size_average=False)),
    entry("F.nll_loss", f(t(3, 4), t(3, dtype="int64", domain="index", high=4), reduce=False)),
    entry("F.binary_cross_entropy", f(t(2, 3, domain="prob"), t(2, 3, domain="prob"),
                                      size_average=False)),
    entry("nn.MSELoss", f(t(2, 3), t(2, 3)), init_kwargs={"size_average": False}),
    entry("nn.TransformerEncoderLayer", f(t(5, 2, 8)), init=(8, 2, 16, 0.0), tol=(1e-4, 1e-5)),
    entry("nn.TransformerEncoderLayer", f(t(2, 5, 8)), init=(8, 2, 16, 0.0),
          init_kwargs={"batch_first": True, "norm_first": True, "activation": "gelu"},
          tol=(1e-4, 1e-5)),
    entry("nn.TransformerDecoderLayer", f(t(3, 2, 8), t(5, 2, 8)), init=(8, 2, 16, 0.0),
          tol=(1e-4, 1e-5)),
    entry("nn.Transformer", f(t(2, 5, 8), t(2, 3, 8)), init=(8, 2, 1, 1, 16, 0.0),
          init_kwargs={"batch_first": True}, tol=(1e-4, 1e-5)),
    entry("nn.TransformerEncoder", f(t(2, 5, 8)),
          init=(M("nn.TransformerEncoderLayer", (8, 2, 16, 0.0), (("batch_first", True),)), 2),
          init_kwargs={"enable_nested_tensor": False}, tol=(1e-4, 1e-5)),
    entry("nn.TransformerDecoder", f(t(3, 2, 8), t(5, 2, 8)),
          init=(M("nn.TransformerDecoderLayer", (8, 2, 16, 0.0)), 2), tol=(1e-4, 1e-5)),
    entry("nn.MultiheadAttention", f(t(3, 2, 8), t(4, 2, 8), t(4, 2, 8)), init=(8, 2),
          init_kwargs={"add_zero_attn": True}, tol=(1e-4, 1e-5)),
    entry("einsum", f("ii->i", t(3, 3)), f("ii", t(3, 3)), f("bii->bi", t(2, 3, 3)),
          f("ij,jk->ik", t(2, 3), t(3, 4)), f("iji->j", t(2, 3, 2))),
]

# The layer composites of issue 12 (functions and modules; torch's weights loaded into Kiln's).
LAYERS = [
    entry("F.prelu", f(t(2, 3, 4), t(3)), f(t(2, 3), t(1)), f(t(4), t(1)), f(t(0, 3), t(3)),
          f(t(2, 3, 2, 2), t(3))),
    entry("nn.PReLU", f(t(2, 3, 4))),
    entry("nn.PReLU", f(t(2, 3, 4)), init=(3,), init_kwargs={"init": 0.1}),
    entry("F.conv_transpose1d", f(t(1, 2, 5), t(2, 3, 3)), f(t(2, 4, 5), t(4, 1, 3), None, 2, 1,
                                                             1, 2),
          f(t(2, 5), t(2, 3, 2), t(3), [2], [1]), f(t(1, 2, 4), t(2, 2, 3), dilation=2)),
    entry("F.conv_transpose2d", f(t(1, 2, 4, 4), t(2, 3, 3, 3)),
          f(t(1, 4, 3, 3), t(4, 2, 3, 2), t(4), (2, 1), (1, 0), (1, 0), 2),
          f(t(2, 3, 3), t(2, 2, 2, 2), None, [2], [1]),
          f(t(1, 2, 3, 3), t(2, 1, 3, 3), stride=2, dilation=(1, 2))),
    entry("nn.ConvTranspose1d", f(t(2, 3, 6)), init=(3, 4, 3),
          init_kwargs={"stride": 2, "padding": 1, "output_padding": 1}),
    entry("nn.ConvTranspose2d", f(t(1, 4, 5, 4)), init=(4, 6, 4),
          init_kwargs={"stride": 2, "padding": 1, "groups": 2}),
    entry("nn.ConvTranspose2d", f(t(2, 3, 3)), init=(2, 3, 3), init_kwargs={"bias": False}),
    entry("F.interpolate", f(t(1, 2, 3, 4), scale_factor=2),
          f(t(1, 2, 3, 4), size=(5, 7), mode="nearest"),
          f(t(1, 2, 3, 4), size=(5, 7), mode="bilinear", align_corners=False),
          f(t(1, 2, 3, 4), scale_factor=1.5, mode="bilinear", align_corners=True),
          f(t(2, 3, 5), size=8, mode="linear"), f(t(2, 3, 5), scale_factor=0.5),
          f(t(1, 1, 2, 3, 2), scale_factor=2, mode="trilinear"),
          f(t(1, 2, 6, 6), size=(3, 2), mode="area"),
          f(t(1, 2, 3, 3), size=5, mode="nearest-exact"),
          f(t(1, 2, 3, 3), size=5, mode="bicubic"),
          f(t(2, 1, 4, 5), scale_factor=(1.5, 0.7), mode="bicubic", align_corners=False),
          f(t(1, 2, 4, 4), size=(6, 3), mode="bicubic", align_corners=True),
          f(t(1, 2, 6, 6), size=3, mode="bilinear", antialias=True,
            _refused="antialias=True is not supported")),
    entry("F.upsample", f(t(1, 2, 3, 3), scale_factor=2, mode="nearest")),
    entry("F.upsample_nearest", f(t(1, 2, 3, 3), scale_factor=2), f(t(2, 3, 4), size=7)),
    entry("F.upsample_bilinear", f(t(1, 2, 3, 3), scale_factor=2),
          f(t(1, 2, 3, 4), size=(5, 7))),
    entry("nn.Upsample", f(t(1, 2, 3, 4)), init_kwargs={"scale_factor": 2, "mode": "bilinear",
                                                       "align_corners": False}),
    entry("nn.Upsample", f(t(2, 2, 3)), init_kwargs={"size": 7}),
    entry("nn.UpsamplingNearest2d", f(t(1, 2, 3, 3)), init_kwargs={"scale_factor": 2}),
    entry("nn.UpsamplingBilinear2d", f(t(1, 2, 3, 3)), init_kwargs={"size": (4, 5)}),
    entry("nn.Upsample", f(t(1, 2, 3, 4)), init_kwargs={"scale_factor": 2, "mode": "bicubic"}),
    entry("F.avg_pool1d", f(t(2, 3, 9), 3), f(t(2, 3, 9), 3, 2, 1, True, False),
          f(t(3, 8), [2]), f(t(1, 2, 7), 2, ceil_mode=True)),
    entry("F.max_pool3d", f(t(1, 2, 4, 4, 4, domain="distinct"), 2),
          f(t(2, 5, 5, 5, domain="distinct"), 3, 2, 1, ceil_mode=True),
          f(t(1, 1, 4, 5, 6, domain="distinct"), (2, 3, 2), (1, 2, 2), dilation=(1, 1, 2)),
          f(t(1, 2, 4, 4, 4, domain="distinct"), 2, return_indices=True),
          f(t(2, 5, 5, 5, domain="distinct"), 3, 2, 1, ceil_mode=True, return_indices=True),
          f(t(1, 1, 5, 6, 7, domain="distinct"), 3, 2, 1, 2, return_indices=True),
          f(t(1, 2, 4, 4, 4, dtype="int64"), 2, 1, return_indices=True)),
    entry("F.avg_pool3d", f(t(1, 2, 4, 4, 4), 2), f(t(2, 5, 5, 5), 3, 2, 1),
          f(t(1, 1, 4, 5, 6), (2, 3, 2), count_include_pad=False, padding=1)),
    entry("F.adaptive_avg_pool1d", f(t(2, 3, 7), 3), f(t(3, 5), 5)),
    entry("F.adaptive_max_pool1d", f(t(2, 3, 7, domain="distinct"), 3),
          f(t(2, 3, 7, domain="distinct"), 3, True), f(t(3, 5, domain="distinct"), 2,
                                                      return_indices=True)),
    entry("nn.MaxPool3d", f(t(1, 2, 4, 4, 4, domain="distinct")), init=(2,)),
    entry("nn.MaxPool3d", f(t(1, 2, 4, 4, 4, domain="distinct")), init=(2,),
          init_kwargs={"return_indices": True}),
    entry("nn.AdaptiveMaxPool1d", f(t(2, 3, 10, domain="distinct")), init=(4,),
          init_kwargs={"return_indices": True}),
    entry("nn.AvgPool1d", f(t(1, 2, 8)), init=(3,), init_kwargs={"stride": 2, "padding": 1}),
    entry("nn.AvgPool3d", f(t(1, 2, 4, 4, 4)), init=(2,)),
    entry("nn.AdaptiveAvgPool1d", f(t(2, 3, 10)), init=(4,)),
    entry("nn.AdaptiveMaxPool1d", f(t(2, 3, 10, domain="distinct")), init=(4,)),
    # integer inputs torch accepts (Kiln computes in float64 and casts back; pooling truncates)
    entry("F.conv2d", f(t(2, 2, 5, 5, dtype="int64"), t(3, 2, 3, 3, dtype="int64")),
          f(t(1, 2, 5, 5, dtype="int32"), t(2, 1, 2, 2, dtype="int32"), t(2, dtype="int32"),
            stride=2, padding=1, groups=2),
          f(t(1, 1, 3, 3, dtype="bool"), t(1, 1, 2, 2, dtype="bool"),
            _refused="torch refuses them too")),
    entry("F.conv1d", f(t(2, 3, 7, dtype="int64"), t(4, 3, 3, dtype="int64"), None, 2, 1)),
    entry("F.conv_transpose2d", f(t(1, 2, 3, 3, dtype="int64"), t(2, 3, 3, 3, dtype="int64"),
                                  t(3, dtype="int64"), 2, 1)),
    entry("F.conv_transpose1d", f(t(2, 2, 4, dtype="int64"), t(2, 1, 3, dtype="int64"))),
    entry("F.avg_pool2d", f(t(2, 3, 6, 6, dtype="int64"), 2),
          f(t(1, 2, 5, 5, dtype="int64"), 3, 2, 1, True, False),
          f(t(1, 2, 4, 4, dtype="int64"), 2, divisor_override=3),
          f(t(1, 1, 4, 4, dtype="bool"), 2, _refused="torch refuses them too")),
    entry("F.avg_pool1d", f(t(2, 3, 9, dtype="int64"), 3, 2, 1)),
    entry("F.adaptive_avg_pool2d", f(t(1, 2, 4, 4, dtype="int64"), 2,
                                     _refused="torch refuses integer and bool input too")),
    entry("F.avg_pool3d", f(t(1, 2, 4, 5, 4, dtype="int64"), 2, 2, 1)),
    entry("nn.RNN", f(t(5, 2, 3)), f(t(5, 3), t(1, 4)), init=(3, 4), tol=(1e-4, 1e-5)),
    entry("nn.RNN", f(t(2, 5, 3), t(4, 2, 4)), init=(3, 4, 2),
          init_kwargs={"nonlinearity": "relu", "batch_first": True, "bidirectional": True},
          tol=(1e-4, 1e-5)),
    entry("nn.LSTM", f(t(5, 2, 3)), f(t(5, 2, 3), (t(2, 2, 4), t(2, 2, 4))), init=(3, 4, 2),
          tol=(1e-4, 1e-5)),
    entry("nn.LSTM", f(t(2, 4, 3)), init=(3, 4),
          init_kwargs={"batch_first": True, "bidirectional": True, "proj_size": 2},
          tol=(1e-4, 1e-5)),
    entry("nn.GRU", f(t(4, 2, 3)), f(t(4, 3), t(2, 5)), init=(3, 5),
          init_kwargs={"bidirectional": True}, tol=(1e-4, 1e-5)),
    entry("nn.GRU", f(t(2, 4, 3), t(2, 2, 5)), init=(3, 5, 2),
          init_kwargs={"batch_first": True, "bias": False, "dropout": 0.5}, tol=(1e-4, 1e-5)),
    entry("nn.RNNCell", f(t(2, 3)), f(t(2, 3), t(2, 4)), f(t(3), t(4)), init=(3, 4)),
    entry("nn.LSTMCell", f(t(2, 3)), f(t(2, 3), (t(2, 4), t(2, 4))), init=(3, 4),
          tol=(1e-4, 1e-5)),
    entry("nn.GRUCell", f(t(2, 3)), f(t(2, 3), t(2, 4)), init=(3, 4), tol=(1e-4, 1e-5)),
]

# More activations: functions (with 0-d and empty forms) and modules.
ACTIVATIONS = [
    entry("F.softsign", f(t(2, 3)), f(t(E)), f(t(0, 2))),
    entry("F.softshrink", f(t(2, 3)), f(t(4), 1.0), f(t(E), lambd=0.3), f(t(0))),
    entry("F.hardshrink", f(t(2, 3)), f(t(4), 1.0), f(t(E), lambd=0.3)),
    entry("F.hardswish", f(t(2, 3)), f(t(3, 4, domain="distinct")), f(t(E))),
    entry("F.selu", f(t(2, 3)), f(t(E)), f(t(0, 3))),
    entry("F.celu", f(t(2, 3)), f(t(4), 2.0), f(t(E), alpha=0.5)),
    entry("F.glu", f(t(2, 4)), f(t(4, 2, 3), 0), f(t(2, 6), dim=-1), f(t(0, 2))),
    entry("F.threshold", f(t(2, 3), 0.1, 20.0), f(t(E), 0.0, -1.0),
          f(t(3, dtype="int64"), 1, 7)),
    entry("nn.Softsign", f(t(2, 3))),
    entry("nn.Softshrink", f(t(2, 3)), init=(1.0,)),
    entry("nn.Hardshrink", f(t(2, 3))),
    entry("nn.Hardswish", f(t(2, 3))),
    entry("nn.SELU", f(t(2, 3))),
    entry("nn.CELU", f(t(2, 3)), init=(0.7,)),
    entry("nn.GLU", f(t(3, 4, 2)), init=(1,)),
    entry("nn.Threshold", f(t(2, 3)), init=(0.1, 20.0)),
    entry("nn.Softmax2d", f(t(2, 3, 2, 2)), f(t(3, 2, 2))),
]

# torch's padding modules: batched and unbatched input, asymmetric padding.
PADDING = [entry(f"nn.{kind}Pad{n}d", f(t(2, 3, *(4,) * n)), f(t(3, *(5,) * n)),
                 init=((1, 2, 0, 3, 2, 1)[:2 * n],) + ((0.5,) if kind == "Constant" else ()))
           for kind in ("Constant", "Zero", "Reflection", "Replication", "Circular")
           for n in (1, 2, 3)]

CREATION = [
    entry("zeros", f(2, 3, device="cpu"), f((2,), dtype=D("int64"), device="cpu"),
          f(2, device="cuda", _refused="Kiln runs on the CPU")),
    entry("ones", f(2, device="cpu")),
    entry("full", f((2,), 1.5, device="cpu")),
    entry("arange", f(5, device="cpu"), f(0.5, 3, dtype=D("int64")), f(0, 5, 1.5),
          f(0, 1, 0.25, dtype=D("int32")), f(10, 0, -3), f(-2.5, 2, 0.5, dtype=D("float64")),
          f(0.0, -8.000001, -4.0, dtype=D("int64")), f(1.9, 7.9, 2.5, dtype=D("int32")),
          f(0.0, 1.0, 0.5, dtype=D("int64"), _refused="refuses it too")),
    entry("linspace", f(0, 10, 5, dtype=D("int64")), f(0, 10, 4, dtype=D("int64")),
          f(-3, 7, 6, dtype=D("int32")), f(0, 1, 5), f(2, -2, 7, dtype=D("int64")),
          f(1, 2, 1, dtype=D("int64")), f(0, 1, 0), f(0, 1, 50, dtype=D("int64")),
          f(2.7, -2.2, 9, dtype=D("int64")), f(-1, 1, 7, dtype=D("float64"))),
    entry("eye", f(3, device="cpu")),
    entry("tensor", f([1.0, 2.0], device="cpu")),
    entry("zeros_like", f(t(2, 3), device="cpu")),
    entry("ones_like", f(t(2, 3), dtype=D("float64"), device="cpu")),
    entry("full_like", f(t(2), 3.0, device="cpu")),
    entry("empty_like", f(t(0, 2), device="cpu")),
    entry("Tensor.to", f(t(2), "cpu"), f(t(2), "cpu", D("float64")), f(t(2), device="cpu"),
          ),
]

# torch.add(x, y, out=...) and friends: the out= forms are in test_conformance.py (a torch
# out tensor and a Kiln one cannot share the form's arrays).

def _registry_pointwise() -> list[Entry]:
    """One entry per pointwise primitive of the op registry that torch has under the same
    name: a 2-D, a 0-d and an empty form, broadcasting for binary ops."""
    from kiln.ops import REGISTRY

    out = []
    for name, op in REGISTRY.items():
        # polygamma takes an int order first; trigamma and the Bessel functions are
        # torch.special's only: table_special has their entries
        if not op.is_pointwise or name in ("where", "cast", "polygamma", "trigamma") or \
                name.startswith("bessel_"):
            continue
        binary = op.meta.__code__.co_argcount == 2
        if name.startswith(("bitwise", "floor_divide")):
            dtype, domain = "int64", "positive"
        elif name.startswith("logical"):
            dtype, domain = "bool", "real"
        elif name in ("log", "log1p", "sqrt", "rsqrt", "pow", "reciprocal", "div", "log2",
                      "log10"):
            dtype, domain = "float32", "positive"
        elif name in ("asin", "acos", "atanh"):
            dtype, domain = "float32", "unit"
        elif name == "acosh":
            dtype, domain = "float32", "above_one"
        else:
            dtype, domain = "float32", "real"

        def a(*shape: int, dtype: str = dtype, domain: str = domain) -> object:
            return t(*shape, dtype=dtype, domain=domain)

        if binary:
            forms = [f(a(2, 3), a(3)), f(a(E), a(2)), f(a(0, 3), a(3)), f(a(E), a(E))]
        else:
            forms = [f(a(2, 3)), f(a(E)), f(a(0, 3))]
        nonsmooth = name in ("floor", "ceil", "round", "sign", "trunc", "signbit")
        out.append(entry(name, *forms, grad=dtype.startswith("float") and not nonsmooth))
    return out


ENTRIES: list[Entry] = (_registry_pointwise() + ARITH + MATRIX + SHAPES + REDUCTIONS + ZERO_D
                        + NN + LAYERS + ACTIVATIONS + PADDING + CREATION
                        + table_elementwise.ENTRIES + table_shapes.ENTRIES
                        + table_linalg.ENTRIES + table_windows.ENTRIES + table_copies.ENTRIES
                        + table_numerics.ENTRIES + table_sortops.ENTRIES
                        + table_losses.ENTRIES + table_layers_extra.ENTRIES
                        + table_special.ENTRIES)


def _label() -> None:
    seen: dict[str, int] = {}
    for e in ENTRIES:
        n = seen.get(e.name, 0)
        seen[e.name] = n + 1
        e.label = e.name if n == 0 else f"{e.name}#{n + 1}"


_label()
_ = (math, FWD, EAGER)
