"""``kiln.utils``: the user-facing counterpart of ``torch.utils`` (``kiln.utils.data``:
datasets and the DataLoader). Kiln's internal helpers live in ``kiln.base``, not here.

>>> import kiln
>>> from kiln.utils.data import DataLoader, TensorDataset
>>> ds = TensorDataset(kiln.arange(6.0), kiln.arange(6))
>>> [x.tolist() for x, _ in DataLoader(ds, batch_size=4)]
[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]]
"""

from __future__ import annotations

from kiln.utils import data

__all__ = ["data"]
