"""``kiln.nn.utils``: helpers around modules, as ``torch.nn.utils`` (one module per job).

- :func:`load_hf`: load a Hugging Face checkpoint (file or model folder) into a Kiln model
  by parameter name.
"""

from __future__ import annotations

from kiln.nn.utils.hf import load_hf

__all__ = ["load_hf"]
