"""A matmul computed transposed (its only reader swaps the last two dims) changes its
buffer's layout after the other matmuls' operands were checked: a reshape that merges dims
of that buffer is then no strided view, and the backend must store it (nn.Transformer's
attention output feeding out_proj failed to compile before)."""

from __future__ import annotations

import numpy as np

import kiln
from tests.c.conftest import check


def _program(a, b, w):
    y = kiln.matmul(a, b)  # (2, 2, 4, 5): read only through the transpose below
    z = y.transpose(-2, -1)
    return z.permute(0, 2, 1, 3).reshape(2, 5, 8) @ w


def test_operand_of_a_transposed_matmul_output_is_rechecked():
    rng = np.random.default_rng(0)
    args = [kiln.tensor(rng.standard_normal(s).astype(np.float32))
            for s in ((2, 2, 4, 3), (2, 2, 3, 5), (8, 3))]
    check(_program, *args, rtol=1e-5, atol=1e-5)
