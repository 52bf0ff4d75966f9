"""``kiln.optim``: optimizers and learning-rate schedulers, as in ``torch.optim``.

Layer: optimizers, beside kiln.aot and above the backends (the fused steps build C with
kiln.backends.c.toolchain). May import kiln.backends and everything below it.

>>> import kiln
>>> from kiln import nn
>>> model = nn.Linear(3, 1)
>>> opt = kiln.optim.Adam(model.parameters(), lr=1e-2)
>>> loss = model(kiln.ones(4, 3)).square().mean()
>>> loss.backward()
>>> opt.step()
>>> opt.zero_grad()
>>> model.weight.grad is None
True
"""

from __future__ import annotations

from kiln.optim import lr_scheduler
from kiln.optim.adam import Adam, AdamW
from kiln.optim.optimizer import Optimizer, required
from kiln.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "required"]
