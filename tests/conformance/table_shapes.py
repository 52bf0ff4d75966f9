"""Conformance entries of torch's shape, stacking, splitting and comparison composites
(kiln.core.shapeops), with 0-d and empty forms where torch takes them. Functions that
return Python values (``allclose``, ``equal``, ``broadcast_shapes``) or take no tensor
(``tril_indices``) run eagerly only: a trace has nothing to record."""

from __future__ import annotations

from harness import entry, f, t

E = ()  # a 0-d shape
EAGER = ("eager",)


def fe(*args: object, **kwargs: object) -> object:
    """A form run eagerly only."""
    return f(*args, _modes=EAGER, **kwargs)


def i(*shape: int) -> object:
    return t(*shape, dtype="int64")


ENTRIES = [
    entry("movedim", f(t(2, 3, 4), 0, -1), f(t(2, 3, 4), (0, 1), (2, 0)), f(t(0, 3), 1, 0)),
    entry("moveaxis", f(t(2, 3), 1, 0)),
    entry("Tensor.movedim", f(t(2, 3, 4), -1, 0)),
    entry("ravel", f(t(2, 3)), f(t(E)), f(t(0, 2))),
    entry("Tensor.unflatten", f(t(2, 12), 1, (3, 4)), f(t(6), 0, (2, -1))),
    entry("unflatten", f(t(2, 12), -1, (4, 3))),
    entry("atleast_1d", f(t(E)), f(t(3)), f(t(2, 3))),
    entry("atleast_2d", f(t(E)), f(t(3)), f(t(2, 3, 1))),
    entry("atleast_3d", f(t(E)), f(t(3)), f(t(2, 3))),
    entry("hstack", f([t(2, 3), t(2, 1)]), f([t(3), t(2)]), f([t(E), t(2)])),
    entry("vstack", f([t(2, 3), t(1, 3)]), f([t(3), t(3)])),
    entry("row_stack", f([t(3), t(2, 3)])),
    entry("dstack", f([t(2, 3), t(2, 3)]), f([t(3), t(3)])),
    entry("column_stack", f([t(3), t(3, 2)]), f([t(2, 2), t(2)])),
    entry("tensor_split", f(t(7, 2), 3), f(t(2, 7), [1, 5], 1), f(t(5), [2, 2, 9])),
    entry("Tensor.tensor_split", f(t(6), 4)),
    entry("hsplit", f(t(2, 4), 2), f(t(6), [1, 3])),
    entry("vsplit", f(t(4, 2), [1])),
    entry("dsplit", f(t(1, 2, 4), 2)),
    entry("split_with_sizes", f(t(5, 2), [2, 3]), f(t(2, 5), [1, 4], 1)),
    entry("fliplr", f(t(2, 3)), f(i(3, 2))),
    entry("flipud", f(t(3)), f(t(2, 3))),
    entry("rot90", f(t(2, 3)), f(t(2, 3, 4), 2, (1, 2)), f(t(2, 3), -1), f(t(3, 2), 4)),
    entry("diff", f(t(5)), f(t(2, 5), 2), f(t(3, 4), 1, 0), f(i(4)),
          f(t(4), 1, -1, t(1), t(2)), f(t(3, 3), 0, 0, t(1, 3), t(2, 3))),
    entry("Tensor.diff", f(t(2, 4))),
    entry("kron", f(t(2), t(3)), f(t(2, 2), t(2, 3)), f(t(2, 2), t(3)), f(i(2), i(2))),
    entry("meshgrid", f(t(2), t(3)), f(t(2), t(3), indexing="xy"), f(t(2), t(3), t(4))),
    entry("cartesian_prod", f(t(2), t(3)), f(i(2), i(2), i(2)), f(t(3))),
    entry("tril_indices", fe(3, 3), fe(4, 3, -1), fe(2, 5, 1), modes=EAGER),
    entry("triu_indices", fe(3, 3), fe(4, 3, 1), fe(3, 2, -1), modes=EAGER),
    entry("tensordot", f(t(2, 3, 4), t(3, 4, 5)), f(t(2, 3), t(3, 2), 1),
          f(t(3, 4, 2), t(2, 4, 3), ([0, 1], [2, 1])), f(t(2), t(3), 0)),
    entry("inner", f(t(2, 3), t(4, 3)), f(t(3), t(3)), f(t(E), t(2))),
    entry("vdot", f(t(3), t(3))),
    entry("trapezoid", f(t(5)), f(t(2, 5), dx=0.5), f(t(3, 4), t(3, 4), dim=0),
          f(t(4), t(4))),
    entry("trapz", f(t(2, 4))),
    entry("isclose", f(t(2, 3), t(3)), f(t(4), t(4), 0.1, 0.5), f(i(3), i(3)), grad=False),
    entry("Tensor.isclose", f(t(3), t(3)), grad=False),
    entry("allclose", fe(t(2, 3), t(2, 3)), fe(t(3), t(3), 10.0, 10.0), modes=EAGER),
    entry("equal", fe(t(2, 3), t(2, 3)), fe(t(2), t(3)), modes=EAGER),
    entry("aminmax", f(t(2, 3)), f(t(2, 3), dim=1), f(t(3, 2), dim=0, keepdim=True),
          grad=False),
    entry("var_mean", f(t(2, 3)), f(t(2, 3), 1), f(t(2, 3), False), f(t(3, 4), 0, keepdim=True),
          f(t(4, 2), 1, correction=0)),
    entry("std_mean", f(t(2, 3)), f(t(3, 2), True), f(t(3, 4), 1, keepdim=True)),
    entry("broadcast_shapes", fe((2, 1), (3,)), fe((1, 4), (5, 1), (4,)), modes=EAGER),
    entry("broadcast_tensors", f(t(2, 1), t(3)), f(t(E), t(2, 2))),
    entry("conj", f(t(2, 3))),
    entry("resolve_conj", f(t(3))),
    entry("resolve_neg", f(t(3))),
    entry("conj_physical", f(t(3))),
    entry("real", f(t(2, 3))),
    entry("isreal", f(t(3)), f(i(2)), grad=False),
    entry("angle", f(t(2, 3)), f(i(3)), grad=False),
    entry("Tensor.new_zeros", f(t(2), (2, 3)), f(i(2), 4), grad=False),
    entry("Tensor.new_ones", f(t(2), (3,)), grad=False),
    entry("Tensor.new_full", f(t(2), (2, 2), 1.5), grad=False),
]
