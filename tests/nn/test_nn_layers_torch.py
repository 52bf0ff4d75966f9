"""Every layer against PyTorch: forward values, input and parameter grads, buffers, repr and
state-dict layout. Float64 with tight tolerances, plus a float32 pass at rtol 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
from oracle_nn import F32_TOL, F64_TOL, check_against_torch

import kiln
from kiln import nn

torch = pytest.importorskip("torch")

rng = np.random.default_rng(1234)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


IMG = randn(2, 3, 8, 8)
SEQ = randn(2, 3, 10)

# (id, class name, args, kwargs, takes dtype, inputs)
CASES = [
    ("linear", "Linear", (6, 3), {}, True, [randn(4, 6)]),
    ("linear_3d_nobias", "Linear", (6, 3), {"bias": False}, True, [randn(2, 5, 6)]),
    ("bilinear", "Bilinear", (3, 4, 5), {}, True, [randn(2, 3), randn(2, 4)]),
    ("conv2d", "Conv2d", (3, 4, 3), {"padding": 1}, True, [IMG]),
    ("conv2d_strided_groups", "Conv2d", (3, 6, 3), {"stride": 2, "groups": 3, "bias": False},
     True, [IMG]),
    ("conv2d_same_dilated", "Conv2d", (3, 4, (3, 2)), {"padding": "same", "dilation": 2}, True,
     [IMG]),
    ("conv2d_same_even", "Conv2d", (3, 2, (2, 4)), {"padding": "same"}, True, [IMG]),
    ("conv2d_same_reflect", "Conv2d", (3, 2, 4), {"padding": "same", "padding_mode": "reflect"},
     True, [IMG]),
    ("conv2d_reflect", "Conv2d", (3, 4, 3), {"padding": 1, "padding_mode": "reflect"}, True,
     [IMG]),
    ("conv2d_circular", "Conv2d", (3, 2, 3), {"padding": (2, 1), "padding_mode": "circular"},
     True, [IMG]),
    ("conv2d_replicate", "Conv2d", (3, 2, 3), {"padding": 1, "padding_mode": "replicate"}, True,
     [IMG]),
    ("conv2d_unbatched", "Conv2d", (3, 4, 3), {"stride": (2, 1)}, True, [randn(3, 7, 7)]),
    ("conv1d", "Conv1d", (3, 4, 3), {"padding": 1}, True, [SEQ]),
    ("conv1d_same_circular", "Conv1d", (3, 2, 4), {"padding": "same",
                                                   "padding_mode": "circular"}, True, [SEQ]),
    ("conv1d_strided_groups", "Conv1d", (4, 4, 5), {"stride": 2, "groups": 2}, True,
     [randn(2, 4, 11)]),
    ("batchnorm1d_2d", "BatchNorm1d", (5,), {}, True, [randn(4, 5)]),
    ("batchnorm1d_3d", "BatchNorm1d", (3,), {"momentum": 0.3}, True, [SEQ]),
    ("batchnorm2d", "BatchNorm2d", (3,), {}, True, [IMG]),
    ("batchnorm2d_cumulative", "BatchNorm2d", (3,), {"momentum": None}, True, [IMG]),
    ("batchnorm2d_no_affine", "BatchNorm2d", (3,), {"affine": False}, True, [IMG]),
    ("batchnorm2d_no_stats", "BatchNorm2d", (3,), {"track_running_stats": False}, True, [IMG]),
    ("layernorm", "LayerNorm", (6,), {}, True, [randn(2, 4, 6)]),
    ("layernorm_2d_shape", "LayerNorm", ((4, 6),), {"eps": 1e-3}, True, [randn(2, 4, 6)]),
    ("layernorm_no_affine", "LayerNorm", (6,), {"elementwise_affine": False}, True,
     [randn(3, 6)]),
    ("layernorm_no_bias", "LayerNorm", (6,), {"bias": False}, True, [randn(3, 6)]),
    ("groupnorm", "GroupNorm", (2, 6), {}, True, [randn(2, 6, 3, 3)]),
    ("groupnorm_no_affine", "GroupNorm", (3, 6), {"affine": False, "eps": 1e-3}, True,
     [randn(2, 6, 4)]),
    ("rmsnorm", "RMSNorm", (6,), {}, True, [randn(2, 4, 6)]),
    ("rmsnorm_eps", "RMSNorm", ((4, 6),), {"eps": 1e-6}, True, [randn(2, 4, 6)]),
    ("embedding", "Embedding", (10, 4), {}, True, [rng.integers(0, 10, (3, 5))]),
    ("embedding_padding", "Embedding", (10, 4), {"padding_idx": -2},
     True, [np.array([[8, 1, 8, 3]])]),
    ("dropout_p0", "Dropout", (0.0,), {}, False, [randn(4, 5)]),
    ("dropout", "Dropout", (0.5,), {}, False, [randn(4, 5)]),
    ("relu", "ReLU", (), {}, False, [randn(4, 5)]),
    ("relu_inplace", "ReLU", (), {"inplace": True}, False, [randn(4, 5)]),
    ("relu6", "ReLU6", (), {}, False, [randn(4, 5) * 5]),
    ("gelu", "GELU", (), {}, False, [randn(4, 5)]),
    ("gelu_tanh", "GELU", (), {"approximate": "tanh"}, False, [randn(4, 5)]),
    ("silu", "SiLU", (), {}, False, [randn(4, 5)]),
    ("mish", "Mish", (), {}, False, [randn(4, 5)]),
    ("tanh", "Tanh", (), {}, False, [randn(4, 5)]),
    ("sigmoid", "Sigmoid", (), {}, False, [randn(4, 5)]),
    ("logsigmoid", "LogSigmoid", (), {}, False, [randn(4, 5)]),
    ("hardtanh", "Hardtanh", (-0.5, 0.7), {}, False, [randn(4, 5)]),
    ("softmax", "Softmax", (), {"dim": 1}, False, [randn(4, 5)]),
    ("softmin", "Softmin", (), {"dim": 0}, False, [randn(4, 5)]),
    ("logsoftmax", "LogSoftmax", (), {"dim": -1}, False, [randn(2, 4, 5)]),
    ("leaky_relu", "LeakyReLU", (0.2,), {}, False, [randn(4, 5)]),
    ("elu", "ELU", (), {"alpha": 0.5}, False, [randn(4, 5)]),
    ("softplus", "Softplus", (), {"beta": 2.0, "threshold": 3.0}, False, [randn(4, 5) * 3]),
    ("maxpool", "MaxPool2d", (2,), {}, False, [IMG]),
    ("maxpool_padded", "MaxPool2d", (3,), {"stride": 2, "padding": 1}, False, [IMG]),
    ("maxpool_ceil", "MaxPool2d", (2,), {"ceil_mode": True}, False, [randn(2, 3, 7, 7)]),
    ("maxpool_dilated", "MaxPool2d", ((2, 3),), {"stride": 1, "dilation": 2}, False, [IMG]),
    ("avgpool", "AvgPool2d", (2,), {}, False, [IMG]),
    ("avgpool_no_pad_count", "AvgPool2d", (3, 2, 1), {"count_include_pad": False}, False,
     [IMG]),
    ("avgpool_divisor", "AvgPool2d", (2,), {"divisor_override": 3, "ceil_mode": True}, False,
     [randn(1, 2, 5, 5)]),
    ("adaptive_avg_global", "AdaptiveAvgPool2d", ((1, 1),), {}, False, [IMG]),
    ("adaptive_avg_uneven", "AdaptiveAvgPool2d", ((3, 2),), {}, False, [randn(2, 3, 7, 5)]),
    ("adaptive_max", "AdaptiveMaxPool2d", (3,), {}, False, [randn(2, 3, 7, 6)]),
    ("flatten", "Flatten", (), {}, False, [IMG]),
    ("flatten_range", "Flatten", (0, 2), {}, False, [IMG]),
    ("unflatten", "Unflatten", (1, (2, 3)), {}, False, [randn(4, 6, 2)]),
    ("unflatten_infer", "Unflatten", (-1, (-1, 2)), {}, False, [randn(4, 6)]),
    ("identity", "Identity", (3,), {"unused": 1}, False, [randn(4, 5)]),
]


def build(lib, name, args, kwargs, takes_dtype, dtype):
    kw = dict(kwargs)
    if takes_dtype:
        kw["dtype"] = dtype
    return getattr(lib.nn, name)(*args, **kw)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's perf note
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch_float64(case, mode):
    cid, name, args, kwargs, takes_dtype, inputs = case
    if cid == "dropout" and mode == "train":
        pytest.skip("random mask: covered by the statistics test")
    if kwargs.get("inplace"):
        pytest.skip("torch refuses in-place on a leaf input; repr is checked below")
    kmod = build(kiln, name, args, kwargs, takes_dtype, "float64")
    tmod = build(torch, name, args, kwargs, takes_dtype, torch.float64)
    kmod.train(mode == "train")
    tmod.train(mode == "train")
    check_against_torch(kmod, tmod, inputs, torch, F64_TOL)
    if name.startswith("BatchNorm"):
        # A second batch exercises the running-stat update (and the cumulative average).
        check_against_torch(kmod, tmod, [x * 2.0 + 1.0 for x in inputs], torch, F64_TOL,
                            grads=False)


F32_CASES = ["linear", "conv2d", "conv2d_strided_groups", "conv1d", "batchnorm2d", "layernorm",
             "groupnorm", "rmsnorm", "gelu", "softmax", "maxpool_padded", "avgpool"]


@pytest.mark.parametrize("cid", F32_CASES)
def test_layer_matches_torch_float32(cid):
    _, name, args, kwargs, takes_dtype, inputs = next(c for c in CASES if c[0] == cid)
    kmod = build(kiln, name, args, kwargs, takes_dtype, "float32")
    tmod = build(torch, name, args, kwargs, takes_dtype, torch.float32)
    check_against_torch(kmod, tmod, [x.astype(np.float32) for x in inputs], torch, F32_TOL)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_repr_and_state_dict_layout_match_torch(case):
    _, name, args, kwargs, _, _ = case
    kmod = build(kiln, name, args, kwargs, False, None)
    tmod = build(torch, name, args, kwargs, False, None)
    assert repr(kmod) == repr(tmod)
    kstate = [(k, tuple(v.shape), v.dtype.is_floating) for k, v in kmod.state_dict().items()]
    tstate = [(k, tuple(v.shape), v.is_floating_point()) for k, v in tmod.state_dict().items()]
    assert kstate == tstate
    assert [n for n, _ in kmod.named_parameters()] == [n for n, _ in tmod.named_parameters()]


def test_sequential_matches_torch():
    spec = [("Conv2d", (3, 4, 3), {"padding": 1}), ("BatchNorm2d", (4,), {}),
            ("ReLU", (), {}), ("MaxPool2d", (2,), {}), ("Flatten", (), {}),
            ("Linear", (64, 5), {})]

    def make(lib, dtype):
        layers = []
        for name, args, kwargs in spec:
            takes = name in ("Conv2d", "BatchNorm2d", "Linear")
            layers.append(build(lib, name, args, kwargs, takes, dtype))
        return lib.nn.Sequential(*layers)

    kmod, tmod = make(kiln, "float64"), make(torch, torch.float64)
    assert repr(kmod) == repr(tmod)
    check_against_torch(kmod, tmod, [IMG], torch, F64_TOL)


def test_module_lists_and_dicts_repr_match_torch():
    def make(lib):
        return lib.nn.ModuleDict({
            "blocks": lib.nn.ModuleList([lib.nn.Linear(4, 4) for _ in range(3)]
                                        + [lib.nn.ReLU(), lib.nn.Linear(4, 2)]),
            "head": lib.nn.Sequential(lib.nn.GELU(approximate="tanh"), lib.nn.Dropout(0.1)),
        })

    kmod, tmod = make(kiln), make(torch)
    assert repr(kmod) == repr(tmod)
    assert list(kmod.state_dict()) == list(tmod.state_dict())


LOSSES = [
    ("ce", "CrossEntropyLoss", {}, (5, 4), "class"),
    ("ce_weighted_smooth_ignore", "CrossEntropyLoss",
     {"weight": np.array([1.0, 2.0, 0.5, 1.5]), "label_smoothing": 0.1, "ignore_index": 1},
     (5, 4), "class"),
    ("ce_probs_sum", "CrossEntropyLoss", {"reduction": "sum"}, (5, 4), "probs"),
    ("ce_spatial_none", "CrossEntropyLoss", {"reduction": "none"}, (2, 4, 3), "class"),
    ("nll_weighted", "NLLLoss", {"weight": np.array([0.3, 1.0, 2.0, 1.0])}, (5, 4), "logp"),
    ("mse", "MSELoss", {}, (4, 3), "same"),
    ("l1_sum", "L1Loss", {"reduction": "sum"}, (4, 3), "same"),
    ("bce", "BCELoss", {"weight": np.array([1.0, 2.0, 0.5])}, (4, 3), "binary"),
    ("bce_logits", "BCEWithLogitsLoss", {"pos_weight": np.array([1.0, 3.0, 0.5])}, (4, 3),
     "binary"),
    ("smooth_l1", "SmoothL1Loss", {"beta": 0.5}, (4, 3), "same"),
    ("huber_none", "HuberLoss", {"delta": 0.5, "reduction": "none"}, (4, 3), "same"),
    ("kldiv_batchmean", "KLDivLoss", {"reduction": "batchmean"}, (4, 3), "probs"),
    ("kldiv_log_target", "KLDivLoss", {"log_target": True, "reduction": "sum"}, (4, 3),
     "logp"),
]


def _loss_data(kind, shape):
    x = rng.standard_normal(shape)
    if kind == "class":
        tshape = (shape[0],) + shape[2:]
        return x, rng.integers(0, shape[1], tshape)
    if kind == "probs":
        p = np.exp(rng.standard_normal(shape))
        return x, p / p.sum(axis=1, keepdims=True)
    if kind == "logp":
        if len(shape) == 2 and shape[1] == 4:
            return x, rng.integers(0, shape[1], (shape[0],))
        y = rng.standard_normal(shape)
        return x, y - np.log(np.exp(y).sum(axis=1, keepdims=True))
    if kind == "binary":
        return x, rng.uniform(0, 1, shape)
    return x, rng.standard_normal(shape)


@pytest.mark.parametrize("case", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_modules_match_torch(case):
    _, name, kwargs, shape, kind = case
    x, target = _loss_data(kind, shape)
    if name == "BCELoss":
        x = 1.0 / (1.0 + np.exp(-x))
    if name == "NLLLoss" or (name == "KLDivLoss"):
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    kkw = {k: kiln.tensor(v, dtype="float64") if isinstance(v, np.ndarray) else v
           for k, v in kwargs.items()}
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kmod, tmod = getattr(kiln.nn, name)(**kkw), getattr(torch.nn, name)(**tkw)
    assert repr(kmod) == repr(tmod)
    assert list(kmod.state_dict()) == list(tmod.state_dict())
    kx = kiln.tensor(x, dtype="float64", requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ky = kiln.tensor(target) if target.dtype.kind == "i" else kiln.tensor(target,
                                                                         dtype="float64")
    ty = torch.tensor(target)
    lk, lt = kmod(kx, ky), tmod(tx, ty)
    np.testing.assert_allclose(lk.detach().numpy(), lt.detach().numpy(), **F64_TOL)
    lk.sum().backward()
    lt.sum().backward()
    np.testing.assert_allclose(kx.grad.numpy(), tx.grad.numpy(), **F64_TOL)


def test_dropout_statistics_in_training():
    kiln.manual_seed(0)
    drop = nn.Dropout(0.3)
    y = drop(kiln.ones(200, 500)).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert np.array_equal(drop.eval()(kiln.ones(3)).numpy(), np.ones(3, np.float32))


def test_load_torch_state_dict_directly_and_as_numpy():
    tmod = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    kmod = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    kmod.load_state_dict(tmod.state_dict())
    for k, v in tmod.state_dict().items():
        np.testing.assert_array_equal(kmod.state_dict()[k].numpy(), v.numpy())
    numpy_state = {k: v.numpy() * 2 for k, v in tmod.state_dict().items()}
    kmod.load_state_dict(numpy_state)
    np.testing.assert_array_equal(kmod[0].weight.detach().numpy(), numpy_state["0.weight"])
    assert kmod[1].num_batches_tracked.dtype == kiln.int64
