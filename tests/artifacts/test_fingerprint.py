"""What the warm path's fingerprint sees: code, closure values, module structure and flags,
tensor metadata; not tensor values; None for what it cannot describe."""

from __future__ import annotations

import kiln
from kiln import nn
from kiln.artifacts.fingerprint import fingerprint
from kiln.nn.functional import gelu, relu


def _scaled(k: float):  # noqa: ANN202
    return lambda x: x * k


def test_closure_values_and_code() -> None:
    assert fingerprint(_scaled(2.0)) == fingerprint(_scaled(2.0))
    assert fingerprint(_scaled(2.0)) != fingerprint(_scaled(3.0))
    assert fingerprint(lambda x: relu(x)) != fingerprint(lambda x: gelu(x))


def test_tensors_count_by_metadata_not_values() -> None:
    w = kiln.ones(3)
    before = fingerprint(lambda x: x * w)
    w.add_(1.0)  # new values, same meta: the same program
    assert fingerprint(lambda x: x * w) == before
    v = kiln.ones(4)
    assert fingerprint(lambda x: x * v) != before


def test_module_flags_and_structure() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    f = lambda x: net(x)  # noqa: E731
    train = fingerprint(f)
    net.eval()
    assert fingerprint(f) != train
    net[1].p = 0.1
    assert fingerprint(f) != train
    hooked = nn.Linear(2, 2)
    hooked.register_forward_hook(lambda m, i, o: o)
    assert fingerprint(lambda x: hooked(x)) is None  # hooks: no warm path


def test_opaque_values_give_no_fingerprint() -> None:
    class Config:
        scale = 2.0

    cfg = Config()
    assert fingerprint(lambda x: x * cfg.scale) is None
