"""``kiln.nn.utils``: gradient clipping, as ``torch.nn.utils``.

>>> import kiln
>>> from kiln.nn.utils import clip_grad_norm_
>>> w = kiln.nn.Parameter(kiln.ones(4))
>>> (w * 3.0).sum().backward()
>>> round(clip_grad_norm_([w], max_norm=1.0).item(), 4), [round(v, 4) for v in w.grad.tolist()]
(6.0, [0.5, 0.5, 0.5, 0.5])
"""

from __future__ import annotations

from kiln.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm"]
