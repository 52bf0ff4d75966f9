"""Composites (softmax, norms, activations, losses, linear, einsum...) through the C backend,
in float32 and float64, against the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from tests.c.conftest import check


def _t(rng, dtype, *shape, scale=1.0):
    return kiln.Tensor((rng.standard_normal(shape) * scale).astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_and_normalizations(dtype):
    rng = np.random.default_rng(0)
    x = _t(rng, dtype, 6, 33, scale=3.0)
    w, b = _t(rng, dtype, 33), _t(rng, dtype, 33)
    x4 = _t(rng, dtype, 3, 4, 5, 2)

    def f(x, w, b, x4):
        return (F.softmax(x, -1), F.log_softmax(x, -1), F.softmax(x, 0), F.log_softmax(x, 0),
                F.layer_norm(x, (33,), w, b), F.rms_norm(x, (33,), w),
                F.gelu(x), F.gelu(x, approximate="tanh"), F.silu(x), F.mish(x),
                F.softplus(x), F.elu(x), F.leaky_relu(x), F.hardtanh(x), F.sigmoid(x),
                F.logsigmoid(x), F.normalize(x), F.batch_norm(x4, None, None, training=True),
                F.group_norm(x4, 2), F.logsumexp(x, 1), x.var(1), x.std(0), F.softmin(x, 1))

    tol = 3e-5 if dtype == "float32" else 1e-11
    check(f, x, w, b, x4, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_losses(dtype):
    rng = np.random.default_rng(1)
    logits = _t(rng, dtype, 8, 5)
    target = kiln.tensor(rng.integers(0, 5, 8))
    y = _t(rng, dtype, 8, 5)
    probs = kiln.Tensor(rng.uniform(0.05, 0.95, (8, 5)).astype(dtype))
    cw = kiln.Tensor(rng.uniform(0.5, 2.0, 5).astype(dtype))
    ignore = kiln.tensor([0, 1, -100, 3, 4, -100, 2, 2])

    def f(logits, target, y, probs, cw, ignore):
        return (F.cross_entropy(logits, target), F.cross_entropy(logits, target, weight=cw),
                F.cross_entropy(logits, ignore), F.cross_entropy(logits, target,
                                                                 reduction="none"),
                F.nll_loss(F.log_softmax(logits, 1), target), F.mse_loss(logits, y),
                F.l1_loss(logits, y), F.smooth_l1_loss(logits, y), F.huber_loss(logits, y),
                F.binary_cross_entropy(probs, probs * 0.5 + 0.2),
                F.binary_cross_entropy_with_logits(logits, probs),
                F.kl_div(F.log_softmax(logits, 1), probs, reduction="batchmean"))

    tol = 2e-5 if dtype == "float32" else 1e-11
    check(f, logits, target, y, probs, cw, ignore, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_attention_embedding_einsum(dtype):
    rng = np.random.default_rng(2)
    x = _t(rng, dtype, 4, 7, 16)
    w1, b1 = _t(rng, dtype, 32, 16), _t(rng, dtype, 32)
    w2 = _t(rng, dtype, 16, 32)
    q, k, v = (_t(rng, dtype, 2, 3, 7, 8) for _ in range(3))
    emb = _t(rng, dtype, 10, 6)
    idx = kiln.tensor(rng.integers(0, 10, (3, 4)))

    def f(x, w1, b1, w2, q, k, v, emb, idx):
        h = F.linear(F.gelu(F.linear(x, w1, b1)), w2)
        return (h, F.scaled_dot_product_attention(q, k, v),
                F.scaled_dot_product_attention(q, k, v, is_causal=True),
                F.embedding(idx, emb), F.embedding(idx, emb, padding_idx=2),
                F.einsum("bij,kj->bik", x, w1), F.einsum("bhqd,bhkd->bhqk", q, k),
                F.einsum("ij->j", emb), F.one_hot(idx, 10), F.cosine_similarity(
                    x, x * 2 + 1, dim=-1), F.bilinear(x[:, 0], x[:, 1], _w3, None))

    _w3 = _t(rng, dtype, 3, 16, 16)
    tol = 5e-5 if dtype == "float32" else 1e-10
    check(f, x, w1, b1, w2, q, k, v, emb, idx, rtol=tol, atol=tol)


def test_conv_net_layers():
    rng = np.random.default_rng(3)
    x = _t(rng, "float32", 2, 3, 16, 16)
    w1, b1 = _t(rng, "float32", 8, 3, 3, 3), _t(rng, "float32", 8)
    w2 = _t(rng, "float32", 8, 8, 1, 1)
    rm, rv = kiln.zeros(8), kiln.ones(8)

    def f(x, w1, b1, w2):
        h = F.relu(F.conv2d(x, w1, b1, padding=1))
        h = F.batch_norm(h, rm, rv, training=False) + F.conv2d(h, w2)
        h = F.max_pool2d(F.relu(h), 2)
        p = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return p, F.avg_pool2d(h, 2), F.pad(h, (1, 1, 2, 0), value=0.5), F.pad(
            h, (1, 2, 1, 1), mode="reflect") if _has_reflect() else h * 1

    check(f, x, w1, b1, w2, rtol=1e-4, atol=1e-4)


def _has_reflect() -> bool:
    try:
        F.pad(kiln.ones(1, 1, 3, 3), (1, 1, 1, 1), mode="reflect")
        return True
    except Exception:
        return False


def test_indexing_and_shapes():
    rng = np.random.default_rng(4)
    x = _t(rng, "float32", 5, 6, 7)
    idx = kiln.tensor([4, 0, 2])

    def f(x, idx):
        return (x[1:4, ::2, -1], x[idx], x[:, idx], x[..., None, 2], x.flatten(1), x.unbind(1)[2],
                kiln.stack(x.chunk(3, dim=2)[:2], 0), x.split([2, 4], 1)[1], x.transpose(0, 2),
                x.squeeze(), x.unsqueeze(1).expand(5, 3, 6, 7), x.narrow(2, 1, 3),
                x.amax((0, 2)), x.amin(1, keepdim=True), x.mean((0, 1)), x.sum(-1, dtype=None),
                x.clamp(-0.5, 0.5), x.flip((0, 2)), x.reshape(-1, 14), kiln.cat([x, x], 2))

    check(f, x, idx)
