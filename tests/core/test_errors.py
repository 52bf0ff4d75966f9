"""Bad input raises a KilnError naming the function and argument, never a NumPy or Python error
from inside Kiln; composites report it as themselves, naming their arguments as the user
passed them (not ``matmul (2, 3) @ (5, 4)`` with a weight the user never transposed, nor the
``gather`` inside a loss)."""

from __future__ import annotations

import pytest

import kiln
import kiln.nn.functional as F
from kiln.errors import ArgumentError, IndexError_, KilnError, ShapeError, ValueArgumentError

X = kiln.ones(2, 3)
R = kiln.randn

CASES = [
    ("ragged data", lambda: kiln.tensor([[1, 2], [3]]), ValueArgumentError,
     "kiln.tensor: data must be rectangular"),
    ("chunk(0)", lambda: X.chunk(0), ValueArgumentError, "chunk: chunks must be positive"),
    ("chunk(1.5)", lambda: X.chunk(1.5), ArgumentError, "chunk: chunks must be an int"),
    ("x @ 2", lambda: X @ 2, ArgumentError, "matmul: other must be a kiln.Tensor, got int"),
    ("2 @ x", lambda: 2 @ X, ArgumentError, "matmul: input must be a kiln.Tensor, got int"),
    ("matmul inner", lambda: X @ kiln.ones(2, 3), ShapeError,
     r"matmul: \(2, 3\) @ \(2, 3\): the inner dims differ \(3 vs 2\)"),
    ("matmul batch", lambda: kiln.ones(2, 2, 3) @ kiln.ones(3, 3, 4), ShapeError,
     r"matmul: .* the batch dims \(2,\) and \(3,\) do not broadcast"),
    ("manual_seed('a')", lambda: kiln.manual_seed("a"), ArgumentError,
     "manual_seed: seed must be an int, got str"),
    ("manual_seed(2**64)", lambda: kiln.manual_seed(2**64), ValueArgumentError,
     r"manual_seed: seed must be in \[-2\*\*63, 2\*\*64\)"),
    ("eye(-1)", lambda: kiln.eye(-1), ShapeError, "eye: .* must be non-negative"),
    ("narrow", lambda: X.narrow(1, 2, 5), ShapeError,
     "narrow: start=2 and length=5 do not fit dim 1 of size 3"),
    ("var of ints", lambda: kiln.tensor([1, 2]).var(), ArgumentError,
     "var: input must be floating"),
    ("std of ints", lambda: kiln.tensor([1, 2]).std(), ArgumentError,
     "std: input must be floating"),
]


COMPOSITES = [
    ("cross_entropy target", lambda: F.cross_entropy(R(3, 5), kiln.tensor([0, 9, 1])),
     IndexError_, "cross_entropy: target value 9 is out of range for 5 classes"),
    ("cross_entropy negative target", lambda: F.cross_entropy(R(3, 5), kiln.tensor([0, -3, 1])),
     IndexError_, "cross_entropy: target value -3"),
    ("cross_entropy weight", lambda: F.cross_entropy(R(3, 5), kiln.tensor([0, 1, 1]),
                                                     weight=kiln.ones(4)),
     ShapeError, r"cross_entropy: weight must have shape \(5,\)"),
    ("nll_loss target", lambda: F.nll_loss(R(3, 5), kiln.tensor([0, 5, 1])), IndexError_,
     "nll_loss: target value 5 is out of range for 5 classes"),
    ("linear", lambda: F.linear(R(2, 3), R(5, 4)), ShapeError,
     r"linear: input \(2, 3\) and weight \(5, 4\) do not fit"),
    ("linear bias", lambda: F.linear(R(2, 3), R(5, 3), R(4)), ShapeError,
     r"linear: output \(2, 5\) and bias \(4,\) do not broadcast"),
    ("bilinear", lambda: F.bilinear(R(2, 3), R(2, 4), R(5, 3, 3)), ShapeError,
     r"bilinear: input1 \(2, 3\), input2 \(2, 4\) and weight \(5, 3, 3\) do not fit"),
    ("layer_norm weight", lambda: F.layer_norm(R(2, 3), (3,), weight=kiln.ones(4)), ShapeError,
     r"layer_norm: weight must have shape \(3,\)"),
    ("rms_norm shape", lambda: F.rms_norm(R(2, 3), (4,)), ShapeError,
     r"rms_norm: normalized_shape \(4,\) does not match"),
    ("batch_norm stats", lambda: F.batch_norm(R(2, 3), kiln.zeros(4), kiln.ones(4)),
     ShapeError, r"batch_norm: running_mean must have shape \(3,\)"),
    ("group_norm weight", lambda: F.group_norm(R(2, 6), 3, weight=kiln.ones(5)), ShapeError,
     r"group_norm: weight must have shape \(6,\)"),
    ("cosine_similarity", lambda: F.cosine_similarity(R(2, 3), R(2, 4)), ShapeError,
     r"cosine_similarity: x1 \(2, 3\) and x2 \(2, 4\) do not broadcast"),
    ("one_hot negative", lambda: F.one_hot(kiln.tensor([0, -1]), 3), ValueArgumentError,
     "one_hot: class values must be non-negative"),
    ("one_hot too large", lambda: F.one_hot(kiln.tensor([0, 5]), 3), ValueArgumentError,
     "one_hot: class value 5 is out of range for num_classes=3"),
    ("sdpa shapes", lambda: F.scaled_dot_product_attention(R(2, 3, 4), R(2, 3, 5), R(2, 3, 4)),
     ShapeError, r"scaled_dot_product_attention: query \(2, 3, 4\), key \(2, 3, 5\)"),
    ("sdpa mask", lambda: F.scaled_dot_product_attention(R(2, 3, 4), R(2, 3, 4), R(2, 3, 4),
                                                         attn_mask=kiln.ones(4, 4)),
     ShapeError, r"scaled_dot_product_attention: .* and attn_mask \(4, 4\) do not broadcast"),
    ("bce pos_weight", lambda: F.binary_cross_entropy_with_logits(R(2, 3), R(2, 3),
                                                                  pos_weight=kiln.ones(4)),
     ShapeError, r"binary_cross_entropy_with_logits: .* pos_weight \(4,\) do not broadcast"),
    ("bce weight", lambda: F.binary_cross_entropy(kiln.rand(2, 3), kiln.rand(2, 3),
                                                  weight=kiln.ones(4)),
     ShapeError, r"binary_cross_entropy: .* weight \(4,\) do not broadcast"),
    ("kl_div", lambda: F.kl_div(R(2, 3), R(3, 2)), ShapeError,
     r"kl_div: input \(2, 3\) and target \(3, 2\) do not broadcast"),
    ("conv2d bias", lambda: F.conv2d(R(1, 3, 5, 5), R(4, 3, 3, 3), R(5)), ShapeError,
     r"conv2d: bias must have shape \(4,\)"),
    ("conv1d channels", lambda: F.conv1d(R(1, 3, 5), R(4, 2, 3)), ShapeError,
     r"conv1d: input \(1, 3, 5\) and weight \(4, 2, 3\) do not fit"),
    ("einsum sizes", lambda: kiln.einsum("ij,jk->ik", R(2, 3), R(4, 5)), ShapeError,
     "einsum: label 'j' has sizes 3 and 4"),
    ("einsum operands", lambda: kiln.einsum("ij,jk->ik", R(2, 3)), ArgumentError,
     "einsum: equation 'ij,jk->ik' names 2 operands, got 1"),
    ("Linear layer", lambda: kiln.nn.Linear(3, 2)(R(2, 4)), ShapeError,
     "Linear: expected an input whose last dim is 3"),
]



@pytest.mark.parametrize("what, fn, exc, match", CASES + COMPOSITES,
                         ids=[c[0] for c in CASES + COMPOSITES])
def test_bad_input_is_a_kiln_error_naming_the_function(what, fn, exc, match):
    with pytest.raises(exc, match=match) as caught:
        fn()
    assert isinstance(caught.value, KilnError)


def test_to_another_tensor_takes_its_dtype():
    x = kiln.tensor([1, 2])
    assert x.to(kiln.ones(1, dtype=kiln.float64)).dtype == kiln.float64
    assert x.to(kiln.tensor([True])).tolist() == [True, True]
    assert x.to("cpu", kiln.float32).dtype == kiln.float32


def test_negative_seeds_are_their_64_bit_twos_complement():
    kiln.manual_seed(-1)
    a = kiln.rand(3)
    kiln.manual_seed(2**64 - 1)
    assert a.tolist() == kiln.rand(3).tolist()


@pytest.mark.parametrize("backend", ["interpret", "c"])
def test_one_hot_out_of_range_is_an_error_in_compiled_code_too(backend):
    """Traced, the class values are unknown until the graph runs: a scatter checks them
    there (an out-of-range class was an all-zero row)."""
    f = kiln.compile(lambda i: F.one_hot(i, 4), backend=backend)
    assert f(kiln.tensor([0, 3, 1])).tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    for bad in ([0, 4], [-1, 2]):
        with pytest.raises(IndexError_, match="out of bounds"):
            f(kiln.tensor(bad))
