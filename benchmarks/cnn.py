"""A small CNN's training step (PyTorch's MNIST example network): Kiln-C against Kiln eager,
PyTorch eager and torch.compile, ms per step and cold compile seconds.

Run from the repository root: ``python -m benchmarks.cnn [--quick] [--no-torch]
[--warm-kiln-cache] [--smoke]`` (the options of :mod:`benchmarks.run`, whose timing and
table this is: workload W7 there).

The network: conv 1->32 3x3, ReLU, conv 32->64 3x3, ReLU, 2x2 max pool, flatten, linear
9216->128, ReLU, linear 128->10, log-softmax and NLL loss; batch 64 of 28x28 images. A step
is forward, backward and SGD: the loss is compiled (forward and backward graphs), the
optimizer runs eagerly in every column, as in PyTorch. ``--smoke`` runs 4 images of 8x8.

Kiln's cold column is the model's own compile: the conv and pool kernels and the optimizer
library that every model links are built first, once per machine, as ``kiln cache prebuild``
does (the time is printed; torch ships its kernels compiled in the wheel).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from benchmarks import run as bench


def _kiln_net(channels: tuple[int, int], side: int) -> Any:
    import kiln.nn as nn

    flat = channels[1] * ((side - 4) // 2) ** 2

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels[0], 3)
            self.conv2 = nn.Conv2d(channels[0], channels[1], 3)
            self.fc1 = nn.Linear(flat, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x: Any) -> Any:
            import kiln.nn.functional as F

            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            x = F.relu(self.fc1(x.flatten(1)))
            return F.log_softmax(self.fc2(x), dim=1)

    return Net()


def _torch_net(channels: tuple[int, int], side: int) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    flat = channels[1] * ((side - 4) // 2) ** 2

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels[0], 3)
            self.conv2 = nn.Conv2d(channels[0], channels[1], 3)
            self.fc1 = nn.Linear(flat, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x: Any) -> Any:
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            x = F.relu(self.fc1(torch.flatten(x, 1)))
            return F.log_softmax(self.fc2(x), dim=1)

    return Net()


def cnn_workloads(use_torch: bool, smoke: bool = False) -> list[bench.Workload]:
    import kiln
    import kiln.nn.functional as F

    (batch, side, channels) = (4, 8, (4, 8)) if smoke else (64, 28, (32, 64))
    rng = np.random.default_rng(0)
    x = kiln.from_numpy(rng.standard_normal((batch, 1, side, side), dtype=np.float32))
    labels = kiln.from_numpy(rng.integers(0, 10, batch))
    kiln.manual_seed(0)
    model = _kiln_net(channels, side)

    w = bench.Workload("W7", f"CNN (MNIST net) b{batch} {side}x{side} train step (fwd+bwd+SGD)")
    eager, compiled = _kiln_net(channels, side), _kiln_net(channels, side)
    eager.load_state_dict(model.state_dict())
    compiled.load_state_dict(model.state_dict())
    w.impls["numpy"] = bench._train_step(kiln.optim.SGD(eager.parameters(), lr=1e-2),
                                         lambda x: F.nll_loss(eager(x), labels), x)
    # The conv/pool kernels every CNN links are built once per machine (`kiln cache
    # prebuild`), as torch's wheel ships ATen's: the cold column is this model's own compile.
    from kiln.backends.c.convrt import prebuild
    from kiln.optim import fused

    start = time.perf_counter()
    prebuild()
    fused.library()
    print(f"  [W7] runtime kernels for this machine (kiln cache prebuild, once): "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    c_loss = kiln.compile(lambda x, y: F.nll_loss(compiled(x), y), backend="c")
    bench._try_kiln(w, "kiln-c", lambda: bench._timed_first(bench._train_step(
        kiln.optim.SGD(compiled.parameters(), lr=1e-2), lambda x: c_loss(x, labels), x)))
    if use_torch:
        import torch

        from benchmarks.torch_models import load_from_kiln

        tx, tl = torch.from_numpy(x.numpy()), torch.from_numpy(labels.numpy())
        for name, wrap in (("torch", lambda f: f),
                           ("t.compile", lambda f: bench._tcompile(torch, f))):
            net = load_from_kiln(_torch_net(channels, side), model)
            loss_of = wrap(lambda x, m=net: torch.nn.functional.nll_loss(m(x), tl))
            step = bench._train_step(torch.optim.SGD(net.parameters(), lr=1e-2), loss_of, tx)
            w.impls[name], cold = bench._timed_first(step)
            if name == "t.compile":
                w.cold[name] = cold
    return [w]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return bench.main(["--only", "W7", *argv])


if __name__ == "__main__":
    raise SystemExit(main())
