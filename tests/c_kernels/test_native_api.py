"""The C API description in conv_kernels.py agrees with kiln_conv.h."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from kiln.backends.c import conv_kernels as ck
from kiln.backends.c.blas import RUNTIME_DIR
from kiln.core.prims.pool import pool_out_size
from kiln.errors import ArgumentError, BackendError, DTypeError, ShapeError

GEOMS = [
    (1, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1),
    (8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1),
    (8, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1),
    (2, 64, 56, 56, 128, 1, 1, 2, 2, 0, 0, 1, 1, 1),
    (2, 64, 56, 56, 128, 1, 1, 1, 1, 0, 0, 1, 1, 1),
    (3, 32, 9, 9, 32, 3, 3, 1, 1, 1, 1, 2, 2, 32),
    (0, 4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),
    (1, 0, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),
    (1, 2, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1),
    (1, 1, 100000, 9, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1),
]


@pytest.fixture(scope="module")
def native():
    return ck.ConvKernels()


@pytest.mark.parametrize("geom", GEOMS)
def test_workspace_formula_is_the_same_in_c_and_python(native, geom):
    for op, es in itertools.product((ck.FORWARD, ck.INPUT_GRAD, ck.WEIGHT_GRAD), (4, 8)):
        assert native.workspace_bytes_c(op, geom, es) == ck.workspace_bytes(op, *geom, es)


def test_workspace_query_rejects_bad_geometry(native):
    bad = (1, 3, 4, 4, 6, 7, 7, 1, 1, 0, 0, 1, 1, 1)  # kernel larger than the input
    assert native.workspace_bytes_c(ck.FORWARD, bad, 4) == -1
    assert native.workspace_bytes_c(5, GEOMS[0], 4) == -1


def test_pool_out_size_is_the_same_in_c_and_python(native):
    for size, k, s, p, d, ceil in itertools.product(range(0, 9), (1, 2, 3), (1, 2, 3),
                                                    (0, 1), (1, 2), (False, True)):
        if 2 * p > k:
            continue
        assert native.pool_out_size_c(size, k, s, p, d, ceil) == pool_out_size(size, k, s, p,
                                                                               d, ceil)


def test_bad_sizes_return_an_error_and_write_nothing():
    native = ck.ConvKernels(use_workspace=False)
    x = np.ones((1, 4, 5, 5), np.float32)
    w = np.ones((6, 4, 3, 3), np.float32)
    out = np.full((1, 6, 5, 5), 7.0, np.float32)
    with pytest.raises(BackendError, match="kiln_conv2d_f32 returned -1"):  # 4 % 3 groups
        native.conv2d(x, np.ascontiguousarray(w[:, :2]), stride=(1, 1), padding=(1, 1),
                      dilation=(1, 1), groups=3, out=out)
    assert (out == 7).all()
    with pytest.raises(ShapeError, match="3 groups"):
        ck.workspace_bytes(ck.FORWARD, 1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3, 4)
    with pytest.raises(DTypeError):
        native.conv2d(x, w.astype(np.float64), stride=(1, 1), padding=(1, 1), dilation=(1, 1),
                      groups=1)


def test_function_names_and_arguments():
    assert ck.function_name("max_pool2d_backward", "float64") == "kiln_max_pool2d_backward_f64"
    assert ck.call_args("conv2d")[:5] == ("x", "w", "bias", "residual", "out")
    with pytest.raises(DTypeError, match="float16"):
        ck.function_name("conv2d", "float16")
    with pytest.raises(ArgumentError, match="no native kernel"):
        ck.function_name("conv3d", "float32")


def test_every_function_is_declared_in_the_header_comment_and_defined():
    header = (RUNTIME_DIR / "kiln_conv.h").read_text()
    api = header[:header.index("#ifndef KILN_CONV_H")]
    for op in ck.OPS:
        assert f"kiln_{op}_f32(" in api, op
    impl = (RUNTIME_DIR / "kiln_conv_impl.h").read_text() + (RUNTIME_DIR /
                                                             "kiln_pool_impl.h").read_text()
    defined = set(re.findall(r"KILN__(?:CV|PL)_API\((\w+)\)\(", impl))
    assert defined == set(ck.OPS)


def test_conv_geometry_for_each_op():
    attrs = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2}
    fwd = ck.conv_geometry("conv2d", (2, 4, 9, 8), (6, 2, 3, 3), **attrs)
    dgrad = ck.conv_geometry("conv2d_input_grad", (2, 6, 5, 4), (6, 2, 3, 3), input_hw=(9, 8),
                             **attrs)
    wgrad = ck.conv_geometry("conv2d_weight_grad", (2, 4, 9, 8), (2, 6, 5, 4), kernel_hw=(3, 3),
                             **attrs)
    assert fwd == dgrad == wgrad == (2, 4, 9, 8, 6, 3, 3, 2, 1, 1, 0, 1, 2, 2)
