"""``kiln.utils.data``: datasets, samplers and the DataLoader, as ``torch.utils.data``
(single-process: batches are made in the calling thread).

>>> import kiln
>>> from kiln.utils.data import DataLoader, TensorDataset
>>> loader = DataLoader(TensorDataset(kiln.randn(10, 3), kiln.arange(10)), batch_size=4,
...                     shuffle=True, generator=kiln.Generator().manual_seed(0))
>>> [tuple(x.shape) for x, y in loader]
[(4, 3), (4, 3), (2, 3)]
"""

from __future__ import annotations

from kiln.utils.data.dataloader import DataLoader, default_collate
from kiln.utils.data.dataset import (
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from kiln.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "default_collate", "Dataset", "IterableDataset", "TensorDataset",
           "Subset", "ConcatDataset", "random_split", "Sampler", "SequentialSampler",
           "RandomSampler", "BatchSampler"]
