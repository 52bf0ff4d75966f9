"""Deterministic ResNet weights from NumPy alone, shared by the reference-value tests and the
script that made their fixture (so the fixture is checked without torch)."""

from __future__ import annotations

import numpy as np


def seeded_state(keys_and_shapes: list[tuple[str, tuple[int, ...]]], seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """Weights with sane scales (He-normal convs, BatchNorm stats near 1), by sorted key."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for key, shape in sorted(keys_and_shapes):
        if key.endswith("num_batches_tracked"):
            out[key] = np.zeros(shape, np.int64)
            continue
        if key.endswith("running_var"):
            v = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("running_mean") or key.endswith("bias"):
            v = rng.uniform(-0.2, 0.2, shape)
        elif len(shape) == 1:  # BatchNorm weight
            v = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        out[key] = v.astype(np.float32)
    return out


def seeded_input(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 3, 64, 64)).astype(np.float32)
