"""``kiln.nn.utils``: helpers around modules, as ``torch.nn.utils`` (one module per job).

- :func:`clip_grad_norm_`, :func:`clip_grad_value_`, :func:`get_total_norm`: gradient
  clipping (:mod:`.clip_grad`);
- :func:`load_hf`: load a Hugging Face checkpoint (file or model folder) into a Kiln model
  by parameter name (:mod:`.hf`).

>>> import kiln
>>> from kiln.nn.utils import clip_grad_norm_
>>> w = kiln.nn.Parameter(kiln.ones(4))
>>> (w * 3.0).sum().backward()
>>> round(clip_grad_norm_([w], max_norm=1.0).item(), 4), [round(v, 4) for v in w.grad.tolist()]
(6.0, [0.5, 0.5, 0.5, 0.5])
"""

from __future__ import annotations

from kiln.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm
from kiln.nn.utils.hf import load_hf

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "load_hf"]
